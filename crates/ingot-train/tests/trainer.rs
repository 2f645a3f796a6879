//! The trainer end to end on tiny models: exact resume, gradient accumulation, finite-difference
//! gradient checks, and the pretrain recipe's checkpoints loading for generation.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use ingot_models::Model;
use ingot_nn::{SeededVarMap, Weights};
use ingot_test_support::{dialogue_corpus, temp_dir, write_txt};
use ingot_train::recipes::pretrain::{self, lm_loss, PretrainConfig};
use ingot_train::trainer::{gradients, named_vars, Objective};

fn config(corpus: &Path, max_steps: u64, extra: &str) -> PretrainConfig {
    let text = format!(
        r#"
[model]
preset = "char-baby"
n_layer = 2
n_head = 2
n_embd = 32
n_positions = 32
resid_pdrop = 0.1
[data]
corpus = "{}"
tokenizer_kind = "char"
batch_size = 4
context = 16
eval_batches = 2
[train]
max_steps = {max_steps}
warmup_steps = 2
decay_steps = 8
lr = 3e-3
min_lr = 3e-4
eval_interval = 4
checkpoint_interval = 4
log_interval = 1
keep_last = 5
{extra}
"#,
        corpus.display()
    );
    PretrainConfig::from_toml(&text, &[], "test config").unwrap()
}

fn read_weights(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let tensors = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    let mut out: Vec<(String, Vec<u8>)> = tensors
        .into_iter()
        .map(|(k, t)| {
            let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
            (k, v.iter().flat_map(|x| x.to_le_bytes()).collect())
        })
        .collect();
    out.sort();
    out
}

/// 2N steps in one run and N steps + resume + N steps give bit-identical weights (dropout on, so
/// masks must be reproduced too).
#[test]
fn resume_is_bit_identical() {
    resume_is_bit_identical_in("");
}

/// The same in bf16 (the products rounded, the master weights and AdamW state f32); the
/// preset's attention dropout is 0, so the fused attention kernel is on the path too.
#[test]
fn resume_is_bit_identical_in_bf16() {
    resume_is_bit_identical_in("precision = \"bf16\"");
}

fn resume_is_bit_identical_in(precision: &str) {
    let dir = temp_dir("trainer-resume");
    // Six generated plays of 120 speeches: a few thousand characters, enough for 8 steps.
    let corpus = write_txt(&dir.join("corpus"), &dialogue_corpus(6, 120));
    let straight = dir.join("straight");
    let split = dir.join("split");
    let data = dir.join("data");
    let mut cfg = config(&corpus, 8, precision);
    cfg.data.dir = Some(data.clone());
    pretrain::run(&cfg, &straight, false, false, false).unwrap();
    let mut half = config(&corpus, 4, precision);
    half.data.dir = Some(data.clone());
    pretrain::run(&half, &split, false, false, false).unwrap();
    pretrain::run(&cfg, &split, true, false, false).unwrap();
    let a = read_weights(&straight.join("step-00000008"));
    let b = read_weights(&split.join("step-00000008"));
    assert_eq!(a.len(), b.len());
    for ((ka, va), (kb, vb)) in a.iter().zip(&b) {
        assert_eq!(ka, kb);
        assert!(va == vb, "weight {ka} differs after resume");
    }
    // Metrics of the resumed run continue the log without duplicates.
    let log = std::fs::read_to_string(split.join("metrics.jsonl")).unwrap();
    let steps: Vec<u64> =
        log.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, (1..=8).collect::<Vec<_>>());
    // A different seed trains differently (the comparison above can fail).
    let mut other = config(&corpus, 8, &format!("seed = 7\n{precision}"));
    other.data.dir = Some(data);
    pretrain::run(&other, &dir.join("other"), false, false, false).unwrap();
    assert_ne!(a, read_weights(&dir.join("other/step-00000008")));
    // The checkpoint folder is a model folder: generation loads it.
    let p = ingot_generate::Pipeline::load(&straight.join("step-00000008"), &Device::Cpu).unwrap();
    let ids = p.tokenizer.encode("ROMEO.\n", false).unwrap();
    let params = ingot_generate::GenerateParams { max_tokens: 8, ..Default::default() };
    let g = ingot_generate::generate(&p.model, &p.tokenizer, &ids, &params, &p.device, |_| {}).unwrap();
    assert!(!g.tokens.is_empty());
    // The loss went down, and the plot was written.
    let first: f64 =
        serde_json::from_str::<serde_json::Value>(log.lines().next().unwrap()).unwrap()["loss"].as_f64().unwrap();
    let last: f64 =
        serde_json::from_str::<serde_json::Value>(log.lines().last().unwrap()).unwrap()["loss"].as_f64().unwrap();
    assert!(last < first, "loss {first} -> {last}");
    assert!(std::fs::read_to_string(split.join("loss.svg")).unwrap().starts_with("<svg"));
}

/// Fixed rows of token ids; micro-batch m of k takes rows [m·4/k, (m+1)·4/k).
struct FixedRows {
    rows: Vec<Vec<u32>>,
    per_micro: usize,
}

impl Objective for FixedRows {
    fn loss(&mut self, model: &Model, _step: u64, micro: u32) -> ingot_train::Result<(Tensor, usize)> {
        let rows = &self.rows[micro as usize * self.per_micro..(micro as usize + 1) * self.per_micro];
        let t = rows[0].len() - 1;
        let x: Vec<u32> = rows.iter().flat_map(|r| r[..t].to_vec()).collect();
        let y: Vec<u32> = rows.iter().flat_map(|r| r[1..].to_vec()).collect();
        Ok((lm_loss(model, &x, &y, rows.len(), t, &Device::Cpu)?, rows.len() * t))
    }
    fn eval_loss(&mut self, _model: &Model) -> ingot_train::Result<Option<f64>> {
        Ok(None)
    }
}

fn tiny_model(kind: &str, vocab: usize, dtype: DType, seed: u64) -> (Model, VarMap) {
    let json = match kind {
        "gpt2" => format!(
            r#"{{"model_type":"gpt2","vocab_size":{vocab},"n_positions":16,"n_embd":16,"n_layer":2,"n_head":2,"resid_pdrop":0.0}}"#
        ),
        _ => format!(
            r#"{{"model_type":"llama","vocab_size":{vocab},"hidden_size":16,"intermediate_size":24,"num_hidden_layers":2,
            "num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":16,"tie_word_embeddings":false}}"#
        ),
    };
    let cfg: ingot_models::HfConfig = serde_json::from_str(&json).unwrap();
    let varmap = VarMap::new();
    let seeded = SeededVarMap::new(varmap.clone(), seed);
    let w = Weights::from_var_builder(seeded.var_builder_dtype(&Device::Cpu, dtype));
    (ingot_models::from_hf_config(&cfg, &w, "test").unwrap(), varmap)
}

/// Accumulating k micro-batches gives the gradient of one k-times-larger batch (1e-5).
#[test]
fn gradient_accumulation_equals_a_larger_batch() {
    for kind in ["gpt2", "llama"] {
        let (model, varmap) = tiny_model(kind, 23, DType::F32, 3);
        let vars = named_vars(&varmap).unwrap();
        let rows: Vec<Vec<u32>> = (0..4).map(|r| (0..11).map(|i| ((r * 5 + i * 3) % 23) as u32).collect()).collect();
        let (big, loss_big, n_big) =
            gradients(&model, &mut FixedRows { rows: rows.clone(), per_micro: 4 }, 0, 1, &vars).unwrap();
        for k in [2u32, 4] {
            let per = 4 / k as usize;
            let (acc, loss_acc, n_acc) =
                gradients(&model, &mut FixedRows { rows: rows.clone(), per_micro: per }, 0, k, &vars).unwrap();
            assert_eq!(n_big, n_acc);
            assert!((loss_big - loss_acc).abs() < 1e-6, "{kind} k={k}: loss {loss_big} vs {loss_acc}");
            for (name, var) in &vars {
                let a = big.get(var.as_tensor()).unwrap();
                let b = acc.get(var.as_tensor()).unwrap();
                let diff =
                    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
                let scale = a.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
                assert!(diff <= 1e-5 * scale.max(1e-3), "{kind} k={k}: {name} differs by {diff} (scale {scale})");
            }
        }
    }
}

/// Autograd agrees with central finite differences in f64 (relative error 1e-6) for entries
/// of embeddings, attention and MLP weights, biases and norm weights.
#[test]
fn gradients_match_finite_differences_in_f64() {
    for kind in ["gpt2", "llama"] {
        let (model, varmap) = tiny_model(kind, 19, DType::F64, 5);
        let vars = named_vars(&varmap).unwrap();
        let x: Vec<u32> = (0..2 * 7).map(|i| ((i * 7 + 3) % 19) as u32).collect();
        let y: Vec<u32> = (0..2 * 7).map(|i| ((i * 5 + 1) % 19) as u32).collect();
        let loss = || lm_loss(&model, &x, &y, 2, 7, &Device::Cpu).unwrap();
        let grads = loss().backward().unwrap();
        let mut checked = 0;
        for (name, var) in &vars {
            let g: Vec<f64> = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            let base: Vec<f64> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            // Three entries spread over the tensor.
            for &i in &[0, base.len() / 2, base.len() - 1] {
                let h = 1e-5;
                let at = |delta: f64| -> f64 {
                    let mut v = base.clone();
                    v[i] += delta;
                    var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap()).unwrap();
                    loss().to_scalar::<f64>().unwrap()
                };
                let fd = (at(h) - at(-h)) / (2.0 * h);
                var.set(&Tensor::from_vec(base.clone(), var.shape(), &Device::Cpu).unwrap()).unwrap();
                // Central differences: truncation error ~h²·f''' (~1e-10) plus rounding of the
                // loss difference ~eps·L/h (~3e-11 with L ≈ 3): relative 1e-6, with an absolute
                // floor of 1e-9 for entries whose gradient is itself tiny.
                let err = (fd - g[i]).abs();
                let tol = 1e-6 * fd.abs().max(g[i].abs()) + 1e-9;
                assert!(
                    err <= tol,
                    "{kind} {name}[{i}]: autograd {} vs finite difference {fd} (error {err:e} > {tol:e})",
                    g[i]
                );
                checked += 1;
            }
        }
        assert!(checked >= 3 * 10, "{kind}: only {checked} entries checked");
    }
}
