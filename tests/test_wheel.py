"""The built wheel carries the gateway (node_gateway/, package.json, package-lock.json), and an
installed wheel (not the editable checkout) installs and starts the gateway from its own files."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.gateway


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--disable-pip-version-check",
                    "-w", str(out), str(ROOT)], check=True, capture_output=True)
    (built,) = out.glob("aiipython-*.whl")
    return built


def test_wheel_contains_the_gateway(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("aiipython/_node_gateway/package.json", "aiipython/_node_gateway/package-lock.json",
                     "aiipython/_node_gateway/node_gateway/server.mjs",
                     "aiipython/_node_gateway/node_gateway/pi_adapter.mjs", "aiipython/_cli.py"):
        assert required in names, required
    assert not [n for n in names if "/node_gateway/test/" in n], "tests do not ship"
    assert not [n for n in names if "node_modules" in n]


def test_installed_wheel_starts_the_gateway(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check",
                    "--target", str(target), str(wheel)], check=True, capture_output=True)
    code = (
        "import aiipython, aiipython._node as n\n"
        "from aiipython._settings import load_settings\n"
        "print(aiipython.__file__)\n"
        "print(n.gateway_sources())\n"
        "print(aiipython.PiGatewayClient().health()['ok'])\n"
    )
    env = dict(os.environ, PYTHONPATH=str(target))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    module, sources, ok = out.stdout.split()
    assert module.startswith(str(target)), "the test must run the installed wheel, not the checkout"
    assert sources == str(target / "aiipython" / "_node_gateway")
    assert ok == "True"
