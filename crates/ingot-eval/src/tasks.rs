//! Benchmark tasks with lm-evaluation-harness's prompt formats and preprocessing (v0.4.x task
//! YAMLs and `utils.py`), named as it names them.
//!
//! A multiple-choice document becomes one (context, continuation) request per choice:
//! - most tasks share one context (`query`) and continue with `" " + choice`;
//! - WinoGrande uses *partial* scoring: the contexts differ (the sentence up to the blank, with each
//!   option filled in) and the continuation is the same (the rest of the sentence), so the score
//!   compares how well each option predicts what follows it.
//!
//! Few-shot examples are `text + " " + target` joined by blank lines after an optional description,
//! drawn from a dev split where the data has one (MMLU: its first k, as lm-eval's `first_n`), else
//! from the evaluated split without the document itself, seeded per document.

use std::path::{Path, PathBuf};

use crate::Error;
use rand::seq::index::sample;
use rand::SeedableRng;
use serde_json::Value;

use crate::data::{field, read_arrow_stream, read_jsonl_gz, str_field, str_list};
use crate::Result;

/// What a task measures and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Log-likelihood multiple choice: acc, and acc_norm when `norm`.
    MultipleChoice { norm: bool },
    /// LAMBADA: is the last word the greedy continuation (acc), and perplexity.
    LastWord,
    /// GSM8K: chain-of-thought generation, answer extraction, exact match (and maj@k).
    Generation,
}

/// A task as lm-evaluation-harness names it.
#[derive(Clone, Debug)]
pub struct Task {
    pub name: String,
    pub kind: Kind,
    /// The split evaluated, for the report.
    pub split: &'static str,
    source: Source,
}

#[derive(Clone, Debug)]
enum Source {
    Hellaswag,
    Piqa,
    Arc(&'static str),
    Winogrande,
    Boolq,
    OpenBookQa,
    Sciq,
    Mmlu(String),
    Lambada,
    Gsm8k,
}

/// The tasks `ingot eval` knows, besides `mmlu_<subject>` (57 of them; `mmlu` means all).
pub const TASKS: &[&str] = &[
    "hellaswag",
    "piqa",
    "arc_easy",
    "arc_challenge",
    "winogrande",
    "boolq",
    "openbookqa",
    "sciq",
    "mmlu",
    "lambada_openai",
    "gsm8k_cot",
];

impl Task {
    /// Resolve a task name; `mmlu` expands to its subjects (found in the data folder).
    pub fn resolve(name: &str, root: &Path) -> Result<Vec<Task>> {
        let mc = |name: &str, norm, split, source| Task {
            name: name.into(),
            kind: Kind::MultipleChoice { norm },
            split,
            source,
        };
        Ok(vec![match name {
            "hellaswag" => mc(name, true, "validation", Source::Hellaswag),
            "piqa" => mc(name, true, "validation", Source::Piqa),
            "arc_easy" => mc(name, true, "test", Source::Arc("arc_easy")),
            "arc_challenge" => mc(name, true, "test", Source::Arc("arc_challenge")),
            "winogrande" => mc(name, false, "validation", Source::Winogrande),
            "boolq" => mc(name, false, "validation", Source::Boolq),
            "openbookqa" => mc(name, true, "test", Source::OpenBookQa),
            "sciq" => mc(name, true, "validation", Source::Sciq),
            "mmlu" => {
                return mmlu_subjects(root)?
                    .into_iter()
                    .map(|s| Task::resolve(&format!("mmlu_{s}"), root))
                    .collect::<Result<Vec<_>>>()
                    .map(|v| v.into_iter().flatten().collect())
            }
            "lambada_openai" => {
                Task { name: name.into(), kind: Kind::LastWord, split: "test", source: Source::Lambada }
            }
            "gsm8k_cot" | "gsm8k" => {
                Task { name: "gsm8k_cot".into(), kind: Kind::Generation, split: "test", source: Source::Gsm8k }
            }
            _ => match name.strip_prefix("mmlu_") {
                Some(subject) if mmlu_subjects(root)?.iter().any(|s| s == subject) => {
                    mc(name, false, "test", Source::Mmlu(subject.to_string()))
                }
                _ => {
                    return Err(Error::Input(format!(
                        "unknown task '{name}'; known: {}, and mmlu_<subject> (e.g. mmlu_anatomy)",
                        TASKS.join(", ")
                    )))
                }
            },
        }])
    }

    /// The documents of the evaluated split, as raw JSON rows.
    pub fn documents(&self, root: &Path) -> Result<Vec<Value>> {
        match &self.source {
            Source::Lambada => requests_docs(root, "lambada/bpb_0shot"),
            Source::Gsm8k => requests_docs(root, "gsm8k/gold_bpb_5shot"),
            Source::Arc(task) => requests_docs(root, &format!("{task}/test_rc_5shot")),
            Source::OpenBookQa => requests_docs(root, "openbookqa/test_rc_5shot"),
            Source::Mmlu(s) => read_arrow_stream(&hf(root, &format!("hails/mmlu_no_train/{s}/test"))),
            other => read_arrow_stream(&hf(root, &hf_path(other))),
        }
    }

    /// Documents to draw few-shot examples from, and whether they are the evaluated split itself
    /// (then a document is never its own example).
    pub fn fewshot_pool(&self, root: &Path) -> Result<(Vec<Value>, bool)> {
        match &self.source {
            Source::Mmlu(s) => Ok((read_arrow_stream(&hf(root, &format!("hails/mmlu_no_train/{s}/dev")))?, false)),
            _ => Ok((self.documents(root)?, true)),
        }
    }

    /// lm-eval's description line before the examples.
    pub fn description(&self) -> String {
        match &self.source {
            Source::Mmlu(s) => {
                format!("The following are multiple choice questions (with answers) about {}.\n\n", s.replace('_', " "))
            }
            _ => String::new(),
        }
    }

    /// A multiple-choice document in lm-eval's form.
    pub fn mc_doc(&self, doc: &Value) -> Result<McDoc> {
        let t = self.name.as_str();
        let standard = |query: String, choices: Vec<String>, gold: usize| -> Result<McDoc> {
            if gold >= choices.len() {
                return Err(Error::Corrupt(format!("{t}: gold answer {gold} but only {} choices", choices.len())));
            }
            Ok(McDoc { query: Query::Shared(query), choices, gold })
        };
        match &self.source {
            Source::Hellaswag => {
                let ctx = format!("{} {}", str_field(doc, "ctx_a", t)?, capitalize(str_field(doc, "ctx_b", t)?));
                let query = hellaswag_preprocess(&format!("{}: {ctx}", str_field(doc, "activity_label", t)?));
                let choices = str_list(doc, "endings", t)?.iter().map(|e| hellaswag_preprocess(e)).collect();
                standard(query, choices, parse_index(field(doc, "label", t)?, t)?)
            }
            Source::Piqa => standard(
                format!("Question: {}\nAnswer:", str_field(doc, "goal", t)?),
                vec![str_field(doc, "sol1", t)?.into(), str_field(doc, "sol2", t)?.into()],
                parse_index(field(doc, "label", t)?, t)?,
            ),
            // The test documents come as OLMES renders them: query "Question: {q}\nAnswer:" (lm-eval's
            // ARC format exactly), choices and gold index.
            Source::Arc(_) => standard(
                str_field(doc, "query", t)?.to_string(),
                str_list(doc, "choices", t)?,
                parse_index(field(doc, "gold", t)?, t)?,
            ),
            // lm-eval asks OpenBookQA with the bare question stem.
            Source::OpenBookQa => {
                let query = str_field(doc, "query", t)?;
                let stem =
                    query.strip_prefix("Question: ").and_then(|q| q.strip_suffix("\nAnswer:")).ok_or_else(|| {
                        Error::Corrupt(format!("{t}: query is not \"Question: ...\\nAnswer:\": {query:?}"))
                    })?;
                standard(stem.to_string(), str_list(doc, "choices", t)?, parse_index(field(doc, "gold", t)?, t)?)
            }
            Source::Boolq => {
                let answer = field(doc, "answer", t)?
                    .as_bool()
                    .ok_or_else(|| Error::Corrupt(format!("{t}: 'answer' is not a boolean")))?;
                standard(
                    format!(
                        "{}\nQuestion: {}?\nAnswer:",
                        str_field(doc, "passage", t)?,
                        str_field(doc, "question", t)?
                    ),
                    vec!["no".into(), "yes".into()],
                    answer as usize,
                )
            }
            Source::Sciq => standard(
                format!(
                    "{}\nQuestion: {}\nAnswer:",
                    str_field(doc, "support", t)?.trim_start(),
                    str_field(doc, "question", t)?
                ),
                ["distractor1", "distractor2", "distractor3", "correct_answer"]
                    .iter()
                    .map(|k| str_field(doc, k, t).map(str::to_string))
                    .collect::<Result<_>>()?,
                3,
            ),
            Source::Mmlu(_) => {
                let options = str_list(doc, "choices", t)?;
                if options.len() != 4 {
                    return Err(Error::Corrupt(format!("{t}: expected 4 choices, found {}", options.len())));
                }
                let mut query = str_field(doc, "question", t)?.trim().to_string();
                for (letter, option) in ["A", "B", "C", "D"].iter().zip(&options) {
                    query.push_str(&format!("\n{letter}. {option}"));
                }
                query.push_str("\nAnswer:");
                standard(
                    query,
                    ["A", "B", "C", "D"].map(String::from).to_vec(),
                    parse_index(field(doc, "answer", t)?, t)?,
                )
            }
            Source::Winogrande => {
                let sentence = str_field(doc, "sentence", t)?;
                let blank = sentence
                    .find('_')
                    .ok_or_else(|| Error::Corrupt(format!("{t}: sentence has no blank '_': {sentence}")))?;
                let options = [str_field(doc, "option1", t)?, str_field(doc, "option2", t)?];
                let gold = match str_field(doc, "answer", t)? {
                    "1" => 0,
                    "2" => 1,
                    other => return Err(Error::Corrupt(format!("{t}: answer '{other}' is not 1 or 2"))),
                };
                Ok(McDoc {
                    query: Query::PerChoice {
                        contexts: options.iter().map(|o| format!("{}{o}", &sentence[..blank])).collect(),
                        target: sentence[blank + 1..].trim().to_string(),
                    },
                    choices: options.iter().map(|o| o.to_string()).collect(),
                    gold,
                })
            }
            Source::Lambada => {
                let req = field(doc, "request", t)?;
                Ok(McDoc {
                    query: Query::Shared(str_field(req, "context", t)?.to_string()),
                    choices: vec![str_field(req, "continuation", t)?.trim_start().to_string()],
                    gold: 0,
                })
            }
            Source::Gsm8k => Err(Error::Input(format!("{t} is a generation task, not multiple choice"))),
        }
    }
}

fn hf_path(source: &Source) -> String {
    match source {
        Source::Hellaswag => "hellaswag/none/validation".into(),
        Source::Piqa => "piqa/plain_text/validation".into(),
        Source::Winogrande => "winogrande/winogrande_xl/validation".into(),
        Source::Boolq => "boolq/none/validation".into(),
        Source::Sciq => "sciq/none/validation".into(),
        Source::Mmlu(s) => format!("hails/mmlu_no_train/{s}/test"),
        Source::Lambada | Source::Gsm8k | Source::Arc(_) | Source::OpenBookQa => {
            unreachable!("request-file tasks have no HF dataset")
        }
    }
}

fn hf(root: &Path, path: &str) -> PathBuf {
    root.join("hf_datasets").join(path).join("data-00000-of-00001.arrow")
}

/// The `doc` of every request in an OLMES request file, once per document (a file repeats the
/// document for each of its requests; ids from 1,000,000 on are unconditioned requests, skipped).
fn requests_docs(root: &Path, variant: &str) -> Result<Vec<Value>> {
    let rows = read_jsonl_gz(&root.join("oe_eval_tasks").join(variant).join("requests.jsonl.gz"))?;
    let mut docs = Vec::new();
    let mut last_id = None;
    for row in rows {
        let id = row.get("doc_id").and_then(Value::as_u64);
        if id.is_some() && id == last_id || id.is_some_and(|i| i >= 1_000_000) {
            continue;
        }
        last_id = id;
        let mut doc = row.get("doc").cloned().unwrap_or(Value::Null);
        if let (Some(obj), Some(req)) = (doc.as_object_mut(), row.get("request")) {
            obj.insert("request".into(), req.clone());
        }
        docs.push(doc);
    }
    Ok(docs)
}

/// MMLU's subjects, from the data folder's layout.
pub fn mmlu_subjects(root: &Path) -> Result<Vec<String>> {
    let dir = root.join("hf_datasets/hails/mmlu_no_train");
    let entries = std::fs::read_dir(&dir).map_err(|e| {
        Error::Core(ingot_core::Error::NotFound {
            what: format!("MMLU data ({e})"),
            path: dir.clone(),
            hint: "; fetch it with `scripts/fetch-assets eval`".into(),
        })
    })?;
    let mut subjects: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("test").is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    subjects.sort();
    Ok(subjects)
}

/// How a multiple-choice document is asked.
#[derive(Clone, Debug, PartialEq)]
pub enum Query {
    /// One context for every choice; the continuation is `" " + choice`.
    Shared(String),
    /// One context per choice, all continued by `" " + target` (WinoGrande's partial scoring).
    PerChoice { contexts: Vec<String>, target: String },
}

/// A multiple-choice document: lm-eval's (query, choices, gold).
#[derive(Clone, Debug, PartialEq)]
pub struct McDoc {
    pub query: Query,
    pub choices: Vec<String>,
    pub gold: usize,
}

impl McDoc {
    /// The (context, continuation) request per choice, after `prefix` (description and examples).
    pub fn requests(&self, prefix: &str) -> Vec<(String, String)> {
        match &self.query {
            Query::Shared(q) => self.choices.iter().map(|c| (format!("{prefix}{q}"), format!(" {c}"))).collect(),
            Query::PerChoice { contexts, target } => {
                contexts.iter().map(|c| (format!("{prefix}{c}"), format!(" {target}"))).collect()
            }
        }
    }

    /// This document as a solved few-shot example.
    pub fn as_example(&self) -> String {
        match &self.query {
            Query::Shared(q) => format!("{q} {}", self.choices[self.gold]),
            Query::PerChoice { contexts, target } => format!("{} {target}", contexts[self.gold]),
        }
    }

    /// The context and the correct continuation, as separate chat turns (user, assistant).
    pub fn as_turns(&self) -> Result<(String, String)> {
        match &self.query {
            Query::Shared(q) => Ok((q.clone(), self.choices[self.gold].clone())),
            Query::PerChoice { .. } => {
                Err(Error::Input("partial scoring (winogrande) cannot be put in chat turns; drop --chat".into()))
            }
        }
    }
}

/// Indices of `k` few-shot examples for document `index`: the first k of a dev split, or k drawn
/// from the evaluated split without `index`, seeded by (seed, index) so any subset of documents
/// gets the same prompts.
pub fn fewshot_indices(pool_len: usize, same_split: bool, index: usize, k: usize, seed: u64) -> Result<Vec<usize>> {
    let available = pool_len - usize::from(same_split && index < pool_len);
    if k > available {
        return Err(Error::Input(format!("{k} few-shot examples asked for but only {available} are available")));
    }
    if !same_split {
        return Ok((0..k).collect());
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    Ok(sample(&mut rng, available, k).into_iter().map(|i| if i >= index { i + 1 } else { i }).collect())
}

/// HellaSwag's `preprocess` (lm-eval tasks/hellaswag/utils.py): strip, " [title]" becomes ". ",
/// remaining `[...]` tags go (non-greedy, not across lines, as Python's `re.sub("\\[.*?\\]", "")`),
/// and double spaces become single.
pub fn hellaswag_preprocess(text: &str) -> String {
    let text = text.trim().replace(" [title]", ". ");
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        match after.find([']', '\n']) {
            Some(close) if after.as_bytes()[close] == b']' => {
                out.push_str(&rest[..open]);
                rest = &after[close + 1..];
            }
            _ => {
                out.push_str(&rest[..open + 1]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out.replace("  ", " ")
}

/// Python's `str.capitalize`: first character upper case, the rest lower case.
pub fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars.flat_map(char::to_lowercase)).collect(),
        None => String::new(),
    }
}

/// A label stored as an integer or a string of digits.
fn parse_index(v: &Value, task: &str) -> Result<usize> {
    v.as_u64()
        .map(|n| n as usize)
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .ok_or_else(|| Error::Corrupt(format!("{task}: label {v} is not an index")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(name: &str) -> Task {
        Task::resolve(name, Path::new("/nonexistent")).unwrap().remove(0)
    }

    #[test]
    fn hellaswag_matches_lm_eval_preprocessing() {
        assert_eq!(
            hellaswag_preprocess("  How to cook [title] Boil water. [step] Add  salt "),
            "How to cook. Boil water. Add salt"
        );
        assert_eq!(hellaswag_preprocess("a [b] c [unclosed"), "a c [unclosed");
        assert_eq!(capitalize("he IS"), "He is");
        let doc = json!({"ind": 24, "activity_label": "Roof shingle removal", "ctx_a": "A man is sitting on a roof.",
            "ctx_b": "he", "endings": ["is using wrap.", "starts pulling up roofing on a roof."], "label": "1"});
        let d = task("hellaswag").mc_doc(&doc).unwrap();
        assert_eq!(d.query, Query::Shared("Roof shingle removal: A man is sitting on a roof. He".into()));
        assert_eq!(d.gold, 1);
        assert_eq!(d.requests("")[1].1, " starts pulling up roofing on a roof.");
    }

    #[test]
    fn formats_of_each_task() {
        let arc = json!({"query": "Question: Q?\nAnswer:", "choices": ["x", "y"], "gold": 1});
        let d = task("arc_easy").mc_doc(&arc).unwrap();
        assert_eq!((d.requests("")[0].0.as_str(), d.gold), ("Question: Q?\nAnswer:", 1));
        let d = task("openbookqa").mc_doc(&arc).unwrap();
        assert_eq!(d.requests("")[1], ("Q?".into(), " y".into()));
        let boolq = json!({"question": "is it", "passage": "P", "answer": true});
        let d = task("boolq").mc_doc(&boolq).unwrap();
        assert_eq!(d.requests("")[1], ("P\nQuestion: is it?\nAnswer:".into(), " yes".into()));
        let sciq = json!({"question": "Q", "support": "  S", "distractor1": "a", "distractor2": "b", "distractor3": "c", "correct_answer": "d"});
        let d = task("sciq").mc_doc(&sciq).unwrap();
        assert_eq!((d.requests("")[3].0.as_str(), d.gold), ("S\nQuestion: Q\nAnswer:", 3));
        let wino = json!({"sentence": "Sarah beat Maria so _ won the prize.", "option1": "Sarah", "option2": "Maria", "answer": "1"});
        let d = task("winogrande").mc_doc(&wino).unwrap();
        assert_eq!(
            d.requests("EX\n\n"),
            vec![
                ("EX\n\nSarah beat Maria so Sarah".into(), " won the prize.".into()),
                ("EX\n\nSarah beat Maria so Maria".into(), " won the prize.".into())
            ]
        );
        assert_eq!(d.as_example(), "Sarah beat Maria so Sarah won the prize.");
        let bad = json!({"query": "Q?", "choices": ["x"], "gold": 3});
        assert!(task("arc_easy").mc_doc(&bad).unwrap_err().to_string().contains("gold answer 3"));
        assert!(task("openbookqa").mc_doc(&bad).unwrap_err().to_string().contains("Question: ..."));
    }

    #[test]
    fn unknown_task_names_the_known_ones() {
        let e = Task::resolve("hellaswagg", Path::new("/nonexistent")).unwrap_err().to_string();
        assert!(e.contains("unknown task 'hellaswagg'") && e.contains("arc_easy"), "{e}");
    }

    #[test]
    fn fewshot_draws_are_seeded_and_exclude_the_document() {
        for index in 0..20 {
            let a = fewshot_indices(20, true, index, 5, 7).unwrap();
            assert_eq!(a, fewshot_indices(20, true, index, 5, 7).unwrap());
            assert!(!a.contains(&index) && a.iter().all(|&i| i < 20));
            let mut u = a.clone();
            u.sort();
            u.dedup();
            assert_eq!(u.len(), 5);
        }
        assert_ne!(fewshot_indices(100, true, 3, 5, 7).unwrap(), fewshot_indices(100, true, 3, 5, 8).unwrap());
        assert_eq!(fewshot_indices(10, false, 3, 3, 7).unwrap(), vec![0, 1, 2]);
        assert!(fewshot_indices(5, true, 0, 5, 7).is_err());
    }
}
