//! The small languages inside rule entries: method patterns
//! (`pkg.Service/Method`, `pkg.Service/*`) and legal bases (`law:<ref>`).

use std::fmt;

/// Which gRPC methods a rule covers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MethodPattern {
    /// One method, written `pkg.Service/Method`.
    Method {
        /// Fully qualified service name, e.g. `ma.tax.v1.TaxRecords`.
        service: String,
        /// Method name, e.g. `GetTaxStatus`.
        method: String,
    },
    /// Every method of a service, written `pkg.Service/*`.
    Service {
        /// Fully qualified service name.
        service: String,
    },
}

const PATTERN_EXAMPLE: &str =
    "write `<package>.<Service>/<Method>` or `<package>.<Service>/*`, e.g. `ma.tax.v1.TaxRecords/GetTaxStatus`";

fn is_ident(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl MethodPattern {
    /// Parses `pkg.Service/Method` or `pkg.Service/*`; the error says what is
    /// wrong and how to write it.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::parse_parts(s).map_err(|(message, fix)| format!("{message}; {fix}"))
    }

    /// Like [`MethodPattern::parse`], with the message and the fix apart.
    pub(super) fn parse_parts(s: &str) -> Result<Self, (String, String)> {
        let bad = |why: &str, fix: &str| {
            Err((
                format!("`{s}` is not a method pattern: {why}"),
                fix.to_owned(),
            ))
        };
        if let Some(rest) = s.strip_prefix('/') {
            if rest.contains('/') {
                return bad(
                    "it starts with `/`",
                    &format!("drop the leading `/`: `{rest}`"),
                );
            }
        }
        let Some((service, method)) = s.split_once('/') else {
            return bad("it has no `/` between service and method", PATTERN_EXAMPLE);
        };
        if service.is_empty() || !service.split('.').all(is_ident) {
            return bad(
                "the service must be a dotted protobuf name such as `ma.tax.v1.TaxRecords`",
                PATTERN_EXAMPLE,
            );
        }
        if !service.contains('.') {
            return bad(
                "the service name lacks its package",
                &format!("write the fully qualified name, e.g. `ma.tax.v1.{service}/{method}`"),
            );
        }
        if method == "*" {
            return Ok(Self::Service {
                service: service.to_owned(),
            });
        }
        if !is_ident(method) {
            return bad(
                "the method must be a protobuf identifier or `*` for every method of the service",
                PATTERN_EXAMPLE,
            );
        }
        Ok(Self::Method {
            service: service.to_owned(),
            method: method.to_owned(),
        })
    }

    /// The fully qualified service the pattern names.
    pub fn service(&self) -> &str {
        match self {
            Self::Method { service, .. } | Self::Service { service } => service,
        }
    }

    /// Whether the pattern written `pattern` covers a call to
    /// `service`/`method`, without building it: for patterns validated with
    /// [`MethodPattern::parse`] when stored (a consent's methods) and matched
    /// on every call. It does not validate: for such text it agrees with the
    /// parsed pattern's [`MethodPattern::matches`].
    pub fn text_matches(pattern: &str, service: &str, method: &str) -> bool {
        pattern
            .split_once('/')
            .is_some_and(|(s, m)| s == service && (m == "*" || m == method))
    }

    /// Whether a call to `service`/`method` is covered.
    pub fn matches(&self, service: &str, method: &str) -> bool {
        match self {
            Self::Method {
                service: s,
                method: m,
            } => s == service && m == method,
            Self::Service { service: s } => s == service,
        }
    }
}

impl fmt::Display for MethodPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Method { service, method } => write!(f, "{service}/{method}"),
            Self::Service { service } => write!(f, "{service}/*"),
        }
    }
}

/// The ground on which a rule lets a consumer read a provider's data.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Basis {
    /// A legal text, written `law:<reference>`, e.g. `law:55-19`.
    Law(String),
    /// The citizen's recorded consent, written `consent`: each call must name
    /// a valid consent (`jisr-consent`).
    Consent,
}

impl Basis {
    /// Parses `law:<reference>` (reference of `A-Z a-z 0-9 . _ : / -`) or `consent`.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::parse_parts(s).map_err(|(message, fix)| format!("{message}; {fix}"))
    }

    /// Like [`Basis::parse`], with the message and the fix apart.
    pub(super) fn parse_parts(s: &str) -> Result<Self, (String, String)> {
        if s == "consent" {
            return Ok(Self::Consent);
        }
        let Some(reference) = s.strip_prefix("law:") else {
            return Err((
                format!("`{s}` is not a legal basis"),
                "write `law:<reference>` naming the legal text, e.g. `law:55-19`".to_owned(),
            ));
        };
        let valid = |b: u8| b.is_ascii_alphanumeric() || b".-_:/".contains(&b);
        if reference.is_empty() || !reference.bytes().all(valid) {
            return Err((
                format!("`{s}` has an empty or malformed law reference"),
                "after `law:` use letters, digits and `.` `_` `:` `/` `-`, e.g. `law:55-19`"
                    .to_owned(),
            ));
        }
        Ok(Self::Law(reference.to_owned()))
    }
}

impl fmt::Display for Basis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Law(reference) => write!(f, "law:{reference}"),
            Self::Consent => f.write_str("consent"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn patterns_parse_display_and_match() {
        let one = MethodPattern::parse("ma.tax.v1.TaxRecords/GetTaxStatus").unwrap();
        assert_eq!(
            one,
            MethodPattern::Method {
                service: "ma.tax.v1.TaxRecords".into(),
                method: "GetTaxStatus".into()
            }
        );
        assert_eq!(one.to_string(), "ma.tax.v1.TaxRecords/GetTaxStatus");
        assert!(one.matches("ma.tax.v1.TaxRecords", "GetTaxStatus"));
        assert!(!one.matches("ma.tax.v1.TaxRecords", "GetOther"));
        assert!(!one.matches("ma.tax.v2.TaxRecords", "GetTaxStatus"));

        let all = MethodPattern::parse("ma.tax.v1.TaxRecords/*").unwrap();
        assert_eq!(all.to_string(), "ma.tax.v1.TaxRecords/*");
        assert_eq!(all.service(), "ma.tax.v1.TaxRecords");
        assert!(all.matches("ma.tax.v1.TaxRecords", "Anything"));
        assert!(!all.matches("ma.tax.v1.TaxRecordsX", "Anything"));
    }

    #[test]
    fn bad_patterns_say_why() {
        for (bad, why) in [
            ("", "no `/`"),
            ("ma.tax.v1.TaxRecords", "no `/`"),
            ("/ma.tax.v1.TaxRecords/Get", "drop the leading `/`"),
            ("TaxRecords/Get", "lacks its package"),
            ("ma.tax.v1.TaxRecords/Get/More", "protobuf identifier"),
            ("ma..TaxRecords/Get", "dotted protobuf name"),
            ("ma.tax.v1.*/Get", "dotted protobuf name"),
            ("ma.tax.v1.TaxRecords/", "protobuf identifier"),
            ("ma.tax.v1.TaxRecords/Get*", "protobuf identifier"),
        ] {
            let err = MethodPattern::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn bases_parse_and_display() {
        assert_eq!(Basis::parse("law:55-19"), Ok(Basis::Law("55-19".into())));
        assert_eq!(Basis::parse("consent"), Ok(Basis::Consent));
        assert_eq!(
            Basis::Law("cgi-art-22".into()).to_string(),
            "law:cgi-art-22"
        );
        assert_eq!(Basis::Consent.to_string(), "consent");
        for bad in ["law:", "law 55-19", "55-19", "law:55 19", "Law:1"] {
            assert!(Basis::parse(bad).is_err(), "{bad}");
        }
    }

    fn ident() -> impl Strategy<Value = String> + Clone {
        "[A-Za-z_][A-Za-z0-9_]{0,8}"
    }

    fn service() -> impl Strategy<Value = String> {
        prop::collection::vec(ident(), 2..5).prop_map(|parts| parts.join("."))
    }

    fn pattern() -> impl Strategy<Value = MethodPattern> {
        prop_oneof![
            (service(), ident())
                .prop_map(|(service, method)| MethodPattern::Method { service, method }),
            service().prop_map(|service| MethodPattern::Service { service }),
        ]
    }

    proptest! {
        #[test]
        fn display_parses_back(p in pattern()) {
            prop_assert_eq!(MethodPattern::parse(&p.to_string()), Ok(p));
        }

        #[test]
        fn matches_agrees_with_the_text(p in pattern(), other in pattern(), method in ident()) {
            // Reference: a call matches when its path equals the pattern text,
            // or the pattern ends in `/*` and the services are equal.
            let reference = |service: &str, method: &str| {
                let text = p.to_string();
                text == format!("{service}/{method}")
                    || text.strip_suffix("/*") == Some(service)
            };
            for (service, method) in [
                (p.service().to_owned(), method.clone()),
                (other.service().to_owned(), method.clone()),
                (p.service().to_owned(), match &p {
                    MethodPattern::Method { method, .. } => method.clone(),
                    MethodPattern::Service { .. } => method,
                }),
            ] {
                prop_assert_eq!(p.matches(&service, &method), reference(&service, &method));
            }
        }

        #[test]
        fn text_matches_agrees_with_the_parsed_pattern(
            text in prop_oneof![
                pattern().prop_map(|p| p.to_string()),
                "[a-z./*]{0,24}",
                (service(), "[A-Za-z/*]{0,6}").prop_map(|(s, m)| format!("{s}/{m}")),
            ],
            call in (service(), ident()),
        ) {
            let (service, method) = call;
            let parsed = MethodPattern::parse(&text).is_ok_and(|p| p.matches(&service, &method));
            prop_assert_eq!(MethodPattern::text_matches(&text, &service, &method), parsed);
            if let Ok(p) = MethodPattern::parse(&text) {
                let covered = match &p {
                    MethodPattern::Method { method, .. } => method.clone(),
                    MethodPattern::Service { .. } => method,
                };
                prop_assert!(MethodPattern::text_matches(&text, p.service(), &covered));
            }
        }
    }
}
