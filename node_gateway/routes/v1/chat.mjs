// POST /v1/chat/completions over pi (docs/openai.md): a `chat.completion`, or with
// `"stream": true` `chat.completion.chunk` frames ending in `data: [DONE]`. Failures before any
// content are ordinary error responses (OpenAI envelope, the native statuses); a failure after
// content has been streamed is a final `data: {"error": {...}}` frame and no [DONE].

import { ChatChunker, chatCompletion, convertChat, newId, parseChatRequest, v1Error, CHAT_OPTION_NAMES } from "../../convert_openai.mjs";
import { GatewayError, openaiEnvelope } from "../../errors.mjs";
import { PiCaller, upstreamKey } from "../../pi_call.mjs";
import { DONE_FRAME, SseWriter, dataFrame } from "../../sse.mjs";

export default async function chatRoutes(app, { adapter, timeoutMs, state }) {
  const pi = new PiCaller({ adapter, state, timeoutMs });

  app.post("/v1/chat/completions", async (request, reply) => {
    const req = parseChatRequest(request.body);
    const apiKey = upstreamKey(request);
    const model = await pi.resolve(request, req.model);
    const { context, options, toolNames } = convertChat(req.native, model);
    let prepared;
    try {
      prepared = pi.prepare(model, context, options, toolNames, { apiKey });
    } catch (err) {
      throw v1Error(err, CHAT_OPTION_NAMES);
    }
    const meta = { id: newId("chatcmpl-"), created: Math.floor(Date.now() / 1000), model: `${model.provider}/${model.id}` };
    if (!req.stream) {
      const { message, gone } = await pi.complete(request, prepared);
      if (gone) return reply.hijack();
      return chatCompletion(message, meta);
    }

    const started = await pi.start(request, prepared);
    const { call, events } = started;
    const sse = new SseWriter(reply);
    const chunker = new ChatChunker({ ...meta, includeUsage: req.includeUsage });
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
          sse.write(dataFrame(openaiEnvelope(err, request.id)));
          break;
        }
        const first = !sse.opened;
        if (first) {
          sse.open();
          sse.write(dataFrame(chunker.first()));
        }
        if (ev.type === "done") {
          for (const chunk of chunker.done(ev.message)) sse.write(dataFrame(chunk));
          sse.write(DONE_FRAME);
          break;
        }
        let pending = null;
        for (const chunk of chunker.next(ev)) pending = sse.write(dataFrame(chunk)) ?? pending;
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
