//! What the tests that hold an answer stream to its tree path generate answers with: a small
//! deterministic generator, so a failure names its seed, and the shape of a value that is now
//! and then `null` or an array where UPS gives one item.

/// xorshift: deterministic, so a failing case is replayed from its seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a>(&mut self, of: &[&'a str]) -> &'a str {
        of[self.below(of.len() as u64) as usize]
    }
}

/// JSON strings for leaves: escapes, characters XML escapes, empty, padded.
pub const TEXTS: [&str; 9] = [
    r#""a""#,
    r#""18.70""#,
    r#""q\"uote""#,
    r#""\u00e9t\u00e9""#,
    r#""""#,
    r#""<&>""#,
    r#""UPS 2nd Day Air""#,
    r#""tab\there""#,
    r#"" 2 ""#,
];

/// A value: now and then `null`, or an array of up to three items (some `null`, some arrays
/// in the array); else one `item`.
pub fn null_array_or(rng: &mut Rng, out: &mut String, mut item: impl FnMut(&mut Rng, &mut String)) {
    match rng.below(100) {
        0..5 => out.push_str("null"),
        5..18 => {
            out.push('[');
            for i in 0..rng.below(4) {
                if i > 0 {
                    out.push(',');
                }
                match rng.below(100) {
                    0..10 => out.push_str("null"),
                    10..13 => out.push_str(r#"["a"]"#),
                    _ => item(rng, out),
                }
            }
            out.push(']');
        }
        _ => item(rng, out),
    }
}
