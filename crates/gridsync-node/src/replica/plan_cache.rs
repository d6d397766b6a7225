//! The street plan as last read, by the plan document's heads: read once per change of the
//! plan, and once per process for equal heads.

use super::*;

/// Plans read in this process, by the plan document's heads (equal heads, equal plan): the
/// replicas of one process (a simulation's thousand devices) parse a plan once.
static READ_PLANS: std::sync::Mutex<Vec<(Vec<ChangeHash>, std::sync::Weak<StreetPlan>)>> =
    std::sync::Mutex::new(Vec::new());

impl Replica {
    /// The street plan held by this replica (`None` before any plan was imported or
    /// received). Malformed plan entries are skipped by the model and logged here.
    pub fn street_plan(&mut self) -> Result<Option<Arc<StreetPlan>>, ReplicaError> {
        let path = gridsync_model::plan_path(&self.street).map_err(ReplicaError::BadStreet)?;
        self.ensure_loaded(&path)?;
        let Some(doc) = self.docs.get(&path) else {
            return Ok(None);
        };
        let heads = doc.get_heads();
        if let Some((cached_heads, plan)) = &self.plan_cache
            && *cached_heads == heads
        {
            return Ok(Some(plan.clone()));
        }
        let shared = {
            let plans = READ_PLANS.lock().unwrap_or_else(|p| p.into_inner());
            plans
                .iter()
                .find(|(at, _)| *at == heads)
                .and_then(|(_, plan)| plan.upgrade())
        };
        if let Some(plan) = shared {
            self.plan_cache = Some((heads, plan.clone()));
            return Ok(Some(plan));
        }
        let (plan, malformed) = gridsync_model::read_plan(doc);
        for entry in &malformed {
            tracing::warn!(?entry, "skipping a malformed street plan entry");
        }
        let plan = Arc::new(plan);
        {
            let mut plans = READ_PLANS.lock().unwrap_or_else(|p| p.into_inner());
            plans.retain(|(_, p)| p.strong_count() > 0);
            plans.push((heads.clone(), Arc::downgrade(&plan)));
        }
        self.plan_cache = Some((heads, plan.clone()));
        Ok(Some(plan))
    }
}
