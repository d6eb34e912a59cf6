//! Legacy passwords: argon2 hashes in the map, and a per-account cache of the
//! password that last verified, so the hot path pays argon2 once per account
//! rather than once per request.
//!
//! The cache holds an HMAC of the password under a key made fresh for each
//! process, never the password. Comparisons are constant-time.

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::OnceLock;
use subtle::ConstantTimeEq;

/// Hash a legacy password for the account map (argon2id, OWASP parameters).
pub fn hash(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Check that a map's `password_hash` is an argon2 PHC string; `Err` says why not.
pub fn check_hash(phc: &str) -> Result<(), &'static str> {
    let parsed = PasswordHash::new(phc).map_err(|_| "is not a PHC string ($argon2id$v=19$…)")?;
    if !matches!(
        parsed.algorithm.as_str(),
        "argon2id" | "argon2i" | "argon2d"
    ) {
        return Err("is not an argon2 hash");
    }
    if parsed.hash.is_none() || parsed.salt.is_none() {
        return Err("has no salt or hash part");
    }
    Ok(())
}

/// argon2 verification; slow on purpose: call it off the async runtime. (The proxy checks
/// passwords through [`super::guard::LoginGuard`], which adds backoff and a concurrency cap.)
pub fn verify_slow(phc: &str, password: &str) -> bool {
    let ok = verify_in(phc, password, &mut Vec::new());
    // argon2's 19 MiB work area would otherwise stay resident on this thread.
    crate::memory::return_freed_memory();
    ok
}

/// A keyed digest of a password, to remember "this password verified" cheaply.
#[derive(Clone, Copy)]
pub struct PasswordTag([u8; 32]);

impl PasswordTag {
    pub fn of(password: &str) -> PasswordTag {
        // Keyed once per process: a clone of the keyed state skips hashing the key's two
        // pads on every request (half of the tag's SHA-256 work).
        static KEYED: OnceLock<Hmac<Sha256>> = OnceLock::new();
        let mut mac = KEYED
            .get_or_init(|| {
                let key: [u8; 32] = rand::random();
                Hmac::<Sha256>::new_from_slice(&key).expect("hmac takes any key length")
            })
            .clone();
        mac.update(password.as_bytes());
        PasswordTag(mac.finalize().into_bytes().into())
    }

    pub fn matches(&self, other: &PasswordTag) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl std::fmt::Debug for PasswordTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordTag(..)")
    }
}

/// argon2 verification of a PHC string in a caller-owned work area (grown as needed).
pub fn verify_in(phc: &str, password: &str, area: &mut Vec<Block>) -> bool {
    let Ok(h) = PasswordHash::new(phc) else {
        return false;
    };
    let (Ok(algorithm), Ok(params), Some(salt), Some(expected)) = (
        Algorithm::try_from(h.algorithm),
        Params::try_from(&h),
        h.salt,
        h.hash,
    ) else {
        return false;
    };
    let version = h
        .version
        .and_then(|v| Version::try_from(v).ok())
        .unwrap_or_default();
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let blocks = params.block_count();
    if area.len() < blocks {
        area.resize(blocks, Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params);
    if argon
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut area[..blocks])
        .is_err()
    {
        return false;
    }
    out.ct_eq(expected.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_like_argon2_in_a_reused_area() {
        let h = hash("legacypass").unwrap();
        let mut area = Vec::new();
        assert!(verify_in(&h, "legacypass", &mut area));
        let size = area.len();
        assert!(!verify_in(&h, "legacypasS", &mut area));
        assert_eq!(area.len(), size, "the work area is reused");
        assert!(!verify_in("not a hash", "x", &mut area));
    }

    #[test]
    fn hash_then_verify() {
        let h = hash("legacypass").unwrap();
        assert!(check_hash(&h).is_ok());
        assert!(verify_slow(&h, "legacypass"));
        assert!(!verify_slow(&h, "legacypasS"));
    }

    #[test]
    fn non_argon2_hashes_are_refused() {
        assert!(check_hash("plain").is_err());
        assert!(check_hash("$pbkdf2-sha256$i=1000$c2FsdA$aGFzaA").is_err());
    }

    #[test]
    fn tags_compare_by_password() {
        assert!(PasswordTag::of("a").matches(&PasswordTag::of("a")));
        assert!(!PasswordTag::of("a").matches(&PasswordTag::of("b")));
    }
}
