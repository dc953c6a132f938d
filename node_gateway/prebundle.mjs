// Start-up speed: a few dependencies are made of hundreds of small module files (typebox alone is
// ~670, loaded by pi's models.json validator), and Node pays per file (resolve, read, compile,
// link) — about 0.3 s of the gateway's ~0.8 s start on the 2-core bench machine. At install time
// (after `npm ci`, aiipython._node) esbuild bundles each such package into a few files under
// `<install root>/prebundled/`; at start the gateway redirects imports of the package's entry
// points there with a resolve hook (module.registerHooks). Same code, same versions, fewer files.
//
// Only packages that are safe to bundle are taken: self-contained ESM or CommonJS with no
// file-relative look-ups (import.meta, __dirname, createRequire). Every public entry point
// (the package's `exports`, or `main`) is an entry of ONE esbuild build with code splitting, so
// all entries share one copy of the package's module state. A manifest records the package
// versions bundled; if node_modules no longer matches it, the hook is not installed and the
// gateway loads the original files. Nothing here is needed for correctness: without the bundles
// the gateway starts the same way, only slower.
//
//   node prebundle.mjs <install root>      (run by aiipython._node after npm ci)

import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire, registerHooks } from "node:module";
import { join, relative, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

/**
 * What is bundled: package name -> its module format in esbuild's terms, and the files whose
 * file-relative look-ups were read and found harmless once bundled.
 */
export const PREBUNDLED = Object.freeze({
  typebox: { format: "esm" }, // ~670 files
  "@earendil-works/pi-schema": { format: "esm" },
  // ~110 files; index.js and index-fetch.js keep `__filename` only to tell their own stack frames apart.
  undici: { format: "cjs", reviewed: ["index.js", "index-fetch.js"] },
});

export const MANIFEST = "manifest.json";
const FILE_RELATIVE = /\bimport\.meta\b|\b__dirname\b|\b__filename\b|\bcreateRequire\b/;

const readJson = (path) => JSON.parse(readFileSync(path, "utf8"));

/** `{subpath: file}` of a package's public entry points (exports without wildcards, else main). */
function entryPoints(dir, meta) {
  const pick = (cond) => {
    while (cond && typeof cond === "object") cond = cond.node ?? cond.import ?? cond.require ?? cond.default;
    return typeof cond === "string" ? cond : null;
  };
  const out = {};
  const exp = meta.exports;
  if (exp && typeof exp === "object" && Object.keys(exp).some((k) => k.startsWith("."))) {
    for (const [sub, cond] of Object.entries(exp)) {
      if (sub.includes("*")) throw new Error(`exports "${sub}" has a wildcard: not bundled`);
      const file = pick(cond);
      if (file && /\.[cm]?js$/.test(file)) out[sub] = join(dir, file);
    }
  } else {
    out["."] = join(dir, (typeof exp === "string" && exp) || meta.main || "index.js");
  }
  return out;
}

function sourceFiles(dir) {
  const out = [];
  for (const ent of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, ent.name);
    if (ent.isDirectory()) {
      if (ent.name !== "node_modules") out.push(...sourceFiles(path));
    } else if (/\.[cm]?js$/.test(ent.name)) out.push(path);
  }
  return out;
}

/**
 * Bundle PREBUNDLED's packages from `root`/node_modules into `root`/prebundled (replaced
 * atomically). Returns `{packages: {name: version}, skipped: {name: why}, files: n}`; a package
 * that cannot be bundled safely is skipped with the reason, never bundled half.
 */
export async function prebundle(root, { packages = PREBUNDLED } = {}) {
  const require = createRequire(join(root, "package.json"));
  const { build } = require("esbuild");
  if (typeof build !== "function") throw new Error(`esbuild in ${root}/node_modules has no build(): reinstall`);
  const out = join(root, "prebundled");
  const tmp = `${out}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  const manifest = { packages: {}, skipped: {}, files: {} };
  for (const [name, { format, reviewed = [] }] of Object.entries(packages)) {
    try {
      const dir = realpathSync(join(root, "node_modules", name)); // Node resolves to real paths
      const meta = readJson(join(dir, "package.json"));
      const files = sourceFiles(dir);
      const relativeUse = files.find((f) => !reviewed.includes(relative(dir, f)) && FILE_RELATIVE.test(readFileSync(f, "utf8")));
      if (relativeUse) throw new Error(`${relative(dir, relativeUse)} looks up files relative to itself`);
      const entries = entryPoints(dir, meta);
      if (format === "cjs" && Object.keys(entries).length > 1) throw new Error("CommonJS with several entry points: not bundled");
      const names = Object.fromEntries(Object.keys(entries).map((sub) => [sub, sub === "." ? "index" : sub.slice(2).replaceAll("/", "__")]));
      const outdir = join(tmp, name);
      const ext = format === "esm" ? ".mjs" : ".cjs";
      await build({
        entryPoints: Object.fromEntries(Object.entries(entries).map(([sub, file]) => [names[sub], file])),
        bundle: true,
        splitting: format === "esm", // one shared copy of the package's modules across entries
        format,
        platform: "node",
        target: "node22",
        packages: "external", // other packages stay imports (and may be bundles of their own)
        outdir,
        outExtension: { ".js": ext },
        logLevel: "silent",
      });
      for (const [sub, file] of Object.entries(entries)) {
        manifest.files[pathToFileURL(file).href] = pathToFileURL(join(out, name, names[sub] + ext)).href;
      }
      manifest.packages[name] = meta.version;
    } catch (err) {
      manifest.skipped[name] = String(err?.message ?? err).split("\n")[0];
      rmSync(join(tmp, name), { recursive: true, force: true });
    }
  }
  mkdirSync(tmp, { recursive: true });
  writeFileSync(join(tmp, MANIFEST), `${JSON.stringify(manifest, null, 1)}\n`);
  rmSync(out, { recursive: true, force: true });
  renameSync(tmp, out);
  return { packages: manifest.packages, skipped: manifest.skipped, files: Object.keys(manifest.files).length };
}

/** The install root of the node_modules this gateway resolves its packages from. */
function installRoot() {
  const fastify = fileURLToPath(import.meta.resolve("fastify"));
  const at = fastify.lastIndexOf(`${sep}node_modules${sep}`);
  return at < 0 ? null : fastify.slice(0, at);
}

/**
 * Redirect imports of the bundled packages' entry points to `<install root>/prebundled` when its
 * manifest matches the installed versions. Returns `{used: [names]}` or `{used: [], why}`; call it
 * before anything imports those packages.
 */
export function usePrebundled({ root = installRoot() } = {}) {
  if (!root) return { used: [], why: "no node_modules install root" };
  const path = join(root, "prebundled", MANIFEST);
  if (!existsSync(path)) return { used: [], why: "not prebundled" };
  let manifest;
  try {
    manifest = readJson(path);
    for (const [name, version] of Object.entries(manifest.packages)) {
      if (readJson(join(root, "node_modules", name, "package.json")).version !== version) {
        return { used: [], why: `${name} is no longer ${version}` };
      }
    }
    for (const url of Object.values(manifest.files)) statSync(fileURLToPath(url));
  } catch (err) {
    return { used: [], why: `unusable manifest: ${err.code ?? err.message}` };
  }
  const files = new Map(Object.entries(manifest.files));
  registerHooks({
    resolve(specifier, context, nextResolve) {
      const resolved = nextResolve(specifier, context);
      const bundled = files.get(resolved.url);
      return bundled === undefined ? resolved : { ...resolved, url: bundled };
    },
  });
  return { used: Object.keys(manifest.packages) };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const root = process.argv[2];
  if (!root || !existsSync(join(root, "node_modules"))) {
    process.stderr.write("usage: node prebundle.mjs <install root with node_modules>\n");
    process.exit(2);
  }
  try {
    process.stdout.write(`${JSON.stringify(await prebundle(root))}\n`);
  } catch (err) {
    // The reason alone, on one line: the installer records it, and a stack trace's tail would
    // push the reason itself out of what it keeps.
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
}

