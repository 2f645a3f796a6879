//! Seeded tool-use data: the conversations that teach a small chat model when (and when not) to
//! call its tools, and the held-out items that measure it ([`crate::utilization`]).
//!
//! Three kinds of conversation, each offered a tool set that always holds the tool it needs:
//! - calculator: an arithmetic question of 1 to 4 operations ([`template_names`]: direct questions
//!   and word problems, numbers of 1 to 12 digits, some with a distractor number), one `calculator`
//!   call with one expression, its result, and a final turn ending `The answer is N.`;
//! - search: a question about an invented town, river, mountain, school or lake whose answer is
//!   only in a generated document; one `search` call, its passages (the target among distractor
//!   documents of the same index), and a final turn stating the number;
//! - no tool: greetings, capitals, opposites, translations, definitions, yes/no facts, short
//!   writing and advice, answered directly with a fixed reply written here.
//!
//! Every tool result is what the real tool returned: [`Calculator`] on the expression, and
//! [`SearchTool`](ingot_tools::SearchTool) over a [`SearchIndex`](ingot_tools::SearchIndex) built
//! from the generated documents in a scratch folder.
//! So the model trains on exactly the text it reads at inference. A tool error, a calculator
//! result that differs from the item's answer, or a search that misses its document is a bug of
//! this generator and fails [`conversations`].
//!
//! Train and eval never share a question, for any pair of seeds, because the question space is
//! partitioned rather than sampled apart:
//! - arithmetic questions: a question text belongs to the split given by one bit of its hash
//!   ([`Split::owns`]); drafts of the other split are drawn again;
//! - invented names: the same rule on the name, and every fact question names its subject, so no
//!   town, river, mountain, school or lake of one split exists in the other;
//! - no-tool questions: by subject (the country, the word, the request): every fourth subject of
//!   each category is eval.
//!
//! Determinism: a (split, seed) gives the same items on every run of the same build (rand's
//! `StdRng`); each kind draws from its own stream, and item `i` does not depend on `n`, so the first
//! 30 of 100 items are the 30 items.
//!
//! This file holds the partition, the conversation types and their assembly; each kind's
//! generator has its own file: `arithmetic.rs` (calculator), `facts.rs` (search), `plain.rs` (no tool).
//! `fewshot.rs` adds plain-text few-shot examples (no chat template) that keep a tuned model
//! answering plain prompts.

mod arithmetic;
mod facts;
mod fewshot;
mod plain;

pub use arithmetic::{calculator_items, calculator_problems, template_names, CalcProblem};
pub use facts::{search_items, search_problems, write_documents, SearchProblem};
pub use fewshot::{few_shot_examples, TextExample};
pub use plain::no_tool_items;

use std::path::PathBuf;

use ingot_tools::agent::tool_schema;
use ingot_tools::{Calculator, Tool};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::problems::{Fact, Item};
use crate::{Error, Result};
use facts::search_tool;

// ---------------------------------------------------------------------------------------------
// Splits and seeds

/// Which side of the train/eval partition items come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Eval,
}

impl Split {
    fn tag(self) -> u64 {
        match self {
            Split::Train => 0x7472_6169_6e00_0001,
            Split::Eval => 0x6576_616c_0000_0002,
        }
    }

    /// True when `text` (a question, an invented name) belongs to this split. One bit of a fixed
    /// hash, so the rule is the same on every machine and for every seed.
    pub fn owns(self, text: &str) -> bool {
        let bit = splitmix(fnv1a(text)) & 1;
        bit == match self {
            Split::Train => 0,
            Split::Eval => 1,
        }
    }
}

/// FNV-1a: a hash fixed by its definition (std's hasher may change between Rust releases).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// splitmix64's finaliser: FNV-1a's low bit is only the parity of its bytes, so mix first.
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Each generator has its own stream, so more calculator items never shift the facts.
const CALC_STREAM: u64 = 1;
const FACTS_STREAM: u64 = 2;
const PLAIN_STREAM: u64 = 3;
const MIX_STREAM: u64 = 4;
const TOOLS_STREAM: u64 = 5;
const FEWSHOT_STREAM: u64 = 6;

fn stream(split: Split, seed: u64, id: u64) -> StdRng {
    StdRng::seed_from_u64(splitmix(splitmix(seed ^ split.tag()) ^ id))
}

fn pick<T: Copy>(rng: &mut StdRng, xs: &[T]) -> T {
    xs[rng.random_range(0..xs.len())]
}

// ---------------------------------------------------------------------------------------------
// Conversations

/// What a conversation teaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Calculator,
    Search,
    NoTool,
}

/// One message of a conversation.
#[derive(Clone, Debug, PartialEq)]
pub enum Turn {
    User(String),
    /// An assistant turn that only calls a tool.
    Call {
        name: String,
        arguments: Value,
    },
    /// What the tool returned, verbatim.
    Result {
        name: String,
        content: String,
    },
    /// An assistant turn in plain text.
    Assistant(String),
}

/// A training conversation: the tools offered (OpenAI schemas) and the messages.
#[derive(Clone, Debug, PartialEq)]
pub struct Conversation {
    pub kind: Kind,
    /// [`tool_schema`] of each tool offered, calculator before search.
    pub tools: Vec<Value>,
    pub turns: Vec<Turn>,
}

impl Conversation {
    /// The user's question (the first turn).
    pub fn question(&self) -> &str {
        match self.turns.first() {
            Some(Turn::User(q)) => q,
            _ => "",
        }
    }

    /// The assistant's final reply (the last turn).
    pub fn final_answer(&self) -> &str {
        match self.turns.last() {
            Some(Turn::Assistant(a)) => a,
            _ => "",
        }
    }
}

/// The conversation as one JSONL record in the OpenAI/TRL chat format with tools:
/// `{"tools": [...], "messages": [{"role": "user", ...}, {"role": "assistant", "content": "",
/// "tool_calls": [{"type": "function", "function": {"name", "arguments"}}]}, {"role": "tool",
/// "name", "content"}, {"role": "assistant", "content"}]}`.
pub fn to_json(c: &Conversation) -> Value {
    let messages: Vec<Value> = c
        .turns
        .iter()
        .map(|t| match t {
            Turn::User(s) => json!({"role": "user", "content": s}),
            Turn::Call { name, arguments } => json!({
                "role": "assistant",
                "content": "",
                "tool_calls": [{"type": "function", "function": {"name": name, "arguments": arguments}}],
            }),
            Turn::Result { name, content } => json!({"role": "tool", "name": name, "content": content}),
            Turn::Assistant(s) => json!({"role": "assistant", "content": s}),
        })
        .collect();
    json!({"tools": c.tools, "messages": messages})
}

/// Shares of each kind in [`conversations`]; they need not sum to 1 (they are normalised).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mix {
    pub calculator: f64,
    pub search: f64,
    pub no_tool: f64,
}

impl Default for Mix {
    /// Calculator questions have the most surface variety, so they get the largest share; a quarter
    /// that needs no tool keeps the model from calling tools on everything.
    fn default() -> Self {
        Mix { calculator: 0.45, search: 0.30, no_tool: 0.25 }
    }
}

impl Mix {
    /// How many of `n` conversations are of each kind (largest share rounded, the rest no-tool).
    fn counts(&self, n: usize) -> Result<(usize, usize, usize)> {
        let shares = [self.calculator, self.search, self.no_tool];
        let total: f64 = shares.iter().sum();
        if shares.iter().any(|s| !s.is_finite() || *s < 0.0) || total <= 0.0 {
            return Err(Error::Input(format!(
                "tool-use mix: shares must be finite, non-negative and not all zero; got calculator {}, search {}, no tool {}",
                self.calculator, self.search, self.no_tool
            )));
        }
        let calc = ((n as f64) * self.calculator / total).round() as usize;
        let search = (((n as f64) * self.search / total).round() as usize).min(n - calc.min(n));
        let calc = calc.min(n);
        Ok((calc, search, n - calc - search))
    }
}

/// Documents per search index in [`conversations`]: enough that a search returns distractors.
const GROUP_DOCS: std::ops::RangeInclusive<usize> = 4..=12;

/// A scratch folder for the indexes, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Self> {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("ingot-tooluse-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .map_err(|e| Error::Input(format!("creating scratch folder {}: {e}", path.display())))?;
        Ok(Scratch(path))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn bug(what: String) -> Error {
    Error::Input(format!("tool-use generator bug: {what}"))
}

/// The search call for a problem: its subject or name, often with a keyword, sometimes with `k`.
fn search_call(rng: &mut StdRng, p: &SearchProblem) -> Value {
    let keyword = pick(rng, p.keywords);
    let query = match rng.random_range(0..4) {
        0 => p.subject.clone(),
        1 => format!("{} {keyword}", p.names[0]),
        _ => format!("{} {keyword}", p.subject),
    };
    if rng.random_bool(0.25) {
        json!({"query": query, "k": rng.random_range(2..=5)})
    } else {
        json!({"query": query})
    }
}

/// `n` conversations of `split` in the shares of `mix`, every tool result produced by the real
/// tool. Fails only on a bug of this generator (a tool error, a result that is not the item's
/// answer) or when the scratch folder for the search indexes cannot be written.
pub fn conversations(split: Split, seed: u64, n: usize, mix: &Mix) -> Result<Vec<Conversation>> {
    let (n_calc, n_search, n_plain) = mix.counts(n)?;
    let mut kinds: Vec<Kind> = [(Kind::Calculator, n_calc), (Kind::Search, n_search), (Kind::NoTool, n_plain)]
        .iter()
        .flat_map(|&(k, m)| std::iter::repeat_n(k, m))
        .collect();
    kinds.shuffle(&mut stream(split, seed, MIX_STREAM));
    let scratch = Scratch::new()?;
    let calculator_schema = tool_schema(&Calculator);
    // Every search tool has the same schema; this one only describes it.
    let empty = Fact {
        document: "# Notes\n\nNothing here yet.\n".into(),
        file_name: "notes.md".into(),
        item: Item { question: String::new(), answer: String::new() },
    };
    let search_schema = tool_schema(&search_tool(&[empty], &scratch.0.join("schema"))?);
    let mut rng = stream(split, seed, TOOLS_STREAM);

    let mut calc = Vec::with_capacity(n_calc);
    for p in calculator_problems(split, seed, n_calc) {
        let arguments = json!({"expression": p.expression});
        let out = Calculator.call(&arguments).map_err(|e| bug(format!("calculator on `{}`: {e}", p.expression)))?;
        if out != p.item.answer {
            return Err(bug(format!("`{}` gives {out}, but the item's answer is {}", p.expression, p.item.answer)));
        }
        let tools = if rng.random_bool(0.5) {
            vec![calculator_schema.clone()]
        } else {
            vec![calculator_schema.clone(), search_schema.clone()]
        };
        let turns = vec![
            Turn::User(p.item.question),
            Turn::Call { name: "calculator".into(), arguments },
            Turn::Result { name: "calculator".into(), content: out.clone() },
            Turn::Assistant(format!("{} The answer is {out}.", p.reply)),
        ];
        calc.push(Conversation { kind: Kind::Calculator, tools, turns });
    }

    let mut search = Vec::with_capacity(n_search);
    let problems = search_problems(split, seed, n_search);
    let mut start = 0;
    while start < problems.len() {
        let end = (start + rng.random_range(GROUP_DOCS)).min(problems.len());
        let group = &problems[start..end];
        let facts: Vec<Fact> = group.iter().map(|p| p.fact.clone()).collect();
        let dir = scratch.0.join(format!("group-{start}"));
        let tool = search_tool(&facts, &dir)?;
        for p in group {
            let arguments = search_call(&mut rng, p);
            let out = tool.call(&arguments).map_err(|e| bug(format!("search with {arguments}: {e}")))?;
            if !out.contains(&format!("{}:", p.fact.file_name)) || !out.contains(&p.fact.item.answer) {
                return Err(bug(format!("search with {arguments} did not return {}: {out}", p.fact.file_name)));
            }
            let tools = if rng.random_bool(0.5) {
                vec![search_schema.clone()]
            } else {
                vec![calculator_schema.clone(), search_schema.clone()]
            };
            let turns = vec![
                Turn::User(p.fact.item.question.clone()),
                Turn::Call { name: "search".into(), arguments },
                Turn::Result { name: "search".into(), content: out },
                Turn::Assistant(p.reply.clone()),
            ];
            search.push(Conversation { kind: Kind::Search, tools, turns });
        }
        drop(tool);
        let _ = std::fs::remove_dir_all(&dir);
        start = end;
    }

    let mut plain = Vec::with_capacity(n_plain);
    for item in no_tool_items(split, seed, n_plain) {
        let tools = match rng.random_range(0..3) {
            0 => vec![calculator_schema.clone()],
            1 => vec![search_schema.clone()],
            _ => vec![calculator_schema.clone(), search_schema.clone()],
        };
        plain.push(Conversation {
            kind: Kind::NoTool,
            tools,
            turns: vec![Turn::User(item.question), Turn::Assistant(item.answer)],
        });
    }

    let (mut calc, mut search, mut plain) = (calc.into_iter(), search.into_iter(), plain.into_iter());
    let out = kinds
        .iter()
        .filter_map(|k| match k {
            Kind::Calculator => calc.next(),
            Kind::Search => search.next(),
            Kind::NoTool => plain.next(),
        })
        .collect();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ingot_generate::prompting::extract_answer;
    use ingot_tools::search::TOOL_SNIPPET_CHARS;
    use std::collections::{BTreeMap, BTreeSet, HashSet};

    #[test]
    fn items_are_seeded() {
        assert_eq!(calculator_problems(Split::Train, 7, 200), calculator_problems(Split::Train, 7, 200));
        assert_ne!(calculator_items(Split::Train, 7, 50), calculator_items(Split::Train, 8, 50));
        // Item i does not depend on how many were asked for.
        assert_eq!(calculator_items(Split::Eval, 7, 30), calculator_items(Split::Eval, 7, 100)[..30]);
        let docs = |s, seed| -> Vec<(String, String)> {
            search_items(s, seed, 40).into_iter().map(|f| (f.document, f.item.question)).collect()
        };
        assert_eq!(docs(Split::Eval, 3), docs(Split::Eval, 3));
        assert_ne!(docs(Split::Eval, 3), docs(Split::Eval, 4));
        assert_eq!(no_tool_items(Split::Train, 5, 300), no_tool_items(Split::Train, 5, 300));
        assert_ne!(no_tool_items(Split::Train, 5, 30), no_tool_items(Split::Train, 6, 30));
    }

    #[test]
    fn train_and_eval_are_disjoint() {
        let seed = 2026;
        let mut train = HashSet::new();
        let calc = calculator_items(Split::Train, seed, 5000);
        let facts = search_problems(Split::Train, seed, 5000);
        let plain = no_tool_items(Split::Train, seed, 5000);
        train.extend(calc.iter().map(|i| i.question.clone()));
        train.extend(facts.iter().map(|p| p.fact.item.question.clone()));
        train.extend(plain.iter().map(|i| i.question.clone()));
        let train_names: HashSet<String> = facts.iter().flat_map(|p| p.names.iter().cloned()).collect();
        // Eval of the same seed and of another: the partition holds for any pair.
        for eval_seed in [seed, seed + 1] {
            let eval_calc = calculator_items(Split::Eval, eval_seed, 1000);
            let eval_facts = search_problems(Split::Eval, eval_seed, 1000);
            let eval_plain = no_tool_items(Split::Eval, eval_seed, 1000);
            let questions = eval_calc
                .iter()
                .map(|i| &i.question)
                .chain(eval_facts.iter().map(|p| &p.fact.item.question))
                .chain(eval_plain.iter().map(|i| &i.question));
            for q in questions {
                assert!(!train.contains(q), "in both splits: {q}");
            }
            for name in eval_facts.iter().flat_map(|p| &p.names) {
                assert!(!train_names.contains(name), "name in both splits: {name}");
            }
        }
        // Distinct eval questions, so 100 benchmark items are 100 items.
        let eval: HashSet<String> = calculator_items(Split::Eval, seed, 1000).into_iter().map(|i| i.question).collect();
        assert_eq!(eval.len(), 1000);
        let plain: HashSet<String> = no_tool_items(Split::Eval, seed, 100).into_iter().map(|i| i.question).collect();
        assert_eq!(plain.len(), 100);
    }

    #[test]
    fn conversations_have_the_chat_format_and_real_tool_results() {
        let convs = conversations(Split::Train, 5, 300, &Mix::default()).unwrap();
        assert_eq!(convs.len(), 300);
        let again = conversations(Split::Train, 5, 300, &Mix::default()).unwrap();
        assert_eq!(convs, again, "seeded");
        let kinds: BTreeMap<String, usize> = convs.iter().fold(BTreeMap::new(), |mut m, c| {
            *m.entry(format!("{:?}", c.kind)).or_default() += 1;
            m
        });
        assert_eq!(kinds.values().sum::<usize>(), 300);
        assert_eq!(kinds["Calculator"], 135);
        assert_eq!(kinds["Search"], 90);
        let calc = tool_schema(&Calculator);
        for c in &convs {
            let v = to_json(c);
            let tools = v["tools"].as_array().unwrap();
            let tool_names: Vec<&str> = tools.iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
            assert!(tools.iter().all(|t| t["type"] == "function" && t["function"]["parameters"].is_object()));
            if tool_names.contains(&"calculator") {
                assert!(tools.contains(&calc));
            }
            let m = v["messages"].as_array().unwrap();
            assert_eq!(m[0]["role"], "user");
            assert_eq!(m[0]["content"], c.question());
            let last = m.last().unwrap();
            assert_eq!(last["role"], "assistant");
            assert!(last.get("tool_calls").is_none());
            match c.kind {
                Kind::NoTool => {
                    assert_eq!(m.len(), 2);
                    assert!(!last["content"].as_str().unwrap().is_empty());
                }
                Kind::Calculator | Kind::Search => {
                    let name = if c.kind == Kind::Calculator { "calculator" } else { "search" };
                    assert!(tool_names.contains(&name), "the needed tool is offered");
                    assert_eq!(m.len(), 4);
                    assert_eq!(m[1]["role"], "assistant");
                    assert_eq!(m[1]["content"], "");
                    let calls = m[1]["tool_calls"].as_array().unwrap();
                    assert_eq!(calls.len(), 1);
                    assert_eq!(calls[0]["type"], "function");
                    assert_eq!(calls[0]["function"]["name"], name);
                    let args = &calls[0]["function"]["arguments"];
                    assert!(args.is_object());
                    assert_eq!(m[2]["role"], "tool");
                    assert_eq!(m[2]["name"], name);
                    // The tool message is what the real tool returns for the call.
                    let out = m[2]["content"].as_str().unwrap();
                    let final_text = last["content"].as_str().unwrap();
                    if c.kind == Kind::Calculator {
                        assert_eq!(out, Calculator.call(args).unwrap());
                        assert!(final_text.ends_with(&format!("The answer is {out}.")), "{final_text}");
                        assert_eq!(extract_answer(final_text).as_deref(), Some(out));
                    } else {
                        let answer: String =
                            final_text.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).collect();
                        assert!(out.contains(&answer), "{final_text} / {out}");
                        assert!(out.starts_with("[1] "), "{out}");
                    }
                }
            }
        }
    }

    #[test]
    fn calculator_conversations_match_their_items() {
        let mix = Mix { calculator: 1.0, search: 0.0, no_tool: 0.0 };
        let convs = conversations(Split::Eval, 9, 200, &mix).unwrap();
        let items = calculator_items(Split::Eval, 9, 200);
        assert_eq!(convs.len(), items.len());
        for (c, item) in convs.iter().zip(&items) {
            assert_eq!(c.question(), item.question);
            let Turn::Result { content, .. } = &c.turns[2] else { panic!("{:?}", c.turns) };
            assert_eq!(content, &item.answer);
            assert_eq!(extract_answer(c.final_answer()).as_deref(), Some(item.answer.as_str()));
        }
    }

    #[test]
    fn search_answers_are_in_the_tool_output() {
        let mix = Mix { calculator: 0.0, search: 1.0, no_tool: 0.0 };
        let convs = conversations(Split::Eval, 4, 120, &mix).unwrap();
        let facts = search_items(Split::Eval, 4, 120);
        for (c, f) in convs.iter().zip(&facts) {
            assert_eq!(c.question(), f.item.question);
            let Turn::Result { content, .. } = &c.turns[2] else { panic!("{:?}", c.turns) };
            assert!(content.contains(&f.item.answer), "{content}");
            assert!(content.contains(&f.file_name), "{content}");
            assert!(c.final_answer().contains(&f.item.answer), "{}", c.final_answer());
            // The whole document fits in what the tool shows of a passage.
            assert!(f.document.split_whitespace().collect::<Vec<_>>().join(" ").chars().count() <= TOOL_SNIPPET_CHARS);
        }
        // Documents are unique per call, named by kind, and every fact kind occurs.
        let kinds: BTreeSet<&str> = facts.iter().map(|f| f.file_name.split('-').next().unwrap()).collect();
        assert_eq!(kinds, ["lake", "mountain", "river", "school", "town"].into_iter().collect());
    }

    #[test]
    fn mix_is_checked() {
        assert!(Mix { calculator: -1.0, search: 1.0, no_tool: 1.0 }.counts(10).is_err());
        assert!(Mix { calculator: 0.0, search: 0.0, no_tool: 0.0 }.counts(10).is_err());
        assert!(Mix { calculator: f64::NAN, search: 0.0, no_tool: 1.0 }.counts(10).is_err());
        assert_eq!(Mix { calculator: 1.0, search: 1.0, no_tool: 1.0 }.counts(10).unwrap(), (3, 3, 4));
        assert_eq!(Mix { calculator: 1.0, search: 1.0, no_tool: 0.0 }.counts(3).unwrap(), (2, 1, 0));
        assert_eq!(Mix::default().counts(0).unwrap(), (0, 0, 0));
    }
}
