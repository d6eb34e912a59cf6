//! Old XML bodies (`/ups.app/xml/<Svc>`: an `AccessRequest` document, then the service's
//! request document). The first input byte picks the path's service segment, the rest is the
//! body; the seeds in fuzz/seeds/old_xml/ start with the index of their service in SERVICES.
#![no_main]

use libfuzzer_sys::fuzz_target;
use upsbridge::dialect::{self, oldxml};

mod check;

/// `<Svc>` path segments: every service `oldxml::OldService::from_path` knows, in the casing
/// clients send, plus a lower-case alias and one it does not know (refused with a UPS code).
const SERVICES: [&str; 10] = [
    "Rate",
    "Track",
    "ShipConfirm",
    "ShipAccept",
    "Void",
    "TimeInTransit",
    "AV",
    "XAV",
    "rate",
    "Label",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let svc = SERVICES[usize::from(pick) % SERVICES.len()];
    // The route the proxy builds for this path (not a struct literal, so the target keeps
    // compiling if `Route` grows a field).
    let route = dialect::detect(&format!("/ups.app/xml/{svc}"), &http::HeaderMap::new())
        .expect("an /ups.app/xml/<Svc> path is an old-XML route");
    assert_eq!(route.dialect.name(), "xml");
    check::parsed(oldxml::parse(&route, body));
});
