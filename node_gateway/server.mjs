// Entry point: node node_gateway/server.mjs [--host 127.0.0.1] [--port 0]
// Reads its settings from the environment once (docs/protocol.md "Launch"), builds the app,
// listens, writes ONE readiness line to stdout, and exits when stdin ends or on SIGTERM/SIGINT.
// Nothing else is ever written to stdout: console output is sent to stderr before pi loads.
// With AIIPYTHON_GATEWAY_WORKERS > 1 this process is the primary of a node:cluster group and
// each worker runs the gateway (cluster.mjs); the readiness line then comes once, from the primary.

import { readFileSync } from "node:fs";
import { format, parseArgs } from "node:util";
import { admissionFor, DEFAULT_MAX_INFLIGHT, DEFAULT_MAX_QUEUE } from "./admission.mjs";
import { isWorker, onPrimaryShutdown, runPrimary, shareRegistrations, workerCount, workerFailed, workerReady } from "./cluster.mjs";
import { describeJsonError } from "./pi_files.mjs";

const EXIT_USAGE = 2;
const SHUTDOWN_DEADLINE_MS = 900;
/** Workers when AIIPYTHON_GATEWAY_WORKERS is unset (docs/architecture.md "Workers"). */
const DEFAULT_WORKERS = 1;

function fail(message) {
  if (isWorker) workerFailed(message);
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level: "error", event: "startup_failed", message })}\n`);
  process.exit(EXIT_USAGE);
}

function readSettings(argv, env) {
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: { host: { type: "string", default: "127.0.0.1" }, port: { type: "string", default: "0" } },
      strict: true,
    }).values;
  } catch (err) {
    fail(`bad arguments: ${err.message}`);
  }
  const port = Number(args.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`bad --port: ${args.port}`);
  const token = env.AIIPYTHON_GATEWAY_TOKEN;
  if (!token) fail("AIIPYTHON_GATEWAY_TOKEN is not set: the gateway refuses to start without a token");
  const adminToken = env.AIIPYTHON_GATEWAY_ADMIN_TOKEN || undefined; // without it no admin route is reachable
  if (adminToken === token) fail("AIIPYTHON_GATEWAY_ADMIN_TOKEN must differ from AIIPYTHON_GATEWAY_TOKEN");
  const envAllow = (env.AIIPYTHON_GATEWAY_PROVIDER_ENV ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  const integer = (name, fallback, min = 1) => {
    const raw = env[name];
    if (raw === undefined || raw === "") return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min) fail(`${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}`);
    return n;
  };
  const positiveInt = (name, fallback) => integer(name, fallback);
  const { workers, error: workersError } = workerCount(env.AIIPYTHON_GATEWAY_WORKERS, DEFAULT_WORKERS);
  if (workersError) fail(workersError);
  // Parse errors give position and reason only: V8's messages quote the text (keys, maybe).
  const parseJson = (text, where) => {
    try {
      return JSON.parse(text);
    } catch (err) {
      return fail(`${where} is not valid JSON: ${describeJsonError(text, err)}`);
    }
  };
  let providers;
  if (env.AIIPYTHON_GATEWAY_PROVIDERS) providers = parseJson(env.AIIPYTHON_GATEWAY_PROVIDERS, "AIIPYTHON_GATEWAY_PROVIDERS")?.providers;
  const file = env.AIIPYTHON_GATEWAY_PROVIDERS_FILE;
  if (file) {
    let text;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      fail(`cannot read AIIPYTHON_GATEWAY_PROVIDERS_FILE ${file} (${err.code ?? "error"})`);
    }
    const filed = parseJson(text, file)?.providers;
    // One id in both places is refused, never resolved silently (the env var also carries the
    // embedded local model's block when Python starts the gateway).
    const both = filed && providers && typeof filed === "object" && typeof providers === "object" ? Object.keys(filed).filter((id) => Object.hasOwn(providers, id)) : [];
    if (both.length) fail(`provider ${both.map((id) => `'${id}'`).join(", ")} is in both AIIPYTHON_GATEWAY_PROVIDERS and AIIPYTHON_GATEWAY_PROVIDERS_FILE: keep it in one (the id 'local' is the embedded model's)`);
    providers = { ...filed, ...providers };
  }
  if (providers !== undefined && (providers === null || typeof providers !== "object" || Array.isArray(providers))) {
    fail('extra providers must be {"providers": {"<id>": {...}}}');
  }
  return {
    host: args.host,
    port,
    token,
    adminToken,
    providerEnvAllow: new Set(envAllow),
    providers,
    timeoutMs: positiveInt("AIIPYTHON_GATEWAY_TIMEOUT_MS", 600000),
    bodyLimit: positiveInt("AIIPYTHON_GATEWAY_BODY_LIMIT", 52428800),
    logLevel: env.AIIPYTHON_GATEWAY_LOG_LEVEL || "info",
    maxInflight: positiveInt("AIIPYTHON_GATEWAY_MAX_INFLIGHT", DEFAULT_MAX_INFLIGHT),
    maxQueue: integer("AIIPYTHON_GATEWAY_MAX_QUEUE", DEFAULT_MAX_QUEUE, 0),
    workers,
  };
}

const launchEnv = { ...process.env }; // what each worker starts from (the same settings, tokens included)
const settings = readSettings(process.argv.slice(2), process.env);
delete process.env.AIIPYTHON_GATEWAY_TOKEN; // nothing downstream needs them in the environment
delete process.env.AIIPYTHON_GATEWAY_ADMIN_TOKEN;
process.env.PI_OFFLINE = "1";

if (settings.workers > 1 && !isWorker) {
  const log = (level, fields) =>
    process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level, ...fields })}\n`);
  const info = await runPrimary({ workers: settings.workers, env: launchEnv, log, fail, shutdownDeadlineMs: SHUTDOWN_DEADLINE_MS });
  if (info) process.stdout.write(`${JSON.stringify(info)}\n`);
} else {
  await serve();
}

async function serve() {
  // ms since the process started at each step, for the debug line after listen (scripts/bench).
  const phases = { serve: Math.round(performance.now()) };
  const phase = (name) => (phases[name] = Math.round(performance.now()));
  // Before anything imports them: the install's bundles of many-file packages (prebundle.mjs).
  const { usePrebundled } = await import("./prebundle.mjs");
  const prebundled = usePrebundled();
  const { installDispatcher } = await import("./dispatcher.mjs"); // not in a primary: it serves nothing
  installDispatcher(); // before pi loads and before any fetch
  phase("undici");

  const { buildApp, createLogger, GATEWAY_VERSION } = await import("./app.mjs");
  phase("fastify_and_routes");
  const { redact } = await import("./errors.mjs");
  const logger = createLogger({ level: settings.logLevel });

  // stdout carries only the readiness line. Whatever pi or a dependency prints (the OpenAI SDK
  // reports unparsable SSE with console.error) becomes a redacted JSON log line on stderr.
  const consoleTo = (level) => (...args) => logger[level]({ event: "console", message: redact(format(...args)) });
  console.log = consoleTo("info");
  console.info = consoleTo("info");
  console.debug = consoleTo("debug");
  console.warn = consoleTo("warn");
  console.error = consoleTo("warn");

  const { createAdapter, defaultAgentDir } = await import("./pi_adapter.mjs");

  phase("pi_modules");
  let adapter;
  try {
    adapter = await createAdapter({ agentDir: defaultAgentDir(process.env), providers: settings.providers });
  } catch (err) {
    fail(`cannot start pi: ${err.message}`);
  }
  phase("pi_runtime");
  if (isWorker) shareRegistrations(adapter); // PUT /providers reaches every worker
  const { AgentBus, RemoteAgentBus } = await import("./agent_bus.mjs");
  const agentBus = isWorker ? new RemoteAgentBus(process) : new AgentBus(); // one store for the group: the primary's
  const app = buildApp({
    adapter,
    token: settings.token,
    adminToken: settings.adminToken,
    providerEnvAllow: settings.providerEnvAllow,
    bodyLimit: settings.bodyLimit,
    timeoutMs: settings.timeoutMs,
    logger,
    admission: admissionFor({
      maxInflight: settings.maxInflight,
      maxQueue: settings.maxQueue,
      workers: settings.workers,
      maxWaitMs: settings.timeoutMs,
    }),
    agentBus,
  });

  phase("app_built");
  let stopping = false;
  let stopAccepting = () => {};
  async function shutdown(why) {
    if (stopping) return;
    stopping = true;
    logger.info({ event: "shutdown", reason: why });
    setTimeout(() => process.exit(0), SHUTDOWN_DEADLINE_MS).unref();
    try {
      stopAccepting();
      await app.gateway.shutdown();
    } catch (err) {
      logger.error({ event: "shutdown_error", message: String(err?.message ?? err) });
    }
    process.exit(0);
  }
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
  if (isWorker) {
    onPrimaryShutdown(shutdown); // the primary owns stdin; a lost primary ends a worker (cluster.mjs)
  } else {
    process.stdin.on("end", () => shutdown("stdin closed"));
    process.stdin.on("close", () => shutdown("stdin closed"));
    process.stdin.on("error", () => shutdown("stdin error"));
    process.stdin.resume();
  }

  let address;
  try {
    // Several listening sockets: a burst of new connections is accepted in a few event-loop
    // turns, not one per turn (acceptors.mjs). A worker's connections come from its primary.
    const { listenWithAcceptors } = await import("./acceptors.mjs");
    const listening = await listenWithAcceptors(app, { host: settings.host, port: settings.port, acceptors: isWorker ? 1 : undefined });
    address = listening.address;
    stopAccepting = listening.close;
  } catch (err) {
    fail(`cannot listen on ${settings.host}:${settings.port}: ${err.message}`);
  }
  phase("listening");
  logger.debug({ event: "prebundled", ...prebundled });
  logger.debug({ event: "startup_phases", ms_since_process_start: phases });
  const modelsError = adapter.modelsJsonError();
  if (modelsError) logger.warn({ event: "models_json_error", message: modelsError });
  const ready = {
    event: "ready",
    url: address,
    pid: process.pid,
    version: GATEWAY_VERSION,
    pi_version: adapter.piVersion,
    node_version: process.version,
  };
  if (isWorker) workerReady(ready);
  else process.stdout.write(`${JSON.stringify(ready)}\n`);
  // Once idle after start-up, give the young generation V8 grew while loading back (idle_memory.mjs).
  const { releaseStartupMemory } = await import("./idle_memory.mjs");
  const { state } = app.gateway;
  releaseStartupMemory({
    activity: () => state.requests,
    busy: () => state.inflight.size > 0 || stopping,
    onDone: (fields) => logger.debug({ event: "startup_memory_released", ...fields }),
  });
}
