//! The gateway's witnesses (`[[audit.witness]]`), black-box: real `jisr
//! witness` processes over HTTPS, a real mutual-TLS gateway, real calls.
//! Checkpoints get cosigned by both witnesses and served with their
//! cosignatures, receipts carry them and `check-receipt --trust` checks
//! them; a witness down never stops the calls, its lag shows and it catches
//! up when it returns; a second log with the same key but another tree is
//! refused by the witness, and the gateway says so.

use crate::support::admin::{get, wait_metric};
use crate::support::checkpoints::checkpoint_until;
use crate::support::echo::Echo;
use crate::support::proc::{jisr, wait_for_file, Proc};
use crate::support::*;
use jisr::audit::note::{CosignatureVerifier, NoteSigner};
use jisr::proto::jisr::audit::v1 as pb;
use pb::audit_client::AuditClient;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A `jisr witness serve` process of its own directory.
struct Witness {
    proc: Proc,
    config: PathBuf,
    addr: String,
    verifier: CosignatureVerifier,
}

impl Witness {
    /// A witness named `name` of the log signed by `log`, with the PKI's
    /// gateway certificate for its HTTPS (its CA is the PKI's).
    fn start(pki: &Pki, name: &str, log: &NoteSigner) -> Self {
        let dir = pki.root().join(format!("witness-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("witness.toml");
        let text = format!(
            "name = \"{name}.ma/witness\"\nlisten = \"127.0.0.1:0\"\nkey = \"witness.key\"\nstate_dir = \"state\"\n\
             [tls]\ncert = \"{pki}/gateway.crt\"\nkey = \"{pki}/gateway.key\"\n[[log]]\nverifier = \"{}\"\n",
            log.verifier().to_text(),
            pki = pki.dir.display(),
        );
        std::fs::write(&config, text).unwrap();
        let out = jisr()
            .args(["witness", "verifier", "--config", config.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let verifier =
            CosignatureVerifier::from_text(String::from_utf8(out.stdout).unwrap().trim()).unwrap();
        let (proc, addr) = serve(&config);
        Witness {
            proc,
            config,
            addr,
            verifier,
        }
    }

    /// Kills it, then starts it again on the same port with its state.
    fn kill(&mut self) {
        self.proc.kill();
    }

    fn restart(&mut self) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let pinned = text.replace("127.0.0.1:0", &self.addr);
        std::fs::write(&self.config, pinned).unwrap();
        let (proc, addr) = serve(&self.config);
        assert_eq!(addr, self.addr);
        self.proc = proc;
    }

    fn section(&self, name: &str, pki: &Pki) -> String {
        format!(
            "\n[[audit.witness]]\nname = \"{name}\"\nurl = \"https://{}\"\nverifier_key = \"{}\"\nca = \"{}/ca.crt\"\n",
            self.addr,
            self.verifier.to_text(),
            pki.dir.display()
        )
    }
}

fn serve(config: &Path) -> (Proc, String) {
    let addr_file = config.with_file_name("addr");
    let _ = std::fs::remove_file(&addr_file);
    let proc = Proc::spawn(
        "witness",
        jisr().args([
            "witness",
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--addr-file",
            addr_file.to_str().unwrap(),
        ]),
    );
    let addr = wait_for_file(&addr_file, &proc);
    (proc, addr)
}

/// The PKI, the providers, and the log's signing key made before the
/// gateway starts, so the witnesses can be told its verifier key.
struct Setup {
    pki: Pki,
    echoes: Vec<Echo>,
    signer: NoteSigner,
}

impl Setup {
    async fn new() -> Self {
        let pki = Pki::new();
        let signer = NoteSigner::generate(&format!("{DOMAIN}/jisr/gw-1")).unwrap();
        std::fs::write(
            pki.root().join("gateway-audit.key"),
            signer.to_secret_text(),
        )
        .unwrap();
        let mut echoes = Vec::new();
        for agency in ["civil-status", "tax", "health"] {
            echoes.push(Echo::start(&pki.dir, agency).await);
        }
        Setup {
            pki,
            echoes,
            signer,
        }
    }

    /// The gateway config with its log in `dir` and these witnesses.
    fn config(&self, dir: &str, audit: &str) -> String {
        let up = Upstreams::echoes(&self.echoes[0], &self.echoes[1], &self.echoes[2]);
        let extra = format!(
            "\n[audit]\ndir = \"{dir}\"\nsigning_key = \"gateway-audit.key\"\ncheckpoint_interval_ms = 100\nwitness_retry_max_ms = 400\n{audit}"
        );
        gateway_config(&self.pki, &up, "", &extra)
    }
}

async fn call(addr: &str, pki: &Pki, n: usize, tag: &str) {
    let education = channel(addr, &pki.files("education")).await.unwrap();
    for i in 0..n {
        let body = birth(&format!("{tag}{i:06}"));
        call_raw(&education, RawCall::new(BIRTH, body, "bac-candidature"))
            .await
            .unwrap();
    }
}

/// Waits (up to 20 s) until the node's latest checkpoint is witnessed and
/// covers at least `size` entries; returns it.
async fn witnessed(addr: &str, pki: &Pki, size: u64) -> pb::SignedCheckpoint {
    let mut client = AuditClient::new(channel(addr, &pki.files("cndp")).await.unwrap());
    let what = format!("not witnessed up to {size}");
    checkpoint_until(&mut client, Duration::from_secs(20), &what, |cp| {
        cp.witnessed_size >= size && cp.witnessed_size == cp.size
    })
    .await
}

/// The checkpoint text of a witnessed note and its signature lines.
fn split_note(note: &str) -> (&str, &str) {
    let at = note.find("\n\n").unwrap();
    (&note[..=at], &note[at + 2..])
}

/// Polls `/metrics` (up to 20 s) until `line` holds for a line.
async fn wait_metric_where(admin: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let (_, body) = get(admin, "/metrics").await;
        if let Some(line) = body.lines().find(|l| ok(l)) {
            return line.to_owned();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no metric line {what} in:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn value(line: &str) -> u64 {
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// The tiles serve the witnessed checkpoint, cosignatures included (the
/// same note as `cp`'s, or a later witnessed one), and Go's tlog accepts
/// the tiles under it.
async fn tiles_serve_the_witnessed_checkpoint(
    gw: &Gateway,
    pki: &Pki,
    log: &NoteSigner,
    cp: &pb::SignedCheckpoint,
    witnesses: [&Witness; 2],
) {
    let at = gw.tiles.as_deref().unwrap();
    let ca = pki.dir.join("ca.crt");
    let served =
        crate::support::web::console(at, &ca, http::Method::GET, "/checkpoint", None, None).await;
    assert_eq!(served.status, 200, "{}", served.body);
    let size: u64 = served.body.lines().nth(1).unwrap().parse().unwrap();
    assert!(size >= cp.witnessed_size, "{}", served.body);
    if size == cp.witnessed_size {
        assert_eq!(served.body, cp.witnessed_note);
    }
    let (text, lines) = split_note(&served.body);
    for w in witnesses {
        w.verifier.verify(text, lines).unwrap();
    }
    let verifier = log.verifier().to_text();
    let bundle = format!("000.p/{size}");
    let ok = crate::tiles::go_check(pki, at, &verifier, &bundle, "0");
    assert!(ok.starts_with(&format!("ok size={size} ")), "{ok}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_witnesses_cosign_the_checkpoints_and_receipts_carry_their_cosignatures() {
    let setup = Setup::new().await;
    let pki = &setup.pki;
    let cndp = Witness::start(pki, "cndp", &setup.signer);
    let court = Witness::start(pki, "court", &setup.signer);
    let witnesses = format!(
        "{}{}",
        cndp.section("cndp", pki),
        court.section("court", pki)
    );
    let tiles = "\n[audit.tiles]\nlisten = \"127.0.0.1:0\"\n";
    let config = setup.config("gateway-audit", &format!("{witnesses}{tiles}"));
    let (gw, addr) = start_gateway(pki, "gateway", &config);
    call(&addr, pki, 3, "AB").await;
    let cp = witnessed(&addr, pki, 3).await;
    // The log's signature and both witnesses' cosignatures, over the text.
    let (text, lines) = split_note(&cp.witnessed_note);
    jisr::audit::note::open_note(&cp.witnessed_note, &setup.signer.verifier()).unwrap();
    cndp.verifier.verify(text, lines).unwrap();
    court.verifier.verify(text, lines).unwrap();
    tiles_serve_the_witnessed_checkpoint(&gw, pki, &setup.signer, &cp, [&cndp, &court]).await;
    for w in ["cndp", "court"] {
        let line = wait_metric(
            &gw.admin,
            &format!("jisr_witness_cosigned_size{{witness=\"{w}\"}}"),
        )
        .await;
        assert!(value(&line) >= 3, "{line}");
    }
    let (status, ready) = get(&gw.admin, "/readyz").await;
    assert_eq!(status, 200, "{ready}");
    assert!(
        ready.contains("ok   witnesses: ") || ready.contains("ok  witnesses: "),
        "{ready}"
    );

    // A receipt proved against the witnessed checkpoint carries both
    // cosignatures; a trust policy of both keys accepts it, one naming a
    // witness that did not cosign refuses it.
    let receipt = pki.root().join("receipt.json");
    let out = jisr()
        .args([
            "audit",
            "prove",
            "--gateway",
            &addr,
            "--pki",
            pki.dir.to_str().unwrap(),
        ])
        .args(["--as", "cndp", "1", "--out", receipt.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let both = pki.root().join("trust.toml");
    std::fs::write(
        &both,
        format!(
            "quorum = 2\nwitnesses = [\"{}\", \"{}\"]\n",
            cndp.verifier.to_text(),
            court.verifier.to_text()
        ),
    )
    .unwrap();
    let check = |policy: &Path| {
        let out = jisr()
            .args([
                "audit",
                "check-receipt",
                receipt.to_str().unwrap(),
                "--trust",
            ])
            .arg(policy)
            .output()
            .unwrap();
        outcome(&out)
    };
    let (ok, text) = check(&both);
    assert!(
        ok && text.contains("cosigned by 2 trusted witness(es)"),
        "{text}"
    );
    let key = pki.root().join("gateway-audit/verifier.key");
    crate::tlog_proof::tlog_proofs_check_offline(&addr, pki, &key, &both);
    let stranger = jisr::audit::note::Cosigner::generate("stranger.ma/witness").unwrap();
    let other = pki.root().join("other.toml");
    std::fs::write(
        &other,
        format!(
            "quorum = 2\nwitnesses = [\"{}\", \"{}\"]\n",
            cndp.verifier.to_text(),
            stranger.verifier().to_text()
        ),
    )
    .unwrap();
    let (ok, text) = check(&other);
    assert!(
        !ok && text.contains("FAIL") && text.contains("not cosigned by stranger.ma/witness"),
        "{text}"
    );
    gw.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_down_never_stops_the_calls_and_catches_up_when_it_returns() {
    let setup = Setup::new().await;
    let pki = &setup.pki;
    let mut cndp = Witness::start(pki, "cndp", &setup.signer);
    let config = setup.config("gateway-audit", &cndp.section("cndp", pki));
    let (gw, addr) = start_gateway(pki, "gateway", &config);
    call(&addr, pki, 2, "AB").await;
    let before = witnessed(&addr, pki, 2).await.witnessed_size;

    cndp.kill();
    // Calls are served while the witness is away, and the lag shows.
    call(&addr, pki, 3, "CD").await;
    // At least the three calls' entries, once a checkpoint covers them.
    wait_metric_where(&gw.admin, "jisr_witness_lag_entries >= 3", |l| {
        l.starts_with("jisr_witness_lag_entries ") && value(l) >= 3
    })
    .await;
    wait_metric(
        &gw.admin,
        "jisr_witness_push_failures_total{witness=\"cndp\",reason=\"unreachable\"}",
    )
    .await;
    let (status, ready) = crate::support::admin::wait_readyz(&gw.admin, "DOWN witnesses").await;
    assert_eq!(status, 200, "a witness down leaves the node ready: {ready}");
    assert!(
        ready.contains("failing: ") && ready.contains("lag "),
        "{ready}"
    );

    // Back on the same port: it knows the older size, and the gateway
    // proves the new checkpoint from it.
    cndp.restart();
    let after = witnessed(&addr, pki, before + 3).await;
    assert!(after.witnessed_size >= before + 3, "{after:?}");
    wait_metric(&gw.admin, "jisr_witness_lag_entries 0").await;
    gw.stop();

    // The gateway's record of cosignatures lost (restored from an old
    // backup): it sends `old 0`, the witness answers 409 with the size it
    // knows, and the gateway proves from there.
    std::fs::remove_file(pki.root().join("gateway-audit/witnessed.json")).unwrap();
    let (gw, addr) = start_gateway(pki, "gateway", &config);
    call(&addr, pki, 2, "EF").await;
    let again = witnessed(&addr, pki, after.witnessed_size + 2).await;
    assert!(again.witnessed_size > after.witnessed_size, "{again:?}");
    gw.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_log_with_the_same_key_and_another_tree_is_refused_and_reported() {
    let setup = Setup::new().await;
    let pki = &setup.pki;
    let cndp = Witness::start(pki, "cndp", &setup.signer);
    let witnesses = cndp.section("cndp", pki);
    let (gw, addr) = start_gateway(pki, "gateway", &setup.config("gateway-audit", &witnesses));
    call(&addr, pki, 3, "AB").await;
    witnessed(&addr, pki, 3).await;
    gw.stop();

    // The same origin and key over another log directory: another tree.
    let split = setup.config("split-audit", &witnesses);
    let (split_gw, split_addr) = spawn_gateway(pki, "split", &split);
    call(&split_addr, pki, 4, "ZZ").await;
    split_gw.wait_log("a witness refused this log's checkpoint");
    let logs = split_gw.logs();
    assert!(logs.contains("split view"), "{logs}");
    let admin = admin_addr(pki, "split", &split_gw);
    let line = wait_metric_where(&admin, "a refusal by cndp", |l| {
        l.starts_with("jisr_witness_push_failures_total{witness=\"cndp\",reason=\"")
            && ["split_view", "bad_proof", "witness_ahead"]
                .iter()
                .any(|r| l.contains(r))
    })
    .await;
    assert!(value(&line) >= 1, "{line}");
    // The split log keeps serving; it is just never witnessed.
    call(&split_addr, pki, 1, "ZY").await;
    let mut client = AuditClient::new(channel(&split_addr, &pki.files("cndp")).await.unwrap());
    let cp = client
        .get_checkpoint(pb::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cp.witnessed_size, 0, "{cp:?}");
    assert!(cp.witnessed_note.is_empty());
}
