//! The files under `deploy/`: every configuration passes `jisr check-config`
//! as the node would read it in its container (paths mapped to a PKI made by
//! `jisr pki`), writes only where its container has a writable volume, and
//! the Kubernetes manifests pass a schema validator from PyPI.

use crate::support::jisr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Kubernetes version whose schemas the manifests are checked against.
const KUBERNETES_VERSION: &str = "1.33.0";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = repo().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `jisr.toml: |` block of the ConfigMap, unindented.
fn configmap_config() -> String {
    let yaml = read("deploy/kubernetes/configmap.yaml");
    let mut lines = yaml.lines().skip_while(|l| l.trim() != "jisr.toml: |");
    let header = lines
        .next()
        .expect("configmap.yaml has no `jisr.toml: |` block");
    let indent = header.len() - header.trim_start().len() + 2;
    let body: Vec<&str> = lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() >= indent)
        .map(|l| l.get(indent..).unwrap_or(""))
        .collect();
    assert!(body.len() > 10, "the ConfigMap's jisr.toml looks empty");
    body.join("\n") + "\n"
}

/// The mount paths of `container` (under `containers:`) in `manifest` that
/// are not read-only: the items of its first `volumeMounts:` list.
fn writable_mounts(manifest: &str, container: &str) -> Vec<String> {
    let indent = |l: &str| l.len() - l.trim_start().len();
    let start = format!("- name: {container}");
    let lines: Vec<&str> = manifest.lines().collect();
    let containers = lines.iter().position(|l| l.trim() == "containers:");
    let containers = containers.expect("no `containers:` in the manifest");
    let at = lines[containers..].iter().position(|l| l.trim() == start);
    let at = containers + at.unwrap_or_else(|| panic!("no container {container}"));
    let mounts_at = lines[at..].iter().position(|l| l.trim() == "volumeMounts:");
    let mounts_at = at + mounts_at.expect("the container has no volumeMounts");
    let list_indent = indent(lines[mounts_at]);
    let mut mounts: Vec<(String, bool)> = Vec::new();
    for line in &lines[mounts_at + 1..] {
        let t = line.trim();
        if !t.is_empty() && indent(line) <= list_indent && !t.starts_with("- ") {
            break;
        }
        if t.starts_with("- name: ") {
            mounts.push((String::new(), false));
        } else if let Some(path) = t.strip_prefix("mountPath: ") {
            mounts.last_mut().expect("mountPath outside a mount").0 = path.to_owned();
        } else if t == "readOnly: true" {
            mounts.last_mut().expect("readOnly outside a mount").1 = true;
        }
    }
    assert!(
        !mounts.is_empty(),
        "no volumeMounts for container {container}"
    );
    mounts.into_iter().filter(|m| !m.1).map(|m| m.0).collect()
}

/// The paths the node writes, as its config names them. Each must be
/// written out: a default would be relative to the config's directory,
/// which is on the read-only root file system.
fn written_paths(config: &str) -> Vec<String> {
    let doc: toml::Table = toml::from_str(config).expect("config parses as TOML");
    let get = |section: &str, key: &str| {
        doc.get(section)
            .and_then(|s| s.get(key))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let mut paths = Vec::new();
    for (section, key) in [
        ("audit", "dir"),
        ("audit", "signing_key"),
        ("consent", "path"),
        ("bus", "path"),
    ] {
        let path = get(section, key).unwrap_or_else(|| {
            panic!("[{section}] {key} is not set: its default lies beside the config, on the read-only root")
        });
        paths.push(path);
    }
    paths.extend(get("audit", "archive_dir"));
    paths
}

fn assert_under(paths: &[String], mounts: &[String], what: &str) {
    for path in paths {
        let ok = mounts
            .iter()
            .any(|m| Path::new(path).starts_with(m) && Path::new(path) != Path::new(m));
        assert!(
            ok,
            "{what}: `{path}` is not under a writable mount {mounts:?}"
        );
    }
}

/// A PKI as the operator makes it: `jisr pki init`, then one certificate per
/// replica with `jisr pki issue --gateway-node`.
fn pki(dir: &Path, replica: &str) {
    let init = jisr()
        .args(["pki", "init", "--trust-domain", "interop.gov.ma"])
        .args(["--agency", "civil-status,tax,health,education,portal"])
        .args(["--gateway-node", "gw-1", "--dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(init.status.success(), "pki init: {init:?}");
    let issue = jisr()
        .args(["pki", "issue", "--gateway-node", replica, "--dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(issue.status.success(), "pki issue: {issue:?}");
    assert!(dir.join(format!("gateway-{replica}.crt")).exists());
}

/// Runs `jisr check-config` on `config` after `replace`ments (container
/// path → test path), with `env` set; asserts it passes.
fn check(tmp: &Path, name: &str, config: &str, replace: &[(&str, String)], env: &[(&str, &str)]) {
    let mut text = config.to_owned();
    for (from, to) in replace {
        assert!(
            text.contains(from),
            "{name}: expected `{from}` in the config"
        );
        text = text.replace(from, to);
    }
    let path = tmp.join(name);
    std::fs::write(&path, &text).unwrap();
    let mut cmd = jisr();
    cmd.arg("check-config")
        .arg(&path)
        .env_remove("JISR_NODE_ID");
    cmd.envs(env.iter().copied());
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{name} fails check-config:\n{}{}\n--- as checked:\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn kubernetes_configmap_config_passes_check_config_as_pod_jisr_0() {
    let tmp = tempfile::tempdir().unwrap();
    let pki_dir = tmp.path().join("pki");
    pki(&pki_dir, "jisr-0");
    let config = configmap_config();
    let p = |f: &str| pki_dir.join(f).display().to_string();
    let state = tmp.path().join("state").display().to_string();
    let keys = tmp.path().join("keys").display().to_string();
    // The pod's id is its kernel host name; here the test's machine has
    // another, so the same id reaches the node through `id_from = "env"`.
    let replace = [
        ("id_from = \"hostname\"", "id_from = \"env\"".to_owned()),
        ("/etc/jisr/tls/ca.crt", p("ca.crt")),
        ("/etc/jisr/tls/gateway.crt", p("gateway-jisr-0.crt")),
        ("/etc/jisr/tls/gateway.key", p("gateway-jisr-0.key")),
        (
            "/usr/share/jisr/proto",
            crate::support::proto_dir().display().to_string(),
        ),
        ("/var/lib/jisr", state),
        ("/etc/jisr/keys", keys),
    ];
    check(
        tmp.path(),
        "k8s.toml",
        &config,
        &replace,
        &[("JISR_NODE_ID", "jisr-0")],
    );
}

#[test]
fn kubernetes_pods_write_only_on_their_volume() {
    let config = configmap_config();
    let manifest = read("deploy/kubernetes/statefulset.yaml");
    assert!(manifest.contains("readOnlyRootFilesystem: true"));
    assert!(manifest.contains("runAsUser: 10001") && manifest.contains("runAsNonRoot: true"));
    let mounts = writable_mounts(&manifest, "jisr");
    assert_eq!(mounts, ["/var/lib/jisr"], "the gateway's writable mounts");
    assert!(
        manifest.contains("- metadata:\n        name: state"),
        "/var/lib/jisr is a per-replica volume claim"
    );
    assert_under(&written_paths(&config), &mounts, "configmap.yaml");
}

#[test]
fn single_node_config_passes_check_config_and_writes_under_var_lib() {
    let tmp = tempfile::tempdir().unwrap();
    let pki_dir = tmp.path().join("pki");
    pki(&pki_dir, "jisr-0");
    let config = read("deploy/config/jisr.toml");
    let p = |f: &str| pki_dir.join(f).display().to_string();
    let replace = [
        ("/etc/jisr/pki/ca.crt", p("ca.crt")),
        ("/etc/jisr/pki/gateway.crt", p("gateway.crt")),
        ("/etc/jisr/pki/gateway.key", p("gateway.key")),
        (
            "/usr/share/jisr/proto",
            crate::support::proto_dir().display().to_string(),
        ),
        (
            "/var/lib/jisr",
            tmp.path().join("state").display().to_string(),
        ),
    ];
    check(tmp.path(), "single.toml", &config, &replace, &[]);
    // The systemd unit's only writable path (ProtectSystem=strict).
    let unit = read("deploy/systemd/jisr.service");
    assert!(unit.contains("ReadWritePaths=/var/lib/jisr\n"));
    assert_under(
        &written_paths(&config),
        &["/var/lib/jisr".to_owned()],
        "config/jisr.toml",
    );
}

/// `scripts/test.sh` installs the validator into `target/venv`.
fn kubernetes_validate() -> Command {
    let tool = repo().join("target/venv/bin/kubernetes-validate");
    assert!(
        tool.exists(),
        "{} is missing: run the test command, scripts/test.sh (README), which installs \
         kubernetes-validate from PyPI into target/venv",
        tool.display()
    );
    let mut cmd = Command::new(tool);
    cmd.args(["--strict", "--kubernetes-version", KUBERNETES_VERSION]);
    cmd
}

#[test]
fn kubernetes_manifests_pass_strict_schema_validation() {
    let dir = repo().join("deploy/kubernetes");
    let kustomization = read("deploy/kubernetes/kustomization.yaml");
    let mut files = vec![dir.join("secret.yaml")];
    for line in kustomization.lines() {
        if let Some(file) = line.trim().strip_prefix("- ") {
            files.push(dir.join(file));
        }
    }
    // Every manifest in the directory is listed (or is the Secret template).
    let mut on_disk: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| !p.ends_with("kustomization.yaml"))
        .collect();
    on_disk.sort();
    let mut listed = files.clone();
    listed.sort();
    assert_eq!(listed, on_disk, "kustomization.yaml lists every manifest");
    let out = kubernetes_validate().args(&files).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kubernetes-validate:\n{text}");
    assert!(text.contains("statefulset/jisr"), "{text}");

    // The validator does reject what Kubernetes would: an unknown field.
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.yaml");
    let pdb = read("deploy/kubernetes/pdb.yaml");
    std::fs::write(
        &bad,
        pdb.replace(
            "maxUnavailable: 1",
            "maxUnavailable: 1\n  maxUnavaliable: 1",
        ),
    )
    .unwrap();
    let out = kubernetes_validate().arg(&bad).output().unwrap();
    assert!(!out.status.success(), "a misspelt field passes: {out:?}");
}

#[test]
fn compose_replicas_config_passes_check_config_and_writes_on_their_volumes() {
    let compose = read("deploy/compose.yaml");
    // Every config compose mounts is one this module checks.
    for line in compose
        .lines()
        .filter(|l| l.contains(":/etc/jisr/jisr.toml"))
    {
        let ok = line.contains("./config/replicas.toml:") || line.contains("./config/jisr.toml:");
        assert!(ok, "compose.yaml mounts a config no test checks: {line}");
    }
    for n in 0..3 {
        let mount = format!("- state-{n}:/var/lib/jisr");
        assert!(compose.contains(&mount), "jisr-{n} has no `{mount}`");
    }
    let tmp = tempfile::tempdir().unwrap();
    let pki_dir = tmp.path().join("pki");
    pki(&pki_dir, "jisr-0");
    let config = read("deploy/config/replicas.toml");
    let p = |f: &str| pki_dir.join(f).display().to_string();
    let replace = [
        ("/etc/jisr/pki/ca.crt", p("ca.crt")),
        ("/run/jisr/gateway.crt", p("gateway-jisr-0.crt")),
        ("/run/jisr/gateway.key", p("gateway-jisr-0.key")),
        (
            "/usr/share/jisr/proto",
            crate::support::proto_dir().display().to_string(),
        ),
        (
            "/var/lib/jisr",
            tmp.path().join("state").display().to_string(),
        ),
        (
            "/etc/jisr/keys",
            tmp.path().join("keys").display().to_string(),
        ),
    ];
    let env = [("JISR_NODE_ID", "jisr-0")];
    check(tmp.path(), "replicas.toml", &config, &replace, &env);
    assert_under(
        &written_paths(&config),
        &["/var/lib/jisr".to_owned()],
        "config/replicas.toml",
    );
}

/// The `witness.toml: |` block of the witness's ConfigMap, unindented.
fn witness_configmap_config(yaml: &str) -> String {
    let mut lines = yaml.lines().skip_while(|l| l.trim() != "witness.toml: |");
    let header = lines.next().expect("no `witness.toml: |` block");
    let indent = header.len() - header.trim_start().len() + 2;
    let body: Vec<&str> = lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() >= indent)
        .map(|l| l.get(indent..).unwrap_or(""))
        .collect();
    body.join("\n") + "\n"
}

/// The witness's files (docs/witness.md): the Kubernetes manifest passes
/// the schema validator and runs one pod only; its ConfigMap's config and
/// the template loads as `jisr witness` reads it, writing only under the
/// pod's volume and the unit's state directory.
#[test]
fn witness_deployment_files_validate_and_their_configs_load() {
    use jisr::witness::WitnessConfig;
    let manifest = read("deploy/witness/kubernetes.yaml");
    let out = kubernetes_validate()
        .arg(repo().join("deploy/witness/kubernetes.yaml"))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kubernetes-validate:\n{text}");
    assert!(text.contains("statefulset/jisr-witness"), "{text}");
    assert!(
        manifest.contains("  replicas: 1\n"),
        "one witness pod, never more"
    );

    let mounts = writable_mounts(&manifest, "witness");
    let pod = WitnessConfig::parse(&witness_configmap_config(&manifest), Path::new("/")).unwrap();
    assert_under(
        &[
            pod.key.display().to_string(),
            pod.state_dir.display().to_string(),
        ],
        &mounts,
        "the witness pod",
    );
    assert!(manifest.contains("mountPath: /etc/jisr-witness/tls"));
    assert!(pod.tls_cert.starts_with("/etc/jisr-witness/tls"));

    let template = read("deploy/witness/witness.toml");
    let host = WitnessConfig::parse(&template, Path::new("/etc/jisr-witness")).unwrap();
    let unit = read("deploy/witness/jisr-witness.service");
    assert!(unit.contains("--config /etc/jisr-witness/witness.toml"));
    assert_under(
        &[
            host.key.display().to_string(),
            host.state_dir.display().to_string(),
        ],
        &["/var/lib/jisr-witness".to_owned()],
        "the systemd unit (ReadWritePaths)",
    );
    assert!(unit.contains("ReadWritePaths=/var/lib/jisr-witness\n"));
}
