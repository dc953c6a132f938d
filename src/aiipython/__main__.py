"""``python -m aiipython`` = the ``aiipython`` command."""

from ._cli import main

main()
