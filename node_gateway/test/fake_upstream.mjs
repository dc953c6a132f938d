// A fake OpenAI chat-completions upstream on 127.0.0.1 for tests and benchmarks. No network.
//
// As a module: `const up = await startFakeUpstream({text, usage, chunks})`; `up.url` is the base
// URL to declare in models.json ("http://127.0.0.1:PORT/v1"); `up.requests` holds every request
// body; `up.events` emits "request" ({body, headers}) and "aborted" (the client closed the
// connection before the reply ended). `await up.close()` stops it.
//
// As a script: `node fake_upstream.mjs [--port 0] [--host 127.0.0.1] [--text "..."] [--chunks 4]`
// prints one line `{"url": "http://127.0.0.1:PORT/v1"}` and serves until its stdin closes.
//
// The behaviour is chosen by the request's `model` (any other id gets the normal reply):
//   tool-call                 streams one tool call get_weather({"city": "Paris"}), finish "tool_calls"
//   reasoning                 streams reasoning_content "Thinking it over." then the text; usage
//                             reports completion_tokens_details.reasoning_tokens = 4
//   fail-500 | rate-429 | auth-401 | overflow-400    that HTTP error (429 carries Retry-After: 7)
//   echo-key-401              401 whose body echoes the Authorization header it received
//   echo-key-after-content    one good text chunk, then an SSE error event echoing the Authorization header
//   echo-bare-key-after-content  the same, echoing only the key (no "Bearer" before it)
//   hang                      reads the request, never answers
//   malformed                 200 SSE whose first data line is not JSON
//   malformed-after-content   one good text chunk, then a line that is not JSON
//   disconnect                one good text chunk, then the socket is destroyed
//   stall                     one good text chunk, then nothing (the connection stays open)
// With `catalog` ({models: [{id, model_info?, backend?}], key?, modelInfo = true}) it also answers
// like a LiteLLM proxy: GET /v1/models (OpenAI list) and GET /model/info (404 when modelInfo is
// false), both 401 unless `Authorization: Bearer <key>` when `key` is set.
// Streaming replies end with a usage chunk (prompt_tokens, completion_tokens, total_tokens,
// prompt_tokens_details.cached_tokens) and `data: [DONE]`; `"stream": false` gets one JSON body.

import { EventEmitter } from "node:events";
import http from "node:http";
import { pathToFileURL } from "node:url";

const DEFAULT_TEXT = "Hello from the fake upstream.";
export const DEFAULT_USAGE = Object.freeze({ prompt_tokens: 20, completion_tokens: 8, cached_tokens: 5 });

function usageBlock(u) {
  return {
    prompt_tokens: u.prompt_tokens,
    completion_tokens: u.completion_tokens,
    total_tokens: u.prompt_tokens + u.completion_tokens,
    prompt_tokens_details: { cached_tokens: u.cached_tokens },
  };
}

function splitText(text, chunks) {
  const n = Math.max(1, Math.min(chunks, text.length));
  const size = Math.ceil(text.length / n);
  const out = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out.length ? out : [""];
}

const data = (obj) => `data: ${JSON.stringify(obj)}\n\n`;

function chunk(model, delta, finish = null) {
  return { id: "chatcmpl-fake", object: "chat.completion.chunk", created: 1763780000, model, choices: [{ index: 0, delta, finish_reason: finish }] };
}

function textStream(model, text, chunks, usage) {
  const parts = splitText(text, chunks);
  let out = data(chunk(model, { role: "assistant", content: parts[0] }));
  for (let i = 1; i < parts.length; i++) out += data(chunk(model, { content: parts[i] }));
  out += data(chunk(model, {}, "stop"));
  out += data({ id: "chatcmpl-fake", object: "chat.completion.chunk", created: 1763780000, model, choices: [], usage: usageBlock(usage) });
  return `${out}data: [DONE]\n\n`;
}

function toolCallStream(model, usage) {
  const call = { index: 0, id: "call_1", type: "function", function: { name: "get_weather", arguments: "" } };
  let out = data(chunk(model, { role: "assistant", content: null, tool_calls: [call] }));
  out += data(chunk(model, { tool_calls: [{ index: 0, function: { arguments: '{"city": ' } }] }));
  out += data(chunk(model, { tool_calls: [{ index: 0, function: { arguments: '"Paris"}' } }] }));
  out += data(chunk(model, {}, "tool_calls"));
  out += data({ id: "chatcmpl-fake", object: "chat.completion.chunk", created: 1763780000, model, choices: [], usage: usageBlock(usage) });
  return `${out}data: [DONE]\n\n`;
}

function reasoningStream(model, text, usage) {
  let out = data(chunk(model, { role: "assistant", reasoning_content: "Thinking " }));
  out += data(chunk(model, { reasoning_content: "it over." }));
  out += data(chunk(model, { content: text }));
  out += data(chunk(model, {}, "stop"));
  const u = { ...usageBlock(usage), completion_tokens_details: { reasoning_tokens: 4 } };
  out += data({ id: "chatcmpl-fake", object: "chat.completion.chunk", created: 1763780000, model, choices: [], usage: u });
  return `${out}data: [DONE]\n\n`;
}

function completionJson(model, text, usage) {
  return JSON.stringify({
    id: "chatcmpl-fake",
    object: "chat.completion",
    created: 1763780000,
    model,
    choices: [{ index: 0, message: { role: "assistant", content: text }, finish_reason: "stop" }],
    usage: usageBlock(usage),
  });
}

const ERRORS = {
  "fail-500": [500, { error: { message: "fake upstream internal error", type: "server_error" } }, {}],
  "rate-429": [429, { error: { message: "Rate limit reached, slow down", type: "rate_limit_error" } }, { "retry-after": "7" }],
  "auth-401": [401, { error: { message: "Invalid authentication", type: "invalid_request_error" } }, {}],
  "overflow-400": [
    400,
    {
      error: {
        message: "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.",
        type: "invalid_request_error",
        code: "context_length_exceeded",
      },
    },
    {},
  ],
};

const SSE_HEADERS = { "content-type": "text/event-stream", "cache-control": "no-cache" };

/** Start the fake upstream; resolves when it listens. */
export async function startFakeUpstream({
  host = "127.0.0.1",
  port = 0,
  text = DEFAULT_TEXT,
  chunks = 4,
  usage = DEFAULT_USAGE,
  catalog = undefined,
} = {}) {
  const events = new EventEmitter();
  const requests = [];
  const cache = new Map(); // model -> prebuilt SSE body for the normal reply
  const sockets = new Set();

  const server = http.createServer({ noDelay: true, keepAliveTimeout: 65000 }, (req, res) => {
    if (catalog && req.method === "GET") {
      serveCatalog(req, res);
      return;
    }
    const bufs = [];
    req.on("data", (b) => bufs.push(b));
    req.on("end", () => {
      let body = {};
      try {
        body = JSON.parse(Buffer.concat(bufs).toString("utf8") || "{}");
      } catch {
        body = { unparsable: true };
      }
      requests.push(body);
      res.on("close", () => {
        if (!res.writableFinished) events.emit("aborted", { body });
      });
      events.emit("request", { body, headers: req.headers });
      serve(body, req, res);
    });
  });
  server.on("connection", (socket) => {
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });

  function serveCatalog(req, res) {
    const json = (status, obj) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(obj));
    };
    if (catalog.key && req.headers.authorization !== `Bearer ${catalog.key}`) {
      json(401, { error: { message: "Authentication Error, invalid proxy key", type: "auth_error" } });
      return;
    }
    const path = req.url.split("?")[0];
    if (path === "/v1/models" || path === "/models") {
      json(200, { object: "list", data: catalog.models.map((m) => ({ id: m.id, object: "model", created: 1677610602, owned_by: "openai" })) });
    } else if (path === "/model/info" && catalog.modelInfo !== false) {
      json(200, {
        data: catalog.models.map((m) => ({
          model_name: m.id,
          litellm_params: { model: m.backend ?? `openai/${m.id}` },
          model_info: m.model_info ?? {},
        })),
      });
    } else json(404, { detail: "Not Found" });
  }

  function serve(body, req, res) {
    const model = typeof body.model === "string" ? body.model : "fake";
    const err = ERRORS[model];
    if (err) {
      res.writeHead(err[0], { "content-type": "application/json", ...err[2] });
      res.end(JSON.stringify(err[1]));
      return;
    }
    switch (model) {
      case "echo-key-401":
        res.writeHead(401, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: { message: `Incorrect API key provided: ${req.headers.authorization}` } }));
        return;
      case "hang":
        return; // never answer
      case "malformed":
        res.writeHead(200, SSE_HEADERS);
        res.end("data: {this is not json\n\n");
        return;
      case "malformed-after-content":
        res.writeHead(200, SSE_HEADERS);
        res.write(data(chunk(model, { role: "assistant", content: "partial " })));
        setImmediate(() => res.end("data: {this is not json\n\n"));
        return;
      case "echo-key-after-content":
        res.writeHead(200, SSE_HEADERS);
        res.write(data(chunk(model, { role: "assistant", content: "partial " })));
        setImmediate(() => res.end(data({ error: { message: `Incorrect API key provided: ${req.headers.authorization}` } })));
        return;
      case "echo-bare-key-after-content":
        res.writeHead(200, SSE_HEADERS);
        res.write(data(chunk(model, { role: "assistant", content: "partial " })));
        setImmediate(() => {
          const key = String(req.headers.authorization).replace(/^Bearer /, "");
          res.end(data({ error: { message: `key ${key} is not allowed here` } }));
        });
        return;
      case "disconnect":
        res.writeHead(200, SSE_HEADERS);
        res.write(data(chunk(model, { role: "assistant", content: "partial " })));
        setImmediate(() => res.socket?.destroy());
        return;
      case "stall":
        res.writeHead(200, SSE_HEADERS);
        res.write(data(chunk(model, { role: "assistant", content: "partial " })));
        return; // the connection stays open until the client goes away
      case "tool-call":
        res.writeHead(200, SSE_HEADERS);
        res.end(toolCallStream(model, usage));
        return;
      case "reasoning":
        res.writeHead(200, SSE_HEADERS);
        res.end(reasoningStream(model, text, usage));
        return;
      default:
        if (body.stream === false) {
          res.writeHead(200, { "content-type": "application/json" });
          res.end(completionJson(model, text, usage));
          return;
        }
        let sse = cache.get(model);
        if (sse === undefined) {
          sse = Buffer.from(textStream(model, text, chunks, usage));
          cache.set(model, sse);
        }
        res.writeHead(200, SSE_HEADERS);
        res.end(sse);
    }
  }

  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, resolve);
  });
  const address = server.address();
  return {
    url: `http://${host}:${address.port}/v1`,
    port: address.port,
    requests,
    events,
    server,
    /** Resolve with the next request's body. */
    nextRequest: () => new Promise((resolve) => events.once("request", ({ body }) => resolve(body))),
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

async function main() {
  const { parseArgs } = await import("node:util");
  const { values } = parseArgs({
    options: {
      port: { type: "string", default: "0" },
      host: { type: "string", default: "127.0.0.1" },
      text: { type: "string", default: DEFAULT_TEXT },
      chunks: { type: "string", default: "4" },
    },
  });
  const up = await startFakeUpstream({ host: values.host, port: Number(values.port), text: values.text, chunks: Number(values.chunks) });
  process.stdout.write(`${JSON.stringify({ url: up.url })}\n`);
  const stop = () => up.close().finally(() => process.exit(0));
  process.stdin.on("end", stop);
  process.stdin.on("close", stop);
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.stdin.resume();
}

// Run as a script only (not when imported, nor when a test runner's glob picks this file up).
if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href && !process.env.NODE_TEST_CONTEXT) await main();
