"""Adapters over one SQLite file, shared safely by threads and processes."""
