//! The citizen page's notices in each language, without a browser (the
//! black-box tests in tests/it/citizen_deferred.rs show them in a page).

use super::page;
use super::words::ALL;
use crate::proto::jisr::audit::v1 as pb;

fn partial() -> pb::QueryResponse {
    pb::QueryResponse {
        missing: vec![
            pb::MissingNode {
                node: "gw-2".into(),
                reason: "no answer".into(),
            },
            pb::MissingNode {
                node: "gw-3".into(),
                reason: "no answer".into(),
            },
        ],
        ..Default::default()
    }
}

/// An empty history with a node missing may be empty only for want of
/// that node: the notice is shown there too, in the page's language.
#[test]
fn the_partial_notice_is_in_each_language_even_over_an_empty_history() {
    for w in ALL {
        let html = page::table(w, &[], &partial());
        assert!(html.contains("id=\"none\""), "{}: {html}", w.lang);
        let expected = w.partial.replace("{nodes}", "gw-2, gw-3");
        assert!(expected.contains("gw-2, gw-3"), "{}: {expected}", w.lang);
        assert!(html.contains(&super::esc(&expected)), "{}: {html}", w.lang);
        assert!(!html.contains("Partial"), "{}: {html}", w.lang);
        let complete = page::table(w, &[], &pb::QueryResponse::default());
        assert!(!complete.contains("id=\"partial\""), "{}", w.lang);
    }
    let texts: std::collections::HashSet<_> = ALL.iter().map(|w| w.partial).collect();
    assert_eq!(texts.len(), ALL.len(), "each language its own text");
}

#[test]
fn the_deferred_note_names_its_date_in_each_language() {
    for w in ALL {
        assert!(w.deferred.contains("{date}"), "{}", w.lang);
        assert_eq!(w.deferred.matches('{').count(), 1, "{}", w.lang);
    }
}

/// The witnesses' words: each language its own, the policy's two
/// sentences naming k and n once each (the script fills them in).
#[test]
fn the_witness_words_are_in_each_language_with_k_and_n() {
    for w in ALL {
        let r = &w.receipt;
        for text in [r.quorum_met, r.quorum_not_met] {
            assert_eq!(text.matches("{k}").count(), 1, "{}: {text}", w.lang);
            assert_eq!(text.matches("{n}").count(), 1, "{}: {text}", w.lang);
        }
        for text in [r.witnesses, r.cosigned, r.cosignature_bad, r.no_cosignature] {
            assert!(
                !text.is_empty() && !text.contains('{'),
                "{}: {text}",
                w.lang
            );
        }
        let states = [r.cosigned, r.cosignature_bad, r.no_cosignature];
        assert!(
            states
                .iter()
                .all(|s| states.iter().filter(|t| *t == s).count() == 1),
            "{}",
            w.lang
        );
    }
    let texts: std::collections::HashSet<_> = ALL.iter().map(|w| w.receipt.cosigned).collect();
    assert_eq!(texts.len(), ALL.len(), "each language its own text");
}

/// The page learns the witnesses from the configuration, in a data block
/// no value can end early; none, no block.
#[test]
fn the_page_names_the_configured_witnesses_and_the_quorum() {
    let mut config = crate::config::Witnessing {
        witnesses: vec![crate::config::WitnessConfig {
            name: "cndp".into(),
            url: "https://witness.cndp.ma/jisr".into(),
            verifier_key: "witness.cndp.ma/jisr+01020304+BA</script>".into(),
            ca: "ca.crt".into(),
        }],
        quorum: 1,
        retry_max: std::time::Duration::from_secs(30),
    };
    let block = page::witnesses(&config);
    assert!(
        block.starts_with("<script type=\"application/json\" id=\"witnesses\">"),
        "{block}"
    );
    assert_eq!(block.matches("</script>").count(), 1, "{block}");
    let json = block
        .trim_start_matches("<script type=\"application/json\" id=\"witnesses\">")
        .trim_end_matches("</script>");
    let known: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(known["quorum"], 1);
    assert_eq!(known["witnesses"][0]["name"], "cndp");
    assert_eq!(
        known["witnesses"][0]["verifier_key"],
        "witness.cndp.ma/jisr+01020304+BA</script>"
    );
    config.witnesses.clear();
    assert_eq!(page::witnesses(&config), "");
}
