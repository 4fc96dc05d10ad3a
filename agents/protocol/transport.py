"""The transport interface: how a node's outbox reaches other nodes' inboxes.

Two implementations share it: the in-memory network of :mod:`agents.simulator` and the
ActivityPub delivery of :mod:`federation`. A transport authenticates the sender of everything it
delivers (the simulator by construction, ActivityPub by HTTP signature) and hands the core an
:class:`~agents.protocol.core.Envelope` naming that sender.
"""

from __future__ import annotations

from typing import Protocol

from agents.protocol.messages import Message

__all__ = ["Transport"]


class Transport(Protocol):
    """Sends one activity from ``sender`` to every actor in ``message.to`` (Public: every node)."""

    def send(self, sender: str, message: Message) -> None: ...
