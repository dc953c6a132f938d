// Test-only preload for a gateway of tests/test_login.py (NODE_OPTIONS=--import <this file>):
// points pi's hard-coded OAuth endpoints at the fake authorization server FAKE_OAUTH_URL in the
// gateway process, as node_gateway/test/login.test.mjs does in-process (fake_oauth.mjs routeFetch:
// https://<provider host>/<path> -> <fake>/<host>/<path>; any other https host is refused).
import { routeFetch } from "../node_gateway/test/fake_oauth.mjs";

if (process.env.FAKE_OAUTH_URL) routeFetch(process.env.FAKE_OAUTH_URL);
