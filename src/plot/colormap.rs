//! Colour maps: sequential (modulus, intensity), cyclic (phase in -pi..pi) and diverging
//! (strain, displacement: symmetric around 0). Values are positions `t` in [0, 1].

/// Colour of values outside the data (NaN: outside the support, masked).
pub const MISSING: [u8; 3] = [222, 222, 222];

/// A colour map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colormap {
    /// Dark blue-violet through red and orange to pale yellow, lightness rising throughout.
    Sequential,
    /// A smooth hue circle: the same colour at both ends, for angles.
    Cyclic,
    /// Blue through white (the middle) to red.
    Diverging,
}

/// Anchors of the sequential map at 0, 1/4, ..., 1.
const SEQUENTIAL: [[f32; 3]; 5] = [
    [14.0, 10.0, 40.0],
    [78.0, 32.0, 122.0],
    [178.0, 54.0, 104.0],
    [242.0, 128.0, 52.0],
    [251.0, 238.0, 166.0],
];

/// Anchors of the diverging map at 0, 1/4, 1/2, 3/4, 1.
const DIVERGING: [[f32; 3]; 5] = [
    [38.0, 62.0, 150.0],
    [138.0, 178.0, 222.0],
    [246.0, 246.0, 246.0],
    [238.0, 156.0, 134.0],
    [168.0, 24.0, 36.0],
];

fn interpolate(anchors: &[[f32; 3]], t: f32) -> [u8; 3] {
    let x = t * (anchors.len() - 1) as f32;
    let i = (x.floor() as usize).min(anchors.len() - 2);
    let f = x - i as f32;
    let mut c = [0u8; 3];
    for (k, ck) in c.iter_mut().enumerate() {
        *ck = (anchors[i][k] * (1.0 - f) + anchors[i + 1][k] * f)
            .round()
            .clamp(0.0, 255.0) as u8;
    }
    c
}

impl Colormap {
    /// Colour at position `t` (clamped to [0, 1]; NaN gives [`MISSING`]).
    pub fn colour(self, t: f32) -> [u8; 3] {
        if t.is_nan() {
            return MISSING;
        }
        let t = t.clamp(0.0, 1.0);
        match self {
            Colormap::Sequential => interpolate(&SEQUENTIAL, t),
            Colormap::Diverging => interpolate(&DIVERGING, t),
            Colormap::Cyclic => {
                let a = std::f32::consts::TAU * t;
                let third = std::f32::consts::TAU / 3.0;
                let ch = |shift: f32| ((0.52 + 0.40 * (a - shift).cos()) * 255.0).round() as u8;
                [ch(0.0), ch(third), ch(-third)]
            }
        }
    }

    /// Colour of `v` on the range `lo..hi` (a degenerate range maps everything to the middle).
    pub fn map(self, v: f32, lo: f32, hi: f32) -> [u8; 3] {
        if v.is_nan() {
            return MISSING;
        }
        let span = hi - lo;
        let t = if span.is_finite() && span.abs() > 0.0 {
            (v - lo) / span
        } else {
            0.5
        };
        self.colour(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lightness(c: [u8; 3]) -> f32 {
        0.3 * c[0] as f32 + 0.59 * c[1] as f32 + 0.11 * c[2] as f32
    }

    #[test]
    fn endpoints_and_shapes() {
        assert_eq!(Colormap::Sequential.colour(0.0), [14, 10, 40]);
        assert_eq!(Colormap::Sequential.colour(1.0), [251, 238, 166]);
        assert_eq!(Colormap::Sequential.colour(-3.0), [14, 10, 40]);
        assert_eq!(Colormap::Sequential.colour(7.0), [251, 238, 166]);
        // Sequential: lightness rises monotonically.
        let l: Vec<f32> = (0..=50)
            .map(|i| lightness(Colormap::Sequential.colour(i as f32 / 50.0)))
            .collect();
        assert!(l.windows(2).all(|w| w[1] >= w[0]), "{l:?}");
        // Cyclic: both ends equal.
        assert_eq!(Colormap::Cyclic.colour(0.0), Colormap::Cyclic.colour(1.0));
        assert_ne!(Colormap::Cyclic.colour(0.0), Colormap::Cyclic.colour(0.5));
        // Diverging: white in the middle, blue below, red above.
        assert_eq!(Colormap::Diverging.colour(0.5), [246, 246, 246]);
        let (lo, hi) = (
            Colormap::Diverging.colour(0.0),
            Colormap::Diverging.colour(1.0),
        );
        assert!(lo[2] > lo[0] && hi[0] > hi[2]);
        assert_eq!(Colormap::Diverging.map(0.0, -2.0, 2.0), [246, 246, 246]);
        assert_eq!(Colormap::Diverging.map(f32::NAN, -2.0, 2.0), MISSING);
        assert_eq!(
            Colormap::Sequential.map(1.0, 1.0, 1.0),
            Colormap::Sequential.colour(0.5)
        );
    }
}
