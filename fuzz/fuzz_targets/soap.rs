//! SOAP envelopes (`/webservices/<Svc>`, `UPSSecurity` in the SOAP header).
#![no_main]

use libfuzzer_sys::fuzz_target;
use upsbridge::dialect::soap;

mod check;

fuzz_target!(|data: &[u8]| {
    check::parsed(soap::parse(data));
});
