// Logging in and out through pi's own code (routes/auth_login.mjs, login_flows.mjs): every OAuth
// flow pi lists runs a full round trip against a local fake authorization server (test/
// fake_oauth.mjs: pi's endpoints routed to it in-process, Kimi's through pi's own
// KIMI_CODE_OAUTH_HOST), the credential lands in auth.json (0600) through pi's store and a fresh
// Node process reads it back with pi's ModelRuntime. API keys, logout, cancel, timeout, the
// admin-only rule, two processes at once, and no secret in any output.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { LoginFlows } from "../login_flows.mjs";
import { CLIENT_IDS, routeFetch, startFakeOAuth } from "./fake_oauth.mjs";
import { ADMIN_TOKEN, GATEWAY_DIR, TOKEN, makeAgentDir, spawnGateway, startFakeUpstream, startGateway, upstreamProvider } from "./helpers.mjs";

const sha = (s) => createHash("sha256").update(s).digest("hex");
const API_KEY = "sk-login-test-openai-key-0123456789abcdef";
const OTHER_KEY = "login-test-groq-key-no-pattern-777777";

let fake;
let up;
let gw;
let flows;
let undoFetch;
const outputs = []; // every SSE body and response text, grepped for secrets at the end

before(async () => {
  fake = await startFakeOAuth();
  up = await startFakeUpstream();
  undoFetch = routeFetch(fake.url);
  process.env.KIMI_CODE_OAUTH_HOST = `${fake.url}/kimi`; // pi's own knob for Kimi's host
  flows = new LoginFlows({ maxFlows: 4 });
  gw = await startGateway({
    agentDir: makeAgentDir({ providers: { openai: upstreamProvider(up.url, { apiKey: null, ids: ["ok"] }) } }),
    loginFlows: flows,
  });
});
after(async () => {
  undoFetch?.();
  delete process.env.KIMI_CODE_OAUTH_HOST;
  await gw?.close();
  await up?.close();
  await fake?.close();
});

/** POST /auth/login and read its SSE frames one by one. */
async function openLogin(body, { token = ADMIN_TOKEN, signal } = {}) {
  const res = await fetch(`${gw.url}/auth/login`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
    signal,
  });
  if (res.status !== 200) {
    const text = await res.text();
    outputs.push(text);
    return { status: res.status, body: JSON.parse(text) };
  }
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  let raw = "";
  const frames = [];
  const next = async () => {
    while (true) {
      const end = buf.indexOf("\n\n");
      if (end >= 0) {
        const block = buf.slice(0, end);
        buf = buf.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)[1];
        const frame = { event, data: JSON.parse(/^data: (.*)$/m.exec(block)[1]) };
        frames.push(frame);
        return frame;
      }
      const { value, done } = await reader.read();
      if (done) {
        outputs.push(raw);
        return null;
      }
      const text = decoder.decode(value, { stream: true });
      raw += text;
      buf += text;
    }
  };
  const start = await next();
  assert.equal(start.event, "start");
  return { status: 200, id: start.data.id, start: start.data, next, frames, headers: res.headers };
}

const admin = async (path, init) => {
  const res = await gw.admin(path, init);
  outputs.push(res.text);
  return res;
};
const answer = (flow, value, promptId) => admin(`/auth/login/${flow.id}/input`, { json: { value, prompt_id: promptId } });

/**
 * Drive one flow to its end like a user: pick `choice` at a select prompt, leave the GitHub
 * Enterprise domain blank, sign in at the auth URL (the fake's browser follows the redirect to pi's
 * callback, or `paste` answers the pasted-code prompt), approve device codes.
 */
async function drive(provider, { choice, paste = false, expect = "done" } = {}) {
  const flow = await openLogin({ provider, method: "oauth" });
  assert.equal(flow.status, 200, JSON.stringify(flow.body));
  const seen = {};
  for (;;) {
    const f = await flow.next();
    assert.ok(f, `${provider}: the stream ended without done or error`);
    if (f.event === "prompt") {
      if (f.data.type === "select") {
        assert.ok(f.data.options.some((o) => o.id === choice), `${provider}: no option ${choice} in ${JSON.stringify(f.data.options)}`);
        assert.equal((await answer(flow, choice, f.data.id)).status, 200);
      } else if (f.data.type === "text") {
        assert.equal((await answer(flow, "", f.data.id)).status, 200); // github.com, not an Enterprise domain
      } else if (f.data.type === "manual_code" && paste) {
        assert.ok(seen.authUrl, `${provider}: a paste prompt before the auth URL`);
        assert.equal((await answer(flow, fake.pasteCode(provider, seen.authUrl), f.data.id)).status, 200);
      }
    } else if (f.event === "auth_url") {
      seen.authUrl = f.data.url;
      if (!paste) {
        const back = fake.authorize(provider, f.data.url).replace("//localhost:", "//127.0.0.1:");
        const res = await fetch(back); // the browser lands on pi's callback server
        outputs.push(await res.text());
        assert.equal(res.status, 200, `${provider}: pi's callback answered ${res.status}`);
      }
    } else if (f.event === "device_code") {
      seen.device = f.data;
      fake.approve(f.data.userCode);
    } else if (f.event === "done" || f.event === "error") {
      assert.equal(f.event, expect, `${provider}: ${JSON.stringify(f.data)}`);
      return { flow, end: f.data, seen };
    }
  }
}

/** auth.json as pi wrote it: mode and content. */
function authFile() {
  const path = join(gw.agentDir, "auth.json");
  return { mode: statSync(path).mode & 0o777, data: JSON.parse(readFileSync(path, "utf8")) };
}

/** A fresh Node process reads auth.json with pi's ModelRuntime: {provider: {configured, source, type, sha}}. */
function readBackWithPi(agentDir, providers) {
  const script = `
    import { createHash } from "node:crypto";
    import { ModelRuntime } from "@earendil-works/pi-coding-agent";
    const dir = process.env.AGENT_DIR;
    const rt = await ModelRuntime.create({ authPath: dir + "/auth.json", modelsPath: dir + "/models.json", allowModelNetwork: false });
    const creds = await rt.listCredentials();
    const out = {};
    for (const id of JSON.parse(process.env.PROVIDERS)) {
      const status = rt.getProviderAuthStatus(id);
      const auth = await rt.getAuth(id).catch((e) => ({ error: String(e?.message ?? e).slice(0, 80) }));
      const value = auth?.auth?.apiKey ?? auth?.auth?.headers?.Authorization?.replace(/^Bearer /, "");
      out[id] = { configured: status.configured, type: creds.find((c) => c.providerId === id)?.type ?? null,
                  sha: value ? createHash("sha256").update(value).digest("hex") : null, error: auth?.error };
    }
    console.log(JSON.stringify(out));`;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ["--input-type=module", "-e", script], {
      cwd: GATEWAY_DIR,
      env: { PATH: process.env.PATH, HOME: agentDir, PI_OFFLINE: "1", AGENT_DIR: agentDir, PROVIDERS: JSON.stringify(providers) },
    }, (err, stdout, stderr) => {
      outputs.push(stdout, stderr);
      if (err) reject(new Error(`${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout.trim().split("\n").at(-1)));
    });
  });
}

/** How each OAuth provider pi 1.6 lists is driven to the end; a provider pi adds fails the listing test. */
const SCENARIOS = {
  anthropic: { choice: "browser" },
  "openai-codex": { choice: "browser" },
  openai: {}, // Sign in with ChatGPT (pi's openai-chatgpt.js)
  "github-copilot": {},
  openrouter: {},
  "kimi-coding": {},
  meta: {},
  xai: {},
  radius: { choice: "browser" },
};
const loggedIn = [];

test("GET /auth/providers: pi's providers with their login methods, from pi", async () => {
  const res = await admin("/auth/providers");
  assert.equal(res.status, 200);
  const byId = Object.fromEntries(res.body.providers.map((p) => [p.provider, p]));
  const oauth = res.body.providers.filter((p) => p.methods.some((m) => m.type === "oauth")).map((p) => p.provider).sort();
  assert.deepEqual(oauth, Object.keys(SCENARIOS).sort(), "an OAuth flow pi lists has no scenario here (or one went away)");
  const anthropic = byId.anthropic.methods;
  assert.deepEqual(anthropic.map((m) => m.type), ["oauth", "api_key"]);
  assert.equal(anthropic[0].subscription, true);
  assert.deepEqual(anthropic[0].flows, ["browser_callback", "pasted_code"]);
  assert.deepEqual(anthropic[1].env_vars.includes("ANTHROPIC_API_KEY"), true);
  assert.deepEqual(byId.openai.methods.map((m) => [m.type, m.login_label ?? m.name]), [["oauth", "Sign in with ChatGPT"], ["api_key", byId.openai.methods[1].name]]);
  assert.deepEqual(byId.openai.methods[1].env_vars, ["OPENAI_API_KEY"]);
  assert.deepEqual(byId.groq.methods.map((m) => m.type), ["api_key"]);
  assert.equal(byId.echo, undefined, "the gateway's own echo provider is no login of pi's");
  assert.equal(byId.groq.configured, false);
  for (const p of res.body.providers) for (const m of p.methods) if (m.type === "oauth") assert.ok(m.flows, `${p.provider}: flow kinds unknown`);
});

test("every login route is admin-only: the client token gets 403, no token 401", async () => {
  const routes = [
    ["GET", "/auth/providers"],
    ["POST", "/auth/login", { provider: "anthropic" }],
    ["POST", "/auth/login/login_x/input", { value: "x" }],
    ["DELETE", "/auth/login/login_x"],
    ["PUT", "/auth/openai/api-key", { key: API_KEY }],
    ["DELETE", "/auth/openai"],
  ];
  for (const [method, path, json] of routes) {
    const client = await gw.request(path, { method, json });
    outputs.push(client.text);
    assert.equal(client.status, 403, `${method} ${path}`);
    assert.equal(client.body.error.type, "forbidden");
    assert.equal((await gw.request(path, { method, json, token: null })).status, 401);
  }
  assert.equal(flows.size, 0);
  assert.equal(((await gw.request("/auth/status")).body.providers.find((p) => p.provider === "openai")).configured, false);
});

for (const [provider, scenario] of Object.entries(SCENARIOS)) {
  test(`${provider}: pi's OAuth flow end to end against the fake authorization server`, async () => {
    const { end, seen, flow } = await drive(provider, scenario);
    assert.deepEqual(end, { provider, method: "oauth", configured: true, source: "oauth" });
    if (seen.authUrl) {
      const q = new URL(seen.authUrl).searchParams;
      if (CLIENT_IDS[provider]) assert.equal(q.get("client_id"), CLIENT_IDS[provider]);
      assert.equal(q.get("code_challenge_method"), "S256");
      assert.match(q.get("code_challenge"), /^[A-Za-z0-9_-]{43}$/);
      const redirect = new URL(q.get("redirect_uri") ?? q.get("callback_url"));
      assert.match(redirect.hostname, /^(localhost|127\.0\.0\.1)$/);
    } else {
      assert.ok(seen.device?.userCode && seen.device.verificationUri.startsWith("https://"), `${provider}: no device code`);
    }
    const { mode, data } = authFile();
    assert.equal(mode, 0o600);
    assert.equal(data[provider].type, "oauth");
    assert.equal(data[provider].access, fake.tokens.get(provider));
    const types = flow.frames.map((f) => f.event);
    assert.equal(types.at(-1), "done");
    const status = (await gw.request("/auth/status")).body.providers.find((p) => p.provider === provider);
    assert.equal(status.source, "oauth");
    loggedIn.push(provider);
  });
}

test("anthropic: the pasted-code flow (Copy code login) stores the credential", async () => {
  const { end, seen } = await drive("anthropic", { choice: "copy_code", paste: true });
  assert.equal(end.configured, true);
  assert.equal(new URL(new URL(seen.authUrl).searchParams.get("redirect_uri")).hostname, "platform.claude.com");
  assert.equal(authFile().data.anthropic.access, fake.tokens.get("anthropic"));
});

test("openai-codex and radius: the device-code flows store the credential", async () => {
  for (const provider of ["openai-codex", "radius"]) {
    const { seen } = await drive(provider, { choice: provider === "radius" ? "device-code" : "device_code" });
    assert.ok(seen.device.userCode);
    assert.equal(authFile().data[provider].access, fake.tokens.get(provider));
  }
});

test("a fresh Node process reads every credential back with pi's ModelRuntime", async () => {
  assert.deepEqual(loggedIn.sort(), Object.keys(SCENARIOS).sort());
  const seen = await readBackWithPi(gw.agentDir, loggedIn);
  for (const provider of loggedIn) {
    assert.equal(seen[provider].configured, true, provider);
    assert.equal(seen[provider].type, "oauth", provider);
    assert.equal(seen[provider].sha, sha(fake.tokens.get(provider)), `${provider}: ${JSON.stringify(seen[provider])}`);
  }
});

test("a token endpoint that echoes the code and verifier: login_failed, no secret in the frame", async () => {
  // The fake answers an unknown code with 400 and its body; pi quotes the body in its error.
  const flow = await openLogin({ provider: "anthropic", method: "oauth" });
  let authUrl;
  let code;
  for (;;) {
    const f = await flow.next();
    if (f.event === "prompt" && f.data.type === "select") await answer(flow, "copy_code", f.data.id);
    else if (f.event === "auth_url") authUrl = f.data.url;
    else if (f.event === "prompt" && f.data.type === "manual_code") {
      const pasted = fake.pasteCode("anthropic", authUrl);
      [code] = pasted.split("#");
      // Spend the code first, so pi's exchange is refused and pi reports the server's answer.
      await fetch(`${fake.url}/platform.claude.com/v1/oauth/token`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ code, code_verifier: "wrong" }) });
      await answer(flow, pasted, f.data.id);
    } else if (f.event === "error") {
      assert.equal(f.data.error.type, "login_failed");
      assert.match(f.data.error.message, /pi's oauth login to "anthropic" failed: .*invalid_grant/);
      assert.ok(!f.data.error.message.includes(code), f.data.error.message);
      assert.match(f.data.error.message, /"code":"\[redacted\]"/);
      break;
    } else assert.notEqual(f.event, "done");
  }
});

test("a second login to the same provider is a 409 naming the running flow; bad input is a 400", async () => {
  const flow = await openLogin({ provider: "openrouter" });
  assert.equal((await flow.next()).event, "progress");
  const again = await openLogin({ provider: "openrouter" });
  assert.equal(again.status, 409);
  assert.match(again.body.error.message, new RegExp(flow.id));
  const noPrompt = await answer(flow, "x", 99);
  assert.equal(noPrompt.status, 400);
  assert.match(noPrompt.body.error.message, /no pending prompt 99/);
  const unknown = await admin("/auth/login/login_nope/input", { json: { value: "x" } });
  assert.equal(unknown.status, 404);
  assert.equal((await admin(`/auth/login/${flow.id}`, { method: "DELETE" })).body.cancelled, true);
  const provider = await openLogin({ provider: "no-such-provider" });
  assert.equal(provider.status, 404);
  assert.equal(provider.body.error.type, "unknown_provider");
  const echo = await openLogin({ provider: "echo" });
  assert.equal(echo.status, 400);
  assert.match(echo.body.error.message, /provider this gateway registered/);
  assert.equal((await admin("/auth/echo/api-key", { method: "PUT", json: { key: OTHER_KEY } })).status, 400);
  const method = await openLogin({ provider: "groq", method: "oauth" });
  assert.equal(method.status, 400);
  assert.match(method.body.error.message, /no OAuth login/);
});

test("cancelling frees the callback port: a second start on the same port succeeds", async () => {
  // Sign in with ChatGPT (provider openai) has a fixed callback port (1455) and fails when it is taken.
  for (let round = 0; round < 2; round++) {
    const flow = await openLogin({ provider: "openai" });
    let f;
    do f = await flow.next();
    while (f.event !== "auth_url" && f.event !== "error");
    assert.equal(f.event, "auth_url", JSON.stringify(f.data));
    assert.equal(new URL(new URL(f.data.url).searchParams.get("redirect_uri")).port, "1455");
    const res = await admin(`/auth/login/${flow.id}`, { method: "DELETE" });
    assert.deepEqual(res.body, { id: flow.id, cancelled: true });
    do f = await flow.next();
    while (f && f.event !== "error");
    assert.equal(f.data.error.type, "login_cancelled");
    assert.equal(await flow.next(), null); // the stream ended
  }
});

test("a flow left alone ends by itself with an error event", async () => {
  const flow = await openLogin({ provider: "openrouter", timeout_ms: 300 });
  assert.equal(flow.start.timeout_ms, 300);
  let f;
  do f = await flow.next();
  while (f.event !== "error");
  assert.equal(f.data.error.type, "login_timeout");
  assert.match(f.data.error.message, /did not finish within 0\.3 s/);
  assert.equal(flow.frames.filter((x) => x.event === "done").length, 0);
});

test("the stream's client going away cancels its flow", async () => {
  const controller = new AbortController();
  const flow = await openLogin({ provider: "openrouter" }, { signal: controller.signal });
  await flow.next();
  const running = flows.get(flow.id);
  controller.abort();
  await running.settled; // the gateway noticed the closed stream and stopped pi's flow
  assert.equal(running.reason, "client");
  assert.equal(flows.size, 0);
});

test("at most maxFlows logins at once: 503 overloaded", async () => {
  const open = [];
  for (const provider of ["openrouter", "xai", "meta", "kimi-coding"]) open.push(await openLogin({ provider }));
  const fifth = await openLogin({ provider: "github-copilot" });
  assert.equal(fifth.status, 503);
  assert.equal(fifth.body.error.type, "overloaded");
  for (const flow of open) await admin(`/auth/login/${flow.id}`, { method: "DELETE" });
  assert.equal(flows.size, 0);
});

test("API key: PUT stores it through pi (0600), a completion uses it, logout removes it", async () => {
  const bad = await admin("/auth/openai/api-key", { method: "PUT", json: { key: "two\nlines-0123456789" } });
  assert.equal(bad.status, 400);
  const res = await admin("/auth/openai/api-key", { method: "PUT", json: { key: API_KEY } });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(res.body, { provider: "openai", method: "api_key", configured: true, source: "api_key" });
  const { mode, data } = authFile();
  assert.equal(mode, 0o600);
  assert.deepEqual(data.openai, { type: "api_key", key: API_KEY });
  let seenAuth;
  up.events.once("request", ({ headers }) => {
    seenAuth = headers.authorization;
  });
  const call = await gw.request("/lm/complete", { json: { model: "openai/ok", messages: [{ role: "user", content: "hi" }] } });
  outputs.push(call.text);
  assert.equal(call.status, 200, call.text);
  assert.equal(seenAuth, `Bearer ${API_KEY}`);
  const back = await readBackWithPi(gw.agentDir, ["openai"]);
  assert.deepEqual(back.openai, { configured: true, type: "api_key", sha: sha(API_KEY) });
  const out = await admin("/auth/openai", { method: "DELETE" });
  assert.deepEqual(out.body, { provider: "openai", configured: false, source: null, removed: true });
  assert.equal(authFile().data.openai, undefined);
  const after = await gw.request("/lm/complete", { json: { model: "openai/ok", messages: [{ role: "user", content: "hi" }] } });
  assert.equal(after.body.error.type, "provider_not_configured");
  assert.match(after.body.error.message, /aiipython auth login openai/);
  const again = await admin("/auth/openai", { method: "DELETE" });
  assert.equal(again.body.removed, false);
  assert.equal((await admin("/auth/no-such-provider", { method: "DELETE" })).status, 404);
});

test("two gateway processes storing keys for two providers at once: both persist (pi's lock)", async () => {
  const agentDir = makeAgentDir({});
  const start = () => spawnGateway({
    env: { AIIPYTHON_GATEWAY_TOKEN: TOKEN, AIIPYTHON_GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN, AIIPYTHON_GATEWAY_LOG_LEVEL: "info", PI_CODING_AGENT_DIR: agentDir },
  });
  const [a, b] = await Promise.all([start(), start()]);
  try {
    const put = (g, provider, key) => fetch(`${g.ready.url}/auth/${provider}/api-key`, {
      method: "PUT",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ key }),
    });
    const rounds = [["openai", API_KEY, "groq", OTHER_KEY], ["anthropic", `${API_KEY}-2`, "mistral", `${OTHER_KEY}-2`]];
    for (const [p1, k1, p2, k2] of rounds) {
      const [r1, r2] = await Promise.all([put(a, p1, k1), put(b, p2, k2)]);
      assert.equal(r1.status, 200);
      assert.equal(r2.status, 200);
    }
    const data = JSON.parse(readFileSync(join(agentDir, "auth.json"), "utf8"));
    assert.deepEqual(Object.keys(data).sort(), ["anthropic", "groq", "mistral", "openai"]);
    assert.equal(statSync(join(agentDir, "auth.json")).mode & 0o777, 0o600);
  } finally {
    for (const g of [a, b]) {
      g.child.stdin.end();
      await g.exited;
      outputs.push(g.stdout(), g.stderr());
    }
  }
});

test("no output of these tests holds a code, token or key", () => {
  const all = [...outputs, gw.logs.join("")].join("\n");
  assert.ok(fake.secrets.size > 20);
  for (const secret of [...fake.secrets, API_KEY, OTHER_KEY, TOKEN, ADMIN_TOKEN]) {
    assert.ok(!all.includes(secret), `a secret leaked: ${secret.slice(0, 12)}...`);
  }
});
