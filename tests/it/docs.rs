//! The documentation, run: every block of `README.md` and
//! `docs/onboarding.md` is either run here, against the `jisr` binary and
//! real gateways, or marked (by its info string, see [`runner`]) as meant
//! for another machine or language, so the pages cannot drift from the
//! code unnoticed.

pub(crate) mod runner;

use crate::support::echo::Echo;
use crate::support::proc::{jisr, wait_for_file, Proc};
use runner::{free_addr, Runner, SKIPPED};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The fenced blocks of a Markdown text: (info string, body).
pub(crate) fn blocks(markdown: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in markdown.lines() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(info)) => open = Some((info.trim().to_owned(), String::new())),
            (Some(_), Some(_)) => found.extend(open.take()),
            (Some((_, body)), None) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    found
}

/// The one block whose body contains `needle`.
pub(crate) fn block<'a>(all: &'a [(String, String)], needle: &str) -> &'a str {
    let matching: Vec<_> = all.iter().filter(|(_, b)| b.contains(needle)).collect();
    assert_eq!(matching.len(), 1, "blocks with {needle:?}: {matching:#?}");
    &matching[0].1
}

/// The onboarding guide from a fresh directory to a tested connection,
/// exactly as written: every block in order, the agency's back-end (the
/// `sh agency` block, on the fund's machine) played by an echo provider
/// with the certificate `agency add` issued, at the address the guide
/// gives it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_onboarding_guide_runs_as_written() {
    let guide = blocks(&read(&repo().join("docs/onboarding.md")));
    let node = tempfile::tempdir().unwrap();
    let mut run = Runner::new(node.path());
    let backend = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let backend_addr = backend.local_addr().unwrap().to_string();
    run.addresses = vec![
        ("127.0.0.1:8443".into(), free_addr()),
        ("127.0.0.1:9443".into(), backend_addr),
    ];
    let mut backend = Some(backend);
    let mut echo = None;
    let mut played = Vec::new();
    for (info, body) in &guide {
        run.block(info, body, &mut |info, _| played.push(info.to_owned()));
        if info == "sh agency" && body.contains("coverage_provider.py") {
            let listener = backend.take().expect("the back-end starts once");
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let pki = node.path().join("pki");
            echo = Some(Echo::start_on(&pki, "social-security", listener).await);
        }
    }
    assert!(echo.is_some(), "the guide starts the fund's back-end");
    // What was not run is marked so, never left out by accident.
    for info in ["sh agency", "text"] {
        assert!(played.iter().any(|p| p == info), "no ```{info} block");
    }
}

/// The guide's page per stack (`docs/stacks.md`) has a block for each
/// stack, each marked with its language (none is for the gateway's
/// machine), and its Python, Java and Go lines are the test suite's
/// providers and consumers in those stacks, which run through a gateway
/// (`python.rs`, `java.rs`, `golang.rs`).
#[test]
fn the_onboarding_guides_python_is_the_tested_python() {
    let guide = blocks(&read(&repo().join("docs/stacks.md")));
    for (info, body) in &guide {
        assert!(
            ["python", "java", "go", "csharp"].contains(&info.as_str()),
            "docs/stacks.md has a ```{info} block:\n{body}"
        );
    }
    for info in ["python", "java", "go", "csharp"] {
        assert!(guide.iter().any(|(i, _)| i == info), "no ```{info} block");
    }
    let tested = [
        (
            "python",
            "Python",
            "python/coverage_consumer.py",
            "python/coverage_provider.py",
        ),
        ("go", "Go", "go/consumer/main.go", "go/provider/main.go"),
        ("java", "Java", "java/Consumer.java", "java/Provider.java"),
    ];
    for (info, stack, consumer, provider) in tested {
        let sources = [consumer, provider].map(|name| read(&repo().join("tests/it").join(name)));
        let lines: Vec<&str> = sources
            .iter()
            .flat_map(|s| s.lines())
            .map(str::trim)
            .collect();
        for (_, body) in guide.iter().filter(|(i, _)| i == info) {
            for line in body.lines().map(str::trim).filter(|l| !l.is_empty()) {
                assert!(
                    lines.contains(&line),
                    "the guide's {stack} line\n  {line}\nis in neither tests/it/{consumer} nor tests/it/{provider}"
                );
            }
        }
    }
}

/// Every README block is run by a test below or marked as not run.
#[test]
fn every_readme_block_is_run_or_marked() {
    let readme = blocks(&read(&repo().join("README.md")));
    let run_here = [WALKTHROUGH, BY_HAND];
    for (info, body) in &readme {
        let ran = info == "sh" && run_here.iter().any(|needle| body.contains(needle));
        assert!(
            ran || SKIPPED.contains(&info.as_str()),
            "README block ```{info} is neither run by tests/it/docs.rs nor marked as one of {SKIPPED:?}:\n{body}"
        );
    }
}

/// The needles of the README blocks run here.
const WALKTHROUGH: &str = "demo --serve --dir /tmp/x &";
const BY_HAND: &str = "$J serve --config config/example.toml";

/// The README's "run the example configuration by hand": the PKI, the
/// three sample providers, `check-config` and `serve`, in a copy of the
/// repository's layout and on ports the test picked; then a probe as
/// `education` shows every step ok (the gateway up, the providers reached).
#[test]
fn the_readme_example_configuration_runs_by_hand() {
    let readme = blocks(&read(&repo().join("README.md")));
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &repo().join("proto/agencies"),
        &dir.path().join("proto/agencies"),
    );
    let mut run = Runner::new(dir.path());
    run.addresses = [
        "127.0.0.1:8443",
        "127.0.0.1:9101",
        "127.0.0.1:9102",
        "127.0.0.1:9103",
    ]
    .map(|page| (page.to_owned(), free_addr()))
    .to_vec();
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    let example = run.here(&read(&repo().join("config/example.toml")));
    std::fs::write(dir.path().join("config/example.toml"), example).unwrap();
    for line in script(block(&readme, BY_HAND)) {
        match line.as_str() {
            // The binary under test is built already.
            "cargo build" | "J=./target/debug/jisr" => {}
            // The README runs it in the foreground, last.
            serve if serve.starts_with("$J serve") => {
                run.step(&format!("jisr {}&", &serve[3..]), &[])
            }
            _ => run.step(&line.replace("$J", "jisr"), &[]),
        }
    }
    run.step(
        "jisr probe --gateway 127.0.0.1:8443 --pki config/pki --as education",
        &[
            "...".into(),
            "ok    call         grpc.health.v1.Health/Check: SERVING".into(),
            "...".into(),
        ],
    );
}

/// A script's command lines, continuations (a trailing `\`) joined.
fn script(body: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut continued = false;
    for line in body.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let text = line.trim_end_matches('\\');
        match lines.last_mut() {
            Some(last) if continued => last.push_str(text),
            _ => lines.push(text.to_owned()),
        }
        continued = line.ends_with('\\');
    }
    lines
}

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The README's walk through a `jisr demo --serve` network: its commands,
/// run against a real one (the demo started as the README starts it; the
/// README's waits replaced by waiting for what they wait for).
#[test]
fn the_readme_demo_walkthrough_runs_as_written() {
    let readme = blocks(&read(&repo().join("README.md")));
    let walk = block(&readme, WALKTHROUGH);
    let tmp = tempfile::tempdir().unwrap();
    let run = Runner::new(tmp.path());
    let dir = tmp.path().join("x");
    let here = |line: &str| {
        line.replace("$J", "jisr")
            .replace("/tmp/x", dir.to_str().unwrap())
    };
    let mut demo: Option<Proc> = None;
    for line in walk.lines() {
        let command = here(line.split("   #").next().unwrap().trim());
        if let Some(args) = command.strip_prefix("jisr demo ") {
            let args = args.trim_end_matches('&').split_whitespace();
            let proc = Proc::spawn("demo", jisr().arg("demo").args(args));
            wait_for_file(&dir.join("consent.id"), &proc);
            demo = Some(proc);
        } else if command.starts_with("jisr audit prove") {
            // The README waits a second for a checkpoint; poll for it.
            let deadline = Instant::now() + Duration::from_secs(15);
            while let Err(text) = run.shell(&command) {
                assert!(text.contains("checkpoint"), "{text}");
                assert!(Instant::now() < deadline, "{text}");
                std::thread::sleep(Duration::from_millis(100));
            }
        } else if command.starts_with("kill") {
            let status = demo.as_mut().expect("the demo runs").terminate();
            assert!(status.success(), "{status:?}");
        } else if command.starts_with("jisr ") {
            let printed = run
                .shell(&command)
                .unwrap_or_else(|e| panic!("`{command}`: {e}"));
            if command.starts_with("jisr audit verify") {
                assert!(printed.contains("OK:"), "{printed}");
            }
        }
    }
    assert!(demo.is_some(), "the walkthrough starts the demo");
    assert!(dir.join("receipt-0.json").is_file());
}

/// The README's sample demo output is what `jisr demo` prints now, ports,
/// times, ids and timing-dependent counts aside: the block between the
/// `demo-output` markers is regenerated by `scripts/readme-demo.sh`.
#[test]
fn the_readme_demo_output_is_a_real_run() {
    let readme = read(&repo().join("README.md"));
    let (_, rest) = readme
        .split_once("<!-- demo-output:begin -->\n```text\n")
        .expect("README.md has the demo-output markers");
    let (shown, _) = rest
        .split_once("```\n<!-- demo-output:end -->")
        .expect("README.md's demo output block ends at its marker");
    let out = jisr().arg("demo").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let fresh = String::from_utf8(out.stdout).unwrap();
    let (shown, fresh) = (normalise(shown), normalise(&fresh));
    if let Some((i, (a, b))) = shown
        .lines()
        .zip(fresh.lines())
        .enumerate()
        .find(|(_, (a, b))| a != b)
    {
        panic!("README.md's demo output is not what `jisr demo` prints now (line {}):\n  README: {a}\n  run:    {b}\nrun `bash scripts/readme-demo.sh` to regenerate it, and commit README.md", i + 1);
    }
    assert_eq!(
        shown.lines().count(),
        fresh.lines().count(),
        "README.md's demo output and `jisr demo` differ in length; run `bash scripts/readme-demo.sh` to regenerate it, and commit README.md\nrun:\n{fresh}"
    );
}

/// What changes from run to run, replaced: `127.0.0.1:<port>`, `<time>`
/// (RFC 3339), `<id>` (32 hex digits: request and consent ids), and the
/// number of checkpoints signed (one a second, so as many as the run took
/// seconds). The bus delivers an event to its subscribers concurrently, so
/// which delivery lands first in the log varies: the demo prints them by
/// subscriber, and their lines are compared, in that order, without their
/// log index.
fn normalise(text: &str) -> String {
    let lines: Vec<String> = text
        .lines()
        .map(|line| match line.split_once(" signed checkpoints") {
            Some((before, after)) => {
                let count = before.trim_end_matches(|c: char| c.is_ascii_digit());
                normalise_line(&format!("{count}<n> signed checkpoints{after}"))
            }
            None if line.contains("EVENT_DELIVERED") => without_index(&normalise_line(line)),
            None => normalise_line(line),
        })
        .collect();
    lines.join("\n")
}

/// An audit listing's line with its second column (the log index) as `<n>`.
fn without_index(line: &str) -> String {
    let indent = line.len() - line.trim_start().len();
    let mut fields = line.trim_start().splitn(2, char::is_whitespace);
    let node = fields.next().unwrap_or_default();
    let rest = fields.next().unwrap_or_default().trim_start();
    let after = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    format!("{}{node} <n>{after}", &line[..indent])
}

fn normalise_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("127.0.0.1:") {
            rest = after.trim_start_matches(|c: char| c.is_ascii_digit());
            out.push_str("127.0.0.1:<port>");
        } else if is_time(rest) {
            let end = rest.find('Z').map_or(rest.len(), |z| z + 1);
            rest = &rest[end..];
            out.push_str("<time>");
        } else if c.is_ascii_hexdigit() {
            let end = rest
                .find(|c: char| !c.is_ascii_hexdigit())
                .unwrap_or(rest.len());
            let run = &rest[..end];
            out.push_str(if run.len() == 32 { "<id>" } else { run });
            rest = &rest[end..];
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// Whether `s` starts with `YYYY-MM-DDT`.
fn is_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() > 11
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
}
