// POST /lm/complete and POST /lm/stream: one pi call each (docs/protocol.md).
// A failed pi call (stopReason "error" | "aborted") is never a 200: before any content it is an
// ordinary error response; after content has been streamed it is a final `error` frame.
// The call itself (model, credentials, abort, classification) is pi_call.mjs's; frames go out
// through the shared SSE writer (sse.mjs).

import { convertRequest, eventData, requestModelName } from "../convert.mjs";
import { envelope, GatewayError, redact } from "../errors.mjs";
import { PiCaller } from "../pi_call.mjs";
import { SseWriter, sseFrame } from "../sse.mjs";

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

const round = (ms) => Math.round(ms * 10) / 10;

export default async function lmRoutes(app, { adapter, timeoutMs, state }) {
  const pi = new PiCaller({ adapter, state, timeoutMs });

  /** Validate, resolve and convert; nothing is sent upstream before this passes. */
  async function prepare(request) {
    const model = await pi.resolve(request, requestModelName(request.body));
    const { context, options, toolNames } = convertRequest(request.body, model);
    return pi.prepare(model, context, options, toolNames);
  }

  app.post("/lm/complete", { schema: { body: bodySchema } }, async (request, reply) => {
    const prepared = await prepare(request);
    const { message, t0, gone } = await pi.complete(request, prepared);
    if (gone) return reply.hijack(); // nobody to answer
    return {
      message,
      model: { provider: prepared.model.provider, id: prepared.model.id },
      duration_ms: round(performance.now() - t0),
    };
  });

  app.post("/lm/stream", { schema: { body: bodySchema } }, async (request, reply) => {
    const prepared = await prepare(request);
    const { model } = prepared;
    const started = await pi.start(request, prepared);
    const { call, events, t0 } = started;
    const sse = new SseWriter(reply);
    let begun = false; // pi's start event seen (its frame goes out with the first content)

    try {
      for await (const ev of events) {
        if (sse.closed) break;
        const type = ev.type;
        if (type === "start") {
          begun = true; // held back: headers go out with the first content (protocol.md)
          continue;
        }
        if (type === "error") {
          const err = pi.failure(ev.error, model, started);
          if (!sse.opened) {
            if (call.reason === "client") return reply.hijack();
            throw err;
          }
          request.gw.errorType = err.type;
          const partial = ev.error;
          const message = partial?.content?.length ? { ...partial, errorMessage: redact(partial.errorMessage) } : null;
          sse.write(sseFrame("error", { ...envelope(err, request.id), message }));
          break;
        }
        const first = !sse.opened;
        if (first) {
          sse.open();
          const pending = sse.write(sseFrame("start", eventData({ type: "start" }, model)));
          if (pending) await pending;
        }
        if (type === "done") {
          sse.write(sseFrame("done", { reason: ev.reason, message: ev.message, duration_ms: round(performance.now() - t0) }));
          break;
        }
        const pending = sse.write(sseFrame(type, eventData(ev, model)));
        // Headers, start and the first content frame leave at once (time to first token);
        // later bursts wait for the next tick to share one socket write.
        if (first) sse.flush();
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
  });
}
