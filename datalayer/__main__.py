"""``python -m datalayer ...`` runs the command line."""

from datalayer.cli import main

main()
