//! Child processes that die with the test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A `jisr` command.
pub fn jisr() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jisr"));
    cmd.env("RUST_LOG", "info,jisr=debug");
    cmd
}

/// A finished command's stdout then stderr, as text.
pub fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A running child whose stderr goes to a file; killed when dropped.
pub struct Proc {
    /// The child.
    pub child: Option<Child>,
    /// Its stderr log.
    pub log: tempfile::NamedTempFile,
    /// A name for messages.
    pub name: String,
}

impl Proc {
    /// Spawns `cmd` with stdout discarded and stderr captured.
    pub fn spawn(name: &str, cmd: &mut Command) -> Self {
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap();
        Self {
            child: Some(child),
            log,
            name: name.to_owned(),
        }
    }

    /// Everything the process logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Waits until the log contains `needle` (up to 10 s).
    pub fn wait_log(&self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            let logs = self.logs();
            if logs.contains(needle) {
                return logs;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{} never logged {needle:?}; log:\n{logs}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits (up to 15 s) for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let child = self.child.as_mut().unwrap();
        let pid = child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "{} ignored SIGTERM",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGHUP (reload the configuration).
    pub fn hangup(&self) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        assert!(Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success());
    }

    /// How many times the log contains `needle`.
    pub fn count_log(&self, needle: &str) -> usize {
        self.logs().matches(needle).count()
    }

    /// Kills the process at once.
    pub fn kill(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `jisr demo --serve --dir DIR/demo` (the directory is made under
/// `tmp`); returns the process and the directory.
pub fn demo_serve(tmp: &Path) -> (Proc, PathBuf) {
    let dir = tmp.join("demo");
    let demo = Proc::spawn(
        "demo",
        jisr().args(["demo", "--serve", "--dir", dir.to_str().unwrap()]),
    );
    (demo, dir)
}

/// Waits (up to 20 s) for a file the process writes, and returns its text.
pub fn wait_for_file(path: &Path, proc: &Proc) -> String {
    let start = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if !text.is_empty() {
                return text.trim().to_owned();
            }
        }
        let logs = proc.logs();
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{} did not write {}; log:\n{logs}",
            proc.name,
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
