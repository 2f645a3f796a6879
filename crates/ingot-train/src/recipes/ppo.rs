//! Recipe: RLHF with PPO (Ouyang et al. 2022, InstructGPT; TRL's PPOTrainer as the reference).
//!
//! Supports: prompts in TRL's prompt-only format (file or built-in set); a reward model trained
//! by `ingot reward-train` scoring each completion; a value head (`v_head`, C → 1 with a bias,
//! trained with the policy); per-token rewards `−kl_coef · KL_t` (k1 or k3 against the reference:
//! the base with the adapters switched off, no second copy) plus the score at the last token, and
//! an optional penalty for completions that never end; an adaptive KL coefficient (Ziegler et al.
//! 2019) when `target_kl` is set; GAE (γ = 1, λ = 0.95 by default) with whitened advantages;
//! clipped policy and value losses over several PPO epochs of minibatches per rollout batch.
//! Trainer steps are minibatch updates: a new batch of rollouts is sampled every `ppo_epochs ×
//! minibatches` steps, from the policy as it is then, and kept under `<out>/rollouts/` so that a
//! resumed run continues on the very same batch (exact resume).
//!
//! Logged per metrics line: the reward model's mean score, the KL to the reference (per
//! completion, summed over its tokens), the KL coefficient, policy and value losses, the clip
//! fraction, the completion length, and held-out greedy scores at each evaluation.
//!
//! Assumes: LoRA or QLoRA (the reference is the base with the adapters off); the reward model on
//! the same tokenizer; `train.grad_accum = 1` (a minibatch is one update).
//!
//! Errors: bad config fields (named), data errors naming file and line, I/O.
//!
//! Skeleton: setup (config → prompts → policy and value head → reward model), train, save
//! (`<out>/adapter` and `<out>/v_head.safetensors`).

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use ingot_data::preference::PromptExample;
use ingot_data::sft::{Packed, SftExample};
use ingot_generate::{GenerateParams, SamplingParams};
use ingot_models::heads::ScalarHead;
use ingot_models::Model;
use ingot_nn::LoraConfig;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::grpo::{rollouts, PromptDataSection};
use super::pretrain::parse_toml;
use super::reward::{load_reward_model, reward_base, scores};
use super::sft::{batch_rows, rows_logprobs, rows_logprobs_hidden, single_row, Generator, Method, ModelSection};
use super::tune::{
    base_config, check_data_source, checkpoint_configs, data_files, export, load_trainable, open_run, record_manifest,
    Trainable,
};
use crate::error::{Context, Error, Result};
use crate::loss::{gae, kl_penalty, ppo_policy_loss, ppo_value_loss, whiten, Kl};
use crate::plot::MetricChart;
use crate::trainer::{Objective, TrainConfig, Trainer};

/// The value head's name (TRL's `v_head`).
pub const VALUE_HEAD: &str = "v_head";

/// Which KL estimator shapes the per-token penalty.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KlEstimator {
    #[default]
    K1,
    K3,
}

/// `[ppo]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PpoSection {
    /// The reward model's folder (`ingot reward-train`'s <out>).
    pub reward_model: PathBuf,
    /// Prompts per rollout batch (one completion each).
    pub rollouts_per_batch: usize,
    /// Passes over each rollout batch, and minibatches per pass.
    pub ppo_epochs: usize,
    pub minibatches: usize,
    pub max_completion_tokens: usize,
    pub temperature: f64,
    /// Initial KL coefficient; adapted towards `target_kl` when that is set.
    pub kl_coef: f64,
    pub kl_estimator: KlEstimator,
    /// Target KL per completion (summed over its tokens) for the adaptive controller.
    pub target_kl: Option<f64>,
    /// Batches over which the controller moves the coefficient by at most ±20% of the error.
    pub kl_horizon: f64,
    pub gamma: f64,
    pub lam: f64,
    pub cliprange: f64,
    pub cliprange_value: f64,
    pub vf_coef: f64,
    /// Added to the score of a completion that hits the token limit without ending (TRL's
    /// missing_eos_penalty, given as a positive number to subtract).
    pub missing_eos_penalty: Option<f64>,
    /// Held-out prompts scored greedily at each evaluation.
    pub eval_prompts: usize,
}

impl Default for PpoSection {
    fn default() -> Self {
        Self {
            reward_model: PathBuf::new(),
            rollouts_per_batch: 8,
            ppo_epochs: 2,
            minibatches: 2,
            max_completion_tokens: 48,
            temperature: 0.7,
            kl_coef: 0.05,
            kl_estimator: KlEstimator::K1,
            target_kl: None,
            kl_horizon: 10.0,
            gamma: 1.0,
            lam: 0.95,
            cliprange: 0.2,
            cliprange_value: 0.2,
            vf_coef: 0.1,
            missing_eos_penalty: None,
            eval_prompts: 32,
        }
    }
}

/// A whole PPO config file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PpoConfig {
    pub model: ModelSection,
    #[serde(default)]
    pub lora: LoraConfig,
    pub data: PromptDataSection,
    pub ppo: PpoSection,
    #[serde(default)]
    pub train: TrainConfig,
}

impl PpoConfig {
    pub fn from_toml(text: &str, overrides: &[String], origin: &str) -> Result<Self> {
        let cfg: PpoConfig = parse_toml(text, overrides, origin)?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<()> {
        self.train.validate()?;
        let p = &self.ppo;
        let bad = |m: String| Err(Error::Config(m));
        if self.model.method == Method::Full {
            return bad(
                "PPO's reference is the base with the adapters switched off: use model.method = \"lora\" or \"qlora\""
                    .into(),
            );
        }
        self.lora.validate()?;
        if self.train.grad_accum != 1 {
            return bad(format!(
                "train.grad_accum = {}: in PPO each minibatch is one update; set ppo.minibatches instead",
                self.train.grad_accum
            ));
        }
        if p.reward_model.as_os_str().is_empty() {
            return bad("ppo.reward_model is not set: give the folder `ingot reward-train` wrote".into());
        }
        ingot_core::limits::at_least("ppo.rollouts_per_batch", p.rollouts_per_batch, 2)?;
        ingot_core::limits::at_least("ppo.ppo_epochs", p.ppo_epochs, 1)?;
        ingot_core::limits::at_least("ppo.minibatches", p.minibatches, 1)?;
        ingot_core::limits::at_least("ppo.max_completion_tokens", p.max_completion_tokens, 1)?;
        if p.minibatches > p.rollouts_per_batch {
            return bad(format!(
                "ppo.minibatches = {} is more than ppo.rollouts_per_batch = {}",
                p.minibatches, p.rollouts_per_batch
            ));
        }
        for (name, v) in [("ppo.kl_coef", p.kl_coef), ("ppo.vf_coef", p.vf_coef)] {
            if !(v >= 0.0 && v.is_finite()) {
                return bad(format!("{name} must be 0 or more, got {v}"));
            }
        }
        for (name, v) in [
            ("ppo.cliprange", p.cliprange),
            ("ppo.cliprange_value", p.cliprange_value),
            ("ppo.temperature", p.temperature),
            ("ppo.kl_horizon", p.kl_horizon),
        ] {
            if !(v > 0.0 && v.is_finite()) {
                return bad(format!("{name} must be above 0, got {v}"));
            }
        }
        if !(0.0..=1.0).contains(&p.gamma) || !(0.0..=1.0).contains(&p.lam) {
            return bad(format!("ppo.gamma and ppo.lam must be in [0, 1], got {} and {}", p.gamma, p.lam));
        }
        if p.target_kl.is_some_and(|t| !(t > 0.0 && t.is_finite())) {
            return bad(format!("ppo.target_kl must be above 0, got {:?}", p.target_kl));
        }
        check_data_source(self.data.train.as_deref(), self.data.generate.as_ref(), "a JSONL file of prompts")
    }

    fn updates_per_batch(&self) -> u64 {
        (self.ppo.ppo_epochs * self.ppo.minibatches) as u64
    }
}

/// One rollout batch: everything its updates need, as written to `<out>/rollouts/`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Batch {
    id: u64,
    /// Prompt + completion ids and where the completion starts, per row.
    rows: Vec<(Vec<u32>, usize)>,
    /// Per completion token, row by row: the sampling policy's log-probabilities and values,
    /// and the advantages and returns.
    old_logprobs: Vec<f32>,
    old_values: Vec<f32>,
    advantages: Vec<f32>,
    returns: Vec<f32>,
    /// The reward model's scores (after the missing-EOS penalty), the KL per completion and the
    /// coefficient used.
    scores: Vec<f32>,
    kl: Vec<f32>,
    kl_coef: f64,
    completion_tokens: usize,
}

/// The adaptive controller's next coefficient (Ziegler et al. 2019; TRL's AdaptiveKLController).
pub fn adapt_kl(coef: f64, kl: f64, target: f64, horizon: f64, batches: f64) -> f64 {
    let error = (kl / target - 1.0).clamp(-0.2, 0.2);
    coef * (1.0 + error * batches / horizon)
}

#[derive(Default)]
struct Figures {
    policy_loss: f64,
    value_loss: f64,
    clipfrac: f64,
    updates: usize,
    eval_score: Option<f64>,
}

struct PpoTraining<'a> {
    train: Vec<PromptExample>,
    val: Vec<PromptExample>,
    cfg: PpoSection,
    per_batch: u64,
    tokenizer: &'a ingot_tokenizer::Tokenizer,
    adapters: std::sync::Arc<ingot_nn::Adapters>,
    value: ScalarHead,
    reward: (Model, ScalarHead),
    seed: u64,
    device: Device,
    dir: PathBuf,
    batch: Option<Batch>,
    figures: Figures,
}

impl PpoTraining<'_> {
    fn params(&self) -> GenerateParams {
        GenerateParams { max_tokens: self.cfg.max_completion_tokens, ..Default::default() }
    }

    fn rows_of(rows: &[(Vec<u32>, usize)]) -> Vec<Packed> {
        rows.iter()
            .map(|(ids, start)| {
                let trained = (0..ids.len()).map(|i| i >= *start).collect();
                single_row(&SftExample { ids: ids.clone(), trained, line: 0 })
            })
            .collect()
    }

    /// The reward model's scores of prompt + completion rows.
    fn score_rows(&self, rows: &[Packed]) -> Result<Vec<f32>> {
        let examples: Vec<SftExample> =
            rows.iter().map(|r| SftExample { ids: r.ids.clone(), trained: r.trained.clone(), line: 0 }).collect();
        let refs: Vec<&SftExample> = examples.iter().collect();
        let (model, head) = &self.reward;
        Ok(scores(model, head, &refs, &self.device)?.detach().to_vec1().context(|| "reading scores".into())?)
    }

    fn batch_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("batch-{id:08}.json"))
    }

    /// The rollout batch `id`: read back when an earlier run made it, else sampled and scored.
    fn batch(&mut self, model: &Model, id: u64) -> Result<Batch> {
        let path = self.batch_path(id);
        if let Ok(text) = std::fs::read_to_string(&path) {
            return serde_json::from_str(&text).map_err(Error::json(&path));
        }
        // The coefficient: adapted from the previous batch's KL when a target is set.
        let kl_coef = match (id, self.cfg.target_kl) {
            (0, _) | (_, None) => self.batch.as_ref().map_or(self.cfg.kl_coef, |b| b.kl_coef),
            (_, Some(target)) => {
                let prev: Batch = match &self.batch {
                    Some(b) if b.id + 1 == id => b.clone(),
                    _ => {
                        let p = self.batch_path(id - 1);
                        serde_json::from_str(&std::fs::read_to_string(&p).map_err(Error::io("reading", &p))?)
                            .map_err(Error::json(&p))?
                    }
                };
                let kl = prev.kl.iter().map(|&k| k as f64).sum::<f64>() / prev.kl.len().max(1) as f64;
                adapt_kl(prev.kl_coef, kl, target, self.cfg.kl_horizon, 1.0)
            }
        };
        let idx = batch_rows(self.train.len(), self.cfg.rollouts_per_batch, self.seed, id, 0, 1);
        let prompts: Vec<&PromptExample> = idx.iter().map(|&i| &self.train[i]).collect();
        let samplings: Vec<Vec<SamplingParams>> = (0..prompts.len())
            .map(|i| {
                vec![SamplingParams {
                    temperature: self.cfg.temperature,
                    seed: self.seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i as u64,
                    ..SamplingParams::default()
                }]
            })
            .collect();
        let outs = rollouts(model, self.tokenizer, &prompts, &self.params(), &samplings, &self.device)?;
        let mut rows = Vec::new();
        let mut finished = Vec::new();
        for (p, group) in prompts.iter().zip(&outs) {
            let r = &group[0];
            let mut ids = p.ids.clone();
            ids.extend_from_slice(&r.tokens);
            if r.tokens.is_empty() {
                // An empty completion still ends: score its end-of-sequence token.
                ids.extend(self.tokenizer.eos_id());
            }
            rows.push((ids, p.ids.len()));
            finished.push(r.finished);
        }
        let packed = Self::rows_of(&rows);
        let refs: Vec<&Packed> = packed.iter().collect();
        let mut score = self.score_rows(&packed)?;
        if let Some(penalty) = self.cfg.missing_eos_penalty {
            for (s, &done) in score.iter_mut().zip(&finished) {
                if !done {
                    *s -= penalty as f32;
                }
            }
        }
        // The sampling policy's log-probabilities and values, and the reference's.
        let (lp, row_of, hidden) = rows_logprobs_hidden(model, &refs, &self.device)?;
        let values: Vec<f32> = self.value.forward(&hidden.detach())?.to_vec1().context(|| "values".into())?;
        let lp_t = lp.detach();
        let was = self.adapters.set_enabled(false);
        let reference = rows_logprobs(model, &refs, &self.device);
        self.adapters.set_enabled(was);
        let ref_lp = reference?.0.detach();
        let kind = match self.cfg.kl_estimator {
            KlEstimator::K1 => Kl::K1,
            KlEstimator::K3 => Kl::K3,
        };
        let kl_tok: Vec<f32> =
            kl_penalty(&lp_t, &ref_lp, kind).context(|| "KL".into())?.to_vec1().context(|| "KL".into())?;
        let old_logprobs: Vec<f32> = lp_t.to_vec1().context(|| "log-probabilities".into())?;
        // Per completion: rewards, GAE.
        let (mut advantages, mut returns, mut kl) = (Vec::new(), Vec::new(), vec![0f32; rows.len()]);
        let mut start = 0;
        for r in 0..rows.len() {
            let end = start + row_of[start..].iter().take_while(|&&o| o as usize == r).count();
            let mut rewards: Vec<f32> = kl_tok[start..end].iter().map(|k| -(kl_coef as f32) * k).collect();
            if let Some(last) = rewards.last_mut() {
                *last += score[r];
            }
            kl[r] = kl_tok[start..end].iter().sum();
            let (a, ret) = gae(&rewards, &values[start..end], self.cfg.gamma, self.cfg.lam).context(|| "GAE".into())?;
            advantages.extend(a);
            returns.extend(ret);
            start = end;
        }
        let advantages = whiten(&advantages, true).context(|| "whitening advantages".into())?;
        let batch = Batch {
            id,
            completion_tokens: old_logprobs.len(),
            rows,
            old_logprobs,
            old_values: values,
            advantages,
            returns,
            scores: score,
            kl,
            kl_coef,
        };
        // Every rank computes the same batch (seeded); rank 0 keeps it for resuming.
        if crate::collective::world().is_main() {
            std::fs::create_dir_all(&self.dir).map_err(Error::io("creating", &self.dir))?;
            ingot_core::atomic::write_file(&path, serde_json::to_string(&batch).unwrap_or_default().as_bytes())?;
        }
        Ok(batch)
    }

    /// Mean score the reward model gives the policy's greedy completions of held-out prompts.
    fn held_out_score(&self, model: &Model) -> Result<Option<f64>> {
        let n = self.cfg.eval_prompts.min(self.val.len());
        if n == 0 {
            return Ok(None);
        }
        let prompts: Vec<&PromptExample> = self.val[..n].iter().collect();
        let outs = rollouts(
            model,
            self.tokenizer,
            &prompts,
            &self.params(),
            &vec![vec![SamplingParams::default()]; n],
            &self.device,
        )?;
        let rows: Vec<(Vec<u32>, usize)> = prompts
            .iter()
            .zip(&outs)
            .map(|(p, g)| {
                let mut ids = p.ids.clone();
                ids.extend_from_slice(&g[0].tokens);
                if g[0].tokens.is_empty() {
                    ids.extend(self.tokenizer.eos_id());
                }
                (ids, p.ids.len())
            })
            .collect();
        let s = self.score_rows(&Self::rows_of(&rows))?;
        Ok(Some(s.iter().map(|&v| v as f64).sum::<f64>() / n as f64))
    }
}

impl Objective for PpoTraining<'_> {
    fn loss(&mut self, model: &Model, step: u64, _micro: u32) -> Result<(Tensor, usize)> {
        let id = step / self.per_batch;
        if self.batch.as_ref().map(|b| b.id) != Some(id) {
            self.batch = Some(self.batch(model, id)?);
        }
        let b = self.batch.as_ref().ok_or_else(|| Error::Config("no rollout batch".into()))?;
        // This update's minibatch: a seeded permutation of the batch per PPO epoch, cut in parts.
        let within = step % self.per_batch;
        let (epoch, part) = (within / self.cfg.minibatches as u64, (within % self.cfg.minibatches as u64) as usize);
        let mut order: Vec<usize> = (0..b.rows.len()).collect();
        {
            use rand::seq::SliceRandom;
            use rand::SeedableRng;
            order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(self.seed ^ (id << 16) ^ epoch));
        }
        let size = b.rows.len().div_ceil(self.cfg.minibatches);
        let mine: Vec<usize> = order.iter().copied().skip(part * size).take(size).collect();
        // Token offsets of each row in the batch's flat per-token vectors.
        let mut offsets = Vec::with_capacity(b.rows.len() + 1);
        offsets.push(0usize);
        for (ids, start) in &b.rows {
            offsets.push(offsets.last().copied().unwrap_or(0) + ids.len() - start);
        }
        let rows: Vec<(Vec<u32>, usize)> = mine.iter().map(|&r| b.rows[r].clone()).collect();
        let packed = Self::rows_of(&rows);
        let refs: Vec<&Packed> = packed.iter().collect();
        let (lp, _, hidden) = rows_logprobs_hidden(model, &refs, &self.device)?;
        let values = self.value.forward(&hidden)?;
        let pick = |v: &[f32]| -> Vec<f32> {
            mine.iter().flat_map(|&r| v[offsets[r]..offsets[r + 1]].iter().copied()).collect()
        };
        let tensor = |v: Vec<f32>| -> Result<Tensor> {
            let n = v.len();
            Ok(Tensor::from_vec(v, n, &self.device).context(|| "minibatch".into())?)
        };
        let (old_lp, old_v, adv, ret) = (
            tensor(pick(&b.old_logprobs))?,
            tensor(pick(&b.old_values))?,
            tensor(pick(&b.advantages))?,
            tensor(pick(&b.returns))?,
        );
        let mask = Tensor::ones(adv.dim(0).context(|| "mask".into())?, candle_core::DType::F32, &self.device)
            .context(|| "mask".into())?;
        let (pg, clipfrac) =
            ppo_policy_loss(&lp, &old_lp, &adv, &mask, self.cfg.cliprange).context(|| "policy loss".into())?;
        let (vf, _) =
            ppo_value_loss(&values, &old_v, &ret, &mask, self.cfg.cliprange_value).context(|| "value loss".into())?;
        let f = &mut self.figures;
        f.policy_loss += pg.to_scalar::<f32>().context(|| "policy loss".into())? as f64;
        f.value_loss += vf.to_scalar::<f32>().context(|| "value loss".into())? as f64;
        f.clipfrac += clipfrac as f64;
        f.updates += 1;
        let loss = (pg + (vf * self.cfg.vf_coef).context(|| "value loss".into())?).context(|| "PPO loss".into())?;
        Ok((loss, rows.iter().map(|(ids, _)| ids.len()).sum()))
    }

    fn eval_loss(&mut self, model: &Model) -> Result<Option<f64>> {
        self.figures.eval_score = self.held_out_score(model)?;
        Ok(None)
    }

    fn take_metrics(&mut self) -> Map<String, Value> {
        let f = std::mem::take(&mut self.figures);
        let mut m = Map::new();
        if f.updates > 0 {
            let n = f.updates as f64;
            m.insert("ppo/policy_loss".into(), json!(f.policy_loss / n));
            m.insert("ppo/value_loss".into(), json!(f.value_loss / n));
            m.insert("ppo/clipfrac".into(), json!(f.clipfrac / n));
        }
        // The current batch's figures go on every line of the batch.
        if let Some(b) = &self.batch {
            let n = b.scores.len() as f64;
            let (score, kl, coef, len) = (
                b.scores.iter().map(|&s| s as f64).sum::<f64>() / n,
                b.kl.iter().map(|&k| k as f64).sum::<f64>() / n,
                b.kl_coef,
                b.completion_tokens as f64 / n,
            );
            m.insert("score".into(), json!(score));
            m.insert("kl".into(), json!(kl));
            m.insert("kl_coef".into(), json!(coef));
            m.insert("completion_length".into(), json!(len));
        }
        if let Some(s) = f.eval_score {
            m.insert("eval/score".into(), json!(s));
        }
        m
    }

    fn charts(&self) -> Vec<MetricChart> {
        vec![
            MetricChart {
                file: "score.svg",
                title: "Reward-model score",
                y_label: "mean score per completion",
                lines: vec![("rollouts (sampled)", "score")],
                trend: Some(("held-out prompts (greedy)", "eval/score")),
                level: None,
            },
            MetricChart {
                file: "kl.svg",
                title: "KL to the reference, per completion",
                y_label: "KL (nats)",
                lines: vec![("rollouts", "kl")],
                trend: None,
                level: self.cfg.target_kl.map(|t| (format!("target {t}"), t)),
            },
        ]
    }
}

/// What `ingot ppo` reports.
#[derive(Clone, Debug, Serialize)]
pub struct PpoReport {
    pub steps_run: u64,
    pub final_step: u64,
    pub batches: u64,
    pub tokens: u64,
    pub seconds: f64,
    /// Mean reward-model score of greedy completions of held-out prompts, before and after.
    pub eval_prompts: usize,
    pub eval_score_start: Option<f64>,
    pub eval_score_end: Option<f64>,
    /// The last batch's mean KL per completion and coefficient.
    pub final_kl: Option<f64>,
    pub final_kl_coef: Option<f64>,
    pub output: PathBuf,
}

/// Run the recipe: the whole of `ingot ppo`.
pub fn run(
    cfg: &PpoConfig,
    model_path: &Path,
    out: &Path,
    resume: bool,
    force: bool,
    progress: bool,
    generate: &Generator,
) -> Result<PpoReport> {
    cfg.validate()?;
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
    let adapters = adapters.ok_or_else(|| Error::Config("PPO needs adapters".into()))?;
    let value = ScalarHead::train(&vars, VALUE_HEAD, model.hidden_size(), true, cfg.train.seed)?;
    let reward_on = reward_base(&cfg.ppo.reward_model, model_path);
    let reward = load_reward_model(&reward_on, &cfg.ppo.reward_model, &device)?;
    let model_config = base_config(&model, &tokenizer)?;
    let config = serde_json::to_value(cfg).unwrap_or(Value::Null);
    record_manifest(
        out,
        resume,
        "ppo",
        config,
        &["model", "lora", "data", "ppo", "train"],
        model_path,
        &tokenizer,
        &train_path,
    )?;
    if !resume {
        let _ = std::fs::remove_dir_all(out.join("rollouts"));
    }
    let max_prompt =
        cfg.data.max_prompt_len.min(model.context_length().saturating_sub(cfg.ppo.max_completion_tokens + 1));
    let train = ingot_data::preference::load_prompts(&train_path, &tokenizer, max_prompt)?;
    let val = match &val_path {
        Some(p) => ingot_data::preference::load_prompts(p, &tokenizer, max_prompt)?,
        None => Vec::new(),
    };
    eprintln!(
        "ppo ({}): {} prompts, {} per rollout batch, {} epochs x {} minibatches per batch; reward model {}",
        cfg.model.method.name(),
        train.len(),
        cfg.ppo.rollouts_per_batch,
        cfg.ppo.ppo_epochs,
        cfg.ppo.minibatches,
        cfg.ppo.reward_model.display()
    );
    let mut objective = PpoTraining {
        train,
        val,
        cfg: cfg.ppo.clone(),
        per_batch: cfg.updates_per_batch(),
        tokenizer: &tokenizer,
        adapters: adapters.clone(),
        value: value.clone(),
        reward,
        seed: cfg.train.seed,
        device: device.clone(),
        dir: out.join("rollouts"),
        batch: None,
        figures: Figures::default(),
    };
    let eval_score_start = if resume { None } else { objective.held_out_score(&model)? };
    let (checkpoint_config, adapter_config) = checkpoint_configs(&model, Some(&adapters), model_path, &model_config);
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
    let eval_score_end = objective.held_out_score(&model)?;
    let dir = export(out, None, &model, Some(&adapters), &tokenizer, &model_config, model_path)?;
    if crate::collective::world().is_main() {
        value.save(out)?;
    }
    let last = objective.batch.as_ref();
    Ok(PpoReport {
        steps_run: report.steps_run,
        final_step: report.final_step,
        batches: report.final_step.div_ceil(cfg.updates_per_batch()),
        tokens: report.tokens,
        seconds: report.seconds,
        eval_prompts: objective.val.len().min(cfg.ppo.eval_prompts),
        eval_score_start,
        eval_score_end,
        final_kl: last.map(|b| b.kl.iter().map(|&k| k as f64).sum::<f64>() / b.kl.len().max(1) as f64),
        final_kl_coef: last.map(|b| b.kl_coef),
        output: dir,
    })
}
