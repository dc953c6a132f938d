"""Process helpers for tests: wait for a pid to end, and reap orphans ourselves."""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Iterator

import psutil

__all__ = ["gone_within", "subreaper"]

_PR_SET_CHILD_SUBREAPER = 36


def gone_within(pid: int, timeout: float) -> bool:
    """True if ``pid`` ended within ``timeout`` s (a zombie waiting for its reaper counts as ended)."""
    try:
        proc = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return True
    try:
        proc.wait(timeout=timeout)
        return True
    except psutil.TimeoutExpired:
        try:
            return proc.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True


@contextlib.contextmanager
def subreaper() -> Iterator[bool]:
    """Make this process the reaper of orphaned descendants (Linux), so an orphan's exit is seen
    at once instead of after PID 1 gets round to reaping it (seconds in some containers)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        ok = libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        ok = False
    try:
        yield ok
    finally:
        if ok:
            libc.prctl(_PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
