// One scripted MCP session, played by the official TypeScript SDK's `Client`, printed as a JSON
// transcript of every message the client sent and got, step by step. toolgate's tests run it
// twice against the same server, once straight over Streamable HTTP and once through
// `toolgate run --url` over stdio, and compare the two transcripts.
//
// Usage: node session_client.mjs PLAN http URL
//        node session_client.mjs PLAN stdio COMMAND ARGS...
//
// PLAN is `python` (tests/python/http_server.py) or `everything` (server-everything); it names
// the tools that play each part of the session. With MARKER set, the python plan's plain call
// writes that file.
//
// The session: initialize; tools/list; a plain call; a call with a progress token; a call that
// makes the server ask the client for a sampling; one for an elicitation; a request the server
// starts outside any call (`roots/list`, asked after the client says its roots changed, which
// over HTTP travels on the GET stream); a call the client cancels; a ping. Every handler of the
// client answers the same way each time.
//
// Normalised, as the transport's own: nothing in the messages (session ids travel in HTTP
// headers, and the ids of requests are counters on both sides). What the transcript leaves out
// is said here: the order of messages within a step is the order they reached the client, and
// a step ends once what it waits for arrived; a message that came later lands in the next step.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
} from "@modelcontextprotocol/sdk/types.js";

const [plan, kind, ...rest] = process.argv.slice(2);

const PLANS = {
  python: {
    plain: { name: "write_marker", arguments: { path: process.env.MARKER ?? "" } },
    progress: { name: "count_up", arguments: { steps: 3 } },
    sampling: { name: "summarise", arguments: { text: "the gate" } },
    elicitation: { name: "ask_name", arguments: {} },
    cancelled: { name: "hang", arguments: {} },
    // The Python SDK (mcp 2.3.0) answers a cancelled request with the error -32800, which MCP
    // says a receiver should not send: the step waits for it, so that it lands there.
    answersCancelled: true,
    rootsAtStart: false,
    // The server says it has the roots with a log message.
    rootsTold: (m) => m.method === "notifications/message" && String(m.params?.data).startsWith("roots:"),
  },
  everything: {
    plain: { name: "echo", arguments: { message: "through the gate" } },
    progress: { name: "trigger-long-running-operation", arguments: { duration: 0.3, steps: 3 } },
    sampling: { name: "trigger-sampling-request", arguments: { prompt: "the gate", maxTokens: 50 } },
    elicitation: { name: "trigger-elicitation-request", arguments: {} },
    // The server waits for a sampling the client answers only once it cancelled the call.
    cancelled: { name: "trigger-sampling-request", arguments: { prompt: "hang", maxTokens: 50 } },
    // 350 ms after `notifications/initialized` it asks for the roots on its own.
    rootsAtStart: true,
    rootsTold: (m) => m.method === "notifications/message" && String(m.params?.data).startsWith("Roots updated"),
  },
};

function fail(message) {
  process.stderr.write(`session_client: ${message}\n`);
  process.exit(2);
}

const chosen = PLANS[plan] ?? fail(`unknown plan ${plan}: python or everything`);
let inner;
if (kind === "http" && rest.length === 1) {
  inner = new StreamableHTTPClientTransport(new URL(rest[0]));
} else if (kind === "stdio" && rest.length >= 1) {
  inner = new StdioClientTransport({ command: rest[0], args: rest.slice(1), env: process.env, stderr: "inherit" });
} else {
  fail("usage: session_client.mjs PLAN (http URL | stdio COMMAND ARGS...)");
}

const steps = [];
// The delivery of every message recorded so far to the client (see `start` below).
let delivered = Promise.resolve();
let current = null;
const seen = [];
const waiters = [];

function step(name) {
  current = { step: name, messages: [] };
  steps.push(current);
  return current;
}

function record(direction, message) {
  current.messages.push({ [direction]: message });
  const entry = { [direction]: message };
  seen.push(entry);
  for (const w of [...waiters]) {
    if (w.test(entry)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  }
}

// Resolves once the client got `count` messages that pass `test`, counted from the start.
function got(what, test, count = 1) {
  return until(what, (entry) => entry.got && test(entry.got), count);
}

function sent(what, test) {
  return until(what, (entry) => entry.sent && test(entry.sent), 1);
}

function until(what, test, count) {
  return new Promise((resolve, reject) => {
    let left = count - seen.filter(test).length;
    if (left <= 0) return resolve();
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 20000);
    const waiter = {
      test: (m) => test(m) && --left <= 0,
      resolve: () => {
        clearTimeout(timer);
        resolve();
      },
    };
    waiters.push(waiter);
  });
}

// The transport the client is given: the real one, with every message written down.
const transport = {
  async start() {
    // Each message reaches the client in a turn of the event loop of its own. The SDK handles a
    // response at once but a notification a microtask later, so when one read brings a progress
    // notification and then the result it is about (lines on a pipe often come together; over
    // HTTP each SSE event is read apart), the result ends the progress handler first and the
    // notification is reported as for an unknown token. How many messages one read brings is the
    // transport's doing; the transcript records them as they came, in order.
    inner.onmessage = (message, extra) => {
      record("got", message);
      delivered = delivered.then(() => new Promise((next) => setImmediate(next))).then(() => this.onmessage?.(message, extra));
    };
    inner.onerror = (error) => this.onerror?.(error);
    inner.onclose = () => this.onclose?.();
    await inner.start();
  },
  async send(message, options) {
    record("sent", message);
    await inner.send(message, options);
  },
  async close() {
    await inner.close();
  },
  get sessionId() {
    return inner.sessionId;
  },
  setProtocolVersion(version) {
    inner.setProtocolVersion?.(version);
  },
};

const client = new Client(
  { name: "toolgate-session-client", version: "1.0.0" },
  { capabilities: { sampling: {}, elicitation: { form: {} }, roots: { listChanged: true } } },
);
// What the SDK itself found wrong (an answer to an unknown request, say) is part of the transcript.
client.onerror = (error) => current?.messages.push({ client_error: String(error.message ?? error) });

let hangingCall = null;
client.setRequestHandler(CreateMessageRequestSchema, async (request, extra) => {
  const text = request.params.messages.map((m) => m.content?.text ?? "").join(" ");
  if (text.includes("hang") && hangingCall) {
    hangingCall.sampling = extra.requestId;
    // Cancel the call that is waiting for this answer, then answer: its result must not come.
    hangingCall.abort("the client gave up");
    await hangingCall.settled;
  }
  return { role: "assistant", model: "scripted-model", content: { type: "text", text: `a summary of: ${text}` } };
});
client.setRequestHandler(ElicitRequestSchema, async (request) => {
  const properties = request.params.requestedSchema?.properties ?? {};
  const content = { name: "Ada Lovelace" };
  if ("check" in properties) content.check = true;
  return { action: "accept", content };
});
client.setRequestHandler(ListRootsRequestSchema, async () => ({
  roots: [{ uri: "file:///toolgate-session/root", name: "session root" }],
}));

async function outcome(promise) {
  try {
    return { result: await promise };
  } catch (error) {
    return { error: `${error.name}: ${error.message}` };
  }
}

function call(params, options) {
  return outcome(client.callTool(params, undefined, { timeout: 20000, ...options }));
}

async function main() {
  step("initialize");
  await client.connect(transport);

  const roots = (m) => m.method === "roots/list";
  if (chosen.rootsAtStart) {
    current.ends = "the server asked for the roots on its own";
    await got("the server's roots/list", roots);
    await got("the server's word it has the roots", chosen.rootsTold);
  }

  step("tools/list");
  current.outcome = await outcome(client.listTools());

  step("a plain call");
  current.outcome = await call(chosen.plain);

  step("a call with progress");
  const progress = [];
  current.outcome = await call(chosen.progress, { onprogress: (p) => progress.push(p) });
  current.progress = progress;

  step("a call that asks for a sampling");
  current.outcome = await call(chosen.sampling);

  step("a call that asks for an elicitation");
  current.outcome = await call(chosen.elicitation);

  step("a request the server starts outside any call");
  const before = seen.filter((e) => e.got && roots(e.got)).length;
  await client.sendRootsListChanged();
  await got("the server's roots/list", roots, before + 1);
  await got("the server's word it has the roots", chosen.rootsTold, before ? 2 : 1);

  step("a call the client cancels");
  const controller = new AbortController();
  let settle;
  hangingCall = { abort: (why) => controller.abort(why), settled: new Promise((r) => (settle = r)) };
  const cancelled = call(chosen.cancelled, {
    signal: controller.signal,
    // The python plan's call says it started with a progress notification: cancel it then.
    onprogress: () => controller.abort("the client gave up"),
  });
  current.outcome = await cancelled;
  settle();
  if (chosen.answersCancelled) {
    const id = seen.find((e) => e.sent?.method === "tools/call" && e.sent.params.name === chosen.cancelled.name).sent.id;
    await got("the server's answer to the cancelled call", (m) => m.id === id && !("method" in m));
    // And what the SDK makes of it, in this step too.
    await delivered;
  }
  if (hangingCall.sampling !== undefined) {
    await sent("the answer to the sampling", (m) => m.id === hangingCall.sampling && "result" in m);
  }

  // A round trip after the cancellation: a result of the cancelled call would show up by now.
  step("a ping after it");
  current.outcome = await outcome(client.ping());

  // Closing its HTTP transport aborts the streams still open (the cancelled call's, the GET
  // stream), which the SDK reports as errors: the transport's own, and not recorded.
  current = { step: "close", messages: [] };
  await client.close();
  process.stdout.write(JSON.stringify(steps, null, 1) + "\n");
}

main().catch((error) => {
  process.stdout.write(JSON.stringify(steps, null, 1) + "\n");
  fail(error.stack ?? String(error));
});
