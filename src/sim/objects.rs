//! Convex objects: the convex hull of random points as a set of half-spaces, rasterised on a
//! grid (polygons in 2D, polyhedra in 3D).
//!
//! The hull is found by brute force: a (d-1)-simplex of the points is a facet when every other
//! point lies on one side of its hyperplane. With the ~20 points used here this is a few
//! thousand tests, far cheaper than rasterisation.

use crate::{Error, Result};
use ndarray::{ArrayD, IxDyn};
use rand::Rng;

/// A half-space `normal . x <= offset`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HalfSpace {
    /// Outward normal (unit length).
    pub normal: [f64; 3],
    /// Offset along the normal.
    pub offset: f64,
}

impl HalfSpace {
    /// Signed distance of `p` (positive outside).
    pub fn distance(&self, p: &[f64; 3]) -> f64 {
        self.normal[0] * p[0] + self.normal[1] * p[1] + self.normal[2] * p[2] - self.offset
    }
}

fn sub(a: &[f64; 3], b: &[f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn cross(a: &[f64; 3], b: &[f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

/// Facets of the convex hull of `points` (2D points have a zero third coordinate), as
/// half-spaces whose intersection is the hull. Errors when the points span less than `dim`
/// dimensions.
pub fn convex_hull(points: &[[f64; 3]], dim: usize) -> Result<Vec<HalfSpace>> {
    const OP: &str = "convex_hull";
    if dim != 2 && dim != 3 {
        return Err(Error::arg(OP, "dim", format!("must be 2 or 3, got {dim}")));
    }
    if points.len() < dim + 1 {
        return Err(Error::arg(
            OP,
            "points",
            format!("need at least {} points", dim + 1),
        ));
    }
    let scale = points
        .iter()
        .flat_map(|p| p.iter().map(|v| v.abs()))
        .fold(1.0f64, f64::max);
    let eps = 1e-9 * scale;
    let n = points.len();
    let mut facets = Vec::new();
    let mut consider = |normal: [f64; 3], anchor: &[f64; 3]| {
        let len = (normal[0] * normal[0] + normal[1] * normal[1] + normal[2] * normal[2]).sqrt();
        if len <= 1e-12 * scale * scale {
            return;
        }
        let normal = [normal[0] / len, normal[1] / len, normal[2] / len];
        let offset = normal[0] * anchor[0] + normal[1] * anchor[1] + normal[2] * anchor[2];
        let h = HalfSpace { normal, offset };
        let (mut above, mut below) = (false, false);
        for p in points {
            let d = h.distance(p);
            above |= d > eps;
            below |= d < -eps;
        }
        match (above, below) {
            (false, true) => facets.push(h),
            (true, false) => facets.push(HalfSpace {
                normal: [-normal[0], -normal[1], -normal[2]],
                offset: -offset,
            }),
            _ => {}
        }
    };
    if dim == 2 {
        for i in 0..n {
            for j in i + 1..n {
                let e = sub(&points[j], &points[i]);
                consider([-e[1], e[0], 0.0], &points[i]);
            }
        }
    } else {
        for i in 0..n {
            for j in i + 1..n {
                for k in j + 1..n {
                    let nrm = cross(&sub(&points[j], &points[i]), &sub(&points[k], &points[i]));
                    consider(nrm, &points[i]);
                }
            }
        }
    }
    if facets.len() < dim + 1 {
        return Err(Error::arg(
            OP,
            "points",
            "points are degenerate (no full-dimensional hull)",
        ));
    }
    Ok(facets)
}

/// Rasterises the intersection of `facets` on a grid of `shape` (voxel centres at integer
/// coordinates): 1 inside (boundary included), 0 outside.
pub fn rasterise(facets: &[HalfSpace], shape: &[usize]) -> ArrayD<f32> {
    ArrayD::from_shape_fn(IxDyn(shape), |idx| {
        let mut p = [0.0; 3];
        for (d, v) in p.iter_mut().enumerate().take(shape.len()) {
            *v = idx[d] as f64;
        }
        if facets.iter().all(|h| h.distance(&p) <= 1e-6) {
            1.0
        } else {
            0.0
        }
    })
}

/// A random convex support filling the box `extents` (2 or 3 axes): the hull of `npoints`
/// random points, including, for every axis, one lattice point on each face of the box so that
/// the support spans the whole box.
pub fn random_convex_support(
    extents: &[usize],
    npoints: usize,
    rng: &mut impl Rng,
) -> Result<ArrayD<f32>> {
    let dim = extents.len();
    if extents.iter().any(|&e| e < 2) {
        return Err(Error::arg(
            "random_convex_support",
            "extents",
            "each must be >= 2",
        ));
    }
    let mut points = Vec::with_capacity(npoints + 2 * dim);
    // Face points: lattice points in the middle half of the other axes.
    for axis in 0..dim {
        for face in [0.0, (extents[axis] - 1) as f64] {
            let mut p = [0.0; 3];
            for d in 0..dim {
                p[d] = if d == axis {
                    face
                } else {
                    let e = extents[d] as f64 - 1.0;
                    rng.random_range(0.25 * e..=0.75 * e).round()
                };
            }
            points.push(p);
        }
    }
    for _ in 0..npoints {
        let mut p = [0.0; 3];
        for d in 0..dim {
            p[d] = rng.random_range(0.0..=(extents[d] - 1) as f64);
        }
        points.push(p);
    }
    let facets = convex_hull(&points, dim)?;
    Ok(rasterise(&facets, extents))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn square_hull_has_four_facets_and_rasterises_to_the_square() {
        let pts: Vec<[f64; 3]> = [[0., 0.], [4., 0.], [0., 4.], [4., 4.], [2., 1.], [1., 3.]]
            .iter()
            .map(|p| [p[0], p[1], 0.0])
            .collect();
        let h = convex_hull(&pts, 2).unwrap();
        assert_eq!(h.len(), 4);
        let m = rasterise(&h, &[6, 6]);
        assert_eq!(m.sum(), 25.0);
        assert_eq!(m[[4, 4]], 1.0);
        assert_eq!(m[[5, 4]], 0.0);
    }

    #[test]
    fn cube_hull_contains_inner_points_only() {
        let mut pts = vec![];
        for c in 0..8 {
            pts.push([
                (c & 1) as f64 * 3.0,
                (c >> 1 & 1) as f64 * 3.0,
                (c >> 2) as f64 * 3.0,
            ]);
        }
        pts.push([1.0, 1.5, 2.0]);
        let h = convex_hull(&pts, 3).unwrap();
        let m = rasterise(&h, &[5, 5, 5]);
        assert_eq!(m.sum(), 64.0);
        // Tetrahedron: volume ~ 1/6 of the cube.
        let tet = [[0., 0., 0.], [9., 0., 0.], [0., 9., 0.], [0., 0., 9.]];
        let h = convex_hull(&tet, 3).unwrap();
        assert_eq!(h.len(), 4);
        let m = rasterise(&h, &[10, 10, 10]);
        assert_eq!(m.sum(), 220.0); // number of (i,j,k) >= 0 with i+j+k <= 9
    }

    #[test]
    fn degenerate_points_are_an_error() {
        let pts = [[0., 0., 0.], [1., 1., 0.], [2., 2., 0.]];
        assert!(convex_hull(&pts, 2).is_err());
    }

    #[test]
    fn random_support_spans_its_box() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for ext in [vec![20, 31], vec![9, 14, 11]] {
            let m = random_convex_support(&ext, 10, &mut rng).unwrap();
            for (axis, &e) in ext.iter().enumerate() {
                let occupied: Vec<bool> = m.lanes(ndarray::Axis(axis)).into_iter().fold(
                    vec![false; e],
                    |mut acc, lane| {
                        for (a, v) in acc.iter_mut().zip(lane.iter()) {
                            *a |= *v > 0.0;
                        }
                        acc
                    },
                );
                assert!(occupied[0] && occupied[e - 1], "axis {axis}");
            }
        }
    }
}
