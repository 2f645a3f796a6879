//! Recipe: group relative policy optimisation (Shao et al. 2024, DeepSeekMath), with the
//! normalisations of DAPO and Dr GRPO.
//!
//! Supports: prompts in TRL's prompt-only format ([`ingot_data::preference::load_prompts`], with
//! tools and extra fields such as an expected answer) from a file or a built-in generator; per
//! prompt, G completions sampled as one group on the step engine; rewards from weighted reward
//! functions over the completion text and the prompt's fields ([`NamedReward`]); advantages
//! normalised within each group ([`crate::loss::group_advantages`]); the clipped surrogate with
//! separate low and high clips and an optional k3 KL to the reference (the base: the adapters
//! switched off, no second copy), under token (DAPO), sequence (GRPO) or constant (Dr GRPO)
//! normalisation ([`crate::loss::grpo_loss`]); one update per group of rollouts (TRL's
//! `num_iterations = 1`: the old policy is the current one); the policy trained full, with LoRA
//! or QLoRA as SFT trains it; the shared [`Trainer`] (accumulation, clipping, AdamW, schedule,
//! checkpoints, exact resume: rollouts are seeded by step).
//!
//! Logged per metrics line: mean and spread of the reward, each reward function's mean, the
//! completion length, held-out greedy reward at each evaluation, and the rates of rollouts and
//! of updates (tokens/s).
//!
//! Assumes: the llama family; prompts small enough to hold encoded in memory.
//!
//! Errors: bad config fields (named), data errors naming file and line, a reward function that
//! fails, panics or returns a non-finite value (named, with the completion), I/O.
//!
//! Skeleton: setup (config → prompts → model → held-out reward), train, save (`<out>/adapter` or
//! `<out>/model`, as SFT writes them).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use ingot_data::preference::PromptExample;
use ingot_data::sft::{Packed, SftExample};
use ingot_generate::{Engine, Event, FinishReason, GenerateParams, SamplingParams};
use ingot_models::Model;
use ingot_nn::LoraConfig;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::pretrain::parse_toml;
use super::sft::{batch_rows, rows_logprobs, single_row, GenerateSection, Generator, Method, ModelSection};
use super::tune::{
    base_config, check_data_source, checkpoint_configs, data_files, export, load_trainable, open_run, record_manifest,
    Trainable,
};
use crate::error::{Context, Error, Result};
use crate::loss::{group_advantages, grpo_loss, GrpoConfig, GrpoNorm, GrpoTokens};
use crate::plot::MetricChart;
use crate::trainer::{Objective, TrainConfig, Trainer};

/// A reward function: (completion text, the prompt line's other fields) → reward.
pub type RewardFn = Box<dyn Fn(&str, &Map<String, Value>) -> std::result::Result<f64, String> + Send + Sync>;

/// A reward function, its name and its weight in the sum.
pub struct NamedReward {
    pub name: String,
    pub weight: f64,
    pub f: RewardFn,
}

/// Turns `[[grpo.rewards]]` names into functions (the CLI knows the built-in ones).
pub type RewardRegistry<'a> = dyn Fn(&str) -> Option<RewardFn> + 'a;

/// `[[grpo.rewards]]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewardSpec {
    pub name: String,
    #[serde(default = "one")]
    pub weight: f64,
}

fn one() -> f64 {
    1.0
}

/// How the per-token terms are averaged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossType {
    /// Over every completion token of the batch (DAPO; TRL's default).
    #[default]
    Dapo,
    /// Per completion, then over completions (the GRPO paper).
    Grpo,
    /// Divided by completions × max_completion_tokens (Dr GRPO).
    DrGrpo,
}

/// `[grpo]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpoSection {
    /// Completions per prompt (G).
    pub group_size: usize,
    /// Prompts per micro-batch (each gives G rows).
    pub prompts_per_step: usize,
    pub max_completion_tokens: usize,
    pub temperature: f64,
    pub top_p: f64,
    /// Lower and upper clip of the probability ratio (epsilon_high = epsilon in TRL unless set).
    pub epsilon: f64,
    pub epsilon_high: Option<f64>,
    /// Weight of the k3 KL to the reference (0: no reference needed).
    pub beta: f64,
    pub loss_type: LossType,
    /// Divide advantages by the group's standard deviation (false: Dr GRPO's plain centring).
    pub scale_rewards: bool,
    /// Held-out prompts scored greedily at each evaluation (0: none).
    pub eval_prompts: usize,
    pub rewards: Vec<RewardSpec>,
}

impl Default for GrpoSection {
    fn default() -> Self {
        Self {
            group_size: 8,
            prompts_per_step: 2,
            max_completion_tokens: 64,
            temperature: 1.0,
            top_p: 1.0,
            epsilon: 0.2,
            epsilon_high: None,
            beta: 0.0,
            loss_type: LossType::Dapo,
            scale_rewards: true,
            eval_prompts: 32,
            rewards: Vec::new(),
        }
    }
}

/// `[data]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptDataSection {
    /// Training prompts (JSONL, TRL's prompt-only format).
    pub train: Option<PathBuf>,
    /// Held-out prompts, scored greedily at each evaluation.
    pub val: Option<PathBuf>,
    /// Generate the prompts into `<out>/data/` instead.
    pub generate: Option<GenerateSection>,
    /// Longest prompt in tokens.
    #[serde(default = "default_prompt_len")]
    pub max_prompt_len: usize,
}

fn default_prompt_len() -> usize {
    768
}

/// A whole GRPO config file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpoRunConfig {
    pub model: ModelSection,
    #[serde(default)]
    pub lora: LoraConfig,
    pub data: PromptDataSection,
    #[serde(default)]
    pub grpo: GrpoSection,
    #[serde(default)]
    pub train: TrainConfig,
}

impl GrpoRunConfig {
    pub fn from_toml(text: &str, overrides: &[String], origin: &str) -> Result<Self> {
        let cfg: GrpoRunConfig = parse_toml(text, overrides, origin)?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<()> {
        self.train.validate()?;
        if self.model.method != Method::Full {
            self.lora.validate()?;
        }
        let g = &self.grpo;
        ingot_core::limits::at_least("grpo.group_size", g.group_size, 2)?;
        ingot_core::limits::at_least("grpo.prompts_per_step", g.prompts_per_step, 1)?;
        ingot_core::limits::at_least("grpo.max_completion_tokens", g.max_completion_tokens, 1)?;
        ingot_core::limits::at_least("data.max_prompt_len", self.data.max_prompt_len, 1)?;
        let bad = |m: String| Err(Error::Config(m));
        if !(g.epsilon > 0.0 && g.epsilon < 1.0) || g.epsilon_high.is_some_and(|e| !(e > 0.0 && e.is_finite())) {
            return bad(format!(
                "grpo.epsilon must be in (0, 1) and grpo.epsilon_high above 0, got {} and {:?}",
                g.epsilon, g.epsilon_high
            ));
        }
        if !(g.beta >= 0.0 && g.beta.is_finite()) {
            return bad(format!("grpo.beta must be 0 or more, got {}", g.beta));
        }
        if g.beta > 0.0 && self.model.method == Method::Full {
            return bad("grpo.beta > 0 needs the reference model, which is the base with the adapters switched off: use model.method = \"lora\" or \"qlora\", or set grpo.beta = 0".into());
        }
        if !(g.temperature > 0.0 && g.temperature.is_finite()) {
            return bad(format!(
                "grpo.temperature must be above 0 (a group of greedy copies has no spread), got {}",
                g.temperature
            ));
        }
        if g.rewards.is_empty() {
            return bad("grpo.rewards is empty: add at least one [[grpo.rewards]] with a name".into());
        }
        if let Some(r) = g.rewards.iter().find(|r| !r.weight.is_finite()) {
            return bad(format!("grpo.rewards: the weight of {} is {}", r.name, r.weight));
        }
        check_data_source(self.data.train.as_deref(), self.data.generate.as_ref(), "a JSONL file of prompts")
    }
}

/// The weighted reward of one completion, and each function's own value. A failing, panicking
/// or non-finite function is an error naming it and the completion.
pub fn score(rewards: &[NamedReward], text: &str, fields: &Map<String, Value>) -> Result<(f64, Vec<f64>)> {
    let mut total = 0.0;
    let mut each = Vec::with_capacity(rewards.len());
    for r in rewards {
        let value = match catch_unwind(AssertUnwindSafe(|| (r.f)(text, fields))) {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return Err(Error::Config(format!("reward function {} failed on {text:?}: {e}", r.name))),
            Err(_) => return Err(Error::Config(format!("reward function {} panicked on {text:?}", r.name))),
        };
        if !value.is_finite() {
            return Err(Error::Config(format!(
                "reward function {} returned {value} for {text:?}; rewards must be finite",
                r.name
            )));
        }
        total += r.weight * value;
        each.push(value);
    }
    Ok((total, each))
}

/// One sampled completion.
pub(crate) struct Rollout {
    pub tokens: Vec<u32>,
    pub text: String,
    /// Ended by the end-of-sequence token (not cut by the token limit).
    pub finished: bool,
}

/// Completions of `prompts` (each `samplings.len()` times), decoded together; dropout off while
/// sampling (as TRL generates in eval mode).
pub(crate) fn rollouts(
    model: &Model,
    tokenizer: &ingot_tokenizer::Tokenizer,
    prompts: &[&PromptExample],
    params: &GenerateParams,
    samplings: &[Vec<SamplingParams>],
    device: &Device,
) -> Result<Vec<Vec<Rollout>>> {
    let states: Vec<_> = model.dropout_states().into_iter().cloned().collect();
    let saved: Vec<_> = states.iter().map(|d| d.snapshot()).collect();
    states.iter().for_each(|d| d.eval());
    let result = (|| -> Result<Vec<Vec<Rollout>>> {
        let mut engine = Engine::new(model, tokenizer, device);
        let mut ids = Vec::new();
        for (p, s) in prompts.iter().zip(samplings) {
            ids.push(engine.join_group(&p.ids, params, s, None, None).map_err(|e| Error::Config(e.to_string()))?);
        }
        let mut done = std::collections::HashMap::new();
        engine
            .run(&mut |event| {
                if let Event::Done { row, generation } = event {
                    done.insert(row, generation);
                }
            })
            .map_err(|e| Error::Config(e.to_string()))?;
        let eos = tokenizer.eos_id();
        ids.iter()
            .map(|group| {
                group
                    .iter()
                    .map(|id| {
                        let g = done.remove(id).ok_or_else(|| Error::Config("a rollout did not finish".into()))?;
                        let mut tokens = g.tokens;
                        // The end-of-sequence token is part of the completion: the policy learns to stop.
                        let finished = g.finish_reason == FinishReason::Eos;
                        if let (true, Some(e)) = (finished, eos) {
                            tokens.push(e);
                        }
                        Ok(Rollout { tokens, text: g.text, finished })
                    })
                    .collect()
            })
            .collect()
    })();
    for (d, s) in states.iter().zip(saved) {
        d.restore(s);
    }
    result
}

/// Rolling figures between two metrics lines.
#[derive(Default)]
struct Figures {
    reward_sum: f64,
    reward_sq: f64,
    each: Vec<f64>,
    completions: usize,
    completion_tokens: usize,
    rollout_secs: f64,
    processed_tokens: usize,
    eval_reward: Option<f64>,
}

struct GrpoTraining<'a> {
    train: Vec<PromptExample>,
    val: Vec<PromptExample>,
    rewards: Vec<NamedReward>,
    grpo: GrpoSection,
    tokenizer: &'a ingot_tokenizer::Tokenizer,
    adapters: Option<std::sync::Arc<ingot_nn::Adapters>>,
    accum: u32,
    seed: u64,
    device: Device,
    figures: Figures,
    since: Instant,
}

impl GrpoTraining<'_> {
    fn params(&self) -> GenerateParams {
        GenerateParams { max_tokens: self.grpo.max_completion_tokens, ..Default::default() }
    }

    /// Mean greedy reward over the first `eval_prompts` held-out prompts.
    fn held_out_reward(&self, model: &Model) -> Result<Option<f64>> {
        let n = self.grpo.eval_prompts.min(self.val.len());
        if n == 0 {
            return Ok(None);
        }
        let prompts: Vec<&PromptExample> = self.val[..n].iter().collect();
        let greedy = vec![vec![SamplingParams::default()]; n];
        let outs = rollouts(model, self.tokenizer, &prompts, &self.params(), &greedy, &self.device)?;
        let mut sum = 0.0;
        for (p, group) in prompts.iter().zip(&outs) {
            sum += score(&self.rewards, &group[0].text, &p.fields)?.0;
        }
        Ok(Some(sum / n as f64))
    }
}

impl Objective for GrpoTraining<'_> {
    fn loss(&mut self, model: &Model, step: u64, micro: u32) -> Result<(Tensor, usize)> {
        let g = self.grpo.group_size;
        let idx = batch_rows(self.train.len(), self.grpo.prompts_per_step, self.seed, step, micro, self.accum);
        let prompts: Vec<&PromptExample> = idx.iter().map(|&i| &self.train[i]).collect();
        // Seeds are a function of (seed, step, micro, prompt, k): a resumed run samples the same.
        let samplings: Vec<Vec<SamplingParams>> = (0..prompts.len())
            .map(|p| {
                (0..g)
                    .map(|k| SamplingParams {
                        temperature: self.grpo.temperature,
                        top_p: self.grpo.top_p,
                        seed: self.seed
                            ^ (step.wrapping_mul(0x9E37_79B9_7F4A_7C15))
                            ^ ((micro as u64) << 48)
                            ^ ((p as u64) << 32)
                            ^ k as u64,
                        ..SamplingParams::default()
                    })
                    .collect()
            })
            .collect();
        let started = Instant::now();
        let outs = rollouts(model, self.tokenizer, &prompts, &self.params(), &samplings, &self.device)?;
        self.figures.rollout_secs += started.elapsed().as_secs_f64();

        // Rewards and group-normalised advantages.
        let mut rewards = Vec::with_capacity(prompts.len() * g);
        let f = &mut self.figures;
        if f.each.len() != self.rewards.len() {
            f.each = vec![0.0; self.rewards.len()];
        }
        for (p, group) in prompts.iter().zip(&outs) {
            for r in group {
                let (total, each) = score(&self.rewards, &r.text, &p.fields)?;
                rewards.push(total as f32);
                f.reward_sum += total;
                f.reward_sq += total * total;
                each.iter().zip(f.each.iter_mut()).for_each(|(v, s)| *s += v);
                f.completions += 1;
                f.completion_tokens += r.tokens.len();
            }
        }
        let advantages =
            group_advantages(&rewards, g, self.grpo.scale_rewards).context(|| "group advantages".into())?;

        // The policy's log-probabilities of every completion token.
        let rows: Vec<Packed> = prompts
            .iter()
            .zip(&outs)
            .flat_map(|(p, group)| group.iter().map(move |r| (p, r)))
            .map(|(p, r)| {
                let mut ids = p.ids.clone();
                ids.extend_from_slice(&r.tokens);
                let trained = (0..ids.len()).map(|i| i >= p.ids.len()).collect();
                single_row(&SftExample { ids, trained, line: p.line })
            })
            .collect();
        let refs: Vec<&Packed> = rows.iter().filter(|r| r.trained.contains(&true)).collect();
        let kept: Vec<usize> =
            rows.iter().enumerate().filter(|(_, r)| r.trained.contains(&true)).map(|(i, _)| i).collect();
        let tokens: usize = rows.iter().map(|r| r.ids.len()).sum();
        self.figures.processed_tokens += tokens;
        if refs.is_empty() {
            return Err(Error::Config("every completion of the batch is empty".into()));
        }
        let (lp, row_of) = rows_logprobs(model, &refs, &self.device)?;
        let ref_lp = if self.grpo.beta > 0.0 {
            let adapters =
                self.adapters.as_ref().ok_or_else(|| Error::Config("grpo.beta > 0 needs adapters".into()))?;
            let was = adapters.set_enabled(false);
            let reference = rows_logprobs(model, &refs, &self.device);
            adapters.set_enabled(was);
            Some(reference?.0.detach())
        } else {
            None
        };
        let adv: Vec<f32> = row_of.iter().map(|&r| advantages[kept[r as usize]]).collect();
        let n = adv.len();
        let adv = Tensor::from_vec(adv, n, &self.device).context(|| "advantages".into())?;
        let mask = Tensor::ones(n, candle_core::DType::F32, &self.device).context(|| "mask".into())?;
        let old = lp.detach();
        let norm = match self.grpo.loss_type {
            LossType::Dapo => GrpoNorm::Token,
            LossType::Grpo => GrpoNorm::Sequence,
            LossType::DrGrpo => GrpoNorm::Constant(self.grpo.max_completion_tokens),
        };
        let loss = grpo_loss(
            &GrpoTokens {
                logprobs: &lp,
                old_logprobs: &old,
                ref_logprobs: ref_lp.as_ref(),
                advantages: &adv,
                mask: &mask,
                seq_of_token: &row_of,
                n_seq: refs.len(),
            },
            &GrpoConfig {
                eps_low: self.grpo.epsilon,
                eps_high: self.grpo.epsilon_high.unwrap_or(self.grpo.epsilon),
                beta: self.grpo.beta,
                norm,
            },
        )
        .context(|| "GRPO loss".into())?;
        Ok((loss, tokens))
    }

    fn eval_loss(&mut self, model: &Model) -> Result<Option<f64>> {
        self.figures.eval_reward = self.held_out_reward(model)?;
        Ok(None)
    }

    fn take_metrics(&mut self) -> Map<String, Value> {
        let f = std::mem::take(&mut self.figures);
        let wall = std::mem::replace(&mut self.since, Instant::now()).elapsed().as_secs_f64();
        let mut m = Map::new();
        if f.completions > 0 {
            let n = f.completions as f64;
            let mean = f.reward_sum / n;
            m.insert("reward".into(), json!(mean));
            m.insert("reward_std".into(), json!((f.reward_sq / n - mean * mean).max(0.0).sqrt()));
            for (r, s) in self.rewards.iter().zip(&f.each) {
                m.insert(format!("rewards/{}", r.name), json!(s / n));
            }
            m.insert("completion_length".into(), json!(f.completion_tokens as f64 / n));
            m.insert("rollout_tokens_per_sec".into(), json!(f.completion_tokens as f64 / f.rollout_secs.max(1e-9)));
            let update_secs = (wall - f.rollout_secs).max(1e-9);
            m.insert("update_tokens_per_sec".into(), json!(f.processed_tokens as f64 / update_secs));
        }
        if let Some(r) = f.eval_reward {
            m.insert("eval/reward".into(), json!(r));
        }
        m
    }

    fn charts(&self) -> Vec<MetricChart> {
        vec![MetricChart {
            file: "reward.svg",
            title: "GRPO reward",
            y_label: "mean reward",
            lines: vec![("sampled groups", "reward")],
            trend: Some(("held-out prompts (greedy)", "eval/reward")),
            level: None,
        }]
    }
}

/// What `ingot grpo` reports.
#[derive(Clone, Debug, Serialize)]
pub struct GrpoReport {
    pub method: &'static str,
    pub steps_run: u64,
    pub final_step: u64,
    pub final_loss: f64,
    pub tokens: u64,
    pub seconds: f64,
    pub prompts: usize,
    /// Mean greedy reward on the held-out prompts before and after training.
    pub eval_prompts: usize,
    pub eval_reward_start: Option<f64>,
    pub eval_reward_end: Option<f64>,
    pub output: PathBuf,
}

/// Run the recipe: the whole of `ingot grpo`. `registry` resolves `[[grpo.rewards]]` names.
#[allow(clippy::too_many_arguments)]
pub fn run(
    cfg: &GrpoRunConfig,
    model_path: &Path,
    out: &Path,
    resume: bool,
    force: bool,
    progress: bool,
    generate: &Generator,
    registry: &RewardRegistry,
) -> Result<GrpoReport> {
    cfg.validate()?;
    let rewards = cfg
        .grpo
        .rewards
        .iter()
        .map(|spec| {
            let f = registry(&spec.name)
                .ok_or_else(|| Error::Config(format!("grpo.rewards: no reward function named {:?}", spec.name)))?;
            Ok(NamedReward { name: spec.name.clone(), weight: spec.weight, f })
        })
        .collect::<Result<Vec<_>>>()?;
    let device = Device::Cpu;
    open_run(out, resume, force)?;
    let (train_path, val_path) = data_files(
        cfg.data.train.as_deref(),
        cfg.data.val.as_deref(),
        cfg.data.generate.as_ref(),
        out,
        resume,
        generate,
    )?;
    let vars = VarMap::new();
    let Trainable { model, adapters, tokenizer, .. } =
        load_trainable(&cfg.model, &cfg.lora, &cfg.train, model_path, &device, &vars)?;
    let model_config = base_config(&model, &tokenizer)?;
    let config = serde_json::to_value(cfg).unwrap_or(Value::Null);
    record_manifest(
        out,
        resume,
        "grpo",
        config,
        &["model", "lora", "data", "grpo", "train"],
        model_path,
        &tokenizer,
        &train_path,
    )?;
    let max_prompt =
        cfg.data.max_prompt_len.min(model.context_length().saturating_sub(cfg.grpo.max_completion_tokens + 1));
    let train = ingot_data::preference::load_prompts(&train_path, &tokenizer, max_prompt)?;
    let val = match &val_path {
        Some(p) => ingot_data::preference::load_prompts(p, &tokenizer, max_prompt)?,
        None => Vec::new(),
    };
    eprintln!(
        "grpo ({}): {} prompts x {} completions, {} per step; {} held-out prompts",
        cfg.model.method.name(),
        train.len(),
        cfg.grpo.group_size,
        cfg.grpo.prompts_per_step,
        val.len().min(cfg.grpo.eval_prompts)
    );
    let mut objective = GrpoTraining {
        train,
        val,
        rewards,
        grpo: cfg.grpo.clone(),
        tokenizer: &tokenizer,
        adapters: adapters.clone(),
        accum: cfg.train.grad_accum,
        seed: cfg.train.seed,
        device: device.clone(),
        figures: Figures::default(),
        since: Instant::now(),
    };
    let eval_reward_start = if resume { None } else { objective.held_out_reward(&model)? };
    let (checkpoint_config, adapter_config) = checkpoint_configs(&model, adapters.as_ref(), model_path, &model_config);
    let trainer = Trainer {
        model: &model,
        varmap: &vars,
        tokenizer: &tokenizer,
        model_config: checkpoint_config,
        run_info: serde_json::to_value(cfg).unwrap_or(Value::Null),
        cfg: cfg.train.clone(),
        out_dir: out.to_path_buf(),
        progress,
        adapter_config,
    };
    let report = trainer.run(&mut objective, resume)?;
    let eval_reward_end = objective.held_out_reward(&model)?;
    let output = export(out, None, &model, adapters.as_ref(), &tokenizer, &model_config, model_path)?;
    Ok(GrpoReport {
        method: cfg.model.method.name(),
        steps_run: report.steps_run,
        final_step: report.final_step,
        final_loss: report.final_loss,
        tokens: report.tokens,
        seconds: report.seconds,
        prompts: objective.train.len(),
        eval_prompts: objective.val.len().min(cfg.grpo.eval_prompts),
        eval_reward_start,
        eval_reward_end,
        output,
    })
}
