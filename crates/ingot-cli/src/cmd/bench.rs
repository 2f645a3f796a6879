//! `ingot bench`: prefill and decode speed of a model, the way llama-bench reports them
//! (prompt processing on a 512-token prompt, generation of 128 tokens), median of repeats.

use std::time::Instant;

use anyhow::Result;
use candle_core::{DType, Tensor};
use clap::Args;

use crate::args::ModelArgs;

#[derive(Args, Debug)]
pub struct BenchCmd {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Prompt length for the prefill measurement.
    #[arg(long, default_value_t = 512)]
    pub prompt_tokens: usize,
    /// Tokens to decode for the generation measurement.
    #[arg(long, default_value_t = 128)]
    pub decode_tokens: usize,
    /// Repeats; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// What decodes: `loop` (the candle-free decode loop, llama models with Q4_0/Q4_1/Q8_0,
    /// F16 or F32 weights; the model's forward pass otherwise) or `model` (the forward pass
    /// through candle, as batched generation runs it).
    #[arg(long, default_value = "loop", value_parser = ["loop", "model"])]
    pub decode: String,
}

const TEXT: &str = "The history of natural language processing generally started in the 1950s, although work can be found from earlier periods. In 1950, Alan Turing published an article titled Computing Machinery and Intelligence which proposed what is now called the Turing test as a criterion of intelligence. ";

/// The first index of the largest logit (candle's argmax picks the same).
fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in logits.iter().enumerate() {
        if *v > logits[best] {
            best = i;
        }
    }
    best as u32
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub fn run(cmd: BenchCmd) -> Result<()> {
    anyhow::ensure!(cmd.prompt_tokens > 0, "--prompt-tokens must be at least 1");
    anyhow::ensure!(cmd.decode_tokens > 0, "--decode-tokens must be at least 1");
    anyhow::ensure!(cmd.repeats > 0, "--repeats must be at least 1");
    let p = cmd.model.load()?;
    let ctx = p.model.context_length();
    anyhow::ensure!(
        cmd.prompt_tokens + cmd.decode_tokens <= ctx,
        "--prompt-tokens + --decode-tokens ({}) exceed the context length {ctx}",
        cmd.prompt_tokens + cmd.decode_tokens
    );
    let mut ids = Vec::new();
    while ids.len() < cmd.prompt_tokens {
        ids.extend(p.tokenizer.encode(TEXT, false)?);
    }
    ids.truncate(cmd.prompt_tokens);
    let threads = candle_core::utils::get_num_threads();
    let fast = match (&p.model, cmd.decode.as_str()) {
        (ingot_models::Model::Llama(l), "loop") => ingot_models::FastDecoder::new(l, threads),
        _ => None,
    };
    println!("model:   {}", p.files.path.display());
    println!("threads: {threads}");
    if let Some(f) = &fast {
        f.set_exact(cmd.model.exact);
    }
    println!(
        "decoder: {}",
        match &fast {
            Some(_) if cmd.model.exact => "decode loop, f32 activations (--exact)",
            Some(_) => "decode loop, 16-bit activations for block formats",
            None => "model forward pass",
        }
    );
    let mut state = fast.as_ref().map(|f| f.state(cmd.prompt_tokens + cmd.decode_tokens + 1));

    let (mut prefill, mut decode) = (Vec::new(), Vec::new());
    for rep in 0..=cmd.repeats {
        let mut cache = p.model.new_cache();
        let input = Tensor::new(ids.as_slice(), &p.device)?.unsqueeze(0)?;
        let t0 = Instant::now();
        let logits = p.model.forward_last(&input, Some(&mut cache))?;
        let mut next = logits.argmax(candle_core::D::Minus1)?.to_dtype(DType::U32)?.to_vec1::<u32>()?[0];
        let t_prefill = t0.elapsed().as_secs_f64();
        let t_decode = match (&fast, state.as_mut()) {
            (Some(f), Some(s)) => {
                // The loop's own cache holds the prompt (fed untimed: prefill is measured above).
                s.clear();
                for &id in &ids {
                    f.step(s, id).map_err(anyhow::Error::msg)?;
                }
                let t1 = Instant::now();
                for _ in 0..cmd.decode_tokens {
                    let logits = f.step(s, next).map_err(anyhow::Error::msg)?;
                    next = argmax(logits);
                }
                t1.elapsed().as_secs_f64()
            }
            _ => {
                let t1 = Instant::now();
                for _ in 0..cmd.decode_tokens {
                    let input = Tensor::new(&[next], &p.device)?.unsqueeze(0)?;
                    let logits = p.model.forward_last(&input, Some(&mut cache))?;
                    next = logits.argmax(candle_core::D::Minus1)?.to_dtype(DType::U32)?.to_vec1::<u32>()?[0];
                }
                t1.elapsed().as_secs_f64()
            }
        };
        if rep == 0 {
            continue; // warm-up: page in the weights, size the caches
        }
        prefill.push(cmd.prompt_tokens as f64 / t_prefill);
        decode.push(cmd.decode_tokens as f64 / t_decode);
    }
    println!(
        "prefill: {:.1} tokens/s ({} prompt tokens, median of {})",
        median(prefill),
        cmd.prompt_tokens,
        cmd.repeats
    );
    println!("decode:  {:.1} tokens/s ({} tokens, median of {})", median(decode), cmd.decode_tokens, cmd.repeats);
    Ok(())
}
