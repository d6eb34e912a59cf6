//! Instructions per rate translation in process: a body dialect's request parsed (credentials
//! out, REST call built) and UPS's answer shaped, no network. Run it under callgrind twice and
//! take the difference, so start-up and the tables' one-time set-up drop out:
//!
//! ```sh
//! cargo build --release --example translate_count
//! for n in 10 2010; do valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!   target/release/examples/translate_count legacy_json $n 2>&1 | grep Collected; done
//! # (second count - first count) / 2000 = instructions per translation
//! ```
//!
//! The bodies are `benches/compare.sh`'s; UPS's answer is the simulator's `RateResponse` to
//! `rate_rest.json` (`benches/compare/rate_answer.json`, what `compare.sh` captures at start).
//! Dialects: `legacy_json`, `soap`, `old_xml`.

use std::hint::black_box;

use bytes::Bytes;
use upsbridge::dialect::{legacy_json, oldxml, soap, CannedUps, Parsed, Route};

/// The allocator `upsbridge serve` runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const LEGACY_JSON: &[u8] = include_bytes!("../compare/rate_legacy.json");
const SOAP: &[u8] = include_bytes!("../compare/rate_soap.xml");
const OLD_XML: &[u8] = include_bytes!("../compare/rate_xml.xml");
const ANSWER: &[u8] = include_bytes!("../compare/rate_answer.json");

/// The size of the client's answer to `parsed`, UPS answering with [`ANSWER`].
fn exchanged(parsed: Parsed, answer: &Bytes) -> usize {
    let mut ups = CannedUps::new(200, answer.clone());
    ups.run(parsed.request).expect("answered").body.len()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dialect), Some(n)) = (args.next(), args.next().and_then(|n| n.parse().ok())) else {
        eprintln!("usage: translate_count legacy_json|soap|old_xml COUNT");
        std::process::exit(2);
    };
    let answer = Bytes::from_static(ANSWER);
    let route = Route {
        dialect: &oldxml::OldXml,
        service: "Rate".into(),
    };
    let once = || match dialect.as_str() {
        "legacy_json" => exchanged(
            legacy_json::parse(black_box(LEGACY_JSON)).expect("parsed"),
            &answer,
        ),
        "soap" => exchanged(soap::parse(black_box(SOAP)).expect("parsed"), &answer),
        "old_xml" => exchanged(
            oldxml::parse(&route, black_box(OLD_XML)).expect("parsed"),
            &answer,
        ),
        other => {
            eprintln!("unknown dialect {other}");
            std::process::exit(2);
        }
    };
    let written: usize = (0..n).map(|_: u32| once()).sum();
    println!("{n} translations, {written} bytes answered");
}
