// Loaded with `node --import ./compat.mjs` before the conformance CLI on Node 20.
// @modelcontextprotocol/conformance 0.1.16 imports `globSync` from `fs`, which Node has only from
// version 22, so on Node 20 the module does not even link. The CLI calls it only in its
// `tier-check` command (reading result folders), never when it runs client scenarios; this hook
// gives that one module an `fs` with a `globSync` that says so if it is ever called. On Node 22
// and later it does nothing.
import fs from 'node:fs';
import { register } from 'node:module';

if (typeof fs.globSync !== 'function') {
  register('./compat_hooks.mjs', import.meta.url);
}
