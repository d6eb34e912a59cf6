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
//!
//! `translate_count time [ROUNDS]` times instead (no callgrind): each dialect's translation,
//! its request alone, and the libraries' floors under both, in the same run, as medians of
//! ROUNDS rounds (default 15). A floor is what the same bytes cost quick-xml or serde_json when
//! nothing is built from them: the request's events read and dropped by a reader that
//! resolves no namespace (or its JSON scanned), and UPS's answer scanned. What is above the
//! floors is ours: the trees, the writers, the plans, the REST call. The answer tree's parse
//! is timed on its own too.

use std::hint::black_box;

use bytes::Bytes;
use upsbridge::dialect::{
    legacy_json, oldxml, onepass, soap, tree, xmljson, CannedUps, Parsed, Route,
};

/// The allocator `upsbridge serve` runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const LEGACY_JSON: &[u8] = include_bytes!("../compare/rate_legacy.json");
const SOAP: &[u8] = include_bytes!("../compare/rate_soap.xml");
const OLD_XML: &[u8] = include_bytes!("../compare/rate_xml.xml");
const ANSWER: &[u8] = include_bytes!("../compare/rate_answer.json");

/// The dialects, each with its request body.
const DIALECTS: [(&str, &[u8]); 3] = [
    ("legacy_json", LEGACY_JSON),
    ("soap", SOAP),
    ("old_xml", OLD_XML),
];

/// The route old XML's rate comes by (`/ups.app/xml/Rate`).
fn old_xml_rate() -> Route {
    Route {
        dialect: &oldxml::OldXml,
        service: "Rate".into(),
    }
}

/// `body` (one of [`DIALECTS`]') parsed as `dialect` parses it: credentials out, REST call
/// built.
fn parsed(dialect: &str, body: &[u8], route: &Route) -> Parsed {
    match dialect {
        "legacy_json" => legacy_json::parse(black_box(body)),
        "soap" => soap::parse(black_box(body)),
        _ => oldxml::parse(route, black_box(body)),
    }
    .expect("parsed")
}

/// The size of the client's answer to `parsed`, UPS answering with `answer`.
fn exchanged(parsed: Parsed, answer: &Bytes) -> usize {
    let mut ups = CannedUps::new(200, answer.clone());
    ups.run(parsed.request).expect("answered").body.len()
}

/// Calls per round of the timing modes.
const PER_ROUND: u32 = 20_000;

/// Nanoseconds per translation of `body` as `dialect`, and per parse of its request alone.
fn translation_and_request(dialect: &str, body: &[u8], rounds: usize) -> (f64, f64) {
    let (answer, route) = (Bytes::from_static(ANSWER), old_xml_rate());
    let translation = median_ns(rounds, PER_ROUND, || {
        exchanged(parsed(dialect, body, &route), &answer)
    });
    let request = median_ns(rounds, PER_ROUND, || {
        black_box(parsed(dialect, body, &route));
        1
    });
    (translation, request)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || -> ! {
        eprintln!("usage: translate_count legacy_json|soap|old_xml COUNT | time [ROUNDS]");
        std::process::exit(2);
    };
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["time"] => time(15),
        ["time", rounds] => time(rounds.parse().unwrap_or_else(|_| usage())),
        [dialect, n] => {
            let Some(&(dialect, body)) = DIALECTS.iter().find(|(d, _)| *d == dialect) else {
                usage()
            };
            let n: u32 = n.parse().unwrap_or_else(|_| usage());
            let (answer, route) = (Bytes::from_static(ANSWER), old_xml_rate());
            let written: usize = (0..n)
                .map(|_| exchanged(parsed(dialect, body, &route), &answer))
                .sum();
            println!("{n} translations, {written} bytes answered");
        }
        _ => usage(),
    }
}

/// Nanoseconds per call of `f`: the median of `rounds` rounds of `per_round` calls.
fn median_ns(rounds: usize, per_round: u32, mut f: impl FnMut() -> usize) -> f64 {
    let mut each: Vec<f64> = (0..rounds)
        .map(|_| {
            let start = std::time::Instant::now();
            let n: usize = (0..per_round).map(|_| f()).sum();
            black_box(n);
            start.elapsed().as_nanos() as f64 / f64::from(per_round)
        })
        .collect();
    each.sort_by(f64::total_cmp);
    each[rounds / 2]
}

/// quick-xml's events of `xml`, read and dropped, end tags checked. No namespace is
/// resolved: the one pass resolves them only in the parts of a SOAP envelope that declare
/// one, so a resolving reader's floor would sit above part of what it does.
fn xml_events(xml: &[u8]) -> usize {
    let mut reader = onepass::plain_reader(xml);
    let mut events = 0;
    while !matches!(
        reader.read_event().expect("well-formed"),
        quick_xml::events::Event::Eof
    ) {
        events += 1;
    }
    events
}

/// `xml` written as JSON with no plan at all: each element a member, a leaf's trimmed text a
/// string (escaped as the one pass escapes it), no arrays, renames, drops or pruning. What any
/// writer of these events costs at least: the one pass does all of that on top.
fn naive_json(xml: &[u8]) -> usize {
    use quick_xml::events::Event;
    let mut reader = onepass::plain_reader(xml);
    let mut out = Vec::with_capacity(xml.len());
    // Per open element: members written, and whether its text was.
    let mut open: Vec<(u32, bool)> = vec![(0, false)];
    loop {
        match reader.read_event().expect("well-formed") {
            Event::Start(e) => {
                let parent = open.last_mut().expect("the document's level");
                out.push(if parent.0 == 0 { b'{' } else { b',' });
                parent.0 += 1;
                let name = std::str::from_utf8(onepass::local_name(&e)).expect("UTF-8");
                xmljson::write_json_str(&mut out, name);
                out.push(b':');
                open.push((0, false));
            }
            Event::Text(t) => {
                let text = std::str::from_utf8(&t).expect("UTF-8").trim();
                let leaf = open.last_mut().expect("the document's level");
                if *leaf == (0, false) && !text.is_empty() {
                    xmljson::write_json_str(&mut out, text);
                    leaf.1 = true;
                }
            }
            Event::End(_) => match open.pop().expect("an open element") {
                (0, false) => out.extend_from_slice(b"\"\""),
                (0, true) => {}
                _ => out.push(b'}'),
            },
            Event::Eof => break,
            _ => {}
        }
    }
    out.len()
}

/// serde_json's scan of `json`, checked as UTF-8 first as the answer's parse checks it.
fn json_scan(json: &[u8]) -> usize {
    let text = std::str::from_utf8(json).expect("UTF-8");
    let _: serde::de::IgnoredAny = serde_json::from_str(text).expect("JSON");
    text.len()
}

/// `translate_count time`: each dialect's translation, its request alone, and the libraries'
/// floors under both, in nanoseconds, measured in the same run.
fn time(rounds: usize) {
    let rounds = rounds.max(1);
    let answer_floor = median_ns(rounds, PER_ROUND, || json_scan(black_box(ANSWER)));
    let tree_parse = median_ns(rounds, PER_ROUND, || {
        tree::with_arena(|arena| {
            let parsed = tree::parse_in(arena, black_box(ANSWER));
            usize::from(parsed.is_some())
        })
    });
    println!(
        "UPS's answer: serde_json's scan {answer_floor:.0} ns; parsed into the borrowed tree {tree_parse:.0} ns"
    );
    println!("ns per translation; the request alone and the answer (the rest), each beside its");
    println!("floor; in [], the XML request's events written as JSON with no plan");
    println!(
        "dialect      translation   request (floor) [no plan]   answer (floor)   above the floors"
    );
    for (dialect, body) in DIALECTS {
        let (translation, request) = translation_and_request(dialect, body, rounds);
        let (request_floor, no_plan) = if dialect == "legacy_json" {
            let scan = median_ns(rounds, PER_ROUND, || json_scan(black_box(body)));
            (scan, " ".repeat(6))
        } else {
            let events = median_ns(rounds, PER_ROUND, || xml_events(black_box(body)));
            let naive = median_ns(rounds, PER_ROUND, || naive_json(black_box(body)));
            (events, format!("[{naive:>4.0}]"))
        };
        let floor = request_floor + answer_floor;
        println!(
            "{dialect:<12} {translation:>8.0}      {request:>5.0} ({request_floor:>4.0}) {no_plan}      {:>5.0} ({answer_floor:>4.0})     {:>5.0} ({:.0} %)",
            translation - request,
            translation - floor,
            (translation - floor) / translation * 100.0
        );
    }
}
