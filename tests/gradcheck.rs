//! Finite-difference gradient checks of every differentiable op, 2-D and 3-D shapes.
#![allow(clippy::cloned_ref_to_slice_refs)]

use bragg::autograd::gradcheck::check_gradients;
use bragg::{concat, Device, Padding, Result, Tensor};
use rand::{Rng, SeedableRng};

fn rand_param(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    Tensor::param(&data, shape, &Device::cpu()).unwrap()
}

/// Distinct values spaced by 0.05 and away from 0, shuffled: no ties in a max and no input
/// within the finite-difference step of a kink.
fn distinct_param(shape: &[usize], seed: u64) -> Tensor {
    use rand::seq::SliceRandom;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let mut data: Vec<f32> = (0..n)
        .map(|i| (i as f32 - n as f32 / 2.0) * 0.05 + 0.025)
        .collect();
    data.shuffle(&mut rng);
    Tensor::param(&data, shape, &Device::cpu()).unwrap()
}

fn rand_const(shape: &[usize], seed: u64, lo: f32, hi: f32) -> Tensor {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n).map(|_| rng.random_range(lo..hi)).collect();
    Tensor::from_vec(data, shape, &Device::cpu()).unwrap()
}

/// Reduces an op output to a scalar with fixed random weights, so every output element's
/// gradient matters.
fn weighted_sum(y: &Tensor, seed: u64) -> Result<Tensor> {
    let w = rand_const(y.shape(), seed, -1.0, 1.0);
    y.mul(&w)?.sum()
}

fn assert_grads(name: &str, f: impl Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor]) {
    let r = check_gradients(f, inputs, 1e-2, 2e-2, 2e-3).unwrap();
    assert!(r.checked > 0);
    assert!(r.worst_ratio <= 1.0, "{name}: gradient mismatch {r:?}");
}

#[test]
fn unary_ops() {
    let x = distinct_param(&[2, 3, 4], 1);
    for (name, f) in [
        (
            "exp",
            (|t: &Tensor| t.exp()) as fn(&Tensor) -> Result<Tensor>,
        ),
        ("tanh", |t| t.tanh()),
        ("sigmoid", |t| t.sigmoid()),
        ("scaled_sigmoid", |t| t.scaled_sigmoid(1.5)),
        ("leaky_relu", |t| t.leaky_relu(0.2)),
        ("square", |t| t.square()),
        ("sin", |t| t.sin()),
        ("cos", |t| t.cos()),
        ("abs", |t| t.abs()),
        ("relu", |t| t.relu()),
        ("mul_scalar", |t| t.mul_scalar(-3.0)),
        ("add_scalar", |t| t.add_scalar(0.5)),
    ] {
        assert_grads(name, |i| weighted_sum(&f(&i[0])?, 9), &[x.clone()]);
    }
    let pos = rand_const(&[2, 3, 4], 2, 0.5, 2.0).into_param();
    for (name, f) in [
        (
            "log",
            (|t: &Tensor| t.log()) as fn(&Tensor) -> Result<Tensor>,
        ),
        ("log1p", |t| t.log1p()),
        ("sqrt", |t| t.sqrt()),
        ("recip", |t| t.recip()),
    ] {
        assert_grads(name, |i| weighted_sum(&f(&i[0])?, 9), &[pos.clone()]);
    }
}

#[test]
fn binary_ops_with_broadcasting() {
    let a = rand_param(&[2, 3, 4, 5], 3);
    let per_channel = rand_const(&[1, 3, 1, 1], 4, 0.5, 1.5).into_param();
    let row = rand_param(&[5], 5);
    assert_grads(
        "add",
        |i| weighted_sum(&i[0].add(&i[1])?, 1),
        &[a.clone(), per_channel.clone()],
    );
    assert_grads(
        "sub",
        |i| weighted_sum(&i[0].sub(&i[1])?, 1),
        &[a.clone(), row.clone()],
    );
    assert_grads(
        "mul",
        |i| weighted_sum(&i[0].mul(&i[1])?, 1),
        &[a.clone(), per_channel.clone()],
    );
    assert_grads(
        "div",
        |i| weighted_sum(&i[0].div(&i[1])?, 1),
        &[a.clone(), per_channel.clone()],
    );
}

#[test]
fn reductions() {
    let a = rand_param(&[2, 3, 4, 5], 6);
    assert_grads(
        "sum_axes",
        |i| weighted_sum(&i[0].sum_axes(&[0, 2], false)?, 2),
        &[a.clone()],
    );
    assert_grads(
        "mean_axes",
        |i| weighted_sum(&i[0].mean_axes(&[1, 3], true)?, 2),
        &[a.clone()],
    );
    assert_grads("mean", |i| i[0].square()?.mean(), &[a.clone()]);
}

fn conv_case(
    x_shape: &[usize],
    w_shape: &[usize],
    dilation: &[usize],
    stride: &[usize],
    seed: u64,
) {
    let x = rand_param(x_shape, seed);
    let w = rand_param(w_shape, seed + 1);
    let b = rand_param(&[w_shape[0]], seed + 2);
    assert_grads(
        &format!("conv x{x_shape:?} w{w_shape:?} d{dilation:?} s{stride:?}"),
        |i| {
            weighted_sum(
                &i[0].conv(&i[1], Some(&i[2]), dilation, stride, Padding::Same)?,
                seed,
            )
        },
        &[x, w, b],
    );
}

#[test]
fn conv2d_gradients() {
    conv_case(&[2, 3, 7, 6], &[4, 3, 3, 3], &[1], &[1], 10);
    conv_case(&[1, 2, 9, 8], &[3, 2, 3, 3], &[3, 2], &[1], 11);
    conv_case(&[1, 2, 6, 7], &[2, 2, 2, 4], &[2], &[1], 12); // even kernels
    conv_case(&[1, 2, 8, 8], &[2, 2, 5, 5], &[1], &[2], 13); // strided
}

#[test]
fn conv3d_gradients() {
    conv_case(&[1, 2, 5, 6, 4], &[3, 2, 3, 3, 3], &[1], &[1], 20);
    conv_case(&[1, 2, 6, 6, 6], &[2, 2, 2, 2, 2], &[3, 2, 1], &[1], 21);
    conv_case(&[2, 1, 7, 5, 5], &[2, 1, 3, 3, 3], &[2], &[1], 22);
}

#[test]
fn conv_transpose_gradients() {
    for (x_shape, w_shape, stride) in [
        (vec![1, 3, 4, 5], vec![3, 2, 3, 3], vec![1]),
        (vec![1, 3, 4, 3], vec![3, 2, 2, 2], vec![2]),
        (vec![1, 2, 3, 3, 2], vec![2, 2, 3, 3, 3], vec![2]),
    ] {
        let x = rand_param(&x_shape, 30);
        let w = rand_param(&w_shape, 31);
        let b = rand_param(&[w_shape[1]], 32);
        assert_grads(
            "conv_transpose",
            |i| weighted_sum(&i[0].conv_transpose(&i[1], Some(&i[2]), &[1], &stride)?, 3),
            &[x, w, b],
        );
    }
}

#[test]
fn pool_upsample_concat_narrow_filter() {
    let x2 = distinct_param(&[2, 2, 6, 5], 40);
    let x3 = distinct_param(&[1, 2, 4, 4, 5], 41);
    assert_grads(
        "max_pool_floor 2d (odd width)",
        |i| weighted_sum(&i[0].max_pool_floor(&[2])?, 4),
        &[x2.clone()],
    );
    assert!(x2.max_pool(&[2]).is_err(), "odd width must be an error");
    assert_grads(
        "max_pool_ceil 3d (odd width)",
        |i| weighted_sum(&i[0].max_pool_ceil(&[2])?, 4),
        &[x3.clone()],
    );
    assert_grads(
        "upsample 2d",
        |i| weighted_sum(&i[0].upsample(&[2])?, 4),
        &[x2.clone()],
    );
    assert_grads(
        "upsample 3d",
        |i| weighted_sum(&i[0].upsample(&[2])?, 4),
        &[x3.clone()],
    );
    let y2 = rand_param(&[2, 3, 6, 5], 42);
    assert_grads(
        "concat",
        |i| weighted_sum(&concat(&[&i[0], &i[1]], 1)?, 4),
        &[x2.clone(), y2],
    );
    assert_grads(
        "narrow",
        |i| weighted_sum(&i[0].narrow(3, 1, 3)?, 4),
        &[x3.clone()],
    );
    let taps = [0.2, 0.5, 0.3];
    assert_grads(
        "filter_axis",
        |i| weighted_sum(&i[0].filter_axis(2, &taps)?, 4),
        &[x2],
    );
}
