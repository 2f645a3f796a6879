//! Fused CPU kernels for Ingot's hot paths, as candle custom ops. Each kernel sits beside a naive
//! reference written from the format or the maths, and tests compare the two on random inputs of
//! odd sizes.
//!
//! - [`qmatmul`]: quantized-weight × f32-activation matrix product (Q4_0, Q4_1, Q8_0), with the
//!   input gradient; [`candle_qmatmul`]: candle's kernel (every GGML format) with the same.
//! - [`adamw`]: AdamW over a parameter in one pass (clipping folded in), the gradient norm's
//!   sum of squares.
//! - [`softmax`]: attention's scaled, masked softmax in one pass, with its backward.
//! - Training kernels, each one pass forward and one backward (f32, and f64 for the
//!   finite-difference tests): [`norm`] (LayerNorm, RMSNorm), [`activation`] (GELU tanh,
//!   SwiGLU), [`xent`] (cross-entropy fused with the output head, in chunks of rows).
//! - [`causal`]: causal self-attention for training straight from the fused qkv projection,
//!   flash-style in blocks of query rows (no (T, T) matrix kept), with its backward.
//! - [`bf16`]: bf16 matrix products with f32 accumulation for mixed precision (AMX tiles where
//!   the CPU has them, an exact emulation elsewhere), and a linear layer on them with a backward.
//! - [`attention`]: the decode step's attention, one new query per sequence against its own
//!   cache, for many sequences in one parallel call (inference only).
//! - [`quantize`]: f32 → Q4_0, Q4_1, Q8_0 blocks, byte for byte ggml's reference quantizers.
//! - [`team`]: a spinning thread team for the decode loop's many small parallel regions;
//!   [`rows`]: its weight matrices (block formats, f16, f32) and [`dense`]: their dot products;
//!   [`q16`]: block formats against activations quantized per block to 16 bits (its fast path).

pub mod activation;
pub mod adamw;
pub mod attention;
pub mod bf16;
pub mod causal;
pub mod dense;
pub mod norm;
pub mod q16;
pub mod qmatmul;
pub mod quantize;
mod real;
pub mod rows;
pub mod softmax;
pub mod team;
pub mod xent;

pub use activation::{gelu_tanh, swiglu};
pub use attention::decode_attention;
pub use bf16::{bf16_path, linear, linear_bf16, matmul_nt_bf16, Bf16Path};
pub use causal::causal_attention_qkv;

/// Runs `f` on the f32 values of each of `tensors` read in place, when all of them are
/// contiguous f32 on the CPU; None (and `f` not called) otherwise.
pub fn with_f32_slices<R>(tensors: &[&candle_core::Tensor], f: impl FnOnce(&[&[f32]]) -> R) -> Option<R> {
    real::borrow_values::<f32, R>(tensors, f)
}
pub use norm::{layer_norm, rms_norm};
pub use qmatmul::{candle_qmatmul, qmatmul, QFormat, QMatrix};
pub use quantize::{quantize_matrix, quantize_row};
pub use rows::Rows;
pub use softmax::masked_softmax;
pub use team::Team;
pub use xent::head_cross_entropy;
