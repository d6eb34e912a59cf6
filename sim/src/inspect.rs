//! `/__sim/*`: inspection (requests, stats, tokens) and fault injection.
//! Never shows a token or secret.

use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::dispatch::Req;
use super::reply::{self, json_response, ok};
use super::state::{Faults, Sim};

pub fn handle(sim: &Sim, req: &Req) -> axum::response::Response {
    let m = &req.parts.method;
    match req.path() {
        "/__sim/requests" => match *m {
            Method::GET => {
                let g = sim.lock();
                let list: Vec<Value> = g
                    .requests
                    .iter()
                    .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
                    .collect();
                drop(g);
                ok(&Value::Array(list))
            }
            Method::DELETE => {
                sim.lock().requests.clear();
                ok(&json!({"cleared": true}))
            }
            _ => reply::method_not_allowed(),
        },
        "/__sim/stats" => match *m {
            Method::GET => ok(&sim.stats_json()),
            Method::DELETE => {
                sim.zero_stats();
                ok(&sim.stats_json())
            }
            _ => reply::method_not_allowed(),
        },
        "/__sim/tokens" => match *m {
            Method::GET => ok(&sim.live_tokens_json()),
            _ => reply::method_not_allowed(),
        },
        "/__sim/faults" => match *m {
            Method::GET => ok(&faults_json(&sim.faults())),
            Method::POST => post_faults(sim, &req.body),
            Method::DELETE => {
                sim.set_faults(Faults::default());
                tracing::info!("simulator faults cleared");
                ok(&faults_json(&Faults::default()))
            }
            _ => reply::method_not_allowed(),
        },
        _ => reply::not_found(),
    }
}

fn faults_json(f: &Faults) -> Value {
    serde_json::to_value(f).unwrap_or(Value::Null)
}

fn bad(msg: String) -> axum::response::Response {
    json_response(StatusCode::BAD_REQUEST, &json!({"error": msg}))
}

fn status_value(key: &str, v: &Value) -> Result<Option<u16>, String> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_u64() {
            Some(0) => Ok(None),
            Some(s @ 100..=599) => Ok(Some(s as u16)),
            _ => Err(format!(
                "{key} must be an HTTP status 100..599, 0 or null, found {n}"
            )),
        },
        other => Err(format!("{key} must be a number, found {other}")),
    }
}

fn ms_value(key: &str, v: &Value) -> Result<u64, String> {
    match v {
        Value::Null => Ok(0),
        Value::Number(n) => n
            .as_u64()
            .filter(|ms| *ms <= 3_600_000)
            .ok_or_else(|| format!("{key} must be milliseconds 0..3600000, found {n}")),
        other => Err(format!("{key} must be a number, found {other}")),
    }
}

fn bool_value(key: &str, v: &Value) -> Result<bool, String> {
    match v {
        Value::Null => Ok(false),
        Value::Bool(b) => Ok(*b),
        other => Err(format!("{key} must be true or false, found {other}")),
    }
}

/// A list of shipper numbers (`null` clears it).
fn shippers(k: &str, v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::Null => Ok(vec![]),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("{k} must hold strings, found {i}"))
            })
            .collect(),
        other => Err(format!(
            "{k} must be an array of shipper numbers, found {other}"
        )),
    }
}

/// Merge a faults object into the current faults.
fn post_faults(sim: &Sim, body: &[u8]) -> axum::response::Response {
    let obj = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => o,
        Ok(_) => return bad("faults must be a JSON object".to_string()),
        Err(e) => return bad(format!("faults are not valid JSON: {e}")),
    };
    let mut f = sim.faults();
    let mut revoke = false;
    for (k, v) in &obj {
        let r = match k.as_str() {
            "token_status" => status_value(k, v).map(|s| f.token_status = s),
            "api_status" => status_value(k, v).map(|s| f.api_status = s),
            "latency_ms" => ms_value(k, v).map(|ms| f.latency_ms = ms),
            "token_latency_ms" => ms_value(k, v).map(|ms| f.token_latency_ms = ms),
            "revoke_tokens" => bool_value(k, v).map(|b| revoke = b),
            "reset_connections" => bool_value(k, v).map(|b| f.reset_connections = b),
            "negotiated_rates_unapproved" => {
                shippers(k, v).map(|list| f.negotiated_rates_unapproved = list)
            }
            "negotiated_rates_unverified" => {
                shippers(k, v).map(|list| f.negotiated_rates_unverified = list)
            }
            other => Err(format!("unknown fault {other:?}")),
        };
        if let Err(msg) = r {
            return bad(msg);
        }
    }
    if revoke {
        let n = {
            let mut g = sim.lock();
            let n = g.tokens.len();
            g.tokens.clear();
            n
        };
        tracing::info!(
            revoked = n,
            "fault revoke_tokens: access tokens invalidated"
        );
    }
    tracing::info!(faults = ?f, "simulator faults set");
    sim.set_faults(f.clone());
    let mut out = faults_json(&f);
    if let Some(o) = out.as_object_mut() {
        o.insert("revoked_tokens".to_string(), Value::Bool(revoke));
    }
    ok(&out)
}
