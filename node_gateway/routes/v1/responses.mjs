// POST /v1/responses over pi (docs/openai.md "Responses"): a `response` object, or with
// `"stream": true` the official event sequence (response.created, response.in_progress, items
// with their content parts and deltas, response.completed / response.incomplete). Nothing is
// stored. A failure before any content is an ordinary error response (OpenAI envelope); after
// content it is a final `response.failed` event carrying the error.

import { newId } from "../../convert_openai.mjs";
import { RESPONSES_OPTION_NAMES, ResponseEvents, finalStatus, outputItems, parseResponsesRequest, responseObject, responsesUsage } from "../../convert_responses.mjs";
import { sseFrame } from "../../sse.mjs";
import { modelRoute } from "./model_route.mjs";

export default async function responseRoutes(app, opts) {
  modelRoute(app, opts, "/v1/responses", {
    parse: parseResponsesRequest,
    optionNames: RESPONSES_OPTION_NAMES,
    meta: (req, model) => ({ id: newId("resp_"), createdAt: Math.floor(Date.now() / 1000), model, echo: req.echo }),
    result: (message, meta) =>
      responseObject({ ...meta, status: finalStatus(message.stopReason), output: outputItems(message), usage: responsesUsage(message.usage) }),
    frames(meta) {
      const out = new ResponseEvents(meta);
      let sequence = 0;
      const frames = (list) => list.map(([type, data]) => sseFrame(type, { type, sequence_number: sequence++, ...data }));
      return {
        opening: () => frames(out.opening()),
        next: (ev) => frames(out.next(ev)),
        done: (ev) => frames(out.done(ev.message)),
        failed: (err, ev) => frames(out.failed(err, ev.error)),
      };
    },
  });
}
