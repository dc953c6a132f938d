// POST /v1/responses over pi (docs/openai.md "Responses"): a `response` object, or with
// `"stream": true` the official event sequence (response.created, response.in_progress, items
// with their content parts and deltas, response.completed / response.incomplete). Nothing is
// stored. A failure before any content is an ordinary error response (OpenAI envelope); after
// content it is a final `response.failed` event carrying the error.

import { RESPONSES_OPTION_NAMES, ResponseEvents, convertResponses, finalStatus, outputItems, parseResponsesRequest, responseObject, responsesUsage } from "../../convert_responses.mjs";
import { newId, v1Error } from "../../convert_openai.mjs";
import { GatewayError } from "../../errors.mjs";
import { PiCaller, upstreamKey } from "../../pi_call.mjs";
import { SseWriter, sseFrame } from "../../sse.mjs";

export default async function responseRoutes(app, { adapter, timeoutMs, state }) {
  const pi = new PiCaller({ adapter, state, timeoutMs });

  app.post("/v1/responses", async (request, reply) => {
    const req = parseResponsesRequest(request.body);
    const apiKey = upstreamKey(request);
    const model = await pi.resolve(request, req.model);
    const { context, options, toolNames } = convertResponses(req.native, model);
    let prepared;
    try {
      prepared = pi.prepare(model, context, options, toolNames, { apiKey });
    } catch (err) {
      throw v1Error(err, RESPONSES_OPTION_NAMES);
    }
    const meta = { id: newId("resp_"), createdAt: Math.floor(Date.now() / 1000), model: `${model.provider}/${model.id}`, echo: req.echo };
    if (!req.stream) {
      const { message, gone } = await pi.complete(request, prepared);
      if (gone) return reply.hijack();
      return responseObject({ ...meta, status: finalStatus(message.stopReason), output: outputItems(message), usage: responsesUsage(message.usage) });
    }

    const started = await pi.start(request, prepared);
    const { call, events } = started;
    const sse = new SseWriter(reply);
    const out = new ResponseEvents(meta);
    let sequence = 0;
    const send = (list) => {
      let pending = null;
      for (const [type, data] of list) pending = sse.write(sseFrame(type, { type, sequence_number: sequence++, ...data })) ?? pending;
      return pending;
    };
    try {
      for await (const ev of events) {
        if (sse.closed) break;
        if (ev.type === "start") continue; // headers go out with the first content
        if (ev.type === "error") {
          const err = pi.failure(ev.error, model, started);
          if (!sse.opened) {
            if (call.reason === "client") return reply.hijack();
            throw err;
          }
          request.gw.errorType = err.type;
          send(out.failed(err, ev.error));
          break;
        }
        const first = !sse.opened;
        if (first) {
          sse.open();
          send(out.opening());
        }
        if (ev.type === "done") {
          send(out.done(ev.message));
          break;
        }
        const pending = send(out.next(ev));
        if (first) sse.flush();
        if (pending) await pending;
      }
      if (!sse.opened) {
        if (call.reason === "client") return reply.hijack();
        throw new GatewayError("upstream_error", "the upstream call ended without an answer");
      }
    } finally {
      call.finish();
    }
    sse.end();
    return reply;
  });
}
