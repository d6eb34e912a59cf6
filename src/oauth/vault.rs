//! Tokens at rest: sealed with XChaCha20-Poly1305 before they touch the store.
//!
//! The key comes from `UPSBRIDGE_STORE_KEY` (base64, 32 bytes) or the key file
//! named in the config (created 0600 on first start). A key that does not open
//! the store is a startup error, never a silent reset: the store keeps a sealed
//! check value to tell. The account name is bound in as associated data, so a
//! record copied to another account does not open.

use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

pub const KEY_ENV: &str = "UPSBRIDGE_STORE_KEY";
const CHECK_PLAINTEXT: &[u8] = b"upsbridge store key check v1";
const NONCE_LEN: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("{KEY_ENV} is not base64 of 32 bytes")]
    BadEnvKey,
    #[error("key file {path} is not base64 of 32 bytes")]
    BadKeyFile { path: String },
    #[error("cannot read or create key file {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("the store holds sealed tokens but the key file {path} does not exist; restore the key file (or set {KEY_ENV}); upsbridge will not reset the store")]
    KeyMissing { path: String },
    #[error("the key ({source_name}) does not open this store: wrong key file or {KEY_ENV}; restore the right key, upsbridge will not reset the store")]
    WrongKey { source_name: String },
    #[error("a sealed record does not open (tampered, or sealed for another account)")]
    Open,
}

/// One account's tokens as stored (sealed as a whole).
#[derive(Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    pub access_token: String,
    pub access_expires_at: u64,
    pub refresh_token: Option<String>,
    pub refresh_expires_at: Option<u64>,
    /// Increases with every rotation; the newest wins when journals are replayed.
    pub generation: u64,
}

impl std::fmt::Debug for TokenRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRecord")
            .field("access_expires_at", &self.access_expires_at)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// The sealing key.
#[derive(Clone)]
pub struct Vault {
    cipher: XChaCha20Poly1305,
    key_b64: SecretString,
}

impl Vault {
    pub fn from_key(key: &[u8; 32]) -> Vault {
        Vault {
            cipher: XChaCha20Poly1305::new(key.into()),
            key_b64: SecretString::from(STANDARD.encode(key)),
        }
    }

    /// The key, base64 (handed to the rotation helper over a pipe, never argv or logs).
    pub fn key_b64(&self) -> &str {
        self.key_b64.expose_secret()
    }

    pub fn from_b64(text: &str) -> Option<Vault> {
        let bytes = STANDARD.decode(text.trim()).ok()?;
        let key: [u8; 32] = bytes.try_into().ok()?;
        Some(Vault::from_key(&key))
    }

    /// Load the key: the environment wins, else the key file (created when the store has
    /// no sealed data yet). `check` is the store's sealed check value, if any.
    pub fn load(
        key_file: &Path,
        store_has_sealed_data: bool,
    ) -> Result<(Vault, String), VaultError> {
        if let Ok(v) = std::env::var(KEY_ENV) {
            let vault = Vault::from_b64(&v).ok_or(VaultError::BadEnvKey)?;
            return Ok((vault, KEY_ENV.to_string()));
        }
        let path = key_file.display().to_string();
        match std::fs::read_to_string(key_file) {
            Ok(text) => {
                let vault =
                    Vault::from_b64(&text).ok_or(VaultError::BadKeyFile { path: path.clone() })?;
                Ok((vault, path))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if store_has_sealed_data {
                    return Err(VaultError::KeyMissing { path });
                }
                let key: [u8; 32] = rand::random();
                write_key_file(key_file, &STANDARD.encode(key)).map_err(|source| {
                    VaultError::KeyFile {
                        path: path.clone(),
                        source,
                    }
                })?;
                Ok((Vault::from_key(&key), path))
            }
            Err(source) => Err(VaultError::KeyFile { path, source }),
        }
    }

    pub fn seal(&self, aad: &str, plaintext: &[u8]) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ct = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 sealing cannot fail for in-memory data");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        out
    }

    pub fn open(&self, aad: &str, sealed: &[u8]) -> Result<Vec<u8>, VaultError> {
        if sealed.len() < NONCE_LEN {
            return Err(VaultError::Open);
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| VaultError::Open)
    }

    pub fn seal_record(&self, account: &str, record: &TokenRecord) -> Vec<u8> {
        self.seal(
            account,
            &serde_json::to_vec(record).expect("token record serializes"),
        )
    }

    pub fn open_record(&self, account: &str, sealed: &[u8]) -> Result<TokenRecord, VaultError> {
        let plain = self.open(account, sealed)?;
        serde_json::from_slice(&plain).map_err(|_| VaultError::Open)
    }

    /// The value the store keeps to recognise its key.
    pub fn check_value(&self) -> Vec<u8> {
        self.seal("key-check", CHECK_PLAINTEXT)
    }

    pub fn verify_check(&self, sealed: &[u8], source_name: &str) -> Result<(), VaultError> {
        match self.open("key-check", sealed) {
            Ok(p) if p == CHECK_PLAINTEXT => Ok(()),
            _ => Err(VaultError::WrongKey {
                source_name: source_name.to_string(),
            }),
        }
    }
}

fn write_key_file(path: &Path, b64: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(b64.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_open_only_for_their_account_and_key() {
        let v = Vault::from_key(&[7; 32]);
        let r = TokenRecord {
            access_token: "at".into(),
            access_expires_at: 1,
            refresh_token: Some("rt".into()),
            refresh_expires_at: None,
            generation: 3,
        };
        let sealed = v.seal_record("east", &r);
        assert!(!String::from_utf8_lossy(&sealed).contains("rt"));
        assert_eq!(v.open_record("east", &sealed).unwrap().generation, 3);
        assert!(v.open_record("west", &sealed).is_err());
        assert!(Vault::from_key(&[8; 32])
            .open_record("east", &sealed)
            .is_err());
        let check = v.check_value();
        assert!(v.verify_check(&check, "k").is_ok());
        assert!(Vault::from_key(&[8; 32]).verify_check(&check, "k").is_err());
    }

    #[test]
    fn key_file_is_created_0600_once_and_missing_key_with_data_is_an_error() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let (a, _) = Vault::load(&path, false).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (b, _) = Vault::load(&path, true).unwrap();
        assert_eq!(a.key_b64(), b.key_b64());
        let missing = dir.path().join("absent");
        assert!(matches!(
            Vault::load(&missing, true),
            Err(VaultError::KeyMissing { .. })
        ));
    }
}
