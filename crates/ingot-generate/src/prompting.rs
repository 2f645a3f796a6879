//! Prompting strategies: zero-shot, few-shot demonstrations (chosen by seed or by similarity to
//! the question), chain-of-thought, and self-consistency (Wang et al. 2022: sample several
//! reasoning chains, extract each final answer, take the majority).
//!
//! These build chat messages and post-process answers; generation itself is `generate`. The
//! evaluation harness and the server use the same functions as `ingot ask`.

use std::collections::HashMap;
use std::path::Path;

use ingot_tokenizer::Message;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::generate::{generate, GenerateParams};
use crate::pipeline::Pipeline;

/// One demonstration: a question, an optional worked rationale, and the final answer.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Example {
    pub question: String,
    #[serde(default)]
    pub rationale: Option<String>,
    pub answer: String,
}

/// Read demonstrations from a JSONL file (`question`, `answer`, optional `rationale`).
pub fn read_examples(path: &Path) -> Result<Vec<Example>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Input(format!("cannot read examples file {}: {e}", path.display())))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str::<Example>(l).map_err(|e| {
                Error::Input(format!(
                    "{}:{}: expected {{\"question\", \"answer\"[, \"rationale\"]}}: {}",
                    path.display(),
                    i + 1,
                    ingot_core::text::error_text(&e)
                ))
            })
        })
        .collect()
}

/// How demonstrations are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selection {
    /// A seeded random sample: the same seed gives the same demonstrations.
    Random { seed: u64 },
    /// The k most similar to the question (cosine of bag-of-words counts), ties by file order.
    Nearest,
}

fn words(s: &str) -> HashMap<String, f64> {
    let mut counts = HashMap::new();
    for w in s.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        *counts.entry(w.to_lowercase()).or_insert(0.0) += 1.0;
    }
    counts
}

/// Cosine similarity of two texts' word counts, in [0, 1].
pub fn similarity(a: &str, b: &str) -> f64 {
    let (wa, wb) = (words(a), words(b));
    let dot: f64 = wa.iter().filter_map(|(w, x)| wb.get(w).map(|y| x * y)).sum();
    let norm = |m: &HashMap<String, f64>| m.values().map(|x| x * x).sum::<f64>().sqrt();
    let denom = norm(&wa) * norm(&wb);
    if denom == 0.0 {
        0.0
    } else {
        dot / denom
    }
}

/// Choose `k` demonstrations for `question`, never the question itself.
pub fn select_examples(pool: &[Example], question: &str, k: usize, selection: Selection) -> Vec<Example> {
    let candidates: Vec<&Example> = pool.iter().filter(|e| e.question.trim() != question.trim()).collect();
    match selection {
        Selection::Random { seed } => {
            let mut idx: Vec<usize> = (0..candidates.len()).collect();
            idx.shuffle(&mut StdRng::seed_from_u64(seed));
            idx.into_iter().take(k).map(|i| candidates[i].clone()).collect()
        }
        Selection::Nearest => {
            let mut scored: Vec<(usize, f64)> =
                candidates.iter().enumerate().map(|(i, e)| (i, similarity(&e.question, question))).collect();
            scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            scored.into_iter().take(k).map(|(i, _)| candidates[i].clone()).collect()
        }
    }
}

/// The instruction that asks for step-by-step reasoning (Kojima et al. 2022) and a final line
/// the extractor can find.
pub const COT_INSTRUCTION: &str =
    "Think step by step, showing your reasoning, then give the final answer on the last line as \"The answer is X.\"";

/// Build the conversation for `question`: demonstrations as earlier user/assistant turns (with
/// their rationales when `cot`), then the question, with the chain-of-thought instruction if asked.
pub fn build_messages(question: &str, demos: &[Example], cot: bool, system: Option<&str>) -> Vec<Message> {
    let mut messages = Vec::new();
    if let Some(s) = system {
        messages.push(Message::new("system", s));
    }
    for d in demos {
        messages.push(Message::new("user", d.question.clone()));
        let answer = match (&d.rationale, cot) {
            (Some(r), true) => format!("{} The answer is {}.", r.trim(), d.answer.trim()),
            _ => format!("The answer is {}.", d.answer.trim()),
        };
        messages.push(Message::new("assistant", answer));
    }
    let q = if cot { format!("{}\n{COT_INSTRUCTION}", question.trim()) } else { question.trim().to_string() };
    messages.push(Message::new("user", q));
    messages
}

/// The final answer in a model's text: "The answer is X" (last one), else "#### X" (GSM8K), else
/// the last number. Numbers are normalised: commas, currency signs and a trailing ".0"/"." are
/// dropped, so "$1,234.00" and "1234" agree. Returns None when nothing answer-like is found.
pub fn extract_answer(text: &str) -> Option<String> {
    let lower = text.to_lowercase();
    for marker in ["the answer is", "####", "answer:"] {
        if let Some(pos) = lower.rfind(marker) {
            let rest = &text[pos + marker.len()..];
            if let Some(n) = first_number(rest) {
                return Some(n);
            }
            let word: String = rest
                .trim()
                .trim_start_matches(':')
                .trim()
                .chars()
                .take_while(|c| !matches!(c, '.' | '\n' | ','))
                .collect();
            if !word.trim().is_empty() {
                return Some(word.trim().to_lowercase());
            }
        }
    }
    last_number(text)
}

fn numbers(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let starts = chars[i].is_ascii_digit()
            || (chars[i] == '-'
                && i + 1 < chars.len()
                && chars[i + 1].is_ascii_digit()
                && (i == 0 || !chars[i - 1].is_alphanumeric()));
        if !starts {
            i += 1;
            continue;
        }
        let mut s = String::new();
        if chars[i] == '-' {
            s.push('-');
            i += 1;
        }
        while i < chars.len() {
            let c = chars[i];
            let next_digit = i + 1 < chars.len() && chars[i + 1].is_ascii_digit();
            if c.is_ascii_digit() {
                s.push(c);
            } else if c == ',' && next_digit {
                // thousands separator: drop
            } else if c == '.' && next_digit && !s.contains('.') {
                s.push('.');
            } else {
                break;
            }
            i += 1;
        }
        out.push(normalise_number(&s));
    }
    out
}

fn normalise_number(s: &str) -> String {
    let mut s = s.to_string();
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

fn first_number(text: &str) -> Option<String> {
    numbers(text).into_iter().next()
}

fn last_number(text: &str) -> Option<String> {
    numbers(text).pop()
}

/// The outcome of self-consistency: every chain, its extracted answer, and the vote.
#[derive(Clone, Debug)]
pub struct Vote {
    pub chains: Vec<String>,
    pub answers: Vec<Option<String>>,
    /// (answer, votes), most votes first; ties broken by which answer appeared first.
    pub counts: Vec<(String, usize)>,
}

impl Vote {
    pub fn winner(&self) -> Option<&str> {
        self.counts.first().map(|(a, _)| a.as_str())
    }
}

/// Count answers; chains without an answer don't vote.
pub fn majority(answers: &[Option<String>]) -> Vec<(String, usize)> {
    let mut order: Vec<String> = Vec::new();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for a in answers.iter().flatten() {
        if !counts.contains_key(a) {
            order.push(a.clone());
        }
        *counts.entry(a.clone()).or_insert(0) += 1;
    }
    let mut out: Vec<(String, usize)> = order.into_iter().map(|a| (a.clone(), counts[&a])).collect();
    // Stable sort keeps first-appearance order among ties.
    out.sort_by_key(|a| std::cmp::Reverse(a.1));
    out
}

/// Sample `k` chains for `messages` (seeds seed, seed+1, ...) and vote on their answers.
pub fn self_consistency(pipeline: &Pipeline, messages: &[Message], k: usize, params: &GenerateParams) -> Result<Vote> {
    if k == 0 {
        return Err(Error::Params("--self-consistency needs at least 1 chain".into()));
    }
    if params.sampling.temperature == 0.0 && k > 1 {
        return Err(Error::Params("self-consistency needs sampling: set --temperature above 0 (0.7 is usual)".into()));
    }
    let prompt = pipeline.encode_chat(messages)?;
    let mut chains = Vec::with_capacity(k);
    for i in 0..k {
        let mut p = params.clone();
        p.sampling.seed = params.sampling.seed.wrapping_add(i as u64);
        let g = generate(&pipeline.model, &pipeline.tokenizer, &prompt, &p, &pipeline.device, |_| {})?;
        chains.push(g.text);
    }
    let answers: Vec<Option<String>> = chains.iter().map(|c| extract_answer(c)).collect();
    let counts = majority(&answers);
    Ok(Vote { chains, answers, counts })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_answers_from_tricky_text() {
        let cases = [
            ("So 3 + 4 = 7. The answer is 7.", Some("7")),
            ("The answer is $1,234.00 dollars", Some("1234")),
            ("First 12, then 30.\n#### 42", Some("42")),
            ("I think it's -5 degrees, no wait, 3", Some("3")),
            ("The answer is 2.50.", Some("2.5")),
            ("Answer: 0.0", Some("0")),
            ("The answer is Paris.", Some("paris")),
            ("The answer is 5. Actually the answer is 6.", Some("6")),
            ("no numbers here", None),
            ("x-3 and item2", Some("2")),
            ("a range 10-20", Some("20")),
        ];
        for (text, want) in cases {
            assert_eq!(extract_answer(text).as_deref(), want, "{text:?}");
        }
    }

    #[test]
    fn majority_vote_counts_and_breaks_ties_by_first_seen() {
        let a = |s: &str| Some(s.to_string());
        let v = majority(&[a("4"), None, a("5"), a("4"), a("5"), a("6")]);
        assert_eq!(v, vec![("4".into(), 2), ("5".into(), 2), ("6".into(), 1)]);
        assert!(majority(&[None, None]).is_empty());
    }

    fn pool() -> Vec<Example> {
        (0..10)
            .map(|i| Example {
                question: format!("How many apples does person {i} have after buying {i} more?"),
                rationale: None,
                answer: i.to_string(),
            })
            .chain([Example {
                question: "What is the capital of Peru?".into(),
                rationale: None,
                answer: "Lima".into(),
            }])
            .collect()
    }

    #[test]
    fn seeded_selection_is_deterministic_and_excludes_the_question() {
        let p = pool();
        let q = p[3].question.clone();
        let a = select_examples(&p, &q, 4, Selection::Random { seed: 7 });
        assert_eq!(a, select_examples(&p, &q, 4, Selection::Random { seed: 7 }));
        assert_ne!(a, select_examples(&p, &q, 4, Selection::Random { seed: 8 }));
        assert!(a.iter().all(|e| e.question != q) && a.len() == 4);
    }

    #[test]
    fn nearest_selection_prefers_similar_questions() {
        let p = pool();
        let got = select_examples(&p, "What is the capital city of France?", 1, Selection::Nearest);
        assert_eq!(got[0].answer, "Lima");
        assert!(similarity("a b c", "a b c") > 0.999 && similarity("a b", "c d") == 0.0);
    }

    #[test]
    fn messages_carry_demonstrations_and_the_cot_instruction() {
        let demos = vec![Example {
            question: "2+2?".into(),
            rationale: Some("Two plus two is four.".into()),
            answer: "4".into(),
        }];
        let m = build_messages("3+3?", &demos, true, None);
        assert_eq!(m.len(), 3);
        assert_eq!(m[1].content, "Two plus two is four. The answer is 4.");
        assert!(m[2].content.ends_with(COT_INSTRUCTION));
        let plain = build_messages("3+3?", &demos, false, Some("Be brief."));
        assert_eq!(plain[0].role, "system");
        assert_eq!(plain[2].content, "The answer is 4.");
        assert_eq!(plain[3].content, "3+3?");
    }
}
