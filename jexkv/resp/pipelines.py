"""What every pipeline shares, sync or asyncio, one server or a Cluster: commands queued (and
checked) until ``execute``, a transaction framed in MULTI/EXEC, and the replies read back the
same way; only the sending lives with each client.
"""

from __future__ import annotations

from typing import Any, TypeVar

from jexkv.errors import ConfigError
from jexkv.resp.errors import WatchError, server_error
from jexkv.resp.protocol import ErrorReply

__all__ = ["Commands", "framed", "replies_of", "transaction_slot"]

_P = TypeVar("_P", bound="Commands")


class Commands:
    """Commands queued for one round trip; with ``transaction``, inside MULTI/EXEC."""

    def __init__(self, transaction: bool) -> None:
        self._transaction = transaction
        self._commands: list[tuple[Any, ...]] = []

    def execute_command(self: _P, *args: Any) -> _P:
        if not args:
            raise ValueError("a command needs at least its name")
        self._commands.append(args)
        return self

    def __len__(self) -> int:
        return len(self._commands)

    def _take(self) -> list[tuple[Any, ...]]:
        """The queued commands, leaving none queued."""
        commands, self._commands = self._commands, []
        return commands


def framed(commands: list[tuple[Any, ...]], transaction: bool) -> list[tuple[Any, ...]]:
    """What goes on the wire: the commands, inside MULTI/EXEC for a transaction."""
    return [("MULTI",), *commands, ("EXEC",)] if transaction else commands


def replies_of(replies: list[Any], transaction: bool, raise_on_error: bool) -> list[Any]:
    """The commands' own replies from what ``framed`` commands got back. A transaction whose
    watched key changed raises WatchError; an error reply raises when ``raise_on_error``,
    else it stays in the list (an ErrorReply) in its command's place."""
    if transaction:
        for reply in replies[:-1]:
            if isinstance(reply, ErrorReply) and reply.code != "EXECABORT":
                if raise_on_error:  # a command refused while queueing: EXEC aborts
                    raise server_error(reply)
        result = replies[-1]
        if result is None:
            raise WatchError("a watched key changed; the transaction did not run")
        if isinstance(result, ErrorReply):
            raise server_error(result)
        replies = result
    if raise_on_error:
        for reply in replies:
            if isinstance(reply, ErrorReply):
                raise server_error(reply)
    return replies


def transaction_slot(slots: list[int | None]) -> int | None:
    """The one slot a Cluster transaction's keys live in (None: keyless)."""
    keyed = {slot for slot in slots if slot is not None}
    if len(keyed) > 1:
        raise ConfigError("a transaction on a Redis Cluster must keep its keys in one slot")
    return keyed.pop() if keyed else None
