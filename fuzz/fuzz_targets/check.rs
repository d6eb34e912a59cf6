//! The invariants `tests/fuzz_dialects.rs` (`check`, `check_failure`) asserts on a body
//! parser's result, and nothing more: no panic (libFuzzer reports one as a crash), and every
//! refusal is a `Failure` that maps to a UPS error code (all digits) and a metrics kind.

use upsbridge::dialect::{Failure, Parsed};

pub fn failure(f: &Failure) {
    let e = f.ups_error();
    assert!(
        !e.code.is_empty() && e.code.bytes().all(|b| b.is_ascii_digit()),
        "{f:?}"
    );
    assert!(!f.kind().is_empty());
}

pub fn parsed(result: Result<Parsed, Failure>) {
    match result {
        Err(f) => failure(&f),
        Ok(p) => {
            if let Err(f) = &p.request {
                failure(f);
            }
        }
    }
}
