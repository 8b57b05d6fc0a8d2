//! The TLS edge: every bad certificate is refused at the handshake, and the
//! gateway's log says why.

use crate::support::*;

async fn try_call(addr: &str, files: &jisr::tls::TlsFiles) -> Result<(), String> {
    let channel = channel(addr, files)
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    let body = birth(CITIZEN);
    call_raw(&channel, RawCall::new(BIRTH, body, "bac-candidature"))
        .await
        .map(drop)
        .map_err(|s| format!("{s:?}"))
}

#[tokio::test]
async fn bad_certificates_are_refused_with_the_reason_logged() {
    let crl = |pki: &Pki| format!("crls = [\"{}/ca.crl\"]", pki.dir.display());
    let net = Network::spawn("", "");
    // Restart-free check: the standard network has no CRL; a second gateway
    // with the CRL checks revocation.
    let cases = [
        ("untrusted", "not issued by a trusted CA"),
        ("expired", "certificate expired"),
        ("not-yet-valid", "not yet valid"),
        ("no-san", "no spiffe:// URI"),
        ("foreign", "foreign trust domain"),
        ("gateway", "only agencies may"),
    ];
    for (fixture, reason) in cases {
        let result = try_call(&net.addr, &net.pki.files(fixture)).await;
        assert!(result.is_err(), "{fixture} was let in");
        net.gateway.wait_log(reason);
    }
    // The good certificate still works afterwards.
    try_call(&net.addr, &net.pki.files("education"))
        .await
        .unwrap();

    let config = std::fs::read_to_string(net.pki.root().join("gateway.toml")).unwrap();
    let key_line = format!("key = \"{}/gateway.key\"", net.pki.dir.display());
    let with_crl = config
        .replace(&key_line, &format!("{key_line}\n{}", crl(&net.pki)))
        .replace("gateway-audit", "gateway-crl-audit")
        .replace("gateway-consents", "gateway-crl-consents");
    assert_ne!(config, with_crl);
    let (gw2, addr2) = spawn_gateway(&net.pki, "gateway-crl", &with_crl);
    assert!(try_call(&addr2, &net.pki.files("revoked")).await.is_err());
    gw2.wait_log("certificate revoked");
    try_call(&addr2, &net.pki.files("education")).await.unwrap();
}

#[tokio::test]
async fn a_client_without_certificate_is_refused() {
    let net = Network::spawn("", "");
    let ca = std::fs::read(net.pki.dir.join("ca.crt")).unwrap();
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(ca))
        .domain_name("localhost");
    let endpoint = tonic::transport::Endpoint::from_shared(format!("https://{}", net.addr))
        .unwrap()
        .tls_config(tls)
        .unwrap();
    if let Ok(channel) = endpoint.connect().await {
        let body = birth(CITIZEN);
        assert!(
            call_raw(&channel, RawCall::new(BIRTH, body, "bac-candidature"))
                .await
                .is_err()
        );
    }
    net.gateway.wait_log("no client certificate");
}

#[tokio::test]
async fn the_gateway_verifies_the_providers_identity() {
    // civil-status's upstream is actually the tax provider: same CA, wrong
    // agency. The gateway must refuse to talk to it.
    let pki = Pki::new();
    let (_tax, tax_addr) = start_provider(&pki, "tax");
    let up = Upstreams {
        civil_status: tax_addr.clone(),
        tax: tax_addr,
        health: "127.0.0.1:9".into(),
    };
    let (gw, addr) = spawn_gateway(&pki, "gateway", &gateway_config(&pki, &up, "", ""));
    let client = channel(&addr, &pki.files("education")).await.unwrap();
    let body = birth(CITIZEN);
    let (code, reason, _) =
        framed_status(call_raw(&client, RawCall::new(BIRTH, body, "bac-candidature")).await);
    assert_eq!(
        (code, reason.as_str()),
        (tonic::Code::Unavailable, "PROVIDER_UNAVAILABLE")
    );
    gw.wait_log("not agency `civil-status`");
}

/// A client certificate for `education` issued by the test CA with
/// openssl, which (unlike `jisr pki`) makes weak ones: `newkey` as given to
/// `openssl req`, signed with `digest` (`-sha256`, `-sha1`).
fn openssl_client(pki: &Pki, name: &str, newkey: &[&str], digest: &str) {
    let dir = &pki.dir;
    let ext = dir.join(format!("{name}.ext"));
    std::fs::write(
        &ext,
        format!("subjectAltName=URI:spiffe://{DOMAIN}/agency/education\nextendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n"),
    )
    .unwrap();
    let path = |ext: &str| dir.join(format!("{name}.{ext}"));
    let run = |args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl (scripts/test.sh installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let os = |s: &str| std::ffi::OsString::from(s);
    let mut req = vec![os("req"), os("-new")];
    req.extend(newkey.iter().map(|s| os(s)));
    req.extend([
        os("-nodes"),
        os("-subj"),
        os("/CN=education"),
        os("-keyout"),
    ]);
    req.extend([path("key").into(), os("-out"), path("csr").into()]);
    run(&req
        .iter()
        .map(std::ffi::OsString::as_os_str)
        .collect::<Vec<_>>());
    let sign = [
        os("x509"),
        os("-req"),
        os("-in"),
        path("csr").into(),
        os("-CA"),
        dir.join("ca.crt").into(),
        os("-CAkey"),
        dir.join("ca.key").into(),
        os("-CAcreateserial"),
        os("-days"),
        os("2"),
        os(digest),
        os("-extfile"),
        ext.into(),
        os("-out"),
        path("crt").into(),
    ];
    run(&sign
        .iter()
        .map(std::ffi::OsString::as_os_str)
        .collect::<Vec<_>>());
}

#[tokio::test]
async fn weak_keys_weak_signatures_and_a_ca_as_client_are_logged_as_such() {
    let net = Network::spawn("", "");
    openssl_client(&net.pki, "rsa1024", &["-newkey", "rsa:1024"], "-sha256");
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
    openssl_client(&net.pki, "sha1", &ec, "-sha1");
    for ext in ["crt", "key"] {
        std::fs::copy(
            net.pki.dir.join(format!("ca.{ext}")),
            net.pki.dir.join(format!("ca-client.{ext}")),
        )
        .unwrap();
    }
    let cases = [
        ("rsa1024", "certificate has a weak key: RSA of 1024 bits"),
        ("sha1", "certificate signed with SHA-1 (ecdsa-with-SHA1)"),
        ("ca-client", "CA certificate used as a client"),
    ];
    for (fixture, reason) in cases {
        // openssl's client, as an attacker's would: rustls (ring) will not
        // even load an RSA-1024 key.
        let files = net.pki.files(fixture);
        let mut client = std::process::Command::new("openssl")
            // Security level 0: openssl itself would not send a weak key.
            .args(["s_client", "-tls1_3", "-alpn", "h2"])
            .args(["-cipher", "DEFAULT@SECLEVEL=0", "-connect", &net.addr])
            .arg("-cert")
            .arg(&files.cert)
            .arg("-key")
            .arg(&files.key)
            .arg("-CAfile")
            .arg(&files.ca)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("openssl s_client");
        net.gateway.wait_log(reason);
        let _ = client.kill();
        let _ = client.wait();
    }
    // The good certificate still works afterwards.
    try_call(&net.addr, &net.pki.files("education"))
        .await
        .unwrap();
}

/// Once any CRL is configured, a certificate from a trusted CA that has no
/// CRL in the list has an unknown revocation status and is refused, the
/// reason logged (docs/operations.md, "Revocation"); a certificate from the
/// CA whose CRL is listed is let in alongside. Without CRLs, the same
/// certificate is let in: the refusal is the missing CRL, not the trust.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_without_a_crl_is_refused_once_crls_are_configured() {
    let pki = Pki::new();
    let cs = crate::support::echo::Echo::start(&pki.dir, "civil-status").await;
    let up = Upstreams {
        civil_status: cs.addr.to_string(),
        tax: "127.0.0.1:9".into(),
        health: "127.0.0.1:9".into(),
    };
    // Both CAs trusted; `ca.crl` is the first CA's only.
    let bundle = pki.dir.join("two-cas.crt");
    let pem = |name: &str| std::fs::read_to_string(pki.dir.join(name)).unwrap();
    std::fs::write(&bundle, pem("ca.crt") + &pem("untrusted-ca.crt")).unwrap();
    let dir = pki.dir.display();
    let config = gateway_config(&pki, &up, "", "").replace(
        &format!("ca = \"{dir}/ca.crt\""),
        &format!("ca = \"{}\"", bundle.display()),
    );
    let key_line = format!("key = \"{dir}/gateway.key\"");
    let with_crl = config
        .replace(&key_line, &format!("{key_line}\ncrls = [\"{dir}/ca.crl\"]"))
        .replace("gateway-audit", "gateway-crl-audit")
        .replace("gateway-consents", "gateway-crl-consents");
    assert_ne!(config, with_crl);

    let (_plain, addr) = start_gateway(&pki, "gateway", &config);
    try_call(&addr, &pki.files("untrusted"))
        .await
        .expect("the second CA is trusted: without CRLs its certificate is let in");

    let (gw, addr) = spawn_gateway(&pki, "gateway-crl", &with_crl);
    let refused = try_call(&addr, &pki.files("untrusted")).await;
    assert!(refused.is_err(), "a CA without a CRL was let in");
    gw.wait_log("certificate revocation status unknown (no CRL from its issuer is configured)");
    try_call(&addr, &pki.files("education"))
        .await
        .expect("the CA whose CRL is listed is let in");
}
