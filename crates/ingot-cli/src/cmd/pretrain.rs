//! `ingot pretrain`: train a language model from scratch (recipe: ingot-train's
//! `recipes/pretrain.rs`).

use anyhow::Result;
use clap::Args;
use ingot_train::recipes::pretrain::{self, PretrainConfig};

use crate::args::RunArgs;

#[derive(Args, Debug)]
pub struct PretrainCmd {
    /// Sections: [model], [data], [train], [sample]. With --force, the data is prepared again if
    /// the [data] settings changed.
    #[command(flatten)]
    pub run: RunArgs,
    /// Don't train: measure the latest checkpoint's loss over the whole validation split.
    #[arg(long)]
    pub eval_only: bool,
}

pub fn run(cmd: PretrainCmd) -> Result<()> {
    let run = &cmd.run;
    crate::args::set_threads(run.threads)?;
    let cfg = PretrainConfig::from_toml(&run.config_text()?, &run.overrides, &run.config.display().to_string())?;
    if run.print_config {
        println!("{}", toml::to_string_pretty(&cfg)?);
        return Ok(());
    }
    let out = run.out_dir();
    if cmd.eval_only {
        let (dir, loss) = pretrain::evaluate_latest(&cfg, &out)?;
        println!("{}: validation loss {loss:.4} over the whole validation split", dir.display());
        return Ok(());
    }
    let report =
        pretrain::run(&cfg, &out, run.resume, run.force, std::io::IsTerminal::is_terminal(&std::io::stderr()))?;
    println!(
        "trained {} steps ({} tokens) in {:.1} s: {:.0} tokens/s; final loss {:.4}{}",
        report.steps_run,
        report.tokens,
        report.seconds,
        report.tokens as f64 / report.seconds.max(1e-9),
        report.final_loss,
        report.final_val_loss.map(|v| format!(", validation loss {v:.4} (estimate)")).unwrap_or_default()
    );
    if report.world_size > 1 {
        println!(
            "data parallel over {} ranks: {:.1}% of the time in collectives ({:.2} s)",
            report.world_size,
            100.0 * report.comm_seconds / report.seconds.max(1e-9),
            report.comm_seconds
        );
    }
    if let Some(full) = report.full_val_loss {
        println!("validation loss over the whole validation split: {full:.4}");
    }
    if let Some(ck) = report.last_checkpoint {
        println!("checkpoint: {}", ck.display());
    }
    println!("metrics: {}  plot: {}", out.join("metrics.jsonl").display(), out.join("loss.svg").display());
    Ok(())
}
