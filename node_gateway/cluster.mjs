// Worker processes sharing the gateway's port (node:cluster), for a second core.
//
// With AIIPYTHON_GATEWAY_WORKERS=N > 1, server.mjs runs as the *primary*: it loads neither pi nor
// fastify, forks N workers (each the whole gateway: pi, fastify, its own admission share), waits
// until every worker listens, then writes the ONE readiness line. The contract of docs/protocol.md
// "Launch" holds for the group: stdin EOF / SIGTERM / SIGINT at the primary stops every worker;
// a SIGKILLed primary takes the workers with it (a cluster worker exits when its IPC channel to
// the primary closes); a worker that dies stops the group (the parent restarts the gateway)
// rather than leaving it at reduced capacity with its run-time providers lost.
// Run-time provider registration (PUT /providers) on any worker reaches every worker before the
// request is answered (shareRegistrations). The agent message bus's store lives in the primary
// (agent_bus.mjs serveAgentBus), so every worker reads the same mailboxes.

import cluster from "node:cluster";
import { availableParallelism } from "node:os";
import { serveAgentBus } from "./agent_bus.mjs";

const WORKER_EXIT_GRACE_MS = 1200;

/**
 * The worker count from AIIPYTHON_GATEWAY_WORKERS: unset or "" -> `fallback`; "auto" -> the CPU
 * count (os.availableParallelism); a positive integer -> itself. Returns {workers} or {error}.
 */
export function workerCount(raw, fallback = 1, cpus = availableParallelism()) {
  if (raw === undefined || raw.trim() === "") return { workers: fallback };
  const value = raw.trim().toLowerCase();
  if (value === "auto") return { workers: Math.max(1, cpus) };
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) return { error: `AIIPYTHON_GATEWAY_WORKERS must be "auto" or an integer >= 1, got ${JSON.stringify(raw)}` };
  return { workers: n };
}

export const isWorker = cluster.isWorker;

/**
 * Run the primary: fork `workers` copies of this script with `env`, write one readiness line when
 * all listen, and stop the group on stdin EOF or a signal. `log(level, fields)` writes a log line.
 */
export async function runPrimary({ workers, env, log, fail, shutdownDeadlineMs }) {
  cluster.setupPrimary({ stdio: ["ignore", "ignore", "inherit", "ipc"] });
  const group = new Map(); // worker id -> {worker, ready}
  let stopping = false;
  const agentBus = serveAgentBus(cluster);

  const stop = (why, code = 0) => {
    if (stopping) return;
    stopping = true;
    log("info", { event: "shutdown", reason: why });
    agentBus.close(); // waiting readers answer now, while their workers can still reply
    const killer = setTimeout(() => {
      for (const { worker } of group.values()) worker.process.kill("SIGKILL");
      process.exit(code);
    }, shutdownDeadlineMs + WORKER_EXIT_GRACE_MS);
    killer.unref();
    for (const { worker } of group.values()) {
      if (worker.isConnected()) worker.send({ type: "shutdown" });
    }
    const alive = () => [...group.values()].some(({ worker }) => !worker.isDead());
    if (!alive()) process.exit(code);
    cluster.on("exit", () => {
      if (!alive()) process.exit(code);
    });
  };

  const readyInfos = [];
  const allReady = new Promise((resolve) => {
    cluster.on("message", (worker, msg) => {
      if (msg?.type === "ready") {
        readyInfos.push(msg.info);
        if (readyInfos.length === workers) resolve();
      } else if (msg?.type === "providers") {
        broadcast(worker, msg);
      } else if (msg?.type === "startup_failed") {
        fail(msg.message);
      }
    });
  });

  // One registration: forward to every other worker, collect their answers, answer the origin.
  function broadcast(origin, { id, providers, runtime, envAllow }) {
    const peers = [...group.values()].map((g) => g.worker).filter((w) => w !== origin && w.isConnected());
    const errors = [];
    let left = peers.length;
    const done = () => {
      if (origin.isConnected()) origin.send({ type: "providers_done", id, errors });
    };
    if (left === 0) return done();
    for (const peer of peers) {
      const onMessage = (msg) => {
        if (msg?.type !== "providers_applied" || msg.id !== id) return;
        peer.off("message", onMessage);
        peer.off("exit", onExit);
        if (msg.error) errors.push(`worker ${peer.process.pid}: ${msg.error}`);
        if (--left === 0) done();
      };
      const onExit = () => {
        peer.off("message", onMessage);
        errors.push(`worker ${peer.process.pid} exited`);
        if (--left === 0) done();
      };
      peer.on("message", onMessage);
      peer.once("exit", onExit);
      peer.send({ type: "apply_providers", id, providers, runtime, envAllow });
    }
  }

  cluster.on("exit", (worker, code, signal) => {
    if (stopping) return;
    const why = `worker ${worker.process.pid} exited (${signal ?? code}); stopping the gateway`;
    log("error", { event: "worker_exited", message: why });
    stop(why, 1);
  });

  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  process.stdin.on("end", () => stop("stdin closed"));
  process.stdin.on("close", () => stop("stdin closed"));
  process.stdin.on("error", () => stop("stdin error"));
  process.stdin.resume();

  for (let i = 0; i < workers; i++) {
    const worker = cluster.fork(env);
    group.set(worker.id, { worker });
  }
  await allReady;
  if (stopping) return null;
  const urls = new Set(readyInfos.map((info) => info.url));
  if (urls.size !== 1) fail(`workers listen on different addresses: ${[...urls].join(", ")}`);
  return { ...readyInfos[0], pid: process.pid, workers, worker_pids: readyInfos.map((info) => info.pid) };
}

/**
 * In a worker: make `adapter.registerProviders` reach every worker of the group. The local
 * registration runs first (a bad block is refused before any peer sees it); then the primary
 * forwards it to the others and the call resolves once all have applied it.
 */
export function shareRegistrations(adapter) {
  const local = adapter.registerProviders.bind(adapter);
  const waiting = new Map();
  let seq = 0;
  process.on("message", async (msg) => {
    if (msg?.type === "apply_providers") {
      let error;
      try {
        await local(msg.providers, { runtime: msg.runtime, envAllow: new Set(msg.envAllow) });
      } catch (err) {
        error = String(err?.message ?? err);
      }
      process.send({ type: "providers_applied", id: msg.id, error });
    } else if (msg?.type === "providers_done") {
      const entry = waiting.get(msg.id);
      waiting.delete(msg.id);
      if (!entry) return;
      if (msg.errors.length) entry.reject(new Error(`registered here but not on every worker: ${msg.errors.join("; ")}`));
      else entry.resolve();
    }
  });
  adapter.registerProviders = async (providers, options = {}) => {
    const result = await local(providers, options); // validated here first: a 400 reaches no worker
    const id = `${process.pid}-${++seq}`;
    const { runtime = false, envAllow = new Set() } = options;
    await new Promise((resolve, reject) => {
      waiting.set(id, { resolve, reject });
      process.send({ type: "providers", id, providers, runtime, envAllow: [...envAllow] });
    });
    return result;
  };
}

/** In a worker: report readiness (or a start-up failure) to the primary; obey its shutdown. */
export function workerReady(info) {
  process.send({ type: "ready", info });
}

export function workerFailed(message) {
  if (process.connected) process.send({ type: "startup_failed", message });
}

export function onPrimaryShutdown(shutdown) {
  process.on("message", (msg) => {
    if (msg?.type === "shutdown") shutdown("primary asked");
  });
}
