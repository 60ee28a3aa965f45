//! toolgate: a human-in-the-loop gate for AI tool calls.
//!
//! A transparent stdio proxy between an MCP client and the server it launches. Every
//! `tools/call` is decided by a TOML policy (`policy`) at one decision point (`proxy::gate`);
//! everything else crosses untouched, after a strict check of every line (`wire`).
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod audit;
pub mod cli;
pub mod clock;
pub mod confidence;
pub mod conformity;
pub mod decided;
pub mod demo;
pub mod exit;
pub mod explain;
pub mod hex;
pub mod human;
pub mod identity;
pub mod init;
pub mod mcp_client;
pub mod paths;
pub mod policy;
pub mod proxy;
pub mod remote;
pub mod replay;
pub mod review;
pub mod state_file;
pub mod suite;
pub mod summary;
pub mod trust;
pub mod visible;
pub mod wire;
pub mod wrap;
