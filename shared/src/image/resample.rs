//! Pillow's 8-bit resize, reproduced bit for bit.
//!
//! Hand-written because parity needs it: the Qwen image processor resizes with Pillow, and one
//! uint8 level is ~0.015 after normalisation, far above our 1e-5 tolerance. The `image` crate's
//! filters differ (f32 weights, other pass order). The spec is
//! `tests/fixtures/preprocess/pil_resample.py` (Pillow 12 `Resample.c`): separable passes,
//! horizontal first, antialiased support, weights quantised to 22 fractional bits, uint8 between
//! the passes.

use image::RgbImage;

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// The resampling filters we need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// Keys cubic, a = -0.5 (Pillow's BICUBIC; the Qwen processor's resize).
    Bicubic,
    /// Lanczos, a = 3 (Pillow's LANCZOS; relsim's training crop).
    Lanczos,
}

impl Filter {
    fn support(self) -> f64 {
        match self {
            Filter::Bicubic => 2.0,
            Filter::Lanczos => 3.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        match self {
            Filter::Bicubic => {
                let a = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * a
                } else {
                    0.0
                }
            }
            Filter::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

/// For each output index: the first input index and the fixed-point weights.
fn coefficients(n_in: usize, n_out: usize, filter: Filter) -> Vec<(usize, Vec<i32>)> {
    let scale = n_in as f64 / n_out as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let ss = 1.0 / filterscale;
    (0..n_out)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            // C casts truncate toward zero; both operands are > -1 here, so `as i64` matches.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(n_in as i64) as usize;
            let mut w: Vec<f64> =
                (0..xmax.saturating_sub(xmin)).map(|x| filter.weight((x as f64 + xmin as f64 - center + 0.5) * ss)).collect();
            let total: f64 = w.iter().sum();
            if total != 0.0 {
                w.iter_mut().for_each(|v| *v /= total);
            }
            let k = w
                .iter()
                .map(|&v| {
                    let scaled = v * f64::from(1u32 << PRECISION_BITS);
                    (if v >= 0.0 { scaled + 0.5 } else { scaled - 0.5 }) as i32
                })
                .collect();
            (xmin, k)
        })
        .collect()
}

fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

fn horizontal(img: &RgbImage, width: u32, filter: Filter) -> RgbImage {
    let coeffs = coefficients(img.width() as usize, width as usize, filter);
    let mut out = RgbImage::new(width, img.height());
    for y in 0..img.height() {
        for (xx, (xmin, k)) in coeffs.iter().enumerate() {
            let mut acc = [1i64 << (PRECISION_BITS - 1); 3];
            for (i, &w) in k.iter().enumerate() {
                let p = img.get_pixel((xmin + i) as u32, y).0;
                for c in 0..3 {
                    acc[c] += i64::from(p[c]) * i64::from(w);
                }
            }
            out.put_pixel(xx as u32, y, image::Rgb([clip8(acc[0]), clip8(acc[1]), clip8(acc[2])]));
        }
    }
    out
}

fn vertical(img: &RgbImage, height: u32, filter: Filter) -> RgbImage {
    let coeffs = coefficients(img.height() as usize, height as usize, filter);
    let mut out = RgbImage::new(img.width(), height);
    for (yy, (ymin, k)) in coeffs.iter().enumerate() {
        for x in 0..img.width() {
            let mut acc = [1i64 << (PRECISION_BITS - 1); 3];
            for (i, &w) in k.iter().enumerate() {
                let p = img.get_pixel(x, (ymin + i) as u32).0;
                for c in 0..3 {
                    acc[c] += i64::from(p[c]) * i64::from(w);
                }
            }
            out.put_pixel(x, yy as u32, image::Rgb([clip8(acc[0]), clip8(acc[1]), clip8(acc[2])]));
        }
    }
    out
}

/// Resizes like Pillow 12's `Image.resize((width, height), filter)` on an RGB image.
pub fn resize(img: &RgbImage, width: u32, height: u32, filter: Filter) -> RgbImage {
    let mut out = if width != img.width() { horizontal(img, width, filter) } else { img.clone() };
    if height != out.height() {
        out = vertical(&out, height, filter);
    }
    out
}
