//! The terminal channel: prompts on the controlling terminal (`/dev/tty`). Being written.

use super::{Command, Event};

/// Why the terminal cannot be used right now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

/// Whether toolgate may prompt on its controlling terminal now.
pub fn available() -> Result<(), Unavailable> {
    Err(Unavailable("the terminal channel is not built yet".into()))
}

/// The thread that owns the terminal.
pub struct Terminal {
    tx: std::sync::mpsc::Sender<Command>,
}

impl Terminal {
    /// Starts the thread; its answers arrive on `events`.
    pub fn start(events: tokio::sync::mpsc::UnboundedSender<Event>) -> std::io::Result<Terminal> {
        let (tx, _rx) = std::sync::mpsc::channel();
        drop(events);
        Ok(Terminal { tx })
    }

    pub fn send(&self, command: Command) {
        let _ = self.tx.send(command);
    }
}
