//! Every failure of the API is a JSON body (`ApiError`) with a matching HTTP status.

use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use relsim_shared::protocol::ApiError;

/// A JSON error response.
pub fn api_error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = ApiError { status: status.as_u16(), error: message.into() };
    (status, Json(body)).into_response()
}

/// A handler's failure: a status and a message for the user.
#[derive(Debug)]
pub struct Failure {
    pub status: StatusCode,
    pub message: String,
}

impl Failure {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Failure { status, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// A failure of ours, not the request's: logged in full, reported briefly.
    pub fn internal(error: anyhow::Error) -> Self {
        tracing::error!("{error:#}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{error:#}"))
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        api_error(self.status, self.message)
    }
}

impl From<JsonRejection> for Failure {
    fn from(r: JsonRejection) -> Self {
        Failure::new(r.status(), r.body_text())
    }
}

impl From<QueryRejection> for Failure {
    fn from(r: QueryRejection) -> Self {
        Failure::new(r.status(), r.body_text())
    }
}

impl From<BytesRejection> for Failure {
    fn from(r: BytesRejection) -> Self {
        let status = r.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE { format!("the upload is larger than {} bytes", super::api::MAX_UPLOAD_BYTES) } else { r.body_text() };
        Failure::new(status, message)
    }
}
