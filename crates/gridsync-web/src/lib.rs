//! What gridsync's two web servers share: the office dashboard (gridsync-office) and the
//! field app every device serves to its own user (gridsync-field). Both show personal data,
//! so both keep off public addresses unless told otherwise ([`check_bind_address`]), compare
//! secrets by digest ([`Secret`]), open browser sessions that a cookie names ([`Sessions`],
//! cookie set HttpOnly and SameSite=Strict), accept a bearer token from scripts, and answer
//! errors as `{"error": "..."}` ([`json_error`]).

mod bind;
mod headers;
mod secret;
mod sessions;

pub use bind::{PublicAddress, check_bind_address};
pub use headers::{bearer, cookie, json_error, no_store};
pub use secret::{Secret, random_hex};
pub use sessions::Sessions;
