"""``python -m tokentui``."""

from tokentui.entry import main

main()
