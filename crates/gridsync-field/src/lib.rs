//! The field app: every device's node serves its own user a phone web app and the JSON API
//! under it, on loopback by default, so a volunteer on a stairwell with no signal records
//! visits, deliveries and sweeps, sees each record's sync marker, and a captain merges the
//! building's logs on site. It talks only to the local node ([`gridsync_node::NodeHandle`]);
//! records travel onward by the node's ordinary sync.
//!
//! - [`pin`]: the device user's PIN (Argon2id hash in the store), the login throttle and the
//!   key that signs session cookies (`gridsync_web::SignedSessions`: a sign-in survives the
//!   node's restarts, a new PIN ends every session);
//! - [`sync_marks`]: per-record "only on this device / reached the captain / reached the
//!   office", from the heads peers acknowledged;
//! - [`records`], [`views`]: what each screen shows, as JSON, read under the replica lock;
//! - [`http`]: the axum server (`serve`), its routes, login and the embedded assets
//!   (`assets/`: one HTML page, its script and style, the zh/en translation tables, a web
//!   manifest and a service worker).
//!
//! The API is documented route by route in `http` and in `assets/README.md`; it follows the
//! office's conventions (JSON bodies, `{"error": "..."}` with a 4xx/5xx status).

pub mod http;
pub mod pin;
pub mod records;
pub mod sync_marks;
pub mod views;

pub use http::{FieldApp, FieldOptions, serve};
pub use pin::{PinError, PinHash};
