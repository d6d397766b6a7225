//! A store's logical contents, table by table: what two stores are compared by (a street
//! simulation run twice with one seed must leave identical stores).

use rusqlite::types::ValueRef;

use crate::{Store, StoreError};

impl Store {
    /// Calls `visit(table, row)` for every row of every table but those in `skip`: tables by
    /// name, rows ordered by their columns, each row encoded without ambiguity (per column a
    /// type tag, then a length for text and blobs, then the bytes).
    pub fn visit_rows(
        &self,
        skip: &[&str],
        visit: &mut dyn FnMut(&str, &[u8]),
    ) -> Result<(), StoreError> {
        let tables: Vec<String> = self
            .conn
            .prepare(
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite_%' ORDER BY name",
            )?
            .query_map([], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        let mut encoded = Vec::new();
        for table in tables.iter().filter(|t| !skip.contains(&t.as_str())) {
            // The names come from sqlite_master, not from a caller: quoting them is enough.
            let columns = self
                .conn
                .prepare(&format!("SELECT * FROM \"{table}\" LIMIT 0"))?
                .column_count();
            let order: Vec<String> = (1..=columns).map(|i| i.to_string()).collect();
            let mut statement = self.conn.prepare(&format!(
                "SELECT * FROM \"{table}\" ORDER BY {}",
                order.join(", ")
            ))?;
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                encoded.clear();
                for column in 0..columns {
                    encode_value(row.get_ref(column)?, &mut encoded);
                }
                visit(table, &encoded);
            }
        }
        Ok(())
    }
}

fn encode_value(value: ValueRef<'_>, out: &mut Vec<u8>) {
    let mut with_length = |tag: u8, bytes: &[u8]| {
        out.push(tag);
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(bytes);
    };
    match value {
        ValueRef::Null => out.push(0),
        ValueRef::Integer(v) => {
            out.push(1);
            out.extend_from_slice(&v.to_le_bytes());
        }
        ValueRef::Real(v) => {
            out.push(2);
            out.extend_from_slice(&v.to_bits().to_le_bytes());
        }
        ValueRef::Text(text) => with_length(3, text),
        ValueRef::Blob(blob) => with_length(4, blob),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use gridsync_proto::{DocPath, NodeId};

    use crate::Store;

    fn rows(store: &Store, skip: &[&str]) -> Vec<(String, Vec<u8>)> {
        let mut rows = Vec::new();
        store
            .visit_rows(skip, &mut |table, row| {
                rows.push((table.to_owned(), row.to_vec()))
            })
            .unwrap();
        rows
    }

    #[test]
    fn equal_contents_visit_equally_and_a_changed_row_differs_unless_its_table_is_skipped() {
        let a_dir = tempfile::tempdir().unwrap();
        let b_dir = tempfile::tempdir().unwrap();
        let mut a = Store::create(a_dir.path()).unwrap();
        let mut b = Store::create(b_dir.path()).unwrap();
        let peer = NodeId::parse("cap-1").unwrap();
        let path = DocPath::parse("s/g1/b1").unwrap();
        // Written in different orders: the visit orders rows by their contents.
        a.put_meta("x", b"1").unwrap();
        a.put_meta("y", b"2").unwrap();
        b.put_meta("y", b"2").unwrap();
        b.put_meta("x", b"1").unwrap();
        a.put_sync_states(&peer, &[(path.clone(), vec![1, 2])])
            .unwrap();
        b.put_sync_states(&peer, &[(path.clone(), vec![1, 2])])
            .unwrap();
        assert_eq!(rows(&a, &[]), rows(&b, &[]));
        assert!(
            rows(&a, &[])
                .iter()
                .any(|(table, _)| table == "sync_states")
        );

        b.put_sync_states(&peer, &[(path, vec![1, 3])]).unwrap();
        assert_ne!(rows(&a, &[]), rows(&b, &[]));
        assert_eq!(rows(&a, &["sync_states"]), rows(&b, &["sync_states"]));
    }
}
