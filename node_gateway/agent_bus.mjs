// The agent message bus's store (docs/protocol.md "Agent message bus"): one mailbox per agent id,
// in memory only (gone when the gateway stops), bounded per message, per mailbox and in total.
// Over a bound a post is refused (413 / 429 with Retry-After); nothing is ever dropped silently.
// A read with `after=<id>` returns the messages newer than <id> and frees every message up to
// and including <id> (the reader has them), which is what makes room in a mailbox again.
// A read may wait (long poll, bounded) until a message arrives.
//
// With cluster workers the store lives in the primary and workers reach it over IPC
// (RemoteAgentBus, serveAgentBus), so a message posted on one worker is read on any other.
// Both classes have the same async interface: post(fields) and read(query, {signal}).

import { MAX_DEPTH, tooDeep } from "./convert.mjs";

/** Bounds (defaults; docs/protocol.md). */
export const BUS_LIMITS = Object.freeze({
  messageBytes: 65536, // content + metadata, as UTF-8 JSON
  perAgent: 1000, // unread messages one mailbox holds
  totalBytes: 32 * 1048576, // every mailbox together
  agents: 10000, // mailboxes (ids with unread messages or a waiting reader)
  waitersPerAgent: 16,
  waiters: 1024,
  maxWaitS: 30,
  maxLimit: 1000,
  defaultLimit: 100,
  idLength: 128,
});

/** Agent ids: 1-128 characters of letters, digits and `_ . : @ -` (they go into URL paths). */
export const AGENT_ID = /^[A-Za-z0-9_.:@-]{1,128}$/;
const MESSAGE_ID = /^msg_([0-9]{1,15})$/;
const RETRY_AFTER_S = 1;

/** A refusal: `type` is a gateway error type (errors.mjs), `param` names the field. */
export class BusError extends Error {
  constructor(type, message, { param = null, retryAfter } = {}) {
    super(message);
    this.name = "BusError";
    this.type = type;
    this.param = param;
    this.retryAfter = retryAfter;
  }

  toJSON() {
    return { type: this.type, message: this.message, param: this.param, retryAfter: this.retryAfter };
  }

  static fromJSON(obj) {
    return new BusError(obj.type, obj.message, { param: obj.param, retryAfter: obj.retryAfter });
  }
}

const bad = (param, message) => new BusError("invalid_request", `${param} ${message}`, { param });

function checkAgentId(value, param) {
  if (typeof value !== "string") throw bad(param, "must be a string (an agent id)");
  if (!AGENT_ID.test(value)) {
    throw bad(param, `must be 1-${BUS_LIMITS.idLength} characters of letters, digits and _ . : @ - (got ${JSON.stringify(value.slice(0, 40))}${value.length > 40 ? "..." : ""})`);
  }
}

function isPlainObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/**
 * Check a post body: {from, to, content, metadata?}, nothing else. `content`: a string;
 * `metadata`: an object (any JSON inside), or null. Throws BusError naming the field.
 */
export function validatePost(body, limits = BUS_LIMITS) {
  if (!isPlainObject(body)) throw new BusError("invalid_request", "the body must be a JSON object {from, to, content, metadata?}", { param: null });
  for (const key of Object.keys(body)) {
    if (!["from", "to", "content", "metadata"].includes(key)) throw bad(key, "is not a known field (from, to, content, metadata)");
  }
  for (const key of ["from", "to", "content"]) {
    if (body[key] === undefined) throw bad(key, "is required");
  }
  checkAgentId(body.from, "from");
  checkAgentId(body.to, "to");
  if (typeof body.content !== "string") throw bad("content", `must be a string, got ${body.content === null ? "null" : Array.isArray(body.content) ? "array" : typeof body.content}`);
  if (body.metadata !== undefined && body.metadata !== null && !isPlainObject(body.metadata)) {
    throw bad("metadata", "must be an object");
  }
  if (tooDeep(body) !== null) throw bad("metadata", `nests arrays/objects deeper than ${MAX_DEPTH} levels`);
  const bytes = Buffer.byteLength(body.content, "utf8") + (body.metadata ? Buffer.byteLength(JSON.stringify(body.metadata), "utf8") : 0);
  if (bytes > limits.messageBytes) {
    throw new BusError("request_too_large", `content and metadata are ${bytes} bytes; a message holds at most ${limits.messageBytes}`, {
      param: body.metadata && Buffer.byteLength(body.content, "utf8") <= limits.messageBytes ? "metadata" : "content",
    });
  }
  return bytes;
}

/** Check a read query: {agent_id, after?, wait?, limit?} (strings from the URL, or numbers). */
export function validateRead({ agentId, after, wait, limit }, limits = BUS_LIMITS) {
  checkAgentId(agentId, "agent_id");
  let afterSeq = 0;
  if (after !== undefined && after !== "") {
    const m = typeof after === "string" ? MESSAGE_ID.exec(after) : null;
    if (!m) throw bad("after", `must be a message id such as "msg_12" (got ${JSON.stringify(String(after).slice(0, 40))})`);
    afterSeq = Number(m[1]);
  }
  const number = (value, name, min, max, fallback, integer) => {
    if (value === undefined || value === "") return fallback;
    const n = typeof value === "number" ? value : Number(value);
    if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max) {
      throw bad(name, `must be ${integer ? "an integer" : "a number of seconds"} from ${min} to ${max} (got ${JSON.stringify(String(value).slice(0, 40))})`);
    }
    return n;
  };
  return {
    agentId,
    afterSeq,
    waitS: number(wait, "wait", 0, limits.maxWaitS, 0, false),
    limit: number(limit, "limit", 1, limits.maxLimit, limits.defaultLimit, true),
  };
}

/** The in-process store (one gateway process, or the primary of a cluster group). */
export class AgentBus {
  constructor(limits = {}) {
    this.limits = { ...BUS_LIMITS, ...limits };
    this.seq = 0;
    this.mailboxes = new Map(); // agent id -> {messages: [{seq, bytes, message}], waiters: Set}
    this.totalBytes = 0;
    this.waiterCount = 0;
    this.closed = false;
  }

  /** Counters for /health. */
  stats() {
    let messages = 0;
    for (const box of this.mailboxes.values()) messages += box.messages.length;
    return { mailboxes: this.mailboxes.size, messages, bytes: this.totalBytes, waiting_readers: this.waiterCount };
  }

  mailbox(agentId, create) {
    let box = this.mailboxes.get(agentId);
    if (!box && create) {
      if (this.mailboxes.size >= this.limits.agents) {
        throw new BusError("mailbox_full", `the bus holds mailboxes for ${this.limits.agents} agents; read (acknowledge) messages to free some, retry after ${RETRY_AFTER_S} s`, { param: "to", retryAfter: RETRY_AFTER_S });
      }
      box = { messages: [], waiters: new Set() };
      this.mailboxes.set(agentId, box);
    }
    return box;
  }

  forget(agentId, box) {
    if (box.messages.length === 0 && box.waiters.size === 0) this.mailboxes.delete(agentId);
  }

  /** Store one message; returns it ({id, object, created, from, to, content, metadata}). */
  async post(body) {
    if (this.closed) throw new BusError("shutting_down", "the gateway is shutting down");
    const bytes = validatePost(body, this.limits);
    const box = this.mailbox(body.to, false);
    if ((box?.messages.length ?? 0) >= this.limits.perAgent) {
      throw new BusError("mailbox_full", `agent ${body.to} has ${this.limits.perAgent} unread messages (the most a mailbox holds); it frees them by reading with after=<last id>. Retry after ${RETRY_AFTER_S} s`, { param: "to", retryAfter: RETRY_AFTER_S });
    }
    if (this.totalBytes + bytes > this.limits.totalBytes) {
      throw new BusError("mailbox_full", `the bus holds ${this.totalBytes} bytes of unread messages (at most ${this.limits.totalBytes}); retry after ${RETRY_AFTER_S} s`, { param: "content", retryAfter: RETRY_AFTER_S });
    }
    const target = box ?? this.mailbox(body.to, true);
    const seq = ++this.seq;
    const message = {
      id: `msg_${seq}`,
      object: "agent.message",
      created: Math.floor(Date.now() / 1000),
      from: body.from,
      to: body.to,
      content: body.content,
      metadata: body.metadata ?? null,
    };
    target.messages.push({ seq, bytes, message });
    this.totalBytes += bytes;
    for (const waiter of [...target.waiters]) waiter.wake();
    return message;
  }

  /** Messages after the cursor, oldest first, at most `limit`; frees those up to the cursor. */
  take(box, afterSeq, limit) {
    let freed = 0;
    while (freed < box.messages.length && box.messages[freed].seq <= afterSeq) {
      this.totalBytes -= box.messages[freed].bytes;
      freed += 1;
    }
    if (freed) box.messages.splice(0, freed);
    const data = box.messages.slice(0, limit).map((m) => m.message);
    return { data, has_more: box.messages.length > limit };
  }

  /**
   * Read an agent's mailbox: `query` {agentId, after, wait, limit} as validateRead takes it.
   * Answers at once when there are messages after the cursor (or wait is 0), else when one
   * arrives, the wait is over (an empty list), the bus closes or `signal` aborts (empty list).
   * Returns {object: "list", data, has_more, last_id}.
   */
  async read(query, { signal } = {}) {
    const { agentId, afterSeq, waitS, limit } = validateRead(query, this.limits);
    const answer = (result) => ({ object: "list", data: result.data, has_more: result.has_more, last_id: result.data.at(-1)?.id ?? null });
    let box = this.mailbox(agentId, false);
    if (box) {
      const result = this.take(box, afterSeq, limit);
      if (result.data.length || waitS === 0 || this.closed) {
        this.forget(agentId, box);
        return answer(result);
      }
    } else if (waitS === 0 || this.closed) {
      return answer({ data: [], has_more: false });
    }
    if (this.waiterCount >= this.limits.waiters || (box?.waiters.size ?? 0) >= this.limits.waitersPerAgent) {
      throw new BusError("mailbox_full", `too many readers are waiting (${this.limits.waitersPerAgent} per agent, ${this.limits.waiters} in all); retry after ${RETRY_AFTER_S} s or read with wait=0`, { param: "wait", retryAfter: RETRY_AFTER_S });
    }
    box ??= this.mailbox(agentId, true);
    const target = box;
    await new Promise((resolve) => {
      const waiter = {
        wake: () => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", waiter.wake);
          if (target.waiters.delete(waiter)) this.waiterCount -= 1;
          resolve();
        },
      };
      const timer = setTimeout(waiter.wake, waitS * 1000);
      target.waiters.add(waiter);
      this.waiterCount += 1;
      signal?.addEventListener("abort", waiter.wake, { once: true });
      if (signal?.aborted) waiter.wake();
    });
    const result = this.take(target, afterSeq, limit);
    this.forget(agentId, target);
    return answer(result);
  }

  /** Shutdown: wake every waiting reader (they get what is there, usually nothing); refuse posts. */
  close() {
    this.closed = true;
    for (const box of this.mailboxes.values()) for (const waiter of [...box.waiters]) waiter.wake();
  }
}

// ---- cluster: the store in the primary, workers over IPC ----------------------------------

/**
 * In a cluster worker: the AgentBus interface, answered by the primary's store. `channel` is the
 * worker's `process` (send / on("message")).
 */
export class RemoteAgentBus {
  constructor(channel = process) {
    this.channel = channel;
    this.seq = 0;
    this.pending = new Map();
    channel.on("message", (msg) => {
      if (msg?.type !== "bus_reply") return;
      const entry = this.pending.get(msg.id);
      if (!entry) return;
      this.pending.delete(msg.id);
      if (msg.error) entry.reject(BusError.fromJSON(msg.error));
      else entry.resolve(msg.result);
    });
    channel.on("disconnect", () => {
      for (const entry of this.pending.values()) entry.reject(new BusError("shutting_down", "the gateway is shutting down (this worker lost its primary)"));
      this.pending.clear();
    });
  }

  call(op, args, signal) {
    const id = `${process.pid}-${++this.seq}`;
    return new Promise((resolve, reject) => {
      if (!this.channel.connected) {
        reject(new BusError("shutting_down", "the gateway is shutting down (this worker lost its primary)"));
        return;
      }
      const onAbort = () => this.channel.connected && this.channel.send({ type: "bus_cancel", id });
      const settle = (fn) => (value) => {
        signal?.removeEventListener("abort", onAbort);
        fn(value);
      };
      this.pending.set(id, { resolve: settle(resolve), reject: settle(reject) });
      signal?.addEventListener("abort", onAbort, { once: true });
      this.channel.send({ type: "bus_call", id, op, args });
    });
  }

  async post(body) {
    validatePost(body); // refused here already: no IPC round trip for a bad request
    return this.call("post", [body]);
  }

  async read(query, { signal } = {}) {
    validateRead(query);
    return this.call("read", [query], signal);
  }

  /** Shutdown of this worker: the primary's store stays (other workers still use it). */
  close() {}
}

/**
 * In the primary: answer the workers' bus calls from one AgentBus. `cluster` is node:cluster.
 * Returns the store (the primary closes it when the group stops).
 */
export function serveAgentBus(cluster, bus = new AgentBus()) {
  const cancels = new Map(); // call id -> AbortController of a waiting read
  cluster.on("message", async (worker, msg) => {
    if (msg?.type === "bus_cancel") {
      cancels.get(msg.id)?.abort();
      return;
    }
    if (msg?.type !== "bus_call") return;
    const controller = new AbortController();
    cancels.set(msg.id, controller);
    const onExit = () => controller.abort();
    worker.once("exit", onExit);
    let reply;
    try {
      const [arg] = msg.args;
      if (msg.op !== "post" && msg.op !== "read") throw new BusError("internal_error", `unknown agent bus call ${msg.op}`);
      const result = msg.op === "post" ? await bus.post(arg) : await bus.read(arg, { signal: controller.signal });
      reply = { type: "bus_reply", id: msg.id, result };
    } catch (err) {
      const error = err instanceof BusError ? err.toJSON() : { type: "internal_error", message: "agent bus error in the gateway's primary" };
      reply = { type: "bus_reply", id: msg.id, error };
    } finally {
      cancels.delete(msg.id);
      worker.off("exit", onExit);
    }
    if (worker.isConnected()) worker.send(reply);
  });
  return bus;
}
