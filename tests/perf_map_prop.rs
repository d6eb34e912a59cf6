//! Property tests for the account map parser (`accounts::map::parse`): arbitrary text and
//! mutated valid maps never panic, every problem is located on a line of the file, and every
//! accepted record points at its `[[account]]` line.
//!
//! Longer run: `PROPTEST_CASES=20000 cargo test --test perf_map_prop`.

use std::path::Path;

use proptest::prelude::*;
use upsbridge::accounts::map::{self, AccountRecord, MapError};

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$sYihtZ8qVQap5JqEEQbYZQ$R+r9W4C3b7hP1WTS0KtyxTqWIUexGPcxYhuQSwyrIrk";

fn record(i: usize) -> String {
    format!(
        "[[account]]\nname = \"acct-{i}\"\nups_account_number = \"9Y9Y{i:02}\"\naccess_license_number = \"KEY{i}\"\nuser_id = \"user{i}\"\npassword_hash = \"{HASH}\"\nclient_id = \"client-{i}\"\nclient_secret_env = \"SECRET_{i}\"\ngrant = \"client_credentials\"\n"
    )
}

fn valid_map(n: usize) -> String {
    let mut text = String::from("# account map\n\n");
    for i in 0..n {
        text.push_str(&record(i));
        text.push('\n');
    }
    text
}

/// Lines a problem may point at: 1 ..= the number of lines (a text without a final newline
/// still has its last line; an empty text has line 1).
fn max_line(text: &str) -> usize {
    text.matches('\n').count() + 1
}

fn check(text: &str) -> Result<(), TestCaseError> {
    match map::parse(text, "prop.toml", Path::new("/maps")) {
        Ok(records) => check_records(text, &records),
        Err(e) => check_error(text, &e),
    }
}

fn check_records(text: &str, records: &[AccountRecord]) -> Result<(), TestCaseError> {
    let lines: Vec<&str> = text.split('\n').collect();
    for r in records {
        prop_assert!(
            r.line >= 1 && r.line <= lines.len(),
            "record line {}",
            r.line
        );
        prop_assert!(
            lines[r.line - 1].trim_start().starts_with("[[account]]"),
            "record `{}` points at line {}: {:?}",
            r.name,
            r.line,
            lines[r.line - 1]
        );
    }
    Ok(())
}

fn check_error(text: &str, e: &MapError) -> Result<(), TestCaseError> {
    prop_assert!(!e.problems.is_empty(), "an error with no problem");
    let max = max_line(text);
    for p in &e.problems {
        prop_assert!(
            p.line >= 1 && p.line <= max,
            "problem at line {} of a {max}-line file: {}",
            p.line,
            p.message
        );
        prop_assert!(!p.message.is_empty());
    }
    // Display: one `FILE:LINE: message` line per problem (messages may span lines).
    prop_assert!(e.to_string().starts_with("prop.toml:"));
    Ok(())
}

/// One edit of a text, at a position given as a fraction of its length.
#[derive(Debug, Clone)]
enum Edit {
    Delete { at: f64, len: usize },
    Insert { at: f64, text: String },
    Replace { at: f64, with: char },
    DuplicateLine { at: f64 },
    SwapLines { a: f64, b: f64 },
}

fn edit() -> impl Strategy<Value = Edit> {
    let at = 0.0..1.0f64;
    let snippet = prop_oneof![
        Just("[[account]]\n".to_string()),
        Just("[account]\n".to_string()),
        Just("\"".to_string()),
        Just("=".to_string()),
        Just("\n".to_string()),
        Just("name = \"acct-0\"\n".to_string()),
        Just("access_license_number = \"KEY0\"\nuser_id = \"user0\"\n".to_string()),
        Just("client_secret_file = \"s\"\n".to_string()),
        Just("grant = \"password\"\n".to_string()),
        Just("password_hash = \"plain\"\n".to_string()),
        Just("x = [1, {a = 2}]\n".to_string()),
        Just("'''\n".to_string()),
        Just("\u{feff}é\u{0}\r\n".to_string()),
        "\\PC{0,12}",
    ];
    prop_oneof![
        (at.clone(), 1usize..40).prop_map(|(at, len)| Edit::Delete { at, len }),
        (at.clone(), snippet).prop_map(|(at, text)| Edit::Insert { at, text }),
        (at.clone(), any::<char>()).prop_map(|(at, with)| Edit::Replace { at, with }),
        at.clone().prop_map(|at| Edit::DuplicateLine { at }),
        (at.clone(), at).prop_map(|(a, b)| Edit::SwapLines { a, b }),
    ]
}

/// The char boundary nearest below `frac` of the text.
fn boundary(text: &str, frac: f64) -> usize {
    let mut i = ((text.len() as f64) * frac) as usize;
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(text: &mut String, e: &Edit) {
    match e {
        Edit::Delete { at, len } => {
            let from = boundary(text, *at);
            let mut to = (from + len).min(text.len());
            while !text.is_char_boundary(to) {
                to += 1;
            }
            text.replace_range(from..to, "");
        }
        Edit::Insert { at, text: t } => {
            let i = boundary(text, *at);
            text.insert_str(i, t);
        }
        Edit::Replace { at, with } => {
            let i = boundary(text, *at);
            if let Some(c) = text[i..].chars().next() {
                text.replace_range(i..i + c.len_utf8(), &with.to_string());
            }
        }
        Edit::DuplicateLine { at } => {
            let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
            if !lines.is_empty() {
                let i = ((lines.len() as f64) * at) as usize % lines.len();
                let l = lines[i].clone();
                lines.insert(i, l);
                *text = lines.concat();
            }
        }
        Edit::SwapLines { a, b } => {
            let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
            if lines.len() > 1 {
                let i = ((lines.len() as f64) * a) as usize % lines.len();
                let j = ((lines.len() as f64) * b) as usize % lines.len();
                lines.swap(i, j);
                *text = lines.concat();
            }
        }
    }
}

#[test]
fn generated_valid_maps_parse_with_their_lines() {
    // (An empty map is refused on purpose: it is what a file caught mid-write looks like.)
    let empty = map::parse(&valid_map(0), "m.toml", Path::new(".")).unwrap_err();
    assert!(
        empty.to_string().contains("no [[account]] records"),
        "{empty}"
    );
    for n in [1, 2, 7] {
        let text = valid_map(n);
        let records = map::parse(&text, "m.toml", Path::new(".")).unwrap();
        assert_eq!(records.len(), n);
        check_records(&text, &records).unwrap();
    }
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics_and_problems_are_on_lines_of_the_file(text in "\\PC{0,400}") {
        check(&text)?;
    }

    #[test]
    fn arbitrary_lines_of_map_vocabulary_never_panic(
        lines in proptest::collection::vec(prop_oneof![
            Just("[[account]]".to_string()),
            Just("".to_string()),
            Just("# c".to_string()),
            "[a-z_]{1,22} = \"[ -~]{0,12}\"",
            "[a-z_]{1,22} = [0-9]{1,3}",
            "[ -~]{0,30}",
        ], 0..40)
    ) {
        check(&lines.join("\n"))?;
    }

    #[test]
    fn mutated_valid_maps_never_panic_and_problems_are_on_lines_of_the_file(
        n in 1usize..5,
        edits in proptest::collection::vec(edit(), 1..6),
    ) {
        let mut text = valid_map(n);
        for e in &edits {
            apply(&mut text, e);
        }
        check(&text)?;
    }
}
