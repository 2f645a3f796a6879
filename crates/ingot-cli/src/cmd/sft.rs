//! `ingot sft`: supervised fine-tuning of a pretrained model, full, LoRA or QLoRA (recipe:
//! ingot-train's `recipes/sft.rs`).

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use ingot_train::recipes::sft::{self, GenerateSection, SftConfig};

use crate::args::RunArgs;

#[derive(Args, Debug)]
pub struct SftCmd {
    /// Sections: [model], [lora], [data] (with [data.generate]), [train].
    #[command(flatten)]
    pub run: RunArgs,
    /// The base model (default: the config's model.path, else the default model).
    #[arg(long, short = 'm')]
    pub model: Option<PathBuf>,
    /// Write the final report as JSON here.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// Writes a built-in data set into `dir` (train.jsonl and, when asked for, val.jsonl).
fn generate(g: &GenerateSection, dir: &Path) -> ingot_train::Result<(PathBuf, Option<PathBuf>)> {
    let err = |e: String| ingot_train::Error::Config(e);
    if g.kind != "tool-use" {
        return Err(err(format!("data.generate.kind = {:?}: the built-in generator is \"tool-use\"", g.kind)));
    }
    std::fs::create_dir_all(dir).map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
    let write = |split: ingot_eval::tooluse::Split, n: usize, name: &str| -> ingot_train::Result<PathBuf> {
        let path = dir.join(name);
        let [calculator, search, no_tool] = g.mix;
        let mix = ingot_eval::tooluse::Mix { calculator, search, no_tool };
        let conversations =
            ingot_eval::tooluse::conversations(split, g.seed, n, &mix).map_err(|e| err(e.to_string()))?;
        let mut lines = String::new();
        for c in &conversations {
            lines.push_str(&ingot_eval::tooluse::to_json(c).to_string());
            lines.push('\n');
        }
        ingot_core::atomic::write_file(&path, lines.as_bytes())?;
        Ok(path)
    };
    let train = write(ingot_eval::tooluse::Split::Train, g.train, "train.jsonl")?;
    let val = if g.val > 0 { Some(write(ingot_eval::tooluse::Split::Eval, g.val, "val.jsonl")?) } else { None };
    eprintln!("generated {} training and {} validation conversations into {}", g.train, g.val, dir.display());
    Ok((train, val))
}

pub fn run(cmd: SftCmd) -> Result<()> {
    let run = &cmd.run;
    crate::args::set_threads(run.threads)?;
    let cfg = SftConfig::from_toml(&run.config_text()?, &run.overrides, &run.config.display().to_string())?;
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
    let report = sft::run(&cfg, &model, &out, run.resume, run.force, progress, &generate)?;
    println!(
        "{}: trained {} steps ({} tokens) in {:.1} s: {:.0} tokens/s; final loss {:.4}{}; peak RSS {:.0} MiB ({:.0} MiB after loading the model); {:.2} M trainable parameters",
        report.method,
        report.steps_run,
        report.tokens,
        report.seconds,
        report.tokens_per_sec,
        report.final_loss,
        report.final_val_loss.map(|v| format!(", validation loss {v:.4}")).unwrap_or_default(),
        report.peak_rss as f64 / (1 << 20) as f64,
        report.model_rss as f64 / (1 << 20) as f64,
        report.trainable as f64 / 1e6
    );
    println!("output: {}", report.output.display());
    println!("metrics: {}  plot: {}", out.join("metrics.jsonl").display(), out.join("loss.svg").display());
    if let Some(path) = &cmd.report {
        ingot_core::atomic::write_file(path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    Ok(())
}
