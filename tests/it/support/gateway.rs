//! A gateway in this process: what `jisr serve` runs ([`jisr::gateway::run`]
//! after [`jisr::gateway::Gateway::build`]), on its own runtime and thread,
//! on `127.0.0.1:0`, stopped through its shutdown future.
//!
//! Tests start this one unless they need the process boundary, and then
//! [`super::spawn_gateway`] starts a `jisr serve` process instead:
//! - signals: SIGKILL (nothing may be lost), SIGTERM (the CLI's shutdown
//!   signal) and SIGHUP (reload), and the exit status;
//! - the gateway's log: tracing's subscriber is global to a process, and a
//!   gateway's log lines run on its lanes' threads, so in a test process
//!   they could not be told apart from another test's (`cargo test` runs
//!   tests on threads of one process);
//! - `OTEL_*` variables, read by the OpenTelemetry SDK from the process
//!   environment (setting them here would be `unsafe` and leak into other
//!   tests);
//! - `/proc/<pid>` and the bench's search for the gateway's process.

use jisr::audit::log::Faults;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::net::TcpListener;
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::oneshot;

/// What the gateway's thread hands back once it serves: its addresses, its
/// audit writer's fault hook and its consent clock.
type Started = (
    SocketAddr,
    SocketAddr,
    Option<SocketAddr>,
    Option<SocketAddr>,
    Arc<Faults>,
    Arc<jisr::clock::Clock>,
);

/// A gateway serving on its own runtime; stopped (and drained) when
/// dropped or by [`Gateway::stop`].
pub struct Gateway {
    /// The gateway's address.
    pub addr: String,
    /// Its admin listener (`/metrics`, `/healthz`, `/readyz`).
    pub admin: String,
    /// Its web console, when the config has `[console]`.
    pub console: Option<String>,
    /// Its tlog-tiles listener, when the config has `[audit.tiles]`.
    pub tiles: Option<String>,
    /// Its audit writer's fault hook: a test fails the log's writes and
    /// fsyncs through it (no root, no disk to fill).
    pub audit_faults: Arc<Faults>,
    /// The clock its consent checks read: a test pins it either side of a
    /// consent's expiry instead of waiting for the expiry.
    pub clock: Arc<jisr::clock::Clock>,
    name: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Gateway {
    /// Builds the gateway of the config file at `path` and serves it on
    /// loopback ports picked by the system; panics, saying why, if it
    /// cannot start.
    pub fn start(name: &str, path: &Path) -> Self {
        Self::start_with(name, path, None, Arc::default())
    }

    /// [`Gateway::start`] reading the time of day from `clock`, which the
    /// test moves to pass a date instead of waiting for it.
    pub fn start_clocked(name: &str, path: &Path, clock: Arc<jisr::clock::Clock>) -> Self {
        Self::start_with(name, path, None, clock)
    }

    /// [`Gateway::start`] on a listener the test bound (and so whose
    /// address it could write into other gateways' configs first).
    pub fn start_on(name: &str, path: &Path, listener: std::net::TcpListener) -> Self {
        Self::start_with(name, path, Some(listener), Arc::default())
    }

    fn start_with(
        name: &str,
        path: &Path,
        bound: Option<std::net::TcpListener>,
        clock: Arc<jisr::clock::Clock>,
    ) -> Self {
        let on_one_thread = Handle::try_current()
            .is_ok_and(|test| test.runtime_flavor() == RuntimeFlavor::CurrentThread);
        assert!(
            !on_one_thread,
            "an in-process gateway needs a multi-threaded test runtime \
             (#[tokio::test(flavor = \"multi_thread\", worker_threads = 2)]): the drain \
             waits for the test's connections to answer while the test waits for the drain"
        );
        let config = jisr::config::Config::load(path)
            .unwrap_or_else(|e| panic!("{name}: {}", jisr::config::report(&e)));
        let (started, on_start) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("gateway-{name}"))
            .spawn(move || {
                // Multi-threaded like `jisr serve`'s: the test's own runtime
                // may be single-threaded, and may block on this gateway.
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    let gateway =
                        match jisr::gateway::Gateway::build_with_clock(&config, clock).await {
                            Ok((gateway, _)) => gateway,
                            Err(e) => return drop(started.send(Err(e.to_string()))),
                        };
                    let listener = match bound {
                        Some(l) => {
                            l.set_nonblocking(true).unwrap();
                            TcpListener::from_std(l).unwrap()
                        }
                        None => TcpListener::bind("127.0.0.1:0").await.unwrap(),
                    };
                    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
                    let console = match gateway.bind_console().await {
                        Ok(console) => console,
                        Err(e) => return drop(started.send(Err(e.to_string()))),
                    };
                    let tiles = match gateway.bind_tiles().await {
                        Ok(tiles) => tiles,
                        Err(e) => return drop(started.send(Err(e.to_string()))),
                    };
                    let addrs = (
                        listener.local_addr().unwrap(),
                        admin.local_addr().unwrap(),
                        console,
                        tiles,
                        gateway.audit_log().faults(),
                        gateway.clock(),
                    );
                    let _ = started.send(Ok(addrs));
                    let shutdown = async {
                        // Dropping the sender stops the gateway too.
                        let _ = stopped.await;
                    };
                    jisr::gateway::run(gateway, listener, Some(admin), shutdown).await;
                });
            })
            .unwrap();
        let (addr, admin, console, tiles, audit_faults, clock): Started = match on_start.recv() {
            Ok(Ok(started)) => started,
            Ok(Err(e)) => panic!("gateway {name} did not start: {e}"),
            Err(_) => {
                let _ = thread.join();
                panic!("gateway {name} panicked while starting")
            }
        };
        Self {
            addr: addr.to_string(),
            admin: admin.to_string(),
            console: console.map(|c| c.to_string()),
            tiles: tiles.map(|t| t.to_string()),
            audit_faults,
            clock,
            name: name.to_owned(),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Stops accepting, waits for the drain and for the audit log's final
    /// checkpoint: the gateway's files may then be read offline.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // Off the worker (when called on one), so that the test's other
            // tasks, its connections among them, keep running meanwhile.
            let stopped = match Handle::try_current() {
                Ok(_) => tokio::task::block_in_place(|| thread.join()),
                Err(_) => thread.join(),
            };
            // A failing test is already unwinding: its own message matters.
            if !std::thread::panicking() {
                assert!(stopped.is_ok(), "gateway {} panicked", self.name);
            }
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.shut_down();
    }
}
