"""Run reports: metrics from the ledger (and, later, plots and HTML)."""
