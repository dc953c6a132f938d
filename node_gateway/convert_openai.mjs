// OpenAI chat completions <-> the native protocol and pi (docs/openai.md). A request body is
// checked field by field (strict: a parameter the gateway cannot honour is a 400 naming it,
// never dropped), then mapped onto the native body {model, messages, tools, options}, so the
// message conversion itself stays convert.mjs's. pi's message and stream events come back as
// `chat.completion` objects and `chat.completion.chunk` frames with every count intact.

import { randomBytes } from "node:crypto";
import { checkModelName, checkResponseFormat, convertRequest, MAX_DEPTH, tooDeep } from "./convert.mjs";
import { GatewayError, invalid } from "./errors.mjs";

export const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const describe = (v) => (v === null ? "null" : Array.isArray(v) ? "an array" : typeof v);

/** A fresh id with OpenAI's prefix convention (`chatcmpl-`, `resp_`, `msg_`, `fc_`, ...). */
export const newId = (prefix) => `${prefix}${randomBytes(12).toString("hex")}`;

/** pi's AssistantMessage `usage` -> OpenAI's chat `usage` (prompt = input + cache read + cache write). */
export function chatUsage(u) {
  const prompt = u.input + u.cacheRead + u.cacheWrite;
  return {
    prompt_tokens: prompt,
    completion_tokens: u.output,
    total_tokens: prompt + u.output,
    prompt_tokens_details: { cached_tokens: u.cacheRead },
    completion_tokens_details: { reasoning_tokens: u.reasoning ?? 0 },
  };
}

/** pi's stop reason -> OpenAI's finish_reason. */
export function finishReason(stopReason) {
  if (stopReason === "length") return "length";
  if (stopReason === "toolUse") return "tool_calls";
  return "stop";
}

/** pi's reasoning levels from OpenAI's `reasoning_effort` (and Responses' `reasoning.effort`). */
export const REASONING_EFFORT = Object.freeze({
  none: "off",
  minimal: "minimal",
  low: "low",
  medium: "medium",
  high: "high",
  xhigh: "xhigh",
});

// ---- errors from the shared converter, renamed for /v1 ------------------------------------------

/**
 * A 400 raised by convert.mjs / the adapter names native fields (`options.max_tokens`,
 * `messages[2].content`); on /v1 the message and `param` name the field the client sent.
 */
export function v1Error(err, optionNames) {
  if (!(err instanceof GatewayError) || err.type !== "invalid_request") return err;
  let message = err.message;
  let param = err.extra?.param;
  const m = /^options\.([a-z_]+)/.exec(message);
  if (m) {
    const name = optionNames[m[1]] ?? m[1];
    message = name + message.slice(m[0].length);
    param = name;
  } else if (param === undefined) {
    const field = /^(?:body\.)?((?:messages|tools|input)\[\d+\][\w.[\]]*)/.exec(message);
    if (field) param = field[1];
  }
  const out = new GatewayError(err.type, message, { ...err.extra, param });
  out.stack = err.stack;
  return out;
}

// ---- request ------------------------------------------------------------------------------------

/** Parameters both OpenAI APIs (chat completions, Responses) take with one meaning. */
export const OPENAI_COMMON_KEYS = Object.freeze([
  "model", "tools", "tool_choice", "parallel_tool_calls", "temperature", "top_p", "stream", "stream_options",
  "store", "metadata", "user", "safety_identifier", "prompt_cache_key", "service_tier",
]);
/** Parameters of both OpenAI APIs that cannot be honoured when set (not null). */
export const OPENAI_COMMON_REFUSED = Object.freeze({
  moderation: "moderation is not carried by the gateway",
  prompt_cache_options: "prompt_cache_options is not carried by the gateway",
  prompt_cache_retention: "prompt_cache_retention is not carried by the gateway",
  top_logprobs: "log probabilities are not carried by the gateway",
});

/** Known parameters of POST /v1/chat/completions that cannot be honoured when set (not null). */
const CHAT_REFUSED = {
  ...OPENAI_COMMON_REFUSED,
  audio: "audio output is not carried by the gateway",
  prediction: "predicted outputs are not carried by the gateway",
  web_search_options: "web search is not carried by the gateway",
  functions: "the deprecated `functions` is not carried; use `tools`",
  function_call: "the deprecated `function_call` is not carried; use `tool_choice`",
  verbosity: "verbosity is not carried by the gateway",
};
const CHAT_KEYS = new Set([
  ...OPENAI_COMMON_KEYS, "messages", "reasoning_effort", "max_tokens", "max_completion_tokens", "stop",
  "seed", "presence_penalty", "frequency_penalty", "response_format", "n", "logprobs", "logit_bias",
  "modalities", ...Object.keys(CHAT_REFUSED),
]);

/** The native option names as the chat API calls them (for error messages). */
export const CHAT_OPTION_NAMES = Object.freeze({
  max_tokens: "max_tokens",
  reasoning: "reasoning_effort",
  session_id: "prompt_cache_key",
});

/** A 400 naming the request field `param`. */
export const bad = (param, message) => invalid(message, { param });

/** `body[key]`: absent, or a finite number in [min, max] (else a 400 naming `key`). */
export function number(body, key, min, max) {
  const v = body[key];
  if (v == null) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max) {
    throw bad(key, `${key} must be a number from ${min} to ${max}, not ${JSON.stringify(v)}`);
  }
  return v;
}

function integer(body, key, min) {
  const v = body[key];
  if (v == null) return undefined;
  if (!Number.isSafeInteger(v) || v < min) throw bad(key, `${key} must be an integer >= ${min}, not ${JSON.stringify(v)}`);
  return v;
}

/** Checks common to every /v1 body: an object, not nested too deep, a model name. */
export function checkV1Body(body, path) {
  if (!isObject(body)) throw invalid(`the body of ${path} must be a JSON object, not ${describe(body)}`);
  const deep = tooDeep(body);
  if (deep !== null) throw bad(deep, `${deep} nests arrays/objects deeper than ${MAX_DEPTH} levels`);
  try {
    checkModelName(body.model, "model");
  } catch (err) {
    throw bad("model", err.message);
  }
}

/**
 * Check a chat completions body (model-independent parts) and map it onto the native protocol.
 * Returns {model, native: {messages, tools, options}, stream, includeUsage}.
 */
export function parseChatRequest(body) {
  checkV1Body(body, "/v1/chat/completions");
  for (const key in body) {
    if (body[key] === null || body[key] === undefined) continue;
    if (!CHAT_KEYS.has(key)) throw bad(key, `${key} is not a parameter of /v1/chat/completions`);
    if (key in CHAT_REFUSED) throw bad(key, `${key}: ${CHAT_REFUSED[key]}`);
  }
  if (!Array.isArray(body.messages)) throw bad("messages", "messages must be a list of chat messages");
  const options = {};
  if (body.n != null && body.n !== 1) throw bad("n", `n=${JSON.stringify(body.n)}: pi answers one choice per call; send n=1 (or none) and call again`);
  if (body.logprobs != null && body.logprobs !== false) throw bad("logprobs", "logprobs: log probabilities are not carried by the gateway");
  if (body.logit_bias != null && !(isObject(body.logit_bias) && Object.keys(body.logit_bias).length === 0)) {
    throw bad("logit_bias", "logit_bias is not carried by the gateway");
  }
  if (body.store != null && body.store !== false) throw bad("store", "store: the gateway stores nothing; send store=false or leave it out");
  if (body.metadata != null) throw bad("metadata", "metadata is kept only with stored completions, and the gateway stores nothing");
  if (body.service_tier != null && body.service_tier !== "auto" && body.service_tier !== "default") {
    throw bad("service_tier", `service_tier ${JSON.stringify(body.service_tier)} is not carried (only "auto" or "default")`);
  }
  if (body.modalities != null && !(Array.isArray(body.modalities) && body.modalities.every((m) => m === "text"))) {
    throw bad("modalities", 'modalities: only ["text"] is carried');
  }
  const stream = body.stream ?? false;
  if (typeof stream !== "boolean") throw bad("stream", "stream must be true or false");
  let includeUsage = false;
  if (body.stream_options != null) {
    if (!stream) throw bad("stream_options", "stream_options is only allowed with stream: true");
    const so = body.stream_options;
    if (!isObject(so)) throw bad("stream_options", "stream_options must be an object");
    for (const key in so) {
      if (key !== "include_usage" && key !== "include_obfuscation") throw bad(`stream_options.${key}`, `stream_options.${key} is not known`);
      if (so[key] != null && typeof so[key] !== "boolean") throw bad(`stream_options.${key}`, `stream_options.${key} must be true or false`);
    }
    includeUsage = so.include_usage === true;
  }
  commonOptions(body, options);
  const maxTokens = integer(body, "max_tokens", 1);
  const maxCompletion = integer(body, "max_completion_tokens", 1);
  if (maxTokens !== undefined && maxCompletion !== undefined && maxTokens !== maxCompletion) {
    throw bad("max_completion_tokens", "max_tokens and max_completion_tokens differ; send one of them");
  }
  if (maxTokens ?? maxCompletion) options.max_tokens = maxTokens ?? maxCompletion;
  for (const key of ["presence_penalty", "frequency_penalty"]) {
    const v = number(body, key, -2, 2);
    if (v !== undefined) options[key] = v;
  }
  if (body.seed != null) {
    if (!Number.isSafeInteger(body.seed)) throw bad("seed", "seed must be an integer");
    options.seed = body.seed;
  }
  if (body.stop != null) {
    const stop = body.stop;
    const list = typeof stop === "string" ? [stop] : stop;
    if (!Array.isArray(list) || list.length > 4 || !list.every((s) => typeof s === "string" && s.length > 0)) {
      throw bad("stop", "stop must be a string or a list of at most 4 non-empty strings");
    }
    if (list.length) options.stop = list;
  }
  if (body.reasoning_effort != null) {
    const level = REASONING_EFFORT[body.reasoning_effort];
    if (!level) throw bad("reasoning_effort", `reasoning_effort must be one of ${JSON.stringify(Object.keys(REASONING_EFFORT))}`);
    options.reasoning = level;
  }
  if (body.response_format != null) {
    try {
      checkResponseFormat(body.response_format, "response_format");
    } catch (err) {
      throw bad("response_format", err.message);
    }
    if (body.response_format.type !== "text") options.response_format = body.response_format;
  }
  if (body.parallel_tool_calls != null) {
    if (typeof body.parallel_tool_calls !== "boolean") throw bad("parallel_tool_calls", "parallel_tool_calls must be true or false");
    if (body.parallel_tool_calls === false) options.parallel_tool_calls = false; // true is every API's default
  }
  if (body.tool_choice != null) options.tool_choice = body.tool_choice;
  return {
    model: body.model,
    native: { messages: body.messages, tools: body.tools, options },
    stream,
    includeUsage,
  };
}

/**
 * The native options from the parameters both /v1 APIs share (temperature, top_p,
 * user/safety_identifier, prompt_cache_key), written into `options`; a 400 names the bad one.
 */
export function commonOptions(body, options) {
  const temperature = number(body, "temperature", 0, 2);
  if (temperature !== undefined) options.temperature = temperature;
  const topP = number(body, "top_p", 0, 1);
  if (topP !== undefined) options.top_p = topP;
  const user = body.safety_identifier ?? body.user;
  if (body.user != null && body.safety_identifier != null && body.user !== body.safety_identifier) {
    throw bad("safety_identifier", "user and safety_identifier differ; send one of them");
  }
  if (user != null) {
    if (typeof user !== "string" || !user) throw bad(body.safety_identifier != null ? "safety_identifier" : "user", "user must be a non-empty string");
    options.user = user;
  }
  if (body.prompt_cache_key != null) {
    if (typeof body.prompt_cache_key !== "string" || !body.prompt_cache_key) throw bad("prompt_cache_key", "prompt_cache_key must be a non-empty string");
    options.session_id = body.prompt_cache_key;
  }
}

/** A converter of the native body for `model` (pi Model) whose 400s name one /v1 API's fields. */
export function v1Converter(optionNames) {
  return (native, model) => {
    try {
      return convertRequest(native, model);
    } catch (err) {
      throw v1Error(err, optionNames);
    }
  };
}

// ---- response -----------------------------------------------------------------------------------

/** pi's AssistantMessage -> the `message` of a chat completion choice. */
export function chatMessage(message) {
  let text = "";
  let reasoning = "";
  const toolCalls = [];
  for (const block of message.content) {
    if (block.type === "text") text += block.text;
    else if (block.type === "thinking") reasoning += block.thinking;
    else if (block.type === "toolCall") {
      toolCalls.push({ id: block.id, type: "function", function: { name: block.name, arguments: JSON.stringify(block.arguments ?? {}) } });
    }
  }
  const out = { role: "assistant", content: text || (toolCalls.length ? null : ""), refusal: null };
  if (reasoning) out.reasoning_content = reasoning;
  if (toolCalls.length) out.tool_calls = toolCalls;
  return out;
}

/** A whole `chat.completion` object for pi's final message. */
export function chatCompletion(message, { id, created, model }) {
  return {
    id,
    object: "chat.completion",
    created,
    model,
    choices: [{ index: 0, message: chatMessage(message), logprobs: null, finish_reason: finishReason(message.stopReason) }],
    usage: chatUsage(message.usage),
    system_fingerprint: null,
  };
}

/**
 * pi stream events -> `chat.completion.chunk` objects. `next(ev)` returns the chunks for one
 * event (often none); the route writes them. Tool calls are numbered in order of appearance.
 */
export class ChatChunker {
  constructor({ id, created, model, includeUsage }) {
    this.base = { id, object: "chat.completion.chunk", created, model, system_fingerprint: null };
    this.includeUsage = includeUsage;
    this.toolIndex = new Map(); // pi contentIndex -> tool_calls index
    this.argsSent = new Map(); // pi contentIndex -> argument text streamed so far
    this.roleSent = false;
  }

  chunk(delta, finish = null) {
    if (!this.roleSent) {
      this.roleSent = true;
      delta = { role: "assistant", ...delta };
    }
    return { ...this.base, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] };
  }

  /** The first chunk (role, empty content), sent when the stream opens. */
  first() {
    return this.chunk({ content: "" });
  }

  next(ev) {
    switch (ev.type) {
      case "text_delta":
        return ev.delta ? [this.chunk({ content: ev.delta })] : [];
      case "thinking_delta":
        return ev.delta ? [this.chunk({ reasoning_content: ev.delta })] : [];
      case "toolcall_start": {
        const block = ev.partial?.content?.[ev.contentIndex];
        const index = this.toolIndex.size;
        this.toolIndex.set(ev.contentIndex, index);
        this.argsSent.set(ev.contentIndex, "");
        const call = { index, id: block?.id ?? "", type: "function", function: { name: block?.name ?? "", arguments: "" } };
        return [this.chunk({ tool_calls: [call] })];
      }
      case "toolcall_delta": {
        const index = this.toolIndex.get(ev.contentIndex);
        if (index === undefined || !ev.delta) return [];
        this.argsSent.set(ev.contentIndex, this.argsSent.get(ev.contentIndex) + ev.delta);
        return [this.chunk({ tool_calls: [{ index, function: { arguments: ev.delta } }] })];
      }
      case "toolcall_end": {
        const index = this.toolIndex.get(ev.contentIndex);
        // An API that sends no argument deltas: the arguments go out whole, once.
        if (index === undefined || this.argsSent.get(ev.contentIndex)) return [];
        const args = JSON.stringify(ev.toolCall?.arguments ?? {});
        return args === "{}" && !ev.toolCall ? [] : [this.chunk({ tool_calls: [{ index, function: { arguments: args } }] })];
      }
      default:
        return [];
    }
  }

  /** The chunks that end a successful stream: finish_reason, then usage when asked for. */
  done(message) {
    const out = [this.chunk({}, finishReason(message.stopReason))];
    if (this.includeUsage) out.push({ ...this.base, choices: [], usage: chatUsage(message.usage) });
    return out;
  }
}
