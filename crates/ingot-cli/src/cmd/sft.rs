//! `ingot sft`: supervised fine-tuning of a pretrained model, full, LoRA or QLoRA (recipe:
//! ingot-train's `recipes/sft.rs`).

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use ingot_eval::tooluse::{self, Split};
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
    g.refuse_answers("the SFT conversations")?;
    std::fs::create_dir_all(dir).map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
    let write = |split: Split, n: usize, few_shot: usize, name: &str| -> ingot_train::Result<PathBuf> {
        let path = dir.join(name);
        let [calculator, search, no_tool] = g.mix;
        let mix = tooluse::Mix { calculator, search, no_tool };
        let conversations = tooluse::conversations(split, g.seed, n, &mix).map_err(|e| err(e.to_string()))?;
        let records: Vec<serde_json::Value> = conversations.iter().map(tooluse::to_json).collect();
        let texts: Vec<serde_json::Value> =
            tooluse::few_shot_examples(split, g.seed, few_shot).iter().map(|e| e.to_json()).collect();
        let mut lines = String::new();
        for record in spread(records, texts) {
            lines.push_str(&record.to_string());
            lines.push('\n');
        }
        ingot_core::atomic::write_file(&path, lines.as_bytes())?;
        Ok(path)
    };
    let val_few_shot = (g.val * g.few_shot).div_ceil(g.train.max(1));
    let train = write(Split::Train, g.train, g.few_shot, "train.jsonl")?;
    let val = if g.val > 0 { Some(write(Split::Eval, g.val, val_few_shot, "val.jsonl")?) } else { None };
    eprintln!(
        "generated {} training and {} validation conversations, plus {} and {} plain-text few-shot examples, into {}",
        g.train,
        g.val,
        g.few_shot,
        if g.val > 0 { val_few_shot } else { 0 },
        dir.display()
    );
    Ok((train, val))
}

/// `extra` spread evenly through `main`, order kept in each, so every stretch of training sees
/// both: after main's item i, round((i + 1) e / m) of the e extra items have come.
fn spread<T>(main: Vec<T>, extra: Vec<T>) -> Vec<T> {
    let (m, e) = (main.len(), extra.len());
    let mut out = Vec::with_capacity(m + e);
    let mut extra = extra.into_iter();
    for (i, x) in main.into_iter().enumerate() {
        out.push(x);
        // After main item i, bring extra up to round((i + 1) * e / m).
        let due = ((i + 1) * e + m / 2) / m;
        while out.len() - (i + 1) < due {
            match extra.next() {
                Some(y) => out.push(y),
                None => break,
            }
        }
    }
    out.extend(extra);
    out
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

#[cfg(test)]
mod tests {
    use super::spread;

    #[test]
    fn spread_interleaves_evenly_and_keeps_everything() {
        let out = spread((0..10).collect(), vec![100, 101]);
        assert_eq!(out, [0, 1, 2, 100, 3, 4, 5, 6, 7, 101, 8, 9]);
        let out = spread((0..1300).collect(), (10_000..10_200).collect());
        assert_eq!(out.len(), 1500);
        let gaps: Vec<usize> = out.iter().enumerate().filter(|(_, &x)| x >= 10_000).map(|(i, _)| i).collect();
        assert!(gaps.windows(2).all(|w| (7..=8).contains(&(w[1] - w[0]))), "{gaps:?}");
        assert!(out.iter().filter(|&&x| x < 10_000).is_sorted() && out.iter().filter(|&&x| x >= 10_000).is_sorted());
        assert_eq!(spread(Vec::<u8>::new(), vec![1, 2]), [1, 2]);
        assert_eq!(spread(vec![1, 2], Vec::new()), [1, 2]);
    }
}
