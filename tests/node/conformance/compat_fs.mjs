// Node 20's `fs` plus the `globSync` the conformance CLI imports but does not call when it runs
// client scenarios (see compat.mjs).
import fs from 'node:fs';

export * from 'node:fs';
export default fs;

export function globSync() {
  throw new Error('fs.globSync needs Node 22; the conformance CLI called it (tier-check?)');
}
