// POST /lm/complete and POST /lm/stream: one pi call each (docs/protocol.md).
// A failed pi call (stopReason "error" | "aborted") is never a 200: before any content it is an
// ordinary error response; after content has been streamed it is a final `error` frame.
// Every call has an abort controller: the timeout, a client that goes away and shutdown abort it.

import { classifyFailure, envelope, GatewayError, redact } from "../errors.mjs";
import { convertRequest, eventData, requestModelName, sseFrame } from "../convert.mjs";

const bodySchema = {
  type: "object",
  required: ["model", "messages"],
  properties: {
    model: { type: "string", minLength: 1 },
    messages: { type: "array" },
    tools: { type: ["array", "null"] },
    options: { type: ["object", "null"] },
  },
};

const SSE_HEADERS = { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" };

/** One upstream call's lifetime: timeout timer, abort reason, membership of the in-flight set. */
class Call {
  constructor(inflight, timeoutMs) {
    this.inflight = inflight;
    this.timeoutMs = timeoutMs;
    this.controller = new AbortController();
    this.reason = undefined;
    this.finished = false;
    this.timer = setTimeout(() => this.abort("timeout"), timeoutMs);
    inflight.add(this);
  }

  get signal() {
    return this.controller.signal;
  }

  abort(reason) {
    if (this.finished || this.reason !== undefined) return;
    this.reason = reason;
    this.controller.abort();
  }

  finish() {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.timer);
    this.inflight.delete(this);
  }
}

const round = (ms) => Math.round(ms * 10) / 10;

/** The error for a call the gateway aborted before pi started (client gone: nobody reads it). */
function abortedError(call) {
  if (call.reason === "timeout") {
    return new GatewayError("upstream_timeout", `no complete answer within ${call.timeoutMs} ms (waiting for credentials)`);
  }
  if (call.reason === "shutdown") return new GatewayError("shutting_down", "the gateway is shutting down");
  return new GatewayError("upstream_error", "the client closed the connection");
}

export default async function lmRoutes(app, { adapter, timeoutMs: defaultTimeoutMs, state }) {
  /** Validate, resolve and convert; nothing is sent upstream before this passes. */
  async function prepare(request) {
    const name = requestModelName(request.body);
    const model = await adapter.resolve(name);
    request.gw.model = `${model.provider}/${model.id}`;
    const { context, options, toolNames } = convertRequest(request.body, model);
    const { options: piOptions, usesFetch } = adapter.callOptions(model, options, toolNames);
    return { model, context, piOptions, usesFetch, timeoutMs: options.timeout_ms ?? defaultTimeoutMs };
  }

  /** Start the call's clock, check credentials (403 if none), then start pi's stream. */
  async function start(request, prepared) {
    if (state.shuttingDown) throw new GatewayError("shutting_down", "the gateway is shutting down");
    const call = new Call(state.inflight, prepared.timeoutMs);
    request.gw.call = call;
    try {
      await adapter.ensureAuth(prepared.model, call.signal);
    } catch (err) {
      call.finish();
      throw call.reason ? abortedError(call) : err;
    }
    const { events, wire } = adapter.stream(prepared.model, prepared.context, prepared.piOptions, {
      signal: call.signal,
      timeoutMs: prepared.timeoutMs,
      usesFetch: prepared.usesFetch,
    });
    return { call, events, wire, t0: performance.now() };
  }

  function failure(message, model, call, wire) {
    return classifyFailure(message, {
      abortReason: call.reason,
      timeoutMs: call.timeoutMs,
      upstreamStatus: wire.status,
      retryAfter: wire.retryAfter,
      retryAfterMs: wire.retryAfterMs,
      overflow: message?.stopReason === "error" && adapter.isOverflow(message, model),
      notConfiguredMessage: () => adapter.notConfiguredMessage(model.provider),
    });
  }

  app.post("/lm/complete", { schema: { body: bodySchema } }, async (request, reply) => {
    const prepared = await prepare(request);
    const { call, events, wire, t0 } = await start(request, prepared);
    let message;
    try {
      message = await events.result();
    } finally {
      call.finish();
    }
    if (call.reason === "client") return reply.hijack(); // nobody to answer
    if (!message || message.stopReason === "error" || message.stopReason === "aborted") {
      throw failure(message, prepared.model, call, wire);
    }
    return {
      message,
      model: { provider: prepared.model.provider, id: prepared.model.id },
      duration_ms: round(performance.now() - t0),
    };
  });

  app.post("/lm/stream", { schema: { body: bodySchema } }, async (request, reply) => {
    const prepared = await prepare(request);
    const { model } = prepared;
    const { call, events, wire, t0 } = await start(request, prepared);
    const res = reply.raw;
    let open = false; // headers sent
    let started = false; // the start frame written (or pending until the first content)

    // Frames produced from one upstream chunk leave in one socket write: cork on the first
    // write, uncork once the current burst of events has been handled (next tick).
    let corked = false;
    const uncork = () => {
      if (!corked) return;
      corked = false;
      if (!res.destroyed) res.uncork();
    };
    const write = (chunk) => {
      if (res.destroyed) return null;
      if (!corked) {
        corked = true;
        res.cork();
        process.nextTick(uncork);
      }
      return res.write(chunk) ? null : waitDrain(res);
    };
    const openStream = () => {
      reply.hijack();
      res.writeHead(200, SSE_HEADERS);
      open = true;
      return write(sseFrame("start", eventData({ type: "start" }, model)));
    };

    try {
      for await (const ev of events) {
        if (res.destroyed) break;
        const type = ev.type;
        if (type === "start") {
          started = true; // held back: headers go out with the first content (protocol.md)
          continue;
        }
        if (type === "error") {
          const err = failure(ev.error, model, call, wire);
          if (!open) {
            if (call.reason === "client") return reply.hijack();
            throw err;
          }
          request.gw.errorType = err.type;
          const partial = ev.error;
          const message = partial?.content?.length ? { ...partial, errorMessage: redact(partial.errorMessage) } : null;
          write(sseFrame("error", { ...envelope(err, request.id), message }));
          break;
        }
        const first = !open;
        if (first) {
          const pending = openStream();
          if (pending) await pending;
        }
        if (type === "done") {
          write(sseFrame("done", { reason: ev.reason, message: ev.message, duration_ms: round(performance.now() - t0) }));
          break;
        }
        const pending = write(sseFrame(type, eventData(ev, model)));
        // Headers, start and the first content frame leave at once (time to first token);
        // later bursts wait for the next tick to share one socket write.
        if (first) uncork();
        if (pending) await pending;
      }
      if (!open) {
        // pi ended the stream without done/error (should not happen): say so truthfully
        if (call.reason === "client") return reply.hijack();
        throw new GatewayError("upstream_error", started ? "the upstream stream ended early" : "the upstream call produced no events");
      }
    } finally {
      call.finish();
    }
    uncork(); // before end(): a finished response drops its socket, which would stay corked
    if (!res.destroyed) res.end();
    return reply;
  });
}

/** Resolve on 'drain' or when the response closes (a closed client must not hang the loop). */
function waitDrain(res) {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}
