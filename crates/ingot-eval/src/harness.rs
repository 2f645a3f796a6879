//! Running tasks: building each document's requests, scoring them, and the metrics, computed as
//! lm-evaluation-harness computes them.
//!
//! - acc: the choice with the highest log-likelihood (ties go to the first) is the gold one.
//! - acc_norm: the same after dividing each log-likelihood by its choice's length in characters
//!   (lm-eval's `len(choice)`; its docs call it byte-length normalisation, and the two agree on
//!   ASCII text).
//! - acc_norm_tokens: the same per token of the choice's continuation (the normalisation of
//!   `llama-perplexity --hellaswag` and lighteval's `LogProbTokenNorm`), reported beside acc_norm
//!   so scores compare item by item with those tools; samples keep each choice's token count.
//! - LAMBADA acc: every target token is the greedy choice; perplexity = exp(−mean log-likelihood).
//! - GSM8K: exact match of the extracted answer ("So the answer is N", else the last number).
//! - Standard error of a mean of per-document scores: sample standard deviation / √n.
//!
//! Every document's raw result goes to a samples log as soon as it is scored, so an interrupted run
//! picks up where it stopped (see [`SampleLog`]).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::Error;
use ingot_generate::prompting::{extract_answer, majority};
use ingot_generate::{generate_batch, GenerateParams, Pipeline, PromptCache, SamplingParams};
use ingot_tokenizer::{Message, Prompt};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::data::{field, str_field};
use crate::loglik::score_requests;
use crate::tasks::{fewshot_indices, Kind, McDoc, Task};
use crate::Result;

/// How tasks are run (the same for every task of one `ingot eval`).
#[derive(Clone, Debug, Serialize)]
pub struct EvalConfig {
    /// Few-shot examples per document.
    pub shots: usize,
    /// Evaluate only the first N documents of each task.
    pub limit: Option<usize>,
    /// Seed for few-shot draws and sampling.
    pub seed: u64,
    /// Put examples and question in the model's chat template (user/assistant turns).
    pub chat: bool,
    /// GSM8K: most tokens per answer.
    pub max_gen_tokens: usize,
    /// GSM8K: sampled chains for maj@k (0 = greedy only).
    pub maj_k: usize,
    /// GSM8K: temperature of the sampled chains.
    pub temperature: f64,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self { shots: 0, limit: None, seed: 1234, chat: false, max_gen_tokens: 256, maj_k: 0, temperature: 0.7 }
    }
}

/// One reported number.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Metric {
    pub task: String,
    pub metric: String,
    pub value: f64,
    pub stderr: Option<f64>,
    pub n: usize,
}

/// What a task run produced.
#[derive(Clone, Debug, Serialize)]
pub struct TaskResult {
    pub task: String,
    pub split: String,
    pub n: usize,
    pub metrics: Vec<Metric>,
    /// Seconds spent scoring the task's documents, summed over every run that added to its
    /// samples log (a resumed run keeps the time of the runs before it).
    pub seconds: f64,
    /// Documents scored per second of that time (0 when no document carries a time: logs
    /// written before times were recorded).
    pub docs_per_sec: f64,
}

/// A scored document, as written to the samples log, with the seconds it took to score (its share
/// of a batch scored side by side; 0 in logs from before times were kept).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Sample {
    Choice {
        doc: usize,
        gold: usize,
        loglik: Vec<f64>,
        greedy: Vec<bool>,
        lens: Vec<usize>,
        /// Tokens of each choice's continuation (absent in logs written before it was kept).
        #[serde(default)]
        tokens: Vec<usize>,
        #[serde(default)]
        seconds: f64,
    },
    Generated {
        doc: usize,
        target: String,
        greedy: String,
        answer: Option<String>,
        strict: Option<String>,
        votes: Vec<Option<String>>,
        #[serde(default)]
        seconds: f64,
    },
}

impl Sample {
    fn doc(&self) -> usize {
        match self {
            Sample::Choice { doc, .. } | Sample::Generated { doc, .. } => *doc,
        }
    }

    fn seconds(&self) -> f64 {
        match self {
            Sample::Choice { seconds, .. } | Sample::Generated { seconds, .. } => *seconds,
        }
    }

    fn with_seconds(mut self, secs: f64) -> Self {
        match &mut self {
            Sample::Choice { seconds, .. } | Sample::Generated { seconds, .. } => *seconds = secs,
        }
        self
    }
}

/// Scoring time and rate of a task from its samples: the time each document took when it was
/// scored, in whichever run that was, so resuming neither loses the earlier runs' time nor
/// counts resumed documents as free.
pub fn timing(samples: &[Sample]) -> (f64, f64) {
    // Summed in document order: documents finish in any order when scored in parallel, and a
    // float sum in another order differs in its last bits between a run and its resumption.
    let mut by_doc: Vec<(usize, f64)> = samples.iter().map(|s| (s.doc(), s.seconds())).collect();
    by_doc.sort_by_key(|&(doc, _)| doc);
    let seconds: f64 = by_doc.iter().map(|&(_, secs)| secs).sum();
    let timed = samples.iter().filter(|s| s.seconds() > 0.0).count();
    (seconds, if seconds > 0.0 { timed as f64 / seconds } else { 0.0 })
}

/// Append-only JSON Lines log of scored documents, one file per task, headed by the settings it
/// was made with. Reopening with the same settings resumes; with different settings it refuses
/// (mixing them would make a number that means nothing). A torn last line (a crash mid-write) is
/// dropped and rescored.
pub struct SampleLog {
    /// None: keep results in memory only (no --out).
    file: Option<File>,
    done: HashMap<usize, Sample>,
}

impl SampleLog {
    pub fn open(path: &Path, settings: &Value) -> Result<Self> {
        let io = |e: std::io::Error| Error::Input(format!("samples log {}: {e}", path.display()));
        let mut done = HashMap::new();
        let mut good_len = 0u64;
        let exists = path.exists();
        if exists {
            let mut reader = BufReader::new(File::open(path).map_err(io)?);
            let mut line = String::new();
            let mut first = true;
            loop {
                line.clear();
                let n = reader.read_line(&mut line).map_err(io)?;
                if n == 0 || !line.ends_with('\n') {
                    break; // end, or a torn last line
                }
                if first {
                    let header: Value = serde_json::from_str(&line).map_err(|e| {
                        Error::Input(format!(
                            "samples log {} has a damaged header ({}); delete it",
                            path.display(),
                            ingot_core::text::error_text(&e)
                        ))
                    })?;
                    if &header["settings"] != settings {
                        return Err(Error::Input(format!(
                            "{} holds results made with other settings ({}); use another --out folder or delete it",
                            path.display(),
                            header["settings"]
                        )));
                    }
                    first = false;
                } else {
                    let Ok(sample) = serde_json::from_str::<Sample>(&line) else { break };
                    done.insert(sample.doc(), sample);
                }
                good_len += n as u64;
            }
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let mut file = OpenOptions::new().create(true).write(true).truncate(false).open(path).map_err(io)?;
        file.set_len(good_len).map_err(io)?;
        file.seek(SeekFrom::End(0)).map_err(io)?;
        if good_len == 0 {
            writeln!(file, "{}", json!({ "settings": settings })).map_err(io)?;
        }
        Ok(Self { file: Some(file), done })
    }

    /// A log that keeps nothing on disk (no --out).
    pub fn in_memory() -> Self {
        Self { file: None, done: HashMap::new() }
    }

    fn get(&self, doc: usize) -> Option<&Sample> {
        self.done.get(&doc)
    }

    fn record(&mut self, sample: Sample) -> Result<()> {
        if let Some(file) = &mut self.file {
            let line = serde_json::to_string(&sample).map_err(|e| Error::Input(e.to_string()))?;
            writeln!(file, "{line}")
                .and_then(|_| file.flush())
                .map_err(|e| Error::Input(format!("writing the samples log: {e}")))?;
        }
        self.done.insert(sample.doc(), sample);
        Ok(())
    }
}

/// The settings a samples log is tied to.
pub fn log_settings(model: &Path, task: &Task, cfg: &EvalConfig) -> Value {
    let model_bytes = std::fs::metadata(model).map(|m| m.len()).unwrap_or(0);
    json!({
        "model": model.display().to_string(),
        "model_bytes": model_bytes,
        "task": task.name,
        "split": task.split,
        "shots": cfg.shots,
        "seed": cfg.seed,
        "chat": cfg.chat,
        "max_gen_tokens": cfg.max_gen_tokens,
        "maj_k": cfg.maj_k,
        "temperature": cfg.temperature,
    })
}

/// Where a task's samples log lives under an output folder.
pub fn log_path(out: &Path, task: &Task) -> PathBuf {
    out.join("samples").join(format!("{}.jsonl", task.name))
}

/// lm-eval's `_encode_pair`: trailing spaces of the context move to the continuation; the
/// continuation's tokens are those of context+continuation past the context's own tokens.
pub fn encode_pair(p: &Pipeline, context: &Prompt, continuation: &str) -> Result<(Vec<u32>, Vec<u32>)> {
    let (mut trimmed, kept) = (context.clone(), context.as_str().trim_end_matches(' ').len());
    trimmed.truncate(kept);
    let mut whole = trimmed.clone();
    whole.push_text(&format!("{}{continuation}", &context.as_str()[kept..]));
    let whole = p.tokenizer.encode_prompt(&whole, false)?;
    let ctx = p.tokenizer.encode_prompt(&trimmed, false)?;
    let cont = whole.get(ctx.len().min(whole.len())..).unwrap_or_default().to_vec();
    Ok((ctx, cont))
}

/// Fit context + continuation into the model's window as lm-eval does: keep the last
/// `max_len + 1` tokens (the final one is never fed), dropping from the context's front.
fn fit(ctx: Vec<u32>, cont: Vec<u32>, max_len: usize) -> Result<(Vec<u32>, Vec<u32>)> {
    if cont.len() > max_len {
        return Err(Error::Input(format!(
            "a continuation of {} tokens exceeds the context length {max_len}",
            cont.len()
        )));
    }
    let total = ctx.len() + cont.len();
    let ctx = if total > max_len + 1 { ctx[total - max_len - 1..].to_vec() } else { ctx };
    Ok((ctx, cont))
}

/// Progress callback: (documents done, documents total).
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize);

/// Run one task.
pub fn run_task(
    p: &Pipeline,
    task: &Task,
    root: &Path,
    cfg: &EvalConfig,
    log: &mut SampleLog,
    progress: Progress,
) -> Result<TaskResult> {
    let docs = task.documents(root)?;
    let n = cfg.limit.map_or(docs.len(), |l| l.min(docs.len()));
    if n == 0 {
        return Err(Error::Input(format!("{}: no documents to evaluate", task.name)));
    }
    if task.kind == Kind::LastWord && cfg.shots > 0 {
        return Err(Error::Input(format!("{} is zero-shot only (lm-eval has no few-shot split for it)", task.name)));
    }
    let samples = match task.kind {
        Kind::Generation => run_generation(p, task, &docs[..n], cfg, log, progress)?,
        _ => run_choices(p, task, root, &docs, n, cfg, log, progress)?,
    };
    let (seconds, docs_per_sec) = timing(&samples);
    Ok(TaskResult {
        task: task.name.clone(),
        split: task.split.to_string(),
        n,
        metrics: metrics(task, &samples),
        seconds,
        docs_per_sec,
    })
}

#[allow(clippy::too_many_arguments)]
fn run_choices(
    p: &Pipeline,
    task: &Task,
    root: &Path,
    docs: &[Value],
    n: usize,
    cfg: &EvalConfig,
    log: &mut SampleLog,
    progress: Progress,
) -> Result<Vec<Sample>> {
    let (pool, same_split) = if cfg.shots > 0 { task.fewshot_pool(root)? } else { (Vec::new(), true) };
    let pool_docs: Vec<McDoc> = pool.iter().map(|d| task.mc_doc(d)).collect::<Result<_>>()?;
    let max_len = p.model.context_length();
    let score = |i: usize| -> Result<Sample> {
        let doc = task.mc_doc(&docs[i])?;
        let shots: Vec<&McDoc> = fewshot_indices(pool_docs.len(), same_split, i, cfg.shots, cfg.seed)?
            .into_iter()
            .map(|j| &pool_docs[j])
            .collect();
        let pairs = if cfg.chat { chat_requests(p, task, &doc, &shots)? } else { text_requests(task, &doc, &shots) };
        let requests = pairs
            .iter()
            .map(|(c, x)| encode_pair(p, c, x).and_then(|(c, x)| fit(c, x, max_len)))
            .collect::<Result<Vec<_>>>()?;
        let scores = score_requests(&p.model, &requests, &p.device)?;
        Ok(Sample::Choice {
            doc: i,
            gold: doc.gold,
            loglik: scores.iter().map(|s| s.logprob).collect(),
            greedy: scores.iter().map(|s| s.is_greedy).collect(),
            lens: doc.choices.iter().map(|c| c.chars().count()).collect(),
            tokens: scores.iter().map(|s| s.n_tokens).collect(),
            seconds: 0.0,
        })
    };
    // Documents run side by side, one per worker thread: at these sizes (a few dozen tokens per
    // forward pass) splitting one pass over two cores gains ~20%, two passes at once ~100%.
    let pending: Vec<usize> = (0..n).filter(|&i| log.get(i).is_none()).collect();
    let workers = rayon::current_num_threads().max(1);
    let mut done = n - pending.len();
    progress(done, n);
    for chunk in pending.chunks(2 * workers) {
        let started = Instant::now();
        let samples: Vec<Result<Sample>> = chunk.par_iter().map(|&i| score(i)).collect();
        let share = started.elapsed().as_secs_f64() / chunk.len() as f64;
        for sample in samples {
            log.record(sample?.with_seconds(share))?;
            done += 1;
        }
        progress(done, n);
    }
    (0..n).map(|i| log.get(i).cloned().ok_or_else(|| Error::Input(format!("document {i} was not scored")))).collect()
}

fn text_requests(task: &Task, doc: &McDoc, shots: &[&McDoc]) -> Vec<(Prompt, String)> {
    let mut prefix = task.description();
    for s in shots {
        prefix.push_str(&s.as_example());
        prefix.push_str("\n\n");
    }
    doc.requests(&prefix).into_iter().map(|(c, x)| (Prompt::text_only(c), x)).collect()
}

/// Examples as user/assistant turns (lm-eval's `--apply_chat_template --fewshot_as_multiturn`),
/// the question as the last user turn; each choice continues the assistant's reply.
fn chat_requests(p: &Pipeline, task: &Task, doc: &McDoc, shots: &[&McDoc]) -> Result<Vec<(Prompt, String)>> {
    let mut messages = Vec::new();
    let description = task.description();
    for (k, s) in shots.iter().enumerate() {
        let (q, a) = s.as_turns()?;
        let q = if k == 0 { format!("{description}{q}") } else { q };
        messages.push(Message::user(q));
        messages.push(Message::assistant(a));
    }
    let (q, _) = doc.as_turns()?;
    messages.push(Message::user(if shots.is_empty() { format!("{description}{q}") } else { q }));
    let context = p.chat_prompt(&messages)?;
    Ok(doc.choices.iter().map(|c| (context.clone(), c.clone())).collect())
}

/// GSM8K's eight chain-of-thought exemplars (Wei et al.), as the data ships them: blocks of
/// "Question: ...\nAnswer: ... So the answer is N." at the head of each request's context.
fn gsm8k_exemplars(doc: &Value) -> Result<Vec<(String, String)>> {
    let t = "gsm8k_cot";
    let context = str_field(field(doc, "request", t)?, "context", t)?;
    let mut out = Vec::new();
    for block in context.split("\n\n") {
        if let (Some(q), Some((_, a))) = (block.strip_prefix("Question: "), block.split_once("\nAnswer: ")) {
            let q = q.split_once("\nAnswer: ").map_or(q, |(q, _)| q);
            out.push((q.to_string(), a.to_string()));
        }
    }
    if out.is_empty() {
        return Err(Error::Corrupt("gsm8k_cot: no exemplars found in the request file".into()));
    }
    Ok(out)
}

/// The strict answer: the number after "the answer is" (lm-eval's strict-match regex).
pub fn strict_answer(text: &str) -> Option<String> {
    let lower = text.to_lowercase();
    let pos = lower.rfind("the answer is")?;
    extract_answer(&text[pos..])
}

fn run_generation(
    p: &Pipeline,
    task: &Task,
    docs: &[Value],
    cfg: &EvalConfig,
    log: &mut SampleLog,
    progress: Progress,
) -> Result<Vec<Sample>> {
    let t = task.name.as_str();
    let exemplars = gsm8k_exemplars(&docs[0])?;
    if cfg.shots > exemplars.len() {
        return Err(Error::Input(format!(
            "{t} ships {} chain-of-thought exemplars; --shots {} is too many",
            exemplars.len(),
            cfg.shots
        )));
    }
    let shots = &exemplars[..cfg.shots];
    let greedy_params = GenerateParams {
        max_tokens: cfg.max_gen_tokens,
        sampling: SamplingParams { temperature: 0.0, seed: cfg.seed, ..SamplingParams::default() },
        stop: ["Question:", "</s>", "<|im_end|>", "\n\n"].map(String::from).to_vec(),
        ..GenerateParams::default()
    };
    // The examples are the same for every question: their keys and values are computed once.
    let shared = if cfg.chat {
        None
    } else {
        let text: String = shots.iter().map(|(q, a)| format!("Question: {q}\nAnswer: {a}\n\n")).collect();
        Some(PromptCache::new(&p.model, &p.tokenizer.encode(&text, false)?, &p.device)?)
    };
    let mut out = Vec::with_capacity(docs.len());
    for (i, doc) in docs.iter().enumerate() {
        if let Some(s) = log.get(i) {
            out.push(s.clone());
            progress(i + 1, docs.len());
            continue;
        }
        let started = Instant::now();
        let question = str_field(doc, "question", t)?;
        let target = field(doc, "short_answer", t)?
            .as_str()
            .map(str::to_string)
            .or_else(|| str_field(doc, "answer", t).ok().and_then(|a| a.rsplit("#### ").next().map(str::to_string)))
            .ok_or_else(|| Error::Corrupt(format!("{t}: document {i} has no answer")))?;
        let prompt = if cfg.chat {
            let mut messages = Vec::new();
            for (q, a) in shots {
                messages.push(Message::user(format!("Question: {q}")));
                messages.push(Message::assistant(a.clone()));
            }
            messages.push(Message::user(format!("Question: {question}")));
            p.chat_prompt(&messages)?
        } else {
            let mut s = String::new();
            for (q, a) in shots {
                s.push_str(&format!("Question: {q}\nAnswer: {a}\n\n"));
            }
            s.push_str(&format!("Question: {question}\nAnswer:"));
            Prompt::text_only(s)
        };
        let ids = p.tokenizer.encode_prompt(&prompt, false)?;
        // Row 0 greedy, rows 1..=k sampled: one prefill and one batched decode for all of them.
        let mut rows = vec![greedy_params.sampling.clone()];
        rows.extend((0..cfg.maj_k).map(|k| SamplingParams {
            temperature: cfg.temperature,
            seed: cfg.seed.wrapping_add((i * 1000 + k) as u64),
            ..SamplingParams::default()
        }));
        let mut gens = generate_batch(&p.model, &p.tokenizer, &ids, &greedy_params, &rows, shared.as_ref(), &p.device)?
            .into_iter();
        let g = gens.next().ok_or_else(|| Error::Input("no generation".into()))?;
        let votes: Vec<Option<String>> = gens.map(|s| extract_answer(&s.text)).collect();
        let sample = Sample::Generated {
            doc: i,
            target: normalise(&target),
            answer: extract_answer(&g.text),
            strict: strict_answer(&g.text),
            greedy: g.text,
            votes,
            seconds: started.elapsed().as_secs_f64(),
        };
        log.record(sample.clone())?;
        out.push(sample);
        progress(i + 1, docs.len());
    }
    Ok(out)
}

fn normalise(answer: &str) -> String {
    extract_answer(answer).unwrap_or_else(|| answer.trim().to_string())
}

/// Mean and standard error (sample standard deviation / √n) of per-document scores.
pub fn mean_stderr(xs: &[f64]) -> (f64, Option<f64>) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n.max(1.0);
    if xs.len() < 2 {
        return (mean, None);
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, Some((var / n).sqrt()))
}

/// First index of the maximum (numpy's argmax on ties).
fn argmax(xs: impl Iterator<Item = f64>) -> usize {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, x) in xs.enumerate() {
        if x > best.1 {
            best = (i, x);
        }
    }
    best.0
}

/// acc and acc_norm of one multiple-choice document.
pub fn choice_scores(gold: usize, loglik: &[f64], lens: &[usize]) -> (f64, f64) {
    let acc = argmax(loglik.iter().copied()) == gold;
    let norm = argmax(loglik.iter().zip(lens).map(|(l, &n)| l / n.max(1) as f64)) == gold;
    (acc as u8 as f64, norm as u8 as f64)
}

/// acc_norm_tokens of one multiple-choice document: log-likelihood per continuation token; None
/// when the sample holds no token counts (a log from before they were kept).
pub fn acc_norm_tokens(gold: usize, loglik: &[f64], tokens: &[usize]) -> Option<f64> {
    (tokens.len() == loglik.len() && !tokens.is_empty())
        .then(|| (argmax(loglik.iter().zip(tokens).map(|(l, &n)| l / n.max(1) as f64)) == gold) as u8 as f64)
}

/// The task's metrics from its samples.
pub fn metrics(task: &Task, samples: &[Sample]) -> Vec<Metric> {
    let n = samples.len();
    let metric = |name: &str, xs: Vec<f64>| {
        let (value, stderr) = mean_stderr(&xs);
        Metric { task: task.name.clone(), metric: name.into(), value, stderr, n }
    };
    let choices = || {
        samples.iter().filter_map(|s| match s {
            Sample::Choice { gold, loglik, greedy, lens, .. } => Some((*gold, loglik, greedy, lens)),
            _ => None,
        })
    };
    match task.kind {
        Kind::MultipleChoice { norm } => {
            let (acc, acc_norm): (Vec<f64>, Vec<f64>) = choices().map(|(g, l, _, n)| choice_scores(g, l, n)).unzip();
            let mut out = vec![metric("acc", acc)];
            if norm {
                out.push(metric("acc_norm", acc_norm));
                let per_token: Option<Vec<f64>> = samples
                    .iter()
                    .map(|s| match s {
                        Sample::Choice { gold, loglik, tokens, .. } => acc_norm_tokens(*gold, loglik, tokens),
                        _ => None,
                    })
                    .collect();
                if let Some(xs) = per_token {
                    out.push(metric("acc_norm_tokens", xs));
                }
            }
            out
        }
        Kind::LastWord => {
            let acc = choices().map(|(_, _, g, _)| g[0] as u8 as f64).collect();
            let ll: Vec<f64> = choices().map(|(_, l, _, _)| l[0]).collect();
            let mean_ll = ll.iter().sum::<f64>() / ll.len().max(1) as f64;
            vec![
                metric("acc", acc),
                Metric {
                    task: task.name.clone(),
                    metric: "perplexity".into(),
                    value: (-mean_ll).exp(),
                    stderr: None,
                    n,
                },
            ]
        }
        Kind::Generation => {
            let gen = || {
                samples.iter().filter_map(|s| match s {
                    Sample::Generated { target, answer, strict, votes, .. } => Some((target, answer, strict, votes)),
                    _ => None,
                })
            };
            let hit = |a: &Option<String>, t: &String| (a.as_deref() == Some(t.as_str())) as u8 as f64;
            let mut out = vec![
                metric("exact_match,strict-match", gen().map(|(t, _, s, _)| hit(s, t)).collect()),
                metric("exact_match,flexible-extract", gen().map(|(t, a, _, _)| hit(a, t)).collect()),
            ];
            let k = gen().map(|(_, _, _, v)| v.len()).max().unwrap_or(0);
            if k > 0 {
                let maj = gen().map(|(t, _, _, v)| hit(&majority(v).first().map(|(a, _)| a.clone()), t)).collect();
                out.push(metric(&format!("maj@{k},flexible-extract"), maj));
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acc_and_acc_norm_can_disagree() {
        // Choice 0 is short and likely in total; choice 1 is long with a better per-character
        // log-likelihood. acc picks 0, acc_norm picks 1.
        let loglik = [-4.0, -10.0];
        let lens = [2, 20];
        assert_eq!(choice_scores(0, &loglik, &lens), (1.0, 0.0));
        assert_eq!(choice_scores(1, &loglik, &lens), (0.0, 1.0));
        // Ties go to the first choice, as numpy's argmax.
        assert_eq!(choice_scores(0, &[-1.0, -1.0], &[1, 1]), (1.0, 1.0));
        // Per token, as llama-perplexity --hellaswag: 20 characters may be 2 tokens (-5 a token)
        // against 1 (-4): acc_norm_tokens picks choice 0 where acc_norm picked 1.
        assert_eq!(acc_norm_tokens(0, &loglik, &[1, 2]), Some(1.0));
        assert_eq!(acc_norm_tokens(1, &loglik, &[1, 4]), Some(1.0));
        assert_eq!(acc_norm_tokens(0, &loglik, &[]), None, "an old log without token counts");
    }

    #[test]
    fn acc_norm_tokens_is_reported_beside_acc_norm() {
        let task = Task::resolve("hellaswag", Path::new("/nowhere")).unwrap().remove(0);
        let s = |gold, tokens: Vec<usize>| Sample::Choice {
            doc: 0,
            gold,
            loglik: vec![-4.0, -10.0],
            greedy: vec![false, false],
            lens: vec![2, 20],
            tokens,
            seconds: 0.0,
        };
        let names = |m: Vec<Metric>| m.into_iter().map(|m| (m.metric, m.value)).collect::<Vec<_>>();
        let m = names(metrics(&task, &[s(1, vec![1, 4]), s(1, vec![1, 2])]));
        assert_eq!(m, [("acc".to_string(), 0.0), ("acc_norm".into(), 1.0), ("acc_norm_tokens".into(), 0.5)]);
        // One sample without counts: no acc_norm_tokens rather than a score over part of the set.
        let m = names(metrics(&task, &[s(1, vec![1, 4]), s(1, vec![])]));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn stderr_is_sample_std_over_sqrt_n() {
        let (m, se) = mean_stderr(&[1.0, 0.0, 1.0, 0.0]);
        assert_eq!(m, 0.5);
        // sample variance 1/3; se = sqrt(1/3 / 4)
        assert!((se.unwrap() - (1.0f64 / 12.0).sqrt()).abs() < 1e-12);
        assert_eq!(mean_stderr(&[1.0]).1, None);
    }

    #[test]
    fn strict_and_flexible_answers() {
        assert_eq!(strict_answer("3 + 4 = 7. So the answer is 7.").as_deref(), Some("7"));
        assert_eq!(strict_answer("She has 7 apples left.").as_deref(), None);
        assert_eq!(extract_answer("She has 7 apples left.").as_deref(), Some("7"));
        assert_eq!(strict_answer("The answer is $1,200.").as_deref(), Some("1200"));
        assert_eq!(normalise("1,200"), "1200");
    }

    #[test]
    fn samples_log_resumes_and_refuses_other_settings() {
        let dir = ingot_test_support::temp_dir("eval-samples-log");
        let path = dir.join("samples/t.jsonl");
        let settings = json!({"shots": 0});
        let s = |doc| Sample::Choice {
            doc,
            gold: 0,
            loglik: vec![-1.0, -2.0],
            greedy: vec![true, false],
            lens: vec![1, 2],
            tokens: vec![1, 1],
            seconds: 0.5,
        };
        {
            let mut log = SampleLog::open(&path, &settings).unwrap();
            log.record(s(0)).unwrap();
            log.record(s(1)).unwrap();
        }
        // A torn line, as a crash mid-write leaves.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"doc\": 2, \"gold\"").unwrap();
        drop(f);
        let mut log = SampleLog::open(&path, &settings).unwrap();
        assert_eq!(log.get(1), Some(&s(1)));
        assert_eq!(log.get(2), None);
        log.record(s(2)).unwrap();
        drop(log);
        let log = SampleLog::open(&path, &settings).unwrap();
        assert_eq!(log.done.len(), 3);
        let e = SampleLog::open(&path, &json!({"shots": 5})).err().unwrap().to_string();
        assert!(e.contains("other settings"), "{e}");
    }

    /// A resumed task reports the time its documents took when they were scored, not the
    /// (near zero) time of the run that only read them back.
    #[test]
    fn resumed_samples_keep_their_time() {
        let dir = std::env::temp_dir().join(format!("ingot-eval-timing-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("samples/t.jsonl");
        let settings = json!({"shots": 0});
        let s = |doc, seconds| Sample::Choice {
            doc,
            gold: 0,
            loglik: vec![-1.0],
            greedy: vec![true],
            lens: vec![1],
            tokens: vec![1],
            seconds,
        };
        {
            let mut log = SampleLog::open(&path, &settings).unwrap();
            log.record(s(0, 1.5)).unwrap();
            log.record(s(1, 0.5)).unwrap();
        }
        let log = SampleLog::open(&path, &settings).unwrap();
        let resumed: Vec<Sample> = (0..2).map(|i| log.get(i).cloned().unwrap()).collect();
        assert_eq!(timing(&resumed), (2.0, 1.0));
        // A line from a log written before times were kept still reads, and counts no time.
        let old: Sample =
            serde_json::from_str(r#"{"doc":3,"gold":0,"loglik":[-1.0],"greedy":[true],"lens":[1]}"#).unwrap();
        assert_eq!(old.seconds(), 0.0);
        assert_eq!(timing(std::slice::from_ref(&old)), (0.0, 0.0));
        assert_eq!(timing(&[resumed[0].clone(), old]), (1.5, 1.0 / 1.5));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
