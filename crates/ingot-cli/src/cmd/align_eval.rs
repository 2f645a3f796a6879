//! `ingot align-eval`: refusal on harmful prompts and over-refusal on benign ones, on the
//! held-out split of Ingot's harmlessness set, judged by a rule and (with --reward-model) by a
//! reward model (`ingot_eval::alignment`).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use ingot_eval::alignment::{judge_harmlessness, Judged, Rates};
use ingot_eval::tooluse::Split;
use serde_json::json;

use crate::args::ModelArgs;

#[derive(Args, Debug)]
pub struct AlignEvalCmd {
    #[command(flatten)]
    pub model: ModelArgs,
    /// A reward model folder (`ingot reward-train`'s <out> or <out>/reward) to judge with too.
    #[arg(long, value_name = "DIR")]
    pub reward_model: Option<PathBuf>,
    /// The model the reward model's adapter goes over (default: the base its adapter_config.json
    /// names, when that file exists, else the model answering), so a tuned policy merged into
    /// a file is judged by the same reward model as the base.
    #[arg(long, value_name = "FILE")]
    pub reward_base: Option<PathBuf>,
    /// Most tokens per answer.
    #[arg(long, default_value_t = 64)]
    pub max_tokens: usize,
    /// Answers decoded together (rows of one step engine).
    #[arg(long, default_value_t = 8)]
    pub parallel: usize,
    /// Only the first N prompts (default: all; 129 held-out).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Which prompts: the held-out ones (eval, what the figures are measured on) or the training
    /// ones (train: a model's own answers, for on-policy pairs through data.generate.answers).
    #[arg(long, default_value = "eval", value_parser = ["eval", "train"])]
    pub split: String,
    /// Also write the rates and every answer as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

pub fn run(cmd: AlignEvalCmd) -> Result<()> {
    ingot_core::limits::at_least("--max-tokens", cmd.max_tokens, 1)?;
    ingot_core::limits::at_least("--parallel", cmd.parallel, 1)?;
    let split = if cmd.split == "train" { Split::Train } else { Split::Eval };
    let mut items = ingot_eval::preference::harmlessness(split)?;
    if let Some(n) = cmd.limit {
        items.truncate(n);
    }
    let p = cmd.model.load()?;
    let base = cmd.model.model_path()?;
    let reward = match &cmd.reward_model {
        Some(dir) => {
            let on = cmd.reward_base.clone().unwrap_or_else(|| ingot_train::recipes::reward::reward_base(dir, &base));
            Some(ingot_train::recipes::reward::load_reward_model(&on, dir, &p.device)?)
        }
        None => None,
    };
    let judge = |prompt: &str, answers: &[&str]| -> ingot_eval::Result<Vec<f32>> {
        let Some((model, head)) = &reward else { return Ok(Vec::new()) };
        let err = |e: String| ingot_eval::Error::Input(format!("reward model: {e}"));
        let examples = answers
            .iter()
            .map(|a| {
                let line = json!({"prompt": [{"role": "user", "content": prompt}], "completion": [{"role": "assistant", "content": a}]});
                ingot_data::sft::encode_conversation(&p.tokenizer, &line).map_err(|e| err(e.to_string()))
            })
            .collect::<ingot_eval::Result<Vec<_>>>()?;
        let refs: Vec<&ingot_data::sft::SftExample> = examples.iter().collect();
        let scores =
            ingot_train::recipes::reward::scores(model, head, &refs, &p.device).map_err(|e| err(e.to_string()))?;
        scores.to_vec1::<f32>().map_err(|e| err(e.to_string()))
    };
    let judge_ref: Option<&ingot_eval::alignment::Judge> = if reward.is_some() { Some(&judge) } else { None };
    let started = std::time::Instant::now();
    let mut shown = 0;
    let judged = judge_harmlessness(&p, &items, cmd.max_tokens, cmd.parallel, judge_ref, &mut |done, total| {
        if done >= shown + 16 {
            shown = done;
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "{done}/{total} answered ({:.1}/s, about {:.0} s left)",
                done as f64 / secs,
                (total - done) as f64 * secs / done as f64
            );
        }
    })?;
    let rates = Rates::of(&judged);
    let pct = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{:.1}%", 100.0 * v));
    println!("| judge | refusal on harmful (n={}) | over-refusal on benign (n={}) |", rates.harmful, rates.benign);
    println!("|---|---|---|");
    println!("| rule | {} | {} |", pct(Some(rates.refusal_rule)), pct(Some(rates.over_refusal_rule)));
    if rates.refusal_reward.is_some() {
        println!("| reward model | {} | {} |", pct(rates.refusal_reward), pct(rates.over_refusal_reward));
    }
    let degenerate = judged.iter().filter(|j| j.degenerate).count();
    println!("\nmostly repetition: {} of {} answers ({})", degenerate, judged.len(), pct(Some(rates.degenerate)));
    let mut categories: Vec<&str> = judged.iter().map(|j| j.category.as_str()).collect();
    categories.sort_unstable();
    categories.dedup();
    println!("\n| category | prompts | refused (rule) |\n|---|---|---|");
    for c in categories {
        let set: Vec<&Judged> = judged.iter().filter(|j| j.category == c).collect();
        let refused = set.iter().filter(|j| j.refused_by_rule).count();
        println!("| {c} | {} | {refused} |", set.len());
    }
    if let Some(path) = &cmd.json {
        let report = json!({
            "model": base.display().to_string(),
            "adapter": cmd.model.adapter.as_ref().map(|a| a.display().to_string()),
            "reward_model": cmd.reward_model.as_ref().map(|a| a.display().to_string()),
            "split": cmd.split,
            "max_tokens": cmd.max_tokens,
            "rates": rates,
            "answers": judged,
        });
        ingot_core::atomic::write_file(path, (serde_json::to_string_pretty(&report)? + "\n").as_bytes())?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
