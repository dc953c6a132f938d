// A LiteLLM proxy as pi provider `litellm`: where it is (env or a run-time `litellm` block), and
// discovery — GET /v1/models, then GET /model/info where the proxy offers it — turned into a
// models.json-style provider block (openai-completions) whose per-model `compat` flags keep pi
// from sending fields the proxy's backend rejects. No pi import here: pi_adapter.mjs registers
// the block. Bounded: one timeout for the whole discovery, a cap on reply size and model count.

import { addSecret } from "./errors.mjs";

export const PROVIDER_ID = "litellm";
export const DISCOVERY_TIMEOUT_MS = 5000;
const MAX_REPLY_BYTES = 8 * 1024 * 1024;
const MAX_MODELS = 2000;
const MAX_ID_LENGTH = 256;

/**
 * Where the proxy is: `{baseUrl, apiKey, source}` or null. A run-time `litellm` block without
 * `models` wins; then LITELLM_PROXY_API_BASE / LITELLM_PROXY_API_KEY (LiteLLM's own variables);
 * then OPENAI_BASE_URL / OPENAI_API_KEY, only when AIIPYTHON_LITELLM_FROM_OPENAI_BASE_URL=1
 * (that variable usually means OpenAI itself, so it is never taken by default).
 */
export function litellmSource(env = process.env, block = undefined) {
  if (block && typeof block === "object" && block.models === undefined && typeof block.baseUrl === "string") {
    const ref = typeof block.apiKey === "string" ? block.apiKey : undefined;
    const value = ref?.startsWith("$") ? env[ref.slice(1)] : ref;
    return { baseUrl: block.baseUrl, apiKey: value ?? "", keyRef: ref, source: "providers" };
  }
  const fromEnv = (baseVar, keyVar) => ({
    baseUrl: env[baseVar],
    apiKey: env[keyVar] ?? "",
    keyRef: env[keyVar] ? `$${keyVar}` : undefined, // pi reads the variable itself: the key stays in env
    source: baseVar,
  });
  if (env.LITELLM_PROXY_API_BASE) return fromEnv("LITELLM_PROXY_API_BASE", "LITELLM_PROXY_API_KEY");
  if (env.AIIPYTHON_LITELLM_FROM_OPENAI_BASE_URL === "1" && env.OPENAI_BASE_URL) return fromEnv("OPENAI_BASE_URL", "OPENAI_API_KEY");
  return null;
}

/**
 * Fields each backend family rejects, as pi's openai-completions compat flags (never by editing
 * payloads): `supportsStore: false` keeps `store` out, `supportsLongCacheRetention: false` keeps
 * `prompt_cache_key` / `prompt_cache_retention` out, `supportsDeveloperRole: false` sends the
 * system prompt as `system`. From the LiteLLM seed's measurements (Claude and Gemini behind
 * Databricks reject prompt_cache_key); unknown families fail open, as the seed does.
 */
export function compatFor(modelId, backendModel = "") {
  const name = `${modelId} ${backendModel}`.toLowerCase();
  const openai = /(^|[/\s])(gpt|o1|o3|o4|chatgpt)/.test(name) && !/claude|gemini|databricks/.test(name);
  if (openai) {
    return { supportsStore: true, supportsLongCacheRetention: true, supportsDeveloperRole: true, maxTokensField: "max_completion_tokens" };
  }
  if (/claude|anthropic|gemini|databricks|bedrock|vertex/.test(name)) {
    return { supportsStore: false, supportsLongCacheRetention: false, supportsDeveloperRole: false, maxTokensField: "max_tokens" };
  }
  return { supportsStore: true, supportsLongCacheRetention: true, supportsDeveloperRole: false, maxTokensField: "max_tokens" };
}

class DiscoveryError extends Error {}

function trimBase(baseUrl) {
  let url;
  try {
    url = new URL(baseUrl);
  } catch {
    throw new DiscoveryError(`the LiteLLM proxy URL ${JSON.stringify(String(baseUrl).slice(0, 200))} is not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new DiscoveryError("the LiteLLM proxy URL must be http(s)");
  return url.href.replace(/\/+$/, "").replace(/\/v1$/, "");
}

async function getJson(url, apiKey, signal, { optional = false } = {}) {
  let res;
  try {
    res = await fetch(url, { headers: apiKey ? { authorization: `Bearer ${apiKey}` } : {}, signal });
  } catch (err) {
    if (signal.aborted) throw new DiscoveryError(`no answer from ${url} within ${DISCOVERY_TIMEOUT_MS / 1000} s`);
    throw new DiscoveryError(`cannot reach ${url}: ${err?.cause?.code ?? err?.message ?? err}`);
  }
  if (!res.ok) {
    await res.body?.cancel();
    if (optional && (res.status === 404 || res.status === 405)) return undefined;
    const hint = res.status === 401 || res.status === 403 ? " (check LITELLM_PROXY_API_KEY)" : "";
    throw new DiscoveryError(`${url} answered HTTP ${res.status}${hint}`);
  }
  const length = Number(res.headers.get("content-length") ?? 0);
  if (length > MAX_REPLY_BYTES) {
    await res.body?.cancel();
    throw new DiscoveryError(`${url} answered ${length} bytes, more than ${MAX_REPLY_BYTES}`);
  }
  const text = await res.text();
  if (text.length > MAX_REPLY_BYTES) throw new DiscoveryError(`${url} answered more than ${MAX_REPLY_BYTES} bytes`);
  try {
    return JSON.parse(text);
  } catch {
    if (optional) return undefined;
    throw new DiscoveryError(`${url} did not answer JSON (is it a LiteLLM proxy?)`);
  }
}

const perMillion = (perToken) => (typeof perToken === "number" && Number.isFinite(perToken) && perToken >= 0 ? perToken * 1e6 : 0);
const positive = (n) => (Number.isInteger(n) && n > 0 ? n : undefined);

/** One /model/info entry -> the pi model fields it informs. */
function fromModelInfo(entry) {
  const info = entry?.model_info ?? {};
  const backend = typeof entry?.litellm_params?.model === "string" ? entry.litellm_params.model : "";
  const out = { backend };
  const context = positive(info.max_input_tokens) ?? positive(info.max_tokens);
  const maxOut = positive(info.max_output_tokens) ?? positive(info.max_tokens);
  if (context) out.contextWindow = context;
  if (maxOut) out.maxTokens = context ? Math.min(maxOut, context) : maxOut;
  out.cost = {
    input: perMillion(info.input_cost_per_token),
    output: perMillion(info.output_cost_per_token),
    cacheRead: perMillion(info.cache_read_input_token_cost),
    cacheWrite: perMillion(info.cache_creation_input_token_cost),
  };
  if (info.supports_vision === true) out.input = ["text", "image"];
  if (info.supports_reasoning === true) out.reasoning = true;
  return out;
}

/**
 * Ask the proxy what it serves. Returns `{block, count}`: `block` is a models.json provider block
 * for pi (`api: "openai-completions"`, `baseUrl: <proxy>/v1`, the key as given: `$VAR` for env
 * keys, so pi reads the variable itself, "none" for a proxy without a key). Throws an
 * Error whose message says what went wrong (never the key) when the proxy is down, refuses the
 * key, answers garbage or serves no model.
 */
export async function discoverLiteLLM({ baseUrl, apiKey, keyRef }, { timeoutMs = DISCOVERY_TIMEOUT_MS } = {}) {
  if (apiKey) addSecret(apiKey);
  const base = trimBase(baseUrl);
  const signal = AbortSignal.timeout(timeoutMs);
  const listing = await getJson(`${base}/v1/models`, apiKey, signal);
  if (!listing || !Array.isArray(listing.data)) {
    throw new DiscoveryError(`${base}/v1/models did not answer an OpenAI model list ({"data": [...]})`);
  }
  const ids = [];
  for (const m of listing.data) {
    if (typeof m?.id === "string" && m.id && m.id.length <= MAX_ID_LENGTH && !ids.includes(m.id)) ids.push(m.id);
    if (ids.length >= MAX_MODELS) break;
  }
  if (!ids.length) throw new DiscoveryError(`${base}/v1/models lists no model`);
  const infoReply = await getJson(`${base}/model/info`, apiKey, signal, { optional: true });
  const infos = new Map();
  for (const entry of Array.isArray(infoReply?.data) ? infoReply.data : []) {
    if (typeof entry?.model_name === "string" && !infos.has(entry.model_name)) infos.set(entry.model_name, fromModelInfo(entry));
  }
  const models = ids.map((id) => {
    const { backend = "", ...info } = infos.get(id) ?? {};
    return { id, name: id, ...info, compat: compatFor(id, backend) };
  });
  return {
    block: { baseUrl: `${base}/v1`, api: "openai-completions", apiKey: keyRef || "none", models },
    count: models.length,
  };
}
