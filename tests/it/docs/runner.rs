//! Runs a Markdown page's blocks as its reader would, on one machine.
//!
//! A block's info string says what it is (the pages say so to their
//! readers too), and one the runner does not know fails the test, so a new
//! block is either run or explicitly marked as not for this machine:
//!
//! - `sh`: a shell session on the gateway's machine, `$ command` lines
//!   (continued by a trailing `\`) each followed by what it prints; `...`
//!   stands for lines left out. A command ending in `&` runs in the
//!   background until the page is done.
//! - `toml new=PATH`, `proto new=PATH`: the file's content;
//!   `toml append=PATH`: lines to append to it.
//! - [`SKIPPED`]: another machine's commands, another language's code, or
//!   sample output; handed to the caller, which may play that part.
//!
//! Fixed addresses of the page (`127.0.0.1:8443`) are replaced by ones the
//! test picked, in commands, files and expected output alike.

use crate::support::proc::{jisr, Proc};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Info strings of blocks that are not run here.
pub(crate) const SKIPPED: [&str; 7] = [
    "sh agency",
    "sh not-run",
    "text",
    "python",
    "java",
    "go",
    "csharp",
];

/// A page being run in a directory of its own.
pub(crate) struct Runner {
    pub(crate) dir: PathBuf,
    /// (as the page writes it, as the test runs it).
    pub(crate) addresses: Vec<(String, String)>,
    background: Vec<Proc>,
}

/// A loopback address nobody listens on now (bound, then released).
pub(crate) fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

impl Runner {
    pub(crate) fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            addresses: Vec::new(),
            background: Vec::new(),
        }
    }

    /// `text` with the page's addresses replaced by the test's.
    pub(crate) fn here(&self, text: &str) -> String {
        self.addresses
            .iter()
            .fold(text.to_owned(), |t, (page, test)| t.replace(page, test))
    }

    /// Runs one block; a skipped one goes to `other`.
    pub(crate) fn block(&mut self, info: &str, body: &str, other: &mut dyn FnMut(&str, &str)) {
        let (lang, attr) = info.split_once(' ').unwrap_or((info, ""));
        match (lang, attr.split_once('=')) {
            _ if SKIPPED.contains(&info) => other(info, body),
            ("sh", None) if attr.is_empty() => {
                for (command, output) in session(body) {
                    self.step(&command, &output);
                }
            }
            ("toml" | "proto", Some(("new", path))) => {
                let path = self.dir.join(path);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, self.here(body)).unwrap();
            }
            ("toml", Some(("append", path))) => {
                let path = self.dir.join(path);
                let text = std::fs::read_to_string(&path).unwrap();
                std::fs::write(path, format!("{text}\n{}", self.here(body))).unwrap();
            }
            _ => panic!("a block marked ```{info}: the runner knows no such block; mark it as one of {SKIPPED:?}, `sh`, `toml new=PATH`, `toml append=PATH` or `proto new=PATH`"),
        }
    }

    /// Runs one command and compares what it prints with the page. A
    /// command to the gateway is tried again (up to 20 s) while it does not
    /// print what the page shows: the node reloads a changed file within
    /// its poll period, and starts in the background.
    pub(crate) fn step(&mut self, command: &str, shown: &[String]) {
        let command = self.here(command);
        let shown: Vec<String> = shown.iter().map(|l| self.here(l)).collect();
        if let Some(background) = command.strip_suffix('&') {
            let args: Vec<&str> = background.split_whitespace().collect();
            assert_eq!(args[0], "jisr", "a background command: {command}");
            let proc = Proc::spawn(args[1], jisr().args(&args[1..]).current_dir(&self.dir));
            self.background.push(proc);
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let printed = self.shell(&command);
            let verdict = printed.and_then(|text| matches(&shown, &text).map(|()| text));
            match verdict {
                Ok(_) => return,
                Err(_) if command.contains("--gateway") && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(why) => panic!(
                    "`{command}`: {why}\nlogs of the background processes:\n{}",
                    self.background
                        .iter()
                        .map(|p| format!("{}:\n{}", p.name, p.logs()))
                        .collect::<String>()
                ),
            }
        }
    }

    /// Runs a command line from the page's directory with the `jisr` under
    /// test first on the PATH; its stdout and stderr, or why it failed.
    pub(crate) fn shell(&self, command: &str) -> Result<String, String> {
        let bin = Path::new(env!("CARGO_BIN_EXE_jisr")).parent().unwrap();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("sh")
            .args(["-c", command])
            .current_dir(&self.dir)
            .env("PATH", path)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            Err(format!("it failed ({}):\n{text}", out.status))
        }
    }
}

/// A shell session (`$ command`, continuation lines ending in `\`, then
/// its output) as (command, expected output lines).
pub(crate) fn session(body: &str) -> Vec<(String, Vec<String>)> {
    let mut steps: Vec<(String, Vec<String>)> = Vec::new();
    let mut continued = false;
    for line in body.lines() {
        if let Some(command) = line.strip_prefix("$ ") {
            steps.push((command.trim_end_matches('\\').to_owned(), Vec::new()));
            continued = line.ends_with('\\');
        } else if let Some((command, output)) = steps.last_mut() {
            if continued {
                command.push_str(line.trim_end_matches('\\'));
                continued = line.ends_with('\\');
            } else {
                output.push(line.to_owned());
            }
        }
    }
    steps
}

/// Whether `printed` is what the page shows: its lines, runs of them
/// separated by `...` (lines left out) each found whole and in order, the
/// first at the start and the last at the end unless `...` stands there.
/// A command the page shows no output for may print anything.
pub(crate) fn matches(shown: &[String], printed: &str) -> Result<(), String> {
    let actual: Vec<&str> = printed.lines().map(str::trim_end).collect();
    let runs: Vec<&[String]> = shown.split(|l| l.trim() == "...").collect();
    let mut at = 0;
    for (i, run) in runs.iter().enumerate() {
        let anchored_start = i == 0;
        let found = (at..=actual.len().saturating_sub(run.len())).find(|&start| {
            run.len() <= actual.len() - start
                && run
                    .iter()
                    .zip(&actual[start..])
                    .all(|(want, got)| want.trim_end() == *got)
        });
        match found {
            Some(start) if !anchored_start || start == 0 => at = start + run.len(),
            _ => {
                return Err(format!(
                    "the page shows\n{}\nbut it printed\n{printed}",
                    run.join("\n")
                ))
            }
        }
    }
    let open_end = runs.last().is_none_or(|run| run.is_empty());
    if !open_end && at != actual.len() {
        return Err(format!(
            "it printed more than the page shows (end with `...` to leave lines out):\n{printed}"
        ));
    }
    Ok(())
}
