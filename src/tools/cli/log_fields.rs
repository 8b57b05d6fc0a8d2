//! The text log's fields, written as `tracing_subscriber`'s `DefaultFields`
//! writes them when colours are off, for fewer instructions: the default
//! paints every field name and `=` through `nu_ansi_term` even with an empty
//! style (one `core::fmt` pass each), which made up about half of the
//! per-exchange `info` line's cost under callgrind (≈ 9 k of ≈ 20 k
//! instructions per call). Names and `=` are written as plain strings here;
//! values still go through their `Debug` form, so the bytes are the same
//! (`tests::same_bytes_as_default_fields`). The message, error values and
//! raw (`r#`) names are handed to `DefaultVisitor` itself.

use std::fmt;
use tracing::field::{Field, Visit};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};

/// `FormatFields` for the plain (colourless) text log.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct PlainFields;

impl<'a> MakeVisitor<Writer<'a>> for PlainFields {
    type Visitor = PlainVisitor<'a>;

    fn make_visitor(&self, writer: Writer<'a>) -> Self::Visitor {
        PlainVisitor {
            writer,
            is_empty: true,
            result: Ok(()),
        }
    }
}

/// Writes `name=value` pairs, separated by one space.
#[derive(Debug)]
pub(super) struct PlainVisitor<'a> {
    writer: Writer<'a>,
    is_empty: bool,
    result: fmt::Result,
}

impl PlainVisitor<'_> {
    /// Lets `DefaultVisitor` write one field, with the same separator state.
    fn by_default(&mut self, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        let mut visitor = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        record(&mut visitor);
        self.is_empty = false;
        self.result = visitor.finish();
    }

    /// Whether `DefaultVisitor` must write this field: the message (escaped),
    /// and raw names (their `r#` dropped).
    fn special(name: &str) -> bool {
        name == "message" || name.starts_with("r#")
    }
}

impl Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_ok() && Self::special(field.name()) {
            self.by_default(|v| v.record_str(field, value));
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.result.is_ok() {
            self.by_default(|v| v.record_error(field, value));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let name = field.name();
        // `log.*` fields are the `log` crate's metadata, already written
        // (tracing-subscriber's default `tracing-log` feature).
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        if Self::special(name) {
            self.by_default(|v| v.record_debug(field, value));
            return;
        }
        let w = &mut self.writer;
        self.result = (|| {
            if !std::mem::take(&mut self.is_empty) {
                w.write_char(' ')?;
            }
            w.write_str(name)?;
            w.write_char('=')?;
            write!(w, "{value:?}")
        })();
    }
}

impl VisitOutput<fmt::Result> for PlainVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for PlainVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.writer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::format::DefaultFields;
    use tracing_subscriber::fmt::FormatFields;

    /// Formats the same events with `fields` into one string.
    fn lines<F>(fields: F) -> String
    where
        F: for<'w> FormatFields<'w> + Send + Sync + 'static,
    {
        let out = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = Arc::clone(&out);
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .without_time()
            .fmt_fields(fields)
            .with_writer(move || Sink(Arc::clone(&sink)))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let error = std::io::Error::other("disk \u{1b}[31mgone");
            tracing::info!(
                target: "jisr::gateway::exchange",
                request_id = %"req-1",
                text = "quoted \"str\"",
                number = -3_i64,
                count = 7_u64,
                flag = true,
                dbg = ?Some("x"),
                r#type = "raw",
                "exchange"
            );
            tracing::warn!(
                error = &error as &(dyn std::error::Error + 'static),
                "failed: \u{1b}[2J{}",
                42
            );
            tracing::error!(only = 1);
            let span = tracing::info_span!("conn", peer = %"127.0.0.1:1", id = 9);
            span.in_scope(|| tracing::info!(message = "in span", after = 1));
        });
        let bytes = out.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8(bytes).unwrap_or_default()
    }

    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut out) = self.0.lock() {
                out.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn same_bytes_as_default_fields() {
        let plain = lines(PlainFields);
        assert_eq!(plain, lines(DefaultFields::new()));
        // Not vacuous: the lines were written, with their fields.
        assert!(
            plain.contains(r#"exchange request_id=req-1 text="quoted \"str\"" number=-3 count=7 flag=true dbg=Some("x") type="raw""#),
            "{plain}"
        );
        assert!(plain.contains("conn{peer=127.0.0.1:1 id=9}"), "{plain}");
        assert_eq!(plain.lines().count(), 4, "{plain}");
    }
}
