//! Sampling, rendering and writing a scene set: `relsim scenes generate` and `relsim scenes sheet`.

use std::path::Path;

use anyhow::Context;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, ImageEncoder, RgbImage};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::files::{content_hash, write_atomically};

use super::appearance::{BackgroundStyle, Canvas, Framing, Shape, Style, PALETTES};
use super::objects::{self, Category};
use super::relations::{draw, Look, RealObjects, Relation};

/// The default image side in pixels.
pub const DEFAULT_SIZE: u32 = 256;

/// Which part of the set a scene belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    /// The name used in `data.jsonl`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }

    /// The split of a shape x palette combination: 1 in 8 combinations is test-only, 1 in 8
    /// val-only; every shape and every palette still appears in train with other partners.
    pub fn of_combination(shape: Shape, palette: usize) -> Split {
        match (shape as usize * 3 + palette) % 8 {
            0 => Split::Test,
            1 => Split::Val,
            _ => Split::Train,
        }
    }

    /// The object categories this split may draw (train and val never draw the test-only ones).
    pub fn categories(self) -> Vec<Category> {
        Category::ALL.into_iter().filter(|c| self == Split::Test || !Category::TEST_ONLY.contains(c)).collect()
    }

    /// The background styles this split may show (train and val never show the test-only one).
    pub fn backgrounds(self) -> Vec<BackgroundStyle> {
        BackgroundStyle::ALL.into_iter().filter(|b| self == Split::Test || *b != BackgroundStyle::TEST_ONLY).collect()
    }
}

/// Everything that decides one scene, before it is drawn.
#[derive(Debug, Clone)]
pub struct SceneSpec {
    pub index: usize,
    pub relation: Relation,
    pub split: Split,
    /// The second idea of a two-idea scene (`--multi`): a change running along `relation`.
    pub second: Option<Relation>,
    pub look: Look,
    pub background: BackgroundStyle,
    pub caption: String,
}

/// The appearance attributes written to `data.jsonl` (empty for imported images).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attributes {
    pub shape: String,
    pub palette: String,
    pub background: String,
    pub style: String,
    pub other_shape: String,
    /// The real object drawn for the shape (its Unicode name), empty for shapes.
    #[serde(default)]
    pub object: String,
    /// The object's category, or `shape` when the scene draws shapes.
    #[serde(default)]
    pub object_category: String,
}

/// One line of `data.jsonl`: the relsim dataset format (`image_hash`, `caption`; the image is
/// `images/{image_hash}.png`) plus the ground truth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub image_hash: String,
    pub caption: String,
    pub relation: String,
    /// The second idea of a two-idea scene (`--multi`), absent in the one-idea sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_relation: Option<String>,
    pub split: Split,
    #[serde(default)]
    pub attributes: Attributes,
}

impl Record {
    /// The scene's idea as a label for training and scoring: its family's index in
    /// [`Relation::ALL`], or for a two-idea scene `Relation::ALL.len()` + its pair's index in
    /// [`super::multi::PAIRS`]; None for a family or pair this build does not know.
    pub fn idea_id(&self) -> Option<usize> {
        let first = Relation::from_name(&self.relation)?;
        match self.second_relation.as_deref() {
            None => Relation::ALL.iter().position(|r| *r == first),
            Some(second) => {
                let second = Relation::from_name(second)?;
                let pair = super::multi::PAIRS.iter().position(|p| *p == (first, second))?;
                Some(Relation::ALL.len() + pair)
            }
        }
    }

    /// Whether the scene shows the family named `relation`, as its idea or as its second one.
    pub fn shows(&self, relation: &str) -> bool {
        self.relation == relation || self.second_relation.as_deref() == Some(relation)
    }
}

/// Scenes cycle through the relations, so every split holds all of them in equal numbers;
/// blocks of one scene per relation go to train, val or test in a fixed pattern.
fn split_of_block(block: usize) -> Split {
    match block % 10 {
        1 => Split::Test,
        3 => Split::Val,
        _ => Split::Train,
    }
}

/// Salt of the streams that pick real objects, apart from the scenes' own streams.
const OBJECT_STREAM: u64 = 0x6f62_6a65_6374_73;

/// Salt of the two-idea sets' seeds: their scenes are not re-drawings of the one-idea sets'.
const PAIR_STREAM: u64 = 0x7061_6972_73;

/// Indices into [`objects::all`] of the objects of `category`.
fn objects_of(category: Category) -> Vec<usize> {
    objects::all().iter().enumerate().filter(|(_, o)| o.category == category).map(|(i, _)| i).collect()
}

/// The random stream of scene `index` (independent of every other scene, so scenes can be
/// drawn in any order on any number of threads with identical results).
fn scene_rng(seed: u64, index: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index as u64);
    rng
}

/// Which relation families a scene set cycles through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Families {
    /// The fourteen families of the first scene sets: their scenes are exactly as they were.
    Classic,
    /// Every family, those about structure too.
    All,
    /// Two ideas per scene: an arrangement with a change along it ([`super::multi::PAIRS`]).
    Pairs,
    /// Every family and every pair, one scene of each per block: training data for a model
    /// that reads one idea or two.
    AllAndPairs,
}

impl Families {
    /// The families the set shows (for one-idea sets, in the order scenes cycle through them).
    pub fn relations(self) -> &'static [Relation] {
        match self {
            Families::Classic => Relation::CLASSIC,
            Families::All => &Relation::ALL,
            Families::Pairs => &super::multi::FAMILIES,
            Families::AllAndPairs => &Relation::ALL,
        }
    }

    /// The kinds of scene a block holds one of: families, or pairs of them.
    pub fn kinds(self) -> usize {
        match self {
            Families::Pairs => super::multi::PAIRS.len(),
            Families::AllAndPairs => Relation::ALL.len() + super::multi::PAIRS.len(),
            one => one.relations().len(),
        }
    }

    /// The idea (and the second idea, if any) of kind `k`.
    pub fn kind(self, k: usize) -> (Relation, Option<Relation>) {
        match self {
            Families::Pairs => {
                let (arrangement, change) = super::multi::PAIRS[k];
                (arrangement, Some(change))
            }
            Families::AllAndPairs if k >= Relation::ALL.len() => Families::Pairs.kind(k - Relation::ALL.len()),
            one => (one.relations()[k], None),
        }
    }

    /// A short label of kind `k` for contact sheets.
    pub fn label(self, k: usize) -> String {
        match self.kind(k) {
            (first, Some(second)) => format!("{}+{}", first.name(), second.name()),
            (first, None) => first.name().to_string(),
        }
    }

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Families::Classic => "classic",
            Families::All => "all",
            Families::Pairs => "pairs",
            Families::AllAndPairs => "all+pairs",
        }
    }
}

/// What decides every scene of a set but its index.
#[derive(Debug, Clone, Copy)]
pub struct SceneSet {
    pub seed: u64,
    pub families: Families,
    /// The fraction of the scenes whose idea allows it that draw real objects instead of shapes.
    pub objects: f64,
    /// Image side in pixels.
    pub size: u32,
}

impl SceneSet {
    /// Today's first scene sets: the classic families, shapes only, at the default size.
    pub fn classic(seed: u64) -> SceneSet {
        SceneSet { seed, families: Families::Classic, objects: 0.0, size: DEFAULT_SIZE }
    }

    /// Scene `index` of the set and the stream to draw it with.
    pub fn spec(&self, index: usize) -> (SceneSpec, ChaCha8Rng) {
        let kinds = self.families.kinds();
        let (relation, second) = self.families.kind(index % kinds);
        let split = split_of_block(index / kinds);
        let seed = if second.is_some() { self.seed ^ PAIR_STREAM } else { self.seed };
        let (mut spec, mut rng) = SceneSpec::sample_look(seed, index, relation, split);
        if let Some(second) = second {
            let caption = second.training_captions().choose(&mut rng).expect("captions");
            spec.caption = format!("{}; {caption}", spec.caption);
            spec.second = Some(second);
        }
        if self.objects > 0.0 && spec.relation.draws_objects() {
            let mut pick = scene_rng(seed ^ OBJECT_STREAM, index);
            if pick.random_bool(self.objects.min(1.0)) {
                let categories = spec.split.categories();
                let category = *categories.choose(&mut pick).expect("every split has categories");
                let main = *objects_of(category).choose(&mut pick).expect("every category has objects");
                // The second object is another thing of the same kind: the odd one out differs
                // in what it is, not in what kind of thing it is.
                let others: Vec<usize> = objects_of(category).into_iter().filter(|&i| i != main).collect();
                let other = *others.choose(&mut pick).expect("every category has two objects");
                spec.look.objects = Some(RealObjects { main, other });
            }
        }
        (spec, rng)
    }
}

impl SceneSpec {
    /// Samples scene `index` of the classic set with `seed`; returns it and the stream to draw it with.
    pub fn sample(seed: u64, index: usize) -> (SceneSpec, ChaCha8Rng) {
        SceneSet::classic(seed).spec(index)
    }

    /// Like [`SceneSpec::sample`], but a fraction `objects` of the scenes whose idea can be
    /// drawn with things draw real objects (of the split's categories) instead of shapes. The
    /// choice comes from a stream of its own: the rest of the scene is the same as with shapes.
    pub fn sample_with_objects(seed: u64, index: usize, objects: f64) -> (SceneSpec, ChaCha8Rng) {
        SceneSet { objects, ..SceneSet::classic(seed) }.spec(index)
    }

    /// The look of scene `index` showing `relation` in `split`, drawn from the scene's stream.
    fn sample_look(seed: u64, index: usize, relation: Relation, split: Split) -> (SceneSpec, ChaCha8Rng) {
        let mut rng = scene_rng(seed, index);
        let combos: Vec<(Shape, usize)> = Shape::ALL
            .into_iter()
            .flat_map(|s| (0..PALETTES.len()).map(move |p| (s, p)))
            .filter(|&(s, p)| Split::of_combination(s, p) == split)
            .collect();
        let &(shape, palette) = combos.choose(&mut rng).expect("every split has combinations");
        let others: Vec<Shape> = Shape::ALL.into_iter().filter(|s| *s != shape).collect();
        let other_shape = *others.choose(&mut rng).expect("more than one shape");
        let style = if rng.random_bool(0.7) { Style::Fill } else { Style::Outline(rng.random_range(2.5..4.5)) };
        let tilt = if rng.random_bool(0.5) { rng.random_range(-12.0..12.0) } else { rng.random_range(0.0..360.0) };
        let look = Look {
            shape,
            other_shape,
            palette: &PALETTES[palette],
            style,
            tilt,
            jitter: rng.random_range(0.0..5.0),
            scale: rng.random_range(0.85..1.1),
            framing: Framing::sample(&mut rng, relation.turnable()),
            objects: None,
        };
        let background = *split.backgrounds().choose(&mut rng).expect("every split has backgrounds");
        let caption = relation.training_captions().choose(&mut rng).expect("captions").to_string();
        (SceneSpec { index, relation, second: None, split, look, background, caption }, rng)
    }

    /// The attributes as written to `data.jsonl`.
    pub fn attributes(&self) -> Attributes {
        Attributes {
            shape: self.look.shape.name().into(),
            palette: self.look.palette.name.into(),
            background: self.background.name().into(),
            style: match self.look.style {
                Style::Fill => "fill".into(),
                Style::Outline(_) => "outline".into(),
            },
            other_shape: self.look.other_shape.name().into(),
            object: self.look.objects.map_or(String::new(), |o| objects::all()[o.main].name.into()),
            object_category: self.look.objects.map_or("shape".into(), |o| objects::all()[o.main].category.name().into()),
        }
    }
}

/// The scenes of `split` among the first `blocks` blocks (ten per family) of `set`, drawn in
/// memory (no files): fresh evaluation sets for tests.
pub fn sample_split(set: &SceneSet, blocks: usize, split: Split) -> (Vec<RgbImage>, Vec<Record>) {
    let families = set.families.kinds();
    let indices: Vec<usize> = (0..blocks * 10 * families).filter(|i| split_of_block(i / families) == split).collect();
    let scenes: Vec<(RgbImage, Record)> = indices
        .into_par_iter()
        .map(|index| {
            let (spec, mut rng) = set.spec(index);
            let image = render(&spec, &mut rng, set.size);
            let record = Record {
                image_hash: index.to_string(),
                relation: spec.relation.name().to_string(),
                second_relation: spec.second.map(|r| r.name().to_string()),
                caption: spec.caption.clone(),
                split: spec.split,
                attributes: spec.attributes(),
            };
            (image, record)
        })
        .collect();
    scenes.into_iter().unzip()
}

/// Draws a scene `size` pixels square.
pub fn render(spec: &SceneSpec, rng: &mut ChaCha8Rng, size: u32) -> RgbImage {
    let mut canvas = Canvas::new(size);
    canvas.background(spec.background, spec.look.palette, rng);
    canvas.set_framing(&spec.look.framing);
    match spec.second {
        Some(change) => super::multi::draw(spec.relation, change, &spec.look, &mut canvas, rng),
        None => draw(spec.relation, &spec.look, &mut canvas, rng),
    }
    canvas.to_rgb()
}

/// PNG bytes of an RGB image (fast deflate: the set is regenerated, not archived).
pub fn encode_png(image: &RgbImage) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(64 * 1024);
    PngEncoder::new_with_quality(&mut bytes, CompressionType::Fast, FilterType::Adaptive)
        .write_image(image.as_raw(), image.width(), image.height(), ExtendedColorType::Rgb8)
        .context("encoding a scene as PNG")?;
    Ok(bytes)
}

/// The content hash naming an image file: the first 16 bytes of SHA-256, in hex.
pub fn image_hash(png: &[u8]) -> String {
    let mut hash = content_hash(png);
    hash.truncate(32);
    hash
}

/// Renders, encodes and names scene `index` of `set`.
pub fn make_scene(set: &SceneSet, index: usize) -> anyhow::Result<(Record, Vec<u8>)> {
    let (spec, mut rng) = set.spec(index);
    let png = encode_png(&render(&spec, &mut rng, set.size))?;
    let record = Record {
        image_hash: image_hash(&png),
        relation: spec.relation.name().into(),
        second_relation: spec.second.map(|r| r.name().into()),
        caption: spec.caption.clone(),
        split: spec.split,
        attributes: spec.attributes(),
    };
    Ok((record, png))
}

/// The caption paraphrases of every relation, written beside `data.jsonl` as `captions.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct CaptionBank {
    pub relation: String,
    pub training: Vec<String>,
    pub evaluation: String,
}

/// The captions of the relations of `families`.
pub fn caption_bank(families: Families) -> Vec<CaptionBank> {
    families
        .relations()
        .iter()
        .map(|r| CaptionBank {
            relation: r.name().into(),
            training: r.training_captions().iter().map(|c| c.to_string()).collect(),
            evaluation: r.evaluation_caption().into(),
        })
        .collect()
}

/// Writes the first `count` scenes of `set` to `out`: `images/<hash>.png`, `data.jsonl`,
/// `captions.json`. `progress` is called once per finished scene (from worker threads).
pub fn generate(out: &Path, count: usize, set: &SceneSet, progress: &(dyn Fn() + Sync)) -> anyhow::Result<Vec<Record>> {
    let SceneSet { size, objects, .. } = *set;
    anyhow::ensure!(size >= 32, "--size {size} is too small: scenes need at least 32 pixels");
    anyhow::ensure!((0.0..=1.0).contains(&objects), "--objects {objects} is not a fraction between 0 and 1");
    if objects > 0.0 {
        // A missing font is one clear error now, not shapes drawn in place of every object.
        objects::Glyphs::shared()?;
    }
    let images = out.join("images");
    std::fs::create_dir_all(&images).with_context(|| format!("creating {}", images.display()))?;
    let records = (0..count)
        .into_par_iter()
        .map(|index| {
            let (record, png) = make_scene(set, index)?;
            let path = images.join(format!("{}.png", record.image_hash));
            std::fs::write(&path, &png).with_context(|| format!("writing {}", path.display()))?;
            progress();
            Ok(record)
        })
        .collect::<anyhow::Result<Vec<Record>>>()?;
    let mut jsonl = Vec::new();
    for record in &records {
        serde_json::to_writer(&mut jsonl, record)?;
        jsonl.push(b'\n');
    }
    // data.jsonl appears only when every image it names is on disk.
    write_atomically(&out.join("data.jsonl"), &jsonl)?;
    write_atomically(&out.join("captions.json"), &serde_json::to_vec_pretty(&caption_bank(set.families))?)?;
    Ok(records)
}

/// Reads `data.jsonl` of a scene set, optionally keeping one split.
pub fn read_records(dir: &Path, split: Option<Split>) -> anyhow::Result<Vec<Record>> {
    let path = dir.join("data.jsonl");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut records = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let record: Record = serde_json::from_str(line).with_context(|| format!("{} line {}", path.display(), i + 1))?;
        if split.is_none_or(|s| s == record.split) {
            records.push(record);
        }
    }
    Ok(records)
}

/// A contact sheet: one row per relation of `set` (its name on the left), `per_relation` scenes
/// of `split` each, drawn `set.size` pixels square.
pub fn contact_sheet(set: &SceneSet, per_relation: usize, split: Split) -> RgbImage {
    let cell = set.size;
    let kinds = set.families.kinds();
    let labels: Vec<String> = (0..kinds).map(|k| set.families.label(k)).collect();
    const LABEL_SCALE: u32 = 2;
    let label_width = 8 * LABEL_SCALE * labels.iter().map(|l| l.len() as u32 + 1).max().unwrap_or(1).max(20);
    let pad = 4;
    let rows = kinds as u32;
    let width = label_width + per_relation as u32 * (cell + pad) + pad;
    let height = rows * (cell + pad) + pad;
    let mut sheet = RgbImage::from_pixel(width, height, image::Rgb([255, 255, 255]));
    for (row, label) in labels.iter().enumerate() {
        let y = pad + row as u32 * (cell + pad);
        draw_label(&mut sheet, label, 6, y + cell / 2 - 4 * LABEL_SCALE, LABEL_SCALE);
        let indices = (0..).map(|block| block * kinds + row).filter(|&i| split_of_block(i / kinds) == split).take(per_relation);
        for (col, index) in indices.enumerate() {
            let (spec, mut rng) = set.spec(index);
            let scene = render(&spec, &mut rng, cell);
            image::imageops::replace(&mut sheet, &scene, i64::from(label_width + pad + col as u32 * (cell + pad)), i64::from(y));
        }
    }
    sheet
}

/// Writes ASCII text with the public-domain 8x8 bitmap font, scaled up.
fn draw_label(image: &mut RgbImage, text: &str, x: u32, y: u32, scale: u32) {
    for (i, ch) in text.chars().enumerate() {
        let glyph = font8x8::legacy::BASIC_LEGACY.get(ch as usize).copied().unwrap_or([0; 8]);
        for (gy, bits) in glyph.iter().enumerate() {
            for gx in 0..8 {
                if bits >> gx & 1 == 1 {
                    for (dx, dy) in (0..scale).flat_map(|a| (0..scale).map(move |b| (a, b))) {
                        let (px, py) = (x + (i as u32 * 8 + gx) * scale + dx, y + gy as u32 * scale + dy);
                        if px < image.width() && py < image.height() {
                            image.put_pixel(px, py, image::Rgb([30, 30, 30]));
                        }
                    }
                }
            }
        }
    }
}
