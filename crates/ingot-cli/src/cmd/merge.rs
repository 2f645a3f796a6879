//! `ingot merge`: fold a LoRA adapter into its base model and write the result as an HF
//! checkpoint folder or a GGUF file (F32, F16, Q8_0, Q4_1, Q4_0 by Ingot's own quantizer).

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use ingot_models::adapter::RowOrder;
use ingot_models::export::{self, ArchMetadata, ExportType};
use ingot_models::Model;

use crate::args::ModelArgs;

#[derive(Args, Debug)]
pub struct MergeCmd {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Output: a folder (HF checkpoint: config.json, model.safetensors, tokenizer files) or,
    /// with a .gguf name, a GGUF file.
    #[arg(long, short = 'o')]
    pub out: PathBuf,
    /// GGUF weight type: f32, f16, q8_0, q4_1 or q4_0 (GGUF output only).
    #[arg(long = "type", default_value = "q8_0")]
    pub ty: String,
    /// Replace an existing output that Ingot did not write.
    #[arg(long)]
    pub force: bool,
}

pub fn run(cmd: MergeCmd) -> Result<()> {
    let ty = ExportType::from_name(&cmd.ty)
        .ok_or_else(|| anyhow::anyhow!("--type {:?}: use f32, f16, q8_0, q4_1 or q4_0", cmd.ty))?;
    if cmd.model.adapter.is_none() {
        bail!("ingot merge needs --adapter DIR (the adapter to fold into --model)");
    }
    let p = cmd.model.load()?;
    let Model::Llama(llama) = &p.model else { bail!("merging is implemented for llama-family models") };
    let model_path = cmd.model.model_path()?;
    ingot_core::atomic::check_not_inside(&cmd.out, &model_path, "model")?;
    let mut tensors = p.model.named_weights(true)?;
    let order = p.model.row_order();
    // A GGUF file's config: with Llama 3 RoPE factors where it stores them as a tensor.
    let cfg = match &p.files.gguf {
        Some(file) => export::llama_config_from_gguf(file)?,
        None => llama.config().clone(),
    };
    // Qwen2 (q/k/v biases) keeps HF's RoPE layout in GGUF too; llama and mistral interleave.
    let arch_name = if cfg.attention_bias { "qwen2" } else { "llama" };
    let ids = export::SpecialIds { bos: p.tokenizer.bos_id(), eos: p.tokenizer.eos_id(), pad: p.tokenizer.pad_id() };
    let gguf_out = cmd.out.extension().is_some_and(|e| e == "gguf");
    if gguf_out {
        if order == RowOrder::Hf && arch_name == "llama" {
            export::llama_qk_to_gguf(&mut tensors, &cfg)?;
        }
        let Some(source) = p.files.gguf.as_deref() else {
            bail!("GGUF output needs a GGUF base model (its tokenizer metadata is copied); write an HF folder instead (an --out without .gguf)")
        };
        ingot_core::atomic::check_output_file(
            &cmd.out,
            "GGUF file",
            |p| p.extension().is_some_and(|e| e == "gguf") && ingot_core::gguf::GgufFile::open(p).is_ok(),
            cmd.force,
        )?;
        let arch = ArchMetadata::default().with_special_ids(&ids);
        export::write_gguf(&cmd.out, Some(source), &arch, &tensors, ingot_models::llama::gguf_name, ty)?;
    } else {
        if order != RowOrder::Hf {
            export::llama_qk_to_hf(&mut tensors, &cfg)?;
        }
        let config = export::llama_hf_config(&cfg, &ids)?;
        let (tok, tok_config) = ingot_train::recipes::sft::tokenizer_files(&p.tokenizer)?;
        export::write_hf_checkpoint(
            &cmd.out,
            &config,
            &tensors,
            &tok,
            &[("tokenizer_config.json", &tok_config)],
            cmd.force,
        )?;
    }
    println!(
        "merged {} into {}",
        cmd.model.adapter.as_ref().map(|a| a.display().to_string()).unwrap_or_default(),
        cmd.out.display()
    );
    Ok(())
}
