"""``python -m medfeat`` runs the command line."""
from medfeat.cli import app

app(prog_name="medfeat")
