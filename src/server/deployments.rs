//! `/_/deployments`: listing, uploading, downloading and deleting app releases.

use std::sync::Arc;

use axum::Router;

use super::AppState;

/// The deployment routes, mounted under `/_/deployments`.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
}
