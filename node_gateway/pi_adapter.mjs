// The only module that imports pi (@earendil-works/pi-ai, pi-coding-agent 1.6.0). Everything
// version-specific lives here: runtime creation (offline), extra providers, the model catalog
// and its name resolution, auth status, per-API capabilities (tool_choice, stop), the call, and
// login/logout through pi's own flows and credential store.
// A pi upgrade should touch this file only.

import { readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { createAssistantMessageEventStream, getSupportedThinkingLevels, isContextOverflow } from "@earendil-works/pi-ai";
import { getBuiltinProviders } from "@earendil-works/pi-ai/providers/all";
// pi 1.6 has no other home for these: its own provider composer dispatches custom (models.json)
// providers through this API registry, and the env var names live only here (docs/pi.md).
import { findEnvKeys, getApiProviders, registerApiProvider } from "@earendil-works/pi-ai/compat";
import { checkModelName } from "./convert.mjs";
import { GatewayError, addSecret, invalid, redact } from "./errors.mjs";
import { ECHO_API, ECHO_BLOCK, ECHO_PROVIDER, makeEchoStream } from "./echo_provider.mjs";
import { fastFetch } from "./fast_fetch.mjs";
import { PROVIDER_ID as LITELLM, discoverLiteLLM, litellmSource } from "./litellm_proxy.mjs";
import { GuardedCredentials, JsonFile } from "./pi_files.mjs";
import { LIMITS, PROVIDER_KEYS, validateProviderBlocks } from "./provider_blocks.mjs";

// pi-coding-agent's index also loads its TUI, session and tool code (about 50 MB the gateway
// never uses): take the few modules the gateway needs from the package's dist/ by path.
const CODING_AGENT_ENTRY = import.meta.resolve("@earendil-works/pi-coding-agent"); // .../dist/index.js
const importCodingAgentModule = (path) => import(new URL(path, CODING_AGENT_ENTRY).href);
const [{ ModelRuntime, CredentialSynchronizationError }, { AuthStorage }, { SettingsManager }, { findInitialModel }] =
  await Promise.all([
    importCodingAgentModule("./core/model-runtime.js"),
    importCodingAgentModule("./core/auth-storage.js"),
    importCodingAgentModule("./core/settings-manager.js"),
    importCodingAgentModule("./core/model-resolver.js"), // pi's own start-up model choice
  ]);

/** The embedded model's provider id (aiipython._model_names.LOCAL_PROVIDER): a default after every other. */
const LOCAL_PROVIDER = "local";

// Custom (models.json / run-time) providers reach their API through pi's API registry, whose
// entries import the implementation on every call (`import()` costs tens of µs per request).
// openai-completions (the local model's and most custom providers' API) is registered with a
// wrapper that imports it on its first call (the OpenAI SDK, about 8 MB, is not loaded at idle)
// and calls it directly after that.
let openaiCompletions = null;
const loadOpenaiCompletions = () =>
  import("@earendil-works/pi-ai/api/openai-completions").then((m) => (openaiCompletions = m));
registerApiProvider(
  {
    api: "openai-completions",
    stream: (model, context, options) =>
      openaiCompletions
        ? openaiCompletions.stream(model, context, options)
        : loadOpenaiCompletions().then((m) => m.stream(model, context, options)),
    streamSimple: (model, context, options) =>
      openaiCompletions
        ? openaiCompletions.streamSimple(model, context, options)
        : loadOpenaiCompletions().then((m) => m.streamSimple(model, context, options)),
  },
  "aiipython-gateway",
);
// The echo provider's API (echo_provider.mjs): registered like any other, reached through pi.
const streamEcho = makeEchoStream(createAssistantMessageEventStream);
registerApiProvider({ api: ECHO_API, stream: streamEcho, streamSimple: streamEcho }, "aiipython-gateway");

/** pi-coding-agent's version, from its package.json (what pi itself reports). */
export const PI_VERSION = JSON.parse(readFileSync(new URL("../package.json", CODING_AGENT_ENTRY), "utf8")).version;

/** Native options written into the provider payload by the API's `params` (API_CAPS). */
const PAYLOAD_OPTIONS = ["top_p", "seed", "presence_penalty", "frequency_penalty", "user", "parallel_tool_calls"];

/** `$PI_CODING_AGENT_DIR` (with `~` expanded) or `~/.pi/agent`. */
export function defaultAgentDir(env = process.env) {
  const dir = env.PI_CODING_AGENT_DIR;
  if (dir) return dir === "~" ? homedir() : dir.startsWith("~/") ? join(homedir(), dir.slice(2)) : dir;
  return join(homedir(), ".pi", "agent");
}

// ---- per-API capabilities ------------------------------------------------------------------------
// How each pi API carries tool_choice beyond pi's neutral "auto" | "none", and stop sequences (only
// through `onPayload`, editing the provider payload pi built). `fetch`: the API accepts a custom
// fetch, which lets the gateway see the upstream status and Retry-After.

const openaiNamed = (name) => ({ type: "function", function: { name } });
const set = (key) => (payload, value) => {
  payload[key] = value;
};
const hasTools = (payload) => Array.isArray(payload.tools) && payload.tools.length > 0;

// The sampling options and structured output beyond pi's own (temperature, maxTokens), each
// written into the provider payload pi built (`onPayload`). An option missing from an API's
// `params` cannot be carried to it: asking for it is a 400 naming it, never a silent drop.
const openaiParams = {
  top_p: set("top_p"),
  seed: set("seed"),
  presence_penalty: set("presence_penalty"),
  frequency_penalty: set("frequency_penalty"),
  user: set("user"),
  parallel_tool_calls: (p, v) => {
    if (hasTools(p)) p.parallel_tool_calls = v; // OpenAI refuses it without tools
  },
};
const openaiFormat = (p, format) => {
  p.response_format = format.type === "json_object" ? { type: "json_object" } : { type: "json_schema", json_schema: format.json_schema };
};
const responsesFormat = (p, format) => {
  const f = format.type === "json_object" ? { type: "json_object" } : { type: "json_schema", ...format.json_schema };
  p.text = { ...p.text, format: f };
};
const responsesParams = {
  top_p: set("top_p"),
  user: set("user"),
  parallel_tool_calls: (p, v) => {
    if (hasTools(p)) p.parallel_tool_calls = v;
  },
};
const responsesCaps = {
  required: "required",
  named: (name) => ({ type: "function", name }),
  stop: null, // the Responses API has no stop parameter
  params: responsesParams,
  responseFormat: responsesFormat,
  fetch: true,
};
const googleConfig = (key) => (p, v) => {
  p.config = { ...p.config, [key]: v };
};
const googleCaps = {
  required: "any",
  named: null,
  namedPayload: (payload, name) => {
    payload.config = { ...payload.config, toolConfig: { functionCallingConfig: { mode: "ANY", allowedFunctionNames: [name] } } };
  },
  stop: (payload, stop) => {
    payload.config = { ...payload.config, stopSequences: stop };
  },
  params: {
    top_p: googleConfig("topP"),
    seed: googleConfig("seed"),
    presence_penalty: googleConfig("presencePenalty"),
    frequency_penalty: googleConfig("frequencyPenalty"),
  },
  responseFormat: (p, format) => {
    p.config = { ...p.config, responseMimeType: "application/json" };
    if (format.type === "json_schema") p.config.responseJsonSchema = format.json_schema.schema ?? {};
  },
  fetch: false, // pi's Google adapters reject a custom fetch
};
const API_CAPS = {
  "openai-completions": {
    required: "required",
    named: openaiNamed,
    stop: (payload, stop) => {
      payload.stop = stop;
    },
    params: openaiParams,
    responseFormat: openaiFormat,
    fetch: true,
  },
  "openai-responses": responsesCaps,
  "azure-openai-responses": responsesCaps,
  // ChatGPT's subscription backend accepts a narrower request than the public Responses API.
  "openai-codex-responses": { ...responsesCaps, params: {}, responseFormat: null },
  "anthropic-messages": {
    required: "any",
    named: (name) => ({ type: "tool", name }),
    stop: (payload, stop) => {
      payload.stop_sequences = stop;
    },
    params: {
      top_p: set("top_p"),
      user: (p, v) => {
        p.metadata = { ...p.metadata, user_id: v };
      },
      parallel_tool_calls: (p, v) => {
        if (hasTools(p) && v === false) p.tool_choice = { type: "auto", ...p.tool_choice, disable_parallel_tool_use: true };
      },
    },
    responseFormat: null,
    fetch: true,
  },
  "bedrock-converse-stream": {
    required: "any",
    named: (name) => ({ type: "tool", name }),
    stop: (payload, stop) => {
      payload.inferenceConfig = { ...payload.inferenceConfig, stopSequences: stop };
    },
    params: {
      top_p: (p, v) => {
        p.inferenceConfig = { ...p.inferenceConfig, topP: v };
      },
    },
    responseFormat: null,
    fetch: false,
  },
  "google-generative-ai": googleCaps,
  "google-vertex": googleCaps,
  "mistral-conversations": {
    required: "required",
    named: openaiNamed,
    stop: (payload, stop) => {
      payload.stop = stop;
    },
    // pi builds Mistral's payload in camelCase and renames the top-level keys on the wire
    params: {
      top_p: set("topP"),
      seed: set("randomSeed"),
      presence_penalty: set("presencePenalty"),
      frequency_penalty: set("frequencyPenalty"),
      parallel_tool_calls: (p, v) => {
        if (hasTools(p)) p.parallelToolCalls = v;
      },
    },
    responseFormat: (p, format) => {
      p.responseFormat = format.type === "json_object" ? { type: "json_object" } : { type: "json_schema", json_schema: format.json_schema };
    },
    fetch: true,
  },
  // echo_provider.mjs: deterministic, so sampling options have nothing to change; stop cuts the echo
  [ECHO_API]: {
    required: null,
    named: null,
    stop: (payload, stop) => {
      payload.stop = stop;
    },
    params: { top_p: noop, seed: noop, presence_penalty: noop, frequency_penalty: noop, user: noop, parallel_tool_calls: noop },
    responseFormat: null,
    fetch: false,
  },
};
function noop() {}
const UNKNOWN_API_CAPS = { required: null, named: null, stop: null, params: {}, responseFormat: null, fetch: false };

/** Native option names (convert.mjs) carried by pi's own call options, for every API. */
const BASE_OPTIONS = ["temperature", "max_tokens", "tool_choice", "session_id", "timeout_ms"];

/** The native options `model`'s API can carry (GET /models `options`). */
export function carriedOptions(model) {
  const caps = API_CAPS[model.api] ?? UNKNOWN_API_CAPS;
  const out = [...BASE_OPTIONS];
  if (model.reasoning) out.push("reasoning");
  if (caps.stop) out.push("stop");
  out.push(...Object.keys(caps.params));
  if (caps.responseFormat) out.push("response_format");
  return out;
}

// ---- extra providers (models.json provider blocks registered at run time) -----------------------

/** A models.json provider block -> pi's registerProvider config (models.json defaults filled in). */
export function providerConfigFromModelsJson(id, block) {
  if (!block || typeof block !== "object" || Array.isArray(block)) {
    throw new Error(`provider "${id}": expected an object`);
  }
  for (const key of Object.keys(block)) {
    if (!PROVIDER_KEYS.has(key)) throw new Error(`provider "${id}": field "${key}" is not supported at run time`);
  }
  if (block.models === undefined) {
    if (block.compat !== undefined) throw new Error(`provider "${id}": "compat" needs "models" at run time`);
    return { ...block }; // overrides a built-in provider (baseUrl, apiKey, headers)
  }
  if (!Array.isArray(block.models) || block.models.length === 0) {
    throw new Error(`provider "${id}": "models" must be a non-empty list`);
  }
  const { compat, models, ...rest } = block;
  return {
    ...rest,
    models: models.map((m, i) => {
      if (!m || typeof m.id !== "string" || !m.id) throw new Error(`provider "${id}": models[${i}].id is required`);
      return {
        ...m,
        name: m.name ?? m.id,
        reasoning: m.reasoning ?? false,
        input: m.input ?? ["text"],
        cost: m.cost ?? { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 },
        contextWindow: m.contextWindow ?? 128000,
        maxTokens: m.maxTokens ?? 16384,
        compat: compat || m.compat ? { ...compat, ...m.compat } : undefined,
      };
    }),
  };
}

// ---- close matches for unknown names ------------------------------------------------------------

/** Levenshtein distance of a and b, or `max + 1` as soon as it must exceed `max` (O(len · max)). */
function editDistance(a, b, max) {
  if (a === b) return 0;
  if (Math.abs(a.length - b.length) > max) return max + 1;
  const prev = new Array(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    let best = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
      if (prev[j] < best) best = prev[j];
    }
    if (best > max) return max + 1; // every path is already too long
  }
  return prev[b.length];
}

/**
 * Up to `limit` known names close to `name` (edit distance of the id, substrings). Bounded work:
 * names are capped at MAX_MODEL_NAME characters before they get here, and each comparison stops
 * once it is out of range, so an unknown name costs at most about models × 256 × 86 steps.
 */
function closeMatches(name, models, limit = 8) {
  const want = name.toLowerCase();
  const wantId = want.includes("/") ? want.slice(want.indexOf("/") + 1) : want;
  const maxDistance = Math.max(3, Math.floor(wantId.length / 3));
  const scored = [];
  for (const m of models) {
    const id = m.id.toLowerCase();
    const related = id.includes(wantId) || wantId.includes(id);
    const distance = editDistance(wantId, id, related ? Math.max(id.length, wantId.length) : maxDistance);
    if (distance > maxDistance && !related) continue;
    const sameProvider = want.startsWith(`${m.provider.toLowerCase()}/`) ? 0 : 0.5;
    scored.push([distance + sameProvider, `${m.provider}/${m.id}`]);
  }
  scored.sort((x, y) => x[0] - y[0] || (x[1] < y[1] ? -1 : 1));
  return scored.slice(0, limit).map((s) => s[1]);
}

// ---- the adapter ---------------------------------------------------------------------------------

/** Create pi's ModelRuntime over an agent dir (never fetching catalogs) and wrap it. */
export async function createAdapter({ agentDir = defaultAgentDir(), providers = undefined, env = process.env } = {}) {
  process.env.PI_OFFLINE = "1"; // pi reads this at create(): no catalog fetch at start
  const authFile = new JsonFile(join(agentDir, "auth.json"));
  const runtime = await ModelRuntime.create({
    credentials: new GuardedCredentials(AuthStorage.create(authFile.path), authFile),
    modelsPath: join(agentDir, "models.json"),
    allowModelNetwork: false,
  });
  const adapter = new PiAdapter(runtime, { agentDir, authFile });
  await adapter.registerEcho();
  // A `litellm` block without models names a LiteLLM proxy to discover, not a provider to register.
  const { [LITELLM]: litellmBlock, ...rest } = providers ?? {};
  const source = litellmSource(env, litellmBlock);
  if (litellmBlock !== undefined && !source) rest[LITELLM] = litellmBlock;
  if (Object.keys(rest).length) await adapter.registerProviders(rest);
  if (source) await adapter.useLiteLLMProxy(source);
  return adapter;
}

/** pi behind the small surface the routes need. Model lookups are cached until providers change. */
export class PiAdapter {
  #index = null;
  #loadedStamp;
  #builtinIds = new Set(getBuiltinProviders());
  #litellm = null; // the LiteLLM proxy to discover on every reload, or null
  #providersError = {}; // provider id -> why its discovery failed (no secret)
  #registered = new Map(); // id -> effective config of the providers the gateway registered
  #credentialsSeen = new Set(); // providers whose credentials are registered as secrets

  constructor(runtime, { agentDir, authFile = new JsonFile(join(agentDir, "auth.json")) }) {
    this.runtime = runtime;
    this.agentDir = agentDir;
    this.authFile = authFile;
    this.modelsFile = new JsonFile(join(agentDir, "models.json"), { jsonc: true });
    this.piVersion = PI_VERSION;
    this.#loadedStamp = this.#modelsJsonStamp();
  }

  /**
   * Register `{"<id>": <models.json provider block>}` (not written to the user's files), all or
   * nothing: the whole map is validated first (provider_blocks.mjs), and a registration pi refuses
   * half-way is rolled back. `runtime` (PUT /providers): values are literals or `$NAME` from
   * `envAllow`, and a provider pi defines (built in or models.json) may not be replaced, since its
   * credentials would follow a new baseUrl; providers registered earlier by the gateway may.
   */
  async registerProviders(providers, { runtime = false, envAllow = new Set() } = {}) {
    validateProviderBlocks(providers, { runtime, envAllow, knownApis: new Set(getApiProviders().map((p) => p.api)) });
    const ids = Object.keys(providers);
    if (runtime) {
      for (const id of ids) {
        if (!this.#registered.has(id) && (this.#builtinIds.has(id) || this.runtime.getProvider(id))) {
          throw invalid(
            `provider "${id}" is defined by pi (built in or in models.json) and may not be replaced at run time: ` +
              "its credentials would follow the new block; register the endpoint under a new provider id",
          );
        }
      }
      const added = ids.filter((id) => !this.#registered.has(id)).length;
      if (this.#registered.size + added > LIMITS.runtimeProviders) {
        throw invalid(`at most ${LIMITS.runtimeProviders} providers can be registered at run time`);
      }
    }
    for (const id of ids) rememberSecrets(providers[id]); // keys and header values are never echoed
    const configs = ids.map((id) => [id, providerConfigFromModelsJson(id, providers[id])]);
    const applied = [];
    try {
      for (const [id, config] of configs) {
        const previous = this.#registered.get(id);
        this.runtime.registerProvider(id, config);
        applied.push([id, previous]);
        this.#registered.set(id, { ...previous, ...definedEntries(config) }); // pi merges the same way
      }
    } catch (err) {
      for (const [id, previous] of applied.reverse()) {
        this.runtime.unregisterProvider(id);
        if (previous) this.runtime.registerProvider(id, previous);
        else this.#registered.delete(id);
        if (previous) this.#registered.set(id, previous);
      }
      throw err;
    } finally {
      await this.runtime.refresh({ allowNetwork: false });
      this.invalidate();
    }
  }

  /** Register the echo provider (echo_provider.mjs): always listed, no network, no credentials. */
  async registerEcho() {
    this.runtime.registerProvider(ECHO_PROVIDER, providerConfigFromModelsJson(ECHO_PROVIDER, ECHO_BLOCK));
    await this.runtime.refresh({ allowNetwork: false });
    this.invalidate();
  }

  /** Register a ready-made pi Provider (tests: pi's faux provider). */
  async registerNativeProvider(provider) {
    this.runtime.registerNativeProvider(provider);
    await this.runtime.refresh({ allowNetwork: false });
    this.invalidate();
  }

  invalidate() {
    this.#index = null;
  }

  /**
   * Discover a LiteLLM proxy's models now and on every reload, as provider `litellm`. A proxy
   * that is down or answers garbage leaves the provider unregistered and the reason in
   * providersError(); it never fails the caller.
   */
  async useLiteLLMProxy(source) {
    this.#litellm = source;
    await this.#discover();
    await this.runtime.refresh({ allowNetwork: false });
    this.invalidate();
  }

  async #discover() {
    if (!this.#litellm) return;
    try {
      const { block } = await discoverLiteLLM(this.#litellm);
      this.runtime.registerProvider(LITELLM, providerConfigFromModelsJson(LITELLM, block));
      delete this.#providersError[LITELLM];
    } catch (err) {
      this.runtime.unregisterProvider(LITELLM);
      const where = this.#litellm.source === "providers" ? "the litellm provider block" : this.#litellm.source;
      this.#providersError[LITELLM] = `LiteLLM proxy (from ${where}) not registered: ${redact(String(err?.message ?? err))}`;
    }
  }

  /** `{<provider id>: reason}` for providers whose discovery failed, or null. */
  providersError() {
    return Object.keys(this.#providersError).length ? { ...this.#providersError } : null;
  }

  /** Re-read models.json and every provider's auth (pi's refresh, offline), then rebuild the index. */
  async reload() {
    this.#loadedStamp = this.#modelsJsonStamp();
    // A models.json that does not parse would drop every custom provider: keep the last good
    // catalog instead (the error is reported by modelsJsonError, /models and /auth/status).
    if (this.modelsFile.error()) return;
    await this.#discover();
    try {
      await this.runtime.refresh({ allowNetwork: false });
    } catch {
      // pi keeps the last good catalog and reports the problem in getError()
    }
    this.invalidate();
  }

  #modelsJsonStamp() {
    const st = statSync(join(this.agentDir, "models.json"), { throwIfNoEntry: false });
    return st ? `${st.mtimeMs}:${st.size}` : "none";
  }

  #getIndex() {
    if (this.#index) return this.#index;
    const all = this.runtime.getModels();
    const byKey = new Map();
    const byId = new Map();
    for (const m of all) {
      byKey.set(`${m.provider}/${m.id}`, m);
      const list = byId.get(m.id);
      if (list) list.push(m);
      else byId.set(m.id, [m]);
    }
    this.#index = { all, byKey, byId };
    return this.#index;
  }

  /**
   * `provider/id` or a bare id -> pi Model; 400 ambiguous_model / 404 model_not_found otherwise.
   * A name not in the cached index makes pi re-read models.json first when the file changed,
   * so a model added there is found without a restart.
   */
  async resolve(name) {
    checkModelName(name, "model");
    let found = this.#lookup(name);
    if (found === undefined && this.#modelsJsonStamp() !== this.#loadedStamp) {
      await this.reload();
      found = this.#lookup(name);
    }
    if (found === undefined) {
      const candidates = closeMatches(name, this.#getIndex().all);
      const hint = candidates.length ? `; close matches: ${candidates.join(", ")}` : "";
      throw new GatewayError("model_not_found", `unknown model "${name}"${hint}`, { candidates });
    }
    if (Array.isArray(found)) {
      const candidates = found.map((m) => `${m.provider}/${m.id}`).sort();
      throw new GatewayError(
        "ambiguous_model",
        `model id "${name}" is offered by several providers; name one of: ${candidates.join(", ")}`,
        { candidates },
      );
    }
    return found;
  }

  #lookup(name) {
    const index = this.#getIndex();
    const exact = index.byKey.get(name);
    if (exact) return exact;
    const list = index.byId.get(name); // a bare id, or an id that itself contains "/"
    if (!list) return undefined;
    return list.length === 1 ? list[0] : list;
  }

  /**
   * Throw 403 provider_not_configured unless pi has credentials for the model's provider. The
   * first call per provider also fetches them once, so their values are redacted wherever they
   * might be echoed (APIs whose fetch the gateway does not see, such as Google's, included).
   */
  async ensureAuth(model, signal) {
    const configured = this.runtime.hasConfiguredAuth(model.provider);
    if (configured && this.#credentialsSeen.has(model.provider)) return; // the fast path
    let auth;
    try {
      auth = await this.runtime.getAuth(model, { signal });
    } catch (err) {
      if (signal?.aborted) throw err; // the caller knows why (timeout, client gone, shutdown)
      auth = undefined; // e.g. an OAuth refresh that failed: the user must log in again
    }
    if (auth) {
      addSecret(auth.auth?.apiKey);
      for (const value of Object.values(auth.auth?.headers ?? {})) addSecret(value);
      this.#credentialsSeen.add(model.provider);
    } else if (!configured) {
      throw new GatewayError("provider_not_configured", this.notConfiguredMessage(model.provider));
    }
  }

  /** How to give pi credentials for a provider (never a secret). */
  notConfiguredMessage(providerId) {
    const head = `No credentials for provider "${providerId}".`;
    if (providerId === "amazon-bedrock") {
      return `${head} Configure AWS credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_BEARER_TOKEN_BEDROCK).`;
    }
    if (!this.#builtinIds.has(providerId)) {
      return `${head} Set "apiKey" for it in ${join(this.agentDir, "models.json")} (a literal key or "$ENV_VAR"), or in the providers given to the gateway.`;
    }
    const provider = this.runtime.getProvider(providerId);
    const canLogin = Boolean(provider?.auth?.oauth || provider?.auth?.apiKey?.login);
    const envVars = this.envVars(providerId);
    const env = envVars.length ? `set ${envVars.join(" or ")}` : "";
    const login = `Log in with "aiipython auth login ${providerId}"`;
    if (canLogin && env) return `${head} ${login} or ${env}.`;
    if (canLogin) return `${head} ${login}.`;
    if (env) return `${head} ${env[0].toUpperCase()}${env.slice(1)}.`;
    return `${head} Configure it in pi.`;
  }

  /** Env vars pi reads for a provider's API key (names only). */
  envVars(providerId) {
    return findEnvKeys(providerId, ANY_ENV) ?? [];
  }

  /** True when pi says the failed message is a context-window overflow. */
  isOverflow(message, model) {
    return isContextOverflow(message, model.contextWindow);
  }

  /** Options -> pi SimpleStreamOptions for this model; 400 for what pi cannot carry to its API. */
  callOptions(model, opts, toolNames) {
    const caps = API_CAPS[model.api] ?? UNKNOWN_API_CAPS;
    const out = { maxRetries: 0 };
    let payloadEdits = null;
    if (opts.temperature !== undefined) out.temperature = opts.temperature;
    if (opts.max_tokens !== undefined) out.maxTokens = opts.max_tokens;
    if (opts.session_id !== undefined) out.sessionId = opts.session_id;
    if (opts.reasoning !== undefined) {
      // The one owner of the levels: pi's getSupportedThinkingLevels, also /models thinking_levels.
      const levels = getSupportedThinkingLevels(model);
      if (!levels.includes(opts.reasoning)) {
        throw invalid(
          `options.reasoning "${opts.reasoning}" is not supported by ${model.provider}/${model.id}; it supports ${JSON.stringify(levels)}`,
        );
      }
      if (opts.reasoning !== "off") out.reasoning = opts.reasoning;
    }
    const choice = opts.tool_choice;
    if (choice !== undefined) {
      if (choice === "auto" || choice === "none") out.toolChoice = choice;
      else if (choice === "required") {
        if (!caps.required) throw unsupported("options.tool_choice \"required\"", model);
        out.toolChoice = caps.required;
      } else {
        const name = choice.function.name;
        if (!toolNames.includes(name)) {
          throw invalid(`options.tool_choice names function "${name}", which is not in tools`);
        }
        if (caps.named) out.toolChoice = caps.named(name);
        else if (caps.namedPayload) {
          out.toolChoice = caps.required;
          payloadEdits = [(p) => caps.namedPayload(p, name)];
        } else throw unsupported("options.tool_choice naming a function", model);
      }
    }
    for (const key of PAYLOAD_OPTIONS) {
      if (opts[key] === undefined) continue;
      const edit = caps.params[key];
      if (!edit) throw unsupported(`options.${key}`, model);
      const value = opts[key];
      (payloadEdits ??= []).push((p) => edit(p, value));
    }
    const format = opts.response_format;
    if (format !== undefined && format.type !== "text") {
      if (!caps.responseFormat) throw unsupported(`options.response_format ${JSON.stringify(format.type)}`, model);
      (payloadEdits ??= []).push((p) => caps.responseFormat(p, format));
    }
    if (opts.stop !== undefined) {
      const stop = typeof opts.stop === "string" ? [opts.stop] : opts.stop;
      if (stop.length > 0) {
        if (!caps.stop) throw unsupported("options.stop", model);
        (payloadEdits ??= []).push((p) => caps.stop(p, stop));
      }
    }
    if (payloadEdits) {
      out.onPayload = (payload) => {
        for (const edit of payloadEdits) edit(payload);
        return payload;
      };
    }
    return { options: out, usesFetch: caps.fetch };
  }

  /**
   * Start a pi call. Returns pi's event stream and `wire`, which records the last upstream
   * HTTP status and Retry-After when the API lets the gateway supply fetch (fast_fetch.mjs).
   */
  stream(model, context, options, { signal, timeoutMs, usesFetch }) {
    const wire = { status: 0, retryAfter: undefined, retryAfterMs: undefined };
    const piOptions = { ...options, signal, timeoutMs: timeoutMs + 5000 };
    if (usesFetch) {
      piOptions.fetch = (input, init) =>
        fastFetch(input, init).then((res) => {
          wire.status = res.status;
          rememberCredential(init); // a 200 stream can still echo it in an error event
          if (res.status >= 400) {
            wire.retryAfter = res.headers.get("retry-after") ?? undefined;
            wire.retryAfterMs = res.headers.get("retry-after-ms") ?? undefined;
          }
          return res;
        });
    }
    return { events: this.runtime.streamSimple(model, context, piOptions), wire };
  }

  /** Every model pi knows, in /models shape (cost in $ per 1M tokens; no secrets). */
  async listModels() {
    await this.reload();
    const rt = this.runtime;
    return this.#getIndex().all.map((m) => ({
      provider: m.provider,
      id: m.id,
      name: m.name,
      api: m.api,
      reasoning: m.reasoning,
      thinking_levels: getSupportedThinkingLevels(m),
      input: m.input,
      context_window: m.contextWindow,
      max_tokens: m.maxTokens,
      cost: {
        input: m.cost.input,
        output: m.cost.output,
        cache_read: m.cost.cacheRead,
        cache_write: m.cost.cacheWrite,
      },
      available: rt.hasConfiguredAuth(m.provider),
      options: carriedOptions(m),
    }));
  }

  /** `{provider, id}` from pi's settings.json (defaultProvider/defaultModel), or null. */
  settingsDefaultModel() {
    try {
      const settings = SettingsManager.create(this.agentDir, this.agentDir, { projectTrusted: false });
      const provider = settings.getDefaultProvider();
      const id = settings.getDefaultModel();
      return provider && id ? { provider, id } : null;
    } catch {
      return null;
    }
  }

  /**
   * The model pi itself starts with, by pi's own rule (pi-coding-agent's findInitialModel): the
   * settings.json default when pi knows it and has credentials for it, else pi's default model of
   * the first provider with credentials (its defaultModelPerProvider, in pi's order), else the
   * first model with credentials. echo/echo is never chosen (it answers only when named) and the
   * embedded local model only when nothing else has credentials.
   * Returns `{model: {provider, id, source: "settings" | "pi"} | null, warning: string | null}`;
   * `warning` says why a settings.json default was passed over (never silently).
   */
  async defaultModel() {
    const saved = this.settingsDefaultModel();
    const rt = this.runtime;
    let warning = null;
    if (saved) {
      const known = rt.getModel(saved.provider, saved.id);
      const name = `${saved.provider}/${saved.id}`;
      if (!known) {
        const close = closeMatches(name, this.#getIndex().all, 3);
        warning = `pi's default model ${name} (settings.json in ${this.agentDir}) is not a model pi knows` +
          `${close.length ? ` (close: ${close.join(", ")})` : ""}; set another with \`aiipython models default MODEL\``;
      } else if (!rt.hasConfiguredAuth(saved.provider)) {
        warning = `pi's default model ${name} (settings.json) has no credentials (${this.notConfiguredMessage(saved.provider)})`;
      }
    }
    const order = (m) => (m.provider === LOCAL_PROVIDER ? 1 : 0);
    const available = rt.getAvailableSnapshot().filter((m) => m.provider !== ECHO_PROVIDER);
    const candidates = [...available].sort((a, b) => order(a) - order(b)); // stable: pi's order otherwise
    // findInitialModel reads getModel, hasConfiguredAuth and getAvailableSnapshot: the view hides echo.
    const view = new Proxy(rt, {
      get(target, key) {
        if (key === "getAvailableSnapshot") return () => candidates;
        const value = Reflect.get(target, key);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const { model } = await findInitialModel({
      scopedModels: [],
      isContinuing: false,
      defaultProvider: warning ? undefined : saved?.provider,
      defaultModelId: warning ? undefined : saved?.id,
      modelRuntime: view,
    });
    if (!model) return { model: null, warning };
    const fromSettings = !warning && saved && model.provider === saved.provider && model.id === saved.id;
    return { model: { provider: model.provider, id: model.id, source: fromSettings ? "settings" : "pi" }, warning };
  }

  /**
   * Make `name` (`provider/id` or a bare id pi resolves) pi's default model: settings.json's
   * defaultProvider/defaultModel, written by pi's SettingsManager (its file lock and format).
   * Returns `{provider, id}`; 404/400 as resolve().
   */
  async setDefaultModel(name) {
    const model = await this.resolve(name);
    const settings = SettingsManager.create(this.agentDir, this.agentDir, { projectTrusted: false });
    settings.setDefaultModelAndProvider(model.provider, model.id);
    await settings.flush();
    const errors = typeof settings.drainErrors === "function" ? settings.drainErrors() : [];
    if (errors.length) {
      throw new GatewayError("internal_error", `pi could not write settings.json: ${redact(String(errors[0]?.message ?? errors[0]))}`);
    }
    return { provider: model.provider, id: model.id };
  }

  /** pi's message about a broken models.json (or other catalog problems), or null. */
  modelsJsonError() {
    return this.modelsFile.error() ?? redact(this.runtime.getError()) ?? null;
  }

  /** The user's pi files that do not parse: `[{file, message}]` (position and reason, no content). */
  fileErrors() {
    return [this.authFile, this.modelsFile].flatMap((f) => {
      const message = f.error();
      return message ? [{ file: f.path, message }] : [];
    });
  }

  /** Per provider: configured or not and from where; env var names when not configured. */
  async authStatus() {
    await this.reload();
    const rt = this.runtime;
    return rt.getProviders().map((p) => {
      const status = rt.getProviderAuthStatus(p.id);
      const out = { provider: p.id, configured: status.configured, source: null };
      if (status.configured) {
        out.source = authSource(status, rt.isUsingOAuth(p.id));
        if (status.label) out.detail = status.label;
      } else {
        out.env_vars = this.envVars(p.id);
      }
      return out;
    });
  }

  // ---- login (routes/auth_login.mjs; the flow state is login_flows.mjs's) -----------------------
  // pi's own login code: ModelRuntime.login/logout run the provider's flow and write auth.json
  // through pi's credential store under its file lock, so pi and every pi-based tool see it.

  /**
   * Every provider pi can log in to (an OAuth flow, or an API key login), as pi lists them:
   * `[{provider, name, configured, source, methods: [{type: "oauth", name, login_label,
   * subscription, flows} | {type: "api_key", name, env_vars}]}]`. No secret.
   */
  async loginProviders() {
    await this.reload();
    const rt = this.runtime;
    const out = [];
    for (const p of rt.getProviders()) {
      if (this.#gatewayOwned(p.id)) continue; // the echo provider, run-time blocks: not pi's to log in to
      const { oauth, apiKey } = p.auth ?? {};
      const methods = [];
      if (oauth) {
        methods.push({
          type: "oauth",
          name: oauth.name,
          login_label: oauth.loginLabel ?? null,
          subscription: Boolean(oauth.isSubscription),
          flows: OAUTH_FLOWS[p.id] ?? null,
        });
      }
      if (apiKey?.login) methods.push({ type: "api_key", name: apiKey.name, env_vars: this.envVars(p.id) });
      if (!methods.length) continue; // ambient credentials only (AWS, ADC): nothing to log in to
      const status = rt.getProviderAuthStatus(p.id);
      out.push({
        provider: p.id,
        name: p.name,
        configured: status.configured,
        source: status.configured ? authSource(status, rt.isUsingOAuth(p.id)) : null,
        methods,
      });
    }
    return out;
  }

  /** The provider and login method to run, or 404 unknown_provider / 400 for a method it lacks. */
  loginMethod(providerId, method) {
    const provider = this.runtime.getProvider(providerId);
    if (!provider) {
      const ids = this.runtime.getProviders().filter((p) => p.auth?.oauth || p.auth?.apiKey?.login).map((p) => p.id).sort();
      throw new GatewayError("unknown_provider", `pi has no provider "${providerId}"; providers with a login: ${ids.join(", ")}`, { candidates: ids });
    }
    if (this.#gatewayOwned(providerId)) {
      throw invalid(`"${providerId}" is a provider this gateway registered (the echo provider, or a block given at start or by PUT /providers); its credentials come with its block, not from a login`);
    }
    const { oauth, apiKey } = provider.auth ?? {};
    const chosen = method ?? (oauth ? "oauth" : "api_key"); // pi's own default (pi auth login)
    if (chosen === "oauth" && !oauth) {
      throw invalid(`${provider.name} has no OAuth login in pi${apiKey?.login ? '; use method "api_key"' : ""}`);
    }
    if (chosen === "api_key" && !apiKey?.login) {
      throw invalid(`${provider.name} has no API key login in pi${oauth ? '; use method "oauth"' : ` (it uses ${apiKey?.name ?? "ambient credentials"})`}`);
    }
    return { provider, method: chosen };
  }

  /**
   * Run pi's `method` login for a provider with `interaction` (pi's AuthInteraction: prompt,
   * notify, signal) and persist the credential through pi's store. Resolves to `{provider,
   * method, configured, source}` plus `warning` when pi saved the credential but could not
   * refresh its own state; rejects with pi's error. Every credential value becomes a secret.
   */
  async login(providerId, method, interaction) {
    const { method: chosen } = this.loginMethod(providerId, method);
    let warning;
    try {
      rememberStoredCredential(await this.runtime.login(providerId, chosen, interaction, { getDeviceId: () => this.#deviceId() }));
    } catch (err) {
      if (!(err instanceof CredentialSynchronizationError)) throw err;
      rememberStoredCredential(err.credential); // saved; only pi's in-memory catalog lags behind
      warning = `logged in, but pi could not refresh its model state (${redact(String(err.cause?.message ?? err.message))}); it does on the next reload`;
    }
    this.#credentialsSeen.delete(providerId);
    return { ...(await this.#loginStatus(providerId, chosen)), ...(warning ? { warning } : {}) };
  }

  /**
   * Store an API key through pi's API key login (its own prompt, answered with `key`). A login
   * that asks for more than the key (e.g. an account id) is a 400 naming the question.
   */
  async storeApiKey(providerId, key) {
    addSecret(key);
    const { provider } = this.loginMethod(providerId, "api_key");
    let given = false;
    const interaction = {
      prompt: async (prompt) => {
        if (prompt.type === "secret" && !given) {
          given = true;
          return key;
        }
        throw invalid(`${provider.name}'s API key login also asks "${prompt.message}"; answer it in a login flow (POST /auth/login with method "api_key")`);
      },
      notify: () => {},
    };
    return this.login(providerId, "api_key", interaction);
  }

  /** Remove pi's stored credential for a provider: `{provider, removed, configured, source}`. */
  async logout(providerId) {
    if (!this.runtime.getProvider(providerId)) this.loginMethod(providerId); // the 404
    const removed = (await this.runtime.listCredentials()).some((c) => c.providerId === providerId);
    try {
      await this.runtime.logout(providerId);
    } catch (err) {
      if (!(err instanceof CredentialSynchronizationError)) throw err;
    }
    this.#credentialsSeen.delete(providerId);
    return { ...(await this.#loginStatus(providerId, undefined)), removed };
  }

  async #loginStatus(providerId, method) {
    await this.reload();
    const status = this.runtime.getProviderAuthStatus(providerId);
    const out = { provider: providerId };
    if (method) out.method = method;
    out.configured = status.configured;
    out.source = status.configured ? authSource(status, this.runtime.isUsingOAuth(providerId)) : null;
    return out;
  }

  /** The echo provider and the providers registered at run time are the gateway's, not the user's pi's. */
  #gatewayOwned(providerId) {
    return providerId === ECHO_PROVIDER || this.#registered.has(providerId);
  }

  /** pi's stable id of this installation (settings.json `deviceId`), which OpenAI's login sends. */
  #deviceId() {
    const settings = SettingsManager.create(this.agentDir, this.agentDir, { projectTrusted: false });
    return typeof settings.getOrCreateDeviceId === "function" ? settings.getOrCreateDeviceId() : undefined;
  }
}

/**
 * How each OAuth flow of pi 1.6 signs in (read from @earendil-works/pi-ai dist/auth/oauth/*.js):
 * a browser redirect to a loopback callback server (its URL can also be pasted), a code shown
 * by the provider to paste, or a device code. Which one runs is the flow's first `select` prompt
 * when there are several. Providers pi adds later list `flows: null` until this table knows them.
 */
const OAUTH_FLOWS = {
  anthropic: ["browser_callback", "pasted_code"],
  "openai-codex": ["browser_callback", "device_code"],
  openai: ["browser_callback"], // Sign in with ChatGPT (openai-chatgpt.js)
  "github-copilot": ["device_code"],
  openrouter: ["browser_callback"],
  "kimi-coding": ["device_code"],
  meta: ["device_code"],
  xai: ["device_code"],
  radius: ["browser_callback", "device_code"],
};

/** A stored credential's values (keys, tokens) become secrets to redact by value. */
function rememberStoredCredential(credential) {
  if (!credential || typeof credential !== "object") return;
  for (const field of ["key", "access", "refresh"]) addSecret(credential[field]);
  for (const value of Object.values(credential.env ?? {})) addSecret(value);
}

const definedEntries = (obj) => Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined));

const ANY_ENV = new Proxy({}, { get: () => "1" }); // makes findEnvKeys list every var it reads

function authSource(status, oauth) {
  switch (status.source) {
    case "stored":
      return oauth ? "oauth" : "api_key";
    case "runtime":
      return "runtime";
    case "environment":
      return oauth ? "oauth" : "env";
    case "models_json_key":
    case "models_json_command":
      return "models_json";
    case "fallback":
      return "fallback";
    default:
      return status.source ?? null;
  }
}

function unsupported(what, model) {
  return invalid(`${what} cannot be carried to ${model.provider}/${model.id} (pi api "${model.api}")`);
}

/** Every key and header value of a provider block becomes a secret to redact by value. */
function rememberSecrets(block) {
  addSecret(block.apiKey);
  for (const headers of [block.headers, ...(block.models ?? []).map((m) => m.headers)]) {
    for (const value of Object.values(headers ?? {})) addSecret(value);
  }
}

/** Remember the credential a failed upstream call carried, so no error text can echo it. */
function rememberCredential(init) {
  const headers = init?.headers;
  if (!headers) return;
  const get = (name) =>
    typeof headers.get === "function"
      ? headers.get(name)
      : (Object.entries(headers).find(([k]) => k.toLowerCase() === name)?.[1] ?? null);
  const auth = get("authorization");
  if (auth) addSecret(auth.replace(/^Bearer\s+/i, ""));
  addSecret(get("x-api-key"));
  addSecret(get("api-key"));
}
