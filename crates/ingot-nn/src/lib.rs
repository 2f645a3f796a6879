//! Ingot's layers: linear (dense, transposed Conv1D or quantized), embeddings, norms, rotary
//! embeddings, causal attention and the KV cache, and the [`Weights`] source that feeds them from
//! GGUF, safetensors or a training `VarMap`.
//!
//! Every layer works for inference and for training: fused candle kernels without a backward are
//! used only when no gradient is being tracked (see [`norm::needs_grad`]).
//! Errors are `ingot_core::Error`, shared with the model code that calls these layers.

pub mod attention;
pub mod checkpoint;
pub mod dropout;
pub mod init;
pub mod linear;
pub mod lora;
pub mod norm;
pub mod precision;
pub mod rope;
pub mod weights;

pub use attention::{causal_attention, causal_attention_with_dropout, masked_attention, packed_mask, KvCache};
pub use checkpoint::Checkpointing;
pub use dropout::Dropout;
pub use init::SeededVarMap;
pub use linear::{Embedding, Linear, SharedInput};
pub use lora::{Adapters, Lora, LoraConfig};
pub use norm::{LayerNorm, RmsNorm};
pub use precision::Precision;
pub use rope::{Rope, RopeLayout, RopeScaling};
pub use weights::{normal, Stored, Weights};
