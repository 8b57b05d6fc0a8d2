//! Three `jisr serve` processes behind a real haproxy (TCP, TLS passthrough,
//! `/readyz` checks), sharing one Redis (standalone or Cluster) for
//! consents, the bus and the replica registry, in which they find each
//! other. Each replica has its own node id, certificate, audit log and log
//! file; a replica is killed with SIGKILL and started again on the same
//! addresses, as an orchestrator would.

use super::haproxy::{Backend, Haproxy};
use super::{
    admin_addr, echo, gateway_config, replica_config, spawn_gateway, Pki, Proc, Upstreams,
};
use tonic::transport::Channel;

pub use super::replicas::NODES;
use super::replicas::TTL_MS;

/// One replica.
pub struct Replica {
    /// Its node id.
    pub name: String,
    /// Its gateway listener.
    pub addr: String,
    /// Its admin listener.
    pub admin: String,
    config: String,
    proc: Option<Proc>,
}

/// The load balancer and the replicas behind it.
pub struct Fleet {
    /// haproxy (dropped first).
    pub lb: Haproxy,
    /// The replicas, in [`NODES`] order.
    pub replicas: Vec<Replica>,
    /// The PKI (one CA) and the replicas' files.
    pub pki: Pki,
    _echos: Vec<echo::Echo>,
}

impl Fleet {
    /// Starts the echo providers, three replicas on the Redis at
    /// `redis_url` with `extra` appended to each one's configuration (rules,
    /// topics), and haproxy in front; returns once haproxy sees all three
    /// ready.
    pub async fn start(redis_url: &str, extra: &str) -> Self {
        let pki = Pki::new();
        let cs = echo::Echo::start(&pki.dir, "civil-status").await;
        let tax = echo::Echo::start(&pki.dir, "tax").await;
        let health = echo::Echo::start(&pki.dir, "health").await;
        let up = Upstreams::echoes(&cs, &tax, &health);
        let node_extra = format!("registration_ttl_ms = {TTL_MS}");
        let mut replicas = Vec::new();
        for node in NODES {
            let sections = format!(
                "{extra}\n[consent]\nredis_url = \"{redis_url}\"\npath = \"{node}-consents.redb\"\ntimeout_ms = 300\n\n[cluster]\npeer_timeout_ms = 1500\n"
            );
            let config = replica_config(
                &pki,
                &gateway_config(&pki, &up, &node_extra, &sections),
                node,
            );
            let (proc, addr) = spawn_gateway(&pki, node, &config);
            let admin = admin_addr(&pki, node, &proc);
            replicas.push(Replica {
                name: node.to_owned(),
                addr,
                admin,
                config,
                proc: Some(proc),
            });
        }
        let backends: Vec<Backend> = replicas
            .iter()
            .map(|r| Backend {
                name: r.name.clone(),
                addr: r.addr.clone(),
                admin: r.admin.clone(),
            })
            .collect();
        let lb = Haproxy::start(pki.root(), &backends);
        for node in NODES {
            lb.wait_up(node);
        }
        Self {
            lb,
            replicas,
            pki,
            _echos: vec![cs, tax, health],
        }
    }

    /// A channel to `addr` (the load balancer or a replica) as `agency`.
    /// Each is a new TCP connection: through haproxy, successive channels
    /// go to successive replicas.
    pub async fn channel(&self, addr: &str, agency: &str) -> Channel {
        super::channel(addr, &self.pki.files(agency))
            .await
            .unwrap_or_else(|e| {
                let lb = if addr == self.lb.addr {
                    self.lb.logs()
                } else {
                    String::new()
                };
                panic!("connect to {addr} as {agency}: {e:?}\n{lb}")
            })
    }

    /// The load balancer's address, then each replica's.
    pub fn endpoints(&self) -> Vec<String> {
        std::iter::once(self.lb.addr.clone())
            .chain(self.replicas.iter().map(|r| r.addr.clone()))
            .collect()
    }

    /// Kills replica `i` with SIGKILL (no drain, no goodbye to the
    /// registry) and waits until haproxy has taken it out.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut proc) = self.replicas[i].proc.take() {
            proc.kill();
        }
        self.lb.wait_down(&self.replicas[i].name);
    }

    /// Starts replica `i` again on its addresses, with its log (so it takes
    /// its old registration back at once: no wait for the TTL), and waits
    /// until haproxy takes it back.
    pub async fn restart(&mut self, i: usize) {
        let r = &self.replicas[i];
        let config = r.config.replacen(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"{}\"", r.addr),
            1,
        ) + &format!("\n[telemetry]\nadmin_listen = \"{}\"\n", r.admin);
        let (proc, addr) = spawn_gateway(&self.pki, &r.name, &config);
        assert_eq!(addr, r.addr, "restarted on another address");
        self.replicas[i].proc = Some(proc);
        self.lb.wait_up(&self.replicas[i].name);
    }
}
