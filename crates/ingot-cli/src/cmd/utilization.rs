//! `ingot utilization-bench`: accuracy of prompting strategies on seeded, held-out multi-step
//! arithmetic word problems (made at run time from --seed, never seen while writing the code).

use anyhow::Result;
use clap::Args;
use ingot_eval::problems::arithmetic_problems;
use ingot_eval::utilization::{measure, Strategy};

use crate::args::ModelArgs;

#[derive(Args, Debug)]
pub struct UtilizationCmd {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Problems to generate.
    #[arg(long, default_value_t = 30)]
    pub n: usize,
    /// Seed of the problem generator.
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// Strategies: plain, cot, sc (self-consistency, k = --k), calculator, facts (local-document
    /// questions with and without the search tool).
    #[arg(long, value_delimiter = ',', default_value = "plain,cot,sc,calculator,facts")]
    pub strategies: Vec<String>,
    /// Sampled reasoning chains per problem for the sc strategy (majority vote over them).
    #[arg(long, default_value_t = 5)]
    pub k: usize,
    /// Most tokens the model may generate per answer (per chain for sc).
    #[arg(long, default_value_t = 160)]
    pub max_tokens: usize,
}

pub fn run(cmd: UtilizationCmd) -> Result<()> {
    // Checked before the model loads: 0 problems printed a table of 0.0% accuracies.
    ingot_core::limits::at_least("--n", cmd.n, 1)?;
    ingot_core::limits::at_least("--k", cmd.k, 1)?;
    ingot_core::limits::at_least("--max-tokens", cmd.max_tokens, 1)?;
    let p = cmd.model.load()?;
    let items = arithmetic_problems(cmd.n, cmd.seed);
    println!("| strategy | accuracy | ± s.e. | n | seconds |");
    println!("|---|---|---|---|---|");
    for s in &cmd.strategies {
        if s == "facts" {
            let facts = ingot_eval::problems::local_facts(cmd.n, cmd.seed);
            let dir = std::env::temp_dir().join(format!("ingot-facts-{}", std::process::id()));
            use ingot_eval::utilization::FactsMode;
            for mode in [FactsMode::NoTool, FactsMode::SearchTool, FactsMode::Retrieved] {
                let a = ingot_eval::utilization::measure_facts(
                    &p,
                    &facts,
                    &dir.join("docs"),
                    &dir.join("index"),
                    mode,
                    cmd.max_tokens,
                )?;
                println!(
                    "| {} | {:.1}% | {:.1} | {} | {:.0} |",
                    a.strategy,
                    100.0 * a.value(),
                    100.0 * a.stderr(),
                    a.total,
                    a.seconds
                );
            }
            let _ = std::fs::remove_dir_all(&dir);
            continue;
        }
        let strategy = match s.as_str() {
            "plain" => Strategy::Plain,
            "cot" => Strategy::ChainOfThought,
            "sc" => Strategy::SelfConsistency(cmd.k),
            "calculator" => Strategy::Calculator,
            other => anyhow::bail!("unknown strategy '{other}'; use plain, cot, sc, calculator or facts"),
        };
        let a = measure(&p, &items, strategy, cmd.max_tokens)?;
        println!(
            "| {} | {:.1}% | {:.1} | {} | {:.0} |",
            a.strategy,
            100.0 * a.value(),
            100.0 * a.stderr(),
            a.total,
            a.seconds
        );
    }
    Ok(())
}
