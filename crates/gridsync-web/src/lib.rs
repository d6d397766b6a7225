//! What gridsync's two web servers share: the office dashboard (gridsync-office) and the
//! field app every device serves to its own user (gridsync-field). Both show personal data,
//! so both keep off public addresses unless told otherwise ([`check_bind_address`]), serve
//! HTTPS off loopback and redirect plain HTTP there ([`WebListener`]), compare
//! secrets by digest ([`Secret`]), open browser sessions that survive a restart
//! ([`SignedSessions`]: cookies signed with a key the server keeps in its store, set
//! HttpOnly and SameSite=Strict), accept a bearer token from scripts, answer only requests
//! addressed to an IP address or `localhost` ([`is_address_host`], against DNS rebinding), and
//! answer errors as `{"error": "..."}` ([`json_error`]).

mod bind;
mod headers;
mod listener;
mod secret;
mod signed_sessions;
mod throttle;

pub use bind::{PublicAddress, check_bind_address};
pub use headers::{bearer, cookie, is_address_host, json_error, no_store};
pub use listener::{MAX_PENDING_HANDSHAKES, WebListener, WebStream};
pub use secret::{Secret, random_hex};
pub use signed_sessions::{SignedSessions, new_session_key};
pub use throttle::LoginThrottle;
