//! The console's sessions with replicas sharing a Redis (the consent
//! store's, a real redis-server): a session made on one replica works on
//! the other, a sign-out on one ends it on both, and a sign-in link is
//! taken once across them.

use crate::consent::CONSENT_RULES;
use crate::consent_store::Redis;
use crate::routing::echo_network;
use crate::support::*;
use http::{Method, StatusCode};

async fn ask(
    pki: &Pki,
    console: &str,
    method: Method,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> web::Answer {
    web::console(console, &pki.dir.join("ca.crt"), method, path, cookie, form).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_a_redis_share_console_sessions_and_used_links() {
    let redis = Redis::start();
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let (pki, gw1, _addr1, _echos) = echo_network(
        "",
        &format!("{CONSENT_RULES}\n[consent]\nredis_url = \"{url}\"\n\n[console]\nlisten = \"127.0.0.1:0\"\n"),
    )
    .await;
    let config = std::fs::read_to_string(pki.root().join("gateway.toml"))
        .unwrap()
        .replace("gateway-audit", "gateway2-audit");
    let config = replica_config(&pki, &config, "gw-2");
    let (gw2, _addr2) = start_gateway(&pki, "gateway2", &config);
    let (one, two) = (gw1.console.clone().unwrap(), gw2.console.clone().unwrap());

    // Both consoles read the same sign-in key file (next to their configs).
    let out = jisr()
        .args(["console", "login", "--config"])
        .arg(pki.root().join("gateway.toml"))
        .args(["--as", "cndp", "--address", &one])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let link = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let token = format!("t={}", link.split_once("?t=").unwrap().1);

    let signed = ask(&pki, &one, Method::POST, "/signin", None, Some(&token)).await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    let cookie = signed.headers["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();

    // The session made on replica 1 works on replica 2.
    let page = ask(&pki, &two, Method::GET, "/exchanges", Some(&cookie), None).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("id=\"agency\">cndp<"));

    // The link, used on replica 1, is refused on replica 2.
    let again = ask(&pki, &two, Method::POST, "/signin", None, Some(&token)).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert!(again.body.contains("already used"), "{}", again.body);

    // Signing out on replica 2 ends the session on replica 1 too.
    let csrf = page.csrf();
    let out = ask(
        &pki,
        &two,
        Method::POST,
        "/signout",
        Some(&cookie),
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    for console in [&one, &two] {
        let after = ask(
            &pki,
            console,
            Method::GET,
            "/exchanges",
            Some(&cookie),
            None,
        )
        .await;
        assert_eq!(after.status, StatusCode::UNAUTHORIZED, "{console}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_whose_redis_is_down_says_so_and_signs_no_one_in() {
    let mut redis = Redis::start();
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let (pki, gw, _addr, _echos) = echo_network(
        "",
        &format!("{CONSENT_RULES}\n[consent]\nredis_url = \"{url}\"\ntimeout_ms = 200\n\n[console]\nlisten = \"127.0.0.1:0\"\n"),
    )
    .await;
    let console = gw.console.clone().unwrap();
    redis.kill();
    let out = jisr()
        .args(["console", "login", "--config"])
        .arg(pki.root().join("gateway.toml"))
        .args(["--as", "cndp", "--address", &console])
        .output()
        .unwrap();
    let link = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let token = format!("t={}", link.split_once("?t=").unwrap().1);
    let refused = ask(&pki, &console, Method::POST, "/signin", None, Some(&token)).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        refused.body.contains("session store cannot be reached"),
        "{}",
        refused.body
    );
    assert!(refused.headers.get("set-cookie").is_none());
}
