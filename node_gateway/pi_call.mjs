// One pi call, for every model route (/lm/* and /v1/*): resolve the model name (shorthand ids,
// the ambiguity error), turn the route's options into pi's, check credentials, start pi's stream
// under an abort controller (the timeout, a client that goes away and shutdown abort it), and
// classify a failed message (pi's stopReason "error" | "aborted") into the error table.

import { addSecret, classifyFailure, GatewayError, invalid } from "./errors.mjs";
import { SseWriter } from "./sse.mjs";

/** One upstream call's lifetime: timeout timer, abort reason, membership of the in-flight set. */
export class Call {
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

/** The error for a call the gateway aborted before pi started (client gone: nobody reads it). */
function abortedError(call) {
  if (call.reason === "timeout") {
    return new GatewayError("upstream_timeout", `no complete answer within ${call.timeoutMs} ms (waiting for credentials)`);
  }
  if (call.reason === "shutdown") return new GatewayError("shutting_down", "the gateway is shutting down");
  return new GatewayError("upstream_error", "the client closed the connection");
}

/** The header that overrides the upstream API key for one request (a secret: never echoed). */
export const UPSTREAM_KEY_HEADER = "x-pi-upstream-api-key";

/** The `X-Pi-Upstream-Api-Key` value of a request, registered as a secret; undefined when absent. */
export function upstreamKey(request) {
  const value = request.headers[UPSTREAM_KEY_HEADER];
  if (value === undefined) return undefined;
  if (typeof value !== "string" || value.trim().length === 0) {
    throw invalid("the X-Pi-Upstream-Api-Key header must be one non-empty API key", { param: "X-Pi-Upstream-Api-Key" });
  }
  const key = value.trim();
  addSecret(key);
  return key;
}

/** pi calls for the routes of one app: `adapter`, the app's state (in-flight set, shutdown) and default timeout. */
export class PiCaller {
  constructor({ adapter, state, timeoutMs }) {
    this.adapter = adapter;
    this.state = state;
    this.defaultTimeoutMs = timeoutMs;
  }

  /** `provider/id` or a unique bare id -> pi Model (404 model_not_found, 400 ambiguous_model). */
  async resolve(request, name) {
    const model = await this.adapter.resolve(name);
    request.gw.model = `${model.provider}/${model.id}`;
    return model;
  }

  /**
   * Everything a call needs, checked before anything is sent upstream. `options` are the native
   * protocol's (convert.mjs); `apiKey` overrides pi's credentials for this call.
   */
  prepare(model, context, options, toolNames, { apiKey } = {}) {
    const { options: piOptions, usesFetch } = this.adapter.callOptions(model, options, toolNames);
    if (apiKey !== undefined) piOptions.apiKey = apiKey;
    return { model, context, piOptions, usesFetch, apiKey, timeoutMs: options.timeout_ms ?? this.defaultTimeoutMs };
  }

  /**
   * Resolve `name`, convert the route's request with `convert(model)` -> `{context, options,
   * toolNames}` and prepare the call: what every model route does before anything is sent
   * upstream. `mapError` rewrites a refused option into the route's own wording (the /v1 names).
   */
  async prepareRequest(request, name, convert, { apiKey = undefined, mapError = (err) => err } = {}) {
    const model = await this.resolve(request, name);
    const { context, options, toolNames } = convert(model);
    try {
      return this.prepare(model, context, options, toolNames, { apiKey });
    } catch (err) {
      throw mapError(err);
    }
  }

  /** Start the call's clock, check credentials (403 if none), then start pi's stream. */
  async start(request, prepared) {
    if (this.state.shuttingDown) throw new GatewayError("shutting_down", "the gateway is shutting down");
    const call = new Call(this.state.inflight, prepared.timeoutMs);
    request.gw.call = call;
    if (prepared.apiKey === undefined) {
      try {
        await this.adapter.ensureAuth(prepared.model, call.signal);
      } catch (err) {
        call.finish();
        throw call.reason ? abortedError(call) : err;
      }
    }
    const { events, wire } = this.adapter.stream(prepared.model, prepared.context, prepared.piOptions, {
      signal: call.signal,
      timeoutMs: prepared.timeoutMs,
      usesFetch: prepared.usesFetch,
    });
    return { call, events, wire, model: prepared.model, t0: performance.now() };
  }

  /**
   * Wait for pi's final message; a failed one (or none) throws the classified GatewayError.
   * `gone` is true when the client went away (nobody to answer: the route hijacks the reply).
   */
  async complete(request, prepared) {
    const started = await this.start(request, prepared);
    let message;
    try {
      message = await started.events.result();
    } finally {
      started.call.finish();
    }
    if (started.call.reason === "client") return { ...started, message, gone: true };
    if (!message || message.stopReason === "error" || message.stopReason === "aborted") {
      throw this.failure(message, prepared.model, started);
    }
    return { ...started, message, gone: false };
  }

  /** A failed pi message (+ what the call saw on the wire) -> GatewayError from the one table. */
  failure(message, model, { call, wire }) {
    return classifyFailure(message, {
      abortReason: call.reason,
      timeoutMs: call.timeoutMs,
      upstreamStatus: wire.status,
      retryAfter: wire.retryAfter,
      retryAfterMs: wire.retryAfterMs,
      overflow: message?.stopReason === "error" && this.adapter.isOverflow(message, model),
      notConfiguredMessage: () => this.adapter.notConfiguredMessage(model.provider),
    });
  }
  /**
   * Stream a started call to the client as SSE: the one event loop of every streaming route.
   * `frames` turns pi's events into the route's serialised frames (arrays of strings):
   * `opening()` before the first content (headers and pi's start event leave with it), `next(ev)`
   * per content event, `done(ev)` at the end, `failed(err, ev)` for a failure after content.
   * A failure before any content, or a stream that ends without done/error, throws the classified
   * GatewayError (an ordinary error response); a client that went away gets nothing (hijack).
   */
  async pump(request, reply, started, frames) {
    const { call, events } = started;
    const model = started.model;
    const sse = new SseWriter(reply);
    let begun = false; // pi's start event seen (held back: it goes out with the first content)
    let contentSent = false; // the first delta has been flushed
    const writeAll = (list) => {
      let pending = null;
      for (const frame of list) pending = sse.write(frame) ?? pending;
      return pending;
    };
    try {
      for await (const ev of events) {
        if (sse.closed) break;
        if (ev.type === "start") {
          begun = true;
          continue;
        }
        if (ev.type === "error") {
          const err = this.failure(ev.error, model, started);
          if (!sse.opened) {
            if (call.reason === "client") return reply.hijack();
            throw err;
          }
          request.gw.errorType = err.type;
          writeAll(frames.failed(err, ev));
          break;
        }
        let pending = null;
        if (!sse.opened) {
          sse.open();
          pending = writeAll(frames.opening());
        }
        if (ev.type === "done") {
          writeAll(frames.done(ev));
          break;
        }
        pending = writeAll(frames.next(ev)) ?? pending;
        // Headers, the opening frames, the block's start and its first delta leave in one socket
        // write the moment that delta exists (time to first token); later bursts wait for the
        // next tick to share one write.
        if (!contentSent && ev.type.endsWith("_delta")) {
          contentSent = true;
          sse.flush();
        }
        if (pending) await pending;
      }
      if (!sse.opened) {
        // pi ended the stream without done/error (should not happen): say so truthfully
        if (call.reason === "client") return reply.hijack();
        throw new GatewayError("upstream_error", begun ? "the upstream stream ended early" : "the upstream call produced no events");
      }
    } finally {
      call.finish();
    }
    sse.end();
    return reply;
  }
}
