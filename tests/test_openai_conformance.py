"""Conformance of the gateway's OpenAI-compatible API with OpenAI's own API description
(``tests/conformance/openai-openapi.json.gz``: OpenAPI 3.1, openai/openai-openapi at f85dbe2, MIT;
``AIIPYTHON_OPENAI_SPEC`` names another file), by schemathesis.

schemathesis generates requests from the description for the operations the gateway implements
(listModels, retrieveModel, createChatCompletion, createResponse) — examples, boundary/coverage
cases, random (bounded: ``--max-examples 20`` per operation) and stateful sequences — against the
real gateway (provider ``fake`` and ``echo/echo``) and runs these checks on every answer:

- ``not_a_server_error``: no 5xx (a bad request is the client's error, never a gateway crash);
- ``response_schema_conformance``: every documented answer matches OpenAI's schema;
- ``negative_data_rejection``: a request the description forbids is refused with a 4xx;
- ``content_type_conformance``: the documented content type.

``status_code_conformance`` is left out: the description lists only 200 for these operations,
while the gateway answers 400/401/404/413/429/502/504 with OpenAI's error envelope.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.gateway

BUNDLED = Path(__file__).with_name("conformance") / "openai-openapi.json.gz"
SPEC = Path(os.environ.get("AIIPYTHON_OPENAI_SPEC") or BUNDLED)
OPERATIONS = ("listModels", "retrieveModel", "createChatCompletion", "createResponse")
CHECKS = "not_a_server_error,response_schema_conformance,negative_data_rejection,content_type_conformance"
MAX_EXAMPLES = 20


def test_the_v1_api_conforms_to_openais_description(gateway: Any, tmp_path: Path) -> None:
    spec = tmp_path / "openai-openapi.json"
    with (gzip.open(SPEC) if SPEC.suffix == ".gz" else open(SPEC, "rb")) as src, open(spec, "wb") as dst:
        shutil.copyfileobj(src, dst)
    st = Path(sys.executable).with_name("st")
    assert st.is_file(), f"schemathesis is not installed next to {sys.executable}: run ./scripts/setup --dev"
    selected = [arg for op in OPERATIONS for arg in ("--include-operation-id", op)]
    out = subprocess.run(
        [str(st), "run", str(spec), "--url", f"{gateway.url}/v1", *selected,
         "-H", f"Authorization: Bearer {gateway.token}", "--checks", CHECKS, "--max-examples", str(MAX_EXAMPLES),
         # retrieveModel's path parameter pattern filters out most generated strings; that is
         # schemathesis's generator, not the gateway (every example it does send is checked).
         "--suppress-health-check", "filter_too_much", "--no-color"],
        capture_output=True, text=True, timeout=900, cwd=tmp_path, stdin=subprocess.DEVNULL,
    )
    report = out.stdout + out.stderr
    assert out.returncode == 0, report[-6000:]
    assert "Tested: 4" in report, report[-3000:]  # every selected operation was exercised
