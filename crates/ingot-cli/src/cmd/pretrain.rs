//! `ingot pretrain`: train a language model from scratch (recipe: ingot-train's
//! `recipes/pretrain.rs`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use ingot_train::recipes::pretrain::{self, PretrainConfig};

#[derive(Args, Debug)]
pub struct PretrainCmd {
    /// A TOML config ([model], [data], [train], [sample]); see configs/*.toml for every field.
    #[arg(long, short = 'c')]
    pub config: PathBuf,
    /// Run folder: checkpoints (step-N/), metrics.jsonl, loss.svg, prepared data.
    /// Default: runs/<config file name>.
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Continue from the latest checkpoint in the run folder (its config, tokenizer and data must
    /// be the ones it was started with; only lengths, intervals and sampling may change).
    #[arg(long, conflicts_with = "force")]
    pub resume: bool,
    /// Start afresh in a run folder that holds another run: deletes that run's checkpoints,
    /// metrics and plot, and prepares its data again if the [data] settings changed.
    #[arg(long)]
    pub force: bool,
    /// Override a config field, e.g. --set train.max_steps=500 --set model.n_layer=6 (repeatable).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Don't train: measure the latest checkpoint's loss over the whole validation split.
    #[arg(long)]
    pub eval_only: bool,
    /// Print the resolved config and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Worker threads for tensor kernels (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

pub fn run(cmd: PretrainCmd) -> Result<()> {
    crate::args::set_threads(cmd.threads)?;
    let text =
        std::fs::read_to_string(&cmd.config).with_context(|| format!("cannot read config {}", cmd.config.display()))?;
    let cfg = PretrainConfig::from_toml(&text, &cmd.overrides, &cmd.config.display().to_string())?;
    if cmd.print_config {
        println!("{}", toml::to_string_pretty(&cfg)?);
        return Ok(());
    }
    let out = cmd.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs")
            .join(cmd.config.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "run".into()))
    });
    if cmd.eval_only {
        let (dir, loss) = pretrain::evaluate_latest(&cfg, &out)?;
        println!("{}: validation loss {loss:.4} over the whole validation split", dir.display());
        return Ok(());
    }
    let report =
        pretrain::run(&cfg, &out, cmd.resume, cmd.force, std::io::IsTerminal::is_terminal(&std::io::stderr()))?;
    println!(
        "trained {} steps ({} tokens) in {:.1} s: {:.0} tokens/s; final loss {:.4}{}",
        report.steps_run,
        report.tokens,
        report.seconds,
        report.tokens as f64 / report.seconds.max(1e-9),
        report.final_loss,
        report.final_val_loss.map(|v| format!(", validation loss {v:.4} (estimate)")).unwrap_or_default()
    );
    if let Some(full) = report.full_val_loss {
        println!("validation loss over the whole validation split: {full:.4}");
    }
    if let Some(ck) = report.last_checkpoint {
        println!("checkpoint: {}", ck.display());
    }
    println!("metrics: {}  plot: {}", out.join("metrics.jsonl").display(), out.join("loss.svg").display());
    Ok(())
}
