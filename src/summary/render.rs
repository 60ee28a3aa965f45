//! The summary as text for a terminal (read in a minute, exceptions first) and as Markdown for a
//! pull request or a team chat. Every name from the record (servers, tools, rules) is shown
//! escaped: a server chooses its tools' names, and they reach a terminal.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use super::{Exception, Proposed, Summary};
use crate::visible::{shell_word, visible, visible_lines};

/// The widest bar of the per-day chart, in characters.
const BAR: u64 = 30;

pub fn text(s: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "toolgate summary, {} to {}\n", s.since, s.until);
    let _ = writeln!(out, "Needs your attention");
    if s.exceptions.is_empty() {
        let _ = writeln!(out, "  nothing");
    }
    for e in &s.exceptions {
        let _ = writeln!(out, "  ! {}", exception(e));
    }
    let _ = writeln!(out, "\nWhat ran: {} calls, {} without a person", s.ran.calls, s.ran.without_person);
    if s.ran.calls > 0 {
        let _ = writeln!(out, "  by gate:     {}", counts(&s.ran.by_gate));
        let _ = writeln!(out, "  decided by:  {}", counts(&s.ran.by_decider));
        let _ = writeln!(out, "  per day:");
        let most = s.days.iter().map(|d| d.by_gate.values().sum::<u64>()).max().unwrap_or(1).max(1);
        for day in &s.days {
            let n: u64 = day.by_gate.values().sum();
            let width = usize::try_from((n * BAR).div_ceil(most)).unwrap_or(0);
            let _ = writeln!(out, "    {}  {:<w$}  {n}", day.day, "█".repeat(width), w = BAR as usize);
        }
        let _ = writeln!(out, "  tools:");
        for row in s.ran.tools.iter().take(10) {
            let name = format!("{}/{}", visible(&row.server), visible(&row.tool));
            let _ = writeln!(out, "    {name:<32} {:>6}  ({})", row.calls, counts(&row.by_gate));
        }
        if s.ran.tools.len() > 10 {
            let _ = writeln!(out, "    … and {} more (--json lists every tool)", s.ran.tools.len() - 10);
        }
    }
    let p = &s.people;
    let _ = writeln!(out, "\nWhat people did");
    let _ = writeln!(
        out,
        "  approved {} · denied {} · edited {}",
        by_channel(&p.approved),
        by_channel(&p.denied),
        by_channel(&p.edited)
    );
    let _ = writeln!(
        out,
        "  waited for an answer: p50 {}, p95 {} · timed out with nobody there: {}",
        wait(p.wait_p50_ms),
        wait(p.wait_p95_ms),
        p.timed_out
    );
    let _ = writeln!(out, "\nProposals");
    if s.proposals.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for proposal in &s.proposals {
        let _ = writeln!(out, "  {}. {}", proposal.n, proposed(&proposal.what));
        if let Some(rule) = proposal.what.rule() {
            for line in visible_lines(rule).lines() {
                let _ = writeln!(out, "       {line}");
            }
            let _ = writeln!(out, "     add it: toolgate summary --write-rule POLICY {}", proposal.n);
        }
    }
    out
}

pub fn markdown(s: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## toolgate summary, {} to {}\n", s.since, s.until);
    let _ = writeln!(out, "### Needs attention\n");
    if s.exceptions.is_empty() {
        let _ = writeln!(out, "Nothing.");
    }
    for e in &s.exceptions {
        let _ = writeln!(out, "- {}", md(&exception(e)));
    }
    let _ = writeln!(out, "\n### What ran\n");
    let _ = writeln!(out, "{} calls, {} without a person.\n", s.ran.calls, s.ran.without_person);
    if s.ran.calls > 0 {
        let gates: Vec<&String> = s.ran.by_gate.keys().collect();
        let _ = writeln!(out, "| day | {} | all |", gates.iter().map(|g| g.as_str()).collect::<Vec<_>>().join(" | "));
        let _ = writeln!(out, "|---|{}---:|", "---:|".repeat(gates.len()));
        for day in &s.days {
            let cells: Vec<String> =
                gates.iter().map(|g| day.by_gate.get(*g).copied().unwrap_or(0).to_string()).collect();
            let _ = writeln!(out, "| {} | {} | {} |", day.day, cells.join(" | "), day.by_gate.values().sum::<u64>());
        }
        let _ = writeln!(out, "\n| server/tool | calls | gates | decided by |\n|---|---:|---|---|");
        for row in &s.ran.tools {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                md(&format!("{}/{}", row.server, row.tool)),
                row.calls,
                counts(&row.by_gate),
                counts(&row.by_decider)
            );
        }
    }
    let p = &s.people;
    let _ = writeln!(out, "\n### What people did\n");
    let _ = writeln!(
        out,
        "- approved {}, denied {}, edited {}\n- waited for an answer: p50 {}, p95 {}\n- timed out with nobody there: {}",
        by_channel(&p.approved),
        by_channel(&p.denied),
        by_channel(&p.edited),
        wait(p.wait_p50_ms),
        wait(p.wait_p95_ms),
        p.timed_out
    );
    let _ = writeln!(out, "\n### Proposals\n");
    if s.proposals.is_empty() {
        let _ = writeln!(out, "None.");
    }
    for proposal in &s.proposals {
        let _ = writeln!(out, "{}. {}", proposal.n, md(&proposed(&proposal.what)));
        if let Some(rule) = proposal.what.rule() {
            let _ = writeln!(out, "\n   ```toml\n{}   ```\n", indent(&rule.replace("```", "` ` `"), "   "));
        }
    }
    out
}

fn exception(e: &Exception) -> String {
    match e {
        Exception::Chain { problem } => format!("the audit log's chain is broken: {}", visible(problem)),
        Exception::Unreachable { server, tool, calls } => format!(
            "{}/{}: {calls} call(s) refused because no person could be reached (run `toolgate approve`, or use a client that asks)",
            visible(server),
            visible(tool)
        ),
        Exception::Denied { server, tool, calls, by } => {
            format!("{}/{}: {calls} call(s) denied ({})", visible(server), visible(tool), counts(by))
        }
        Exception::ToolChanged { server, tool } => format!(
            "{}/{} changed its definition; its calls ask until you accept it: toolgate trust accept {} {}",
            visible(server),
            visible(tool),
            shell_word(server),
            shell_word(tool)
        ),
        Exception::RefusedLines { from, lines, reasons } => format!(
            "toolgate refused {lines} line(s) from the {} that it could not read safely ({}); see `toolgate audit show` and stderr",
            visible(from),
            counts(reasons)
        ),
        Exception::ReloadFailed { times, last } => {
            let first = last.lines().next().unwrap_or_default();
            format!(
                "the policy was edited {times} time(s) into a file that does not load; the one before stayed in force ({}): run `toolgate check`",
                visible(first)
            )
        }
        Exception::Waiting { item, server, tool, age_s } => format!(
            "review item {item} ({}/{}) has waited {}: toolgate review",
            visible(server),
            visible(tool),
            humantime::format_duration(Duration::from_secs(*age_s))
        ),
    }
}

fn proposed(p: &Proposed) -> String {
    match p {
        Proposed::LowerGate { server, tool, approved, rule, edit } => {
            let what = format!("{}/{}: a person approved all {approved} calls", visible(server), visible(tool));
            match (rule, edit) {
                (Some(_), _) => format!("{what}; this rule lets them run without asking:"),
                (None, Some(edit)) => format!("{what}; to stop asking: {}", visible(edit)),
                (None, None) => what,
            }
        }
        Proposed::UnusedRule { rule } => format!("rule {:?} matched no call; is it still needed?", visible(rule)),
        Proposed::Retried { server, tool, refused } => format!(
            "the model called {}/{} again after it was refused ({refused} refusals of the same arguments); tell it why, or change the rule",
            visible(server),
            visible(tool)
        ),
    }
}

/// `allow 3 · ask 2`, most first.
fn counts(map: &BTreeMap<String, u64>) -> String {
    let mut items: Vec<(&String, &u64)> = map.iter().collect();
    items.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    items.iter().map(|(k, v)| format!("{} {v}", visible(k))).collect::<Vec<_>>().join(" · ")
}

/// `5 (terminal 3, approver 2)`.
fn by_channel(map: &BTreeMap<String, u64>) -> String {
    let total: u64 = map.values().sum();
    if total == 0 {
        return "0".to_owned();
    }
    let parts: Vec<String> = map.iter().map(|(k, v)| format!("{} {v}", visible(k))).collect();
    format!("{total} ({})", parts.join(", "))
}

fn wait(ms: Option<u64>) -> String {
    match ms {
        None => "-".to_owned(),
        Some(ms) if ms < 1000 => format!("{ms} ms"),
        Some(ms) => format!("{:.1} s", ms as f64 / 1000.0),
    }
}

/// Text made safe for Markdown: escaped as for a terminal, and Markdown's own characters quoted.
fn md(text: &str) -> String {
    let mut out = String::new();
    for c in visible(text).chars() {
        if matches!(c, '|' | '*' | '_' | '`' | '[' | ']' | '<' | '>' | '#' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn indent(text: &str, by: &str) -> String {
    text.lines().map(|l| format!("{by}{l}\n")).collect()
}
