//! `[console]`: off without it, defaults from `[tls]`, bounds checked.

use super::*;

#[test]
fn the_console_is_off_without_its_section_and_defaults_to_the_node_certificate() {
    let config = Config::from_toml(BASE, Path::new(FILE)).unwrap();
    assert_eq!(config.console, None);
    let text = format!("{BASE}\n[console]\nlisten = \"127.0.0.1:8444\"\n");
    let console = Config::from_toml(&text, Path::new(FILE))
        .unwrap()
        .console
        .unwrap();
    assert_eq!(console.listen.port(), 8444);
    assert_eq!(console.cert, Path::new("/etc/jisr/pki/gw.crt"));
    assert_eq!(console.key, Path::new("/etc/jisr/pki/gw.key"));
    assert_eq!(
        console.signin_key,
        Path::new("/etc/jisr/console-signin.key")
    );
    assert_eq!(console.session, Duration::from_secs(30 * 60));
    assert_eq!(console.link, Duration::from_secs(5 * 60));
}

#[test]
fn console_mistakes_are_located_and_explained() {
    let text = format!("{BASE}\n[console]\nlisten = \"127.0.0.1:8444\"\nlink_minutes = 60\n");
    one_error(
        &text,
        31,
        "`link_minutes` = 60 in [console] is out of range",
        "from 1 to 15",
    );
    let text = format!("{BASE}\n[console]\nlisten = \"everywhere\"\n");
    one_error(
        &text,
        30,
        "`listen` in [console] is not an address",
        "host:port",
    );
    let text = format!("{BASE}\n[console]\nsession_minutes = 10\n");
    one_error(&text, 29, "listen", "listen");
}

#[test]
fn operator_is_a_role() {
    let text = with(
        "id = \"education\"",
        "id = \"education\"\nroles = [\"operator\"]",
    );
    let config = Config::from_toml(&text, Path::new(FILE)).unwrap();
    let education = AgencyId::parse("education").unwrap();
    assert_eq!(config.agency(&education).unwrap().roles, [Role::Operator]);
}
