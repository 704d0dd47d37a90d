//! What `--resume` checks: the checkpoint records the training settings that shape the run
//! (seed, batch, loss, learning rate) and a fingerprint of the training and validation data;
//! resuming with any of them changed is refused with a message listing every change, since
//! the result would silently be neither the old run nor a new one.

use super::{Prepared, TrainConfig};
use crate::loss::LossSpec;
use crate::{Error, Result};
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::Path;

/// Metadata key of the training-data fingerprint.
pub const META_DATA: &str = "bragg.data";
/// Metadata key of the validation-data fingerprint.
pub const META_VAL: &str = "bragg.val";
/// Metadata key of the training settings (JSON of [`TrainConfig`]).
pub const META_TRAIN: &str = "bragg.train";

fn hash_f32(a: &[f32]) -> u64 {
    const P: u64 = 0x0000_0100_0000_01b3;
    let parts: Vec<u64> = a
        .par_chunks(1 << 20)
        .map(|c| {
            c.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, v| {
                (h ^ v.to_bits() as u64).wrapping_mul(P)
            })
        })
        .collect();
    parts
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &p| (h ^ p).wrapping_mul(P))
}

/// A short description of a prepared dataset that changes when its content does.
pub fn fingerprint(d: &Prepared) -> String {
    let mut h = 0u64;
    for a in [&d.x, &d.y, &d.m] {
        let part = match a.as_slice() {
            Some(s) => hash_f32(s),
            None => hash_f32(&a.iter().copied().collect::<Vec<_>>()),
        };
        h = (h ^ part).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!(
        "{} patterns of {:?}, content #{h:016x}",
        d.len(),
        d.pattern_shape()
    )
}

/// The metadata entries that record the data of a run.
pub fn data_metadata(train: &Prepared, val: Option<&Prepared>) -> Vec<(String, String)> {
    vec![
        (META_DATA.to_string(), fingerprint(train)),
        (
            META_VAL.to_string(),
            val.map_or_else(|| "none".to_string(), fingerprint),
        ),
    ]
}

fn loss_name(s: &str) -> String {
    s.parse::<LossSpec>()
        .map(|l| l.to_string())
        .unwrap_or_else(|_| s.to_string())
}

/// Refuses to resume from a checkpoint written with other settings or data.
pub fn check(
    ckpt: &Path,
    meta: &HashMap<String, String>,
    cfg: &TrainConfig,
    data: &[(String, String)],
) -> Result<()> {
    let mut changed: Vec<String> = vec![];
    if let Some(saved) = meta
        .get(META_TRAIN)
        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
    {
        let num = |k: &str| saved.get(k).and_then(|v| v.as_f64());
        if let Some(seed) = saved.get("seed").and_then(|v| v.as_u64()) {
            if seed != cfg.seed {
                changed.push(format!("seed {seed} -> {}", cfg.seed));
            }
        }
        if let Some(batch) = saved.get("batch").and_then(|v| v.as_u64()) {
            if batch != cfg.batch as u64 {
                changed.push(format!("batch {batch} -> {}", cfg.batch));
            }
        }
        if let Some(lr) = num("lr") {
            if (lr as f32) != cfg.lr {
                changed.push(format!("lr {lr} -> {}", cfg.lr));
            }
        }
        if let Some(loss) = saved.get("loss").and_then(|v| v.as_str()) {
            if loss_name(loss) != loss_name(&cfg.loss) {
                changed.push(format!("loss {loss} -> {}", cfg.loss));
            }
        }
    }
    for (key, now) in data {
        let what = if key == META_DATA {
            "training data"
        } else {
            "validation data"
        };
        match meta.get(key) {
            Some(saved) if saved != now => changed.push(format!("{what} ({saved}) -> ({now})")),
            Some(_) => {}
            None => eprintln!(
                "warning: {} records no {what} fingerprint (older checkpoint): cannot check that the data is unchanged",
                ckpt.display()
            ),
        }
    }
    if changed.is_empty() {
        return Ok(());
    }
    Err(Error::data(
        ckpt,
        format!(
            "--resume refused: the checkpoint was written with other settings: {} (resume with the original settings, or train afresh without --resume / with another --out)",
            changed.join("; ")
        ),
    ))
}
