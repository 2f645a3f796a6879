//! `ingot inspect MODEL`: what a model file is, without running it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::args::ModelArgs;

#[derive(Args, Debug)]
pub struct InspectCmd {
    /// A GGUF file or checkpoint folder (default: the default model).
    pub path: Option<PathBuf>,
    /// Also list every tensor with its shape and type.
    #[arg(long)]
    pub tensors: bool,
}

pub fn run(cmd: InspectCmd) -> Result<()> {
    let args = ModelArgs { model: cmd.path.clone(), threads: None };
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
            println!("rope:            theta {} scaling {:?}", c.rope_theta, c.rope_scaling);
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
            listing.push(format!("{:<40} {:>16} {}", t.name, format!("{:?}", t.shape), t.ggml_type.name()));
        }
        println!("format:          GGUF v{}", g.version());
        if let Ok(Some(name)) = g.get_str("general.name") {
            println!("name:            {name}");
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
            listing.push(format!("{:<40} {:>16} {}", name, format!("{:?}", view.shape()), ty));
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
    let name = |id: Option<u32>| id.and_then(|i| tk.id_to_token(i)).unwrap_or_else(|| "-".into());
    println!(
        "special tokens:  bos {} eos {} (stop on {:?})",
        name(tk.bos_id()),
        name(tk.eos_id()),
        tk.eos_ids().iter().map(|&i| name(Some(i))).collect::<Vec<_>>()
    );
    match tk.chat_template() {
        Some(t) => println!("chat template:\n{}", indent(t.source())),
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

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
}
