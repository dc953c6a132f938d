// prebundle.mjs: the install-time bundles of many-file packages, and the resolve hook that loads
// them instead of the originals (same module state across a package's entry points).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { PREBUNDLED, prebundle } from "../prebundle.mjs";

const REPO = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
const PREBUNDLE = pathToFileURL(join(REPO, "node_gateway", "prebundle.mjs")).href;
let root;
let summary;

before(async () => {
  root = mkdtempSync(join(tmpdir(), "aiipython-prebundle-"));
  symlinkSync(join(REPO, "node_modules"), join(root, "node_modules"));
  writeFileSync(join(root, "package.json"), readFileSync(join(REPO, "package.json")));
  summary = await prebundle(root);
});
after(() => rmSync(root, { recursive: true, force: true }));

/** Run `body` (an ES module's text) in a fresh Node whose bare imports resolve from `root`. */
function child(body) {
  const file = join(root, `check-${Math.random().toString(36).slice(2)}.mjs`);
  writeFileSync(file, `import { usePrebundled } from ${JSON.stringify(PREBUNDLE)};\n${body}`);
  return JSON.parse(execFileSync(process.execPath, [file], { encoding: "utf8", cwd: root }));
}

test("every listed package is bundled, at the installed version", () => {
  assert.deepEqual(summary.skipped, {});
  for (const name of Object.keys(PREBUNDLED)) {
    const version = JSON.parse(readFileSync(join(REPO, "node_modules", name, "package.json"), "utf8")).version;
    assert.equal(summary.packages[name], version, name);
  }
});

test("with the hook, entry points load from the bundles and share one copy of the package", () => {
  const out = child(`
    const used = usePrebundled({ root: ${JSON.stringify(root)} });
    const { Type } = await import("typebox");
    const { Compile } = await import("typebox/compile");
    const check = Compile(Type.Object({ a: Type.Number() }));
    const { createRequire } = await import("node:module");
    const undici = createRequire(import.meta.url)("undici");
    const undiciEsm = await import("undici");
    console.log(JSON.stringify({
      used: used.used,
      typebox: import.meta.resolve("typebox"),
      compile: import.meta.resolve("typebox/compile"),
      valid: check.Check({ a: 1 }), invalid: check.Check({ a: "x" }),
      sameUndici: undici.Agent === undiciEsm.Agent, agent: typeof undici.Agent,
    }));
  `);
  const bundles = pathToFileURL(join(root, "prebundled")).href;
  assert.deepEqual(out.used.sort(), Object.keys(PREBUNDLED).sort());
  assert.ok(out.typebox.startsWith(bundles) && out.compile.startsWith(bundles), JSON.stringify(out));
  assert.equal(out.valid, true); // Type from one entry, Compile from another: one module state
  assert.equal(out.invalid, false);
  assert.equal(out.agent, "function");
  assert.equal(out.sameUndici, true); // require() and import reach the same bundle
});

test("pi's models.json validator runs on the bundled typebox", () => {
  const out = child(`
    usePrebundled({ root: ${JSON.stringify(root)} });
    const entry = import.meta.resolve("@earendil-works/pi-coding-agent");
    const { ModelConfig } = await import(new URL("./core/model-config.js", entry).href);
    console.log(JSON.stringify({ loaded: typeof ModelConfig, typebox: import.meta.resolve("typebox") }));
  `);
  assert.equal(out.loaded, "function");
  assert.ok(out.typebox.includes("/prebundled/"));
});

test("a manifest that no longer matches node_modules is not used: the original files load", () => {
  const path = join(root, "prebundled", "manifest.json");
  const good = readFileSync(path, "utf8");
  const manifest = JSON.parse(good);
  manifest.packages.typebox = "0.0.1";
  writeFileSync(path, JSON.stringify(manifest));
  try {
    const out = child(`
      const r = usePrebundled({ root: ${JSON.stringify(root)} });
      console.log(JSON.stringify({ ...r, typebox: import.meta.resolve("typebox") }));
    `);
    assert.deepEqual(out.used, []);
    assert.match(out.why, /typebox is no longer 0\.0\.1/);
    assert.ok(out.typebox.includes("/node_modules/typebox/"), out.typebox);
  } finally {
    writeFileSync(path, good);
  }
});

test("without a prebundled directory nothing is redirected", () => {
  const empty = mkdtempSync(join(tmpdir(), "aiipython-prebundle-none-"));
  try {
    const out = child(`console.log(JSON.stringify(usePrebundled({ root: ${JSON.stringify(empty)} })));`);
    assert.deepEqual(out, { used: [], why: "not prebundled" });
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
});
