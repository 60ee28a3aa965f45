//! The integration tests, in one binary (one link, one place for shared fixtures): each module
//! drives the real `toolgate` binary, and the real MCP software `tests/setup.sh` installs.
//!
//! Run one area with `cargo nextest run --test it MODULE::`, e.g. `--test it approve::`.

mod common;

mod allow_for_session;
mod approve;
mod audit;
mod confidence;
mod conformity;
mod conventions;
mod demo;
mod differential;
mod elicitation;
mod faults;
mod fixture_replay;
mod hostile_text;
mod init;
mod input_required;
mod listing;
mod load;
mod npm_interop;
mod policies;
mod proxy_lifecycle;
mod python_approval;
mod python_elicitation;
mod python_interop;
mod readings_filesystem;
mod readings_python;
mod reload;
mod review;
mod smoke;
mod terminal;
mod trust;
mod trust_binding;
mod wrap;
