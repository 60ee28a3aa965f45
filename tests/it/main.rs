//! The integration tests, one binary: each module drives the real `toolgate` binary (and the
//! real MCP software `tests/setup.sh` installs) from an [`common::Env`] of its own, so no test
//! reads the developer's policy, writes their state or reaches their approver.
//!
//! Run one area with `cargo nextest run --test it MODULE::`, e.g. `--test it approve::`. nextest
//! runs each test in a process of its own; under `cargo test` they share one process, which the
//! fixtures allow for (only `environment::` sets the test process's own environment, and only
//! under nextest).

mod common;

mod allow_for_session;
mod approve;
mod audit;
mod audit_rotation;
mod confidence;
mod conformance;
mod conformity;
mod conventions;
mod demo;
mod differential;
mod docs;
mod elicitation;
mod environment;
mod faults;
mod fixture_replay;
mod hostile_text;
mod init;
mod input_required;
mod layers;
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
mod remote;
mod remote_auth;
mod remote_sessions;
mod review;
mod smoke;
mod summary;
mod terminal;
mod trust;
mod trust_binding;
mod wrap;
