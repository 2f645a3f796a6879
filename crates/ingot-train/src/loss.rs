//! The loss maths every recipe uses, in one place.
//!
//! - [`cross_entropy`]: mean next-token cross-entropy (pre-training, the training benchmark).
//! - [`masked_cross_entropy`]: the same over the positions a 0/1 mask selects (SFT: assistant or
//!   completion tokens only); masked positions contribute nothing, not even gradient.
//! - [`token_logprobs`]: log p(target) per position, differentiable (DPO, PPO, GRPO and the
//!   reward model's inputs).
//! - [`lm_head_loss`]: the output head applied only to the trained positions, then the loss: with
//!   SFT's prompts mostly masked, most of a (B·T, V) logits tensor would be computed for nothing.
//!
//! These take logits as (N, V) and targets as N u32 ids.
//!
//! Alignment (reward models, DPO, PPO, GRPO), formula for formula as TRL's trainers compute them,
//! so that a run can be checked against theirs:
//! - [`log_sigmoid`]: log σ(x) without overflow, and with the right gradient at 0.
//! - [`sequence_logprobs`] / [`sequence_mean_logprobs`]: per-token log-probs summed (averaged) per
//!   sequence: the completion log-likelihood of DPO, reward margins, PPO and GRPO.
//! - [`bradley_terry`]: the reward model's pairwise loss, with an optional margin and centring.
//! - [`dpo_loss`]: DPO (sigmoid, with label smoothing) and IPO, with the implicit rewards and the
//!   metrics TRL logs ([`DpoOutput::metrics`]).
//! - [`kl_penalty`]: per-token KL estimates k1 and k3 against the reference policy.
//! - [`gae`], [`whiten`]: PPO's advantages and returns over one episode, and their whitening.
//! - [`ppo_policy_loss`], [`ppo_value_loss`]: PPO's clipped surrogate and clipped value losses.
//! - [`group_advantages`], [`grpo_loss`]: GRPO's group-relative advantages and its clipped loss,
//!   normalised as GRPO, DAPO or Dr GRPO do.
//!
//! Dimensions: N tokens, V vocabulary, B preference pairs, S sequences, G group size.
//! Tensors are reduced in f32 (F64 inputs stay F64, other float types are upcast to F32). The
//! episode maths (GAE, whitening, group advantages) needs no gradient and works on plain slices.
//! Mismatched lengths are errors that name both sizes, never panics.

use candle_core::{DType, Tensor, D};

/// log_softmax over the last dim, composed of differentiable ops (candle's fused softmax has no
/// backward).
fn log_softmax(logits: &Tensor) -> candle_core::Result<Tensor> {
    let logits = if logits.dtype() == DType::F64 { logits.clone() } else { logits.to_dtype(DType::F32)? };
    let max = logits.max_keepdim(D::Minus1)?.detach();
    let shifted = logits.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    shifted.broadcast_sub(&lse)
}

/// log p(targets[i]) under logits[i]: (N, V), N → (N).
pub fn token_logprobs(logits: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
    let n = targets.dim(0)?;
    log_softmax(logits)?.gather(&targets.reshape((n, 1))?, 1)?.reshape(n)
}

/// Mean cross-entropy of logits (N, V) against targets (N).
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
    token_logprobs(logits, targets)?.mean_all()?.neg()
}

/// Mean cross-entropy over the positions where `mask` (N, f32 0/1) is 1. A mask with no 1 is an
/// error: its mean is undefined, and a silent 0 would hide an empty batch.
pub fn masked_cross_entropy(logits: &Tensor, targets: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let mask = mask.to_dtype(DType::F32)?;
    let count = mask.sum_all()?.to_scalar::<f32>()?;
    if count <= 0.0 {
        candle_core::bail!("masked cross-entropy over a batch with no trained positions")
    }
    let nll = token_logprobs(logits, targets)?.neg()?;
    // where() rather than a product: a masked position's NaN or inf logit must not leak in.
    let zeros = nll.zeros_like()?;
    let kept = mask.ne(0f32)?.where_cond(&nll, &zeros)?;
    kept.sum_all()? / count as f64
}

/// Cross-entropy of the next-token predictions at the positions `rows` of hidden states
/// (N, C), through `head` (hidden → logits): only those rows reach the output head.
/// `targets` holds one id per row. Returns the mean loss.
pub fn lm_head_loss(
    hidden: &Tensor,
    rows: &[u32],
    targets: &[u32],
    head: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
) -> candle_core::Result<Tensor> {
    if rows.is_empty() || rows.len() != targets.len() {
        candle_core::bail!("{} trained rows with {} targets", rows.len(), targets.len())
    }
    let device = hidden.device();
    let picked = hidden.index_select(&Tensor::from_slice(rows, rows.len(), device)?, 0)?;
    let logits = head(&picked)?;
    cross_entropy(&logits, &Tensor::from_slice(targets, targets.len(), device)?)
}

/// Mean next-token cross-entropy of a model on (B, T) inputs against (B·T) targets.
pub fn lm_loss(
    model: &ingot_models::Model,
    inputs: &[u32],
    targets: &[u32],
    b: usize,
    t: usize,
    device: &candle_core::Device,
) -> crate::Result<Tensor> {
    use crate::error::Context;
    let x = Tensor::from_slice(inputs, (b, t), device).context(|| "input ids".into())?;
    let y = Tensor::from_slice(targets, b * t, device).context(|| "target ids".into())?;
    if let Some(head) = model.plain_head().filter(|w| ingot_nn::norm::kernel_dtype(&[w])) {
        // The head fused with the loss, chunk by chunk: no (B·T, V) logits are kept.
        let hidden = model.forward_hidden(&x, None)?; // (B, T, C)
        let fused = || {
            let c = hidden.dim(2)?;
            let hidden = hidden.reshape((b * t, c))?;
            let nll = match ingot_nn::Precision::current() {
                ingot_nn::Precision::Bf16 if head.dtype() == DType::F32 => {
                    ingot_kernels::xent::head_cross_entropy_with(&hidden, &head, &y, ingot_kernels::matmul_nt_bf16)?
                }
                _ => ingot_kernels::head_cross_entropy(&hidden, &head, &y)?,
            };
            nll.mean_all()
        };
        return Ok(fused().context(|| "language-model loss".into())?);
    }
    let logits = model.forward(&x, None)?; // (B, T, V)
    let ce = || -> candle_core::Result<Tensor> {
        let v = logits.dim(2)?;
        cross_entropy(&logits.reshape((b * t, v))?, &y)
    };
    Ok(ce().context(|| "language-model loss".into())?)
}

// ---------------------------------------------------------------------------------------------
// Alignment losses. References: TRL (huggingface/trl) RewardTrainer, DPOTrainer, PPOTrainer and
// GRPOTrainer; each function names the one it follows.

/// `t` as F32, or F64 if it is F64: half-precision log-probs would lose the small differences
/// these losses are made of.
fn float(t: &Tensor) -> candle_core::Result<Tensor> {
    if t.dtype() == DType::F64 {
        Ok(t.clone())
    } else {
        t.to_dtype(DType::F32)
    }
}

/// The common length of 1-D tensors, each given with the name an error should call it by.
fn common_len(op: &str, tensors: &[(&str, &Tensor)]) -> candle_core::Result<usize> {
    let mut first: Option<(&str, usize)> = None;
    for &(name, t) in tensors {
        let n = match t.dims() {
            [n] => *n,
            dims => candle_core::bail!("{op}: {name} must be 1-D, got shape {dims:?}"),
        };
        match first {
            None => first = Some((name, n)),
            Some((first_name, m)) if m != n => {
                candle_core::bail!("{op}: {first_name} has {m} values but {name} has {n}")
            }
            Some(_) => {}
        }
    }
    Ok(first.map_or(0, |(_, n)| n))
}

/// Checks that `segment` gives one sequence id below `n_seq` to each of `n` tokens.
fn check_segments(op: &str, segment: &[u32], n: usize, n_seq: usize) -> candle_core::Result<()> {
    if segment.len() != n {
        candle_core::bail!("{op}: {n} tokens but {} sequence ids", segment.len())
    }
    if let Some(&s) = segment.iter().find(|&&s| s as usize >= n_seq) {
        candle_core::bail!("{op}: sequence id {s} with only {n_seq} sequences")
    }
    Ok(())
}

/// Σ x[i] over the tokens i of each sequence: (N) → (S). Differentiable; the caller has checked
/// `segment`.
fn segment_sum(x: &Tensor, segment: &[u32], n_seq: usize) -> candle_core::Result<Tensor> {
    let sums = Tensor::zeros(n_seq, x.dtype(), x.device())?;
    if segment.is_empty() {
        return Ok(sums);
    }
    let ids = Tensor::from_slice(segment, segment.len(), x.device())?;
    sums.index_add(&ids, x, 0)
}

/// The mean of `x` over the positions where `mask` (any dtype, 0/1) is nonzero. A mask that
/// keeps nothing is an error, as in [`masked_cross_entropy`].
fn masked_mean(op: &str, x: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let keep = mask.ne(0.0)?;
    let count = keep.to_dtype(DType::F32)?.sum_all()?.to_scalar::<f32>()?;
    if count == 0.0 {
        candle_core::bail!("{op}: the mask keeps none of the {} tokens", mask.elem_count())
    }
    // where() rather than a product: a masked position's NaN must not leak in.
    keep.where_cond(x, &x.zeros_like()?)?.sum_all()? / count as f64
}

/// log σ(x) = min(x, 0) − log(1 + exp(−|x|)), element-wise and differentiable (torch's
/// `F.logsigmoid`): exp only ever sees −|x| ≤ 0, so nothing overflows.
///
/// Both kinks switch on the one predicate x ≥ 0. Built from candle's `minimum` and `abs`, whose
/// gradients at 0 are 1/2 and 1, the gradient at exactly 0 would be 1 rather than σ(0) = 1/2, and
/// x = 0 is where every DPO pair starts (policy = reference).
pub fn log_sigmoid(x: &Tensor) -> candle_core::Result<Tensor> {
    let x = float(x)?;
    let positive = x.ge(0.0)?;
    let min0 = positive.where_cond(&x.zeros_like()?, &x)?; // min(x, 0)
    let neg_abs = positive.where_cond(&x.neg()?, &x)?; // −|x|
    min0.sub(&(neg_abs.exp()? + 1.0)?.log()?)
}

/// Σ of per-token log-probs (N) per sequence → (S): `segment[i]` is the sequence (of `n_seq`)
/// that token i belongs to. This is log π(completion), the quantity DPO, reward margins, PPO and
/// GRPO compare. Differentiable: each token receives its sequence's gradient.
///
/// Pass only completion tokens (as [`lm_head_loss`] takes only trained rows); a sequence with no
/// token sums to 0.
pub fn sequence_logprobs(token_logprobs: &Tensor, segment: &[u32], n_seq: usize) -> candle_core::Result<Tensor> {
    let lp = float(token_logprobs)?;
    let n = common_len("sequence log-probs", &[("token log-probs", &lp)])?;
    check_segments("sequence log-probs", segment, n, n_seq)?;
    segment_sum(&lp, segment, n_seq)
}

/// The per-token mean of log-probs (N) per sequence → (S): [`sequence_logprobs`] divided by each
/// sequence's token count. IPO and length-normalised DPO variants use it (TRL's `loss_type="ipo"`
/// averages). A sequence with no token is an error: its mean is undefined.
pub fn sequence_mean_logprobs(token_logprobs: &Tensor, segment: &[u32], n_seq: usize) -> candle_core::Result<Tensor> {
    let sums = sequence_logprobs(token_logprobs, segment, n_seq)?;
    let mut counts = vec![0f32; n_seq];
    for &s in segment {
        if let Some(c) = counts.get_mut(s as usize) {
            *c += 1.0;
        }
    }
    if let Some(s) = counts.iter().position(|&c| c == 0.0) {
        candle_core::bail!("sequence mean log-probs: sequence {s} of {n_seq} has no tokens")
    }
    sums.div(&Tensor::from_vec(counts, n_seq, sums.device())?.to_dtype(sums.dtype())?)
}

/// The mean negative log-likelihood of the tokens of sequences 0..first (of per-token log-probs
/// (N), token i in sequence `segment[i]`), over all their tokens together → scalar. With the
/// chosen answers first, this is TRL's DPO `nll_loss`, which `rpo_alpha` adds to the preference
/// loss (RPO, Pang et al. 2024). No token in those sequences is an error.
pub fn leading_nll(token_logprobs: &Tensor, segment: &[u32], first: usize) -> candle_core::Result<Tensor> {
    const OP: &str = "negative log-likelihood of the leading sequences";
    let lp = float(token_logprobs)?;
    let n = common_len(OP, &[("token log-probs", &lp)])?;
    if segment.len() != n {
        candle_core::bail!("{OP}: {n} tokens but {} sequence ids", segment.len())
    }
    let mask: Vec<u8> = segment.iter().map(|&s| u8::from((s as usize) < first)).collect();
    let mask = Tensor::from_vec(mask, n, lp.device())?;
    masked_mean(OP, &lp.neg()?, &mask)
}

/// The Bradley-Terry reward-model loss over B pairs of scalar rewards, chosen and rejected (B):
///
///   mean(−log σ(r_c − r_r − margin)) + center_coef · mean((r_c + r_r)²)
///
/// `margin` (B) asks the chosen reward to lead by that much (Llama 2's graded preferences);
/// `center_coef` > 0 pulls the rewards towards 0 (Eisenstein et al. 2023). TRL
/// `RewardTrainer.compute_loss` (`center_rewards_coefficient`).
pub fn bradley_terry(
    chosen: &Tensor,
    rejected: &Tensor,
    margin: Option<&Tensor>,
    center_coef: f64,
) -> candle_core::Result<Tensor> {
    const OP: &str = "Bradley-Terry loss";
    let (chosen, rejected) = (float(chosen)?, float(rejected)?);
    let margin = margin.map(float).transpose()?;
    let mut named = vec![("chosen rewards", &chosen), ("rejected rewards", &rejected)];
    if let Some(m) = &margin {
        named.push(("margins", m));
    }
    if common_len(OP, &named)? == 0 {
        candle_core::bail!("{OP} over an empty batch")
    }
    let mut diff = chosen.sub(&rejected)?; // (B)
    if let Some(m) = &margin {
        diff = diff.sub(m)?;
    }
    let loss = log_sigmoid(&diff)?.mean_all()?.neg()?;
    if center_coef == 0.0 {
        return Ok(loss);
    }
    loss + (chosen.add(&rejected)?.sqr()?.mean_all()? * center_coef)?
}

/// Which objective [`dpo_loss`] minimises.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DpoLoss {
    /// DPO (Rafailov et al. 2023): −log σ(β·logits). With `label_smoothing` ε > 0, a fraction ε
    /// of the labels is assumed flipped (cDPO, robust DPO): −(1−ε)·log σ(β·logits) − ε·log σ(−β·logits).
    /// ε must lie in [0, 0.5], as TRL requires.
    Sigmoid { label_smoothing: f64 },
    /// IPO (Azar et al. 2023): (logits − 1/(2β))². TRL computes it on each sequence's *mean*
    /// per-token log-prob: pass [`sequence_mean_logprobs`], not sums.
    Ipo,
}

/// What [`dpo_loss`] returns.
#[derive(Debug, Clone)]
pub struct DpoOutput {
    /// The mean loss over the batch (scalar), differentiable w.r.t. the policy log-probs.
    pub loss: Tensor,
    /// β·(log π(chosen) − log π_ref(chosen)) per pair (B), detached: DPO's implicit reward.
    pub chosen_rewards: Tensor,
    /// β·(log π(rejected) − log π_ref(rejected)) per pair (B), detached.
    pub rejected_rewards: Tensor,
}

/// The batch means TRL logs during DPO.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DpoMetrics {
    /// `rewards/chosen`: mean chosen reward.
    pub chosen: f32,
    /// `rewards/rejected`: mean rejected reward.
    pub rejected: f32,
    /// `rewards/margins`: mean of chosen − rejected reward.
    pub margin: f32,
    /// `rewards/accuracies`: the fraction of pairs whose chosen reward is strictly higher.
    pub accuracy: f32,
}

impl DpoOutput {
    /// The logged metrics of this batch (one device-to-host copy of 2·B values).
    pub fn metrics(&self) -> candle_core::Result<DpoMetrics> {
        let chosen = self.chosen_rewards.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        let rejected = self.rejected_rewards.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        if chosen.is_empty() || chosen.len() != rejected.len() {
            candle_core::bail!("DPO metrics: {} chosen rewards and {} rejected", chosen.len(), rejected.len())
        }
        let n = chosen.len() as f32;
        let pairs = || chosen.iter().zip(&rejected);
        Ok(DpoMetrics {
            chosen: chosen.iter().sum::<f32>() / n,
            rejected: rejected.iter().sum::<f32>() / n,
            margin: pairs().map(|(c, r)| c - r).sum::<f32>() / n,
            accuracy: pairs().filter(|(c, r)| c > r).count() as f32 / n,
        })
    }
}

/// The DPO loss over B pairs, from sequence log-probs (B) of the policy and of the frozen
/// reference, chosen and rejected, following TRL `DPOTrainer.dpo_loss`:
///
///   logits = (π_c − π_r) − (ref_c − ref_r)
///   sigmoid: −log σ(β·logits)·(1 − ε) − log σ(−β·logits)·ε        IPO: (logits − 1/(2β))²
///
/// and the loss is the batch mean. The reference log-probs are detached here, so a caller that
/// forgot to compute them without gradient still trains only the policy.
pub fn dpo_loss(
    policy_chosen: &Tensor,
    policy_rejected: &Tensor,
    ref_chosen: &Tensor,
    ref_rejected: &Tensor,
    beta: f64,
    kind: DpoLoss,
) -> candle_core::Result<DpoOutput> {
    const OP: &str = "DPO loss";
    if !(beta > 0.0 && beta.is_finite()) {
        candle_core::bail!("{OP}: beta must be positive and finite, got {beta}")
    }
    let (pc, pr) = (float(policy_chosen)?, float(policy_rejected)?);
    let (rc, rr) = (float(ref_chosen)?.detach(), float(ref_rejected)?.detach());
    let n = common_len(
        OP,
        &[
            ("policy chosen log-probs", &pc),
            ("policy rejected log-probs", &pr),
            ("reference chosen log-probs", &rc),
            ("reference rejected log-probs", &rr),
        ],
    )?;
    if n == 0 {
        candle_core::bail!("{OP} over an empty batch")
    }
    let logits = pc.sub(&pr)?.sub(&rc.sub(&rr)?)?; // (B)
    let losses = match kind {
        DpoLoss::Sigmoid { label_smoothing: eps } => {
            if !(0.0..=0.5).contains(&eps) {
                candle_core::bail!("{OP}: label smoothing must be in [0, 0.5], got {eps}")
            }
            let scaled = (&logits * beta)?;
            let agree = (log_sigmoid(&scaled)? * -(1.0 - eps))?;
            if eps == 0.0 {
                agree
            } else {
                agree.sub(&(log_sigmoid(&scaled.neg()?)? * eps)?)?
            }
        }
        DpoLoss::Ipo => (logits - 1.0 / (2.0 * beta))?.sqr()?,
    };
    Ok(DpoOutput {
        loss: losses.mean_all()?,
        chosen_rewards: (pc.sub(&rc)? * beta)?.detach(),
        rejected_rewards: (pr.sub(&rr)? * beta)?.detach(),
    })
}

/// Which per-token estimate of KL(π ‖ π_ref) [`kl_penalty`] computes (Schulman, "Approximating
/// KL divergence", 2020), from samples of π.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kl {
    /// k1 = log π − log π_ref: unbiased, high variance, can be negative (TRL PPO's `kl_estimator="k1"`).
    K1,
    /// k3 = exp(log π_ref − log π) − (log π_ref − log π) − 1: unbiased, ≥ 0, lower variance (GRPO).
    K3,
}

/// The per-token KL estimate (N) between the policy's log-probs and the reference's (N). The
/// reference is detached.
pub fn kl_penalty(logprobs: &Tensor, ref_logprobs: &Tensor, kind: Kl) -> candle_core::Result<Tensor> {
    let lp = float(logprobs)?;
    let reference = float(ref_logprobs)?.detach();
    common_len("KL penalty", &[("log-probs", &lp), ("reference log-probs", &reference)])?;
    match kind {
        Kl::K1 => lp.sub(&reference),
        Kl::K3 => {
            let d = reference.sub(&lp)?; // log(π_ref / π)
            d.exp()?.sub(&d)? - 1.0
        }
    }
}

/// Generalised advantage estimation (Schulman et al. 2016) over one episode of per-token rewards
/// and value estimates, as TRL's PPOTrainer runs it:
///
///   δ_t = r_t + γ·V_{t+1} − V_t  (V after the last token is 0),  A_t = δ_t + γλ·A_{t+1}
///
/// Returns (advantages, returns = advantages + values). Accumulates in f64.
pub fn gae(rewards: &[f32], values: &[f32], gamma: f64, lambda: f64) -> candle_core::Result<(Vec<f32>, Vec<f32>)> {
    if rewards.len() != values.len() {
        candle_core::bail!("GAE: {} rewards but {} values", rewards.len(), values.len())
    }
    let mut advantages = vec![0f32; rewards.len()];
    let mut last = 0f64;
    for t in (0..rewards.len()).rev() {
        let next_value = values.get(t + 1).map_or(0.0, |&v| v as f64);
        let delta = rewards[t] as f64 + gamma * next_value - values[t] as f64;
        last = delta + gamma * lambda * last;
        advantages[t] = last as f32;
    }
    let returns = advantages.iter().zip(values).map(|(a, v)| a + v).collect();
    Ok((advantages, returns))
}

/// (x − mean) / sqrt(var + 1e-8), with the unbiased variance (torch's default); with
/// `shift_mean` false the mean is added back, so only the scale changes (TRL `masked_whiten`,
/// which PPO applies to advantages). Fewer than 2 values is an error: their unbiased variance is
/// undefined.
pub fn whiten(values: &[f32], shift_mean: bool) -> candle_core::Result<Vec<f32>> {
    let n = values.len();
    if n < 2 {
        candle_core::bail!("whitening {n} values: the unbiased variance needs at least 2")
    }
    let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    let var = values.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let scale = 1.0 / (var + 1e-8).sqrt();
    let offset = if shift_mean { 0.0 } else { mean };
    Ok(values.iter().map(|&v| ((v as f64 - mean) * scale + offset) as f32).collect())
}

/// PPO's clipped surrogate (Schulman et al. 2017), as TRL's PPOTrainer computes it: with
/// ratio = exp(logprobs − old_logprobs) per token (N),
///
///   loss = masked mean of max(−A·ratio, −A·clamp(ratio, 1 − ε, 1 + ε))
///
/// Returns the loss and the clip fraction, the share of kept tokens where the clipped term won
/// (TRL's `pg_clipfrac`). Old log-probs and advantages are detached; `mask` is 0/1 of any dtype.
pub fn ppo_policy_loss(
    logprobs: &Tensor,
    old_logprobs: &Tensor,
    advantages: &Tensor,
    mask: &Tensor,
    clip_eps: f64,
) -> candle_core::Result<(Tensor, f32)> {
    const OP: &str = "PPO policy loss";
    if !(0.0..).contains(&clip_eps) {
        candle_core::bail!("{OP}: the clip range must be ≥ 0, got {clip_eps}")
    }
    let lp = float(logprobs)?;
    let (old, adv) = (float(old_logprobs)?.detach(), float(advantages)?.detach());
    common_len(OP, &[("log-probs", &lp), ("old log-probs", &old), ("advantages", &adv), ("mask", mask)])?;
    let ratio = lp.sub(&old)?.exp()?; // (N)
    let neg_adv = adv.neg()?;
    let unclipped = neg_adv.mul(&ratio)?;
    let clipped = neg_adv.mul(&ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps)?)?;
    let loss = masked_mean(OP, &unclipped.maximum(&clipped)?, mask)?;
    let won = clipped.gt(&unclipped)?.to_dtype(DType::F32)?;
    let clip_fraction = masked_mean(OP, &won, mask)?.to_scalar::<f32>()?;
    Ok((loss, clip_fraction))
}

/// PPO's clipped value loss, as TRL's PPOTrainer computes it: the new values (N) may move at most
/// `clip_value` from the old ones before the clipped term stops rewarding them,
///
///   loss = 0.5 · masked mean of max((V − R)², (clamp(V, V_old − c, V_old + c) − R)²)
///
/// Returns the loss and the clip fraction (TRL's `vf_clipfrac`). Old values and returns are
/// detached.
pub fn ppo_value_loss(
    values: &Tensor,
    old_values: &Tensor,
    returns: &Tensor,
    mask: &Tensor,
    clip_value: f64,
) -> candle_core::Result<(Tensor, f32)> {
    const OP: &str = "PPO value loss";
    if !(0.0..).contains(&clip_value) {
        candle_core::bail!("{OP}: the value clip range must be ≥ 0, got {clip_value}")
    }
    let v = float(values)?;
    let (old, ret) = (float(old_values)?.detach(), float(returns)?.detach());
    common_len(OP, &[("values", &v), ("old values", &old), ("returns", &ret), ("mask", mask)])?;
    // TRL's clip_by_value: max(min(v, hi), lo).
    let v_clipped = v.minimum(&(&old + clip_value)?)?.maximum(&(&old - clip_value)?)?;
    let unclipped = v.sub(&ret)?.sqr()?;
    let clipped = v_clipped.sub(&ret)?.sqr()?;
    let loss = (masked_mean(OP, &unclipped.maximum(&clipped)?, mask)? * 0.5)?;
    let won = clipped.gt(&unclipped)?.to_dtype(DType::F32)?;
    let clip_fraction = masked_mean(OP, &won, mask)?.to_scalar::<f32>()?;
    Ok((loss, clip_fraction))
}

/// GRPO's group-relative advantages (Shao et al. 2024): `rewards` holds consecutive groups of
/// `group_size` completions of one prompt, and each reward is compared with its group's,
///
///   scale: (r − mean_g) / (std_g + 1e-4)  (unbiased std, torch's default; TRL GRPOTrainer)
///   no scale: r − mean_g                   (Dr GRPO, Liu et al. 2025: the std favours easy prompts)
///
/// A group of identical rewards teaches nothing and gets exactly 0, never NaN (a group of one
/// included). Accumulates in f64.
pub fn group_advantages(rewards: &[f32], group_size: usize, scale: bool) -> candle_core::Result<Vec<f32>> {
    if group_size == 0 || !rewards.len().is_multiple_of(group_size) {
        candle_core::bail!("group advantages: {} rewards do not split into groups of {group_size}", rewards.len())
    }
    let mut advantages = Vec::with_capacity(rewards.len());
    for group in rewards.chunks(group_size) {
        // Checked rather than left to the formula: rounding in the mean, magnified by 1/1e-4,
        // would give small nonzero advantages.
        if group.iter().all(|&r| r == group[0]) {
            advantages.extend(std::iter::repeat_n(0.0, group.len()));
            continue;
        }
        let g = group.len() as f64;
        let mean = group.iter().map(|&r| r as f64).sum::<f64>() / g;
        let std = (group.iter().map(|&r| (r as f64 - mean).powi(2)).sum::<f64>() / (g - 1.0)).sqrt();
        let denom = if scale { std + 1e-4 } else { 1.0 };
        advantages.extend(group.iter().map(|&r| ((r as f64 - mean) / denom) as f32));
    }
    Ok(advantages)
}

/// How [`grpo_loss`] turns per-token losses into one number (TRL GRPOTrainer's `loss_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrpoNorm {
    /// Sum over all kept tokens / their count (DAPO, Yu et al. 2025; TRL "bnpo"/"dapo"): every
    /// token weighs the same, so long completions are not diluted.
    Token,
    /// The mean over each sequence's kept tokens, then the mean over sequences (the original
    /// GRPO; TRL "grpo"). A sequence with no kept token counts as 0, as TRL clamps its count to 1.
    Sequence,
    /// Sum over kept tokens / (S · max_len), a constant (Dr GRPO; TRL "dr_grpo" with
    /// `max_completion_length`): no length bias at all.
    Constant(usize),
}

/// The per-token inputs of [`grpo_loss`], each (N) over the batch's tokens laid end to end.
#[derive(Debug, Clone, Copy)]
pub struct GrpoTokens<'a> {
    /// log π_θ(token) under the policy being trained (differentiable).
    pub logprobs: &'a Tensor,
    /// log π_old(token) under the policy that sampled the completions (detached here). With one
    /// optimisation step per generation, pass `logprobs.detach()`: the ratio is then 1.
    pub old_logprobs: &'a Tensor,
    /// log π_ref(token) under the frozen reference; required when β ≠ 0, unused when β = 0.
    pub ref_logprobs: Option<&'a Tensor>,
    /// Each token's advantage: its completion's [`group_advantages`] entry, repeated.
    pub advantages: &'a Tensor,
    /// 0/1 (any dtype): 1 for completion tokens, 0 for padding and anything after EOS.
    pub mask: &'a Tensor,
    /// The sequence (of `n_seq`) each token belongs to.
    pub seq_of_token: &'a [u32],
    /// S, the number of sequences (completions) in the batch.
    pub n_seq: usize,
}

/// The hyper-parameters of [`grpo_loss`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GrpoConfig {
    /// The ratio's lower clip, 1 − ε_low (TRL `epsilon`).
    pub eps_low: f64,
    /// The ratio's upper clip, 1 + ε_high (TRL `epsilon_high`; DAPO's clip-higher sets it above ε_low).
    pub eps_high: f64,
    /// The weight β of the k3 KL penalty to the reference; 0 drops it (and the reference).
    pub beta: f64,
    /// How per-token losses are averaged.
    pub norm: GrpoNorm,
}

/// The GRPO loss, as TRL `GRPOTrainer.compute_loss` computes it: with ratio = exp(lp − old) per
/// token,
///
///   ℓ_t = −min(ratio·A, clamp(ratio, 1 − ε_low, 1 + ε_high)·A) + β·k3_t
///
/// with k3 as in [`kl_penalty`], averaged over the kept tokens as `cfg.norm` says. A mask that
/// keeps no token is an error.
pub fn grpo_loss(tokens: &GrpoTokens, cfg: &GrpoConfig) -> candle_core::Result<Tensor> {
    const OP: &str = "GRPO loss";
    if !((0.0..).contains(&cfg.eps_low) && (0.0..).contains(&cfg.eps_high)) {
        candle_core::bail!("{OP}: clip ranges must be ≥ 0, got ε_low {} and ε_high {}", cfg.eps_low, cfg.eps_high)
    }
    let lp = float(tokens.logprobs)?;
    let (old, adv) = (float(tokens.old_logprobs)?.detach(), float(tokens.advantages)?.detach());
    let n =
        common_len(OP, &[("log-probs", &lp), ("old log-probs", &old), ("advantages", &adv), ("mask", tokens.mask)])?;
    let (segment, n_seq) = (tokens.seq_of_token, tokens.n_seq);
    check_segments(OP, segment, n, n_seq)?;

    let ratio = lp.sub(&old)?.exp()?; // (N)
    let clipped = ratio.clamp(1.0 - cfg.eps_low, 1.0 + cfg.eps_high)?;
    let mut per_token = ratio.mul(&adv)?.minimum(&clipped.mul(&adv)?)?.neg()?;
    if cfg.beta != 0.0 {
        let Some(reference) = tokens.ref_logprobs else {
            candle_core::bail!("{OP}: beta is {} but no reference log-probs were given", cfg.beta)
        };
        per_token = per_token.add(&(kl_penalty(&lp, reference, Kl::K3)? * cfg.beta)?)?;
    }

    let keep = tokens.mask.ne(0.0)?;
    let kept = keep.where_cond(&per_token, &per_token.zeros_like()?)?; // (N), 0 where masked
    let keep_host = keep.to_dtype(DType::F32)?.to_vec1::<f32>()?;
    let total: f32 = keep_host.iter().sum();
    if total == 0.0 {
        candle_core::bail!("{OP}: the mask keeps none of the {n} tokens")
    }
    match cfg.norm {
        GrpoNorm::Token => kept.sum_all()? / total as f64,
        GrpoNorm::Sequence => {
            let mut counts = vec![0f32; n_seq];
            for (&s, &k) in segment.iter().zip(&keep_host) {
                if let Some(c) = counts.get_mut(s as usize) {
                    *c += k;
                }
            }
            let counts: Vec<f32> = counts.into_iter().map(|c| c.max(1.0)).collect();
            let counts = Tensor::from_vec(counts, n_seq, kept.device())?.to_dtype(kept.dtype())?;
            segment_sum(&kept, segment, n_seq)?.div(&counts)?.mean_all()
        }
        GrpoNorm::Constant(max_len) => {
            if max_len == 0 {
                candle_core::bail!("{OP}: the constant normaliser needs a maximum completion length > 0")
            }
            kept.sum_all()? / (n_seq * max_len) as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    fn logits() -> Tensor {
        Tensor::new(&[[1.0f32, 2.0, 0.5], [0.1, -1.0, 3.0], [2.0, 2.0, 2.0], [0.0, 5.0, -2.0]], &Device::Cpu).unwrap()
    }

    #[test]
    fn matches_candle_cross_entropy() {
        let t = Tensor::new(&[1u32, 2, 0, 1], &Device::Cpu).unwrap();
        let ours = cross_entropy(&logits(), &t).unwrap().to_scalar::<f32>().unwrap();
        let theirs = candle_nn::loss::cross_entropy(&logits(), &t).unwrap().to_scalar::<f32>().unwrap();
        assert!((ours - theirs).abs() < 1e-6, "{ours} vs {theirs}");
    }

    #[test]
    fn masked_positions_get_no_gradient_and_do_not_count() {
        let x = Var::from_tensor(&logits()).unwrap();
        let t = Tensor::new(&[1u32, 2, 0, 1], &Device::Cpu).unwrap();
        let mask = Tensor::new(&[0f32, 1.0, 0.0, 1.0], &Device::Cpu).unwrap();
        let loss = masked_cross_entropy(x.as_tensor(), &t, &mask).unwrap();
        // Equals the plain loss over the kept rows only.
        let kept = cross_entropy(
            &logits().index_select(&Tensor::new(&[1u32, 3], &Device::Cpu).unwrap(), 0).unwrap(),
            &Tensor::new(&[2u32, 1], &Device::Cpu).unwrap(),
        )
        .unwrap();
        assert!((loss.to_scalar::<f32>().unwrap() - kept.to_scalar::<f32>().unwrap()).abs() < 1e-6);
        let g = loss.backward().unwrap().get(x.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
        assert!(g[0].iter().chain(&g[2]).all(|&v| v == 0.0), "masked rows got gradient: {g:?}");
        assert!(g[1].iter().chain(&g[3]).any(|&v| v != 0.0));
    }

    #[test]
    fn masked_loss_ignores_non_finite_masked_logits() {
        let mut rows = logits().to_vec2::<f32>().unwrap();
        rows[0][0] = f32::NAN;
        let x = Tensor::new(rows, &Device::Cpu).unwrap();
        let t = Tensor::new(&[1u32, 2, 0, 1], &Device::Cpu).unwrap();
        let mask = Tensor::new(&[0f32, 1.0, 1.0, 1.0], &Device::Cpu).unwrap();
        assert!(masked_cross_entropy(&x, &t, &mask).unwrap().to_scalar::<f32>().unwrap().is_finite());
        assert!(masked_cross_entropy(&x, &t, &mask.zeros_like().unwrap()).is_err());
    }

    #[test]
    fn token_logprobs_gradient_matches_finite_differences() {
        let base = logits().to_dtype(DType::F64).unwrap();
        let t = Tensor::new(&[1u32, 2, 0, 1], &Device::Cpu).unwrap();
        let x = Var::from_tensor(&base).unwrap();
        let f = |x: &Tensor| token_logprobs(x, &t).unwrap().sum_all().unwrap();
        let g = f(x.as_tensor()).backward().unwrap().get(x.as_tensor()).unwrap().to_vec2::<f64>().unwrap();
        let v = base.to_vec2::<f64>().unwrap();
        for i in 0..4 {
            for j in 0..3 {
                let at = |d: f64| {
                    let mut w = v.clone();
                    w[i][j] += d;
                    f(&Tensor::new(w, &Device::Cpu).unwrap()).to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
                };
                let fd = (at(1e-6) - at(-1e-6)) / 2e-6;
                assert!((fd - g[i][j]).abs() < 1e-5, "({i},{j}): fd {fd} vs {}", g[i][j]);
            }
        }
    }
}
