//! bf16 matrix products with f32 accumulation: the matmuls of mixed-precision training.
//!
//! Inputs stay f32 tensors (the master weights, the activations); each product rounds its two
//! operands to bf16 (to nearest, ties to even) as it packs them, multiplies, and accumulates in
//! f32, which is what PyTorch's CPU autocast does for a matmul. Two paths compute the same thing:
//!
//! - **AMX** (Intel Sapphire Rapids and later): tiles of 16×32 bf16 times 32×16 bf16 into 16×16
//!   f32 (`tdpbf16ps`), four accumulator tiles per 32×32 block of the output. Linux hands out
//!   the tile state only on request (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`), made
//!   once, when CPUID says the tiles are there. The instructions are written as inline assembly:
//!   Rust's AMX intrinsics and its run-time detection of AMX are not stable.
//! - **emulated**: the operands rounded to bf16 and multiplied by candle's f32 GEMM, exact
//!   products of the rounded values summed in f32. The reference the AMX path is tested against,
//!   and the path on every other CPU.
//!
//! `INGOT_BF16_PATH=amx|emulated` forces a path (for side-by-side runs); a path the CPU cannot
//! run falls back to the emulated one.
//!
//! Products are "NT": c (M, N) = a (M, K) · b (N, K)ᵀ, a and b any strided 2-D views, which
//! covers a linear layer's forward (x·Wᵀ) and both products of its backward (g·W = g·(Wᵀ)ᵀ and
//! gᵀ·x = gᵀ·(xᵀ)ᵀ) without copying a transpose first: the packing reads the view's strides.

use std::sync::OnceLock;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;

/// Which kernel computes the bf16 products on this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bf16Path {
    Amx,
    Emulated,
}

impl Bf16Path {
    pub fn name(self) -> &'static str {
        match self {
            Self::Amx => "amx",
            Self::Emulated => "emulated",
        }
    }
}

/// The path the products take here: AMX when the CPU has it and the kernel grants the tile
/// state, unless `INGOT_BF16_PATH` says otherwise. Decided once per process.
pub fn bf16_path() -> Bf16Path {
    static PATH: OnceLock<Bf16Path> = OnceLock::new();
    *PATH.get_or_init(|| {
        let wanted = std::env::var("INGOT_BF16_PATH").unwrap_or_default();
        if wanted == "emulated" {
            return Bf16Path::Emulated;
        }
        if amx::ready() {
            Bf16Path::Amx
        } else {
            Bf16Path::Emulated
        }
    })
}

/// f32 → bf16 bits, round to nearest, ties to even (NaN stays NaN). Branch-free, so that
/// loops over it vectorise.
#[inline]
fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    let rounded = bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16;
    let nan = (bits & 0x7fff_ffff) > 0x7f80_0000;
    (if nan { (bits >> 16) | 0x40 } else { rounded }) as u16
}

/// Two bf16 values as the u32 pair AMX reads from a B tile (first in the low half).
#[inline]
fn pair(lo: f32, hi: f32) -> u32 {
    to_bf16(lo) as u32 | (to_bf16(hi) as u32) << 16
}

/// A strided 2-D f32 view: element (r, c) is `data[offset + r·rs + c·cs]`.
#[derive(Clone, Copy)]
struct View<'a> {
    data: &'a [f32],
    offset: usize,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> View<'a> {
    fn new(storage: &'a CpuStorage, layout: &Layout, what: &str) -> Result<Self> {
        let CpuStorage::F32(data) = storage else { candle_core::bail!("bf16 matmul: {what} must be f32") };
        let (&[rows, cols], &[rs, cs]) = (layout.dims(), layout.stride()) else {
            candle_core::bail!("bf16 matmul: {what} must be 2-D, got shape {:?}", layout.dims())
        };
        if rows > 0 && cols > 0 && layout.start_offset() + (rows - 1) * rs + (cols - 1) * cs >= data.len() {
            candle_core::bail!("bf16 matmul: {what} has a layout past its storage")
        }
        Ok(Self { data, offset: layout.start_offset(), rows, cols, rs, cs })
    }

    #[inline]
    fn at(&self, r: usize, c: usize) -> f32 {
        self.data[self.offset + r * self.rs + c * self.cs]
    }
}

fn round_up(x: usize, to: usize) -> usize {
    x.div_ceil(to) * to
}

/// c (M·N, row-major) = a · bᵀ on the AMX path.
fn gemm_nt_amx(a: View, b: View, c: &mut [f32]) {
    let (n, k) = (b.rows, a.cols);
    let (kp, np) = (round_up(k, 32), round_up(n, 32));
    let pa = amx::pack_a(a, kp);
    let pb = amx::pack_b(b, np, kp);
    c.par_chunks_mut(32 * n).enumerate().for_each(|(band, out)| {
        let rows = out.len() / n.max(1);
        amx::band(&pa[band * 32 * kp..], rows, kp, &pb, n, np, out);
    });
}

/// c (M·N, row-major) = a · bᵀ in f32 by the `gemm` crate (candle's CPU GEMM), reading both
/// views in place.
fn gemm_nt_f32(a: View, b: View, c: &mut [f32]) {
    let (m, n, k) = (a.rows, b.rows, a.cols);
    if m == 0 || n == 0 {
        return;
    }
    let threads = rayon::current_num_threads();
    let parallelism = if m * n * k < 1 << 15 { gemm::Parallelism::None } else { gemm::Parallelism::Rayon(threads) };
    // Safety: View::new checked that both views lie inside their storage; c holds m·n values.
    unsafe {
        let (pa, pb) = (a.data.as_ptr().add(a.offset), b.data.as_ptr().add(b.offset));
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            pa,
            a.cs as isize,
            a.rs as isize,
            pb,
            b.rs as isize,
            b.cs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// A view's values rounded to bf16 (kept as f32), contiguous.
fn rounded(v: View) -> Vec<f32> {
    let mut out = Vec::with_capacity(v.rows * v.cols);
    for r in 0..v.rows {
        out.extend((0..v.cols).map(|c| f32::from_bits((to_bf16(v.at(r, c)) as u32) << 16)));
    }
    out
}

/// The arithmetic of a product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arith {
    F32,
    Bf16(Bf16Path),
}

/// c (M·N) = a · bᵀ in `arith`.
fn product_nt(arith: Arith, a: View, b: View, c: &mut [f32]) {
    match arith {
        Arith::F32 => gemm_nt_f32(a, b, c),
        Arith::Bf16(Bf16Path::Amx) if !c.is_empty() => gemm_nt_amx(a, b, c),
        Arith::Bf16(Bf16Path::Amx) => {}
        Arith::Bf16(Bf16Path::Emulated) => {
            let (ra, rb) = (rounded(a), rounded(b));
            let va = View { data: &ra, offset: 0, rows: a.rows, cols: a.cols, rs: a.cols, cs: 1 };
            let vb = View { data: &rb, offset: 0, rows: b.rows, cols: b.cols, rs: b.cols, cs: 1 };
            gemm_nt_f32(va, vb, c)
        }
    }
}

/// a (M, K) · b (N, K)ᵀ of two tensors (any strides) → (M, N), in `arith`.
fn product_tensors(arith: Arith, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (m, k) = a.dims2()?;
    let (n, k2) = b.dims2()?;
    if k != k2 {
        candle_core::bail!("matmul: a is ({m}, {k}) but b is ({n}, {k2}); their second dimensions must agree")
    }
    let (sa, la) = a.storage_and_layout();
    let (sb, lb) = b.storage_and_layout();
    let (Storage::Cpu(sa), Storage::Cpu(sb)) = (&*sa, &*sb) else {
        candle_core::bail!("matmul: both operands must be on the CPU")
    };
    let mut c = vec![0f32; m * n];
    product_nt(arith, View::new(sa, la, "a")?, View::new(sb, lb, "b")?, &mut c);
    Tensor::from_vec(c, (m, n), a.device())
}

/// c (M, N) = a (M, K) · b (N, K)ᵀ in bf16 with f32 accumulation; a and b f32, any strides.
/// Not differentiable (see [`linear`] for the op with a backward).
pub fn matmul_nt_bf16(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    matmul_nt_bf16_on(bf16_path(), a, b)
}

/// [`matmul_nt_bf16`] on a given path (tests and side-by-side runs); the AMX path on a CPU or
/// process without AMX is an error.
pub fn matmul_nt_bf16_on(path: Bf16Path, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if path == Bf16Path::Amx && !amx::ready() {
        candle_core::bail!("bf16 matmul: this CPU (or this process) has no AMX tiles")
    }
    if a.dtype() != DType::F32 || b.dtype() != DType::F32 {
        candle_core::bail!("bf16 matmul: both operands must be f32, got {:?} and {:?}", a.dtype(), b.dtype())
    }
    product_tensors(Arith::Bf16(path), a, b)
}

/// `t` (f32) with every value rounded to the nearest bf16, still as f32.
pub fn round_bf16(t: &Tensor) -> Result<Tensor> {
    t.to_dtype(DType::BF16)?.to_dtype(DType::F32)
}

/// y = x · Wᵀ (+ bias) as one op: x (..., K), w (N, K), bias (N), all f32 → (..., N) f32, the
/// products in bf16 with f32 accumulation when `bf16`, else in f32. Differentiable in all
/// three; the backward's products use the same arithmetic, and the bias gradient is a
/// parallel column sum (candle's sum over the leading dimensions runs on one thread).
pub fn linear(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, bf16: bool) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let Some((&k, lead)) = dims.split_last() else { candle_core::bail!("linear: x must have a last dimension") };
    for (name, t) in [("x", Some(x)), ("w", Some(w)), ("bias", bias)] {
        if let Some(t) = t {
            if t.dtype() != DType::F32 || !t.device().is_cpu() {
                candle_core::bail!("linear: {name} must be f32 on the CPU, got {:?}", t.dtype())
            }
        }
    }
    let (n, wk) = w.dims2()?;
    if wk != k {
        candle_core::bail!("linear: x has {k} features but w is ({n}, {wk})")
    }
    if let Some(b) = bias {
        if b.dims() != [n] {
            candle_core::bail!("linear: bias {:?} must be ({n})", b.dims())
        }
    }
    // A contiguous x goes in as it is (no reshape nodes in the graph, whose backward would
    // add two more tensor-sized temporaries); the op folds its leading dimensions into rows.
    let x2 = if x.is_contiguous() { x.clone() } else { x.reshape((lead.iter().product::<usize>(), k))? };
    let op = LinearOp { arith: if bf16 { Arith::Bf16(bf16_path()) } else { Arith::F32 } };
    let track = x.track_op() || w.track_op() || bias.is_some_and(|b| b.track_op());
    let y = match (bias, track) {
        (None, true) => x2.apply_op2(w, op)?,
        (None, false) => x2.apply_op2_no_bwd(w, &op)?,
        (Some(b), true) => x2.apply_op3(w, b, op)?,
        (Some(b), false) => x2.apply_op3_no_bwd(w, b, &op)?,
    };
    if y.rank() == dims.len() {
        return Ok(y);
    }
    let mut out = lead.to_vec();
    out.push(n);
    y.reshape(out)
}

/// A contiguous (..., K) input as a (rows, K) view; a 2-D input with any strides.
fn rows_view<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<View<'a>> {
    if l.dims().len() == 2 {
        return View::new(s, l, what);
    }
    let (CpuStorage::F32(data), Some((start, end)), Some(&k)) = (s, l.contiguous_offsets(), l.dims().last()) else {
        candle_core::bail!("linear: {what} must be contiguous f32 when it has more than two dimensions")
    };
    Ok(View { data, offset: start, rows: (end - start) / k.max(1), cols: k, rs: k, cs: 1 })
}

/// y = x · Wᵀ with the product in bf16 (f32 accumulation): [`linear`] without a bias.
pub fn linear_bf16(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    linear(x, w, None, true)
}

struct LinearOp {
    arith: Arith,
}

impl LinearOp {
    /// `lead`: x's dimensions before the last, which y keeps.
    fn forward(&self, x: View, lead: &[usize], w: View, bias: Option<&[f32]>) -> Result<(CpuStorage, Shape)> {
        if x.cols != w.cols {
            candle_core::bail!("linear: x has {} features but w is ({}, {})", x.cols, w.rows, w.cols)
        }
        let mut c = vec![0f32; x.rows * w.rows];
        product_nt(self.arith, x, w, &mut c);
        if let Some(b) = bias {
            c.par_chunks_mut(w.rows.max(1)).for_each(|row| row.iter_mut().zip(b).for_each(|(y, &b)| *y += b));
        }
        let mut shape = lead.to_vec();
        shape.push(w.rows);
        Ok((CpuStorage::F32(c), Shape::from(shape)))
    }

    /// (dx, dw, db) for x (..., K), w (N, K), g (..., N).
    fn backward(&self, x: &Tensor, w: &Tensor, g: &Tensor, bias: bool) -> Result<(Tensor, Tensor, Option<Tensor>)> {
        let n = w.dim(0)?;
        let k = w.dim(1)?;
        let rows = g.elem_count() / n.max(1);
        let g = g.contiguous()?.reshape((rows, n))?;
        let x2 = x.reshape((rows, k))?;
        // dx = g · W.
        let dx = product_tensors(self.arith, &g, &w.t()?)?.reshape(x.shape())?;
        // dw = gᵀ · x; for a weight stored transposed ((K, N) in memory, GPT-2's Conv1D layout)
        // the product is made in that orientation (xᵀ · g) and handed back as its transposed
        // view, so the parameter's gradient arrives contiguous in its own layout.
        let dw = if w.stride() == [1, n] && n > 1 {
            product_tensors(self.arith, &x2.t()?, &g.t()?)?.t()?
        } else {
            product_tensors(self.arith, &g.t()?, &x2.t()?)?
        };
        let db = if bias {
            let sums = crate::real::with_values::<f32, _>(&[&g], |v| column_sums(v[0], n))?;
            Some(Tensor::from_vec(sums, n, g.device())?)
        } else {
            None
        };
        Ok((dx, dw, db))
    }
}

/// Σ over the rows of g (rows, n), in parallel: a bias's gradient.
fn column_sums(g: &[f32], n: usize) -> Vec<f32> {
    g.par_chunks(n * 64)
        .map(|rows| {
            let mut s = vec![0f32; n];
            for row in rows.chunks_exact(n) {
                s.iter_mut().zip(row).for_each(|(s, &v)| *s += v);
            }
            s
        })
        .reduce(
            || vec![0f32; n],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, &b)| *a += b);
                a
            },
        )
}

impl CustomOp2 for LinearOp {
    fn name(&self) -> &'static str {
        "ingot-linear"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, ws: &CpuStorage, wl: &Layout) -> Result<(CpuStorage, Shape)> {
        let lead = &xl.dims()[..xl.dims().len().saturating_sub(1)];
        self.forward(rows_view(xs, xl, "x")?, lead, View::new(ws, wl, "w")?, None)
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _y: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = self.backward(x, w, g, false)?;
        Ok((Some(dx), Some(dw)))
    }
}

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "ingot-linear"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let lead = &xl.dims()[..xl.dims().len().saturating_sub(1)];
        self.forward(
            rows_view(xs, xl, "x")?,
            lead,
            View::new(ws, wl, "w")?,
            Some(crate::real::input::<f32>(bs, bl, "linear", "bias")?),
        )
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, db) = self.backward(x, w, g, true)?;
        Ok((Some(dx), Some(dw), db))
    }
}

/// The AMX kernel: packing and the 32×32-block tile loop.
mod amx {
    use super::{pair, to_bf16, View};
    use rayon::prelude::*;
    use std::arch::asm;

    /// [`available`], asked once per process.
    pub fn ready() -> bool {
        static READY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *READY.get_or_init(available)
    }

    /// CPUID says AMX-TILE and AMX-BF16 are there and Linux grants this process the tile state.
    fn available() -> bool {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        {
            let leaf = std::arch::x86_64::__cpuid_count(7, 0);
            let (bf16, tile) = (leaf.edx >> 22 & 1 == 1, leaf.edx >> 24 & 1 == 1);
            // ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA.
            bf16 && tile && unsafe { arch_prctl(0x1023, 18) } == 0
        }
        #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
        {
            false
        }
    }

    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    unsafe fn arch_prctl(code: i64, arg: i64) -> i64 {
        let ret: i64;
        asm!("syscall", inlateout("rax") 158i64 => ret, in("rdi") code, in("rsi") arg,
             lateout("rcx") _, lateout("r11") _, options(nostack));
        ret
    }

    /// a (M, K) → bf16 rows of `kp` (a multiple of 32) in bands of 32 rows, zero-padded: row r,
    /// column c at `r·kp + c`. M is padded to a multiple of 32.
    pub fn pack_a(a: View, kp: usize) -> Vec<u16> {
        let mp = super::round_up(a.rows, 32);
        let mut out = vec![0u16; mp * kp];
        out.par_chunks_mut(32 * kp).enumerate().for_each(|(band, dst)| {
            let r0 = band * 32;
            let rows = 32.min(a.rows.saturating_sub(r0));
            if a.cs == 1 {
                for r in 0..rows {
                    let src = &a.data[a.offset + (r0 + r) * a.rs..][..a.cols];
                    for (d, &s) in dst[r * kp..][..a.cols].iter_mut().zip(src) {
                        *d = to_bf16(s);
                    }
                }
            } else if a.rs == 1 && rows == 32 {
                // A transposed view: each column holds the band's rows side by side. Transpose
                // 32 × 32 blocks through a small buffer, so that both the reads and the writes
                // run along cache lines.
                let mut block = [[0u16; 32]; 32];
                for c0 in (0..a.cols).step_by(32) {
                    let cols = 32.min(a.cols - c0);
                    for cc in 0..cols {
                        let src = &a.data[a.offset + (c0 + cc) * a.cs + r0..][..32];
                        for (r, &v) in src.iter().enumerate() {
                            block[r][cc] = to_bf16(v);
                        }
                    }
                    for (r, row) in block.iter().enumerate() {
                        dst[r * kp + c0..][..cols].copy_from_slice(&row[..cols]);
                    }
                }
            } else {
                for c in 0..a.cols {
                    for r in 0..rows {
                        dst[r * kp + c] = to_bf16(a.at(r0 + r, c));
                    }
                }
            }
        });
        out
    }

    /// b (N, K) → the tiles AMX multiplies by, as bf16 pairs: for each group of 16 columns of
    /// the product (rows of b) and each 32 of K, 16 rows of 16 pairs: pair
    /// `((nb·KB + kb)·16 + r)·16 + j` holds b[16·nb + j][32·kb + 2r .. + 2]. Zero-padded to
    /// `np` (a multiple of 32) by `kp`.
    pub fn pack_b(b: View, np: usize, kp: usize) -> Vec<u32> {
        let pairs = kp / 2;
        let mut out = vec![0u32; np * pairs];
        out.par_chunks_mut(16 * pairs).enumerate().for_each(|(nb, dst)| {
            let n0 = nb * 16;
            let cols = 16.min(b.rows.saturating_sub(n0));
            if b.cs == 1 {
                // Rows of b are contiguous in K: convert one, scatter its pairs 16 apart.
                let mut row = vec![0u16; kp];
                for j in 0..cols {
                    let src = &b.data[b.offset + (n0 + j) * b.rs..][..b.cols];
                    row[..b.cols].iter_mut().zip(src).for_each(|(d, &v)| *d = to_bf16(v));
                    for (q, two) in row.chunks_exact(2).enumerate() {
                        dst[q * 16 + j] = two[0] as u32 | (two[1] as u32) << 16;
                    }
                }
            } else if b.rs == 1 && cols == 16 {
                // A transposed view: each k holds the 16 columns side by side.
                for q in 0..b.cols.div_ceil(2) {
                    let lo = &b.data[b.offset + 2 * q * b.cs + n0..][..16];
                    let out = &mut dst[q * 16..][..16];
                    if 2 * q + 1 < b.cols {
                        let hi = &b.data[b.offset + (2 * q + 1) * b.cs + n0..][..16];
                        for j in 0..16 {
                            out[j] = pair(lo[j], hi[j]);
                        }
                    } else {
                        for j in 0..16 {
                            out[j] = pair(lo[j], 0.0);
                        }
                    }
                }
            } else {
                for kk in 0..b.cols {
                    for j in 0..cols {
                        let shift = 16 * (kk % 2);
                        dst[(kk / 2) * 16 + j] |= (to_bf16(b.at(n0 + j, kk)) as u32) << shift;
                    }
                }
            }
        });
        out
    }

    /// Tile configuration: palette 1, eight tiles of 16 rows × 64 bytes.
    #[repr(C, align(64))]
    struct Config([u8; 64]);

    fn config() -> Config {
        let mut c = Config([0; 64]);
        c.0[0] = 1;
        for t in 0..8 {
            c.0[16 + 2 * t] = 64;
            c.0[48 + t] = 16;
        }
        c
    }

    /// One band of up to 32 output rows: `out` (rows, n) = band of packed a · packed b.
    pub fn band(pa: &[u16], rows: usize, kp: usize, pb: &[u32], n: usize, np: usize, out: &mut [f32]) {
        let kb_count = kp / 32;
        let cfg = config();
        let mut tmp = [0f32; 4 * 256];
        let a_stride = kp * 2; // bytes between rows of packed a
        assert!(pa.len() >= 32 * kp && pb.len() >= np * kp / 2);
        unsafe {
            asm!("ldtilecfg [{0}]", in(reg) cfg.0.as_ptr(), options(nostack));
            for nb in (0..np / 16).step_by(2) {
                asm!("tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3", options(nostack));
                for kb in 0..kb_count {
                    let a0 = pa.as_ptr().add(kb * 32);
                    let a1 = a0.add(16 * kp);
                    let b0 = pb.as_ptr().add((nb * kb_count + kb) * 256);
                    let b1 = pb.as_ptr().add(((nb + 1) * kb_count + kb) * 256);
                    asm!(
                        "tileloadd tmm4, [{a0} + {sa}]",
                        "tileloadd tmm5, [{a1} + {sa}]",
                        "tileloadd tmm6, [{b0} + {sb}]",
                        "tileloadd tmm7, [{b1} + {sb}]",
                        "tdpbf16ps tmm0, tmm4, tmm6",
                        "tdpbf16ps tmm1, tmm4, tmm7",
                        "tdpbf16ps tmm2, tmm5, tmm6",
                        "tdpbf16ps tmm3, tmm5, tmm7",
                        a0 = in(reg) a0, a1 = in(reg) a1, b0 = in(reg) b0, b1 = in(reg) b1,
                        sa = in(reg) a_stride, sb = in(reg) 64usize,
                        options(nostack),
                    );
                }
                let c0 = 16 * nb;
                if rows == 32 && c0 + 32 <= n {
                    // The whole 32 × 32 block is inside the output: store the tiles in place.
                    let p = out.as_mut_ptr().add(c0);
                    let row16 = 16 * n;
                    asm!(
                        "tilestored [{p0} + {s}], tmm0",
                        "tilestored [{p1} + {s}], tmm1",
                        "tilestored [{p2} + {s}], tmm2",
                        "tilestored [{p3} + {s}], tmm3",
                        p0 = in(reg) p, p1 = in(reg) p.add(16), p2 = in(reg) p.add(row16), p3 = in(reg) p.add(row16 + 16),
                        s = in(reg) 4 * n,
                        options(nostack),
                    );
                    continue;
                }
                let p = tmp.as_mut_ptr();
                asm!(
                    "tilestored [{p0} + {s}], tmm0",
                    "tilestored [{p1} + {s}], tmm1",
                    "tilestored [{p2} + {s}], tmm2",
                    "tilestored [{p3} + {s}], tmm3",
                    p0 = in(reg) p, p1 = in(reg) p.add(256), p2 = in(reg) p.add(512), p3 = in(reg) p.add(768),
                    s = in(reg) 64usize,
                    options(nostack),
                );
                // Tile t covers rows 16·(t / 2).., columns 16·nb + 16·(t % 2)..
                for t in 0..4 {
                    let (r0, c0) = (16 * (t / 2), 16 * nb + 16 * (t % 2));
                    if c0 >= n {
                        continue;
                    }
                    let cols = 16.min(n - c0);
                    for r in 0..16.min(rows.saturating_sub(r0)) {
                        out[(r0 + r) * n + c0..][..cols].copy_from_slice(&tmp[t * 256 + r * 16..][..cols]);
                    }
                }
            }
            asm!("tilerelease", options(nostack));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::to_bf16;

    #[test]
    fn rounding_is_to_nearest_even() {
        for x in [0.0f32, -0.0, 1.0, -2.5, 1e-30, 3.4e38, f32::INFINITY, 1.00390625, 1.01171875, 0.1] {
            assert_eq!(to_bf16(x), half::bf16::from_f32(x).to_bits(), "{x}");
        }
        assert!(half::bf16::from_bits(to_bf16(f32::NAN)).is_nan());
    }
}
