"""``python -m tfnode.node ...`` is the same as ``tfnode ...`` (kept for scripts that used it)."""

from tfnode.cli import main

main()
