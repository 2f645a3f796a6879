//! `ingot grpo`: group relative policy optimisation with verifiable rewards (recipe:
//! ingot-train's `recipes/grpo.rs`), and the built-in reward functions and prompt sets.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use ingot_eval::tooluse::{calculator_items, Split};
use ingot_tools::{parse_calls, Calculator, Tool};
use ingot_train::recipes::grpo::{self, GrpoRunConfig, RewardFn};
use ingot_train::recipes::sft::GenerateSection;
use serde_json::{json, Map, Value};

use crate::args::RunArgs;

#[derive(Args, Debug)]
pub struct GrpoCmd {
    /// Sections: [model], [lora], [data] (with [data.generate]), [grpo] with [[grpo.rewards]], [train].
    #[command(flatten)]
    pub run: RunArgs,
    /// The model to start from (default: the config's model.path, else the default model).
    #[arg(long, short = 'm')]
    pub model: Option<PathBuf>,
    /// Write the final report as JSON here.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

fn answer(fields: &Map<String, Value>) -> Result<&str, String> {
    fields.get("answer").and_then(Value::as_str).ok_or_else(|| "the prompt line has no \"answer\" string".into())
}

/// The built-in reward functions:
/// - `calculator-call`: 1 when the completion calls the calculator and the call's result is the
///   prompt's `answer` (the call runs, as the agent would run it), else 0;
/// - `tool-call-format`: 1 when the completion holds at least one tool call and every call in it
///   reads (a name and an arguments object), else 0;
/// - `exact-answer`: 1 when the completion's final answer ("The answer is N") is the `answer`.
pub fn reward_function(name: &str) -> Option<RewardFn> {
    Some(match name {
        "calculator-call" => Box::new(|text: &str, fields: &Map<String, Value>| {
            let want = answer(fields)?;
            let parsed = parse_calls(text);
            let got = parsed
                .calls
                .iter()
                .flatten()
                .find(|c| c.name == "calculator")
                .and_then(|c| Calculator.call(&c.arguments).ok());
            Ok(f64::from(got.as_deref() == Some(want)))
        }),
        "tool-call-format" => Box::new(|text: &str, _: &Map<String, Value>| {
            let parsed = parse_calls(text);
            Ok(f64::from(!parsed.calls.is_empty() && parsed.calls.iter().all(Result::is_ok)))
        }),
        "exact-answer" => Box::new(|text: &str, fields: &Map<String, Value>| {
            let want = answer(fields)?;
            Ok(f64::from(ingot_generate::prompting::extract_answer(text).as_deref() == Some(want)))
        }),
        _ => return None,
    })
}

/// Writes a built-in prompt set into `dir`: "calculator" (the tool-use arithmetic questions with
/// the calculator offered, and their answers; held-out prompts from the evaluation split).
pub fn generate_prompts(g: &GenerateSection, dir: &Path) -> ingot_train::Result<(PathBuf, Option<PathBuf>)> {
    let err = |e: String| ingot_train::Error::Config(e);
    if g.kind != "calculator" {
        return Err(err(format!("data.generate.kind = {:?}: the built-in prompt set is \"calculator\"", g.kind)));
    }
    g.refuse_answers("a prompt set")?;
    std::fs::create_dir_all(dir).map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
    let schema = ingot_tools::agent::tool_schema(&Calculator);
    let write = |split: Split, n: usize, name: &str| -> ingot_train::Result<PathBuf> {
        let path = dir.join(name);
        let text: String = calculator_items(split, g.seed, n)
            .iter()
            .map(|item| {
                let line = json!({
                    "prompt": [{"role": "user", "content": item.question}],
                    "tools": [schema],
                    "answer": item.answer,
                });
                format!("{line}\n")
            })
            .collect();
        ingot_core::atomic::write_file(&path, text.as_bytes())?;
        Ok(path)
    };
    let train = write(Split::Train, g.train, "train.jsonl")?;
    let val = if g.val > 0 { Some(write(Split::Eval, g.val, "val.jsonl")?) } else { None };
    eprintln!("wrote {} training and {} held-out calculator prompts into {}", g.train, g.val, dir.display());
    Ok((train, val))
}

pub fn run(cmd: GrpoCmd) -> Result<()> {
    let run = &cmd.run;
    crate::args::set_threads(run.threads)?;
    let cfg = GrpoRunConfig::from_toml(&run.config_text()?, &run.overrides, &run.config.display().to_string())?;
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
    let report = grpo::run(&cfg, &model, &out, run.resume, run.force, progress, &generate_prompts, &reward_function)?;
    println!(
        "{}: trained {} steps ({} tokens) in {:.1} s on {} prompts x {} completions; final loss {:.4}",
        report.method,
        report.steps_run,
        report.tokens,
        report.seconds,
        report.prompts,
        cfg.grpo.group_size,
        report.final_loss
    );
    if let (Some(a), Some(b)) = (report.eval_reward_start, report.eval_reward_end) {
        println!("held-out greedy reward on {} prompts: {a:.3} at the start, {b:.3} at the end", report.eval_prompts);
    }
    println!("output: {}", report.output.display());
    println!("metrics: {}  plot: {}", out.join("metrics.jsonl").display(), out.join("loss.svg").display());
    if let Some(path) = &cmd.report {
        ingot_core::atomic::write_file(path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    Ok(())
}
