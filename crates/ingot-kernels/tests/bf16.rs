//! bf16 products against an f64 reference of the same bf16-rounded operands, on both paths
//! (AMX where this machine has it), on odd shapes and transposed views; the linear layer's
//! gradients likewise.

use candle_core::{DType, Device, Tensor, Var};
use ingot_kernels::bf16::{matmul_nt_bf16_on, round_bf16};
use ingot_kernels::{bf16_path, linear_bf16, Bf16Path};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn random(rows: usize, cols: usize, seed: u64) -> Tensor {
    let mut rng = StdRng::seed_from_u64(seed);
    let v: Vec<f32> = (0..rows * cols).map(|_| rng.random_range(-2.0..2.0)).collect();
    Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap()
}

/// a · bᵀ of the bf16-rounded operands, in f64.
fn reference(a: &Tensor, b: &Tensor) -> Tensor {
    let f = |t: &Tensor| round_bf16(t).unwrap().to_dtype(DType::F64).unwrap();
    f(a).matmul(&f(b).t().unwrap()).unwrap()
}

/// max |a − b| / max(1, max |b|): products of bf16 values are exact in f32, so only the f32
/// accumulation differs from the f64 sum (~K·2⁻²⁴ relative).
fn relative_error(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (a.to_dtype(DType::F64).unwrap(), b.to_dtype(DType::F64).unwrap());
    assert_eq!(a.dims(), b.dims());
    let d: f64 = (&a - &b).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
    let s: f64 = b.abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap().max(1.0);
    d / s
}

fn paths() -> Vec<Bf16Path> {
    let mut p = vec![Bf16Path::Emulated];
    if bf16_path() == Bf16Path::Amx {
        p.push(Bf16Path::Amx);
    } else {
        eprintln!("no AMX here: only the emulated path is checked");
    }
    p
}

#[test]
fn products_match_the_f64_reference_on_each_path() {
    for path in paths() {
        for (m, n, k) in [(1, 1, 1), (37, 45, 70), (16, 16, 32), (64, 96, 384), (5, 33, 31), (70, 3, 129)] {
            let (a, b) = (random(m, k, 1), random(n, k, 2));
            let c = matmul_nt_bf16_on(path, &a, &b).unwrap();
            let e = relative_error(&c, &reference(&a, &b));
            assert!(e < 1e-5, "{path:?} {m}x{n}x{k}: relative error {e:e}");
            // Transposed views, read in place: a = (K, M)ᵀ, b = (K, N)ᵀ.
            let (at, bt) = (random(k, m, 3), random(k, n, 4));
            let c = matmul_nt_bf16_on(path, &at.t().unwrap(), &bt.t().unwrap()).unwrap();
            let e = relative_error(&c, &reference(&at.t().unwrap(), &bt.t().unwrap()));
            assert!(e < 1e-5, "{path:?} transposed {m}x{n}x{k}: relative error {e:e}");
        }
    }
}

#[test]
fn the_products_really_are_bf16() {
    // 1 + 2⁻¹⁰ is not a bf16 value: it rounds to 1, so the product shows the rounding.
    let a = Tensor::new(&[[1.0f32 + 1.0 / 1024.0]], &Device::Cpu).unwrap();
    for path in paths() {
        let c: Vec<Vec<f32>> = matmul_nt_bf16_on(path, &a, &a).unwrap().to_vec2().unwrap();
        assert_eq!(c[0][0], 1.0, "{path:?}");
    }
}

#[test]
fn linear_gradients_are_bf16_products_of_the_right_operands() {
    let (x, w) = (Var::from_tensor(&random(3 * 7, 19, 5)).unwrap(), Var::from_tensor(&random(23, 19, 6)).unwrap());
    let x3 = x.as_tensor().reshape((3, 7, 19)).unwrap();
    let y = linear_bf16(&x3, w.as_tensor()).unwrap();
    assert_eq!(y.dims(), &[3, 7, 23]);
    let e = relative_error(&y.reshape((21, 23)).unwrap(), &reference(x.as_tensor(), w.as_tensor()));
    assert!(e < 1e-5, "forward: {e:e}");
    let g = random(21, 23, 7);
    let grads = (y.reshape((21, 23)).unwrap() * &g).unwrap().sum_all().unwrap().backward().unwrap();
    let dx = grads.get(x.as_tensor()).expect("x gets a gradient");
    let dw = grads.get(w.as_tensor()).expect("w gets a gradient");
    let e = relative_error(dx, &reference(&g, &w.as_tensor().t().unwrap()));
    assert!(e < 1e-5, "dx: {e:e}");
    let e = relative_error(dw, &reference(&g.t().unwrap(), &x.as_tensor().t().unwrap()));
    assert!(e < 1e-5, "dw: {e:e}");
    // Against the f32 product: bf16 rounding is ~2⁻⁹ relative per operand.
    let f32_y = x.as_tensor().matmul(&w.as_tensor().t().unwrap()).unwrap();
    let e = relative_error(&y.reshape((21, 23)).unwrap(), &f32_y);
    assert!(e > 1e-6 && e < 2e-2, "bf16 vs f32: {e:e}");
}

#[test]
fn bad_operands_are_refused() {
    let dev = Device::Cpu;
    let a = Tensor::zeros((4, 5), DType::F32, &dev).unwrap();
    assert!(ingot_kernels::matmul_nt_bf16(&a, &Tensor::zeros((4, 6), DType::F32, &dev).unwrap()).is_err());
    assert!(ingot_kernels::matmul_nt_bf16(&a, &a.to_dtype(DType::F64).unwrap()).is_err());
    assert!(linear_bf16(&a, &Tensor::zeros((3, 4), DType::F32, &dev).unwrap()).is_err());
}

/// GFLOP/s of the bf16 product beside candle's f32 GEMM on the training benchmark's shapes
/// (a benchmark, not a test: `cargo test --release -p ingot-kernels --test bf16 -- --ignored
/// --nocapture bf16_speed`).
#[test]
#[ignore]
fn bf16_speed() {
    let time = |f: &dyn Fn()| {
        f();
        let t = std::time::Instant::now();
        for _ in 0..5 {
            f();
        }
        t.elapsed().as_secs_f64() / 5.0
    };
    for (m, n, k) in [(2048, 1152, 384), (2048, 384, 1536), (384, 1536, 2048), (2048, 4096, 384)] {
        let (a, b) = (random(m, k, 1), random(n, k, 2));
        let flops = 2.0 * (m * n * k) as f64;
        let f32_s = time(&|| drop(a.matmul(&b.t().unwrap()).unwrap()));
        let bf_s = time(&|| drop(ingot_kernels::matmul_nt_bf16(&a, &b).unwrap()));
        println!(
            "{m}x{n}x{k}: f32 {:.0} GFLOP/s, bf16 ({}) {:.0} GFLOP/s",
            flops / f32_s / 1e9,
            bf16_path().name(),
            flops / bf_s / 1e9
        );
    }
}

#[test]
fn linear_with_bias_matches_the_composition_in_f32_and_in_bf16() {
    let (x, w, b) = (
        Var::from_tensor(&random(2 * 9, 13, 8).reshape((2, 9, 13)).unwrap()).unwrap(),
        Var::from_tensor(&random(11, 13, 9)).unwrap(),
        Var::from_tensor(&random(1, 11, 10).reshape(11).unwrap()).unwrap(),
    );
    let g = random(18, 11, 11).reshape((2, 9, 11)).unwrap();
    let grads_of = |y: Tensor| (y * &g).unwrap().sum_all().unwrap().backward().unwrap();
    let composed =
        x.as_tensor().broadcast_matmul(&w.as_tensor().t().unwrap()).unwrap().broadcast_add(b.as_tensor()).unwrap();
    let reference = grads_of(composed.clone());
    for bf16 in [false, true] {
        let y = ingot_kernels::linear(x.as_tensor(), w.as_tensor(), Some(b.as_tensor()), bf16).unwrap();
        // f32: the same sums in another order; bf16: operands rounded to 8 bits of mantissa.
        let tol = if bf16 { 2e-2 } else { 1e-5 };
        assert!(relative_error(&y, &composed) < tol, "bf16 {bf16}: forward");
        let grads = grads_of(y);
        for (name, v) in [("x", &x), ("w", &w), ("bias", &b)] {
            let e = relative_error(grads.get(v.as_tensor()).unwrap(), reference.get(v.as_tensor()).unwrap());
            assert!(e < tol, "bf16 {bf16}: d{name} relative error {e:e}");
        }
    }
    // A weight stored transposed ((K, N) in memory, GPT-2's Conv1D layout) gets its gradient
    // contiguous in that layout, with the same values.
    let wt = Var::from_tensor(&w.as_tensor().t().unwrap().contiguous().unwrap()).unwrap(); // (K, N)
    for bf16 in [false, true] {
        let y = ingot_kernels::linear(x.as_tensor(), &wt.as_tensor().t().unwrap(), Some(b.as_tensor()), bf16).unwrap();
        let dwt = grads_of(y).get(wt.as_tensor()).unwrap().clone();
        let tol = if bf16 { 2e-2 } else { 1e-5 };
        let e = relative_error(&dwt, &reference.get(w.as_tensor()).unwrap().t().unwrap());
        assert!(e < tol, "bf16 {bf16}: transposed dw relative error {e:e}");
    }
    assert!(
        ingot_kernels::linear(x.as_tensor(), w.as_tensor(), Some(&random(1, 4, 1).reshape(4).unwrap()), false).is_err()
    );
}
