//! Layers, optimisers, schedules, checkpoints and the errors of the engine on bad input.

use bragg::autograd::{no_grad, InferenceGuard};
use bragg::nn::{
    io, Adam, Conv, ConvTranspose, Init, Module, Optimizer, Param, ReduceOnPlateau, Sgd,
};
use bragg::{Device, Error, Padding, Tensor};
use rand::SeedableRng;
use std::collections::HashMap;

fn rng(seed: u64) -> rand_chacha::ChaCha8Rng {
    rand_chacha::ChaCha8Rng::seed_from_u64(seed)
}

#[test]
fn adam_first_step_moves_each_weight_by_lr_against_the_gradient_sign() {
    let dev = Device::cpu();
    let w = Tensor::param(&[1.0, -2.0, 3.0], &[3], &dev).unwrap();
    let params = vec![Param::new("w", &w)];
    let loss = w
        .mul(&Tensor::from_vec(vec![2.0, -1.0, 0.5], &[3], &dev).unwrap())
        .unwrap()
        .sum()
        .unwrap();
    let grads = loss.backward().unwrap();
    let mut adam = Adam::new(0.1);
    adam.step(&params, &grads).unwrap();
    // Bias-corrected first step: m_hat = g, v_hat = g^2, update = lr * g / |g|.
    let got = w.to_vec().unwrap();
    for (g, want) in got.iter().zip([0.9, -1.9, 2.9]) {
        assert!((g - want).abs() < 1e-5, "{got:?}");
    }
}

#[test]
fn optimisers_fit_a_small_convolution() {
    let dev = Device::cpu();
    let target_layer = Conv::new(2, 3, &[3, 3], &[2], Init::HeNormal, &mut rng(1), &dev).unwrap();
    let x = Tensor::from_vec(
        (0..2 * 2 * 8 * 8)
            .map(|i| ((i * 37 % 17) as f32) / 17.0)
            .collect(),
        &[2, 2, 8, 8],
        &dev,
    )
    .unwrap();
    let target = no_grad(|| target_layer.forward(&x)).unwrap().detach();
    for (name, mut opt) in [
        ("adam", Box::new(Adam::new(0.05)) as Box<dyn Optimizer>),
        ("sgd", Box::new(Sgd::new(0.02, 0.9)) as Box<dyn Optimizer>),
    ] {
        let layer = Conv::new(2, 3, &[3, 3], &[2], Init::GlorotUniform, &mut rng(2), &dev).unwrap();
        let params = layer.parameters();
        let first = bragg::loss::mse(&layer.forward(&x).unwrap(), &target, None)
            .unwrap()
            .item()
            .unwrap();
        let mut last = first;
        for _ in 0..150 {
            let loss = bragg::loss::mse(&layer.forward(&x).unwrap(), &target, None).unwrap();
            last = loss.item().unwrap();
            let grads = loss.backward().unwrap();
            opt.step(&params, &grads).unwrap();
        }
        assert!(last < first * 0.05, "{name}: loss {first} -> {last}");
    }
}

#[test]
fn reduce_on_plateau_follows_keras() {
    let mut s = ReduceOnPlateau::new(0.15, 2, 1e-6);
    let mut lr = 1e-4;
    for loss in [1.0, 0.9, 0.95, 0.91] {
        lr = s.observe(loss, lr);
    }
    assert!((lr - 1.5e-5).abs() < 1e-9, "{lr}");
    for _ in 0..20 {
        lr = s.observe(2.0, lr);
    }
    assert_eq!(lr, 1e-6);
}

#[test]
fn safetensors_round_trip_with_metadata() {
    let dev = Device::cpu();
    let conv = Conv::new(1, 4, &[3, 3, 3], &[1], Init::HeNormal, &mut rng(3), &dev).unwrap();
    let tconv =
        ConvTranspose::new(4, 2, &[2, 2, 2], &[2], Init::HeNormal, &mut rng(4), &dev).unwrap();
    let mut params = bragg::nn::prefixed("enc", conv.parameters());
    params.extend(bragg::nn::prefixed("dec", tconv.parameters()));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let meta = HashMap::from([("arch".to_string(), "test".to_string())]);
    io::save_params(&path, &params, &meta).unwrap();
    let ckpt = io::load(&path, &dev).unwrap();
    assert_eq!(ckpt.metadata["arch"], "test");
    assert_eq!(ckpt.tensors["enc.weight"].shape(), &[4, 1, 3, 3, 3]);
    // Load into a differently initialised copy: the numbers become equal.
    let conv2 = Conv::new(1, 4, &[3, 3, 3], &[1], Init::HeNormal, &mut rng(9), &dev).unwrap();
    let params2 = bragg::nn::prefixed("enc", conv2.parameters());
    io::load_into(&path, &ckpt, &params2).unwrap();
    assert_eq!(
        conv2.weight.to_vec().unwrap(),
        conv.weight.to_vec().unwrap()
    );
    // A missing parameter or a shape mismatch is a named error.
    let wrong = Conv::new(1, 5, &[3, 3, 3], &[1], Init::HeNormal, &mut rng(9), &dev).unwrap();
    let err = io::load_into(
        &path,
        &ckpt,
        &bragg::nn::prefixed("enc", wrong.parameters()),
    )
    .unwrap_err();
    assert!(err.to_string().contains("enc.weight"), "{err}");
    // A truncated file is an error, not a panic.
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(io::load(&path, &dev), Err(Error::Data { .. })));
}

#[test]
fn inference_mode_records_nothing_and_graphs_free_with_their_outputs() {
    let dev = Device::cpu();
    let w = Tensor::param(&[1.0, 2.0], &[2], &dev).unwrap();
    {
        let _g = InferenceGuard::new();
        let y = w.square().unwrap();
        assert!(!y.requires_grad());
        assert!(y.op_name().is_none());
    }
    let y = w.square().unwrap().sum().unwrap();
    assert!(y.requires_grad());
    let g = y.backward().unwrap();
    assert_eq!(g.get(&w).unwrap().to_vec().unwrap(), vec![2.0, 4.0]);
    assert!(no_grad(|| w.square().unwrap().sum().unwrap())
        .backward()
        .is_err());
}

#[test]
fn bad_op_inputs_are_named_errors_not_panics() {
    let dev = Device::cpu();
    let x = Tensor::zeros(&[1, 2, 8, 8], &dev).unwrap();
    let w = Tensor::zeros(&[4, 3, 3, 3], &dev).unwrap();
    let e = x.conv(&w, None, &[1], &[1], Padding::Same).unwrap_err();
    assert!(
        matches!(e, Error::Shape { op: "conv", .. }) && e.to_string().contains("channels"),
        "{e}"
    );
    let w = Tensor::zeros(&[4, 2, 3, 3], &dev).unwrap();
    let e = x.conv(&w, None, &[0], &[1], Padding::Same).unwrap_err();
    assert!(e.to_string().contains("dilation"), "{e}");
    let e = x.conv(&w, None, &[5], &[1], Padding::Valid).unwrap_err();
    assert!(
        e.to_string().contains("larger than the unpadded input"),
        "{e}"
    );
    let empty = Tensor::zeros(&[0, 2, 8, 8], &dev).unwrap();
    assert!(empty
        .conv(&w, None, &[1], &[1], Padding::Same)
        .unwrap_err()
        .to_string()
        .contains("empty"));
    let bias = Tensor::zeros(&[3], &dev).unwrap();
    assert!(x
        .conv(&w, Some(&bias), &[1], &[1], Padding::Same)
        .unwrap_err()
        .to_string()
        .contains("bias"));
    let e = x
        .add(&Tensor::zeros(&[3, 8, 8], &dev).unwrap())
        .unwrap_err();
    assert!(e.to_string().contains("broadcast"), "{e}");
    assert!(Tensor::zeros(&[1, 1, 1, 1], &dev)
        .unwrap()
        .max_pool(&[2])
        .is_err());
    assert!(x.narrow(1, 1, 2).is_err());
    assert!(x.reshape(&[3, 5]).is_err());
    assert!(Tensor::from_vec(vec![1.0; 3], &[2, 2], &dev).is_err());
    assert!(bragg::concat(&[&x, &Tensor::zeros(&[1, 2, 8, 7], &dev).unwrap()], 1).is_err());
}

#[test]
fn conv_same_padding_follows_the_keras_convention() {
    // Even kernel 2, dilation 1: total padding 1, all of it after (smaller half before).
    let dev = Device::cpu();
    let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[1, 1, 1, 4], &dev).unwrap();
    let w = Tensor::from_vec(vec![1.0, 10.0], &[1, 1, 1, 2], &dev).unwrap();
    let y = x
        .conv(&w, None, &[1], &[1], Padding::Same)
        .unwrap()
        .to_vec()
        .unwrap();
    assert_eq!(y, vec![21.0, 32.0, 43.0, 4.0]);
    // Kernel 3, dilation 2: total padding 4, 2 before.
    let w = Tensor::from_vec(vec![1.0, 0.0, 0.0], &[1, 1, 1, 3], &dev).unwrap();
    let y = x
        .conv(&w, None, &[2], &[1], Padding::Same)
        .unwrap()
        .to_vec()
        .unwrap();
    assert_eq!(y, vec![0.0, 0.0, 1.0, 2.0]);
}
