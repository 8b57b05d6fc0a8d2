//! The log served as C2SP tlog-tiles (`[audit.tiles]`), black-box: a real
//! gateway with real exchanges (two full tiles and a partial), its tiles
//! fetched over HTTPS and checked by an independent implementation, Go's
//! `golang.org/x/mod/sumdb/tlog` (`tiles_client/main.go`): the root from
//! the tiles is the checkpoint's, every entry of the bundles hashes to its
//! leaf, and inclusion proofs computed from the tiles verify.

use crate::support::checkpoints::checkpoint_at_least;
use crate::support::echo::Echo;
use crate::support::web::console as https;
use crate::support::*;
use http::Method;
use jisr::proto::jisr::audit::v1 as pb;
use jisr::proto::ma::civilstatus::v1::GetBirthRecordRequest;
use pb::audit_client::AuditClient;
use prost::Message as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const BIRTH: &str = "/ma.civilstatus.v1.CivilStatus/GetBirthRecord";

/// The PKI and the three echo providers.
async fn pki_and_echoes() -> (Pki, Vec<Echo>) {
    let pki = Pki::new();
    let mut echoes = Vec::new();
    for agency in ["civil-status", "tax", "health"] {
        echoes.push(Echo::start(&pki.dir, agency).await);
    }
    (pki, echoes)
}

/// `n` exchanges, each for citizen `<tag><i>`, four at a time.
pub(crate) async fn exchanges(addr: &str, pki: &Pki, n: usize, tag: &str) -> Vec<String> {
    let education = channel(addr, &pki.files("education")).await.unwrap();
    let ids: Vec<String> = (0..n).map(|i| format!("{tag}{i:06}")).collect();
    let mut tasks = Vec::new();
    for chunk in ids.chunks(n.div_ceil(4)) {
        let (education, chunk) = (education.clone(), chunk.to_vec());
        tasks.push(tokio::spawn(async move {
            for id in chunk {
                let body = GetBirthRecordRequest { citizen_id: id }.encode_to_vec();
                call_raw(&education, RawCall::new(BIRTH, body, "bac-candidature"))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    ids
}

/// Builds the Go client once per test run (Debian's Go and x/mod, in
/// GOPATH mode: nothing is downloaded); its path.
pub(crate) fn go_client() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tiles_client");
            std::fs::create_dir_all(&dir).unwrap();
            let bin = dir.join("tiles_client");
            let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/tiles_client");
            let out = Command::new("go")
                .args(["build", "-o"])
                .arg(&bin)
                .arg(".")
                .current_dir(&src)
                .env("GO111MODULE", "off")
                .env("GOPATH", "/usr/share/gocode")
                .env("GOCACHE", dir.join("cache"))
                .output()
                .expect(
                    "go (golang-go) and golang-golang-x-mod-dev: scripts/test.sh installs them",
                );
            assert!(out.status.success(), "go build: {out:?}");
            bin
        })
        .clone()
}

/// Runs the Go client against `tiles`; its stdout (`ok size=… root=…`).
pub(crate) fn go_check(
    pki: &Pki,
    tiles: &str,
    verifier: &str,
    bundles: &str,
    prove: &str,
) -> String {
    let out = Command::new(go_client())
        .arg(pki.dir.join("ca.crt"))
        .arg(format!("https://{tiles}"))
        .arg(verifier)
        .arg(pki.root())
        .args([bundles, prove])
        .output()
        .unwrap();
    assert!(out.status.success(), "Go's tlog refused the tiles: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Waits (up to 20 s) until the latest checkpoint covers `size` entries.
async fn checkpoint_of(addr: &str, pki: &Pki, size: u64) -> pb::SignedCheckpoint {
    let mut client = AuditClient::new(channel(addr, &pki.files("cndp")).await.unwrap());
    checkpoint_at_least(&mut client, size, Duration::from_secs(20)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_tlog_verifies_the_tiles_entries_and_inclusion_proofs() {
    let (pki, echoes) = pki_and_echoes().await;
    let up = Upstreams::echoes(&echoes[0], &echoes[1], &echoes[2]);
    let extra = "\n[audit]\ndir = \"tiles-audit\"\ncheckpoint_interval_ms = 100\n[audit.tiles]\nlisten = \"127.0.0.1:0\"\n";
    let (gw, addr) = start_gateway(&pki, "gateway", &gateway_config(&pki, &up, "", extra));
    let tiles = gw.tiles.clone().expect("the tiles listener");
    // 600 entries: level-0 tiles 0 and 1 full, tile 2 partial (88);
    // level 1 partial (2).
    let ids = exchanges(&addr, &pki, 600, "TL").await;
    let cp = checkpoint_of(&addr, &pki, 600).await;
    let ca = pki.dir.join("ca.crt");
    let served = https(&tiles, &ca, Method::GET, "/checkpoint", None, None).await;
    assert_eq!(served.status, 200);
    assert_eq!(served.headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(served.headers["cache-control"], "public, max-age=2");

    // The checkpoint the audit API serves, or a newer one (the gateway's
    // own reads add entries).
    let size: u64 = served.body.lines().nth(1).unwrap().parse().unwrap();
    assert!(size >= cp.size, "{}", served.body);
    if size == cp.size {
        assert_eq!(served.body, cp.note);
    }
    let verifier = std::fs::read_to_string(pki.root().join("tiles-audit/verifier.key")).unwrap();
    let partial = size % 256;
    let bundles = format!("000,001,002.p/{partial}");
    let ok = go_check(
        &pki,
        &tiles,
        verifier.trim(),
        &bundles,
        "0,1,255,256,511,512,599",
    );
    assert!(ok.starts_with(&format!("ok size={size} ")), "{ok}");

    // No bundle holds a citizen identifier used above.
    for name in [
        "bundle-000",
        "bundle-001",
        &format!("bundle-002.p_{partial}"),
    ] {
        let bundle = std::fs::read(pki.root().join(name)).unwrap();
        for id in &ids {
            assert!(
                !bundle.windows(id.len()).any(|w| w == id.as_bytes()),
                "{name} holds citizen id {id}"
            );
        }
    }

    // Full tiles are immutable; what the checkpoint does not cover is not
    // served, nor is anything outside the layout.
    let full = https(&tiles, &ca, Method::GET, "/tile/0/001", None, None).await;
    assert_eq!(full.status, 200);
    assert_eq!(full.headers["content-type"], "application/octet-stream");
    assert_eq!(full.headers["content-length"], "8192");
    assert_eq!(
        full.headers["cache-control"],
        "public, max-age=31536000, immutable"
    );
    for (path, status) in [
        ("/tile/0/003", 404),
        ("/tile/1/000", 404),
        ("/tile/entries/002", 404),
        (&format!("/tile/0/002.p/{}", partial + 1) as &str, 404),
        ("/tile/0/1", 404),
        ("/tile/0/x000/001", 404),
        ("/entries", 404),
    ] {
        let answer = https(&tiles, &ca, Method::GET, path, None, None).await;
        assert_eq!(answer.status, status, "{path}: {}", answer.body);
        assert!(!answer.body.is_empty(), "{path}: says why");
    }
    let post = https(&tiles, &ca, Method::POST, "/checkpoint", None, Some("x")).await;
    assert_eq!(post.status, 405);
    gw.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiles_are_off_unless_configured() {
    let (pki, echoes) = pki_and_echoes().await;
    let up = Upstreams::echoes(&echoes[0], &echoes[1], &echoes[2]);
    let (gw, _) = start_gateway(&pki, "gateway", &gateway_config(&pki, &up, "", ""));
    assert_eq!(gw.tiles, None);
}
