//! Requests numbered so that only the newest one's answer is used: typing, sliding and clicking
//! fire requests faster than the answers come back.

use leptos::prelude::*;

/// The number of the newest request.
#[derive(Clone, Copy)]
pub struct Latest(StoredValue<u64>);

impl Latest {
    pub fn new() -> Self {
        Latest(StoredValue::new(0))
    }

    /// Starts a request: every older one is stale from now on.
    pub fn next(&self) -> u64 {
        self.0.update_value(|n| *n += 1);
        self.0.get_value()
    }

    /// Whether `ticket` is still the newest request.
    pub fn is_current(&self, ticket: u64) -> bool {
        self.0.get_value() == ticket
    }

    /// Waits `ms` (a pause in typing or sliding), then says whether `ticket` is still the newest.
    pub async fn settle(&self, ticket: u64, ms: u32) -> bool {
        gloo::timers::future::TimeoutFuture::new(ms).await;
        self.is_current(ticket)
    }
}
