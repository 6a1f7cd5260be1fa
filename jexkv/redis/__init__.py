"""Adapters over a Redis server, on jexkv's own client (jexkv.resp)."""
