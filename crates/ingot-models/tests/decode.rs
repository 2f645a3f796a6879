//! The candle-free decode loop (`FastDecoder`) computes what the model's forward pass computes:
//! on tiny seeded llama and qwen2 models stored as F32, F16, Q8_0, Q4_1 and Q4_0 GGUF files, its
//! logits at each of 11 positions, one token at a time on 1 and 3 threads, match the full
//! sequence's forward pass to float rounding. K-quant weights and enabled adapters are not run
//! by the loop (None), so callers fall back to the model.

use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor};
use ingot_models::{FastDecoder, Model};
use ingot_test_support::gguf::Storage;
use ingot_test_support::models::{LLAMA, LLAMA_K_QUANT, QWEN2};

fn load(config: &str, storage: Storage, name: &str) -> Model {
    let dir = ingot_test_support::temp_dir(name);
    let path = ingot_test_support::gguf::write_gguf(&dir.join("m.gguf"), config, 7, storage);
    ingot_models::load(&path, &Device::Cpu).unwrap().0
}

fn llama(model: &Model) -> &ingot_models::Llama {
    match model {
        Model::Llama(l) => l,
        _ => panic!("not a llama"),
    }
}

#[test]
fn the_decode_loop_matches_the_forward_pass() {
    let cases = [
        (LLAMA, Storage::F32, "f32"),
        (LLAMA, Storage::Quantized(GgmlDType::F16), "f16"),
        (LLAMA, Storage::Quantized(GgmlDType::Q8_0), "q8_0"),
        (LLAMA, Storage::Quantized(GgmlDType::Q4_1), "q4_1"),
        (LLAMA, Storage::Quantized(GgmlDType::Q4_0), "q4_0"),
        (QWEN2, Storage::Quantized(GgmlDType::Q8_0), "qwen2-q8_0"),
    ];
    for (config, storage, name) in cases {
        let model = load(config, storage, &format!("decode-{name}"));
        let vocab = model.vocab_size();
        let ids: Vec<u32> = (0..11).map(|i| ((i * 37 + 11) % vocab) as u32).collect();
        let input = Tensor::new(ids.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
        let want: Vec<Vec<f32>> = model.forward(&input, None).unwrap().squeeze(0).unwrap().to_vec2().unwrap();
        // Exact (f32 activations): float rounding. Fast (block formats read 16-bit activations):
        // within 1e-3 of the largest logit.
        for (threads, exact) in [(1, true), (3, true), (1, false), (3, false)] {
            let fast = FastDecoder::new(llama(&model), threads).unwrap_or_else(|| panic!("{name}: no decode loop"));
            fast.set_exact(exact);
            let tolerance = if exact { 1e-4 } else { 1e-3 };
            let mut state = fast.state(16);
            for (t, &id) in ids.iter().enumerate() {
                let got = fast.step(&mut state, id).unwrap();
                let worst = got.iter().zip(&want[t]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                let scale = want[t].iter().map(|v| v.abs()).fold(0f32, f32::max);
                eprintln!("{name} exact {exact}: position {t} off by {worst:.2e} (scale {scale:.2})");
                assert!(
                    worst <= tolerance * (1.0 + scale),
                    "{name}, {threads} threads, exact {exact}, position {t}: off by {worst}"
                );
            }
            assert_eq!(state.len(), 11);
        }
    }
}

#[test]
fn the_loop_refuses_what_it_does_not_run_and_bad_steps() {
    let model = load(LLAMA_K_QUANT, Storage::Quantized(GgmlDType::Q4K), "decode-q4k");
    assert!(FastDecoder::new(llama(&model), 1).is_none(), "Q4_K has no decode-loop kernel");
    let model = load(LLAMA, Storage::Quantized(GgmlDType::Q8_0), "decode-bad");
    let fast = FastDecoder::new(llama(&model), 2).unwrap();
    let mut state = fast.state(2);
    assert!(fast.step(&mut state, 1_000_000).unwrap_err().contains("outside the vocabulary"));
    fast.step(&mut state, 1).unwrap();
    fast.step(&mut state, 2).unwrap();
    assert!(fast.step(&mut state, 3).unwrap_err().contains("full"));
}
