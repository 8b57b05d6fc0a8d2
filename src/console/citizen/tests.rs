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
