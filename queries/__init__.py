"""Named SPARQL queries: one ``.rq`` file per query, shipped inside the package.

Every file opens with a header of ``#`` comment lines that says what the query is for, which
variables may be bound and what comes back::

    # purpose: Number of triples in each named graph, largest first.
    # binding ?graph: one graph to count (optional)
    # result: ?graph (IRI), ?triples (integer)

A binding marked ``(required)`` must be given; tools such as ``spore query`` refuse to run the query
without it. Values are passed as bindings (see knowledge.store.bindings), never pasted into the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files

__all__ = ["NamedQuery", "UnknownQuery", "describe", "load", "names"]

_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
_BINDING = re.compile(r"binding\s+[?$](?P<name>\w+)\s*:\s*(?P<text>.*)", re.IGNORECASE)


class UnknownQuery(LookupError):
    """No named query by that name; the message lists the ones that exist."""


@dataclass(frozen=True, slots=True)
class NamedQuery:
    """A query file and its header."""

    name: str
    text: str
    purpose: str
    result: str
    bindings: dict[str, str] = field(default_factory=dict)
    """Variable name (without ``?``) -> what to bind it to."""

    @property
    def required(self) -> list[str]:
        """Bindings without which the query is meaningless or far too broad."""
        return [name for name, text in self.bindings.items() if "(required)" in text]


def names() -> list[str]:
    """The names of all shipped queries, sorted."""
    return sorted(entry.name[:-3] for entry in files(__name__).iterdir() if entry.name.endswith(".rq"))


def load(name: str) -> str:
    """The text of the query ``name`` (file ``queries/{name}.rq``)."""
    return describe(name).text


@cache
def describe(name: str) -> NamedQuery:
    """The query ``name`` with its parsed header."""
    if not _NAME.fullmatch(name):
        raise UnknownQuery(f"not a query name: {name!r} (lower case letters, digits and '-')")
    resource = files(__name__).joinpath(f"{name}.rq")
    if not resource.is_file():
        raise UnknownQuery(f"no named query {name!r}; known: {', '.join(names())}")
    text = resource.read_text(encoding="utf-8")
    header: dict[str, str] = {}
    bindings: dict[str, str] = {}
    last: tuple[dict[str, str], str] | None = None
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        entry = line[1:].strip()
        if line.startswith("#  ") and last is not None:  # an indented line continues the entry above
            target, key = last
            target[key] = f"{target[key]} {entry}"
        elif binding := _BINDING.fullmatch(entry):
            bindings[binding["name"]] = binding["text"].strip()
            last = (bindings, binding["name"])
        elif ":" in entry:
            key, _, value = entry.partition(":")
            header[key.strip().lower()] = value.strip()
            last = (header, key.strip().lower())
    return NamedQuery(
        name=name,
        text=text,
        purpose=header.get("purpose", ""),
        result=header.get("result", ""),
        bindings=bindings,
    )
