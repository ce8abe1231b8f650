//! What every answer is measured by, wherever it is shown: time to first
//! token, speed, tokens, cost and where the data went. Chat keeps it under
//! each message, Compare in each column; both build it here, the same way.

use crate::engine::{Backend, BackendSpec, Completion, DataLocation, FinishReason};
use serde::{Deserialize, Serialize};

/// A backend ready to answer, with what it costs.
pub struct Contender {
    /// Which backend this is (stored, to tally verdicts and reopen conversations).
    pub spec: BackendSpec,
    pub backend: Box<dyn Backend>,
    /// US dollars per million input and output tokens; None when free (local).
    pub prices: Option<(f64, f64)>,
}

/// The statistics of one answer. Field names are kept in stored JSON
/// (messages' metrics, comparisons' columns), so they never change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AnswerStats {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub ttft_ms: f64,
    pub tok_per_s: f64,
    pub total_ms: f64,
    /// None when the backend is free (local).
    pub cost_usd: Option<f64>,
    /// False for a cloud profile with no prices set (its cost shows as unknown).
    pub price_known: bool,
    /// The person stopped the answer before it ended.
    pub stopped: bool,
    pub location: DataLocation,
    /// A cloud request that failed before any connection was made: the
    /// prompt went nowhere.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nothing_sent: bool,
    /// With tools on: each step of the answer (calculator, actions, results), one line each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<String>,
}

impl AnswerStats {
    /// From a finished answer: `ttft_ms` as the caller chose to count it (the
    /// backend's own or as seen through the network), `total_ms` as the caller saw it.
    pub fn measure(
        c: &Completion,
        location: DataLocation,
        ttft_ms: f64,
        total_ms: f64,
        prices: Option<(f64, f64)>,
    ) -> Self {
        AnswerStats {
            prompt_tokens: c.usage.prompt_tokens,
            completion_tokens: c.usage.completion_tokens,
            ttft_ms,
            tok_per_s: c.decode_rate(ttft_ms, total_ms),
            total_ms,
            cost_usd: prices.map(|p| crate::catalog::cost_usd(p, c.usage.prompt_tokens, c.usage.completion_tokens)),
            price_known: prices.is_none_or(|(inp, out)| inp > 0.0 || out > 0.0),
            stopped: c.finish_reason == FinishReason::Cancelled,
            location,
            nothing_sent: false,
            steps: Vec::new(),
        }
    }

    /// The line under a chat answer.
    pub fn line(&self) -> String {
        let cost = match self.cost_usd {
            Some(c) => format!("${c:.5}"),
            None => "free (on this computer)".to_string(),
        };
        let mut s = format!(
            "{} tokens · first token {:.0} ms · {:.1} tok/s · {:.1} s · {cost}",
            self.completion_tokens,
            self.ttft_ms,
            self.tok_per_s,
            self.total_ms / 1e3
        );
        if self.stopped {
            s.push_str(" · stopped");
        }
        s
    }

    /// "$0 (free)", "$0.00012", or "price not set".
    pub fn cost_short(&self) -> String {
        match self.cost_usd {
            None => "$0 (free)".to_string(),
            Some(_) if !self.price_known => "price not set".to_string(),
            Some(c) => format!("${c:.5}"),
        }
    }

    /// "stayed on this computer" or "sent to HOST".
    pub fn location_text(&self) -> String {
        if self.nothing_sent {
            return "nothing was sent (no connection was made)".to_string();
        }
        match &self.location {
            DataLocation::ThisComputer => "stayed on this computer".to_string(),
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Timings, Usage};

    fn done(prompt: usize, completion: usize) -> Completion {
        Completion {
            text: "Paris.".into(),
            finish_reason: FinishReason::Stop,
            usage: Usage { prompt_tokens: prompt, completion_tokens: completion, cached_tokens: 0 },
            timings: Timings::default(),
            dropped_messages: 0,
            notice: None,
            first_token_logprobs: Vec::new(),
            tool_calls: Vec::new(),
            broken_calls: Vec::new(),
        }
    }

    #[test]
    fn cost_comes_from_prices_and_local_is_free() {
        let c = done(1_000_000, 500_000);
        let cloud = AnswerStats::measure(&c, DataLocation::SentTo("api.x".into()), 100.0, 1100.0, Some((2.0, 4.0)));
        assert_eq!(cloud.cost_usd, Some(4.0));
        assert_eq!(cloud.cost_short(), "$4.00000");
        assert_eq!(cloud.location_text(), "sent to api.x");
        let local = AnswerStats::measure(&c, DataLocation::ThisComputer, 100.0, 1100.0, None);
        assert_eq!((local.cost_usd, local.cost_short().as_str()), (None, "$0 (free)"));
        assert_eq!(local.location_text(), "stayed on this computer");
        let unpriced = AnswerStats::measure(&c, DataLocation::SentTo("h".into()), 1.0, 2.0, Some((0.0, 0.0)));
        assert_eq!(unpriced.cost_short(), "price not set");
    }

    #[test]
    fn speed_is_counted_after_the_first_token() {
        let s = AnswerStats::measure(&done(10, 11), DataLocation::ThisComputer, 100.0, 1100.0, None);
        assert!((s.tok_per_s - 10.0).abs() < 1e-9, "{}", s.tok_per_s);
    }

    #[test]
    fn stored_metrics_from_before_keep_reading() {
        let old = r#"{"prompt_tokens":37,"completion_tokens":7,"ttft_ms":82.0,"tok_per_s":143.4,"total_ms":130.0,"cost_usd":null,"stopped":false}"#;
        let s: AnswerStats = serde_json::from_str(old).unwrap();
        assert_eq!((s.completion_tokens, s.location.clone()), (7, DataLocation::ThisComputer));
        let back: AnswerStats = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }
}
