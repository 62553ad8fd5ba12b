//! Attribute descriptors: what an image *looks like* (pixels, colours, edges), as opposed to the
//! idea it shows. They are the baselines of the relational benchmark and the "looks alike" axis
//! of search. Each returns an L2-normalised vector, so cosine similarity is a dot product.

use image::imageops::{self, FilterType};
use image::RgbImage;

use crate::vectors::l2_normalize;

/// Side of the thumbnail the raw-pixel descriptor compares.
pub const PIXELS_SIDE: u32 = 32;
/// Bins per channel of the joint RGB colour histogram.
pub const HISTOGRAM_BINS: usize = 8;
/// Side of the grey image the edge descriptor reads.
const HOG_SIDE: u32 = 128;
/// Cell size in pixels and orientation bins of the edge descriptor.
const HOG_CELL: usize = 16;
const HOG_BINS: usize = 9;

/// Raw pixels: the image shrunk to 32x32, RGB in [0, 1], flattened (3072 values).
pub fn raw_pixels(image: &RgbImage) -> Vec<f32> {
    let small = imageops::resize(image, PIXELS_SIDE, PIXELS_SIDE, FilterType::Triangle);
    let mut v: Vec<f32> = small.as_raw().iter().map(|&b| f32::from(b) / 255.0).collect();
    l2_normalize(&mut v);
    v
}

/// A joint RGB histogram with 8 bins per channel (512 values), square-rooted so that cosine
/// similarity is the Hellinger affinity of the two colour distributions.
pub fn colour_histogram(image: &RgbImage) -> Vec<f32> {
    let mut hist = vec![0f32; HISTOGRAM_BINS.pow(3)];
    let shift = 8 - HISTOGRAM_BINS.trailing_zeros();
    for p in image.pixels() {
        let [r, g, b] = p.0.map(|c| usize::from(c >> shift));
        hist[(r * HISTOGRAM_BINS + g) * HISTOGRAM_BINS + b] += 1.0;
    }
    let total = (image.width() * image.height()).max(1) as f32;
    let mut v: Vec<f32> = hist.into_iter().map(|c| (c / total).sqrt()).collect();
    l2_normalize(&mut v);
    v
}

/// A HOG-style edge-orientation descriptor (Dalal & Triggs): the grey image at 128x128, unsigned
/// gradient orientations in 9 bins per 16x16 cell (votes split between neighbouring bins),
/// blocks of 2x2 cells normalised with L2-Hys (clip 0.2), 7x7 blocks → 1764 values.
pub fn edge_orientations(image: &RgbImage) -> Vec<f32> {
    let grey = imageops::grayscale(image);
    let grey = imageops::resize(&grey, HOG_SIDE, HOG_SIDE, FilterType::Triangle);
    let side = HOG_SIDE as usize;
    let px = |x: usize, y: usize| f32::from(grey.as_raw()[y * side + x]) / 255.0;
    let cells = side / HOG_CELL;
    let mut hist = vec![0f32; cells * cells * HOG_BINS];
    for y in 0..side {
        for x in 0..side {
            // Central differences, one-sided at the border.
            let gx = px((x + 1).min(side - 1), y) - px(x.saturating_sub(1), y);
            let gy = px(x, (y + 1).min(side - 1)) - px(x, y.saturating_sub(1));
            let magnitude = (gx * gx + gy * gy).sqrt();
            if magnitude == 0.0 {
                continue;
            }
            let angle = gy.atan2(gx).rem_euclid(std::f32::consts::PI);
            let pos = angle / std::f32::consts::PI * HOG_BINS as f32 - 0.5;
            let lower = pos.floor();
            let frac = pos - lower;
            let cell = (y / HOG_CELL) * cells + x / HOG_CELL;
            let bin = |b: f32| (b as i64).rem_euclid(HOG_BINS as i64) as usize;
            hist[cell * HOG_BINS + bin(lower)] += magnitude * (1.0 - frac);
            hist[cell * HOG_BINS + bin(lower + 1.0)] += magnitude * frac;
        }
    }
    let mut out = Vec::with_capacity((cells - 1) * (cells - 1) * 4 * HOG_BINS);
    for by in 0..cells - 1 {
        for bx in 0..cells - 1 {
            let start = out.len();
            for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                let cell = (by + dy) * cells + bx + dx;
                out.extend_from_slice(&hist[cell * HOG_BINS..(cell + 1) * HOG_BINS]);
            }
            let block = &mut out[start..];
            l2_normalize(block);
            block.iter_mut().for_each(|v| *v = v.min(0.2));
            l2_normalize(block);
        }
    }
    l2_normalize(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vectors::cosine;
    use image::Rgb;

    fn solid(rgb: [u8; 3]) -> RgbImage {
        RgbImage::from_pixel(64, 64, Rgb(rgb))
    }

    #[test]
    fn colour_histogram_tells_colours_apart() {
        let (red, red2, blue) = (solid([250, 10, 10]), solid([245, 12, 8]), solid([10, 10, 250]));
        assert!((cosine(&colour_histogram(&red), &colour_histogram(&red2)) - 1.0).abs() < 1e-6);
        assert!(cosine(&colour_histogram(&red), &colour_histogram(&blue)).abs() < 1e-6);
    }

    #[test]
    fn edge_orientations_see_direction_not_colour() {
        let stripes = |vertical: bool, colour: [u8; 3]| {
            RgbImage::from_fn(128, 128, |x, y| if (if vertical { x } else { y } / 8) % 2 == 0 { Rgb(colour) } else { Rgb([255, 255, 255]) })
        };
        let a = edge_orientations(&stripes(true, [0, 0, 0]));
        let b = edge_orientations(&stripes(true, [200, 0, 0]));
        let c = edge_orientations(&stripes(false, [0, 0, 0]));
        assert_eq!(a.len(), 7 * 7 * 4 * 9);
        assert!(cosine(&a, &b) > 0.99, "same orientation, other colour: {}", cosine(&a, &b));
        assert!(cosine(&a, &c) < 0.1, "orthogonal stripes: {}", cosine(&a, &c));
        // A blank image has no edges: a zero vector, not NaNs.
        assert!(edge_orientations(&solid([9, 9, 9])).iter().all(|v| *v == 0.0));
    }

    #[test]
    fn raw_pixels_are_unit_length() {
        let v = raw_pixels(&solid([30, 60, 90]));
        assert_eq!(v.len(), 3072);
        assert!((v.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5);
    }
}
