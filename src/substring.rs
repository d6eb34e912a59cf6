//! A byte string searched for in many bodies: its searcher is built once. Building one
//! (`memchr::memmem::find` does it on every call) is most of what searching a body of a
//! kilobyte or two costs.

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

#[cfg(test)]
mod tests {
    use super::Substring;

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
}
