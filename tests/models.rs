//! Model architecture tests: parameter counts, forward shapes in 2-D and 3-D, gradients
//! reaching every parameter, config round trips and errors.

use bragg::models::{build, ModelConfig, ModelKind};
use bragg::{Device, Tensor};

fn small(kind: ModelKind, dims: usize) -> ModelConfig {
    ModelConfig {
        kind,
        dims,
        width: 4,
        depth: if matches!(kind, ModelKind::Msd) { 3 } else { 2 },
        ..ModelConfig::thesis(kind)
    }
}

fn ramp(shape: &[usize], dev: &Device) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|i| ((i * 7919) % 101) as f32 / 101.0).collect();
    Tensor::from_vec(v, shape, dev).unwrap()
}

#[test]
fn patch_model_has_the_published_parameter_count() {
    let m = build(
        &ModelConfig::thesis(ModelKind::PatchUnet3d),
        &Device::cpu(),
        0,
    )
    .unwrap();
    // Encoder 896 + 16,960 + 99,456 + 262,400; bottleneck 979,422; decoder 1,076,478 +
    // 245,088 + 33,056; head 49,176 + 7,788 + 582 + 7.
    assert_eq!(m.num_parameters(), 2_771_309);
}

#[test]
fn msd_thesis_configuration_has_about_4000_parameters() {
    let cfg = ModelConfig::thesis(ModelKind::Msd);
    assert_eq!((cfg.width, cfg.depth, cfg.max_dilation), (2, 15, 25));
    let m = build(&cfg, &Device::cpu(), 0).unwrap();
    // sum_i 2 * (9 * (1 + 2 i) + 1) + (31 + 1) = 4,080 + 32
    assert_eq!(m.num_parameters(), 4_112);
}

#[test]
fn thesis_unet_has_768_channels_at_the_bottom() {
    let m = build(&ModelConfig::thesis(ModelKind::Unet), &Device::cpu(), 0).unwrap();
    let p = m.parameters();
    let bottom = p.iter().find(|p| p.name == "enc4.conv.weight").unwrap();
    assert_eq!(bottom.tensor.shape(), &[768, 384, 3, 3]);
    let d = build(
        &ModelConfig::thesis(ModelKind::DilatedUnet),
        &Device::cpu(),
        0,
    )
    .unwrap();
    assert!(d.parameters().iter().any(|p| p.name == "enc1.dil3.weight"));
}

#[test]
fn forward_shapes_2d_and_3d() {
    let dev = Device::cpu();
    for kind in [ModelKind::Unet, ModelKind::DilatedUnet, ModelKind::Msd] {
        for dims in [2, 3] {
            let m = build(&small(kind, dims), &dev, 1).unwrap();
            let shape: Vec<usize> = if dims == 2 {
                vec![2, 1, 16, 16]
            } else {
                vec![1, 1, 8, 8, 8]
            };
            let y = m.forward(&ramp(&shape, &dev)).unwrap();
            assert_eq!(y.shape(), &shape[..], "{kind} {dims}-D");
            let v = y.to_vec().unwrap();
            assert!(
                v.iter().all(|&x| (0.0..=1.0).contains(&x)),
                "{kind}: sigmoid output"
            );
        }
    }
}

#[test]
fn patch_model_forward_shape() {
    let dev = Device::cpu();
    let m = build(&ModelConfig::thesis(ModelKind::PatchUnet3d), &dev, 0).unwrap();
    let y = m.forward(&ramp(&[1, 1, 32, 32, 32], &dev)).unwrap();
    assert_eq!(y.shape(), &[1, 1, 32, 32, 32]);
    assert!(y.to_vec().unwrap().iter().all(|v| v.is_finite()));
}

#[test]
fn gradients_reach_every_parameter() {
    let dev = Device::cpu();
    for kind in [ModelKind::Unet, ModelKind::DilatedUnet, ModelKind::Msd] {
        for dims in [2, 3] {
            let m = build(&small(kind, dims), &dev, 2).unwrap();
            let shape: Vec<usize> = if dims == 2 {
                vec![2, 1, 16, 16]
            } else {
                vec![1, 1, 8, 8, 8]
            };
            let x = ramp(&shape, &dev);
            let loss = m
                .forward(&x)
                .unwrap()
                .sub(&x)
                .unwrap()
                .square()
                .unwrap()
                .mean()
                .unwrap();
            let g = loss.backward().unwrap();
            for p in m.parameters() {
                let gv = g
                    .get(&p.tensor)
                    .unwrap_or_else(|| panic!("{kind}: no gradient for {}", p.name));
                assert!(
                    gv.to_vec().unwrap().iter().any(|&v| v != 0.0),
                    "{kind} {dims}-D: zero gradient for {}",
                    p.name
                );
            }
        }
    }
}

#[test]
fn config_round_trip_and_errors() {
    let c = small(ModelKind::DilatedUnet, 2);
    assert_eq!(ModelConfig::from_json(&c.to_json()).unwrap(), c);
    assert!("resnet"
        .parse::<ModelKind>()
        .unwrap_err()
        .to_string()
        .contains("resnet"));
    let bad = ModelConfig {
        dims: 4,
        ..c.clone()
    };
    assert!(build(&bad, &Device::cpu(), 0).is_err());
    let m = build(&small(ModelKind::Unet, 2), &Device::cpu(), 0).unwrap();
    // 2-block UNet needs multiples of 4.
    let err = m
        .forward(&Tensor::zeros(&[1, 1, 10, 10], &Device::cpu()).unwrap())
        .unwrap_err();
    assert!(err.to_string().contains("multiples of 4"), "{err}");
}

#[test]
fn model_file_rebuilds_the_model() {
    let dev = Device::cpu();
    let cfg = small(ModelKind::Msd, 2);
    let m = build(&cfg, &dev, 3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    bragg::models::save_model(&path, m.as_ref(), &cfg, &[]).unwrap();
    let l = bragg::models::load_model(&path, &dev).unwrap();
    assert_eq!(l.config, cfg);
    let x = ramp(&[1, 1, 12, 12], &dev);
    assert_eq!(
        m.forward(&x).unwrap().to_vec().unwrap(),
        l.model.forward(&x).unwrap().to_vec().unwrap()
    );
}

#[test]
fn patch_model_gradients_reach_every_parameter() {
    let dev = Device::cpu();
    let m = build(&ModelConfig::thesis(ModelKind::PatchUnet3d), &dev, 4).unwrap();
    let x = ramp(&[1, 1, 32, 32, 32], &dev);
    let loss = m
        .forward(&x)
        .unwrap()
        .sub(&x)
        .unwrap()
        .abs()
        .unwrap()
        .mean()
        .unwrap();
    let g = loss.backward().unwrap();
    for p in m.parameters() {
        let gv = g
            .get(&p.tensor)
            .unwrap_or_else(|| panic!("no gradient for {}", p.name));
        assert!(
            gv.to_vec().unwrap().iter().any(|&v| v != 0.0),
            "zero gradient for {}",
            p.name
        );
    }
}
