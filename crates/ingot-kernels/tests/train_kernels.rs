//! The training kernels (norms, activations, head cross-entropy) against the candle
//! compositions they replace, and their f64 gradients against central finite differences, on
//! small odd shapes; f32 against f64.

use candle_core::{DType, Device, Result, Tensor, Var, D};
use ingot_kernels::{causal_attention_qkv, gelu_tanh, head_cross_entropy, layer_norm, rms_norm, swiglu};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn random(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = StdRng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng.random_range(-1.5..1.5)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// max |a − b| ≤ tol · max(1, max |b|).
fn assert_close(a: &Tensor, b: &Tensor, tol: f64, what: &str) {
    let (a, b) = (a.to_dtype(DType::F64).unwrap(), b.to_dtype(DType::F64).unwrap());
    assert_eq!(a.dims(), b.dims(), "{what}: shapes");
    let diff: f64 = (&a - &b).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
    let scale: f64 = b.abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap().max(1.0);
    assert!(diff <= tol * scale, "{what}: max difference {diff:e} > {tol:e} x {scale}");
}

/// d loss / d p by central differences (f64, step 1e-5), one element at a time.
fn finite_difference(p: &Tensor, loss: impl Fn(&Tensor) -> Result<Tensor>) -> Tensor {
    let base: Vec<f64> = p.flatten_all().unwrap().to_vec1().unwrap();
    let h = 1e-5;
    let grad: Vec<f64> = (0..base.len())
        .map(|i| {
            let at = |delta: f64| {
                let mut v = base.clone();
                v[i] += delta;
                let t = Tensor::from_vec(v, p.shape(), p.device()).unwrap();
                loss(&t).unwrap().to_scalar::<f64>().unwrap()
            };
            (at(h) - at(-h)) / (2.0 * h)
        })
        .collect();
    Tensor::from_vec(grad, p.shape(), p.device()).unwrap()
}

/// Checks `fused` against `composed` for the weighted sum loss Σ f(params) · probe: forward,
/// each parameter's gradient (against the composition's and against finite differences), and
/// the f32 forward against f64. `composed_tol` bounds the gradient difference from the
/// composition: 1e-10 unless candle's own backward is approximate (its GELU backward uses
/// six-digit constants), where finite differences are the reference that counts.
fn check(
    what: &str,
    composed_tol: f64,
    params: &[Tensor],
    fused: impl Fn(&[Tensor]) -> Result<Tensor>,
    composed: impl Fn(&[Tensor]) -> Result<Tensor>,
) {
    let vars: Vec<Var> = params.iter().map(|p| Var::from_tensor(p).unwrap()).collect();
    let tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let y = fused(&tensors).unwrap();
    let probe = random(y.dims(), 99);
    assert_close(&y, &composed(&tensors).unwrap(), 1e-12, &format!("{what} forward"));
    let loss = |ts: &[Tensor], f: &dyn Fn(&[Tensor]) -> Result<Tensor>| (f(ts)? * &probe)?.sum_all();
    let grads = loss(&tensors, &fused).unwrap().backward().unwrap();
    let reference = loss(&tensors, &composed).unwrap().backward().unwrap();
    for (i, p) in tensors.iter().enumerate() {
        let g = grads.get(p).unwrap_or_else(|| panic!("{what}: input {i} got no gradient"));
        assert_close(g, reference.get(p).unwrap(), composed_tol, &format!("{what} gradient {i} vs composition"));
        let fd = finite_difference(p, |pi| {
            let mut ts = tensors.clone();
            ts[i] = pi.clone();
            loss(&ts, &fused)
        });
        assert_close(g, &fd, 1e-6, &format!("{what} gradient {i} vs finite differences"));
    }
    let narrow: Vec<Tensor> = params.iter().map(|p| p.to_dtype(DType::F32).unwrap()).collect();
    assert_close(&fused(&narrow).unwrap(), &y, 1e-5, &format!("{what} f32 forward"));
}

#[test]
fn layer_norm_matches_composition_and_finite_differences() {
    for (rows, c) in [(1, 1), (3, 7), (17, 65), (2, 3)] {
        let composed = |p: &[Tensor]| {
            let centered = p[0].broadcast_sub(&p[0].mean_keepdim(D::Minus1)?)?;
            let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
            centered.broadcast_div(&(var + 1e-5)?.sqrt()?)?.broadcast_mul(&p[1])?.broadcast_add(&p[2])
        };
        let params = [random(&[rows, c], 1).affine(2.0, 0.3).unwrap(), random(&[c], 2), random(&[c], 3)];
        check(&format!("layer norm {rows}x{c}"), 1e-10, &params, |p| layer_norm(&p[0], &p[1], &p[2], 1e-5), composed);
    }
    // Leading dimensions fold into rows.
    let params = [random(&[2, 3, 5], 4), random(&[5], 5), random(&[5], 6)];
    check(
        "layer norm 2x3x5",
        1e-10,
        &params,
        |p| layer_norm(&p[0], &p[1], &p[2], 1e-5),
        |p| {
            let centered = p[0].broadcast_sub(&p[0].mean_keepdim(D::Minus1)?)?;
            let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
            centered.broadcast_div(&(var + 1e-5)?.sqrt()?)?.broadcast_mul(&p[1])?.broadcast_add(&p[2])
        },
    );
}

#[test]
fn rms_norm_matches_composition_and_finite_differences() {
    for (rows, c) in [(1, 1), (5, 33), (4, 9)] {
        let params = [random(&[rows, c], 7), random(&[c], 8).affine(1.0, 1.0).unwrap()];
        check(
            &format!("rms norm {rows}x{c}"),
            1e-10,
            &params,
            |p| rms_norm(&p[0], &p[1], 1e-6),
            |p| {
                let rms = (p[0].sqr()?.mean_keepdim(D::Minus1)? + 1e-6)?.sqrt()?;
                p[0].broadcast_div(&rms)?.broadcast_mul(&p[1])
            },
        );
    }
}

#[test]
fn gelu_and_swiglu_match_composition_and_finite_differences() {
    // Wide inputs reach both saturated ends of tanh and sigmoid.
    let x = random(&[3, 41], 9).affine(6.0, 0.0).unwrap();
    check("gelu", 1e-6, &[x], |p| gelu_tanh(&p[0]), |p| p[0].gelu());
    let (g, v) = (random(&[5, 13], 10).affine(6.0, 0.0).unwrap(), random(&[5, 13], 11));
    check("swiglu", 1e-10, &[g, v], |p| swiglu(&p[0], &p[1]), |p| p[0].silu()? * &p[1]);
    // Far out, no inf or NaN.
    let far = Tensor::new(&[-200f32, -90.0, 90.0, 200.0], &Device::Cpu).unwrap();
    let y: Vec<f32> = gelu_tanh(&far).unwrap().to_vec1().unwrap();
    assert_eq!(y, vec![-0.0, -0.0, 90.0, 200.0]);
    assert!(swiglu(&far, &far.narrow(0, 0, 3).unwrap()).is_err(), "shape mismatch refused");
}

/// The composition: log-softmax of hidden · headᵀ, the target's entry, negated.
fn composed_nll(h: &Tensor, w: &Tensor, t: &Tensor) -> Result<Tensor> {
    let z = h.matmul(&w.t()?)?;
    let max = z.max_keepdim(D::Minus1)?.detach();
    let shifted = z.broadcast_sub(&max)?;
    let logp = shifted.broadcast_sub(&shifted.exp()?.sum_keepdim(D::Minus1)?.log()?)?;
    let n = t.dim(0)?;
    logp.gather(&t.reshape((n, 1))?, 1)?.reshape(n)?.neg()
}

#[test]
fn head_cross_entropy_matches_composition_and_finite_differences() {
    for (n, c, v) in [(1, 1, 2), (5, 3, 7), (9, 4, 31)] {
        let ids: Vec<u32> = (0..n).map(|i| ((i * 5 + 3) % v) as u32).collect();
        let t = Tensor::new(ids, &Device::Cpu).unwrap();
        let params = [random(&[n, c], 12), random(&[v, c], 13).affine(3.0, 0.0).unwrap()];
        check(
            &format!("head cross-entropy {n}x{c}x{v}"),
            1e-10,
            &params,
            |p| head_cross_entropy(&p[0], &p[1], &t),
            |p| composed_nll(&p[0], &p[1], &t),
        );
    }
}

/// More rows than one chunk (256) and a last partial chunk: the same as the composition.
#[test]
fn head_cross_entropy_over_several_chunks() {
    let (n, c, v) = (600, 8, 37);
    let ids: Vec<u32> = (0..n).map(|i| ((i * 7 + 1) % v) as u32).collect();
    let t = Tensor::new(ids, &Device::Cpu).unwrap();
    let h = Var::from_tensor(&random(&[n, c], 14)).unwrap();
    let w = Var::from_tensor(&random(&[v, c], 15)).unwrap();
    let fused = head_cross_entropy(&h, &w, &t).unwrap();
    let composed = composed_nll(&h, &w, &t).unwrap();
    assert_close(&fused, &composed, 1e-12, "chunked forward");
    let (gf, gc) = (fused.mean_all().unwrap().backward().unwrap(), composed.mean_all().unwrap().backward().unwrap());
    assert_close(gf.get(&h).unwrap(), gc.get(&h).unwrap(), 1e-12, "chunked d hidden");
    assert_close(gf.get(&w).unwrap(), gc.get(&w).unwrap(), 1e-12, "chunked d head");
    // f32 within f32 rounding of f64.
    let (h32, w32) = (h.to_dtype(DType::F32).unwrap(), w.to_dtype(DType::F32).unwrap());
    assert_close(&head_cross_entropy(&h32, &w32, &t).unwrap(), &composed, 1e-5, "chunked f32");
}

#[test]
fn head_cross_entropy_refuses_bad_targets_and_shapes() {
    let (h, w) = (random(&[3, 4], 1).to_dtype(DType::F32).unwrap(), random(&[5, 4], 2).to_dtype(DType::F32).unwrap());
    let err = head_cross_entropy(&h, &w, &Tensor::new(&[0u32, 5, 1], &Device::Cpu).unwrap()).unwrap_err().to_string();
    assert!(err.contains("target id 5") && err.contains("vocabulary of 5"), "{err}");
    let err = head_cross_entropy(&h, &w, &Tensor::new(&[0u32, 1], &Device::Cpu).unwrap()).unwrap_err().to_string();
    assert!(err.contains("[3, 4]") && err.contains("[2]"), "{err}");
    let err =
        head_cross_entropy(&h, &w.to_dtype(DType::F64).unwrap(), &Tensor::new(&[0u32, 1, 2], &Device::Cpu).unwrap())
            .unwrap_err()
            .to_string();
    assert!(err.contains("F64"), "{err}");
}

/// The composition: split qkv into heads, softmax(q kᵀ / √D + causal mask) v, merge the heads.
fn composed_attention(qkv: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, t, c3) = qkv.dims3()?;
    let (c, d) = (c3 / 3, c3 / 3 / heads);
    let split = |i: usize| qkv.narrow(2, i * c, c)?.reshape((b, t, heads, d))?.transpose(1, 2)?.contiguous();
    let (q, k, v) = (split(0)?, split(1)?, split(2)?);
    let scores = (q.matmul(&k.t()?)? / (d as f64).sqrt())?;
    let mask: Vec<f64> =
        (0..t).flat_map(|i| (0..t).map(move |j| if j <= i { 0.0 } else { f64::NEG_INFINITY })).collect();
    let mask = Tensor::from_vec(mask, (t, t), qkv.device())?.to_dtype(qkv.dtype())?;
    let p = candle_nn::ops::softmax(&scores.broadcast_add(&mask)?, D::Minus1)?;
    p.matmul(&v)?.transpose(1, 2)?.reshape((b, t, c))
}

#[test]
fn causal_attention_matches_composition_and_finite_differences() {
    // T = 70 spans two blocks of query rows; T = 1 is a single visible key.
    for (b, t, heads, d) in [(2, 5, 2, 3), (1, 70, 2, 4), (3, 1, 1, 2), (1, 9, 3, 5)] {
        let qkv = random(&[b, t, 3 * heads * d], 12).affine(1.5, 0.0).unwrap();
        check(
            &format!("causal attention b{b} t{t} h{heads} d{d}"),
            1e-10,
            &[qkv],
            |p| causal_attention_qkv(&p[0], heads),
            |p| composed_attention(&p[0], heads),
        );
    }
    let bad = Tensor::zeros((1, 4, 10), DType::F32, &Device::Cpu).unwrap();
    assert!(causal_attention_qkv(&bad, 2).is_err(), "3·C must divide into heads");
}
