//! `ingot inspect MODEL`: what a model file is, without running it.
//!
//! Everything shown that the file itself supplies (its name, tensor names, token strings, the chat
//! template) goes through `ingot_core::text`, so a hostile file cannot put escape sequences on the
//! terminal or flood it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use ingot_core::text::{escaped, quoted};

use crate::args::ModelArgs;

#[derive(Args, Debug)]
pub struct InspectCmd {
    /// A GGUF file or checkpoint folder (default: the default model); the same as --model.
    #[arg(value_name = "PATH", conflicts_with = "model")]
    pub path: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Also list every tensor with its shape and type.
    #[arg(long)]
    pub tensors: bool,
}

pub fn run(cmd: InspectCmd) -> Result<()> {
    let args = ModelArgs {
        model: cmd.path.clone().or(cmd.model.model.clone()),
        adapter: cmd.model.adapter.clone(),
        threads: cmd.model.threads,
        exact: cmd.model.exact,
    };
    let p = args.load()?;
    let m = &p.model;
    println!("path:            {}", p.files.path.display());
    println!("architecture:    {}", m.architecture());
    match m {
        ingot_models::Model::Llama(l) => {
            let c = l.config();
            println!("layers:          {}", c.num_layers);
            println!("hidden size:     {}", c.hidden_size);
            println!("mlp size:        {}", c.intermediate_size);
            println!("heads:           {} query, {} key/value (head dim {})", c.num_heads, c.num_kv_heads, c.head_dim);
            println!("rope:            theta {} scaling {}", c.rope_theta, rope_scaling(&c.rope_scaling));
            println!("tied embeddings: {}", c.tie_word_embeddings);
        }
        ingot_models::Model::Gpt2(g) => {
            let c = g.config();
            println!("layers:          {}", c.n_layer);
            println!("width:           {}", c.n_embd);
            println!("heads:           {}", c.n_head);
        }
    }
    println!("vocabulary:      {} (tokenizer: {} tokens)", m.vocab_size(), p.tokenizer.vocab_size());
    println!("context length:  {}", m.context_length());

    let mut types: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut params = 0usize;
    let mut bytes = 0usize;
    let mut listing = Vec::new();
    if let Some(g) = &p.files.gguf {
        for t in g.tensors() {
            let e = types.entry(t.ggml_type.name().to_string()).or_default();
            e.0 += 1;
            e.1 += t.elem_count();
            params += t.elem_count();
            bytes += t.n_bytes;
            listing.push(format!("{:<40} {:>16} {}", quoted(&t.name).to_string(), shape(&t.shape), t.ggml_type.name()));
        }
        println!("format:          GGUF v{}", g.version());
        if let Ok(Some(name)) = g.get_str("general.name") {
            println!("name:            {}", quoted(name));
        }
    } else {
        let files = ingot_models::safetensors_files(&p.files.path)?;
        // SAFETY: read-only map of checkpoint files that Ingot only ever replaces by rename.
        let st = unsafe { candle_core::safetensors::MmapedSafetensors::multi(&files)? };
        for (name, view) in st.tensors() {
            let n: usize = view.shape().iter().product();
            let ty = format!("{:?}", view.dtype());
            let e = types.entry(ty.clone()).or_default();
            e.0 += 1;
            e.1 += n;
            params += n;
            bytes += view.data().len();
            listing.push(format!("{:<40} {:>16} {}", quoted(&name).to_string(), shape(view.shape()), ty));
        }
        println!("format:          safetensors ({} file(s))", files.len());
    }
    println!(
        "parameters:      {} ({:.1} M), {:.1} MiB stored",
        params,
        params as f64 / 1e6,
        bytes as f64 / (1 << 20) as f64
    );
    let summary: Vec<String> =
        types.iter().map(|(t, (n, e))| format!("{t}: {n} tensors, {:.1} M params", *e as f64 / 1e6)).collect();
    println!("tensor types:    {}", summary.join("; "));
    let tk = &p.tokenizer;
    let name = |id: Option<u32>| match id.and_then(|i| tk.id_to_token(i)) {
        Some(token) => quoted(&token).to_string(),
        None => "-".into(),
    };
    println!(
        "special tokens:  bos {} eos {} (stop on {})",
        name(tk.bos_id()),
        name(tk.eos_id()),
        tk.eos_ids().iter().map(|&i| name(Some(i))).collect::<Vec<_>>().join(", ")
    );
    match tk.chat_template() {
        Some(t) => println!("chat template:\n{}", template(t.source())),
        None => println!("chat template:   none"),
    }
    if cmd.tensors {
        println!("tensors:");
        for l in listing {
            println!("  {l}");
        }
    }
    Ok(())
}

/// A chat template as its lines, indented, with control characters escaped; at most
/// `TEMPLATE_LINES` lines of at most `TEMPLATE_LINE_CHARS` characters (real templates are a few
/// dozen short lines), saying how much was left out.
fn template(source: &str) -> String {
    const TEMPLATE_LINES: usize = 200;
    const TEMPLATE_LINE_CHARS: usize = 400;
    let lines: Vec<&str> = source.lines().collect();
    let mut out: Vec<String> =
        lines.iter().take(TEMPLATE_LINES).map(|l| format!("  {}", escaped(l, TEMPLATE_LINE_CHARS))).collect();
    if lines.len() > TEMPLATE_LINES {
        out.push(format!("  … ({} more lines)", lines.len() - TEMPLATE_LINES));
    }
    out.join("\n")
}

/// A tensor shape as `[576, 49152]`.
fn shape(dims: &[usize]) -> String {
    format!("[{}]", dims.iter().map(usize::to_string).collect::<Vec<_>>().join(", "))
}

fn rope_scaling(s: &ingot_nn::RopeScaling) -> String {
    match s {
        ingot_nn::RopeScaling::None => "none".into(),
        ingot_nn::RopeScaling::Linear { factor } => format!("linear (factor {factor})"),
        ingot_nn::RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position } => format!(
            "llama3 (factor {factor}, low/high frequency factors {low_freq_factor}/{high_freq_factor}, original context {original_max_position})"
        ),
        ingot_nn::RopeScaling::FreqFactors(f) => format!("{} per-frequency factors (rope_freqs.weight)", f.len()),
    }
}
