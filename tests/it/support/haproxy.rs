//! A real haproxy in front of gateway replicas, as deploy/haproxy.cfg runs
//! it: `mode tcp` (TLS passes through, so mutual TLS ends at the replica),
//! round robin, each replica checked with `GET /readyz` on its admin
//! listener and taken out of the rotation while that fails (a killed
//! replica, a draining one). Foreground (`-db`), its config and stats socket
//! in the test's directory, killed on drop. `bash scripts/test.sh` installs
//! haproxy when missing.

use super::proc::Proc;
use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A replica behind the load balancer.
pub struct Backend {
    /// Its name in haproxy (the node id).
    pub name: String,
    /// Its gateway listener, `127.0.0.1:port`.
    pub addr: String,
    /// Its admin listener (`/readyz`), `127.0.0.1:port`.
    pub admin: String,
}

/// One server's line in `show stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStat {
    /// The server's name.
    pub name: String,
    /// `UP`, `DOWN`, … as haproxy reports it.
    pub status: String,
    /// The last check's result (`L7OK`, `L4CON`, `L7STS`, …).
    pub check_status: String,
    /// How many times the server went from UP to DOWN.
    pub downs: u64,
}

/// A haproxy process; its frontend is [`Haproxy::addr`].
pub struct Haproxy {
    /// The frontend agencies connect to.
    pub addr: String,
    socket: PathBuf,
    proc: Proc,
}

/// Health checks every 100 ms (each may take up to `timeout check`); two
/// failures in a row take a replica out (one slow check on a loaded
/// machine does not), one success brings it back: short, so the tests wait
/// little.
const CHECK: &str = "inter 100ms fall 2 rise 1";

fn config(port: u16, socket: &Path, backends: &[Backend]) -> String {
    let servers: String = backends
        .iter()
        .map(|b| {
            let (host, port) = b.admin.rsplit_once(':').expect("host:port");
            format!(
                "    server {} {} check addr {host} port {port}\n",
                b.name, b.addr
            )
        })
        .collect();
    format!(
        r#"global
    stats socket {socket} mode 600 level admin
    log stderr format raw local0

defaults
    mode tcp
    log global
    option tcplog
    timeout connect 1s
    # A replica's /readyz waits up to `consent.timeout_ms` (300 ms here)
    # for a Redis that does not answer: a shorter check timeout would take
    # every replica out exactly when Redis is down (docs/operations.md).
    timeout check 2s
    timeout client 1m
    timeout server 1m
    # A connection refused by a replica that died between two checks is
    # tried again on another.
    retries 2
    option redispatch 1

frontend agencies
    bind 127.0.0.1:{port}
    default_backend jisr

backend jisr
    balance roundrobin
    option httpchk GET /readyz
    default-server {CHECK}
{servers}"#,
        socket = socket.display(),
    )
}

impl Haproxy {
    /// Starts haproxy in `dir` with `backends`, on a free loopback port
    /// (another is tried if the port was taken in between), and waits
    /// until it answers on its stats socket.
    pub fn start(dir: &Path, backends: &[Backend]) -> Self {
        if Command::new("haproxy").arg("-v").output().is_err() {
            panic!("`haproxy` is not installed; run the tests with `bash scripts/test.sh`, which installs it");
        }
        let mut last = String::new();
        for attempt in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let socket = dir.join(format!("haproxy-{attempt}.sock"));
            let cfg = dir.join(format!("haproxy-{attempt}.cfg"));
            std::fs::write(&cfg, config(port, &socket, backends)).unwrap();
            let mut proc = Proc::spawn(
                "haproxy",
                Command::new("haproxy").arg("-db").arg("-f").arg(&cfg),
            );
            match wait_started(&mut proc, &socket) {
                Ok(()) => {
                    return Self {
                        addr: format!("127.0.0.1:{port}"),
                        socket,
                        proc,
                    }
                }
                Err(why) => last = why,
            }
        }
        panic!("could not start haproxy: {last}");
    }

    /// What haproxy logged so far (a line per connection).
    pub fn logs(&self) -> String {
        self.proc.logs()
    }

    /// Runs one command on the stats socket and returns its answer.
    pub fn command(&self, cmd: &str) -> std::io::Result<String> {
        command(&self.socket, cmd)
    }

    /// Every replica's state as haproxy sees it.
    pub fn servers(&self) -> Vec<ServerStat> {
        let csv = self.command("show stat").expect("haproxy's stats socket");
        let mut lines = csv.lines();
        let header: Vec<&str> = lines
            .next()
            .and_then(|h| h.strip_prefix("# "))
            .expect("a `show stat` header")
            .split(',')
            .collect();
        let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
        let (px, sv, status, check, downs) = (
            col("pxname"),
            col("svname"),
            col("status"),
            col("check_status"),
            col("chkdown"),
        );
        lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| f.len() > downs && f[px] == "jisr")
            .filter(|f| f[sv] != "BACKEND")
            .map(|f| ServerStat {
                name: f[sv].to_owned(),
                status: f[status].to_owned(),
                check_status: f[check].to_owned(),
                downs: f[downs].parse().unwrap_or(0),
            })
            .collect()
    }

    /// Waits (up to 15 s) until `server` passed a check and is in the
    /// rotation (a server starts UP before its first check).
    pub fn wait_up(&self, server: &str) -> ServerStat {
        self.wait(server, "UP after a passed check", |s| {
            s.status == "UP" && s.check_status.ends_with("L7OK")
        })
    }

    /// Waits (up to 15 s) until `server` is out of the rotation.
    pub fn wait_down(&self, server: &str) -> ServerStat {
        self.wait(server, "DOWN", |s| s.status.starts_with("DOWN"))
    }

    fn wait(&self, server: &str, what: &str, done: impl Fn(&ServerStat) -> bool) -> ServerStat {
        let start = Instant::now();
        loop {
            let all = self.servers();
            if let Some(s) = all.iter().find(|s| s.name == server && done(s)) {
                return s.clone();
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "haproxy never saw {server} {what}: {all:?}\n{}",
                self.proc.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Waits (up to 10 s) until haproxy answers on its stats socket (it binds
/// its frontend first), or fails with its log if it exited (port taken).
fn wait_started(proc: &mut Proc, socket: &Path) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if command(socket, "show info").is_ok() {
            return Ok(());
        }
        let child = proc.child.as_mut().expect("spawned");
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("haproxy exited ({status}): {}", proc.logs()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("no stats socket after 10 s: {}", proc.logs()))
}

/// One command on the stats socket at `socket`, and its answer.
fn command(socket: &Path, cmd: &str) -> std::io::Result<String> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(format!("{cmd}\n").as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}
