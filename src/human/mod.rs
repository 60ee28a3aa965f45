//! Reaching the human: what a channel is shown when a call needs a person, and what the person
//! can answer. Channels (the terminal, MCP elicitation, `toolgate approve`) only show and
//! collect; the dispatcher owns every pending call, its timeout and its fate.

pub mod approver_protocol;
pub mod desktop;
pub mod terminal;

use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::decided::DecidedCall;
use crate::policy::remember::Remember;

/// The arguments with every value longer than `max` characters cut short (a string by its
/// text, anything else by its JSON), each cut value saying how long it was, then `hint`.
pub fn shortened(arguments: &Map<String, Value>, max: usize, hint: &str) -> Map<String, Value> {
    arguments
        .iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let shown = if text.chars().count() > max {
                let cut: String = text.chars().take(max).collect();
                Value::String(format!("{cut}… ({} bytes{hint})", text.len()))
            } else {
                v.clone()
            };
            (k.clone(), shown)
        })
        .collect()
}

/// One call waiting for a person, as a channel shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Identifies this request in answers and withdrawals; never reused in a process.
    pub ticket: u64,
    pub kind: Kind,
    /// The call as decided. A person is shown the rules that chose its gate, each with its
    /// reason ([`DecidedCall::deciding`]); its reason also says why the tool's earned trust did
    /// not spare the person the question, when it did not.
    pub call: DecidedCall,
    /// When the request ends by itself: the approval timeout (`Approve`) or the end of the hold
    /// (`Hold`).
    pub deadline: Instant,
    /// Whether the human can turn this answer into a policy rule.
    pub remember: Remember,
}

/// What the person is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The call waits for a yes; it is denied at the deadline.
    Approve,
    /// The call runs at the deadline unless the person cancels it.
    Hold,
}

/// A person's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Run this call.
    AllowOnce,
    /// Run this call and, for the rest of the session, calls of this tool that would ask.
    AllowForSession,
    /// The proposed rule was written into the policy file; run this call.
    Remembered,
    /// Do not run it; the reason, if given, goes to the model.
    Deny { reason: Option<String> },
    /// Run it with these arguments instead.
    Edited(Map<String, Value>),
}

/// Why a request was taken back from a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Withdrawn {
    /// The approval timed out (the call is denied).
    TimedOut,
    /// The hold ran out (the call runs).
    HoldElapsed,
    /// The client cancelled the call.
    Cancelled,
    /// Another channel answered first.
    AnsweredElsewhere,
    /// The policy (or what toolgate knows of the tool) changed and decided the call again: it
    /// is refused, parked, or asked anew.
    Redecided,
}

/// What the dispatcher tells a channel.
#[derive(Debug, Clone, PartialEq)]
#[expect(clippy::large_enum_variant, reason = "a few commands per approval; boxing buys nothing")]
pub enum Command {
    /// Show this request (after any already shown: one at a time, in order).
    Offer(Request),
    /// Stop showing this request, if it is still shown or queued.
    Withdraw { ticket: u64, why: Withdrawn },
    /// A one-line notice (a `notify` call ran).
    Notice(String),
}

/// What a channel tells the dispatcher.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Answered {
        ticket: u64,
        answer: Answer,
    },
    /// The channel can no longer show this request (the terminal went away or toolgate lost
    /// the foreground); the dispatcher decides what happens to the call.
    Lost {
        ticket: u64,
        why: String,
    },
}
