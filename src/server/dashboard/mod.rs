//! The live dashboard at `/_/` and the operator actions it uses.

use std::sync::Arc;

use axum::Router;

use super::AppState;

/// The dashboard page and action routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
}
