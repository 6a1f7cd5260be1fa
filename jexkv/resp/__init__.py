"""jexkv's own Redis client: a sans-IO RESP parser and, on top, connections."""
