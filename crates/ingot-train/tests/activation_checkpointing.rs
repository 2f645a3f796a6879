//! Activation checkpointing changes memory, not results: the gradients of every trainable
//! variable equal those of the plain backward pass (GPT-2 and llama, full training and LoRA,
//! with dropout on, so the recomputation must draw the forward's masks), and an SFT run with it
//! ends where one without it ends.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use ingot_models::Model;
use ingot_test_support::models::{write_model_folder, LLAMA};
use ingot_test_support::temp_dir;
use ingot_train::recipes::pretrain::{build_model, ModelSection};
use ingot_train::recipes::sft::{self, SftConfig};
use ingot_train::trainer::{gradients, named_vars, Objective};

/// Next-token loss on one fixed batch.
struct Fixed {
    ids: Tensor,
    targets: Tensor,
}

impl Objective for Fixed {
    fn loss(&mut self, model: &Model, _step: u64, _micro: u32) -> ingot_train::Result<(Tensor, usize)> {
        let logits = model.forward(&self.ids, None)?;
        let (b, t, v) = logits.dims3().unwrap();
        let loss = ingot_train::loss::cross_entropy(&logits.reshape((b * t, v)).unwrap(), &self.targets).unwrap();
        Ok((loss, b * t))
    }

    fn eval_loss(&mut self, _model: &Model) -> ingot_train::Result<Option<f64>> {
        Ok(None)
    }
}

fn fixed_batch(vocab: usize) -> Fixed {
    let ids: Vec<u32> = (0..2 * 9).map(|i| (i * 7 + 3) as u32 % vocab as u32).collect();
    let targets: Vec<u32> = ids.iter().map(|i| (i * 5 + 1) % vocab as u32).collect();
    Fixed {
        ids: Tensor::from_vec(ids, (2, 9), &Device::Cpu).unwrap(),
        targets: Tensor::from_vec(targets, 18, &Device::Cpu).unwrap(),
    }
}

/// Gradients of one step by name, with dropout in training mode from a fixed seed.
fn step_grads(model: &Model, vars: &VarMap) -> Vec<(String, Vec<f32>)> {
    let named = named_vars(vars).unwrap();
    for d in model.dropout_states() {
        d.train(42);
    }
    let mut objective = fixed_batch(model.vocab_size());
    let (grads, loss, _) = gradients(model, &mut objective, 0, 2, &named).unwrap();
    assert!(loss.is_finite());
    named
        .iter()
        .map(|(name, var)| {
            let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("{name} got no gradient"));
            (name.clone(), g.flatten_all().unwrap().to_vec1::<f32>().unwrap())
        })
        .collect()
}

fn assert_close(plain: &[(String, Vec<f32>)], checkpointed: &[(String, Vec<f32>)], what: &str) {
    assert_eq!(plain.len(), checkpointed.len());
    for ((name, a), (_, b)) in plain.iter().zip(checkpointed) {
        let scale = a.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
        let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(diff <= 1e-5 * scale, "{what}: {name} differs by {diff} (largest gradient {scale})");
        assert!(scale > 1e-6, "{what}: {name} has an all-zero gradient");
    }
}

#[test]
fn checkpointed_gradients_equal_plain_ones_with_dropout_on() {
    for (preset, overrides) in [
        (
            "tiny",
            r#"{"n_layer": 3, "n_embd": 32, "n_head": 4, "n_positions": 16, "resid_pdrop": 0.2, "attn_pdrop": 0.2, "embd_pdrop": 0.1}"#,
        ),
        (
            "llama-tiny",
            r#"{"num_hidden_layers": 3, "hidden_size": 32, "intermediate_size": 48, "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 16}"#,
        ),
    ] {
        let section = ModelSection { preset: preset.into(), overrides: serde_json::from_str(overrides).unwrap() };
        let (plain, vars, _) = build_model(&section, 50, 7, &Device::Cpu).unwrap();
        let expected = step_grads(&plain, &vars);
        let (mut model, vars, _) = build_model(&section, 50, 7, &Device::Cpu).unwrap();
        model.enable_checkpointing(vars.clone());
        // The blocks really are recomputed: their parameters' gradients arrive through the store.
        let (loss, _) = fixed_batch(50).loss(&model, 0, 0).unwrap();
        let _outer = loss.backward().unwrap();
        assert!(model.take_checkpoint_grads().len() >= 3 * 4, "{preset}: no block was checkpointed");
        assert_close(&expected, &step_grads(&model, &vars), preset);
        assert!(model.take_checkpoint_grads().is_empty(), "{preset}: the trainer took every checkpointed gradient");
    }
}

fn sft_config(method: &str, data: &Path, tokenizer: &Path, checkpointing: bool) -> SftConfig {
    let text = format!(
        r#"
[model]
method = "{method}"
tokenizer = "{}"
[lora]
r = 4
lora_alpha = 8
lora_dropout = 0.1
target_modules = ["q_proj", "v_proj", "down_proj"]
[data]
train = "{}"
max_len = 60
seq_len = 64
batch_size = 2
[train]
max_steps = 3
lr = 1e-2
warmup_steps = 1
checkpoint_interval = 0
eval_interval = 0
log_interval = 1
activation_checkpointing = {checkpointing}
"#,
        tokenizer.display(),
        data.display()
    );
    SftConfig::from_toml(&text, &[], "test.toml").unwrap()
}

fn no_generator(_: &sft::GenerateSection, _: &Path) -> ingot_train::Result<(PathBuf, Option<PathBuf>)> {
    panic!("this test reads a data file")
}

#[test]
fn sft_with_checkpointing_ends_where_plain_sft_ends() {
    let dir = temp_dir("sft-checkpointing");
    let hf = write_model_folder(&dir.join("hf"), LLAMA, 3);
    let data = dir.join("data.jsonl");
    let lines: Vec<String> = (0..8)
        .map(|i| {
            serde_json::json!({"prompt": format!("Q{i}: {i} plus 2?"), "completion": format!(" {}.", i + 2)})
                .to_string()
        })
        .collect();
    std::fs::write(&data, lines.join("\n")).unwrap();
    let tok = hf.join("tokenizer.json");
    for method in ["full", "lora"] {
        let run = |on: bool| {
            let out = dir.join(format!("{method}-{on}"));
            let report =
                sft::run(&sft_config(method, &data, &tok, on), &hf, &out, false, false, false, &no_generator).unwrap();
            report.final_loss
        };
        let (plain, checkpointed) = (run(false), run(true));
        assert!((plain - checkpointed).abs() <= 1e-5 * plain.abs(), "{method}: {plain} vs {checkpointed}");
    }
}
