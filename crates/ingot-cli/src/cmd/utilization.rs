//! `ingot utilization-bench`: what each prompting strategy and tool buys on seeded, held-out items
//! (the eval split of `ingot_eval::tooluse`, made at run time from --seed, never trained on):
//! arithmetic word problems, questions about local documents, and questions that need no tool.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use ingot_eval::tooluse::{calculator_items, no_tool_items, search_items, Split};
use ingot_eval::utilization::{measure, measure_facts, measure_no_tool, Accuracy, CallCounts, FactsMode, Strategy};
use serde_json::json;

use crate::args::ModelArgs;

#[derive(Args, Debug)]
pub struct UtilizationCmd {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Problems to generate (per strategy).
    #[arg(long, default_value_t = 30)]
    pub n: usize,
    /// Seed of the problem generator.
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// Strategies: plain, cot, sc (self-consistency, k = --k), calculator, facts (local-document
    /// questions with and without the search tool), search (only the model-driven search of
    /// facts), no-tool (questions that need no tool, asked
    /// with both tools offered: how often the model calls one anyway).
    #[arg(long, value_delimiter = ',', default_value = "plain,cot,sc,calculator,facts,no-tool")]
    pub strategies: Vec<String>,
    /// Sampled reasoning chains per problem for the sc strategy (majority vote over them).
    #[arg(long, default_value_t = 5)]
    pub k: usize,
    /// Most tokens the model may generate per answer (per chain for sc).
    #[arg(long, default_value_t = 160)]
    pub max_tokens: usize,
    /// Also write the results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// One requested strategy, checked before the model loads.
enum Run {
    Arithmetic(Strategy),
    Facts(&'static [FactsMode]),
    NoTool,
}

fn parse_strategy(s: &str, k: usize) -> Result<Run> {
    Ok(match s {
        "plain" => Run::Arithmetic(Strategy::Plain),
        "cot" => Run::Arithmetic(Strategy::ChainOfThought),
        "sc" => Run::Arithmetic(Strategy::SelfConsistency(k)),
        "calculator" => Run::Arithmetic(Strategy::Calculator),
        "facts" => Run::Facts(&[FactsMode::NoTool, FactsMode::SearchTool, FactsMode::Retrieved]),
        "search" => Run::Facts(&[FactsMode::SearchTool]),
        "no-tool" => Run::NoTool,
        other => anyhow::bail!("unknown strategy '{other}'; use plain, cot, sc, calculator, facts, search or no-tool"),
    })
}

/// Removes the benchmark's documents and index, however the run ends.
struct TempFolder(PathBuf);

impl Drop for TempFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn print_row(a: &Accuracy) {
    let calls = match a.calls {
        Some(c) => format!("{}/{}", c.well_formed, c.attempts),
        None => "–".into(),
    };
    println!(
        "| {} | {:.1}% | {:.1} | {} | {:.0} | {calls} |",
        a.strategy,
        100.0 * a.value(),
        100.0 * a.stderr(),
        a.total,
        a.seconds
    );
}

pub fn run(cmd: UtilizationCmd) -> Result<()> {
    // Checked before the model loads: 0 problems printed a table of 0.0% accuracies.
    ingot_core::limits::at_least("--n", cmd.n, 1)?;
    ingot_core::limits::at_least("--k", cmd.k, 1)?;
    ingot_core::limits::at_least("--max-tokens", cmd.max_tokens, 1)?;
    let runs = cmd.strategies.iter().map(|s| parse_strategy(s, cmd.k)).collect::<Result<Vec<_>>>()?;
    let p = cmd.model.load()?;
    let items = calculator_items(Split::Eval, cmd.seed, cmd.n);
    let facts = search_items(Split::Eval, cmd.seed, cmd.n);
    let dir = TempFolder(std::env::temp_dir().join(format!("ingot-utilization-{}", std::process::id())));
    let (docs, index) = (dir.0.join("docs"), dir.0.join("index"));

    println!("| strategy | accuracy | ± s.e. | n | seconds | well-formed / tool calls |");
    println!("|---|---|---|---|---|---|");
    let mut results = Vec::new();
    for run in runs {
        let batch = match run {
            Run::Arithmetic(strategy) => vec![measure(&p, &items, strategy, cmd.max_tokens)?],
            Run::Facts(modes) => modes
                .iter()
                .map(|&mode| measure_facts(&p, &facts, &docs, &index, mode, cmd.max_tokens))
                .collect::<ingot_eval::Result<Vec<_>>>()?,
            Run::NoTool => {
                let questions = no_tool_items(Split::Eval, cmd.seed, cmd.n);
                vec![measure_no_tool(&p, &questions, &facts, &docs, &index, cmd.max_tokens)?]
            }
        };
        for a in batch {
            print_row(&a);
            results.push(a);
        }
    }

    let mut calls = CallCounts::default();
    for c in results.iter().filter_map(|a| a.calls.as_ref()) {
        calls.merge(c);
    }
    let agent_runs = results.iter().any(|a| a.calls.is_some());
    if agent_runs {
        match calls.fraction() {
            Some(f) => println!(
                "\nwell-formed tool calls: {}/{} ({:.1}%) over all agent strategies",
                calls.well_formed,
                calls.attempts,
                100.0 * f
            ),
            None => println!("\nwell-formed tool calls: the model made no tool call in any agent strategy"),
        }
    }
    if let Some(path) = &cmd.json {
        let report = json!({
            "model": cmd.model.model_path()?.display().to_string(),
            "adapter": cmd.model.adapter.as_ref().map(|a| a.display().to_string()),
            "seed": cmd.seed,
            "n": cmd.n,
            "max_tokens": cmd.max_tokens,
            "results": results.iter().map(Accuracy::to_json).collect::<Vec<_>>(),
            "tool_calls": {
                "attempts": calls.attempts,
                "well_formed": calls.well_formed,
                "well_formed_fraction": calls.fraction(),
            },
        });
        let text = serde_json::to_string_pretty(&report)? + "\n";
        ingot_core::atomic::write_file(path, text.as_bytes())?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
