//! gridsync-office: the street office's live aggregation, HTTP API and dashboard.
//!
//! An office node holds every building document of its street. This crate keeps the figures
//! the office watches (coverage, outcomes, special needs and open needs, deliveries, sweeps,
//! device freshness) current as documents change, and serves them over HTTP to officials on a
//! phone or a desktop, behind office credentials.
//!
//! Layout:
//! - `summary`: one building's figures from its document and the plan, by the field model's
//!   rules; the additive [`Totals`] that roll up.
//! - `hourly`: the round hour by hour (households first visited, needs reported, items
//!   delivered), additive like the totals; what the dashboard's charts draw.
//! - `aggregate`: the [`Aggregator`], cached building summaries with grid, community and street
//!   roll-ups, updated one document at a time (pure, no IO).
//! - `auth`: the office token, login sessions and the bind-address guard.
//! - `state`: [`OfficeState`], the aggregator fed by the node's change feed, shared with the
//!   HTTP handlers.
//! - `stored`: building summaries kept in the store, keyed by what they were derived from
//!   (document and plan heads, round), so that a restart reuses them instead of reading
//!   every document.
//! - `stored_plan`: the street plan as last read, kept in the store beside the summaries, so
//!   that a restart does not load and parse the plan document.
//! - `http`: [`serve`], the axum router: JSON API under `/api/v1`, streaming exports,
//!   `/metrics`, server-sent events and the embedded dashboard.
//!
//! # Wiring (what `gridsync run --http ADDR` does)
//!
//! ```text
//! check_bind_address(addr, allow_public)?;            // refuse public addresses by default
//! let (token, created) = load_or_create_token(&mut replica)?; // before RunningNode::start
//! if created { print the token once: it is the officials' password }
//! let node = RunningNode::start(parts, endpoint, revocations)?;
//! let state = OfficeState::new(node.handle().clone(), OfficeOptions::daily(token, 480));
//! let listener = tokio::net::TcpListener::bind(addr).await?;
//! let server = tokio::spawn(serve(listener, state, async move { stop_rx.await.ok(); }));
//! // on SIGINT/SIGTERM: stop_tx.send(()); server.await; node.shutdown().await;
//! ```

pub mod aggregate;
pub mod auth;
pub mod hourly;
pub mod http;
pub mod state;
pub mod stored;
pub mod stored_plan;
pub mod summary;

#[cfg(test)]
mod recount_tests;

pub use aggregate::Aggregator;
pub use auth::{OfficeToken, TokenError, check_bind_address, load_or_create_token};
pub use http::serve;
pub use state::{OfficeOptions, OfficeState};
pub use summary::{BuildingSummary, RoundWindow, Totals};
