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

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Storage, Tensor};
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
        if amx::available() {
            Bf16Path::Amx
        } else {
            Bf16Path::Emulated
        }
    })
}

/// f32 → bf16 bits, round to nearest, ties to even (NaN stays NaN).
#[inline]
fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    ((bits + 0x7fff + ((bits >> 16) & 1)) >> 16) as u16
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

/// c (M, N) = a (M, K) · b (N, K)ᵀ in bf16 with f32 accumulation; a and b f32, any strides.
/// Not differentiable (see [`linear_bf16`] for the op with a backward).
pub fn matmul_nt_bf16(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    matmul_nt_bf16_on(bf16_path(), a, b)
}

/// [`matmul_nt_bf16`] on a given path (tests and side-by-side runs); the AMX path on a CPU or
/// process without AMX is an error.
pub fn matmul_nt_bf16_on(path: Bf16Path, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if path == Bf16Path::Amx && bf16_path() != Bf16Path::Amx && !amx::available() {
        candle_core::bail!("bf16 matmul: this CPU (or this process) has no AMX tiles")
    }
    let (m, k) = a.dims2()?;
    let (n, k2) = b.dims2()?;
    if k != k2 {
        candle_core::bail!("bf16 matmul: a is ({m}, {k}) but b is ({n}, {k2}); their second dimensions must agree")
    }
    if a.dtype() != DType::F32 || b.dtype() != DType::F32 || !a.device().is_cpu() || !b.device().is_cpu() {
        candle_core::bail!("bf16 matmul: both operands must be f32 on the CPU")
    }
    match path {
        Bf16Path::Emulated => round_bf16(a)?.matmul(&round_bf16(b)?.t()?),
        Bf16Path::Amx => {
            let (sa, la) = a.storage_and_layout();
            let (sb, lb) = b.storage_and_layout();
            let (Storage::Cpu(sa), Storage::Cpu(sb)) = (&*sa, &*sb) else {
                candle_core::bail!("bf16 matmul: both operands must be on the CPU")
            };
            let mut c = vec![0f32; m * n];
            if m > 0 && n > 0 {
                gemm_nt_amx(View::new(sa, la, "a")?, View::new(sb, lb, "b")?, &mut c);
            }
            Tensor::from_vec(c, (m, n), a.device())
        }
    }
}

/// `t` (f32) with every value rounded to the nearest bf16, still as f32.
pub fn round_bf16(t: &Tensor) -> Result<Tensor> {
    t.to_dtype(DType::BF16)?.to_dtype(DType::F32)
}

/// y = x · Wᵀ with the product in bf16 (f32 accumulation): x (..., K) f32, w (N, K) f32 →
/// (..., N) f32. Differentiable in both; the backward's two products are bf16 as well.
pub fn linear_bf16(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let Some((&k, lead)) = dims.split_last() else { candle_core::bail!("bf16 linear: x must have a last dimension") };
    let rows: usize = lead.iter().product();
    let x2 = x.reshape((rows, k))?;
    let y =
        if x.track_op() || w.track_op() { x2.apply_op2(w, LinearBf16)? } else { x2.apply_op2_no_bwd(w, &LinearBf16)? };
    let mut out = lead.to_vec();
    out.push(w.dim(0)?);
    y.reshape(out)
}

struct LinearBf16;

impl CustomOp2 for LinearBf16 {
    fn name(&self) -> &'static str {
        "ingot-linear-bf16"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, ws: &CpuStorage, wl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, w) = (View::new(xs, xl, "x")?, View::new(ws, wl, "w")?);
        if x.cols != w.cols {
            candle_core::bail!("bf16 linear: x has {} features but w is ({}, {})", x.cols, w.rows, w.cols)
        }
        let mut c = vec![0f32; x.rows * w.rows];
        match bf16_path() {
            Bf16Path::Amx if !c.is_empty() => gemm_nt_amx(x, w, &mut c),
            Bf16Path::Amx => {}
            Bf16Path::Emulated => {
                // Rebuild tensors from the views and take the tensor path.
                let xt = view_tensor(x)?;
                let wt = view_tensor(w)?;
                c = round_bf16(&xt)?.matmul(&round_bf16(&wt)?.t()?)?.flatten_all()?.to_vec1()?;
            }
        }
        Ok((CpuStorage::F32(c), Shape::from((x.rows, w.rows))))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _y: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = g.contiguous()?;
        let dx = matmul_nt_bf16(&g, &w.t()?)?; // g · W
        let dw = matmul_nt_bf16(&g.t()?, &x.t()?)?; // gᵀ · x
        Ok((Some(dx), Some(dw)))
    }
}

fn view_tensor(v: View) -> Result<Tensor> {
    let mut data = Vec::with_capacity(v.rows * v.cols);
    for r in 0..v.rows {
        for c in 0..v.cols {
            data.push(v.at(r, c));
        }
    }
    Tensor::from_vec(data, (v.rows, v.cols), &candle_core::Device::Cpu)
}

/// The AMX kernel: packing and the 32×32-block tile loop.
mod amx {
    use super::{to_bf16, View};
    use rayon::prelude::*;
    use std::arch::asm;

    /// CPUID says AMX-TILE and AMX-BF16 are there and Linux grants this process the tile state.
    pub fn available() -> bool {
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
            } else {
                // A transposed view: walk the source along its contiguous direction.
                for c in 0..a.cols {
                    for r in 0..rows {
                        dst[r * kp + c] = to_bf16(a.at(r0 + r, c));
                    }
                }
            }
        });
        out
    }

    /// b (N, K) → the tiles AMX multiplies by: for each group of 16 columns of the product (rows
    /// of b) and each 32 of K, 16 rows of 16 pairs: `((nb·KB + kb)·16 + r)·32 + 2j + i` holds
    /// b[16·nb + j][32·kb + 2r + i]. Zero-padded to `np` (a multiple of 32) by `kp`.
    pub fn pack_b(b: View, np: usize, kp: usize) -> Vec<u16> {
        let mut out = vec![0u16; np * kp];
        out.par_chunks_mut(16 * kp).enumerate().for_each(|(nb, dst)| {
            let n0 = nb * 16;
            let cols = 16.min(b.rows.saturating_sub(n0));
            let mut put = |j: usize, kk: usize, v: f32| {
                let (kb, within) = (kk / 32, kk % 32);
                dst[(kb * 16 + within / 2) * 32 + 2 * j + within % 2] = to_bf16(v);
            };
            if b.cs == 1 {
                for j in 0..cols {
                    let src = &b.data[b.offset + (n0 + j) * b.rs..][..b.cols];
                    for (kk, &v) in src.iter().enumerate() {
                        put(j, kk, v);
                    }
                }
            } else {
                for kk in 0..b.cols {
                    for j in 0..cols {
                        put(j, kk, b.at(n0 + j, kk));
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
    pub fn band(pa: &[u16], rows: usize, kp: usize, pb: &[u16], n: usize, np: usize, out: &mut [f32]) {
        let kb_count = kp / 32;
        let cfg = config();
        let mut tmp = [0f32; 4 * 256];
        let a_stride = kp * 2; // bytes between rows of packed a
        assert!(pa.len() >= 32 * kp && pb.len() >= np * kp);
        unsafe {
            asm!("ldtilecfg [{0}]", in(reg) cfg.0.as_ptr(), options(nostack));
            for nb in (0..np / 16).step_by(2) {
                asm!("tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3", options(nostack));
                for kb in 0..kb_count {
                    let a0 = pa.as_ptr().add(kb * 32);
                    let a1 = a0.add(16 * kp);
                    let b0 = pb.as_ptr().add((nb * kb_count + kb) * 512);
                    let b1 = pb.as_ptr().add(((nb + 1) * kb_count + kb) * 512);
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
