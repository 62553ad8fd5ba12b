//! The A/B study the companion runs (`relsim serve --study DIR`): its trials without the methods
//! (the study is blind), its images, and answers stored durably before they are acknowledged.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use relsim_shared::protocol::{StudyAnswer, StudyPage, StudyTrial};

use super::api::ApiState;
use super::error::Failure;
use crate::study::{AnswerLog, Study, ANSWERS_FILE};

/// Longest session id an answer may carry.
const MAX_SESSION: usize = 64;

/// A study folder being run.
pub struct StudyRun {
    dir: PathBuf,
    study: Study,
    log: Mutex<AnswerLog>,
}

impl StudyRun {
    /// Opens the study in `dir` and its answers (a torn last answer from a crash is dropped).
    pub fn open(dir: PathBuf) -> anyhow::Result<Arc<StudyRun>> {
        let study = Study::open(&dir)?;
        let log = AnswerLog::open(&dir.join(ANSWERS_FILE))?;
        tracing::info!("running the study in {}: {} trials, {} answers so far", dir.display(), study.trials.len(), log.records.len());
        Ok(Arc::new(StudyRun { dir, study, log: Mutex::new(log) }))
    }
}

fn running(state: &ApiState) -> Result<Arc<StudyRun>, Failure> {
    state.study.clone().ok_or_else(|| Failure::not_found("no study is being run: start the companion with --study DIR (made by `relsim study make`)"))
}

fn image_url(hash: &str) -> String {
    format!("/api/study/images/{hash}")
}

/// The study's trials, in order, without their methods.
#[utoipa::path(get, path = "/api/study", responses((status = 200, body = StudyPage), (status = 404, body = relsim_shared::protocol::ApiError)))]
pub async fn study(State(state): State<ApiState>) -> Result<Json<StudyPage>, Failure> {
    let run = running(&state)?;
    let trials = run.study.trials.iter().map(|t| StudyTrial { id: t.id, query: image_url(&t.query), left: image_url(&t.left.image), right: image_url(&t.right.image) }).collect();
    let answers = run.log.lock().map_err(|_| Failure::internal(anyhow::anyhow!("the answer log failed earlier")))?.records.len();
    Ok(Json(StudyPage { trials, answers }))
}

/// An image of the study, by content hash.
#[utoipa::path(get, path = "/api/study/images/{hash}", params(("hash" = String, Path, description = "content hash")), responses((status = 200, description = "the image file"), (status = 404, body = relsim_shared::protocol::ApiError)))]
pub async fn study_image(State(state): State<ApiState>, Path(hash): Path<String>) -> Result<Response, Failure> {
    let run = running(&state)?;
    let path = run.study.image_path(&run.dir, &hash).ok_or_else(|| Failure::not_found(format!("the study has no image `{hash}`")))?;
    let bytes = tokio::fs::read(&path).await.map_err(|e| Failure::not_found(format!("{}: {e}", path.display())))?;
    let kind = image::guess_format(&bytes).map(|f| f.to_mime_type()).unwrap_or("application/octet-stream");
    Ok(([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "private, max-age=86400")], bytes).into_response())
}

/// Stores one answer (on disk before the reply); 201 with the number of answers stored.
#[utoipa::path(post, path = "/api/study/answers", request_body = StudyAnswer, responses((status = 201, description = "stored; the body says how many answers the study holds: {\"answers\": n}"), (status = 400, body = relsim_shared::protocol::ApiError), (status = 404, body = relsim_shared::protocol::ApiError), (status = 422, body = relsim_shared::protocol::ApiError)))]
pub async fn answer(State(state): State<ApiState>, request: Result<Json<StudyAnswer>, JsonRejection>) -> Result<(StatusCode, Json<serde_json::Value>), Failure> {
    let run = running(&state)?;
    let Json(answer) = request?;
    if !run.study.trials.iter().any(|t| t.id == answer.trial) {
        return Err(Failure::not_found(format!("the study has no trial {}", answer.trial)));
    }
    if answer.session.is_empty() || answer.session.len() > MAX_SESSION || !answer.session.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(Failure::bad_request(format!("`session` must be 1 to {MAX_SESSION} letters, digits or dashes")));
    }
    let stored = tokio::task::spawn_blocking(move || {
        let mut log = run.log.lock().map_err(|_| Failure::internal(anyhow::anyhow!("the answer log failed earlier")))?;
        log.append(answer).map_err(Failure::internal)?;
        Ok::<usize, Failure>(log.records.len())
    })
    .await
    .map_err(|e| Failure::internal(anyhow::anyhow!("a worker failed: {e}")))??;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "answers": stored }))))
}
