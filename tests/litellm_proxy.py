"""A real LiteLLM proxy (``python -m litellm.proxy.proxy_cli``) for tests and scripts/bench_v1.py, from
the venv that ``scripts/setup --dev`` makes (``.venv-litellm-proxy``, tests/requirements-litellm-proxy.txt).

Ready when uvicorn announces that it listens (read from its output, never a sleep); stopped with
SIGTERM then SIGKILL. Loopback only. ``start()`` again after ``stop()`` reuses the same port."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections import deque
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
PROXY_PYTHON = Path(os.environ.get("AIIPYTHON_TEST_LITELLM_PROXY_PYTHON") or REPO / ".venv-litellm-proxy/bin/python")
START_TIMEOUT_S = 300.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiteLLMProxy:
    """One LiteLLM proxy process serving ``model_list`` with ``master_key``."""

    def __init__(self, model_list: list[dict[str, Any]], *, master_key: str, workdir: Path) -> None:
        if not PROXY_PYTHON.exists():
            raise RuntimeError(f"no LiteLLM proxy venv at {PROXY_PYTHON}: run scripts/setup --dev")
        self.master_key = master_key
        self.port = free_port()
        self.config = workdir / "litellm-proxy.yaml"
        settings = {"model_list": model_list, "general_settings": {"master_key": master_key}}
        self.config.write_text(yaml.safe_dump(settings))
        self.proc: subprocess.Popen[str] | None = None
        self.output: deque[str] = deque(maxlen=200)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The proxy's process id, once started."""
        if self.proc is None:
            raise RuntimeError("the LiteLLM proxy is not running")
        return self.proc.pid

    def start(self) -> LiteLLMProxy:
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False",
               "NO_DOCS": "True", "DISABLE_ADMIN_UI": "True"}
        self.proc = subprocess.Popen(
            [str(PROXY_PYTHON), "-m", "litellm.proxy.proxy_cli", "--config", str(self.config),
             "--host", "127.0.0.1", "--port", str(self.port), "--num_workers", "1"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )
        ready = threading.Event()
        proc = self.proc

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                self.output.append(line.rstrip("\n"))
                if "Uvicorn running on" in line:  # printed once the socket listens
                    ready.set()
            ready.set()  # EOF: the process ended; start() reports it

        threading.Thread(target=read, daemon=True, name="litellm-proxy-output").start()
        if not ready.wait(START_TIMEOUT_S) or proc.poll() is not None:
            tail = "\n".join(self.output)
            self.stop()
            raise RuntimeError(f"the LiteLLM proxy did not start within {START_TIMEOUT_S:.0f} s:\n{tail[-4000:]}")
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(15)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None
