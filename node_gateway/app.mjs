// The gateway's HTTP app: fastify with the bearer-token check, request ids, the body limit, the
// one error handler (envelope from errors.mjs), one JSON log line per request on stderr, and the
// route plugins. buildApp() takes a ready PiAdapter so tests can build it in-process.

import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import Fastify from "fastify";
import { Admission, admitModelRoutes } from "./admission.mjs";
import { AgentBus } from "./agent_bus.mjs";
import { GatewayError, addSecret, envelopeFor, redact, toGatewayError } from "./errors.mjs";
import { LoginFlows } from "./login_flows.mjs";
import healthRoutes from "./routes/health.mjs";
import modelRoutes from "./routes/models.mjs";
import authRoutes from "./routes/auth.mjs";
import authLoginRoutes from "./routes/auth_login.mjs";
import lmRoutes from "./routes/lm.mjs";
import providerRoutes from "./routes/providers.mjs";
import v1Routes from "./routes/v1/index.mjs";

export const GATEWAY_VERSION = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")).version;
export const DEFAULT_BODY_LIMIT = 52428800;
export const DEFAULT_TIMEOUT_MS = 600000;

const LEVELS = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

/** One JSON object per line on stderr (or `write`); `level` filters (debug|info|warn|error|silent). */
export function createLogger({ level = "info", write = (line) => process.stderr.write(line) } = {}) {
  const min = LEVELS[level] ?? LEVELS.info;
  const emit = (lvl) => (fields) => {
    if (LEVELS[lvl] < min) return;
    write(`${JSON.stringify({ time: new Date().toISOString(), level: lvl, ...fields })}\n`);
  };
  return { debug: emit("debug"), info: emit("info"), warn: emit("warn"), error: emit("error"), enabled: (lvl) => LEVELS[lvl] >= min };
}

const DRAIN_MS = 5000;
const CLOSE_GRACE_MS = 300;

/** Read and discard the rest of a request body (at most `maxBytes` more, for `ms`), then resolve. */
function drainRequest(req, maxBytes, ms) {
  if (req.complete || req.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    let drained = 0;
    const done = () => {
      clearTimeout(timer);
      req.off("data", onData);
      req.off("end", done);
      req.off("close", done);
      req.off("error", done);
      resolve();
    };
    const onData = (chunk) => {
      drained += chunk.length;
      if (drained > maxBytes) done();
    };
    const timer = setTimeout(done, ms);
    req.on("data", onData);
    req.once("end", done);
    req.once("close", done);
    req.once("error", done);
    req.resume();
  });
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

const digest = (value) => createHash("sha256").update(value, "utf8").digest();

/**
 * Which token a bearer value is: "admin", "client" or null. Both are compared, in constant time
 * over SHA-256 digests (equal lengths), so neither the match nor a token's length leaks.
 */
function tokenScope(given, client, admin) {
  const got = digest(given);
  const isClient = timingSafeEqual(got, client);
  const isAdmin = admin ? timingSafeEqual(got, admin) : false;
  return isAdmin ? "admin" : isClient ? "client" : null;
}

/** Every route plugin, registered in this order with the same options (v1: routes/v1/index.mjs). */
export const ROUTE_MODULES = Object.freeze([
  healthRoutes,
  modelRoutes,
  authRoutes,
  authLoginRoutes,
  lmRoutes,
  providerRoutes,
  v1Routes,
]);

function checkTokens(token, adminToken) {
  if (typeof token !== "string" || token.length === 0) throw new Error("buildApp: a non-empty token is required");
  if (adminToken !== undefined && (typeof adminToken !== "string" || adminToken.length === 0 || adminToken === token)) {
    throw new Error("buildApp: the admin token must be a non-empty string different from the client token");
  }
}

/** fastify with the gateway's request ids (a client's valid x-request-id, else prefix-counter). */
// fastify's own default compilers (the copies it would load itself), wrapped to compile on first use.
const fastifyRequire = createRequire(import.meta.resolve("fastify"));

/**
 * A fastify `compilersFactory` entry that builds each route's validator or serializer on the
 * route's first request instead of at start-up: fastify compiles every declared schema (ajv,
 * fast-json-stringify) while it boots, ~0.1 s of the gateway's start for routes most sessions
 * never call. Same compiler, same options, same errors (ajv's `errors` is copied onto the wrapper,
 * where fastify reads it); a schema that cannot compile fails its route's first request with a 500.
 */
export function compileOnFirstUse(selector) {
  return (...factoryArgs) => {
    let build;
    return (route) => {
      let compiled;
      const compile = () => (compiled ??= (build ??= selector(...factoryArgs))(route));
      function firstUse(data) {
        const fn = compile();
        const result = fn(data);
        firstUse.errors = fn.errors;
        return result;
      }
      return firstUse;
    };
  };
}

function createFastify(bodyLimit) {
  const idPrefix = randomBytes(4).toString("hex");
  let seq = 0;
  return Fastify({
    logger: false,
    bodyLimit,
    requestIdHeader: false,
    return503OnClosing: false, // the onRequest hook answers 503 shutting_down with the envelope
    genReqId: (req) => {
      const given = req.headers["x-request-id"];
      return typeof given === "string" && REQUEST_ID.test(given) ? given : `${idPrefix}-${(++seq).toString(36)}`;
    },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false } },
    schemaController: {
      compilersFactory: {
        buildValidator: compileOnFirstUse(fastifyRequire("@fastify/ajv-compiler")()),
        buildSerializer: compileOnFirstUse(fastifyRequire("@fastify/fast-json-stringify-compiler")()),
      },
    },
  });
}

/**
 * `shutdown({graceMs})`: refuse new requests (503), abort in-flight upstream calls, close the
 * server. Connections still open after a short grace period (time for the aborted calls'
 * replies) are destroyed.
 */
function shutdownFor(app, state, admission) {
  return async function shutdown({ graceMs = CLOSE_GRACE_MS } = {}) {
    if (state.shuttingDown) return;
    state.shuttingDown = true;
    admission.close();
    for (const call of state.inflight) call.abort("shutdown");
    const force = setTimeout(() => app.server.closeAllConnections(), graceMs);
    force.unref();
    try {
      await app.close();
    } finally {
      clearTimeout(force);
    }
  };
}

/**
 * Per request: `request.gw` (timing, the call, model and error type for the log), the
 * x-request-id header, and when the response closes, the abort of a call whose client left and
 * the one log line.
 */
function trackRequest(request, reply, logger) {
  const res = reply.raw;
  const gw = { start: performance.now(), call: null, model: undefined, errorType: undefined };
  request.gw = gw;
  res.setHeader("x-request-id", request.id);
  res.once("close", () => {
    const call = gw.call;
    if (call && !res.writableFinished) call.abort("client"); // the client went away: stop the upstream call
    if (logger.enabled("info") || (gw.errorType && logger.enabled("warn"))) {
      const line = {
        event: "request",
        request_id: request.id,
        method: request.method,
        route: request.routeOptions.url ?? request.url.slice(0, 200).split("?")[0],
        status: res.writableFinished ? res.statusCode : 499,
        duration_ms: Math.round((performance.now() - gw.start) * 100) / 100,
      };
      if (gw.model) line.model = gw.model;
      if (gw.errorType) line.error_type = gw.errorType;
      if (!res.writableFinished) line.client_closed = true;
      (gw.errorType && line.status >= 500 ? logger.warn : logger.info)(line);
    }
  });
}

/** The error that refuses `request` (shutting down, no or wrong token, admin route), or null. */
function refusal(request, state, clientDigest, adminDigest) {
  if (state.shuttingDown) return new GatewayError("shutting_down", "the gateway is shutting down");
  const auth = request.headers.authorization;
  if (typeof auth !== "string" || auth.length < 8 || auth.slice(0, 7).toLowerCase() !== "bearer ") {
    return new GatewayError("unauthorized", "missing gateway token (Authorization: Bearer <token>)");
  }
  const scope = tokenScope(auth.slice(7).trim(), clientDigest, adminDigest);
  if (scope === null) return new GatewayError("unauthorized", "wrong gateway token");
  // One rule for every route: `config: { admin: true }` needs the admin token (node_gateway/README.md).
  if (request.routeOptions.config?.admin && scope !== "admin") {
    return new GatewayError("forbidden", `${request.method} ${request.routeOptions.url} needs the gateway's admin token; a client token can call /lm/*, /v1/*, /models, /auth/status and /health (logins and keys need the admin token)`);
  }
  return null;
}

/** The one error handler: the envelope (errors.mjs) with its status and headers. */
function errorHandler(bodyLimit, logger) {
  return async (err, request, reply) => {
    const gerr = toGatewayError(err, bodyLimit);
    if (gerr.type === "request_too_large") {
      // Answer once the client has finished sending: a reply sent mid-upload is followed by a
      // connection reset that makes many clients lose it. Bytes are discarded, never buffered.
      await drainRequest(request.raw, bodyLimit, DRAIN_MS);
    }
    if (gerr.type === "internal_error") {
      logger.error({ event: "internal_error", request_id: request.id, error: redact(String(err?.stack ?? err)) });
    }
    if (request.gw) request.gw.errorType = gerr.type;
    if ((gerr.type === "rate_limit" || gerr.type === "mailbox_full") && gerr.extra?.retry_after !== undefined) {
      reply.header("retry-after", String(Math.ceil(gerr.extra.retry_after)));
    }
    if (gerr.type === "request_too_large" || gerr.type === "shutting_down") reply.header("connection", "close");
    reply.code(gerr.statusCode).send(envelopeFor(request, gerr));
  };
}

function notFound(request, reply) {
  request.gw.errorType = "not_found";
  reply.code(404).send(envelopeFor(request, new GatewayError("not_found", `no route ${request.method} ${request.url.split("?")[0]}`)));
}

/**
 * Build the fastify app. `adapter`: a PiAdapter; `token`: the client token (required: /lm/*,
 * /v1/*, /models, /auth/status, /health); `adminToken`: the admin token, also needed for routes
 * declared with `config: { admin: true }` (none are reachable without it). `providerEnvAllow`:
 * env var names run-time provider blocks may reference ("$NAME").
 * `admission`: the bound on model calls (admission.mjs). `agentBus`: the agent message bus's store
 * (agent_bus.mjs: an AgentBus here, a RemoteAgentBus in a cluster worker). `loginFlows`: the login
 * flows (login_flows.mjs: how many at once, how long each may take).
 * Returns the app; `app.gateway.shutdown()` aborts in-flight calls and closes it.
 */
export function buildApp({
  adapter,
  token,
  adminToken = undefined,
  providerEnvAllow = new Set(),
  bodyLimit = DEFAULT_BODY_LIMIT,
  timeoutMs = DEFAULT_TIMEOUT_MS,
  logger = createLogger(),
  startedAt = Date.now(),
  admission = new Admission({ maxWaitMs: timeoutMs }),
  agentBus = new AgentBus(),
  loginFlows = new LoginFlows({ logger }),
} = {}) {
  checkTokens(token, adminToken);
  if (!adapter) throw new Error("buildApp: a PiAdapter is required");
  addSecret(token);
  addSecret(adminToken);
  const clientDigest = digest(token);
  const adminDigest = adminToken ? digest(adminToken) : null;

  const app = createFastify(bodyLimit);
  const state = { shuttingDown: false, inflight: new Set(), requests: 0 }; // requests: how many arrived (idle_memory.mjs)
  app.decorate("gateway", { state, logger, shutdown: shutdownFor(app, state, admission) });
  app.decorateRequest("gw", null);
  app.addHook("onRequest", (request, reply, done) => {
    state.requests++;
    trackRequest(request, reply, logger);
    const refused = refusal(request, state, clientDigest, adminDigest);
    if (refused) done(refused);
    else done();
  });
  app.setErrorHandler(errorHandler(bodyLimit, logger));
  app.setNotFoundHandler(notFound);

  admitModelRoutes(app, admission); // before the routes: /lm/* and /v1 model calls
  const routeOpts = { adapter, timeoutMs, state, startedAt, version: GATEWAY_VERSION, admission, providerEnvAllow, agentBus, loginFlows };
  for (const routes of ROUTE_MODULES) app.register(routes, routeOpts);
  return app;
}
