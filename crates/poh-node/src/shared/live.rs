//! [`Live`] is down here, not beside the reload that replaces its values, because what holds
//! one (certificates and trust, the clients' token, authentication, the limits) sits in the
//! layers below the reload.

use std::sync::{Arc, RwLock};

/// A value readers take a snapshot of at each use, replaced whole by a reload.
#[derive(Debug)]
pub(crate) struct Live<T>(RwLock<Arc<T>>);

impl<T> Live<T> {
    pub(crate) fn new(value: Arc<T>) -> Self {
        Self(RwLock::new(value))
    }

    /// What holds now.
    pub(crate) fn get(&self) -> Arc<T> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces it; returns the old one.
    pub(crate) fn set(&self, value: Arc<T>) -> Arc<T> {
        std::mem::replace(
            &mut *self.0.write().unwrap_or_else(|p| p.into_inner()),
            value,
        )
    }
}
