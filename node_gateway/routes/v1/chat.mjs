// POST /v1/chat/completions over pi (docs/openai.md): a `chat.completion`, or with
// `"stream": true` `chat.completion.chunk` frames ending in `data: [DONE]`. Failures before any
// content are ordinary error responses (OpenAI envelope, the native statuses); a failure after
// content has been streamed is a final `data: {"error": {...}}` frame and no [DONE].

import { ChatChunker, chatCompletion, convertChat, newId, parseChatRequest, v1Error, CHAT_OPTION_NAMES } from "../../convert_openai.mjs";
import { openaiEnvelope } from "../../errors.mjs";
import { PiCaller, upstreamKey } from "../../pi_call.mjs";
import { DONE_FRAME, dataFrame } from "../../sse.mjs";

export default async function chatRoutes(app, { adapter, timeoutMs, state }) {
  const pi = new PiCaller({ adapter, state, timeoutMs });

  app.post("/v1/chat/completions", async (request, reply) => {
    const req = parseChatRequest(request.body);
    const prepared = await pi.prepareRequest(request, req.model, (model) => convertChat(req.native, model), {
      apiKey: upstreamKey(request),
      mapError: (err) => v1Error(err, CHAT_OPTION_NAMES),
    });
    const { model } = prepared;
    const meta = { id: newId("chatcmpl-"), created: Math.floor(Date.now() / 1000), model: `${model.provider}/${model.id}` };
    if (!req.stream) {
      const { message, gone } = await pi.complete(request, prepared);
      if (gone) return reply.hijack();
      return chatCompletion(message, meta);
    }

    const started = await pi.start(request, prepared);
    const chunker = new ChatChunker({ ...meta, includeUsage: req.includeUsage });
    const frames = (chunks) => chunks.map(dataFrame);
    return pi.pump(request, reply, started, {
      opening: () => [dataFrame(chunker.first())],
      next: (ev) => frames(chunker.next(ev)),
      done: (ev) => [...frames(chunker.done(ev.message)), DONE_FRAME],
      failed: (err) => [dataFrame(openaiEnvelope(err, request.id))],
    });
  });
}
