//! A fixed training benchmark, so changes to kernels and the trainer can be measured: GPT-2 with
//! 6 layers, 6 heads, width 384, vocabulary 4096, context 256, batch 8 (2,048 tokens a step) on
//! seeded random tokens, with AdamW.
//!
//! Each step is what the trainer does: forward and loss, backward, global-norm clipping to 1.0,
//! AdamW. Reports tokens/s, the split of a step into forward+loss, backward and optimizer
//! (clipping included), the process's peak resident memory and page faults per step, and model
//! FLOPs utilisation: achieved model FLOPs (nanoGPT's estimate, 6N + 12·L·H·Q·T per token, N
//! without position embeddings) over the f32 GEMM rate measured on this machine in the same run.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::error::{Context, Result};
use crate::optim::{AdamW, AdamWConfig};
use crate::recipes::pretrain::lm_loss;
use crate::trainer::named_vars;

/// The benchmark's model and batch: GPT-2 with these dimensions on seeded random tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchShape {
    pub layers: usize,
    pub heads: usize,
    pub width: usize,
    pub vocab: usize,
    pub context: usize,
    pub batch: usize,
}

impl BenchShape {
    /// The fixed benchmark: 6 layers, 6 heads, width 384, vocabulary 4096, context 256, batch 8.
    pub const BENCH: Self = Self { layers: 6, heads: 6, width: 384, vocab: 4096, context: 256, batch: 8 };
    /// configs/shakespeare-char.toml's model and batch (nanoGPT's CPU Shakespeare run): 4 layers,
    /// 4 heads, width 128, context 64, batch 12, 80 symbols.
    pub const CHAR: Self = Self { layers: 4, heads: 4, width: 128, vocab: 80, context: 64, batch: 12 };

    pub fn by_name(name: &str) -> Option<Self> {
        match name {
            "bench" => Some(Self::BENCH),
            "char" => Some(Self::CHAR),
            _ => None,
        }
    }

    pub fn describe(&self) -> String {
        let Self { layers, heads, width, vocab, context, batch } = self;
        format!("GPT-2, {layers} layers, {heads} heads, width {width}, vocab {vocab}, context {context}, batch {batch}")
    }
}

impl Default for BenchShape {
    fn default() -> Self {
        Self::BENCH
    }
}

/// What to run: the model, the precision of the products, activation checkpointing, forward only.
#[derive(Clone, Copy, Debug, Default)]
pub struct BenchOptions {
    pub shape: BenchShape,
    pub steps: usize,
    pub precision: ingot_nn::Precision,
    pub activation_checkpointing: bool,
    /// Time the forward pass and loss alone (no gradient kept), as inference would run it.
    pub forward_only: bool,
}

#[derive(Clone, Debug)]
pub struct TrainBench {
    pub params: usize,
    pub tokens_per_step: usize,
    pub steps: usize,
    pub tokens_per_sec: f64,
    pub forward_secs: f64,
    pub backward_secs: f64,
    pub optimizer_secs: f64,
    pub model_flops_per_sec: f64,
    pub gemm_flops_per_sec: f64,
    pub threads: usize,
    /// Peak resident memory of this process (VmHWM), bytes; None where /proc has no such line.
    pub peak_rss_bytes: Option<u64>,
    /// Minor page faults per timed step (fresh memory the kernel had to map and zero): near 0
    /// when the steady state reuses its buffers. None where /proc has no such figure.
    pub page_faults_per_step: Option<f64>,
    /// The kernel the bf16 products ran on ("amx" or "emulated"), when precision is bf16.
    pub bf16_path: Option<&'static str>,
}

/// Minor page faults of this process so far (field 10 of /proc/self/stat).
pub fn minor_page_faults() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; the fields after its ')' are plain.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(7)?.parse().ok()
}

/// VmHWM of this process, from /proc/self/status.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

impl TrainBench {
    pub fn mfu(&self) -> f64 {
        self.model_flops_per_sec / self.gemm_flops_per_sec
    }
}

/// f32 GEMM rate of this machine: median of 5 products of 1024x1024 matrices.
pub fn gemm_flops_per_sec() -> Result<f64> {
    let dev = Device::Cpu;
    let n = 1024;
    let a = Tensor::ones((n, n), DType::F32, &dev).context(|| "gemm bench".into())?;
    let mut rates = Vec::new();
    for i in 0..6 {
        let t = Instant::now();
        let c = a.matmul(&a).context(|| "gemm bench".into())?;
        let _ = c.sum_all().context(|| "gemm bench".into())?;
        if i > 0 {
            rates.push(2.0 * (n * n * n) as f64 / t.elapsed().as_secs_f64());
        }
    }
    rates.sort_by(|a, b| a.total_cmp(b));
    Ok(rates[rates.len() / 2])
}

/// Run `options.steps` timed training steps after one warm-up step.
pub fn run(options: BenchOptions) -> Result<TrainBench> {
    let steps = options.steps;
    let _precision = options.precision.enter();
    let BenchShape { layers, heads, width, vocab, context: ctx, batch } = options.shape;
    let dev = Device::Cpu;
    let section = crate::recipes::pretrain::ModelSection {
        preset: "tiny".into(),
        overrides: json!({ "n_layer": layers, "n_head": heads, "n_embd": width, "n_positions": ctx })
            .as_object()
            .cloned()
            .unwrap_or_default(),
    };
    let (mut model, varmap, _) = crate::recipes::pretrain::build_model(&section, vocab, 1, &dev)?;
    if options.activation_checkpointing {
        model.enable_checkpointing(varmap.clone());
    }
    let vars = named_vars(&varmap)?;
    let params: usize = vars.iter().map(|(_, v)| v.elem_count()).sum();
    let non_embedding = params - ctx * width; // nanoGPT excludes position embeddings
    let mut opt = AdamW::new(vars.clone(), AdamWConfig { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1 })?;
    let mut rng = StdRng::seed_from_u64(0);
    let (mut fwd, mut bwd, mut optim) = (0f64, 0f64, 0f64);
    let mut total = 0f64;
    let mut faults_at_first_timed_step = None;
    for step in 0..=steps {
        if step == 1 {
            faults_at_first_timed_step = minor_page_faults();
        }
        let tokens: Vec<u32> = (0..batch * (ctx + 1)).map(|_| rng.random_range(0..vocab as u32)).collect();
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for b in 0..batch {
            let row = &tokens[b * (ctx + 1)..(b + 1) * (ctx + 1)];
            x.extend_from_slice(&row[..ctx]);
            y.extend_from_slice(&row[1..]);
        }
        let t0 = Instant::now();
        if options.forward_only {
            let loss = lm_loss(&model, &x, &y, batch, ctx, &dev)?.detach();
            let _ = loss.to_scalar::<f32>().context(|| "loss".into())?;
            if step > 0 {
                let secs = t0.elapsed().as_secs_f64();
                fwd += secs;
                total += secs;
            }
            continue;
        }
        let loss = lm_loss(&model, &x, &y, batch, ctx, &dev)?;
        let _ = loss.to_scalar::<f32>().context(|| "loss".into())?;
        let t1 = Instant::now();
        let grads = loss.backward().context(|| "backward".into())?;
        let t2 = Instant::now();
        let norm = crate::optim::grad_norm(&grads, opt.vars())?;
        opt.step_scaled(&grads, 1e-4, crate::optim::clip_coefficient(norm, 1.0))?;
        let t3 = Instant::now();
        if step > 0 {
            fwd += (t1 - t0).as_secs_f64();
            bwd += (t2 - t1).as_secs_f64();
            optim += (t3 - t2).as_secs_f64();
            total += (t3 - t0).as_secs_f64();
        }
    }
    let tokens_per_step = batch * ctx;
    let tokens_per_sec = (steps * tokens_per_step) as f64 / total;
    // Forward alone is a third of the training FLOPs.
    let train_flops = 6.0 * non_embedding as f64 + 12.0 * (layers * heads * (width / heads) * ctx) as f64;
    let flops_per_token = if options.forward_only { train_flops / 3.0 } else { train_flops };
    Ok(TrainBench {
        peak_rss_bytes: peak_rss_bytes(),
        page_faults_per_step: faults_at_first_timed_step
            .zip(minor_page_faults())
            .map(|(a, b)| b.saturating_sub(a) as f64 / steps as f64),
        bf16_path: (options.precision == ingot_nn::Precision::Bf16).then(|| ingot_kernels::bf16_path().name()),
        params,
        tokens_per_step,
        steps,
        tokens_per_sec,
        forward_secs: fwd / steps as f64,
        backward_secs: bwd / steps as f64,
        optimizer_secs: optim / steps as f64,
        model_flops_per_sec: flops_per_token * tokens_per_sec,
        gemm_flops_per_sec: gemm_flops_per_sec()?,
        threads: candle_core::utils::get_num_threads(),
    })
}
