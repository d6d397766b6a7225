//! Integration tests of gridsync-model: convergence, merge rules, validation, hostile input.

mod model {
    pub mod clock;
    pub mod convergence;
    pub mod delivery_merge;
    pub mod first_visit;
    pub mod malformed;
    pub mod plan_and_views;
    pub mod support;
    pub mod validation;
}
