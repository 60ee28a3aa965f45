//! The MCP stdio wire: framing lines, checking them strictly, reading envelopes, writing replies.

pub mod canonical;
pub mod envelope;
pub mod frame;
pub mod reply;
pub mod splice;
pub mod strict;

pub use envelope::{CallToolParams, Envelope, Id, Kind, Refusal};
pub use frame::{Frame, LineReader};

/// Default nesting limit for a message, well below serde_json's own recursion limit.
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// Default largest message, in bytes.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 128 * 1024 * 1024;
