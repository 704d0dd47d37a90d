//! One entry point for every way of filling a gap: the networks (the shipped 3-D gap model, a
//! gap model file, or a whole-pattern / patch model from `bragg train`) and the classical fills
//! on the intensity or on `log(1 + I)`.

use super::baselines::Baseline;
use super::gap3d;
use crate::models::{load_model, LoadedModel, ModelKind};
use crate::train::gap3d::{gap_model, shipped_gap_model, GapModel};
use crate::{Device, Error, Result};
use ndarray::ArrayD;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// A way of filling a gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillMethod {
    /// A network (shipped or from a file).
    Model,
    /// A classical fill, on the intensity or (`log`) on `log(1 + I)`.
    Classical {
        /// The fill.
        fill: Baseline,
        /// Work on `log(1 + I)` and map back.
        log: bool,
    },
}

impl FillMethod {
    /// The classical fills compared in studies: linear, Laplace and biharmonic, each on the
    /// intensity and on its log.
    pub const CLASSICAL: [FillMethod; 6] = [
        FillMethod::Classical {
            fill: Baseline::Linear,
            log: false,
        },
        FillMethod::Classical {
            fill: Baseline::Linear,
            log: true,
        },
        FillMethod::Classical {
            fill: Baseline::Laplace,
            log: false,
        },
        FillMethod::Classical {
            fill: Baseline::Laplace,
            log: true,
        },
        FillMethod::Classical {
            fill: Baseline::Biharmonic,
            log: false,
        },
        FillMethod::Classical {
            fill: Baseline::Biharmonic,
            log: true,
        },
    ];

    /// Fills with a classical method (`None` for [`FillMethod::Model`]).
    pub fn classical_fill(
        self,
        intensity: &ArrayD<f32>,
        mask: &ArrayD<f32>,
    ) -> Option<Result<ArrayD<f32>>> {
        match self {
            FillMethod::Model => None,
            FillMethod::Classical { fill, log: false } => {
                Some(fill.fill(intensity, mask).map(|f| {
                    // Counts are never negative (higher-order fills overshoot near steep edges).
                    let floor = intensity
                        .iter()
                        .copied()
                        .fold(f32::INFINITY, f32::min)
                        .min(0.0);
                    f.mapv(|v| v.max(floor))
                }))
            }
            FillMethod::Classical { fill, log: true } => {
                let l = intensity.mapv(|v| v.max(0.0).ln_1p());
                Some(fill.fill(&l, mask).map(|f| {
                    let back = f.mapv(|v| v.exp_m1().max(0.0));
                    super::merge(intensity, &back, mask)
                }))
            }
        }
    }
}

impl fmt::Display for FillMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FillMethod::Model => f.write_str("model"),
            FillMethod::Classical { fill, log: false } => write!(f, "{}", fill.name()),
            FillMethod::Classical { fill, log: true } => write!(f, "log-{}", fill.name()),
        }
    }
}

impl FromStr for FillMethod {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        if t == "model" {
            return Ok(FillMethod::Model);
        }
        let (log, name) = match t.strip_prefix("log-") {
            Some(rest) => (true, rest),
            None => (false, t.as_str()),
        };
        let fill: Baseline = name.parse().map_err(|_| {
            Error::arg(
                "inpaint",
                "method",
                format!(
                    "unknown method `{s}` (known: model, linear, laplace, biharmonic, nearest, \
                     zero, each also as log-NAME)"
                ),
            )
        })?;
        Ok(FillMethod::Classical { fill, log })
    }
}

enum Engine {
    Gap(GapModel),
    Other(LoadedModel),
    Classical(FillMethod),
}

/// Largest volume (in voxels) whose gap-model fill averages the 8 mirrorings of every window
/// (about +0.001 PCC for 8x the network's time: 0.6 -> 4.8 s for 64^3); larger ones use one.
pub const MIRROR_MAX_VOXELS: usize = 128 * 128 * 128;

/// A ready-to-use filler: the method with its network loaded.
pub struct Filler {
    engine: Engine,
    name: String,
    note: Option<String>,
}

impl Filler {
    /// Prepares `method` for `dims`-D patterns; for [`FillMethod::Model`], `model` is a model
    /// file, or `None` for the shipped 3-D gap model (2-D patterns without a model file fall
    /// back to the log-linear fill, with a note).
    pub fn new(
        method: FillMethod,
        model: Option<&Path>,
        dims: usize,
        device: &Device,
    ) -> Result<Filler> {
        if method != FillMethod::Model {
            if model.is_some() {
                return Err(Error::arg(
                    "inpaint",
                    "--model",
                    format!("a model file was given with the classical method `{method}`"),
                ));
            }
            return Ok(Filler {
                engine: Engine::Classical(method),
                name: method.to_string(),
                note: None,
            });
        }
        match model {
            Some(path) => {
                let loaded = load_model(path, device)?;
                if loaded.config.dims != dims {
                    return Err(Error::data(
                        path,
                        format!(
                            "is a {}-D model, the patterns are {dims}-D",
                            loaded.config.dims
                        ),
                    ));
                }
                let name = format!("model {}", path.display());
                if loaded.config.kind == ModelKind::GapUnet3d {
                    Ok(Filler {
                        engine: Engine::Gap(gap_model(loaded, path)?),
                        name,
                        note: None,
                    })
                } else {
                    Ok(Filler {
                        engine: Engine::Other(loaded),
                        name,
                        note: None,
                    })
                }
            }
            None if dims == 3 => Ok(Filler {
                engine: Engine::Gap(shipped_gap_model(device)?),
                name: "the shipped 3-D gap model".into(),
                note: None,
            }),
            None => {
                let m = FillMethod::Classical {
                    fill: Baseline::Linear,
                    log: true,
                };
                Ok(Filler {
                    engine: Engine::Classical(m),
                    name: m.to_string(),
                    note: Some(
                        "note: no 2-D weights are shipped yet; filling with log-linear \
                         interpolation (pass --model FILE for a trained 2-D network)"
                            .into(),
                    ),
                })
            }
        }
    }

    /// What fills the gap, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A note to show the user once (e.g. a fallback).
    pub fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    /// The gap model, when the filler uses one.
    pub fn gap_model(&self) -> Option<&GapModel> {
        match &self.engine {
            Engine::Gap(g) => Some(g),
            _ => None,
        }
    }

    /// Fills one pattern (`mask` nonzero = gap); measured voxels stay bit-identical.
    /// `finetune` seconds of self-supervised tuning on the pattern's measured voxels are
    /// spent first when the filler is a 3-D gap model (the tuned copy is used for this pattern
    /// only).
    pub fn fill(
        &self,
        intensity: &ArrayD<f32>,
        mask: &ArrayD<f32>,
        stride: usize,
        finetune: f64,
        device: &Device,
    ) -> Result<ArrayD<f32>> {
        match &self.engine {
            Engine::Classical(m) => m
                .classical_fill(intensity, mask)
                .unwrap_or_else(|| Err(Error::arg("inpaint", "method", "not classical"))),
            Engine::Gap(g) => {
                // Test-time mirroring where it is affordable (8x the network's cost).
                let flips = if intensity.len() <= MIRROR_MAX_VOXELS {
                    8
                } else {
                    1
                };
                if finetune > 0.0 {
                    let tuned =
                        crate::train::gap3d::finetune(g, intensity, mask, finetune, device)?;
                    gap3d::inpaint_volume_flips(
                        tuned.model.as_ref(),
                        intensity,
                        mask,
                        tuned.window,
                        stride,
                        16,
                        flips,
                        device,
                    )
                } else {
                    gap3d::inpaint_volume_flips(
                        g.model.as_ref(),
                        intensity,
                        mask,
                        g.window,
                        stride,
                        16,
                        flips,
                        device,
                    )
                }
            }
            Engine::Other(m) => {
                if finetune > 0.0 {
                    return Err(Error::arg(
                        "inpaint",
                        "--finetune",
                        "fine-tuning is implemented for the 3-D gap model only",
                    ));
                }
                super::inpaint_pattern(m.model.as_ref(), &m.config, intensity, mask, stride, device)
            }
        }
    }
}
