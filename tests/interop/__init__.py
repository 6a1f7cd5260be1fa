"""Interop tests: jexkv's Redis queue against a pinned Node BullMQ, in both directions."""
