"""Namespaces: how stores and queues that share one backend are kept apart.

Rule: two different namespaces never meet. A namespace is a word without ``:`` (one
trailing ``:`` is allowed and dropped, so ``"app:"`` and ``"app"`` are the same namespace),
and what it names is ``<namespace>:<name>`` (:func:`qualify`); queue names may not hold
``:`` either (BullMQ refuses them too). So ``tenant1`` and ``tenant10`` stay apart: their
keys and queues start ``tenant1:`` and ``tenant10:``, and no name of one can spell a name
of the other. The empty namespace qualifies nothing; where it is the default (memory and
SQLite KV stores, every queue) the adapters keep it apart by a boundary of their own (a
space per namespace, a ``ns`` column), and on Redis only an explicit ``namespace=""``
reaches the whole database (README, "Sharing one Redis").
"""

from __future__ import annotations

from jexkv.codec import check_text
from jexkv.errors import InvalidArgument, InvalidArgumentType

__all__ = ["check_namespace", "check_queue_name", "key_prefix", "qualify"]

SEPARATOR = ":"


def check_namespace(namespace: object) -> str:
    """The namespace ``namespace`` names (a trailing ``:`` dropped); ValueError naming the
    rule for one that holds ``:`` elsewhere, or a lone surrogate; TypeError if not a str."""
    if not isinstance(namespace, str):
        raise InvalidArgumentType(
            f"namespace must be a str, got {type(namespace).__name__}: {namespace!r}"
        )
    check_text(namespace, "namespace")
    word = namespace[:-1] if namespace.endswith(SEPARATOR) else namespace
    if SEPARATOR in word or (namespace and not word):
        raise InvalidArgument(
            f"namespace {namespace!r} holds ':' (other than one at its end): a namespace is "
            "one word, and jexkv puts the ':' after it, so that two namespaces never share a "
            "key or a queue (write e.g. 'app' or 'app:', not 'app:cache:')"
        )
    return word


def check_queue_name(queue: object) -> str:
    """``queue`` if it is a non-empty str of text without ``:``; TypeError/ValueError if not."""
    if not isinstance(queue, str):
        raise InvalidArgumentType(
            f"queue name must be a str, got {type(queue).__name__}: {queue!r}"
        )
    if not queue:
        raise InvalidArgument("queue name must be a non-empty str")
    if SEPARATOR in queue:
        raise InvalidArgument(
            f"queue name {queue!r} holds ':', which queue names may not: ':' separates a "
            "namespace from its queues and the parts of a queue's Redis keys (BullMQ refuses "
            "it too)"
        )
    return check_text(queue, "queue name")


def qualify(namespace: str, name: str) -> str:
    """``name`` (a queue) inside ``namespace`` (checked already): ``namespace:name``."""
    return f"{namespace}{SEPARATOR}{name}" if namespace else name


def key_prefix(namespace: str) -> str:
    """What every key of a store in ``namespace`` (checked already) starts with."""
    return namespace + SEPARATOR if namespace else ""
