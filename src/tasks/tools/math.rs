//! Math help for small models: find the arithmetic in a question before
//! the model answers, and work it out with the calculator.
//!
//! SmolLM2-135M scores 1.4 % on GSM8K and rarely writes a clean tool call,
//! so waiting for it to call the calculator gets nothing. Instead duet reads
//! the question: a written-out expression ("1234 × 5678", "15% of 240",
//! "2 to the power of 20", "divide 9,000 by 45"), or one of the common word
//! problem shapes (so many per box, shared equally, spent and left, a
//! discount, an average, hours to minutes). The result is shown to the
//! person and handed to the model as a calculator result, so the model only
//! has to say it. When nothing is found, nothing is added: a wrong guess
//! would mislead the model more than no help.

use super::calc::{self, Calculation};

/// The arithmetic in `question`, worked out; `None` when there is none (or it
/// is not one of the shapes this reads).
pub fn find(question: &str) -> Option<Calculation> {
    written_out(question).or_else(|| word_problem(question))
}

/// Arithmetic written in the question that has no answer the calculator can
/// give (5 / 0, 10^10^10): the expression as read, and why.
pub fn find_refused(question: &str) -> Option<(String, calc::CalcError)> {
    let text = spelled_operations(&calc::tidy(question));
    math_spans(&text).into_iter().find_map(|span| match calc::evaluate(&span) {
        Err(
            e @ (calc::CalcError::DivisionByZero | calc::CalcError::TooLarge | calc::CalcError::TooLongToPrint { .. }),
        ) => Some((calc::tidy(&span), e)),
        _ => None,
    })
}

/// An expression written in the question, the longest one that works out.
fn written_out(question: &str) -> Option<Calculation> {
    let text = spelled_operations(&calc::tidy(question));
    let mut best: Option<Calculation> = None;
    for span in math_spans(&text) {
        if let Ok(c) = calc::evaluate(&span) {
            if best.as_ref().is_none_or(|b| c.expression.len() > b.expression.len()) {
                best = Some(c);
            }
        }
    }
    best
}

/// "divide 9000 by 45", "multiply 3450 by 12", "subtract 5 from 9": the
/// phrasings whose operator comes first.
fn spelled_operations(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    for (i, w) in words.iter().enumerate() {
        let verb = w.to_lowercase();
        let op = match verb.as_str() {
            "divide" => "/",
            "multiply" => "*",
            "subtract" | "take" => "-",
            "add" => "+",
            _ => continue,
        };
        let (Some(a), Some(link), Some(b)) = (words.get(i + 1), words.get(i + 2), words.get(i + 3)) else { continue };
        let (Some(a), Some(b)) = (number(a), number(b)) else { continue };
        return match (op, link.to_lowercase().as_str()) {
            ("/" | "*", "by") => format!("{a} {op} {b}"),
            ("-", "from") => format!("{b} - {a}"),
            ("+", "and" | "to") => format!("{a} + {b}"),
            _ => continue,
        };
    }
    text.to_string()
}

/// Runs of characters that can be arithmetic, with at least one operator
/// between two numbers. "of" after a number or a percentage is a product
/// ("3/4 of 1000", "15% of 240").
fn math_spans(text: &str) -> Vec<String> {
    let text = text.replace(" of ", " of# ");
    let mut spans = Vec::new();
    let mut current = String::new();
    for token in text.split_inclusive(|c: char| c.is_whitespace()) {
        let t = token.trim();
        let joins = !t.is_empty() && t.chars().all(|c| c.is_ascii_digit() || "+-*/^%().".contains(c));
        let of = t == "of#" && current.trim_end().ends_with(|c: char| c.is_ascii_digit() || c == '%');
        if joins {
            current.push_str(t);
            current.push(' ');
        } else if of {
            current.push_str(if current.trim_end().ends_with('%') { "of " } else { "* " });
        } else if !t.is_empty() {
            // A word ends the run (a trailing "of" has nothing after it).
            spans.push(std::mem::take(&mut current));
        }
    }
    spans.push(current);
    spans
        .into_iter()
        .map(|s| s.trim().trim_end_matches(" of").trim_matches(|c| "+-*/^ .".contains(c)).to_string())
        .filter(|s| has_operator_between_numbers(s))
        .collect()
}

fn has_operator_between_numbers(s: &str) -> bool {
    let mut seen_number = false;
    let mut op_after_number = false;
    for c in s.chars() {
        if c.is_ascii_digit() {
            if op_after_number {
                return true;
            }
            seen_number = true;
        } else if seen_number && ("+-*/^".contains(c) || c == 'o') {
            op_after_number = true;
        }
    }
    false
}

/// A number as written in a word problem ("$1,260", "25%", "12.5"), without
/// its currency sign, separators or trailing punctuation.
fn number(word: &str) -> Option<String> {
    let w = word.trim_matches(|c: char| !c.is_ascii_digit() && c != '%');
    let w = w.trim_end_matches('%');
    if w.is_empty() || !w.chars().all(|c| c.is_ascii_digit() || c == '.' || c == ',') {
        return None;
    }
    let n = w.replace(',', "");
    n.parse::<f64>().ok()?;
    Some(n)
}

/// A number in a word problem, and where it was.
struct Quantity {
    value: String,
    percent: bool,
    /// Index of the word it is.
    at: usize,
}

const DIVIDE: &[&str] = &["equally", "equal", "split", "shared", "share", "divided", "cut"];
const SUBTRACT: &[&str] = &[
    "left", "remain", "remains", "spent", "spends", "used", "gave", "gives", "give", "lost", "loses", "ate", "eats",
    "sold", "fewer", "less",
];
const ADD: &[&str] =
    &["total", "altogether", "together", "combined", "sum", "all", "more", "buys", "bought", "gets", "got"];
const PERCENT_DOWN: &[&str] =
    &["off", "discount", "discounted", "decrease", "decreases", "cheaper", "reduced", "falls", "drops"];
const PERCENT_UP: &[&str] = &["grows", "grow", "increase", "increases", "increased", "rises", "raise", "raised"];
const TIME_UNITS: &[&str] = &["seconds", "minutes", "hours", "days", "weeks", "months", "years"];

fn word_problem(question: &str) -> Option<Calculation> {
    let lower = question.to_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    let bare = |w: &str| w.trim_matches(|c: char| !c.is_alphanumeric()).to_string();
    let has = |list: &[&str]| words.iter().any(|w| list.contains(&bare(w).as_str()));
    let quantities: Vec<Quantity> = words
        .iter()
        .enumerate()
        .filter_map(|(at, w)| {
            Some(Quantity {
                value: number(w)?,
                percent: w.contains('%') || words.get(at + 1).is_some_and(|n| bare(n) == "percent"),
                at,
            })
        })
        .collect();
    let expression = match quantities.as_slice() {
        // "How many minutes are there in 18 hours?": a unit conversion.
        [q] => {
            let to = words.iter().map(|w| bare(w)).find(|w| TIME_UNITS.contains(&w.as_str()))?;
            let from = bare(words.get(q.at + 1)?);
            (TIME_UNITS.contains(&from.as_str()) && from != to).then(|| format!("{} {from} to {to}", q.value))?
        }
        [p, n] | [n, p] if p.percent && !n.percent => {
            let (p, n) = (&p.value, &n.value);
            if has(PERCENT_DOWN) {
                format!("{n} - {n} * {p} / 100")
            } else if has(PERCENT_UP) {
                format!("{n} + {n} * {p} / 100")
            } else {
                format!("{p}% of {n}")
            }
        }
        qs if qs.len() >= 2 && words.iter().any(|w| matches!(bare(w).as_str(), "average" | "mean")) => {
            let sum = qs.iter().map(|q| q.value.as_str()).collect::<Vec<_>>().join(" + ");
            format!("({sum}) / {}", qs.len())
        }
        // "7 liters per 100 km … for 850 km": a rate, scaled.
        [a, per, b] if words.get(per.at.wrapping_sub(1)).is_some_and(|w| bare(w) == "per") => {
            format!("{} / {} * {}", a.value, per.value, b.value)
        }
        [a, b] if has(DIVIDE) => format!("{} / {}", a.value, b.value),
        [a, b] if has(SUBTRACT) => format!("{} - {}", a.value, b.value),
        [a, b] if has(&["each", "per", "every", "holds", "hold", "contains", "a", "an"]) && !has(ADD) => {
            format!("{} * {}", a.value, b.value)
        }
        [a, b] if has(ADD) => format!("{} + {}", a.value, b.value),
        // Several amounts coming and going: each one after the first is
        // added, unless a taking-away word comes just before it.
        [first, rest @ ..] if rest.len() >= 2 && (has(ADD) || has(SUBTRACT)) => {
            let mut e = first.value.clone();
            for q in rest {
                let before = &words[q.at.saturating_sub(3)..q.at];
                let minus = before.iter().any(|w| SUBTRACT.contains(&bare(w).as_str()));
                e.push_str(if minus { " - " } else { " + " });
                e.push_str(&q.value);
            }
            e
        }
        _ => return None,
    };
    calc::evaluate(&expression).ok()
}

/// Does `answer` state the number `expected`?
pub fn states(answer: &str, expected: &str) -> bool {
    let Ok(want) = expected.replace(',', "").parse::<f64>() else { return false };
    let cleaned: String = strip_number_commas(answer);
    cleaned
        .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .filter_map(|w| w.trim_end_matches('.').parse::<f64>().ok())
        .any(|got| (got - want).abs() <= 1e-9 * want.abs().max(1.0))
}

fn strip_number_commas(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    chars
        .iter()
        .enumerate()
        .filter(|&(i, &c)| {
            !(c == ','
                && i > 0
                && chars[i - 1].is_ascii_digit()
                && chars.len() >= i + 4
                && chars[i + 1..i + 4].iter().all(char::is_ascii_digit)
                && chars.get(i + 4).is_none_or(|c| !c.is_ascii_digit()))
        })
        .map(|(_, &c)| c)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(q: &str) -> Option<String> {
        find(q).map(|c| c.value)
    }

    #[test]
    fn written_out_arithmetic_is_found() {
        assert_eq!(found("What is 1234 × 5678?").as_deref(), Some("7006652"));
        assert_eq!(found("What is 15% of 240?").as_deref(), Some("36"));
        assert_eq!(found("Compute (17 + 25) * 3.").as_deref(), Some("126"));
        assert_eq!(found("Divide 9,000 by 45.").as_deref(), Some("200"));
        assert_eq!(found("What is 3/4 of 1000?").as_deref(), Some("750"));
        assert_eq!(found("How much is 999 squared?").as_deref(), Some("998001"));
    }

    #[test]
    fn word_problems_of_the_common_shapes_are_found() {
        assert_eq!(found("A box holds 48 eggs. How many eggs are in 365 boxes?").as_deref(), Some("17520"));
        assert_eq!(found("Sam had 500 dollars and spent 137 dollars. How much is left?").as_deref(), Some("363"));
        assert_eq!(found("A jacket costs $80 and is 25% off. What is the sale price?").as_deref(), Some("60"));
        assert_eq!(
            found("Tom has 45 marbles. He buys 28 more and gives away 19. How many now?").as_deref(),
            Some("54")
        );
    }

    #[test]
    fn arithmetic_without_an_answer_is_named() {
        let (expression, why) = find_refused("What is 5 / 0?").expect("found");
        assert_eq!((expression.as_str(), why), ("5 / 0", calc::CalcError::DivisionByZero));
        assert_eq!(find_refused("What is 5 / 2?"), None);
    }

    #[test]
    fn questions_without_arithmetic_get_nothing() {
        for q in ["What is the capital of France?", "Write a haiku about 3 cats.", "Tell me about the 1990s.", ""] {
            assert_eq!(found(q), None, "{q}");
        }
    }

    #[test]
    fn an_answer_states_a_number_with_or_without_commas() {
        assert!(states("The answer is 17,520.", "17520"));
        assert!(states("It comes to 59.5 liters", "59.5"));
        assert!(states("= 7006652", "7006652"));
        assert!(!states("About 7006650 or so", "7006652"));
        assert!(!states("1,2,3", "123"), "a list is not a number");
        assert!(states("-2 degrees", "-2"));
    }
}
