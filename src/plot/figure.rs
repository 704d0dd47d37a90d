//! Figures: a title over a grid of image panels. A panel draws a 2-D array with a colour map
//! over a physical extent (equal scales on both axes), a frame with ticks and tick labels, axis
//! labels, a title, and a colour bar with its own ticks and label.

use super::canvas::{Align, Canvas, INK};
use super::colormap::Colormap;
use super::font::{text_height, text_width};
use crate::{Error, Result};
use ndarray::Array2;
use std::path::Path;

/// Font scale of tick labels, axis labels and panel titles.
const SMALL: u32 = 2;
/// Font scale of the figure title.
const LARGE: u32 = 3;
/// Length of tick marks in pixels.
const TICK_LEN: i64 = 5;
/// Width of a colour bar in pixels.
const BAR_W: u32 = 18;
/// Smallest figure width in pixels.
pub const MIN_WIDTH: u32 = 512;
const GREY: [u8; 3] = [90, 90, 90];

/// A labelled position on an axis or colour bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    /// Position in data units.
    pub value: f64,
    /// Label drawn next to it.
    pub label: String,
}

/// Formats `n * 10^e` (a tick value) without floating-point noise.
fn format_scaled(n: i64, e: i32) -> String {
    if n == 0 {
        return "0".into();
    }
    if (0..6).contains(&e) {
        let v = n as f64 * 10f64.powi(e);
        if v.abs() < 1e6 {
            return format!("{}", v as i64);
        }
    }
    if (-3..0).contains(&e) {
        return format!("{:.*}", (-e) as usize, n as f64 * 10f64.powi(e));
    }
    // Scientific: mantissa digits of n, exponent adjusted.
    let digits = n.unsigned_abs().to_string();
    let exp = e + digits.len() as i32 - 1;
    let rest = digits[1..].trim_end_matches('0');
    let sign = if n < 0 { "-" } else { "" };
    if rest.is_empty() {
        format!("{sign}{}e{exp}", &digits[..1])
    } else {
        format!("{sign}{}.{rest}e{exp}", &digits[..1])
    }
}

/// About `target` evenly spaced ticks at round values (1, 2 or 5 times a power of ten) inside
/// `lo..=hi` (either order); none for a non-finite or empty range.
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<Tick> {
    let (lo, hi) = (lo.min(hi), lo.max(hi));
    let span = hi - lo;
    if !span.is_finite() || span <= 0.0 || target == 0 {
        return vec![];
    }
    let raw = span / target as f64;
    let mut e = raw.log10().floor() as i32;
    let m = raw / 10f64.powi(e);
    let step_m: i64 = if m <= 1.0 {
        1
    } else if m <= 2.0 {
        2
    } else if m <= 5.0 {
        5
    } else {
        e += 1;
        1
    };
    let step = step_m as f64 * 10f64.powi(e);
    let first = (lo / step - 1e-9).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (first..=last)
        .map(|i| Tick {
            value: i as f64 * step,
            label: format_scaled(i * step_m, e),
        })
        .collect()
}

/// One image panel.
#[derive(Debug, Clone)]
pub struct Panel {
    /// Title drawn above the image.
    pub title: String,
    /// The values, `[rows, columns]`; row 0 is drawn at the top; NaN is drawn grey.
    pub data: Array2<f32>,
    /// Coordinates of the outer edges: `[left, right, top, bottom]` in axis units.
    pub extent: [f64; 4],
    /// Label of the horizontal axis (with its unit), empty for none.
    pub x_label: String,
    /// Label of the vertical axis, empty for none.
    pub y_label: String,
    /// Colour map.
    pub map: Colormap,
    /// Values mapped to the two ends of the colour map.
    pub range: (f32, f32),
    /// Label of the colour bar (quantity and unit); with `bar` false no bar is drawn.
    pub bar_label: String,
    /// Whether to draw the colour bar.
    pub bar: bool,
    /// Colour-bar ticks; `None` for round values chosen automatically.
    pub bar_ticks: Option<Vec<Tick>>,
    /// Whether to draw axis ticks and tick labels.
    pub axes: bool,
}

impl Panel {
    /// A panel of `data` with pixel axes (`0..columns`, `0..rows`, unit px), the colour range
    /// from the finite data, a colour bar and no labels.
    pub fn new(title: impl Into<String>, data: Array2<f32>, map: Colormap) -> Panel {
        let (h, w) = data.dim();
        let range = finite_range(data.iter().copied());
        Panel {
            title: title.into(),
            data,
            extent: [0.0, w as f64, 0.0, h as f64],
            x_label: "px".into(),
            y_label: "px".into(),
            map,
            range,
            bar_label: String::new(),
            bar: true,
            bar_ticks: None,
            axes: true,
        }
    }

    /// Sets the range of the colour map.
    pub fn range(mut self, lo: f32, hi: f32) -> Panel {
        self.range = (lo, hi);
        self
    }

    /// Sets the axis extent and labels.
    pub fn axes(mut self, extent: [f64; 4], x_label: &str, y_label: &str) -> Panel {
        self.extent = extent;
        self.x_label = x_label.into();
        self.y_label = y_label.into();
        self
    }

    /// Sets the colour-bar label.
    pub fn bar_label(mut self, label: &str) -> Panel {
        self.bar_label = label.into();
        self
    }

    /// Uses the given colour-bar ticks.
    pub fn bar_ticks(mut self, ticks: Vec<Tick>) -> Panel {
        self.bar_ticks = Some(ticks);
        self
    }

    /// Draws no axis ticks, tick labels or axis labels (a bare framed image).
    pub fn no_axes(mut self) -> Panel {
        self.axes = false;
        self.x_label.clear();
        self.y_label.clear();
        self
    }

    /// Draws no colour bar.
    pub fn no_bar(mut self) -> Panel {
        self.bar = false;
        self
    }

    /// Ticks -pi, -pi/2, 0, pi/2, pi for phase bars.
    pub fn phase_ticks() -> Vec<Tick> {
        let pi = std::f64::consts::PI;
        [
            (-pi, "-π"),
            (-pi / 2.0, "-π/2"),
            (0.0, "0"),
            (pi / 2.0, "π/2"),
            (pi, "π"),
        ]
        .into_iter()
        .map(|(value, l)| Tick {
            value,
            label: l.into(),
        })
        .collect()
    }

    fn bar_tick_list(&self) -> Vec<Tick> {
        let (lo, hi) = (self.range.0 as f64, self.range.1 as f64);
        let ticks = match &self.bar_ticks {
            Some(t) => t.clone(),
            None => nice_ticks(lo, hi, 5),
        };
        let (a, b) = (lo.min(hi), lo.max(hi));
        let eps = (b - a).abs() * 1e-6;
        ticks
            .into_iter()
            .filter(|t| t.value >= a - eps && t.value <= b + eps)
            .collect()
    }
}

/// The (min, max) of the finite values, (0, 1) when there are none.
pub fn finite_range(values: impl Iterator<Item = f32>) -> (f32, f32) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if lo.is_finite() {
        (lo, hi)
    } else {
        (0.0, 1.0)
    }
}

/// A figure: a title and panels filled into a grid row by row.
#[derive(Debug, Clone)]
pub struct Figure {
    /// Title over the whole figure.
    pub title: String,
    /// Number of panel columns.
    pub columns: usize,
    /// The panels, row by row.
    pub panels: Vec<Panel>,
    /// Size in pixels of the longer side of each panel's image.
    pub panel_size: u32,
}

/// Pixel layout of one panel cell (shared by all cells of a figure).
struct Cell {
    w: u32,
    h: u32,
    /// Left edge of the image box inside the cell.
    img_x: u32,
    /// Top edge of the image box inside the cell.
    img_y: u32,
}

impl Figure {
    /// An empty figure with `columns` panels per row and 220-px panels.
    pub fn new(title: impl Into<String>, columns: usize) -> Figure {
        Figure {
            title: title.into(),
            columns: columns.max(1),
            panels: vec![],
            panel_size: 220,
        }
    }

    /// Adds a panel.
    pub fn push(&mut self, p: Panel) {
        self.panels.push(p);
    }

    /// The layout of a cell holding any of `panels` (one column of the grid).
    fn cell(&self, panels: &[&Panel]) -> Cell {
        let th = text_height(SMALL);
        let y_ticks_w = panels
            .iter()
            .filter(|p| p.axes)
            .flat_map(|p| nice_ticks(p.extent[2], p.extent[3], 4))
            .map(|t| text_width(&t.label, SMALL))
            .max()
            .unwrap_or(0);
        let any_y_label = panels.iter().any(|p| !p.y_label.is_empty());
        let any_axes = panels.iter().any(|p| p.axes);
        let left = 10
            + if any_y_label { th + 8 } else { 0 }
            + if any_axes {
                y_ticks_w + 6 + TICK_LEN as u32
            } else {
                0
            };
        let bar_ticks_w = panels
            .iter()
            .filter(|p| p.bar)
            .flat_map(|p| p.bar_tick_list())
            .map(|t| text_width(&t.label, SMALL))
            .max()
            .unwrap_or(0);
        let any_bar = panels.iter().any(|p| p.bar);
        let any_bar_label = panels.iter().any(|p| p.bar && !p.bar_label.is_empty());
        let right = if any_bar {
            14 + BAR_W + TICK_LEN as u32 + 4 + bar_ticks_w + if any_bar_label { 8 + th } else { 0 }
        } else {
            0
        } + 14;
        let title_w = panels
            .iter()
            .map(|p| text_width(&p.title, SMALL))
            .max()
            .unwrap_or(0);
        let body = left + self.panel_size + right;
        let w = body.max(title_w + 20);
        let top = 8 + th + 8;
        let any_x_label = panels.iter().any(|p| !p.x_label.is_empty());
        let bottom = if any_axes {
            TICK_LEN as u32 + 4 + th
        } else {
            0
        } + if any_x_label { 6 + th } else { 0 }
            + 12;
        Cell {
            w,
            h: top + self.panel_size + bottom,
            img_x: left + (w - body) / 2,
            img_y: top,
        }
    }

    /// Draws the figure.
    pub fn render(&self) -> Result<Canvas> {
        if self.panels.is_empty() {
            return Err(Error::arg("figure", "panels", "nothing to draw"));
        }
        for p in &self.panels {
            let (h, w) = p.data.dim();
            let [l, r, t, b] = p.extent;
            if h == 0 || w == 0 {
                return Err(Error::shape(
                    "figure",
                    format!("panel `{}` has an empty image {h}x{w}", p.title),
                ));
            }
            if !p.extent.iter().all(|v| v.is_finite()) || l == r || t == b {
                return Err(Error::arg(
                    "figure",
                    "extent",
                    format!(
                        "panel `{}`: extent {:?} is empty or not finite",
                        p.title, p.extent
                    ),
                ));
            }
        }
        let cols = self.columns.min(self.panels.len());
        let rows = self.panels.len().div_ceil(cols);
        // Each column is as wide as its own panels need; all rows are equally tall.
        let cells: Vec<Cell> = (0..cols)
            .map(|c| {
                let column: Vec<&Panel> = self.panels.iter().skip(c).step_by(cols).collect();
                self.cell(&column)
            })
            .collect();
        let cell_h = cells.iter().map(|c| c.h).max().unwrap_or(0);
        let title_h = if self.title.is_empty() {
            6
        } else {
            text_height(LARGE) + 20
        };
        let grid_w: u32 = cells.iter().map(|c| c.w).sum();
        let width = grid_w
            .max(MIN_WIDTH)
            .max(text_width(&self.title, LARGE) + 24);
        let height = title_h + cell_h * rows as u32;
        let mut c = Canvas::new(width, height);
        c.text(width as i64 / 2, 12, &self.title, LARGE, Align::Centre, INK);
        let x_off = (width - grid_w) / 2;
        for (k, p) in self.panels.iter().enumerate() {
            let (r, col) = (k / cols, k % cols);
            let x0 = (x_off + cells[..col].iter().map(|c| c.w).sum::<u32>()) as i64;
            let y0 = (title_h + r as u32 * cell_h) as i64;
            self.draw_panel(&mut c, p, x0, y0, &cells[col]);
        }
        Ok(c)
    }

    fn draw_panel(&self, c: &mut Canvas, p: &Panel, x0: i64, y0: i64, cell: &Cell) {
        let th = text_height(SMALL) as i64;
        let (rows, cols) = p.data.dim();
        let [left, right, top, bottom] = p.extent;
        let (ew, eh) = ((right - left).abs(), (bottom - top).abs());
        let s = self.panel_size as f64 / ew.max(eh);
        let iw = ((ew * s).round() as u32).max(1);
        let ih = ((eh * s).round() as u32).max(1);
        // Centre the image in its square box.
        let ix = x0 + cell.img_x as i64 + (self.panel_size - iw) as i64 / 2;
        let iy = y0 + cell.img_y as i64 + (self.panel_size - ih) as i64 / 2;
        // The title centred over the image, kept inside the cell.
        let tw = text_width(&p.title, SMALL) as i64;
        let lo = x0 + tw / 2 + 4;
        let hi = (x0 + cell.w as i64 - tw / 2 - 4).max(lo);
        c.text(
            (ix + iw as i64 / 2).clamp(lo, hi),
            iy - th - 8,
            &p.title,
            SMALL,
            Align::Centre,
            INK,
        );
        let (lo, hi) = p.range;
        for py in 0..ih {
            let row = ((py as u64 * rows as u64) / ih as u64) as usize;
            for px in 0..iw {
                let col = ((px as u64 * cols as u64) / iw as u64) as usize;
                let v = p.data[[row.min(rows - 1), col.min(cols - 1)]];
                c.put(ix + px as i64, iy + py as i64, p.map.map(v, lo, hi));
            }
        }
        c.rect(ix - 1, iy - 1, iw + 2, ih + 2, INK);
        let ticks = |a: f64, b: f64| if p.axes { nice_ticks(a, b, 4) } else { vec![] };
        // Horizontal axis.
        for t in ticks(left, right) {
            let x = ix + ((t.value - left) / (right - left) * iw as f64).round() as i64;
            for d in 0..TICK_LEN {
                c.put(x, iy + ih as i64 + 1 + d, INK);
            }
            c.text(
                x,
                iy + ih as i64 + 2 + TICK_LEN,
                &t.label,
                SMALL,
                Align::Centre,
                INK,
            );
        }
        if !p.x_label.is_empty() {
            c.text(
                ix + iw as i64 / 2,
                iy + ih as i64 + 8 + TICK_LEN + th,
                &p.x_label,
                SMALL,
                Align::Centre,
                GREY,
            );
        }
        // Vertical axis.
        let mut label_left = ix;
        for t in ticks(top, bottom) {
            let y = iy + ((t.value - top) / (bottom - top) * ih as f64).round() as i64;
            for d in 0..TICK_LEN {
                c.put(ix - 2 - d, y, INK);
            }
            let tx = ix - 6 - TICK_LEN;
            c.text(tx, y - th * 7 / 18, &t.label, SMALL, Align::Right, INK);
            label_left = label_left.min(tx - text_width(&t.label, SMALL) as i64);
        }
        if !p.y_label.is_empty() {
            c.text_up(
                label_left - 8 - th,
                iy + ih as i64 / 2,
                &p.y_label,
                SMALL,
                GREY,
            );
        }
        if !p.bar {
            return;
        }
        // Colour bar, as tall as the image, low values at the bottom.
        let bx = ix + iw as i64 + 14;
        for py in 0..ih {
            let t = 1.0 - (py as f32 + 0.5) / ih as f32;
            let col = p.map.colour(t);
            for px in 0..BAR_W {
                c.put(bx + px as i64, iy + py as i64, col);
            }
        }
        c.rect(bx - 1, iy - 1, BAR_W + 2, ih + 2, INK);
        let (a, b) = (lo as f64, hi as f64);
        let mut right_edge = bx + BAR_W as i64 + 1;
        for t in p.bar_tick_list() {
            let f = if b != a { (t.value - a) / (b - a) } else { 0.5 };
            let y = iy + ((1.0 - f) * (ih as f64 - 1.0)).round() as i64;
            for d in 0..TICK_LEN {
                c.put(bx + BAR_W as i64 + 1 + d, y, INK);
            }
            let tx = bx + BAR_W as i64 + 4 + TICK_LEN;
            c.text(tx, y - th * 7 / 18, &t.label, SMALL, Align::Left, INK);
            right_edge = right_edge.max(tx + text_width(&t.label, SMALL) as i64);
        }
        if !p.bar_label.is_empty() {
            c.text_up(
                right_edge + 8,
                iy + ih as i64 / 2,
                &p.bar_label,
                SMALL,
                GREY,
            );
        }
    }

    /// Draws the figure and writes it as a PNG at `path` (creating the folder).
    pub fn save(&self, path: &Path) -> Result<()> {
        self.render()?.save(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_inside() {
        let labels = |t: Vec<Tick>| t.into_iter().map(|t| t.label).collect::<Vec<_>>();
        assert_eq!(
            labels(nice_ticks(0.0, 1.0, 5)),
            ["0", "0.2", "0.4", "0.6", "0.8", "1.0"]
        );
        assert_eq!(labels(nice_ticks(-160.0, 155.0, 4)), ["-100", "0", "100"]);
        assert_eq!(labels(nice_ticks(-3e-4, 3e-4, 4)), ["-2e-4", "0", "2e-4"]);
        assert_eq!(
            labels(nice_ticks(-0.003, 0.003, 4)),
            ["-0.002", "0", "0.002"]
        );
        assert_eq!(labels(nice_ticks(0.0, 2.5e-5, 2)), ["0", "2e-5"]);
        assert!(nice_ticks(1.0, 1.0, 4).is_empty());
        assert!(nice_ticks(0.0, f64::NAN, 4).is_empty());
        assert_eq!(format_scaled(25, -5), "2.5e-4");
        assert_eq!(format_scaled(-3, 7), "-3e7");
    }

    #[test]
    fn figure_lays_out_panels_and_writes_a_png() {
        let data = Array2::from_shape_fn((32, 48), |(y, x)| (x as f32 - y as f32).sin());
        let mut fig = Figure::new("test figure φ", 2);
        fig.push(
            Panel::new("sequential", data.clone(), Colormap::Sequential)
                .axes([-24.0, 24.0, -16.0, 16.0], "x (nm)", "y (nm)")
                .bar_label("a.u."),
        );
        fig.push(
            Panel::new("cyclic", data.clone(), Colormap::Cyclic)
                .range(-std::f32::consts::PI, std::f32::consts::PI)
                .bar_ticks(Panel::phase_ticks())
                .bar_label("φ (rad)"),
        );
        fig.push(Panel::new("diverging", data, Colormap::Diverging).range(-1.0, 1.0));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/fig.png");
        fig.save(&path).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        let col0: Vec<&Panel> = vec![&fig.panels[0], &fig.panels[2]];
        let (c0, c1) = (fig.cell(&col0), fig.cell(&[&fig.panels[1]]));
        assert!(img.width() >= MIN_WIDTH);
        assert_eq!(img.width(), (c0.w + c1.w).max(MIN_WIDTH));
        assert_eq!(img.height(), text_height(LARGE) + 20 + 2 * c0.h.max(c1.h));
        // Non-trivial: many distinct colours and plenty of ink.
        let distinct: std::collections::HashSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
        assert!(distinct.len() > 100, "{} colours", distinct.len());
        let ink = img.pixels().filter(|p| p.0 == INK).count();
        assert!(ink > 2000, "{ink} ink pixels");
        assert!(Figure::new("empty", 1).render().is_err());
        let mut bad = Figure::new("bad", 1);
        bad.push(
            Panel::new("flat", Array2::zeros((4, 4)), Colormap::Sequential).axes(
                [0.0, 0.0, 0.0, 1.0],
                "",
                "",
            ),
        );
        assert!(bad.render().is_err());
    }
}
