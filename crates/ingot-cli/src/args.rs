//! Flags shared by every command that runs a model, and their validation into typed settings.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use ingot_generate::{GenerateParams, SamplingParams};

#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// A GGUF file or a checkpoint folder (config.json, *.safetensors, tokenizer.json).
    /// Default: the default model, SmolLM2-135M-Instruct Q4_1, found in $INGOT_HOME/models,
    /// ./assets/models or beside the binary (fetch it with `scripts/fetch-assets model`).
    #[arg(long, short = 'm', value_name = "PATH")]
    pub model: Option<PathBuf>,

    /// A LoRA adapter folder to apply to the model (PEFT layout: adapter_config.json and
    /// adapter_model.safetensors, as `ingot sft` writes under <out>/adapter).
    #[arg(long, value_name = "DIR")]
    pub adapter: Option<PathBuf>,

    /// Worker threads for tensor kernels (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// Decode with f32 activations in every product, the forward pass's arithmetic. Without it
    /// the decode loop reads Q4_0/Q4_1/Q8_0 weights against activations quantized per block to
    /// 16 bits (faster; logits within ~1e-3 of the largest). Prefill and evaluation are exact
    /// either way.
    #[arg(long)]
    pub exact: bool,
}

impl ModelArgs {
    pub fn model_path(&self) -> Result<PathBuf> {
        match &self.model {
            Some(p) => Ok(p.clone()),
            None => Ok(ingot_core::assets::default_model()?),
        }
    }

    pub fn load(&self) -> Result<ingot_generate::Pipeline> {
        set_threads(self.threads)?;
        let path = self.model_path()?;
        let pipeline =
            ingot_generate::Pipeline::load_with_adapter(&path, self.adapter.as_deref(), &candle_core::Device::Cpu)?;
        if self.exact {
            // (The loop is made here rather than at the first decode; fast is its default.)
            if let Some(fast) = pipeline.model.decode_loop() {
                fast.set_exact(true);
            }
        }
        Ok(pipeline)
    }
}

/// Apply --threads before any kernel runs: candle reads RAYON_NUM_THREADS once, and its CPU
/// kernels and Ingot's run on rayon's global pool (an "already initialised" error is harmless).
pub fn set_threads(threads: Option<usize>) -> Result<()> {
    if let Some(n) = threads {
        ingot_core::limits::check_threads("--threads", n)?;
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
        let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
    }
    Ok(())
}

/// Flags shared by the training recipes (`pretrain`, `sft`).
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// A TOML config; see configs/*.toml for every field, commented.
    #[arg(long, short = 'c')]
    pub config: PathBuf,
    /// Run folder: checkpoints (step-N/), metrics.jsonl, loss.svg and what the recipe exports.
    /// Default: runs/<config file name>.
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Continue from the latest checkpoint in the run folder (its config, tokenizer and data must
    /// be the ones it was started with; only lengths, intervals and sampling may change).
    #[arg(long, conflicts_with = "force")]
    pub resume: bool,
    /// Start afresh in a run folder that holds another run: deletes that run's checkpoints,
    /// metrics and plot.
    #[arg(long)]
    pub force: bool,
    /// Override a config field, e.g. --set train.max_steps=500 (nested: data.generate.train=100;
    /// repeatable).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Print the resolved config and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Worker threads for tensor kernels (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

impl RunArgs {
    /// The config file's text.
    pub fn config_text(&self) -> Result<String> {
        use anyhow::Context;
        std::fs::read_to_string(&self.config).with_context(|| format!("cannot read config {}", self.config.display()))
    }

    /// --out, or runs/<config file name>.
    pub fn out_dir(&self) -> PathBuf {
        self.out.clone().unwrap_or_else(|| {
            PathBuf::from("runs")
                .join(self.config.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "run".into()))
        })
    }
}

#[derive(Args, Debug, Clone)]
pub struct GenArgs {
    /// Most tokens to generate.
    #[arg(long, default_value_t = 256, allow_negative_numbers = true)]
    pub max_tokens: usize,
    /// Sampling temperature; 0 = greedy (deterministic).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub temperature: f64,
    /// Sample only from the k most likely tokens (0 = off).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Nucleus sampling: the smallest set of tokens with this much probability (1 = off).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub top_p: f64,
    /// Drop tokens less likely than this fraction of the most likely one (0 = off).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub min_p: f64,
    /// Penalise tokens already in the context (1 = off; 1.1 is typical).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub repetition_penalty: f32,
    /// Random seed for sampling.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Stop when this text appears (repeatable).
    #[arg(long, value_name = "TEXT")]
    pub stop: Vec<String>,
}

impl GenArgs {
    pub fn params(&self) -> Result<GenerateParams> {
        let sampling = SamplingParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repetition_penalty: self.repetition_penalty,
            seed: self.seed,
            ..SamplingParams::default()
        };
        sampling.validate()?;
        anyhow::ensure!(self.max_tokens > 0, "--max-tokens must be at least 1");
        Ok(GenerateParams {
            max_tokens: self.max_tokens,
            sampling,
            stop: self.stop.clone(),
            ..GenerateParams::default()
        })
    }
}
