//! Two-phase shipping on a one-phase API: the `ShipmentDigest` of old-XML
//! ShipConfirm/ShipAccept.
//!
//! ShipConfirm stores the translated REST ship request under a new digest:
//! 32 random bytes (the store key) plus an HMAC-SHA256 over them with a
//! per-store secret, both base64url, joined by `.`. A digest whose MAC fails is
//! refused before any lookup. The record is bound to the account, expires after
//! the configured TTL, and once accepted holds the REST answer, so a repeated
//! ShipAccept (a client retrying after a timeout) gets the same shipment back
//! and UPS is never asked to ship twice. A compare-and-swap marks a record as
//! "shipping" so two concurrent accepts cannot both ship.
//!
//! Never log a digest (it is a capability for one shipment) or a record body.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::clock::unix_now;
use crate::dialect::services::{RestBody, RestCall};
use crate::error::{DigestProblem, Failure};
use crate::store::{Store, StoreError};

type HmacSha256 = Hmac<Sha256>;

/// A "shipping" mark older than this is from an attempt that is over (the UPS
/// request timeout is far shorter), so the digest may be accepted again.
const STALE_SHIPPING: Duration = Duration::from_secs(120);

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    account: String,
    /// Unix seconds.
    expires_at: u64,
    ship_path: String,
    ship_body: String,
    state: State,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum State {
    Pending,
    Shipping { since: u64 },
    Shipped { status: u16, body: String },
}

/// What a ShipAccept must do.
pub enum Accept {
    /// Make this ship call, then [`ShipDigests::finish`] or [`ShipDigests::release`].
    Ship {
        key: Vec<u8>,
        call: RestCall,
        body: Bytes,
    },
    /// Already shipped: answer with UPS's earlier answer.
    Cached { status: u16, body: Bytes },
}

pub struct ShipDigests {
    store: Store,
    secret: [u8; 32],
    ttl: Duration,
}

impl ShipDigests {
    pub async fn open(store: Store, ttl: Duration) -> Result<ShipDigests, StoreError> {
        Ok(ShipDigests {
            secret: store.secret("digest_mac_key").await?,
            store,
            ttl,
        })
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length.
        <HmacSha256 as Mac>::new_from_slice(&self.secret).unwrap_or_else(|_| unreachable!())
    }

    /// Store a confirmed ship request; returns the digest for the client.
    pub async fn create(
        &self,
        account: &str,
        ship: &RestCall,
        ship_body: &Bytes,
    ) -> Result<String, Failure> {
        let key: [u8; 32] = rand::random();
        let mut mac = self.mac();
        mac.update(&key);
        let tag = mac.finalize().into_bytes();
        let record = Record {
            account: account.to_string(),
            expires_at: unix_now().saturating_add(self.ttl.as_secs().max(1)),
            ship_path: ship.path_and_query.clone(),
            ship_body: String::from_utf8_lossy(ship_body).into_owned(),
            state: State::Pending,
        };
        let value =
            serde_json::to_vec(&record).map_err(|e| Failure::unreadable("digest record", e))?;
        self.store
            .put_digest_durably(&key, value)
            .await
            .map_err(Failure::from)?;
        Ok(format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(key),
            URL_SAFE_NO_PAD.encode(tag)
        ))
    }

    /// The store key of a digest whose MAC verifies (constant-time comparison).
    fn verify(&self, digest: &str) -> Result<Vec<u8>, Failure> {
        let forged = Failure::DigestRefused(DigestProblem::Forged);
        let (key, tag) = digest.trim().split_once('.').ok_or(forged.clone())?;
        let key = URL_SAFE_NO_PAD.decode(key).map_err(|_| forged.clone())?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| forged.clone())?;
        if key.len() != 32 {
            return Err(forged);
        }
        let mut mac = self.mac();
        mac.update(&key);
        mac.verify_slice(&tag).map_err(|_| forged)?;
        Ok(key)
    }

    /// Start a ShipAccept for `account`.
    pub async fn begin(&self, digest: &str, account: &str) -> Result<Accept, Failure> {
        let key = self.verify(digest)?;
        let raw = self
            .store
            .digest(&key)
            .await
            .map_err(Failure::from)?
            .ok_or(Failure::DigestRefused(DigestProblem::Unknown))?;
        let mut record: Record =
            serde_json::from_slice(&raw).map_err(|e| Failure::unreadable("digest record", e))?;
        if record.account != account {
            return Err(Failure::DigestRefused(DigestProblem::Foreign));
        }
        let now = unix_now();
        if now >= record.expires_at {
            self.store
                .remove_digest(&key)
                .await
                .map_err(Failure::from)?;
            return Err(Failure::DigestRefused(DigestProblem::Expired));
        }
        match &record.state {
            State::Shipped { status, body } => {
                return Ok(Accept::Cached {
                    status: *status,
                    body: Bytes::from(body.clone()),
                })
            }
            State::Shipping { since } if now.saturating_sub(*since) < STALE_SHIPPING.as_secs() => {
                return Err(Failure::DigestBusy)
            }
            State::Shipping { .. } | State::Pending => {}
        }
        record.state = State::Shipping { since: now };
        let new =
            serde_json::to_vec(&record).map_err(|e| Failure::unreadable("digest record", e))?;
        if !self
            .store
            .swap_digest_durably(&key, &raw, new)
            .await
            .map_err(Failure::from)?
        {
            return Err(Failure::DigestBusy);
        }
        Ok(Accept::Ship {
            key,
            call: RestCall {
                method: http::Method::POST,
                path_and_query: record.ship_path,
                body: RestBody::None,
                headers: vec![],
            },
            body: Bytes::from(record.ship_body),
        })
    }

    async fn set_state(&self, key: &[u8], state: State) -> Result<(), Failure> {
        let raw = self
            .store
            .digest(key)
            .await
            .map_err(Failure::from)?
            .ok_or(Failure::DigestRefused(DigestProblem::Unknown))?;
        let mut record: Record =
            serde_json::from_slice(&raw).map_err(|e| Failure::unreadable("digest record", e))?;
        record.state = state;
        let new =
            serde_json::to_vec(&record).map_err(|e| Failure::unreadable("digest record", e))?;
        self.store
            .put_digest_durably(key, new)
            .await
            .map_err(Failure::from)
    }

    /// The ship call succeeded: keep UPS's answer for repeated accepts (flushed).
    pub async fn finish(&self, key: &[u8], status: u16, body: &Bytes) -> Result<(), Failure> {
        self.set_state(
            key,
            State::Shipped {
                status,
                body: String::from_utf8_lossy(body).into_owned(),
            },
        )
        .await
    }

    /// The ship call failed (nothing shipped): the digest may be accepted again.
    pub async fn release(&self, key: &[u8]) -> Result<(), Failure> {
        self.set_state(key, State::Pending).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn digests(ttl: u64) -> (tempfile::TempDir, ShipDigests) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s")).await.unwrap();
        (
            dir,
            ShipDigests::open(store, Duration::from_secs(ttl))
                .await
                .unwrap(),
        )
    }

    fn call() -> RestCall {
        RestCall {
            method: http::Method::POST,
            path_and_query: "/api/shipments/v2409/ship".into(),
            body: RestBody::None,
            headers: vec![],
        }
    }

    #[tokio::test]
    async fn accept_once_then_cached_and_bound_to_the_account() {
        let (_d, dg) = digests(3600).await;
        let digest = dg
            .create("east", &call(), &Bytes::from_static(b"{}"))
            .await
            .unwrap();
        assert!(matches!(
            dg.begin(&digest, "west").await,
            Err(Failure::DigestRefused(DigestProblem::Foreign))
        ));
        let Accept::Ship { key, call, body } = dg.begin(&digest, "east").await.unwrap() else {
            panic!("ship")
        };
        assert_eq!(call.path_and_query, "/api/shipments/v2409/ship");
        assert_eq!(&body[..], b"{}");
        assert!(matches!(
            dg.begin(&digest, "east").await,
            Err(Failure::DigestBusy)
        ));
        dg.finish(&key, 200, &Bytes::from_static(b"{\"a\":1}"))
            .await
            .unwrap();
        let Accept::Cached { status, body } = dg.begin(&digest, "east").await.unwrap() else {
            panic!("cached")
        };
        assert_eq!((status, &body[..]), (200, &b"{\"a\":1}"[..]));
    }

    #[tokio::test]
    async fn forged_and_expired_digests_are_refused() {
        let (_d, dg) = digests(1).await;
        let digest = dg.create("east", &call(), &Bytes::new()).await.unwrap();
        let mut forged = digest.clone().into_bytes();
        forged[0] = if forged[0] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        for bad in [forged.as_str(), "", "abc", "a.b"] {
            assert!(matches!(
                dg.begin(bad, "east").await,
                Err(Failure::DigestRefused(DigestProblem::Forged))
            ));
        }
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert!(matches!(
            dg.begin(&digest, "east").await,
            Err(Failure::DigestRefused(DigestProblem::Expired))
        ));
    }
}
