"""The embedded local model's child process: llama.cpp's server on 127.0.0.1, one readiness line.

Run as ``python -m aiipython._local_server --model PATH [--alias A] [--ctx N] [--threads N]``
(the parent runs this file by path with ``python -P`` so the package ``__init__`` is not
imported). It serves the GGUF with ``xllamacpp.Server`` on an ephemeral port, then writes exactly
one JSON line to stdout, ``{"event": "ready", "url": "http://127.0.0.1:PORT", "pid": ...,
"model": ALIAS, "n_ctx": N}``, and nothing else there (llama.cpp's logs go to stderr). It exits
when its stdin reaches EOF (the parent is gone: no orphans) or on SIGTERM/SIGINT/SIGHUP.
With ``AIIPYTHON_LOCAL_SERVER_API_KEY`` set (the parent sets a random one) every request but
``/health`` needs ``Authorization: Bearer <key>``, so other local users cannot use its one slot.
Exit codes: 0 normal stop, 1 the model could not be loaded or served, 2 bad arguments.

This module uses only the standard library and xllamacpp; it must not import aiipython.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence

__all__ = ["main", "DEFAULT_ALIAS", "DEFAULT_CTX", "DEFAULT_THREADS", "DEFAULT_N_PREDICT"]

#: The parent always passes ``--alias`` (aiipython._model_names.LOCAL_MODEL_ID); this is the CLI default.
DEFAULT_ALIAS = "smollm2-135m"
#: Context size in tokens. pi reserves ~4096 tokens of it for the answer (docs/protocol.md `GET /models`).
DEFAULT_CTX = 8192
#: ggml's thread pool spin-waits: more than one thread on 2 shared cores collapses throughput.
DEFAULT_THREADS = 1
#: Server-side cap on generated tokens per request (matches the provider's ``maxTokens``).
DEFAULT_N_PREDICT = 512

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m aiipython._local_server",
        description="Serve a GGUF with llama.cpp on 127.0.0.1 and print one readiness line.",
    )
    ap.add_argument("--model", required=True, help="path of the GGUF file to serve")
    ap.add_argument("--alias", default=DEFAULT_ALIAS, help=f"model id to answer to (default {DEFAULT_ALIAS})")
    ap.add_argument("--ctx", type=int, default=DEFAULT_CTX, help=f"context size in tokens (default {DEFAULT_CTX})")
    ap.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="CPU threads (default 1; keep it 1)")
    ap.add_argument("--n-predict", type=int, default=DEFAULT_N_PREDICT, help="max generated tokens per request")
    return ap.parse_args(argv)


def _exit_at_stdin_eof() -> None:
    """Block until stdin ends, then leave at once: the parent holds the only write end."""
    try:
        while os.read(0, 65536):
            pass
    except OSError:
        pass
    os._exit(0)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until stdin ends or a stop signal arrives. Returns an exit code on failure only."""
    args = _parse(argv)
    if not os.path.isfile(args.model):
        print(f"aiipython._local_server: model file not found: {args.model}", file=sys.stderr, flush=True)
        return 1

    # Stop signals are blocked in every thread (the native server's threads inherit this mask)
    # and taken synchronously by sigwait() in the main thread below, so no thread can swallow one.
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)

    # Only the readiness line may reach the real stdout: keep a private copy of it and point
    # fd 1 at stderr, so any native or Python print lands in the parent's stderr tail instead.
    ready_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    threading.Thread(target=_exit_at_stdin_eof, name="stdin-eof", daemon=True).start()
    api_key = os.environ.pop("AIIPYTHON_LOCAL_SERVER_API_KEY", "")

    try:
        import xllamacpp

        p = xllamacpp.CommonParams()
        p.model.path = args.model
        p.model_alias = [args.alias]  # a list: a plain string becomes one alias per character
        p.hostnames = ["127.0.0.1"]
        p.port = 0
        p.n_ctx = args.ctx
        p.n_parallel = 1
        p.n_predict = args.n_predict
        p.cpuparams.n_threads = args.threads
        p.cpuparams_batch.n_threads = args.threads
        p.use_jinja = True
        p.ui = False
        if api_key:
            p.api_keys = [api_key]
        server = xllamacpp.Server(p)  # returns once the model is loaded and listening
        url = str(server.listening_address).rstrip("/")
    except Exception as exc:
        print(f"aiipython._local_server: could not start llama.cpp server: {type(exc).__name__}: {exc}",
              file=sys.stderr, flush=True)
        return 1

    line = json.dumps(
        {"event": "ready", "url": url, "pid": os.getpid(), "model": args.alias, "n_ctx": args.ctx}
    )
    os.write(ready_fd, (line + "\n").encode("utf-8"))
    os.close(ready_fd)

    signal.sigwait(_STOP_SIGNALS)
    # No orderly teardown of the C++ server: the OS reclaims the socket and memory at once.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
