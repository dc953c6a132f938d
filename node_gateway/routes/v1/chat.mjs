// POST /v1/chat/completions over pi (docs/openai.md): a `chat.completion`, or with
// `"stream": true` `chat.completion.chunk` frames ending in `data: [DONE]`. Failures before any
// content are ordinary error responses (OpenAI envelope, the native statuses); a failure after
// content has been streamed is a final `data: {"error": {...}}` frame and no [DONE].

import { CHAT_OPTION_NAMES, ChatChunker, chatCompletion, newId, parseChatRequest } from "../../convert_openai.mjs";
import { openaiEnvelope } from "../../errors.mjs";
import { DONE_FRAME, dataFrame } from "../../sse.mjs";
import { modelRoute } from "./model_route.mjs";

const frames = (chunks) => chunks.map(dataFrame);

export default async function chatRoutes(app, opts) {
  modelRoute(app, opts, "/v1/chat/completions", {
    parse: parseChatRequest,
    optionNames: CHAT_OPTION_NAMES,
    meta: (req, model) => ({ id: newId("chatcmpl-"), created: Math.floor(Date.now() / 1000), model }),
    result: chatCompletion,
    frames(meta, req, request) {
      const chunker = new ChatChunker({ ...meta, includeUsage: req.includeUsage });
      return {
        opening: () => [dataFrame(chunker.first())],
        next: (ev) => frames(chunker.next(ev)),
        done: (ev) => [...frames(chunker.done(ev.message)), DONE_FRAME],
        failed: (err) => [dataFrame(openaiEnvelope(err, request.id))],
      };
    },
  });
}
