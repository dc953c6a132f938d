// OpenAI Responses API <-> the native protocol and pi (docs/openai.md "Responses"). `input` items
// (messages, function_call, function_call_output, reasoning) become chat messages for convert.mjs,
// so the message conversion is still written once; pi's message and stream events come back as a
// `response` object and the official event sequence. Nothing is stored: `previous_response_id`,
// `store: true`, `conversation` and item references are a 400 saying so.

import { checkResponseFormat } from "./convert.mjs";
import {
  OPENAI_COMMON_KEYS,
  OPENAI_COMMON_REFUSED,
  REASONING_EFFORT,
  bad,
  checkV1Body,
  commonOptions,
  isObject,
  newId,
} from "./convert_openai.mjs";

const NOTHING_STORED = "the gateway stores nothing";
/** Known parameters of POST /v1/responses that cannot be honoured when set (not null). */
const RESPONSES_REFUSED = {
  ...OPENAI_COMMON_REFUSED,
  previous_response_id: `previous_response_id: ${NOTHING_STORED}; send the whole conversation in input`,
  conversation: `conversation: ${NOTHING_STORED}; send the whole conversation in input`,
  background: "background responses are not carried (nothing is stored to poll)",
  prompt: "stored prompt templates are not carried; send instructions and input",
  max_tool_calls: "max_tool_calls is not carried by the gateway",
  context_management: "context_management is not carried by the gateway",
};
const RESPONSES_KEYS = new Set([
  ...OPENAI_COMMON_KEYS, "input", "instructions", "reasoning", "max_output_tokens", "text", "truncation",
  "include", ...Object.keys(RESPONSES_REFUSED),
]);

/** Native option names as the Responses API calls them (for error messages). */
export const RESPONSES_OPTION_NAMES = Object.freeze({
  max_tokens: "max_output_tokens",
  reasoning: "reasoning.effort",
  session_id: "prompt_cache_key",
  response_format: "text.format",
});

// ---- input items -> chat messages ----------------------------------------------------------------

function contentParts(content, where, role) {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) throw bad(`${where}.content`, `${where}.content must be a string or a list of content parts`);
  return content.map((part, i) => {
    const at = `${where}.content[${i}]`;
    if (!isObject(part)) throw bad(at, `${at} must be an object`);
    switch (part.type) {
      case "input_text":
      case "output_text":
      case "text":
        if (typeof part.text !== "string") throw bad(`${at}.text`, `${at}.text must be a string`);
        if (part.type === "output_text" && role !== "assistant") throw bad(at, `${at}: output_text belongs to assistant messages`);
        return { type: "text", text: part.text };
      case "input_image": {
        if (role !== "user") throw bad(at, `${at}: images belong to user messages`);
        if (part.file_id != null) throw bad(`${at}.file_id`, `${at}.file_id: ${NOTHING_STORED} (no files); send a base64 data: URL in image_url`);
        if (part.detail != null && part.detail !== "auto") throw bad(`${at}.detail`, `${at}.detail ${JSON.stringify(part.detail)} cannot be carried (only "auto")`);
        return { type: "image_url", image_url: { url: part.image_url } };
      }
      case "refusal":
        if (typeof part.refusal !== "string") throw bad(`${at}.refusal`, `${at}.refusal must be a string`);
        return { type: "text", text: part.refusal };
      default:
        throw bad(`${at}.type`, `${at} (type ${JSON.stringify(part.type)}) cannot be carried: input_text, input_image (base64) and output_text parts only`);
    }
  });
}

const MESSAGE_KEYS = new Set(["type", "role", "content", "id", "status", "phase"]);

/** `input` (a string or a list of items) -> chat messages, in order. */
function inputMessages(input, instructions) {
  const messages = [];
  if (instructions != null) {
    if (typeof instructions !== "string") throw bad("instructions", "instructions must be a string");
    if (instructions) messages.push({ role: "system", content: instructions });
  }
  if (typeof input === "string") {
    messages.push({ role: "user", content: input });
    return messages;
  }
  if (!Array.isArray(input)) throw bad("input", "input must be a string or a list of input items");
  let assistant = null; // the assistant message that function_call items join
  let reasoning = "";
  const openAssistant = () => {
    if (!assistant) {
      assistant = { role: "assistant", content: null, tool_calls: [] };
      if (reasoning) assistant.reasoning_content = reasoning;
      reasoning = "";
      messages.push(assistant);
    }
    return assistant;
  };
  const close = () => {
    if (assistant && assistant.tool_calls.length === 0) delete assistant.tool_calls;
    assistant = null;
  };
  input.forEach((item, i) => {
    const where = `input[${i}]`;
    if (!isObject(item)) throw bad(where, `${where} must be an object`);
    const type = item.type ?? (item.role ? "message" : undefined);
    switch (type) {
      case "message": {
        for (const key in item) if (!MESSAGE_KEYS.has(key) && item[key] != null) throw bad(`${where}.${key}`, `${where}.${key} is not supported`);
        const role = item.role;
        if (!["user", "system", "developer", "assistant"].includes(role)) {
          throw bad(`${where}.role`, `${where}.role ${JSON.stringify(role)} cannot be carried (user, system, developer, assistant)`);
        }
        const content = contentParts(item.content, where, role);
        if (role === "assistant") {
          if (assistant && (assistant.content !== null || assistant.tool_calls.length)) close();
          const msg = openAssistant();
          msg.content = typeof content === "string" ? content : content.map((p) => p.text).join("");
        } else {
          close();
          messages.push({ role, content });
        }
        return;
      }
      case "function_call": {
        if (typeof item.call_id !== "string" || !item.call_id) throw bad(`${where}.call_id`, `${where}.call_id is required`);
        if (typeof item.name !== "string" || !item.name) throw bad(`${where}.name`, `${where}.name is required`);
        if (item.arguments != null && typeof item.arguments !== "string") throw bad(`${where}.arguments`, `${where}.arguments must be JSON text`);
        openAssistant().tool_calls.push({ id: item.call_id, type: "function", function: { name: item.name, arguments: item.arguments ?? "" } });
        return;
      }
      case "function_call_output": {
        close();
        if (typeof item.call_id !== "string" || !item.call_id) throw bad(`${where}.call_id`, `${where}.call_id is required`);
        let output = item.output;
        if (Array.isArray(output)) output = contentParts(output, where, "tool");
        else if (typeof output !== "string") throw bad(`${where}.output`, `${where}.output must be a string or a list of input_text parts`);
        messages.push({ role: "tool", tool_call_id: item.call_id, content: output });
        return;
      }
      case "reasoning": {
        close();
        const parts = [...(item.content ?? []), ...(item.content?.length ? [] : (item.summary ?? []))];
        reasoning += parts.map((p) => (isObject(p) && typeof p.text === "string" ? p.text : "")).join("");
        return;
      }
      case "item_reference":
        throw bad(where, `${where}: item references need stored items, and ${NOTHING_STORED}; send the item itself`);
      default:
        throw bad(`${where}.type`, `${where} (type ${JSON.stringify(type)}) cannot be carried: message, function_call, function_call_output and reasoning items only`);
    }
  });
  close();
  // the error messages of convert.mjs name chat messages: keep it honest by checking non-empty here
  if (messages.every((m) => m.role === "system")) throw bad("input", "input has no message to answer");
  return messages;
}

function convertTools(tools) {
  if (tools == null) return undefined;
  if (!Array.isArray(tools)) throw bad("tools", "tools must be a list");
  return tools.map((tool, i) => {
    const where = `tools[${i}]`;
    if (!isObject(tool) || tool.type !== "function") {
      throw bad(`${where}.type`, `${where} (type ${JSON.stringify(tool?.type)}) cannot be carried: only function tools (no hosted tools)`);
    }
    for (const key in tool) {
      if (!["type", "name", "description", "parameters", "strict"].includes(key) && tool[key] != null) throw bad(`${where}.${key}`, `${where}.${key} is not supported`);
    }
    const fn = { name: tool.name };
    if (tool.description != null) fn.description = tool.description;
    if (tool.parameters != null) fn.parameters = tool.parameters;
    if (tool.strict != null) fn.strict = tool.strict;
    return { type: "function", function: fn };
  });
}

function convertToolChoice(choice) {
  if (choice == null || typeof choice === "string") return choice ?? undefined;
  if (isObject(choice) && choice.type === "function" && typeof choice.name === "string") return { type: "function", function: { name: choice.name } };
  throw bad("tool_choice", 'tool_choice must be "auto", "none", "required" or {"type": "function", "name": ...}');
}

/**
 * Check a Responses body (model-independent parts) and map it onto the native protocol.
 * Returns {model, native, stream, echo} where `echo` holds the request fields a response repeats.
 */
export function parseResponsesRequest(body) {
  checkV1Body(body, "/v1/responses");
  for (const key in body) {
    if (body[key] === null || body[key] === undefined) continue;
    if (!RESPONSES_KEYS.has(key)) throw bad(key, `${key} is not a parameter of /v1/responses`);
    if (key in RESPONSES_REFUSED) throw bad(key, RESPONSES_REFUSED[key]);
  }
  if (body.input == null) throw bad("input", "input is required: a string or a list of input items");
  if (body.store != null && body.store !== false) throw bad("store", `store: ${NOTHING_STORED}; send store=false (or leave it out)`);
  if (body.metadata != null) throw bad("metadata", `metadata is kept only with stored responses, and ${NOTHING_STORED}`);
  if (body.truncation != null && body.truncation !== "disabled") throw bad("truncation", 'truncation: only "disabled" is carried');
  if (body.include != null && !(Array.isArray(body.include) && body.include.length === 0)) {
    throw bad("include", "include: no extra output data is carried (reasoning comes as reasoning items with reasoning_text)");
  }
  if (body.service_tier != null && body.service_tier !== "auto" && body.service_tier !== "default") {
    throw bad("service_tier", `service_tier ${JSON.stringify(body.service_tier)} is not carried (only "auto" or "default")`);
  }
  const stream = body.stream ?? false;
  if (typeof stream !== "boolean") throw bad("stream", "stream must be true or false");
  if (body.stream_options != null) {
    if (!stream) throw bad("stream_options", "stream_options is only allowed with stream: true");
    const so = body.stream_options;
    if (!isObject(so) || Object.keys(so).some((k) => k !== "include_obfuscation")) throw bad("stream_options", "stream_options may only hold include_obfuscation");
  }
  const options = {};
  commonOptions(body, options);
  if (body.max_output_tokens != null) {
    if (!Number.isSafeInteger(body.max_output_tokens) || body.max_output_tokens < 1) throw bad("max_output_tokens", "max_output_tokens must be an integer >= 1");
    options.max_tokens = body.max_output_tokens;
  }
  let effort = null;
  if (body.reasoning != null) {
    const r = body.reasoning;
    if (!isObject(r)) throw bad("reasoning", "reasoning must be an object such as {\"effort\": \"low\"}");
    for (const key in r) if (!["effort", "summary", "generate_summary"].includes(key) && r[key] != null) throw bad(`reasoning.${key}`, `reasoning.${key} is not supported`);
    if (r.effort != null) {
      const level = REASONING_EFFORT[r.effort];
      if (!level) throw bad("reasoning.effort", `reasoning.effort must be one of ${JSON.stringify(Object.keys(REASONING_EFFORT))}`);
      options.reasoning = level;
      effort = r.effort;
    }
  }
  let format = { type: "text" };
  if (body.text != null) {
    const t = body.text;
    if (!isObject(t)) throw bad("text", "text must be an object such as {\"format\": {\"type\": \"json_object\"}}");
    for (const key in t) if (key !== "format" && key !== "verbosity" && t[key] != null) throw bad(`text.${key}`, `text.${key} is not supported`);
    if (t.verbosity != null) throw bad("text.verbosity", "text.verbosity is not carried by the gateway");
    if (t.format != null) {
      const f = t.format;
      if (!isObject(f)) throw bad("text.format", "text.format must be an object");
      const asChat = f.type === "json_schema" ? { type: "json_schema", json_schema: withoutType(f) } : f;
      try {
        checkResponseFormat(asChat, "text.format");
      } catch (err) {
        throw bad("text.format", err.message.replace("text.format.json_schema", "text.format"));
      }
      if (f.type !== "text") options.response_format = asChat;
      format = f;
    }
  }
  if (body.parallel_tool_calls != null) {
    if (typeof body.parallel_tool_calls !== "boolean") throw bad("parallel_tool_calls", "parallel_tool_calls must be true or false");
    if (body.parallel_tool_calls === false) options.parallel_tool_calls = false;
  }
  const toolChoice = convertToolChoice(body.tool_choice);
  if (toolChoice !== undefined) options.tool_choice = toolChoice;
  return {
    model: body.model,
    native: { messages: inputMessages(body.input, body.instructions), tools: convertTools(body.tools), options },
    stream,
    echo: {
      instructions: body.instructions ?? null,
      max_output_tokens: body.max_output_tokens ?? null,
      parallel_tool_calls: body.parallel_tool_calls ?? true,
      reasoning: { effort, summary: body.reasoning?.summary ?? null },
      temperature: body.temperature ?? null,
      top_p: body.top_p ?? null,
      text: { format },
      tool_choice: body.tool_choice ?? "auto",
      tools: body.tools ?? [],
      user: body.user ?? null,
      safety_identifier: body.safety_identifier ?? null,
      prompt_cache_key: body.prompt_cache_key ?? null,
    },
  };
}

function withoutType(f) {
  const { type, ...rest } = f;
  return rest;
}

// ---- response ------------------------------------------------------------------------------------

/** pi's usage -> the Responses API's usage (input = input + cache read + cache write). */
export function responsesUsage(u) {
  const input = u.input + u.cacheRead + u.cacheWrite;
  return {
    input_tokens: input,
    input_tokens_details: { cached_tokens: u.cacheRead, cache_write_tokens: u.cacheWrite },
    output_tokens: u.output,
    output_tokens_details: { reasoning_tokens: u.reasoning ?? 0 },
    total_tokens: input + u.output,
  };
}

const outputText = (text) => ({ type: "output_text", text, annotations: [], logprobs: [] });

/** Output items for pi's content blocks, in order (consecutive text blocks share one message). */
export function outputItems(message) {
  const items = [];
  let msg = null;
  for (const block of message.content) {
    if (block.type === "text") {
      if (!msg) {
        msg = { type: "message", id: newId("msg_"), status: "completed", role: "assistant", content: [] };
        items.push(msg);
      }
      msg.content.push(outputText(block.text));
    } else if (block.type === "thinking") {
      msg = null;
      items.push({ type: "reasoning", id: newId("rs_"), summary: [], content: [{ type: "reasoning_text", text: block.thinking }], status: "completed" });
    } else if (block.type === "toolCall") {
      msg = null;
      items.push({ type: "function_call", id: newId("fc_"), call_id: block.id, name: block.name, arguments: JSON.stringify(block.arguments ?? {}), status: "completed" });
    }
  }
  return items;
}

/**
 * The `response` object. `status`: in_progress (created), completed, incomplete (max_output_tokens)
 * or failed (`error` {code, message}).
 */
export function responseObject({ id, createdAt, model, echo, status, output = [], usage = null, error = null }) {
  return {
    id,
    object: "response",
    created_at: createdAt,
    status,
    completed_at: status === "completed" ? Math.floor(Date.now() / 1000) : null,
    background: false,
    error,
    incomplete_details: status === "incomplete" ? { reason: "max_output_tokens" } : null,
    model,
    output,
    previous_response_id: null,
    store: false,
    metadata: {},
    service_tier: "default",
    truncation: "disabled",
    ...echo,
    usage,
  };
}

/** The final status for pi's stop reason. */
export const finalStatus = (stopReason) => (stopReason === "length" ? "incomplete" : "completed");

/**
 * pi stream events -> the Responses streaming events (type + payload, without sequence_number:
 * the route numbers them). Items open on their first event and close when the next block starts
 * or at the end, each with its added/delta/done events.
 */
export class ResponseEvents {
  constructor(meta) {
    this.meta = meta; // {id, createdAt, model, echo}
    this.output = []; // finished items
    this.current = null; // {item, kind, text, contentIndex: pi's}
  }

  response(status, extra = {}) {
    return responseObject({ ...this.meta, status, ...extra });
  }

  /** response.created and response.in_progress, sent when the stream opens. */
  opening() {
    const response = this.response("in_progress");
    return [
      ["response.created", { response }],
      ["response.in_progress", { response }],
    ];
  }

  #open(kind, ev) {
    const out = this.#close();
    const outputIndex = this.output.length;
    let item;
    if (kind === "message") {
      item = { type: "message", id: newId("msg_"), status: "in_progress", role: "assistant", content: [] };
    } else if (kind === "reasoning") {
      item = { type: "reasoning", id: newId("rs_"), summary: [], content: [], status: "in_progress" };
    } else {
      const block = ev.partial?.content?.[ev.contentIndex];
      item = { type: "function_call", id: newId("fc_"), call_id: block?.id ?? "", name: block?.name ?? "", arguments: "", status: "in_progress" };
    }
    this.current = { item, kind, text: "", outputIndex, contentIndex: ev.contentIndex };
    out.push(["response.output_item.added", { output_index: outputIndex, item: structuredClone(item) }]);
    const ref = { item_id: item.id, output_index: outputIndex, content_index: 0 };
    if (kind === "message") out.push(["response.content_part.added", { ...ref, part: outputText("") }]);
    if (kind === "reasoning") out.push(["response.content_part.added", { ...ref, part: { type: "reasoning_text", text: "" } }]);
    return out;
  }

  #close(finalArgs = undefined) {
    const cur = this.current;
    if (!cur) return [];
    this.current = null;
    const { item, kind, text, outputIndex } = cur;
    const ref = { item_id: item.id, output_index: outputIndex };
    const out = [];
    if (kind === "message") {
      const part = outputText(text);
      out.push(["response.output_text.done", { ...ref, content_index: 0, text, logprobs: [] }]);
      out.push(["response.content_part.done", { ...ref, content_index: 0, part }]);
      item.content = [part];
    } else if (kind === "reasoning") {
      const part = { type: "reasoning_text", text };
      out.push(["response.reasoning_text.done", { ...ref, content_index: 0, text }]);
      out.push(["response.content_part.done", { ...ref, content_index: 0, part }]);
      item.content = [part];
    } else {
      const args = finalArgs ?? text;
      if (!text && args) out.push(["response.function_call_arguments.delta", { ...ref, delta: args }]);
      out.push(["response.function_call_arguments.done", { ...ref, name: item.name, arguments: args }]);
      item.arguments = args;
    }
    item.status = "completed";
    this.output.push(item);
    out.push(["response.output_item.done", { output_index: outputIndex, item }]);
    return out;
  }

  /** The events for one pi event (often none). */
  next(ev) {
    const cur = this.current;
    switch (ev.type) {
      case "text_start":
        return this.#open("message", ev);
      case "thinking_start":
        return this.#open("reasoning", ev);
      case "toolcall_start":
        return this.#open("function_call", ev);
      case "text_delta":
      case "thinking_delta":
      case "toolcall_delta": {
        if (!cur || !ev.delta) return [];
        cur.text += ev.delta;
        const ref = { item_id: cur.item.id, output_index: cur.outputIndex };
        if (cur.kind === "message") return [["response.output_text.delta", { ...ref, content_index: 0, delta: ev.delta, logprobs: [] }]];
        if (cur.kind === "reasoning") return [["response.reasoning_text.delta", { ...ref, content_index: 0, delta: ev.delta }]];
        return [["response.function_call_arguments.delta", { ...ref, delta: ev.delta }]];
      }
      case "text_end":
      case "thinking_end":
        return cur && cur.contentIndex === ev.contentIndex ? this.#close() : [];
      case "toolcall_end":
        if (!cur || cur.contentIndex !== ev.contentIndex) return [];
        // the arguments as pi parsed them, when no delta carried them
        return this.#close(cur.text || JSON.stringify(ev.toolCall?.arguments ?? {}));
      default:
        return [];
    }
  }

  /** response.completed (or response.incomplete at max_output_tokens) with the output and usage. */
  done(message) {
    const out = this.#close();
    const status = finalStatus(message.stopReason);
    const response = this.response(status, { output: this.output, usage: responsesUsage(message.usage) });
    out.push([status === "completed" ? "response.completed" : "response.incomplete", { response }]);
    return out;
  }

  /** response.failed: the items so far, `error` {code, message} (code from OpenAI's ResponseErrorCode). */
  failed(err, partial) {
    const code = err.type === "rate_limit" ? "rate_limit_exceeded" : "server_error";
    const usage = partial?.usage ? responsesUsage(partial.usage) : null;
    const response = this.response("failed", { output: this.output, usage, error: { code, message: err.message } });
    return [["response.failed", { response }]];
  }
}
