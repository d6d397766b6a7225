//! Frames in and out: decoding with the partial-frame progress window, dispatching each
//! frame to its phase, the hello check, and queueing outgoing frames under backpressure.

use super::*;

impl SyncSession {
    /// Bytes a partial frame must bring per window (see `Limits::frame_timeout_ms`).
    pub(super) fn window_bytes_needed(&self) -> u64 {
        let limits = &self.config.limits;
        (limits.min_frame_bytes_per_sec.max(1))
            .saturating_mul(limits.frame_timeout_ms)
            .div_ceil(1000)
            .max(1)
    }

    /// When the partial frame's current window closes, if there is a partial frame.
    pub(super) fn partial_frame_deadline(&self) -> Option<u64> {
        let window = self.frame_window?;
        Some(
            window
                .opened
                .saturating_add(self.config.limits.frame_timeout_ms),
        )
    }

    pub(super) fn check_partial_frame(&self, now: u64) -> Result<(), SessionError> {
        match (self.frame_window, self.partial_frame_deadline()) {
            (Some(window), Some(deadline)) if now >= deadline => Err(SessionError::FrameTimeout {
                elapsed_ms: now.saturating_sub(window.opened),
                received: self.decoder.buffered(),
            }),
            _ => Ok(()),
        }
    }

    pub(super) fn handle_frame(
        &mut self,
        frame: Frame,
        docs: &mut dyn DocumentSet,
    ) -> Result<(), SessionError> {
        if let Frame::Goodbye { reason, detail } = frame {
            if reason == GoodbyeReason::Normal {
                self.closed = true;
                self.events.push_back(SessionEvent::Closed {
                    reason: CloseReason::Orderly,
                });
                return Ok(());
            }
            return Err(SessionError::PeerClosed { reason, detail });
        }
        if !self.verified {
            let Frame::Hello(hello) = frame else {
                return Err(SessionError::BeforeHello(frame.kind()));
            };
            self.verify_hello(&hello)?;
            self.verified = true;
            self.events.push_back(SessionEvent::PeerVerified {
                node_id: self.peer.node_id.clone(),
                role: self.peer.role,
            });
            self.start_inventory(docs);
            return Ok(());
        }
        match frame {
            Frame::Hello(_) => Err(SessionError::ProtocolViolation("second hello")),
            Frame::Inventory(parts) => self.handle_inventory(parts, docs),
            Frame::DocSync {
                path,
                message,
                signatures,
            } => self.handle_doc_sync(path, &message, &signatures, docs),
            Frame::Refused { path, reason } => {
                // The peer keeps the session; nothing for the node to do but note it.
                tracing::info!(%path, %reason, "peer refused our sync message");
                self.in_flight.remove(&path);
                Ok(())
            }
            Frame::Goodbye { .. } => Ok(()),
        }
    }

    pub(super) fn verify_hello(&self, hello: &Hello) -> Result<(), SessionError> {
        if hello.protocol_version != PROTOCOL_VERSION {
            return Err(SessionError::UnsupportedVersion {
                ours: PROTOCOL_VERSION,
                theirs: hello.protocol_version,
            });
        }
        if hello.node_id != self.peer.node_id {
            return Err(SessionError::IdentityMismatch("node id"));
        }
        if hello.role != self.peer.role {
            return Err(SessionError::IdentityMismatch("role"));
        }
        let mut claimed = hello.scopes.0.clone();
        let mut certified = self.peer.scopes.0.clone();
        claimed.sort();
        claimed.dedup();
        certified.sort();
        certified.dedup();
        if claimed != certified {
            return Err(SessionError::IdentityMismatch("scopes"));
        }
        Ok(())
    }

    pub(super) fn queue(&mut self, frame: &Frame) -> bool {
        match encode_frame(frame) {
            Ok(bytes) => {
                self.stats.frames_sent += 1;
                if matches!(frame, Frame::DocSync { .. }) {
                    self.stats.doc_frames_sent += 1;
                }
                self.outgoing_bytes += bytes.len();
                self.outgoing.push_back(bytes);
                true
            }
            Err(error) => {
                tracing::warn!(peer = %self.peer.node_id, kind = frame.kind(), %error, "frame too large to send");
                false
            }
        }
    }
}
