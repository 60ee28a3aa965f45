#!/usr/bin/env bash
# Installs what the integration tests need: pinned Python and npm packages of real MCP software.
# Idempotent: a second run with everything in place only checks versions.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/test-deps/venv
if ! "$venv/bin/python" -c 'import importlib.metadata as m; assert m.version("mcp") == "2.3.0"' 2>/dev/null; then
    echo "setup: installing Python packages into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/python/requirements.txt
fi

if [ ! -d tests/node/node_modules/@modelcontextprotocol/server-everything ] ||
   [ tests/node/package-lock.json -nt tests/node/node_modules/.package-lock.json ]; then
    echo "setup: installing npm packages into tests/node" >&2
    npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
fi

if ! command -v cargo-nextest >/dev/null 2>&1; then
    echo "setup: installing cargo-nextest" >&2
    cargo install --locked cargo-nextest
fi
