"""RECIST 1.1 rules engine: pure functions over frozen dataclasses (no I/O)."""
