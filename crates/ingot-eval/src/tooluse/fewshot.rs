//! Plain-text few-shot examples: rehearsal that keeps a chat fine-tune answering plain prompts.
//!
//! Tuning on chat conversations alone taught the default model to end at once when it reads a
//! plain-text few-shot prompt (no chat template): on GSM8K's 8-shot prompt half its answers were
//! empty. These examples are that kind of prompt, with the chat template nowhere: one to four
//! solved arithmetic problems, then a new one; the completion (the only trained text) works it out
//! in one line and ends `The answer is N.`.
//!
//! The problems are the calculator templates' own ([`calculator_problems`]), drawn from their own
//! stream of the training split, so they never repeat an evaluation question; the worked line is
//! the item's expression written with × and ÷, its exact value and the template's reply. None of
//! them is a GSM8K problem or exemplar. The question/answer labels vary over three styles so the
//! model learns "answer the last question", not one benchmark's wording.

use rand::Rng;
use serde_json::{json, Value};

use super::{calculator_problems, pick, stream, CalcProblem, Split, FEWSHOT_STREAM};

/// One plain-text example: the prompt (context, not trained) and its completion (trained, EOS
/// appended by the SFT data loader).
#[derive(Clone, Debug, PartialEq)]
pub struct TextExample {
    pub prompt: String,
    pub completion: String,
}

impl TextExample {
    /// The JSONL record in TRL's plain prompt/completion format.
    pub fn to_json(&self) -> Value {
        json!({"prompt": self.prompt, "completion": self.completion})
    }
}

/// Question and answer labels: lm-eval's GSM8K wording, the CoT paper's, and a third.
const STYLES: [(&str, &str); 3] = [("Question: ", "\nAnswer:"), ("Q: ", "\nA:"), ("Problem: ", "\nSolution:")];

/// Answers up to this many digits: a worked line a reader checks at a glance.
const MAX_ANSWER_DIGITS: usize = 6;

/// The worked answer to a problem: ` 12 × 7 = 84. Sam pays $84 in total. The answer is 84.`
/// (the reply alone where it is already the worked line: `(7 + 4) × 3 = 33.`).
fn worked(p: &CalcProblem) -> String {
    let answer = &p.item.answer;
    if p.reply.contains(" = ") {
        return format!(" {} The answer is {answer}.", p.reply);
    }
    let expression = p.expression.replace('*', "×").replace('/', "÷");
    format!(" {expression} = {answer}. {} The answer is {answer}.", p.reply)
}

/// `n` plain-text few-shot examples of `split`, seeded; example `i` does not depend on `n`.
pub fn few_shot_examples(split: Split, seed: u64, n: usize) -> Vec<TextExample> {
    if n == 0 {
        return Vec::new();
    }
    // Each example uses up to five problems (four shots and the question); the pool is drawn from
    // a seed of its own, so these are not the calculator conversations' problems.
    let pool: Vec<CalcProblem> = calculator_problems(split, seed ^ FEWSHOT_STREAM.rotate_left(32), 8 * n + 16)
        .into_iter()
        .filter(|p| p.item.answer.len() <= MAX_ANSWER_DIGITS)
        .collect();
    let mut rng = stream(split, seed, FEWSHOT_STREAM);
    let mut next = 0;
    let mut out = Vec::with_capacity(n);
    while out.len() < n && next + 5 <= pool.len() {
        let (q_label, a_label) = pick(&mut rng, &STYLES);
        let shots = rng.random_range(1..=4);
        let mut prompt = String::new();
        for p in &pool[next..next + shots] {
            prompt.push_str(&format!("{q_label}{}{a_label}{}\n\n", p.item.question, worked(p)));
        }
        let target = &pool[next + shots];
        prompt.push_str(&format!("{q_label}{}{a_label}", target.item.question));
        out.push(TextExample { prompt, completion: worked(target) });
        next += shots + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::strict_answer;
    use ingot_tools::{Calculator, Tool};
    use std::collections::HashSet;

    #[test]
    fn examples_are_seeded_plain_text_with_exact_answers() {
        let examples = few_shot_examples(Split::Train, 3, 200);
        assert_eq!(examples.len(), 200);
        assert_eq!(examples, few_shot_examples(Split::Train, 3, 200));
        assert_eq!(examples[..50], few_shot_examples(Split::Train, 3, 50)[..]);
        assert_ne!(examples[..20], few_shot_examples(Split::Train, 4, 20)[..]);
        let pool = calculator_problems(Split::Train, 3 ^ FEWSHOT_STREAM.rotate_left(32), 8 * 200 + 16);
        let answers: std::collections::HashMap<&str, &CalcProblem> =
            pool.iter().map(|p| (p.item.question.as_str(), p)).collect();
        let mut styles = HashSet::new();
        for e in &examples {
            assert!(!e.prompt.contains("<|im_start|>") && !e.completion.contains("<|im_start|>"));
            let (q_label, a_label) = STYLES.iter().find(|(q, _)| e.prompt.starts_with(q)).expect("a known style");
            styles.insert(*q_label);
            assert!(e.prompt.ends_with(a_label), "{}", e.prompt);
            // The completion's number is the calculator's value of the last question's expression.
            let last = e.prompt.rsplit(q_label).next().unwrap().strip_suffix(a_label).unwrap();
            let p = answers[last];
            let value = Calculator.call(&json!({"expression": p.expression})).unwrap();
            assert_eq!(strict_answer(&e.completion), Some(value.clone()), "{}", e.completion);
            assert!(e.completion.starts_with(' ') && e.completion.ends_with(&format!("The answer is {value}.")));
            // Every shot is solved correctly too.
            let shots = e.prompt.split("\n\n").count() - 1;
            assert!((1..=4).contains(&shots), "{}", e.prompt);
            for block in e.prompt.split("\n\n").take(shots) {
                let (q, a) = block.strip_prefix(q_label).unwrap().split_once(a_label).unwrap();
                assert_eq!(a, worked(answers[q]));
            }
        }
        assert_eq!(styles.len(), STYLES.len());
    }

    #[test]
    fn no_example_holds_an_evaluation_question() {
        let eval: HashSet<String> =
            crate::tooluse::calculator_items(Split::Eval, 3, 3000).into_iter().map(|i| i.question).collect();
        for e in few_shot_examples(Split::Train, 3, 300) {
            let (q_label, a_label) = STYLES.iter().find(|(q, _)| e.prompt.starts_with(q)).unwrap();
            for block in e.prompt.split("\n\n") {
                let q = block.strip_prefix(q_label).unwrap().split(a_label).next().unwrap();
                assert!(!eval.contains(q), "evaluation question in a training example: {q}");
            }
        }
    }
}
