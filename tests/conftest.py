"""Fixtures shared by every test of jexkv."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def unique_name() -> str:
    """A name no other test uses (for memory:// spaces, files, namespaces)."""
    return "t" + uuid.uuid4().hex[:16]
