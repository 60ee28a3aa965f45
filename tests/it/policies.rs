//! The example policies load and pass their own examples, and `check` / `explain` behave as
//! documented, through the real binary.

use crate::common::{Env, policy_file, root};
use serde_json::{Value, json};

/// `toolgate ARGS` for a user of its own (no policy of theirs): exit code, stdout, stderr.
fn toolgate(args: &[&str]) -> (i32, String, String) {
    let out = Env::new().toolgate().args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

fn example(name: &str) -> String {
    root().join("policies").join(name).display().to_string()
}

#[test]
fn every_example_policy_passes_check_with_its_examples() {
    let dir = root().join("policies");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.to_string_lossy().ends_with(".tests.toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "expected the default, strict and filesystem policies in {}", dir.display());
    for file in files {
        let path = file.display().to_string();
        let (code, stdout, stderr) = toolgate(&["check", &path]);
        assert_eq!(code, 0, "{path}:\n{stdout}{stderr}");
        assert!(stdout.contains(": ok: ") && stdout.contains(" 0 warnings"), "{stdout}");
    }
}

#[test]
fn every_example_policy_has_a_test_suite_and_passes_it() {
    let dir = root().join("policies");
    let policies: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml") && !n.ends_with(".tests.toml"))
        .collect();
    let mut suites = Vec::new();
    for policy in &policies {
        let suite = dir.join(policy.replace(".toml", ".tests.toml"));
        assert!(suite.exists(), "{policy} has no test suite ({})", suite.display());
        suites.push(suite.display().to_string());
    }
    let mut args = vec!["test"];
    args.extend(suites.iter().map(String::as_str));
    let (code, stdout, stderr) = toolgate(&args);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.ends_with(" passed, 0 failed\n"), "{stdout}");
}

#[test]
fn a_wrong_case_fails_with_the_rule_that_decided_and_a_junit_report() {
    let env = Env::new();
    let suite = env.join("suite.toml");
    let policy = example("default.toml");
    std::fs::write(
        &suite,
        format!(
            "policy = {policy:?}\n\n[[case]]\nname = \"reads run\"\ntool = \"read_file\"\nexpect = \"allow\"\n\n\
             [[case]]\nname = \"deleting is fine, surely\"\ntool = \"delete_file\"\nexpect = \"allow\"\n"
        ),
    )
    .unwrap();
    let junit = env.join("report.xml");
    let (code, stdout, _) = toolgate(&["test", "--junit", junit.to_str().unwrap(), suite.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(
        stdout,
        format!(
            "FAIL {}:8: deleting is fine, surely: expected allow, got deny (rule \"never delete\": Deleting is not \
             allowed by the default policy; move the item somewhere safe instead, or ask the user to do it.)\n1 passed, 1 failed\n",
            suite.display()
        )
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("tests=\"2\" failures=\"1\""), "{xml}");
    assert!(xml.contains("<failure message=\"expected allow, got deny\">"), "{xml}");
    assert!(xml.contains("<testcase classname=") && xml.contains("name=\"reads run\"/>"), "{xml}");

    std::fs::write(&suite, "policy = \"missing.toml\"\n[[case]]\ntool = \"x\"\nexpect = \"maybe\"\n").unwrap();
    let (code, stdout, _) = toolgate(&["test", suite.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stdout.contains(&format!("error: {}:4:10: unknown variant `maybe`", suite.display())), "{stdout}");
}

#[test]
fn the_embedded_default_is_the_shipped_default_file() {
    let shipped = std::fs::read_to_string(example("default.toml")).unwrap();
    assert_eq!(shipped, toolgate::policy::EMBEDDED_DEFAULT);
}

#[test]
fn check_fails_on_a_broken_example_naming_file_line_and_column() {
    let env = Env::new();
    let text = std::fs::read_to_string(example("filesystem.toml")).unwrap().replace(
        r#"counter_examples = [{ tool = "write_file", args = { path = "/home/me/project/notes.md" } }]"#,
        r#"counter_examples = [{ tool = "write_file", args = { path = "/home/me/notes.md" } }]"#,
    );
    let path = policy_file(env.path(), &text);
    let (code, stdout, _) = toolgate(&["check", path.to_str().unwrap()]);
    assert_eq!(code, 1);
    let line = text.lines().position(|l| l.contains("/home/me/notes.md")).unwrap() + 1;
    assert!(
        stdout.starts_with(&format!(
            "{}:{line}:21: rule \"writes outside the project\": counter-example `write_file`",
            path.display()
        )),
        "{stdout}"
    );
}

#[test]
fn check_warns_about_globs_that_match_no_listed_tool_and_shadowed_rules() {
    let env = Env::new();
    let policy = policy_file(
        env.path(),
        "[[rules]]\nname = \"typo\"\nservers = [\"fs\"]\ntools = [\"wirte_file\"]\ntier = \"high\"\n\
         [[rules]]\nname = \"reads\"\ntools = [\"read_file\"]\ntier = \"low\"\n\
         [[rules]]\nname = \"all held\"\ntools = [\"*\"]\naction = \"hold\"\nhold = \"1s\"\n",
    );
    let tools = env.join("tools.json");
    std::fs::write(
        &tools,
        json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": "write_file"}, {"name": "read_file"}]}})
            .to_string(),
    )
    .unwrap();
    let (code, stdout, _) =
        toolgate(&["check", "--tools", tools.to_str().unwrap(), "--server", "fs", policy.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains(
            "warning: rule \"typo\": tools glob \"wirte_file\" matches none of the tools server \"fs\" lists"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("warning: rule \"reads\" (allow) can never win: rule \"all held\" (hold)"), "{stdout}");
    assert!(stdout.contains("2 warnings"), "{stdout}");
}

#[test]
fn explain_shows_the_gate_rules_and_near_misses() {
    let policy = example("filesystem.toml");
    let (code, stdout, _) = toolgate(&[
        "explain",
        "--policy",
        &policy,
        "--server",
        "fs",
        "--tool",
        "write_file",
        "--args",
        r#"{"path":"/home/me/project/../.bashrc"}"#,
    ]);
    assert_eq!(code, 0);
    assert!(stdout.contains("decision  deny (tier high), by the rules below"), "{stdout}");
    assert!(
        stdout.contains("/path not_glob \"/home/me/project/**\" holds for \"/home/me/project/../.bashrc\""),
        "{stdout}"
    );
    assert!(stdout.contains("\"writes inside the project are noticed\" -> notify"), "{stdout}");
}

#[test]
fn explain_json_has_the_documented_shape() {
    let policy = example("strict.toml");
    let (code, stdout, _) = toolgate(&[
        "explain",
        "--policy",
        &policy,
        "--tool",
        "edit_file",
        "--args",
        r#"{"path":"/a"}"#,
        "--confidence",
        "0.6",
        "--json",
    ]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(v["decision"]["gate"], "ask");
    assert_eq!(v["decision"]["confidence"], json!({"threshold": 0.8, "reported": 0.6, "escalated": true}));
    assert_eq!(v["matched"][0]["rule"], "changes need a confident model and a yes");
    assert!(v["near_misses"].is_array());
    assert_eq!(
        v["call"],
        json!({"server": "server", "tool": "edit_file", "arguments": {"path": "/a"}, "confidence": 0.6})
    );
}

#[test]
fn explain_refuses_bad_arguments_clearly() {
    let (code, _, stderr) = toolgate(&["explain", "--tool", "x", "--args", "[1]"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--args must be a JSON object"), "{stderr}");
}
