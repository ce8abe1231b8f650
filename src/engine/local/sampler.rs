//! Picking the next token from logits.
//!
//! Temperature 0 is greedy (argmax, lowest id on ties) and needs no randomness.
//! Otherwise: repeat penalty, temperature, then top-k, top-p and min-p filters,
//! and a draw from a seeded generator, so the same seed gives the same text on
//! every machine (the generator is ours, not a crate whose stream may change).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingParams {
    /// 0 = greedy.
    pub temperature: f32,
    /// 0 = off.
    pub top_k: usize,
    /// 1.0 = off.
    pub top_p: f32,
    /// 0.0 = off. Drops tokens below `min_p` × the top token's probability.
    pub min_p: f32,
    /// 1.0 = off. Divides positive logits (multiplies negative ones) of recent tokens.
    pub repeat_penalty: f32,
    /// How many recent tokens the repeat penalty looks at.
    pub repeat_last_n: usize,
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.0,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: 42,
        }
    }
}

pub struct Sampler {
    params: SamplingParams,
    rng: SplitMix64,
    scratch: Vec<(u32, f32)>,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Self {
        let rng = SplitMix64(params.seed);
        Sampler { params, rng, scratch: Vec::new() }
    }

    /// `recent` are the tokens so far (prompt and answer), for the repeat penalty.
    pub fn sample(&mut self, logits: &mut [f32], recent: &[u32]) -> u32 {
        let p = &self.params;
        if p.repeat_penalty != 1.0 && p.repeat_penalty > 0.0 {
            let start = recent.len().saturating_sub(p.repeat_last_n);
            let mut seen = recent[start..].to_vec();
            seen.sort_unstable();
            seen.dedup();
            for id in seen {
                if let Some(l) = logits.get_mut(id as usize) {
                    *l = if *l > 0.0 { *l / p.repeat_penalty } else { *l * p.repeat_penalty };
                }
            }
        }
        if p.temperature <= 0.0 {
            return argmax(logits);
        }
        let inv_t = 1.0 / p.temperature;
        let cand = &mut self.scratch;
        cand.clear();
        cand.extend(logits.iter().enumerate().map(|(i, &l)| (i as u32, l * inv_t)));
        // Highest first; ties by id so the order never depends on the sort.
        let by_logit = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if p.top_k > 0 && p.top_k < cand.len() {
            cand.select_nth_unstable_by(p.top_k - 1, by_logit);
            cand.truncate(p.top_k);
        }
        cand.sort_unstable_by(by_logit);
        let max = cand[0].1;
        let mut total = 0.0f64;
        for c in cand.iter_mut() {
            c.1 = (c.1 - max).exp();
            total += c.1 as f64;
        }
        // min-p: relative to the top probability (which is exp(0) = 1 before normalising).
        if p.min_p > 0.0 {
            let keep = cand.iter().take_while(|c| c.1 >= p.min_p).count().max(1);
            total = cand[..keep].iter().map(|c| c.1 as f64).sum();
            cand.truncate(keep);
        }
        if p.top_p < 1.0 {
            let mut acc = 0.0f64;
            let mut keep = cand.len();
            for (i, c) in cand.iter().enumerate() {
                acc += c.1 as f64 / total;
                if acc >= p.top_p as f64 {
                    keep = i + 1;
                    break;
                }
            }
            cand.truncate(keep);
            total = cand.iter().map(|c| c.1 as f64).sum();
        }
        let mut r = self.rng.next_f64() * total;
        for c in cand.iter() {
            r -= c.1 as f64;
            if r <= 0.0 {
                return c.0;
            }
        }
        cand.last().map(|c| c.0).unwrap_or(0)
    }
}

/// Index of the largest logit; the lowest index wins a tie.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if v > best_v {
            best = i;
            best_v = v;
        }
    }
    best as u32
}

/// A tiny, well-known generator (Vigna's SplitMix64): stable output forever.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_picks_the_max() {
        let mut s = Sampler::new(SamplingParams::default());
        assert_eq!(s.sample(&mut [0.1, 3.0, 2.9], &[]), 1);
    }

    #[test]
    fn same_seed_same_draws_and_filters_hold() {
        let params =
            SamplingParams { temperature: 1.0, top_k: 2, top_p: 1.0, min_p: 0.0, seed: 7, ..Default::default() };
        let logits = [1.0f32, 0.9, 0.8, 5.0, 4.9];
        let draw = |params: SamplingParams| {
            let mut s = Sampler::new(params);
            (0..50).map(|_| s.sample(&mut logits.clone(), &[])).collect::<Vec<_>>()
        };
        let a = draw(params.clone());
        assert_eq!(a, draw(params.clone()));
        assert!(a.iter().all(|&t| t == 3 || t == 4), "top-k 2 keeps only ids 3 and 4: {a:?}");
        assert!(a.contains(&3) && a.contains(&4));
    }

    #[test]
    fn repeat_penalty_can_change_the_winner() {
        let params = SamplingParams { repeat_penalty: 2.0, ..Default::default() };
        let mut s = Sampler::new(params);
        assert_eq!(s.sample(&mut [2.0, 1.5], &[0]), 1);
    }

    #[test]
    fn min_p_drops_unlikely_tokens() {
        let params =
            SamplingParams { temperature: 1.0, top_k: 0, top_p: 1.0, min_p: 0.5, seed: 1, ..Default::default() };
        let mut s = Sampler::new(params);
        for _ in 0..100 {
            assert_eq!(s.sample(&mut [10.0, 0.0, 0.0], &[]), 0);
        }
    }
}
