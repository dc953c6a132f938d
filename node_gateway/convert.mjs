// OpenAI-style request bodies -> pi's Context and call options, and pi's stream events -> SSE
// frames (docs/protocol.md "Requests"). One converter for every endpoint. Nothing is dropped
// silently: whatever cannot be carried is a 400 whose message names the part (messages[2].content[1]).
// This module does not import pi; it builds pi's plain message objects.

import { invalid } from "./errors.mjs";

const BODY_KEYS = new Set(["model", "messages", "tools", "options"]);
const OPTION_KEYS = new Set([
  "temperature",
  "max_tokens",
  "reasoning",
  "tool_choice",
  "stop",
  "session_id",
  "timeout_ms",
  "top_p",
  "seed",
  "presence_penalty",
  "frequency_penalty",
  "response_format",
  "user",
  "parallel_tool_calls",
]);
const MAX_TIMEOUT_MS = 24 * 3600 * 1000;
/** Longest model name accepted (pi's longest ids are under 100 characters). */
export const MAX_MODEL_NAME = 256;
/** Deepest nesting of arrays/objects accepted in a body (JSON schemas of real tools stay under 20). */
export const MAX_DEPTH = 64;

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const describe = (v) => (v === null ? "null" : Array.isArray(v) ? "an array" : typeof v);

function checkKeys(obj, allowed, where) {
  for (const key in obj) {
    if (!allowed.has(key) && obj[key] !== null && obj[key] !== undefined) {
      throw invalid(`${where}.${key} is not supported`);
    }
  }
}

/** A model name's own checks (every endpoint): non-empty, at most MAX_MODEL_NAME characters. */
export function checkModelName(name, where = "body.model") {
  if (typeof name !== "string" || name.length === 0) {
    throw invalid(`${where} is required: a model name such as "provider/id"`);
  }
  if (name.length > MAX_MODEL_NAME) {
    throw invalid(`${where} is ${name.length} characters long; model names have at most ${MAX_MODEL_NAME}`);
  }
  return name;
}

/**
 * The top-level field of `body` under which arrays/objects nest deeper than `limit`, or null.
 * Iterative (no recursion), so a hostile body cannot overflow the stack here; bodies deeper than
 * this would overflow it later, in pi or in JSON.stringify (a retryable-looking 502 otherwise).
 */
export function tooDeep(body, limit = MAX_DEPTH) {
  const stack = [[body, 0, null]];
  while (stack.length) {
    const [value, depth, top] = stack.pop();
    if (value === null || typeof value !== "object") continue;
    if (depth >= limit) return top;
    for (const key in value) stack.push([value[key], depth + 1, top ?? key]);
  }
  return null;
}

/** The `model` field, checked before anything else so the model can be resolved first. */
export function requestModelName(body) {
  if (!isObject(body)) throw invalid(`the body must be a JSON object, not ${describe(body)}`);
  checkKeys(body, BODY_KEYS, "body");
  checkModelName(body.model);
  const deep = tooDeep(body);
  if (deep !== null) throw invalid(`body.${deep} nests arrays/objects deeper than ${MAX_DEPTH} levels`);
  return body.model;
}

/**
 * Validate and convert a request body for `model` (a pi Model).
 * Returns {context: {systemPrompt?, messages, tools?}, options, toolNames}.
 */
export function convertRequest(body, model) {
  const now = Date.now();
  const { messages, systemPrompt } = convertMessages(body.messages, model, now);
  const tools = convertTools(body.tools);
  const context = { messages };
  if (systemPrompt !== undefined) context.systemPrompt = systemPrompt;
  if (tools) context.tools = tools;
  return { context, options: convertOptions(body.options), toolNames: tools ? tools.map((t) => t.name) : [] };
}

// ---- messages ---------------------------------------------------------------------------------

function textOf(content, where, { allowNull = false } = {}) {
  if (typeof content === "string") return content;
  if (content == null && allowNull) return "";
  if (!Array.isArray(content)) throw invalid(`${where}.content must be a string or a list of text parts`);
  let text = "";
  for (let i = 0; i < content.length; i++) {
    const part = content[i];
    if (!isObject(part) || part.type !== "text" || typeof part.text !== "string") {
      const type = isObject(part) ? part.type : describe(part);
      throw invalid(`${where}.content[${i}] (type ${JSON.stringify(type)}) cannot be carried: only text parts are allowed here`);
    }
    text += part.text;
  }
  return text;
}

const DATA_URL = /^data:([a-z]+\/[a-z0-9.+-]+)(?:;[^,;]*=[^,;]*)*;base64,/i;

function imagePart(part, where, model) {
  checkKeys(part, new Set(["type", "image_url"]), where);
  const spec = part.image_url;
  const url = typeof spec === "string" ? spec : isObject(spec) ? spec.url : undefined;
  if (typeof url !== "string") throw invalid(`${where}.image_url.url must be a string`);
  if (isObject(spec)) {
    checkKeys(spec, new Set(["url", "detail"]), `${where}.image_url`);
    if (spec.detail != null && spec.detail !== "auto") {
      throw invalid(`${where}.image_url.detail ${JSON.stringify(spec.detail)} cannot be carried (only "auto")`);
    }
  }
  const m = DATA_URL.exec(url);
  if (!m) {
    const kind = /^https?:/i.test(url) ? "a remote image URL" : "not a base64 data: URL";
    throw invalid(`${where}.image_url.url is ${kind}; only base64 "data:image/...;base64," images are carried`);
  }
  if (!m[1].toLowerCase().startsWith("image/")) throw invalid(`${where}.image_url.url has media type ${m[1]}, not an image`);
  if (!model.input.includes("image")) {
    throw invalid(`${where} is an image, but ${model.provider}/${model.id} does not accept image input`);
  }
  return { type: "image", data: url.slice(m[0].length), mimeType: m[1].toLowerCase() };
}

function userContent(content, where, model) {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) throw invalid(`${where}.content must be a string or a list of parts`);
  const out = new Array(content.length);
  for (let i = 0; i < content.length; i++) {
    const part = content[i];
    const at = `${where}.content[${i}]`;
    if (!isObject(part)) throw invalid(`${at} must be an object, not ${describe(part)}`);
    if (part.type === "text") {
      checkKeys(part, new Set(["type", "text"]), at);
      if (typeof part.text !== "string") throw invalid(`${at}.text must be a string`);
      out[i] = { type: "text", text: part.text };
    } else if (part.type === "image_url") {
      out[i] = imagePart(part, at, model);
    } else {
      throw invalid(`${at} (type ${JSON.stringify(part.type)}) cannot be carried: only "text" and base64 "image_url" parts`);
    }
  }
  return out;
}

const SYSTEM_KEYS = new Set(["role", "content"]);
const USER_KEYS = new Set(["role", "content"]);
const ASSISTANT_KEYS = new Set(["role", "content", "tool_calls", "reasoning_content"]);
const TOOL_KEYS = new Set(["role", "content", "tool_call_id", "name"]);
const TOOL_CALL_KEYS = new Set(["id", "type", "function"]);
const EMPTY_USAGE = Object.freeze({
  input: 0,
  output: 0,
  cacheRead: 0,
  cacheWrite: 0,
  totalTokens: 0,
  cost: Object.freeze({ input: 0, output: 0, cacheRead: 0, cacheWrite: 0, total: 0 }),
});

function convertMessages(messages, model, now) {
  if (!Array.isArray(messages)) throw invalid("body.messages must be a list of chat messages");
  if (messages.length === 0) throw invalid("body.messages must not be empty");
  const out = [];
  const system = [];
  const toolNamesById = new Map();
  for (let i = 0; i < messages.length; i++) {
    const msg = messages[i];
    const where = `messages[${i}]`;
    if (!isObject(msg)) throw invalid(`${where} must be an object, not ${describe(msg)}`);
    switch (msg.role) {
      case "system":
      case "developer":
        checkKeys(msg, SYSTEM_KEYS, where);
        system.push(textOf(msg.content, where));
        break;
      case "user":
        checkKeys(msg, USER_KEYS, where);
        out.push({ role: "user", content: userContent(msg.content, where, model), timestamp: now });
        break;
      case "assistant":
        checkKeys(msg, ASSISTANT_KEYS, where);
        out.push(assistantMessage(msg, where, model, now, toolNamesById));
        break;
      case "tool": {
        checkKeys(msg, TOOL_KEYS, where);
        if (typeof msg.tool_call_id !== "string" || !msg.tool_call_id) {
          throw invalid(`${where}.tool_call_id is required`);
        }
        const toolName = toolNamesById.get(msg.tool_call_id);
        if (toolName === undefined) {
          throw invalid(`${where}.tool_call_id ${JSON.stringify(msg.tool_call_id)} does not answer an earlier assistant tool call`);
        }
        if (msg.name != null && msg.name !== toolName) {
          throw invalid(`${where}.name ${JSON.stringify(msg.name)} does not match the tool call's name ${JSON.stringify(toolName)}`);
        }
        out.push({
          role: "toolResult",
          toolCallId: msg.tool_call_id,
          toolName,
          content: [{ type: "text", text: textOf(msg.content, where) }],
          isError: false,
          timestamp: now,
        });
        break;
      }
      default:
        throw invalid(`${where}.role ${JSON.stringify(msg.role)} cannot be carried (system, developer, user, assistant, tool)`);
    }
  }
  return { messages: out, systemPrompt: system.length ? system.join("\n\n") : undefined };
}

function assistantMessage(msg, where, model, now, toolNamesById) {
  const content = [];
  if (msg.reasoning_content != null) {
    if (typeof msg.reasoning_content !== "string") throw invalid(`${where}.reasoning_content must be a string`);
    if (msg.reasoning_content) content.push({ type: "thinking", thinking: msg.reasoning_content });
  }
  const text = textOf(msg.content, where, { allowNull: true });
  if (text) content.push({ type: "text", text });
  if (msg.tool_calls != null) {
    if (!Array.isArray(msg.tool_calls)) throw invalid(`${where}.tool_calls must be a list`);
    for (let j = 0; j < msg.tool_calls.length; j++) {
      const call = msg.tool_calls[j];
      const at = `${where}.tool_calls[${j}]`;
      if (!isObject(call)) throw invalid(`${at} must be an object`);
      checkKeys(call, TOOL_CALL_KEYS, at);
      if (call.type != null && call.type !== "function") {
        throw invalid(`${at}.type ${JSON.stringify(call.type)} cannot be carried (only "function")`);
      }
      if (typeof call.id !== "string" || !call.id) throw invalid(`${at}.id is required`);
      const fn = call.function;
      if (!isObject(fn) || typeof fn.name !== "string" || !fn.name) throw invalid(`${at}.function.name is required`);
      checkKeys(fn, new Set(["name", "arguments"]), `${at}.function`);
      content.push({ type: "toolCall", id: call.id, name: fn.name, arguments: parseArguments(fn.arguments, at) });
      toolNamesById.set(call.id, fn.name);
    }
  }
  const hasCalls = content.length > 0 && content[content.length - 1].type === "toolCall";
  return {
    role: "assistant",
    content,
    api: model.api,
    provider: model.provider,
    model: model.id,
    usage: EMPTY_USAGE,
    stopReason: hasCalls ? "toolUse" : "stop",
    timestamp: now,
  };
}

function parseArguments(args, at) {
  if (args == null || args === "") return {};
  if (isObject(args)) return args;
  if (typeof args !== "string") throw invalid(`${at}.function.arguments must be JSON text`);
  let parsed;
  try {
    parsed = JSON.parse(args);
  } catch {
    throw invalid(`${at}.function.arguments is not valid JSON`);
  }
  if (!isObject(parsed)) throw invalid(`${at}.function.arguments must be a JSON object`);
  return parsed;
}

// ---- tools --------------------------------------------------------------------------------------

const TOOL_FUNCTION_KEYS = new Set(["name", "description", "parameters", "strict"]);

function convertTools(tools) {
  if (tools == null) return undefined;
  if (!Array.isArray(tools)) throw invalid("body.tools must be a list");
  if (tools.length === 0) return undefined;
  const seen = new Set();
  return tools.map((tool, i) => {
    const where = `tools[${i}]`;
    if (!isObject(tool)) throw invalid(`${where} must be an object`);
    checkKeys(tool, new Set(["type", "function"]), where);
    if (tool.type !== "function") throw invalid(`${where}.type ${JSON.stringify(tool.type)} cannot be carried (only "function")`);
    const fn = tool.function;
    if (!isObject(fn) || typeof fn.name !== "string" || !fn.name) throw invalid(`${where}.function.name is required`);
    checkKeys(fn, TOOL_FUNCTION_KEYS, `${where}.function`);
    if (seen.has(fn.name)) throw invalid(`${where}.function.name ${JSON.stringify(fn.name)} is declared twice`);
    seen.add(fn.name);
    if (fn.description != null && typeof fn.description !== "string") throw invalid(`${where}.function.description must be a string`);
    if (fn.parameters != null && !isObject(fn.parameters)) throw invalid(`${where}.function.parameters must be a JSON schema object`);
    const out = {
      name: fn.name,
      description: fn.description ?? "",
      parameters: fn.parameters ?? { type: "object", properties: {} },
    };
    if (fn.strict === true) out.constrainedSampling = { type: "json_schema", strict: "require" };
    else if (fn.strict != null && fn.strict !== false) throw invalid(`${where}.function.strict must be a boolean`);
    return out;
  });
}

// ---- options ------------------------------------------------------------------------------------

function convertOptions(options) {
  const out = {};
  if (options == null) return out;
  if (!isObject(options)) throw invalid("body.options must be an object");
  for (const key in options) {
    const v = options[key];
    if (v === null || v === undefined) continue;
    if (!OPTION_KEYS.has(key)) throw invalid(`options.${key} is not a known option`);
    switch (key) {
      case "temperature":
        if (typeof v !== "number" || !Number.isFinite(v) || v < 0) throw invalid("options.temperature must be a number >= 0");
        break;
      case "max_tokens":
        if (!Number.isInteger(v) || v < 1) throw invalid("options.max_tokens must be an integer >= 1");
        break;
      case "reasoning":
        // Which levels a model takes is pi's (the adapter checks against /models thinking_levels).
        if (typeof v !== "string" || !v) throw invalid("options.reasoning must be a thinking level such as \"low\"");
        break;
      case "tool_choice":
        if (v === "auto" || v === "none" || v === "required") break;
        if (isObject(v) && v.type === "function" && isObject(v.function) && typeof v.function.name === "string" && v.function.name) {
          break;
        }
        throw invalid('options.tool_choice must be "auto", "none", "required" or {"type": "function", "function": {"name": ...}}');
      case "stop":
        if (typeof v === "string") break;
        if (Array.isArray(v) && v.every((s) => typeof s === "string" && s.length > 0)) break;
        throw invalid("options.stop must be a string or a list of non-empty strings");
      case "session_id":
        if (typeof v !== "string" || !v) throw invalid("options.session_id must be a non-empty string");
        break;
      case "timeout_ms":
        if (!Number.isInteger(v) || v < 1 || v > MAX_TIMEOUT_MS) {
          throw invalid(`options.timeout_ms must be an integer between 1 and ${MAX_TIMEOUT_MS}`);
        }
        break;
      case "top_p":
        if (typeof v !== "number" || !(v >= 0 && v <= 1)) throw invalid("options.top_p must be a number from 0 to 1");
        break;
      case "seed":
        if (!Number.isSafeInteger(v)) throw invalid("options.seed must be an integer");
        break;
      case "presence_penalty":
      case "frequency_penalty":
        if (typeof v !== "number" || !(v >= -2 && v <= 2)) throw invalid(`options.${key} must be a number from -2 to 2`);
        break;
      case "user":
        if (typeof v !== "string" || !v) throw invalid("options.user must be a non-empty string");
        break;
      case "parallel_tool_calls":
        if (typeof v !== "boolean") throw invalid("options.parallel_tool_calls must be true or false");
        break;
      case "response_format":
        checkResponseFormat(v, "options.response_format");
        break;
    }
    out[key] = v;
  }
  return out;
}

const SCHEMA_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * `{"type": "text"}`, `{"type": "json_object"}` or `{"type": "json_schema", "json_schema":
 * {"name", "schema"?, "strict"?, "description"?}}` (OpenAI's response_format), else a 400.
 */
export function checkResponseFormat(v, where) {
  if (!isObject(v)) throw invalid(`${where} must be an object such as {"type": "json_object"}`);
  if (v.type === "text" || v.type === "json_object") {
    checkKeys(v, new Set(["type"]), where);
    return v;
  }
  if (v.type !== "json_schema") {
    throw invalid(`${where}.type must be "text", "json_object" or "json_schema", not ${JSON.stringify(v.type)}`);
  }
  checkKeys(v, new Set(["type", "json_schema"]), where);
  const js = v.json_schema;
  if (!isObject(js)) throw invalid(`${where}.json_schema is required with type "json_schema" (name, schema, strict)`);
  checkKeys(js, new Set(["name", "schema", "strict", "description"]), `${where}.json_schema`);
  if (typeof js.name !== "string" || !SCHEMA_NAME.test(js.name)) {
    throw invalid(`${where}.json_schema.name must be 1-64 letters, digits, "_" or "-"`);
  }
  if (js.schema != null && !isObject(js.schema)) throw invalid(`${where}.json_schema.schema must be a JSON schema object`);
  if (js.strict != null && typeof js.strict !== "boolean") throw invalid(`${where}.json_schema.strict must be true or false`);
  if (js.description != null && typeof js.description !== "string") throw invalid(`${where}.json_schema.description must be a string`);
  return v;
}

// ---- pi events -> SSE ---------------------------------------------------------------------------

export { sseFrame } from "./sse.mjs"; // the frame format lives with the writer

/** The deltas-only payload for a pi event (never the growing `partial`); done/error are built by the route. */
export function eventData(ev, model) {
  switch (ev.type) {
    case "start":
      return { model: { provider: model.provider, id: model.id } };
    case "text_delta":
    case "thinking_delta":
    case "toolcall_delta":
      return { contentIndex: ev.contentIndex, delta: ev.delta };
    case "toolcall_start": {
      const block = ev.partial?.content?.[ev.contentIndex];
      return { contentIndex: ev.contentIndex, id: block?.id, name: block?.name };
    }
    case "toolcall_end":
      return { contentIndex: ev.contentIndex, toolCall: ev.toolCall };
    default:
      return { contentIndex: ev.contentIndex };
  }
}
