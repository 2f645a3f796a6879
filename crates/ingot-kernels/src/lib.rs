//! Fused CPU kernels for Ingot's hot paths, as candle custom ops. Each kernel sits beside a naive
//! reference written from the format or the maths, and tests compare the two on random inputs of
//! odd sizes.
//!
//! - [`qmatmul`]: quantized-weight × f32-activation matrix product (Q4_0, Q4_1, Q8_0).

pub mod qmatmul;

pub use qmatmul::{qmatmul, QFormat, QMatrix};
