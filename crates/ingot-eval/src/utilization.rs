//! Measures what each prompting strategy buys on held-out items (see [`crate::problems`]):
//! exact-match accuracy of the extracted final answer.

use std::time::Instant;

use ingot_generate::prompting::{build_messages, extract_answer, self_consistency};
use ingot_generate::{generate, GenerateParams, Pipeline};

use ingot_tools::{Agent, Calculator, SearchIndex, SearchTool};

use crate::problems::{Fact, Item};

/// A way of asking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// The question alone.
    Plain,
    /// The question with the chain-of-thought instruction.
    ChainOfThought,
    /// k chain-of-thought samples at temperature 0.7, majority vote.
    SelfConsistency(usize),
    /// The tool-calling loop with the exact calculator.
    Calculator,
}

impl Strategy {
    pub fn name(&self) -> String {
        match self {
            Strategy::Plain => "plain".into(),
            Strategy::ChainOfThought => "chain-of-thought".into(),
            Strategy::SelfConsistency(k) => format!("self-consistency k={k}"),
            Strategy::Calculator => "calculator tool".into(),
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

/// An accuracy over no items is not 0%: refuse it, and answers of no tokens.
fn check_sizes(items: usize, max_tokens: usize) -> crate::Result<()> {
    ingot_core::limits::at_least("problem count", items, 1)?;
    ingot_core::limits::at_least("max tokens", max_tokens, 1)?;
    Ok(())
}

/// Answer `items` with `strategy` (greedy where the strategy does not sample) and score them.
pub fn measure(p: &Pipeline, items: &[Item], strategy: Strategy, max_tokens: usize) -> crate::Result<Accuracy> {
    check_sizes(items.len(), max_tokens)?;
    if let Strategy::SelfConsistency(k) = strategy {
        ingot_core::limits::at_least("self-consistency k", k, 1)?;
    }
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
            Strategy::Calculator => {
                let agent = Agent::new(p, vec![Box::new(Calculator)]).with_params(params).with_max_steps(4);
                let answer = agent.run(&item.question).map_err(|e| crate::Error::Input(e.to_string()))?;
                extract_answer(&answer.answer)
            }
            _ => {
                let prompt = p.encode_chat(&messages)?;
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

/// Accuracy on questions whose answers are only in `facts`' documents, with or without the
/// search tool over an index of them (`index_dir`, built here from `docs_dir`).
/// How the local-facts questions are asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FactsMode {
    /// The question alone.
    NoTool,
    /// The tool-calling loop with the search tool: the model decides whether to search.
    SearchTool,
    /// Ingot runs the search tool on the question and puts the top passages in the prompt
    /// (retrieval-augmented generation); the model only reads.
    Retrieved,
}

pub fn measure_facts(
    p: &Pipeline,
    facts: &[Fact],
    docs_dir: &std::path::Path,
    index_dir: &std::path::Path,
    mode: FactsMode,
    max_tokens: usize,
) -> crate::Result<Accuracy> {
    check_sizes(facts.len(), max_tokens)?;
    let start = Instant::now();
    let io = |e: std::io::Error| ingot_generate::Error::Input(format!("writing {}: {e}", docs_dir.display()));
    std::fs::create_dir_all(docs_dir).map_err(io)?;
    for f in facts {
        std::fs::write(docs_dir.join(&f.file_name), &f.document).map_err(io)?;
    }
    let to_err = |e: ingot_tools::SearchError| ingot_generate::Error::Input(e.to_string());
    SearchIndex::build(docs_dir, index_dir).map_err(to_err)?;
    let params = GenerateParams { max_tokens, ..Default::default() };
    // The index is opened once: the model-driven loop or the retriever, by mode.
    let index = SearchIndex::open(index_dir).map_err(to_err)?;
    let (agent, retriever) = match mode {
        FactsMode::SearchTool => {
            let tools: Vec<Box<dyn ingot_tools::Tool>> = vec![Box::new(SearchTool::new(index))];
            (Some(Agent::new(p, tools).with_params(params.clone()).with_max_steps(4)), None)
        }
        FactsMode::Retrieved => (None, Some(SearchTool::new(index))),
        FactsMode::NoTool => (None, None),
    };
    let mut correct = 0;
    for f in facts {
        let answer = match &agent {
            Some(agent) => agent.run(&f.item.question).map_err(|e| ingot_generate::Error::Input(e.to_string()))?.answer,
            None => {
                let system = match &retriever {
                    Some(tool) => {
                        let passages =
                            ingot_tools::Tool::call(tool, &serde_json::json!({ "query": f.item.question, "k": 2 }))
                                .map_err(|e| ingot_generate::Error::Input(e.to_string()))?;
                        Some(format!("Answer the question using these passages from the user's documents:\n{passages}"))
                    }
                    None => None,
                };
                let messages = build_messages(&f.item.question, &[], false, system.as_deref());
                let prompt = p.encode_chat(&messages)?;
                generate(&p.model, &p.tokenizer, &prompt, &params, &p.device, |_| {})?.text
            }
        };
        // The fact's number anywhere in the answer counts (the questions ask for one number).
        if answer.contains(&f.item.answer) {
            correct += 1;
        }
    }
    let strategy = match mode {
        FactsMode::NoTool => "local facts, no tool",
        FactsMode::SearchTool => "local facts, search tool (model decides)",
        FactsMode::Retrieved => "local facts, search results in the prompt",
    };
    Ok(Accuracy { strategy: strategy.into(), correct, total: facts.len(), seconds: start.elapsed().as_secs_f64() })
}
