//! `/api/*`: the checks every UPS REST call goes through (faults, bearer,
//! leftover legacy credentials, JSON body), then routing to [`services`].

use std::time::Duration;

use axum::response::Response;
use http::Method;
use serde_json::Value;

use super::dispatch::Req;
use super::reply::{self, percent_decode, ups_error};
use super::services::{self, Ctx};
use super::state::Sim;

/// Headers of the old access-key dialects that must never reach UPS's REST API.
const LEGACY_HEADERS: [&str; 3] = ["accesslicensenumber", "username", "password"];
/// Body members of the old dialects that must never reach UPS's REST API.
const LEGACY_MEMBERS: [&str; 2] = ["UPSSecurity", "Security"];

/// The operations the simulator knows.
enum Op {
    Rate(String),
    Ship,
    Void(String),
    Track(String),
    TrackReference(String),
    Xav(String),
    TimeInTransit,
    PickupCreate,
    PickupRate(String),
    PickupCancel(String),
    LabelRecovery,
}

fn is_version(s: &str) -> bool {
    let digits = s.strip_prefix('v').unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Match a path (segments after `/api`) and method. `Err` is the refusal.
fn route(method: &Method, segs: &[String]) -> Result<Op, Box<Response>> {
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let (op, want) = match s.as_slice() {
        ["rating", v, opt] if is_version(v) => {
            let o = opt.to_ascii_lowercase();
            if !["rate", "shop", "ratetimeintransit", "shoptimeintransit"].contains(&o.as_str()) {
                return Err(Box::new(reply::not_found()));
            }
            (Op::Rate(o), Method::POST)
        }
        ["shipments", v, "ship"] if is_version(v) => (Op::Ship, Method::POST),
        ["shipments", v, "void", "cancel", id] if is_version(v) => {
            (Op::Void(id.to_string()), Method::DELETE)
        }
        ["shipments", v, "transittimes"] if is_version(v) => (Op::TimeInTransit, Method::POST),
        ["shipments", v, "pickup", x] if is_version(v) => {
            if *method == Method::DELETE {
                (Op::PickupCancel(x.to_string()), Method::DELETE)
            } else {
                let t = x.to_ascii_lowercase();
                if !["oncall", "smart", "both"].contains(&t.as_str()) {
                    return Err(Box::new(reply::not_found()));
                }
                (Op::PickupRate(t), Method::POST)
            }
        }
        ["pickupcreation", v, "pickup"] if is_version(v) => (Op::PickupCreate, Method::POST),
        ["labels", v, "recovery"] if is_version(v) => (Op::LabelRecovery, Method::POST),
        ["track", "v1", "details", n] => (Op::Track(n.to_string()), Method::GET),
        ["track", "v1", "reference", "details", r] => {
            (Op::TrackReference(r.to_string()), Method::GET)
        }
        ["addressvalidation", v, opt] if is_version(v) => {
            if !["1", "2", "3"].contains(opt) {
                return Err(Box::new(reply::not_found()));
            }
            (Op::Xav(opt.to_string()), Method::POST)
        }
        _ => return Err(Box::new(reply::not_found())),
    };
    if *method != want {
        return Err(Box::new(reply::method_not_allowed()));
    }
    Ok(op)
}

pub async fn handle(sim: &Sim, req: &Req) -> Response {
    sim.count_api();
    let faults = sim.faults();
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    if let Some(status) = faults.api_status {
        return reply::fault_error(status);
    }

    // (1) a live bearer token.
    let bearer = req.header("authorization").and_then(|h| {
        let (scheme, tok) = h.trim().split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| tok.trim().to_string())
    });
    let Some(client_id) = bearer.and_then(|t| sim.bearer_client(&t)) else {
        return ups_error(401, "250002", "Invalid Authentication Information.");
    };

    // (2) no legacy credentials in headers.
    for h in LEGACY_HEADERS {
        if req.parts.headers.contains_key(h) {
            let shown = match h {
                "accesslicensenumber" => "AccessLicenseNumber",
                "username" => "Username",
                _ => "Password",
            };
            return ups_error(
                400,
                "250099",
                &format!("Legacy credential header {shown} is not accepted by the OAuth API"),
            );
        }
    }

    let segs: Vec<String> = req
        .path()
        .trim_start_matches("/api")
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let op = match route(&req.parts.method, &segs) {
        Ok(op) => op,
        Err(r) => return *r,
    };

    // (3) POST bodies are JSON objects; (2) none carries a legacy security member.
    let body: Value = if req.parts.method == Method::POST {
        match serde_json::from_slice::<Value>(&req.body) {
            Ok(v @ Value::Object(_)) => v,
            _ => return reply::not_well_formed(),
        }
    } else {
        serde_json::from_slice::<Value>(&req.body).unwrap_or(Value::Null)
    };
    if let Value::Object(o) = &body {
        for m in LEGACY_MEMBERS {
            if o.contains_key(m) {
                return ups_error(
                    400,
                    "250099",
                    &format!("Legacy security member {m} in the request body is not accepted by the OAuth API"),
                );
            }
        }
    }

    tracing::debug!(client_id = %client_id, method = %req.parts.method, path = %req.path(), "api call");
    let ctx = Ctx {
        sim,
        req,
        body: &body,
        unapproved: &faults.negotiated_rates_unapproved,
        unverified: &faults.negotiated_rates_unverified,
    };
    match op {
        Op::Rate(opt) => services::rate(&ctx, &opt),
        Op::Ship => services::ship(&ctx),
        Op::Void(id) => services::void(&ctx, &id),
        Op::Track(n) => services::track(&ctx, &n, false),
        Op::TrackReference(r) => services::track(&ctx, &r, true),
        Op::Xav(opt) => services::xav(&ctx, &opt),
        Op::TimeInTransit => services::time_in_transit(&ctx),
        Op::PickupCreate => services::pickup_create(&ctx),
        Op::PickupRate(t) => services::pickup_rate(&ctx, &t),
        Op::PickupCancel(by) => services::pickup_cancel(&ctx, &by),
        Op::LabelRecovery => services::label_recovery(&ctx),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(p: &str) -> Vec<String> {
        p.split('/')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }

    #[test]
    fn routes_versions_and_methods() {
        assert!(
            matches!(route(&Method::POST, &segs("rating/v2409/SHOP")), Ok(Op::Rate(o)) if o == "shop")
        );
        assert!(matches!(
            route(&Method::POST, &segs("rating/1701/Rate")),
            Ok(Op::Rate(_))
        ));
        assert!(route(&Method::POST, &segs("rating/x1/Rate")).is_err());
        assert!(route(&Method::GET, &segs("shipments/v1/ship")).is_err());
        assert!(
            matches!(route(&Method::DELETE, &segs("shipments/v2409/pickup/02")), Ok(Op::PickupCancel(b)) if b == "02")
        );
        assert!(
            matches!(route(&Method::GET, &segs("track/v1/details/1Z1")), Ok(Op::Track(n)) if n == "1Z1")
        );
    }
}
