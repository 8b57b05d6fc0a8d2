//! The resilience keys: upstream instances, provider limits, `[[route]]`,
//! `[[rate_limit]]` and `reload_poll_ms`.

use super::*;

#[test]
fn defaults_apply_when_no_resilience_key_is_given() {
    let config = Config::from_toml(BASE, Path::new(FILE)).unwrap();
    let limits = &config.agencies[0].limits;
    assert_eq!(limits, &ProviderLimits::default());
    assert_eq!(limits.timeout, Duration::from_secs(10));
    assert_eq!(limits.max_in_flight, 1024);
    assert_eq!(
        (limits.breaker_failures, limits.breaker_cooldown),
        (5, Duration::from_secs(10))
    );
    assert_eq!(config.node.reload_poll, Some(Duration::from_secs(2)));
    assert!(config.routes.is_empty() && config.rate_limits.is_empty());
}

#[test]
fn instances_limits_routes_and_rates_are_read() {
    let text = with(
        "upstream = \"127.0.0.1:9001\"\n",
        "upstream = [\"10.0.0.1:9001\", \"10.0.0.2:9001\"]\ntimeout_ms = 750\nmax_in_flight = 64\nbreaker_failures = 2\nbreaker_cooldown_ms = 3000\n",
    )
    .replace("listen = \"127.0.0.1:8443\"\n", "listen = \"127.0.0.1:8443\"\nreload_poll_ms = 0\n")
        + "\n[[route]]\nmethods = [\"ma.civilstatus.v1.CivilStatus/*\"]\ntimeout_ms = 200\n\n[[rate_limit]]\nconsumer = \"education\"\nper_second = 50\n";
    let config = Config::from_toml(&text, Path::new(FILE)).unwrap();
    let cs = &config.agencies[0];
    assert_eq!(cs.upstreams, ["10.0.0.1:9001", "10.0.0.2:9001"]);
    assert_eq!(
        cs.limits,
        ProviderLimits {
            timeout: Duration::from_millis(750),
            max_in_flight: 64,
            breaker_failures: 2,
            breaker_cooldown: Duration::from_secs(3),
        }
    );
    assert_eq!(config.node.reload_poll, None);
    assert_eq!(config.routes[0].timeout, Duration::from_millis(200));
    assert_eq!(config.routes[0].methods_at[0].line, 35);
    let limit = &config.rate_limits[0];
    assert_eq!(
        (limit.per_second, limit.burst, limit.shared),
        (50, 50, false)
    );
}

#[test]
fn a_bad_instance_list_is_located() {
    one_error(
        &with(
            "upstream = \"127.0.0.1:9001\"",
            "upstream = [\"127.0.0.1:9001\", \"127.0.0.1:9001\"]",
        ),
        17,
        "lists `127.0.0.1:9001` twice",
        "list each instance once",
    );
    one_error(
        &with("upstream = \"127.0.0.1:9001\"", "upstream = []"),
        17,
        "lists 0 instances",
        "upstream = [",
    );
    one_error(
        &with(
            "upstream = \"127.0.0.1:9001\"",
            "upstream = [\"127.0.0.1:9001\", \"nohost\"]",
        ),
        17,
        "is not host:port",
        "host:port",
    );
}

#[test]
fn out_of_range_limits_are_located_with_their_bounds() {
    one_error(
        &with(
            "upstream = \"127.0.0.1:9001\"\n",
            "upstream = \"127.0.0.1:9001\"\ntimeout_ms = 0\n",
        ),
        18,
        "`timeout_ms` = 0 in [[agency]] is out of range",
        "from 1 to 600000",
    );
    one_error(
        &with(
            "upstream = \"127.0.0.1:9001\"\n",
            "upstream = \"127.0.0.1:9001\"\nbreaker_failures = \"5\"\n",
        ),
        18,
        "must be an integer",
        "breaker_failures = 5",
    );
}

#[test]
fn route_and_rate_limit_errors_are_located() {
    one_error(
        &(BASE.to_owned() + "\n[[route]]\nmethods = [\"ma.civilstatus.v1.CivilStatus/*\"]\n"),
        29,
        "missing the required key `timeout_ms`",
        "timeout_ms = 500",
    );
    one_error(
        &(BASE.to_owned() + "\n[[route]]\nmethods = [\"CivilStatus/*\"]\ntimeout_ms = 5\n"),
        30,
        "not a method pattern",
        "ma.tax.v1.CivilStatus",
    );
    one_error(
        &(BASE.to_owned() + "\n[[rate_limit]]\nconsumer = \"educaton\"\nper_second = 5\n"),
        30,
        "`educaton` is not declared",
        "civil-status, education",
    );
    one_error(
        &(BASE.to_owned()
            + "\n[[rate_limit]]\nconsumer = \"education\"\nper_second = 5\nshared = true\n"),
        32,
        "no Redis is configured",
        "redis_url",
    );
    one_error(
        &(BASE.to_owned()
            + "\n[[rate_limit]]\nconsumer = \"education\"\nper_second = 5\n\n[[rate_limit]]\nconsumer = \"education\"\nper_second = 9\n"),
        33,
        "two [[rate_limit]] entries (first at line 29)",
        "one [[rate_limit]] per consumer",
    );
    one_error(
        &(BASE.to_owned()
            + "\n[[rate_limit]]\nconsumer = \"education\"\nper_second = 5\nburts = 3\n"),
        32,
        "unknown key `burts`",
        "did you mean `burst`",
    );
}
