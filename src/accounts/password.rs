//! Legacy passwords: argon2 hashes in the map, and a per-account cache of the
//! password that last verified, so the hot path pays argon2 once per account
//! rather than once per request.
//!
//! The cache holds an HMAC of the password under a key made fresh for each
//! process, never the password. Comparisons are constant-time.

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, SaltString};
use argon2::Argon2;
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
    let ok = super::guard::verify_in(phc, password, &mut Vec::new());
    // argon2's 19 MiB work area would otherwise stay resident on this thread.
    crate::memory::return_freed_memory();
    ok
}

/// A keyed digest of a password, to remember "this password verified" cheaply.
#[derive(Clone, Copy)]
pub struct PasswordTag([u8; 32]);

impl PasswordTag {
    pub fn of(password: &str) -> PasswordTag {
        static KEY: OnceLock<[u8; 32]> = OnceLock::new();
        let key = KEY.get_or_init(rand::random);
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("hmac takes any key length");
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

#[cfg(test)]
mod tests {
    use super::*;

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
