//! The ops-edited account map (`accounts::map::parse`): never panics on any UTF-8 text, and
//! (the cheap invariants of `tests/perf_map_prop.rs`) every problem is on a line of the file,
//! every accepted record points at its `[[account]]` line.
//!
//! `parse` only checks that `password_hash` is an argon2 PHC string (`password::check_hash`,
//! no hashing) and records `client_secret_env`/`client_secret_file` by name: it reads no
//! environment variable or file, so one input costs microseconds.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use upsbridge::accounts::map;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match map::parse(text, "fuzz.toml", Path::new("/nonexistent")) {
        Ok(records) => {
            let lines: Vec<&str> = text.split('\n').collect();
            for r in &records {
                assert!(
                    r.line >= 1 && r.line <= lines.len(),
                    "record line {}",
                    r.line
                );
                assert!(
                    lines[r.line - 1].trim_start().starts_with("[[account]]"),
                    "record `{}` points at line {}",
                    r.name,
                    r.line
                );
            }
        }
        Err(e) => {
            assert!(!e.problems.is_empty(), "an error with no problem");
            let max = text.matches('\n').count() + 1;
            for p in &e.problems {
                assert!(
                    p.line >= 1 && p.line <= max,
                    "problem at line {} of {max}: {}",
                    p.line,
                    p.message
                );
                assert!(!p.message.is_empty());
            }
        }
    }
});
