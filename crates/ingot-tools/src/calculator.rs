//! `calculator`: exact arithmetic on big rationals, parsed by a small recursive-descent parser that
//! accepts arithmetic and nothing else.
//!
//! Grammar (lowest precedence first; `^` is right-associative, the others left-associative):
//!
//! ```text
//! expr    := term    (('+' | '-') term)*
//! term    := unary   (('*' | '/') unary)*
//! unary   := ('+' | '-') unary | power
//! power   := postfix ('^' unary)?          -- so -3^2 = -(3^2) = -9 and 2^-1 = 1/2, as in Python
//! postfix := primary '%'*                  -- 50% = 1/2; 200 * 15% = 30
//! primary := number | '(' expr ')'
//! number  := digits ('.' digits?)? exponent? | '.' digits exponent?   -- 1,234,567 grouping allowed
//! ```
//!
//! Spellings: `*` and `×` multiply, `/` and `÷` divide, `-` and `−` (U+2212) subtract, `^` and `**`
//! raise to a power. `%` always means "divided by 100": `250 + 10%` is 250.1, not 275; write
//! `250 * 110%` for the pocket-calculator meaning.
//!
//! Commas are accepted only as thousands separators in the strict form `1,234,567` (a first group of
//! one to three digits not starting with 0, then groups of exactly three). Arithmetic has no other use
//! for a comma, so that form is unambiguous; anything else (`1,5`, `1,2345`, `1, 234`) is rejected
//! rather than guessed at.
//!
//! Hostile input is bounded before it costs anything: at most [`MAX_INPUT_CHARS`] characters,
//! [`MAX_DEPTH`] levels of nesting (parentheses, signs and exponents, so recursion depth is bounded),
//! integer exponents of magnitude at most [`MAX_EXPONENT`], and no value, intermediate or final, whose
//! numerator or denominator exceeds [`MAX_RESULT_BITS`] bits; a power's size is estimated and refused
//! before it is computed.

use num_bigint::BigInt;
use num_integer::Integer;
use num_rational::BigRational;
use num_traits::{One, Signed, ToPrimitive, Zero};
use serde_json::{json, Value};

use crate::tool::{required_str, Tool, ToolError};

/// Longest expression accepted, in characters.
pub const MAX_INPUT_CHARS: usize = 1_000;
/// Deepest nesting of parentheses, unary signs and exponents; keeps recursion far from the stack limit.
pub const MAX_DEPTH: usize = 64;
/// Largest exponent magnitude accepted for bases other than 0, 1 and -1.
pub const MAX_EXPONENT: u64 = 100_000;
/// Largest numerator or denominator, in bits (about 30,000 decimal digits), of any value computed.
pub const MAX_RESULT_BITS: u64 = 100_000;
/// Largest `e` exponent in scientific notation (`1e10000` is about 33,000 bits, under the limit above).
const MAX_SCI_EXPONENT: u64 = 10_000;
/// Decimal places beyond which an exact terminating decimal is shown as a fraction instead.
const MAX_EXACT_DECIMAL_PLACES: u64 = 100;
/// Decimal places in the rounded approximation shown beside a fraction.
const APPROX_DECIMAL_PLACES: u64 = 10;

/// Why an expression could not be evaluated. Positions are 1-based character columns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalcError {
    #[error("empty expression: give an arithmetic expression such as `2 * (3 + 4)`")]
    Empty,
    #[error("expression is longer than {max} characters; split the calculation into smaller steps")]
    TooLong { max: usize },
    #[error("unexpected `{found}` at position {position}: expected {expected}")]
    UnexpectedToken { position: usize, found: String, expected: &'static str },
    #[error("expression ended early: expected {expected}")]
    UnexpectedEnd { expected: &'static str },
    #[error("malformed number at position {position}: {reason}")]
    MalformedNumber { position: usize, reason: &'static str },
    #[error("`(` at position {position} is never closed")]
    UnclosedParen { position: usize },
    #[error("nesting deeper than {max} levels at position {position}")]
    TooDeep { position: usize, max: usize },
    #[error("division by zero at position {position}")]
    DivisionByZero { position: usize },
    #[error("exponent {exponent} at position {position} is not an integer; only integer powers are exact")]
    NonIntegerExponent { position: usize, exponent: String },
    #[error("exponent at position {position} exceeds the limit of {max} in magnitude")]
    ExponentTooLarge { position: usize, max: u64 },
    #[error("result at position {position} would need about {bits} bits, over the limit of {max}")]
    ResultTooLarge { position: usize, bits: u64, max: u64 },
}

/// Evaluates an arithmetic expression exactly. See the module docs for the grammar and limits.
pub fn evaluate(expr: &str) -> Result<BigRational, CalcError> {
    // Count at most one character past the limit so a huge input costs nothing to reject.
    if expr.chars().take(MAX_INPUT_CHARS + 1).count() > MAX_INPUT_CHARS {
        return Err(CalcError::TooLong { max: MAX_INPUT_CHARS });
    }
    let tokens = lex(expr)?;
    if tokens.is_empty() {
        return Err(CalcError::Empty);
    }
    let mut parser = Parser { tokens: &tokens, next: 0, depth: 0 };
    let value = parser.expr()?;
    if let Some(t) = parser.peek() {
        return Err(CalcError::UnexpectedToken {
            position: t.position,
            found: t.text.clone(),
            expected: "an operator or the end of the expression",
        });
    }
    Ok(value)
}

/// Formats a value for a reader: integers plainly (`42`), terminating decimals exactly (`0.3`,
/// `-12.125`), anything else as a fraction with a rounded decimal (`1/3 ≈ 0.3333333333`). Tiny values
/// whose rounded decimal would read as zero get scientific notation (`1/3000000000000 ≈ 3.333333333e-13`).
pub fn format_value(v: &BigRational) -> String {
    if v.is_integer() {
        return v.numer().to_string();
    }
    if let Some(places) = terminating_places(v.denom()) {
        return fixed_point(v, places);
    }
    let approx = fixed_point(v, APPROX_DECIMAL_PLACES);
    let approx =
        if approx.trim_start_matches('-').chars().all(|c| c == '0' || c == '.') { scientific(v) } else { approx };
    format!("{}/{} ≈ {}", v.numer(), v.denom(), approx)
}

/// The exact calculator as a [`Tool`]: one string argument `expression`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Calculator;

impl Tool for Calculator {
    fn name(&self) -> &str {
        "calculator"
    }

    fn description(&self) -> &str {
        "Evaluates an arithmetic expression exactly (big integers and fractions, no rounding). \
         Supports + - * / (also × ÷ −), ^ or ** with integer exponents, parentheses, decimals, \
         percentages (15% = 0.15) and thousands separators like 1,234,567. Returns an integer, an \
         exact decimal, or a fraction with a rounded decimal such as `1/3 ≈ 0.3333333333`."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "expression": {
                    "type": "string",
                    "description": "Arithmetic only, e.g. `(1250 * 12%) / 7` or `2^100`; at most 1000 characters."
                }
            },
            "required": ["expression"],
            "additionalProperties": false
        })
    }

    fn call(&self, args: &Value) -> Result<String, ToolError> {
        let expr = required_str(self.name(), args, "expression")?;
        let value =
            evaluate(expr).map_err(|e| ToolError::Failed { tool: self.name().to_string(), source: Box::new(e) })?;
        Ok(format_value(&value))
    }
}

// ---------------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Number,
    Plus,
    Minus,
    Times,
    Divide,
    Power,
    Percent,
    LParen,
    RParen,
}

#[derive(Debug)]
struct Token {
    kind: Kind,
    /// Only meaningful for `Kind::Number`.
    value: BigRational,
    position: usize,
    text: String,
}

const EXPECTED_TOKEN: &str = "a number, an operator (+ - * / ^ %) or a parenthesis";
const GROUPING_RULE: &str = "commas must separate groups of exactly three digits, as in 1,234,567";

fn lex(expr: &str) -> Result<Vec<Token>, CalcError> {
    let chars: Vec<char> = expr.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let mut value = BigRational::zero();
        let (kind, len) = match c {
            '+' => (Kind::Plus, 1),
            '-' | '\u{2212}' => (Kind::Minus, 1),
            '*' if chars.get(i + 1) == Some(&'*') => (Kind::Power, 2),
            '*' | '×' => (Kind::Times, 1),
            '/' | '÷' => (Kind::Divide, 1),
            '^' => (Kind::Power, 1),
            '%' => (Kind::Percent, 1),
            '(' => (Kind::LParen, 1),
            ')' => (Kind::RParen, 1),
            '.' | '0'..='9' => {
                let (v, len) = lex_number(&chars, i)?;
                value = v;
                (Kind::Number, len)
            }
            _ => {
                // Report a whole word (`abc`, `__import__`) rather than its first letter.
                let word = if c.is_alphanumeric() || c == '_' {
                    chars[i..].iter().take_while(|c| c.is_alphanumeric() || **c == '_').collect()
                } else {
                    c.to_string()
                };
                return Err(CalcError::UnexpectedToken { position: i + 1, found: word, expected: EXPECTED_TOKEN });
            }
        };
        tokens.push(Token { kind, value, position: i + 1, text: chars[i..i + len].iter().collect() });
        i += len;
    }
    Ok(tokens)
}

/// Lexes the number starting at `chars[start]`; returns its value and its length in characters.
fn lex_number(chars: &[char], start: usize) -> Result<(BigRational, usize), CalcError> {
    let digit_at = |i: usize| chars.get(i).is_some_and(|c| c.is_ascii_digit());
    let malformed = |i: usize, reason| CalcError::MalformedNumber { position: i + 1, reason };
    let mut digits = String::new();
    let mut i = start;
    while digit_at(i) {
        digits.push(chars[i]);
        i += 1;
    }
    if chars.get(i) == Some(&',') {
        if digits.len() > 3 || digits.starts_with('0') {
            return Err(malformed(i, GROUPING_RULE));
        }
        while chars.get(i) == Some(&',') {
            if !(digit_at(i + 1) && digit_at(i + 2) && digit_at(i + 3)) || digit_at(i + 4) {
                return Err(malformed(i, GROUPING_RULE));
            }
            digits.extend(&chars[i + 1..i + 4]);
            i += 4;
        }
    }
    let mut frac_len = 0usize;
    if chars.get(i) == Some(&'.') {
        i += 1;
        while digit_at(i) {
            digits.push(chars[i]);
            frac_len += 1;
            i += 1;
        }
        if chars.get(i) == Some(&'.') {
            return Err(malformed(i, "a number has at most one decimal point"));
        }
    }
    if digits.is_empty() {
        return Err(malformed(start, "a decimal point needs digits before or after it"));
    }
    // Scientific notation: `e`/`E`, optional sign, digits. A bare `e` is left for the error path.
    let mut sci: i64 = 0;
    if matches!(chars.get(i), Some('e' | 'E')) {
        let sign_len = usize::from(matches!(chars.get(i + 1), Some('+' | '-')));
        if digit_at(i + 1 + sign_len) {
            let exp_start = i;
            i += 1 + sign_len;
            let mut magnitude: u64 = 0;
            while digit_at(i) {
                magnitude = magnitude * 10 + u64::from(chars[i] as u8 - b'0');
                if magnitude > MAX_SCI_EXPONENT {
                    return Err(CalcError::ExponentTooLarge { position: exp_start + 1, max: MAX_SCI_EXPONENT });
                }
                i += 1;
            }
            sci = if chars[exp_start + 1] == '-' { -(magnitude as i64) } else { magnitude as i64 };
        }
    }
    // `digits` is non-empty ASCII digits, so parsing cannot fail.
    let mantissa: BigInt = digits.parse().map_err(|_| malformed(start, "not a number"))?;
    let scale = sci - frac_len as i64;
    let ten = BigInt::from(10);
    let value = if scale >= 0 {
        BigRational::from_integer(mantissa * num_traits::pow(ten, scale as usize))
    } else {
        BigRational::new(mantissa, num_traits::pow(ten, (-scale) as usize))
    };
    Ok((value, i - start))
}

// ---------------------------------------------------------------------------------------------
// Parser and evaluator: evaluates while parsing, one method per grammar rule.

struct Parser<'a> {
    tokens: &'a [Token],
    next: usize,
    /// Current nesting of `unary` calls; every recursion path goes through `unary`.
    depth: usize,
}

const EXPECTED_OPERAND: &str = "a number or `(`";

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next)
    }

    fn peek_kind(&self) -> Option<Kind> {
        self.peek().map(|t| t.kind)
    }

    fn expr(&mut self) -> Result<BigRational, CalcError> {
        let mut acc = self.term()?;
        while let Some(op @ (Kind::Plus | Kind::Minus)) = self.peek_kind() {
            let position = self.tokens[self.next].position;
            self.next += 1;
            let rhs = self.term()?;
            acc = if op == Kind::Plus { acc + rhs } else { acc - rhs };
            check_size(&acc, position)?;
        }
        Ok(acc)
    }

    fn term(&mut self) -> Result<BigRational, CalcError> {
        let mut acc = self.unary()?;
        while let Some(op @ (Kind::Times | Kind::Divide)) = self.peek_kind() {
            let position = self.tokens[self.next].position;
            self.next += 1;
            let rhs = self.unary()?;
            if op == Kind::Times {
                acc *= rhs;
            } else if rhs.is_zero() {
                return Err(CalcError::DivisionByZero { position });
            } else {
                acc /= rhs;
            }
            check_size(&acc, position)?;
        }
        Ok(acc)
    }

    fn unary(&mut self) -> Result<BigRational, CalcError> {
        if self.depth >= MAX_DEPTH {
            let position = self.peek().map_or(0, |t| t.position);
            return Err(CalcError::TooDeep { position, max: MAX_DEPTH });
        }
        self.depth += 1;
        let result = match self.peek_kind() {
            Some(Kind::Plus) => {
                self.next += 1;
                self.unary()
            }
            Some(Kind::Minus) => {
                self.next += 1;
                self.unary().map(|v| -v)
            }
            _ => self.power(),
        };
        self.depth -= 1;
        result
    }

    fn power(&mut self) -> Result<BigRational, CalcError> {
        let base = self.postfix()?;
        if self.peek_kind() != Some(Kind::Power) {
            return Ok(base);
        }
        let position = self.tokens[self.next].position;
        self.next += 1;
        // Right-associative, and the exponent may carry a sign: 2^-1, 2^3^2 = 2^9.
        let exponent = self.unary()?;
        power(&base, &exponent, position)
    }

    fn postfix(&mut self) -> Result<BigRational, CalcError> {
        let mut value = self.primary()?;
        while self.peek_kind() == Some(Kind::Percent) {
            self.next += 1;
            value /= BigRational::from_integer(BigInt::from(100));
        }
        Ok(value)
    }

    fn primary(&mut self) -> Result<BigRational, CalcError> {
        // Borrow the token slice, not `self`, so `self.next` can advance while `token` is alive.
        let tokens = self.tokens;
        let Some(token) = tokens.get(self.next) else {
            return Err(CalcError::UnexpectedEnd { expected: EXPECTED_OPERAND });
        };
        match token.kind {
            Kind::Number => {
                self.next += 1;
                Ok(token.value.clone())
            }
            Kind::LParen => {
                let open = token.position;
                self.next += 1;
                let value = self.expr()?;
                match self.peek() {
                    Some(t) if t.kind == Kind::RParen => {
                        self.next += 1;
                        Ok(value)
                    }
                    Some(t) => Err(CalcError::UnexpectedToken {
                        position: t.position,
                        found: t.text.clone(),
                        expected: "an operator or `)`",
                    }),
                    None => Err(CalcError::UnclosedParen { position: open }),
                }
            }
            _ => Err(CalcError::UnexpectedToken {
                position: token.position,
                found: token.text.clone(),
                expected: EXPECTED_OPERAND,
            }),
        }
    }
}

fn bits(v: &BigRational) -> u64 {
    v.numer().bits().max(v.denom().bits())
}

fn check_size(v: &BigRational, position: usize) -> Result<(), CalcError> {
    let bits = bits(v);
    if bits > MAX_RESULT_BITS {
        return Err(CalcError::ResultTooLarge { position, bits, max: MAX_RESULT_BITS });
    }
    Ok(())
}

/// `base ^ exponent` for an integer exponent, refusing oversized results before computing them.
fn power(base: &BigRational, exponent: &BigRational, position: usize) -> Result<BigRational, CalcError> {
    if !exponent.is_integer() {
        return Err(CalcError::NonIntegerExponent { position, exponent: format_value(exponent) });
    }
    let e = exponent.to_integer();
    // Bases 0, 1 and -1 stay small for any exponent, so they skip the exponent limit. 0^0 = 1, as in Python.
    if base.is_zero() {
        return match e.sign() {
            num_bigint::Sign::Minus => Err(CalcError::DivisionByZero { position }),
            num_bigint::Sign::NoSign => Ok(BigRational::one()),
            num_bigint::Sign::Plus => Ok(BigRational::zero()),
        };
    }
    if base.abs().is_one() {
        return Ok(if e.is_even() { BigRational::one() } else { base.clone() });
    }
    let magnitude = e.magnitude().to_u64().filter(|m| *m <= MAX_EXPONENT);
    let Some(magnitude) = magnitude else {
        return Err(CalcError::ExponentTooLarge { position, max: MAX_EXPONENT });
    };
    // |base| != 1 means the larger of numerator and denominator has b >= 2 bits, so the result has at
    // least (b - 1) * |e| + 1 bits: a lower bound, so nothing under the limit is refused here.
    let estimate = (bits(base) - 1) * magnitude + 1;
    if estimate > MAX_RESULT_BITS {
        return Err(CalcError::ResultTooLarge { position, bits: estimate, max: MAX_RESULT_BITS });
    }
    // Both bounds above keep |e| <= 100,000, well inside i32.
    let result = base.pow(e.to_i32().unwrap_or(0));
    check_size(&result, position)?;
    Ok(result)
}

// ---------------------------------------------------------------------------------------------
// Formatting

/// Decimal places needed to write `1/denom` exactly, if it terminates within the display limit.
fn terminating_places(denom: &BigInt) -> Option<u64> {
    let twos = denom.trailing_zeros().unwrap_or(0);
    let mut rest = denom >> twos;
    let five = BigInt::from(5);
    let mut fives = 0u64;
    while rest.is_multiple_of(&five) {
        rest /= &five;
        fives += 1;
        if fives > MAX_EXACT_DECIMAL_PLACES {
            return None;
        }
    }
    let places = twos.max(fives);
    (rest.is_one() && places <= MAX_EXACT_DECIMAL_PLACES).then_some(places)
}

/// `v` rounded (half away from zero) to `places` decimal places, written out in full.
fn fixed_point(v: &BigRational, places: u64) -> String {
    let scale = BigRational::from_integer(num_traits::pow(BigInt::from(10), places as usize));
    let scaled = (v * scale).round().to_integer();
    let mut digits = scaled.magnitude().to_string();
    let places = places as usize;
    if digits.len() <= places {
        digits = format!("{}{}", "0".repeat(places + 1 - digits.len()), digits);
    }
    let (int_part, frac_part) = digits.split_at(digits.len() - places);
    let sign = if v.is_negative() { "-" } else { "" };
    if places == 0 {
        format!("{sign}{int_part}")
    } else {
        format!("{sign}{int_part}.{frac_part}")
    }
}

/// Ten significant digits in scientific notation, for values too small for [`fixed_point`].
fn scientific(v: &BigRational) -> String {
    let abs = v.abs();
    let ten = BigInt::from(10);
    let pow10 = |k: i64| -> BigRational {
        let p = num_traits::pow(ten.clone(), k.unsigned_abs() as usize);
        if k >= 0 {
            BigRational::from_integer(p)
        } else {
            BigRational::new(BigInt::one(), p)
        }
    };
    // First guess of floor(log10 |v|) from digit counts, then correct it by one comparison.
    let mut exp10 = abs.numer().to_string().len() as i64 - abs.denom().to_string().len() as i64;
    if abs < pow10(exp10) {
        exp10 -= 1;
    }
    let mut mantissa = (&abs * pow10(9 - exp10)).round().to_integer();
    if mantissa >= num_traits::pow(ten.clone(), 10) {
        mantissa /= &ten;
        exp10 += 1;
    }
    let digits = mantissa.to_string();
    let sign = if v.is_negative() { "-" } else { "" };
    format!("{sign}{}.{}e{exp10}", &digits[..1], &digits[1..])
}
