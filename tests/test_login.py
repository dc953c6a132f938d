"""Logging in and out through pi from Python and the CLI (issue 13), against the real gateway and pi.

- The CLI as a subprocess on a fresh pi home: ``aiipython auth login openai --api-key`` (key on
  stdin) -> ``auth status`` says ``api_key``, auth.json is 0600 and a fresh Node process reads it
  back with pi's own ModelRuntime; a completion on the scripted upstream declared for ``openai``
  carries the stored key; ``auth logout`` removes it. Two CLI processes logging in to two providers
  at once both persist (pi's lock).
- The Python API (:func:`aiipython.login`) on a gateway process of this module, whose whole log
  is kept: pi's OAuth flows against the fake authorization server of the node tests
  (tests/fake_oauth_server.mjs): Kimi end to end through pi's own ``KIMI_CODE_OAUTH_HOST``;
  Anthropic end to end with pi's endpoints routed to the fake inside the gateway
  (tests/route_oauth_fetch.mjs, as node_gateway/test/login.test.mjs does in-process); the auth
  URL carries pi's parameters; cancelling frees Anthropic's fixed callback port 53692 (a second
  start on it succeeds); a flow left alone ends by itself.
- Every output (CLI stdout/stderr, SSE frames, the gateway's log, exception texts) is grepped for
  the keys, codes and tokens of these tests at the end.

Anthropic's callback port is fixed (53692): only the ``callback_port`` fixture's tests use it,
one at a time (pytest runs tests in order), each leaves it free (asserted), and before the first
the fixture waits until no other process holds it.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from conftest import GATEWAY_CACHE

import aiipython
from aiipython import (
    LoginCancelledError,
    LoginError,
    LoginTimeoutError,
    PiGatewayClient,
    ProviderNotConfiguredError,
    ProviderNotFoundError,
)
from aiipython._client import StreamEvent
from aiipython._login import AuthPrompt, AuthUrl

pytestmark = pytest.mark.gateway

TESTS = Path(__file__).resolve().parent
KEY = f"sk-login-py-{secrets.token_hex(16)}"
OTHER_KEY = f"groq-login-py-{secrets.token_hex(16)}"  # no known key pattern: redacted by value
ANTHROPIC_PORT = 53692  # pi 1.6's fixed Anthropic callback port (pi-ai dist/auth/oauth/anthropic.js)
ANTHROPIC_CLIENT_ID = "9d1c250a-e61b-44d9-88ed-5944d1962f5e"  # pi 1.6's (fake_oauth.mjs CLIENT_IDS)

OUTPUTS: list[str] = []  # every output of these tests, grepped for secrets by the last test
SECRETS: list[str] = []  # keys made by single tests, grepped for too


def _settings():  # type: ignore[no-untyped-def]
    from aiipython._settings import load_settings

    return load_settings({"AIIPYTHON_CACHE_DIR": str(GATEWAY_CACHE), "AIIPYTHON_LOCAL_MODEL": "off"})


@pytest.fixture(scope="module")
def node_install() -> tuple[str, Any]:
    """(node, GatewayInstall): the Node and the installed gateway the package itself runs."""
    from aiipython._node import find_node, install_gateway

    settings = _settings()
    runtime = find_node(settings)
    return str(runtime.node), install_gateway(settings, runtime, progress=False)


def _home(root: Path, upstream_url: str) -> Path:
    """A fresh pi agent dir: models.json points provider ``openai`` (pi's built-in) at the scripted
    upstream, model ``openai/ok``, without a key (the login supplies it)."""
    home = root / "pi-agent"
    home.mkdir(parents=True)
    (home / "models.json").write_text(json.dumps({"providers": {"openai": {
        "baseUrl": upstream_url, "api": "openai-completions",
        "models": [{"id": "ok", "contextWindow": 32000, "maxTokens": 1024,
                    "compat": {"supportsStore": False, "supportsDeveloperRole": False,
                               "maxTokensField": "max_tokens"}}]}}}))
    return home


def _cli_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(PI_CODING_AGENT_DIR=str(home), AIIPYTHON_CACHE_DIR=str(GATEWAY_CACHE), AIIPYTHON_LOCAL_MODEL="off")
    return env


def cli(*args: str, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "aiipython", *args], input=stdin if stdin is not None else "",
                          capture_output=True, text=True, env=env, timeout=180)
    OUTPUTS.extend([proc.stdout, proc.stderr])
    return proc


def _status(env: dict[str, str], provider: str) -> dict[str, Any]:
    proc = cli("auth", "status", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    entry: dict[str, Any] = next(p for p in json.loads(proc.stdout)["providers"] if p["provider"] == provider)
    return entry


def _auth_json(home: Path) -> tuple[int, dict[str, Any]]:
    path = home / "auth.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return stat.S_IMODE(path.stat().st_mode), data


_READ_BACK = """
import { createHash } from "node:crypto";
import { ModelRuntime } from "@earendil-works/pi-coding-agent";
const dir = process.env.AGENT_DIR;
const rt = await ModelRuntime.create({ authPath: dir + "/auth.json", modelsPath: dir + "/models.json",
                                       allowModelNetwork: false });
const creds = await rt.listCredentials();
const out = {};
for (const id of JSON.parse(process.env.PROVIDERS)) {
  const auth = await rt.getAuth(id).catch(() => null);
  const value = auth?.auth?.apiKey ?? auth?.auth?.headers?.Authorization?.replace(/^Bearer /, "");
  out[id] = { configured: rt.getProviderAuthStatus(id).configured,
              type: creds.find((c) => c.providerId === id)?.type ?? null,
              sha: value ? createHash("sha256").update(value).digest("hex") : null };
}
console.log(JSON.stringify(out));
"""


def read_back_with_pi(node_install: tuple[str, Any], home: Path, providers: list[str]) -> dict[str, Any]:
    """A fresh Node process reads the credentials with pi's own ModelRuntime (its credential
    store): ``{provider: {configured, type, sha}}`` (sha256 of the key or token pi would send)."""
    node, install = node_install
    proc = subprocess.run([node, "--input-type=module", "-e", _READ_BACK], cwd=install.root, capture_output=True,
                          text=True, timeout=60, env={"PATH": os.environ["PATH"], "HOME": str(home), "PI_OFFLINE": "1",
                                                      "AGENT_DIR": str(home), "PROVIDERS": json.dumps(providers)})
    OUTPUTS.extend([proc.stdout, proc.stderr])
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


# -- the CLI ------------------------------------------------------------------------------------


def test_cli_api_key_login_status_read_back_completion_logout(tmp_path, fake_upstream, node_install) -> None:  # type: ignore[no-untyped-def]
    home = _home(tmp_path, fake_upstream.base_url)
    env = _cli_env(home)
    assert _status(env, "openai")["configured"] is False

    proc = cli("auth", "login", "openai", "--api-key", env=env, stdin=KEY + "\n")
    assert proc.returncode == 0, proc.stderr
    assert "Logged in to openai (api_key)" in proc.stdout
    status = _status(env, "openai")
    assert (status["configured"], status["source"]) == (True, "api_key")
    mode, data = _auth_json(home)
    assert mode == 0o600
    assert data["openai"] == {"type": "api_key", "key": KEY}  # written by pi's store, as pi writes it
    assert read_back_with_pi(node_install, home, ["openai"])["openai"] == {
        "configured": True, "type": "api_key", "sha": sha(KEY)}

    ask = cli("--lm-backend", "pi", "--model", "openai/ok", "ask", "hi", "--json", env=env)
    assert ask.returncode == 0, ask.stderr
    assert json.loads(ask.stdout)["text"] == "ok"
    assert fake_upstream.authorizations == [f"Bearer {KEY}"]  # the stored key reached the upstream

    out = cli("auth", "logout", "openai", env=env)
    assert out.returncode == 0, out.stderr
    assert "pi's stored credential was removed" in out.stdout
    assert "openai" not in _auth_json(home)[1]
    assert _status(env, "openai")["configured"] is False
    after = cli("--lm-backend", "pi", "--model", "openai/ok", "ask", "hi", env=env)
    assert after.returncode == 1
    assert "aiipython auth login openai" in after.stderr  # the message names the login, not pi's CLI
    assert fake_upstream.calls == 1
    again = cli("auth", "logout", "openai", env=env)
    assert "had no credential stored by pi" in again.stdout


def test_cli_concurrent_logins_from_two_processes_both_persist(tmp_path, fake_upstream) -> None:  # type: ignore[no-untyped-def]
    home = _home(tmp_path, fake_upstream.base_url)
    env = _cli_env(home)
    cmd = [sys.executable, "-m", "aiipython", "auth", "login"]
    procs = [subprocess.Popen([*cmd, provider, "--api-key"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env)
             for provider in ("openai", "groq")]
    results = [p.communicate(key + "\n", timeout=180) for p, key in zip(procs, (KEY, OTHER_KEY), strict=True)]
    for p, (stdout, stderr) in zip(procs, results, strict=True):
        OUTPUTS.extend([stdout, stderr])
        assert p.returncode == 0, stderr
    mode, data = _auth_json(home)
    assert mode == 0o600
    assert data == {"openai": {"type": "api_key", "key": KEY}, "groq": {"type": "api_key", "key": OTHER_KEY}}


def test_cli_usage_errors(tmp_path, fake_upstream) -> None:  # type: ignore[no-untyped-def]
    env = _cli_env(_home(tmp_path, fake_upstream.base_url))
    empty = cli("auth", "login", "openai", "--api-key", env=env, stdin="")
    assert empty.returncode == 2
    assert "stdin was empty" in empty.stderr
    unknown = cli("auth", "login", "no-such-provider", "--api-key", env=env, stdin=KEY)
    assert unknown.returncode == 2
    assert 'pi has no provider "no-such-provider"' in unknown.stderr
    nameless = cli("auth", "login", "--api-key", env=env, stdin=KEY)
    assert nameless.returncode == 2
    assert "name the PROVIDER" in nameless.stderr
    assert cli("auth", "logout", env=env).returncode == 2


def test_cli_picker_lists_pi_providers_and_starts_the_chosen_one(tmp_path, fake_upstream) -> None:  # type: ignore[no-untyped-def]
    """No PROVIDER: a numbered list (OAuth providers first, like pi's /login); choosing an API-key
    provider asks for its key (here from stdin), which pi stores."""
    env = _cli_env(_home(tmp_path, fake_upstream.base_url))
    listing = cli("auth", "login", env=env, stdin="")  # stdin ends at the question: aborted, nothing stored
    lines = [line.strip() for line in listing.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert lines[0].startswith("1. Anthropic (anthropic)")
    groq = next(line for line in lines if "(groq)" in line)
    number = groq.split(".", 1)[0]
    chosen = cli("auth", "login", env=env, stdin=f"{number}\n{OTHER_KEY}\n")
    assert chosen.returncode == 0, chosen.stderr
    assert "Logged in to groq (api_key)" in chosen.stdout
    assert _status(env, "groq")["source"] == "api_key"


def _cli_anthropic(env: dict[str, str]) -> tuple[subprocess.Popen[str], list[str], str]:
    """``aiipython auth login anthropic --no-browser`` answering pi's choice with 1 (browser) on
    stdin; returns once the sign-in URL is printed (pi's callback server listens then)."""
    proc = subprocess.Popen([sys.executable, "-m", "aiipython", "auth", "login", "anthropic", "--no-browser"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdin is not None and proc.stderr is not None
    proc.stdin.write("1\n")
    proc.stdin.flush()
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "https://claude.ai/oauth/authorize?" in line:
            break
    assert any("Choose 1-2" in line for line in seen), seen
    url = next((line.strip() for line in seen if "https://claude.ai/" in line), "")
    assert parse_qs(urlsplit(url).query).get("client_id") == [ANTHROPIC_CLIENT_ID], seen
    return proc, seen, url


def test_cli_oauth_on_the_terminal_ctrl_c_then_a_full_login(tmp_path, fake_upstream, fake_oauth, callback_port,  # type: ignore[no-untyped-def]
                                                            node_install) -> None:
    """The terminal defaults: pi's choice as a numbered question (answered on stdin), the sign-in
    URL printed (no browser with --no-browser). Ctrl-C: the CLI cancels the flow and exits 1.
    Again, and the browser signs in: the CLI's own gateway (pi's endpoints routed to the fake, as
    in OAuthGateway) stores the token and the CLI ends by itself, the paste prompt left unanswered."""
    home = _home(tmp_path, fake_upstream.base_url)
    env = _cli_env(home)
    env.update(FAKE_OAUTH_URL=fake_oauth.url, NODE_OPTIONS=f"--import={(TESTS / 'route_oauth_fetch.mjs').as_uri()}")
    proc, seen, _ = _cli_anthropic(env)
    assert not _port_free(callback_port)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    OUTPUTS.extend(["".join(seen), stdout, stderr])
    assert proc.returncode == 1, stderr
    assert "Aborted!" in stderr and "Traceback" not in stderr and "Fatal" not in stderr

    proc, seen, url = _cli_anthropic(env)
    back = fake_oauth.authorize("anthropic", url).replace("//localhost:", "//127.0.0.1:")
    OUTPUTS.append(httpx.get(back, timeout=30).text)
    assert proc.stdout is not None and proc.stderr is not None
    stdout = proc.stdout.read()  # stdin stays open (a terminal would): the paste prompt still waits on it
    assert proc.wait(60) is not None
    stderr = proc.stderr.read()
    assert proc.stdin is not None
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        pipe.close()
    OUTPUTS.extend(["".join(seen), stdout, stderr])
    assert proc.returncode == 0, stderr
    assert "Logged in to anthropic (oauth)" in stdout
    assert "Fatal" not in stderr and "Traceback" not in stderr
    token = fake_oauth.state()["tokens"]["anthropic"]
    assert _auth_json(home)[1]["anthropic"]["access"] == token
    assert _status(env, "anthropic")["source"] == "oauth"


# -- the Python API on a gateway of this module ----------------------------------------------------


class FakeOAuth:
    """tests/fake_oauth_server.mjs: the node tests' fake authorization server, as a process."""

    def __init__(self, node: str) -> None:
        self.proc = subprocess.Popen([node, str(TESTS / "fake_oauth_server.mjs")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        ready = json.loads(self.proc.stdout.readline())
        self.url: str = ready["url"]
        self.control = httpx.Client(base_url=ready["control"], timeout=10)

    def authorize(self, provider: str, url: str) -> str:
        """Sign in at pi's auth URL; the redirect the browser follows to pi's callback."""
        res = self.control.post("/authorize", json={"provider": provider, "url": url})
        assert res.status_code == 200, res.text
        redirect: str = res.json()["redirect"]
        return redirect

    def approve(self, user_code: str) -> None:
        assert self.control.post("/approve", json={"user_code": user_code}).status_code == 200

    def state(self) -> dict[str, Any]:
        data: dict[str, Any] = self.control.get("/state").json()
        return data

    def close(self) -> None:
        self.control.close()
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(10)
        self.proc.stdout.close()


class OAuthGateway:
    """A gateway process of this module on a fresh pi home, its whole log in a file."""

    def __init__(self, node_install: tuple[str, Any], home: Path, fake: FakeOAuth, log: Path) -> None:
        node, install = node_install
        self.home, self.log_path = home, log
        self.token, self.admin_token = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIIPYTHON_") and not k.endswith("_API_KEY")}
        env.update(AIIPYTHON_GATEWAY_TOKEN=self.token, AIIPYTHON_GATEWAY_ADMIN_TOKEN=self.admin_token,
                   AIIPYTHON_GATEWAY_LOG_LEVEL="debug", PI_CODING_AGENT_DIR=str(home), PI_OFFLINE="1",
                   KIMI_CODE_OAUTH_HOST=f"{fake.url}/kimi",  # pi's own knob for Kimi's OAuth host
                   FAKE_OAUTH_URL=fake.url,
                   NODE_OPTIONS=f"--import={(TESTS / 'route_oauth_fetch.mjs').as_uri()}")
        self.log = log.open("w")
        self.proc = subprocess.Popen([node, str(install.server), "--host", "127.0.0.1", "--port", "0"],
                                     cwd=install.root, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, log.read_text()
        self.url: str = json.loads(line)["url"]
        self.client = RecordingClient(url=self.url, token=self.admin_token)

    def close(self) -> None:
        if self.log.closed:
            return
        self.client.close()
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(10)
        self.proc.stdout.close()
        self.log.close()
        OUTPUTS.append(self.log_path.read_text())


class RecordingClient(PiGatewayClient):
    """PiGatewayClient that keeps every SSE frame of the login streams (for the final grep)."""

    def login_events(self, provider: str, *, method: str | None = None,
                     timeout_ms: int | None = None) -> Iterator[StreamEvent]:
        for event in super().login_events(provider, method=method, timeout_ms=timeout_ms):
            OUTPUTS.append(f"event: {event.type}\ndata: {json.dumps(event.data)}")
            yield event


@pytest.fixture(scope="module")
def fake_oauth(node_install) -> Iterator[FakeOAuth]:  # type: ignore[no-untyped-def]
    fake = FakeOAuth(node_install[0])
    yield fake
    OUTPUTS.append(json.dumps({"fake_state_seen": True}))
    fake.close()


@pytest.fixture(scope="module")
def oauth_gw(node_install, fake_oauth, tmp_path_factory) -> Iterator[OAuthGateway]:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("login")
    home = root / "pi-agent"
    home.mkdir()
    gw = OAuthGateway(node_install, home, fake_oauth, root / "gateway.log")
    yield gw
    gw.close()


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def callback_port() -> Iterator[int]:
    """Anthropic's fixed callback port, free before the test (waiting, bounded, for another
    process to let go of it) and asserted free after it."""
    deadline = time.monotonic() + 60
    while not _port_free(ANTHROPIC_PORT):
        assert time.monotonic() < deadline, f"port {ANTHROPIC_PORT} stayed taken by another process"
        time.sleep(0.1)  # polling a condition another process controls, with a deadline
    yield ANTHROPIC_PORT
    assert _port_free(ANTHROPIC_PORT), "a login of this test left pi's callback server open"


def choose(option: str | None = None):  # type: ignore[no-untyped-def]
    """An on_prompt that picks ``option`` at a select prompt and leaves any other prompt (pi's
    paste-the-code fallback, raced against its callback server) unanswered until pi closes it
    (the browser's callback arrived) or the flow ends."""
    def on_prompt(prompt: AuthPrompt) -> str:
        OUTPUTS.append(repr(prompt))
        if prompt.type == "select":
            assert option in [o.id for o in prompt.options], prompt
            return option or ""
        assert prompt.type == "manual_code", prompt
        assert prompt.closed.wait(300)
        return ""  # ignored: the prompt is closed
    return on_prompt


class Interrupted(Exception):
    """Raised from a callback, standing for the user's Ctrl-C."""


def test_auth_providers_are_pis_with_typed_methods(oauth_gw: OAuthGateway) -> None:
    providers = {p.provider: p for p in aiipython.auth_providers(client=oauth_gw.client)}
    oauth = sorted(p.provider for p in providers.values() if p.method("oauth"))
    assert {"anthropic", "openai-codex", "github-copilot", "openrouter", "kimi-coding", "xai"} <= set(oauth)
    anthropic = providers["anthropic"]
    assert isinstance(anthropic, aiipython.LoginProvider)
    method = anthropic.method("oauth")
    assert method is not None and method.subscription and method.flows == ("browser_callback", "pasted_code")
    api_key = anthropic.method("api_key")
    assert api_key is not None and "ANTHROPIC_API_KEY" in api_key.env_vars
    assert all(p.method("oauth").flows for p in providers.values() if p.method("oauth"))  # type: ignore[union-attr]
    assert providers["groq"].configured is False and providers["groq"].method("oauth") is None


def test_anthropic_auth_url_has_pis_parameters_and_cancel_frees_the_port(oauth_gw, callback_port) -> None:  # type: ignore[no-untyped-def]
    """Starting the flow yields pi's authorization URL (without network); the callback (standing
    for Ctrl-C) raising cancels the flow in the gateway, which answers once pi's callback server
    is closed: the port is free at once, and a second start on it succeeds."""
    for round_ in range(2):
        seen: list[AuthUrl] = []

        def on_auth_url(auth: AuthUrl, seen: list[AuthUrl] = seen, round_: int = round_) -> None:
            seen.append(auth)
            assert not _port_free(callback_port)  # pi's callback server listens now
            raise KeyboardInterrupt if round_ == 0 else Interrupted("the user gave up")

        with pytest.raises(KeyboardInterrupt if round_ == 0 else Interrupted):
            aiipython.login("anthropic", client=oauth_gw.client, on_prompt=choose("browser"), on_auth_url=on_auth_url)
        assert _port_free(callback_port), f"round {round_}: the cancelled flow still holds the port"
        (auth,) = seen
        q = {k: v[0] for k, v in parse_qs(urlsplit(auth.url).query).items()}
        assert urlsplit(auth.url).netloc == "claude.ai"
        assert q["client_id"] == ANTHROPIC_CLIENT_ID
        assert (q["response_type"], q["code_challenge_method"]) == ("code", "S256")
        assert len(q["code_challenge"]) == 43 and q["state"]
        assert q["redirect_uri"] == f"http://localhost:{callback_port}/callback"


def test_anthropic_oauth_round_trip_from_python(oauth_gw, callback_port, fake_oauth, node_install) -> None:  # type: ignore[no-untyped-def]
    """The browser signs in at pi's URL and lands on pi's callback; pi exchanges the code with
    the fake's token endpoint (pi's PKCE verifier and redirect checked) and stores the token."""
    def browser(auth: AuthUrl) -> None:
        back = fake_oauth.authorize("anthropic", auth.url).replace("//localhost:", "//127.0.0.1:")
        res = httpx.get(back, timeout=30)
        OUTPUTS.append(res.text)
        assert res.status_code == 200

    result = aiipython.login("anthropic", client=oauth_gw.client, on_prompt=choose("browser"), on_auth_url=browser)
    assert result == aiipython.LoginResult(provider="anthropic", method="oauth", configured=True, source="oauth")
    mode, data = _auth_json(oauth_gw.home)
    assert mode == 0o600
    token = fake_oauth.state()["tokens"]["anthropic"]
    assert (data["anthropic"]["type"], data["anthropic"]["access"]) == ("oauth", token)
    back = read_back_with_pi(node_install, oauth_gw.home, ["anthropic"])["anthropic"]
    assert back == {"configured": True, "type": "oauth", "sha": sha(token)}


def test_kimi_device_code_round_trip_through_pis_own_host_setting(oauth_gw, fake_oauth) -> None:  # type: ignore[no-untyped-def]
    """Kimi's OAuth host is a pi setting (KIMI_CODE_OAUTH_HOST): the device code reaches
    on_auth_url, the user approves it, pi's polling gets the token and stores it."""
    codes: list[AuthUrl] = []

    def on_auth_url(auth: AuthUrl) -> None:
        codes.append(auth)
        assert auth.user_code
        fake_oauth.approve(auth.user_code)

    progress: list[str] = []
    result = aiipython.login("kimi-coding", client=oauth_gw.client, on_auth_url=on_auth_url,
                             on_progress=progress.append, on_prompt=choose())
    assert (result.configured, result.source, result.method) == (True, "oauth", "oauth")
    (code,) = codes
    assert code.url.startswith("https://") and code.user_code
    OUTPUTS.extend([repr(code), *progress])
    assert _auth_json(oauth_gw.home)[1]["kimi-coding"]["access"] == fake_oauth.state()["tokens"]["kimi-coding"]
    assert aiipython.logout("kimi-coding", client=oauth_gw.client) == aiipython.LogoutResult(
        provider="kimi-coding", removed=True, configured=False, source=None)
    assert "kimi-coding" not in _auth_json(oauth_gw.home)[1]


def test_a_flow_left_alone_ends_by_itself(oauth_gw) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(LoginTimeoutError) as info:
        aiipython.login("openrouter", client=oauth_gw.client, timeout=0.5, on_auth_url=lambda auth: None,
                        on_prompt=choose())
    OUTPUTS.append(str(info.value))
    assert info.value.code == "login_timeout" and info.value.provider == "openrouter"
    assert "did not finish within 0.5 s" in info.value.message


def test_cancelled_elsewhere_conflict_and_unknown_provider(oauth_gw) -> None:  # type: ignore[no-untyped-def]
    """A second login to a provider with one running is LoginError ``conflict``; cancelling the
    first from outside ends it with LoginCancelledError; an unknown provider is ProviderNotFoundError."""
    started = threading.Event()
    flow_ids: list[str] = []
    errors: list[BaseException] = []

    def first() -> None:
        def on_auth_url(auth: AuthUrl) -> None:
            started.set()
        try:
            for event in oauth_gw.client.login_events("openrouter"):
                if event.type == "start":
                    flow_ids.append(event.data["id"])
                if event.type == "auth_url":
                    on_auth_url(AuthUrl(url=event.data["url"]))
        except BaseException as exc:  # checked below
            errors.append(exc)

    thread = threading.Thread(target=first)
    thread.start()
    assert started.wait(60)
    with pytest.raises(LoginError) as conflict:
        aiipython.login("openrouter", client=oauth_gw.client, on_auth_url=lambda auth: None)
    assert conflict.value.code == "conflict" and flow_ids[0] in conflict.value.message
    assert oauth_gw.client.cancel_login(flow_ids[0]) == {"id": flow_ids[0], "cancelled": True}
    thread.join(30)
    (error,) = errors
    assert isinstance(error, LoginCancelledError) and error.provider == "openrouter"
    with pytest.raises(ProviderNotFoundError) as unknown:
        aiipython.login("no-such-provider", client=oauth_gw.client)
    assert "anthropic" in unknown.value.candidates
    OUTPUTS.extend(str(e) for e in (conflict.value, error, unknown.value))


def test_api_key_through_python_and_logout(oauth_gw) -> None:  # type: ignore[no-untyped-def]
    """login(api_key=...) stores it through pi; errors never quote it; after logout a call says
    how to log in."""
    result = aiipython.login("groq", api_key=OTHER_KEY, client=oauth_gw.client)
    assert (result.method, result.source) == ("api_key", "api_key")
    with pytest.raises(aiipython.InvalidRequestError) as bad:
        aiipython.login("groq", api_key=f"{KEY} two", client=oauth_gw.client)
    assert KEY not in str(bad.value)
    OUTPUTS.append(str(bad.value))
    assert aiipython.logout("groq", client=oauth_gw.client).removed is True
    model = next(m for m in oauth_gw.client.list_models()["models"] if m["provider"] == "groq")
    with pytest.raises(ProviderNotConfiguredError) as info:
        oauth_gw.client.complete(f"groq/{model['id']}", [{"role": "user", "content": "hi"}])
    assert "aiipython auth login groq" in info.value.message


def test_api_key_login_flow_answers_pis_secret_prompt(oauth_gw) -> None:  # type: ignore[no-untyped-def]
    """Without api_key, an API-key provider runs pi's own API key login: its ``secret`` prompt
    reaches on_prompt and the answer (POST .../input) is stored, then redacted everywhere."""
    key = f"mistral-login-py-{secrets.token_hex(16)}"
    SECRETS.append(key)
    asked: list[AuthPrompt] = []

    def on_prompt(prompt: AuthPrompt) -> str:
        asked.append(prompt)
        return key

    result = aiipython.login("mistral", client=oauth_gw.client, on_prompt=on_prompt)
    assert (result.method, result.source) == ("api_key", "api_key")
    assert [p.type for p in asked] == ["secret"]
    OUTPUTS.append(repr(asked))
    assert _auth_json(oauth_gw.home)[1]["mistral"] == {"type": "api_key", "key": key}


def test_login_errors_map_from_the_gateways_types() -> None:
    from aiipython._errors import error_from_envelope, is_retryable

    def frame(etype: str) -> Any:  # an SSE error frame: no status, derived from the type
        return error_from_envelope(None, {"error": {"type": etype, "message": "m"}})

    cases = {"login_failed": (LoginError, 502), "conflict": (LoginError, 409),
             "login_cancelled": (LoginCancelledError, 409), "login_timeout": (LoginTimeoutError, 504),
             "unknown_provider": (ProviderNotFoundError, 404)}
    for etype, (cls, status) in cases.items():
        err = frame(etype)
        assert type(err) is cls and err.status == status and err.code == etype, etype
        assert not is_retryable(err)
    assert isinstance(frame("login_timeout"), TimeoutError) and isinstance(frame("unknown_provider"), LookupError)
    assert type(error_from_envelope(409, {"error": {"type": "new_kind", "message": "m"}})) is LoginError


def test_cli_login_on_a_gateway_of_another_process_names_the_fix(oauth_gw) -> None:  # type: ignore[no-untyped-def]
    """AIIPYTHON_GATEWAY_URL: this process does not have that gateway's admin token."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(AIIPYTHON_GATEWAY_URL=oauth_gw.url, AIIPYTHON_GATEWAY_TOKEN=oauth_gw.token)
    proc = cli("auth", "login", "openai", "--api-key", env=env, stdin=KEY)
    assert proc.returncode == 1
    assert "admin token is unknown" in proc.stderr and "unset AIIPYTHON_GATEWAY_URL" in proc.stderr


def test_import_stays_cheap() -> None:
    code = ("import sys, aiipython; assert callable(aiipython.login); "
            "print(int('httpx' in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", "import sys, aiipython; print(int('httpx' in sys.modules))"],
                          capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "0", proc.stderr
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).returncode == 0


def test_no_output_holds_a_key_code_or_token(fake_oauth, oauth_gw) -> None:  # type: ignore[no-untyped-def]
    """Last: every CLI output, SSE frame, exception text and the gateway's log (closed first)."""
    issued = fake_oauth.state()["secrets"]
    oauth_gw.close()
    assert len(issued) >= 4 and len(OUTPUTS) > 20
    everything = "\n".join(OUTPUTS)
    for secret in [*issued, *SECRETS, KEY, OTHER_KEY, oauth_gw.token, oauth_gw.admin_token]:
        assert secret not in everything, f"a secret leaked: {secret[:10]}..."
