use super::html::esc;
use super::link::{LinkError, LinkKey};
use super::session::Sessions;
use crate::identity::AgencyId;
use std::time::Duration;

fn key() -> (tempfile::TempDir, LinkKey) {
    let dir = tempfile::tempdir().unwrap();
    let key = LinkKey::load_or_create(&dir.path().join("k")).unwrap();
    (dir, key)
}

#[test]
fn a_link_opens_until_it_expires_and_only_under_its_key() {
    let (dir, key) = key();
    let cndp = AgencyId::parse("cndp").unwrap();
    let token = key.mint(&cndp, 1000);
    assert_eq!(key.open(&token, 999).unwrap().agency, cndp);
    assert_eq!(key.open(&token, 1000), Err(LinkError::Expired));
    // The same file gives the same key; another file another.
    let again = LinkKey::load_or_create(&dir.path().join("k")).unwrap();
    assert!(again.open(&token, 1).is_ok());
    let other = LinkKey::load_or_create(&dir.path().join("other")).unwrap();
    assert_eq!(other.open(&token, 1), Err(LinkError::Forged));
    let altered = token.replacen("cndp", "cndq", 1);
    assert_eq!(key.open(&altered, 1), Err(LinkError::Forged));
    assert_eq!(key.open("nonsense", 1), Err(LinkError::Malformed));
}

#[test]
fn a_link_starts_one_session_only() {
    let (_dir, key) = key();
    let token = key.mint(&AgencyId::parse("cndp").unwrap(), 1000);
    let sessions = Sessions::default();
    let (id, session) = sessions
        .start(key.open(&token, 1).unwrap(), Duration::from_secs(60), 1)
        .unwrap();
    assert_eq!(sessions.get(&id).unwrap().csrf, session.csrf);
    let again = sessions.start(key.open(&token, 1).unwrap(), Duration::from_secs(60), 1);
    assert_eq!(again.err(), Some(LinkError::Used));
    sessions.end(&id);
    assert!(sessions.get(&id).is_none());
}

#[test]
fn interpolated_text_is_escaped() {
    assert_eq!(
        esc("<script>alert('x')</script>&\""),
        "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
    );
}

#[test]
fn a_session_ends_when_it_expires() {
    let (_dir, key) = key();
    let token = key.mint(&AgencyId::parse("cndp").unwrap(), 1000);
    let sessions = Sessions::default();
    let (id, _) = sessions
        .start(key.open(&token, 1).unwrap(), Duration::ZERO, 1)
        .unwrap();
    assert!(
        sessions.get(&id).is_none(),
        "a session past its lifetime is gone"
    );
}

#[test]
fn a_time_in_the_search_form_is_read_as_utc() {
    use super::exchanges::micros;
    assert_eq!(micros("", "from"), Ok(0));
    assert_eq!(
        micros("2026-12-07T09:30", "from"),
        Ok(1_796_635_800_000_000)
    );
    assert_eq!(
        micros("2026-12-07T09:30:15", "to"),
        Ok(1_796_635_815_000_000)
    );
    assert!(micros("yesterday", "to")
        .unwrap_err()
        .contains("`to` must be a date"));
}
