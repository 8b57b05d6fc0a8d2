//! Opening the node's embedded redb files (`consents.redb`, `bus.redb`,
//! the audit log's `index.redb`): a damaged file is an error naming it and
//! the fix, never a panic.
//!
//! redb reports most damage as an error, but some checks panic instead
//! (every one of them in debug builds, by design, and a few in release,
//! e.g. "entered unreachable code" on a corrupted page). So a store opens
//! — the database, its tables, whatever it reads at start — under
//! [`guard`], which turns a panic there into an error. The panic's message
//! still reaches stderr through the panic hook; the start-up error that
//! follows is the one that says what to do.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `open` and returns its result, or the message of a panic inside
/// it. Whatever `open` built is dropped with the panic: nothing
/// half-opened is used afterwards.
pub fn guard<T>(open: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(open)).map_err(|panic| {
        panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic inside the storage library".to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_inside_is_an_error_with_its_message() {
        assert_eq!(guard(|| 7), Ok(7));
        let err = guard(|| -> u8 { panic!("entered unreachable code") }).unwrap_err();
        assert_eq!(err, "entered unreachable code");
        let err = guard(|| -> u8 { panic!("{}", String::from("page 3")) }).unwrap_err();
        assert_eq!(err, "page 3");
    }
}
