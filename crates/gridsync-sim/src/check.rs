//! What a finished simulation must show: every replica that may hold a document holds it with
//! the same heads as every other holder (convergence), and every acknowledged record is in
//! every replica that may hold its document (no acknowledged write lost).
//!
//! Both checks assume a topology in which the holders of each document are connected through
//! other holders (or carriers) of it; that is what the simulation's topologies are built as.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use automerge::{Automerge, ChangeHash};
use gridsync_model::BuildingRecords;
use gridsync_node::Replica;
use gridsync_proto::{DocPath, Scopes};

use crate::ledger::AckedWrite;

/// One document as one replica holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocSnapshot {
    /// Heads, sorted: equal heads mean equal histories.
    pub heads: Vec<ChangeHash>,
    /// Ids of every record in a building document (visits, deliveries, sweeps,
    /// corrections); empty for other documents.
    pub record_ids: BTreeSet<String>,
}

impl DocSnapshot {
    fn of(path: &DocPath, doc: &Automerge) -> DocSnapshot {
        let mut heads = doc.get_heads();
        heads.sort();
        // Building documents are `{street}/{grid}/{building}`; only they hold records.
        let record_ids = if path.segments().count() == 3 {
            let records = BuildingRecords::read(doc);
            records
                .visits
                .iter()
                .map(|r| r.id.to_string())
                .chain(records.deliveries.iter().map(|r| r.id.to_string()))
                .chain(records.sweeps.iter().map(|r| r.id.to_string()))
                .chain(records.corrections.iter().map(|r| r.id.to_string()))
                .collect()
        } else {
            BTreeSet::new()
        };
        DocSnapshot { heads, record_ids }
    }
}

/// A replica's documents and the scopes that say which documents it should hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaSnapshot {
    pub scopes: Scopes,
    pub docs: BTreeMap<DocPath, DocSnapshot>,
}

impl ReplicaSnapshot {
    /// Snapshots in-memory documents.
    pub fn of(scopes: Scopes, docs: &BTreeMap<DocPath, Automerge>) -> ReplicaSnapshot {
        let docs = docs
            .iter()
            .map(|(path, doc)| (path.clone(), DocSnapshot::of(path, doc)))
            .collect();
        ReplicaSnapshot { scopes, docs }
    }

    /// Snapshots what is durable in the store at `dir` (opened anew, as after a restart).
    pub fn from_disk(
        scopes: Scopes,
        dir: &Path,
    ) -> Result<ReplicaSnapshot, Box<gridsync_node::ReplicaError>> {
        let mut replica = Replica::open(dir).map_err(Box::new)?;
        replica.load_all().map_err(Box::new)?;
        Ok(ReplicaSnapshot::of(scopes, replica.loaded_docs()))
    }
}

/// One way in which replicas disagree with each other or with the ledger.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Divergence {
    #[error("{host} may hold {path} (held by {holder}) but does not have it")]
    MissingDocument {
        host: String,
        path: DocPath,
        holder: String,
    },
    #[error("{path}: {a} has {a_heads} head(s), {b} has {b_heads} head(s), and they differ")]
    DifferentHeads {
        path: DocPath,
        a: String,
        a_heads: usize,
        b: String,
        b_heads: usize,
    },
    #[error("record {record_id} acknowledged by {by} is missing from {path} at {host}")]
    LostRecord {
        record_id: String,
        by: String,
        path: DocPath,
        host: String,
    },
}

/// Every disagreement between replicas: a document some replica holds that another replica
/// may hold but lacks, or two holders with different heads. Empty means converged.
pub fn check_converged(replicas: &BTreeMap<String, ReplicaSnapshot>) -> Vec<Divergence> {
    let mut found = Vec::new();
    // The first holder of each path, as the reference the others are compared with.
    let mut reference: BTreeMap<&DocPath, (&String, &DocSnapshot)> = BTreeMap::new();
    for (host, replica) in replicas {
        for (path, doc) in &replica.docs {
            reference.entry(path).or_insert((host, doc));
        }
    }
    for (path, (holder, expected)) in reference {
        for (host, replica) in replicas {
            if !replica.scopes.may_hold(path) {
                continue;
            }
            match replica.docs.get(path) {
                None => found.push(Divergence::MissingDocument {
                    host: host.clone(),
                    path: path.clone(),
                    holder: holder.clone(),
                }),
                Some(doc) if doc.heads != expected.heads => {
                    found.push(Divergence::DifferentHeads {
                        path: path.clone(),
                        a: holder.clone(),
                        a_heads: expected.heads.len(),
                        b: host.clone(),
                        b_heads: doc.heads.len(),
                    })
                }
                Some(_) => {}
            }
        }
    }
    found
}

/// Every acknowledged record missing from a replica that may hold its document.
pub fn check_acknowledged(
    acked: &[AckedWrite],
    replicas: &BTreeMap<String, ReplicaSnapshot>,
) -> Vec<Divergence> {
    let mut found = Vec::new();
    for write in acked {
        for (host, replica) in replicas {
            if !replica.scopes.may_hold(&write.document) {
                continue;
            }
            let present = replica
                .docs
                .get(&write.document)
                .is_some_and(|doc| doc.record_ids.contains(&write.record_id));
            if !present {
                found.push(Divergence::LostRecord {
                    record_id: write.record_id.clone(),
                    by: write.host.clone(),
                    path: write.document.clone(),
                    host: host.clone(),
                });
            }
        }
    }
    found
}

/// The tables a store digest leaves out: ECDSA signatures, whose nonces ring draws from the
/// operating system by design (their length is fixed, so nothing else depends on them).
const UNREPRODUCIBLE_TABLES: &[&str] = &["change_signatures"];

/// Feeds every row of `store` (but its signatures) into `digest`, for comparing the stores of
/// two runs of one seed.
pub fn digest_store(
    store: &gridsync_store::Store,
    digest: &mut sha2::Sha256,
) -> Result<(), gridsync_store::StoreError> {
    use sha2::Digest as _;
    store.visit_rows(UNREPRODUCIBLE_TABLES, &mut |table, row| {
        digest.update(table.as_bytes());
        digest.update((row.len() as u64).to_le_bytes());
        digest.update(row);
    })
}

/// The first few divergences, one per line, and how many there were.
pub fn describe(divergences: &[Divergence]) -> String {
    let mut out = format!("{} divergence(s)", divergences.len());
    for d in divergences.iter().take(8) {
        out.push_str("\n  - ");
        out.push_str(&d.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use automerge::transaction::Transactable;
    use automerge::{ActorId, ROOT};

    use super::*;

    /// A plausible wall-clock time (the model refuses records dated before 2020).
    const NOW_MS: u64 = 1_780_000_000_000;

    fn scopes(grants: &[&str]) -> Scopes {
        Scopes(
            grants
                .iter()
                .map(|g| g.parse().expect("test grant"))
                .collect(),
        )
    }

    fn doc_with(actor: u8, key: &str) -> Automerge {
        let mut doc = Automerge::new().with_actor(ActorId::from([actor; 16]));
        let mut tx = doc.transaction();
        tx.put(ROOT, key, 1).expect("put on root");
        tx.commit();
        doc
    }

    fn replica(grants: &[&str], docs: &[(&str, &Automerge)]) -> ReplicaSnapshot {
        let docs = docs
            .iter()
            .map(|(p, d)| (DocPath::parse(p).expect("test path"), (*d).clone()))
            .collect();
        ReplicaSnapshot::of(scopes(grants), &docs)
    }

    #[test]
    fn finds_missing_documents_and_different_heads_but_ignores_out_of_scope_ones() {
        let a = doc_with(1, "a");
        let b = doc_with(2, "b");
        let mut replicas = BTreeMap::new();
        replicas.insert(
            "office".to_owned(),
            replica(
                &["write:panhuo"],
                &[("panhuo/grid-001/b1", &a), ("panhuo/grid-002/b2", &a)],
            ),
        );
        replicas.insert(
            "vol".to_owned(),
            replica(&["write:panhuo/grid-001"], &[("panhuo/grid-001/b1", &a)]),
        );
        assert!(
            check_converged(&replicas).is_empty(),
            "grid-002 is not the volunteer's"
        );

        replicas.insert(
            "vol".to_owned(),
            replica(&["write:panhuo/grid-001"], &[("panhuo/grid-001/b1", &b)]),
        );
        assert!(matches!(
            check_converged(&replicas).as_slice(),
            [Divergence::DifferentHeads { .. }]
        ));

        replicas.insert("vol".to_owned(), replica(&["write:panhuo/grid-001"], &[]));
        assert!(matches!(
            check_converged(&replicas).as_slice(),
            [Divergence::MissingDocument { host, .. }] if host == "vol"
        ));
    }

    #[test]
    fn reports_an_acknowledged_record_missing_from_a_holder() {
        let plan = crate::nodes::plan::SyntheticPlan::small();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut office = Replica::init(
            dir.path(),
            &gridsync_proto::NodeId::parse("office").expect("node id"),
            &plan.street,
        )
        .expect("replica");
        gridsync_node::ops::FieldWrite::PlanImport { csv: plan.csv() }
            .apply(&mut office, NOW_MS)
            .expect("plan import");
        let receipt =
            gridsync_node::ops::FieldWrite::visit(plan.households_in(1)[0].clone(), "contacted")
                .apply(&mut office, NOW_MS + 1)
                .expect("visit");
        let record_id = receipt.record_id.expect("a visit has a record id");
        let acked = vec![AckedWrite {
            host: "office".into(),
            document: receipt.document.clone(),
            record_id: record_id.clone(),
            at: Duration::ZERO,
        }];
        let mut replicas = BTreeMap::new();
        replicas.insert(
            "office".to_owned(),
            ReplicaSnapshot::of(scopes(&["write:panhuo"]), office.loaded_docs()),
        );
        assert!(check_acknowledged(&acked, &replicas).is_empty());
        replicas.insert("vol".to_owned(), replica(&["write:panhuo/grid-001"], &[]));
        assert!(matches!(
            check_acknowledged(&acked, &replicas).as_slice(),
            [Divergence::LostRecord { host, record_id: r, .. }] if host == "vol" && *r == record_id
        ));
    }
}
