//! Secrets (API keys, server tokens) that can never be printed by accident.
//!
//! `Debug` and `Display` show `***`; the only way to the text is `expose()`,
//! used where the secret is put into an HTTP header and nowhere else.

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }

    /// Remove the secret from a text (error messages from a server sometimes
    /// echo the key back): every run of [`Self::SCRUB_RUN`] or more characters
    /// that also stands in the secret becomes `***`, so a server that quotes
    /// only part of the key ("key ending …SECRET123") gives nothing away either.
    pub fn scrub(&self, text: &str) -> String {
        let key = self.0.as_bytes();
        if key.len() < 4 {
            return text.to_string();
        }
        let min_run = Self::SCRUB_RUN.min(key.len());
        let bytes = text.as_bytes();
        // covered[i]: byte i of the text is part of a run shared with the key.
        let mut covered = vec![false; bytes.len()];
        for i in 0..bytes.len() {
            let longest = (0..key.len())
                .map(|j| bytes[i..].iter().zip(&key[j..]).take_while(|(a, b)| a == b).count())
                .max()
                .unwrap_or(0);
            if longest >= min_run {
                covered[i..i + longest].iter_mut().for_each(|c| *c = true);
            }
        }
        let mut out = String::with_capacity(text.len());
        let mut hiding = false;
        for (i, ch) in text.char_indices() {
            // A character is hidden when any of its bytes is (keys are ASCII, but text may not be).
            if covered[i..i + ch.len_utf8()].iter().any(|c| *c) {
                if !hiding {
                    out.push_str("***");
                }
                hiding = true;
            } else {
                out.push(ch);
                hiding = false;
            }
        }
        out
    }

    /// The shortest part of a secret that [`Self::scrub`] hides.
    pub const SCRUB_RUN: usize = 6;
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let s = Secret::new("sk-very-secret");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(s.scrub("bad key sk-very-secret given"), "bad key *** given");
    }

    #[test]
    fn parts_of_the_key_are_scrubbed_too() {
        let s = Secret::new("sk-test-0123456789-SECRET123");
        assert_eq!(s.scrub("key ending SECRET123 is not valid"), "key ending *** is not valid");
        assert_eq!(s.scrub("key sk-te…T123 rejected"), "key sk-te…T123 rejected", "runs under 6 stay");
        assert_eq!(s.scrub("0123456789 and 0123456789"), "*** and ***");
        assert_eq!(s.scrub("naïve – ünïcode SECRET123 ✓"), "naïve – ünïcode *** ✓");
        assert_eq!(s.scrub("nothing here"), "nothing here");
    }
}
