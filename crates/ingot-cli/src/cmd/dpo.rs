//! `ingot dpo`: direct preference optimisation (or IPO) of a pretrained model on preference
//! pairs (recipe: ingot-train's `recipes/dpo.rs`).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use ingot_train::recipes::dpo::{self, DpoConfig};

use crate::args::RunArgs;
use crate::cmd::reward_train::generate_pairs;

#[derive(Args, Debug)]
pub struct DpoCmd {
    /// Sections: [model], [lora], [data] (with [data.generate]), [dpo], [train].
    #[command(flatten)]
    pub run: RunArgs,
    /// The base model (default: the config's model.path, else the default model).
    #[arg(long, short = 'm')]
    pub model: Option<PathBuf>,
    /// Write the final report as JSON here.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

pub fn run(cmd: DpoCmd) -> Result<()> {
    let run = &cmd.run;
    crate::args::set_threads(run.threads)?;
    let cfg = DpoConfig::from_toml(&run.config_text()?, &run.overrides, &run.config.display().to_string())?;
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
    let report = dpo::run(&cfg, &model, &out, run.resume, run.force, progress, &generate_pairs)?;
    println!(
        "{} ({:?}, beta {}): trained {} steps ({} tokens) in {:.1} s: {:.0} tokens/s; final loss {:.4}; {:.2} M trainable parameters",
        report.method,
        report.loss,
        report.beta,
        report.steps_run,
        report.tokens,
        report.seconds,
        report.tokens_per_sec,
        report.final_loss,
        report.trainable as f64 / 1e6
    );
    let show = |what: &str, v: Option<(f64, f64, f64)>| {
        if let Some((loss, acc, margin)) = v {
            println!(
                "held-out pairs {what}: preference accuracy {:.1}% of {}, mean margin {margin:.3}, loss {loss:.4}",
                100.0 * acc,
                report.val_pairs
            );
        }
    };
    show("at the start", report.val_start);
    show("at the end", report.val_end);
    println!("output: {}", report.output.display());
    println!("metrics: {}  plot: {}", out.join("metrics.jsonl").display(), out.join("loss.svg").display());
    if let Some(path) = &cmd.report {
        ingot_core::atomic::write_file(path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    Ok(())
}
