//! A weight matrix as the decode loop reads it: rows to dot with one f32 activation vector,
//! stored in a GGML block format (through [`QMatrix`]), as f16, or as f32.

use std::sync::Arc;

use crate::dense::{dot_f16, dot_f32};
use crate::q16::Q16Input;
use crate::qmatmul::{QMatrix, BLOCK};

/// An (n, k) matrix of rows.
#[derive(Clone, Debug)]
pub enum Rows {
    Quant(QMatrix),
    /// f16 little-endian, row-major.
    F16 {
        data: Arc<[u8]>,
        n: usize,
        k: usize,
    },
    /// f32, row-major.
    F32 {
        data: Arc<[f32]>,
        n: usize,
        k: usize,
    },
}

impl Rows {
    pub fn shape(&self) -> (usize, usize) {
        match self {
            Rows::Quant(m) => m.shape(),
            Rows::F16 { n, k, .. } | Rows::F32 { n, k, .. } => (*n, *k),
        }
    }

    /// Whether [`Rows::matvec_rows`] reads the per-block sums of x (block formats do).
    pub fn needs_block_sums(&self) -> bool {
        matches!(self, Rows::Quant(_))
    }

    /// `out[i] = row(rows.start + i) · x`; `xsum` is x's per-block sums
    /// ([`crate::qmatmul::block_sums`]) for block formats, ignored otherwise.
    pub fn matvec_rows(&self, x: &[f32], xsum: &[f32], rows: std::ops::Range<usize>, out: &mut [f32]) {
        match self {
            Rows::Quant(m) => m.matvec_rows(x, &xsum[..x.len() / BLOCK], rows, out),
            Rows::F16 { data, n, k } => {
                assert!(x.len() == *k && rows.end <= *n && out.len() == rows.len());
                for (o, j) in out.iter_mut().zip(rows) {
                    *o = dot_f16(&data[2 * j * k..2 * (j + 1) * k], x);
                }
            }
            Rows::F32 { data, n, k } => {
                assert!(x.len() == *k && rows.end <= *n && out.len() == rows.len());
                for (o, j) in out.iter_mut().zip(rows) {
                    *o = dot_f32(&data[j * k..(j + 1) * k], x);
                }
            }
        }
    }

    /// [`Rows::matvec_rows`] on the fast path: block formats read `q`, the input quantized per
    /// block to 16 bits ([`crate::q16`]); f16 and f32 rows read `x` as before.
    pub fn matvec_rows_q16(&self, x: &[f32], q: &Q16Input, rows: std::ops::Range<usize>, out: &mut [f32]) {
        match self {
            Rows::Quant(m) => m.matvec_rows_q16(q, rows, out),
            _ => self.matvec_rows(x, q.sums(), rows, out),
        }
    }

    /// Row `j` as f32 (an embedding lookup).
    pub fn row_into(&self, j: usize, out: &mut [f32]) {
        match self {
            Rows::Quant(m) => m.dequantize_row_into(j, out),
            Rows::F16 { data, k, .. } => {
                for (o, h) in out.iter_mut().zip(data[2 * j * k..2 * (j + 1) * k].chunks_exact(2)) {
                    *o = half::f16::from_le_bytes([h[0], h[1]]).to_f32();
                }
            }
            Rows::F32 { data, k, .. } => out.copy_from_slice(&data[j * k..(j + 1) * k]),
        }
    }
}
