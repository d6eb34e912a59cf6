//! No duplicate shipments when clients retry.
//!
//! Real clients retry the calls that create or destroy something (Ship, ShipAccept, Void,
//! Pickup create or cancel) after a read timeout or a reset. For those calls:
//! - the UPS call always runs to completion, even when the client has gone;
//! - an answer the client was gone for is kept (sealed like tokens, in the store, for
//!   `[proxy] replay_window_secs`) and the next identical request (same account, method,
//!   path and REST body) gets it replayed instead of a second UPS call;
//! - an identical request arriving while the first call is in flight waits for that call:
//!   if the first client had gone, it gets the kept answer; if the first client got its
//!   answer, it is a separate request (two boxes of one order) and makes its own call;
//! - a delivered answer is never replayed (a Void's is: voiding twice is the same void);
//! - with several instances on one PostgreSQL store, a call in flight is also marked in the
//!   store, so the retry that reaches another instance waits for it the same way (then finds
//!   the kept answer there, or makes its own call).
//!
//! Nothing here logs an answer (labels) or a key's inputs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use http::Method;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::clock::unix_now;
use crate::dialect::services::RestCall;
use crate::error::Failure;
use crate::oauth::vault::Vault;
use crate::store::Store;

pub type Key = [u8; 32];

/// A call that creates or destroys something at UPS.
pub fn is_effectful(method: &Method, path_and_query: &str) -> bool {
    let path = path_and_query.split('?').next().unwrap_or("");
    // Every header-style request asks: most are neither shipments nor pickups.
    if !(path.starts_with("/api/shipments/") || path.starts_with("/api/pickupcreation/")) {
        return false;
    }
    let seg: smallvec::SmallVec<[&str; 8]> = path.split('/').filter(|s| !s.is_empty()).collect();
    matches!(
        (method, seg.as_slice()),
        (&Method::POST, ["api", "shipments", _, "ship"])
            | (
                &Method::DELETE,
                ["api", "shipments", _, "void", "cancel", _]
            )
            | (&Method::POST, ["api", "pickupcreation", _, "pickup"])
            | (&Method::DELETE, ["api", "shipments", _, "pickup", _])
    )
}

/// Voiding (or cancelling a pickup) twice is the same act: its answer is replayed even
/// when it was delivered.
fn replays_delivered(method: &Method) -> bool {
    method == Method::DELETE
}

#[derive(Serialize, Deserialize)]
struct Kept {
    expires: u64,
    status: u16,
    body: Vec<u8>,
}

/// What became of a call in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// The client was gone: its answer (status, REST body) is kept, and handed to every
    /// retry that was waiting for it.
    Kept(u16, Bytes),
    /// No usable answer (UPS failed): retries make their own call.
    Failed,
}

struct InFlight {
    client_gone: AtomicBool,
    done: watch::Sender<Option<Outcome>>,
}

/// The one call in flight for a key (dropping it without `finish` counts as failed).
pub struct Ticket {
    key: Key,
    flight: Arc<InFlight>,
    replays: Arc<Replays>,
    finished: bool,
}

impl Ticket {
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// The client went away while UPS was working (later identical requests wait for this call).
    pub fn client_gone(&self) {
        self.flight.client_gone.store(true, Ordering::SeqCst);
    }

    /// A handle that can say "the client is gone" while this ticket travels elsewhere.
    pub fn client_watch(&self) -> ClientGone {
        ClientGone(self.flight.clone())
    }

    pub fn is_client_gone(&self) -> bool {
        self.flight.client_gone.load(Ordering::SeqCst)
    }

    pub fn finish(mut self, outcome: Outcome) {
        self.finished = true;
        self.end(outcome);
    }

    fn end(&self, outcome: Outcome) {
        self.replays.inflight.remove(&self.key);
        if self.replays.shared {
            // The store's mark goes after the answer is kept (settle keeps it first).
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let (store, key) = (self.replays.store.clone(), self.key);
                rt.spawn(async move { store.release_call(&key).await });
            }
        }
        let _ = self.flight.done.send(Some(outcome));
    }
}

/// See [`Ticket::client_watch`].
pub struct ClientGone(Arc<InFlight>);

impl ClientGone {
    pub fn client_gone(&self) {
        self.0.client_gone.store(true, Ordering::SeqCst);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.finished {
            self.end(Outcome::Failed);
        }
    }
}

/// What to do with an effectful request.
pub enum Begin {
    /// Make the call; report what became of it.
    Call(Ticket),
    /// This was a retry of the identical call that was in flight, whose client had gone:
    /// its answer (status, REST body).
    Answered(u16, Bytes),
    /// Make the call, unregistered (the identical call before it was delivered or failed).
    Separate,
}

pub struct Replays {
    store: Store,
    vault: Vault,
    window: Duration,
    inflight: DashMap<Key, Arc<InFlight>>,
    /// The store is shared with other instances (PostgreSQL): calls in flight are marked there.
    shared: bool,
    /// How long a mark in the store holds (a UPS call's bound and some): an instance that dies
    /// mid-call does not block the retry for longer.
    call_bound: Duration,
}

impl Replays {
    pub fn new(store: Store, vault: Vault, window: Duration) -> Replays {
        Replays {
            shared: store.postgres().is_some(),
            store,
            vault,
            window,
            inflight: DashMap::new(),
            call_bound: Duration::from_secs(60),
        }
    }

    /// How long a call in flight may take at most (`[ups] request_timeout_ms`): the bound of
    /// the store's mark.
    pub fn with_call_bound(mut self, bound: Duration) -> Replays {
        self.call_bound = bound + Duration::from_secs(5);
        self
    }

    /// Another instance is making this very call: wait while its mark stands (bounded). The
    /// caller then looks for a kept answer, or makes its own call.
    async fn wait_for_other_instance(&self, key: &Key) {
        let deadline = std::time::Instant::now() + self.call_bound;
        while std::time::Instant::now() < deadline {
            match self.store.call_in_flight(key).await {
                Ok(true) => tokio::time::sleep(Duration::from_millis(100)).await,
                _ => return,
            }
        }
    }

    /// The identity of a call: account, method, path and the REST body sent.
    pub fn key(account: &str, call: &RestCall, body: Option<&[u8]>) -> Key {
        let mut h = Sha256::new();
        for part in [
            account.as_bytes(),
            call.method.as_str().as_bytes(),
            call.path_and_query.as_bytes(),
            body.unwrap_or(b""),
        ] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        h.finalize().into()
    }

    fn aad(account: &str) -> String {
        format!("replay:{account}")
    }

    /// A kept answer for `key` (unexpired), if any.
    pub async fn kept(&self, key: &Key, account: &str) -> Result<Option<(u16, Bytes)>, Failure> {
        let Some(sealed) = self.store.replay(key).await.map_err(Failure::from)? else {
            return Ok(None);
        };
        let opened = self
            .vault
            .open(&Self::aad(account), &sealed)
            .map_err(|e| Failure::unreadable("kept answer", e))?;
        let kept: Kept =
            serde_json::from_slice(&opened).map_err(|e| Failure::unreadable("kept answer", e))?;
        if kept.expires <= unix_now() {
            let _ = self.store.remove_replay(key).await;
            return Ok(None);
        }
        Ok(Some((kept.status, Bytes::from(kept.body))))
    }

    /// Keep an answer the client did not get (sealed, flushed before returning).
    pub async fn keep(
        &self,
        key: &Key,
        account: &str,
        status: u16,
        body: &[u8],
    ) -> Result<(), Failure> {
        let kept = Kept {
            expires: unix_now() + self.window.as_secs(),
            status,
            body: body.to_vec(),
        };
        let plain = serde_json::to_vec(&kept).map_err(|e| Failure::unreadable("kept answer", e))?;
        let sealed = self.vault.seal(&Self::aad(account), &plain);
        self.store
            .put_replay_durably(key, sealed)
            .await
            .map_err(Failure::from)
    }

    /// The kept answer was delivered on a retry: it is not replayed again (but a void's is).
    pub async fn delivered_replay(&self, key: &Key, method: &Method) {
        if !replays_delivered(method) {
            let _ = self.store.remove_replay(key).await;
        }
    }

    /// Whether a delivered answer of this call must still be kept (a void's).
    pub fn keeps_delivered(method: &Method) -> bool {
        replays_delivered(method)
    }

    /// Register a call, or wait for the identical one in flight when its client has gone.
    /// After waiting, look for a kept answer again.
    pub async fn begin(self: &Arc<Self>, key: Key) -> Begin {
        if self.shared && !self.inflight.contains_key(&key) {
            let until = unix_now() + self.call_bound.as_secs();
            match self.store.claim_call(&key, until).await {
                Ok(None) => {}
                Ok(Some(_)) => {
                    tracing::info!(
                        "an identical call is in flight at another instance; waiting for it"
                    );
                    self.wait_for_other_instance(&key).await;
                    return Begin::Separate;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot mark a call in flight in the store; a retry at another instance would not wait for it");
                }
            }
        }
        let waiting = match self.inflight.entry(key) {
            dashmap::Entry::Vacant(v) => {
                let (tx, _) = watch::channel(None);
                let flight = Arc::new(InFlight {
                    client_gone: AtomicBool::new(false),
                    done: tx,
                });
                v.insert(flight.clone());
                return Begin::Call(Ticket {
                    key,
                    flight,
                    replays: self.clone(),
                    finished: false,
                });
            }
            dashmap::Entry::Occupied(o) => o.get().clone(),
        };
        // Wait for the identical call in flight to end. If its client had gone, this is its
        // retry and gets the kept answer; if it was delivered,
        // this is a second, separate request (two boxes) and makes its own call. Deciding
        // only afterwards avoids racing the first client's close against its retry.
        let mut rx = waiting.done.subscribe();
        let outcome = rx
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|o| o.clone());
        match outcome {
            Some(Outcome::Kept(status, body)) => Begin::Answered(status, body),
            _ => Begin::Separate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effectful_calls() {
        assert!(is_effectful(&Method::POST, "/api/shipments/v2409/ship"));
        assert!(is_effectful(
            &Method::POST,
            "/api/shipments/v2409/ship?additionaladdressvalidation=city"
        ));
        assert!(is_effectful(
            &Method::DELETE,
            "/api/shipments/v2409/void/cancel/1Z"
        ));
        assert!(is_effectful(
            &Method::POST,
            "/api/pickupcreation/v2409/pickup"
        ));
        assert!(is_effectful(
            &Method::DELETE,
            "/api/shipments/v2409/pickup/02"
        ));
        assert!(!is_effectful(&Method::POST, "/api/rating/v2409/Rate"));
        assert!(!is_effectful(&Method::GET, "/api/track/v1/details/1Z"));
        assert!(!is_effectful(
            &Method::POST,
            "/api/shipments/v2409/pickup/oncall"
        ));
    }
}
