//! Who a peer is and what it may do: node ids, roles and scope grants.
//!
//! These travel in certificates (gridsync-net encodes them) and in the hello frame; the
//! session checks that both agree. Authorization decisions in the engine are made only from
//! these types.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::path::{DocPath, PathError, validate_segment};

/// A node's stable identifier, chosen at enrollment (for example `vol-0042`).
/// Same alphabet and bounds as a path segment.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeId(String);

impl NodeId {
    pub fn parse(s: &str) -> Result<Self, PathError> {
        validate_segment(s)?;
        Ok(NodeId(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The legacy actor id: the node id's bytes alone. Stores written before incarnation
    /// actors (store format 3) hold changes under it, and tests use it as a plain actor; it
    /// maps back to this node like every incarnation actor does.
    pub fn actor_id(&self) -> automerge::ActorId {
        automerge::ActorId::from(self.0.as_bytes())
    }

    /// The actor id of one incarnation of this node: the node id's bytes, a zero byte, then
    /// the incarnation's eight bytes. Every store incarnation (creation, restore, a node's
    /// start) writes under a fresh one, so two incarnations can never sign two different
    /// changes with one (actor, seq) — which automerge would refuse for good.
    pub fn incarnation_actor(&self, incarnation: [u8; INCARNATION_LEN]) -> automerge::ActorId {
        let mut bytes = Vec::with_capacity(self.0.len() + 1 + INCARNATION_LEN);
        bytes.extend_from_slice(self.0.as_bytes());
        bytes.push(ACTOR_SEPARATOR);
        bytes.extend_from_slice(&incarnation);
        automerge::ActorId::from(bytes)
    }

    /// The node behind an actor id: a legacy actor (the node id's bytes) or an incarnation
    /// actor ([`NodeId::incarnation_actor`]). `None` for anything else, such as the all-zero
    /// actor of the deterministic genesis changes.
    pub fn from_actor(actor: &automerge::ActorId) -> Option<NodeId> {
        let bytes = actor.to_bytes();
        let name = match bytes.iter().position(|b| *b == ACTOR_SEPARATOR) {
            Some(at) if bytes.len() == at + 1 + INCARNATION_LEN => &bytes[..at],
            Some(_) => return None,
            None => bytes,
        };
        NodeId::parse(std::str::from_utf8(name).ok()?).ok()
    }
}

/// Separates the node id from the incarnation in an actor id; no node id contains it.
const ACTOR_SEPARATOR: u8 = 0;
/// Bytes of an incarnation suffix: random, so no two incarnations of a node share one.
pub const INCARNATION_LEN: usize = 8;

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for NodeId {
    type Error = PathError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        NodeId::parse(&s)
    }
}

impl From<NodeId> for String {
    fn from(n: NodeId) -> String {
        n.0
    }
}

impl std::str::FromStr for NodeId {
    type Err = PathError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NodeId::parse(s)
    }
}

/// What kind of device a node is. Roles describe intent; what a node may actually read,
/// write or carry comes only from its scope grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Volunteer,
    Captain,
    Relay,
    Office,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Volunteer, Role::Captain, Role::Relay, Role::Office];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Volunteer => "volunteer",
            Role::Captain => "captain",
            Role::Relay => "relay",
            Role::Office => "office",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("unknown role {s:?} (expected volunteer, captain, relay or office)")
            })
    }
}

/// What a grant allows on the documents under its prefix.
///
/// - `Read`: may receive the documents.
/// - `Write`: may receive them and author changes to them (implies read).
/// - `Carry`: may hold and forward them for others, but not author changes (store-and-forward).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Read,
    Write,
    Carry,
}

impl std::str::FromStr for Access {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Access::Read),
            "write" => Ok(Access::Write),
            "carry" => Ok(Access::Carry),
            _ => Err(format!(
                "unknown access {s:?} (expected read, write or carry)"
            )),
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::Carry => "carry",
        })
    }
}

/// One grant: an access level on every document at or below `prefix`.
/// Written on the command line and in certificates as `ACCESS:PREFIX`, e.g. `write:panhuo/grid-017`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ScopeGrant {
    pub access: Access,
    pub prefix: DocPath,
}

impl ScopeGrant {
    pub fn covers(&self, path: &DocPath) -> bool {
        path.is_under(&self.prefix)
    }
}

impl fmt::Display for ScopeGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.access, self.prefix)
    }
}

impl std::str::FromStr for ScopeGrant {
    type Err = String;
    /// `write:panhuo/grid-017`; a bare prefix means `write`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (access, prefix) = match s.split_once(':') {
            Some((a, p)) => (a.parse()?, p),
            None => (Access::Write, s),
        };
        let prefix = DocPath::parse(prefix).map_err(|e| format!("scope {s:?}: {e}"))?;
        Ok(ScopeGrant { access, prefix })
    }
}

/// The set of grants a node holds, with the questions the engine asks of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scopes(pub Vec<ScopeGrant>);

impl Scopes {
    /// May this node hold the document at all (read, write or carry)?
    pub fn may_hold(&self, path: &DocPath) -> bool {
        self.0.iter().any(|g| g.covers(path))
    }
    /// May this node author changes to the document?
    pub fn may_write(&self, path: &DocPath) -> bool {
        self.0
            .iter()
            .any(|g| g.access == Access::Write && g.covers(path))
    }
    /// May this node carry (hold and forward) the document under a `Carry` grant?
    pub fn may_carry(&self, path: &DocPath) -> bool {
        self.0
            .iter()
            .any(|g| g.access == Access::Carry && g.covers(path))
    }
    /// May this node read the document's contents (as opposed to only carrying it)?
    pub fn may_read(&self, path: &DocPath) -> bool {
        self.0
            .iter()
            .any(|g| matches!(g.access, Access::Read | Access::Write) && g.covers(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_parse_and_cover() {
        let g: ScopeGrant = "carry:panhuo/grid-017".parse().expect("valid test input");
        assert_eq!(g.access, Access::Carry);
        let scopes = Scopes(vec![
            g,
            "read:panhuo/plan".parse().expect("valid test input"),
        ]);
        let doc = DocPath::parse("panhuo/grid-017/bldg-1").expect("valid test input");
        assert!(scopes.may_hold(&doc));
        assert!(!scopes.may_write(&doc));
        assert!(!scopes.may_read(&doc));
        assert!(scopes.may_read(&DocPath::parse("panhuo/plan").expect("valid test input")));
        assert!("bogus:panhuo".parse::<ScopeGrant>().is_err());
        assert!("write:Pan".parse::<ScopeGrant>().is_err());
    }

    #[test]
    fn actors_map_back_to_their_node() {
        let node = NodeId::parse("vol-0042").expect("valid test input");
        assert_eq!(NodeId::from_actor(&node.actor_id()), Some(node.clone()));
        let a = node.incarnation_actor([1; INCARNATION_LEN]);
        let b = node.incarnation_actor([2; INCARNATION_LEN]);
        assert_ne!(a, b);
        assert_eq!(NodeId::from_actor(&a), Some(node.clone()));
        // The genesis actor, a truncated suffix and a non-node prefix map to nobody.
        assert_eq!(
            NodeId::from_actor(&automerge::ActorId::from([0u8; 16])),
            None
        );
        let mut short = a.to_bytes().to_vec();
        short.pop();
        assert_eq!(NodeId::from_actor(&automerge::ActorId::from(short)), None);
        assert_eq!(
            NodeId::from_actor(&automerge::ActorId::from(b"Bad Id".as_slice())),
            None
        );
    }
}
