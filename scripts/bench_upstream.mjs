// A fast OpenAI-compatible chat-completions upstream for scripts/bench, on 127.0.0.1 only.
//
//   node scripts/bench_upstream.mjs [--port 0] [--text "..."] [--stream-delay-ms 5]
//
// Prints one line {"url": "http://127.0.0.1:PORT/v1", "pid": N} and serves until stdin closes.
// GET (any path) answers {"served": N}, the number of completions served so far.
// Every reply is canned and prebuilt: nothing is parsed but two substrings of the body, so the
// upstream is never the bottleneck. TCP_NODELAY on every socket, keep-alive, no request log.
//   - `"stream": true` (pi, httpx floor)  -> one SSE body: role + text in 4 chunks, finish, usage, [DONE]
//   - otherwise (DSPy native, litellm)     -> one chat.completion JSON body
//   - model "fake-stream" (TTFT runs)      -> the first content chunk at once, the rest
//                                             --stream-delay-ms later, so "first token" is
//                                             unambiguous.

import http from "node:http";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "0" },
    text: { type: "string", default: "[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]" },
    "stream-delay-ms": { type: "string", default: "5" },
  },
});
const TEXT = values.text;
const DELAY = Number(values["stream-delay-ms"]);
const USAGE = { prompt_tokens: 20, completion_tokens: 8, total_tokens: 28, prompt_tokens_details: { cached_tokens: 0 } };

const data = (obj) => `data: ${JSON.stringify(obj)}\n\n`;
const chunk = (model, delta, finish = null) => ({
  id: "chatcmpl-bench", object: "chat.completion.chunk", created: 1763780000, model,
  choices: [{ index: 0, delta, finish_reason: finish }],
});

function parts(text, n) {
  const size = Math.ceil(text.length / n);
  const out = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

function sse(model) {
  const p = parts(TEXT, 4);
  const first = data(chunk(model, { role: "assistant", content: p[0] }));
  let rest = "";
  for (let i = 1; i < p.length; i++) rest += data(chunk(model, { content: p[i] }));
  rest += data(chunk(model, {}, "stop"));
  rest += data({ id: "chatcmpl-bench", object: "chat.completion.chunk", created: 1763780000, model, choices: [], usage: USAGE });
  rest += "data: [DONE]\n\n";
  return { first: Buffer.from(first), rest: Buffer.from(rest), all: Buffer.from(first + rest) };
}

function json(model) {
  return Buffer.from(JSON.stringify({
    id: "chatcmpl-bench", object: "chat.completion", created: 1763780000, model,
    choices: [{ index: 0, message: { role: "assistant", content: TEXT }, finish_reason: "stop" }],
    usage: USAGE,
  }));
}

const SSE_HEADERS = { "content-type": "text/event-stream", "cache-control": "no-cache" };
const replies = new Map();
function reply(model) {
  let r = replies.get(model);
  if (!r) {
    const s = sse(model);
    const j = json(model);
    r = {
      ...s,
      json: j,
      sseHeaders: { ...SSE_HEADERS, "content-length": String(s.all.length) },
      jsonHeaders: { "content-type": "application/json", "content-length": String(j.length) },
    };
    replies.set(model, r);
  }
  return r;
}

const MODEL_RE = /"model"\s*:\s*"([^"]{1,200})"/;
const STREAM_RE = /"stream"\s*:\s*true/;
let served = 0;

const server = http.createServer({ noDelay: true, keepAliveTimeout: 120000 }, (req, res) => {
  if (req.method === "GET") {
    // GET /count: how many completions were served (the bench counts requests with it)
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ served }));
    return;
  }
  const bufs = [];
  req.on("data", (b) => bufs.push(b));
  req.on("end", () => {
    served++;
    const body = bufs.length === 1 ? bufs[0].toString("latin1") : Buffer.concat(bufs).toString("latin1");
    const model = MODEL_RE.exec(body)?.[1] ?? "fake-model";
    const r = reply(model);
    if (!STREAM_RE.test(body)) {
      res.writeHead(200, r.jsonHeaders);
      res.end(r.json);
    } else if (model === "fake-stream") {
      res.writeHead(200, SSE_HEADERS);
      res.write(r.first);
      setTimeout(() => res.end(r.rest), DELAY);
    } else {
      res.writeHead(200, r.sseHeaders);
      res.end(r.all);
    }
  });
});
server.keepAliveTimeout = 120000;
server.headersTimeout = 130000;
server.on("connection", (s) => s.setNoDelay(true));
server.listen(Number(values.port), "127.0.0.1", () => {
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${server.address().port}/v1`, pid: process.pid })}\n`);
});
const stop = () => {
  process.stderr.write(`${JSON.stringify({ event: "upstream_stop", served })}\n`);
  process.exit(0);
};
process.stdin.on("end", stop);
process.stdin.on("close", stop);
process.on("SIGTERM", stop);
process.stdin.resume();
