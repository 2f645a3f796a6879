//! `ingot scaling`: train a family of model sizes on a grid of token budgets, fit the scaling
//! laws, and predict the next size (recipe: ingot-train's `recipes/scaling.rs`).

use anyhow::Result;
use clap::Args;
use ingot_train::recipes::scaling::{self, Outcome, ScalingConfig};

use crate::args::RunArgs;

#[derive(Args, Debug)]
pub struct ScalingCmd {
    /// Sections: [model], [data], [train], [sample] (the base of every run, as for `ingot
    /// pretrain`), [sweep] (sizes and token budgets) and [fit]. --resume skips finished runs and
    /// continues the one cut short.
    #[command(flatten)]
    pub run: RunArgs,
    /// Don't train: list the runs the sweep would make (shapes, N, D, steps, learning rates).
    #[arg(long, conflicts_with_all = ["resume", "force", "report_only"])]
    pub plan: bool,
    /// Don't train: refit and rewrite the report from the runs finished so far.
    #[arg(long, conflicts_with_all = ["resume", "force"])]
    pub report_only: bool,
}

pub fn run(cmd: ScalingCmd) -> Result<()> {
    let run = &cmd.run;
    crate::args::set_threads(run.threads)?;
    let cfg = ScalingConfig::from_toml(&run.config_text()?, &run.overrides, &run.config.display().to_string())?;
    if run.print_config {
        println!("{}", toml::to_string_pretty(&cfg)?);
        return Ok(());
    }
    if cmd.plan {
        for line in scaling::describe_plan(&cfg)? {
            println!("{line}");
        }
        return Ok(());
    }
    let out = run.out_dir();
    let report = if cmd.report_only {
        let (report, missing) = scaling::report_only(&cfg, &out)?;
        if !missing.is_empty() {
            println!("{} runs not finished yet: {}", missing.len(), missing.join(", "));
        }
        report
    } else {
        let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let done = scaling::run(&cfg, &out, run.resume, run.force, progress)?;
        let count = |o: Outcome| done.outcomes.iter().filter(|(_, x)| *x == o).count();
        println!(
            "{} runs: {} trained, {} resumed, {} skipped (finished earlier), {} measured",
            done.outcomes.len(),
            count(Outcome::Trained),
            count(Outcome::Resumed),
            count(Outcome::Skipped),
            count(Outcome::Measured)
        );
        done.report
    };
    for line in report.summary() {
        println!("{line}");
    }
    println!(
        "report: {}  (and scaling.json, loss_vs_params.svg, loss_vs_compute.svg, predicted_vs_measured.svg)",
        out.join(ingot_train::scaling_report::MARKDOWN_FILE).display()
    );
    Ok(())
}
