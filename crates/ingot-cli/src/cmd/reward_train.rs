//! `ingot reward-train`: a reward model on preference pairs (recipe: ingot-train's
//! `recipes/reward.rs`).

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use ingot_eval::tooluse::{Mix, Split};
use ingot_train::recipes::reward::{self, RewardConfig};
use ingot_train::recipes::sft::GenerateSection;

use crate::args::RunArgs;

#[derive(Args, Debug)]
pub struct RewardTrainCmd {
    /// Sections: [model], [lora], [data] (with [data.generate]), [reward], [train].
    #[command(flatten)]
    pub run: RunArgs,
    /// The base model (default: the config's model.path, else the default model).
    #[arg(long, short = 'm')]
    pub model: Option<PathBuf>,
    /// Write the final report as JSON here.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// Writes a built-in preference set into `dir`: "harmlessness" (the authored set, its own fixed
/// split; `train` and `val` cap the counts, 0 = all) or "tool-use" (verifiable pairs).
pub fn generate_pairs(g: &GenerateSection, dir: &Path) -> ingot_train::Result<(PathBuf, Option<PathBuf>)> {
    let err = |e: String| ingot_train::Error::Config(e);
    std::fs::create_dir_all(dir).map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
    let lines = |split: Split, n: usize| -> ingot_train::Result<Vec<serde_json::Value>> {
        match g.kind.as_str() {
            "harmlessness" => {
                let items = ingot_eval::preference::harmlessness(split).map_err(|e| err(e.to_string()))?;
                let take = if n == 0 { items.len() } else { n.min(items.len()) };
                let mut pairs: Vec<serde_json::Value> = items[..take].iter().map(|i| i.to_pair()).collect();
                if let (Split::Train, Some(path)) = (split, &g.answers) {
                    let extra =
                        ingot_eval::preference::on_policy_harmlessness(&read_answers(path)?, g.reject_degenerate)
                            .map_err(|e| err(format!("{}: {e}", path.display())))?;
                    eprintln!("{} on-policy pairs from the answers in {}", extra.len(), path.display());
                    pairs.extend(extra);
                }
                Ok(pairs)
            }
            "tool-use" => {
                g.refuse_answers("the tool-use pairs")?;
                let [calculator, search, no_tool] = g.mix;
                ingot_eval::preference::tool_use_pairs(split, g.seed, n, &Mix { calculator, search, no_tool })
                    .map_err(|e| err(e.to_string()))
            }
            other => Err(err(format!(
                "data.generate.kind = {other:?}: the built-in preference sets are \"harmlessness\" and \"tool-use\""
            ))),
        }
    };
    let write = |split: Split, n: usize, name: &str| -> ingot_train::Result<(PathBuf, usize)> {
        let path = dir.join(name);
        let pairs = lines(split, n)?;
        let text: String = pairs.iter().map(|p| format!("{p}\n")).collect();
        ingot_core::atomic::write_file(&path, text.as_bytes())?;
        Ok((path, pairs.len()))
    };
    let (train, n_train) = write(Split::Train, g.train, "train.jsonl")?;
    let (val, n_val) = write(Split::Eval, g.val, "val.jsonl")?;
    eprintln!("wrote {n_train} training and {n_val} held-out {} pairs into {}", g.kind, dir.display());
    Ok((train, (n_val > 0).then_some(val)))
}

/// The (id, answer) list of an `ingot align-eval --json` report.
fn read_answers(path: &Path) -> ingot_train::Result<Vec<(String, String)>> {
    let err = |why: String| {
        ingot_train::Error::Config(format!(
            "data.generate.answers = {}: {why}; write it with `ingot align-eval --split train --json FILE`",
            path.display()
        ))
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read it ({e})")))?;
    let report: serde_json::Value = serde_json::from_str(&text).map_err(|e| err(format!("not JSON ({e})")))?;
    let answers = report["answers"].as_array().ok_or_else(|| err("no \"answers\" list".into()))?;
    answers
        .iter()
        .enumerate()
        .map(|(k, a)| match (a["id"].as_str(), a["answer"].as_str()) {
            (Some(id), Some(answer)) => Ok((id.to_string(), answer.to_string())),
            _ => Err(err(format!("answer {} has no string \"id\" and \"answer\"", k + 1))),
        })
        .collect()
}

pub fn run(cmd: RewardTrainCmd) -> Result<()> {
    let run = &cmd.run;
    crate::args::set_threads(run.threads)?;
    let cfg = RewardConfig::from_toml(&run.config_text()?, &run.overrides, &run.config.display().to_string())?;
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
    let report = reward::run(&cfg, &model, &out, run.resume, run.force, progress, &generate_pairs)?;
    println!(
        "{}: trained {} steps ({} tokens) in {:.1} s: {:.0} tokens/s; final loss {:.4}; {:.2} M trainable parameters",
        report.method,
        report.steps_run,
        report.tokens,
        report.seconds,
        report.tokens_per_sec,
        report.final_loss,
        report.trainable as f64 / 1e6
    );
    if let (Some(acc), Some(loss)) = (report.val_accuracy, report.val_loss) {
        println!(
            "held-out pairs: {} ranked right of {} ({:.1}%), loss {loss:.4}",
            (acc * report.val_pairs as f64).round(),
            report.val_pairs,
            100.0 * acc
        );
    }
    println!("output: {}", report.output.display());
    println!("metrics: {}  plot: {}", out.join("metrics.jsonl").display(), out.join("loss.svg").display());
    if let Some(path) = &cmd.report {
        ingot_core::atomic::write_file(path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `data.generate.reject_degenerate` reaches the pair builder: an emoji run answering a
    /// harmful training prompt is rejected with it and dropped without it (no whole sentence).
    #[test]
    fn reject_degenerate_reaches_the_on_policy_pairs() {
        let dir = std::env::temp_dir().join(format!("ingot-reject-degenerate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let train = ingot_eval::preference::harmlessness(Split::Train).unwrap();
        let harmful = train.iter().find(|i| i.is_harmful()).unwrap();
        let emoji = "Mine!".to_string() + &"👍".repeat(24);
        let answers = serde_json::json!({ "answers": [{ "id": harmful.id, "answer": emoji }] });
        let answers_path = dir.join("answers.json");
        std::fs::write(&answers_path, answers.to_string()).unwrap();
        let on_policy = |reject_degenerate: bool| {
            let g = GenerateSection {
                kind: "harmlessness".into(),
                train: 0,
                val: 4,
                seed: 1,
                mix: [0.45, 0.30, 0.25],
                few_shot: 0,
                answers: Some(answers_path.clone()),
                reject_degenerate,
            };
            let (train_path, _) = generate_pairs(&g, &dir.join(format!("data-{reject_degenerate}"))).unwrap();
            let text = std::fs::read_to_string(train_path).unwrap();
            let pairs: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
            assert!(pairs.len() >= train.len());
            let id = format!("{}-on-policy", harmful.id);
            pairs.into_iter().find(|p| p["id"] == id.as_str())
        };
        let pair = on_policy(true).expect("the degenerate answer makes a pair");
        assert_eq!(pair["rejected"][0]["content"], emoji.as_str());
        assert_eq!(pair["chosen"][0]["content"], harmful.chosen.as_str());
        assert!(on_policy(false).is_none(), "without the flag an answer with no whole sentence adds nothing");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
