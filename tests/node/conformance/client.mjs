// The client the MCP conformance suite runs for its client scenarios, with toolgate in the
// middle: `conformance client --command "node client.mjs"` starts a scenario's test server and
// runs `node client.mjs URL` with the scenario's name in MCP_CONFORMANCE_SCENARIO. This script
// is the official TypeScript SDK's `Client` over stdio to `toolgate run --url URL`; toolgate,
// not this script, speaks Streamable HTTP to the scenario's server. So what the suite checks
// on the wire is toolgate's HTTP side, and what the SDK client does above it (answering an
// elicitation, filling in defaults) is the part an MCP client does through toolgate in real use.
//
// TOOLGATE_CONFORMANCE_BIN names the toolgate binary (required). TOOLGATE_CONFORMANCE_AUDIT,
// if set, is where toolgate writes its audit log, so a test can see the calls went through the
// gate. toolgate runs with a policy that allows everything, and with a home, XDG folders and a
// runtime folder of its own in a temporary folder removed at the end: it never reads or writes
// the state of whoever runs this.
//
// Exit status: 0 when the scenario's client steps all succeeded, 1 otherwise (with the error
// on stderr), as the suite expects of a client.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';

// What each client scenario of @modelcontextprotocol/conformance 0.1.16 expects a client to
// do after `initialize`: list the tools, then call the one the scenario's server checks for
// (none for `initialize`). The auth/ scenarios all serve one tool, `test-tool`, behind OAuth.
const CALLS = {
  initialize: null,
  tools_call: { name: 'add_numbers', arguments: { a: 5, b: 37 } },
  'elicitation-sep1034-client-defaults': { name: 'test_client_elicitation_defaults', arguments: {} },
  'sse-retry': { name: 'test_reconnection', arguments: {} },
};
const AUTH_CALL = { name: 'test-tool', arguments: {} };

function callFor(scenario) {
  if (scenario in CALLS) return CALLS[scenario];
  if (scenario.startsWith('auth/')) return AUTH_CALL;
  throw new Error(`no client steps known for scenario ${JSON.stringify(scenario)}`);
}

// A user of toolgate's own, in a temporary folder: home, XDG folders, a policy allowing every call.
function privateUser() {
  const dir = mkdtempSync(join(tmpdir(), 'toolgate-conformance-'));
  const env = {};
  for (const [name, folder] of [
    ['HOME', 'home'],
    ['XDG_CONFIG_HOME', 'config'],
    ['XDG_STATE_HOME', 'state'],
    ['XDG_DATA_HOME', 'data'],
    ['XDG_CACHE_HOME', 'cache'],
    ['XDG_RUNTIME_DIR', 'run'],
  ]) {
    const path = join(dir, folder);
    mkdirSync(path, { mode: folder === 'run' ? 0o700 : 0o755 });
    env[name] = path;
  }
  const policy = join(dir, 'policy.toml');
  writeFileSync(policy, '[settings]\ndefault_tier = "low"\n');
  return { dir, env, policy };
}

async function main() {
  const url = process.argv[2];
  const scenario = process.env.MCP_CONFORMANCE_SCENARIO;
  const toolgate = process.env.TOOLGATE_CONFORMANCE_BIN;
  if (!url || !scenario || !toolgate) {
    throw new Error(
      'usage: MCP_CONFORMANCE_SCENARIO=NAME TOOLGATE_CONFORMANCE_BIN=PATH node client.mjs SERVER_URL',
    );
  }
  const call = callFor(scenario);
  const user = privateUser();
  try {
    const audit = process.env.TOOLGATE_CONFORMANCE_AUDIT ?? join(user.dir, 'audit.jsonl');
    const args = ['run', '--name', 'conformance', '--policy', user.policy, '--audit', audit, '--url', url];
    const transport = new StdioClientTransport({
      command: toolgate,
      args,
      // The sign-in's browser, when the test names one (the auth/ scenarios).
      env: {
        PATH: process.env.PATH ?? '',
        ...user.env,
        ...(process.env.TOOLGATE_CONFORMANCE_BROWSER ? { BROWSER: process.env.TOOLGATE_CONFORMANCE_BROWSER } : {}),
      },
      stderr: 'inherit',
    });
    const client = new Client(
      { name: 'toolgate-conformance-client', version: '1.0.0' },
      { capabilities: { elicitation: { form: { applyDefaults: true } } } },
    );
    // Accept with nothing filled in: the SDK client fills in the schema's defaults.
    client.setRequestHandler(ElicitRequestSchema, async () => ({ action: 'accept', content: {} }));
    await client.connect(transport);
    await client.listTools();
    if (call) {
      const result = await client.callTool(call);
      if (result.isError) {
        throw new Error(`${call.name} answered with an error: ${JSON.stringify(result.content)}`);
      }
    }
    await client.close();
  } finally {
    rmSync(user.dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(`conformance client (${process.env.MCP_CONFORMANCE_SCENARIO}):`, error);
    process.exit(1);
  },
);
