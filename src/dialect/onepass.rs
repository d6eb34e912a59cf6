//! One pass from an XML request element to its REST JSON, for the requests that are most of
//! the traffic (rates and shipments, whose REST call is read from their `Request` member
//! alone): quick-xml's events are written straight into the JSON body, with no element
//! tree, no `serde_json::Value` and no second serialisation.
//!
//! What it writes is what the tree path writes (`xmljson::to_json`, the service's rules,
//! `prune_empty`, `normalize_arrays`, `rest_body`), member for member; only a renamed member
//! may stand elsewhere in its object, which JSON does not weigh. Whatever one pass cannot
//! write that way makes it give up (`None`), and the caller takes the tree path, which also
//! words every error:
//! - an element repeated where the schema lists no array (the tree path makes one of it), or
//!   a listed one whose occurrences are not adjacent;
//! - an array item left empty (the tree path keeps or drops it by how many there are);
//! - a rule other than rename, drop and last, or a `Last` element given twice with another
//!   member between;
//! - any input error, a DOCTYPE, or a limit reached.
//!
//! The differential tests (`tests/one_pass.rs`) hold both paths to the same JSON. Nothing
//! here logs: requests carry credentials.

use std::ops::Range;

use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::NsReader;
use smallvec::SmallVec;

use super::schema::{self, ArrayPaths, Rule};
use super::xmljson;

/// A request element written as REST JSON.
pub struct Written {
    /// `{"<Root>":{…}}`: the REST body.
    pub body: Vec<u8>,
    /// Where the value of its top-level `Request` member is in `body`, if it has one.
    pub request: Option<Range<usize>>,
}

/// Whether one pass can apply these rules: it renames, drops and keeps one of, element by
/// element, but moves and collects nothing.
pub fn takes(rules: &[Rule]) -> bool {
    rules
        .iter()
        .all(|r| matches!(r, Rule::Rename(..) | Rule::Drop(_) | Rule::Last(_)))
}

/// A reader over a document held as text: its events borrow the text.
pub type Reader<'x> = NsReader<&'x [u8]>;

/// The part of `input` that `part` (a slice an event borrowed from it) is.
pub fn in_input<'x>(input: &'x str, part: &[u8]) -> Option<&'x str> {
    let at = (part.as_ptr() as usize).checked_sub(input.as_ptr() as usize)?;
    input.get(at..at.checked_add(part.len())?)
}

/// Read past the element whose start tag was just read, `depth` deep, checking what the
/// tree path checks (limits, entities, DOCTYPE) without keeping anything.
pub fn skip_element(reader: &mut Reader<'_>, depth: usize, count: &mut usize) -> Option<()> {
    let mut open = 1usize;
    loop {
        match reader.read_event().ok()? {
            Event::Start(_) => {
                xmljson::counted(depth + open, count).ok()?;
                open += 1;
            }
            Event::Empty(_) => xmljson::counted(depth + open, count).ok()?,
            Event::End(_) => {
                open -= 1;
                if open == 0 {
                    return Some(());
                }
            }
            Event::Eof => return None,
            other => {
                xmljson::event_text(&other).ok()?;
            }
        }
    }
}

/// Write the element whose start tag `root` (named `root_name`, `depth` deep) the reader
/// has just returned, as `{"<root_name>":{…}}`, reading to its end tag. `count` holds the
/// elements read so far, the root included.
pub fn write_request<'x>(
    input: &'x str,
    reader: &mut Reader<'x>,
    root_name: &'x str,
    depth: usize,
    count: &mut usize,
    arrays: &ArrayPaths,
    rules: &[Rule],
) -> Option<Written> {
    let mut w = Writer {
        input,
        out: Vec::with_capacity(input.len()),
        path: String::with_capacity(128),
        text: String::new(),
        stack: Vec::with_capacity(16),
        request: None,
        arrays,
        rules,
        depth,
    };
    w.out.push(b'{');
    serde_json::to_writer(&mut w.out, root_name).ok()?;
    w.out.push(b':');
    let at = w.out.len();
    w.stack.push(Open::new(root_name, 0, at, false));
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) => w.start(reader, &e, false, count)?,
            Event::Empty(e) => w.start(reader, &e, true, count)?,
            Event::End(_) => {
                w.end()?;
                if w.stack.is_empty() {
                    break;
                }
            }
            Event::Eof => return None,
            other => {
                let text = xmljson::event_text(&other).ok()?;
                // Only a leaf's text counts: an element with children is an object.
                if let (Some(t), Some(top)) = (text, w.stack.last()) {
                    if !top.object {
                        w.text.push_str(&t);
                    }
                }
            }
        }
    }
    w.out.push(b'}');
    Some(Written {
        body: w.out,
        request: w.request,
    })
}

/// An element being written.
struct Open<'x> {
    /// Its name in the JSON (after renames).
    name: &'x str,
    /// The path's length before this element's name was added.
    path_len: usize,
    /// Where its member begins in the output (at its comma), to take it back if pruned.
    start: usize,
    /// Where its value begins.
    value_at: usize,
    /// It has a child element, so it is an object (its text is ignored).
    object: bool,
    /// Members written into it (an array counts once).
    members: u32,
    /// It is an item of an array.
    item: bool,
    /// The array among its members still open (`]` not yet written).
    open_array: Option<&'x str>,
    /// The names of its members so far.
    seen: SmallVec<[&'x str; 8]>,
    /// Its last member: name, where it begins, and whether it is still written.
    last: Option<(&'x str, usize, bool)>,
}

impl<'x> Open<'x> {
    fn new(name: &'x str, path_len: usize, start: usize, item: bool) -> Self {
        Open {
            name,
            path_len,
            start,
            value_at: start,
            object: false,
            members: 0,
            item,
            open_array: None,
            seen: SmallVec::new(),
            last: None,
        }
    }
}

struct Writer<'x, 'a> {
    input: &'x str,
    out: Vec<u8>,
    /// `/`-joined names (after renames) of the open elements below the root.
    path: String,
    /// The innermost element's text so far.
    text: String,
    stack: Vec<Open<'x>>,
    request: Option<Range<usize>>,
    arrays: &'a ArrayPaths,
    rules: &'a [Rule],
    /// How deep the root sits in its document.
    depth: usize,
}

impl<'x> Writer<'x, '_> {
    fn start(
        &mut self,
        reader: &mut Reader<'x>,
        e: &BytesStart<'x>,
        empty: bool,
        count: &mut usize,
    ) -> Option<()> {
        let depth = self.depth + self.stack.len();
        xmljson::counted(depth, count).ok()?;
        let original = in_input(self.input, e.local_name().as_ref())?;
        let parent = self.stack.last_mut()?;
        if !parent.object {
            parent.object = true;
            self.out.push(b'{');
        }
        self.text.clear();
        // An absent value: no member at all.
        if xmljson::is_nil(e) {
            return if empty {
                Some(())
            } else {
                skip_element(reader, depth, count)
            };
        }
        let path_len = self.path.len();
        if path_len > 0 {
            self.path.push('/');
        }
        let name_at = self.path.len();
        self.path.push_str(original);
        let (mut name, mut last) = (original, false);
        for rule in self.rules {
            match *rule {
                Rule::Drop(p) if schema::pattern_matches(p, &self.path) => {
                    self.path.truncate(path_len);
                    return if empty {
                        Some(())
                    } else {
                        skip_element(reader, depth, count)
                    };
                }
                Rule::Rename(p, new_name) if schema::pattern_matches(p, &self.path) => {
                    self.path.truncate(name_at);
                    self.path.push_str(new_name);
                    name = new_name;
                }
                Rule::Last(p) if schema::pattern_matches(p, &self.path) => last = true,
                _ => {}
            }
        }
        let listed = !last && self.arrays.contains(self.path.as_str());
        let parent = self.stack.last_mut()?;
        // Where a member that turns out empty is taken back from (its comma on); an item is
        // never taken back.
        let start;
        let repeated = parent.seen.contains(&name);
        let item = if repeated && !last {
            // Only the next item of the array being written can be written in one pass.
            if !(listed && parent.open_array == Some(name)) {
                return None;
            }
            self.out.push(b',');
            start = self.out.len();
            true
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
                parent.seen.push(name);
            }
            if parent.open_array.take().is_some() {
                self.out.push(b']');
            }
            start = self.out.len();
            parent.last = Some((name, start, true));
            parent.members += 1;
            if parent.members > 1 {
                self.out.push(b',');
            }
            serde_json::to_writer(&mut self.out, name).ok()?;
            self.out.push(b':');
            if listed {
                self.out.push(b'[');
                parent.open_array = Some(name);
            }
            listed
        };
        let mut open = Open::new(name, path_len, start, item);
        open.value_at = self.out.len();
        self.stack.push(open);
        if empty {
            self.end()?;
        }
        Some(())
    }

    fn end(&mut self) -> Option<()> {
        let open = self.stack.pop()?;
        self.path.truncate(open.path_len);
        let indicator = open.name.ends_with("Indicator");
        let root = self.stack.is_empty();
        let kept = if open.object {
            if open.open_array.is_some() {
                self.out.push(b']');
            }
            // Emptied by pruning: gone, unless an indicator's presence is what it says.
            let kept = open.members > 0 || (indicator && !open.item) || root;
            if kept {
                self.out.push(b'}');
            }
            kept
        } else {
            let text = self.text.trim();
            if !text.is_empty() {
                serde_json::to_writer(&mut self.out, text).ok()?;
                true
            } else if root {
                self.out.extend_from_slice(b"{}");
                true
            } else if indicator && !open.item {
                self.out.extend_from_slice(b"\"\"");
                true
            } else {
                false
            }
        };
        if !kept {
            if open.item {
                return None;
            }
            self.out.truncate(open.start);
            if let Some(parent) = self.stack.last_mut() {
                parent.members -= 1;
                if let Some(last) = &mut parent.last {
                    last.2 = false;
                }
            }
            return Some(());
        }
        if self.stack.len() == 1 && !open.item && open.name == "Request" {
            self.request = Some(open.value_at..self.out.len());
        }
        Some(())
    }
}
