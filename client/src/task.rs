//! Background tasks owned by a handle.

use tokio::task::JoinHandle;

/// Aborts its task when dropped, so a background loop never outlives what owns it.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(pub(crate) JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
