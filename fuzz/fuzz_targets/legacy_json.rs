//! Legacy JSON bodies (`/rest/<Svc>`, `/json/<Svc>` with a `UPSSecurity`/`Security` member).
#![no_main]

use libfuzzer_sys::fuzz_target;
use upsbridge::dialect::legacy_json;

mod check;

fuzz_target!(|data: &[u8]| {
    check::parsed(legacy_json::parse(data));
});
