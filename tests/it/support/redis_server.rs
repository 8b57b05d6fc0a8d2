//! Redis for the black-box tests: a `redis-server` of the test's own on a
//! free loopback port (killed on drop; restartable, freezable by its pid),
//! and a three-node Redis Cluster. `bash scripts/test.sh` installs
//! redis-server and redis-cli when missing; a test without them fails
//! saying so, never skips.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A redis-server on a loopback port, killed on drop.
pub(crate) struct Redis {
    pub(crate) port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
    child: Option<Child>,
}

impl Redis {
    pub(crate) fn start() -> Self {
        Self::start_with(&[])
    }

    /// One with an append-only file fsynced every second, as the bus's
    /// Redis should be run (docs/bus.md): a restart keeps the data.
    pub(crate) fn with_aof() -> Self {
        Self::start_with(&["--appendonly", "yes", "--appendfsync", "everysec"])
    }

    /// One that writes and fsyncs its append-only file before answering,
    /// for tests that kill it and count on every answered write surviving:
    /// with `everysec`, Redis may postpone the write (not only the fsync)
    /// by up to two seconds while a previous fsync is slow, and still
    /// answer, so a kill right after loses what it acknowledged.
    pub(crate) fn with_aof_always() -> Self {
        Self::start_with(&["--appendonly", "yes", "--appendfsync", "always"])
    }

    /// Starts one on a free port, trying another if the port was taken in
    /// between (other tests pick ports too).
    fn start_with(extra: &[&str]) -> Self {
        require("redis-server");
        let mut last = String::new();
        for _ in 0..5 {
            let mut redis = Redis {
                port: free_port(),
                dir: tempfile::tempdir().unwrap(),
                args: extra.iter().map(|s| s.to_string()).collect(),
                child: None,
            };
            match redis.spawn() {
                Ok(()) => return redis,
                Err(why) => last = why,
            }
        }
        panic!("could not start redis-server: {last}");
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log = self.dir.path().join("redis.log");
        let mut child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run redis-server: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("redis-server exited ({status}): {}", read(&log)));
            }
            if ping(self.port) {
                self.child = Some(child);
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(format!("redis-server did not answer PING: {}", read(&log)))
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The redis-server's process id (to freeze it with SIGSTOP).
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("redis-server runs").id()
    }

    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (empty unless started
    /// [`Redis::with_aof`]).
    pub(crate) fn restart(&mut self) {
        self.kill();
        self.spawn().expect("restart redis-server on the same port");
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Fails (never skips) when a Redis tool is missing.
fn require(tool: &str) {
    if Command::new(tool).arg("--version").output().is_err() {
        panic!("`{tool}` is not installed; run the tests with `bash scripts/test.sh`, which installs redis-server (and redis-cli)");
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Three cluster nodes and `redis-cli --cluster create`; any failure to
/// build the cluster fails the test with the reason.
pub(crate) struct Cluster {
    nodes: Vec<Redis>,
}

impl Cluster {
    pub(crate) fn start() -> Self {
        require("redis-cli");
        let nodes: Vec<_> = (0..3)
            .map(|_| {
                Redis::start_with(&["--cluster-enabled", "yes", "--cluster-node-timeout", "5000"])
            })
            .collect();
        let addrs: Vec<_> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cannot create a Redis Cluster (environment?): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        for node in &nodes {
            loop {
                let info = Command::new("redis-cli")
                    .args(["-p", &node.port.to_string(), "cluster", "info"])
                    .output()
                    .expect("run redis-cli cluster info");
                let info = String::from_utf8_lossy(&info.stdout).into_owned();
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the cluster did not become ready: {info}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Cluster { nodes }
    }

    /// Its nodes' ports.
    pub(crate) fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    pub(crate) fn url(&self) -> String {
        let hosts: Vec<_> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }
}
