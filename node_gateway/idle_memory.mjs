// Give start-up's memory back once the gateway is idle.
// Loading pi and fastify grows V8's young generation to its maximum (about 30 MB of its ~125 MB
// RSS at ready: nearly everything allocated while modules load survives, so V8 sizes the young
// generation up) and V8 only shrinks it in a memory-reducing GC, which an idle process never runs
// by itself. So once after start-up, when no request has arrived for IDLE_MS and none is in
// flight, the gateway runs that GC (V8's "last resort" collection: the young generation back to
// its minimum, free pages returned). It runs only while idle, once; under load the young
// generation grows back as it would (throughput is unaffected). A request that arrives during
// it waits for it (tens of ms on a quiet machine).

import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

export const IDLE_MS = 1000;

/** V8's gc() (the --expose-gc function), or null when it cannot be had. */
function v8Collect() {
  if (typeof globalThis.gc === "function") return globalThis.gc;
  try {
    setFlagsFromString("--expose-gc");
    return runInNewContext("gc"); // the extension is installed in contexts created from now on
  } catch {
    return null;
  }
}

/**
 * After start-up: once `activity()` (a counter of requests seen) has not moved for `idleMs` and
 * `busy()` is false, run one memory-reducing GC. Returns a function that cancels it (shutdown).
 */
export function releaseStartupMemory({ activity, busy, idleMs = IDLE_MS, onDone = () => {} }) {
  const gc = v8Collect();
  if (!gc) return () => {};
  let last = activity();
  let timer = null;
  const check = () => {
    const now = activity();
    if (now !== last || busy()) {
      last = now;
      timer = setTimeout(check, idleMs);
      timer.unref();
      return;
    }
    timer = null;
    const t0 = performance.now();
    gc({ type: "major", flavor: "last-resort", execution: "sync" });
    onDone({ ms: Math.round(performance.now() - t0), rss_mb: Math.round(process.memoryUsage().rss / 104857.6) / 10 });
  };
  timer = setTimeout(check, idleMs);
  timer.unref();
  return () => {
    if (timer) clearTimeout(timer);
    timer = null;
  };
}
