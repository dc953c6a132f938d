// One OpenAI-API model route, written once: resolve the model, convert the parsed body to pi's
// context and options (X-Pi-Upstream-Api-Key honoured, 400s naming the API's own fields), then
// answer with one object or stream the API's frames through PiCaller.pump.

import { v1Converter, v1Error } from "../../convert_openai.mjs";
import { PiCaller, upstreamKey } from "../../pi_call.mjs";

/**
 * Register `POST path` for one /v1 API. `api`:
 * - `parse(body)` -> `{model, native, stream, ...}` (400s name the API's fields);
 * - `optionNames`: native option name -> the API's (for 400s from the converter and pi);
 * - `meta(req, modelName)` -> what `result` and `frames` share (ids, timestamps, echoes);
 * - `result(message, meta)` -> the non-streamed reply body for pi's final message;
 * - `frames(meta, req, request)` -> PiCaller.pump's `{opening, next, done, failed}`.
 */
export function modelRoute(app, { adapter, timeoutMs, state }, path, api) {
  const pi = new PiCaller({ adapter, state, timeoutMs });
  const convert = v1Converter(api.optionNames);
  app.post(path, async (request, reply) => {
    const req = api.parse(request.body);
    const prepared = await pi.prepareRequest(request, req.model, (model) => convert(req.native, model), {
      apiKey: upstreamKey(request),
      mapError: (err) => v1Error(err, api.optionNames),
    });
    const meta = api.meta(req, `${prepared.model.provider}/${prepared.model.id}`);
    if (!req.stream) {
      const { message, gone } = await pi.complete(request, prepared);
      return gone ? reply.hijack() : api.result(message, meta);
    }
    const started = await pi.start(request, prepared);
    return pi.pump(request, reply, started, api.frames(meta, req, request));
  });
}
