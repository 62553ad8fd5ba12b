//! Types exchanged between the companion and the browser app.

use serde::{Deserialize, Serialize};

/// One file of a model the browser downloads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelFile {
    /// Path relative to the model's base URL, e.g. `1_Pooling/config.json`.
    pub name: String,
    /// Size in bytes; a cached copy of another size is stale.
    pub bytes: u64,
}

/// The files of one model, as served at `/api/models/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelManifest {
    pub name: String,
    /// URL prefix under which the files are served.
    pub base_url: String,
    pub files: Vec<ModelFile>,
}

/// Relational share of the combined score (the rest is the attribute score) when a search, or
/// the page's address, does not say.
pub const DEFAULT_WEIGHT: f32 = 0.7;

/// Query images with more pixels than this are refused, by the companion and by the page
/// (decompression bombs).
pub const MAX_QUERY_PIXELS: u64 = 50_000_000;

/// Which teacher's space a distilled student was trained for: its `teacher.json`, read by the
/// companion (serve it only for that teacher's index) and by the browser (check the vectors).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeacherInfo {
    /// `lite` or `qwen`.
    pub model: String,
    /// The teacher's model id: the index vectors the student's queries fit.
    pub model_id: String,
}

/// An API error: every handler answers failures with this body and a matching status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiError {
    /// The HTTP status, repeated for clients that only see the body.
    pub status: u16,
    /// What went wrong, for a person.
    pub error: String,
}

/// Where library indexing stands; streamed as server-sent events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IndexProgress {
    /// idle, scanning, embedding, done, cancelled or failed.
    pub phase: String,
    /// Image files found under the folders.
    pub found: usize,
    /// Files whose size and mtime are as indexed.
    pub unchanged: usize,
    /// New or changed files to read.
    pub to_read: usize,
    /// Of those, read so far.
    pub read: usize,
    /// Images embedded in this run.
    pub embedded: usize,
    /// Files whose content was already indexed (a copy, a move, a touched file).
    pub reused: usize,
    /// Files that could not be read as images.
    pub failed: usize,
    /// Files gone since the last run.
    pub removed: usize,
    /// Why the run failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One distinct image of the library.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LibraryImage {
    /// SHA-256 of the file's bytes.
    pub id: String,
    /// A file holding it.
    pub path: String,
    pub width: u32,
    pub height: u32,
    /// URL of its thumbnail (JPEG, at most 256 px).
    pub thumbnail: String,
    /// When it was taken, `YYYY-MM-DDTHH:MM:SS` in local time: its EXIF DateTimeOriginal, else
    /// its file's modification time (`date_source` says which). None: unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// Where `date` comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_source: Option<DateSource>,
}

/// Where an image's date comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DateSource {
    /// The EXIF DateTimeOriginal the camera wrote.
    Exif,
    /// The file's modification time.
    File,
}

/// A folder of the library that holds images (directly or in its subfolders).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LibraryFolder {
    pub path: String,
    /// Distinct images in it and below it.
    pub images: usize,
}

/// Which images a search or the library listing looks at: those in a folder, taken between two
/// dates. Every part is optional; an empty filter keeps the whole library.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LibraryFilter {
    /// A library folder or a folder inside one (a `path` of the listing's `subfolders`): the
    /// images in it and in its subfolders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    /// First day, `YYYY-MM-DD`, inclusive (the images' `date`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Last day, `YYYY-MM-DD`, inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

impl LibraryFilter {
    /// Whether it keeps every image.
    pub fn is_empty(&self) -> bool {
        self.folder.is_none() && self.from.is_none() && self.to.is_none()
    }

    /// The filter as URL query parameters (`&folder=…&from=…&to=…`, empty when it is empty).
    pub fn to_query_params(&self) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (key, value) in [("folder", &self.folder), ("from", &self.from), ("to", &self.to)] {
            if let Some(value) = value {
                out.append_pair(key, value);
            }
        }
        let s = out.finish();
        if s.is_empty() {
            s
        } else {
            format!("&{s}")
        }
    }
}

/// A page of the library listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LibraryPage {
    /// Distinct images the filter keeps (all of the library without one).
    pub total: usize,
    /// Distinct images in the whole library.
    #[serde(default)]
    pub unfiltered: usize,
    pub offset: usize,
    pub images: Vec<LibraryImage>,
    /// The library folders.
    pub folders: Vec<String>,
    /// Every folder holding images, the library folders included, in path order.
    #[serde(default)]
    pub subfolders: Vec<LibraryFolder>,
    pub progress: IndexProgress,
}

/// What to search with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SearchQuery {
    /// A library image, by id.
    Id { id: String },
    /// An anonymous caption, embedded by the companion's MiniLM.
    Text { text: String },
    /// A 384-d caption embedding computed elsewhere (the browser's MiniLM).
    Vector { vector: Vec<f32> },
    /// An image uploaded earlier to `/api/search/image`, by the `upload` id it answered with
    /// (the companion remembers the last few uploads, so a new weight or page needs no upload).
    Upload { id: String },
    /// Several queries at once: their relational vectors added by weight (a negative weight
    /// subtracts an idea), each weight counted per unit of the spread of that part's scores over
    /// the library, and renormalised; the look compared with is that of the image parts with
    /// positive weights. Several images together ask for the idea they share.
    Compose { parts: Vec<ComposePart> },
}

/// One part of a composite query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ComposePart {
    /// Any query but a composite one.
    #[cfg_attr(feature = "openapi", schema(no_recursion))]
    pub query: SearchQuery,
    /// Its weight: positive adds the idea, negative takes it away.
    pub weight: f32,
}

/// Most parts of a composite query.
pub const MAX_COMPOSE_PARTS: usize = 16;

/// A search by library image, text or vector (`POST /api/search`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchRequest {
    pub query: SearchQuery,
    /// Results per page (1 to 500; default 20).
    #[serde(default)]
    pub k: Option<usize>,
    /// Results to skip (pagination).
    #[serde(default)]
    pub offset: Option<usize>,
    /// Weight of the relational score in the combined score, 0 to 1 (default 0.7); the rest
    /// goes to the attribute score.
    #[serde(default)]
    pub weight: Option<f32>,
    /// Also return the similarity map: every library image's scores.
    #[serde(default)]
    pub map: bool,
    /// Only these images are ranked (and mapped); `total` counts them.
    #[serde(default, skip_serializing_if = "LibraryFilter::is_empty")]
    pub filter: LibraryFilter,
}

/// One library image on the similarity map of a query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MapPoint {
    pub id: String,
    /// Cosine of the relational embeddings (the map's y).
    pub relational: f32,
    /// Cosine of the attribute embeddings (the map's x; none for text queries).
    pub attribute: Option<f32>,
}

/// A caption that fits both the query and a result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Why {
    pub caption: String,
    /// Its cosine with the query.
    pub query: f32,
    /// Its cosine with the result.
    pub result: f32,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchHit {
    pub image: LibraryImage,
    /// Cosine of the relational embeddings: the same idea.
    pub relational: f32,
    /// Cosine of the attribute embeddings: the same look (none for text queries).
    pub attribute: Option<f32>,
    /// `weight * relational + (1 - weight) * attribute` (relational alone without attribute).
    pub combined: f32,
    /// The 3 captions of the caption bank that best fit both query and result.
    pub why: Vec<Why>,
    /// The relational score is below the model's calibrated cut-off (`threshold`): more likely
    /// another idea than this one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub weak: bool,
}

/// A page of search results, best combined score first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchResponse {
    /// Images that were scored.
    pub total: usize,
    pub offset: usize,
    pub k: usize,
    pub weight: f32,
    pub results: Vec<SearchHit>,
    /// For an uploaded image: the id to search with again (`{"kind": "upload", "id": ...}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<String>,
    /// Every library image's scores, when the request asked for the map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map: Option<Vec<MapPoint>>,
    /// The model's calibrated cut-off for this kind of query (image or caption): a best hit
    /// scoring at least this shares the idea at least half the time. None: not calibrated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f32>,
}

/// Two images whose shared idea is asked for (`POST /api/explain`): library or upload ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExplainRequest {
    pub a: String,
    pub b: String,
}

/// The captions of the bank that fit both images of a pair, best first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExplainResponse {
    /// Cosine of the two images' relational embeddings.
    pub relational: f32,
    pub why: Vec<Why>,
}

/// The caption bank: the scene captions and the user's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CaptionBank {
    pub captions: Vec<String>,
    /// Those the user added (a subset of `captions`).
    pub user: Vec<String>,
}

/// A caption to add to the bank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewCaption {
    pub caption: String,
}

/// A person's choice in an A/B study trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum StudyChoice {
    /// The left image shares the query's idea better.
    Left,
    /// The right image does.
    Right,
    /// Neither better than the other.
    Tie,
}

/// One answer to a study trial (`POST /api/study/answers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StudyAnswer {
    /// The trial's id.
    pub trial: usize,
    pub choice: StudyChoice,
    /// Who answered: an opaque id the page draws once per browser tab (at most 64 characters).
    pub session: String,
}

/// A study trial as the page shows it: the methods stay hidden (the study is blind).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StudyTrial {
    pub id: usize,
    /// URLs of the three images.
    pub query: String,
    pub left: String,
    pub right: String,
}

/// The study the companion runs (`GET /api/study`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StudyPage {
    pub trials: Vec<StudyTrial>,
    /// Answers stored so far (every session).
    pub answers: usize,
}

/// What `/api/library/vectors` starts with: whose vectors they are and for which images.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VectorsHeader {
    /// The relational model that made them (a student must have been distilled from it).
    pub model_id: String,
    pub dim: usize,
    /// Image ids, one per row.
    pub ids: Vec<String>,
}

/// The library's relational vectors as one binary body: a little-endian `u32` header length,
/// the JSON [`VectorsHeader`], then the rows as little-endian `f32`.
pub fn encode_vectors(header: &VectorsHeader, rows: &[f32]) -> Vec<u8> {
    let json = serde_json::to_vec(header).expect("a header always serialises");
    let mut out = Vec::with_capacity(4 + json.len() + rows.len() * 4);
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    for v in rows {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Reads a body written by [`encode_vectors`], checking every length.
pub fn decode_vectors(bytes: &[u8]) -> Result<(VectorsHeader, Vec<f32>), String> {
    let len = bytes.get(..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize).ok_or("the vectors body is shorter than its header length")?;
    let json = bytes.get(4..4 + len).ok_or("the vectors body ends inside its header")?;
    let header: VectorsHeader = serde_json::from_slice(json).map_err(|e| format!("the vectors header: {e}"))?;
    let data = &bytes[4 + len..];
    let expected = header.ids.len() * header.dim * 4;
    if data.len() != expected {
        return Err(format!("{} ids of {} values need {expected} bytes of vectors, the body has {}", header.ids.len(), header.dim, data.len()));
    }
    Ok((header, data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip_and_bad_bodies_are_refused() {
        let header = VectorsHeader { model_id: "lite-0123".into(), dim: 2, ids: vec!["aa".into(), "bb".into()] };
        let rows = [1.0, -0.5, 0.25, f32::MIN_POSITIVE];
        let body = encode_vectors(&header, &rows);
        assert_eq!(decode_vectors(&body).unwrap(), (header, rows.to_vec()));
        assert!(decode_vectors(&body[..body.len() - 1]).unwrap_err().contains("need 16 bytes"));
        assert!(decode_vectors(&body[..10]).unwrap_err().contains("inside its header"));
        assert!(decode_vectors(&[1, 0]).is_err());
    }
}
