//! Measures what each prompting strategy buys on held-out items (see [`crate::tooluse`], eval
//! split): exact-match accuracy of the extracted final answer, whether the fact's number is in
//! the answer, and, for questions that need no tool, how often the model calls one anyway.
//!
//! Every agent run also counts its tool calls: an attempt is any call the model wrote; it is
//! well-formed when it could be read, named an offered tool, and that tool ran on its arguments
//! without an error ([`CallCounts`]).

use std::path::Path;
use std::time::Instant;

use ingot_generate::prompting::{build_messages, extract_answer, self_consistency};
use ingot_generate::{generate, GenerateParams, Pipeline};
use serde_json::{json, Value};

use ingot_tools::{Agent, AgentAnswer, Calculator, SearchIndex, SearchTool, Tool};

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

/// Tool calls the model wrote in agent runs, and how many of them worked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallCounts {
    /// Every call the model wrote, readable or not.
    pub attempts: usize,
    /// Calls that were readable, named an offered tool, and ran without a tool error.
    pub well_formed: usize,
}

impl CallCounts {
    /// Adds the calls of one run. The loop gives one result per call, in order; a result is `ok`
    /// only when the call named a known tool and the tool accepted its arguments.
    pub fn add(&mut self, answer: &AgentAnswer) {
        for step in &answer.steps {
            for (call, result) in step.calls.iter().zip(&step.results) {
                self.attempts += 1;
                if call.is_ok() && result.ok {
                    self.well_formed += 1;
                }
            }
        }
    }

    pub fn merge(&mut self, other: &CallCounts) {
        self.attempts += other.attempts;
        self.well_formed += other.well_formed;
    }

    /// well-formed / attempts; `None` when the model wrote no call.
    pub fn fraction(&self) -> Option<f64> {
        (self.attempts > 0).then(|| self.well_formed as f64 / self.attempts as f64)
    }
}

/// Accuracy of one strategy on a set of items.
#[derive(Clone, Debug)]
pub struct Accuracy {
    pub strategy: String,
    /// What `correct` counts, for reports.
    pub metric: &'static str,
    pub correct: usize,
    pub total: usize,
    pub seconds: f64,
    /// Tool calls of the agent runs; `None` for strategies that run no agent.
    pub calls: Option<CallCounts>,
}

/// `Accuracy::metric` of strategies scored by the extracted final answer.
pub const EXACT_MATCH: &str = "exact match of the final answer";
/// `Accuracy::metric` of the local-facts strategies.
pub const CONTAINS_FACT: &str = "the fact's number appears in the answer";
/// `Accuracy::metric` of the no-tool questions: lower is better.
pub const CALLED_A_TOOL: &str = "share of questions where the model called a tool (lower is better)";

impl Accuracy {
    pub fn value(&self) -> f64 {
        self.correct as f64 / self.total.max(1) as f64
    }

    /// Standard error of a proportion, sqrt(p(1-p)/n).
    pub fn stderr(&self) -> f64 {
        let p = self.value();
        (p * (1.0 - p) / self.total.max(1) as f64).sqrt()
    }

    /// The result as a JSON object (for `utilization-bench --json`).
    pub fn to_json(&self) -> Value {
        json!({
            "strategy": self.strategy,
            "metric": self.metric,
            "correct": self.correct,
            "total": self.total,
            "accuracy": self.value(),
            "stderr": self.stderr(),
            "seconds": self.seconds,
            "tool_call_attempts": self.calls.map(|c| c.attempts),
            "well_formed_tool_calls": self.calls.map(|c| c.well_formed),
        })
    }
}

fn agent_error(e: ingot_tools::AgentError) -> crate::Error {
    crate::Error::Input(e.to_string())
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
    let mut calls = CallCounts::default();
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
                let answer = agent.run(&item.question).map_err(agent_error)?;
                calls.add(&answer);
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
    Ok(Accuracy {
        strategy: strategy.name(),
        metric: EXACT_MATCH,
        correct,
        total: items.len(),
        seconds: start.elapsed().as_secs_f64(),
        calls: (strategy == Strategy::Calculator).then_some(calls),
    })
}

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

/// Writes `facts`' documents to `docs_dir` and indexes them into `index_dir`.
fn index_facts(facts: &[Fact], docs_dir: &Path, index_dir: &Path) -> crate::Result<SearchIndex> {
    crate::tooluse::write_documents(facts, docs_dir)?;
    let to_err = |e: ingot_tools::SearchError| crate::Error::Input(e.to_string());
    SearchIndex::build(docs_dir, index_dir).map_err(to_err)?;
    SearchIndex::open(index_dir).map_err(to_err)
}

/// Accuracy on questions whose answers are only in `facts`' documents, with or without the
/// search tool over an index of them (`index_dir`, built here from `docs_dir`).
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
    let params = GenerateParams { max_tokens, ..Default::default() };
    // The index is opened once: the model-driven loop or the retriever, by mode.
    let index = index_facts(facts, docs_dir, index_dir)?;
    let (agent, retriever) = match mode {
        FactsMode::SearchTool => {
            let tools: Vec<Box<dyn ingot_tools::Tool>> = vec![Box::new(SearchTool::new(index))];
            (Some(Agent::new(p, tools).with_params(params.clone()).with_max_steps(4)), None)
        }
        FactsMode::Retrieved => (None, Some(SearchTool::new(index))),
        FactsMode::NoTool => (None, None),
    };
    let mut correct = 0;
    let mut calls = CallCounts::default();
    for f in facts {
        let answer = match &agent {
            Some(agent) => {
                let answer = agent.run(&f.item.question).map_err(agent_error)?;
                calls.add(&answer);
                answer.answer
            }
            None => {
                let system = match &retriever {
                    Some(tool) => {
                        let passages = tool
                            .call(&json!({ "query": f.item.question, "k": 2 }))
                            .map_err(|e| crate::Error::Input(e.to_string()))?;
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
    Ok(Accuracy {
        strategy: strategy.into(),
        metric: CONTAINS_FACT,
        correct,
        total: facts.len(),
        seconds: start.elapsed().as_secs_f64(),
        calls: agent.is_some().then_some(calls),
    })
}

/// How often the model calls a tool on `questions` that need none (see
/// [`crate::tooluse::no_tool_items`]), asked through the agent with both the calculator and the
/// search tool over `facts`' documents offered. `correct` counts the questions where it called
/// any tool, readable or not: lower is better.
pub fn measure_no_tool(
    p: &Pipeline,
    questions: &[Item],
    facts: &[Fact],
    docs_dir: &Path,
    index_dir: &Path,
    max_tokens: usize,
) -> crate::Result<Accuracy> {
    check_sizes(questions.len(), max_tokens)?;
    let start = Instant::now();
    let index = index_facts(facts, docs_dir, index_dir)?;
    let tools: Vec<Box<dyn Tool>> = vec![Box::new(Calculator), Box::new(SearchTool::new(index))];
    let params = GenerateParams { max_tokens, ..Default::default() };
    let agent = Agent::new(p, tools).with_params(params).with_max_steps(4);
    let (mut called, mut calls) = (0, CallCounts::default());
    for q in questions {
        let answer = agent.run(&q.question).map_err(agent_error)?;
        calls.add(&answer);
        if answer.steps.iter().any(|s| !s.calls.is_empty()) {
            called += 1;
        }
    }
    Ok(Accuracy {
        strategy: "tool calls on no-tool questions".into(),
        metric: CALLED_A_TOOL,
        correct: called,
        total: questions.len(),
        seconds: start.elapsed().as_secs_f64(),
        calls: Some(calls),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ingot_generate::FinishReason;
    use ingot_tools::{AgentStop, CallError, Step, ToolCall, ToolResult};

    fn result(ok: bool) -> ToolResult {
        ToolResult { name: "calculator".into(), ok, content: String::new() }
    }

    #[test]
    fn call_counts_separate_attempts_from_well_formed_calls() {
        let call = |name: &str| Ok(ToolCall { name: name.into(), arguments: json!({"expression": "1+1"}) });
        let step = |calls: Vec<Result<ToolCall, CallError>>, results| Step {
            model_text: String::new(),
            finish_reason: FinishReason::Stop,
            calls,
            results,
            step_limit_reached: false,
        };
        let answer = AgentAnswer {
            answer: "2".into(),
            stop: AgentStop::Answered,
            steps: vec![
                // Unreadable, unknown tool, tool error: three attempts, none well-formed.
                step(vec![Err(CallError::NoJson), call("calculater")], vec![result(false), result(false)]),
                step(vec![call("calculator")], vec![result(false)]),
                step(vec![call("calculator")], vec![result(true)]),
                step(vec![], vec![]),
            ],
        };
        let mut c = CallCounts::default();
        c.add(&answer);
        assert_eq!(c, CallCounts { attempts: 4, well_formed: 1 });
        assert_eq!(c.fraction(), Some(0.25));
        assert_eq!(CallCounts::default().fraction(), None);
        let mut total = CallCounts::default();
        total.merge(&c);
        total.merge(&c);
        assert_eq!(total, CallCounts { attempts: 8, well_formed: 2 });
    }

    #[test]
    fn accuracy_json_has_the_report_fields() {
        let a = Accuracy {
            strategy: "calculator tool".into(),
            metric: EXACT_MATCH,
            correct: 3,
            total: 4,
            seconds: 1.5,
            calls: Some(CallCounts { attempts: 5, well_formed: 4 }),
        };
        let v = a.to_json();
        for key in ["strategy", "metric", "correct", "total", "accuracy", "stderr", "seconds"] {
            assert!(v.get(key).is_some(), "{key}");
        }
        assert_eq!(v["accuracy"], 0.75);
        assert_eq!(v["tool_call_attempts"], 5);
        assert_eq!(v["well_formed_tool_calls"], 4);
        let plain = Accuracy { calls: None, ..a };
        assert!(plain.to_json()["tool_call_attempts"].is_null());
    }
}
