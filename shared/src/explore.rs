//! The analogy explorer's state and geometry, kept apart from the UI so it is tested natively:
//! what the page's URL holds, where each image lies on the similarity map, which point the
//! pointer is over, and which images make good analogy pairs.

use crate::protocol::{LibraryFilter, MapPoint};

/// The page's views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum View {
    /// Library, search, results and the map.
    #[default]
    Explore,
    /// Full-screen analogy pairs.
    Classroom,
    /// The text encoder, run in the browser.
    Models,
    /// Questions for a class: which of two images shares the idea of the first?
    Quiz,
    /// The A/B study the companion runs: the quiz's question about two methods' hits.
    Study,
}

impl View {
    fn key(self) -> &'static str {
        match self {
            View::Explore => "explore",
            View::Classroom => "classroom",
            View::Models => "models",
            View::Quiz => "quiz",
            View::Study => "study",
        }
    }
}

/// What the explorer searches with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// A library image.
    Image(String),
    /// An image uploaded earlier (remembered by the companion under its content hash).
    Upload(String),
    /// An idea: an anonymous caption.
    Idea(String),
}

pub use crate::protocol::DEFAULT_WEIGHT;

/// Everything the URL holds: reloading or sharing the address restores the page.
#[derive(Debug, Clone, PartialEq)]
pub struct UrlState {
    pub view: View,
    pub query: Option<Query>,
    /// Relational share of the blended score, 0 to 1.
    pub weight: f32,
    /// Classroom pairs (image ids).
    pub lesson: Vec<(String, String)>,
    /// The classroom pair shown.
    pub slide: usize,
    /// Added to the query: more images (the idea they share with it) and ideas, or ideas
    /// taken away from it.
    pub extras: Vec<Extra>,
    /// Which images the library grid shows and searches rank: a folder, a span of days.
    pub filter: LibraryFilter,
    /// Quiz questions.
    pub quiz: Vec<QuizQuestion>,
    /// The quiz question shown.
    pub question: usize,
}

/// One quiz question: which of two images shares the idea of the first? One shares its idea and
/// looks different (the answer), the other looks alike and shows another idea (the decoy).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QuizQuestion {
    pub query: String,
    pub answer: String,
    pub decoy: String,
    /// Whether the answer is shown on the left.
    pub answer_left: bool,
}

/// The value of a hex digit (ids are SHA-256 in hex).
fn nibble(id: &str) -> u8 {
    id.bytes().next().and_then(|b| (b as char).to_digit(16)).unwrap_or(0) as u8
}

impl QuizQuestion {
    /// A question with the answer's side drawn from the two ids (SHA-256 digits are as good as a
    /// coin, and a shared link shows every class the same sides).
    pub fn new(query: String, answer: String, decoy: String) -> Self {
        let answer_left = (nibble(&answer) ^ nibble(&decoy)) & 1 == 0;
        QuizQuestion { query, answer, decoy, answer_left }
    }

    /// The two images as shown: (left, right).
    pub fn sides(&self) -> (&str, &str) {
        if self.answer_left {
            (&self.answer, &self.decoy)
        } else {
            (&self.decoy, &self.answer)
        }
    }

    /// Whether choosing the left image (else the right) is right.
    pub fn is_right(&self, left: bool) -> bool {
        left == self.answer_left
    }

    fn to_url(&self) -> String {
        format!("{}.{}.{}.{}", self.query, self.answer, self.decoy, if self.answer_left { 'l' } else { 'r' })
    }

    fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split('.');
        let (query, answer, decoy, side) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || ![query, answer, decoy].iter().all(|id| is_id(id)) || answer == decoy {
            return None;
        }
        let answer_left = match side {
            "l" => true,
            "r" => false,
            _ => return None,
        };
        Some(QuizQuestion { query: query.to_lowercase(), answer: answer.to_lowercase(), decoy: decoy.to_lowercase(), answer_left })
    }
}

/// Answers given to a quiz, right and wrong, per question (a class may answer a question many
/// times: one vote each).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuizTally {
    /// (right, wrong) per question.
    pub questions: Vec<(u32, u32)>,
}

impl QuizTally {
    /// Counts one answer to question `index`.
    pub fn record(&mut self, index: usize, right: bool) {
        if self.questions.len() <= index {
            self.questions.resize(index + 1, (0, 0));
        }
        let (r, w) = &mut self.questions[index];
        if right {
            *r += 1;
        } else {
            *w += 1;
        }
    }

    /// (right, wrong) for question `index`.
    pub fn question(&self, index: usize) -> (u32, u32) {
        self.questions.get(index).copied().unwrap_or((0, 0))
    }

    /// (right, wrong) over the whole session.
    pub fn session(&self) -> (u32, u32) {
        self.questions.iter().fold((0, 0), |(r, w), (a, b)| (r + a, w + b))
    }

    /// As stored in the browser: `right.wrong` per question, comma-separated.
    pub fn to_text(&self) -> String {
        self.questions.iter().map(|(r, w)| format!("{r}.{w}")).collect::<Vec<_>>().join(",")
    }

    /// Reads [`QuizTally::to_text`]; anything malformed counts as no answers.
    pub fn parse(text: &str) -> Self {
        let questions = text
            .split(',')
            .filter(|t| !t.is_empty())
            .map(|t| t.split_once('.').and_then(|(r, w)| Some((r.parse().ok()?, w.parse().ok()?))).unwrap_or((0, 0)))
            .collect();
        QuizTally { questions }
    }
}

/// Something added to or taken from the explorer's query (a composite query).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extra {
    /// Another library image: ask for the idea the images share.
    Image(String),
    /// An idea added to the query.
    Plus(String),
    /// An idea taken away ("not this idea").
    Minus(String),
}

/// Most extras the URL keeps (a composite query has at most 16 parts, the query itself one).
pub const MAX_EXTRAS: usize = crate::protocol::MAX_COMPOSE_PARTS - 1;

impl Default for UrlState {
    fn default() -> Self {
        UrlState { view: View::Explore, query: None, weight: DEFAULT_WEIGHT, lesson: Vec::new(), slide: 0, extras: Vec::new(), filter: LibraryFilter::default(), quiz: Vec::new(), question: 0 }
    }
}

/// Days in URLs are `YYYY-MM-DD` (the companion checks that the day exists); anything else is
/// dropped.
fn is_day(s: &str) -> bool {
    s.len() == 10 && s.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() })
}

/// Image ids in URLs are hex (SHA-256); anything else is dropped rather than sent to the API.
fn is_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl UrlState {
    /// Reads a query string (with or without the leading `?`); unknown or malformed parts fall
    /// back to their defaults, so a hand-edited or truncated link still opens.
    pub fn parse(query_string: &str) -> Self {
        let mut state = UrlState::default();
        let query_string = query_string.strip_prefix('?').unwrap_or(query_string);
        for (key, value) in form_urlencoded::parse(query_string.as_bytes()) {
            match key.as_ref() {
                "view" => {
                    state.view = match value.as_ref() {
                        "classroom" => View::Classroom,
                        "models" => View::Models,
                        "quiz" => View::Quiz,
                        "study" => View::Study,
                        _ => View::Explore,
                    }
                }
                "image" if is_id(&value) => state.query = Some(Query::Image(value.to_lowercase())),
                "upload" if is_id(&value) => state.query = Some(Query::Upload(value.to_lowercase())),
                "idea" if !value.trim().is_empty() => state.query = Some(Query::Idea(value.into_owned())),
                "w" => {
                    if let Ok(w) = value.parse::<f32>() {
                        if w.is_finite() {
                            state.weight = w.clamp(0.0, 1.0);
                        }
                    }
                }
                "lesson" => {
                    state.lesson = value
                        .split(',')
                        .filter_map(|pair| pair.split_once('.'))
                        .filter(|(a, b)| is_id(a) && is_id(b))
                        .map(|(a, b)| (a.to_lowercase(), b.to_lowercase()))
                        .collect()
                }
                "slide" => state.slide = value.parse().unwrap_or(0),
                "also" => state.extras.extend(value.split(',').filter(|id| is_id(id)).map(|id| Extra::Image(id.to_lowercase()))),
                "plus" if !value.trim().is_empty() => state.extras.push(Extra::Plus(value.into_owned())),
                "minus" if !value.trim().is_empty() => state.extras.push(Extra::Minus(value.into_owned())),
                "quiz" => state.quiz = value.split(',').filter_map(QuizQuestion::parse).take(MAX_QUIZ).collect(),
                "question" => state.question = value.parse().unwrap_or(0),
                "folder" if !value.trim().is_empty() => state.filter.folder = Some(value.into_owned()),
                "from" if is_day(&value) => state.filter.from = Some(value.into_owned()),
                "to" if is_day(&value) => state.filter.to = Some(value.into_owned()),
                _ => {}
            }
        }
        state.extras.truncate(MAX_EXTRAS);
        // Extras change a query; without one they mean nothing.
        if state.query.is_none() {
            state.extras.clear();
        }
        state.slide = state.slide.min(state.lesson.len().saturating_sub(1));
        state.question = state.question.min(state.quiz.len().saturating_sub(1));
        state
    }

    /// The query string for this state (leading `?` included; empty for the default state).
    pub fn to_query_string(&self) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        if self.view != View::Explore {
            out.append_pair("view", self.view.key());
        }
        match &self.query {
            Some(Query::Image(id)) => {
                out.append_pair("image", id);
            }
            Some(Query::Upload(id)) => {
                out.append_pair("upload", id);
            }
            Some(Query::Idea(text)) => {
                out.append_pair("idea", text);
            }
            None => {}
        }
        // Extras only mean something beside a query.
        let extras = if self.query.is_some() { &self.extras[..] } else { &[] };
        let also: Vec<&str> = extras.iter().filter_map(|e| if let Extra::Image(id) = e { Some(id.as_str()) } else { None }).collect();
        if !also.is_empty() {
            out.append_pair("also", &also.join(","));
        }
        for extra in extras {
            match extra {
                Extra::Plus(text) => {
                    out.append_pair("plus", text);
                }
                Extra::Minus(text) => {
                    out.append_pair("minus", text);
                }
                Extra::Image(_) => {}
            }
        }
        if (self.weight - DEFAULT_WEIGHT).abs() > 1e-6 {
            out.append_pair("w", &format!("{:.2}", self.weight));
        }
        for (key, value) in [("folder", &self.filter.folder), ("from", &self.filter.from), ("to", &self.filter.to)] {
            if let Some(value) = value {
                out.append_pair(key, value);
            }
        }
        if !self.lesson.is_empty() {
            let pairs: Vec<String> = self.lesson.iter().map(|(a, b)| format!("{a}.{b}")).collect();
            out.append_pair("lesson", &pairs.join(","));
            if self.slide > 0 {
                out.append_pair("slide", &self.slide.to_string());
            }
        }
        if !self.quiz.is_empty() {
            out.append_pair("quiz", &self.quiz.iter().map(QuizQuestion::to_url).collect::<Vec<_>>().join(","));
            if self.question > 0 {
                out.append_pair("question", &self.question.to_string());
            }
        }
        let s = out.finish();
        if s.is_empty() {
            s
        } else {
            format!("?{s}")
        }
    }
}

/// Most questions a quiz keeps (its address stays under browsers' and servers' URL limits).
pub const MAX_QUIZ: usize = 20;

/// Where a point lies relative to the middle of the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quadrant {
    /// Same idea, different look: the analogies.
    Analogy,
    /// Same idea and same look.
    Twin,
    /// Same look only.
    LookAlike,
    /// Neither.
    Unrelated,
}

/// The map's axes: attribute similarity on x, relational on y, each spanning the scores' range
/// (so the middle lines split the library into the four quadrants).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MapLayout {
    pub x: (f32, f32),
    pub y: (f32, f32),
}

fn span(values: impl Iterator<Item = f32>) -> (f32, f32) {
    let (lo, hi) = values.filter(|v| v.is_finite()).fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        (0.0, 1.0)
    } else if hi - lo < 1e-6 {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    }
}

impl MapLayout {
    /// Axes spanning `points` (text queries have no attribute score: x is then 0.5 for all).
    pub fn fit(points: &[MapPoint]) -> Self {
        MapLayout { x: span(points.iter().filter_map(|p| p.attribute)), y: span(points.iter().map(|p| p.relational)) }
    }

    /// The point's position in the unit square, y up (0 = least related, 1 = most).
    pub fn unit(&self, p: &MapPoint) -> (f32, f32) {
        let x = p.attribute.map_or(0.5, |a| (a - self.x.0) / (self.x.1 - self.x.0));
        let y = (p.relational - self.y.0) / (self.y.1 - self.y.0);
        (x.clamp(0.0, 1.0), y.clamp(0.0, 1.0))
    }

    /// Which quadrant a point is in.
    pub fn quadrant(&self, p: &MapPoint) -> Quadrant {
        let (x, y) = self.unit(p);
        match (x >= 0.5, y >= 0.5) {
            (false, true) => Quadrant::Analogy,
            (true, true) => Quadrant::Twin,
            (true, false) => Quadrant::LookAlike,
            (false, false) => Quadrant::Unrelated,
        }
    }
}

/// Points bucketed by pixel cell, so the point under the pointer is found without scanning all
/// of them (10,000 points, a lookup per mouse move).
pub struct HitGrid {
    cell: f32,
    columns: usize,
    rows: usize,
    cells: Vec<Vec<u32>>,
    positions: Vec<(f32, f32)>,
}

impl HitGrid {
    /// Buckets `positions` (pixels inside a `width` × `height` plot) into cells of `cell` pixels.
    pub fn new(positions: Vec<(f32, f32)>, width: f32, height: f32, cell: f32) -> Self {
        let columns = (width / cell).ceil().max(1.0) as usize;
        let rows = (height / cell).ceil().max(1.0) as usize;
        let mut cells = vec![Vec::new(); columns * rows];
        for (i, &(x, y)) in positions.iter().enumerate() {
            let c = ((x / cell).floor().max(0.0) as usize).min(columns - 1);
            let r = ((y / cell).floor().max(0.0) as usize).min(rows - 1);
            cells[r * columns + c].push(i as u32);
        }
        HitGrid { cell, columns, rows, cells, positions }
    }

    /// The index of the point nearest `(x, y)` within `radius` pixels (at most one cell size).
    pub fn nearest(&self, x: f32, y: f32, radius: f32) -> Option<usize> {
        let c = (x / self.cell).floor() as i64;
        let r = (y / self.cell).floor() as i64;
        let mut best: Option<(usize, f32)> = None;
        for dr in -1..=1 {
            for dc in -1..=1 {
                let (rr, cc) = (r + dr, c + dc);
                if rr < 0 || cc < 0 || rr >= self.rows as i64 || cc >= self.columns as i64 {
                    continue;
                }
                for &i in &self.cells[rr as usize * self.columns + cc as usize] {
                    let (px, py) = self.positions[i as usize];
                    let d = (px - x).powi(2) + (py - y).powi(2);
                    if d <= radius * radius && best.is_none_or(|(_, bd)| d < bd) {
                        best = Some((i as usize, d));
                    }
                }
            }
        }
        best.map(|(i, _)| i)
    }
}

/// The `n` points of `quadrant` that lie deepest in it (largest `depth` of their unit position),
/// deepest first; text queries (no look) have none.
fn deepest(points: &[MapPoint], quadrant: Quadrant, n: usize, depth: fn(f32, f32) -> f32) -> Vec<usize> {
    let layout = MapLayout::fit(points);
    let mut picks: Vec<(usize, f32)> = points
        .iter()
        .enumerate()
        .filter(|(_, p)| p.attribute.is_some() && layout.quadrant(p) == quadrant)
        .map(|(i, p)| {
            let (x, y) = layout.unit(p);
            (i, depth(x, y))
        })
        .collect();
    picks.sort_by(|a, b| b.1.total_cmp(&a.1));
    picks.into_iter().take(n).map(|(i, _)| i).collect()
}

/// The best analogies for a lesson: points in the analogy quadrant, those whose idea is most
/// alike and look least alike first (by relational minus attribute, both on the map's scale).
pub fn analogies(points: &[MapPoint], n: usize) -> Vec<usize> {
    deepest(points, Quadrant::Analogy, n, |x, y| y - x)
}

/// The look-alikes of a map (same look, another idea: the bottom-right quadrant), most alike
/// and least related first.
pub fn look_alikes(points: &[MapPoint], n: usize) -> Vec<usize> {
    deepest(points, Quadrant::LookAlike, n, |x, y| x - y)
}

/// A quiz from an image query's map: its surest analogies (different look, highest idea score,
/// at or above the model's "good match" cut-off when it has one), each beside one of its
/// strongest look-alikes (as many questions as both corners allow, at most `n`).
pub fn quiz_from_map(query: &str, points: &[MapPoint], n: usize, threshold: Option<f32>) -> Vec<QuizQuestion> {
    let answers = deepest(points, Quadrant::Analogy, points.len(), |_, y| y).into_iter().filter(|&i| threshold.is_none_or(|t| points[i].relational >= t)).take(n);
    answers.zip(look_alikes(points, n)).map(|(a, d)| QuizQuestion::new(query.to_string(), points[a].id.clone(), points[d].id.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(id: &str, relational: f32, attribute: Option<f32>) -> MapPoint {
        MapPoint { id: id.into(), relational, attribute }
    }

    #[test]
    fn url_state_round_trips_and_survives_bad_links() {
        let hex = |c: char| c.to_string().repeat(64);
        let state = UrlState {
            view: View::Classroom,
            query: Some(Query::Idea("growth stages of {subject} & more, 100%".into())),
            weight: 0.35,
            lesson: vec![(hex('a'), hex('b')), (hex('c'), hex('d'))],
            slide: 1,
            extras: vec![Extra::Image(hex('1')), Extra::Image(hex('2')), Extra::Plus("one {object} stands out".into()), Extra::Minus("a {thing}, mirrored".into())],
            filter: LibraryFilter { folder: Some("/home/me/Photos/2021 trip & more".into()), from: Some("2021-03-01".into()), to: Some("2021-03-31".into()) },
            quiz: vec![QuizQuestion::new(hex('a'), hex('1'), hex('2')), QuizQuestion::new(hex('b'), hex('1'), hex('3'))],
            question: 1,
        };
        let url = state.to_query_string();
        assert!(url.starts_with("?view=classroom&idea=growth+stages+of+%7Bsubject%7D+%26+more%2C+100%25"), "{url}");
        assert_eq!(UrlState::parse(&url), state);
        for q in [Query::Image(hex('e')), Query::Upload(hex('f'))] {
            let s = UrlState { query: Some(q), ..Default::default() };
            assert_eq!(UrlState::parse(&s.to_query_string()), s);
        }
        assert_eq!(UrlState::default().to_query_string(), "", "the default state keeps the address clean");
        // Malformed parts fall back to defaults; a slide past the end shows the last pair.
        let bad = UrlState::parse("view=nope&image=not-hex&w=7&lesson=zz.yy,aa.bb,cc&slide=9&token=x");
        assert_eq!(bad.view, View::Explore);
        assert_eq!(bad.query, None);
        assert_eq!(bad.weight, 1.0);
        assert_eq!(bad.lesson, vec![("aa".to_string(), "bb".to_string())]);
        assert_eq!(bad.slide, 0);
        assert_eq!(UrlState::parse("w=NaN").weight, DEFAULT_WEIGHT);
        // Extras: images first (one `also`), then ideas in order; only with a query, at most 15.
        let url = format!("?image={}&also={},{},zz&plus=a&minus=b&plus=c", hex('a'), hex('b'), hex('c'));
        let parsed = UrlState::parse(&url);
        assert_eq!(parsed.extras, vec![Extra::Image(hex('b')), Extra::Image(hex('c')), Extra::Plus("a".into()), Extra::Minus("b".into()), Extra::Plus("c".into())]);
        assert_eq!(UrlState::parse(&parsed.to_query_string()), parsed);
        assert!(UrlState::parse("plus=a&minus=b").extras.is_empty(), "nothing to add to");
        let many = format!("idea=x{}", "&plus=y".repeat(40));
        assert_eq!(UrlState::parse(&many).extras.len(), MAX_EXTRAS);
        // Filters stand without a query (they shape the library grid); days must look like days.
        let filter = UrlState::parse("folder=%2Fpics%2Fa&from=2020-01-02&to=2.3.2020");
        assert_eq!(filter.filter, LibraryFilter { folder: Some("/pics/a".into()), from: Some("2020-01-02".into()), to: None });
        assert_eq!(filter.to_query_string(), "?folder=%2Fpics%2Fa&from=2020-01-02");
        assert_eq!(UrlState::parse("from=20200102&to=2020-1-02").filter, LibraryFilter::default());
    }

    #[test]
    fn quizzes_pair_each_analogy_with_a_look_alike_and_keep_their_sides() {
        let points = vec![
            point("a1", 0.9, Some(0.1)),
            point("a2", 0.8, Some(0.2)),
            point("twin", 0.95, Some(0.9)),
            point("l1", 0.1, Some(0.95)),
            point("l2", 0.2, Some(0.7)),
            point("none", 0.05, Some(0.05)),
        ];
        let quiz = quiz_from_map("q", &points, 5, None);
        let pairs: Vec<(&str, &str)> = quiz.iter().map(|q| (q.answer.as_str(), q.decoy.as_str())).collect();
        assert_eq!(pairs, [("a1", "l1"), ("a2", "l2")], "surest analogy with the most alike decoy");
        assert_eq!(quiz_from_map("q", &points, 1, None).len(), 1);
        let sure: Vec<String> = quiz_from_map("q", &points, 5, Some(0.85)).into_iter().map(|q| q.answer).collect();
        assert_eq!(sure, ["a1"], "answers below the cut-off are left out");
        assert!(quiz_from_map("q", &points[..3], 5, None).is_empty(), "no look-alike: no question");
        // Sides: the answer is where the question says, and both sides occur.
        let hex = |n: usize| format!("{n:x}").repeat(64)[..64].to_string();
        let many: Vec<QuizQuestion> = (0..16).map(|i| QuizQuestion::new(hex(0), hex(i), hex((i / 3 + 4) % 16))).filter(|q| q.answer != q.decoy).collect();
        let lefts = many.iter().filter(|q| q.answer_left).count();
        assert!(lefts > 2 && lefts < many.len() - 2, "{lefts} of {} on the left", many.len());
        for q in &many {
            let (left, right) = q.sides();
            assert_eq!(q.is_right(true), left == q.answer);
            assert_eq!(q.is_right(false), right == q.answer);
        }
        // In the address: round trip, bad questions dropped, at most MAX_QUIZ, question in range.
        let state = UrlState { view: View::Quiz, quiz: many.clone(), question: 3, ..Default::default() };
        assert_eq!(UrlState::parse(&state.to_query_string()), state);
        let link = format!("view=quiz&quiz={}.{}.{}.x,{}.{}.{}.l,zz.yy.xx.r&question=9", hex(1), hex(2), hex(3), hex(1), hex(2), hex(3));
        let parsed = UrlState::parse(&link);
        assert_eq!(parsed.quiz, vec![QuizQuestion { query: hex(1), answer: hex(2), decoy: hex(3), answer_left: true }]);
        assert_eq!(parsed.question, 0);
        let long = format!("quiz={}", vec![format!("{}.{}.{}.r", hex(1), hex(2), hex(3)); 40].join(","));
        assert_eq!(UrlState::parse(&long).quiz.len(), MAX_QUIZ);
        // Tallies: per question and for the session, kept as text.
        let mut tally = QuizTally::default();
        tally.record(2, true);
        tally.record(2, false);
        tally.record(0, true);
        assert_eq!((tally.question(0), tally.question(1), tally.question(2), tally.question(7)), ((1, 0), (0, 0), (1, 1), (0, 0)));
        assert_eq!(tally.session(), (2, 1));
        assert_eq!(QuizTally::parse(&tally.to_text()), tally);
        assert_eq!(QuizTally::parse("x,1.2").questions, vec![(0, 0), (1, 2)]);
    }

    #[test]
    fn the_map_puts_analogies_top_left() {
        let points = vec![
            point("analogy", 0.9, Some(0.1)),
            point("twin", 0.95, Some(0.9)),
            point("look", 0.1, Some(0.95)),
            point("none", 0.05, Some(0.05)),
            point("weak-analogy", 0.6, Some(0.4)),
        ];
        let layout = MapLayout::fit(&points);
        assert_eq!(layout.x, (0.05, 0.95));
        assert_eq!(layout.y, (0.05, 0.95));
        let quadrants: Vec<Quadrant> = points.iter().map(|p| layout.quadrant(p)).collect();
        assert_eq!(quadrants, [Quadrant::Analogy, Quadrant::Twin, Quadrant::LookAlike, Quadrant::Unrelated, Quadrant::Analogy]);
        assert_eq!(layout.unit(&points[3]), (0.0, 0.0));
        assert_eq!(layout.unit(&points[1]).1, 1.0);
        assert_eq!(analogies(&points, 5), vec![0, 4], "strongest analogy first, nothing from other quadrants");
        assert_eq!(analogies(&points, 1), vec![0]);
        // Text queries have no look: x is the middle, and there are no analogy picks.
        let text = vec![point("a", 0.2, None), point("b", 0.8, None)];
        assert_eq!(MapLayout::fit(&text).unit(&text[1]), (0.5, 1.0));
        assert!(analogies(&text, 3).is_empty());
        // One point or equal scores still give a usable layout.
        let one = MapLayout::fit(&points[..1]);
        assert_eq!(one.unit(&points[0]), (0.5, 0.5));
    }

    #[test]
    fn the_hit_grid_finds_the_nearest_point_like_a_full_scan() {
        // 10,000 points scattered over a 600 × 400 plot by a fixed linear congruential sequence.
        let mut seed = 12345u64;
        let mut next = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) as f32 / (1u64 << 31) as f32
        };
        let positions: Vec<(f32, f32)> = (0..10_000).map(|_| (next() * 600.0, next() * 400.0)).collect();
        let grid = HitGrid::new(positions.clone(), 600.0, 400.0, 8.0);
        for _ in 0..500 {
            let (x, y) = (next() * 620.0 - 10.0, next() * 420.0 - 10.0);
            let scan = positions
                .iter()
                .enumerate()
                .map(|(i, &(px, py))| (i, (px - x).powi(2) + (py - y).powi(2)))
                .filter(|(_, d)| *d <= 64.0)
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(i, _)| i);
            assert_eq!(grid.nearest(x, y, 8.0), scan, "at ({x}, {y})");
        }
        assert_eq!(HitGrid::new(Vec::new(), 10.0, 10.0, 8.0).nearest(1.0, 1.0, 8.0), None);
    }
}
