//! `toolgate check`: policy files' errors, examples and warnings.

use std::io::Write;
use std::path::Path;

use super::error::ToolsError;
use super::{CheckArgs, Error, ExitCode};
use crate::policy::{Policy, lint};

pub fn run(args: &CheckArgs) -> Result<ExitCode, Error> {
    let listed = args.tools.as_deref().map(read_tool_names).transpose()?;
    let mut failed = false;
    let mut stdout = std::io::stdout().lock();
    for file in &args.files {
        let policy = match Policy::load(file) {
            Ok(policy) => policy,
            Err(errors) => {
                failed = true;
                let _ = writeln!(stdout, "{errors}");
                continue;
            }
        };
        let mut warnings = lint::shadowed(&policy);
        if let Some(listed) = &listed {
            let server = args.server.as_deref().unwrap_or("");
            warnings.extend(lint::unmatched_tools(&policy, server, listed, args.server.is_none()));
        }
        for w in &warnings {
            let _ = writeln!(stdout, "{}: warning: {}", file.display(), w.message);
        }
        let rules = policy.rules.rules();
        let examples: usize = rules.len();
        let _ = writeln!(
            stdout,
            "{}: ok: {} rules, examples checked, {} warning{} ({})",
            file.display(),
            examples,
            warnings.len(),
            if warnings.len() == 1 { "" } else { "s" },
            policy.version
        );
    }
    Ok(ExitCode::failed_if(failed))
}

/// Tool names from a saved `tools/list` response, its result, or an array of tools.
fn read_tool_names(path: &Path) -> Result<Vec<String>, ToolsError> {
    let tools = read_tools(path)?;
    Ok(tools.iter().filter_map(|t| t.get("name").and_then(serde_json::Value::as_str).map(str::to_owned)).collect())
}

/// The tools of a saved `tools/list` response, its result, or an array of tools.
pub(super) fn read_tools(path: &Path) -> Result<Vec<serde_json::Value>, ToolsError> {
    let text = std::fs::read_to_string(path).map_err(|source| ToolsError::Read { path: path.to_owned(), source })?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|source| ToolsError::NotJson { path: path.to_owned(), source })?;
    value
        .pointer("/result/tools")
        .or_else(|| value.get("tools"))
        .or(Some(&value))
        .and_then(serde_json::Value::as_array)
        .cloned()
        .ok_or_else(|| ToolsError::NotTools(path.to_owned()))
}
