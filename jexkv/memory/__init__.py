"""In-process adapters: the reference implementation of each contract."""
