//! `ingot train-bench`: the fixed training benchmark (GPT, 6 layers, 6 heads, width 384,
//! vocabulary 4096, context 256, batch 8): tokens/s, the step's breakdown, peak memory and model
//! FLOPs utilisation. `scripts/bench-training` runs it beside PyTorch's equivalent.

use anyhow::Result;
use clap::Args;
use ingot_nn::Precision;

#[derive(Args, Debug)]
pub struct TrainBenchCmd {
    /// Timed steps (after one warm-up step).
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// The model and batch: "bench" (6 layers, width 384, context 256, batch 8) or "char"
    /// (configs/shakespeare-char.toml's: 4 layers, width 128, context 64, batch 12).
    #[arg(long, default_value = "bench")]
    pub shape: String,
    /// Products of the linear layers and the head: f32, or bf16 with f32 accumulation.
    #[arg(long, default_value = "f32")]
    pub precision: Precision,
    /// Recompute each block's activations in backward instead of keeping them.
    #[arg(long)]
    pub activation_checkpointing: bool,
    /// Time forward and loss alone, without gradients.
    #[arg(long)]
    pub forward_only: bool,
    /// Print one JSON line instead of the table (for scripts).
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: TrainBenchCmd) -> Result<()> {
    anyhow::ensure!(cmd.steps > 0, "--steps must be at least 1");
    let Some(shape) = ingot_train::bench::BenchShape::by_name(&cmd.shape) else {
        anyhow::bail!("--shape {:?} is not one of bench, char", cmd.shape)
    };
    let options = ingot_train::bench::BenchOptions {
        shape,
        steps: cmd.steps,
        precision: cmd.precision,
        activation_checkpointing: cmd.activation_checkpointing,
        forward_only: cmd.forward_only,
    };
    let b = ingot_train::bench::run(options)?;
    if cmd.json {
        let line = serde_json::json!({
            "impl": "ingot",
            "shape": cmd.shape,
            "steps_per_sec": b.tokens_per_sec / b.tokens_per_step as f64,
            "precision": cmd.precision.name(),
            "bf16_path": b.bf16_path,
            "activation_checkpointing": cmd.activation_checkpointing,
            "forward_only": cmd.forward_only,
            "steps": b.steps,
            "threads": b.threads,
            "tokens_per_sec": b.tokens_per_sec,
            "forward_secs": b.forward_secs,
            "backward_secs": b.backward_secs,
            "optimizer_secs": b.optimizer_secs,
            "peak_rss_bytes": b.peak_rss_bytes,
            "page_faults_per_step": b.page_faults_per_step,
            "mfu": b.mfu(),
        });
        println!("{line}");
        return Ok(());
    }
    println!("model:      {}", shape.describe());
    println!("parameters: {:.2} M", b.params as f64 / 1e6);
    println!("threads:    {}", b.threads);
    let path = b.bf16_path.map(|p| format!(" (bf16 products on the {p} path)")).unwrap_or_default();
    println!(
        "precision:  {}{path}{}",
        cmd.precision.name(),
        if cmd.activation_checkpointing { ", activation checkpointing" } else { "" }
    );
    if cmd.forward_only {
        println!("step:       {:.3} s forward+loss (no gradients)", b.forward_secs);
        println!(
            "forward:    {:.0} tokens/s ({} tokens a step, {} steps)",
            b.tokens_per_sec, b.tokens_per_step, b.steps
        );
    } else {
        println!(
            "step:       {:.3} s forward+loss, {:.3} s backward, {:.3} s clipping+AdamW",
            b.forward_secs, b.backward_secs, b.optimizer_secs
        );
        println!(
            "training:   {:.0} tokens/s ({} tokens a step, {} steps)",
            b.tokens_per_sec, b.tokens_per_step, b.steps
        );
    }
    if let Some(rss) = b.peak_rss_bytes {
        println!("peak RSS:   {:.0} MiB", rss as f64 / (1 << 20) as f64);
    }
    if let Some(faults) = b.page_faults_per_step {
        println!("page faults: {faults:.0} per timed step (fresh memory mapped in the steady state)");
    }
    println!(
        "MFU:        {:.1}% ({:.1} GFLOP/s of model FLOPs / {:.1} GFLOP/s f32 GEMM measured on this machine)",
        100.0 * b.mfu(),
        b.model_flops_per_sec / 1e9,
        b.gemm_flops_per_sec / 1e9
    );
    Ok(())
}
