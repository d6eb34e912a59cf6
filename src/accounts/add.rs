//! Adding an account to the map file, from the ops page's New-account form or
//! `upsbridge accounts add`: the `[[account]]` block is appended with `toml_edit`, so the
//! file's comments and layout stay; the whole new file is validated exactly as
//! `accounts check` validates it (and its secret source resolved) before it is written;
//! it is written atomically (temp file, fsync, rename, fsync of the directory); and it is
//! refused if the file changed since the form was opened.
//!
//! The legacy password is hashed here and never written, logged or shown in clear.

use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};
use toml_edit::{value, DocumentMut, Item, Table};

use super::map::{self, Grant};

/// What the form (or the CLI) asks for.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub name: String,
    pub ups_account_number: String,
    pub grant: Grant,
    pub client_id: String,
    /// `env:NAME` or `file:PATH` (relative to the map file).
    pub secret_source: String,
    pub access_license_number: String,
    pub user_id: String,
    /// `production` or `cie` (`None`: the one `[ups] base_url` names).
    pub environment: Option<String>,
}

/// Why an account could not be added (shown to ops as is: never holds a secret).
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    #[error("the account map changed since this form was opened (someone else edited it); open the form again")]
    Changed,
    #[error("{0}")]
    Invalid(String),
    #[error("cannot write the account map {file}: {source}")]
    Write {
        file: String,
        #[source]
        source: std::io::Error,
    },
}

/// SHA-256 of the map file's bytes, hex: what the form carries to detect concurrent edits.
pub fn file_digest(bytes: &[u8]) -> String {
    crate::admin::auth::hex(&Sha256::digest(bytes))
}

/// The new map text: `current` with the block appended (comments and layout kept).
pub fn with_account(
    current: &str,
    new: &NewAccount,
    password_hash: &str,
) -> Result<String, AddError> {
    let mut doc: DocumentMut = current
        .parse()
        .map_err(|e| AddError::Invalid(format!("the current map is not valid TOML: {e}")))?;
    let mut t = Table::new();
    t["name"] = value(&new.name);
    t["ups_account_number"] = value(&new.ups_account_number);
    t["access_license_number"] = value(&new.access_license_number);
    t["user_id"] = value(&new.user_id);
    t["password_hash"] = value(password_hash);
    t["client_id"] = value(&new.client_id);
    match new.secret_source.split_once(':') {
        Some(("env", var)) if !var.trim().is_empty() => t["client_secret_env"] = value(var.trim()),
        Some(("file", path)) if !path.trim().is_empty() => {
            t["client_secret_file"] = value(path.trim())
        }
        _ => {
            return Err(AddError::Invalid(
                "the client secret source must be env:VARIABLE or file:PATH".into(),
            ))
        }
    }
    t["grant"] = value(new.grant.as_str());
    if let Some(env) = &new.environment {
        t["environment"] = value(env);
    }
    // A map with no account yet holds its comments as the document's trailing text: keep
    // them in front of the first block.
    let lead = if doc.get("account").is_none() {
        let trailing = doc.trailing().as_str().unwrap_or("").to_string();
        doc.set_trailing("");
        trailing
    } else {
        String::new()
    };
    t.decor_mut()
        .set_prefix(format!("{lead}\n# added on the ops page\n"));
    match doc.get_mut("account") {
        Some(Item::ArrayOfTables(list)) => list.push(t),
        None => {
            let mut list = toml_edit::ArrayOfTables::new();
            list.push(t);
            doc.insert("account", Item::ArrayOfTables(list));
        }
        Some(_) => {
            return Err(AddError::Invalid(
                "the map's `account` key is not a list of [[account]] tables".into(),
            ))
        }
    }
    Ok(doc.to_string())
}

/// Validate `text` as the map at `file` would be: every `accounts check` rule (duplicate
/// names and logins against every account already there included) and the secret source.
pub fn validate(text: &str, file: &Path) -> Result<(), AddError> {
    let dir = file.parent().unwrap_or(Path::new("."));
    let name = file.display().to_string();
    let records = map::parse(text, &name, dir).map_err(|e| AddError::Invalid(e.to_string()))?;
    super::resolve(records, &name).map_err(|e| AddError::Invalid(e.to_string()))?;
    Ok(())
}

/// Add `new` to the map at `file`, refusing if its bytes no longer hash to `expected`
/// (`None`: do not check). The password is hashed here.
pub fn add_to_file(
    file: &Path,
    expected: Option<&str>,
    new: &NewAccount,
    password: &str,
) -> Result<(), AddError> {
    let write_err = |source| AddError::Write {
        file: file.display().to_string(),
        source,
    };
    let current = std::fs::read(file).map_err(write_err)?;
    if expected.is_some_and(|d| d != file_digest(&current)) {
        return Err(AddError::Changed);
    }
    if password.is_empty() {
        return Err(AddError::Invalid("the legacy password is empty".into()));
    }
    let hash = super::password::hash(password)
        .map_err(|e| AddError::Invalid(format!("cannot hash the password: {e}")))?;
    let text = with_account(&String::from_utf8_lossy(&current), new, &hash)?;
    validate(&text, file)?;
    write_atomically(file, text.as_bytes()).map_err(write_err)
}

/// Write via a temp file in the same directory, fsync it, rename it over, fsync the directory:
/// a reader (the map watcher, a crash) sees the old file or the new one, never half of it.
fn write_atomically(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = file.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    if let Ok(meta) = std::fs::metadata(file) {
        let _ = std::fs::set_permissions(tmp.path(), meta.permissions());
    }
    tmp.persist(file).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(name: &str, key: &str) -> NewAccount {
        NewAccount {
            name: name.into(),
            ups_account_number: "9Y9Y9Y".into(),
            grant: Grant::ClientCredentials,
            client_id: "c".into(),
            secret_source: "env:HOME".into(),
            access_license_number: key.into(),
            user_id: "u".into(),
            environment: Some("cie".into()),
        }
    }

    #[test]
    fn the_block_is_appended_keeping_comments_and_the_map_validates() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("accounts.toml");
        let first = "# our accounts\n# (managed by hand)\n";
        std::fs::write(&file, first).unwrap();
        let digest = file_digest(first.as_bytes());
        add_to_file(&file, Some(&digest), &new("east", "K1"), "pw-1").unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.starts_with("# our accounts\n# (managed by hand)\n"),
            "{text}"
        );
        assert!(
            text.contains("name = \"east\"") && text.contains("$argon2id$"),
            "{text}"
        );
        assert!(!text.contains("pw-1"));
        // The form was opened before this change: refused.
        assert!(matches!(
            add_to_file(&file, Some(&digest), &new("west", "K2"), "pw"),
            Err(AddError::Changed)
        ));
        // A duplicate login is refused by the same rules as `accounts check`.
        let digest = file_digest(&std::fs::read(&file).unwrap());
        let e = add_to_file(&file, Some(&digest), &new("west", "K1"), "pw").unwrap_err();
        assert!(
            e.to_string().contains("K1") || e.to_string().contains("duplicate"),
            "{e}"
        );
        add_to_file(&file, Some(&digest), &new("west", "K2"), "pw").unwrap();
        assert_eq!(map::load(&file).unwrap().len(), 2);
    }
}
