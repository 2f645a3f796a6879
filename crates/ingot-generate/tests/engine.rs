//! The step engine: rows at different positions decode as one batch with the logits each gets
//! alone, and rows that join, finish and are cancelled at any step give exactly what they give
//! alone (and greedy rows what a cache-free recomputation gives).

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use ingot_generate::{
    generate, Engine, Event, FinishReason, GenerateParams, Generation, Pipeline, RowId, SamplingParams,
};
use ingot_models::Model;
use ingot_test_support::models::{write_model_folder, GPT2, LLAMA, QWEN2};
use ingot_test_support::temp_dir;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn tiny_pipelines() -> Vec<(&'static str, Pipeline)> {
    let dir = temp_dir("engine-models");
    [("llama", LLAMA), ("qwen2", QWEN2), ("gpt2", GPT2)]
        .into_iter()
        .map(|(name, json)| {
            let folder = write_model_folder(&dir.join(name), json, 5);
            (name, Pipeline::load(&folder, &Device::Cpu).unwrap())
        })
        .collect()
}

fn last_logits(model: &Model, ids: &[u32], cache: &mut ingot_models::Cache) -> Vec<f32> {
    let x = Tensor::new(ids, &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    model.forward_last(&x, Some(cache)).unwrap().squeeze(0).unwrap().to_vec1().unwrap()
}

/// Three rows prefilled to different lengths, then four batched steps, each row's logits checked
/// against the same step run alone on a copy of its cache.
fn check_rows_against_alone(name: &str, model: &Model, tolerance: f32) {
    let vocab = model.vocab_size() as u32;
    let prompts: Vec<Vec<u32>> =
        [3usize, 11, 7].iter().map(|&n| (0..n as u32).map(|i| (i * 7 + n as u32) % vocab).collect()).collect();
    let mut caches: Vec<ingot_models::Cache> = prompts
        .iter()
        .map(|p| {
            let mut c = model.new_cache();
            last_logits(model, p, &mut c);
            c
        })
        .collect();
    for step in 0..4u32 {
        let feed: Vec<u32> = (0..3u32).map(|r| (step * 13 + r * 5 + 1) % vocab).collect();
        let alone: Vec<Vec<f32>> =
            caches.iter().zip(&feed).map(|(c, &id)| last_logits(model, &[id], &mut c.fork().unwrap())).collect();
        let mut refs: Vec<&mut ingot_models::Cache> = caches.iter_mut().collect();
        let batched: Vec<Vec<f32>> = model.forward_rows(&feed, &mut refs).unwrap().to_vec2().unwrap();
        for (r, (a, b)) in alone.iter().zip(&batched).enumerate() {
            let scale = a.iter().fold(1f32, |m, x| m.max(x.abs()));
            let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(diff <= tolerance * scale, "{name}: row {r} at step {step} differs by {diff}");
        }
        assert_eq!(
            caches.iter().map(|c| c.len()).collect::<Vec<_>>(),
            vec![4 + step as usize, 12 + step as usize, 8 + step as usize]
        );
    }
}

/// Several prompts prefilled in one pass (segments of 5, 1 and 9 tokens, continuing caches of
/// 0, 6 and 2 positions): each segment's last logits and cache as when it runs alone.
fn check_segments_against_alone(name: &str, model: &Model, tolerance: f32) {
    let vocab = model.vocab_size() as u32;
    let ids = |n: usize, salt: u32| -> Vec<u32> { (0..n as u32).map(|i| (i * 11 + salt) % vocab).collect() };
    let mut caches: Vec<ingot_models::Cache> = [0usize, 6, 2]
        .iter()
        .map(|&past| {
            let mut c = model.new_cache();
            if past > 0 {
                last_logits(model, &ids(past, 3), &mut c);
            }
            c
        })
        .collect();
    let segments = [ids(5, 1), ids(1, 2), ids(9, 4)];
    let mut alone_caches: Vec<ingot_models::Cache> = caches.iter().map(|c| c.fork().unwrap()).collect();
    let alone: Vec<Vec<f32>> = segments.iter().zip(&mut alone_caches).map(|(s, c)| last_logits(model, s, c)).collect();
    let flat: Vec<u32> = segments.concat();
    let lens: Vec<usize> = segments.iter().map(Vec::len).collect();
    let mut refs: Vec<&mut ingot_models::Cache> = caches.iter_mut().collect();
    let together: Vec<Vec<f32>> = model.forward_segments(&flat, &lens, &mut refs).unwrap().to_vec2().unwrap();
    for (r, (a, b)) in alone.iter().zip(&together).enumerate() {
        let scale = a.iter().fold(1f32, |m, x| m.max(x.abs()));
        let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(diff <= tolerance * scale, "{name}: segment {r} differs by {diff}");
    }
    assert_eq!(caches.iter().map(|c| c.len()).collect::<Vec<_>>(), vec![5, 7, 11], "{name}");
    // The caches hold what the lone runs put there: one more token decodes alike.
    for (r, (c, a)) in caches.iter_mut().zip(&mut alone_caches).enumerate() {
        let (x, y) = (last_logits(model, &[7], c), last_logits(model, &[7], a));
        let diff = x.iter().zip(&y).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
        assert!(diff <= tolerance * x.iter().fold(1f32, |m, v| m.max(v.abs())), "{name}: cache {r} differs by {diff}");
    }
    // Segments that do not cover the tokens are refused.
    let mut refs: Vec<&mut ingot_models::Cache> = caches.iter_mut().collect();
    assert!(model.forward_segments(&flat, &[5, 1, 8], &mut refs).is_err());
}

#[test]
fn rows_at_different_positions_get_the_logits_they_get_alone() {
    for (name, p) in tiny_pipelines() {
        check_rows_against_alone(name, &p.model, 1e-4);
        check_segments_against_alone(name, &p.model, 1e-4);
    }
}

#[test]
fn rows_at_different_positions_on_the_default_model() {
    let Some(path) = ingot_test_support::real_model() else { return };
    let p = Pipeline::load(&path, &Device::Cpu).unwrap();
    check_rows_against_alone("default model", &p.model, 1e-4);
    check_segments_against_alone("default model", &p.model, 1e-4);
}

/// What the test asked for and what came back, per row.
struct Seen {
    prompt: Vec<u32>,
    params: GenerateParams,
    streamed: String,
    done: Option<Generation>,
    cancelled: bool,
}

#[test]
fn rows_join_finish_and_leave_at_any_step() {
    for (name, p) in tiny_pipelines() {
        let vocab = p.model.vocab_size() as u32;
        let ctx = p.model.context_length();
        let mut rng = StdRng::seed_from_u64(11);
        let mut engine = Engine::new(&p.model, &p.tokenizer, &p.device);
        let mut seen: HashMap<RowId, Seen> = HashMap::new();
        let mut max_rows = 0;
        for step in 0..60 {
            if step < 45 && rng.random_bool(0.5) {
                // Some prompts nearly fill the context, so those rows slide their window.
                let len = if rng.random_bool(0.15) { ctx - 3 } else { rng.random_range(1..20) };
                let prompt: Vec<u32> = (0..len).map(|_| rng.random_range(0..vocab)).collect();
                let sampling = if rng.random_bool(0.5) {
                    SamplingParams::default()
                } else {
                    SamplingParams { temperature: 0.8, top_p: 0.9, seed: rng.random(), ..SamplingParams::default() }
                };
                let stop = if rng.random_bool(0.3) { vec!["e".to_string()] } else { Vec::new() };
                let params =
                    GenerateParams { max_tokens: rng.random_range(0..12), sampling, stop, ..Default::default() };
                if rng.random_bool(0.3) {
                    // A group: one prefill, its cache copied to each row.
                    let samplings: Vec<SamplingParams> = (0..3)
                        .map(|k| SamplingParams {
                            temperature: 0.8 * k as f64,
                            seed: rng.random(),
                            ..SamplingParams::default()
                        })
                        .collect();
                    let ids = engine.join_group(&prompt, &params, &samplings, None, None).unwrap();
                    for (id, sampling) in ids.into_iter().zip(samplings) {
                        let params = GenerateParams { sampling, ..params.clone() };
                        seen.insert(
                            id,
                            Seen {
                                prompt: prompt.clone(),
                                params,
                                streamed: String::new(),
                                done: None,
                                cancelled: false,
                            },
                        );
                    }
                } else {
                    let id = engine.join(&prompt, &params).unwrap();
                    seen.insert(id, Seen { prompt, params, streamed: String::new(), done: None, cancelled: false });
                }
            }
            if rng.random_bool(0.1) {
                let running: Vec<RowId> =
                    seen.iter().filter(|(_, s)| s.done.is_none() && !s.cancelled).map(|(&id, _)| id).collect();
                if !running.is_empty() {
                    let id = running[rng.random_range(0..running.len())];
                    assert!(engine.cancel(id));
                    seen.get_mut(&id).unwrap().cancelled = true;
                }
            }
            max_rows = max_rows.max(engine.len());
            engine
                .step(&mut |event| match event {
                    Event::Text { row, text } => seen.get_mut(&row).unwrap().streamed.push_str(text),
                    Event::Done { row, generation } => {
                        let s = seen.get_mut(&row).unwrap();
                        assert!(s.done.is_none(), "{name}: row {row} finished twice");
                        s.done = Some(generation);
                    }
                })
                .unwrap();
        }
        engine
            .run(&mut |event| {
                if let Event::Done { row, generation } = event {
                    seen.get_mut(&row).unwrap().done = Some(generation);
                }
            })
            .unwrap();
        assert!(engine.is_empty());
        assert!(max_rows >= 4, "{name}: the schedule should run several rows at once (max {max_rows})");
        let (mut cancelled, mut slid) = (0, 0);
        for (id, s) in &seen {
            let got = s.done.as_ref().unwrap_or_else(|| panic!("{name}: row {id} never finished"));
            let alone = generate(&p.model, &p.tokenizer, &s.prompt, &s.params, &p.device, |_| {}).unwrap();
            if s.cancelled && got.finish_reason == FinishReason::Cancelled {
                cancelled += 1;
                assert!(alone.tokens.starts_with(&got.tokens), "{name}: cancelled row {id} went another way");
                continue;
            }
            assert_eq!(got.tokens, alone.tokens, "{name}: row {id} ({} prompt tokens, {:?})", s.prompt.len(), s.params);
            assert_eq!(got.text, alone.text);
            assert_eq!(got.finish_reason, alone.finish_reason);
            assert_eq!(s.streamed, got.text, "{name}: streamed text differs from the result");
            if s.prompt.len() + got.tokens.len() >= ctx {
                slid += 1;
            }
            if s.params.sampling.temperature == 0.0 {
                let slow = GenerateParams { no_cache: true, ..s.params.clone() };
                let reference = generate(&p.model, &p.tokenizer, &s.prompt, &slow, &p.device, |_| {}).unwrap();
                assert_eq!(
                    got.tokens, reference.tokens,
                    "{name}: greedy row {id} differs from the cache-free recomputation"
                );
            }
        }
        assert!(cancelled >= 1 && slid >= 1, "{name}: {cancelled} cancelled, {slid} slid: the schedule should do both");
    }
}

/// With the prompt store on, a prompt that begins like an earlier one computes only the rest
/// (its generation says how many positions it took from the store), decodes what it decodes
/// without the store, and leaves the store's copy intact for the next (a third prompt that
/// branches off inside the first still gets the first's tokens).
#[test]
fn prompts_that_begin_alike_continue_from_the_prompt_store() {
    for (name, p) in tiny_pipelines() {
        let vocab = p.model.vocab_size() as u32;
        let first: Vec<u32> = (0..12u32).map(|i| (i * 5 + 1) % vocab).collect();
        let second: Vec<u32> = first[..9].iter().copied().chain([3, 4, 5]).collect();
        let third: Vec<u32> = first[..6].iter().copied().chain([8, 9]).collect();
        let params = GenerateParams { max_tokens: 6, ..Default::default() };
        let run = |keep: usize| -> Vec<Generation> {
            let mut engine = Engine::new(&p.model, &p.tokenizer, &Device::Cpu).keep_prompts(keep);
            [&first, &second, &third]
                .iter()
                .map(|prompt| {
                    engine.join(prompt, &params).unwrap();
                    let mut done = None;
                    engine
                        .run(&mut |e| {
                            if let Event::Done { generation, .. } = e {
                                done = Some(generation);
                            }
                        })
                        .unwrap();
                    done.unwrap()
                })
                .collect()
        };
        let (with, without) = (run(4096), run(0));
        let cached: Vec<usize> = with.iter().map(|g| g.cached_tokens).collect();
        assert_eq!(cached, vec![0, 9, 6], "{name}");
        assert!(without.iter().all(|g| g.cached_tokens == 0), "{name}");
        for (a, b) in with.iter().zip(&without) {
            assert_eq!(a.tokens, b.tokens, "{name}: the store changed a greedy generation");
        }
    }
}

/// A quantized llama runs a row that decodes alone on the candle-free loop, and moves it back
/// onto its own cache when others join: the same schedule (one row, then three, then one
/// again, then a new one alone) gives the same tokens with the loop on and off, and greedy rows
/// what the cache-free recomputation gives. The tiny model checks the mechanics; the default
/// model, whose tokens depend on their context, checks that no position is lost on the way.
#[test]
fn a_lone_row_on_the_decode_loop_joins_batches_and_leaves_them() {
    use ingot_test_support::gguf::{write_gguf, Storage};
    let dir = temp_dir("engine-loop");
    let tokenizer = Pipeline::load(&write_model_folder(&dir.join("folder"), LLAMA, 5), &Device::Cpu).unwrap().tokenizer;
    let path = write_gguf(&dir.join("m.gguf"), LLAMA, 5, Storage::Quantized(candle_core::quantized::GgmlDType::Q8_0));
    let model = ingot_models::load(&path, &Device::Cpu).unwrap().0;
    check_loop_schedule("tiny Q8_0 llama", &model, &tokenizer);
    if let Some(path) = ingot_test_support::real_model() {
        let p = Pipeline::load(&path, &Device::Cpu).unwrap();
        check_loop_schedule("default model", &p.model, &p.tokenizer);
    }
}

fn check_loop_schedule(name: &str, model: &Model, tokenizer: &ingot_tokenizer::Tokenizer) {
    assert!(model.decode_loop().is_some(), "{name}: a quantized llama has a decode loop");
    let vocab = model.vocab_size() as u32;
    // (step it joins at, prompt length, tokens, temperature)
    let schedule = [(0usize, 5usize, 14usize, 0.0f64), (4, 9, 5, 0.0), (5, 3, 4, 0.9), (12, 7, 8, 0.0)];
    let run = |on: bool| -> Vec<Generation> {
        let mut engine = Engine::new(model, tokenizer, &Device::Cpu).decode_loop(on);
        let mut done: HashMap<RowId, Generation> = HashMap::new();
        let mut ids = Vec::new();
        for step in 0..40 {
            for (r, &(at, len, max_tokens, temperature)) in schedule.iter().enumerate() {
                if at == step {
                    let prompt: Vec<u32> = (0..len as u32).map(|i| (i * 1009 + r as u32 * 31 + 200) % vocab).collect();
                    let sampling = SamplingParams { temperature, seed: 7, ..SamplingParams::default() };
                    let params = GenerateParams { max_tokens, sampling, ..Default::default() };
                    ids.push((engine.join(&prompt, &params).unwrap(), prompt, params));
                }
            }
            engine
                .step(&mut |e| {
                    if let Event::Done { row, generation } = e {
                        done.insert(row, generation);
                    }
                })
                .unwrap();
        }
        assert!(engine.is_empty());
        ids.iter()
            .map(|(id, prompt, params)| {
                let got = done.remove(id).unwrap();
                if params.sampling.temperature == 0.0 {
                    let slow = GenerateParams { no_cache: true, ..params.clone() };
                    let reference = generate(model, tokenizer, prompt, &slow, &Device::Cpu, |_| {}).unwrap();
                    assert_eq!(
                        got.tokens, reference.tokens,
                        "{name}: greedy row {id} (loop {on}) differs from the recomputation"
                    );
                }
                got
            })
            .collect()
    };
    let (with, without) = (run(true), run(false));
    assert!(with[0].tokens.len() >= 4, "{name}: the first row should decode alone for a few steps");
    for (a, b) in with.iter().zip(&without) {
        assert_eq!(a.tokens, b.tokens, "{name}: the decode loop changed a row's tokens");
    }
}
