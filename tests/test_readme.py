"""README.md stays true to the code: its ``aiipython --help`` block is the live output."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_help_block_is_aiipython_help() -> None:
    env = {**os.environ, "COLUMNS": "80"}  # click wraps help to the terminal: fix the width
    live = subprocess.run([sys.executable, "-m", "aiipython", "--help"], capture_output=True, text=True,
                          env=env, check=True, stdin=subprocess.DEVNULL).stdout
    found = re.search(r"^`aiipython --help`.*?\n```text\n(.*?)^```$", README.read_text(), re.M | re.S)
    assert found, "README.md has no `aiipython --help` block (a ```text block after the line naming it)"
    assert found.group(1) == live, (
        "README.md's `aiipython --help` block differs from the live output; replace the block with:\n" + live)
