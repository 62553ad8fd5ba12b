//! Real-object glyphs for scenes: colour emoji from Noto Color Emoji (Debian's
//! `fonts-noto-color-emoji`; images Apache-2.0, font SIL OFL 1.1, see NOTICE), grouped into
//! categories of things (fruit, birds, vehicles, tools, ...). A scene that draws objects records
//! each one's category, so that splits can hold whole categories out.
//!
//! The font is read once per process: the PNG of each glyph's largest bitmap strike is decoded
//! and kept with two halvings, so that small objects are drawn from a bitmap near their size.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{bail, Context};
use serde::Serialize;
use tiny_skia::{IntSize, Pixmap};

/// Where Debian's `fonts-noto-color-emoji` puts the font.
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf";

/// The environment variable that points at another copy of the font.
pub const FONT_ENV: &str = "RELSIM_EMOJI_FONT";

/// What kind of thing an object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Fruit,
    Vegetable,
    Meal,
    Sweet,
    Mammal,
    Bird,
    SeaCreature,
    Bug,
    Reptile,
    Plant,
    Vehicle,
    Tool,
    Building,
    Household,
    Clothing,
    SportsGear,
    Instrument,
    Weather,
}

impl Category {
    /// Every category, in a fixed order (the order seeds and splits depend on).
    pub const ALL: [Category; 18] = [
        Category::Fruit,
        Category::Vegetable,
        Category::Meal,
        Category::Sweet,
        Category::Mammal,
        Category::Bird,
        Category::SeaCreature,
        Category::Bug,
        Category::Reptile,
        Category::Plant,
        Category::Vehicle,
        Category::Tool,
        Category::Building,
        Category::Household,
        Category::Clothing,
        Category::SportsGear,
        Category::Instrument,
        Category::Weather,
    ];

    /// The categories only the test split shows: a model is tested on kinds of things it never
    /// saw in training.
    pub const TEST_ONLY: [Category; 2] = [Category::Reptile, Category::Instrument];

    /// The name used in `data.jsonl`.
    pub fn name(self) -> &'static str {
        match self {
            Category::Fruit => "fruit",
            Category::Vegetable => "vegetable",
            Category::Meal => "meal",
            Category::Sweet => "sweet",
            Category::Mammal => "mammal",
            Category::Bird => "bird",
            Category::SeaCreature => "sea_creature",
            Category::Bug => "bug",
            Category::Reptile => "reptile",
            Category::Plant => "plant",
            Category::Vehicle => "vehicle",
            Category::Tool => "tool",
            Category::Building => "building",
            Category::Household => "household",
            Category::Clothing => "clothing",
            Category::SportsGear => "sports_gear",
            Category::Instrument => "instrument",
            Category::Weather => "weather",
        }
    }

    /// The emoji of this category, one code point each (variation selectors left out).
    fn members(self) -> &'static str {
        match self {
            Category::Fruit => "🍎🍏🍐🍊🍋🍌🍉🍇🍓🫐🍈🍒🍑🥭🍍🥥🥝🫒",
            Category::Vegetable => "🍅🍆🥑🥦🥬🥒🌶🫑🌽🥕🧄🧅🥔🍠🥜🫘🌰🫚🫛🍄",
            Category::Meal => "🥐🥯🍞🥖🥨🧀🥚🍳🥞🧇🥓🥩🍗🍖🌭🍔🍟🍕🥪🌮🌯🥗🍿🥫🍱🍘🍙🍚🍛🍜🍝🍢🍣🍤🍥🥟🥠🥡🫔🫓🥙🧆🍲",
            Category::Sweet => "🍦🍧🍨🍩🍪🎂🍰🧁🥧🍫🍬🍭🍮🍯🥮🍡",
            Category::Mammal => "🐒🦍🦧🐕🐩🐈🦁🐅🐆🐎🦄🦓🦌🦬🐂🐃🐄🐖🐗🐏🐑🐐🐪🐫🦙🦒🐘🦣🦏🦛🐁🐀🐇🐿🦫🦔🦇🐻🐨🐼🦥🦦🦨🦘🦡",
            Category::Bird => "🦃🐓🐣🐤🐦🐧🕊🦅🦆🦢🦉🦤🦩🦚🦜🪿🐥",
            Category::SeaCreature => "🐳🐋🐬🦭🐟🐠🐡🦈🐙🐚🦀🦞🦐🦑🪼🪸",
            Category::Bug => "🐌🦋🐛🐜🐝🪲🐞🦗🪳🕷🦂🦟🪰🪱",
            Category::Reptile => "🐸🐊🐢🦎🐍🐉🦕🦖",
            Category::Plant => "💐🌸🌷🌹🥀🌺🌻🌼🪷🌱🪴🌲🌳🌴🌵🌾🌿☘🍀🍁🍂🍃🪹🪺🪻",
            Category::Vehicle => "🚂🚃🚄🚅🚆🚇🚈🚉🚊🚝🚞🚋🚌🚍🚎🚐🚑🚒🚓🚔🚕🚖🚗🚘🚙🛻🚚🚛🚜🏎🏍🛵🛺🚲🛴🛹🛼🚁🚟🚠🚡🛰🚀🛸✈🛩⛵🛶🚤🛳⛴🛥🚢",
            Category::Tool => "🔨🪓⛏⚒🛠🗡⚔🔫🪃🏹🛡🪚🔧🪛🔩⚙🗜⚖🔗⛓🪝🧰🧲🪜✂📏📐🖊🖋✒🖌🖍📌📎🔦🔑🗝🔒",
            Category::Building => "🏠🏡🏘🏚🏗🏭🏢🏬🏣🏤🏥🏦🏨🏪🏫🏩💒🏛⛪🕌🕍🛕🕋⛩🏰🏯🗼🗽⛲⛺🏟🛖🗿",
            Category::Household => "🪑🛏🛋🚪🪞🪟🚽🪠🚿🛁🧴🧷🧹🧺🧻🪣🧼🪥🧽🧯🛒🕯💡🏮🪔🧸🪆🖼🧵🧶🪡🪤⏰⌚📺📻☎📱💻🖥🖨⌨🖱📷🔭🔬⏳🧭🎈🎁🪁🪀🧩🎲🪄☕🫖🍵🍶🍾🍷🍸🍹🍺🥂🥃🥤🧋🧃🧉🥢🍽🍴🥄🔪🏺",
            Category::Clothing => "👓🕶🥽🥼🦺👔👕👖🧣🧤🧥🧦👗👘🥻🩱🩲🩳👙👚👛👜👝🎒🩴👞👟🥾🥿👠👡🩰👢👑👒🎩🎓🧢🪖⛑💍💎🪭",
            Category::SportsGear => "⚽⚾🥎🏀🏐🏈🏉🎾🥏🎳🏏🏑🏒🥍🏓🏸🥊🥋🥅⛳⛸🎣🤿🎽🎿🛷🥌🎯🪀🛶🏆🏅🥇",
            Category::Instrument => "🎷🎸🎹🎺🎻🪕🥁🪘🎤🎧📯🪗🪈🔔🎺🪇",
            Category::Weather => "☀🌤⛅🌥☁🌦🌧⛈🌩🌨❄☃⛄🌬🌪🌈☂☔⚡🔥💧🌊🌙⭐🌟☄🌞🌝🌛🪐🌍",
        }
    }
}

/// One object: its emoji, name and category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectKind {
    pub emoji: char,
    /// The Unicode name (e.g. "red apple").
    pub name: &'static str,
    pub category: Category,
}

/// Every object, category by category; an emoji listed twice keeps its first category.
pub fn all() -> &'static [ObjectKind] {
    static ALL: OnceLock<Vec<ObjectKind>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for category in Category::ALL {
            for emoji in category.members().chars().filter(|&c| c != '\u{fe0f}') {
                if seen.insert(emoji) {
                    let name = emojis::get(&emoji.to_string())
                        .or_else(|| emojis::get(&format!("{emoji}\u{fe0f}")))
                        .map_or("object", |e| e.name());
                    out.push(ObjectKind { emoji, name, category });
                }
            }
        }
        out
    })
}

/// The objects of `category`.
pub fn of(category: Category) -> impl Iterator<Item = &'static ObjectKind> {
    all().iter().filter(move |o| o.category == category)
}

/// A glyph's bitmap at full size and halved twice (premultiplied RGBA).
pub struct Glyph {
    levels: [Pixmap; 3],
}

impl Glyph {
    /// The bitmap whose larger side is nearest above `pixels` (or the smallest).
    pub fn for_size(&self, pixels: f32) -> &Pixmap {
        self.levels.iter().rev().find(|p| p.width().max(p.height()) as f32 >= pixels).unwrap_or(&self.levels[0])
    }
}

/// The glyphs of every object the font has, by the index of the object in [`all`].
pub struct Glyphs {
    glyphs: Vec<Option<Glyph>>,
    /// The font file they came from.
    pub font: PathBuf,
}

impl Glyphs {
    /// The glyph of object `index` of [`all`], if the font has it.
    pub fn get(&self, index: usize) -> Option<&Glyph> {
        self.glyphs.get(index).and_then(Option::as_ref)
    }

    /// Indices (into [`all`]) of the objects the font has.
    pub fn available(&self) -> impl Iterator<Item = usize> + '_ {
        self.glyphs.iter().enumerate().filter(|(_, g)| g.is_some()).map(|(i, _)| i)
    }

    /// Reads every object's glyph from the colour emoji font at `font`.
    pub fn load(font: &Path) -> anyhow::Result<Glyphs> {
        let data = std::fs::read(font).with_context(|| {
            format!(
                "reading the colour emoji font {} (scenes with real objects draw from it: \
                 `cargo xtask setup` installs Debian's fonts-noto-color-emoji, or set {FONT_ENV} to a copy)",
                font.display()
            )
        })?;
        let face = ttf_parser::Face::parse(&data, 0).with_context(|| format!("{} is not a font file", font.display()))?;
        let glyphs = all()
            .iter()
            .map(|object| {
                let id = face.glyph_index(object.emoji)?;
                let image = face.glyph_raster_image(id, u16::MAX)?;
                if image.format != ttf_parser::RasterImageFormat::PNG {
                    return None;
                }
                Some(decode(image.data).with_context(|| format!("{}: the glyph of {:?} ({})", font.display(), object.emoji, object.name)))
            })
            .map(Option::transpose)
            .collect::<anyhow::Result<Vec<_>>>()?;
        if glyphs.iter().all(Option::is_none) {
            bail!("{} has no colour bitmaps for the objects (is it Noto Color Emoji?)", font.display());
        }
        Ok(Glyphs { glyphs, font: font.to_path_buf() })
    }

    /// The glyphs from the font at `RELSIM_EMOJI_FONT` or Debian's path, read once per process.
    pub fn shared() -> anyhow::Result<&'static Glyphs> {
        static GLYPHS: OnceLock<Result<Glyphs, String>> = OnceLock::new();
        // Called for every object drawn: the environment is read once, with the font.
        GLYPHS
            .get_or_init(|| {
                let font = std::env::var_os(FONT_ENV).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(DEFAULT_FONT));
                Glyphs::load(&font).map_err(|e| format!("{e:#}"))
            })
            .as_ref()
            .map_err(|e| anyhow::anyhow!("{e}"))
    }
}

/// A PNG as premultiplied RGBA, with two halvings.
fn decode(png: &[u8]) -> anyhow::Result<Glyph> {
    let rgba = image::load_from_memory_with_format(png, image::ImageFormat::Png)?.to_rgba8();
    let full = premultiplied(&rgba)?;
    let half = image::imageops::resize(&rgba, rgba.width().div_ceil(2), rgba.height().div_ceil(2), image::imageops::FilterType::Triangle);
    let quarter = image::imageops::resize(&half, half.width().div_ceil(2), half.height().div_ceil(2), image::imageops::FilterType::Triangle);
    Ok(Glyph { levels: [full, premultiplied(&half)?, premultiplied(&quarter)?] })
}

fn premultiplied(rgba: &image::RgbaImage) -> anyhow::Result<Pixmap> {
    let mut data = rgba.as_raw().clone();
    for px in data.chunks_exact_mut(4) {
        let a = u16::from(px[3]);
        for c in &mut px[..3] {
            *c = ((u16::from(*c) * a + 127) / 255) as u8;
        }
    }
    let size = IntSize::from_wh(rgba.width(), rgba.height()).context("an empty glyph bitmap")?;
    Pixmap::from_vec(data, size).context("a glyph bitmap of the wrong size")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenes::appearance::Canvas;

    fn glyphs() -> &'static Glyphs {
        Glyphs::shared().unwrap_or_else(|e| panic!("{e}"))
    }

    fn index_of(emoji: char) -> usize {
        all().iter().position(|o| o.emoji == emoji).unwrap()
    }

    #[test]
    fn the_font_gives_300_objects_in_12_categories() {
        let available: Vec<usize> = glyphs().available().collect();
        eprintln!("{} of {} objects have glyphs in {}", available.len(), all().len(), glyphs().font.display());
        assert!(available.len() >= 300, "{} objects have glyphs", available.len());
        let full = Category::ALL.iter().filter(|&&c| available.iter().filter(|&&i| all()[i].category == c).count() >= 8).count();
        assert!(full >= 12, "{full} categories have 8 or more objects");
        let apple = &all()[index_of('🍎')];
        assert_eq!((apple.name, apple.category), ("red apple", Category::Fruit));
        assert!(all().iter().all(|o| o.name != "object"), "every emoji has its Unicode name");
    }

    /// The alpha channel of `canvas`, row by row.
    fn alpha(canvas: &Canvas) -> Vec<u8> {
        canvas.pixmap.pixels().iter().map(|p| p.alpha()).collect()
    }

    #[test]
    fn a_glyph_is_drawn_where_and_as_large_as_asked() {
        let apple = glyphs().get(index_of('🍎')).unwrap();
        let mut canvas = Canvas::new(128);
        // Centre (64, 192) in scene units is pixel (32, 96); radius 32 units is 16 pixels.
        canvas.glyph(apple, (64.0, 192.0), 32.0, 0.0, 1.0, None);
        let a = alpha(&canvas);
        let covered: Vec<(usize, usize)> = (0..128 * 128).filter(|&i| a[i] > 128).map(|i| (i % 128, i / 128)).collect();
        assert!(covered.len() > 300, "{} pixels covered", covered.len());
        assert!(covered.iter().all(|&(x, y)| (15..=49).contains(&x) && (79..=113).contains(&y)), "drawn outside its box");
        assert!(a[96 * 128 + 32] > 200, "the apple's middle is opaque");
    }

    #[test]
    fn a_turned_glyph_is_the_same_glyph_turned() {
        let hammer = glyphs().get(index_of('🔨')).unwrap();
        let draw = |rotation: f32| {
            let mut canvas = Canvas::new(64);
            canvas.glyph(hammer, (128.0, 128.0), 100.0, rotation, 1.0, None);
            alpha(&canvas)
        };
        let (upright, quarter, full) = (draw(0.0), draw(90.0), draw(360.0));
        let diff = |a: &[u8], b: &[u8]| a.iter().zip(b).filter(|(x, y)| x.abs_diff(**y) > 64).count();
        assert!(diff(&upright, &full) < 20, "a full turn changes nothing");
        assert!(diff(&upright, &quarter) > 200, "a quarter turn moves the hammer");
        // Turned clockwise a quarter: pixel (x, y) of the turned image is pixel (y, 63 - x) of the upright one.
        let turned_back: Vec<u8> = (0..64 * 64).map(|i| upright[(63 - i % 64) * 64 + i / 64]).collect();
        assert!(diff(&turned_back, &quarter) < 60, "{} pixels differ from the upright glyph turned", diff(&turned_back, &quarter));
    }

    #[test]
    fn a_missing_font_says_how_to_get_one() {
        let err = Glyphs::load(Path::new("/nonexistent/emoji.ttf")).err().unwrap();
        let message = format!("{err:#}");
        assert!(message.contains("/nonexistent/emoji.ttf") && message.contains("fonts-noto-color-emoji") && message.contains(FONT_ENV), "{message}");
    }
}
