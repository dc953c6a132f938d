// Admission control for model calls (docs/protocol.md "Overload"): at most `limit` upstream calls in
// flight per gateway process, then a FIFO wait queue of at most `queue` requests; beyond that a
// request is answered at once with 503 `overloaded` and `Retry-After` (never a silent stall).
// Only model routes go through it (MODEL_ROUTES; admitModelRoutes adds the route-level onRequest
// hook to each as it is declared), so /health and the other cheap routes never wait behind them.
//
// 503, not 429: the shed is the gateway being at capacity for everyone, not this caller sending
// too much; 429 `rate_limit` stays the provider's own limit passed through, and a caller can
// tell the two apart. The openai SDK retries 503 after `Retry-After`, and the Python client maps it
// to a retryable error carrying `retry_after` (DSPy's retry waits that long).

import { envelopeFor, GatewayError } from "./errors.mjs";

/**
 * Defaults. One worker's throughput is flat from about 8 concurrent calls on (docs/benchmarks.md
 * "Throughput": 4,136 req/s at c=8, 4,457 at c=32), so on a CPU-bound gateway more calls in
 * flight only add unordered queueing inside pi; 64 leaves 8x that for slow upstream calls, which
 * hold a slot while using almost no CPU (a 32-thread DSPy optimizer, twice over). 192 waiting
 * drain in ~50 ms at that rate (about 15 s behind 5 s model calls); past 64 + 192 = 256
 * concurrent callers the gateway sheds at once.
 */
export const DEFAULT_MAX_INFLIGHT = 64;
export const DEFAULT_MAX_QUEUE = 192;

/** The routes that make model calls: each passes admission (docs/protocol.md "Overload"). */
export const MODEL_ROUTES = Object.freeze(["/lm/complete", "/lm/stream", "/v1/chat/completions", "/v1/responses"]);

/**
 * Give every model route declared on `app` from now on the admission hook (fastify `onRoute`,
 * inherited by the route plugins registered after it), ahead of the route's own onRequest hooks.
 */
export function admitModelRoutes(app, admission) {
  app.addHook("onRoute", (route) => {
    if (!MODEL_ROUTES.includes(route.url) || ![route.method].flat().includes("POST")) return;
    route.onRequest = [admission.onRequest, ...[route.onRequest ?? []].flat()];
  });
}

/** Seconds a shed caller is told to wait: HTTP's Retry-After is whole seconds, 1 is the least. */
export const RETRY_AFTER_S = 1;

/**
 * One gateway process's admission state. `limit`: in-flight model calls (>= 1); `queue`: requests
 * waiting for a slot (>= 0); `maxWaitMs`: the longest a request may wait in the queue before it is
 * shed after all (the gateway's request timeout).
 */
export class Admission {
  constructor({ limit = DEFAULT_MAX_INFLIGHT, queue = DEFAULT_MAX_QUEUE, maxWaitMs = 600000 } = {}) {
    if (!Number.isInteger(limit) || limit < 1) throw new TypeError(`admission limit must be an integer >= 1, got ${limit}`);
    if (!Number.isInteger(queue) || queue < 0) throw new TypeError(`admission queue must be an integer >= 0, got ${queue}`);
    this.limit = limit;
    this.queueLimit = queue;
    this.maxWaitMs = maxWaitMs;
    this.inflight = 0;
    this.waiting = []; // FIFO of {resolve, reject, timer, gone}; gone entries are skipped
    this.head = 0; // index of the oldest entry not yet taken (avoids Array.shift on a long queue)
    this.queued = 0; // live entries in `waiting`
    this.shed = 0; // requests answered 503 overloaded, for /health
    this.shedSinceLog = 0;
    this.lastShedLog = -Infinity;
    this.closed = false;
    this.onRequest = this.onRequest.bind(this);
  }

  /** Counters for /health. */
  stats() {
    return { inflight: this.inflight, queued: this.queued, limit: this.limit, queue_limit: this.queueLimit, shed: this.shed };
  }

  overloadedError() {
    this.shed += 1;
    return new GatewayError(
      "overloaded",
      `the gateway is at capacity (${this.limit} model calls in flight, ${this.queued} waiting); ` +
        `retry after ${RETRY_AFTER_S} s, or raise AIIPYTHON_GATEWAY_MAX_INFLIGHT / AIIPYTHON_GATEWAY_MAX_QUEUE`,
      { retry_after: RETRY_AFTER_S },
    );
  }

  /**
   * Take a slot now, or a place in the queue. Returns a promise of a release function (call it
   * once when the call is over) that rejects with 503 overloaded when the queue is full or the
   * wait runs out, and with 503 shutting_down after close(). The promise's `cancel()` takes a
   * waiting request out of the queue (the client went away) without it ever holding a slot.
   */
  acquire() {
    let pending;
    if (this.closed) pending = Promise.reject(new GatewayError("shutting_down", "the gateway is shutting down"));
    else if (this.inflight < this.limit && this.queued === 0) pending = Promise.resolve(this.grant());
    else if (this.queued >= this.queueLimit) pending = Promise.reject(this.overloadedError());
    else {
      const entry = { resolve: null, reject: null, timer: null, gone: false };
      pending = new Promise((resolve, reject) => {
        entry.resolve = resolve;
        entry.reject = reject;
      });
      entry.timer = setTimeout(() => {
        this.drop(entry);
        entry.reject(this.overloadedError());
      }, this.maxWaitMs);
      this.waiting.push(entry);
      this.queued += 1;
      pending.cancel = () => this.drop(entry);
    }
    pending.cancel ??= () => {};
    return pending;
  }

  /** Remove a waiting entry (client gone, wait over) without granting it. */
  drop(entry) {
    if (entry.gone) return;
    entry.gone = true;
    this.queued -= 1;
    clearTimeout(entry.timer);
    this.compact();
  }

  compact() {
    while (this.head < this.waiting.length && this.waiting[this.head].gone) this.head += 1;
    if (this.head === this.waiting.length) {
      this.waiting.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.waiting.length) {
      this.waiting = this.waiting.slice(this.head);
      this.head = 0;
    }
  }

  grant() {
    this.inflight += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.inflight -= 1;
      this.next();
    };
  }

  /** Hand free slots to the oldest waiters, in arrival order. */
  next() {
    while (this.inflight < this.limit && this.queued > 0) {
      const entry = this.waiting[this.head];
      this.drop(entry); // the head is always live: compact() skips gone entries
      entry.resolve(this.grant());
    }
  }

  /** Refuse every waiter (shutdown); later acquire() calls fail with shutting_down. */
  close() {
    this.closed = true;
    for (let i = this.head; i < this.waiting.length; i++) {
      const entry = this.waiting[i];
      if (entry.gone) continue;
      entry.gone = true;
      clearTimeout(entry.timer);
      entry.reject(new GatewayError("shutting_down", "the gateway is shutting down"));
    }
    this.waiting = [];
    this.head = 0;
    this.queued = 0;
  }

  /**
   * Fastify route-level onRequest hook: wait for a slot (before the body is read, so a shed costs
   * no parsing), release it when the response closes. A shed is answered here with `Retry-After`.
   */
  async onRequest(request, reply) {
    const res = reply.raw;
    const pending = this.acquire();
    res.once("close", pending.cancel);
    let release;
    try {
      release = await pending;
    } catch (err) {
      if (res.destroyed) return reply.hijack();
      return shed(this, request, reply, err);
    } finally {
      res.off("close", pending.cancel);
    }
    if (res.destroyed) {
      release(); // the client left while its slot was being granted
      return reply.hijack();
    }
    res.once("close", release);
  }
}

/** Log line for sheds: at most one a second (a line per shed would add load when there is too much). */
const SHED_LOG_EVERY_MS = 1000;

function shed(admission, request, reply, err) {
  if (err.type === "overloaded") {
    const now = performance.now();
    admission.shedSinceLog += 1;
    if (now - admission.lastShedLog >= SHED_LOG_EVERY_MS) {
      const since = admission.shedSinceLog;
      request.server.gateway?.logger?.warn({ event: "overloaded", ...admission.stats(), shed_since_last_line: since });
      admission.shedSinceLog = 0;
      admission.lastShedLog = now;
    }
  } else if (request.gw) {
    request.gw.errorType = err.type;
  }
  if (err.extra?.retry_after !== undefined) reply.header("retry-after", String(err.extra.retry_after));
  return reply.code(err.statusCode).send(envelopeFor(request, err));
}

/** The admission limits for one process from the gateway's settings, split across `workers`. */
export function admissionFor({ maxInflight = DEFAULT_MAX_INFLIGHT, maxQueue = DEFAULT_MAX_QUEUE, workers = 1, maxWaitMs } = {}) {
  return new Admission({
    limit: Math.max(1, Math.ceil(maxInflight / workers)),
    queue: Math.ceil(maxQueue / workers),
    maxWaitMs,
  });
}
