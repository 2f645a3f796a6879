//! The alignment losses of `ingot_train::loss` against hand computations.
//!
//! Every expected value is computed here in plain f64 Rust from the formula the function's doc
//! cites (TRL's trainers), never by calling the function under test again. Inputs are F32 (what
//! training uses) unless a gradient is checked, which uses F64 Vars. Tolerances: 1e-5 for F32
//! results of order 1, 1e-9 for F64.

use candle_core::{DType, Device, Tensor, Var};
use ingot_train::loss::{
    bradley_terry, dpo_loss, gae, group_advantages, grpo_loss, kl_penalty, leading_nll, log_sigmoid, ppo_policy_loss,
    ppo_value_loss, sequence_logprobs, sequence_mean_logprobs, whiten, DpoLoss, GrpoConfig, GrpoNorm, GrpoTokens, Kl,
};

const F32_TOL: f64 = 1e-5;
const F64_TOL: f64 = 1e-9;

fn t32(v: &[f64]) -> Tensor {
    Tensor::from_slice(v, v.len(), &Device::Cpu).unwrap().to_dtype(DType::F32).unwrap()
}

fn t64(v: &[f64]) -> Tensor {
    Tensor::from_slice(v, v.len(), &Device::Cpu).unwrap()
}

fn var64(v: &[f64]) -> Var {
    Var::from_tensor(&t64(v)).unwrap()
}

fn scalar(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap()
}

fn grad(loss: &Tensor, x: &Var) -> Vec<f64> {
    values(loss.backward().unwrap().get(x.as_tensor()).expect("no gradient reached the input"))
}

fn close(got: f64, want: f64, tol: f64, what: &str) {
    assert!((got - want).abs() <= tol, "{what}: got {got}, want {want} (tolerance {tol})");
}

fn all_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        close(*g, *w, tol, &format!("{what}[{i}]"));
    }
}

/// log σ(x), the textbook stable form.
fn ln_sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        -(-x).exp().ln_1p()
    } else {
        x - x.exp().ln_1p()
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

// ----- log σ and sequence log-probs -----

#[test]
fn log_sigmoid_is_stable_and_its_gradient_is_sigmoid_of_minus_x() {
    let xs = [-100.0, -3.0, -0.5, 0.0, 0.5, 3.0, 100.0];
    let x = var64(&xs);
    let y = log_sigmoid(x.as_tensor()).unwrap();
    all_close(&values(&y), &xs.map(ln_sigmoid), F64_TOL, "log σ");
    // d/dx log σ(x) = σ(−x) = 1 / (1 + e^x); at 0 exactly 1/2.
    let g = grad(&y.sum_all().unwrap(), &x);
    all_close(&g, &xs.map(|x: f64| 1.0 / (1.0 + x.exp())), F64_TOL, "d log σ / dx");
    // F32 at ±200: no inf, no NaN.
    let big = values(&log_sigmoid(&t32(&[-200.0, 200.0])).unwrap());
    all_close(&big, &[-200.0, 0.0], F32_TOL, "log σ(±200) in f32");
}

#[test]
fn sequence_logprobs_sums_per_sequence_and_gradient_reaches_every_token() {
    let lp = [-0.5, -1.25, -2.0, -0.125, -3.0, -0.75];
    let segment = [0u32, 0, 1, 1, 1, 2];
    let x = var64(&lp);
    let sums = sequence_logprobs(x.as_tensor(), &segment, 3).unwrap();
    all_close(&values(&sums), &[-1.75, -5.125, -0.75], F64_TOL, "sums");
    // loss = 2·s0 + 3·s1 + 5·s2: each token's gradient is its sequence's weight.
    let weights = Tensor::new(&[2.0f64, 3.0, 5.0], &Device::Cpu).unwrap();
    let g = grad(&sums.mul(&weights).unwrap().sum_all().unwrap(), &x);
    assert_eq!(g, vec![2.0, 2.0, 3.0, 3.0, 3.0, 5.0]);

    // F32 in, F32 out; a sequence with no token sums to 0.
    let sums = sequence_logprobs(&t32(&lp), &segment, 4).unwrap();
    assert_eq!(sums.dtype(), DType::F32);
    all_close(&values(&sums), &[-1.75, -5.125, -0.75, 0.0], F32_TOL, "f32 sums");
}

#[test]
fn sequence_mean_logprobs_averages_per_token() {
    let lp = [-0.5, -1.25, -2.0, -0.125, -3.0, -0.75];
    let segment = [0u32, 0, 1, 1, 1, 2];
    let means = sequence_mean_logprobs(&t32(&lp), &segment, 3).unwrap();
    all_close(&values(&means), &[-1.75 / 2.0, -5.125 / 3.0, -0.75], F32_TOL, "means");
    let err = sequence_mean_logprobs(&t32(&lp), &segment, 4).unwrap_err().to_string();
    assert!(err.contains("sequence 3 of 4"), "{err}");
}

#[test]
fn leading_nll_is_the_token_mean_over_the_first_sequences_and_only_they_get_gradient() {
    // Sequences 0 and 1 lead (the chosen answers, 2 + 1 tokens); 2 and 3 trail.
    let lp = [-0.5, -1.25, -2.0, -0.125, -3.0, -0.75];
    let segment = [0u32, 2, 0, 1, 3, 3];
    let want = (0.5 + 2.0 + 0.125) / 3.0;
    close(scalar(&leading_nll(&t32(&lp), &segment, 2).unwrap()), want, F32_TOL, "nll");
    let x = var64(&lp);
    let g = grad(&leading_nll(x.as_tensor(), &segment, 2).unwrap(), &x);
    all_close(&g, &[-1.0 / 3.0, 0.0, -1.0 / 3.0, -1.0 / 3.0, 0.0, 0.0], F64_TOL, "gradient");
    let err = leading_nll(&t32(&lp), &[2, 2, 3, 3, 3, 2], 2).unwrap_err().to_string();
    assert!(err.contains("keeps none"), "{err}");
}

#[test]
fn sequence_logprobs_rejects_bad_segments() {
    let lp = t32(&[-1.0, -2.0, -3.0]);
    let err = sequence_logprobs(&lp, &[0, 1], 2).unwrap_err().to_string();
    assert!(err.contains("3 tokens") && err.contains("2 sequence ids"), "{err}");
    let err = sequence_logprobs(&lp, &[0, 1, 2], 2).unwrap_err().to_string();
    assert!(err.contains("sequence id 2") && err.contains("2 sequences"), "{err}");
}

// ----- Bradley-Terry -----

#[test]
fn bradley_terry_matches_hand_values() {
    let c = [1.0, 0.2, -0.5, 2.5];
    let r = [0.0, 0.7, -0.5, -1.0];
    let m = [0.5, 0.0, 1.0, 0.25];
    let plain = mean(&[0, 1, 2, 3].map(|i| -ln_sigmoid(c[i] - r[i])));
    let with_margin = mean(&[0, 1, 2, 3].map(|i| -ln_sigmoid(c[i] - r[i] - m[i])));
    let centre = mean(&[0, 1, 2, 3].map(|i| (c[i] + r[i]).powi(2)));

    let got = |margin: Option<&Tensor>, coef: f64| scalar(&bradley_terry(&t32(&c), &t32(&r), margin, coef).unwrap());
    close(got(None, 0.0), plain, F32_TOL, "plain");
    close(got(Some(&t32(&m)), 0.0), with_margin, F32_TOL, "margin");
    close(got(None, 0.01), plain + 0.01 * centre, F32_TOL, "centring");
    close(got(Some(&t32(&m)), 0.01), with_margin + 0.01 * centre, F32_TOL, "margin and centring");
}

#[test]
fn bradley_terry_is_stable_for_large_rewards() {
    let right = bradley_terry(&t32(&[100.0]), &t32(&[-100.0]), None, 0.0).unwrap();
    let wrong = bradley_terry(&t32(&[-100.0]), &t32(&[100.0]), None, 0.0).unwrap();
    close(scalar(&right), 0.0, F32_TOL, "confidently right");
    close(scalar(&wrong), 200.0, 1e-3, "confidently wrong");
}

#[test]
fn bradley_terry_rejects_mismatched_lengths() {
    let err = bradley_terry(&t32(&[1.0, 2.0, 3.0]), &t32(&[1.0, 2.0]), None, 0.0).unwrap_err().to_string();
    assert!(err.contains('3') && err.contains('2'), "{err}");
    let err = bradley_terry(&t32(&[1.0, 2.0]), &t32(&[1.0, 2.0]), Some(&t32(&[0.5])), 0.0).unwrap_err().to_string();
    assert!(err.contains("2 values") && err.contains("margins has 1"), "{err}");
}

// ----- DPO -----

// Two pairs: policy chosen/rejected, reference chosen/rejected sequence log-probs.
const PC: [f64; 2] = [-1.0, -2.0];
const PR: [f64; 2] = [-1.5, -1.6];
const RC: [f64; 2] = [-1.2, -2.1];
const RR: [f64; 2] = [-1.4, -1.9];

fn dpo_logits() -> [f64; 2] {
    [0, 1].map(|i| (PC[i] - PR[i]) - (RC[i] - RR[i]))
}

#[test]
fn dpo_sigmoid_matches_trl_formula_with_and_without_label_smoothing() {
    let beta = 0.1;
    for ls in [0.0, 0.2] {
        // TRL: -logsigmoid(β·logits)·(1 − ls) − logsigmoid(−β·logits)·ls, then the mean.
        let want = mean(&dpo_logits().map(|z| -ln_sigmoid(beta * z) * (1.0 - ls) - ln_sigmoid(-beta * z) * ls));
        let out = dpo_loss(&t32(&PC), &t32(&PR), &t32(&RC), &t32(&RR), beta, DpoLoss::Sigmoid { label_smoothing: ls })
            .unwrap();
        close(scalar(&out.loss), want, F32_TOL, &format!("sigmoid loss, label smoothing {ls}"));
        all_close(&values(&out.chosen_rewards), &[0, 1].map(|i| beta * (PC[i] - RC[i])), F32_TOL, "chosen rewards");
        all_close(&values(&out.rejected_rewards), &[0, 1].map(|i| beta * (PR[i] - RR[i])), F32_TOL, "rejected rewards");
    }
}

#[test]
fn dpo_metrics_are_the_trl_batch_means() {
    let beta = 0.1;
    let out = dpo_loss(&t32(&PC), &t32(&PR), &t32(&RC), &t32(&RR), beta, DpoLoss::Sigmoid { label_smoothing: 0.0 })
        .unwrap()
        .metrics()
        .unwrap();
    // Chosen rewards 0.1·(0.2, 0.1) = (0.02, 0.01); rejected 0.1·(−0.1, 0.3) = (−0.01, 0.03).
    close(out.chosen as f64, 0.015, F32_TOL, "rewards/chosen");
    close(out.rejected as f64, 0.01, F32_TOL, "rewards/rejected");
    close(out.margin as f64, 0.005, F32_TOL, "rewards/margins");
    assert_eq!(out.accuracy, 0.5, "only the first pair ranks chosen above rejected");
}

#[test]
fn dpo_ipo_matches_trl_formula() {
    let beta = 0.25;
    // TRL: (logits − 1/(2β))², then the mean.
    let want = mean(&dpo_logits().map(|z| (z - 1.0 / (2.0 * beta)).powi(2)));
    let out = dpo_loss(&t32(&PC), &t32(&PR), &t32(&RC), &t32(&RR), beta, DpoLoss::Ipo).unwrap();
    close(scalar(&out.loss), want, F32_TOL, "IPO loss");
}

#[test]
fn dpo_loss_is_ln2_when_policy_equals_reference() {
    for ls in [0.0, 0.1] {
        let out = dpo_loss(&t32(&PC), &t32(&PR), &t32(&PC), &t32(&PR), 0.5, DpoLoss::Sigmoid { label_smoothing: ls })
            .unwrap();
        close(scalar(&out.loss), std::f64::consts::LN_2, 1e-6, &format!("label smoothing {ls}"));
        assert_eq!(out.metrics().unwrap().accuracy, 0.0, "ties are not accurate");
    }
}

#[test]
fn dpo_gradient_raises_chosen_and_lowers_rejected() {
    let beta = 0.5;
    let (pc, pr, rc, rr) = (var64(&PC), var64(&PR), var64(&PC), var64(&PR));
    let out = dpo_loss(
        pc.as_tensor(),
        pr.as_tensor(),
        rc.as_tensor(),
        rr.as_tensor(),
        beta,
        DpoLoss::Sigmoid { label_smoothing: 0.0 },
    )
    .unwrap();
    let grads = out.loss.backward().unwrap();
    let g_chosen = values(grads.get(pc.as_tensor()).unwrap());
    let g_rejected = values(grads.get(pr.as_tensor()).unwrap());
    // At logits 0: dL/dπ_c = −β·σ(0)/B = −β/4 with B = 2, and the opposite for π_r.
    all_close(&g_chosen, &[-beta / 4.0; 2], F64_TOL, "dL/dπ_c");
    all_close(&g_rejected, &[beta / 4.0; 2], F64_TOL, "dL/dπ_r");
    assert!(grads.get(rc.as_tensor()).is_none() && grads.get(rr.as_tensor()).is_none(), "the reference is frozen");

    // IPO: dL/dπ_c = 2·(logits − 1/(2β))/B = −1/(2β) at logits 0: also downhill when π_c rises.
    let out = dpo_loss(pc.as_tensor(), pr.as_tensor(), rc.as_tensor(), rr.as_tensor(), beta, DpoLoss::Ipo).unwrap();
    all_close(&grad(&out.loss, &pc), &[-1.0 / (2.0 * beta); 2], F64_TOL, "IPO dL/dπ_c");
}

#[test]
fn dpo_rejects_mismatched_lengths_and_bad_settings() {
    let sig = DpoLoss::Sigmoid { label_smoothing: 0.0 };
    let err = dpo_loss(&t32(&PC), &t32(&PR), &t32(&RC), &t32(&[-1.0, -2.0, -3.0]), 0.1, sig).unwrap_err().to_string();
    assert!(err.contains("2 values") && err.contains("has 3"), "{err}");
    assert!(dpo_loss(&t32(&PC), &t32(&PR), &t32(&RC), &t32(&RR), 0.0, DpoLoss::Ipo).is_err());
    let bad = DpoLoss::Sigmoid { label_smoothing: 0.7 };
    assert!(dpo_loss(&t32(&PC), &t32(&PR), &t32(&RC), &t32(&RR), 0.1, bad).is_err());
}

// ----- KL -----

#[test]
fn kl_k1_and_k3_match_hand_values() {
    let lp = [-1.0, -2.0, -0.5, -3.0];
    let rf = [-1.5, -2.0, -0.2, -1.0];
    let k1 = values(&kl_penalty(&t32(&lp), &t32(&rf), Kl::K1).unwrap());
    all_close(&k1, &[0.5, 0.0, -0.3, -2.0], F32_TOL, "k1");
    let k3 = values(&kl_penalty(&t32(&lp), &t32(&rf), Kl::K3).unwrap());
    let want = [0, 1, 2, 3].map(|i| {
        let d: f64 = rf[i] - lp[i];
        d.exp() - d - 1.0
    });
    all_close(&k3, &want, F32_TOL, "k3");
    assert!(k3.iter().all(|&k| k >= 0.0), "k3 is never negative: {k3:?}");
}

// ----- GAE and whitening -----

/// The closed form A_t = Σ_l (γλ)^l δ_{t+l}, δ_t = r_t + γ·V_{t+1} − V_t with V_T = 0.
fn gae_closed_form(r: &[f64], v: &[f64], gamma: f64, lambda: f64) -> Vec<f64> {
    let n = r.len();
    let delta: Vec<f64> = (0..n).map(|t| r[t] + gamma * v.get(t + 1).copied().unwrap_or(0.0) - v[t]).collect();
    (0..n).map(|t| (t..n).map(|k| (gamma * lambda).powi((k - t) as i32) * delta[k]).sum()).collect()
}

#[test]
fn gae_matches_the_closed_form() {
    let r = [0.0, 0.0, -0.1, 0.0, 1.0];
    let v = [0.3, 0.5, 0.2, 0.4, 0.8];
    for (gamma, lambda) in [(1.0, 0.95), (0.9, 0.8), (0.99, 1.0)] {
        let (adv, ret) = gae(&r.map(|x| x as f32), &v.map(|x| x as f32), gamma, lambda).unwrap();
        let want = gae_closed_form(&r, &v, gamma, lambda);
        let adv: Vec<f64> = adv.iter().map(|&a| a as f64).collect();
        all_close(&adv, &want, F32_TOL, &format!("advantages γ {gamma} λ {lambda}"));
        let ret: Vec<f64> = ret.iter().map(|&x| x as f64).collect();
        let want_ret: Vec<f64> = want.iter().zip(&v).map(|(a, v)| a + v).collect();
        all_close(&ret, &want_ret, F32_TOL, "returns");
    }
    // λ = 1, γ = 1: the advantage is the reward-to-go minus the value.
    let (adv, _) = gae(&[1.0, 2.0, 3.0], &[0.5, 0.5, 0.5], 1.0, 1.0).unwrap();
    assert_eq!(adv, vec![5.5, 4.5, 2.5]);
    let err = gae(&[1.0, 2.0, 3.0], &[0.5, 0.5], 1.0, 1.0).unwrap_err().to_string();
    assert!(err.contains("3 rewards") && err.contains("2 values"), "{err}");
}

#[test]
fn whiten_gives_mean_0_and_unbiased_std_1() {
    let x = [1.0f32, 4.0, -2.0, 0.5, 3.0, 7.5];
    let stats = |v: &[f32]| {
        let n = v.len() as f64;
        let m = v.iter().map(|&a| a as f64).sum::<f64>() / n;
        let var = v.iter().map(|&a| (a as f64 - m).powi(2)).sum::<f64>() / (n - 1.0);
        (m, var.sqrt())
    };
    let (m, s) = stats(&whiten(&x, true).unwrap());
    close(m, 0.0, F32_TOL, "mean");
    close(s, 1.0, F32_TOL, "std");
    // Without the shift only the scale changes: the mean stays.
    let (m, s) = stats(&whiten(&x, false).unwrap());
    close(m, stats(&x).0, F32_TOL, "kept mean");
    close(s, 1.0, F32_TOL, "std");
    assert!(whiten(&[1.0], true).is_err(), "one value has no unbiased variance");
}

// ----- PPO -----

#[test]
fn ppo_policy_loss_clips_at_the_edges() {
    let eps = 0.2;
    // Ratios below 1 − ε, inside, above 1 + ε, first for A = +1 then for A = −1; a masked token
    // with a huge ratio and advantage must count for nothing.
    let ratio = [0.5, 1.1, 1.5, 0.5, 1.1, 1.5, 150.0];
    let adv = [1.0, 1.0, 1.0, -1.0, -1.0, -1.0, 10.0];
    let mask = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0];
    // max(−A·ratio, −A·clamp(ratio, 0.8, 1.2)) per kept token, by hand:
    //   A = +1: max(−0.5, −0.8) = −0.5    max(−1.1, −1.1) = −1.1    max(−1.5, −1.2) = −1.2 (clipped)
    //   A = −1: max(0.5, 0.8) = 0.8 (clipped)    1.1    max(1.5, 1.2) = 1.5
    let want_loss = (-0.5 - 1.1 - 1.2 + 0.8 + 1.1 + 1.5) / 6.0;
    let lp = var64(&ratio.map(f64::ln));
    let (loss, clip_fraction) = ppo_policy_loss(lp.as_tensor(), &t64(&[0.0; 7]), &t64(&adv), &t32(&mask), eps).unwrap();
    close(scalar(&loss), want_loss, F32_TOL, "loss");
    close(clip_fraction as f64, 2.0 / 6.0, 1e-6, "clip fraction");
    // Clipped tokens and the masked one get no gradient; the others get −A·ratio / 6.
    let want_grad = [-0.5 / 6.0, -1.1 / 6.0, 0.0, 0.0, 1.1 / 6.0, 1.5 / 6.0, 0.0];
    all_close(&grad(&loss, &lp), &want_grad, 1e-6, "dL/dlogprobs");
}

#[test]
fn ppo_value_loss_clips_around_the_old_values() {
    let c = 0.2;
    let v = [1.5, 1.1, 3.0, 0.5, 9.0];
    let old = [1.0, 1.0, 1.0, 1.0, 0.0];
    let ret = [2.0, 2.0, 1.5, 0.0, 0.0];
    let mask = [1.0, 1.0, 1.0, 1.0, 0.0];
    // By hand: clamp(v, old ± 0.2) = (1.2, 1.1, 1.2, 0.8); squared errors unclipped / clipped:
    //   (0.25, 0.64) → 0.64 clipped   (0.81, 0.81) → 0.81   (2.25, 0.09) → 2.25   (0.25, 0.64) → 0.64 clipped
    let want = 0.5 * (0.64 + 0.81 + 2.25 + 0.64) / 4.0;
    let (loss, clip_fraction) = ppo_value_loss(&t32(&v), &t32(&old), &t32(&ret), &t32(&mask), c).unwrap();
    close(scalar(&loss), want, F32_TOL, "value loss");
    close(clip_fraction as f64, 0.5, 1e-6, "value clip fraction");
    let err = ppo_value_loss(&t32(&v), &t32(&old[..4]), &t32(&ret), &t32(&mask), c).unwrap_err().to_string();
    assert!(err.contains("5 values") && err.contains("has 4"), "{err}");
    assert!(ppo_value_loss(&t32(&v), &t32(&old), &t32(&ret), &t32(&[0.0; 5]), c).is_err(), "empty mask");
}

// ----- GRPO -----

#[test]
fn group_advantages_normal_and_zero_variance_groups() {
    let rewards = [0.1f32, 0.1, 0.1, 0.0, 1.0, 2.0, 3.0, 1.0, 5.0];
    let scaled = group_advantages(&rewards, 3, true).unwrap();
    // Group 1: identical, exactly 0. Group 2: mean 1, unbiased std 1. Group 3: mean 3, std 2.
    let d2 = 1.0 + 1e-4;
    let d3 = 2.0 + 1e-4;
    let want = [0.0, 0.0, 0.0, -1.0 / d2, 0.0, 1.0 / d2, 0.0, -2.0 / d3, 2.0 / d3];
    assert!(scaled[..3].iter().all(|&a| a == 0.0), "zero-variance group: {scaled:?}");
    all_close(&scaled.iter().map(|&a| a as f64).collect::<Vec<_>>(), &want, 1e-6, "scaled");
    // Dr GRPO: no division by the std.
    let unscaled = group_advantages(&rewards, 3, false).unwrap();
    let want = [0.0, 0.0, 0.0, -1.0, 0.0, 1.0, 0.0, -2.0, 2.0];
    all_close(&unscaled.iter().map(|&a| a as f64).collect::<Vec<_>>(), &want, 1e-6, "unscaled");
    // Groups of one: no NaN.
    assert_eq!(group_advantages(&[1.0, 2.0], 1, true).unwrap(), vec![0.0, 0.0]);
    let err = group_advantages(&rewards[..5], 3, true).unwrap_err().to_string();
    assert!(err.contains("5 rewards") && err.contains("groups of 3"), "{err}");
    assert!(group_advantages(&rewards, 0, true).is_err());
}

// Three sequences: 0 has tokens 0..3 (the third masked), 1 has tokens 3..5, 2 has one masked token.
// Ratios: e^0.1 (inside), e^0.4 ≈ 1.49 with A > 0 (clipped to 1.28), 1, e^−0.3 ≈ 0.74 with A < 0
// (clipped to 0.8).
const LP: [f64; 6] = [-1.0, -0.5, -2.0, -0.3, -1.2, -0.7];
const OLD: [f64; 6] = [-1.1, -0.9, -2.0, -0.3, -0.9, -0.7];
const REF: [f64; 6] = [-0.9, -0.6, -1.0, -0.4, -1.3, -0.2];
const ADV: [f64; 6] = [0.7, 0.7, 0.7, -1.2, -1.2, 0.4];
const MASK: [f64; 6] = [1.0, 1.0, 0.0, 1.0, 1.0, 0.0];
const SEQ: [u32; 6] = [0, 0, 0, 1, 1, 2];

/// −min(ratio·A, clamp(ratio, 1 − ε_low, 1 + ε_high)·A) + β·k3 for token i, by hand.
fn grpo_term(i: usize, eps_low: f64, eps_high: f64, beta: f64) -> f64 {
    let ratio = (LP[i] - OLD[i]).exp();
    let clipped = ratio.clamp(1.0 - eps_low, 1.0 + eps_high);
    let d = REF[i] - LP[i];
    -(ratio * ADV[i]).min(clipped * ADV[i]) + beta * (d.exp() - d - 1.0)
}

#[test]
fn grpo_loss_under_each_normalisation_matches_hand_sums() {
    let (eps_low, eps_high) = (0.2, 0.28);
    let (lp, old, rf, adv, mask) = (t32(&LP), t32(&OLD), t32(&REF), t32(&ADV), t32(&MASK));
    let tokens = GrpoTokens {
        logprobs: &lp,
        old_logprobs: &old,
        ref_logprobs: Some(&rf),
        advantages: &adv,
        mask: &mask,
        seq_of_token: &SEQ,
        n_seq: 3,
    };
    for beta in [0.0, 0.04] {
        let l = |i| grpo_term(i, eps_low, eps_high, beta);
        let kept_sum = l(0) + l(1) + l(3) + l(4);
        let cases = [
            (GrpoNorm::Token, kept_sum / 4.0),
            // Sequence 2 keeps nothing and counts as 0 in the mean over 3 sequences.
            (GrpoNorm::Sequence, ((l(0) + l(1)) / 2.0 + (l(3) + l(4)) / 2.0 + 0.0) / 3.0),
            (GrpoNorm::Constant(8), kept_sum / (3.0 * 8.0)),
        ];
        for (norm, want) in cases {
            let cfg = GrpoConfig { eps_low, eps_high, beta, norm };
            close(scalar(&grpo_loss(&tokens, &cfg).unwrap()), want, F32_TOL, &format!("{norm:?}, β {beta}"));
        }
    }
    // The inputs exercise the clip: without it the hand sum would differ.
    let unclipped: f64 = [0, 1, 3, 4].iter().map(|&i| -(LP[i] - OLD[i]).exp() * ADV[i]).sum();
    let clipped_sum: f64 = [0, 1, 3, 4].iter().map(|&i| grpo_term(i, eps_low, eps_high, 0.0)).sum();
    assert!((unclipped - clipped_sum).abs() > 0.1, "{unclipped} vs {clipped_sum}");
}

#[test]
fn grpo_clipping_takes_the_pessimistic_branch() {
    // Token 0: ratio e^0.5 ≈ 1.65 with A > 0 is clipped to 1.28; token 1: ratio e^−0.5 ≈ 0.61
    // with A < 0 is clipped to 0.8. Both terms become constants: −1.28·A and −0.8·A.
    let lp = var64(&[0.5, -0.5]);
    let (old, adv, mask) = (t64(&[0.0, 0.0]), t64(&[2.0, -3.0]), t32(&[1.0, 1.0]));
    let tokens = GrpoTokens {
        logprobs: lp.as_tensor(),
        old_logprobs: &old,
        ref_logprobs: None,
        advantages: &adv,
        mask: &mask,
        seq_of_token: &[0, 1],
        n_seq: 2,
    };
    let cfg = GrpoConfig { eps_low: 0.2, eps_high: 0.28, beta: 0.0, norm: GrpoNorm::Token };
    let loss = grpo_loss(&tokens, &cfg).unwrap();
    close(scalar(&loss), (-1.28 * 2.0 + -0.8 * -3.0) / 2.0, F64_TOL, "clipped loss");
    assert_eq!(grad(&loss, &lp), vec![0.0, 0.0], "clipped tokens get no gradient");
}

#[test]
fn grpo_on_policy_gradient_is_minus_the_advantage() {
    // One step per generation: old = lp.detach(), ratio 1, and dL/dlp_t = −A_t / (kept tokens).
    let lp = var64(&LP);
    let old = lp.as_tensor().detach();
    let (adv, mask) = (t64(&ADV), t64(&MASK));
    let tokens = GrpoTokens {
        logprobs: lp.as_tensor(),
        old_logprobs: &old,
        ref_logprobs: None,
        advantages: &adv,
        mask: &mask,
        seq_of_token: &SEQ,
        n_seq: 3,
    };
    let cfg = GrpoConfig { eps_low: 0.2, eps_high: 0.2, beta: 0.0, norm: GrpoNorm::Token };
    let loss = grpo_loss(&tokens, &cfg).unwrap();
    close(scalar(&loss), -(0.7 + 0.7 - 1.2 - 1.2) / 4.0, F64_TOL, "on-policy loss");
    let want: Vec<f64> = (0..6).map(|i| -ADV[i] * MASK[i] / 4.0).collect();
    all_close(&grad(&loss, &lp), &want, F64_TOL, "dL/dlogprobs");
}

#[test]
fn grpo_rejects_missing_reference_and_bad_shapes() {
    let (lp, old, adv, mask) = (t32(&LP), t32(&OLD), t32(&ADV), t32(&MASK));
    let tokens = GrpoTokens {
        logprobs: &lp,
        old_logprobs: &old,
        ref_logprobs: None,
        advantages: &adv,
        mask: &mask,
        seq_of_token: &SEQ,
        n_seq: 3,
    };
    let cfg = GrpoConfig { eps_low: 0.2, eps_high: 0.2, beta: 0.04, norm: GrpoNorm::Token };
    assert!(grpo_loss(&tokens, &cfg).unwrap_err().to_string().contains("no reference"));
    let cfg = GrpoConfig { beta: 0.0, ..cfg };
    let short = t32(&ADV[..5]);
    let err = grpo_loss(&GrpoTokens { advantages: &short, ..tokens }, &cfg).unwrap_err().to_string();
    assert!(err.contains("6 values") && err.contains("has 5"), "{err}");
    let err = grpo_loss(&GrpoTokens { seq_of_token: &SEQ[..4], ..tokens }, &cfg).unwrap_err().to_string();
    assert!(err.contains("6 tokens") && err.contains("4 sequence ids"), "{err}");
    let none = t32(&[0.0; 6]);
    assert!(grpo_loss(&GrpoTokens { mask: &none, ..tokens }, &cfg).is_err(), "a mask that keeps nothing");
}
