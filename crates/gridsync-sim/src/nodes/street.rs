//! The simulated street's identities: its certificate authority, the roles nodes play, and
//! the scopes each role is enrolled with.

use std::time::{SystemTime, UNIX_EPOCH};

use gridsync_net::{DeviceIdentity, NodeCredentials, StreetCa};
use gridsync_proto::{NodeId, Role, ScopeGrant, Scopes};

use crate::SimError;
use crate::nodes::plan::SyntheticPlan;

/// What a simulated node is, which decides its scopes and its workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRole {
    /// The street office: writes everything, imports the street plan.
    Office,
    /// A building captain of one grid: writes that grid, holds and carries the street-wide
    /// documents on to the volunteers who reach only the captain.
    Captain { grid: u32 },
    /// A volunteer of one grid: writes that grid, reads the street-wide documents, logs
    /// visits.
    Volunteer { grid: u32 },
}

impl NodeRole {
    /// The certificate's role.
    pub fn role(self) -> Role {
        match self {
            NodeRole::Office => Role::Office,
            NodeRole::Captain { .. } => Role::Captain,
            NodeRole::Volunteer { .. } => Role::Volunteer,
        }
    }

    /// The grants this role is enrolled with on `street`: its own write grant, plus what
    /// real enrollment gives every device on the street-wide documents (read and carry the
    /// plan and the revocation list, publish in the device directory:
    /// [`gridsync_node::credentials::add_street_wide_grants`]).
    pub fn scopes(self, street: &str) -> Result<Scopes, SimError> {
        let own = match self {
            NodeRole::Office => format!("write:{street}"),
            NodeRole::Captain { grid } | NodeRole::Volunteer { grid } => {
                format!("write:{street}/{}", SyntheticPlan::grid_id(grid))
            }
        };
        let mut scopes = Scopes(vec![own.parse::<ScopeGrant>().map_err(SimError::BadName)?]);
        gridsync_node::credentials::add_street_wide_grants(street, &mut scopes)
            .map_err(|e| SimError::BadName(e.to_string()))?;
        Ok(scopes)
    }
}

/// One node of a simulation: its turmoil host name, identity, role and whom it dials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    /// The turmoil host name (also used in reports and the ledger).
    pub host: String,
    pub node_id: NodeId,
    pub role: NodeRole,
    /// Host names this node keeps dialing (with the node's backoff). Links are only ever
    /// made along these edges, so a topology where not every pair is listed forces records
    /// to travel hop by hop.
    pub dials: Vec<String>,
}

impl NodeSpec {
    /// A node whose node id is its host name.
    pub fn new(host: &str, role: NodeRole, dials: &[&str]) -> Result<NodeSpec, SimError> {
        Ok(NodeSpec {
            host: host.to_owned(),
            node_id: NodeId::parse(host).map_err(|e| SimError::BadName(e.to_string()))?,
            role,
            dials: dials.iter().map(|d| (*d).to_owned()).collect(),
        })
    }
}

/// The street being simulated: its plan, its certificate authority, and the credentials it
/// issued (once per node, so every world on this street gives a node the same ones).
pub struct SimStreet {
    pub plan: SyntheticPlan,
    ca: StreetCa,
    issued: std::sync::Mutex<std::collections::BTreeMap<NodeId, NodeCredentials>>,
}

impl std::fmt::Debug for SimStreet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimStreet")
            .field("plan", &self.plan)
            .finish_non_exhaustive()
    }
}

/// Wall-clock unix seconds: certificates are checked by rustls against the real clock, not
/// the simulated one.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl SimStreet {
    /// A street with a freshly generated CA.
    pub fn new(plan: SyntheticPlan) -> Result<SimStreet, SimError> {
        let ca = StreetCa::generate(&plan.street, unix_now())?;
        Ok(SimStreet {
            plan,
            ca,
            issued: Default::default(),
        })
    }

    /// Enrolls a node: issues a certificate for its role, valid from an hour ago for a day,
    /// on the first call for its node id; the same credentials on every later call.
    pub fn credentials(&self, spec: &NodeSpec) -> Result<NodeCredentials, SimError> {
        let mut issued = self.issued.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(credentials) = issued.get(&spec.node_id) {
            return Ok(credentials.clone());
        }
        let now = unix_now();
        let identity = DeviceIdentity {
            street: self.plan.street.clone(),
            node_id: spec.node_id.clone(),
            role: spec.role.role(),
            scopes: spec.role.scopes(&self.plan.street)?,
            not_before: now.saturating_sub(3600),
            not_after: now + 86_400,
        };
        let credentials = NodeCredentials::new(self.ca.cert_der(), &self.ca.issue(&identity)?);
        issued.insert(spec.node_id.clone(), credentials.clone());
        Ok(credentials)
    }
}
