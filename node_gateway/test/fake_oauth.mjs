// A fake authorization server for pi's OAuth flows, and the switch that points pi's hard-coded
// endpoints at it. pi 1.6 builds its token URLs from constants (Kimi's host is the exception:
// KIMI_CODE_OAUTH_HOST), so in-process tests route pi's fetch calls for the providers' hosts to
// this server: `https://<host>/<path>` -> `<fake>/<host>/<path>`; any other https host is refused,
// so nothing reaches the network. The fake checks what a real server checks: pi's client id,
// the PKCE verifier against the challenge of the authorization, the redirect URI, the state and
// one use per code. It plays the browser too: authorize(url) returns the redirect to pi's
// callback; approve(userCode) approves a device code. Every code, token and key it issues is in
// `secrets` (tests grep every output for them).

import { createHash, randomBytes } from "node:crypto";
import { createServer } from "node:http";

/** pi 1.6's public OAuth client ids (dist/auth/oauth/*.js), which its flows must send. */
export const CLIENT_IDS = {
  anthropic: "9d1c250a-e61b-44d9-88ed-5944d1962f5e",
  "openai-codex": "app_EMoamEEZ73f0CkXaXp7hrann",
  openai: "dynamic_agent_client", // "Sign in with ChatGPT" (openai-chatgpt.js) is provider openai's OAuth
  "github-copilot": "Iv1.b507a08c87ecfe98",
  "kimi-coding": "17e5f671-d194-4dfb-9706-5516cb48c098",
  meta: "1031625952748946",
  xai: "b1a00492-073a-47ea-816f-4c329264a828",
  radius: "pi-gateway",
};

export const ROUTED_HOSTS = [
  "claude.ai",
  "platform.claude.com",
  "auth.openai.com",
  "github.com",
  "api.github.com",
  "api.individual.githubcopilot.com",
  "openrouter.ai",
  "auth.meta.com",
  "api.meta.ai",
  "auth.x.ai",
  "radius.pi.dev",
];

const b64url = (buf) => Buffer.from(buf).toString("base64url");
const s256 = (verifier) => b64url(createHash("sha256").update(verifier).digest());
const jwt = (payload) => `${b64url(JSON.stringify({ alg: "none", typ: "JWT" }))}.${b64url(JSON.stringify(payload))}.${b64url(randomBytes(16))}`;

/** Route pi's fetch calls for ROUTED_HOSTS to `fakeUrl`; refuse other https hosts. Returns undo(). */
export function routeFetch(fakeUrl) {
  const real = globalThis.fetch;
  const hosts = new Set(ROUTED_HOSTS);
  globalThis.fetch = (input, init) => {
    const raw = typeof input === "string" || input instanceof URL ? String(input) : input.url;
    const url = new URL(raw);
    if (url.protocol === "https:") {
      if (!hosts.has(url.hostname)) return Promise.reject(new Error(`test: no network (fetch ${url.origin})`));
      return real(`${fakeUrl}/${url.hostname}${url.pathname}${url.search}`, init);
    }
    return real(input, init);
  };
  return () => {
    globalThis.fetch = real;
  };
}

async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const text = Buffer.concat(chunks).toString("utf8");
  if ((req.headers["content-type"] ?? "").includes("json")) return text ? JSON.parse(text) : {};
  return Object.fromEntries(new URLSearchParams(text));
}

/** Start the fake on 127.0.0.1:0. */
export async function startFakeOAuth() {
  const secrets = new Set();
  const issue = (prefix, n = 18) => {
    const value = `${prefix}${randomBytes(n).toString("hex")}`;
    secrets.add(value);
    return value;
  };
  const codes = new Map(); // code -> {provider, clientId, challenge, redirectUri, state}
  const devices = new Map(); // device code -> {provider, userCode, approved, clientId, polls}
  const requests = []; // {host, path, body}
  const tokens = new Map(); // provider -> last access token issued (what pi must store)

  const grant = (provider, extra = {}) => {
    const access = extra.access ?? issue(`${provider}-access-`);
    const refresh = issue(`${provider}-refresh-`);
    tokens.set(provider, access);
    return { access_token: access, refresh_token: refresh, expires_in: 3600, token_type: "Bearer", ...extra.fields };
  };

  function checkCode(provider, body, { clientId = CLIENT_IDS[provider], redirect = true } = {}) {
    const entry = codes.get(body.code);
    if (!entry || entry.provider !== provider) return "unknown or used authorization code";
    codes.delete(body.code);
    if (clientId !== null && body.client_id !== (entry.issuedClientId ?? clientId)) return `client_id ${body.client_id} is not pi's`;
    if (s256(body.code_verifier ?? "") !== entry.challenge) return "code_verifier does not match the PKCE challenge";
    if (redirect && body.redirect_uri !== entry.redirectUri) return "redirect_uri differs from the authorization's";
    return null;
  }

  const newDevice = (provider, clientId) => {
    const deviceCode = issue(`${provider}-device-`);
    const userCode = `${provider.slice(0, 3).toUpperCase()}-${randomBytes(3).toString("hex").toUpperCase()}`;
    devices.set(deviceCode, { provider, userCode, approved: false, clientId, polls: 0 });
    return { deviceCode, userCode };
  };
  const pollDevice = (provider, deviceCode, clientId) => {
    const d = devices.get(deviceCode);
    if (!d || d.provider !== provider) return { error: "invalid_grant" };
    if (clientId !== undefined && clientId !== d.clientId) return { error: "invalid_client" };
    d.polls++;
    if (!d.approved) return { pending: true };
    devices.delete(deviceCode);
    return { ok: true };
  };

  const handlers = {
    "platform.claude.com /v1/oauth/token": (body) => {
      const bad = checkCode("anthropic", body);
      // Refusals echo the request (code, verifier), as some servers do: pi quotes the body in its error.
      if (bad || body.grant_type !== "authorization_code") return [400, { error: "invalid_grant", error_description: bad, request: body }];
      return [200, grant("anthropic")];
    },
    "auth.openai.com /oauth/token": (body) => {
      const bad = checkCode("openai-codex", body);
      if (bad) return [400, { error: "invalid_grant", error_description: bad }];
      const access = jwt({ "https://api.openai.com/auth": { chatgpt_account_id: "acct-fake" }, n: randomBytes(8).toString("hex") });
      secrets.add(access);
      return [200, grant("openai-codex", { access })];
    },
    "auth.openai.com /api/accounts/deviceauth/usercode": (body) => {
      if (body.client_id !== CLIENT_IDS["openai-codex"]) return [400, { error: "invalid_client" }];
      const { deviceCode, userCode } = newDevice("openai-codex", body.client_id);
      return [200, { device_auth_id: deviceCode, user_code: userCode, interval: "1" }];
    },
    "auth.openai.com /api/accounts/deviceauth/token": (body) => {
      const r = pollDevice("openai-codex", body.device_auth_id);
      if (r.pending) return [403, { error: { code: "deviceauth_authorization_pending" } }];
      if (!r.ok) return [400, { error: r.error }];
      const verifier = b64url(randomBytes(32));
      const code = issue("codex-device-code-");
      codes.set(code, { provider: "openai-codex", challenge: s256(verifier), redirectUri: "https://auth.openai.com/deviceauth/callback" });
      return [200, { authorization_code: code, code_verifier: verifier }];
    },
    "auth.openai.com /api/accounts/oauth/token": (body) => {
      const bad = checkCode("openai", body);
      if (bad) return [400, { error: "invalid_grant", error_description: bad }];
      return [200, grant("openai", { fields: { id_token: jwt({ sub: "user" }), scope: "openid offline_access chatgpt.tokens.use.direct" } })];
    },
    "github.com /login/device/code": (body) => {
      if (body.client_id !== CLIENT_IDS["github-copilot"]) return [400, { error: "invalid_client" }];
      const { deviceCode, userCode } = newDevice("github-copilot", body.client_id);
      return [200, { device_code: deviceCode, user_code: userCode, verification_uri: "https://github.com/login/device", interval: 1, expires_in: 900 }];
    },
    "github.com /login/oauth/access_token": (body) => {
      const r = pollDevice("github-copilot", body.device_code, body.client_id);
      if (r.pending) return [200, { error: "authorization_pending" }];
      if (!r.ok) return [200, { error: r.error }];
      return [200, { access_token: issue("gho_fake") }];
    },
    "api.github.com /copilot_internal/v2/token": (_body, req) => {
      const github = (req.headers.authorization ?? "").replace(/^Bearer /, "");
      if (!secrets.has(github)) return [401, { message: "bad credentials" }];
      const token = `tid=${issue("copilot-")};exp=${Math.floor(Date.now() / 1000) + 3600};proxy-ep=proxy.individual.githubcopilot.com;`;
      secrets.add(token);
      tokens.set("github-copilot", token);
      return [200, { token, expires_at: Math.floor(Date.now() / 1000) + 3600 }];
    },
    "api.individual.githubcopilot.com /models": () => [200, { data: [{ id: "gpt-4o", model_picker_enabled: true, capabilities: { supports: { tool_calls: true } }, policy: { state: "enabled" } }] }],
    "openrouter.ai /api/v1/auth/keys": (body) => {
      const bad = checkCode("openrouter", body, { clientId: null, redirect: false });
      if (bad) return [400, { error: { message: bad } }];
      const key = issue("sk-or-v1-fake");
      tokens.set("openrouter", key);
      return [200, { key }];
    },
    "kimi /api/oauth/device_authorization": (body) => {
      if (body.client_id !== CLIENT_IDS["kimi-coding"]) return [400, { error: "invalid_client" }];
      const { deviceCode, userCode } = newDevice("kimi-coding", body.client_id);
      return [200, { device_code: deviceCode, user_code: userCode, verification_uri: "https://www.kimi.com/code/device", verification_uri_complete: `https://www.kimi.com/code/device?user_code=${userCode}`, interval: 1, expires_in: 900 }];
    },
    "kimi /api/oauth/token": (body) => {
      const r = pollDevice("kimi-coding", body.device_code, body.client_id);
      if (r.pending) return [400, { error: "authorization_pending" }];
      if (!r.ok) return [400, { error: r.error }];
      return [200, grant("kimi-coding")];
    },
    "auth.meta.com /oidc/device/authorization/": (body) => {
      if (body.client_id !== CLIENT_IDS.meta) return [400, { error: "invalid_client" }];
      const { deviceCode, userCode } = newDevice("meta", body.client_id);
      return [200, { device_code: deviceCode, user_code: userCode, verification_uri: "https://auth.meta.com/device", interval: 1, expires_in: 900 }];
    },
    "auth.meta.com /oidc/device/token/": (body) => {
      const r = pollDevice("meta", body.device_code, body.client_id);
      if (r.pending) return [400, { error: "authorization_pending" }];
      if (!r.ok) return [400, { error: r.error }];
      return [200, { access_token: issue("meta-identity-") }];
    },
    "api.meta.ai /muse-code/key": (_body, req) => {
      const identity = (req.headers.authorization ?? "").replace(/^Bearer /, "");
      if (!secrets.has(identity)) return [401, { detail: "bad identity" }];
      const key = issue("meta-api-key-");
      tokens.set("meta", key);
      return [200, { api_key: key }];
    },
    "auth.x.ai /oauth2/device/code": (body) => {
      if (body.client_id !== CLIENT_IDS.xai) return [400, { error: "invalid_client" }];
      const { deviceCode, userCode } = newDevice("xai", body.client_id);
      return [200, { device_code: deviceCode, user_code: userCode, verification_uri: "https://accounts.x.ai/device", interval: 1, expires_in: 900 }];
    },
    "auth.x.ai /oauth2/token": (body) => {
      const r = pollDevice("xai", body.device_code, body.client_id);
      if (r.pending) return [400, { error: "authorization_pending" }];
      if (!r.ok) return [400, { error: r.error }];
      return [200, grant("xai")];
    },
    "radius.pi.dev /v1/oauth": () => [200, { authorizationEndpoint: "https://radius.pi.dev/oauth/authorize" }],
    "radius.pi.dev /v1/oauth/device": (body) => {
      if (body.client_id !== CLIENT_IDS.radius) return [400, { error: "invalid_client" }];
      const { deviceCode, userCode } = newDevice("radius", body.client_id);
      return [200, { device_code: deviceCode, user_code: userCode, verification_uri: "https://radius.pi.dev/device", interval: 1, expires_in: 900 }];
    },
    "radius.pi.dev /v1/oauth/token": (body) => {
      if (body.grant_type === "urn:ietf:params:oauth:grant-type:device_code") {
        const r = pollDevice("radius", body.device_code, body.client_id);
        if (r.pending) return [400, { error: "authorization_pending" }];
        if (!r.ok) return [400, { error: r.error }];
        return [200, { ...grant("radius"), scope: "gateway offline_access" }];
      }
      const bad = checkCode("radius", body);
      if (bad) return [400, { error: "invalid_grant", error_description: bad }];
      return [200, { ...grant("radius"), scope: "gateway offline_access" }];
    },
  };

  const server = createServer(async (req, res) => {
    const url = new URL(req.url, "http://x");
    const [, host, ...rest] = url.pathname.split("/");
    const path = `/${rest.join("/")}`;
    let body = {};
    try {
      body = req.method === "POST" ? await readBody(req) : {};
    } catch {
      body = {};
    }
    requests.push({ host, path, method: req.method, body });
    const handler = handlers[`${host} ${path}`];
    const [status, json] = handler ? handler(body, req) : [404, { error: `fake: no ${req.method} ${host}${path}` }];
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(json));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${server.address().port}`;

  return {
    url,
    secrets,
    requests,
    tokens,
    /** The user signs in at `authUrl` (pi's): the redirect pi's callback gets, after checking pi's parameters. */
    authorize(provider, authUrl) {
      const u = new URL(authUrl);
      const q = u.searchParams;
      const code = issue(`${provider}-code-`);
      if (provider === "openrouter") {
        if (q.get("code_challenge_method") !== "S256") throw new Error("openrouter: no S256 PKCE");
        codes.set(code, { provider, challenge: q.get("code_challenge") });
        const back = new URL(q.get("callback_url"));
        back.searchParams.set("code", code);
        return back.href;
      }
      if (q.get("client_id") !== CLIENT_IDS[provider]) throw new Error(`${provider}: client_id ${q.get("client_id")} is not pi's`);
      if (q.get("code_challenge_method") !== "S256" || !q.get("code_challenge")) throw new Error(`${provider}: no S256 PKCE challenge`);
      if (q.get("response_type") !== "code") throw new Error(`${provider}: response_type is not code`);
      const entry = { provider, challenge: q.get("code_challenge"), redirectUri: q.get("redirect_uri"), state: q.get("state") };
      const back = new URL(q.get("redirect_uri"));
      back.searchParams.set("code", code);
      if (entry.state !== null) back.searchParams.set("state", entry.state);
      if (provider === "openai") {
        entry.issuedClientId = issue("chatgpt-client-");
        back.searchParams.set("client_id", entry.issuedClientId);
      }
      codes.set(code, entry);
      return back.href;
    },
    /** A code to paste (Anthropic's copy-code page shows `code#state`). */
    pasteCode(provider, authUrl) {
      const back = new URL(this.authorize(provider, authUrl));
      return `${back.searchParams.get("code")}#${back.searchParams.get("state")}`;
    },
    approve(userCode) {
      for (const d of devices.values()) if (d.userCode === userCode) d.approved = true;
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}
