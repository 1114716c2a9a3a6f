//! The statefulset controller.

use std::sync::Arc;

use super::Context;

/// Run the controller until the future is dropped.
pub async fn run(ctx: Arc<Context>) {
    let _ = ctx;
    futures::future::pending::<()>().await
}
