//! The account map file ops edit: TOML `[[account]]` records mapping legacy
//! credentials to a UPS OAuth app.
//!
//! The file is checked block by block (one `[[account]]` each), so one syntax
//! error does not hide the problems of the other records: `accounts check`
//! reports every problem with its line. A map with any problem is rejected
//! whole. This module never reads a secret's value into a message.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::config::{line_of, Environment};

/// How an account gets its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grant {
    ClientCredentials,
    AuthorizationCode,
}

impl Grant {
    pub fn as_str(self) -> &'static str {
        match self {
            Grant::ClientCredentials => "client_credentials",
            Grant::AuthorizationCode => "authorization_code",
        }
    }
}

/// Where an account's OAuth client secret comes from (never the secret itself).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretSource {
    Env(String),
    File(std::path::PathBuf),
}

/// One validated record of the map.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AccountRecord {
    pub name: String,
    pub ups_account_number: String,
    pub access_license_number: String,
    pub user_id: String,
    /// argon2 PHC string of the legacy password.
    pub password_hash: String,
    pub client_id: String,
    pub client_secret: SecretSource,
    pub grant: Grant,
    /// `production` or `cie` when the map says (else the one `[ups] base_url` names).
    #[serde(default)]
    pub environment: Option<Environment>,
    /// Line of the record's `[[account]]` header (for messages).
    pub line: usize,
}

/// One problem found in a map file, located at a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapProblem {
    pub line: usize,
    pub message: String,
}

/// Every problem of a rejected map file; `Display` prints one `FILE:LINE: message` per line.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.render())]
pub struct MapError {
    pub file: String,
    pub problems: Vec<MapProblem>,
}

impl MapError {
    fn render(&self) -> String {
        self.problems
            .iter()
            .map(|p| format!("{}:{}: {}", self.file, p.line, p.message))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    name: Spanned<String>,
    ups_account_number: Spanned<String>,
    access_license_number: Spanned<String>,
    user_id: Spanned<String>,
    password_hash: Spanned<String>,
    client_id: Spanned<String>,
    client_secret_env: Option<Spanned<String>>,
    client_secret_file: Option<Spanned<String>>,
    grant: Option<Spanned<String>>,
    environment: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBlock {
    account: Vec<RawAccount>,
}

/// Read and validate a map file. Relative `client_secret_file`s are relative to the map's folder.
pub fn load(path: &Path) -> Result<Vec<AccountRecord>, MapError> {
    let file = path.display().to_string();
    let text = std::fs::read(path).map_err(|e| MapError {
        file: file.clone(),
        problems: vec![MapProblem {
            line: 0,
            message: format!("cannot read the account map: {e}"),
        }],
    })?;
    let text = String::from_utf8(text).map_err(|e| MapError {
        file: file.clone(),
        problems: vec![MapProblem {
            line: 0,
            message: format!(
                "the account map is not UTF-8 (byte {})",
                e.utf8_error().valid_up_to()
            ),
        }],
    })?;
    parse(&text, &file, path.parent().unwrap_or(Path::new(".")))
}

/// Validate map text; `file` is used in messages, `dir` anchors relative secret files.
pub fn parse(text: &str, file: &str, dir: &Path) -> Result<Vec<AccountRecord>, MapError> {
    let mut problems = Vec::new();
    let mut records = Vec::new();
    for (first_line, block) in split_blocks(text) {
        // Lines are counted within the block, so a large map is read in linear time.
        let at = |offset: usize| first_line + line_of(block, offset) - 1;
        if !block.trim_start().starts_with("[[account]]") {
            // Text before the first record: only comments and blank lines belong there.
            if let Some((i, _)) = block
                .lines()
                .enumerate()
                .find(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            {
                problems.push(MapProblem {
                    line: first_line + i,
                    message: "only [[account]] records belong in an account map".into(),
                });
            }
            continue;
        }
        match toml::from_str::<RawBlock>(block) {
            Err(e) => problems.push(MapProblem {
                line: at(e.span().map(|s| s.start).unwrap_or(0)),
                message: format!("syntax: {}", e.message().trim_end()),
            }),
            Ok(raw) => {
                for acc in raw.account {
                    match validate(acc, dir, &at) {
                        Ok(r) => records.push(r.with_line(first_line)),
                        Err(mut p) => problems.append(&mut p),
                    }
                }
            }
        }
    }
    problems.extend(duplicates(&records));
    if problems.is_empty() && records.is_empty() {
        // Almost always a file caught mid-write (truncated to zero): never let it remove every account.
        problems.push(MapProblem {
            line: 1,
            message: "the account map has no [[account]] records (a file caught mid-write?); keeping the previous map".into(),
        });
    }
    if problems.is_empty() {
        Ok(records)
    } else {
        problems.sort_by_key(|p| p.line);
        Err(MapError {
            file: file.to_string(),
            problems,
        })
    }
}

impl AccountRecord {
    fn with_line(mut self, line: usize) -> Self {
        self.line = line;
        self
    }
}

/// Split into (first line number, text) chunks, each starting at a `[[account]]` header line
/// (the first chunk may be a preamble).
fn split_blocks(text: &str) -> Vec<(usize, &str)> {
    let mut starts = vec![(0, 1)];
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if offset > 0 && line.trim_start().starts_with("[[account]]") {
            starts.push((offset, i + 1));
        }
        offset += line.len();
    }
    starts.push((text.len(), 0));
    starts
        .windows(2)
        .map(|w| (w[0].1, &text[w[0].0..w[1].0]))
        .filter(|(_, b)| !b.is_empty())
        .collect()
}

fn validate(
    raw: RawAccount,
    dir: &Path,
    at: &dyn Fn(usize) -> usize,
) -> Result<AccountRecord, Vec<MapProblem>> {
    let mut problems = Vec::new();
    let mut problem = |s: usize, message: String| {
        problems.push(MapProblem {
            line: at(s),
            message,
        })
    };
    let non_empty = |f: &Spanned<String>, what: &str, problem: &mut dyn FnMut(usize, String)| {
        if f.get_ref().trim().is_empty() {
            problem(f.span().start, format!("{what} must not be empty"));
        }
    };

    let name = raw.name.get_ref();
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        problem(
            raw.name.span().start,
            format!("name `{name}` must be lower-case letters, digits and '-'"),
        );
    }
    non_empty(&raw.ups_account_number, "ups_account_number", &mut problem);
    non_empty(
        &raw.access_license_number,
        "access_license_number",
        &mut problem,
    );
    non_empty(&raw.user_id, "user_id", &mut problem);
    non_empty(&raw.client_id, "client_id", &mut problem);
    if let Err(why) = crate::accounts::password::check_hash(raw.password_hash.get_ref()) {
        problem(
            raw.password_hash.span().start,
            format!(
                "password_hash {why}; make one with `upsbridge accounts hash-password` for account `{name}`"
            ),
        );
    }
    let grant = match raw.grant.as_ref().map(|g| (g.get_ref().as_str(), g.span())) {
        None | Some(("client_credentials", _)) => Grant::ClientCredentials,
        Some(("authorization_code", _)) => Grant::AuthorizationCode,
        Some((other, span)) => {
            problem(
                span.start,
                format!("grant `{other}` is neither `client_credentials` nor `authorization_code`"),
            );
            Grant::ClientCredentials
        }
    };
    let environment = match raw
        .environment
        .as_ref()
        .map(|e| (e.get_ref().as_str(), e.span()))
    {
        None => None,
        Some((e, _)) if Environment::parse(e).is_some() => Environment::parse(e),
        Some((other, span)) => {
            problem(
                span.start,
                format!("environment `{other}` is neither `production` nor `cie`"),
            );
            None
        }
    };
    let client_secret = match (&raw.client_secret_env, &raw.client_secret_file) {
        (Some(env), None) if !env.get_ref().trim().is_empty() => {
            Some(SecretSource::Env(env.get_ref().clone()))
        }
        (None, Some(f)) if !f.get_ref().trim().is_empty() => {
            let p = Path::new(f.get_ref());
            Some(SecretSource::File(if p.is_absolute() {
                p.to_path_buf()
            } else {
                dir.join(p)
            }))
        }
        (Some(_), Some(f)) => {
            problem(
                f.span().start,
                "give either client_secret_env or client_secret_file, not both".into(),
            );
            None
        }
        _ => {
            problem(
                raw.name.span().start,
                format!("account `{name}` needs client_secret_env or client_secret_file (the secret itself never goes in the map)"),
            );
            None
        }
    };
    match client_secret {
        Some(client_secret) if problems.is_empty() => Ok(AccountRecord {
            name: raw.name.into_inner(),
            ups_account_number: raw.ups_account_number.into_inner(),
            access_license_number: raw.access_license_number.into_inner(),
            user_id: raw.user_id.into_inner(),
            password_hash: raw.password_hash.into_inner(),
            client_id: raw.client_id.into_inner(),
            client_secret,
            grant,
            environment,
            line: 0,
        }),
        _ => Err(problems),
    }
}

fn duplicates(records: &[AccountRecord]) -> Vec<MapProblem> {
    let mut problems = Vec::new();
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut logins: HashMap<(&str, &str), usize> = HashMap::new();
    for r in records {
        if let Some(first) = names.insert(&r.name, r.line) {
            problems.push(MapProblem {
                line: r.line,
                message: format!(
                    "duplicate account name `{}` (first at line {first})",
                    r.name
                ),
            });
        }
        if let Some(first) = logins.insert((&r.access_license_number, &r.user_id), r.line) {
            problems.push(MapProblem {
                line: r.line,
                message: format!(
                    "duplicate access_license_number + user_id (user `{}`; first at line {first})",
                    r.user_id
                ),
            });
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash() -> String {
        crate::accounts::password::hash("pw").unwrap()
    }

    fn record(name: &str, key: &str, user: &str, hash: &str) -> String {
        format!(
            "[[account]]\nname = \"{name}\"\nups_account_number = \"9Y9Y9Y\"\naccess_license_number = \"{key}\"\nuser_id = \"{user}\"\npassword_hash = \"{hash}\"\nclient_id = \"cid\"\nclient_secret_env = \"SECRET\"\n"
        )
    }

    #[test]
    fn valid_map_parses() {
        let h = hash();
        let text = format!(
            "# ops map\n\n{}{}",
            record("a", "K1", "u", &h),
            record("b", "K1", "v", &h)
        );
        let recs = parse(&text, "m.toml", Path::new(".")).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].line, 3);
        assert_eq!(recs[1].line, 11);
        assert_eq!(recs[1].client_secret, SecretSource::Env("SECRET".into()));
        assert_eq!(recs[0].grant, Grant::ClientCredentials);
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let h = hash();
        let text = format!(
            "{}{}{}[[account]]\nname = \"d\nbroken\n",
            record("a", "K1", "u", &h),
            record("b", "K1", "u", &h),
            record("c", "K2", "u", "not-a-hash"),
        );
        let err = parse(&text, "m.toml", Path::new(".")).unwrap_err();
        let lines: Vec<usize> = err.problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![9, 22, 26], "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("m.toml:9: duplicate access_license_number"),
            "{msg}"
        );
        assert!(msg.contains("m.toml:22: password_hash"), "{msg}");
        assert!(msg.contains("m.toml:26: syntax"), "{msg}");
    }

    #[test]
    fn missing_secret_source_and_bad_grant_are_problems() {
        let h = hash();
        let text = format!(
            "[[account]]\nname = \"a\"\nups_account_number = \"1\"\naccess_license_number = \"K\"\nuser_id = \"u\"\npassword_hash = \"{h}\"\nclient_id = \"c\"\ngrant = \"password\"\n"
        );
        let err = parse(&text, "m.toml", Path::new(".")).unwrap_err();
        assert_eq!(err.problems.len(), 2, "{err}");
        assert!(err.to_string().contains("grant `password`"));
    }

    #[test]
    fn secret_values_never_appear_in_messages() {
        let text = "[[account]]\nname = \"a\"\nclient_secret = \"hunter2\"\n";
        let err = parse(text, "m.toml", Path::new(".")).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
