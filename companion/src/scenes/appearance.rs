//! How a scene looks, independent of the idea it shows: object shapes, palettes, background
//! styles, and the canvas that draws them (tiny-skia, anti-aliased).

use std::f32::consts::{PI, TAU};
use std::sync::OnceLock;

use rand::Rng;
use serde::Serialize;
use tiny_skia::{Color, FillRule, GradientStop, LinearGradient, Paint, PathBuilder, Pixmap, Point, SpreadMode, Stroke, StrokeDash, Transform};

/// A 2-D point in scene units (the scene is 256 x 256 units whatever the pixel size).
pub type Pt = (f32, f32);

/// The side of the scene in scene units.
pub const SCENE: f32 = 256.0;

/// The object shapes a scene can be drawn with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    Circle,
    Square,
    Triangle,
    Pentagon,
    Hexagon,
    Star,
    Diamond,
    Heart,
    Cross,
    Crescent,
    Arrow,
    Drop,
    Flower,
    Ellipse,
}

impl Shape {
    /// Every shape, in a fixed order (the order seeds and splits depend on).
    pub const ALL: [Shape; 14] = [
        Shape::Circle,
        Shape::Square,
        Shape::Triangle,
        Shape::Pentagon,
        Shape::Hexagon,
        Shape::Star,
        Shape::Diamond,
        Shape::Heart,
        Shape::Cross,
        Shape::Crescent,
        Shape::Arrow,
        Shape::Drop,
        Shape::Flower,
        Shape::Ellipse,
    ];

    /// The name used in `data.jsonl`.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Circle => "circle",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
            Shape::Pentagon => "pentagon",
            Shape::Hexagon => "hexagon",
            Shape::Star => "star",
            Shape::Diamond => "diamond",
            Shape::Heart => "heart",
            Shape::Cross => "cross",
            Shape::Crescent => "crescent",
            Shape::Arrow => "arrow",
            Shape::Drop => "drop",
            Shape::Flower => "flower",
            Shape::Ellipse => "ellipse",
        }
    }

    /// The outline as a closed polygon around (0, 0), fitting the unit circle, "up" is -y.
    pub fn outline(self) -> &'static [Pt] {
        static OUTLINES: OnceLock<Vec<Vec<Pt>>> = OnceLock::new();
        &OUTLINES.get_or_init(|| Shape::ALL.iter().map(|s| s.make_outline()).collect())[self as usize]
    }

    fn make_outline(self) -> Vec<Pt> {
        let polar = |n: usize, r: &dyn Fn(f32) -> f32| -> Vec<Pt> {
            (0..n).map(|i| {
                let a = i as f32 / n as f32 * TAU - PI / 2.0;
                let r = r(a);
                (r * a.cos(), r * a.sin())
            }).collect()
        };
        let regular = |n: usize| polar(n, &|_| 1.0);
        match self {
            Shape::Circle => regular(72),
            Shape::Square => vec![(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)],
            Shape::Triangle => regular(3).into_iter().map(|(x, y)| (x, y + 0.15)).collect(),
            Shape::Pentagon => regular(5),
            Shape::Hexagon => regular(6),
            Shape::Star => (0..10).map(|i| {
                let a = i as f32 / 10.0 * TAU - PI / 2.0;
                let r = if i % 2 == 0 { 1.0 } else { 0.42 };
                (r * a.cos(), r * a.sin() + 0.05)
            }).collect(),
            Shape::Diamond => vec![(0.0, -1.0), (0.65, 0.0), (0.0, 1.0), (-0.65, 0.0)],
            Shape::Heart => (0..72).map(|i| {
                let t = i as f32 / 72.0 * TAU;
                let x = 16.0 * t.sin().powi(3);
                let y = 13.0 * t.cos() - 5.0 * (2.0 * t).cos() - 2.0 * (3.0 * t).cos() - (4.0 * t).cos();
                (x / 17.0, -y / 17.0 - 0.1)
            }).collect(),
            Shape::Cross => {
                let (a, b) = (0.3, 0.9);
                vec![(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a), (a, b), (-a, b), (-a, a), (-b, a), (-b, -a), (-a, -a)]
            }
            Shape::Crescent => {
                // The part of the unit circle outside a circle of radius 0.8 shifted right by 0.45.
                let (r, d) = (0.8f32, 0.45f32);
                let x = (1.0 - r * r + d * d) / (2.0 * d);
                let y = (1.0 - x * x).sqrt();
                let (outer, inner) = (y.atan2(x), y.atan2(x - d));
                let mut pts: Vec<Pt> = (0..=36).map(|i| {
                    let a = outer + (TAU - 2.0 * outer) * i as f32 / 36.0;
                    (a.cos() - 0.2, a.sin())
                }).collect();
                pts.extend((1..36).map(|i| {
                    let a = (TAU - inner) - (TAU - 2.0 * inner) * i as f32 / 36.0;
                    (d + r * a.cos() - 0.2, r * a.sin())
                }));
                pts
            }
            Shape::Arrow => vec![(0.0, -1.0), (0.75, -0.2), (0.28, -0.2), (0.28, 1.0), (-0.28, 1.0), (-0.28, -0.2), (-0.75, -0.2)],
            Shape::Drop => (0..72).map(|i| {
                // A teardrop: pointed at the top (t = 0), round at the bottom.
                let t = i as f32 / 72.0 * TAU;
                (0.8 * t.sin() * (t / 2.0).sin(), -t.cos())
            }).collect(),
            Shape::Flower => polar(96, &|a| 0.62 + 0.38 * (6.0 * a).cos().abs().powf(0.6)),
            Shape::Ellipse => polar(72, &|a| 1.0 / ((a.cos() / 0.55).powi(2) + a.sin().powi(2)).sqrt()),
        }
    }
}

/// An RGB colour.
pub type Rgb = [u8; 3];

/// A palette: object colours and a pair of background tones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Palette {
    /// The name used in `data.jsonl`.
    pub name: &'static str,
    /// The main object colour.
    pub main: Rgb,
    /// A second object colour.
    pub second: Rgb,
    /// An accent that stands out from both.
    pub accent: Rgb,
    /// Two background tones.
    pub background: [Rgb; 2],
}

/// Every palette, in a fixed order.
pub const PALETTES: [Palette; 14] = [
    Palette { name: "ember", main: [214, 69, 65], second: [244, 162, 97], accent: [42, 157, 143], background: [[253, 246, 236], [240, 222, 200]] },
    Palette { name: "ocean", main: [29, 78, 137], second: [82, 182, 200], accent: [245, 158, 11], background: [[236, 246, 250], [205, 228, 240]] },
    Palette { name: "forest", main: [45, 106, 79], second: [149, 213, 178], accent: [220, 47, 2], background: [[246, 250, 240], [218, 234, 210]] },
    Palette { name: "candy", main: [236, 72, 153], second: [167, 139, 250], accent: [250, 204, 21], background: [[255, 245, 250], [243, 222, 238]] },
    Palette { name: "earth", main: [120, 72, 40], second: [196, 160, 110], accent: [70, 130, 180], background: [[248, 242, 230], [230, 216, 194]] },
    Palette { name: "neon", main: [57, 255, 20], second: [0, 229, 255], accent: [255, 0, 110], background: [[22, 22, 32], [48, 42, 64]] },
    Palette { name: "pastel", main: [120, 165, 225], second: [242, 176, 190], accent: [100, 190, 140], background: [[252, 252, 248], [234, 234, 226]] },
    Palette { name: "mono", main: [40, 40, 40], second: [140, 140, 140], accent: [220, 40, 40], background: [[250, 250, 250], [222, 222, 222]] },
    Palette { name: "autumn", main: [191, 91, 23], second: [222, 170, 40], accent: [80, 50, 120], background: [[250, 240, 225], [234, 212, 180]] },
    Palette { name: "berry", main: [110, 30, 90], second: [200, 80, 140], accent: [40, 160, 120], background: [[250, 240, 245], [230, 212, 226]] },
    Palette { name: "ice", main: [60, 120, 200], second: [150, 200, 235], accent: [230, 90, 60], background: [[245, 250, 255], [216, 230, 245]] },
    Palette { name: "desert", main: [200, 120, 60], second: [226, 186, 116], accent: [40, 120, 130], background: [[252, 244, 228], [236, 218, 184]] },
    Palette { name: "midnight", main: [255, 209, 102], second: [239, 71, 111], accent: [6, 214, 160], background: [[15, 25, 50], [34, 50, 88]] },
    Palette { name: "citrus", main: [245, 150, 0], second: [130, 190, 40], accent: [60, 90, 200], background: [[255, 252, 235], [244, 238, 200]] },
];

/// How the background is painted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BackgroundStyle {
    Plain,
    Gradient,
    Noise,
    Stripes,
    Paper,
    Dots,
}

impl BackgroundStyle {
    /// Every style, in a fixed order.
    pub const ALL: [BackgroundStyle; 6] = [
        BackgroundStyle::Plain,
        BackgroundStyle::Gradient,
        BackgroundStyle::Noise,
        BackgroundStyle::Stripes,
        BackgroundStyle::Paper,
        BackgroundStyle::Dots,
    ];

    /// The style only the test split shows.
    pub const TEST_ONLY: BackgroundStyle = BackgroundStyle::Dots;

    /// The name used in `data.jsonl`.
    pub fn name(self) -> &'static str {
        match self {
            BackgroundStyle::Plain => "plain",
            BackgroundStyle::Gradient => "gradient",
            BackgroundStyle::Noise => "noise",
            BackgroundStyle::Stripes => "stripes",
            BackgroundStyle::Paper => "paper",
            BackgroundStyle::Dots => "dots",
        }
    }
}

/// Filled objects, or outlines of a given width (scene units).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Style {
    Fill,
    Outline(f32),
}

/// One object to draw: a shape placed, sized, turned and coloured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Object {
    pub shape: Shape,
    pub centre: Pt,
    /// Radius in scene units (the outline fits a circle of this radius).
    pub radius: f32,
    /// Clockwise turn in degrees.
    pub rotation: f32,
    pub colour: Rgb,
    pub alpha: f32,
    pub style: Style,
    /// A real object (index into [`super::objects::all`]) drawn instead of the shape, tinted
    /// toward `colour`; the shape is drawn where the font lacks it.
    pub glyph: Option<usize>,
}

impl Object {
    /// The outline in scene coordinates.
    pub fn points(&self) -> Vec<Pt> {
        let (s, c) = self.rotation.to_radians().sin_cos();
        self.shape
            .outline()
            .iter()
            .map(|&(x, y)| (self.centre.0 + self.radius * (x * c - y * s), self.centre.1 + self.radius * (x * s + y * c)))
            .collect()
    }
}

/// Where the whole composition sits in the scene: shrunk, moved, turned by quarter turns and
/// mirrored, so that placement tells nothing about the relation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Framing {
    pub scale: f32,
    pub offset: Pt,
    pub quarter_turns: u8,
    pub mirror: bool,
}

impl Framing {
    /// The composition as drawn: full size, centred, upright.
    pub const IDENTITY: Framing = Framing { scale: 1.0, offset: (0.0, 0.0), quarter_turns: 0, mirror: false };

    /// A random framing; `turns` says whether quarter turns are allowed (not for gravity).
    pub fn sample(rng: &mut impl Rng, turns: bool) -> Framing {
        let scale = rng.random_range(0.6f32..1.0);
        let room = SCENE / 2.0 * (1.0 - scale);
        Framing {
            scale,
            offset: (rng.random_range(-room..=room), rng.random_range(-room..=room)),
            quarter_turns: if turns { rng.random_range(0..4) } else { 0 },
            mirror: rng.random_bool(0.5),
        }
    }

    fn transform(&self) -> Transform {
        let c = SCENE / 2.0;
        Transform::from_translate(-c, -c)
            .post_scale(if self.mirror { -1.0 } else { 1.0 }, 1.0)
            .post_rotate(90.0 * f32::from(self.quarter_turns))
            .post_scale(self.scale, self.scale)
            .post_translate(c + self.offset.0, c + self.offset.1)
    }
}

/// A pixmap with scene coordinates mapped to pixels.
pub struct Canvas {
    pub pixmap: Pixmap,
    scale: f32,
    frame: Transform,
}

fn colour(rgb: Rgb, alpha: f32) -> Color {
    Color::from_rgba8(rgb[0], rgb[1], rgb[2], (alpha.clamp(0.0, 1.0) * 255.0).round() as u8)
}

/// The closed outline through `points` (None when they outline nothing).
fn closed_path(points: &[Pt]) -> Option<tiny_skia::Path> {
    let (first, rest) = points.split_first()?;
    let mut pb = PathBuilder::new();
    pb.move_to(first.0, first.1);
    for p in rest {
        pb.line_to(p.0, p.1);
    }
    pb.close();
    pb.finish()
}

fn paint(rgb: Rgb, alpha: f32) -> Paint<'static> {
    let mut p = Paint::default();
    p.set_color(colour(rgb, alpha));
    p.anti_alias = true;
    p
}

/// How far a real object's colours are mixed toward the colour its scene gives it.
pub const GLYPH_TINT: f32 = 0.4;

/// `bitmap` (premultiplied) with its colours mixed toward `rgb` by `t`, alpha kept.
fn tint_pixmap(bitmap: &Pixmap, rgb: Rgb, t: f32) -> Pixmap {
    let mut out = bitmap.clone();
    for px in out.data_mut().chunks_exact_mut(4) {
        let alpha = f32::from(px[3]);
        for (c, &target) in px[..3].iter_mut().zip(&rgb) {
            *c = (f32::from(*c) * (1.0 - t) + f32::from(target) * alpha / 255.0 * t).round().min(alpha) as u8;
        }
    }
    out
}

/// Mixes two colours: t = 0 gives `a`, t = 1 gives `b`.
pub fn mix(a: Rgb, b: Rgb, t: f32) -> Rgb {
    [0, 1, 2].map(|i| (f32::from(a[i]) + (f32::from(b[i]) - f32::from(a[i])) * t).round().clamp(0.0, 255.0) as u8)
}

impl Canvas {
    /// A transparent canvas `size` pixels square.
    pub fn new(size: u32) -> Self {
        let pixmap = Pixmap::new(size, size).expect("canvas size is positive");
        Canvas { pixmap, scale: size as f32 / SCENE, frame: Transform::identity() }
    }

    /// Places everything drawn from now on (the background is drawn unframed, before).
    pub fn set_framing(&mut self, framing: &Framing) {
        self.frame = framing.transform();
    }

    fn transform(&self) -> Transform {
        self.frame.post_scale(self.scale, self.scale)
    }

    /// Fills (or outlines) a closed polygon given in scene coordinates.
    pub fn polygon(&mut self, points: &[Pt], rgb: Rgb, alpha: f32, style: Style) {
        let Some(path) = closed_path(points) else { return };
        let ts = self.transform();
        match style {
            Style::Fill => self.pixmap.fill_path(&path, &paint(rgb, alpha), FillRule::Winding, ts, None),
            Style::Outline(width) => {
                let stroke = Stroke { width, line_join: tiny_skia::LineJoin::Round, ..Stroke::default() };
                self.pixmap.stroke_path(&path, &paint(rgb, alpha), &stroke, ts, None)
            }
        }
    }

    /// Draws one object.
    pub fn object(&mut self, o: &Object) {
        self.object_in(o, Transform::identity());
    }

    /// Draws the mirror image of `o` across the scene's vertical (or horizontal) centre line.
    pub fn object_reflected(&mut self, o: &Object, vertical_axis: bool) {
        let reflect = if vertical_axis {
            Transform::from_row(-1.0, 0.0, 0.0, 1.0, SCENE, 0.0)
        } else {
            Transform::from_row(1.0, 0.0, 0.0, -1.0, 0.0, SCENE)
        };
        self.object_in(o, reflect);
    }

    /// Draws `o` moved by `place` (in scene units).
    fn object_in(&mut self, o: &Object, place: Transform) {
        let glyphs = o.glyph.and_then(|i| super::objects::Glyphs::shared().ok().and_then(|g| g.get(i)));
        match glyphs {
            Some(glyph) => self.glyph_in(glyph, o.centre, o.radius, o.rotation, o.alpha, Some((o.colour, GLYPH_TINT)), place),
            None => {
                let points: Vec<Pt> = o.points().into_iter().map(|(x, y)| {
                    let mut p = [Point::from_xy(x, y)];
                    place.map_points(&mut p);
                    (p[0].x, p[0].y)
                }).collect();
                self.polygon(&points, o.colour, o.alpha, o.style)
            }
        }
    }

    /// Draws a real object's glyph centred at `centre`, its larger side `2·radius` scene units,
    /// turned clockwise by `rotation` degrees.
    /// `tint` mixes the glyph's colours toward a colour by a fraction (colour relations stay
    /// visible on objects that have their own colours).
    pub fn glyph(&mut self, glyph: &super::objects::Glyph, centre: Pt, radius: f32, rotation: f32, alpha: f32, tint: Option<(Rgb, f32)>) {
        self.glyph_in(glyph, centre, radius, rotation, alpha, tint, Transform::identity());
    }

    /// [`Canvas::glyph`], then moved by `place` (in scene units).
    #[allow(clippy::too_many_arguments)]
    fn glyph_in(&mut self, glyph: &super::objects::Glyph, centre: Pt, radius: f32, rotation: f32, alpha: f32, tint: Option<(Rgb, f32)>, place: Transform) {
        let ts = place.post_concat(self.transform());
        // The glyph's size on the canvas, to draw from the bitmap nearest above it.
        let pixels = 2.0 * radius * (ts.sx * ts.sx + ts.ky * ts.ky).sqrt();
        let tinted;
        let bitmap = match tint {
            Some((rgb, t)) => {
                tinted = tint_pixmap(glyph.for_size(pixels), rgb, t);
                &tinted
            }
            None => glyph.for_size(pixels),
        };
        let (w, h) = (bitmap.width() as f32, bitmap.height() as f32);
        let scale = 2.0 * radius / w.max(h);
        let at = Transform::from_translate(-w / 2.0, -h / 2.0)
            .post_scale(scale, scale)
            .post_rotate(rotation)
            .post_translate(centre.0, centre.1)
            .post_concat(ts);
        let paint = tiny_skia::PixmapPaint { opacity: alpha.clamp(0.0, 1.0), blend_mode: tiny_skia::BlendMode::SourceOver, quality: tiny_skia::FilterQuality::Bilinear };
        self.pixmap.draw_pixmap(0, 0, bitmap.as_ref(), &paint, at, None);
    }

    /// Draws what `draw` paints, kept only inside the circle at `centre` of `radius` (scene
    /// units): a magnifier's inset.
    pub fn clipped_to_circle(&mut self, centre: Pt, radius: f32, draw: impl FnOnce(&mut Canvas)) {
        if let Some(circle) = PathBuilder::from_circle(centre.0, centre.1, radius) {
            self.clipped_to(&circle, draw);
        }
    }

    /// Draws what `draw` paints, kept only inside the polygon `points` (scene units): a piece
    /// of something cut apart.
    pub fn clipped_to_polygon(&mut self, points: &[Pt], draw: impl FnOnce(&mut Canvas)) {
        if let Some(path) = closed_path(points) {
            self.clipped_to(&path, draw);
        }
    }

    fn clipped_to(&mut self, clip: &tiny_skia::Path, draw: impl FnOnce(&mut Canvas)) {
        let (w, h) = (self.pixmap.width(), self.pixmap.height());
        let (Some(pixmap), Some(mut mask)) = (Pixmap::new(w, h), tiny_skia::Mask::new(w, h)) else {
            return;
        };
        let mut layer = Canvas { pixmap, scale: self.scale, frame: self.frame };
        draw(&mut layer);
        mask.fill_path(clip, FillRule::Winding, true, self.transform());
        self.pixmap.draw_pixmap(0, 0, layer.pixmap.as_ref(), &tiny_skia::PixmapPaint::default(), Transform::identity(), Some(&mask));
    }

    /// A straight line, dashed when `dash` is given (dash and gap lengths).
    pub fn line(&mut self, from: Pt, to: Pt, rgb: Rgb, alpha: f32, width: f32, dash: Option<(f32, f32)>) {
        let mut pb = PathBuilder::new();
        pb.move_to(from.0, from.1);
        pb.line_to(to.0, to.1);
        let Some(path) = pb.finish() else { return };
        let stroke = Stroke {
            width,
            line_cap: tiny_skia::LineCap::Round,
            dash: dash.and_then(|(on, off)| StrokeDash::new(vec![on, off], 0.0)),
            ..Stroke::default()
        };
        self.pixmap.stroke_path(&path, &paint(rgb, alpha), &stroke, self.transform(), None);
    }

    /// A rounded rectangle (a panel frame), filled and outlined.
    pub fn panel(&mut self, x: f32, y: f32, w: f32, h: f32, fill: Rgb, fill_alpha: f32, border: Rgb, border_width: f32) {
        let r = 8.0f32.min(w / 4.0).min(h / 4.0);
        let mut pb = PathBuilder::new();
        pb.move_to(x + r, y);
        pb.line_to(x + w - r, y);
        pb.quad_to(x + w, y, x + w, y + r);
        pb.line_to(x + w, y + h - r);
        pb.quad_to(x + w, y + h, x + w - r, y + h);
        pb.line_to(x + r, y + h);
        pb.quad_to(x, y + h, x, y + h - r);
        pb.line_to(x, y + r);
        pb.quad_to(x, y, x + r, y);
        pb.close();
        let Some(path) = pb.finish() else { return };
        let ts = self.transform();
        self.pixmap.fill_path(&path, &paint(fill, fill_alpha), FillRule::Winding, ts, None);
        let stroke = Stroke { width: border_width, ..Stroke::default() };
        self.pixmap.stroke_path(&path, &paint(border, 0.9), &stroke, ts, None);
    }

    /// An arrow from `from` to `to` (a shaft and a head), for "becomes" between panels.
    pub fn arrow(&mut self, from: Pt, to: Pt, rgb: Rgb) {
        self.line(from, to, rgb, 0.9, 3.0, None);
        let (dx, dy) = (to.0 - from.0, to.1 - from.1);
        let len = (dx * dx + dy * dy).sqrt().max(1e-3);
        let (ux, uy) = (dx / len, dy / len);
        let head = [(to.0 + ux * 4.0, to.1 + uy * 4.0), (to.0 - ux * 8.0 - uy * 6.0, to.1 - uy * 8.0 + ux * 6.0), (to.0 - ux * 8.0 + uy * 6.0, to.1 - uy * 8.0 - ux * 6.0)];
        self.polygon(&head, rgb, 0.9, Style::Fill);
    }

    /// Paints the whole canvas with a background style in the palette's background tones.
    pub fn background(&mut self, style: BackgroundStyle, palette: &Palette, rng: &mut impl Rng) {
        let framed = std::mem::replace(&mut self.frame, Transform::identity());
        self.paint_background(style, palette, rng);
        self.frame = framed;
    }

    fn paint_background(&mut self, style: BackgroundStyle, palette: &Palette, rng: &mut impl Rng) {
        let [a, b] = palette.background;
        let size = self.pixmap.width() as usize;
        match style {
            BackgroundStyle::Plain => self.pixmap.fill(colour(a, 1.0)),
            BackgroundStyle::Gradient => {
                let angle = rng.random_range(0.0..TAU);
                let (s, c) = angle.sin_cos();
                let (cx, cy, r) = (SCENE / 2.0, SCENE / 2.0, SCENE * 0.6);
                let shader = LinearGradient::new(
                    Point::from_xy(cx - c * r, cy - s * r),
                    Point::from_xy(cx + c * r, cy + s * r),
                    vec![GradientStop::new(0.0, colour(a, 1.0)), GradientStop::new(1.0, colour(mix(b, palette.second, 0.25), 1.0))],
                    SpreadMode::Pad,
                    Transform::identity(),
                )
                .expect("a gradient with two stops and distinct ends");
                let p = Paint { shader, anti_alias: true, ..Paint::default() };
                let rect = tiny_skia::Rect::from_xywh(0.0, 0.0, SCENE, SCENE).expect("scene rect");
                self.pixmap.fill_rect(rect, &p, Transform::from_scale(self.scale, self.scale), None);
            }
            BackgroundStyle::Noise => {
                // Smooth value noise: a coarse random grid, bilinearly interpolated.
                let grid = rng.random_range(5usize..10);
                let values: Vec<f32> = (0..(grid + 1) * (grid + 1)).map(|_| rng.random::<f32>()).collect();
                let cell = size as f32 / grid as f32;
                self.fill_pixels(|x, y| {
                    let (gx, gy) = (x as f32 / cell, y as f32 / cell);
                    let (ix, iy) = ((gx as usize).min(grid - 1), (gy as usize).min(grid - 1));
                    let (fx, fy) = (smooth(gx - ix as f32), smooth(gy - iy as f32));
                    let v = |i: usize, j: usize| values[j * (grid + 1) + i];
                    let top = v(ix, iy) + (v(ix + 1, iy) - v(ix, iy)) * fx;
                    let bottom = v(ix, iy + 1) + (v(ix + 1, iy + 1) - v(ix, iy + 1)) * fx;
                    mix(a, b, top + (bottom - top) * fy)
                });
            }
            BackgroundStyle::Stripes => {
                self.pixmap.fill(colour(a, 1.0));
                let angle: f32 = rng.random_range(0.0f32..180.0);
                let period = rng.random_range(14.0f32..30.0);
                let (s, c) = angle.to_radians().sin_cos();
                // Lines across the scene, perpendicular to the stripe direction.
                let mut t = -SCENE;
                while t < SCENE {
                    let (mx, my) = (SCENE / 2.0 + c * t, SCENE / 2.0 + s * t);
                    let from = (mx - s * SCENE, my + c * SCENE);
                    let to = (mx + s * SCENE, my - c * SCENE);
                    self.line(from, to, b, 0.8, period * 0.45, None);
                    t += period;
                }
            }
            BackgroundStyle::Paper => {
                // A warm sheet with fine grain and a few faint fibres.
                let base = mix(a, [245, 238, 220], 0.35);
                let grain: Vec<i16> = (0..size * size).map(|_| rng.random_range(-7i16..=7)).collect();
                self.fill_pixels(|x, y| base.map(|c| (i16::from(c) + grain[y * size + x]).clamp(0, 255) as u8));
                for _ in 0..rng.random_range(8..16) {
                    let (x, y) = (rng.random_range(0.0..SCENE), rng.random_range(0.0..SCENE));
                    let angle = rng.random_range(0.0..TAU);
                    let len = rng.random_range(10.0..40.0);
                    self.line((x, y), (x + angle.cos() * len, y + angle.sin() * len), b, 0.5, 0.8, None);
                }
            }
            BackgroundStyle::Dots => {
                self.pixmap.fill(colour(a, 1.0));
                let period = rng.random_range(16.0f32..28.0);
                let radius = period * rng.random_range(0.12f32..0.22);
                let offset = rng.random_range(0.0..period);
                let mut row = 0;
                let mut y = offset - period;
                while y < SCENE + period {
                    let shift = if row % 2 == 0 { 0.0 } else { period / 2.0 };
                    let mut x = offset - period + shift;
                    while x < SCENE + period {
                        let dot = Object { shape: Shape::Circle, centre: (x, y), radius, rotation: 0.0, colour: b, alpha: 1.0, style: Style::Fill, glyph: None };
                        self.object(&dot);
                        x += period;
                    }
                    y += period;
                    row += 1;
                }
            }
        }
    }

    /// Sets every pixel (opaque) from a function of its pixel coordinates.
    fn fill_pixels(&mut self, f: impl Fn(usize, usize) -> Rgb) {
        let size = self.pixmap.width() as usize;
        let data = self.pixmap.data_mut();
        for y in 0..size {
            for x in 0..size {
                let [r, g, b] = f(x, y);
                data[(y * size + x) * 4..(y * size + x) * 4 + 4].copy_from_slice(&[r, g, b, 255]);
            }
        }
    }

    /// The opaque RGB pixels (the background makes every pixel opaque).
    pub fn to_rgb(&self) -> image::RgbImage {
        let (w, h) = (self.pixmap.width(), self.pixmap.height());
        let rgb: Vec<u8> = self.pixmap.data().chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
        image::RgbImage::from_raw(w, h, rgb).expect("buffer matches the canvas size")
    }
}

fn smooth(t: f32) -> f32 {
    t * t * (3.0 - 2.0 * t)
}

/// Whether `p` lies inside the closed polygon `poly` (even-odd rule).
pub fn inside(poly: &[Pt], p: Pt) -> bool {
    let mut inside = false;
    let mut j = poly.len() - 1;
    for i in 0..poly.len() {
        let (a, b) = (poly[i], poly[j]);
        if (a.1 > p.1) != (b.1 > p.1) && p.0 < (b.0 - a.0) * (p.1 - a.1) / (b.1 - a.1) + a.0 {
            inside = !inside;
        }
        j = i;
    }
    inside
}

/// Points spaced evenly by arc length along a closed polygon.
pub fn along_outline(poly: &[Pt], count: usize) -> Vec<Pt> {
    let seg = |i: usize| (poly[i], poly[(i + 1) % poly.len()]);
    let len = |(a, b): (Pt, Pt)| ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
    let total: f32 = (0..poly.len()).map(|i| len(seg(i))).sum();
    let step = total / count as f32;
    let (mut out, mut i, mut walked) = (Vec::with_capacity(count), 0, 0.0);
    for k in 0..count {
        let target = k as f32 * step;
        while i < poly.len() - 1 && walked + len(seg(i)) < target {
            walked += len(seg(i));
            i += 1;
        }
        let (a, b) = seg(i);
        let t = ((target - walked) / len((a, b)).max(1e-6)).clamp(0.0, 1.0);
        out.push((a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t));
    }
    out
}

/// Clips a convex or concave polygon to the half-plane `n · p >= c` (Sutherland–Hodgman).
pub fn clip_half_plane(poly: &[Pt], n: Pt, c: f32) -> Vec<Pt> {
    let side = |p: Pt| n.0 * p.0 + n.1 * p.1 - c;
    let mut out = Vec::with_capacity(poly.len() + 2);
    for i in 0..poly.len() {
        let (a, b) = (poly[i], poly[(i + 1) % poly.len()]);
        let (sa, sb) = (side(a), side(b));
        if sa >= 0.0 {
            out.push(a);
        }
        if (sa >= 0.0) != (sb >= 0.0) {
            let t = sa / (sa - sb);
            out.push((a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t));
        }
    }
    out
}
