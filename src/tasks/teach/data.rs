//! The rows a person teaches from: read from their file, checked, and split
//! into the part the model learns from and the part that only measures it.

use super::TeachError;
use crate::progress::Progress;
use crate::tasks::count;
use crate::tasks::input::{Row, Table};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Labeled texts, labels in the order they first appear in the file.
#[derive(Debug, Clone, Default)]
pub struct Examples {
    pub labels: Vec<String>,
    pub texts: Vec<String>,
    /// Index into `labels`, one per text.
    pub targets: Vec<usize>,
    /// What was skipped, repaired or sampled, for the person to read.
    pub notes: Vec<String>,
}

impl Examples {
    /// From (text, label) pairs; labels are trimmed, empty texts or labels are skipped.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Examples {
        let mut out = Examples::default();
        for (text, label) in pairs {
            out.push(text, label);
        }
        out
    }

    fn push(&mut self, text: &str, label: &str) {
        let label = label.trim();
        let index = match self.labels.iter().position(|l| l == label) {
            Some(i) => i,
            None => {
                self.labels.push(label.to_string());
                self.labels.len() - 1
            }
        };
        self.texts.push(text.trim().to_string());
        self.targets.push(index);
    }

    /// Examples per label, in label order.
    pub fn counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.labels.len()];
        self.targets.iter().for_each(|&t| counts[t] += 1);
        counts
    }

    /// Teaching needs two labels, each with two examples (one to learn from,
    /// one to check on); anything less is refused with what to add.
    pub fn check(&self) -> Result<(), TeachError> {
        if self.labels.len() < 2 {
            return Err(TeachError::TooFewLabels(self.labels.clone()));
        }
        if let Some((i, _)) = self.counts().iter().enumerate().find(|(_, &n)| n < 2) {
            return Err(TeachError::OneExample(self.labels[i].clone()));
        }
        Ok(())
    }

    /// A fingerprint of exactly what was taught (texts and labels, in order).
    pub fn sha256(&self) -> String {
        let mut h = Sha256::new();
        for (text, &t) in self.texts.iter().zip(&self.targets) {
            h.update(text.as_bytes());
            h.update(b"\t");
            h.update(self.labels[t].as_bytes());
            h.update(b"\n");
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Read `text_column` and `label_column` of every row. Rows past `max_rows`
/// are not all kept: a seeded random sample of `max_rows` is (reservoir
/// sampling), so a huge file is taught from in bounded memory.
pub fn read_examples(
    mut table: Table,
    text_column: &str,
    label_column: &str,
    max_rows: usize,
    seed: u64,
    progress: &dyn Progress,
) -> Result<Examples, TeachError> {
    let text_col = table.column(text_column)?;
    let label_col = table.column(label_column)?;
    let position = table.position();
    progress.begin("reading", table.size_bytes);
    let mut kept: Vec<(String, String)> = Vec::new();
    let (mut broken, mut empty, mut seen) = (Vec::new(), 0usize, 0usize);
    let mut rng = Rng::new(seed);
    for row in table.by_ref() {
        progress.set_position(position.load(std::sync::atomic::Ordering::Relaxed));
        match row {
            Row::Broken { line, reason, .. } => broken.push(format!("line {line}: {reason}")),
            Row::Ok { fields, .. } => {
                let text = fields.get(text_col).map(|s| s.trim()).unwrap_or_default();
                let label = fields.get(label_col).map(|s| s.trim()).unwrap_or_default();
                if text.is_empty() || label.is_empty() {
                    empty += 1;
                    continue;
                }
                seen += 1;
                if kept.len() < max_rows {
                    kept.push((text.to_string(), label.to_string()));
                } else {
                    let j = rng.below(seen);
                    if j < max_rows {
                        kept[j] = (text.to_string(), label.to_string());
                    }
                }
            }
        }
    }
    progress.finish();
    let mut examples = Examples::from_pairs(kept.iter().map(|(t, l)| (t.as_str(), l.as_str())));
    if !broken.is_empty() {
        let first: Vec<&str> = broken.iter().take(3).map(String::as_str).collect();
        examples.notes.push(format!("{} skipped ({})", count(broken.len() as u64, "broken row"), first.join("; ")));
    }
    if empty > 0 {
        examples.notes.push(format!("{} with no text or no label skipped", count(empty as u64, "row")));
    }
    if seen > max_rows {
        examples.notes.push(format!(
            "the file has {seen} labeled rows; taught from a random {max_rows} of them (--max-rows sets how many)"
        ));
    }
    Ok(examples)
}

/// Which examples teach and which only measure.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub train: Vec<usize>,
    pub held_out: Vec<usize>,
    /// Texts that appear more than once (compared without case or extra spaces).
    pub repeated_texts: usize,
    /// Of those, texts given two different labels.
    pub conflicting_texts: usize,
}

impl Split {
    /// Put about `fraction` of each label's examples aside, chosen with `seed`.
    /// Copies of one text always land on the same side: a text seen while
    /// learning and then "held out" would make the held-out score a lie.
    pub fn new(examples: &Examples, fraction: f64, seed: u64) -> Split {
        // Group the copies of each text; a group belongs to its first label.
        let mut group_of: HashMap<String, usize> = HashMap::new();
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for (i, text) in examples.texts.iter().enumerate() {
            let key = text.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
            let g = *group_of.entry(key).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[g].push(i);
        }
        let repeated_texts = groups.iter().filter(|g| g.len() > 1).count();
        let conflicting_texts =
            groups.iter().filter(|g| g.iter().any(|&i| examples.targets[i] != examples.targets[g[0]])).count();
        let mut rng = Rng::new(seed);
        let (mut train, mut held_out) = (Vec::new(), Vec::new());
        for label in 0..examples.labels.len() {
            let mut mine: Vec<&Vec<usize>> = groups.iter().filter(|g| examples.targets[g[0]] == label).collect();
            rng.shuffle(&mut mine);
            // At least one group on each side when there are two.
            let aside = ((mine.len() as f64 * fraction).round() as usize).clamp(1, mine.len().saturating_sub(1).max(1));
            let aside = if mine.len() < 2 { 0 } else { aside };
            for (k, g) in mine.into_iter().enumerate() {
                if k < aside { &mut held_out } else { &mut train }.extend(g.iter().copied());
            }
        }
        train.sort_unstable();
        held_out.sort_unstable();
        Split { train, held_out, repeated_texts, conflicting_texts }
    }

    /// What the person should know about repeated texts, if anything.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.repeated_texts > 0 {
            notes.push(format!(
                "{} appear more than once; the copies of each are kept on one side of the split, so the held-out \
                 score stays honest",
                count(self.repeated_texts as u64, "text")
            ));
        }
        if self.conflicting_texts > 0 {
            notes.push(format!(
                "{} given two different labels: check those rows",
                count(self.conflicting_texts as u64, "text")
            ));
        }
        notes
    }
}

/// A small seeded random number generator (SplitMix64): the same seed gives
/// the same split, the same order of examples and so the same model, on
/// every machine and every version of every crate.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) * n as f64) as usize % n.max(1)
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn examples(n_per_label: usize) -> Examples {
        let mut pairs = Vec::new();
        for i in 0..n_per_label {
            pairs.push((format!("good thing {i}"), "positive"));
            pairs.push((format!("bad thing {i}"), "negative"));
        }
        Examples::from_pairs(pairs.iter().map(|(t, l)| (t.as_str(), *l)))
    }

    #[test]
    fn a_split_keeps_every_label_on_both_sides_and_repeats_together() {
        let mut ex = examples(10);
        ex.push("Good Thing 3", "positive"); // a copy of row 6 with other case
        let split = Split::new(&ex, 0.2, 7);
        assert_eq!(split.train.len() + split.held_out.len(), 21);
        for label in 0..2 {
            assert!(split.held_out.iter().any(|&i| ex.targets[i] == label));
            assert!(split.train.iter().any(|&i| ex.targets[i] == label));
        }
        let side = |i: usize| split.held_out.contains(&i);
        assert_eq!(side(6), side(20), "copies of one text land on the same side");
        assert_eq!(split.repeated_texts, 1);
        assert_eq!(Split::new(&ex, 0.2, 7), split, "same seed, same split");
        assert_ne!(Split::new(&ex, 0.2, 8).held_out, split.held_out, "another seed, another split");
    }

    #[test]
    fn too_few_labels_or_examples_are_refused_with_the_label_named() {
        let one = Examples::from_pairs([("a", "x"), ("b", "x")]);
        assert!(matches!(one.check(), Err(TeachError::TooFewLabels(_))));
        let lonely = Examples::from_pairs([("a", "x"), ("b", "x"), ("c", "y")]);
        match lonely.check() {
            Err(TeachError::OneExample(label)) => assert_eq!(label, "y"),
            other => panic!("{other:?}"),
        }
        assert!(examples(2).check().is_ok());
    }
}
