// POST /v1/responses over pi (docs/openai.md "Responses"): a `response` object, or with
// `"stream": true` the official event sequence (response.created, response.in_progress, items
// with their content parts and deltas, response.completed / response.incomplete). Nothing is
// stored. A failure before any content is an ordinary error response (OpenAI envelope); after
// content it is a final `response.failed` event carrying the error.

import { RESPONSES_OPTION_NAMES, ResponseEvents, convertResponses, finalStatus, outputItems, parseResponsesRequest, responseObject, responsesUsage } from "../../convert_responses.mjs";
import { newId, v1Error } from "../../convert_openai.mjs";
import { PiCaller, upstreamKey } from "../../pi_call.mjs";
import { sseFrame } from "../../sse.mjs";

export default async function responseRoutes(app, { adapter, timeoutMs, state }) {
  const pi = new PiCaller({ adapter, state, timeoutMs });

  app.post("/v1/responses", async (request, reply) => {
    const req = parseResponsesRequest(request.body);
    const prepared = await pi.prepareRequest(request, req.model, (model) => convertResponses(req.native, model), {
      apiKey: upstreamKey(request),
      mapError: (err) => v1Error(err, RESPONSES_OPTION_NAMES),
    });
    const { model } = prepared;
    const meta = { id: newId("resp_"), createdAt: Math.floor(Date.now() / 1000), model: `${model.provider}/${model.id}`, echo: req.echo };
    if (!req.stream) {
      const { message, gone } = await pi.complete(request, prepared);
      if (gone) return reply.hijack();
      return responseObject({ ...meta, status: finalStatus(message.stopReason), output: outputItems(message), usage: responsesUsage(message.usage) });
    }

    const started = await pi.start(request, prepared);
    const out = new ResponseEvents(meta);
    let sequence = 0;
    const frames = (list) => list.map(([type, data]) => sseFrame(type, { type, sequence_number: sequence++, ...data }));
    return pi.pump(request, reply, started, {
      opening: () => frames(out.opening()),
      next: (ev) => frames(out.next(ev)),
      done: (ev) => frames(out.done(ev.message)),
      failed: (err, ev) => frames(out.failed(err, ev.error)),
    });
  });
}
