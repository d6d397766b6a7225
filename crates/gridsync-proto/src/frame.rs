//! The wire format: versioned, length-prefixed frames and a streaming decoder.
//!
//! Every frame is `[u32 BE length][u8 frame type][payload]`, where `length` counts the type
//! byte and the payload. The protocol version travels in the [`Hello`], which is the first
//! frame each side sends. Inside payloads, integers are big-endian, paths and node ids are a
//! `u8` length then UTF-8 bytes (both are at most 200 bytes), byte strings are a `u32` length
//! then the bytes, and lists are a `u16` or `u32` count then the items.
//!
//! Everything here is input from a possibly hostile peer: the decoder checks a frame's length
//! against its limit before buffering it, checks every count against both a fixed maximum and
//! the bytes actually present before allocating, and reports a typed [`FrameError`] instead of
//! panicking.

use crate::identity::{Access, NodeId, Role, ScopeGrant, Scopes};
use crate::path::{DocPath, PathError};
use crate::signature::{ChangeSignature, MAX_SIGNATURES_PER_MESSAGE, SIGNATURE_LEN};

/// The protocol version this crate speaks; carried in [`Hello`]. Version 2 added change
/// signatures to document sync frames; a peer speaking another version is refused on both
/// sides with [`GoodbyeReason::UnsupportedVersion`].
pub const PROTOCOL_VERSION: u16 = 2;
/// Largest frame accepted or produced (type byte plus payload), in bytes.
pub const MAX_FRAME_LEN: usize = 32 * 1024 * 1024;
/// Most scope grants a hello may carry.
pub const MAX_SCOPES: usize = 256;
/// Most range parts in one inventory frame.
pub const MAX_INVENTORY_PARTS: usize = 1024;
/// Most items (documents) listed in one inventory range part.
pub const MAX_ITEMS_PER_PART: usize = 4096;
/// Longest free-text detail in a goodbye frame, in bytes.
pub const MAX_DETAIL_LEN: usize = 1024;
/// Size of the length prefix.
pub const HEADER_LEN: usize = 4;

/// A 32-byte digest of a document's heads.
pub type Digest = [u8; 32];
/// A 16-byte fingerprint of a range of documents. Collisions only hide a difference from the
/// two peers for one session; they cannot make either side accept anything.
pub type Fingerprint = [u8; 16];

const TYPE_HELLO: u8 = 1;
const TYPE_INVENTORY: u8 = 2;
const TYPE_DOC_SYNC: u8 = 3;
const TYPE_REFUSED: u8 = 4;
const TYPE_GOODBYE: u8 = 5;

const SUMMARY_FINGERPRINT: u8 = 0;
const SUMMARY_ITEMS: u8 = 1;

const BOUND_NONE: u8 = 0;
const BOUND_PATH: u8 = 1;
/// The lower bound equals the previous part's upper bound.
const BOUND_PREVIOUS: u8 = 2;

/// One protocol frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Who the sender claims to be; checked against its certificate.
    Hello(Hello),
    /// One turn of the inventory's range reconciliation (possibly empty: "nothing more").
    Inventory(Vec<RangePart>),
    /// An automerge sync message for one document, with the signatures that vouch for its
    /// changes (one per author: see [`crate::signature`]).
    DocSync {
        path: DocPath,
        message: Vec<u8>,
        signatures: Vec<ChangeSignature>,
    },
    /// The receiver did not apply a document sync message.
    Refused {
        path: DocPath,
        reason: RefusalReason,
    },
    /// The sender is closing the session.
    Goodbye {
        reason: GoodbyeReason,
        detail: String,
    },
}

impl Frame {
    /// A short name for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Frame::Hello(_) => "hello",
            Frame::Inventory(_) => "inventory",
            Frame::DocSync { .. } => "doc-sync",
            Frame::Refused { .. } => "refused",
            Frame::Goodbye { .. } => "goodbye",
        }
    }
}

/// The first frame of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub protocol_version: u16,
    pub node_id: NodeId,
    pub role: Role,
    pub scopes: Scopes,
}

/// A half-open range of document paths `[lower, upper)`; `None` is unbounded on that side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRange {
    pub lower: Option<DocPath>,
    pub upper: Option<DocPath>,
}

impl PathRange {
    /// The range holding every path.
    pub fn full() -> Self {
        PathRange {
            lower: None,
            upper: None,
        }
    }
    /// Whether `path` lies inside the range.
    pub fn contains(&self, path: &DocPath) -> bool {
        self.lower.as_ref().is_none_or(|l| path >= l)
            && self.upper.as_ref().is_none_or(|u| path < u)
    }
    /// A range is well formed when its lower bound is below its upper bound.
    pub fn is_well_formed(&self) -> bool {
        match (&self.lower, &self.upper) {
            (Some(l), Some(u)) => l < u,
            _ => true,
        }
    }
}

/// What one side says about a range of the shared set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeSummary {
    /// The XOR of the item hashes in the range, truncated.
    Fingerprint(Fingerprint),
    /// Every item in the range: path and digest of its sorted heads.
    Items(Vec<(DocPath, Digest)>),
}

/// One range of an inventory turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangePart {
    pub range: PathRange,
    pub summary: RangeSummary,
}

/// Why a document sync message was not applied. Deliberately coarse: "not shared" is the same
/// answer whether or not the refusing side holds the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalReason {
    /// The path is outside the intersection of the two nodes' scopes.
    NotShared,
    /// The sender may not write (nor carry) this document, and the message carried changes.
    NotWritable,
    /// The sender may only carry this document, and the message carried changes it authored.
    CarrierAuthored,
    /// The message could not be decoded or applied, or exceeded a limit.
    Malformed,
    /// The receiver is at its configured storage cap; nothing it already holds is affected.
    CapacityExceeded,
    /// A relayed change's author may not write this document (by the author's own grants,
    /// as the receiver's device directory records them).
    UnauthorizedAuthor,
    /// A relayed change's author is not in the receiver's device directory yet; the changes
    /// are offered again on a later sync, once the directory has caught up.
    UnknownAuthor,
    /// A change carries no signature by its author (none of the message's signatures
    /// vouches for it), or a signature is not its author's.
    BadSignature,
    /// A change breaks the rules of its document: the device directory and the revocation
    /// list are add-only, and a directory entry may only be added by the device it names
    /// (or the office).
    BadContent,
    /// The author signed two different changes with one sequence number (it equivocates):
    /// both are kept as evidence and its changes are refused from then on.
    Equivocation,
}

impl std::fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RefusalReason::NotShared => "document not shared with the sender",
            RefusalReason::NotWritable => "sender may not write this document",
            RefusalReason::CarrierAuthored => "carrier authored changes it may only relay",
            RefusalReason::Malformed => "malformed sync message",
            RefusalReason::CapacityExceeded => "receiver is at its storage cap",
            RefusalReason::UnauthorizedAuthor => "a relayed change's author may not write it",
            RefusalReason::UnknownAuthor => "a relayed change's author is not in the directory",
            RefusalReason::BadSignature => "a change is not signed by its author",
            RefusalReason::BadContent => "a change breaks its document's rules",
            RefusalReason::Equivocation => {
                "the author signed two different changes with one sequence number"
            }
        })
    }
}

impl RefusalReason {
    fn code(self) -> u8 {
        match self {
            RefusalReason::NotShared => 1,
            RefusalReason::NotWritable => 2,
            RefusalReason::CarrierAuthored => 3,
            RefusalReason::Malformed => 4,
            RefusalReason::CapacityExceeded => 5,
            RefusalReason::UnauthorizedAuthor => 6,
            RefusalReason::UnknownAuthor => 7,
            RefusalReason::BadSignature => 8,
            RefusalReason::BadContent => 9,
            RefusalReason::Equivocation => 10,
        }
    }
    fn from_code(code: u8) -> Result<Self, FrameError> {
        Ok(match code {
            1 => RefusalReason::NotShared,
            2 => RefusalReason::NotWritable,
            3 => RefusalReason::CarrierAuthored,
            4 => RefusalReason::Malformed,
            5 => RefusalReason::CapacityExceeded,
            6 => RefusalReason::UnauthorizedAuthor,
            7 => RefusalReason::UnknownAuthor,
            8 => RefusalReason::BadSignature,
            9 => RefusalReason::BadContent,
            10 => RefusalReason::Equivocation,
            other => return Err(FrameError::UnknownCode("refusal reason", other)),
        })
    }
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GoodbyeReason {
    /// An orderly close.
    Normal,
    /// The hello did not match the certificate.
    IdentityMismatch,
    /// The peer speaks another protocol version.
    UnsupportedVersion,
    /// The peer sent something malformed or out of order.
    ProtocolViolation,
    /// The peer took too long.
    Timeout,
    /// A local limit was reached.
    LimitExceeded,
}

impl GoodbyeReason {
    fn code(self) -> u8 {
        match self {
            GoodbyeReason::Normal => 0,
            GoodbyeReason::IdentityMismatch => 1,
            GoodbyeReason::UnsupportedVersion => 2,
            GoodbyeReason::ProtocolViolation => 3,
            GoodbyeReason::Timeout => 4,
            GoodbyeReason::LimitExceeded => 5,
        }
    }
    fn from_code(code: u8) -> Result<Self, FrameError> {
        Ok(match code {
            0 => GoodbyeReason::Normal,
            1 => GoodbyeReason::IdentityMismatch,
            2 => GoodbyeReason::UnsupportedVersion,
            3 => GoodbyeReason::ProtocolViolation,
            4 => GoodbyeReason::Timeout,
            5 => GoodbyeReason::LimitExceeded,
            other => return Err(FrameError::UnknownCode("goodbye reason", other)),
        })
    }
}

/// Why bytes from the peer are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame length {len} exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("frame has length zero (no type byte)")]
    Empty,
    #[error("unknown frame type {0}")]
    UnknownType(u8),
    #[error("frame payload ends early")]
    Truncated,
    #[error("frame has {0} unexpected trailing bytes")]
    TrailingBytes(usize),
    #[error("{what} count {count} exceeds the limit of {max}")]
    TooMany {
        what: &'static str,
        count: usize,
        max: usize,
    },
    #[error("unknown {0} code {1}")]
    UnknownCode(&'static str, u8),
    #[error("text field is not utf-8")]
    BadUtf8,
    #[error("invalid document path or node id: {0}")]
    BadPath(#[from] PathError),
    #[error("the decoder already failed and accepts no more frames")]
    Poisoned,
}

/// Encodes a frame into its wire bytes. Fails only when the frame would exceed
/// [`MAX_FRAME_LEN`] (a document too large to sync in one message).
pub fn encode_frame(frame: &Frame) -> Result<Vec<u8>, FrameError> {
    let mut out = vec![0u8; HEADER_LEN];
    match frame {
        Frame::Hello(hello) => {
            out.push(TYPE_HELLO);
            out.extend_from_slice(&hello.protocol_version.to_be_bytes());
            put_short_str(&mut out, hello.node_id.as_str());
            out.push(role_code(hello.role));
            put_count_u16(&mut out, hello.scopes.0.len());
            for grant in &hello.scopes.0 {
                out.push(access_code(grant.access));
                put_short_str(&mut out, grant.prefix.as_str());
            }
        }
        Frame::Inventory(parts) => {
            out.push(TYPE_INVENTORY);
            put_count_u16(&mut out, parts.len());
            let mut previous_upper: Option<&DocPath> = None;
            for part in parts {
                // Split ranges are contiguous: a lower bound equal to the previous part's upper
                // bound is sent as one byte.
                match (&part.range.lower, previous_upper) {
                    (Some(lower), Some(prev)) if lower == prev => out.push(BOUND_PREVIOUS),
                    (lower, _) => put_bound(&mut out, lower.as_ref()),
                }
                put_bound(&mut out, part.range.upper.as_ref());
                previous_upper = part.range.upper.as_ref();
                match &part.summary {
                    RangeSummary::Fingerprint(fp) => {
                        out.push(SUMMARY_FINGERPRINT);
                        out.extend_from_slice(fp);
                    }
                    RangeSummary::Items(items) => {
                        out.push(SUMMARY_ITEMS);
                        put_count_u16(&mut out, items.len());
                        for (path, digest) in items {
                            put_short_str(&mut out, path.as_str());
                            out.extend_from_slice(digest);
                        }
                    }
                }
            }
        }
        Frame::DocSync {
            path,
            message,
            signatures,
        } => {
            out.push(TYPE_DOC_SYNC);
            put_short_str(&mut out, path.as_str());
            out.extend_from_slice(&(message.len() as u32).to_be_bytes());
            out.extend_from_slice(message);
            if signatures.len() > MAX_SIGNATURES_PER_MESSAGE {
                return Err(FrameError::TooMany {
                    what: "signature",
                    count: signatures.len(),
                    max: MAX_SIGNATURES_PER_MESSAGE,
                });
            }
            put_count_u16(&mut out, signatures.len());
            for signed in signatures {
                out.extend_from_slice(&signed.hash.0);
                out.extend_from_slice(&signed.signature);
            }
        }
        Frame::Refused { path, reason } => {
            out.push(TYPE_REFUSED);
            put_short_str(&mut out, path.as_str());
            out.push(reason.code());
        }
        Frame::Goodbye { reason, detail } => {
            out.push(TYPE_GOODBYE);
            out.push(reason.code());
            let mut end = detail.len().min(MAX_DETAIL_LEN);
            while !detail.is_char_boundary(end) {
                end -= 1;
            }
            out.extend_from_slice(&(end as u16).to_be_bytes());
            out.extend_from_slice(&detail.as_bytes()[..end]);
        }
    }
    let len = out.len() - HEADER_LEN;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge {
            len,
            max: MAX_FRAME_LEN,
        });
    }
    out[..HEADER_LEN].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(out)
}

/// Decodes one frame body (type byte and payload, without the length prefix).
pub fn decode_frame_body(body: &[u8]) -> Result<Frame, FrameError> {
    let (&kind, payload) = body.split_first().ok_or(FrameError::Empty)?;
    let mut r = Reader { bytes: payload };
    let frame = match kind {
        TYPE_HELLO => {
            let protocol_version = r.u16()?;
            let node_id = NodeId::parse(r.short_str()?)?;
            let role = role_from_code(r.u8()?)?;
            let count = r.count_u16("scope", MAX_SCOPES, 2)?;
            let mut grants = Vec::with_capacity(count);
            for _ in 0..count {
                let access = access_from_code(r.u8()?)?;
                let prefix = DocPath::parse(r.short_str()?)?;
                grants.push(ScopeGrant { access, prefix });
            }
            Frame::Hello(Hello {
                protocol_version,
                node_id,
                role,
                scopes: Scopes(grants),
            })
        }
        TYPE_INVENTORY => {
            let count = r.count_u16("inventory part", MAX_INVENTORY_PARTS, 3)?;
            let mut parts: Vec<RangePart> = Vec::with_capacity(count);
            for _ in 0..count {
                let lower = if r.bytes.first() == Some(&BOUND_PREVIOUS) {
                    r.u8()?;
                    let previous = parts.last().and_then(|p| p.range.upper.clone());
                    Some(previous.ok_or(FrameError::UnknownCode("range bound", BOUND_PREVIOUS))?)
                } else {
                    r.bound()?
                };
                let upper = r.bound()?;
                let summary = match r.u8()? {
                    SUMMARY_FINGERPRINT => RangeSummary::Fingerprint(r.fingerprint()?),
                    SUMMARY_ITEMS => {
                        let n = r.count_u16("inventory item", MAX_ITEMS_PER_PART, 34)?;
                        let mut items = Vec::with_capacity(n);
                        for _ in 0..n {
                            let path = DocPath::parse(r.short_str()?)?;
                            items.push((path, r.digest()?));
                        }
                        RangeSummary::Items(items)
                    }
                    other => return Err(FrameError::UnknownCode("range summary", other)),
                };
                parts.push(RangePart {
                    range: PathRange { lower, upper },
                    summary,
                });
            }
            Frame::Inventory(parts)
        }
        TYPE_DOC_SYNC => {
            let path = DocPath::parse(r.short_str()?)?;
            let len = r.u32()? as usize;
            let message = r.take(len)?.to_vec();
            let count = r.count_u16("signature", MAX_SIGNATURES_PER_MESSAGE, 32 + SIGNATURE_LEN)?;
            let mut signatures = Vec::with_capacity(count);
            for _ in 0..count {
                let hash = automerge::ChangeHash(r.digest()?);
                let mut signature = [0u8; SIGNATURE_LEN];
                signature.copy_from_slice(r.take(SIGNATURE_LEN)?);
                signatures.push(ChangeSignature { hash, signature });
            }
            Frame::DocSync {
                path,
                message,
                signatures,
            }
        }
        TYPE_REFUSED => {
            let path = DocPath::parse(r.short_str()?)?;
            let reason = RefusalReason::from_code(r.u8()?)?;
            Frame::Refused { path, reason }
        }
        TYPE_GOODBYE => {
            let reason = GoodbyeReason::from_code(r.u8()?)?;
            let len = r.u16()? as usize;
            if len > MAX_DETAIL_LEN {
                return Err(FrameError::TooMany {
                    what: "goodbye detail byte",
                    count: len,
                    max: MAX_DETAIL_LEN,
                });
            }
            let detail = std::str::from_utf8(r.take(len)?)
                .map_err(|_| FrameError::BadUtf8)?
                .to_owned();
            Frame::Goodbye { reason, detail }
        }
        other => return Err(FrameError::UnknownType(other)),
    };
    if !r.bytes.is_empty() {
        return Err(FrameError::TrailingBytes(r.bytes.len()));
    }
    Ok(frame)
}

/// A streaming frame decoder: push bytes as they arrive, pull whole frames out.
///
/// Memory is bounded by the bytes pushed and not yet consumed; a frame header announcing more
/// than `max_frame_len` bytes is rejected as soon as its four length bytes arrive, before any
/// of its body is kept. After an error the decoder is poisoned: the stream has lost framing.
#[derive(Debug)]
pub struct FrameDecoder {
    /// Received bytes not yet returned as frames; `start` marks the first unconsumed one.
    buffer: Vec<u8>,
    start: usize,
    max_frame_len: usize,
    poisoned: bool,
}

impl FrameDecoder {
    /// A decoder accepting frames up to `max_frame_len` bytes (capped at [`MAX_FRAME_LEN`]).
    pub fn new(max_frame_len: usize) -> Self {
        FrameDecoder {
            buffer: Vec::new(),
            start: 0,
            max_frame_len: max_frame_len.min(MAX_FRAME_LEN),
            poisoned: false,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.poisoned {
            return;
        }
        if self.start > 0 && self.start >= self.buffer.len() / 2 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buffer.len() - self.start
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.poisoned {
            return Err(FrameError::Poisoned);
        }
        let result = self.try_next();
        if result.is_err() {
            self.poisoned = true;
            self.buffer = Vec::new();
            self.start = 0;
        }
        result
    }

    fn try_next(&mut self) -> Result<Option<Frame>, FrameError> {
        let available = &self.buffer[self.start..];
        let Some(header) = available.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(*header) as usize;
        if len > self.max_frame_len {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_frame_len,
            });
        }
        if len == 0 {
            return Err(FrameError::Empty);
        }
        if available.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let frame = decode_frame_body(&available[HEADER_LEN..HEADER_LEN + len])?;
        self.start += HEADER_LEN + len;
        if self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        }
        Ok(Some(frame))
    }
}

/// A bounds-checked cursor over a frame payload.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if n > self.bytes.len() {
            return Err(FrameError::Truncated);
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, FrameError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, FrameError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn digest(&mut self) -> Result<Digest, FrameError> {
        let mut d = [0u8; 32];
        d.copy_from_slice(self.take(32)?);
        Ok(d)
    }
    fn fingerprint(&mut self) -> Result<Fingerprint, FrameError> {
        let mut f = [0u8; 16];
        f.copy_from_slice(self.take(16)?);
        Ok(f)
    }
    fn short_str(&mut self) -> Result<&'a str, FrameError> {
        let len = self.u8()? as usize;
        std::str::from_utf8(self.take(len)?).map_err(|_| FrameError::BadUtf8)
    }
    fn bound(&mut self) -> Result<Option<DocPath>, FrameError> {
        match self.u8()? {
            BOUND_NONE => Ok(None),
            BOUND_PATH => Ok(Some(DocPath::parse(self.short_str()?)?)),
            other => Err(FrameError::UnknownCode("range bound", other)),
        }
    }
    /// Reads a `u16` count and checks it against `max` and against the bytes left, given the
    /// smallest encoding of one item, so a claimed count never drives an allocation.
    fn count_u16(
        &mut self,
        what: &'static str,
        max: usize,
        min_item_len: usize,
    ) -> Result<usize, FrameError> {
        let count = self.u16()? as usize;
        if count > max {
            return Err(FrameError::TooMany { what, count, max });
        }
        if count.saturating_mul(min_item_len) > self.bytes.len() {
            return Err(FrameError::Truncated);
        }
        Ok(count)
    }
}

fn put_short_str(out: &mut Vec<u8>, s: &str) {
    // Paths and node ids are validated to at most 200 bytes, so the length fits a u8.
    debug_assert!(s.len() <= u8::MAX as usize);
    out.push(s.len().min(u8::MAX as usize) as u8);
    out.extend_from_slice(&s.as_bytes()[..s.len().min(u8::MAX as usize)]);
}

fn put_count_u16(out: &mut Vec<u8>, count: usize) {
    // Callers keep counts within the MAX_* limits, all below u16::MAX.
    debug_assert!(count <= u16::MAX as usize);
    out.extend_from_slice(&(count.min(u16::MAX as usize) as u16).to_be_bytes());
}

fn put_bound(out: &mut Vec<u8>, bound: Option<&DocPath>) {
    match bound {
        None => out.push(BOUND_NONE),
        Some(path) => {
            out.push(BOUND_PATH);
            put_short_str(out, path.as_str());
        }
    }
}

fn role_code(role: Role) -> u8 {
    match role {
        Role::Volunteer => 1,
        Role::Captain => 2,
        Role::Relay => 3,
        Role::Office => 4,
    }
}

fn role_from_code(code: u8) -> Result<Role, FrameError> {
    Ok(match code {
        1 => Role::Volunteer,
        2 => Role::Captain,
        3 => Role::Relay,
        4 => Role::Office,
        other => return Err(FrameError::UnknownCode("role", other)),
    })
}

fn access_code(access: Access) -> u8 {
    match access {
        Access::Read => 1,
        Access::Write => 2,
        Access::Carry => 3,
    }
}

fn access_from_code(code: u8) -> Result<Access, FrameError> {
    Ok(match code {
        1 => Access::Read,
        2 => Access::Write,
        3 => Access::Carry,
        other => return Err(FrameError::UnknownCode("access", other)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> DocPath {
        DocPath::parse(s).expect("test path is valid")
    }

    fn samples() -> Vec<Frame> {
        vec![
            Frame::Hello(Hello {
                protocol_version: PROTOCOL_VERSION,
                node_id: NodeId::parse("vol-1").expect("valid id"),
                role: Role::Volunteer,
                scopes: Scopes(vec!["write:panhuo/grid-017".parse().expect("valid grant")]),
            }),
            Frame::Inventory(vec![
                RangePart {
                    range: PathRange::full(),
                    summary: RangeSummary::Fingerprint([7; 16]),
                },
                RangePart {
                    range: PathRange {
                        lower: Some(path("a/b")),
                        upper: Some(path("a/c")),
                    },
                    summary: RangeSummary::Items(vec![(path("a/b/x"), [1; 32])]),
                },
                RangePart {
                    range: PathRange {
                        lower: Some(path("a/c")),
                        upper: None,
                    },
                    summary: RangeSummary::Fingerprint([9; 16]),
                },
            ]),
            Frame::Inventory(vec![]),
            Frame::DocSync {
                path: path("a/b"),
                message: vec![0x42, 1, 2, 3],
                signatures: vec![],
            },
            Frame::DocSync {
                path: path("a/b"),
                message: vec![0x42],
                signatures: vec![crate::signature::ChangeSignature {
                    hash: automerge::ChangeHash([7; 32]),
                    signature: [9; SIGNATURE_LEN],
                }],
            },
            Frame::Refused {
                path: path("a/b"),
                reason: RefusalReason::NotShared,
            },
            Frame::Goodbye {
                reason: GoodbyeReason::Timeout,
                detail: "bye".into(),
            },
        ]
    }

    #[test]
    fn frames_round_trip_byte_by_byte() {
        let mut wire = Vec::new();
        for f in samples() {
            wire.extend(encode_frame(&f).expect("small frame encodes"));
        }
        let mut dec = FrameDecoder::new(MAX_FRAME_LEN);
        let mut got = Vec::new();
        for b in wire {
            dec.push(&[b]);
            while let Some(f) = dec.next_frame().expect("valid stream") {
                got.push(f);
            }
        }
        assert_eq!(got, samples());
        assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn oversized_length_is_rejected_from_the_header_alone() {
        let mut dec = FrameDecoder::new(1024);
        dec.push(&2048u32.to_be_bytes());
        assert_eq!(
            dec.next_frame(),
            Err(FrameError::TooLarge {
                len: 2048,
                max: 1024
            })
        );
        assert_eq!(dec.next_frame(), Err(FrameError::Poisoned));
    }

    #[test]
    fn claimed_counts_beyond_the_payload_are_truncation() {
        // An inventory frame claiming 1000 parts with no bytes for them.
        let body = [TYPE_INVENTORY, 0x03, 0xe8];
        assert_eq!(decode_frame_body(&body), Err(FrameError::Truncated));
        let body = [TYPE_INVENTORY, 0xff, 0xff];
        assert!(matches!(
            decode_frame_body(&body),
            Err(FrameError::TooMany { .. })
        ));
    }

    #[test]
    fn trailing_bytes_and_bad_paths_are_errors() {
        let mut bytes = encode_frame(&Frame::Inventory(vec![])).expect("encodes");
        bytes.push(0);
        assert_eq!(
            decode_frame_body(&bytes[HEADER_LEN..]),
            Err(FrameError::TrailingBytes(1))
        );
        let body = [TYPE_REFUSED, 3, b'A', b'/', b'b', 1];
        assert!(matches!(
            decode_frame_body(&body),
            Err(FrameError::BadPath(_))
        ));
    }
}
