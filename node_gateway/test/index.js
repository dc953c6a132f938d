// Lets `node --test node_gateway/test/` work: Node 24 treats a directory argument as a module
// path and runs this index.js. When that is how it was started (argv[1] is the directory), it
// imports every *.test.mjs here; when a glob picks it up as a file of its own, it does nothing.

import { readdirSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import { basename, dirname, join } from "node:path";

const here = dirname(fileURLToPath(import.meta.url));
if (basename(process.argv[1] ?? "") !== "index.js") {
  for (const name of readdirSync(here).filter((f) => f.endsWith(".test.mjs")).sort()) {
    await import(pathToFileURL(join(here, name)).href);
  }
}
