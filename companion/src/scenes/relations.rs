//! The relation families: the one idea each scene shows, how it is laid out, and the anonymous
//! captions that name it without naming what is drawn.

use std::f32::consts::{FRAC_1_SQRT_2, PI, TAU};

use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;
use serde::Serialize;

use super::appearance::{along_outline, clip_half_plane, inside, Canvas, Framing, Object, Palette, Pt, Rgb, Shape, Style, SCENE};

/// One relation family: the idea a scene shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    SizeProgression,
    OddOneOut,
    CompositeShape,
    MirrorSymmetry,
    ConcentricNesting,
    CountProgression,
    ColourTransition,
    RadialArrangement,
    Stacking,
    StepwiseRotation,
    Splitting,
    AlternatingPattern,
    Containment,
    BeforeAfter,
    Analogy,
    RuleGrid,
    RiseAndFall,
    Grouping,
    Path,
    Occlusion,
    PartWhole,
    Balance,
    DensityGradient,
    Spiral,
    Pairing,
    Filling,
    MotionTrail,
    MissingOne,
    SelfSimilarity,
    Sorting,
}

impl Relation {
    /// Every family, in a fixed order: the fourteen of the first scene sets, then the ones
    /// about structure.
    pub const ALL: [Relation; 30] = [
        Relation::SizeProgression,
        Relation::OddOneOut,
        Relation::CompositeShape,
        Relation::MirrorSymmetry,
        Relation::ConcentricNesting,
        Relation::CountProgression,
        Relation::ColourTransition,
        Relation::RadialArrangement,
        Relation::Stacking,
        Relation::StepwiseRotation,
        Relation::Splitting,
        Relation::AlternatingPattern,
        Relation::Containment,
        Relation::BeforeAfter,
        Relation::Analogy,
        Relation::RuleGrid,
        Relation::RiseAndFall,
        Relation::Grouping,
        Relation::Path,
        Relation::Occlusion,
        Relation::PartWhole,
        Relation::Balance,
        Relation::DensityGradient,
        Relation::Spiral,
        Relation::Pairing,
        Relation::Filling,
        Relation::MotionTrail,
        Relation::MissingOne,
        Relation::SelfSimilarity,
        Relation::Sorting,
    ];

    /// The fourteen families of the first scene sets (`--families classic`), whose scenes stay
    /// exactly as they were.
    /// (They lead `ALL`, so that scene `i` of a classic set is scene `i` of the first sets.)
    pub const CLASSIC: &'static [Relation] = Relation::ALL.split_at(14).0;

    /// The name used in `data.jsonl` and reports.
    pub fn name(self) -> &'static str {
        match self {
            Relation::SizeProgression => "size_progression",
            Relation::OddOneOut => "odd_one_out",
            Relation::CompositeShape => "composite_shape",
            Relation::MirrorSymmetry => "mirror_symmetry",
            Relation::ConcentricNesting => "concentric_nesting",
            Relation::CountProgression => "count_progression",
            Relation::ColourTransition => "colour_transition",
            Relation::RadialArrangement => "radial_arrangement",
            Relation::Stacking => "stacking",
            Relation::StepwiseRotation => "stepwise_rotation",
            Relation::Splitting => "splitting",
            Relation::AlternatingPattern => "alternating_pattern",
            Relation::Containment => "containment",
            Relation::BeforeAfter => "before_after",
            Relation::Analogy => "analogy",
            Relation::RuleGrid => "rule_grid",
            Relation::RiseAndFall => "rise_and_fall",
            Relation::Grouping => "grouping",
            Relation::Path => "path",
            Relation::Occlusion => "occlusion",
            Relation::PartWhole => "part_whole",
            Relation::Balance => "balance",
            Relation::DensityGradient => "density_gradient",
            Relation::Spiral => "spiral",
            Relation::Pairing => "pairing",
            Relation::Filling => "filling",
            Relation::MotionTrail => "motion_trail",
            Relation::MissingOne => "missing_one",
            Relation::SelfSimilarity => "self_similarity",
            Relation::Sorting => "sorting",
        }
    }

    /// Whether the scene can show its idea with real objects in place of shapes (not the
    /// containers that fill up: their level is drawn inside an outline).
    pub fn draws_objects(self) -> bool {
        self != Relation::Filling
    }

    /// Whether the scene may be turned by quarter turns without changing the idea (a stack
    /// stands on the ground).
    pub fn turnable(self) -> bool {
        !matches!(self, Relation::Stacking | Relation::Balance | Relation::Filling)
    }

    /// The family with this name.
    pub fn from_name(name: &str) -> Option<Relation> {
        Relation::ALL.into_iter().find(|r| r.name() == name)
    }

    /// Anonymous captions: the training paraphrases. None names a shape or a colour.
    pub fn training_captions(self) -> &'static [&'static str] {
        &self.captions()[..8]
    }

    /// The paraphrase kept for evaluation only: it never appears in training data.
    pub fn evaluation_caption(self) -> &'static str {
        self.captions()[8]
    }

    fn captions(self) -> &'static [&'static str; 9] {
        match self {
            Relation::SizeProgression => &[
                "the same {object} repeated in steadily increasing sizes",
                "a row of {object}s ordered from smallest to largest",
                "{object}s growing bigger step by step",
                "a sequence showing {subject} at increasing scales",
                "{subject} shown again and again, a little bigger each time",
                "small to large: {subject} enlarging in even steps",
                "{subject} growing steadily larger from one step to the next",
                "{object}s lined up by size, the smallest first",
                "growth stages of {subject}, each one larger than the last",
            ],
            Relation::OddOneOut => &[
                "one {object} stands out among many identical ones",
                "a uniform group of {object}s with a single different one",
                "among repeated {object}s, exactly one breaks the pattern",
                "the odd one out in a crowd of {object}s",
                "{subject} repeated many times, with one exception",
                "a single misfit among identical {subject}",
                "spot the one that differs: a crowd of {subject}",
                "all of {subject} look the same except one",
                "many of the same {object} and one that does not belong",
            ],
            Relation::CompositeShape => &[
                "many small {object}s together form a larger {shape}",
                "tiny copies of {object} arranged to trace a big {shape}",
                "a big {shape} made out of little {object}s",
                "small {object}s grouped so that they build one large {shape}",
                "{subject} assembled into the outline of a bigger figure",
                "a large form built out of many tiny {subject}",
                "little pieces of {subject} adding up to one big silhouette",
                "many {subject} clustered to draw a single larger {shape}",
                "a larger figure assembled from many small {object}s",
            ],
            Relation::MirrorSymmetry => &[
                "{object}s arranged with mirror symmetry across a central axis",
                "one half of the {scene} is a reflection of the other half",
                "a layout of {object}s mirrored across a line",
                "a symmetric arrangement where each {object} has a reflected twin",
                "{subject} and its mirror image on the other side of a line",
                "a left-right reflection of {subject}",
                "two halves of {subject} that mirror each other",
                "{subject} laid out symmetrically about a middle line",
                "the {scene} reflected onto itself as in a mirror",
            ],
            Relation::ConcentricNesting => &[
                "copies of {object} nested one inside another",
                "{object}s of decreasing size sharing the same centre",
                "layers of {object} placed inward around a common middle",
                "a set of nested {object}s, each enclosing the next smaller one",
                "{subject} inside a larger copy, inside a larger copy again",
                "concentric copies of {subject}, one within another",
                "{subject} nested, each copy enclosing a smaller one",
                "{subject} arranged concentrically, one inside the next",
                "concentric layers of {subject}",
            ],
            Relation::CountProgression => &[
                "panels showing one more {object} each time",
                "a counting sequence: the number of {object}s grows panel by panel",
                "frames with an increasing count of {object}s",
                "step by step, each frame adds another {object}",
                "{subject} counted up one at a time across frames",
                "one, two, three: more {subject} in every panel",
                "a sequence of boxes, each holding one more of {subject}",
                "the number of {subject} rising by one from frame to frame",
                "counting up with {object}s from one frame to the next",
            ],
            Relation::ColourTransition => &[
                "a row of {object}s whose colour shifts gradually from one end to the other",
                "{object}s fading from one hue to another in stages",
                "the same {object} repeated as its colour slowly changes",
                "a gradual colour transition across a sequence of {object}s",
                "{subject} changing hue gradually along a line",
                "a smooth shift of tint across a row of {subject}",
                "{subject} whose colouring drifts from one end to the other",
                "copies of {subject} graded slowly from one tint into another",
                "stages of {subject} changing tint little by little",
            ],
            Relation::RadialArrangement => &[
                "{object}s arranged evenly around a centre, pointing outward",
                "a halo of {object}s radiating from the middle",
                "{object}s spaced at equal angles around a central point",
                "a radial pattern of {object}s like the marks on a clock face",
                "{subject} placed evenly about a central point",
                "a ring of {subject} spaced at equal angles about the middle",
                "{subject} radiating out from a hub at regular intervals",
                "{object}s fanning out from a central hub",
                "{object}s spreading out from a hub like spokes",
            ],
            Relation::Stacking => &[
                "{object}s stacked into a tower, largest at the bottom",
                "a pile of {object}s getting smaller toward the top",
                "a vertical stack of {object}s from big to small",
                "{object}s balanced on top of each other in decreasing size",
                "{subject} piled one on another, biggest underneath",
                "a tower of {subject} that narrows toward the top",
                "{subject} balanced in a vertical pile from large to small",
                "stacked {subject}, each resting on a larger one below",
                "a tower built from {subject}, narrowing as it rises",
            ],
            Relation::StepwiseRotation => &[
                "the same {object} turning a little more at each step",
                "a sequence of {object}s rotated by equal increments",
                "{object}s that spin gradually from one to the next",
                "a row showing {subject} rotating step by step",
                "{subject} rotating by the same angle from one copy to the next",
                "a row of {subject} turning a little further each time",
                "{subject} spinning step by step across a sequence",
                "copies of {subject} each turned slightly more than the last",
                "successive stages of {subject} turning around",
            ],
            Relation::Splitting => &[
                "a whole {object} breaking apart into pieces",
                "{subject} split into halves and then into smaller parts",
                "stages of one {object} being divided into fragments",
                "an intact {object} followed by its separated pieces",
                "{subject} whole at first, then in halves, then in quarters",
                "a sequence breaking {subject} into more and more pieces",
                "{subject} divided and pulled apart in stages",
                "one intact piece of {subject} followed by its fragments",
                "{subject} cut up and pulled apart step by step",
            ],
            Relation::AlternatingPattern => &[
                "{object}s in an alternating pattern, one kind then the other",
                "a repeating sequence that alternates between two {object}s",
                "two variants of {object} taking turns along a line",
                "an ABAB pattern made of {object}s",
                "{subject} and a variant of it taking turns in a row",
                "a regular back-and-forth between two versions of {subject}",
                "two kinds of {subject} repeating one after the other",
                "{subject} in a rhythm that switches every step",
                "{subject} alternating in a regular rhythm",
            ],
            Relation::Containment => &[
                "{object} enclosed inside a larger {container}",
                "a {container} holding {object}s within its boundary",
                "some {object}s kept inside an outline while others stay out",
                "{subject} contained within a bigger border",
                "{subject} kept inside a larger enclosing outline",
                "an outline that holds {subject} within it",
                "{subject} within a boundary, some others left outside",
                "a big {container} enclosing {subject}",
                "{object}s held inside a {container}",
            ],
            Relation::BeforeAfter => &[
                "{object}s scattered at first, then neatly arranged",
                "before and after: a messy set of {object}s gets tidied up",
                "a jumble of {object}s on one side and the same ones in order on the other",
                "from chaos to order with {subject}",
                "{subject} in disarray, then the same things lined up",
                "an untidy heap of {object}s beside the same set in rows",
                "{object}s tidied from a scattered mess into a grid",
                "messy first, orderly second: {subject} arranged",
                "{subject} before and after being organised",
            ],
            Relation::Analogy => &[
                "one change applied to two different {object}s: the first pair shows it, the second repeats it",
                "{object} becomes its changed version, and another {object} changes in the same way",
                "a visual analogy: as the first {object} is to its transformation, so the second is to its own",
                "two pairs of panels where different {object}s undergo the same transformation",
                "{subject} transformed, and a second thing transformed the same way",
                "the same change applied to two different kinds of {subject}",
                "a pair of before-and-after panels repeated with another {object}",
                "what happens to the first {subject} happens to the second",
                "A is to B as C is to D, with {subject} changed the same way twice",
            ],
            Relation::RuleGrid => &[
                "a grid of {object}s whose rows follow one rule and whose columns follow another",
                "{object}s in an array where each row and each column changes in a regular way",
                "a matrix of {object}s: moving along a row changes one property, moving down changes another",
                "a three by three grid of {object}s governed by two rules",
                "{subject} arranged in rows and columns that each follow a rule",
                "a grid of {subject} changing regularly across and down",
                "{subject} in a tabular layout with one rule per direction",
                "three rows and three columns of {subject}, varying systematically",
                "a puzzle grid where {subject} varies systematically across and down",
            ],
            Relation::RiseAndFall => &[
                "{object}s that grow to a peak and then shrink again",
                "a sequence of {object}s rising in size to a maximum, then falling",
                "small, bigger, biggest, then smaller again: {object}s swelling and subsiding",
                "{object}s whose size climbs toward the peak and declines after it",
                "{subject} swelling to a peak and then dwindling",
                "a sequence where {subject} grows larger, then smaller again",
                "{subject} rising to a maximum size and falling back",
                "{subject} peaking in the middle of a row, smaller at both ends",
                "the rise and decline of {subject}, growing then decaying",
            ],
            Relation::Grouping => &[
                "mixed {object}s sorted into separate groups by kind",
                "like {object}s gathered together, each kind in its own cluster",
                "{object}s divided into clusters so that each cluster holds only one kind",
                "two or three groups of {object}s, similar ones kept together",
                "{subject} gathered into clusters of the same kind",
                "{subject} sorted so that alike things sit together",
                "separate groups of {subject}, each group of a single sort",
                "{subject} grouped by type into distinct bunches",
                "{subject} organised into categories, each in its own pile",
            ],
            Relation::Path => &[
                "{object}s laid out along a winding trail from one end to the other",
                "a path of {object}s curving across the {scene}",
                "a line of {object}s following a meandering route",
                "{object}s placed one after another along a twisting track",
                "{subject} lined along a winding route",
                "a trail of {subject} snaking from a start to a finish",
                "{subject} following a curving way from one point to another",
                "{subject} placed along a meandering course",
                "a trail of {subject} marking the way along a curvy route",
            ],
            Relation::Occlusion => &[
                "{object}s overlapping in layers, each partly hiding the one behind it",
                "a fanned pile of {object}s, one in front of another",
                "{object}s where the nearer ones cover part of the farther ones",
                "{object}s placed on top of each other with an offset so that every layer peeks out",
                "{subject} overlapping so that the front hides the back",
                "{subject} partly covering one another, the front one whole",
                "{subject} stacked in depth, one in front of another",
                "overlapping copies of {subject} receding behind each other",
                "overlapping {subject}, the front one occluding the rest",
            ],
            Relation::PartWhole => &[
                "a whole {object} beside an enlarged view of one of its parts",
                "a close-up inset zooming in on a detail of the {object}",
                "{object} with a magnified detail shown in a separate inset",
                "the complete {object} and a zoomed-in fragment of it",
                "{subject} with a close-up of one of its details",
                "a magnified part of {subject} shown beside the whole",
                "{subject} and an enlarged inset of a small region",
                "zooming into a detail of {subject}",
                "part and whole: {subject} and a magnified piece of it",
            ],
            Relation::Balance => &[
                "a balance tipping toward the side holding more {object}s",
                "a seesaw weighed down by the heavier load of {object}s",
                "two loads of {object}s on a beam that leans toward the larger pile",
                "{object}s on a scale, the side with more sinking lower",
                "{subject} on a tipping beam, the heavier side lower",
                "a scale weighed down on the side with more {subject}",
                "{subject} piled unevenly on a balance that leans",
                "uneven loads of {subject} tilting a seesaw",
                "a weighing beam unbalanced by uneven amounts of {subject}",
            ],
            Relation::DensityGradient => &[
                "{object}s crowded together at one side and thinning out toward the other",
                "a scatter of {object}s whose density fades from dense to sparse",
                "many {object}s packed at one end, only a few at the far end",
                "{object}s spreading out and becoming rarer across the {scene}",
                "{subject} dense at one end and sparse at the other",
                "a crowd of {subject} thinning out gradually",
                "{subject} scattered with decreasing density across the {scene}",
                "{subject} clustered tightly on one side, sparse on the other",
                "{subject} dispersing gradually, from a thick crowd to a scattered few",
            ],
            Relation::Spiral => &[
                "{object}s winding outward along a spiral",
                "a spiral of {object}s growing larger as it coils away from the centre",
                "{object}s following a coiling path that turns around and around",
                "a whorl of {object}s turning outward from the middle",
                "{subject} coiling outward in a spiral",
                "a spiral of {subject} that widens as it turns",
                "{subject} winding about a centre, getting farther out",
                "{subject} placed along a swirl from the middle outward",
                "{subject} arranged in an ever-widening swirl",
            ],
            Relation::Pairing => &[
                "each {object} joined by a line to exactly one partner",
                "two rows of {object}s matched one to one by connecting lines",
                "{object}s paired up, every item linked to a counterpart",
                "a matching exercise where lines connect {object}s in pairs",
                "{subject} matched in pairs by connecting lines",
                "lines linking each of {subject} to one partner",
                "two sets of {subject} joined one to one",
                "{subject} paired off between two rows",
                "one-to-one correspondence between two sets of {subject}",
            ],
            Relation::Filling => &[
                "the same {container} filled a little more at each step",
                "{container}s whose content level rises from one to the next",
                "a sequence of {container}s going from empty to full",
                "{container}s showing stages of being filled up",
                "{subject} filled to a higher level at each step",
                "a row of {container}s with rising content",
                "{subject} going from empty to full in stages",
                "the level inside {subject} climbing step by step",
                "{subject} filling gradually, level by level",
            ],
            Relation::MotionTrail => &[
                "{object} in motion, leaving fading copies of itself behind",
                "a moving {object} with a trail of ghostly earlier positions",
                "the path of a travelling {object} shown by faint afterimages",
                "successive snapshots of one {object} moving, the older ones paler",
                "{subject} moving, with fading traces of where it was",
                "a moving {subject} followed by ghostly copies",
                "{subject} leaving a trail of paler earlier positions",
                "snapshots of {subject} in motion, older ones fainter",
                "a motion trail of {subject} sweeping through the {scene}",
            ],
            Relation::MissingOne => &[
                "a regular grid of {object}s with one place left empty",
                "{object}s in neat rows where a single spot is missing",
                "a repeating pattern of {object}s with one piece gone",
                "every slot holds a {object} except one",
                "{subject} arranged in a grid with one empty slot",
                "a regular array of {subject} with a single gap",
                "{subject} in rows and columns with one of them missing",
                "a regular pattern of {subject} interrupted by one gap",
                "a pattern of {subject} with a piece missing",
            ],
            Relation::SelfSimilarity => &[
                "{object}s branching into smaller copies of themselves, again and again",
                "a fractal of {object}s: each one surrounded by smaller versions",
                "{object}s repeated at ever smaller scales around each other",
                "a self-similar figure built from {object}s at three sizes",
                "{subject} surrounded by smaller copies of itself, repeatedly",
                "a fractal made of {subject} at several scales",
                "{subject} branching into tinier versions of itself",
                "copies of {subject} repeating at shrinking scales around each other",
                "{subject} repeating within itself like a fractal",
            ],
            Relation::Sorting => &[
                "{object}s shuffled at first, then lined up in order of size",
                "a jumbled row of {object}s and the same row sorted from small to large",
                "unordered {object}s on one side, ranked by size on the other",
                "sorting {object}s: the mixed sequence becomes an ordered one",
                "{subject} in random order, then arranged by size",
                "a shuffled row of {subject} above the same row sorted",
                "{subject} rearranged from jumbled to ordered by size",
                "the same {subject} before and after sorting by size",
                "{subject} rearranged from random order into ascending order",
            ],
        }
    }
}

/// The appearance of one scene, chosen independently of its relation.
#[derive(Debug, Clone, Copy)]
pub struct Look {
    /// The main object shape.
    pub shape: Shape,
    /// A second shape, for the relations that need one (the odd one, a container, a big figure).
    pub other_shape: Shape,
    pub palette: &'static Palette,
    pub style: Style,
    /// Base rotation of upright objects, in degrees.
    pub tilt: f32,
    /// Placement jitter in scene units.
    pub jitter: f32,
    /// Overall size factor.
    pub scale: f32,
    /// Where the composition sits in the scene.
    pub framing: Framing,
    /// Real objects drawn in place of the two shapes, if any.
    pub objects: Option<RealObjects>,
}

/// The real objects a scene draws for its main and its second shape: indices into
/// [`super::objects::all`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RealObjects {
    pub main: usize,
    pub other: usize,
}

impl Look {
    pub(super) fn object(&self, shape: Shape, centre: Pt, radius: f32, rotation: f32, colour: Rgb) -> Object {
        let style = match self.style {
            Style::Fill => Style::Fill,
            Style::Outline(w) => Style::Outline(w.min(radius * 0.3).max(1.0)),
        };
        let glyph = self.objects.and_then(|o| match shape {
            s if s == self.shape => Some(o.main),
            s if s == self.other_shape => Some(o.other),
            _ => None,
        });
        Object { shape, centre, radius, rotation, colour, alpha: 1.0, style, glyph }
    }

    pub(super) fn jittered(&self, p: Pt, rng: &mut impl Rng) -> Pt {
        if self.jitter <= 0.0 {
            return p;
        }
        (p.0 + rng.random_range(-self.jitter..=self.jitter), p.1 + rng.random_range(-self.jitter..=self.jitter))
    }
}

/// Where a sequence of stages runs.
#[derive(Debug, Clone, Copy)]
pub(super) enum Direction {
    Across,
    Down,
    Diagonal,
}

/// `n` evenly spaced centres along a line through the middle; returns them and the spacing.
pub(super) fn line_positions(n: usize, direction: Direction) -> (Vec<Pt>, f32) {
    let c = SCENE / 2.0;
    let span = match direction {
        Direction::Across | Direction::Down => 228.0,
        Direction::Diagonal => 228.0 * std::f32::consts::SQRT_2 * 0.92,
    };
    let spacing = span / n as f32;
    let (ux, uy) = match direction {
        Direction::Across => (1.0, 0.0),
        Direction::Down => (0.0, 1.0),
        Direction::Diagonal => (FRAC_1_SQRT_2, FRAC_1_SQRT_2),
    };
    let points = (0..n)
        .map(|i| {
            let t = (i as f32 + 0.5) * spacing - span / 2.0;
            (c + ux * t, c + uy * t)
        })
        .collect();
    let perpendicular_room = match direction {
        Direction::Diagonal => spacing * FRAC_1_SQRT_2 * 1.3,
        _ => spacing,
    };
    (points, perpendicular_room.min(spacing))
}

pub(super) fn any_direction(rng: &mut impl Rng) -> Direction {
    *[Direction::Across, Direction::Across, Direction::Down, Direction::Diagonal].choose(rng).expect("non-empty")
}

/// Draws `relation` in `look` onto `canvas` (whose background is already painted).
pub fn draw(relation: Relation, look: &Look, canvas: &mut Canvas, rng: &mut impl Rng) {
    let p = look.palette;
    match relation {
        Relation::SizeProgression => {
            let n = rng.random_range(3..=5);
            let (mut centres, spacing) = line_positions(n, any_direction(rng));
            if rng.random_bool(0.5) {
                centres.reverse();
            }
            let r_max = spacing * 0.46 * look.scale.min(1.0);
            let r_min = r_max * rng.random_range(0.22..0.4);
            for (i, c) in centres.iter().enumerate() {
                let r = r_min + (r_max - r_min) * i as f32 / (n - 1) as f32;
                canvas.object(&look.object(look.shape, look.jittered(*c, rng), r, look.tilt, p.main));
            }
        }
        Relation::OddOneOut => {
            let (cells, r) = object_grid(look, rng);
            let odd = rng.random_range(0..cells.len() as i32) as usize;
            let by_shape = rng.random_bool(0.5);
            for (i, &centre) in cells.iter().enumerate() {
                let (shape, colour) = match (i == odd, by_shape) {
                    (false, _) => (look.shape, p.main),
                    (true, true) => (look.other_shape, p.main),
                    (true, false) => (look.shape, p.accent),
                };
                canvas.object(&look.object(shape, look.jittered(centre, rng), r, look.tilt, colour));
            }
        }
        Relation::CompositeShape => {
            let big = Object {
                shape: look.other_shape,
                centre: look.jittered((SCENE / 2.0, SCENE / 2.0), rng),
                radius: rng.random_range(92.0..106.0),
                rotation: look.tilt.clamp(-20.0, 20.0),
                colour: p.main,
                alpha: 1.0,
                style: Style::Fill,
                glyph: None,
            };
            let outline = big.points();
            let r = rng.random_range(6.5..10.5);
            let mut centres = Vec::new();
            if rng.random_bool(0.5) {
                let mut y = big.centre.1 - big.radius;
                let step = r * 2.5;
                while y <= big.centre.1 + big.radius {
                    let mut x = big.centre.0 - big.radius;
                    while x <= big.centre.0 + big.radius {
                        if inside(&outline, (x, y)) {
                            centres.push((x, y));
                        }
                        x += step;
                    }
                    y += step;
                }
            }
            if centres.len() < 10 {
                let perimeter: f32 = outline.windows(2).map(|w| ((w[1].0 - w[0].0).powi(2) + (w[1].1 - w[0].1).powi(2)).sqrt()).sum();
                centres = along_outline(&outline, ((perimeter / (r * 2.7)) as usize).max(10));
            }
            let turn_each = rng.random_bool(0.5);
            for c in centres {
                let rotation = if turn_each { rng.random_range(0.0..360.0) } else { look.tilt };
                canvas.object(&look.object(look.shape, c, r, rotation, p.main));
            }
        }
        Relation::MirrorSymmetry => {
            let vertical_axis = rng.random_bool(0.6);
            let colours = [p.main, p.second, p.accent];
            let k = rng.random_range(3..=5);
            for _ in 0..k {
                let r = rng.random_range(14.0..32.0) * look.scale;
                let x = rng.random_range(r + 10.0..(SCENE / 2.0 - r * 0.6 - 6.0).max(r + 11.0));
                let y = rng.random_range(r + 10.0..SCENE - r - 10.0);
                let centre = if vertical_axis { (x, y) } else { (y, x) };
                let shape = if rng.random_bool(0.7) { look.shape } else { look.other_shape };
                let o = look.object(shape, centre, r, rng.random_range(0.0..360.0), *colours.choose(rng).expect("non-empty"));
                canvas.object(&o);
                canvas.object_reflected(&o, vertical_axis);
            }
            if rng.random_bool(0.5) {
                let (from, to) = if vertical_axis { ((SCENE / 2.0, 8.0), (SCENE / 2.0, SCENE - 8.0)) } else { ((8.0, SCENE / 2.0), (SCENE - 8.0, SCENE / 2.0)) };
                canvas.line(from, to, p.second, 0.7, 1.5, Some((6.0, 5.0)));
            }
        }
        Relation::ConcentricNesting => {
            let n = rng.random_range(3..=5);
            let centre = look.jittered((SCENE / 2.0, SCENE / 2.0), rng);
            let r_max = rng.random_range(96.0..110.0);
            let r_min = r_max * rng.random_range(0.16..0.3);
            for i in 0..n {
                let r = r_max - (r_max - r_min) * i as f32 / (n - 1) as f32;
                let colour = match (look.style, i % 2) {
                    (Style::Outline(_), _) | (_, 0) => p.main,
                    _ => p.second,
                };
                let o = look.object(look.shape, centre, r, look.tilt, colour);
                if o.glyph.is_some() && i > 0 {
                    // Real objects nest like dolls: each sits on a clearing inside the last.
                    let clearing = Object { shape: Shape::Circle, centre, radius: r * 0.92, rotation: 0.0, colour: p.background[0], alpha: 0.85, style: Style::Fill, glyph: None };
                    canvas.object(&clearing);
                    canvas.object(&Object { colour: p.second, alpha: 1.0, style: Style::Outline(2.0), ..clearing });
                }
                canvas.object(&o);
            }
        }
        Relation::CountProgression => {
            let panels = rng.random_range(3..=4);
            let start = rng.random_range(1..=2);
            let across = rng.random_bool(0.7);
            let gap = 8.0;
            let long = (236.0 - gap * (panels - 1) as f32) / panels as f32;
            let short = rng.random_range(long.max(100.0)..170.0f32.max(long + 1.0));
            let max_count = start + panels - 1;
            let grid = (max_count as f32).sqrt().ceil() as usize;
            for j in 0..panels {
                let offset = 10.0 + j as f32 * (long + gap);
                let (x, y, w, h) = if across { (offset, (SCENE - short) / 2.0, long, short) } else { ((SCENE - short) / 2.0, offset, short, long) };
                canvas.panel(x, y, w, h, [255, 255, 255], 0.3, p.second, 2.0);
                let (cw, ch) = (w / grid as f32, h / grid as f32);
                let r = cw.min(ch) * 0.34 * look.scale.min(1.0);
                let mut slots: Vec<usize> = (0..grid * grid).collect();
                slots.shuffle(rng);
                for &s in &slots[..start + j] {
                    let c = (x + (s % grid) as f32 * cw + cw / 2.0, y + (s / grid) as f32 * ch + ch / 2.0);
                    let c = (c.0 + rng.random_range(-0.1..0.1) * cw, c.1 + rng.random_range(-0.1..0.1) * ch);
                    canvas.object(&look.object(look.shape, c, r, look.tilt, p.main));
                }
            }
        }
        Relation::ColourTransition => {
            let n = rng.random_range(4..=6);
            let (centres, spacing) = line_positions(n, any_direction(rng));
            let r = (spacing * 0.4).min(40.0) * look.scale.min(1.0);
            let from = if rng.random_bool(0.5) { p.main } else { p.second };
            for (i, c) in centres.iter().enumerate() {
                let colour = super::appearance::mix(from, p.accent, i as f32 / (n - 1) as f32);
                canvas.object(&look.object(look.shape, look.jittered(*c, rng), r, look.tilt, colour));
            }
        }
        Relation::RadialArrangement => {
            let n = rng.random_range(5..=10);
            let ring = rng.random_range(64.0..88.0);
            let r = (ring * (PI / n as f32).sin() * 0.8).min(24.0);
            let start = rng.random_range(0.0..TAU);
            let centre = look.jittered((SCENE / 2.0, SCENE / 2.0), rng);
            for i in 0..n {
                let a = start + i as f32 / n as f32 * TAU;
                let c = (centre.0 + ring * a.cos(), centre.1 + ring * a.sin());
                canvas.object(&look.object(look.shape, c, r, a.to_degrees() + 90.0, p.main));
            }
            if rng.random_bool(0.6) {
                canvas.object(&look.object(look.shape, centre, rng.random_range(12.0..20.0), look.tilt, p.accent));
            }
        }
        Relation::Stacking => {
            let n = rng.random_range(3..=5);
            let shrink: f32 = rng.random_range(0.68..0.82);
            let mut radii: Vec<f32> = (0..n).map(|i| 56.0 * shrink.powi(i as i32)).collect();
            let tilt = look.tilt.clamp(-8.0, 8.0);
            let extent = |r: f32| {
                let o = look.object(look.shape, (0.0, 0.0), r, tilt, p.main);
                let ys = o.points().into_iter().map(|q| q.1);
                ys.clone().fold(f32::MAX, f32::min).abs() + ys.fold(f32::MIN, f32::max)
            };
            let height: f32 = radii.iter().map(|&r| extent(r)).sum();
            let fit = (228.0 / height).min(1.0) * look.scale.min(1.0);
            radii.iter_mut().for_each(|r| *r *= fit);
            let mut bottom = SCENE - 14.0;
            let x = SCENE / 2.0 + rng.random_range(-40.0..40.0);
            let alternate = rng.random_bool(0.4);
            for (i, &r) in radii.iter().enumerate() {
                let o = look.object(look.shape, (0.0, 0.0), r, tilt, p.main);
                let ys: Vec<f32> = o.points().into_iter().map(|q| q.1).collect();
                let (top, low) = (ys.iter().cloned().fold(f32::MAX, f32::min), ys.iter().cloned().fold(f32::MIN, f32::max));
                let cy = bottom - low;
                let colour = if alternate && i % 2 == 1 { p.second } else { p.main };
                canvas.object(&look.object(look.shape, (x + rng.random_range(-2.0..2.0), cy), r, tilt, colour));
                bottom = cy + top + 0.5;
            }
        }
        Relation::StepwiseRotation => {
            let n = rng.random_range(4..=6);
            let (centres, spacing) = line_positions(n, any_direction(rng));
            let r = (spacing * 0.4).min(38.0) * look.scale.min(1.0);
            let step = rng.random_range(25.0..50.0) * if rng.random_bool(0.5) { 1.0 } else { -1.0 };
            let start = rng.random_range(0.0..360.0);
            for (i, c) in centres.iter().enumerate() {
                let rotation = start + step * i as f32;
                let o = look.object(look.shape, look.jittered(*c, rng), r, rotation, p.main);
                canvas.object(&o);
                // A marker at the object's top makes the turn visible even for round shapes.
                let (s, co) = rotation.to_radians().sin_cos();
                let tip = (o.centre.0 + 0.62 * r * s, o.centre.1 - 0.62 * r * co);
                canvas.object(&Object { shape: Shape::Circle, centre: tip, radius: (r * 0.16).max(2.5), rotation: 0.0, colour: p.accent, alpha: 1.0, style: Style::Fill, glyph: None });
            }
        }
        Relation::Splitting => {
            let stages = if rng.random_bool(0.7) { 3 } else { 2 };
            let direction = if rng.random_bool(0.7) { Direction::Across } else { Direction::Down };
            let (centres, spacing) = line_positions(stages, direction);
            let r = (spacing * 0.34).min(46.0) * look.scale.min(1.0);
            let cut = rng.random_range(0.0..PI);
            let gap = r * rng.random_range(0.18..0.3);
            let arrows = rng.random_bool(0.5);
            for (stage, &c) in centres.iter().enumerate() {
                let o = look.object(look.shape, c, r, look.tilt, p.main);
                // A real object is cut as a picture: the pieces are the square around it.
                let whole = match o.glyph {
                    Some(_) => vec![(c.0 - r, c.1 - r), (c.0 + r, c.1 - r), (c.0 + r, c.1 + r), (c.0 - r, c.1 + r)],
                    None => o.points(),
                };
                let normals: Vec<Pt> = match (stage, stages) {
                    (0, _) => vec![],
                    (1, 3) => vec![(cut.cos(), cut.sin())],
                    _ => vec![(cut.cos(), cut.sin()), (-cut.sin(), cut.cos())],
                };
                let mut pieces = vec![(whole, (0.0f32, 0.0f32))];
                for n in normals {
                    let mut next = Vec::new();
                    for (poly, shift) in pieces {
                        for sign in [1.0f32, -1.0] {
                            let dir = (n.0 * sign, n.1 * sign);
                            let part = clip_half_plane(&poly, dir, dir.0 * c.0 + dir.1 * c.1);
                            if part.len() >= 3 {
                                next.push((part, (shift.0 + dir.0 * gap, shift.1 + dir.1 * gap)));
                            }
                        }
                    }
                    pieces = next;
                }
                for (poly, shift) in pieces {
                    let moved: Vec<Pt> = poly.iter().map(|&(x, y)| (x + shift.0, y + shift.1)).collect();
                    if o.glyph.is_some() {
                        let piece = Object { centre: (c.0 + shift.0, c.1 + shift.1), ..o };
                        canvas.clipped_to_polygon(&moved, |layer| layer.object(&piece));
                    } else {
                        canvas.polygon(&moved, o.colour, 1.0, o.style);
                    }
                }
                if arrows && stage + 1 < stages {
                    let next = centres[stage + 1];
                    let (a, b) = (((c.0 * 0.55 + next.0 * 0.45), (c.1 * 0.55 + next.1 * 0.45)), ((c.0 * 0.38 + next.0 * 0.62), (c.1 * 0.38 + next.1 * 0.62)));
                    canvas.arrow(a, b, p.second);
                }
            }
        }
        Relation::AlternatingPattern => {
            let kind = rng.random_range(0..3);
            let two_rows = rng.random_bool(0.3);
            let n = rng.random_range(6..=8);
            let direction = if rng.random_bool(0.75) { Direction::Across } else { Direction::Down };
            let (centres, spacing) = line_positions(n, direction);
            let r = (spacing * 0.4).min(26.0) * look.scale.min(1.0);
            let rows: &[f32] = if two_rows { &[-1.0, 1.0] } else { &[0.0] };
            for (row, &offset) in rows.iter().enumerate() {
                for (i, c) in centres.iter().enumerate() {
                    let c = match direction {
                        Direction::Down => (c.0 + offset * spacing * 0.7, c.1),
                        _ => (c.0, c.1 + offset * spacing * 0.7),
                    };
                    let b = (i + row) % 2 == 1;
                    let (shape, colour, radius) = match (b, kind) {
                        (false, _) => (look.shape, p.main, r),
                        (true, 0) => (look.shape, p.second, r),
                        (true, 1) => (look.other_shape, p.main, r),
                        (true, _) => (look.shape, p.main, r * 0.55),
                    };
                    canvas.object(&look.object(shape, look.jittered(c, rng), radius, look.tilt, colour));
                }
            }
        }
        Relation::Containment => {
            let big_r = rng.random_range(70.0..98.0);
            let centre = (rng.random_range(big_r + 8.0..SCENE - big_r - 8.0), rng.random_range(big_r + 8.0..SCENE - big_r - 8.0));
            let container = Object { shape: look.other_shape, centre, radius: big_r, rotation: look.tilt.clamp(-15.0, 15.0), colour: p.second, alpha: 1.0, style: Style::Outline(4.0), glyph: None };
            let boundary = container.points();
            canvas.object(&container);
            let r = rng.random_range(10.0..16.0) * look.scale.min(1.0);
            let ring = |c: Pt| (0..8).map(move |k| {
                let a = k as f32 / 8.0 * TAU;
                (c.0 + (r + 5.0) * a.cos(), c.1 + (r + 5.0) * a.sin())
            });
            let (want_in, want_out) = (rng.random_range(1..=3), rng.random_range(0..=3));
            let (mut placed, mut inner, mut outer) = (Vec::<Pt>::new(), 0, 0);
            for _ in 0..400 {
                if inner == want_in && outer == want_out {
                    break;
                }
                let c = (rng.random_range(r + 6.0..SCENE - r - 6.0), rng.random_range(r + 6.0..SCENE - r - 6.0));
                if placed.iter().any(|q| (q.0 - c.0).powi(2) + (q.1 - c.1).powi(2) < (2.4 * r).powi(2)) {
                    continue;
                }
                let all_in = inside(&boundary, c) && ring(c).all(|q| inside(&boundary, q));
                let all_out = !inside(&boundary, c) && ring(c).all(|q| !inside(&boundary, q));
                if (all_in && inner < want_in) || (all_out && outer < want_out) {
                    if all_in {
                        inner += 1;
                    } else {
                        outer += 1;
                    }
                    placed.push(c);
                    canvas.object(&look.object(look.shape, c, r, look.tilt, p.main));
                }
            }
            if inner == 0 {
                // A container too thin for the sampled spot: its centre always has room.
                canvas.object(&look.object(look.shape, centre, r.min(big_r * 0.25), look.tilt, p.main));
            }
        }
        Relation::BeforeAfter => {
            let across = rng.random_bool(0.7);
            let count: usize = rng.random_range(4..=8);
            let (pw, ph) = if across { (104.0, rng.random_range(140.0..200.0)) } else { (rng.random_range(140.0..200.0), 104.0) };
            let first = if across { (8.0, (SCENE - ph) / 2.0) } else { ((SCENE - pw) / 2.0, 8.0) };
            let second = if across { (SCENE - 8.0 - pw, first.1) } else { (first.0, SCENE - 8.0 - ph) };
            let framed = rng.random_bool(0.6);
            for (x, y) in [first, second] {
                if framed {
                    canvas.panel(x, y, pw, ph, [255, 255, 255], 0.25, p.second, 2.0);
                }
            }
            let cols = (count as f32).sqrt().ceil() as usize;
            let rows = count.div_ceil(cols);
            let (cw, ch) = (pw / cols as f32, ph / rows as f32);
            let r = (cw.min(ch) * 0.34).min(20.0) * look.scale.min(1.0);
            let colours: Vec<Rgb> = (0..count).map(|_| if rng.random_bool(0.7) { p.main } else { p.second }).collect();
            for (i, &colour) in colours.iter().enumerate() {
                let c = (first.0 + rng.random_range(r..pw - r), first.1 + rng.random_range(r..ph - r));
                canvas.object(&look.object(look.shape, c, r, rng.random_range(0.0..360.0), colour));
                let tidy = (second.0 + (i % cols) as f32 * cw + cw / 2.0, second.1 + (i / cols) as f32 * ch + ch / 2.0);
                canvas.object(&look.object(look.shape, tidy, r, 0.0, colour));
            }
            let (a, b) = if across {
                ((first.0 + pw + 4.0, SCENE / 2.0), (second.0 - 8.0, SCENE / 2.0))
            } else {
                ((SCENE / 2.0, first.1 + ph + 4.0), (SCENE / 2.0, second.1 - 8.0))
            };
            canvas.arrow(a, b, p.accent);
        }
        structure => {
            super::structures::draw(structure, look, canvas, rng);
        }
    }
}

/// A grid of 3 to 5 by 3 to 4 places (either way round) filling the scene: their centres, row
/// by row, and the radius of an object in one.
pub(super) fn object_grid(look: &Look, rng: &mut impl Rng) -> (Vec<Pt>, f32) {
    // i32 draws (and the callers' pick of a place as i32): the scenes' streams stay as first drawn.
    let (mut rows, mut cols) = (rng.random_range(3..=4i32), rng.random_range(3..=5i32));
    if rng.random_bool(0.3) {
        std::mem::swap(&mut rows, &mut cols);
    }
    let cell = 228.0 / rows.max(cols) as f32;
    let centres = (0..rows * cols)
        .map(|i| {
            (
                SCENE / 2.0 + (i % cols) as f32 * cell - (cols - 1) as f32 * cell / 2.0,
                SCENE / 2.0 + (i / cols) as f32 * cell - (rows - 1) as f32 * cell / 2.0,
            )
        })
        .collect();
    (centres, cell * 0.36 * look.scale.min(1.05))
}
