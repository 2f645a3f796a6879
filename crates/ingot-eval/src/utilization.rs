//! Measures what each prompting strategy buys on held-out items (see [`crate::problems`]):
//! exact-match accuracy of the extracted final answer.

use std::time::Instant;

use ingot_generate::prompting::{build_messages, extract_answer, self_consistency};
use ingot_generate::{generate, GenerateParams, Pipeline};

use crate::problems::Item;

/// A way of asking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// The question alone.
    Plain,
    /// The question with the chain-of-thought instruction.
    ChainOfThought,
    /// k chain-of-thought samples at temperature 0.7, majority vote.
    SelfConsistency(usize),
}

impl Strategy {
    pub fn name(&self) -> String {
        match self {
            Strategy::Plain => "plain".into(),
            Strategy::ChainOfThought => "chain-of-thought".into(),
            Strategy::SelfConsistency(k) => format!("self-consistency k={k}"),
        }
    }
}

/// Accuracy of one strategy on a set of items.
#[derive(Clone, Debug)]
pub struct Accuracy {
    pub strategy: String,
    pub correct: usize,
    pub total: usize,
    pub seconds: f64,
}

impl Accuracy {
    pub fn value(&self) -> f64 {
        self.correct as f64 / self.total.max(1) as f64
    }

    /// Standard error of a proportion, sqrt(p(1-p)/n).
    pub fn stderr(&self) -> f64 {
        let p = self.value();
        (p * (1.0 - p) / self.total.max(1) as f64).sqrt()
    }
}

/// Answer `items` with `strategy` (greedy where the strategy does not sample) and score them.
pub fn measure(p: &Pipeline, items: &[Item], strategy: Strategy, max_tokens: usize) -> ingot_generate::Result<Accuracy> {
    let start = Instant::now();
    let mut correct = 0;
    for item in items {
        let cot = !matches!(strategy, Strategy::Plain);
        let messages = build_messages(&item.question, &[], cot, None);
        let mut params = GenerateParams { max_tokens, ..Default::default() };
        let answer = match strategy {
            Strategy::SelfConsistency(k) => {
                params.sampling.temperature = 0.7;
                self_consistency(p, &messages, k, &params)?.winner().map(str::to_string)
            }
            _ => {
                let prompt = p.tokenizer.encode(&p.chat_prompt(&messages)?, false)?;
                let g = generate(&p.model, &p.tokenizer, &prompt, &params, &p.device, |_| {})?;
                extract_answer(&g.text)
            }
        };
        if answer.as_deref() == Some(item.answer.as_str()) {
            correct += 1;
        }
    }
    Ok(Accuracy { strategy: strategy.name(), correct, total: items.len(), seconds: start.elapsed().as_secs_f64() })
}
