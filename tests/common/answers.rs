//! Every answer the suite receives is checked against the legacy schemas.
//!
//! Tests talk to the proxy through [`Relay`], a byte-for-byte TCP relay that keeps both
//! directions of every connection. When the test's `Proxy` is dropped, the recorded
//! exchanges are split into requests and answers and each answer is checked in its
//! dialect: SOAP payloads and faults, and old-XML documents, with `xmllint --schema`
//! against UPS's XSDs (`target/legacy-xsd`, installed by `scripts/legacy-xsd.sh`);
//! legacy-JSON answers against the same field tables the proxy shapes them with. A test
//! that got an answer a strict legacy client would reject fails, whatever it asserted.
//!
//! The relay is transparent (raw requests, half-closes and connection reuse pass as
//! they are), so tests need not know it is there.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use upsbridge::dialect::legacy_schema::{self, Family, Schemas};

/// One TCP connection: what the client sent, what came back.
#[derive(Default)]
struct Conversation {
    sent: Vec<u8>,
    received: Vec<u8>,
}

/// A recording relay in front of the proxy.
pub struct Relay {
    pub addr: String,
    stop: Arc<AtomicBool>,
    /// Every connection so far, open or closed (a pooled client keeps its connection open
    /// after the test's last request; what it received by then is complete).
    conversations: Arc<Mutex<Vec<Arc<Mutex<Conversation>>>>>,
}

impl Relay {
    pub fn start(target: &str) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("relay bind");
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let conversations = Arc::new(Mutex::new(Vec::new()));
        let target = target.to_string();
        let (s, all) = (stop.clone(), conversations.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let conv = Arc::new(Mutex::new(Conversation::default()));
                all.lock().unwrap().push(conv.clone());
                std::thread::spawn(move || relay_one(client, server, conv));
            }
        });
        Relay {
            addr,
            stop,
            conversations,
        }
    }

    /// Stop recording and return every problem found in the answers received so far.
    pub fn problems(&self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
        let all = std::mem::take(&mut *self.conversations.lock().unwrap());
        let mut problems = vec![];
        for conv in &all {
            let c = std::mem::take(&mut *conv.lock().unwrap());
            for (path, answer) in exchanges(&c) {
                if let Err(e) = check_answer(&path, &answer) {
                    problems.push(format!(
                        "answer to {path}: {e}\n--- answer body:\n{}",
                        answer.body
                    ));
                }
            }
        }
        problems
    }
}

fn relay_one(client: TcpStream, server: TcpStream, conv: Arc<Mutex<Conversation>>) {
    let pump =
        |mut from: TcpStream, mut to: TcpStream, conv: Arc<Mutex<Conversation>>, upstream: bool| {
            let mut buf = [0u8; 16 * 1024];
            loop {
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        {
                            let mut c = conv.lock().unwrap();
                            if upstream {
                                c.sent.extend_from_slice(&buf[..n]);
                            } else {
                                c.received.extend_from_slice(&buf[..n]);
                            }
                        }
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = to.shutdown(Shutdown::Write);
        };
    let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let conv2 = conv.clone();
    let up = std::thread::spawn(move || pump(c2, s2, conv2, true));
    pump(server, client, conv, false);
    let _ = up.join();
}

/// An answer as the client received it.
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

/// Pair each request path with its answer, in order (HTTP/1.1 answers come in request order).
fn exchanges(c: &Conversation) -> Vec<(String, Answer)> {
    let paths = request_paths(&c.sent);
    let answers = answers(&c.received);
    answers
        .into_iter()
        .enumerate()
        .map(|(i, a)| (paths.get(i).cloned().unwrap_or_default(), a))
        .collect()
}

/// Paths of the requests in a client stream (stops at the first it cannot frame).
fn request_paths(mut data: &[u8]) -> Vec<String> {
    let mut out = vec![];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        let Ok(httparse::Status::Complete(head)) = req.parse(data) else {
            return out;
        };
        out.push(req.path.unwrap_or("").to_string());
        let framing = framing(req.headers);
        let Some(body_len) = body_length(&data[head..], framing) else {
            return out;
        };
        data = &data[head + body_len.0..];
    }
}

/// Answers in a server stream (stops at the first it cannot frame).
fn answers(mut data: &[u8]) -> Vec<Answer> {
    let mut out = vec![];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(head)) = resp.parse(data) else {
            return out;
        };
        let status = resp.code.unwrap_or(0);
        let content_type = resp
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-type"))
            .map(|h| String::from_utf8_lossy(h.value).into_owned())
            .unwrap_or_default();
        let mut framing = framing(resp.headers);
        if status == 204 || status == 304 || (100..200).contains(&status) {
            framing = Framing::Length(0);
        }
        let rest = &data[head..];
        let (used, body) = match body_length(rest, framing) {
            Some(x) => x,
            None if matches!(framing, Framing::UntilClose) => (rest.len(), rest.to_vec()),
            None => return out,
        };
        out.push(Answer {
            status,
            content_type,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        data = &rest[used..];
        if data.is_empty() {
            return out;
        }
    }
}

#[derive(Clone, Copy)]
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

fn framing(headers: &[httparse::Header]) -> Framing {
    let get = |n: &str| {
        headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(n))
            .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase())
    };
    if get("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        Framing::Chunked
    } else if let Some(n) = get("content-length").and_then(|v| v.trim().parse().ok()) {
        Framing::Length(n)
    } else {
        Framing::UntilClose
    }
}

/// Bytes used by a body and the body itself; `None` if incomplete or not framed.
fn body_length(data: &[u8], framing: Framing) -> Option<(usize, Vec<u8>)> {
    match framing {
        Framing::Length(n) => (data.len() >= n).then(|| (n, data[..n].to_vec())),
        Framing::UntilClose => None,
        Framing::Chunked => {
            let mut pos = 0;
            let mut body = vec![];
            loop {
                let line_end = data[pos..].windows(2).position(|w| w == b"\r\n")? + pos;
                let size_text = std::str::from_utf8(&data[pos..line_end]).ok()?;
                let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
                pos = line_end + 2;
                if size == 0 {
                    // Trailers end with an empty line.
                    let end = data[pos..].windows(2).position(|w| w == b"\r\n")? + pos;
                    return Some((end + 2, body));
                }
                body.extend_from_slice(data.get(pos..pos + size)?);
                pos += size + 2;
            }
        }
    }
}

// ---- the checks ------------------------------------------------------------------------------

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Check one answer in the dialect its request path names.
pub fn check_answer(path: &str, a: &Answer) -> Result<(), String> {
    let lower = path.to_ascii_lowercase();
    if lower.starts_with("/webservices/") {
        if a.body.trim().is_empty() {
            return Ok(()); // the connection was refused before any answer (framing errors)
        }
        check_soap(&a.body)
    } else if lower.starts_with("/ups.app/xml/") {
        if !a.content_type.starts_with("application/xml") {
            return Err(format!(
                "old-XML answer sent as `{}`, not application/xml",
                a.content_type
            ));
        }
        check_old_xml(&a.body)
    } else if lower.starts_with("/rest/") || lower.starts_with("/json/") {
        check_legacy_json(&a.body)
    } else {
        Ok(())
    }
}

/// The schema files by payload root: `target/legacy-xsd/index.json`.
fn xsd_index() -> &'static Value {
    static INDEX: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    INDEX.get_or_init(|| {
        let p = root().join("target/legacy-xsd/index.json");
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| {
            panic!(
                "the legacy XSDs are not installed ({}: {e}).\nRun `bash scripts/setup.sh` \
                 (it runs scripts/legacy-xsd.sh), then the tests again.",
                p.display()
            )
        });
        serde_json::from_str(&text).expect("index.json")
    })
}

/// The XSD that defines element `{ns}name`, if the index knows it.
fn xsd_for(ns: Option<&str>, name: &str) -> Option<PathBuf> {
    let (family, key) = match ns {
        Some(ns) => ("soap", format!("{{{ns}}}{name}")),
        None => ("oldxml", name.to_string()),
    };
    xsd_index()[family][&key]
        .as_str()
        .map(|f| root().join("target/legacy-xsd").join(f))
}

/// `xmllint --schema` on one element taken out of its document, with the namespace
/// declarations in scope at it copied onto it.
fn xmllint(doc: &str, node: roxmltree::Node, xsd: &Path) -> Result<(), String> {
    let range = node.range();
    let mut text = doc[range].to_string();
    let name_end = text
        .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
        .unwrap_or(text.len());
    let start_tag_end = text.find('>').unwrap_or(text.len());
    let mut decls = String::new();
    for ns in node.namespaces() {
        let attr = match ns.name() {
            Some(p) => format!("xmlns:{p}="),
            None => "xmlns=".to_string(),
        };
        if !text[..start_tag_end].contains(&attr) {
            decls.push_str(&format!(" {attr}\"{}\"", ns.uri()));
        }
    }
    text.insert_str(name_end, &decls);
    let file = tempfile::Builder::new()
        .suffix(".xml")
        .tempfile()
        .expect("temp file");
    std::fs::write(file.path(), &text).unwrap();
    let out = Command::new("xmllint")
        .args(["--noout", "--nonet", "--schema"])
        .arg(xsd)
        .arg(file.path())
        .output()
        .unwrap_or_else(|e| panic!("xmllint: {e} (bash scripts/setup.sh installs libxml2-utils)"));
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "xmllint --schema {} rejects it:\n{}",
            xsd.display(),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// XOLTWS answers whose schema is in no registry package (nor generated classes of one):
/// nothing to check them against (README, "What is translated").
const WITHOUT_SCHEMA: [&str; 3] = ["XAVResponse", "LocatorResponse", "QuantumViewResponse"];

const SOAP_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";

/// A SOAP answer: the payload (or the fault's `Errors`) against its service's XSD.
pub fn check_soap(body: &str) -> Result<(), String> {
    let doc = roxmltree::Document::parse(body).map_err(|e| format!("not XML: {e}"))?;
    let env = doc.root_element();
    if env.tag_name().name() != "Envelope" || env.tag_name().namespace() != Some(SOAP_NS) {
        return Err("not a SOAP 1.1 Envelope".into());
    }
    let body_el = env
        .children()
        .find(|c| {
            c.is_element()
                && c.tag_name().name() == "Body"
                && c.tag_name().namespace() == Some(SOAP_NS)
        })
        .ok_or("no soapenv:Body")?;
    let payload = body_el
        .children()
        .find(|c| c.is_element())
        .ok_or("an empty soapenv:Body")?;
    let target = if payload.tag_name().name() == "Fault"
        && payload.tag_name().namespace() == Some(SOAP_NS)
    {
        for (i, want) in ["faultcode", "faultstring", "detail"].iter().enumerate() {
            let got: Vec<_> = payload.children().filter(|c| c.is_element()).collect();
            if got.get(i).map(|n| n.tag_name().name()) != Some(want) {
                return Err(format!("Fault children must be faultcode, faultstring, detail (unqualified); found {:?}", got.iter().map(|n| n.tag_name().name()).collect::<Vec<_>>()));
            }
        }
        let detail = payload
            .children()
            .find(|c| c.is_element() && c.tag_name().name() == "detail")
            .unwrap();
        detail
            .children()
            .find(|c| c.is_element())
            .ok_or("an empty Fault detail")?
    } else {
        payload
    };
    let (ns, name) = (target.tag_name().namespace(), target.tag_name().name());
    if let Some(xsd) = xsd_for(ns, name) {
        return xmllint(body, target, &xsd);
    }
    // No UPS XSD from a registry for this service: the table derived from the generated
    // classes of a legacy client package (carrier.ups) is the schema.
    let schemas = legacy_schema::schemas();
    let Some(def) = schemas.root(Family::Xoltws, name) else {
        if WITHOUT_SCHEMA.contains(&name) {
            return Ok(());
        }
        return Err(format!(
            "no legacy schema defines {{{}}}{name}",
            ns.unwrap_or("")
        ));
    };
    if def.ns.map(|i| schemas.namespaces[i].1.as_str()) != ns {
        return Err(format!("{name} is not in its schema's namespace"));
    }
    check_xml_type(schemas, def.ty, target, name)
}

/// An element's children against a type of the table: only defined elements, in sequence
/// order, each in its namespace, within its occurrence bounds, required ones present.
fn check_xml_type(s: &Schemas, ty: usize, el: roxmltree::Node, path: &str) -> Result<(), String> {
    let def = &s.types[ty];
    let children: Vec<roxmltree::Node> = el.children().filter(|c| c.is_element()).collect();
    let mut at = 0;
    for c in &def.children {
        let mut n = 0u32;
        while let Some(child) = children.get(at) {
            if child.tag_name().name() != c.name {
                break;
            }
            let want_ns = c.ns.map(|i| s.namespaces[i].1.as_str());
            let p = format!("{path}/{}", c.name);
            if child.tag_name().namespace() != want_ns {
                return Err(format!(
                    "{p}: in namespace {:?}, schema says {want_ns:?}",
                    child.tag_name().namespace()
                ));
            }
            match c.ty {
                Some(t) => check_xml_type(s, t, *child, &p)?,
                None if child.children().any(|g| g.is_element()) => {
                    return Err(format!("{p}: elements where the schema has text"))
                }
                None => {}
            }
            n += 1;
            at += 1;
        }
        if c.max.is_some_and(|m| n > m) {
            return Err(format!(
                "{path}/{}: {n} occurrences, schema allows {:?}",
                c.name, c.max
            ));
        }
        if n < c.min && c.choice.is_none() {
            return Err(format!("{path}/{}: required, missing", c.name));
        }
    }
    if let Some(extra) = children.get(at) {
        if !def.open {
            return Err(format!(
                "{path}/{}: not expected here (undefined, repeated or out of schema order)",
                extra.tag_name().name()
            ));
        }
    }
    Ok(())
}

/// An old-XML answer: the whole document against the old XML API's XSD of its root.
pub fn check_old_xml(body: &str) -> Result<(), String> {
    if !body.starts_with("<?xml version=\"1.0\"") {
        return Err("no XML declaration at byte 0".into());
    }
    let doc = roxmltree::Document::parse(body).map_err(|e| format!("not XML: {e}"))?;
    let r = doc.root_element();
    let Some(xsd) = xsd_for(None, r.tag_name().name()) else {
        // The old XML API's schemas exist only for some services (see target/legacy-xsd/index.json).
        return check_old_xml_by_table(r);
    };
    xmllint(body, r, &xsd)
}

/// Old XML without a UPS XSD: the root must be a `…Response` with a `Response` block first.
fn check_old_xml_by_table(r: roxmltree::Node) -> Result<(), String> {
    let first = r
        .children()
        .find(|c| c.is_element())
        .ok_or("an empty document")?;
    if !r.tag_name().name().ends_with("Response") || first.tag_name().name() != "Response" {
        return Err(format!(
            "<{}> does not start with <Response>",
            r.tag_name().name()
        ));
    }
    Ok(())
}

/// A legacy-JSON answer: a `Fault`, or `{"<Svc>Response": …}` whose members are exactly
/// those the XOLTWS schema defines (the tables the proxy shapes with), required ones present.
pub fn check_legacy_json(body: &str) -> Result<(), String> {
    let v: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    let obj = v.as_object().ok_or("not a JSON object")?;
    let [(root, content)] = obj.iter().collect::<Vec<_>>()[..] else {
        return Err(format!(
            "expected one member, found {:?}",
            obj.keys().collect::<Vec<_>>()
        ));
    };
    let schemas = legacy_schema::schemas();
    if root == "Fault" {
        let errors = content
            .pointer("/detail/Errors")
            .ok_or("Fault without detail/Errors")?;
        let def = schemas
            .root(Family::Xoltws, "Errors")
            .ok_or("no Errors schema")?;
        return check_json_type(schemas, def.ty, errors, "Fault/detail/Errors");
    }
    let Some(def) = schemas.root(Family::Xoltws, root) else {
        if WITHOUT_SCHEMA.contains(&root.as_str()) {
            return Ok(());
        }
        return Err(format!("no XOLTWS schema defines {root}"));
    };
    check_json_type(schemas, def.ty, content, root)
}

fn check_json_type(s: &Schemas, ty: usize, v: &Value, path: &str) -> Result<(), String> {
    let def = &s.types[ty];
    let obj = v
        .as_object()
        .ok_or_else(|| format!("{path}: expected an object, found {v}"))?;
    if !def.open {
        for k in obj.keys() {
            if !def.children.iter().any(|c| &c.name == k) {
                return Err(format!("{path}/{k}: not defined by the schema"));
            }
        }
    }
    for c in &def.children {
        let p = format!("{path}/{}", c.name);
        match obj.get(&c.name) {
            None if c.min > 0 && c.choice.is_none() => {
                return Err(format!("{p}: required, missing"))
            }
            None => {}
            Some(v) => {
                let list: Vec<&Value> = match v {
                    Value::Array(a) => a.iter().collect(),
                    one => vec![one],
                };
                if let (Some(max), true) = (c.max, v.is_array()) {
                    if list.len() > max as usize || max == 1 {
                        return Err(format!("{p}: {} items, schema allows {max}", list.len()));
                    }
                }
                for item in list {
                    match c.ty {
                        None if !item.is_string() => {
                            return Err(format!("{p}: expected text, found {item}"))
                        }
                        None => {}
                        Some(t) => check_json_type(s, t, item, &p)?,
                    }
                }
            }
        }
    }
    Ok(())
}
