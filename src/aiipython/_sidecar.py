"""A child process that announces readiness with one JSON line and dies with its parent.

The contract (shared by the Node gateway and the local model server): the child writes exactly
one JSON object line to stdout once it serves, logs to stderr, and exits when its stdin reaches
EOF. Because the parent holds the only write end of that pipe, the child sees EOF when the parent
exits for any reason, SIGKILL included, so it cannot be orphaned.

Readiness is read with a deadline from a reader thread (no sleeps, no polling); stderr is drained
continuously into a bounded tail so a full pipe never stalls the child, and that tail goes into
start errors.
"""

from __future__ import annotations

import collections
import json
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

__all__ = ["Sidecar", "SidecarStartFailure"]

_STDERR_TAIL_LINES = 60


class SidecarStartFailure(Exception):
    """The child exited or stayed silent before its readiness line (internal; callers re-raise
    it as their own public error)."""

    def __init__(self, message: str, stderr_tail: str) -> None:
        super().__init__(message)
        self.stderr_tail = stderr_tail


class Sidecar:
    """One child process speaking the readiness-line / stdin-EOF contract."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        redact: Callable[[str], str] = lambda s: s,
        on_stderr: Callable[[str], None] | None = None,
    ) -> None:
        """``on_stderr``, when given, is called (from the reader thread) with each stderr line,
        redacted, as it arrives; the bounded tail is kept either way."""
        self.name = name
        self._on_stderr = on_stderr
        self._argv = list(argv)
        self._env = dict(env) if env is not None else None
        self._cwd = str(cwd) if cwd is not None else None
        self._redact = redact
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL_LINES)
        #: Lines read from stderr so far, and its condition (notified per line; stderr_lines_after).
        self._stderr_count = 0
        self._stderr_seen = threading.Condition()
        self._ready: queue.Queue[str | None] = queue.Queue(maxsize=1)
        #: Set when the child's stdout reaches EOF: it exited (its pipe closes with it).
        self._stdout_closed = threading.Event()
        self._lock = threading.Lock()
        self._closed = False
        #: The parsed readiness line, once started.
        self.info: dict[str, Any] = {}

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, timeout: float) -> dict[str, Any]:
        """Spawn the child and wait up to ``timeout`` seconds for its readiness line.

        Returns:
            The readiness line as a dict.

        Raises:
            SidecarStartFailure: the child exited, wrote a line that is not a JSON object, or
                said nothing within ``timeout``; the child is stopped before raising.
            OSError: the executable could not be run at all.
        """
        self._proc = subprocess.Popen(
            self._argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self._env,
            cwd=self._cwd,
            close_fds=True,
        )
        threading.Thread(target=self._drain_stdout, name=f"{self.name}-stdout", daemon=True).start()
        stderr_reader = threading.Thread(target=self._drain_stderr, name=f"{self.name}-stderr", daemon=True)
        stderr_reader.start()
        deadline = time.monotonic() + timeout
        try:
            line = self._ready.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            self.close()
            raise SidecarStartFailure(
                f"{self.name} printed no readiness line within {timeout:g} s", self.stderr_tail()
            ) from None
        if line is None:
            code = self._wait_exit(2.0)
            stderr_reader.join(2.0)  # its last lines say why it exited
            self.close()
            raise SidecarStartFailure(f"{self.name} exited with code {code} before it was ready", self.stderr_tail())
        try:
            info = json.loads(line)
        except ValueError:
            info = None
        if not isinstance(info, dict):
            self.close()
            raise SidecarStartFailure(
                f"{self.name} wrote a readiness line that is not a JSON object: {self._redact(line[:200])!r}",
                self.stderr_tail(),
            )
        self.info = info
        return info

    def close(self, timeout: float = 3.0) -> None:
        """Stop the child: close its stdin (it exits by itself), then SIGTERM, then SIGKILL.

        Idempotent and safe from any thread; returns once the process is gone.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        proc = self._proc
        if proc is None:
            return
        if proc.stdin is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass
        if self._wait_exit(timeout) is None:
            proc.terminate()
            if self._wait_exit(timeout) is None:
                proc.kill()
                self._wait_exit(timeout)

    def wait(self, timeout: float | None = None) -> int | None:
        """Block until the child exits (at most ``timeout`` seconds; ``None``: no limit).

        Returns:
            Its exit code, or ``None`` if it is still running after ``timeout`` or never started.
        """
        if self._proc is None:
            return None
        try:
            code = self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self._release_stdin()
        return code

    def _release_stdin(self) -> None:
        """Close our end of the child's stdin once it has exited (no ResourceWarning)."""
        if self._proc is not None and self._proc.stdin is not None and not self._proc.stdin.closed:
            try:
                self._proc.stdin.close()
            except OSError:
                pass

    # -- state ---------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        code = self._proc.poll() if self._proc is not None else None
        if code is not None:
            self._release_stdin()
        return code

    def exited(self) -> bool:
        """Cheap and reliable death check (per call): the child's stdout pipe closed, or
        ``poll()`` reaped it. A process killed a moment ago is caught by either."""
        return self._stdout_closed.is_set() or self.returncode is not None

    def alive(self) -> bool:
        """True while the child process exists and is not a zombie (psutil)."""
        if self._proc is None or self._closed:
            return False
        if self._proc.poll() is not None:
            self._release_stdin()
            return False
        try:
            return psutil.Process(self._proc.pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def stderr_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines the child wrote to stderr, redacted."""
        tail = list(self._stderr)[-lines:]
        return self._redact("\n".join(tail))

    @property
    def stderr_count(self) -> int:
        """How many lines the child has written to stderr so far (the tail keeps the last 60)."""
        return self._stderr_count

    def wait_stderr(self, count: int, timeout: float) -> bool:
        """Block until the child has written at least ``count`` stderr lines in all (see
        :attr:`stderr_count`), or ``timeout`` seconds passed. True if it has."""
        with self._stderr_seen:
            return self._stderr_seen.wait_for(lambda: self._stderr_count >= count, timeout)

    # -- internals -----------------------------------------------------------------------------

    def _wait_exit(self, timeout: float) -> int | None:
        assert self._proc is not None
        try:
            return self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def _drain_stdout(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        first = True
        with self._proc.stdout as stream:  # closed at EOF: no pipe outlives the child
            for raw in stream:  # splits on LF only
                if first:
                    first = False
                    self._ready.put(raw.decode("utf-8", "replace").strip())
                else:  # the contract says nothing more comes; keep it visible rather than lose it
                    self._stderr.append("[stdout] " + raw.decode("utf-8", "replace").rstrip())
        self._stdout_closed.set()
        if first:
            self._ready.put(None)

    def _drain_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        with self._proc.stderr as stream:
            for raw in stream:
                line = raw.decode("utf-8", "replace").rstrip()
                with self._stderr_seen:
                    self._stderr.append(line)
                    self._stderr_count += 1
                    self._stderr_seen.notify_all()
                if self._on_stderr is not None:
                    self._on_stderr(self._redact(line))
