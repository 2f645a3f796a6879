//! Calculator tests: fixed cases, a seeded property test against a direct evaluation of random
//! expression trees, hostile inputs, and the `Tool` interface.

use ingot_test_support::finishes;
use ingot_tools::calculator::{MAX_DEPTH, MAX_INPUT_CHARS, MAX_RESULT_BITS};
use ingot_tools::{evaluate, format_value, CalcError, Calculator, Tool, ToolError};
use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{One, Zero};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

fn calc(expr: &str) -> String {
    match evaluate(expr) {
        Ok(v) => format_value(&v),
        Err(e) => panic!("`{expr}` failed: {e}"),
    }
}

fn calc_err(expr: &str) -> CalcError {
    match evaluate(expr) {
        Ok(v) => panic!("`{expr}` should fail but gave {}", format_value(&v)),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------------------------------------
// Fixed cases

#[test]
fn fixed_cases() {
    let cases = [
        ("123456789 * 987654321", "121932631112635269"),
        ("2^100", "1267650600228229401496703205376"),
        ("2**100", "1267650600228229401496703205376"),
        ("(1+2)*3", "9"),
        ("1+2*3", "7"),
        ("7/2", "3.5"),
        ("0.1 + 0.2", "0.3"),
        ("250 * 10%", "25"),
        ("200 * 15%", "30"),
        ("50%", "0.5"),
        ("-97/8", "-12.125"),
        ("10 - 4 - 3", "3"),
        ("64 / 4 / 2", "8"),
        ("2^3^2", "512"),
        ("2^-2", "0.25"),
        ("(2/3)^-2", "2.25"),
        ("6 × 7", "42"),
        ("84 ÷ 2", "42"),
        ("50 − 8", "42"),
        ("+-+5", "-5"),
        ("--5", "5"),
        (".5 + 1.", "1.5"),
        ("1,234,567 + 1", "1234568"),
        ("1,000.25 * 4", "4001"),
        ("1.5e3", "1500"),
        ("2.5E-2", "0.025"),
        ("0^0", "1"),
        ("1^(10^9)", "1"),
        ("(-1)^(10^9+1)", "-1"),
        ("  ( 1 +\t2 )\n* 3 ", "9"),
    ];
    for (expr, want) in cases {
        assert_eq!(calc(expr), want, "expression `{expr}`");
    }
}

#[test]
fn unary_minus_binds_looser_than_power() {
    // Chosen convention: -3^2 = -(3^2) = -9, as in Python and in maths notation.
    assert_eq!(calc("-3^2"), "-9");
    assert_eq!(calc("(-3)^2"), "9");
    assert_eq!(calc("2^-3^2"), format_value(&BigRational::new(BigInt::one(), BigInt::from(512))));
    assert_eq!(calc("-2^-2"), "-0.25");
}

#[test]
fn percent_is_always_divide_by_100() {
    // Documented: `250 + 10%` is 250.1, not the pocket-calculator 275.
    assert_eq!(calc("250 + 10%"), "250.1");
    assert_eq!(calc("250 * 110%"), "275");
    assert_eq!(calc("5%%"), "0.0005");
    assert_eq!(calc("(1+1)%^2"), "0.0004");
}

#[test]
fn formatting() {
    assert_eq!(calc("1/3"), "1/3 ≈ 0.3333333333");
    assert_eq!(calc("2/3"), "2/3 ≈ 0.6666666667");
    assert_eq!(calc("-1/3"), "-1/3 ≈ -0.3333333333");
    assert_eq!(calc("1000/3"), "1000/3 ≈ 333.3333333333");
    assert_eq!(calc("1/3000000000000"), "1/3000000000000 ≈ 3.333333333e-13");
    assert_eq!(calc("-2/30000000000000"), "-1/15000000000000 ≈ -6.666666667e-14");
    assert_eq!(calc("1/1024"), "0.0009765625");
    assert_eq!(calc("0"), "0");
    assert_eq!(calc("-0"), "0");
    // Terminating but longer than 100 places: shown as a fraction.
    assert!(
        calc("2^-200").starts_with("1/1606938044258990275541962092341162602522202993782792835301376 ≈ 6.223015278e-61")
    );
}

#[test]
fn malformed_commas_are_rejected() {
    for expr in ["1,23", "1,2345", "1, 234", "0,123", "1234,567", "1,", ",5", "(1,2)"] {
        let err = calc_err(expr);
        assert!(
            matches!(err, CalcError::MalformedNumber { .. } | CalcError::UnexpectedToken { .. }),
            "`{expr}` gave {err:?}"
        );
    }
    assert!(calc_err("1,23").to_string().contains("groups of exactly three digits"));
}

// ---------------------------------------------------------------------------------------------
// Property test: random trees rendered to text must evaluate to the tree's own value.

#[derive(Debug)]
enum Node {
    Num { text: String, value: BigRational },
    Neg(Box<Node>),
    Bin(char, Box<Node>, Box<Node>),
    Pow(Box<Node>, i32),
    Percent(Box<Node>),
}

fn ratio(n: i64, d: i64) -> BigRational {
    BigRational::new(BigInt::from(n), BigInt::from(d))
}

fn with_commas(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn random_number(rng: &mut StdRng) -> Node {
    match rng.random_range(0..10) {
        0 => Node::Num { text: "0".into(), value: BigRational::zero() },
        1 => {
            let n = rng.random_range(1_000..5_000_000u64);
            let text = if rng.random_bool(0.5) { with_commas(n) } else { n.to_string() };
            Node::Num { text, value: ratio(n as i64, 1) }
        }
        2 | 3 => {
            let places = rng.random_range(1..=3u32);
            let int = rng.random_range(0..100i64);
            let frac = rng.random_range(0..10i64.pow(places));
            let frac_text = format!("{frac:0width$}", width = places as usize);
            let text =
                if int == 0 && rng.random_bool(0.3) { format!(".{frac_text}") } else { format!("{int}.{frac_text}") };
            Node::Num { text, value: ratio(int * 10i64.pow(places) + frac, 10i64.pow(places)) }
        }
        _ => {
            let n = rng.random_range(0..100i64);
            Node::Num { text: n.to_string(), value: ratio(n, 1) }
        }
    }
}

fn random_tree(rng: &mut StdRng, depth: u32) -> Node {
    if depth == 0 || rng.random_bool(0.25) {
        return random_number(rng);
    }
    match rng.random_range(0..12) {
        0 => Node::Neg(Box::new(random_tree(rng, depth - 1))),
        1 => Node::Pow(Box::new(random_tree(rng, depth - 1)), rng.random_range(-3..=3)),
        2 => Node::Percent(Box::new(random_tree(rng, depth - 1))),
        k => {
            let op = ['+', '-', '*', '/'][k % 4];
            Node::Bin(op, Box::new(random_tree(rng, depth - 1)), Box::new(random_tree(rng, depth - 1)))
        }
    }
}

/// Binding strength of a node as written: a child weaker than its context needs parentheses.
fn precedence(n: &Node) -> u8 {
    match n {
        Node::Num { .. } => 6,
        Node::Percent(_) => 5,
        Node::Pow(..) => 4,
        Node::Neg(_) => 3,
        Node::Bin('*' | '/', ..) => 2,
        Node::Bin(..) => 1,
    }
}

/// Renders with the fewest parentheses the grammar needs, plus random extra ones, random operator
/// spellings and random spacing, so precedence, associativity and the lexer are all exercised.
fn render(n: &Node, need: u8, rng: &mut StdRng) -> String {
    let sp = |rng: &mut StdRng| if rng.random_bool(0.5) { " " } else { "" };
    let body = match n {
        Node::Num { text, .. } => text.clone(),
        Node::Neg(c) => format!("{}{}", if rng.random_bool(0.2) { "−" } else { "-" }, render(c, 3, rng)),
        Node::Percent(c) => format!("{}%", render(c, 5, rng)),
        Node::Pow(b, e) => {
            let op = if rng.random_bool(0.5) { "^" } else { "**" };
            let e = if *e < 0 && rng.random_bool(0.5) { format!("({e})") } else { e.to_string() };
            format!("{}{}{op}{}{e}", render(b, 5, rng), sp(rng), sp(rng))
        }
        Node::Bin(op, l, r) => {
            let p = precedence(n);
            let op_text = match (op, rng.random_bool(0.2)) {
                ('*', true) => "×",
                ('/', true) => "÷",
                ('-', true) => "−",
                (c, _) => match c {
                    '+' => "+",
                    '-' => "-",
                    '*' => "*",
                    _ => "/",
                },
            };
            let (left, right) = (render(l, p, rng), render(r, p + 1, rng));
            // `a * *b` cannot arise, but `a--b` and `a - -b` both should parse; vary the spacing.
            format!("{left}{}{op_text}{}{right}", sp(rng), sp(rng))
        }
    };
    if precedence(n) < need || rng.random_bool(0.1) {
        format!("({body})")
    } else {
        body
    }
}

/// The tree's value computed directly; `None` when it divides by zero.
fn eval_tree(n: &Node) -> Option<BigRational> {
    Some(match n {
        Node::Num { value, .. } => value.clone(),
        Node::Neg(c) => -eval_tree(c)?,
        Node::Percent(c) => eval_tree(c)? / ratio(100, 1),
        Node::Pow(b, e) => {
            let b = eval_tree(b)?;
            if b.is_zero() && *e < 0 {
                return None;
            }
            b.pow(*e)
        }
        Node::Bin(op, l, r) => {
            let (l, r) = (eval_tree(l)?, eval_tree(r)?);
            match op {
                '+' => l + r,
                '-' => l - r,
                '*' => l * r,
                _ if r.is_zero() => return None,
                _ => l / r,
            }
        }
    })
}

#[test]
fn random_trees_match_direct_evaluation() {
    let mut rng = StdRng::seed_from_u64(0x1260_7001);
    let (mut checked, mut div_zero, mut too_long) = (0, 0, 0);
    for case in 0..2_000 {
        let tree = random_tree(&mut rng, 5);
        let text = render(&tree, 0, &mut rng);
        if text.chars().count() > MAX_INPUT_CHARS {
            too_long += 1;
            continue;
        }
        match (eval_tree(&tree), evaluate(&text)) {
            (Some(want), Ok(got)) => {
                assert_eq!(
                    got,
                    want,
                    "case {case}: `{text}` gave {}, want {}",
                    format_value(&got),
                    format_value(&want)
                );
                checked += 1;
            }
            (None, Err(CalcError::DivisionByZero { .. })) => div_zero += 1,
            (want, got) => {
                panic!("case {case}: `{text}`: tree gives {want:?}, calculator gives {got:?}")
            }
        }
    }
    eprintln!("property test: {checked} values checked, {div_zero} divisions by zero, {too_long} too long");
    assert!(checked >= 1_500, "only {checked} of 2000 cases were checked");
    assert!(div_zero >= 20, "only {div_zero} division-by-zero cases were exercised");
}

// ---------------------------------------------------------------------------------------------
// Hostile input: an error with a clear message and no panic. The work is bounded by the
// calculator's limits, which the errors below name (input length, nesting depth, exponent, result
// bits): each input is refused by a limit before any large computation. No speed assertion (the
// machine may be busy); a hang guard far above the microseconds this takes catches a runaway.

fn hostile(expr: &str) -> CalcError {
    let owned = expr.to_string();
    let shown: String = expr.chars().take(40).collect();
    match finishes(&format!("`{shown}`"), move || evaluate(&owned)) {
        Ok(v) => panic!("`{shown}` should fail but gave {}", format_value(&v)),
        Err(e) => e,
    }
}

#[test]
fn hostile_inputs_fail_fast_with_clear_errors() {
    let nested_10k = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
    assert_eq!(hostile(&nested_10k), CalcError::TooLong { max: MAX_INPUT_CHARS });

    // Deep nesting inside the length limit must hit the depth limit, not the stack.
    let nested_400 = format!("{}1{}", "(".repeat(400), ")".repeat(400));
    assert!(matches!(hostile(&nested_400), CalcError::TooDeep { max: MAX_DEPTH, .. }));
    assert!(matches!(hostile(&format!("{}1", "-".repeat(900))), CalcError::TooDeep { .. }));
    assert!(matches!(hostile(&format!("2{}", "^2".repeat(400))), CalcError::TooDeep { .. }));

    assert!(matches!(hostile("9^9^9^9"), CalcError::ExponentTooLarge { .. }));
    assert!(matches!(hostile("2^(10^9)"), CalcError::ExponentTooLarge { .. }));
    assert!(matches!(hostile("2^100000"), CalcError::ResultTooLarge { .. }));
    assert!(matches!(hostile("(2^99999)*(2^99999)"), CalcError::ResultTooLarge { .. }));
    assert!(matches!(hostile("1e99999"), CalcError::ExponentTooLarge { .. }));
    assert!(matches!(hostile("2^0.5"), CalcError::NonIntegerExponent { .. }));
    assert!(matches!(hostile(&"1".repeat(1 << 20)), CalcError::TooLong { .. }));

    assert_eq!(hostile("1/0"), CalcError::DivisionByZero { position: 2 });
    assert_eq!(hostile("0^-1"), CalcError::DivisionByZero { position: 2 });
    assert_eq!(hostile("1/(3-3)"), CalcError::DivisionByZero { position: 2 });
    assert_eq!(hostile(""), CalcError::Empty);
    assert_eq!(hostile(" \t\n"), CalcError::Empty);
    assert_eq!(hostile("(1+2"), CalcError::UnclosedParen { position: 1 });

    let messages = [
        ("()", "unexpected `)` at position 2: expected a number or `(`"),
        ("2 +", "expression ended early: expected a number or `(`"),
        ("abc", "unexpected `abc` at position 1"),
        ("__import__('os')", "unexpected `__import__` at position 1"),
        ("1;2", "unexpected `;` at position 2"),
        ("2 ** 3; import os", "unexpected `;` at position 7"),
        ("sqrt(4)", "unexpected `sqrt` at position 1"),
        ("2x", "unexpected `x` at position 2"),
        ("1 2", "unexpected `2` at position 3: expected an operator or the end"),
        ("1)", "unexpected `)` at position 2"),
        ("2 * * 3", "unexpected `*` at position 5"),
        ("💣 + 1", "unexpected `💣` at position 1"),
        ("1 + ٣", "unexpected `٣` at position 5"),
        ("\u{0}", "unexpected `\u{0}` at position 1"),
        ("1.2.3", "at most one decimal point"),
        ("1/0", "division by zero at position 2"),
        ("2^100000", "over the limit of 100000"),
    ];
    for (expr, want) in messages {
        let msg = hostile(expr).to_string();
        assert!(msg.contains(want), "`{expr}`: message `{msg}` lacks `{want}`");
    }
}

#[test]
fn largest_allowed_power_is_computed() {
    // Right at the result limit: computed, not refused (the limit is inclusive), under the hang guard.
    let v = finishes("2^99999", || evaluate("2^99999")).expect("2^99999 is within the limit");
    assert_eq!(v.numer().bits(), MAX_RESULT_BITS);
    let text = format_value(&v);
    assert!(text.len() > 30_000 && text.ends_with("688"), "2^99999 ends in ...688");
}

// ---------------------------------------------------------------------------------------------
// Tool interface

#[test]
fn tool_schema_requires_expression() {
    let tool = Calculator;
    assert_eq!(tool.name(), "calculator");
    assert!(!tool.description().is_empty());
    let schema = tool.parameters();
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["properties"]["expression"]["type"], "string");
    assert_eq!(schema["required"], json!(["expression"]));
}

#[test]
fn tool_call_validates_arguments() {
    let tool = Calculator;
    assert_eq!(tool.call(&json!({"expression": "2^10"})).unwrap(), "1024");
    assert_eq!(tool.call(&json!({"expression": "1/3"})).unwrap(), "1/3 ≈ 0.3333333333");

    let missing = tool.call(&json!({})).unwrap_err();
    assert!(matches!(&missing, ToolError::MissingArgument { field, .. } if field == "expression"));
    assert!(missing.to_string().contains("expression"), "{missing}");

    let wrong = tool.call(&json!({"expression": 42})).unwrap_err();
    assert!(matches!(&wrong, ToolError::WrongArgumentType { field, .. } if field == "expression"));
    assert_eq!(wrong.to_string(), "tool `calculator`: argument `expression` must be a string, got a number");

    let not_object = tool.call(&json!("1+1")).unwrap_err();
    assert!(not_object.to_string().contains("must be a JSON object, got a string"), "{not_object}");

    let failed = tool.call(&json!({"expression": "1/0"})).unwrap_err();
    assert!(matches!(failed, ToolError::Failed { .. }));
    assert_eq!(failed.to_string(), "tool `calculator` failed: division by zero at position 2");
}
