//! Small key-value metadata: the node's identity, configuration and the like.

use rusqlite::OptionalExtension;

use crate::{Store, StoreError};

impl Store {
    /// The value stored under `key`.
    pub fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
            .query_row([key], |row| row.get(0))
            .optional()?)
    }

    /// Stores `value` under `key`, replacing any previous value. Durable when `Ok`.
    pub fn put_meta(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )?
            .execute((key, value))?;
        Ok(())
    }

    /// Every (key, value) whose key starts with `prefix`, in key order.
    pub fn meta_with_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT key, value FROM meta WHERE substr(key, 1, ?2) = ?1 ORDER BY key",
        )?;
        let rows = statement.query_map((prefix, prefix.len() as i64), |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?))
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Removes `key` (nothing if absent). Durable when `Ok`.
    pub fn delete_meta(&mut self, key: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM meta WHERE key = ?1")?
            .execute([key])?;
        Ok(())
    }
}
