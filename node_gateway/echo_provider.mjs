// The echo provider (`echo/echo`): no network, no credentials. It answers with the text of the
// last user message, streamed one token per delta, with usage counted by one documented rule
// (countTokens). It is a pi API implementation registered by the adapter like any provider, so
// every route reaches it through pi; nothing in the routes knows about it.
//
// Tokens: a run of letters/digits/underscore, or one other non-space character ("Hello, world!"
// is 4). Input = the tokens of every text in the context (system prompt, messages, tool results;
// images count 0), output = the tokens streamed. `max_tokens` cuts the answer (stopReason
// "length"); stop sequences (carried as `payload.stop`, like openai-completions) cut it at the
// first match. Sampling options (temperature, top_p, seed, penalties) have nothing to change:
// the echo is deterministic. It never fails by itself; an aborted call ends "aborted".

export const ECHO_API = "aiipython-echo";
export const ECHO_PROVIDER = "echo";
export const ECHO_MODEL = "echo";

/** The models.json-style provider block the adapter registers (a literal key: always "configured"). */
export const ECHO_BLOCK = Object.freeze({
  api: ECHO_API,
  baseUrl: "http://echo.invalid",
  apiKey: "echo",
  models: [
    {
      id: ECHO_MODEL,
      name: "Echo (answers with the last user message)",
      reasoning: false,
      input: ["text", "image"],
      cost: { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 },
      contextWindow: 1000000,
      maxTokens: 1000000,
    },
  ],
});

const TOKEN = /[\p{L}\p{N}_]+|[^\s\p{L}\p{N}_]/gu;

/** Tokens of `text` by the echo's rule (module comment). */
export function countTokens(text) {
  if (!text) return 0;
  let n = 0;
  TOKEN.lastIndex = 0;
  while (TOKEN.exec(text) !== null) n += 1;
  return n;
}

/** `text` cut into deltas of one token each (whitespace rides with the token before it). */
export function tokenDeltas(text) {
  const out = [];
  const re = /\s*(?:[\p{L}\p{N}_]+|[^\s\p{L}\p{N}_])\s*/gu;
  let m;
  let end = 0;
  while ((m = re.exec(text)) !== null) {
    out.push(m[0]);
    end = re.lastIndex;
  }
  if (end < text.length) {
    if (out.length) out[out.length - 1] += text.slice(end);
    else out.push(text.slice(end));
  }
  return out;
}

const textOf = (content) => {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content.map((b) => (b?.type === "text" ? b.text : b?.type === "thinking" ? b.thinking : "")).join("");
};

function contextTokens(messages) {
  let n = 0;
  for (const m of messages) {
    n += countTokens(textOf(m.content));
    if (m.role === "assistant") {
      for (const b of m.content ?? []) if (b?.type === "toolCall") n += countTokens(`${b.name} ${JSON.stringify(b.arguments)}`);
    }
  }
  return n;
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

/**
 * pi's StreamFunction for the echo API. `createStream` is pi's createAssistantMessageEventStream
 * (passed in by the adapter: only pi_adapter.mjs imports pi).
 */
export function makeEchoStream(createStream) {
  return function streamEcho(model, context, options = {}) {
    const stream = createStream();
    run(stream, model, context, options).catch((err) => {
      const message = base(model, 0);
      message.stopReason = "error";
      message.errorMessage = `echo provider failed: ${err?.message ?? err}`;
      stream.push({ type: "error", reason: "error", error: message });
      stream.end(message);
    });
    return stream;
  };
}

function base(model, input) {
  return {
    role: "assistant",
    content: [],
    api: model.api,
    provider: model.provider,
    model: model.id,
    usage: { input, output: 0, cacheRead: 0, cacheWrite: 0, totalTokens: input, cost: { input: 0, output: 0, cacheRead: 0, cacheWrite: 0, total: 0 } },
    stopReason: "stop",
    timestamp: Date.now(),
  };
}

async function run(stream, model, context, options) {
  const messages = context.messages ?? [];
  const lastUser = [...messages].reverse().find((m) => m.role === "user");
  let text = lastUser ? textOf(lastUser.content) : "";
  let payload = { model: model.id, input: text, max_tokens: options.maxTokens };
  if (options.onPayload) payload = (await options.onPayload(payload, model)) ?? payload;
  let stopReason = "stop";
  const stops = payload.stop == null ? [] : [payload.stop].flat();
  for (const s of stops) {
    const at = text.indexOf(s);
    if (at >= 0) text = text.slice(0, at);
  }
  let deltas = tokenDeltas(text);
  if (payload.max_tokens !== undefined && deltas.length > payload.max_tokens) {
    deltas = deltas.slice(0, payload.max_tokens);
    stopReason = "length";
  }
  const partial = base(model, contextTokens(messages));
  const aborted = () => {
    const message = { ...partial, content: partial.content.map((b) => ({ ...b })), stopReason: "aborted", errorMessage: "Request was aborted" };
    stream.push({ type: "error", reason: "aborted", error: message });
    stream.end(message);
  };
  if (options.signal?.aborted) return aborted();
  stream.push({ type: "start", partial: { ...partial } });
  const block = { type: "text", text: "" };
  partial.content = [block];
  stream.push({ type: "text_start", contentIndex: 0, partial: { ...partial } });
  for (const delta of deltas) {
    await tick();
    if (options.signal?.aborted) return aborted();
    block.text += delta;
    partial.usage.output += countTokens(delta);
    stream.push({ type: "text_delta", contentIndex: 0, delta, partial: { ...partial } });
  }
  stream.push({ type: "text_end", contentIndex: 0, content: block.text, partial: { ...partial } });
  const usage = partial.usage;
  usage.totalTokens = usage.input + usage.output;
  const message = { ...partial, content: [{ type: "text", text: block.text }], stopReason };
  stream.push({ type: "done", reason: stopReason, message });
  stream.end(message);
}
