// The gateway's login flows (routes/auth_login.mjs): each one is pi's own login for one provider,
// running in the adapter, whose prompts and notifications become events for the HTTP stream that
// started it. The registry bounds them: at most `maxFlows` at once, one per provider, each ended
// by itself after `timeoutMs`; cancelling one (DELETE, the stream's client going away, shutdown)
// aborts pi's flow and resolves once pi's code has unwound, which closes its callback server.
// No pi import here: the adapter's login() is handed in.

import { randomBytes } from "node:crypto";
import { GatewayError, addSecret, redact } from "./errors.mjs";

export const FLOW_LIMITS = Object.freeze({
  maxFlows: 4, // a person logs in to one provider at a time; a few leave room for a retry
  timeoutMs: 10 * 60 * 1000, // pi's own device flows allow 15 min, its callback servers 5 min
  inputChars: 16384, // a pasted redirect URL or API key
});

const MAX_MESSAGE = 1000;
const clip = (s) => (s.length > MAX_MESSAGE ? `${s.slice(0, MAX_MESSAGE)}... [truncated]` : s);

// OAuth fields whose values pi's error texts may quote from a provider's response (codes,
// verifiers, tokens, keys) in `name=value` or JSON `"name":"value"` form.
const OAUTH_FIELDS =
  /((?:^|[^A-Za-z_])(?:code|code_verifier|device_code|device_auth_id|authorization_code|access|refresh|access_token|refresh_token|id_token|token|key|api_key|client_secret)["']?\s*[:=]\s*["']?)[^\s"'&;,}]{4,}/gi;

/** redact() plus OAuth field values: for every text that leaves a login flow. */
export function redactLogin(text) {
  if (typeof text !== "string") return text;
  return redact(text).replace(OAUTH_FIELDS, (_m, prefix) => `${prefix}[redacted]`);
}

/** Remember what a user typed into a secret or pasted prompt (and the code inside a pasted URL). */
function rememberInput(value) {
  addSecret(value);
  const text = value.trim();
  addSecret(text);
  try {
    const url = new URL(text);
    for (const name of ["code", "state", "key"]) addSecret(url.searchParams.get(name) ?? undefined);
    addSecret(new URLSearchParams(url.hash.slice(1)).get("code") ?? undefined);
  } catch {
    for (const part of text.split(/[#&=]/)) addSecret(part);
  }
}

const SECRET_PROMPTS = new Set(["secret", "manual_code"]);

/** One running login. Events are queued until the stream reads them. */
class Flow {
  #queue = [];
  #wake = null;
  #ended = false;
  #promptSeq = 0;

  constructor({ provider, method, timeoutMs }) {
    this.id = `login_${randomBytes(12).toString("hex")}`;
    this.provider = provider;
    this.method = method;
    this.timeoutMs = timeoutMs;
    this.controller = new AbortController();
    this.reason = undefined; // "timeout" | "cancelled" | "client" | "shutdown"
    this.prompts = new Map(); // prompt id -> {type, resolve, reject}
    this.settled = null; // promise of pi's login, set by start()
  }

  get signal() {
    return this.controller.signal;
  }

  /** Queue an event for the stream (`type`, JSON data). After the end, nothing more is queued. */
  emit(type, data) {
    if (this.#ended) return;
    if (type === "done" || type === "error") this.#ended = true;
    this.#queue.push({ type, data });
    this.#wake?.();
  }

  /** The events, ending after `done` or `error`. */
  async *events() {
    while (true) {
      while (this.#queue.length) {
        const ev = this.#queue.shift();
        yield ev;
        if (ev.type === "done" || ev.type === "error") return;
      }
      await new Promise((resolve) => {
        this.#wake = resolve;
      });
      this.#wake = null;
    }
  }

  abort(reason) {
    if (this.reason !== undefined || this.#ended) return;
    this.reason = reason;
    this.controller.abort(new Error(`login ${reason}`));
  }

  /** pi's AuthInteraction: prompts become `prompt` events answered by answer(), notifications events. */
  interaction() {
    return {
      signal: this.signal,
      prompt: (prompt) => this.#prompt(prompt),
      notify: (event) => this.#notify(event),
    };
  }

  #prompt(prompt) {
    return new Promise((resolve, reject) => {
      const signals = [this.signal, prompt.signal].filter(Boolean);
      if (signals.some((s) => s.aborted)) {
        reject(new Error("Login cancelled"));
        return;
      }
      const id = ++this.#promptSeq;
      const onAbort = () => {
        if (!this.prompts.delete(id)) return;
        this.emit("prompt_closed", { id }); // e.g. the browser callback won over a pasted code
        reject(new Error("Login cancelled"));
      };
      for (const s of signals) s.addEventListener("abort", onAbort, { once: true });
      const cleanup = () => {
        for (const s of signals) s.removeEventListener("abort", onAbort);
      };
      this.prompts.set(id, {
        type: prompt.type,
        resolve: (value) => {
          cleanup();
          resolve(value);
        },
        options: prompt.type === "select" ? prompt.options.map((o) => o.id) : null,
      });
      const data = { id, type: prompt.type, message: redactLogin(prompt.message) };
      if (prompt.placeholder !== undefined) data.placeholder = redactLogin(prompt.placeholder);
      if (prompt.type === "select") {
        data.options = prompt.options.map((o) => ({
          id: o.id,
          label: o.label,
          ...(o.description ? { description: o.description } : {}),
        }));
      }
      this.emit("prompt", data);
    });
  }

  #notify(event) {
    switch (event?.type) {
      case "auth_url":
        this.emit("auth_url", { url: event.url, ...(event.instructions ? { instructions: redactLogin(event.instructions) } : {}) });
        break;
      case "device_code": {
        const data = { userCode: event.userCode, verificationUri: event.verificationUri };
        if (event.intervalSeconds !== undefined) data.intervalSeconds = event.intervalSeconds;
        if (event.expiresInSeconds !== undefined) data.expiresInSeconds = event.expiresInSeconds;
        this.emit("device_code", data);
        break;
      }
      case "info":
        this.emit("info", { message: redactLogin(event.message), links: (event.links ?? []).map((l) => ({ url: l.url, ...(l.label ? { label: l.label } : {}) })) });
        break;
      case "progress":
        this.emit("progress", { message: redactLogin(event.message) });
        break;
      default:
        break; // an event kind this gateway does not know yet: nothing secret is forwarded
    }
  }

  /** Answer pending prompt `promptId` (the only one when omitted). */
  answer(promptId, value) {
    if (typeof value !== "string") throw new GatewayError("invalid_request", "body.value must be a string");
    if (value.length > FLOW_LIMITS.inputChars) {
      throw new GatewayError("invalid_request", `body.value is longer than ${FLOW_LIMITS.inputChars} characters`);
    }
    let id = promptId;
    if (id === undefined) {
      if (this.prompts.size !== 1) {
        throw new GatewayError("invalid_request", this.prompts.size ? "several prompts are pending; give body.prompt_id" : `login ${this.id} has no pending prompt`);
      }
      id = [...this.prompts.keys()][0];
    }
    const pending = this.prompts.get(id);
    if (!pending) {
      throw new GatewayError("invalid_request", `login ${this.id} has no pending prompt ${id} (it was answered or closed; see the stream)`);
    }
    if (pending.options && !pending.options.includes(value)) {
      throw new GatewayError("invalid_request", `prompt ${id} is a choice; body.value must be one of ${JSON.stringify(pending.options)}`);
    }
    if (SECRET_PROMPTS.has(pending.type)) rememberInput(value);
    this.prompts.delete(id);
    pending.resolve(value);
    return { id };
  }
}

/** The gateway's flows: start, find, cancel; bounded in number and time. */
export class LoginFlows {
  #flows = new Map();

  constructor({ maxFlows = FLOW_LIMITS.maxFlows, timeoutMs = FLOW_LIMITS.timeoutMs, logger } = {}) {
    this.maxFlows = maxFlows;
    this.timeoutMs = timeoutMs;
    this.logger = logger;
  }

  get size() {
    return this.#flows.size;
  }

  /**
   * Start pi's login: `run(interaction)` is the adapter's login and resolves to `{provider,
   * method, source, warning?}`. `timeoutMs` (at most the registry's) bounds it. Throws 503
   * overloaded when `maxFlows` run, 409 conflict when this provider already has one.
   */
  start({ provider, method, timeoutMs, run }) {
    for (const flow of this.#flows.values()) {
      if (flow.provider === provider) {
        throw new GatewayError("conflict", `a login to "${provider}" is already running (${flow.id}); finish it or cancel it with DELETE /auth/login/${flow.id}`);
      }
    }
    if (this.#flows.size >= this.maxFlows) {
      throw new GatewayError("overloaded", `${this.#flows.size} logins are running, the most this gateway holds; finish or cancel one (DELETE /auth/login/{id})`);
    }
    const limit = Math.min(timeoutMs ?? this.timeoutMs, this.timeoutMs);
    const flow = new Flow({ provider, method, timeoutMs: limit });
    this.#flows.set(flow.id, flow);
    const timer = setTimeout(() => flow.abort("timeout"), limit);
    flow.settled = (async () => {
      try {
        const result = await run(flow.interaction(), flow.signal);
        if (flow.reason !== undefined) throw new Error("Login cancelled"); // pi finished after the abort
        flow.emit("done", result);
      } catch (err) {
        flow.emit("error", { error: this.#failure(flow, err) });
      } finally {
        clearTimeout(timer);
        for (const pending of flow.prompts.values()) pending.resolve(""); // nobody answers them now
        flow.prompts.clear();
        this.#flows.delete(flow.id);
      }
    })();
    return flow;
  }

  #failure(flow, err) {
    const seconds = Math.round(flow.timeoutMs / 100) / 10;
    let gerr;
    if (flow.reason === "timeout") {
      gerr = new GatewayError("login_timeout", `the login to "${flow.provider}" did not finish within ${seconds} s and was stopped; start it again`);
    } else if (flow.reason === "shutdown") {
      gerr = new GatewayError("shutting_down", "the gateway is shutting down; the login was stopped");
    } else if (flow.reason !== undefined) {
      gerr = new GatewayError("login_cancelled", `the login to "${flow.provider}" was cancelled`);
    } else if (err instanceof GatewayError) {
      gerr = err;
    } else {
      const text = clip(redactLogin(String(err?.message ?? err)).split("; stack=")[0]);
      gerr = new GatewayError("login_failed", `pi's ${flow.method} login to "${flow.provider}" failed: ${text}`);
    }
    this.logger?.warn({ event: "login_failed", provider: flow.provider, method: flow.method, error_type: gerr.type, reason: flow.reason });
    return { type: gerr.type, message: redactLogin(gerr.message) };
  }

  get(id) {
    const flow = this.#flows.get(id);
    if (!flow) {
      throw new GatewayError("not_found", `login ${String(id).slice(0, 80)} is not running (it finished, timed out or was cancelled, or never existed)`);
    }
    return flow;
  }

  /** Abort a flow and wait until pi's code has unwound (its callback server is closed then). */
  async cancel(id, reason = "cancelled") {
    const flow = this.get(id);
    flow.abort(reason);
    await flow.settled;
    // pi's Models.login races the flow against the abort signal and may return before the flow's
    // own `finally` (which closes its callback server) ran; that runs in the same burst of
    // microtasks, so one macrotask later it has.
    await new Promise((resolve) => setImmediate(resolve));
    return flow;
  }

  /** Stop every flow (shutdown). */
  async closeAll() {
    await Promise.all([...this.#flows.keys()].map((id) => this.cancel(id, "shutdown").catch(() => {})));
  }
}
