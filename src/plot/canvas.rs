//! An RGB canvas with rectangles, lines and text in the [`super::font`] bitmap font.

use super::font::{glyph_or_fallback, text_width, ADVANCE, GLYPH_H, GLYPH_W};
use crate::Result;
use image::{Rgb, RgbImage};
use std::path::Path;

/// Black ink.
pub const INK: [u8; 3] = [20, 20, 20];
/// White paper.
pub const PAPER: [u8; 3] = [255, 255, 255];

/// Horizontal anchoring of text at a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// The text starts at x.
    Left,
    /// The text is centred on x.
    Centre,
    /// The text ends at x.
    Right,
}

/// A drawing surface; drawing outside it is clipped.
pub struct Canvas {
    img: RgbImage,
}

impl Canvas {
    /// A `width` x `height` canvas filled with white.
    pub fn new(width: u32, height: u32) -> Canvas {
        Canvas {
            img: RgbImage::from_pixel(width.max(1), height.max(1), Rgb(PAPER)),
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.img.width()
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.img.height()
    }

    /// Sets one pixel (ignored outside the canvas).
    pub fn put(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as u32) < self.img.width() && (y as u32) < self.img.height() {
            self.img.put_pixel(x as u32, y as u32, Rgb(c));
        }
    }

    /// The colour at a pixel (`None` outside).
    pub fn get(&self, x: u32, y: u32) -> Option<[u8; 3]> {
        (x < self.img.width() && y < self.img.height()).then(|| self.img.get_pixel(x, y).0)
    }

    /// Fills the rectangle of top-left `(x, y)` and size `w` x `h`.
    pub fn fill_rect(&mut self, x: i64, y: i64, w: u32, h: u32, c: [u8; 3]) {
        for yy in y..y + h as i64 {
            for xx in x..x + w as i64 {
                self.put(xx, yy, c);
            }
        }
    }

    /// Draws the 1-px outline of a rectangle.
    pub fn rect(&mut self, x: i64, y: i64, w: u32, h: u32, c: [u8; 3]) {
        let (w, h) = (w as i64, h as i64);
        for xx in x..x + w {
            self.put(xx, y, c);
            self.put(xx, y + h - 1, c);
        }
        for yy in y..y + h {
            self.put(x, yy, c);
            self.put(x + w - 1, yy, c);
        }
    }

    /// Draws `text` with its top at `y`, anchored at `x` by `align`, each font pixel a
    /// `scale` x `scale` block.
    pub fn text(&mut self, x: i64, y: i64, text: &str, scale: u32, align: Align, c: [u8; 3]) {
        let w = text_width(text, scale) as i64;
        let x0 = match align {
            Align::Left => x,
            Align::Centre => x - w / 2,
            Align::Right => x - w,
        };
        let s = scale as i64;
        for (k, ch) in text.chars().enumerate() {
            let g = glyph_or_fallback(ch);
            let gx = x0 + (k * ADVANCE) as i64 * s;
            for (r, bits) in g.iter().enumerate() {
                for col in 0..GLYPH_W {
                    if bits >> (GLYPH_W - 1 - col) & 1 == 1 {
                        self.fill_rect(gx + col as i64 * s, y + r as i64 * s, scale, scale, c);
                    }
                }
            }
        }
    }

    /// Draws `text` rotated a quarter turn anticlockwise (read bottom to top), its left edge
    /// (the glyphs' tops) at `x`, centred vertically on `y`.
    pub fn text_up(&mut self, x: i64, y: i64, text: &str, scale: u32, c: [u8; 3]) {
        let w = text_width(text, scale) as i64;
        let s = scale as i64;
        let bottom = y + w / 2;
        for (k, ch) in text.chars().enumerate() {
            let g = glyph_or_fallback(ch);
            let along = (k * ADVANCE) as i64 * s;
            for (r, bits) in g.iter().enumerate().take(GLYPH_H) {
                for col in 0..GLYPH_W {
                    if bits >> (GLYPH_W - 1 - col) & 1 == 1 {
                        let px = x + r as i64 * s;
                        let py = bottom - along - (col as i64 + 1) * s;
                        self.fill_rect(px, py, scale, scale, c);
                    }
                }
            }
        }
    }

    /// The image drawn so far.
    pub fn image(&self) -> &RgbImage {
        &self.img
    }

    /// Writes the canvas as a PNG (atomically; creates the parent folder).
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| crate::Error::io(dir, e))?;
        }
        crate::data::io::write_png(path, &self.img)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::font::{characters, glyph};

    fn ink(c: &Canvas) -> usize {
        c.image().pixels().filter(|p| p.0 == INK).count()
    }

    #[test]
    fn every_glyph_renders_its_pixels_at_scale() {
        for ch in characters() {
            let want: u32 = glyph(ch).unwrap().iter().map(|r| r.count_ones()).sum();
            for scale in [1, 3] {
                let mut c = Canvas::new(40, 40);
                c.text(2, 2, &ch.to_string(), scale, Align::Left, INK);
                assert_eq!(
                    ink(&c) as u32,
                    want * scale * scale,
                    "glyph {ch:?} scale {scale}"
                );
                let mut up = Canvas::new(40, 40);
                up.text_up(2, 20, &ch.to_string(), scale, INK);
                assert_eq!(ink(&up) as u32, want * scale * scale, "rotated {ch:?}");
            }
        }
    }

    #[test]
    fn alignment_places_text() {
        let mut c = Canvas::new(100, 20);
        c.text(50, 2, "II", 1, Align::Right, INK);
        // "II" is 11 px wide and ends at x = 50: its ink lies in 39..50.
        let xs: Vec<u32> = (0..100)
            .filter(|&x| (0..20).any(|y| c.get(x, y) == Some(INK)))
            .collect();
        assert!(
            *xs.first().unwrap() >= 39 && *xs.last().unwrap() < 50,
            "{xs:?}"
        );
        c.text(-500, -500, "clipped", 4, Align::Left, INK); // no panic off canvas
    }
}
