"""``python -m tokentui``."""

from tokentui.cli import main

main()
