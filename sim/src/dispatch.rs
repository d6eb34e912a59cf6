//! One entry point for every request: buffer the body, record the request
//! (except `/__sim/*`), then route by path. Routing is done by hand so that
//! every refusal, including 404 and 405, is UPS-shaped.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::Response;
use axum::Router;
use http::request::Parts;
use serde_json::{Map, Value};

use super::reply;
use super::state::{Recorded, Sim};
use super::{api, inspect, oauth};

/// Largest request body the simulator reads.
const MAX_BODY: usize = 16 * 1024 * 1024;

pub fn router(sim: Arc<Sim>) -> Router {
    Router::new().fallback(handle).with_state(sim)
}

/// A request with its body read.
pub struct Req {
    pub parts: Parts,
    pub body: Bytes,
}

impl Req {
    pub fn path(&self) -> &str {
        self.parts.uri.path()
    }

    pub fn query(&self) -> &str {
        self.parts.uri.query().unwrap_or("")
    }

    /// A header as text (lossy), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.parts
            .headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }
}

async fn handle(State(sim): State<Arc<Sim>>, req: Request<Body>) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            tracing::debug!(error = %e, "could not read request body");
            return reply::ups_error(413, "10413", "Request body too large or unreadable");
        }
    };
    let req = Req { parts, body };
    let path = req.path().to_string();
    if path == "/__sim" || path.starts_with("/__sim/") {
        return inspect::handle(&sim, &req);
    }
    sim.record(record(&req));
    if path.starts_with("/security/") {
        oauth::handle(&sim, &req).await
    } else if path == "/api" || path.starts_with("/api/") {
        api::handle(&sim, &req).await
    } else {
        reply::not_found()
    }
}

fn record(req: &Req) -> Recorded {
    let mut headers = Map::new();
    for (name, value) in req.parts.headers.iter() {
        let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match headers.get_mut(name.as_str()) {
            Some(Value::String(prev)) => {
                prev.push_str(", ");
                prev.push_str(&v);
            }
            _ => {
                headers.insert(name.as_str().to_string(), Value::String(v));
            }
        }
    }
    Recorded {
        method: req.parts.method.to_string(),
        path: req.path().to_string(),
        query: req.query().to_string(),
        headers,
        body: String::from_utf8_lossy(&req.body).into_owned(),
    }
}
