// The fake authorization server of the gateway's login tests (node_gateway/test/fake_oauth.mjs)
// as a process, for the Python login tests (tests/test_login.py): one JSON line on stdout,
// {"url", "control"}, then it serves until stdin ends. The control server plays the user:
//   POST /authorize {provider, url}  -> {"redirect"}: sign in at pi's auth URL (pi's client id,
//                                        PKCE challenge and redirect checked); where the browser goes
//   POST /approve {user_code}        -> {}: approve a device code
//   GET  /state                      -> {"secrets": [...], "tokens": {provider: access}}: every code,
//                                        token and key it issued (the tests grep outputs for them)
import { createServer } from "node:http";
import { startFakeOAuth } from "../node_gateway/test/fake_oauth.mjs";

const fake = await startFakeOAuth();

async function json(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return chunks.length ? JSON.parse(Buffer.concat(chunks).toString("utf8")) : {};
}

const control = createServer(async (req, res) => {
  let status = 200;
  let out;
  try {
    const body = req.method === "POST" ? await json(req) : {};
    if (req.url === "/authorize") out = { redirect: fake.authorize(body.provider, body.url) };
    else if (req.url === "/approve") out = (fake.approve(body.user_code), {});
    else if (req.url === "/state") out = { secrets: [...fake.secrets], tokens: Object.fromEntries(fake.tokens) };
    else [status, out] = [404, { error: `no ${req.url}` }];
  } catch (err) {
    [status, out] = [400, { error: String(err?.message ?? err) }];
  }
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(out));
});
await new Promise((resolve) => control.listen(0, "127.0.0.1", resolve));
process.stdout.write(`${JSON.stringify({ url: fake.url, control: `http://127.0.0.1:${control.address().port}` })}\n`);
process.stdin.resume();
process.stdin.on("end", async () => {
  control.close();
  await fake.close();
  process.exit(0);
});
