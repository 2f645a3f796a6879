//! `ingot train-bench`: the fixed training benchmark (GPT, 6 layers, 6 heads, width 384,
//! vocabulary 4096, context 256, batch 8): tokens/s and model FLOPs utilisation.

use anyhow::Result;
use clap::Args;

#[derive(Args, Debug)]
pub struct TrainBenchCmd {
    /// Timed steps (after one warm-up step).
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
}

pub fn run(cmd: TrainBenchCmd) -> Result<()> {
    anyhow::ensure!(cmd.steps > 0, "--steps must be at least 1");
    let b = ingot_train::bench::run(cmd.steps)?;
    println!("model:      GPT-2, 6 layers, 6 heads, width 384, vocab 4096, context 256, batch 8");
    println!("parameters: {:.2} M", b.params as f64 / 1e6);
    println!("threads:    {}", b.threads);
    println!(
        "step:       {:.3} s forward+loss, {:.3} s backward, {:.3} s AdamW",
        b.forward_secs, b.backward_secs, b.optimizer_secs
    );
    println!("training:   {:.0} tokens/s ({} tokens a step, {} steps)", b.tokens_per_sec, b.tokens_per_step, b.steps);
    println!(
        "MFU:        {:.1}% ({:.1} GFLOP/s of model FLOPs / {:.1} GFLOP/s f32 GEMM measured on this machine)",
        100.0 * b.mfu(),
        b.model_flops_per_sec / 1e9,
        b.gemm_flops_per_sec / 1e9
    );
    Ok(())
}
