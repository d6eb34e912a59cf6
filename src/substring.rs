//! A byte string searched for in many bodies: its searcher is built once. Building one
//! (`memchr::memmem::find` does it on every call) is most of what searching a body of a
//! kilobyte or two costs. And [`trim`], `str::trim` for the short values requests are made of.

use std::sync::OnceLock;

use memchr::memmem::Finder;

/// A needle for `static`s: `static XMLNS: Substring = Substring::new(b"xmlns");`.
pub struct Substring {
    needle: &'static [u8],
    finder: OnceLock<Finder<'static>>,
}

impl Substring {
    pub const fn new(needle: &'static [u8]) -> Substring {
        Substring {
            needle,
            finder: OnceLock::new(),
        }
    }

    pub fn needle(&self) -> &'static [u8] {
        self.needle
    }

    /// The searcher, built on first use.
    fn finder(&self) -> &Finder<'static> {
        self.finder.get_or_init(|| Finder::new(self.needle))
    }

    /// Where the needle first occurs in `haystack`.
    pub fn find(&self, haystack: &[u8]) -> Option<usize> {
        self.finder().find(haystack)
    }

    pub fn is_in(&self, haystack: &[u8]) -> bool {
        self.find(haystack).is_some()
    }

    /// Where the needle occurs in `haystack`, first to last (occurrences do not overlap).
    pub fn find_iter<'h>(&'h self, haystack: &'h [u8]) -> impl Iterator<Item = usize> + 'h {
        self.finder().find_iter(haystack)
    }
}

/// `s.trim()`, answered at once for text that begins and ends in a visible ASCII character,
/// as most leaf values do: `str::trim` decodes a character at each end through a generic
/// pattern search, about 50 instructions even when there is nothing to cut.
pub fn trim(s: &str) -> &str {
    match s.as_bytes() {
        [] => s,
        [first, .., last] | [first @ last]
            if first.is_ascii_graphic() && last.is_ascii_graphic() =>
        {
            s
        }
        _ => s.trim(),
    }
}

#[cfg(test)]
mod tests {
    use super::{trim, Substring};

    #[test]
    fn finds_the_first_occurrence_and_only_a_whole_needle() {
        static NEEDLE: Substring = Substring::new(b"xmlns");
        assert_eq!(NEEDLE.find(b"<a xmlns:b='x' xmlns='y'>"), Some(3));
        assert_eq!(NEEDLE.find(b"<a xmln='y'>"), None);
        assert!(!NEEDLE.is_in(b""));
        assert!(NEEDLE.is_in(b"xmlns"));
        let at: Vec<usize> = NEEDLE
            .find_iter(b"<a xmlns:b='x' xmlns='y'>xmlns</a>")
            .collect();
        assert_eq!(at, [3, 15, 25]);
        assert_eq!(NEEDLE.find_iter(b"<a/>").count(), 0);
    }

    #[test]
    fn trim_cuts_what_str_trim_cuts() {
        for s in [
            "",
            " ",
            "a",
            " a",
            "a ",
            "\tcart-4411\r\n",
            "01",
            "x\u{a0}",
            "\u{3000}y",
            "é",
            " é ",
            "a b",
            "\u{85}",
        ] {
            assert_eq!(trim(s), s.trim(), "{s:?}");
        }
    }
}
