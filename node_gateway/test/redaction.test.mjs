// Redaction by value: every key the gateway was configured with is scrubbed from what it emits,
// whatever its format, including an error event inside a 200 stream.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { chat, makeAgentDir, parseSSE, startFakeUpstream, startGateway, upstreamProvider } from "./helpers.mjs";

const PLAIN = "plainUpstreamKeyXYZ0123456789"; // matches no known key format
const FROM_ENV = "anotherPlainKeyFromTheEnv4242";
const RUNTIME = "runtimeBlockKeyNoPattern777777";
let up;
let gw;

before(async () => {
  up = await startFakeUpstream();
  process.env.HARDEN_TEST_UPSTREAM_KEY = FROM_ENV;
  const ids = ["echo-bare-key-after-content", "echo-key-401"];
  gw = await startGateway({
    agentDir: makeAgentDir({
      providers: {
        plain: upstreamProvider(up.url, { apiKey: PLAIN, ids }),
        envkey: upstreamProvider(up.url, { apiKey: "$HARDEN_TEST_UPSTREAM_KEY", ids }),
      },
    }),
  });
  const put = await gw.admin("/providers", { method: "PUT", json: { providers: { rt: upstreamProvider(up.url, { apiKey: RUNTIME, ids }) } } });
  assert.equal(put.status, 200);
});
after(async () => {
  delete process.env.HARDEN_TEST_UPSTREAM_KEY;
  await gw?.close();
  await up?.close();
});

for (const [provider, key] of [["plain", PLAIN], ["envkey", FROM_ENV], ["rt", RUNTIME]]) {
  test(`a ${provider} key echoed in a 200 stream's error event or a 401 body is redacted`, async () => {
    const s = await gw.request("/lm/stream", { json: chat(`${provider}/echo-bare-key-after-content`) });
    assert.equal(s.status, 200);
    const frames = parseSSE(s.text);
    assert.equal(frames.at(-1).event, "error");
    assert.match(frames.at(-1).data.error.message, /\[redacted\]/);
    const c = await gw.request("/lm/complete", { json: chat(`${provider}/echo-bare-key-after-content`) });
    const e = await gw.request("/lm/complete", { json: chat(`${provider}/echo-key-401`) });
    assert.equal(e.status, 502);
    for (const out of [s.text, c.text, e.text, gw.logs.join("")]) assert.ok(!out.includes(key), out);
  });
}
