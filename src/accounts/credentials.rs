//! What a legacy client presents: an access license number, a user id and a password,
//! each its own type so that one cannot be passed for another, and none prints whole in
//! `Debug` (panics, `{:?}` in a log line). In `Display`, the user id prints whole (refusal
//! log lines name who tried, for ops), the access key only as a hash (legacy-dialects §2:
//! never log the stripped values), and the password not at all.

use secrecy::{ExposeSecret, SecretString};
use sha2::Digest as _;

macro_rules! shown_in_logs {
    ($name:ident, $what:literal) => {
        #[doc = concat!("A legacy ", $what, " (trimmed; empty when the client sent none).")]
        #[derive(Clone, Default, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn is_empty(&self) -> bool {
                self.0.is_empty()
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(crate::substring::trim(s).to_string())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                let trimmed = crate::substring::trim(&s);
                if trimmed.len() == s.len() {
                    $name(s)
                } else {
                    $name(trimmed.to_string())
                }
            }
        }

        /// The first two characters only.
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let head: String = self.0.chars().take(2).collect();
                write!(f, concat!(stringify!($name), "({}…)"), head)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

shown_in_logs!(AccessKey, "access license number");
shown_in_logs!(UserId, "user id");

/// `ak:` and the first 8 hex digits of its SHA-256: enough to tell keys apart in logs.
impl std::fmt::Display for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("-");
        }
        let hash = sha2::Sha256::digest(self.0.as_bytes());
        write!(
            f,
            "ak:{:02x}{:02x}{:02x}{:02x}",
            hash[0], hash[1], hash[2], hash[3]
        )
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A legacy password: only [`Password::expose`] reads it, to verify it.
#[derive(Clone, Default)]
pub struct Password(SecretString);

impl Password {
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl From<String> for Password {
    fn from(s: String) -> Self {
        Password(SecretString::from(s))
    }
}

impl From<&str> for Password {
    fn from(s: &str) -> Self {
        Password(SecretString::from(s.to_string()))
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(redacted)")
    }
}

/// What a legacy client presented (already taken out of its request).
#[derive(Debug, Default)]
pub struct LegacyCredentials {
    pub access_key: AccessKey,
    pub user_id: UserId,
    pub password: Password,
}

impl LegacyCredentials {
    pub fn new(
        access_key: impl Into<AccessKey>,
        user_id: impl Into<UserId>,
        password: impl Into<Password>,
    ) -> LegacyCredentials {
        LegacyCredentials {
            access_key: access_key.into(),
            user_id: user_id.into(),
            password: password.into(),
        }
    }

    /// A request that carried no credentials at all (refused as such).
    pub fn none() -> LegacyCredentials {
        LegacyCredentials::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_a_credential_whole() {
        let c = LegacyCredentials::new(" ACCESSKEY123 ", "legacyuser", "legacypass-Xq7");
        let shown = format!("{c:?}");
        for whole in ["ACCESSKEY123", "legacyuser", "legacypass", "Xq7"] {
            assert!(!shown.contains(whole), "{shown}");
        }
        assert_eq!(c.access_key, "ACCESSKEY123", "trimmed");
        assert_eq!(
            c.user_id.to_string(),
            "legacyuser",
            "Display is whole, for ops"
        );
        let logged = c.access_key.to_string();
        assert!(logged.starts_with("ak:") && logged.len() == 11, "{logged}");
        assert!(!logged.contains("ACCESS"), "{logged}");
        assert_eq!(c.password.expose(), "legacypass-Xq7");
    }
}
