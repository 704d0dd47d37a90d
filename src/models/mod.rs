//! Gap-inpainting models (thesis 4.3 and BRIEF section 5): UNet, dilated UNet and MSD-Net in 2-D
//! or 3-D from the same code, and the 3-D patch model. A [`ModelConfig`] (serde) describes the
//! architecture; [`build`] instantiates it, and model files carry it as JSON metadata.

pub mod dilated_unet;
pub mod gap_unet3d;
pub mod msdnet;
pub mod patch_unet3d;
pub mod phase_unet;
pub mod unet;

use crate::nn::{Conv, Init, Module};
use crate::{Device, Error, Result, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Architecture family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// UNet (thesis 4.3.2).
    Unet,
    /// UNet whose first two encoder blocks are parallel dilated convolutions.
    DilatedUnet,
    /// Mixed-scale dense network (Pelt & Sethian).
    Msd,
    /// The 3-D 32^3 patch model of BRIEF section 5.
    PatchUnet3d,
    /// The compact residual 3-D gap model (a correction to the log-linear fill).
    GapUnet3d,
    /// The reciprocal-space phasing network (intensity in, phase direction out).
    PhaseUnet,
}

impl ModelKind {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Unet => "unet",
            ModelKind::DilatedUnet => "dilated-unet",
            ModelKind::Msd => "msd",
            ModelKind::PatchUnet3d => "patch-unet3d",
            ModelKind::GapUnet3d => "gap-unet3d",
            ModelKind::PhaseUnet => "phase-unet",
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ModelKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "unet" => Ok(ModelKind::Unet),
            "dilated-unet" | "dilated_unet" => Ok(ModelKind::DilatedUnet),
            "msd" | "msdnet" | "msd-net" => Ok(ModelKind::Msd),
            "patch-unet3d" | "patch_unet3d" | "patch" => Ok(ModelKind::PatchUnet3d),
            "gap-unet3d" | "gap_unet3d" | "gapnet" => Ok(ModelKind::GapUnet3d),
            "phase-unet" | "phase_unet" | "phasenet" => Ok(ModelKind::PhaseUnet),
            other => Err(Error::arg(
                "model",
                "kind",
                format!("unknown model `{other}` (known: unet, dilated-unet, msd, patch-unet3d, gap-unet3d, phase-unet)"),
            )),
        }
    }
}

/// Architecture settings. UNets use `width` (channels of the first block, doubled per block)
/// and `depth` (number of encoder blocks); MSD-Net uses `width` (channels per layer), `depth`
/// (layers) and `max_dilation`; the patch model is fixed (only `dims = 3`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Architecture family.
    pub kind: ModelKind,
    /// Spatial dimensions, 2 or 3.
    pub dims: usize,
    /// Base width (see the type's doc).
    pub width: usize,
    /// Number of blocks / layers.
    pub depth: usize,
    /// Largest dilation of MSD-Net.
    pub max_dilation: usize,
    /// Negative slope of the LeakyReLU activations.
    pub slope: f32,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig::thesis(ModelKind::Unet)
    }
}

impl ModelConfig {
    /// The thesis-scale configuration of a model kind: UNet / dilated UNet 2-D with 5 blocks of
    /// 48..768 channels; MSD-Net 2-D width 2, depth 15, dilations 1..25 (4,112 parameters);
    /// the 3-D patch model (2,771,309 parameters).
    pub fn thesis(kind: ModelKind) -> ModelConfig {
        let (dims, width, depth) = match kind {
            ModelKind::Unet | ModelKind::DilatedUnet => (2, 48, 5),
            ModelKind::Msd => (2, 2, 15),
            ModelKind::PatchUnet3d => (3, 8, 4),
            ModelKind::GapUnet3d => (3, 16, 3),
            ModelKind::PhaseUnet => (3, 8, 4),
        };
        ModelConfig {
            kind,
            dims,
            width,
            depth,
            max_dilation: 25,
            slope: 0.2,
        }
    }

    /// Checks the settings; errors name the bad one.
    pub fn validate(&self) -> Result<()> {
        const OP: &str = "model";
        if self.dims != 2 && self.dims != 3 {
            return Err(Error::arg(
                OP,
                "dims",
                format!("must be 2 or 3, got {}", self.dims),
            ));
        }
        if matches!(self.kind, ModelKind::PatchUnet3d | ModelKind::GapUnet3d) && self.dims != 3 {
            return Err(Error::arg(OP, "dims", format!("{} is 3-D only", self.kind)));
        }
        if self.width == 0 || self.width > 4096 {
            return Err(Error::arg(
                OP,
                "width",
                format!("must be in 1..=4096, got {}", self.width),
            ));
        }
        let max_depth = match self.kind {
            ModelKind::Unet | ModelKind::DilatedUnet => 8,
            ModelKind::GapUnet3d | ModelKind::PhaseUnet => 6,
            _ => 400,
        };
        if self.depth == 0 || self.depth > max_depth {
            return Err(Error::arg(
                OP,
                "depth",
                format!(
                    "must be in 1..={max_depth} for {}, got {}",
                    self.kind, self.depth
                ),
            ));
        }
        if self.kind == ModelKind::DilatedUnet && self.depth < 2 {
            return Err(Error::arg(
                OP,
                "depth",
                "the dilated UNet needs at least 2 blocks",
            ));
        }
        if self.max_dilation == 0 {
            return Err(Error::arg(OP, "max_dilation", "must be >= 1"));
        }
        if !self.slope.is_finite() {
            return Err(Error::arg(OP, "slope", "must be finite"));
        }
        self.check_size()
    }

    /// Spatial sizes must be multiples of this (2^depth for UNets, 32 for the patch model).
    pub fn size_multiple(&self) -> usize {
        match self.kind {
            ModelKind::Unet | ModelKind::DilatedUnet => 1 << self.depth,
            ModelKind::Msd => 1,
            ModelKind::PatchUnet3d => 16,
            ModelKind::GapUnet3d => gap_unet3d::GapUNet3d::size_multiple(self.depth),
            ModelKind::PhaseUnet => phase_unet::PhaseUNet::size_multiple(self.depth),
        }
    }

    /// The fixed input patch side of patch models (`None`: whole arrays).
    pub fn patch(&self) -> Option<usize> {
        (self.kind == ModelKind::PatchUnet3d).then_some(patch_unet3d::PATCH)
    }

    /// Serialises to JSON (model-file metadata).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses the JSON written by [`ModelConfig::to_json`].
    pub fn from_json(s: &str) -> Result<ModelConfig> {
        let c: ModelConfig = serde_json::from_str(s)
            .map_err(|e| Error::arg("model", "config", format!("bad model config JSON: {e}")))?;
        c.validate()?;
        Ok(c)
    }
}

/// Most parameters a model may have (400 MB of f32 weights; the thesis UNet has 19.4 million
/// in 2-D, 58.3 million in 3-D).
pub const MAX_PARAMETERS: u64 = 100_000_000;

impl ModelConfig {
    /// Number of trainable parameters of the network this configuration builds, computed
    /// without building it (saturating: absurd configurations give huge numbers, never an
    /// overflow).
    pub fn parameter_count(&self) -> u64 {
        let k = 3u64.saturating_pow(self.dims as u32);
        let conv = |cin: u64, cout: u64, k: u64| cin.saturating_mul(cout).saturating_mul(k) + cout;
        let width = self.width as u64;
        match self.kind {
            ModelKind::Unet | ModelKind::DilatedUnet => {
                let ndil = if self.kind == ModelKind::DilatedUnet {
                    dilated_unet::DILATIONS.len()
                } else {
                    0
                };
                let (mut total, mut cin) = (0u64, 1u64);
                let mut skip = vec![];
                for i in 0..self.depth {
                    let w = width.saturating_mul(1u64 << i.min(62));
                    if i < ndil {
                        let n = dilated_unet::DILATIONS[i].len() as u64;
                        let each = (w / n).max(1);
                        total = total.saturating_add(conv(cin, each, k).saturating_mul(n));
                        cin = cin.saturating_add(each * n);
                    } else {
                        total = total.saturating_add(conv(cin, w, k));
                        cin = w;
                    }
                    skip.push(cin);
                }
                for i in (0..self.depth).rev() {
                    let w = width.saturating_mul(1u64 << i.min(62));
                    total = total.saturating_add(conv(cin.saturating_add(skip[i]), w, k));
                    cin = w;
                }
                total.saturating_add(conv(cin, 1, 1))
            }
            ModelKind::Msd => {
                let (mut total, mut cin) = (0u64, 1u64);
                for _ in 0..self.depth {
                    total = total.saturating_add(conv(cin, 1, k).saturating_mul(width));
                    cin = cin.saturating_add(width);
                }
                total.saturating_add(conv(cin, 1, 1))
            }
            ModelKind::PatchUnet3d => 2_771_309,
            ModelKind::GapUnet3d => {
                let ch = |l: usize| width.saturating_mul(1u64 << l.min(62));
                let mut total = 0u64;
                for l in 0..self.depth {
                    let cin = if l == 0 {
                        gap_unet3d::IN_CHANNELS as u64
                    } else {
                        ch(l - 1)
                    };
                    total = total
                        .saturating_add(conv(cin, ch(l), k))
                        .saturating_add(conv(ch(l), ch(l), k));
                }
                for l in (0..self.depth.saturating_sub(1)).rev() {
                    total = total
                        .saturating_add(conv(ch(l + 1).saturating_add(ch(l)), ch(l), k))
                        .saturating_add(conv(ch(l), ch(l), k));
                }
                total.saturating_add(conv(ch(0), 1, 1))
            }
            ModelKind::PhaseUnet => {
                phase_unet::PhaseUNet::parameter_count(self.dims, self.width, self.depth)
            }
        }
    }

    /// Refuses configurations whose weights exceed [`MAX_PARAMETERS`] or the available memory,
    /// before any network is built; the error says what was asked and what is allowed.
    pub fn check_size(&self) -> Result<()> {
        let n = self.parameter_count();
        if n > MAX_PARAMETERS {
            return Err(Error::arg(
                "model",
                "width/depth",
                format!(
                    "{} width {} depth {} ({}-D) has {n} parameters ({} of weights); at most {MAX_PARAMETERS} are allowed",
                    self.kind,
                    self.width,
                    self.depth,
                    self.dims,
                    crate::data::io::human_bytes(n.saturating_mul(4))
                ),
            ));
        }
        if let Some(avail) = crate::data::io::available_memory() {
            let need = n.saturating_mul(4);
            if need > avail {
                return Err(Error::arg(
                    "model",
                    "width/depth",
                    format!(
                        "{} width {} depth {} needs {} of weights but only {} of memory is available",
                        self.kind,
                        self.width,
                        self.depth,
                        crate::data::io::human_bytes(need),
                        crate::data::io::human_bytes(avail)
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Builds the model described by `cfg` on `device`, weights drawn from `seed`.
pub fn build(cfg: &ModelConfig, device: &Device, seed: u64) -> Result<Box<dyn Module>> {
    cfg.validate()?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Ok(match cfg.kind {
        ModelKind::Unet => Box::new(unet::UNet::new(cfg, &mut rng, device)?),
        ModelKind::DilatedUnet => Box::new(dilated_unet::new(cfg, &mut rng, device)?),
        ModelKind::Msd => Box::new(msdnet::MsdNet::new(cfg, &mut rng, device)?),
        ModelKind::PatchUnet3d => {
            Box::new(patch_unet3d::PatchUNet3d::new(cfg.slope, &mut rng, device)?)
        }
        ModelKind::GapUnet3d => Box::new(gap_unet3d::GapUNet3d::new(
            cfg.width, cfg.depth, cfg.slope, &mut rng, device,
        )?),
        ModelKind::PhaseUnet => Box::new(phase_unet::PhaseUNet::new(
            cfg.dims, cfg.width, cfg.depth, cfg.slope, &mut rng, device,
        )?),
    })
}

/// A "same"-padded convolution with cubic kernel `k` and dilation `d` in `dims` dimensions,
/// He-uniform weights (LeakyReLU layers).
pub(crate) fn conv(
    dims: usize,
    cin: usize,
    cout: usize,
    k: usize,
    d: usize,
    rng: &mut ChaCha8Rng,
    device: &Device,
) -> Result<Conv> {
    Conv::new(
        cin,
        cout,
        &vec![k; dims],
        &vec![d; dims],
        Init::HeUniform,
        rng,
        device,
    )
}

/// The encoder-decoder pass of the compact U-Nets (`gap-unet3d`, `phase-unet`): each level is
/// two convolutions with LeakyReLU, max-pool 2 between levels on the way down, nearest
/// upsampling 2 and skip concatenation on the way up. Returns the top level's features.
pub(crate) fn unet_levels(
    op: &'static str,
    down: &[[Conv; 2]],
    up: &[[Conv; 2]],
    slope: f32,
    x: &Tensor,
) -> Result<Tensor> {
    let block = |convs: &[Conv; 2], x: &Tensor| -> Result<Tensor> {
        convs[1].forward_leaky_relu(&convs[0].forward_leaky_relu(x, slope)?, slope)
    };
    let mut skips = vec![];
    let mut h = x.clone();
    for (l, convs) in down.iter().enumerate() {
        if l > 0 {
            h = h.max_pool(&[2])?;
        }
        h = block(convs, &h)?;
        skips.push(h.clone());
    }
    skips.pop();
    for convs in up {
        let skip = skips
            .pop()
            .ok_or_else(|| Error::shape(op, "decoder has more levels than the encoder"))?;
        h = block(convs, &crate::concat(&[&h.upsample(&[2])?, &skip], 1)?)?;
    }
    Ok(h)
}

/// Parameters of [`unet_levels`]' convolutions, named `down{l}.a/b` and `up{l}.a/b`.
pub(crate) fn unet_level_parameters(down: &[[Conv; 2]], up: &[[Conv; 2]]) -> Vec<crate::nn::Param> {
    let mut p = vec![];
    for (l, c) in down.iter().enumerate() {
        p.extend(crate::nn::prefixed(
            &format!("down{l}.a"),
            c[0].parameters(),
        ));
        p.extend(crate::nn::prefixed(
            &format!("down{l}.b"),
            c[1].parameters(),
        ));
    }
    for (l, c) in up.iter().enumerate() {
        p.extend(crate::nn::prefixed(&format!("up{l}.a"), c[0].parameters()));
        p.extend(crate::nn::prefixed(&format!("up{l}.b"), c[1].parameters()));
    }
    p
}

/// Output convolution (Glorot-uniform, the Keras default).
pub(crate) fn head(dims: usize, cin: usize, rng: &mut ChaCha8Rng, device: &Device) -> Result<Conv> {
    Conv::new(
        cin,
        1,
        &vec![1; dims],
        &vec![1; dims],
        Init::GlorotUniform,
        rng,
        device,
    )
}

/// Checks that `x` is `[N, 1, ...]` with `dims` spatial axes, each a multiple of `multiple`.
pub(crate) fn check_input(
    op: &'static str,
    x: &Tensor,
    dims: usize,
    multiple: usize,
) -> Result<()> {
    let s = x.shape();
    if s.len() != dims + 2 || s[1] != 1 {
        return Err(Error::shape(
            op,
            format!("input {s:?} must be [N, 1] + {dims} spatial axes"),
        ));
    }
    if s[2..].iter().any(|&n| n == 0 || n % multiple != 0) {
        return Err(Error::shape(
            op,
            format!(
                "spatial sizes {:?} must be positive multiples of {multiple}",
                &s[2..]
            ),
        ));
    }
    Ok(())
}

/// Metadata key of the model configuration JSON in model files.
pub const META_MODEL: &str = "bragg.model";
/// Metadata key of the preprocessing description.
pub const META_PREPROCESS: &str = "bragg.preprocess";

/// A model rebuilt from a file.
pub struct LoadedModel {
    /// Architecture.
    pub config: ModelConfig,
    /// The network with the file's weights.
    pub model: Box<dyn Module>,
    /// Every metadata entry of the file.
    pub metadata: std::collections::HashMap<String, String>,
}

/// Saves a model's weights with its configuration and preprocessing in the metadata (plus
/// `extra` entries), atomically.
pub fn save_model(
    path: &std::path::Path,
    model: &dyn Module,
    config: &ModelConfig,
    extra: &[(String, String)],
) -> Result<()> {
    let mut meta = std::collections::HashMap::new();
    meta.insert(META_MODEL.to_string(), config.to_json());
    meta.insert(
        META_PREPROCESS.to_string(),
        crate::train::data::PREPROCESS.to_string(),
    );
    for (k, v) in extra {
        meta.insert(k.clone(), v.clone());
    }
    crate::nn::io::save_params(path, &model.parameters(), &meta)
}

/// Loads a model file written by [`save_model`] (or a training checkpoint): rebuilds the
/// architecture from the metadata and copies the weights.
pub fn load_model(path: &std::path::Path, device: &Device) -> Result<LoadedModel> {
    model_from_checkpoint(path, crate::nn::io::load(path, device)?, device)
}

/// Rebuilds a model from a loaded checkpoint (`path` names it in errors).
pub fn model_from_checkpoint(
    path: &std::path::Path,
    ckpt: crate::nn::io::Checkpoint,
    device: &Device,
) -> Result<LoadedModel> {
    let json = ckpt.metadata.get(META_MODEL).ok_or_else(|| {
        Error::data(
            path,
            format!("no `{META_MODEL}` metadata: not a bragg model file"),
        )
    })?;
    let config = ModelConfig::from_json(json).map_err(|e| Error::data(path, e.to_string()))?;
    let held: u64 = ckpt
        .tensors
        .iter()
        .filter(|(k, _)| !k.starts_with("adam."))
        .map(|(_, t)| t.shape().iter().product::<usize>() as u64)
        .sum();
    if held < config.parameter_count() / 2 {
        return Err(Error::data(
            path,
            format!(
                "the metadata describes a {} of {} parameters but the file holds only {held} values",
                config.kind,
                config.parameter_count()
            ),
        ));
    }
    let model = build(&config, device, 0)?;
    crate::nn::io::load_into(path, &ckpt, &model.parameters())?;
    Ok(LoadedModel {
        config,
        model,
        metadata: ckpt.metadata,
    })
}
