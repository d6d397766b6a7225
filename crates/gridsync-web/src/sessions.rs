//! Browser sessions opened by a login: random ids with an expiry, in memory.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::secret::random_hex;

/// Most sessions kept at once; the oldest go first.
const MAX_SESSIONS: usize = 1_024;

/// Live sessions, each ending `lifetime_ms` after it opened (or at logout).
#[derive(Debug)]
pub struct Sessions {
    lifetime_ms: u64,
    live: Mutex<HashMap<String, u64>>,
}

impl Sessions {
    pub fn new(lifetime_ms: u64) -> Self {
        Sessions {
            lifetime_ms,
            live: Mutex::new(HashMap::new()),
        }
    }

    /// Opens a session at `now_ms`; returns its id (the cookie value).
    pub fn open(&self, now_ms: u64) -> String {
        let id = random_hex();
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.retain(|_, expires| *expires > now_ms);
        if live.len() >= MAX_SESSIONS
            && let Some(oldest) = live.iter().min_by_key(|(_, e)| **e).map(|(k, _)| k.clone())
        {
            live.remove(&oldest);
        }
        live.insert(id.clone(), now_ms + self.lifetime_ms);
        id
    }

    /// Whether `id` is a live session at `now_ms`.
    pub fn is_live(&self, id: &str, now_ms: u64) -> bool {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.get(id).is_some_and(|expires| *expires > now_ms)
    }

    /// Ends a session (logout).
    pub fn close(&self, id: &str) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_close() {
        let s = Sessions::new(10_000);
        let id = s.open(1_000);
        assert!(s.is_live(&id, 2_000));
        assert!(!s.is_live(&id, 11_000));
        assert!(!s.is_live("forged", 2_000));
        s.close(&id);
        assert!(!s.is_live(&id, 2_000));
    }
}
