//! `ingot ppo`: RLHF with PPO against a trained reward model (recipe: ingot-train's
//! `recipes/ppo.rs`).

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use ingot_eval::tooluse::Split;
use ingot_train::recipes::ppo::{self, PpoConfig};
use ingot_train::recipes::sft::GenerateSection;
use serde_json::json;

use crate::args::RunArgs;

#[derive(Args, Debug)]
pub struct PpoCmd {
    /// Sections: [model], [lora], [data] (with [data.generate]), [ppo], [train].
    #[command(flatten)]
    pub run: RunArgs,
    /// The policy to start from (default: the config's model.path, else the default model).
    #[arg(long, short = 'm')]
    pub model: Option<PathBuf>,
    /// Write the final report as JSON here.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// Writes a built-in prompt set into `dir`: "harmlessness" (the prompts of the authored set,
/// harmful and benign, by its fixed split; `train` and `val` cap the counts, 0 = all).
pub fn generate_prompts(g: &GenerateSection, dir: &Path) -> ingot_train::Result<(PathBuf, Option<PathBuf>)> {
    let err = |e: String| ingot_train::Error::Config(e);
    if g.kind != "harmlessness" {
        return Err(err(format!("data.generate.kind = {:?}: the built-in prompt set is \"harmlessness\"", g.kind)));
    }
    g.refuse_answers("a prompt set")?;
    std::fs::create_dir_all(dir).map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
    let write = |split: Split, n: usize, name: &str| -> ingot_train::Result<(PathBuf, usize)> {
        let items = ingot_eval::preference::harmlessness(split).map_err(|e| err(e.to_string()))?;
        let take = if n == 0 { items.len() } else { n.min(items.len()) };
        let text: String = items[..take]
            .iter()
            .map(|i| {
                format!("{}\n", json!({"prompt": [{"role": "user", "content": i.prompt}], "id": i.id, "kind": i.kind}))
            })
            .collect();
        let path = dir.join(name);
        ingot_core::atomic::write_file(&path, text.as_bytes())?;
        Ok((path, take))
    };
    let (train, a) = write(Split::Train, g.train, "train.jsonl")?;
    let (val, b) = write(Split::Eval, g.val, "val.jsonl")?;
    eprintln!("wrote {a} training and {b} held-out harmlessness prompts into {}", dir.display());
    Ok((train, (b > 0).then_some(val)))
}

pub fn run(cmd: PpoCmd) -> Result<()> {
    let run = &cmd.run;
    crate::args::set_threads(run.threads)?;
    let cfg = PpoConfig::from_toml(&run.config_text()?, &run.overrides, &run.config.display().to_string())?;
    if run.print_config {
        println!("{}", toml::to_string_pretty(&cfg)?);
        return Ok(());
    }
    let model = match (&cmd.model, &cfg.model.path) {
        (Some(p), _) | (None, Some(p)) => p.clone(),
        (None, None) => ingot_core::assets::default_model()?,
    };
    let out = run.out_dir();
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let report = ppo::run(&cfg, &model, &out, run.resume, run.force, progress, &generate_prompts)?;
    println!(
        "ppo: trained {} updates over {} rollout batches ({} tokens) in {:.1} s",
        report.steps_run, report.batches, report.tokens, report.seconds
    );
    if let (Some(a), Some(b)) = (report.eval_score_start, report.eval_score_end) {
        println!(
            "held-out reward-model score on {} prompts: {a:.3} at the start, {b:.3} at the end",
            report.eval_prompts
        );
    }
    if let (Some(kl), Some(coef)) = (report.final_kl, report.final_kl_coef) {
        println!("last batch: KL to the reference {kl:.4} per completion, coefficient {coef:.4}");
    }
    println!("output: {}", report.output.display());
    println!("metrics: {}  plot: {}", out.join("metrics.jsonl").display(), out.join("loss.svg").display());
    if let Some(path) = &cmd.report {
        ingot_core::atomic::write_file(path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    Ok(())
}
