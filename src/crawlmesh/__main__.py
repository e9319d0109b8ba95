"""``python -m crawlmesh`` is the ``crawlmesh`` command."""

from ._cli import main

main()
