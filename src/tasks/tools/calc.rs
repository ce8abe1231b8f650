//! The calculator: exact arithmetic for models that are bad at it.
//!
//! `fend-core` does the math: integers of any size, exact fractions and
//! decimals, percentages, powers, parentheses and units, with no access to
//! anything outside the expression. This module only tidies what people and
//! models write ("1,234 × 5", "2 to the power of 10"), bounds the time and the
//! size of the answer, and says in words what went wrong.

use std::time::{Duration, Instant};

/// Longest answer printed in full; beyond it the calculator says how many digits.
const MAX_PRINTED_CHARS: usize = 2_000;
/// Longest an evaluation may take (2^2^30 would take minutes and gigabytes).
const TIME_LIMIT: Duration = Duration::from_millis(500);
const MAX_EXPRESSION_CHARS: usize = 500;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalcError {
    #[error("there is no expression to work out")]
    Empty,
    #[error("division by zero has no answer")]
    DivisionByZero,
    #[error(
        "the answer is too large to work out exactly here (more than half a second of arithmetic); try smaller numbers"
    )]
    TooLarge,
    #[error("the answer has {digits} digits, too many to print; it starts {leading}…")]
    TooLongToPrint { digits: usize, leading: String },
    #[error("the expression is longer than {MAX_EXPRESSION_CHARS} characters")]
    TooLong,
    #[error("'{expression}' is not arithmetic the calculator can do ({why})")]
    NotMath { expression: String, why: String },
}

/// A worked-out expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calculation {
    /// The expression as it was evaluated (after tidying).
    pub expression: String,
    /// The result as people write it ("7006652", "0.3333333333", "3.1 miles").
    pub value: String,
    /// False when the value is rounded (1/3, square roots).
    pub exact: bool,
}

impl std::fmt::Display for Calculation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let eq = if self.exact { "=" } else { "≈" };
        write!(f, "{} {eq} {}", self.expression, self.value)
    }
}

struct Deadline(Instant);

impl fend_core::Interrupt for Deadline {
    fn should_interrupt(&self) -> bool {
        self.0.elapsed() > TIME_LIMIT
    }
}

/// Work out an expression exactly.
pub fn evaluate(expression: &str) -> Result<Calculation, CalcError> {
    let expression = tidy(expression);
    if expression.is_empty() {
        return Err(CalcError::Empty);
    }
    if expression.chars().count() > MAX_EXPRESSION_CHARS {
        return Err(CalcError::TooLong);
    }
    // fend is a small language (variables, lambdas); only expressions are taken.
    if let Some(c) = expression.chars().find(|c| matches!(c, '\\' | '=' | ';' | ':' | '@' | '"' | '\'')) {
        return Err(CalcError::NotMath { expression, why: format!("'{c}' is not arithmetic") });
    }
    let mut ctx = fend_core::Context::new();
    let result = fend_core::evaluate_with_interrupt(&expression, &mut ctx, &Deadline(Instant::now()));
    let result = match result {
        Ok(r) => r,
        Err(e) if e == "interrupted" => return Err(CalcError::TooLarge),
        Err(e) if e.contains("division by zero") => return Err(CalcError::DivisionByZero),
        Err(why) => return Err(CalcError::NotMath { expression, why }),
    };
    let main = result.get_main_result().trim();
    let (value, exact) = match main.strip_prefix("approx. ") {
        Some(v) => (v.to_string(), false),
        None => (main.to_string(), true),
    };
    if value.is_empty() {
        return Err(CalcError::NotMath { expression, why: "it has no value".into() });
    }
    let value = plain_percent(&expression, value);
    if value.len() > MAX_PRINTED_CHARS {
        let digits = value.chars().filter(char::is_ascii_digit).count();
        return Err(CalcError::TooLongToPrint { digits, leading: value.chars().take(12).collect() });
    }
    Ok(Calculation { expression, value, exact })
}

/// "80 * 15%" is 12 to a person, "1200%" to fend: a percentage is shown as
/// a plain number when the expression also holds a plain number ("15% + 5%"
/// stays "20%").
fn plain_percent(expression: &str, value: String) -> String {
    let Some(number) = value.strip_suffix('%') else { return value };
    let plain_number = expression
        .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '%'))
        .any(|w| !w.is_empty() && !w.ends_with('%') && w.chars().any(|c| c.is_ascii_digit()));
    if !plain_number {
        return value;
    }
    let mut ctx = fend_core::Context::new();
    match fend_core::evaluate_with_interrupt(&format!("({number}) / 100"), &mut ctx, &Deadline(Instant::now())) {
        Ok(r) => r.get_main_result().trim().trim_start_matches("approx. ").to_string(),
        Err(_) => value,
    }
}

/// Write what people type the way the calculator reads it.
pub fn tidy(expression: &str) -> String {
    let mut s = expression.trim().trim_end_matches(['?', '.', '!']).trim().to_string();
    for (from, to) in [
        ("×", "*"),
        ("·", "*"),
        ("÷", "/"),
        ("−", "-"),
        ("–", "-"),
        ("**", "^"),
        (" x ", " * "),
        (" X ", " * "),
        ("to the power of", "^"),
        ("raised to", "^"),
        ("multiplied by", "*"),
        ("divided by", "/"),
        ("times", "*"),
        ("plus", "+"),
        ("minus", "-"),
        ("percent", "%"),
        ("squared", "^2"),
        ("cubed", "^3"),
    ] {
        s = s.replace(from, to);
    }
    // "1234x5678": an x between digits is a multiplication.
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    for (i, &c) in chars.iter().enumerate() {
        let between_digits = i > 0
            && i + 1 < chars.len()
            && chars[i - 1].is_ascii_digit()
            && chars[i + 1].is_ascii_digit()
            && (c == 'x' || c == 'X');
        out.push(if between_digits { '*' } else { c });
    }
    strip_thousands(&out)
}

/// "1,234,567" is one number; "f(1, 2)" keeps its comma.
fn strip_thousands(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    for (i, &c) in chars.iter().enumerate() {
        let thousands = c == ','
            && i > 0
            && chars[i - 1].is_ascii_digit()
            && chars.len() >= i + 4
            && chars[i + 1..i + 4].iter().all(char::is_ascii_digit)
            && chars.get(i + 4).is_none_or(|c| !c.is_ascii_digit());
        if !thousands {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(e: &str) -> String {
        evaluate(e).unwrap_or_else(|err| panic!("{e}: {err}")).value
    }

    #[test]
    fn arithmetic_is_exact_at_any_size() {
        assert_eq!(value("1234 × 5678"), "7006652");
        assert_eq!(value("1234x5678"), "7006652");
        assert_eq!(value("2^200"), "1606938044258990275541962092341162602522202993782792835301376");
        assert_eq!(value("123456789012345678901234567890 * 987654321"), "121932631124828532112482853211126352690");
        assert_eq!(value("0.1 + 0.2"), "0.3", "decimals are exact, not binary floats");
        assert_eq!(value("(3 + 4) * 2.5"), "17.5");
        assert_eq!(value("1,234,567 + 1"), "1234568");
        assert_eq!(value("2 to the power of 10"), "1024");
        assert_eq!(value("-5 - -3"), "-2");
        assert_eq!(value("7 ÷ 2"), "3.5");
    }

    #[test]
    fn percentages_read_as_people_mean_them() {
        assert_eq!(value("15% of 80"), "12");
        assert_eq!(value("80 * 15%"), "12");
        assert_eq!(value("12.5% of 1200"), "150");
        assert_eq!(value("20 percent of 45"), "9");
        assert_eq!(value("15% + 5%"), "20%");
    }

    #[test]
    fn rounded_results_say_so_and_units_convert() {
        let third = evaluate("1/3").unwrap();
        assert!(!third.exact && third.value.starts_with("0.333"), "{third:?}");
        assert_eq!(third.to_string(), format!("1/3 ≈ {}", third.value));
        assert!(value("5 km to miles").starts_with("3.10"));
    }

    #[test]
    fn bad_expressions_are_told_apart() {
        assert_eq!(evaluate("1/0"), Err(CalcError::DivisionByZero));
        assert_eq!(evaluate("  "), Err(CalcError::Empty));
        assert_eq!(evaluate("10^10^10"), Err(CalcError::TooLarge));
        match evaluate("10^5000") {
            Err(CalcError::TooLongToPrint { digits: 5001, leading }) => assert!(leading.starts_with("1000")),
            other => panic!("{other:?}"),
        }
        for code in ["a = 5", "\\x.x", "import os", "\"text\""] {
            assert!(matches!(evaluate(code), Err(CalcError::NotMath { .. })), "{code}");
        }
        assert!(evaluate("1/0").unwrap_err().to_string().contains("division by zero"));
        assert!(evaluate(&"1+".repeat(400)).is_err());
    }
}
