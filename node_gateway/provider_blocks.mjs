// Validation of models.json-format provider blocks given to the gateway (PUT /providers and the
// start-up providers), before anything is registered: a rejected body changes nothing.
// Run-time blocks (PUT /providers) are stricter than the user's own files: keys and header values
// are literals (no "!command"; "$VAR" only for variables the spawning Python process allowed).
// No pi import here: the adapter passes in what pi knows (its APIs).

import { invalid } from "./errors.mjs";

/** Fields of a provider block the gateway accepts (pi's models.json provider format). */
export const PROVIDER_KEYS = new Set(["name", "baseUrl", "apiKey", "api", "headers", "authHeader", "models", "compat"]);

/** Bounds of one registration (docs/protocol.md "PUT /providers"). */
export const LIMITS = Object.freeze({
  providersPerRequest: 64,
  runtimeProviders: 256,
  modelsPerProvider: 512,
  headersPerBlock: 64,
  idLength: 128,
  valueLength: 8192,
  bodyBytes: 1048576,
});

const PROVIDER_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const CONTROL = /[\0\r\n]/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*/;
const INPUTS = new Set(["text", "image"]);

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

/**
 * The environment variables a pi config value reads ("$NAME", "${NAME}"; "$$" and "$!" are
 * escapes). Throws for a "!command" value and for a "$" that is neither an escape nor a name.
 */
function envReferences(value, where) {
  if (value.startsWith("!")) {
    throw invalid(`${where}: "!command" values are not accepted at run time; give the key itself`);
  }
  const names = [];
  for (let i = value.indexOf("$"); i >= 0; i = value.indexOf("$", i)) {
    const next = value[i + 1];
    if (next === "$" || next === "!") {
      i += 2;
      continue;
    }
    const braced = next === "{";
    const m = ENV_NAME.exec(value.slice(i + (braced ? 2 : 1)));
    if (!m || (braced && value[i + 2 + m[0].length] !== "}")) {
      throw invalid(`${where}: a "$" must start "$NAME" or be written "$$" for a literal "$"`);
    }
    names.push(m[0]);
    i += m[0].length + (braced ? 3 : 1);
  }
  return names;
}

function checkString(value, where, { max = LIMITS.valueLength, required = false } = {}) {
  if (value === undefined && !required) return;
  if (typeof value !== "string" || value.length === 0) throw invalid(`${where} must be a non-empty string`);
  if (value.length > max) throw invalid(`${where} is longer than ${max} characters`);
  if (CONTROL.test(value)) throw invalid(`${where} must not contain CR, LF or NUL`);
}

function checkUrl(value, where) {
  if (value === undefined) return;
  checkString(value, where, { max: 2048 });
  let url;
  try {
    url = new URL(value);
  } catch {
    throw invalid(`${where} is not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw invalid(`${where} must be an http(s) URL`);
}

/** A secret-bearing value (apiKey, header value): literal, or "$NAME" from `envAllow` at run time. */
function checkConfigValue(value, where, ctx) {
  checkString(value, where);
  if (!ctx.runtime) return;
  for (const name of envReferences(value, where)) {
    if (!ctx.envAllow.has(name)) {
      throw invalid(
        `${where}: "$${name}" would read an environment variable, which a run-time provider may not do; ` +
          'give the key itself (write a literal "$" as "$$")',
      );
    }
  }
}

function checkHeaders(headers, where, ctx) {
  if (headers === undefined) return;
  if (!isObject(headers)) throw invalid(`${where} must be an object of header name -> value`);
  const names = Object.keys(headers);
  if (names.length > LIMITS.headersPerBlock) throw invalid(`${where} has more than ${LIMITS.headersPerBlock} headers`);
  for (const name of names) {
    if (!HEADER_NAME.test(name) || name.length > 256) throw invalid(`${where}: "${name.slice(0, 64)}" is not a header name`);
    checkConfigValue(headers[name], `${where}.${name}`, ctx);
  }
}

function checkApi(api, where, ctx) {
  if (api === undefined) return;
  checkString(api, where, { max: 128 });
  if (ctx.knownApis && !ctx.knownApis.has(api)) {
    throw invalid(`${where} "${api}" is not an API pi knows; use one of ${JSON.stringify([...ctx.knownApis].sort())}`);
  }
}

function checkPositiveInt(value, where) {
  if (value !== undefined && (!Number.isSafeInteger(value) || value < 1)) throw invalid(`${where} must be a positive integer`);
}

function checkModel(m, where, ctx) {
  if (!isObject(m)) throw invalid(`${where} must be an object`);
  checkString(m.id, `${where}.id`, { max: 256, required: true });
  checkString(m.name, `${where}.name`, { max: 256 });
  checkApi(m.api, `${where}.api`, ctx);
  checkUrl(m.baseUrl, `${where}.baseUrl`);
  checkHeaders(m.headers, `${where}.headers`, ctx);
  if (m.reasoning !== undefined && typeof m.reasoning !== "boolean") throw invalid(`${where}.reasoning must be true or false`);
  if (m.input !== undefined && (!Array.isArray(m.input) || !m.input.length || !m.input.every((x) => INPUTS.has(x)))) {
    throw invalid(`${where}.input must be a non-empty list of "text" / "image"`);
  }
  checkPositiveInt(m.contextWindow, `${where}.contextWindow`);
  checkPositiveInt(m.maxTokens, `${where}.maxTokens`);
  if (m.cost !== undefined) {
    if (!isObject(m.cost)) throw invalid(`${where}.cost must be an object of $ per 1M tokens`);
    for (const [k, v] of Object.entries(m.cost)) {
      if (typeof v !== "number" || !Number.isFinite(v) || v < 0) throw invalid(`${where}.cost.${k} must be a number >= 0`);
    }
  }
  if (m.compat !== undefined && !isObject(m.compat)) throw invalid(`${where}.compat must be an object`);
}

function checkBlock(id, block, ctx) {
  const where = `providers.${id}`;
  if (!isObject(block)) throw invalid(`${where} must be an object (a models.json provider block)`);
  for (const key of Object.keys(block)) {
    if (!PROVIDER_KEYS.has(key)) throw invalid(`${where}.${key.slice(0, 64)} is not supported at run time`);
  }
  checkString(block.name, `${where}.name`, { max: 256 });
  checkUrl(block.baseUrl, `${where}.baseUrl`);
  checkApi(block.api, `${where}.api`, ctx);
  if (block.apiKey !== undefined) checkConfigValue(block.apiKey, `${where}.apiKey`, ctx);
  checkHeaders(block.headers, `${where}.headers`, ctx);
  if (block.authHeader !== undefined && typeof block.authHeader !== "boolean") throw invalid(`${where}.authHeader must be true or false`);
  if (block.compat !== undefined && !isObject(block.compat)) throw invalid(`${where}.compat must be an object`);
  if (block.models === undefined) {
    if (block.compat !== undefined) throw invalid(`${where}.compat needs "models" (it applies to the models listed)`);
    return;
  }
  if (!Array.isArray(block.models) || block.models.length === 0) throw invalid(`${where}.models must be a non-empty list`);
  if (block.models.length > LIMITS.modelsPerProvider) {
    throw invalid(`${where}.models has ${block.models.length} models; at most ${LIMITS.modelsPerProvider} per provider`);
  }
  block.models.forEach((m, i) => checkModel(m, `${where}.models[${i}]`, ctx));
}

/**
 * Check a whole `{"<id>": <block>}` map; throws a 400 GatewayError naming the first problem.
 * `runtime`: PUT /providers rules (literal values, `envAllow` names only); `knownApis`: pi's
 * API ids (a Set) or null to skip that check.
 */
export function validateProviderBlocks(providers, { runtime = false, envAllow = new Set(), knownApis = null } = {}) {
  if (!isObject(providers) || Object.keys(providers).length === 0) {
    throw invalid('body must be {"providers": {"<id>": <models.json provider block>}}');
  }
  const ids = Object.keys(providers);
  if (runtime && ids.length > LIMITS.providersPerRequest) {
    throw invalid(`${ids.length} providers in one registration; at most ${LIMITS.providersPerRequest}`);
  }
  const ctx = { runtime, envAllow, knownApis };
  for (const id of ids) {
    if (id.length > LIMITS.idLength || !PROVIDER_ID.test(id)) {
      throw invalid(`provider id "${id.slice(0, 64)}" must be letters, digits, ".", "_" or "-" (at most ${LIMITS.idLength})`);
    }
    checkBlock(id, providers[id], ctx);
  }
}
