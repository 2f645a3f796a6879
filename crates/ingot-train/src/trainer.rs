//! The training loop every method shares: micro-batches with gradient accumulation, global-norm
//! clipping, AdamW with a warmup + cosine schedule, periodic evaluation and samples, metrics
//! (JSONL + an SVG loss curve), progress with rate and ETA, and atomic checkpoints with exact
//! resume.
//!
//! A method supplies an [`Objective`]: the loss of micro-batch `micro` of step `step`, computed
//! from a pure function of (seed, step, micro). Together with the optimizer moments and weights
//! saved in each checkpoint, that makes a resumed run bit-identical to an uninterrupted one.
//!
//! [`Trainer::run_with`] is four parts, each a method: `resume` (config checks, optimizer,
//! restored checkpoint and metrics), `step` (gradients, clipping, AdamW), `log` (validation,
//! metrics, plot, samples) and `save` (the checkpoint). A [`Collective`] decides which rank writes;
//! in one process that is this one. Over several ranks ([`crate::ddp`]) each computes its share
//! of the step's micro-batches, gradients and losses are summed over ranks before clipping, and
//! with `zero_stage = 1` each rank keeps and applies only its share of AdamW's state.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use candle_nn::VarMap;
use ingot_models::Model;
use ingot_tokenizer::Tokenizer;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::checkpoint;
use crate::collective::Collective;
use crate::ddp;
use crate::error::{Context, Error, Result};
use crate::optim::{clip_coefficient, grad_norm, AdamW, AdamWConfig};
use crate::plot;
use crate::schedule::LrSchedule;

/// What a training method computes.
pub trait Objective {
    /// Scalar loss of micro-batch `micro` of optimizer step `step`, and the tokens it covered.
    /// Must depend only on (step, micro) and the model, so resumed runs see the same data.
    fn loss(&mut self, model: &Model, step: u64, micro: u32) -> Result<(Tensor, usize)>;

    /// Held-out loss, when the method has held-out data.
    fn eval_loss(&mut self, model: &Model) -> Result<Option<f64>>;

    /// A short text sample to show progress, when the method can make one.
    fn sample(&mut self, _model: &Model) -> Result<Option<String>> {
        Ok(None)
    }

    /// The method's own figures over the steps since the last metrics line (DPO's rewards and
    /// accuracy, PPO's KL), written into that line beside the loss; called once per line.
    fn take_metrics(&mut self) -> serde_json::Map<String, Value> {
        serde_json::Map::new()
    }

    /// Charts of those figures, redrawn from the metrics beside loss.svg at each evaluation
    /// (DPO's rewards and accuracy, PPO's score with its trend and KL against its target).
    fn charts(&self) -> Vec<plot::MetricChart> {
        Vec::new()
    }
}

/// Loop settings. Every field is documented where configs are written (`configs/*.toml`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Optimizer steps to run in total (a resumed run continues up to this).
    pub max_steps: u64,
    /// Micro-batches per optimizer step (gradient accumulation).
    pub grad_accum: u32,
    /// Peak learning rate, reached after `warmup_steps`.
    pub lr: f64,
    /// Final learning rate of the cosine decay.
    pub min_lr: f64,
    pub warmup_steps: u64,
    /// Step at which the cosine decay reaches `min_lr` (default: `max_steps`).
    pub decay_steps: Option<u64>,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Clip the global gradient norm to this (0 = off).
    pub grad_clip: f64,
    /// Seed for initialisation, data order and dropout.
    pub seed: u64,
    /// Evaluate held-out loss every this many steps (0 = only at the end).
    pub eval_interval: u64,
    /// Print a sample every this many steps (0 = never).
    pub sample_interval: u64,
    /// Write a metrics line every this many steps.
    pub log_interval: u64,
    /// Save a checkpoint every this many steps (0 = only at the end).
    pub checkpoint_interval: u64,
    /// Checkpoints to keep.
    pub keep_last: usize,
    /// Recompute each block's activations in backward instead of keeping them: activation
    /// memory falls to about one tensor per layer, for ~1/3 more compute. Same results.
    pub activation_checkpointing: bool,
    /// With several ranks (`mpirun`): 0 = plain data parallel (every rank keeps all of AdamW's
    /// moments), 1 = ZeRO-1 (each rank keeps and updates its share; checkpoints gather them all,
    /// so a run resumes on any number of ranks). Results are the same either way.
    pub zero_stage: u8,
    /// "f32", or "bf16": the linear layers' products (forward and backward) in bf16 with f32
    /// accumulation, on AMX tiles where the CPU has them; weights, AdamW state, norms and the
    /// loss stay f32.
    pub precision: ingot_nn::Precision,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            max_steps: 1000,
            grad_accum: 1,
            lr: 6e-4,
            min_lr: 6e-5,
            warmup_steps: 100,
            decay_steps: None,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            grad_clip: 1.0,
            seed: 1337,
            eval_interval: 250,
            sample_interval: 0,
            log_interval: 10,
            checkpoint_interval: 500,
            keep_last: 3,
            activation_checkpointing: false,
            zero_stage: 0,
            precision: ingot_nn::Precision::F32,
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.max_steps == 0 {
            return bad("train.max_steps must be at least 1".into());
        }
        if self.grad_accum == 0 {
            return bad("train.grad_accum must be at least 1".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) || self.min_lr < 0.0 || self.min_lr > self.lr {
            return bad(format!(
                "train.lr must be a finite number above 0 and train.min_lr in [0, lr]; got lr {} min_lr {}",
                self.lr, self.min_lr
            ));
        }
        if !(0.0..1.0).contains(&self.beta1) || !(0.0..1.0).contains(&self.beta2) {
            return bad(format!(
                "train.beta1 and train.beta2 must be in [0, 1); got {} and {}",
                self.beta1, self.beta2
            ));
        }
        if self.zero_stage > 1 {
            return bad(format!("train.zero_stage must be 0 (data parallel) or 1 (ZeRO-1); got {}", self.zero_stage));
        }
        if self.log_interval == 0 || self.keep_last == 0 {
            return bad("train.log_interval and train.keep_last must be at least 1".into());
        }
        Ok(())
    }

    pub fn schedule(&self) -> LrSchedule {
        LrSchedule::cosine(
            self.lr,
            self.min_lr,
            self.warmup_steps as usize,
            self.decay_steps.unwrap_or(self.max_steps) as usize,
        )
    }

    pub fn adamw(&self) -> AdamWConfig {
        AdamWConfig { beta1: self.beta1, beta2: self.beta2, eps: self.eps, weight_decay: self.weight_decay }
    }
}

/// One line of metrics.jsonl.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Metrics {
    pub step: u64,
    pub loss: f64,
    pub val_loss: Option<f64>,
    pub lr: f64,
    pub grad_norm: f64,
    pub tokens_per_sec: f64,
    /// The objective's own figures ([`Objective::take_metrics`]), e.g. DPO's rewards.
    #[serde(flatten, default)]
    pub extra: serde_json::Map<String, Value>,
}

/// What a finished run reports.
#[derive(Clone, Debug)]
pub struct TrainReport {
    pub steps_run: u64,
    pub final_step: u64,
    pub final_loss: f64,
    pub final_val_loss: Option<f64>,
    /// Loss over the whole validation split at the end (recipes that have one fill it in).
    pub full_val_loss: Option<f64>,
    pub tokens: u64,
    pub seconds: f64,
    /// Seconds this rank spent in collectives (0 in one process).
    pub comm_seconds: f64,
    /// Ranks that ran it (1: one process).
    pub world_size: usize,
    pub last_checkpoint: Option<PathBuf>,
}

/// Sum `b` into `a`, variable by variable.
fn accumulate(a: &mut GradStore, b: GradStore, vars: &[(String, Var)]) -> Result<()> {
    for (name, var) in vars {
        if let Some(gb) = b.get(var.as_tensor()) {
            let sum = match a.get(var.as_tensor()) {
                Some(ga) => (ga + gb).context(|| format!("accumulating gradient of {name}"))?,
                None => gb.clone(),
            };
            a.insert(var.as_tensor(), sum);
        }
    }
    Ok(())
}

/// Gradients of one optimizer step: the mean of `accum` micro-batch losses, backpropagated one
/// micro-batch at a time and summed, which equals one batch `accum` times larger. Returns the
/// gradients, the mean loss and the tokens seen.
pub fn gradients(
    model: &Model,
    objective: &mut dyn Objective,
    step: u64,
    accum: u32,
    vars: &[(String, Var)],
) -> Result<(GradStore, f64, usize)> {
    let micros: Vec<u32> = (0..accum).collect();
    gradients_of(model, objective, step, &micros, accum, vars, &mut |_| {})
}

/// [`gradients`] over the micro-batches `micros` of a step of `accum` (one rank's share), each
/// loss scaled by `1 / accum`, so that summing the ranks' results gives the whole step's; the
/// loss returned is this share of the mean. `before` runs ahead of each micro-batch (dropout
/// seeding).
pub fn gradients_of(
    model: &Model,
    objective: &mut dyn Objective,
    step: u64,
    micros: &[u32],
    accum: u32,
    vars: &[(String, Var)],
    before: &mut dyn FnMut(u32),
) -> Result<(GradStore, f64, usize)> {
    let mut grads: Option<GradStore> = None;
    let (mut loss_sum, mut tokens) = (0f64, 0usize);
    let scale = ddp::loss_scale(accum, micros.len());
    for &micro in micros {
        before(micro);
        let (loss, n_tokens) = objective.loss(model, step, micro)?;
        loss_sum += loss
            .to_dtype(candle_core::DType::F64)
            .and_then(|l| l.to_scalar::<f64>())
            .context(|| "reading the loss".into())?;
        let scaled = (loss * scale).context(|| "scaling the loss".into())?;
        let mut g = scaled.backward().context(|| "backward pass".into())?;
        // Checkpointed blocks hand their parameters' gradients over here.
        for (var, grad) in model.take_checkpoint_grads() {
            let sum = match g.get(&var) {
                Some(outer) => (outer + &grad).context(|| "adding checkpointed gradients".into())?,
                None => grad,
            };
            g.insert(&var, sum);
        }
        match grads.as_mut() {
            None => grads = Some(g),
            Some(acc) => accumulate(acc, g, vars)?,
        }
        tokens += n_tokens;
    }
    let grads = grads.ok_or_else(|| Error::Config("train.grad_accum must be at least 1".into()))?;
    Ok((grads, loss_sum / accum.max(1) as f64, tokens))
}

/// The named trainable variables of a VarMap, sorted by name.
pub fn named_vars(varmap: &VarMap) -> Result<Vec<(String, Var)>> {
    let data = varmap.data().lock().map_err(|_| Error::Config("variable map lock poisoned".into()))?;
    let mut vars: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(vars)
}

/// f32 bytes per trainable parameter while training: the weight, its gradient and AdamW's two
/// moments. Activations come on top, so this is a floor, checked before the moments are made.
const TRAINING_BYTES_PER_PARAM: u128 = 16;

/// Refuse a model whose weights, gradients and optimizer state cannot fit in memory.
fn check_training_memory(vars: &[(String, Var)]) -> Result<()> {
    let n: u128 = vars.iter().map(|(_, v)| v.elem_count() as u128).sum();
    ingot_core::limits::check_memory(
        &format!("training {:.3e} parameters (weights, gradients and AdamW moments in f32)", n as f64),
        n.saturating_mul(TRAINING_BYTES_PER_PARAM),
    )?;
    Ok(())
}

/// Everything a run needs besides the objective.
pub struct Trainer<'a> {
    pub model: &'a Model,
    pub varmap: &'a VarMap,
    pub tokenizer: &'a Tokenizer,
    /// The HF config.json written with every checkpoint.
    pub model_config: Value,
    /// Extra fields stored in trainer_state.json (the recipe's own config, for the record).
    pub run_info: Value,
    pub cfg: TrainConfig,
    pub out_dir: PathBuf,
    /// Show a progress bar (off in tests).
    pub progress: bool,
    /// Adapter-only training: PEFT's adapter_config.json, saved with each checkpoint, whose
    /// weights are then the adapters alone (see [`checkpoint::CheckpointContents`]).
    pub adapter_config: Option<Value>,
}

/// A run between two steps: the trainable variables and their optimizer, the metrics logged so
/// far and the file they go to, and what the report will say.
struct RunState {
    vars: Vec<(String, Var)>,
    /// Under ZeRO-1, the rank that owns each of `vars`; otherwise all this rank's.
    owners: Vec<usize>,
    /// AdamW over the variables this rank updates: all of them, or its ZeRO-1 share.
    optimizer: AdamW,
    /// The first step this process runs (0, or the resumed checkpoint's).
    start_step: u64,
    history: Vec<Metrics>,
    /// metrics.jsonl, appended to; None on ranks that do not write.
    metrics_file: Option<std::fs::File>,
    tokens_total: u64,
    last_loss: f64,
    last_val: Option<f64>,
    last_ckpt: Option<PathBuf>,
    /// Start and tokens of the current logging window, for tokens/s.
    window: (Instant, usize),
    /// Seconds spent in collectives (gradient all-reduce, ZeRO-1's broadcasts) in the current
    /// logging window, and in the whole run.
    comm: (f64, f64),
    /// When this run's steps began, and when the last plain progress line was printed (no
    /// progress bar: standard error is not a terminal, e.g. a log file).
    started: Instant,
    last_line: Instant,
}

/// What one optimizer step measured.
struct StepOutcome {
    /// Steps done after it (its index + 1).
    done: u64,
    loss: f64,
    lr: f64,
    grad_norm: f64,
}

impl Trainer<'_> {
    /// Run from step 0, or from the latest checkpoint in `out_dir` when `resume`, as one rank of
    /// this process's job ([`crate::collective::world`]: this process alone unless the binary
    /// joined an MPI job).
    pub fn run(&self, objective: &mut dyn Objective, resume: bool) -> Result<TrainReport> {
        self.run_with(objective, resume, crate::collective::world())
    }

    /// [`Trainer::run`] as one rank of `collective`'s job: every rank runs the same steps, rank 0
    /// alone writes metrics, plots and checkpoints and shows progress.
    pub fn run_with(
        &self,
        objective: &mut dyn Objective,
        resume: bool,
        collective: &dyn Collective,
    ) -> Result<TrainReport> {
        let _precision = self.cfg.precision.enter();
        let mut state = self.resume(resume, collective)?;
        let bar = progress_bar(self.progress && collective.is_main(), state.start_step, self.cfg.max_steps);
        let started = Instant::now();
        for step in state.start_step..self.cfg.max_steps {
            let outcome = self.step(objective, &mut state, step, collective)?;
            self.log(objective, &mut state, &outcome, &bar, collective)?;
            let save_now = outcome.done == self.cfg.max_steps
                || (self.cfg.checkpoint_interval > 0 && outcome.done % self.cfg.checkpoint_interval == 0);
            if save_now {
                // Every rank takes part in gathering ZeRO-1's moments; rank 0 writes.
                let moments = self.full_optimizer_state(&state, collective)?;
                if collective.is_main() {
                    self.save(&mut state, &outcome, &moments)?;
                }
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        Ok(TrainReport {
            steps_run: self.cfg.max_steps.saturating_sub(state.start_step),
            final_step: self.cfg.max_steps.max(state.start_step),
            final_loss: state.last_loss,
            final_val_loss: state.last_val,
            full_val_loss: None,
            tokens: state.tokens_total,
            seconds: started.elapsed().as_secs_f64(),
            comm_seconds: state.comm.1,
            world_size: collective.world_size(),
            last_checkpoint: state.last_ckpt,
        })
    }

    /// Checks the config, makes the optimizer, and with `resume` restores weights, moments and
    /// metrics from the latest checkpoint; rewrites metrics.jsonl up to the resume point (rank 0).
    fn resume(&self, resume: bool, collective: &dyn Collective) -> Result<RunState> {
        self.cfg.validate()?;
        self.cfg.schedule().validate()?;
        std::fs::create_dir_all(&self.out_dir).map_err(Error::io("creating", &self.out_dir))?;
        let vars = named_vars(self.varmap)?;
        check_training_memory(&vars)?;
        let world = collective.world_size();
        if world > 1 && (self.cfg.grad_accum as usize) < world {
            return Err(Error::Config(format!(
                "train.grad_accum is {} but the job has {world} ranks: each rank computes whole micro-batches \
                 of the step's global batch, so grad_accum must be at least {world} (a multiple of it \
                 balances the ranks)",
                self.cfg.grad_accum
            )));
        }
        let owners =
            if self.cfg.zero_stage == 1 { ddp::zero_owners(&vars, world) } else { vec![collective.rank(); vars.len()] };
        let mine: Vec<(String, Var)> =
            vars.iter().zip(&owners).filter(|(_, &o)| o == collective.rank()).map(|(v, _)| v.clone()).collect();
        let owned: Vec<String> = mine.iter().map(|(n, _)| n.clone()).collect();
        let mut optimizer = AdamW::new(mine, self.cfg.adamw())?;
        let mut start_step = 0u64;
        let mut history: Vec<Metrics> = Vec::new();
        if resume {
            let Some(dir) = checkpoint::latest(&self.out_dir)? else {
                return Err(Error::Config(format!(
                    "--resume: no checkpoint in {} (start without --resume; a run that saved none restarts with --force)",
                    self.out_dir.display()
                )));
            };
            let ck = checkpoint::load(&dir, &candle_core::Device::Cpu)?;
            self.restore_weights(&vars, &ck.weights, &dir)?;
            let step = ck
                .trainer_state
                .get("step")
                .and_then(Value::as_u64)
                .ok_or_else(|| Error::Config(format!("{}: trainer_state.json has no step", dir.display())))?;
            let opt_steps = ck.trainer_state.get("optimizer_steps").and_then(Value::as_u64).unwrap_or(step);
            let owned: Vec<&str> = owned.iter().map(String::as_str).collect();
            optimizer.load_state(ddp::owned_moments(ck.optimizer, &owned), opt_steps)?;
            if step >= self.cfg.max_steps {
                // Nothing would run: the report would hold no loss (it printed "NaN").
                return Err(Error::Config(format!(
                    "train.max_steps = {} but {} is already at step {step}; raise train.max_steps above {step} to train further",
                    self.cfg.max_steps,
                    dir.display()
                )));
            }
            history = read_metrics(&self.out_dir.join("metrics.jsonl"), step);
            start_step = step;
            if collective.is_main() {
                eprintln!("resuming from {} (step {step})", dir.display());
            }
        }
        // Every rank starts from rank 0's weights (fresh ones are seeded alike, but a rank must not
        // depend on that).
        ddp::broadcast_vars(&vars, 0, collective)?;
        // Rewrite the metrics log up to the resume point, so a resumed run's log has no
        // duplicate or orphaned lines from after the checkpoint.
        let metrics_file = if collective.is_main() {
            let path = self.out_dir.join("metrics.jsonl");
            let mut log = String::new();
            for m in &history {
                log.push_str(&serde_json::to_string(m).unwrap_or_default());
                log.push('\n');
            }
            ingot_core::atomic::write_file(&path, log.as_bytes())?;
            Some(std::fs::OpenOptions::new().append(true).open(&path).map_err(Error::io("writing", &path))?)
        } else {
            None
        };
        Ok(RunState {
            vars,
            owners,
            optimizer,
            start_step,
            history,
            metrics_file,
            tokens_total: 0,
            last_loss: f64::NAN,
            last_val: None,
            last_ckpt: None,
            window: (Instant::now(), 0),
            comm: (0.0, 0.0),
            started: Instant::now(),
            last_line: Instant::now(),
        })
    }

    /// One optimizer step: the micro-batches' gradients (dropout on, its masks seeded by step),
    /// global-norm clipping, AdamW at the schedule's rate. A non-finite loss or gradient norm
    /// stops the run.
    fn step(
        &self,
        objective: &mut dyn Objective,
        state: &mut RunState,
        step: u64,
        collective: &dyn Collective,
    ) -> Result<StepOutcome> {
        // Dropout masks are seeded by (step, micro-batch), so they do not depend on which rank
        // computes a micro-batch.
        let dropouts = self.model.dropout_states();
        let seed = self.cfg.seed;
        let mut seed_dropout = |micro: u32| {
            for (i, d) in dropouts.iter().enumerate() {
                d.train(
                    seed ^ step.wrapping_mul(0x9E3779B97F4A7C15)
                        ^ (i as u64).wrapping_mul(0xD1B54A32D192ED03)
                        ^ (micro as u64).wrapping_mul(0x94D049BB133111EB),
                );
            }
        };
        let micros = ddp::my_micros(self.cfg.grad_accum, collective.rank(), collective.world_size());
        let (mut grads, loss, n_tokens) =
            gradients_of(self.model, objective, step, &micros, self.cfg.grad_accum, &state.vars, &mut seed_dropout)?;
        // The whole step's gradient, loss and token count on every rank, so every rank clips
        // and steps alike and logs the same numbers.
        let comm_started = Instant::now();
        ddp::all_reduce_gradients(&mut grads, &state.vars, collective)?;
        let mut sums = [loss, n_tokens as f64];
        collective.all_reduce_sum_f64(&mut sums)?;
        let mut comm = comm_started.elapsed().as_secs_f64();
        let (loss, n_tokens) = (sums[0], sums[1] as usize);
        state.tokens_total += n_tokens as u64;
        state.window.1 += n_tokens;
        for d in self.model.dropout_states() {
            d.eval();
        }
        if !loss.is_finite() {
            return Err(Error::Diverged { step, loss });
        }
        let max_norm = if self.cfg.grad_clip > 0.0 { self.cfg.grad_clip } else { f64::INFINITY };
        let grad_norm = grad_norm(&grads, state.vars.iter().map(|(_, v)| v))?;
        if !grad_norm.is_finite() {
            return Err(Error::Diverged { step, loss: grad_norm });
        }
        let lr = self.cfg.schedule().lr(step as usize);
        // Clipping folded into AdamW's pass (the gradients themselves are left as they are).
        state.optimizer.step_scaled(&grads, lr, clip_coefficient(grad_norm, max_norm))?;
        if self.cfg.zero_stage == 1 && collective.world_size() > 1 {
            let started = Instant::now();
            for (var, &owner) in state.vars.iter().zip(&state.owners) {
                ddp::broadcast_vars(std::iter::once(var), owner, collective)?;
            }
            comm += started.elapsed().as_secs_f64();
        }
        state.comm.0 += comm;
        state.comm.1 += comm;
        state.last_loss = loss;
        Ok(StepOutcome { done: step + 1, loss, lr, grad_norm })
    }

    /// After a step: the validation loss when due (every rank computes it), the metrics line,
    /// progress message and loss plot (rank 0), and a sample when due.
    fn log(
        &self,
        objective: &mut dyn Objective,
        state: &mut RunState,
        s: &StepOutcome,
        bar: &indicatif::ProgressBar,
        collective: &dyn Collective,
    ) -> Result<()> {
        let (done, loss) = (s.done, s.loss);
        let eval_now = done == self.cfg.max_steps || (self.cfg.eval_interval > 0 && done % self.cfg.eval_interval == 0);
        let val_loss = if eval_now { objective.eval_loss(self.model)? } else { None };
        if val_loss.is_some() {
            state.last_val = val_loss;
        }
        if done % self.cfg.log_interval == 0 || eval_now {
            let secs = state.window.0.elapsed().as_secs_f64().max(1e-9);
            let mut extra = objective.take_metrics();
            if collective.world_size() > 1 {
                // The share of the window's wall time this rank spent in collectives.
                extra.insert("comm_share".into(), json!(state.comm.0 / secs));
            }
            let m = Metrics {
                step: done,
                loss,
                val_loss,
                lr: s.lr,
                grad_norm: s.grad_norm,
                tokens_per_sec: state.window.1 as f64 / secs,
                extra,
            };
            state.window = (Instant::now(), 0);
            state.comm.0 = 0.0;
            if let Some(file) = state.metrics_file.as_mut() {
                let path = self.out_dir.join("metrics.jsonl");
                writeln!(file, "{}", serde_json::to_string(&m).unwrap_or_default())
                    .map_err(Error::io("writing", &path))?;
            }
            bar.set_message(format!(
                "loss {:.4}{} | {:.0} tok/s",
                loss,
                val_loss.map(|v| format!(" val {v:.4}")).unwrap_or_default(),
                m.tokens_per_sec
            ));
            if let (Some(v), true) = (val_loss, collective.is_main()) {
                say(
                    bar,
                    format!(
                        "step {done}: loss {loss:.4}, val loss {v:.4}, lr {:.2e}, grad norm {:.3}",
                        s.lr, s.grad_norm
                    ),
                );
            }
            if bar.is_hidden() && collective.is_main() && state.last_line.elapsed() >= PLAIN_PROGRESS_EVERY {
                eprintln!("{}", plain_progress(state, done, self.cfg.max_steps, loss, m.tokens_per_sec));
                state.last_line = Instant::now();
            }
            state.history.push(m);
            if eval_now && collective.is_main() {
                self.write_plot(&state.history, &objective.charts())?;
            }
        }
        if self.cfg.sample_interval > 0 && (done % self.cfg.sample_interval == 0 || done == self.cfg.max_steps) {
            if let (Some(text), true) = (objective.sample(self.model)?, collective.is_main()) {
                say(bar, format!("--- sample at step {done} ---\n{text}\n---"));
            }
        }
        Ok(())
    }

    /// A checkpoint after step `s`: weights, optimizer moments and trainer state, written
    /// atomically; older ones beyond `keep_last` removed.
    /// AdamW's moments for every parameter: this rank's own, or under ZeRO-1 over several ranks
    /// gathered from their owners (every rank must call it).
    fn full_optimizer_state(&self, state: &RunState, collective: &dyn Collective) -> Result<Vec<(String, Tensor)>> {
        let local = state.optimizer.state_tensors();
        if self.cfg.zero_stage == 1 && collective.world_size() > 1 {
            ddp::gather_moments(&state.vars, &state.owners, local, collective)
        } else {
            Ok(local)
        }
    }

    fn save(&self, state: &mut RunState, s: &StepOutcome, moments: &[(String, Tensor)]) -> Result<()> {
        let trainer_state = json!({
            "step": s.done,
            "optimizer_steps": state.optimizer.step_count(),
            "seed": self.cfg.seed,
            "loss": s.loss,
            "val_loss": state.last_val,
            "train": self.cfg,
            "run": self.run_info,
        });
        let tensors: Vec<(String, Tensor)> =
            state.vars.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect();
        let contents = checkpoint::CheckpointContents {
            weights: &tensors,
            config: &self.model_config,
            tokenizer: self.tokenizer,
            optimizer: moments,
            trainer_state: &trainer_state,
            adapter_config: self.adapter_config.as_ref(),
        };
        state.last_ckpt = Some(checkpoint::save(&self.out_dir, s.done, &contents, self.cfg.keep_last)?);
        Ok(())
    }

    fn restore_weights(&self, vars: &[(String, Var)], weights: &HashMap<String, Tensor>, dir: &Path) -> Result<()> {
        for (name, var) in vars {
            let t = weights.get(name).ok_or_else(|| {
                Error::Config(format!(
                    "{}: checkpoint has no weight '{name}' (was it saved by a different model config?)",
                    dir.display()
                ))
            })?;
            if t.shape() != var.shape() {
                return Err(Error::Config(format!(
                    "{}: weight '{name}' has shape {:?}, the model expects {:?}",
                    dir.display(),
                    t.dims(),
                    var.dims()
                )));
            }
            var.set(t).context(|| format!("restoring {name}"))?;
        }
        Ok(())
    }

    fn write_plot(&self, history: &[Metrics], charts: &[plot::MetricChart]) -> Result<()> {
        let train: Vec<(f64, f64)> = history.iter().map(|m| (m.step as f64, m.loss)).collect();
        let val: Vec<(f64, f64)> = history.iter().filter_map(|m| m.val_loss.map(|v| (m.step as f64, v))).collect();
        let svg = plot::loss_curve_svg(&[("train loss", &train), ("validation loss", &val)], "Loss", "step", "loss");
        plot::write_svg(&self.out_dir.join("loss.svg"), &svg)?;
        let series = |key: &str| -> Vec<(f64, f64)> {
            history
                .iter()
                .filter_map(|m| m.extra.get(key).and_then(Value::as_f64).map(|v| (m.step as f64, v)))
                .filter(|p| p.1.is_finite())
                .collect()
        };
        for chart in charts {
            if let Some(svg) = plot::metric_chart_svg(chart, series) {
                plot::write_svg(&self.out_dir.join(chart.file), &svg)?;
            }
        }
        Ok(())
    }
}

/// How often a run without a progress bar (standard error not a terminal) prints where it is.
const PLAIN_PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// "step 145/262 (55%): loss 0.0027, 128 tokens/s, 4m 10s elapsed, ETA 12m 5s".
fn plain_progress(state: &RunState, done: u64, total: u64, loss: f64, tokens_per_sec: f64) -> String {
    let elapsed = state.started.elapsed().as_secs_f64();
    let ran = done.saturating_sub(state.start_step).max(1) as f64;
    let eta = elapsed / ran * total.saturating_sub(done) as f64;
    let clock = |secs: f64| {
        let s = secs.round() as u64;
        match s {
            0..=59 => format!("{s}s"),
            60..=3599 => format!("{}m {}s", s / 60, s % 60),
            _ => format!("{}h {}m", s / 3600, s % 3600 / 60),
        }
    };
    format!(
        "step {done}/{total} ({:.0}%): loss {loss:.4}, {tokens_per_sec:.0} tokens/s, {} elapsed, ETA {}",
        100.0 * done as f64 / total.max(1) as f64,
        clock(elapsed),
        clock(eta)
    )
}

/// A line above the progress bar, or on stderr when there is no bar (not a terminal).
fn say(bar: &indicatif::ProgressBar, msg: String) {
    if bar.is_hidden() {
        eprintln!("{msg}");
    } else {
        bar.println(msg);
    }
}

/// Metrics lines of an earlier run up to `step`.
fn read_metrics(path: &Path, step: u64) -> Vec<Metrics> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Metrics>(l).ok())
        .filter(|m| m.step <= step)
        .collect()
}

fn progress_bar(show: bool, start: u64, total: u64) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_position(start);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} steps [{elapsed_precise} < {eta_precise}, {per_sec}] {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.reset_eta();
    bar
}
