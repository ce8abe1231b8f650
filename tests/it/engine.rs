//! The local engine on the real default model: answers, determinism, streaming, cancel.

use crate::common::{engine, load_model};
use duet::engine::{Cancel, Event, FinishReason, GenRequest, Message, SamplingParams};

fn ask(prompt: &str, sampling: SamplingParams, max_tokens: usize) -> GenRequest {
    GenRequest { sampling, max_tokens, ..GenRequest::new(vec![Message::user(prompt)]) }
}

#[test]
fn answers_the_capital_of_france() {
    let c = engine()
        .complete(ask("What is the capital of France?", SamplingParams::default(), 32), Cancel::new())
        .expect("answers");
    assert!(c.text.contains("Paris"), "expected Paris in: {:?}", c.text);
    assert!(c.usage.prompt_tokens > 10 && c.usage.completion_tokens > 0);
    assert!(c.timings.ttft_ms > 0.0 && c.timings.prompt_tok_per_s > 0.0);
}

#[test]
fn greedy_is_deterministic_and_seeded_sampling_repeats() {
    let greedy = || {
        engine()
            .complete(ask("Write a haiku about the sea.", SamplingParams::default(), 40), Cancel::new())
            .expect("answers")
            .text
    };
    let a = greedy();
    assert!(!a.is_empty());
    assert_eq!(a, greedy(), "temperature 0 must give the same text every time");

    let seeded = |seed| {
        let s = SamplingParams { temperature: 1.0, top_k: 0, top_p: 1.0, min_p: 0.0, seed, ..Default::default() };
        engine().complete(ask("Tell me a story about a dragon.", s, 40), Cancel::new()).expect("answers").text
    };
    let (s1, s1b, s2, s3) = (seeded(1), seeded(1), seeded(2), seeded(3));
    assert_eq!(s1, s1b, "the same seed must give the same text");
    assert!(s1 != s2 || s1 != s3, "different seeds should usually differ: {s1:?} {s2:?} {s3:?}");
}

#[test]
fn streaming_equals_the_final_text() {
    let rx = engine().generate(ask("List three primary colors.", SamplingParams::default(), 60), Cancel::new());
    let mut streamed = String::new();
    let mut done = None;
    for e in rx {
        match e {
            Event::Delta(t) => {
                assert!(!t.contains('\u{FFFD}'), "a delta showed a broken character: {t:?}");
                streamed.push_str(&t)
            }
            Event::Done(c) => done = Some(c),
            Event::Error(e) => panic!("{e}"),
        }
    }
    let done = done.expect("a Done event ends the stream");
    assert_eq!(streamed, done.text);
    let whole = engine()
        .complete(ask("List three primary colors.", SamplingParams::default(), 60), Cancel::new())
        .expect("answers");
    assert_eq!(whole.text, streamed, "streaming and non-streaming must give the same text");
}

#[test]
fn cancel_stops_within_a_token() {
    let cancel = Cancel::new();
    let rx = engine()
        .generate(ask("Write a long essay about the history of Rome.", SamplingParams::default(), 400), cancel.clone());
    let mut deltas = 0;
    let mut deltas_at_cancel = 0;
    for e in rx {
        match e {
            Event::Delta(_) => {
                deltas += 1;
                if deltas == 3 {
                    cancel.cancel();
                    deltas_at_cancel = deltas;
                }
            }
            Event::Done(c) => {
                assert_eq!(c.finish_reason, FinishReason::Cancelled);
                // The channel may hold a couple of deltas already produced; never many.
                assert!(deltas <= deltas_at_cancel + 2, "{deltas} deltas after cancel at {deltas_at_cancel}");
                assert!(c.usage.completion_tokens < 20, "kept generating: {}", c.usage.completion_tokens);
                return;
            }
            Event::Error(e) => panic!("{e}"),
        }
    }
    panic!("no Done event after cancel");
}

#[test]
fn stop_strings_and_max_tokens_end_the_answer() {
    let mut req = ask("Count from 1 to 20, separated by commas.", SamplingParams::default(), 100);
    let full = engine().complete(req.clone(), Cancel::new()).expect("answers");
    assert!(full.text.contains('5'), "{:?}", full.text);
    req.stop = vec!["5".to_string()];
    let cut = engine().complete(req.clone(), Cancel::new()).expect("answers");
    assert!(!cut.text.contains('5') && full.text.starts_with(&cut.text), "{:?} vs {:?}", cut.text, full.text);
    assert_eq!(cut.finish_reason, FinishReason::Stop);
    req.stop.clear();
    req.max_tokens = 3;
    let short = engine().complete(req, Cancel::new()).expect("answers");
    assert_eq!(short.usage.completion_tokens, 3);
    assert_eq!(short.finish_reason, FinishReason::Length);
}

#[test]
fn a_follow_up_turn_reuses_the_cached_prefix() {
    let mut model = load_model();
    let first = vec![Message::user("What is the capital of France?")];
    let a = model
        .generate(&GenRequest { max_tokens: 16, ..GenRequest::new(first.clone()) }, &Cancel::new(), &mut |_| true)
        .expect("answers");
    assert_eq!(a.usage.cached_tokens, 0);
    let mut second = first;
    second.push(Message::assistant(&a.text));
    second.push(Message::user("And of Germany?"));
    let b = model
        .generate(&GenRequest { max_tokens: 16, ..GenRequest::new(second) }, &Cancel::new(), &mut |_| true)
        .expect("answers");
    assert!(
        b.usage.cached_tokens >= a.usage.prompt_tokens,
        "reused {} of {}",
        b.usage.cached_tokens,
        b.usage.prompt_tokens
    );
}

#[test]
fn a_chat_too_long_drops_old_turns_and_says_so() {
    let mut model = duet::engine::local::LocalModel::load(
        &crate::common::default_model(),
        &duet::engine::local::LoadOptions { context_length: 96, threads: 0 },
    )
    .expect("loads");
    let long = "word ".repeat(30);
    let mut msgs = vec![Message::system("Be brief.")];
    for _ in 0..3 {
        msgs.push(Message::user(&long));
        msgs.push(Message::assistant("ok"));
    }
    msgs.push(Message::user("Hi"));
    let req = GenRequest { max_tokens: 4, truncate_history: true, ..GenRequest::new(msgs.clone()) };
    let c = model.generate(&req, &Cancel::new(), &mut |_| true).expect("fits after dropping turns");
    assert!(c.dropped_messages >= 2, "dropped {}", c.dropped_messages);
    let strict = GenRequest { truncate_history: false, ..req };
    let err = model.generate(&strict, &Cancel::new(), &mut |_| true).unwrap_err().to_string();
    assert!(err.contains("at most 96"), "{err}");
}
