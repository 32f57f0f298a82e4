"""``python -m flows`` runs the keytrail CLI (the same as the ``keytrail`` console script)."""

from flows.cli import main

main()
