//! The one place that turns failures into HTTP responses.
//!
//! Every error knows whom it comes from: the client (4xx), a child or the app's files
//! (502/503/504, 500 for the app's own config), or the supervisor itself.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use serde_json::json;

use crate::apps::{ResolveError, SetupError};
use crate::pool::{PoolError, StartError};

/// A request that ends in an error response.
#[derive(Debug)]
pub struct RequestError {
    /// The status to answer with.
    pub status: StatusCode,
    /// A stable upper-case code for clients.
    pub code: &'static str,
    /// A sentence saying what went wrong.
    pub message: String,
}

impl RequestError {
    /// Builds an error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        RequestError {
            status,
            code,
            message: message.into(),
        }
    }

    /// The response, carrying the request id in its body and headers.
    pub fn into_response_with_id(self, request_id: &HeaderValue) -> Response {
        let id = request_id.to_str().unwrap_or_default();
        let body = json!({
            "error": {"code": self.code, "message": self.message, "requestId": id}
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        response
            .headers_mut()
            .insert("x-request-id", request_id.clone());
        response
    }
}

impl IntoResponse for RequestError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<ResolveError> for RequestError {
    fn from(error: ResolveError) -> Self {
        match error {
            ResolveError::Collision(_) => RequestError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "APP_COLLISION",
                error.to_string(),
            ),
            ResolveError::BadRange(_) => RequestError::new(
                StatusCode::BAD_REQUEST,
                "BAD_VERSION_RANGE",
                error.to_string(),
            ),
            _ => RequestError::new(StatusCode::NOT_FOUND, "APP_NOT_FOUND", error.to_string()),
        }
    }
}

impl From<SetupError> for RequestError {
    fn from(error: SetupError) -> Self {
        let message = error.to_string();
        match error {
            SetupError::Config(_) => RequestError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "APP_CONFIG_INVALID",
                message,
            ),
            SetupError::Entrypoint(_) => RequestError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "APP_ENTRYPOINT_INVALID",
                message,
            ),
        }
    }
}

impl From<PoolError> for RequestError {
    fn from(error: PoolError) -> Self {
        let message = error.to_string();
        match error {
            PoolError::Start(StartError::Timeout { .. }) => RequestError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "WORKER_START_TIMEOUT",
                message,
            ),
            PoolError::Start(_) => {
                RequestError::new(StatusCode::BAD_GATEWAY, "WORKER_START_FAILED", message)
            }
            PoolError::QueueFull(_) => {
                RequestError::new(StatusCode::SERVICE_UNAVAILABLE, "QUEUE_FULL", message)
            }
            PoolError::ShuttingDown => {
                RequestError::new(StatusCode::SERVICE_UNAVAILABLE, "SHUTTING_DOWN", message)
            }
        }
    }
}
