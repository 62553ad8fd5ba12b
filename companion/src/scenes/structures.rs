//! Drawing the families about structure: analogies, rule grids, paths, layers, part and whole,
//! cause and effect. Like the first fourteen, each shows one idea with whatever shape, object,
//! palette and framing the scene's look gives it.

use std::f32::consts::{PI, TAU};

use rand::seq::SliceRandom;
use rand::Rng;

use super::appearance::{clip_half_plane, mix, Canvas, Object, Pt, Rgb, Shape, Style, SCENE};
use super::relations::{any_direction, line_positions, object_grid, Direction, Look, Relation};

/// Draws one of the structure families; returns false for a family drawn elsewhere.
pub(super) fn draw(relation: Relation, look: &Look, canvas: &mut Canvas, rng: &mut impl Rng) -> bool {
    match relation {
        Relation::Analogy => analogy(look, canvas, rng),
        Relation::RuleGrid => rule_grid(look, canvas, rng),
        Relation::RiseAndFall => rise_and_fall(look, canvas, rng),
        Relation::Grouping => grouping(look, canvas, rng),
        Relation::Path => path(look, canvas, rng),
        Relation::Occlusion => occlusion(look, canvas, rng),
        Relation::PartWhole => part_whole(look, canvas, rng),
        Relation::Balance => balance(look, canvas, rng),
        Relation::DensityGradient => density_gradient(look, canvas, rng),
        Relation::Spiral => spiral(look, canvas, rng),
        Relation::Pairing => pairing(look, canvas, rng),
        Relation::Filling => filling(look, canvas, rng),
        Relation::MotionTrail => motion_trail(look, canvas, rng),
        Relation::MissingOne => missing_one(look, canvas, rng),
        Relation::SelfSimilarity => self_similarity(look, canvas, rng),
        Relation::Sorting => sorting(look, canvas, rng),
        _ => return false,
    }
    true
}

/// What the analogy's transformation does to an object.
#[derive(Clone, Copy, PartialEq)]
enum Change {
    Grow,
    Shrink,
    Turn,
    Recolour,
    Duplicate,
}

/// A is to B as C is to D: two rows of two panels; one change turns the first object of each row
/// into the second, for two different objects.
fn analogy(look: &Look, canvas: &mut Canvas, rng: &mut impl Rng) {
    let p = look.palette;
    let changes = [Change::Grow, Change::Shrink, Change::Turn, Change::Recolour, Change::Duplicate];
    let change = changes[rng.random_range(0..changes.len())];
    let framed = rng.random_bool(0.6);
    let (cell, gap) = (108.0, 14.0);
    let left = SCENE / 2.0 - gap / 2.0 - cell;
    for (row, shape) in [look.shape, look.other_shape].into_iter().enumerate() {
        let top = SCENE / 2.0 - gap / 2.0 - cell + row as f32 * (cell + gap);
        let base_r = rng.random_range(20.0..28.0) * look.scale.min(1.0);
        let rotation = look.tilt + rng.random_range(-10.0..10.0);
        let colour = if row == 0 { p.main } else { p.second };
        for col in 0..2 {
            let x = left + col as f32 * (cell + gap);
            if framed {
                canvas.panel(x, top, cell, cell, [255, 255, 255], 0.3, p.second, 2.0);
            }
            let centre = (x + cell / 2.0, top + cell / 2.0);
            let after = col == 1;
            let (before_r, after_r) = match change {
                Change::Grow => (base_r * 0.8, base_r * 1.6),
                Change::Shrink => (base_r * 1.6, base_r * 0.8),
                Change::Duplicate => (base_r, base_r * 0.7),
                _ => (base_r, base_r),
            };
            let (r, turn, tint, copies) = match (change, after) {
                (_, false) => (before_r, 0.0, colour, 1),
                (Change::Turn, true) => (after_r, 90.0, colour, 1),
                (Change::Recolour, true) => (after_r, 0.0, p.accent, 1),
                (Change::Duplicate, true) => (after_r, 0.0, colour, 2),
                (_, true) => (after_r, 0.0, colour, 1),
            };
            for k in 0..copies {
                let dx = if copies == 1 { 0.0 } else { (k as f32 - 0.5) * r * 2.2 };
                canvas.object(&look.object(shape, (centre.0 + dx, centre.1), r, rotation + turn, tint));
            }
            if change == Change::Turn {
                // A marker on the object's top shows the turn even on round things.
                let (s, c) = (rotation + turn).to_radians().sin_cos();
                let tip = (centre.0 + 0.7 * r * s, centre.1 - 0.7 * r * c);
                canvas.object(&marker(tip, (r * 0.18).max(3.0), p.accent));
            }
        }
        let y = top + cell / 2.0;
        canvas.arrow((left + cell - 16.0, y), (left + cell + gap + 12.0, y), p.accent);
    }
}

/// A small filled dot (never a real object).
pub(super) fn marker(centre: Pt, radius: f32, colour: Rgb) -> Object {
    Object { shape: Shape::Circle, centre, radius, rotation: 0.0, colour, alpha: 1.0, style: Style::Fill, glyph: None }
}

/// A property a rule grid changes along its rows or its columns.
#[derive(Clone, Copy, PartialEq)]
enum Property {
    Size,
    Colour,
    Count,
    Turn,
}

/// A 3 x 3 grid: one property changes along each row, another down each column.
fn rule_grid(look: &Look, canvas: &mut Canvas, rng: &mut impl Rng) {
    let p = look.palette;
    let mut properties = [Property::Size, Property::Colour, Property::Count, Property::Turn];
    properties.shuffle(rng);
    let (across, down) = (properties[0], properties[1]);
    let cell = 76.0;
    let origin = SCENE / 2.0 - 1.5 * cell;
    let lines = rng.random_bool(0.6);
    if lines {
        for k in 0..=3 {
            let t = origin + k as f32 * cell;
            canvas.line((origin, t), (origin + 3.0 * cell, t), p.second, 0.6, 1.5, None);
            canvas.line((t, origin), (t, origin + 3.0 * cell), p.second, 0.6, 1.5, None);
        }
    }
    let colours = [p.main, p.second, p.accent];
    for row in 0..3 {
        for col in 0..3 {
            let (mut r, mut colour, mut count, mut turn) = (cell * 0.3 * look.scale.min(1.0), p.main, 1, 0.0);
            for (property, step) in [(across, col), (down, row)] {
                match property {
                    Property::Size => r *= 0.55 + 0.3 * step as f32,
                    Property::Colour => colour = colours[step],
                    Property::Count => count = step + 1,
                    Property::Turn => turn = 45.0 * step as f32,
                }
            }
            let centre = (origin + (col as f32 + 0.5) * cell, origin + (row as f32 + 0.5) * cell);
            let (r, offsets): (f32, Vec<Pt>) = match count {
                1 => (r, vec![(0.0, 0.0)]),
                2 => (r * 0.62, vec![(-0.5, 0.0), (0.5, 0.0)]),
                _ => (r * 0.55, vec![(-0.5, 0.4), (0.5, 0.4), (0.0, -0.45)]),
            };
            for (dx, dy) in offsets {
                let c = (centre.0 + dx * cell * 0.52, centre.1 + dy * cell * 0.52);
                canvas.object(&look.object(look.shape, c, r, look.tilt + turn, colour));
            }
        }
    }
}

/// Objects that grow to a peak and shrink again along a line.
fn rise_and_fall(look: &Look, canvas: &mut Canvas, rng: &mut impl Rng) {
    let n = rng.random_range(5..=7);
    let (centres, spacing) = line_positions(n, any_direction(rng));
    let peak = rng.random_range(1..n - 1);
    let r_max = spacing * 0.48 * look.scale.min(1.0);
    let r_min = r_max * rng.random_range(0.25..0.4);
    for (i, c) in centres.iter().enumerate() {
        let reach = if i <= peak { peak } else { n - 1 - peak };
        let t = 1.0 - (i as f32 - peak as f32).abs() / reach.max(1) as f32;
        let r = r_min + (r_max - r_min) * t;
        canvas.object(&look.object(look.shape, look.jittered(*c, rng), r, look.tilt, look.palette.main));
    }
}

/// Mixed kinds of objects gathered into separate clusters, one kind per cluster.
fn grouping(look: &Look, canvas: &mut Canvas, rng: &mut impl Rng) {
    let p = look.palette;
    let kinds = if rng.random_bool(0.65) { 2 } else { 3 };
    let kind = |k: usize| match k {
        0 => (look.shape, p.main),
        1 => (look.other_shape, p.second),
        _ => (look.shape, p.accent),
    };
    let start = rng.random_range(0.0..TAU);
    let spread = if kinds == 2 { 68.0 } else { 74.0 };
    let outlined = rng.random_bool(0.5);
    let r = rng.random_range(9.0..13.0) * look.scale.min(1.0);
    for k in 0..kinds {
        let a = start + k as f32 / kinds as f32 * TAU;
        let hub = (SCENE / 2.0 + spread * a.cos(), SCENE / 2.0 + spread * a.sin());
        let (shape, colour) = kind(k);
        let count = rng.random_range(4..=7);
        let mut placed: Vec<Pt> = Vec::new();
        for _ in 0..200 {
            if placed.len() == count {
                break;
            }
            let (d, t) = (rng.random_range(0.0..40.0f32), rng.random_range(0.0..TAU));
            let c = (hub.0 + d * t.cos(), hub.1 + d * t.sin());
            if placed.iter().all(|q| (q.0 - c.0).hypot(q.1 - c.1) > 2.3 * r) {
                placed.push(c);
                canvas.object(&look.object(shape, c, r, look.tilt + rng.random_range(-20.0..20.0), colour));
            }
        }
        if outlined {
            let ring: Vec<Pt> = (0..40).map(|i| {
                let t = i as f32 / 40.0 * TAU;
                (hub.0 + (40.0 + r + 6.0) * t.cos(), hub.1 + (40.0 + r + 6.0) * t.sin())
            }).collect();
            canvas.polygon(&ring, p.second, 0.5, Style::Outline(2.0));
        }
    }
}

/// A smooth winding curve across the scene, as points `steps + 1` apart in parameter.
pub(super) fn winding_curve(rng: &mut impl Rng, steps: usize) -> Vec<Pt> {
    let waves = rng.random_range(1.0..2.2f32);
    let amplitude = rng.random_range(40.0..70.0f32);
    let phase = rng.random_range(0.0..TAU);
    let angle = rng.random_range(0.0..TAU);
    let (s, c) = angle.sin_cos();
    (0..=steps)
        .map(|i| {
            let t = i as f32 / steps as f32;
            let (u, v) = ((t - 0.5) * 200.0, amplitude * (waves * TAU * t + phase).sin() * (0.6 + 0.4 * t));
            (SCENE / 2.0 + u * c - v * s, SCENE / 2.0 + u * s + v * c)
        })
        .collect()
}

/// Points spaced evenly by arc length along an open polyline.
pub(super) fn along_polyline(line: &[Pt], count: usize) -> Vec<(Pt, f32)> {
    let lengths: Vec<f32> = line.windows(2).map(|w| (w[1].0 - w[0].0).hypot(w[1].1 - w[0].1)).collect();
    let total: f32 = lengths.iter().sum();
    let mut out = Vec::with_capacity(count);
    let (mut i, mut walked) = (0, 0.0);
    for k in 0..count {
        let target = total * k as f32 / (count - 1).max(1) as f32;
        while i + 1 < lengths.len() && walked + lengths[i] < target {
            walked += lengths[i];
            i += 1;
        }
        let (a, b) = (line[i], line[i + 1]);
        let t = ((target - walked) / lengths[i].max(1e-6)).clamp(0.0, 1.0);
        let heading = (b.1 - a.1).atan2(b.0 - a.0).to_degrees() + 90.0;
        out.push(((a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t), heading));
    }
    out
}

/// Objects one after another along a winding trail, from a start mark to an end mark.
fn path(look: &Look, canvas: &mut Canvas, rng: &mut impl Rng) {
    let p = look.palette;
    let line = winding_curve(rng, 60);
    if rng.random_bool(0.6) {
        for w in line.windows(2) {
            canvas.line(w[0], w[1], p.second, 0.7, 2.5, Some((5.0, 4.0)));
        }
    }
    let n = rng.random_range(7..=11);
    let r = rng.random_range(9.0..14.0) * look.scale.min(1.0);
    let follow = rng.random_bool(0.5);
    for (c, heading) in along_polyline(&line, n) {
        let rotation = if follow { heading } else { look.tilt };
        canvas.object(&look.object(look.shape, c, r, rotation, p.main));
    }
    canvas.object(&marker(line[0], r * 0.8, p.accent));
    let end = line[line.len() - 1];
    canvas.panel(end.0 - r * 0.8, end.1 - r * 0.8, r * 1.6, r * 1.6, p.accent, 0.9, p.accent, 1.0);
}

/// Objects overlapping in layers, each offset from the one behind and casting a soft shadow.
fn occlusion(look: &Look, canvas: &mut Canvas, rng: &mut impl Rng) {
    let p = look.palette;
    let n = rng.random_range(3..=5);
    let r = rng.random_range(40.0..52.0) * look.scale.min(1.0);
    let angle = rng.random_range(0.0..TAU);
    let step = r * rng.random_range(0.5..0.75);
    let (dx, dy) = (step * angle.cos(), step * angle.sin());
    let first = (SCENE / 2.0 - dx * (n - 1) as f32 / 2.0, SCENE / 2.0 - dy * (n - 1) as f32 / 2.0);
    let colours = [p.main, p.second, p.accent];
    let fan = rng.random_bool(0.5);
    for i in 0..n {
        let c = (first.0 + dx * i as f32, first.1 + dy * i as f32);
        let rotation = look.tilt + if fan { 12.0 * i as f32 } else { 0.0 };
        let mut shadow = look.object(look.shape, (c.0 + 4.0, c.1 + 5.0), r, rotation, [20, 20, 20]);
        shadow.alpha = 0.3;
        shadow.style = Style::Fill;
        canvas.object(&shadow);
        let mut o = look.object(look.shape, c, r, rotation, colours[i % 3]);
        // Outlines would show what is behind: layers are always solid.
        o.style = Style::Fill;
        canvas.object(&o);
        if o.glyph.is_none() {
            canvas.polygon(&o.points(), mix(colours[i % 3], [0, 0, 0], 0.5), 1.0, Style::Outline(2.0));
        }
    }
}

/// A whole object beside a round inset that magnifies one part of it, joined by callout lines.
fn part_whole(look: &Look, canvas: &mut Canvas, rng: &mut impl Rng) {
    let p = look.palette;
    let across = rng.random_bool(0.6);
    let (whole_c, inset_c) = if across { ((72.0, 128.0), (186.0, 128.0)) } else { ((128.0, 72.0), (128.0, 186.0)) };
    let r = rng.random_range(48.0..58.0) * look.scale.min(1.0);
    let whole = look.object(look.shape, whole_c, r, look.tilt, p.main);
    canvas.object(&whole);
    // The part: a point inside the whole, seen three times larger in the inset.
    // A shape's part is near its rim, so that the inset shows an edge and not one flat colour;
    // a real object's nearer the middle, where the picture has something to see.
    let reach = if whole.glyph.is_some() { 0.1..0.35 } else { 0.45..0.75 };
    let (a, d) = (rng.random_range(0.0..TAU), r * rng.random_range(reach));
    let part = (whole_c.0 + d * a.cos(), whole_c.1 + d * a.sin());
    let (zoom, lens, inset_r) = (2.4, r * 0.32, 62.0);
    canvas.line(part, inset_c, p.second, 0.6, 1.5, Some((4.0, 3.0)));
    canvas.object(&Object { shape: Shape::Circle, centre: part, radius: lens, rotation: 0.0, colour: p.accent, alpha: 1.0, style: Style::Outline(2.5), glyph: None });
    canvas.object(&Object { shape: Shape::Circle, centre: inset_c, radius: inset_r, rotation: 0.0, colour: [250, 250, 250], alpha: 0.9, style: Style::Fill, glyph: None });
    let magnified = Object { centre: (inset_c.0 + (whole_c.0 - part.0) * zoom, inset_c.1 + (whole_c.1 - part.1) * zoom), radius: r * zoom, ..whole };
    canvas.clipped_to_circle(inset_c, inset_r, |layer| layer.object(&magnified));
    canvas.object(&Object { shape: Shape::Circle, centre: inset_c, radius: inset_r, rotation: 0.0, colour: p.accent, alpha: 1.0, style: Style::Outline(3.0), glyph: None });
}

/// A beam on a pivot, tipped toward the side that carries more objects.
fn balance(look: &Look, canvas: &mut Canvas, rng: &mut impl Rng) {
    let p = look.palette;
    let (mut left, mut right) = (rng.random_range(1..=4), rng.random_range(1..=4));
    if left == right {
        right = if right == 4 { 1 } else { right + 1 };
    }
    if rng.random_bool(0.5) {
        std::mem::swap(&mut left, &mut right);
    }
    let pivot = (SCENE / 2.0 + rng.random_range(-20.0..20.0), 176.0);
    let half = 100.0;
    // Clockwise (right end down) when the right side is heavier.
    let angle = ((right as f32 - left as f32) * 7.0).clamp(-18.0, 18.0).to_radians();
    let (s, c) = angle.sin_cos();
    let end = |side: f32| (pivot.0 + side * half * c, pivot.1 + side * half * s);
    canvas.polygon(&[(pivot.0, pivot.1 + 2.0), (pivot.0 - 22.0, pivot.1 + 56.0), (pivot.0 + 22.0, pivot.1 + 56.0)], p.second, 1.0, Style::Fill);
    canvas.line(end(-1.0), end(1.0), p.second, 1.0, 6.0, None);
    let r = 13.0 * look.scale.min(1.0);
    for (side, count) in [(-1.0f32, left), (1.0, right)] {
        let base = end(side * 0.78);
        // A small pile: up to three on the bottom row, the rest above.
        for k in 0..count {
            let (row, col, in_row) = if k < 3 { (0, k, count.min(3)) } else { (1, k - 3, count - 3) };
            let along = (col as f32 - (in_row - 1) as f32 / 2.0) * 2.1 * r;
            let up = 3.0 + r + row as f32 * 2.0 * r;
            let centre = (base.0 + along * c + up * s, base.1 + along * s - up * c);
            canvas.object(&look.object(look.shape, centre, r, angle.to_degrees(), p.main));
        }
    }
}

/// Many objects crowded at one side, thinning out toward the other.
fn density_gradient(look: &Look, canvas: &mut Canvas, rng: &mut impl Rng) {
    let p = look.palette;
    let angle = rng.random_range(0.0..TAU);
    let (s, c) = angle.sin_cos();
    let r = rng.random_range(6.0..9.0) * look.scale.min(1.0);
    let want = rng.random_range(26..=40);
    let mut placed: Vec<Pt> = Vec::new();
    for _ in 0..2000 {
        if placed.len() == want {
            break;
        }
        // Along the axis the density falls off as (1 - u)²; across it is uniform.
        let u = 1.0 - rng.random_range(0.0f32..1.0).sqrt();
        let (a, b) = ((u - 0.5) * 210.0, rng.random_range(-100.0..100.0f32));
        let q = (SCENE / 2.0 + a * c - b * s, SCENE / 2.0 + a * s + b * c);
        if !(r..SCENE - r).contains(&q.0) || !(r..SCENE - r).contains(&q.1) {
            continue;
        }
        if placed.iter().all(|o| (o.0 - q.0).hypot(o.1 - q.1) > 2.1 * r) {
            placed.push(q);
            canvas.object(&look.object(look.shape, q, r, look.tilt + rng.random_range(-30.0..30.0), p.main));
        }
    }
}

/// Objects along an outward spiral, growing as they go.
fn spiral(look: &Look, canvas: &mut Canvas, rng: &mut impl Rng) {
    let p = look.palette;
    let n = rng.random_range(12..=18);
    let turns = rng.random_range(1.6..2.4f32);
    let start = rng.random_range(0.0..TAU);
    let sign = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
    let (inner, outer) = (12.0, 104.0);
    let centre = look.jittered((SCENE / 2.0, SCENE / 2.0), rng);
    if rng.random_bool(0.4) {
        let trace: Vec<Pt> = (0..=120).map(|i| {
            let t = i as f32 / 120.0;
            let (rad, a) = (inner + (outer - inner) * t, start + sign * turns * TAU * t);
            (centre.0 + rad * a.cos(), centre.1 + rad * a.sin())
        }).collect();
        for w in trace.windows(2) {
            canvas.line(w[0], w[1], p.second, 0.5, 1.5, None);
        }
    }
    for i in 0..n {
        let t = i as f32 / (n - 1) as f32;
        let (rad, a) = (inner + (outer - inner) * t, start + sign * turns * TAU * t);
        let r = (3.0 + 11.0 * t) * look.scale.min(1.0);
        let c = (centre.0 + rad * a.cos(), centre.1 + rad * a.sin());
        canvas.object(&look.object(look.shape, c, r, a.to_degrees() + 90.0, mix(p.main, p.accent, t * 0.5)));
    }
}

/// Two rows of objects matched one to one by lines (a shuffled matching).
fn pairing(look: &Look, canvas: &mut Canvas, rng: &mut impl Rng) {
    let p = look.palette;
    let n = rng.random_range(3..=5);
    let (top, _) = line_positions(n, Direction::Across);
    let gap = rng.random_range(110.0..150.0);
    let across = rng.random_bool(0.7);
    let place = |q: Pt, row: f32| -> Pt {
        let y = SCENE / 2.0 + row * gap / 2.0;
        if across {
            (q.0, y)
        } else {
            (y, q.0)
        }
    };
    let mut partner: Vec<usize> = (0..n).collect();
    while partner.iter().enumerate().all(|(i, &j)| i == j) {
        partner.shuffle(rng);
    }
    let r = (228.0 / n as f32 * 0.3).min(20.0) * look.scale.min(1.0);
    for (i, &j) in partner.iter().enumerate() {
        let (a, b) = (place(top[i], -1.0), place(top[j], 1.0));
        let (ux, uy) = ((b.0 - a.0) / (b.0 - a.0).hypot(b.1 - a.1), (b.1 - a.1) / (b.0 - a.0).hypot(b.1 - a.1));
        canvas.line((a.0 + ux * r * 1.2, a.1 + uy * r * 1.2), (b.0 - ux * r * 1.2, b.1 - uy * r * 1.2), p.accent, 0.9, 2.5, None);
    }
    for i in 0..n {
        canvas.object(&look.object(look.shape, place(top[i], -1.0), r, look.tilt, p.main));
        canvas.object(&look.object(look.other_shape, place(top[i], 1.0), r, look.tilt, p.second));
    }
}

/// Containers filled a little more at each step (or emptied).
fn filling(look: &Look, canvas: &mut Canvas, rng: &mut impl Rng) {
    let p = look.palette;
    let n = rng.random_range(3..=5);
    let (centres, spacing) = line_positions(n, if rng.random_bool(0.8) { Direction::Across } else { Direction::Down });
    let r = (spacing * 0.42).min(46.0) * look.scale.min(1.0);
    let emptying = rng.random_bool(0.3);
    let from_empty = rng.random_bool(0.5);
    for (i, &c) in centres.iter().enumerate() {
        let step = if emptying { n - 1 - i } else { i };
        let level = if from_empty { step as f32 / (n - 1) as f32 } else { (step + 1) as f32 / n as f32 };
        let container = Object { shape: look.shape, centre: c, radius: r, rotation: 0.0, colour: p.second, alpha: 1.0, style: Style::Outline(3.0), glyph: None };
        let outline = container.points();
        let (top, bottom) = outline.iter().fold((f32::MAX, f32::MIN), |(t, b), q| (t.min(q.1), b.max(q.1)));
        // The content is what lies below the level line: y >= bottom - level · height.
        let content = clip_half_plane(&outline, (0.0, 1.0), bottom - level * (bottom - top));
        if level > 0.0 && content.len() >= 3 {
            canvas.polygon(&content, p.main, 1.0, Style::Fill);
        }
        canvas.object(&container);
    }
}

/// One object moving along a curve, its earlier positions fading behind it.
fn motion_trail(look: &Look, canvas: &mut Canvas, rng: &mut impl Rng) {
    let p = look.palette;
    let n = rng.random_range(5..=7);
    let bend = rng.random_range(-60.0..60.0f32);
    let angle = rng.random_range(0.0..TAU);
    let (s, c) = angle.sin_cos();
    let r = rng.random_range(18.0..26.0) * look.scale.min(1.0);
    let spin = if rng.random_bool(0.4) { rng.random_range(20.0..40.0) } else { 0.0 };
    let along = |t: f32| -> Pt {
        let (u, v) = ((t - 0.5) * 180.0, bend * (4.0 * t * (1.0 - t) - 0.5));
        (SCENE / 2.0 + u * c - v * s, SCENE / 2.0 + u * s + v * c)
    };
    for i in 0..n {
        let t = i as f32 / (n - 1) as f32;
        let mut o = look.object(look.shape, along(t), r, look.tilt + spin * i as f32, p.main);
        o.alpha = 0.12 + 0.88 * t.powf(1.5);
        canvas.object(&o);
    }
    // Speed lines behind the last position.
    let (head, before) = (along(1.0), along(0.88));
    let (dx, dy) = ((head.0 - before.0) / (head.0 - before.0).hypot(head.1 - before.1).max(1e-3), (head.1 - before.1) / (head.0 - before.0).hypot(head.1 - before.1).max(1e-3));
    for k in [-1.0f32, 0.0, 1.0] {
        let o = (head.0 - dx * r * 1.3 - dy * k * r * 0.6, head.1 - dy * r * 1.3 + dx * k * r * 0.6);
        canvas.line(o, (o.0 - dx * r * 1.2, o.1 - dy * r * 1.2), p.accent, 0.8, 2.0, None);
    }
}

/// A regular grid of identical objects with one place empty, its outline left faintly.
fn missing_one(look: &Look, canvas: &mut Canvas, rng: &mut impl Rng) {
    let p = look.palette;
    let (cells, r) = object_grid(look, rng);
    let gap = rng.random_range(0..cells.len() as i32) as usize;
    let ghost = rng.random_bool(0.6);
    for (i, &centre) in cells.iter().enumerate() {
        if i != gap {
            canvas.object(&look.object(look.shape, centre, r, look.tilt, p.main));
        } else if ghost {
            // The empty place keeps a faint trace of what belongs there.
            let mut o = look.object(look.shape, centre, r, look.tilt, p.second);
            if o.glyph.is_some() {
                o.alpha = 0.18;
            } else {
                o.alpha = 0.5;
                o.style = Style::Outline(2.0);
            }
            canvas.object(&o);
        }
    }
}

/// An object surrounded by smaller copies of itself, each surrounded in turn: a fractal.
fn self_similarity(look: &Look, canvas: &mut Canvas, rng: &mut impl Rng) {
    let p = look.palette;
    let arms = rng.random_range(3..=4);
    let ratio = rng.random_range(0.4..0.48f32);
    let start = rng.random_range(0.0..TAU);
    let root = rng.random_range(34.0..42.0) * look.scale.min(1.0);
    let colours = [p.main, p.second, p.accent];
    // (centre, radius, direction it came from, depth)
    let mut stack = vec![((SCENE / 2.0, SCENE / 2.0), root, None::<f32>, 0usize)];
    while let Some((c, r, from, depth)) = stack.pop() {
        canvas.object(&look.object(look.shape, c, r, look.tilt, colours[depth]));
        if depth == 2 {
            continue;
        }
        for k in 0..arms {
            let a = start + k as f32 / arms as f32 * TAU;
            // Skip the arm that points back at the parent.
            if from.is_some_and(|f| ((a - f + PI).rem_euclid(TAU) - PI).abs() < 0.6) {
                continue;
            }
            let d = r * (1.0 + ratio) * 1.25;
            stack.push(((c.0 + d * a.cos(), c.1 + d * a.sin()), r * ratio, Some(a + PI), depth + 1));
        }
    }
}

/// A row of objects in shuffled order of size, and below it the same objects sorted.
fn sorting(look: &Look, canvas: &mut Canvas, rng: &mut impl Rng) {
    let p = look.palette;
    let n = rng.random_range(4..=6);
    let (xs, spacing) = line_positions(n, Direction::Across);
    let mut order: Vec<usize> = (0..n).collect();
    // Neither already sorted nor simply reversed: the second row must be a real reordering.
    while order.windows(2).all(|w| w[0] < w[1]) || order.windows(2).all(|w| w[0] > w[1]) {
        order.shuffle(rng);
    }
    let r_max = spacing * 0.44 * look.scale.min(1.0);
    let r_min = r_max * 0.35;
    let size = |k: usize| r_min + (r_max - r_min) * k as f32 / (n - 1) as f32;
    let colour = |k: usize| mix(p.main, p.accent, k as f32 / (n - 1) as f32 * 0.6);
    let descending = rng.random_bool(0.3);
    let vertical = rng.random_bool(0.3);
    let at = |x: f32, row: f32| -> Pt {
        let y = SCENE / 2.0 + row * 62.0;
        if vertical {
            (y, x)
        } else {
            (x, y)
        }
    };
    for (slot, &k) in order.iter().enumerate() {
        canvas.object(&look.object(look.shape, at(xs[slot].0, -1.0), size(k), look.tilt, colour(k)));
        let sorted = if descending { n - 1 - slot } else { slot };
        canvas.object(&look.object(look.shape, at(xs[slot].0, 1.0), size(sorted), look.tilt, colour(sorted)));
    }
    canvas.arrow(at(SCENE / 2.0, -0.35), at(SCENE / 2.0, 0.3), p.second);
}
