// POST /lm/complete and POST /lm/stream: one pi call each (docs/protocol.md).
// A failed pi call (stopReason "error" | "aborted") is never a 200: before any content it is an
// ordinary error response; after content has been streamed it is a final `error` frame.
// The call itself (model, credentials, abort, classification) is pi_call.mjs's; frames go out
// through the shared SSE writer (sse.mjs).

import { convertRequest, eventData, requestModelName } from "../convert.mjs";
import { envelope, redact } from "../errors.mjs";
import { PiCaller } from "../pi_call.mjs";
import { sseFrame } from "../sse.mjs";

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
  const prepare = (request) => pi.prepareRequest(request, requestModelName(request.body), (model) => convertRequest(request.body, model));

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
    const { t0 } = started;
    return pi.pump(request, reply, started, {
      opening: () => [sseFrame("start", eventData({ type: "start" }, model))],
      next: (ev) => [sseFrame(ev.type, eventData(ev, model))],
      done: (ev) => [sseFrame("done", { reason: ev.reason, message: ev.message, duration_ms: round(performance.now() - t0) })],
      failed: (err, ev) => {
        const partial = ev.error;
        const message = partial?.content?.length ? { ...partial, errorMessage: redact(partial.errorMessage) } : null;
        return [sseFrame("error", { ...envelope(err, request.id), message })];
      },
    });
  });
}
