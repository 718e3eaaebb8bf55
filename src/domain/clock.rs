//! The time the rules are decided at: member expiry, the message grace period. It is the
//! system clock, moved forward by an offset that only tests set, so that a test can let 30
//! days pass without waiting for them. Each transaction reads it once, when it begins
//! (`Tx::now`), and decides every rule of the transaction at that instant.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use super::model::now_micros;

#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset: Arc<AtomicI64>,
}

impl Clock {
    /// Microseconds since the Unix epoch.
    pub fn now_micros(&self) -> i64 {
        now_micros().saturating_add(self.offset.load(Ordering::Relaxed))
    }

    /// Moves this clock (and every copy of it) forward.
    pub fn advance(&self, by: Duration) {
        let micros = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        self.offset.fetch_add(micros, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_and_its_copies_move_together() {
        let clock = Clock::default();
        let copy = clock.clone();
        let before = copy.now_micros();
        clock.advance(Duration::from_secs(30 * 86_400));
        let after = copy.now_micros();
        assert!(after - before >= 30 * 86_400 * 1_000_000);
        assert!(after - before < 31 * 86_400 * 1_000_000);
    }
}
