//! Scenes that carry two ideas at once (`relsim scenes generate --multi`): an arrangement that
//! decides where things go (a ring, a winding trail, a spiral, nested copies) and a change that
//! runs along it from one thing to the next (growing, changing colour, turning, alternating) —
//! a spiral of shells is a spiral and a size progression. Each pair is drawn so that both ideas
//! read as they do in the one-idea scenes of their families.

use std::f32::consts::{PI, TAU};

use rand::Rng;

use super::appearance::{mix, Canvas, Object, Pt, Shape, Style, SCENE};
use super::relations::{Look, Relation};
use super::structures::{along_polyline, marker, winding_curve};

/// The pairs of a `--multi` set (arrangement, change), in the order scenes cycle through them.
/// A change that the arrangement already shows by itself is left out (a spiral already grows,
/// nested copies already shrink and alternate their colours).
pub const PAIRS: [(Relation, Relation); 13] = [
    (Relation::RadialArrangement, Relation::SizeProgression),
    (Relation::RadialArrangement, Relation::ColourTransition),
    (Relation::RadialArrangement, Relation::StepwiseRotation),
    (Relation::RadialArrangement, Relation::AlternatingPattern),
    (Relation::Path, Relation::SizeProgression),
    (Relation::Path, Relation::ColourTransition),
    (Relation::Path, Relation::StepwiseRotation),
    (Relation::Path, Relation::AlternatingPattern),
    (Relation::Spiral, Relation::ColourTransition),
    (Relation::Spiral, Relation::StepwiseRotation),
    (Relation::Spiral, Relation::AlternatingPattern),
    (Relation::ConcentricNesting, Relation::ColourTransition),
    (Relation::ConcentricNesting, Relation::StepwiseRotation),
];

/// Every family a `--multi` set shows, arrangements first.
pub const FAMILIES: [Relation; 8] = [
    Relation::RadialArrangement,
    Relation::Path,
    Relation::Spiral,
    Relation::ConcentricNesting,
    Relation::SizeProgression,
    Relation::ColourTransition,
    Relation::StepwiseRotation,
    Relation::AlternatingPattern,
];

/// One thing an arrangement places: where, how big, turned how far, in order along it.
struct Slot {
    centre: Pt,
    radius: f32,
    rotation: f32,
}

/// Draws `arrangement` with `change` running along it.
pub(super) fn draw(arrangement: Relation, change: Relation, look: &Look, canvas: &mut Canvas, rng: &mut impl Rng) {
    let p = look.palette;
    let slots = arrange(arrangement, change, look, canvas, rng);
    let n = slots.len();
    // The change's own draws come after the arrangement's, so both stay independent of each other.
    let shrink = rng.random_range(0.3..0.5f32);
    let from = if rng.random_bool(0.5) { p.main } else { p.second };
    let step = rng.random_range(30.0..50.0f32) * if rng.random_bool(0.5) { 1.0 } else { -1.0 };
    let start = rng.random_range(0.0..360.0f32);
    let by_shape = rng.random_bool(0.5);
    let nested = arrangement == Relation::ConcentricNesting;
    for (i, slot) in slots.iter().enumerate() {
        let t = i as f32 / (n - 1).max(1) as f32;
        let (mut shape, mut colour, mut radius, mut rotation) = (look.shape, p.main, slot.radius, slot.rotation);
        match change {
            Relation::SizeProgression => radius *= shrink + (1.0 - shrink) * t,
            Relation::ColourTransition => colour = mix(from, p.accent, t),
            Relation::StepwiseRotation => rotation = start + step * i as f32,
            Relation::AlternatingPattern if i % 2 == 1 && by_shape => shape = look.other_shape,
            Relation::AlternatingPattern if i % 2 == 1 => colour = p.second,
            _ => {}
        }
        if nested && change != Relation::ColourTransition && i % 2 == 1 && look.style == Style::Fill {
            // Filled copies of one colour would hide each other: nested ones take turns, as in
            // the one-idea scenes.
            colour = p.second;
        }
        let o = look.object(shape, slot.centre, radius, rotation, colour);
        if nested && o.glyph.is_some() && i > 0 {
            // Real objects nest like dolls: each sits on a clearing inside the last.
            let clearing = Object { shape: Shape::Circle, centre: slot.centre, radius: radius * 0.92, rotation: 0.0, colour: p.background[0], alpha: 0.85, style: Style::Fill, glyph: None };
            canvas.object(&clearing);
            canvas.object(&Object { colour: p.second, alpha: 1.0, style: Style::Outline(2.0), ..clearing });
        }
        canvas.object(&o);
        if change == Relation::StepwiseRotation {
            // A dot at each thing's top makes the turn visible even for round shapes.
            let (s, c) = rotation.to_radians().sin_cos();
            let tip = (o.centre.0 + 0.62 * radius * s, o.centre.1 - 0.62 * radius * c);
            canvas.object(&marker(tip, (radius * 0.16).max(2.0), p.accent));
        }
    }
}

/// Draws what `arrangement` shows besides its things (a trail, its ends, a traced coil) and
/// returns the places of the things, in order.
fn arrange(arrangement: Relation, change: Relation, look: &Look, canvas: &mut Canvas, rng: &mut impl Rng) -> Vec<Slot> {
    let p = look.palette;
    let scale = look.scale.min(1.0);
    match arrangement {
        Relation::RadialArrangement => {
            let mut n = rng.random_range(6..=10);
            if change == Relation::AlternatingPattern {
                // An odd ring would put two alike things side by side where it closes.
                n += n % 2;
            }
            let ring = rng.random_range(68.0..90.0);
            let r = (ring * (PI / n as f32).sin() * 0.8).min(26.0) * scale;
            let start = rng.random_range(0.0..TAU);
            let centre = look.jittered((SCENE / 2.0, SCENE / 2.0), rng);
            (0..n)
                .map(|i| {
                    let a = start + i as f32 / n as f32 * TAU;
                    Slot { centre: (centre.0 + ring * a.cos(), centre.1 + ring * a.sin()), radius: r, rotation: a.to_degrees() + 90.0 }
                })
                .collect()
        }
        Relation::Path => {
            let line = winding_curve(rng, 60);
            if rng.random_bool(0.6) {
                for w in line.windows(2) {
                    canvas.line(w[0], w[1], p.second, 0.7, 2.5, Some((5.0, 4.0)));
                }
            }
            let n = rng.random_range(7..=10);
            let r = rng.random_range(11.0..15.0) * scale;
            let follow = rng.random_bool(0.5);
            let end = line[line.len() - 1];
            canvas.object(&marker(line[0], r * 0.6, p.accent));
            canvas.panel(end.0 - r * 0.6, end.1 - r * 0.6, r * 1.2, r * 1.2, p.accent, 0.9, p.accent, 1.0);
            along_polyline(&line, n + 2)[1..=n]
                .iter()
                .map(|&(centre, heading)| Slot { centre, radius: r, rotation: if follow { heading } else { look.tilt } })
                .collect()
        }
        Relation::Spiral => {
            let n = rng.random_range(10..=14);
            let turns = rng.random_range(1.4..2.0f32);
            let start = rng.random_range(0.0..TAU);
            let sign = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
            let (inner, outer) = (14.0, 104.0);
            let centre = look.jittered((SCENE / 2.0, SCENE / 2.0), rng);
            let at = |t: f32| {
                let (rad, a) = (inner + (outer - inner) * t, start + sign * turns * TAU * t);
                ((centre.0 + rad * a.cos(), centre.1 + rad * a.sin()), a)
            };
            if rng.random_bool(0.4) {
                let trace: Vec<Pt> = (0..=120).map(|i| at(i as f32 / 120.0).0).collect();
                for w in trace.windows(2) {
                    canvas.line(w[0], w[1], p.second, 0.5, 1.5, None);
                }
            }
            (0..n)
                .map(|i| {
                    let t = i as f32 / (n - 1) as f32;
                    let (c, a) = at(t);
                    Slot { centre: c, radius: (4.0 + 12.0 * t) * scale, rotation: a.to_degrees() + 90.0 }
                })
                .collect()
        }
        Relation::ConcentricNesting => {
            let n = rng.random_range(3..=5);
            let centre = look.jittered((SCENE / 2.0, SCENE / 2.0), rng);
            let r_max = rng.random_range(96.0..110.0);
            let r_min = r_max * rng.random_range(0.2..0.3);
            (0..n)
                .map(|i| Slot { centre, radius: r_max - (r_max - r_min) * i as f32 / (n - 1) as f32, rotation: look.tilt })
                .collect()
        }
        other => unreachable!("{} is not an arrangement of a --multi pair", other.name()),
    }
}

