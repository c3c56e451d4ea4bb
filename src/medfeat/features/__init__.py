"""Feature families: one module per family of plain functions over arrays."""
