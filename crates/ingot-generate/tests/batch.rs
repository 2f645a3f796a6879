//! Batched generation (one prefill, rows decoded in lockstep) against one-row generation with the
//! same settings, on the real default model.

use candle_core::Device;
use ingot_generate::{
    generate, generate_batch, Engine, Event, GenerateParams, Generation, Pipeline, PromptCache, SamplingParams,
};

fn pipeline() -> Option<Pipeline> {
    let path = ingot_test_support::real_model()?;
    Some(Pipeline::load(&path, &Device::Cpu).unwrap())
}

fn alone_on_the_forward_pass(p: &Pipeline, prompt: &[u32], params: &GenerateParams) -> Generation {
    let mut engine = Engine::new(&p.model, &p.tokenizer, &p.device).decode_loop(false);
    engine.join(prompt, params).unwrap();
    let mut done = None;
    engine
        .run(&mut |e| {
            if let Event::Done { generation, .. } = e {
                done = Some(generation);
            }
        })
        .unwrap();
    done.unwrap()
}

#[test]
fn each_batch_row_equals_its_own_generation() {
    let Some(p) = pipeline() else { return };
    let prompt = p
        .tokenizer
        .encode("Question: Tom has 12 apples and buys 7 more. How many apples does he have?\nAnswer:", false)
        .unwrap();
    let params = GenerateParams { max_tokens: 24, stop: vec!["\n\n".into()], ..GenerateParams::default() };
    let sampled = |seed| SamplingParams { temperature: 0.9, seed, ..SamplingParams::default() };
    let rows = [SamplingParams::default(), sampled(1), sampled(2), sampled(3)];
    let batch = generate_batch(&p.model, &p.tokenizer, &prompt, &params, &rows, None, &p.device).unwrap();
    // The same from a cached prefix of the prompt.
    let prefix = PromptCache::new(&p.model, &prompt[..prompt.len() - 5], &p.device).unwrap();
    let from_prefix =
        generate_batch(&p.model, &p.tokenizer, &prompt, &params, &rows, Some(&prefix), &p.device).unwrap();
    // Prefilling in two parts changes logits in the last float digits (~2e-5 here), which can flip
    // a sampled token where two candidates are that close; the greedy row must agree, and most
    // sampled ones do.
    assert_eq!(from_prefix[0].tokens, batch[0].tokens);
    let same = batch.iter().zip(&from_prefix).filter(|(a, b)| a.tokens == b.tokens).count();
    assert!(same >= 3, "{same} of 4 rows agree");
    // The cached prefix is not changed by use: a second run gives exactly the same again.
    let again = generate_batch(&p.model, &p.tokenizer, &prompt, &params, &rows, Some(&prefix), &p.device).unwrap();
    for (a, b) in again.iter().zip(&from_prefix) {
        assert_eq!(a.tokens, b.tokens);
    }
    // A prefix that runs past the prompt's tokens (BPE merged across the seam) is used as far as
    // it agrees.
    let mut longer = prompt[..prompt.len() - 3].to_vec();
    longer.push(prompt[prompt.len() - 3] + 1);
    let seam = PromptCache::new(&p.model, &longer, &p.device).unwrap();
    let from_seam =
        generate_batch(&p.model, &p.tokenizer, &prompt, &params, &rows[..1], Some(&seam), &p.device).unwrap();
    assert_eq!(from_seam[0].tokens, batch[0].tokens);
    assert_eq!(batch.len(), rows.len());
    let mut distinct = std::collections::HashSet::new();
    for (row, b) in rows.iter().zip(&batch) {
        // Alone on the forward pass (the arithmetic a batch row runs): exactly the same. Alone
        // on the decode loop (what `generate` runs), logits agree to float rounding, which may
        // flip a sampled token where two are that close, so the greedy row is held to it.
        let single = GenerateParams { sampling: row.clone(), ..params.clone() };
        let g = alone_on_the_forward_pass(&p, &prompt, &single);
        assert_eq!(b.text, g.text, "row with {row:?}");
        assert_eq!(b.tokens, g.tokens);
        assert_eq!(b.finish_reason, g.finish_reason);
        if row.temperature == 0.0 {
            let looped = generate(&p.model, &p.tokenizer, &prompt, &single, &p.device, |_| {}).unwrap();
            assert_eq!(b.tokens, looped.tokens, "the greedy row on the decode loop");
        }
        distinct.insert(b.text.clone());
    }
    // The rows really are different samples (the comparison above can fail).
    assert!(distinct.len() >= 3, "{distinct:?}");
}
