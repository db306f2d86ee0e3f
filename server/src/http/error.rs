//! Maps operation errors to HTTP answers: a clear message for the caller, the detail of
//! internal faults only in the log.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ops::Error;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Op(#[from] Error),
    #[error("sign in first")]
    Unauthenticated,
    #[error("{1}")]
    Status(StatusCode, String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl From<store::StoreError> for ApiError {
    fn from(e: store::StoreError) -> Self {
        ApiError::Op(e.into())
    }
}

impl From<domain::Invalid> for ApiError {
    fn from(e: domain::Invalid) -> Self {
        ApiError::Op(Error::Invalid(e))
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Op(Error::NotFound) => StatusCode::NOT_FOUND,
            ApiError::Op(Error::Forbidden(_)) => StatusCode::FORBIDDEN,
            ApiError::Op(Error::Conflict(_)) => StatusCode::CONFLICT,
            ApiError::Op(Error::Invalid(_)) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Op(Error::RateLimited) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Op(Error::Input(e)) if too_large(e) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Op(Error::Input(_)) => StatusCode::BAD_REQUEST,
            ApiError::Op(Error::Internal(_)) | ApiError::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::Status(status, _) => *status,
        }
    }

    /// The message a client may see; server faults say nothing about internals.
    pub fn public_message(&self) -> String {
        if self.status().is_server_error() {
            "internal server error".into()
        } else {
            self.to_string()
        }
    }
}

/// Whether a body read failed because the request went over its size limit.
fn too_large(e: &std::io::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> =
        e.get_ref().map(|inner| inner as _);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %ops::cause_chain(&self), "request failed");
        }
        (
            status,
            Json(serde_json::json!({ "error": self.public_message() })),
        )
            .into_response()
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        ApiError::Status(rejection.status(), rejection.body_text())
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::Status(StatusCode::BAD_REQUEST, rejection.body_text())
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::PathRejection) -> Self {
        // A malformed id names nothing that exists.
        ApiError::Status(
            StatusCode::NOT_FOUND,
            format!("not found: {}", rejection.body_text()),
        )
    }
}

/// `axum::Json` whose rejections answer in the API's JSON error shape.
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

impl<T: serde::Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        Json(self.0).into_response()
    }
}

#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

pub type ApiResult<T> = Result<T, ApiError>;
