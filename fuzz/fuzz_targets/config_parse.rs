//! `Config::from_toml` on arbitrary text: errors are fine, panics are not.

#![no_main]

use jisr::config::Config;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Config::from_toml(text, Path::new("/etc/jisr/jisr.toml"));
    }
});
