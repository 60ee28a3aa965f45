// The resolve hook of compat.mjs: `fs` imported by the conformance CLI's bundle
// resolves to compat_fs.mjs instead.
const shim = new URL('./compat_fs.mjs', import.meta.url).href;

export async function resolve(specifier, context, next) {
  const fromConformance = context.parentURL?.includes('/@modelcontextprotocol/conformance/');
  if (fromConformance && (specifier === 'fs' || specifier === 'node:fs')) {
    return { url: shim, shortCircuit: true };
  }
  return next(specifier, context);
}
