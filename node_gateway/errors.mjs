// The gateway's one error table and envelope (docs/protocol.md "Errors").
// Every failure leaves the gateway as {"error": {"type", "message", "request_id", ...}} with the
// status from ERROR_TYPES. classifyFailure() turns pi's `stopReason: "error" | "aborted"` message
// into one of these types; redact() keeps secrets out of every message we emit.

/** type -> HTTP status. The only table; routes never pick a status themselves. */
export const ERROR_TYPES = Object.freeze({
  invalid_request: 400,
  ambiguous_model: 400,
  context_window_exceeded: 400,
  unauthorized: 401,
  forbidden: 403,
  provider_not_configured: 403,
  model_not_found: 404,
  unknown_provider: 404,
  not_found: 404,
  conflict: 409,
  login_cancelled: 409,
  request_too_large: 413,
  rate_limit: 429,
  mailbox_full: 429,
  upstream_auth_error: 502,
  upstream_error: 502,
  login_failed: 502,
  shutting_down: 503,
  overloaded: 503,
  upstream_timeout: 504,
  login_timeout: 504,
  internal_error: 500,
});

/** An error the gateway answers with; `extra` fields go into the envelope (candidates, retry_after...). */
export class GatewayError extends Error {
  constructor(type, message, extra = undefined) {
    super(message);
    if (!(type in ERROR_TYPES)) throw new TypeError(`unknown gateway error type: ${type}`);
    this.name = "GatewayError";
    this.type = type;
    this.statusCode = ERROR_TYPES[type];
    this.extra = extra;
  }
}

export const invalid = (message, extra) => new GatewayError("invalid_request", message, extra);

/** The envelope body for an error. */
export function envelope(err, requestId) {
  const body = { type: err.type, message: err.message, request_id: requestId };
  if (err.extra) {
    for (const key of Object.keys(err.extra)) {
      if (err.extra[key] !== undefined) body[key] = err.extra[key];
    }
  }
  return { error: body };
}

// The OpenAI-compatible routes (/v1/*) answer with OpenAI's envelope {"error": {"message",
// "type", "param", "code"}}: the same statuses, `code` is the native type (OpenAI's own code where
// one exists: "context_length_exceeded", "rate_limit_exceeded"), `type` OpenAI's category.
const OPENAI_TYPES = {
  unauthorized: "authentication_error",
  forbidden: "permission_error",
  provider_not_configured: "permission_error",
  rate_limit: "rate_limit_error",
  upstream_auth_error: "server_error",
  upstream_error: "server_error",
  shutting_down: "server_error",
  overloaded: "server_error",
  upstream_timeout: "timeout_error",
  internal_error: "server_error",
};
const OPENAI_CODES = { context_window_exceeded: "context_length_exceeded", rate_limit: "rate_limit_exceeded" };

/** The OpenAI-shaped envelope for an error (`param`: the request field at fault, or null). */
export function openaiEnvelope(err, requestId) {
  const { param = null, ...extra } = err.extra ?? {};
  const body = {
    message: err.message,
    type: OPENAI_TYPES[err.type] ?? "invalid_request_error",
    param,
    code: OPENAI_CODES[err.type] ?? err.type,
    request_id: requestId,
  };
  for (const key of Object.keys(extra)) {
    if (extra[key] !== undefined) body[key] = extra[key];
  }
  return { error: body };
}

/**
 * True for the OpenAI API's routes: /v1 and below, except the agent message bus (/v1/agents/*,
 * not an OpenAI API: it keeps the native envelope).
 */
export function isOpenAIPath(url) {
  if (!(url === "/v1" || url.startsWith("/v1/") || url.startsWith("/v1?"))) return false;
  return !(url === "/v1/agents" || url.startsWith("/v1/agents/") || url.startsWith("/v1/agents?"));
}

/** The envelope a request gets: OpenAI's on /v1/*, the native one elsewhere. */
export function envelopeFor(request, err) {
  return isOpenAIPath(request.url) ? openaiEnvelope(err, request.id) : envelope(err, request.id);
}

// Fastify's own errors (body parsing, limits, routing) mapped onto the table.
const FASTIFY_CODES = {
  FST_ERR_CTP_BODY_TOO_LARGE: ["request_too_large", null],
  FST_ERR_CTP_INVALID_MEDIA_TYPE: ["invalid_request", "the body must be JSON (content-type: application/json)"],
  FST_ERR_CTP_EMPTY_JSON_BODY: ["invalid_request", "the JSON body is empty"],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: ["invalid_request", "the body length does not match Content-Length"],
};

/**
 * Any thrown value -> GatewayError. Known fastify errors keep their meaning; a JSON syntax error
 * is a 400; a schema validation error names the field; anything else is an internal_error whose
 * message does not leak the original text (it may hold secrets).
 */
export function toGatewayError(err, bodyLimit) {
  if (err instanceof GatewayError) return err;
  const mapped = err && FASTIFY_CODES[err.code];
  if (mapped) {
    if (mapped[0] === "request_too_large") {
      return new GatewayError("request_too_large", `request body is larger than the limit of ${bodyLimit} bytes`);
    }
    return new GatewayError(mapped[0], mapped[1]);
  }
  if (err && err.validation) {
    const e = err.validation[0];
    const path = (e?.instancePath || "").replaceAll("/", ".").slice(1);
    const field = e?.keyword === "required" ? e.params.missingProperty : e?.keyword === "additionalProperties" ? e.params.additionalProperty : null;
    const param = [path, field].filter(Boolean).join(".") || null;
    return invalid(describeValidation(err.validation, err.validationContext), param ? { param } : undefined);
  }
  if (err && (err instanceof SyntaxError || err.code === "FST_ERR_CTP_INVALID_JSON_BODY")) {
    return invalid("the body is not valid JSON");
  }
  if (err && typeof err.statusCode === "number" && err.statusCode >= 400 && err.statusCode < 500) {
    return invalid(redact(String(err.message || "bad request")));
  }
  return new GatewayError("internal_error", "internal error in the gateway (see its log)");
}

function describeValidation(errors, context = "body") {
  const e = errors[0];
  let where = `${context}${(e.instancePath || "").replaceAll("/", ".")}`;
  if (e.keyword === "additionalProperties") {
    return `${where}.${e.params.additionalProperty} is not a known field`;
  }
  if (e.keyword === "required") return `${where}.${e.params.missingProperty} is required`;
  if (e.keyword === "enum") return `${where} must be one of ${JSON.stringify(e.params.allowedValues)}`;
  return `${where} ${e.message}`;
}

// ---- secrets ---------------------------------------------------------------------------------

const SECRET_PATTERNS = [
  /\b(sk|pk|rk)-[A-Za-z0-9_*-]{8,}/g, // OpenAI / Anthropic / many others ("sk-ant-...", masked "sk-...****")
  /\bBearer\s+[A-Za-z0-9._~+/=-]{8,}/gi,
  /\b(AIza[0-9A-Za-z_-]{20,})/g, // Google API keys
  /\b(gh[pousr]_[A-Za-z0-9]{20,})/g, // GitHub tokens
  /\b(xox[abpr]-[A-Za-z0-9-]{10,})/g,
  /\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{5,}/g, // JWTs (OAuth access tokens)
  /((?:api[_-]?key|access[_-]?token|refresh[_-]?token|authorization|x-api-key)["']?\s*[:=]\s*["']?)[^\s"',}]{6,}/gi,
];
const knownSecrets = new Set();

/** Register an exact secret (the gateway token, a key seen on the wire) to scrub from messages. */
export function addSecret(value) {
  if (typeof value === "string" && value.length >= 6) knownSecrets.add(value);
}

/** Remove known secrets and anything shaped like a key/token from text. */
export function redact(text) {
  if (typeof text !== "string" || text.length === 0) return text;
  let out = text;
  for (const secret of knownSecrets) {
    if (out.includes(secret)) out = out.replaceAll(secret, "[redacted]");
  }
  for (const re of SECRET_PATTERNS) {
    re.lastIndex = 0;
    if (re.test(out)) {
      re.lastIndex = 0;
      out = out.replace(re, (match, prefix) =>
        typeof prefix === "string" && /[:=]/.test(prefix) ? `${prefix}[redacted]` : "[redacted]",
      );
    }
  }
  return out;
}

const MAX_UPSTREAM_TEXT = 1000;
const clip = (s) => (s.length > MAX_UPSTREAM_TEXT ? `${s.slice(0, MAX_UPSTREAM_TEXT)}... [truncated]` : s);

// ---- classification of pi failures -------------------------------------------------------------

const STATUS_AT_START = /^(\d{3})(?::|\s+status code|\s)/;
const STATUS_ANYWHERE = /\b(?:status(?: code)?|HTTP)[ :]*(\d{3})\b|\((\d{3})\)/i;
const NOT_CONFIGURED = /Provider is not configured|No API key for provider|No API key found|not configured:/i;
const TIMEOUT = /timed? ?out|timeout/i;

function statusFromMessage(text) {
  const m = STATUS_AT_START.exec(text) || STATUS_ANYWHERE.exec(text);
  if (!m) return undefined;
  const n = Number(m[1] ?? m[2]);
  return n >= 400 && n <= 599 ? n : undefined;
}

/** Seconds from Retry-After (delta-seconds or HTTP date) or retry-after-ms; undefined if absent/bad. */
export function parseRetryAfter(retryAfter, retryAfterMs) {
  if (retryAfterMs != null && retryAfterMs !== "") {
    const ms = Number.parseFloat(retryAfterMs);
    if (Number.isFinite(ms) && ms >= 0) return ms / 1000;
  }
  if (retryAfter == null || retryAfter === "") return undefined;
  const seconds = Number(retryAfter);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds;
  const date = Date.parse(retryAfter);
  if (Number.isFinite(date)) return Math.max(0, (date - Date.now()) / 1000);
  return undefined;
}

/**
 * pi's failed AssistantMessage (+ what the gateway knows about the call) -> GatewayError.
 *
 * facts: {abortReason: "timeout"|"shutdown"|"client"|undefined, timeoutMs, upstreamStatus,
 *         retryAfter, retryAfterMs, overflow: boolean, notConfiguredMessage: () => string}
 */
export function classifyFailure(message, facts) {
  const raw = (message && message.errorMessage) || "the upstream call failed without a message";
  const text = clip(redact(raw));
  if (facts.abortReason === "timeout") {
    return new GatewayError("upstream_timeout", `no complete answer from the upstream within ${facts.timeoutMs} ms`);
  }
  if (facts.abortReason === "shutdown") {
    return new GatewayError("shutting_down", "the gateway is shutting down; the call was aborted");
  }
  if (facts.overflow) {
    return new GatewayError("context_window_exceeded", `the prompt does not fit the model's context window: ${text}`);
  }
  if (NOT_CONFIGURED.test(raw) && facts.notConfiguredMessage) {
    return new GatewayError("provider_not_configured", facts.notConfiguredMessage());
  }
  const status = facts.upstreamStatus >= 400 ? facts.upstreamStatus : statusFromMessage(raw);
  if (status === 429) {
    const retryAfter = parseRetryAfter(facts.retryAfter, facts.retryAfterMs);
    return new GatewayError("rate_limit", `upstream rate limit: ${text}`, {
      upstream_status: 429,
      retry_after: retryAfter,
    });
  }
  if (status === 401 || status === 403) {
    return new GatewayError("upstream_auth_error", `the upstream refused the credentials (${status}): ${text}`, {
      upstream_status: status,
    });
  }
  if (status === 400 || status === 422) {
    return new GatewayError("invalid_request", `the upstream rejected the request (${status}): ${text}`, {
      upstream_status: status,
    });
  }
  if (status === 404) {
    return new GatewayError("model_not_found", `the upstream does not know this model (404): ${text}`, {
      upstream_status: 404,
    });
  }
  if (status === 408 || (status === undefined && TIMEOUT.test(raw))) {
    return new GatewayError("upstream_timeout", `the upstream timed out: ${text}`, { upstream_status: status });
  }
  if (facts.abortReason === undefined && message && message.stopReason === "aborted") {
    return new GatewayError("upstream_error", `the upstream call was aborted: ${text}`);
  }
  return new GatewayError("upstream_error", `upstream error: ${text}`, { upstream_status: status });
}
