//! Pillow's 8-bit resize and torch's antialiased uint8 bicubic, reproduced bit for bit.
//!
//! Hand-written because parity needs it: the Qwen image processor resizes with Pillow, and one
//! uint8 level is ~0.015 after normalisation, far above our 1e-5 tolerance. The `image` crate's
//! filters differ (f32 weights, other pass order). The spec is
//! `tests/fixtures/preprocess/pil_resample.py` (Pillow 12 `Resample.c`): separable passes,
//! horizontal first, antialiased support, weights quantised to 22 fractional bits, uint8 between
//! the passes. torch's uint8 kernel (`UpSampleKernel.cpp`, ported from Pillow-SIMD) keeps the
//! windows and pass order but quantises to int16 with a per-axis precision and writes the cubic
//! differently; `tests/fixtures/preprocess/make_torchvision.py` checks it on hundreds of sizes.

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

/// One output sample's taps: the first input index and its fixed-point weights.
type Taps = (usize, Vec<i32>);

/// The normalised double-precision weights of each output index, with Pillow's window: support
/// scaled by the downscale factor (antialiasing), `[center - support + 0.5, center + support + 0.5)`
/// truncated and clipped to the input. `clip` also caps a window at `2·ceil(support) + 1` taps,
/// as torch does (Pillow does not).
fn float_taps(n_in: usize, n_out: usize, support: f64, weight: impl Fn(f64) -> f64, clip: bool) -> Vec<(usize, Vec<f64>)> {
    let scale = n_in as f64 / n_out as f64;
    let filterscale = scale.max(1.0);
    let support = support * filterscale;
    let max_taps = if clip { support.ceil() as usize * 2 + 1 } else { usize::MAX };
    let ss = 1.0 / filterscale;
    (0..n_out)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            // C casts truncate toward zero; both operands are > -1 here, so `as i64` matches.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(n_in as i64) as usize;
            let len = xmax.saturating_sub(xmin).min(max_taps);
            let mut w: Vec<f64> = (0..len).map(|x| weight((x as f64 + xmin as f64 - center + 0.5) * ss)).collect();
            let total: f64 = w.iter().sum();
            if total != 0.0 {
                w.iter_mut().for_each(|v| *v /= total);
            }
            (xmin, w)
        })
        .collect()
}

/// Rounds `v · 2^bits` half away from zero, as both C implementations do.
fn fixed(v: f64, bits: u32) -> i32 {
    let scaled = v * f64::from(1u32 << bits);
    (if v >= 0.0 { scaled + 0.5 } else { scaled - 0.5 }) as i32
}

/// Pillow's taps: weights in 22 fractional bits.
fn pillow_taps(n_in: usize, n_out: usize, filter: Filter) -> (Vec<Taps>, u32) {
    let taps = float_taps(n_in, n_out, filter.support(), |x| filter.weight(x), false);
    (taps.into_iter().map(|(xmin, w)| (xmin, w.iter().map(|&v| fixed(v, PRECISION_BITS)).collect())).collect(), PRECISION_BITS)
}

/// torch's taps for antialiased bicubic on uint8 (`_compute_index_ranges_int16_weights`): the
/// Keys cubic (a = -0.5) in torch's own arithmetic, windows at most `2·ceil(support) + 1` long,
/// and int16 weights with as many fractional bits (up to 22) as the largest weight of the whole
/// axis allows.
fn torch_bicubic_taps(n_in: usize, n_out: usize) -> (Vec<Taps>, u32) {
    let a = -0.5;
    let cubic = |x: f64| {
        let x = x.abs();
        if x < 1.0 {
            ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
        } else if x < 2.0 {
            ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
        } else {
            0.0
        }
    };
    let taps = float_taps(n_in, n_out, 2.0, cubic, true);
    let wt_max = taps.iter().flat_map(|(_, w)| w.iter().copied()).fold(0.0f64, f64::max);
    let mut bits = 0;
    while bits < 22 && ((0.5 + wt_max * f64::from(1u32 << (bits + 1))) as i32) < (1 << 15) {
        bits += 1;
    }
    (taps.into_iter().map(|(xmin, w)| (xmin, w.iter().map(|&v| fixed(v, bits)).collect())).collect(), bits)
}

fn clip8(acc: i64, bits: u32) -> u8 {
    (acc >> bits).clamp(0, 255) as u8
}

/// One pass along x: uint8 in, integer accumulation from 0.5 (in fixed point), uint8 out.
fn horizontal(img: &RgbImage, width: u32, (coeffs, bits): &(Vec<Taps>, u32)) -> RgbImage {
    let bits = *bits;
    let mut out = RgbImage::new(width, img.height());
    for y in 0..img.height() {
        for (xx, (xmin, k)) in coeffs.iter().enumerate() {
            let mut acc = [1i64 << bits >> 1; 3];
            for (i, &w) in k.iter().enumerate() {
                let p = img.get_pixel((xmin + i) as u32, y).0;
                for c in 0..3 {
                    acc[c] += i64::from(p[c]) * i64::from(w);
                }
            }
            out.put_pixel(xx as u32, y, image::Rgb([clip8(acc[0], bits), clip8(acc[1], bits), clip8(acc[2], bits)]));
        }
    }
    out
}

/// One pass along y, as [`horizontal`].
fn vertical(img: &RgbImage, height: u32, (coeffs, bits): &(Vec<Taps>, u32)) -> RgbImage {
    let bits = *bits;
    let mut out = RgbImage::new(img.width(), height);
    for (yy, (ymin, k)) in coeffs.iter().enumerate() {
        for x in 0..img.width() {
            let mut acc = [1i64 << bits >> 1; 3];
            for (i, &w) in k.iter().enumerate() {
                let p = img.get_pixel(x, (ymin + i) as u32).0;
                for c in 0..3 {
                    acc[c] += i64::from(p[c]) * i64::from(w);
                }
            }
            out.put_pixel(x, yy as u32, image::Rgb([clip8(acc[0], bits), clip8(acc[1], bits), clip8(acc[2], bits)]));
        }
    }
    out
}

/// Resizes like Pillow 12's `Image.resize((width, height), filter)` on an RGB image.
pub fn resize(img: &RgbImage, width: u32, height: u32, filter: Filter) -> RgbImage {
    separable(img, width, height, |n_in, n_out| pillow_taps(n_in, n_out, filter))
}

/// Resizes like torch's `interpolate(mode="bicubic", antialias=True)` on a uint8 image, which is
/// what torchvision's `resize` (and so transformers' default image processors) runs on the CPU.
pub fn resize_torch_bicubic(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    separable(img, width, height, torch_bicubic_taps)
}

/// Horizontal pass first, then vertical, each only where the size changes; uint8 in between.
fn separable(img: &RgbImage, width: u32, height: u32, taps: impl Fn(usize, usize) -> (Vec<Taps>, u32)) -> RgbImage {
    let mut out = if width != img.width() { horizontal(img, width, &taps(img.width() as usize, width as usize)) } else { img.clone() };
    if height != out.height() {
        out = vertical(&out, height, &taps(out.height() as usize, height as usize));
    }
    out
}
