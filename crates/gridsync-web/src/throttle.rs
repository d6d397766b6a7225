//! Wrong secrets at a login, throttled.

use std::sync::Mutex;
use std::time::Duration;

/// Wrong guesses allowed before the login pauses.
const FREE_ATTEMPTS: u32 = 5;
/// First pause after the free attempts; each further wrong guess doubles it, up to the cap.
const FIRST_PAUSE: Duration = Duration::from_secs(30);
const MAX_PAUSE: Duration = Duration::from_secs(15 * 60);

/// Throttles wrong PINs or tokens: five free guesses, then a pause that doubles with every
/// further wrong guess (30 s up to 15 min), whatever the next guess is. A right one resets
/// it. With a 4-digit PIN and these pauses, guessing through the field app takes weeks.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    state: Mutex<ThrottleState>,
}

#[derive(Debug, Default)]
struct ThrottleState {
    failures: u32,
    paused_until_ms: u64,
}

impl LoginThrottle {
    /// How long the caller must wait before a guess is looked at (`None`: go ahead).
    pub fn wait(&self, now_ms: u64) -> Option<Duration> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        (state.paused_until_ms > now_ms)
            .then(|| Duration::from_millis(state.paused_until_ms - now_ms))
    }

    /// Records a wrong guess at `now_ms`.
    pub fn failed(&self, now_ms: u64) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.failures += 1;
        if state.failures >= FREE_ATTEMPTS {
            let doublings = (state.failures - FREE_ATTEMPTS).min(16);
            let pause = FIRST_PAUSE.saturating_mul(1u32 << doublings).min(MAX_PAUSE);
            state.paused_until_ms = now_ms + pause.as_millis() as u64;
        }
    }

    /// Records a right PIN: the count starts again.
    pub fn succeeded(&self) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = ThrottleState::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_guesses_pause_the_login_and_a_right_one_resets_it() {
        let t = LoginThrottle::default();
        for _ in 0..FREE_ATTEMPTS - 1 {
            t.failed(1_000);
            assert_eq!(t.wait(1_000), None);
        }
        t.failed(1_000);
        assert_eq!(t.wait(1_000), Some(FIRST_PAUSE));
        assert_eq!(t.wait(1_000 + 30_000), None);
        t.failed(31_000);
        assert_eq!(t.wait(31_000), Some(FIRST_PAUSE * 2));
        for _ in 0..40 {
            t.failed(31_000);
        }
        assert_eq!(t.wait(31_000), Some(MAX_PAUSE));
        t.succeeded();
        assert_eq!(t.wait(31_000), None);
    }
}
