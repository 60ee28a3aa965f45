#!/usr/bin/env bash
# Runs the README's quick start exactly as written (the block between the quick-start markers),
# in a fresh HOME with a Claude Desktop configuration in it, as a newcomer would on a fresh
# machine. Called by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
mkdir -p "$home/.config/Claude"
cat > "$home/.config/Claude/claude_desktop_config.json" <<'JSON'
{
  "mcpServers": {
    "filesystem": {
      "command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]
    }
  }
}
JSON
block=$(sed -n '/<!-- quick-start/,/<!-- \/quick-start -->/p' README.md | sed -n '/^```sh$/,/^```$/p' | sed '1d;$d')
[ -n "$block" ] || { echo "quick start: no block found in README.md" >&2; exit 1; }
echo "quick start: running the README's block in $home" >&2
env -u XDG_CONFIG_HOME -u XDG_STATE_HOME -u XDG_RUNTIME_DIR HOME="$home" \
    CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}" RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}" \
    CARGO_INSTALL_ROOT="$home/.cargo" PATH="$home/.cargo/bin:$PATH" \
    bash -euo pipefail -c "cd '$repo'; $block" </dev/null
# What it promised: a policy where init said, and the client's server behind toolgate.
test -f "$home/.config/toolgate/policy.toml"
grep -q '"run"' "$home/.config/Claude/claude_desktop_config.json"
"$home/.cargo/bin/toolgate" check "$home/.config/toolgate/policy.toml" >/dev/null
echo "quick start: ok" >&2
