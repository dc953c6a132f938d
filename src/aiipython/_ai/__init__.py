"""The typed Python API of pi (issue 12; docs/python_api.md), re-exported lazily by ``aiipython``.

Modules: ``types`` (pydantic messages, usage, options, builders), ``events`` (stream events and
the stream objects), ``backends`` (the pi and LiteLLM backends behind one small interface and the
choice between them), ``api`` (complete / stream / quick and async twins), ``registry`` (models
and costs) and ``modelsdev`` (the models.dev snapshot). Nothing here is imported by
``import aiipython``.
"""
