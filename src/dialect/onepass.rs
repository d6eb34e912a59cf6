//! One pass from an XML request element to its REST JSON, for the requests that are most of
//! the traffic (SOAP rates and shipments, old-XML rates: the requests whose REST call is read
//! from their `Request` member alone): quick-xml's events are written straight into the JSON
//! body, with no element tree, no `serde_json::Value` and no second serialisation.
//!
//! What it writes is what the tree path writes (`xmljson::to_json`, the service's rules,
//! `prune_empty`, `normalize_arrays`, `rest_body`), member for member; only a renamed member
//! may stand elsewhere in its object, which JSON does not weigh. Whatever one pass cannot
//! write that way makes it give up (`None`), and the caller takes the tree path, which also
//! words every error:
//! - an element repeated where the schema lists no array (the tree path makes one of it), or
//!   a listed one whose occurrences are not adjacent;
//! - an array item left empty (the tree path keeps or drops it by how many there are);
//! - a rule that moves, wraps or sets something the document has (see [`takes`]), or a
//!   `Last` element given twice with another member between;
//! - collected lines out of their table's order, or one with children;
//! - any input error, a DOCTYPE, or a limit reached.
//!
//! The differential tests (`tests/fuzz_dialects.rs`) hold both paths to the same JSON. Nothing
//! here logs: requests carry credentials.

use std::borrow::Cow;
use std::cell::RefCell;
use std::ops::Range;

use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::NsReader;
use smallvec::SmallVec;

use super::request_member::RequestMember;
use super::schema::{self, ArrayPaths, Rule};
use super::xmljson::{self, XMLNS};
use crate::error::Failure;
use crate::substring::trim;

/// Most members one object may have in one pass (UPS's request objects have fewer than 40).
const MAX_MEMBERS: usize = 64;

/// A request element written as REST JSON.
pub struct Written {
    /// `{"<wrapper>":{…}}`: the REST body.
    pub body: Vec<u8>,
    /// Where the value of its top-level `Request` member is in `body`, if it has one.
    pub request: Option<Range<usize>>,
    /// The text at each of [`Plan::captures`]' paths: of the first element there, if it is a
    /// leaf with text (trimmed), as the tree path's `Element::text_at` reads it.
    pub captured: SmallVec<[Option<String>; 1]>,
}

impl Written {
    /// What `services::to_rest` reads of the request, read from its `Request` member in the
    /// body (`None` if it does not parse).
    pub fn request_member(&self) -> Option<RequestMember<'_>> {
        match self.request.clone() {
            // The body is UTF-8 (written from decoded text); checking this member's few bytes
            // once costs less than serde_json checking each of its strings.
            Some(range) => {
                RequestMember::from_json(std::str::from_utf8(&self.body[range]).ok()?).ok()
            }
            None => Some(RequestMember::default()),
        }
    }
}

/// How a request element is written.
pub struct Plan<'a> {
    /// The REST root the JSON is wrapped in (`RateRequest`).
    pub wrapper: &'a str,
    /// The array paths below it.
    pub arrays: &'static ArrayPaths,
    /// The rules, applied in order.
    pub rules: &'static Rules,
    /// Exact paths read before the rules run (an element the rules drop included), by the
    /// JSON names of their ancestors and the element's own name.
    pub captures: &'static [&'static str],
}

/// A service's rule tables as one pass reads them: in order, each rule with the last name of
/// its pattern and its key, and a filter of the keys. The tables are static, so a service's
/// are compiled once and kept (building them per request was about 7k instructions of an
/// old-XML rate).
pub struct Rules {
    /// The rules in order, each with the last name of its pattern (the element's, or a
    /// collect's container's): unless it is a wildcard, most elements differ in it.
    entries: Vec<(&'static Rule, &'static str)>,
    /// Each rule's [`rule_key`]: an element is compared with every rule's key, one word each,
    /// and only with the rules whose key it matches by name.
    keys: Vec<u32>,
    filter: KeyFilter,
    /// Whether one pass can apply them at all ([`takes`]).
    pub takes: bool,
}

impl Rules {
    pub fn new(tables: &[&'static [Rule]]) -> Rules {
        let rules = || tables.iter().flat_map(|t| t.iter());
        let keys: Vec<u32> = rules().map(rule_key).collect();
        Rules {
            entries: rules().map(|r| (r, tail(r))).collect(),
            filter: KeyFilter::of(&keys),
            keys,
            takes: takes(tables),
        }
    }

    fn iter(&self) -> impl Iterator<Item = &'static Rule> + '_ {
        self.entries.iter().map(|&(rule, _)| rule)
    }
}

/// Whether one pass can apply these rules. It renames, drops, keeps the last of and collects
/// element by element, and takes a move within one parent for a rename. Other moves, fills,
/// wraps and conditional sets change nothing unless the document has what they act on, and
/// then one pass gives up; a default adds what is absent, which one pass cannot know in time.
pub fn takes(rules: &[&[Rule]]) -> bool {
    rules
        .iter()
        .flat_map(|t| t.iter())
        .all(|r| !matches!(r, Rule::Default(..)))
}

/// A reader over a document held as text: its events borrow the text. SOAP's resolves
/// namespaces (the envelope's and the payload's matter).
pub type Reader<'x> = NsReader<&'x [u8]>;

/// A reader that resolves no namespace: old XML's documents have none that matter, and it
/// reads them for four fifths of a resolving reader's instructions.
pub type PlainReader<'x> = quick_xml::Reader<&'x [u8]>;

/// A reader of `input` that resolves no namespace, each end tag checked against its start tag
/// (as the resolving readers are).
pub fn plain_reader(input: &[u8]) -> PlainReader<'_> {
    let mut reader = PlainReader::from_reader(input);
    reader.config_mut().check_end_names = true;
    reader
}

/// Where a body's namespace declarations may be: whether a part of it may declare one, asked
/// before reading that part with a reader that resolves none (which does not check
/// declarations: such a part goes to a resolving reader).
pub struct Declarations<'t> {
    text: &'t str,
    /// Where the last `xmlns` of `text` begins.
    last: Option<usize>,
}

impl<'t> Declarations<'t> {
    /// The declarations of `text`, searched for.
    pub fn of(text: &'t str) -> Self {
        Declarations {
            text,
            last: XMLNS.find_iter(text.as_bytes()).last(),
        }
    }

    /// The declarations of `text` whose last `xmlns` begins at `last` (a search already made,
    /// as the body's declarations were counted: [`xmljson::decode_within_limits`]).
    pub fn with_last(text: &'t str, last: Option<usize>) -> Self {
        Declarations { text, last }
    }

    /// Whether `part` may declare a namespace (`xmlns` occurs in it). For a part that runs to
    /// the end of the text, whether the last `xmlns` begins in it; any other part is searched.
    pub fn in_part(&self, part: &[u8]) -> bool {
        let start = (part.as_ptr() as usize).checked_sub(self.text.as_ptr() as usize);
        match start {
            Some(at) if at.checked_add(part.len()) == Some(self.text.len()) => {
                self.last.is_some_and(|last| last >= at)
            }
            _ => XMLNS.is_in(part),
        }
    }
}

/// What one pass reads a document's events from.
pub trait Events<'x> {
    fn next_event(&mut self) -> quick_xml::Result<Event<'x>>;
}

impl<'x> Events<'x> for Reader<'x> {
    fn next_event(&mut self) -> quick_xml::Result<Event<'x>> {
        self.read_event()
    }
}

impl<'x> Events<'x> for PlainReader<'x> {
    fn next_event(&mut self) -> quick_xml::Result<Event<'x>> {
        self.read_event()
    }
}

/// The part of `input` that `part` (a slice an event borrowed from it) is.
pub fn in_input<'x>(input: &'x str, part: &[u8]) -> Option<&'x str> {
    let at = (part.as_ptr() as usize).checked_sub(input.as_ptr() as usize)?;
    input.get(at..at.checked_add(part.len())?)
}

/// The local name of `e` (after the first `:`), as `QName::local_name` gives it, found by a
/// plain loop: element names are a few bytes, and quick-xml's `memchr` for the `:` costs a call
/// and its vector set-up for each one (about 75 instructions; the loop saves 1.1 % of a SOAP
/// or old-XML translation in the plain release build, nothing measurable in the
/// profile-guided one, which handles the call itself).
pub fn local_name<'e>(e: &'e BytesStart<'_>) -> &'e [u8] {
    let name = e.name().into_inner();
    match name.iter().position(|&b| b == b':') {
        Some(colon) => &name[colon + 1..],
        None => name,
    }
}

/// [`xmljson::event_text`] of an event read from `input`: a text borrowed from it that has
/// no end of line to normalise is taken as it stands, without decoding its bytes again
/// (`input` is text already; the reader only saw bytes).
pub fn event_text<'x>(input: &'x str, event: &Event<'x>) -> Result<Option<Cow<'x, str>>, Failure> {
    if let Event::Text(t) = event {
        let bytes: &[u8] = t;
        // Anything else (a `\r`, a non-ASCII end of line) is what quick-xml normalises. One
        // loop over the bytes: texts are short, and `is_ascii` plus a `memchr` for `\r` cost
        // two calls per text (about 1.2 % of a SOAP or old-XML translation in the plain
        // release build; the profile-guided build showed no difference).
        if bytes.iter().all(|&b| b.is_ascii() && b != b'\r') {
            if let Some(text) = in_input(input, bytes) {
                return Ok(Some(Cow::Borrowed(text)));
            }
        }
    }
    xmljson::event_text(event)
}

/// Read up to the root element's start tag, past a declaration, comments, processing
/// instructions and whitespace; `None` for anything else first.
pub fn root_start<'x>(input: &'x str, reader: &mut impl Events<'x>) -> Option<BytesStart<'x>> {
    loop {
        match reader.next_event().ok()? {
            Event::Start(e) => return Some(e),
            Event::Empty(_) | Event::End(_) | Event::Eof => return None,
            other => {
                let text = event_text(input, &other).ok()?;
                if text.is_some_and(|t| !t.trim().is_empty()) {
                    return None;
                }
            }
        }
    }
}

/// Read past the element whose start tag was just read, `depth` deep, checking what the
/// tree path checks (limits, entities, DOCTYPE) without keeping anything.
pub fn skip_element<'x>(
    input: &'x str,
    reader: &mut impl Events<'x>,
    depth: usize,
    count: &mut usize,
) -> Option<()> {
    skip(input, reader, depth, count, None).map(drop)
}

/// A credential block (`UPSSecurity` of a SOAP header, or old XML's `AccessRequest`) whose
/// start tag was just read, `depth` deep, read to its end tag: its access key, user id and
/// password, trimmed, as the tree path reads them from the block's tree (a leaf at a known
/// path; text beside child elements is no value). `None` where the tree path words an error:
/// an element given twice in the block, a limit, text the reader refuses.
pub fn credential_block<'x>(
    input: &'x str,
    reader: &mut impl Events<'x>,
    block: &'x str,
    depth: usize,
    count: &mut usize,
) -> Option<[String; 3]> {
    /// An open element of the block: its name and its children's names so far.
    struct Open<'x> {
        name: &'x str,
        children: SmallVec<[&'x str; 4]>,
    }
    let mut open: SmallVec<[Open<'x>; 4]> = SmallVec::new();
    open.push(Open {
        name: block,
        children: SmallVec::new(),
    });
    let mut fields: [String; 3] = Default::default();
    // The innermost element's text (what a leaf holds when it ends): lent by the input
    // unless it comes in parts. Text after an end tag is its parent's, which has a child
    // and so no text of its own.
    let mut text: Cow<'x, str> = Cow::Borrowed("");
    loop {
        let (e, empty) = match reader.next_event().ok()? {
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::End(_) => {
                let closed = open.pop()?;
                if open.is_empty() {
                    return Some(fields);
                }
                if closed.children.is_empty() {
                    credential_leaf(block, &open, closed.name, &text, &mut fields);
                }
                text = Cow::Borrowed("");
                continue;
            }
            Event::Eof => return None,
            other => {
                match event_text(input, &other).ok()? {
                    Some(t) if text.is_empty() => text = t,
                    Some(t) => text.to_mut().push_str(&t),
                    None => {}
                }
                continue;
            }
        };
        xmljson::counted(depth + open.len(), count).ok()?;
        let name = in_input(input, local_name(&e))?;
        let parent = open.last_mut()?;
        // A block of more children than any credential block has goes to the tree path,
        // which checks repeats with a set: this scan is quadratic (100,000 children took
        // seconds).
        if parent.children.len() >= MAX_CREDENTIAL_CHILDREN || parent.children.contains(&name) {
            return None;
        }
        parent.children.push(name);
        text = Cow::Borrowed("");
        if empty {
            credential_leaf(block, &open, name, "", &mut fields);
        } else {
            open.push(Open {
                name,
                children: SmallVec::new(),
            });
        }
    }

    /// Leaf `name`, below the `open` elements (the block first), ended holding `text`.
    fn credential_leaf(
        block: &str,
        open: &[Open<'_>],
        name: &str,
        text: &str,
        fields: &mut [String; 3],
    ) {
        let below_block = open.iter().skip(1).map(|o| o.name).chain([name]);
        let path: SmallVec<[&str; 4]> = below_block.collect();
        let field = match (block, path.as_slice()) {
            ("UPSSecurity", ["ServiceAccessToken", "AccessLicenseNumber"])
            | ("AccessRequest", ["AccessLicenseNumber"]) => 0,
            ("UPSSecurity", ["UsernameToken", "Username"]) | ("AccessRequest", ["UserId"]) => 1,
            ("UPSSecurity", ["UsernameToken", "Password"]) | ("AccessRequest", ["Password"]) => 2,
            _ => return,
        };
        trim(text).clone_into(&mut fields[field]);
    }
}

/// Most children one element of a credential block read in one pass may have (`UPSSecurity`
/// has two, `UsernameToken` two, `AccessRequest` three).
const MAX_CREDENTIAL_CHILDREN: usize = 16;

/// [`skip_element`], keeping the element's own text in `text` when given; whether it had
/// child elements.
fn skip<'x>(
    input: &'x str,
    reader: &mut impl Events<'x>,
    depth: usize,
    count: &mut usize,
    mut text: Option<&mut String>,
) -> Option<bool> {
    let (mut open, mut children) = (1usize, false);
    loop {
        match reader.next_event().ok()? {
            Event::Start(_) => {
                xmljson::counted(depth + open, count).ok()?;
                (open, children) = (open + 1, true);
            }
            Event::Empty(_) => {
                xmljson::counted(depth + open, count).ok()?;
                children = true;
            }
            Event::End(_) => {
                open -= 1;
                if open == 0 {
                    return Some(children);
                }
            }
            Event::Eof => return None,
            other => {
                let t = event_text(input, &other).ok()?;
                if let (Some(t), Some(text), 1) = (t, text.as_deref_mut(), open) {
                    text.push_str(&t);
                }
            }
        }
    }
}

/// Write the element whose start tag the reader has just returned (`depth` deep, `count`
/// elements into its document, itself included) as the plan says, reading to its end tag.
pub fn write_request<'x>(
    input: &'x str,
    reader: &mut impl Events<'x>,
    depth: usize,
    count: &mut usize,
    plan: &Plan<'_>,
) -> Option<Written> {
    thread_local! {
        static KEPT: RefCell<Kept> = const {
            RefCell::new(Kept { decided: Vec::new(), scratch: Scratch::EMPTY })
        };
    }
    KEPT.with(|kept| match kept.try_borrow_mut() {
        Ok(mut kept) => {
            let Kept { decided, scratch } = &mut *kept;
            let paths = Decided::for_plan(decided, plan);
            write_with(input, reader, depth, count, plan, paths, scratch)
        }
        // Nothing writes two requests at once on one thread; if something did, the second
        // would work its paths out afresh.
        Err(_) => write_with(
            input,
            reader,
            depth,
            count,
            plan,
            &mut Paths::default(),
            &mut Scratch::default(),
        ),
    })
}

/// What a thread keeps of one pass from one request to the next.
struct Kept {
    /// The paths each plan's requests have met.
    decided: Vec<Decided>,
    scratch: Scratch,
}

/// The writer's working buffers, kept empty between requests so that their blocks are
/// written again while still in cache: allocated afresh, they came from blocks freed long
/// before (mimalloc hands out a page's other free blocks first), which cost a cache miss
/// each (twentieth session's profile).
struct Scratch {
    text: String,
    /// An empty stack; its elements' names borrow a document, so it is kept as `'static`
    /// and lent out for the document's lifetime.
    stack: Vec<Open<'static>>,
    seen: Vec<&'static str>,
}

impl Default for Scratch {
    fn default() -> Scratch {
        Scratch::EMPTY
    }
}

impl Scratch {
    const EMPTY: Scratch = Scratch {
        text: String::new(),
        stack: Vec::new(),
        seen: Vec::new(),
    };

    /// Most of each kept (a crafted document may grow them further, once).
    const MAX_TEXT: usize = 4096;
    const MAX_STACK: usize = 64;
    const MAX_SEEN: usize = 1024;

    /// The buffers for one document, empty, at their usual sizes at least.
    fn lend<'x>(&mut self) -> (String, Vec<Open<'x>>, Vec<&'x str>) {
        let (mut text, mut stack, mut seen) = (
            std::mem::take(&mut self.text),
            std::mem::take(&mut self.stack),
            std::mem::take(&mut self.seen),
        );
        // A leaf's text; most are short.
        text.reserve(64);
        stack.reserve(16);
        seen.reserve(64);
        (text, stack, seen)
    }

    /// Take the buffers back, emptied, unless one grew past its bound.
    fn keep(&mut self, mut text: String, stack: Vec<Open<'_>>, seen: Vec<&str>) {
        if text.capacity() <= Self::MAX_TEXT {
            text.clear();
            self.text = text;
        }
        if stack.capacity() <= Self::MAX_STACK {
            self.stack = emptied(stack);
        }
        if seen.capacity() <= Self::MAX_SEEN {
            self.seen = emptied(seen);
        }
    }
}

/// `v` emptied, as a vector of the same layout whose elements may live longer: nothing
/// borrowed is left in it. Collecting in place keeps the block (the test below checks).
fn emptied<T, U>(mut v: Vec<T>) -> Vec<U> {
    v.clear();
    v.into_iter().map(|_| unreachable!("cleared")).collect()
}

fn write_with<'x>(
    input: &'x str,
    reader: &mut impl Events<'x>,
    depth: usize,
    count: &mut usize,
    plan: &Plan<'_>,
    paths: &mut Paths,
    scratch: &mut Scratch,
) -> Option<Written> {
    let (text, stack, seen) = scratch.lend();
    let mut w = Writer {
        input,
        out: Vec::with_capacity(input.len()),
        paths,
        text,
        stack,
        seen,
        request: None,
        captured: plan.captures.iter().map(|_| None).collect(),
        capture_seen: plan.captures.iter().map(|_| false).collect(),
        plan,
        depth,
    };
    let written = w.write(reader, count);
    let Writer {
        out,
        text,
        stack,
        seen,
        request,
        captured,
        ..
    } = w;
    scratch.keep(text, stack, seen);
    written.map(|()| Written {
        body: out,
        request,
        captured,
    })
}

/// What kind of array item an element is.
#[derive(Clone, Copy, PartialEq)]
enum Item {
    /// Of an array the schema lists, or of a repeated `Last` element: empty, it ends one pass.
    Listed,
    /// A line a `Collect` rule gathers: empty, it is left out.
    Collected,
}

/// The array being written among an object's members.
struct OpenArray<'x> {
    name: &'x str,
    /// Where its member begins (at its comma).
    start: usize,
    items: u32,
    collected: bool,
}

/// An element being written.
struct Open<'x> {
    /// Its name in the JSON (after renames).
    name: &'x str,
    /// Its path in [`Writer::paths`].
    node: u32,
    /// Where it begins in the output (at its comma), to take it back if pruned.
    start: usize,
    /// Where its value begins.
    value_at: usize,
    /// It has a child element, so it is an object (its text is ignored).
    object: bool,
    /// Members written into it (an array counts once).
    members: u32,
    /// It is an item of an array.
    item: Option<Item>,
    /// The array among its members still open (`]` not yet written).
    open_array: Option<OpenArray<'x>>,
    /// Where the names of its members so far begin in [`Writer::seen`].
    seen_from: usize,
    /// Its last member: name, where it begins, and whether it is still written.
    last: Option<(&'x str, usize, bool)>,
    /// The place in its `Collect` rule's table of the last line collected under it.
    collected_at: usize,
    /// Which capture it is the element of.
    capture: Option<usize>,
}

impl<'x> Open<'x> {
    fn new(name: &'x str, node: u32, start: usize, item: Option<Item>) -> Self {
        Open {
            name,
            node,
            start,
            value_at: start,
            object: false,
            members: 0,
            item,
            open_array: None,
            seen_from: 0,
            last: None,
            collected_at: 0,
            capture: None,
        }
    }
}

struct Writer<'x, 'a> {
    input: &'x str,
    out: Vec<u8>,
    /// What the plan does with each path this thread has met.
    paths: &'a mut Paths,
    /// The innermost element's text so far.
    text: String,
    stack: Vec<Open<'x>>,
    /// The member names of every open element, the innermost's last: an element's children
    /// are gone from it when it ends. (Kept in each element, they made it four times the
    /// size, copied on every push and pop of the stack.)
    seen: Vec<&'x str>,
    request: Option<Range<usize>>,
    captured: SmallVec<[Option<String>; 1]>,
    capture_seen: SmallVec<[bool; 1]>,
    plan: &'a Plan<'a>,
    /// How deep the root sits in its document.
    depth: usize,
}

/// The last name of the pattern a rule acts on.
fn tail(rule: &Rule) -> &'static str {
    let pattern = match *rule {
        Rule::Drop(p)
        | Rule::Rename(p, _)
        | Rule::Last(p)
        | Rule::Wrap(p, ..)
        | Rule::Collect(p, ..)
        | Rule::Move(p, _)
        | Rule::Fill(p, _)
        | Rule::SetIf(p, ..)
        | Rule::Default(p, _) => p,
    };
    schema::last_segment(pattern)
}

/// A name's length, first and last byte in one word: an element's name and a rule's last name
/// that differ mostly differ in it.
fn name_key(name: &str) -> u32 {
    match name.as_bytes() {
        [] => 0,
        b @ [first, .., last] | b @ [first @ last] => {
            (b.len().min(0x7ffe) as u32) << 16 | (*first as u32) << 8 | *last as u32
        }
    }
}

/// A rule's key: a wildcard's matches any element ([`WILD`]); a collect's is its container's
/// name key marked [`COLLECT`] (compared with the parent's); any other's is its name key.
fn rule_key(rule: &Rule) -> u32 {
    match tail(rule) {
        "*" | "**" => WILD,
        name if matches!(rule, Rule::Collect(..)) => COLLECT | name_key(name),
        name => name_key(name),
    }
}

const WILD: u32 = u32::MAX;
const COLLECT: u32 = 1 << 31;

/// Which rule keys a plan has, one bit per hash of a key: an element whose key and parent's
/// key are both absent matches no rule, and two bit tests say so where comparing it with
/// every rule's key cost a scan per element.
struct KeyFilter {
    bits: [u64; 4],
    /// A wildcard rule matches every element.
    wild: bool,
}

impl KeyFilter {
    fn of(keys: &[u32]) -> Self {
        let mut filter = KeyFilter {
            bits: [0; 4],
            wild: false,
        };
        for &k in keys {
            if k == WILD {
                filter.wild = true;
            } else {
                let b = Self::bit(k);
                filter.bits[b / 64] |= 1 << (b % 64);
            }
        }
        filter
    }

    fn bit(key: u32) -> usize {
        (key.wrapping_mul(0x9e37_79b1) >> 24) as usize
    }

    fn has(&self, key: u32) -> bool {
        let b = Self::bit(key);
        self.bits[b / 64] & 1 << (b % 64) != 0
    }

    /// Whether a rule's key may be the element's or its parent's (false: none is).
    fn may_match(&self, key: u32, parent_key: u32) -> bool {
        self.wild || self.has(key) || self.has(parent_key)
    }
}

/// The parent path of a rule's exact path.
fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(parent, _)| parent)
}

/// What one pass does with an element at a path: the plan's rules and arrays decide it from
/// the path alone, so it is worked out the first time a thread meets the path and looked up
/// after (the rule scan, the path kept as text and matched against patterns, and the array
/// lookup were about half of one pass's work per element).
#[derive(Clone, Copy)]
enum Decision {
    /// A rule one pass does not apply acts on it: the tree path writes the request.
    GiveUp,
    /// Dropped. `reaches_below`: a rule one pass does not apply, or a capture, may act on
    /// something below it (a pattern with a wildcard may), so it must not have children.
    Drop { reaches_below: bool },
    Keep {
        /// Its name in the JSON when a rule renames it.
        renamed: Option<&'static str>,
        /// Only its last occurrence counts.
        last: bool,
        /// A line a `Collect` rule gathers: its place in the rule's table.
        collect: Option<usize>,
        /// An array's item.
        listed: bool,
    },
}

/// A path met, and what the plan does there.
struct PathNode {
    /// The element's name as documents give it (before any rename), and its [`name_key`].
    name: Box<str>,
    key: u32,
    /// The `/`-joined JSON names (after renames) from below the root down to it: what
    /// patterns and array paths are matched against.
    path: Box<str>,
    /// The capture whose path this is.
    capture: Option<usize>,
    decision: Decision,
    /// `"name":` in the JSON, escaped (an XML name may hold a `"` quick-xml lets through).
    member: Box<[u8]>,
    children: Vec<u32>,
}

/// The paths of one plan a thread has met, as a tree from the root element.
struct Paths {
    nodes: Vec<PathNode>,
    /// The bytes their names, paths and members hold.
    bytes: usize,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            nodes: vec![PathNode {
                name: "".into(),
                key: 0,
                path: "".into(),
                capture: None,
                decision: Decision::GiveUp,
                member: Box::default(),
                children: Vec::new(),
            }],
            bytes: 0,
        }
    }
}

impl Paths {
    const ROOT: u32 = 0;
    /// Most paths kept per plan and thread: UPS's rate and ship requests have a few hundred.
    /// A request with more goes to the tree path; the next request starts afresh.
    const MAX: usize = 1024;
    /// Most bytes of names and paths kept per plan and thread (UPS's paths are tens of bytes):
    /// a document of long names, sent before any credential is checked, cannot make a
    /// thread hold megabytes.
    const MAX_BYTES: usize = 256 << 10;

    fn full(&self) -> bool {
        self.nodes.len() >= Self::MAX || self.bytes >= Self::MAX_BYTES
    }

    /// The path of the element `name` under `parent` (whose JSON name is `parent_name`),
    /// worked out if new; `None` when there is no room for it.
    fn child(
        &mut self,
        parent: u32,
        name: &str,
        parent_name: &str,
        plan: &Plan<'_>,
    ) -> Option<u32> {
        let key = name_key(name);
        let nodes = &self.nodes;
        let known = nodes[parent as usize].children.iter().find(|&&c| {
            let n = &nodes[c as usize];
            n.key == key && *n.name == *name
        });
        if let Some(&id) = known {
            return Some(id);
        }
        if self.full() {
            return None;
        }
        let node = decide(&nodes[parent as usize].path, name, parent_name, plan);
        let bytes = node.name.len() + node.path.len() + node.member.len();
        if self.bytes + bytes > Self::MAX_BYTES {
            return None;
        }
        let id = u32::try_from(nodes.len()).ok()?;
        self.bytes += bytes;
        self.nodes.push(node);
        self.nodes[parent as usize].children.push(id);
        Some(id)
    }
}

/// A thread's [`Paths`] of one plan (the plans are static: one per service).
struct Decided {
    rules: &'static Rules,
    arrays: &'static ArrayPaths,
    captures: &'static [&'static str],
    paths: Paths,
}

impl Decided {
    fn for_plan<'d>(decided: &'d mut Vec<Decided>, plan: &Plan<'_>) -> &'d mut Paths {
        let i = match decided.iter().position(|d| {
            std::ptr::eq(d.rules, plan.rules)
                && std::ptr::eq(d.arrays, plan.arrays)
                && d.captures == plan.captures
        }) {
            Some(i) => i,
            None => {
                decided.push(Decided {
                    rules: plan.rules,
                    arrays: plan.arrays,
                    captures: plan.captures,
                    paths: Paths::default(),
                });
                decided.len() - 1
            }
        };
        let paths = &mut decided[i].paths;
        // Full (a request with many paths, or crafted ones): begin again rather than hold
        // every request after it to the tree path.
        if paths.full() {
            *paths = Paths::default();
        }
        paths
    }
}

/// What the plan does with an element `name` under the path `parent_path`, whose JSON name
/// is `parent_name`: the rules in order (a rename changes the name the next ones see).
fn decide(parent_path: &str, name: &str, parent_name: &str, plan: &Plan<'_>) -> PathNode {
    let mut path = String::with_capacity(parent_path.len() + 1 + name.len());
    path.push_str(parent_path);
    if !path.is_empty() {
        path.push('/');
    }
    let name_at = path.len();
    path.push_str(name);
    let capture = plan.captures.iter().position(|c| *c == path);
    let original = name;
    let (mut name, mut renamed, mut last, mut collect) = (name, None, false, None);
    let parent_key = COLLECT | name_key(parent_name);
    let rules = plan.rules;
    // Most elements match no rule's key, and the filter says so without the scan.
    let mut next = if rules.filter.may_match(name_key(name), parent_key) {
        0
    } else {
        rules.keys.len()
    };
    let decision = loop {
        let key = name_key(name);
        let Some(i) = rules.keys[next..]
            .iter()
            .position(|&k| k == key || k == parent_key || k == WILD)
            .map(|at| next + at)
        else {
            let listed = collect.is_some() || (!last && plan.arrays.contains(path.as_str()));
            break Decision::Keep {
                renamed,
                last,
                collect,
                listed,
            };
        };
        next = i + 1;
        let (rule, tail) = rules.entries[i];
        let named = if matches!(rule, Rule::Collect(..)) {
            parent_name
        } else {
            name
        };
        if tail != named && tail != "*" && tail != "**" {
            continue;
        }
        let mut rename = |path: &mut String, new_name: &'static str| {
            path.truncate(name_at);
            path.push_str(new_name);
            renamed = Some(new_name);
            new_name
        };
        let here = |p: &str| schema::pattern_matches(p, &path);
        match *rule {
            Rule::Drop(p) if here(p) => {
                break Decision::Drop {
                    reaches_below: reaches_below(&path, plan),
                }
            }
            Rule::Rename(p, new_name) if here(p) => name = rename(&mut path, new_name),
            Rule::Move(from, to) if here(from) => {
                if from.contains('*') || parent_of(from) != parent_of(to) {
                    break Decision::GiveUp;
                }
                name = rename(&mut path, schema::last_segment(to));
            }
            Rule::Fill(from, _) | Rule::SetIf(from, ..) | Rule::Wrap(from, ..) if here(from) => {
                break Decision::GiveUp
            }
            Rule::Last(p) if here(p) => last = true,
            Rule::Collect(pattern, from, into)
                if collect.is_none() && schema::pattern_matches(pattern, parent_path) =>
            {
                let place = if name == into {
                    Some(0)
                } else {
                    from.iter().position(|f| *f == name).map(|i| i + 1)
                };
                if let Some(place) = place {
                    collect = Some(place);
                    name = rename(&mut path, into);
                }
            }
            _ => {}
        }
    };
    let mut member = Vec::with_capacity(name.len() + 3);
    xmljson::write_json_str(&mut member, name);
    member.push(b':');
    PathNode {
        name: original.into(),
        key: name_key(original),
        path: path.into(),
        capture,
        decision,
        member: member.into(),
        children: Vec::new(),
    }
}

/// Whether a rule one pass does not apply, or a capture, may act on something below `path`
/// (a pattern with a wildcard may).
fn reaches_below(path: &str, plan: &Plan<'_>) -> bool {
    let below = |p: &str| {
        p.contains('*')
            || p.strip_prefix(path)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    plan.rules.iter().any(|r| match *r {
        Rule::Move(from, _)
        | Rule::Fill(from, _)
        | Rule::SetIf(from, ..)
        | Rule::Wrap(from, ..) => below(from),
        _ => false,
    }) || plan.captures.iter().any(|c| below(c))
}

impl<'x> Writer<'x, '_> {
    /// Write the root element whose start tag was just read, to its end tag.
    fn write(&mut self, reader: &mut impl Events<'x>, count: &mut usize) -> Option<()> {
        let plan = self.plan;
        self.out.push(b'{');
        xmljson::write_json_str(&mut self.out, plan.wrapper);
        self.out.push(b':');
        let at = self.out.len();
        // The root's own name is never read (no indicator, no `Request` at the top).
        self.stack.push(Open::new("", Paths::ROOT, at, None));
        loop {
            match reader.next_event().ok()? {
                Event::Start(e) => self.start(reader, &e, false, count)?,
                Event::Empty(e) => self.start(reader, &e, true, count)?,
                Event::End(_) => {
                    self.end()?;
                    if self.stack.is_empty() {
                        break;
                    }
                }
                Event::Eof => return None,
                other => {
                    let text = event_text(self.input, &other).ok()?;
                    // Only a leaf's text counts: an element with children is an object.
                    if let (Some(t), Some(top)) = (text, self.stack.last()) {
                        if !top.object {
                            self.text.push_str(&t);
                        }
                    }
                }
            }
        }
        self.out.push(b'}');
        Some(())
    }

    fn start(
        &mut self,
        reader: &mut impl Events<'x>,
        e: &BytesStart<'x>,
        empty: bool,
        count: &mut usize,
    ) -> Option<()> {
        let depth = self.depth + self.stack.len();
        xmljson::counted(depth, count).ok()?;
        let original = in_input(self.input, local_name(e))?;
        let parent = self.stack.last_mut()?;
        if !parent.object {
            parent.object = true;
            self.out.push(b'{');
        }
        self.text.clear();
        let id = self
            .paths
            .child(parent.node, original, parent.name, self.plan)?;
        let node = &self.paths.nodes[id as usize];
        // Only the first element at a capture's path is read.
        let capture = node
            .capture
            .filter(|&i| !std::mem::replace(&mut self.capture_seen[i], true));
        // An absent value: no member at all (and nothing one pass can capture).
        if xmljson::is_nil(e) {
            return match (capture, empty) {
                (Some(_), _) => None,
                (None, true) => Some(()),
                (None, false) => skip_element(self.input, reader, depth, count),
            };
        }
        let (renamed, last, collect, listed) = match node.decision {
            Decision::GiveUp => return None,
            Decision::Drop { reaches_below } => {
                // What a move or a capture would have taken out first must not be in it.
                if !empty && reaches_below {
                    return None;
                }
                if empty {
                    return Some(());
                }
                let Some(i) = capture else {
                    return skip_element(self.input, reader, depth, count);
                };
                let mut text = String::new();
                let children = skip(self.input, reader, depth, count, Some(&mut text))?;
                let text = text.trim();
                self.captured[i] = (!children && !text.is_empty()).then(|| text.to_string());
                return Some(());
            }
            Decision::Keep {
                renamed,
                last,
                collect,
                listed,
            } => (renamed, last, collect, listed),
        };
        let name = renamed.unwrap_or(original);
        let parent = self.stack.last_mut()?;
        if let Some(place) = collect {
            // Lines are gathered in the rule's order: what is there already, then each name.
            if place < parent.collected_at {
                return None;
            }
            parent.collected_at = place;
        }
        let repeated = self.seen[parent.seen_from..].contains(&name);
        let (start, item) = if repeated && !last {
            // Only the next item of the array being written can be written in one pass.
            let array = parent
                .open_array
                .as_mut()
                .filter(|a| listed && a.name == name && a.collected == collect.is_some())?;
            let start = self.out.len();
            if array.items > 0 {
                self.out.push(b',');
            }
            array.items += 1;
            (
                start,
                Some(if array.collected {
                    Item::Collected
                } else {
                    Item::Listed
                }),
            )
        } else {
            if repeated {
                // Given again where one counts: this one replaces the one just written.
                let (previous, at, written) = parent.last?;
                if previous != name {
                    return None;
                }
                if written {
                    self.out.truncate(at);
                    parent.members -= 1;
                }
            } else {
                // `seen` is searched linearly: a crafted object with thousands of members
                // goes to the tree path, whose map hashes them.
                if self.seen.len() - parent.seen_from >= MAX_MEMBERS {
                    return None;
                }
                self.seen.push(name);
            }
            close_array(&mut self.out, parent);
            let start = self.out.len();
            parent.last = Some((name, start, true));
            parent.members += 1;
            if parent.members > 1 {
                self.out.push(b',');
            }
            self.out.extend_from_slice(&node.member);
            if listed {
                self.out.push(b'[');
                parent.open_array = Some(OpenArray {
                    name,
                    start,
                    items: 1,
                    collected: collect.is_some(),
                });
                let item = if collect.is_some() {
                    Item::Collected
                } else {
                    Item::Listed
                };
                (self.out.len(), Some(item))
            } else {
                (start, None)
            }
        };
        let mut open = Open::new(name, id, start, item);
        open.value_at = self.out.len();
        open.capture = capture;
        open.seen_from = self.seen.len();
        self.stack.push(open);
        if empty {
            self.end()?;
        }
        Some(())
    }

    fn end(&mut self) -> Option<()> {
        let mut open = self.stack.pop()?;
        self.seen.truncate(open.seen_from);
        let indicator = open.name.ends_with("Indicator");
        let root = self.stack.is_empty();
        let text = trim(&self.text);
        if let Some(i) = open.capture {
            self.captured[i] = (!open.object && !text.is_empty()).then(|| text.to_string());
        }
        let kept = if open.object {
            close_array(&mut self.out, &mut open);
            // Emptied by pruning: gone, unless an indicator's presence is what it says.
            let kept = open.members > 0 || (indicator && open.item.is_none()) || root;
            if kept {
                self.out.push(b'}');
            }
            kept
        } else if root {
            // The request is an object whatever text it holds, as on the tree path.
            self.out.extend_from_slice(b"{}");
            true
        } else if !text.is_empty() {
            xmljson::write_json_str(&mut self.out, text);
            true
        } else if indicator && open.item.is_none() {
            self.out.extend_from_slice(b"\"\"");
            true
        } else {
            false
        };
        let parent = self.stack.last_mut();
        match (open.item, kept, open.object) {
            // A collected line is text: one with children the tree path leaves out.
            (Some(Item::Collected), _, true) => return None,
            (Some(Item::Collected), false, _) => {
                self.out.truncate(open.start);
                parent?.open_array.as_mut()?.items -= 1;
            }
            (Some(Item::Listed), false, _) => return None,
            (None, false, _) => {
                self.out.truncate(open.start);
                if let Some(parent) = parent {
                    parent.members -= 1;
                    if let Some(last) = &mut parent.last {
                        last.2 = false;
                    }
                }
            }
            (_, true, _) => {
                if self.stack.len() == 1 && open.item.is_none() && open.name == "Request" {
                    self.request = Some(open.value_at..self.out.len());
                }
            }
        }
        Some(())
    }
}

/// Close the array being written among `open`'s members: `]`, or, when every item was left
/// out, the member taken back.
fn close_array(out: &mut Vec<u8>, open: &mut Open<'_>) {
    let Some(array) = open.open_array.take() else {
        return;
    };
    if array.items > 0 {
        out.push(b']');
    } else {
        out.truncate(array.start);
        open.members -= 1;
        if let Some(last) = &mut open.last {
            last.2 = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kept buffers are the blocks the last document used: emptying a vector of
    /// borrowed names into one of `'static` ones collects it in place.
    #[test]
    fn a_threads_writer_buffers_are_the_blocks_its_last_document_used() {
        let doc = String::from("<a><b>1</b></a>");
        let mut scratch = Scratch::default();
        let (text, mut stack, mut seen) = scratch.lend();
        stack.push(Open::new(&doc[1..2], Paths::ROOT, 0, None));
        seen.push(&doc[4..5]);
        let blocks = (
            stack.as_ptr() as usize,
            seen.as_ptr() as usize,
            text.as_ptr(),
        );
        scratch.keep(text, stack, seen);
        drop(doc);
        let (text, stack, seen): (_, Vec<Open<'static>>, Vec<&'static str>) = scratch.lend();
        assert!(stack.is_empty() && seen.is_empty() && text.is_empty());
        assert_eq!(
            (
                stack.as_ptr() as usize,
                seen.as_ptr() as usize,
                text.as_ptr()
            ),
            blocks
        );
        // One grown past its bound is let go.
        let mut big = String::with_capacity(Scratch::MAX_TEXT + 1);
        big.push('x');
        scratch.keep(big, stack, seen);
        assert_eq!(scratch.text.capacity(), 0);
        assert_eq!(scratch.stack.capacity(), 16);
    }

    #[test]
    fn a_part_to_the_end_declares_what_begins_in_it_and_any_other_part_is_searched() {
        let text = "<e xmlns:a='u'><a:b>xmlns</a:b><c/></e>";
        let declarations = Declarations::of(text);
        let bytes = text.as_bytes();
        let second = text.rfind("xmlns").unwrap();
        // To the end: whether the last `xmlns` begins in the part.
        assert!(declarations.in_part(&bytes[second..]));
        assert!(!declarations.in_part(&bytes[second + 1..]));
        assert!(declarations.in_part(bytes));
        // Not to the end (or another text): searched.
        assert!(declarations.in_part(&bytes[3..8]));
        assert!(!declarations.in_part(&bytes[4..9]));
        assert!(declarations.in_part(b"xmlns"));
        assert!(!declarations.in_part(b"<a/>"));
        // No `xmlns` at all.
        let none = Declarations::of("<e><b/></e>");
        assert!(!none.in_part(b"<e><b/></e>"));
        assert!(!none.in_part(&"<e><b/></e>".as_bytes()[3..]));
        // As counted by the body's decoding.
        let (decoded, last) = xmljson::decode_within_limits(bytes).unwrap();
        assert_eq!(last, Some(second));
        assert!(Declarations::with_last(&decoded, last).in_part(&decoded.as_bytes()[second..]));
    }

    #[test]
    fn the_key_filter_passes_every_rule_key_and_a_wildcard_passes_all() {
        let names = [
            "Address",
            "AddressLine1",
            "CompanyName",
            "Package",
            "Code",
            "X",
        ];
        let keys: Vec<u32> = names.iter().map(|n| name_key(n)).collect();
        let filter = KeyFilter::of(&keys);
        for (name, &key) in names.iter().zip(&keys) {
            assert!(filter.may_match(key, 0), "{name}");
            assert!(filter.may_match(0, key), "{name} as the parent's key");
        }
        // No key, no match: the scan is skipped for every element.
        let none = KeyFilter::of(&[]);
        assert!(!none.may_match(name_key("Address"), COLLECT | name_key("Shipper")));
        // A wildcard rule applies to any element.
        let wild = KeyFilter::of(&[name_key("Address"), WILD]);
        assert!(wild.may_match(name_key("Anything"), COLLECT | name_key("Else")));
        // Most other names miss the filter (a few may share a bit: it only prunes).
        let others = [
            "City",
            "PostalCode",
            "CountryCode",
            "Weight",
            "UnitOfMeasurement",
        ];
        let missed = others
            .iter()
            .filter(|n| !filter.may_match(name_key(n), COLLECT | name_key("Shipper")))
            .count();
        assert!(missed >= 3, "only {missed} of {} pruned", others.len());
    }
}
