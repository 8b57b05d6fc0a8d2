//! The onboarding guide, run: its contract, its commands and its
//! configuration blocks are taken from `docs/onboarding.md` (and the PKI
//! command from the README) and run, in a fresh directory laid out like
//! the repository's example, against the `jisr` binary and a real gateway.
//! The outputs the guide shows must be what the commands print, so the
//! guide cannot drift from the code unnoticed.

use crate::support::echo::Echo;
use crate::support::proc::{jisr, wait_for_file, Proc};
use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Command;
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

/// A shell session (`$ command`, continuation lines ending in `\`, then
/// its output) as (command, expected output lines).
fn session(body: &str) -> Vec<(String, Vec<String>)> {
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

/// Runs a command line as the guide's reader would, from `dir`, with the
/// `jisr` under test first on the PATH; returns its stdout and stderr.
fn shell(dir: &Path, command: &str) -> String {
    try_shell(dir, command).unwrap_or_else(|text| panic!("`{command}` failed:\n{text}"))
}

/// [`shell`], a failure being the command's output.
fn try_shell(dir: &Path, command: &str) -> Result<String, String> {
    let bin = Path::new(env!("CARGO_BIN_EXE_jisr")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("sh")
        .args(["-c", command])
        .current_dir(dir)
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
        Err(text)
    }
}

/// Every line the guide shows is printed, in order; `...` stands for
/// lines the guide leaves out.
fn assert_shown(command: &str, expected: &[String], actual: &str) {
    let mut rest = actual.lines();
    for line in expected.iter().filter(|l| l.trim() != "...") {
        assert!(
            rest.any(|a| a.trim_end() == line.trim_end()),
            "`{command}`: the guide shows\n  {line}\nbut the command printed:\n{actual}"
        );
    }
}

fn copy_dir(from: &Path, to: &Path) {
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

/// A directory like the repository's: `config/jisr.toml` (the example
/// configuration), `proto/agencies/` (the sample contracts) and the PKI
/// made by the README's `pki init` command.
fn example_node(readme: &[(String, String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &repo().join("proto/agencies"),
        &dir.path().join("proto/agencies"),
    );
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    std::fs::copy(
        repo().join("config/example.toml"),
        dir.path().join("config/jisr.toml"),
    )
    .unwrap();
    let by_hand = block(readme, "pki init --dir config/pki");
    let init: String = by_hand
        .split("\n$J ")
        .find(|c| c.starts_with("pki init"))
        .unwrap()
        .lines()
        .take_while(|l| !l.starts_with("$J"))
        .map(|l| l.trim_end_matches('\\'))
        .collect();
    shell(dir.path(), &format!("jisr {init}"));
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_onboarding_guide_runs_as_written() {
    let guide = blocks(&read(&repo().join("docs/onboarding.md")));
    let readme = blocks(&read(&repo().join("README.md")));
    let node = example_node(&readme);
    let root = node.path();
    let config = root.join("config/jisr.toml");

    // 1. The contract, where the guide puts it.
    let contract = block(&guide, "package ma.socialsecurity.v1;");
    let contract_path = root.join("proto/agencies/socialsecurity/v1/coverage.proto");
    std::fs::create_dir_all(contract_path.parent().unwrap()).unwrap();
    std::fs::write(&contract_path, contract).unwrap();

    // 2. `jisr agency add`, whose whole output the guide shows.
    for (command, output) in session(block(&guide, "$ jisr agency add social-security")) {
        let printed = shell(root, &command);
        assert_eq!(
            printed.lines().collect::<Vec<_>>(),
            output,
            "`{command}` printed:\n{printed}"
        );
    }
    // Then the purpose and the rule of the configuration block (its
    // [[agency]] is what `agency add` wrote).
    let by_hand = block(&guide, "id = \"social-security\"");
    let mut text = read(&config);
    for table in by_hand.split("\n\n").filter(|t| !t.contains("[[agency]]")) {
        text.push_str(&format!("\n{table}\n"));
    }
    std::fs::write(&config, &text).unwrap();

    // 3. check-config and catalog print what the guide shows.
    for (command, output) in session(block(&guide, "$ jisr check-config config/jisr.toml")) {
        assert_shown(&command, &output, &shell(root, &command));
    }

    // 4. Renewing the certificate with the development PKI.
    let issue = block(
        &guide,
        "jisr pki issue --dir config/pki --agency social-security",
    );
    shell(root, issue.trim());

    // A real gateway with this configuration, the fund's back-end an echo.
    let backend = Echo::start(&root.join("config/pki"), "social-security").await;
    let serving = read(&config).replace(
        "upstream = \"10.0.4.21:9443\"",
        &format!("upstream = \"{}\"", backend.addr),
    );
    std::fs::write(&config, serving).unwrap();
    let gateway = Gateway::start("guide", &config);
    let education = jisr::tls::TlsFiles::for_agency(&root.join("config/pki"), "education");
    let client = channel(&gateway.addr, &education).await.unwrap();
    let body = b"\x0a\x08AB123456".to_vec();
    let coverage = "/ma.socialsecurity.v1.Coverage/GetCoverage";
    let (echoed, md) = call_raw(
        &client,
        RawCall::new(coverage, body.clone(), "school-grant"),
    )
    .await
    .unwrap();
    assert_eq!(&echoed[..], &body[..]);
    assert_eq!(md.get("jisr-basis").unwrap(), "law:65-00");
    // "here `education` may not call `ListReimbursements`"
    let listing = "/ma.socialsecurity.v1.Coverage/ListReimbursements";
    let (_, reason, _) =
        framed_status(call_raw(&client, RawCall::new(listing, body, "school-grant")).await);
    assert_eq!(reason, "ACCESS_DENIED");
}

/// The README's walk through a `jisr demo --serve` network: its commands,
/// run against a real one (the demo started as the README starts it; the
/// README's waits replaced by waiting for what they wait for).
#[test]
fn the_readme_demo_walkthrough_runs_as_written() {
    let readme = blocks(&read(&repo().join("README.md")));
    let walk = block(&readme, "demo --serve --dir /tmp/x &");
    let tmp = tempfile::tempdir().unwrap();
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
            while let Err(text) = try_shell(tmp.path(), &command) {
                assert!(text.contains("checkpoint"), "{text}");
                assert!(Instant::now() < deadline, "{text}");
                std::thread::sleep(Duration::from_millis(100));
            }
        } else if command.starts_with("kill") {
            let status = demo.as_mut().expect("the demo runs").terminate();
            assert!(status.success(), "{status:?}");
        } else if command.starts_with("jisr ") {
            let printed = shell(tmp.path(), &command);
            if command.starts_with("jisr audit verify") {
                assert!(printed.contains("OK:"), "{printed}");
            }
        }
    }
    assert!(demo.is_some(), "the walkthrough starts the demo");
    assert!(dir.join("receipt-0.json").is_file());
}
