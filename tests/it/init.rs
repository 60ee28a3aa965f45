//! `toolgate init`: a starter policy in the XDG location, tuned to the servers a client's
//! configuration names; with `--list-tools` it asks each server for its tools (here the built-in
//! demo server, started as the configuration says) and writes rules for them by kind.

use crate::common::*;

/// `toolgate ARGS` for a user with no `XDG_CONFIG_HOME` set, so the policy lies under
/// `HOME/.config`.
fn in_home(env: &Env, args: &[&str]) -> (bool, String) {
    run_to_end(env.toolgate().args(args).env_remove("XDG_CONFIG_HOME"))
}

#[test]
fn init_writes_a_policy_tuned_to_the_listed_tools_of_configured_servers() {
    let env = Env::new();
    let home = env.home();
    let config = home.join(".config/Claude/claude_desktop_config.json");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    let servers = serde_json::json!({"mcpServers": {
        "notes": {"command": toolgate(), "args": ["demo-server"]},
        "remote": {"url": "https://example.com/mcp"},
    }});
    std::fs::write(&config, servers.to_string()).unwrap();

    let (ok, out) = in_home(&env, &["init", "--list-tools"]);
    assert!(ok, "{out}");
    let policy = home.join(".config/toolgate/policy.toml");
    assert!(out.contains(&format!("wrote {} (1 servers: notes)", policy.display())), "{out}");
    let text = std::fs::read_to_string(&policy).unwrap();
    assert!(text.contains("# ── server notes (from Claude Desktop"), "{text}");
    assert!(
        text.contains(
            "name = \"notes read\"\nservers = [\"notes\"]\ntools = [\"read_file\", \"list_directory\"]\ntier = \"low\""
        ),
        "{text}"
    );

    let (ok, out) = in_home(&env, &["check", policy.to_str().unwrap()]);
    assert!(ok, "the starter policy passes check: {out}");
    let gate = |tool: &str| {
        let (ok, out) = in_home(&env, &["explain", "--json", "--server", "notes", "--tool", tool]);
        assert!(ok, "{out}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["decision"]["gate"].as_str().unwrap().to_owned()
    };
    assert_eq!(gate("read_file"), "allow", "explain finds the policy where init wrote it");
    assert_eq!(gate("write_file"), "notify");
    assert_eq!(gate("send_email"), "ask");
    assert_eq!(gate("send_payment"), "ask");
    assert_eq!(gate("delete_file"), "deny");

    let (ok, out) = in_home(&env, &["init"]);
    assert!(!ok && out.contains("--force replaces it"), "an existing policy is kept: {out}");
}
