"""Bindings as ``BIND(term AS ?var)`` clauses opening a query's WHERE group.

The rule, identical for the embedded and the remote store (see docs/store.md):

* **Queries** get ``BIND(<iri> AS ?a) BIND("literal" AS ?b)`` as the first elements of the outermost
  WHERE group (for ``SELECT * { … }`` / ``ASK { … }`` without the keyword: the first top-level group).
  That is a join with one solution, exactly like a one-row VALUES block there: filters, ``OPTIONAL``,
  ``BIND`` and ``NOT EXISTS`` in that group see the bound value; a sub-query does not (it is evaluated
  on its own, as SPARQL 1.1 scopes it). ``CONSTRUCT WHERE {…}`` and ``DESCRIBE <x>`` have no group
  that may hold it and get a trailing ``VALUES`` clause instead, which joins the same way.
* **Updates** get the clauses in the WHERE group of *every* operation. An operation that binds must
  therefore use the ``DELETE {…} INSERT {…} WHERE {…}`` form; ``INSERT {…} WHERE {}`` inserts bound
  values once. ``DELETE WHERE {…}`` and ``INSERT DATA``/``DELETE DATA`` cannot hold them (the grammar
  forbids it) and are refused with a message saying so.

Each term is written in its N-Triples form by pyoxigraph (``str(term)``), which escapes quotes,
backslashes and line breaks: a value can never end the literal and become query text.

pyoxigraph's own ``substitutions=`` (SEP-0007) was the first choice for the embedded store, but it
refuses a variable that is not in the SELECT projection, so ``SELECT (COUNT(*) AS ?n) { ?s … }`` could
not bind ``?s``. ``BIND`` rather than ``VALUES`` because Virtuoso 7.2 fails (HTTP 500) on an update
whose ``GRAPH ?g`` template variable comes from VALUES; both measured as fast as substitution
(bench/store.py) on pyoxigraph.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

from pyoxigraph import BlankNode, Literal, NamedNode, Triple

Term = NamedNode | BlankNode | Literal | Triple

# Hand-written lexer: no SPARQL parser in Python exposes token positions, and we only need to find
# braces and keywords outside strings, IRIs and comments. Order matters: long strings before short.
_TOKEN = re.compile(
    r"""
      (?P<comment>\#[^\n]*)
    | (?P<string>'''(?:[^'\\]|\\.|'(?!''))*'''|\"\"\"(?:[^"\\]|\\.|"(?!""))*\"\"\"
                 |'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")
    | (?P<iri><[^<>"{}|^`\\\x00-\x20]*>)
    | (?P<var>[?$][A-Za-z0-9_\u00b7\u00c0-\ufffd]+)
    | (?P<word>[A-Za-z_][A-Za-z0-9_\-.]*(?::[^\s{}()<>;,"']*)?|:[^\s{}()<>;,"']*)
    | (?P<open>\{) | (?P<close>\}) | (?P<popen>\() | (?P<pclose>\))
    """,
    re.VERBOSE | re.DOTALL,
)

_VARIABLE_NAME = re.compile(r"[A-Za-z0-9_]+")
_LIMIT = re.compile(r"\bLIMIT\s+(\d+)", re.IGNORECASE)
_QUERY_FORMS = {"select", "ask", "construct", "describe"}
_UPDATE_KEYWORDS = {"insert", "delete", "load", "clear", "create", "drop", "copy", "move", "add", "with"}


class BindingError(ValueError):
    """Bindings that cannot be applied to this query or update (the message says why)."""


def variable_names(text: str) -> frozenset[str]:
    """Names of the variables mentioned in ``text`` (without ``?``/``$``)."""
    return _analyse(text, False)[0]


@lru_cache(maxsize=2048)
def _analyse(
    text: str, update: bool
) -> tuple[frozenset[str], tuple[int, ...] | None, str | None, frozenset[str]]:
    """Variables, offsets for the clauses (``None``: a trailing VALUES) or why none fit, bare words.

    Cached because a node runs the same few named queries thousands of times: the lexer costs
    tens of microseconds, the cached lookup well under one.
    """
    tokens = [(m.lastgroup, m.group()) for m in _TOKEN.finditer(text)]
    names = frozenset(value[1:] for kind, value in tokens if kind == "var")
    words = frozenset(value.lower() for kind, value in tokens if kind == "word")
    try:
        if update:
            return names, tuple(_update_groups(text)), None, words
        position = _query_group(text)
        return names, None if position is None else (position,), None, words
    except BindingError as error:
        return names, (), str(error), words


def query_form(text: str) -> str | None:
    """``select``, ``ask``, ``construct`` or ``describe``: the first query-form keyword of ``text``
    (``None`` for an update), so that a client can ask for the right kind of answer."""
    return _form(text)


@lru_cache(maxsize=2048)
def _form(text: str) -> str | None:
    for match in _TOKEN.finditer(text):
        if match.lastgroup == "word" and (word := match.group().lower()) in _QUERY_FORMS:
            return word
        if match.lastgroup == "word" and word in _UPDATE_KEYWORDS:
            return None  # an update, whose WHERE may hold a sub-select
    return None


def keywords(text: str) -> frozenset[str]:
    """The bare words of ``text`` in lower case, outside strings, IRIs and comments (``service``,
    ``load`` …), for policy checks that must not be fooled by a keyword inside a literal."""
    return _analyse(text, False)[3]


def outer_limit(text: str) -> int | None:
    """The LIMIT of the outermost query (among the modifiers after its last closing brace), or None.

    A LIMIT inside a sub-query, a string or a comment does not count.
    """
    end = 0
    for match in _TOKEN.finditer(text):
        if match.lastgroup == "close":
            end = match.end()
    tail = _TOKEN.sub(lambda m: " " if m.lastgroup in ("comment", "string") else m.group(), text[end:])
    found = _LIMIT.search(tail)
    return int(found.group(1)) if found else None


def _checked(bindings: Mapping[str, Term]) -> list[tuple[str, str]]:
    """(``?name``, N-Triples term) pairs, refusing what SPARQL cannot bind."""
    pairs: list[tuple[str, str]] = []
    for raw_name, term in bindings.items():
        name = raw_name.lstrip("?$")
        if not _VARIABLE_NAME.fullmatch(name):
            raise BindingError(f"not a SPARQL variable name: {raw_name!r}")
        if not isinstance(term, NamedNode | Literal | BlankNode | Triple):
            raise BindingError(f"?{name} must be bound to a pyoxigraph term, got {type(term).__name__}")
        if isinstance(term, BlankNode):
            raise BindingError(
                f"?{name}: a blank node cannot be bound (SPARQL has no syntax for a stored one)"
            )
        pairs.append((f"?{name}", str(term)))
    return pairs


def bind_clauses(bindings: Mapping[str, Term]) -> str:
    """``BIND(<x> AS ?a) BIND("y" AS ?b)``, each term in escaped N-Triples form."""
    return _bind_clauses(_checked(bindings))


def values_block(bindings: Mapping[str, Term]) -> str:
    """``VALUES (?a ?b) { (<x> "y") }``: one row, each term in escaped N-Triples form."""
    return _values_block(_checked(bindings))


def _bind_clauses(pairs: list[tuple[str, str]]) -> str:
    return " ".join(f"BIND({term} AS {name})" for name, term in pairs)


def _values_block(pairs: list[tuple[str, str]]) -> str:
    names = " ".join(name for name, _ in pairs)
    terms = " ".join(term for _, term in pairs)
    return f"VALUES ({names}) {{ ({terms}) }}"


def bind(text: str, bindings: Mapping[str, Term] | None, *, update: bool = False) -> str:
    """``text`` with the bindings joined in (see the module docstring); unchanged when there are none.

    Raises :class:`BindingError` when a bound name does not occur in the text (a typo would otherwise
    silently add a column) or when an update has no WHERE group the clauses may go into.
    """
    if not bindings:
        return text
    pairs = _checked(bindings)
    names, positions, problem, _ = _analyse(text, update)
    unknown = {name.lstrip("?$") for name in bindings} - names
    if unknown:
        listed = ", ".join(f"?{name}" for name in sorted(unknown))
        raise BindingError(f"the {'update' if update else 'query'} has no variable {listed} to bind")
    if problem is not None:
        raise BindingError(problem)
    if positions is None:
        return f"{text}\n{_values_block(pairs)}\n"
    clauses = _bind_clauses(pairs)
    # Insert from the end so earlier offsets stay valid.
    for position in reversed(positions):
        text = f"{text[:position]} {clauses}\n{text[position:]}"
    return text


def _query_group(text: str) -> int | None:
    """Offset just after the ``{`` opening the outermost WHERE group; ``None`` where none may hold BIND.

    ``CONSTRUCT WHERE {…}`` holds only a triples template and ``DESCRIBE <x>`` has no group: those
    get a trailing VALUES clause, which for them joins the same way.
    """
    depth = parens = 0
    seen_form = after_where = False
    previous_word = ""
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if kind == "open":
            if depth == 0 and parens == 0 and (after_where or (seen_form and previous_word != "construct")):
                return match.end()
            depth += 1
            previous_word = ""
        elif kind == "close":
            depth -= 1
        elif kind == "popen":
            parens += 1
        elif kind == "pclose":
            parens -= 1
        elif kind == "word" and depth == 0 and parens == 0:
            word = match.group().lower()
            if word in _QUERY_FORMS:
                seen_form = True
            elif word == "where":
                if previous_word == "construct":
                    return None
                after_where = True
            previous_word = word
    return None


def _update_groups(text: str) -> list[int]:
    """Offsets just after the ``{`` of every top-level WHERE group in an update request."""
    positions: list[int] = []
    depth = 0
    previous_word = ""
    awaiting_group = False
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if kind == "open":
            if depth == 0 and awaiting_group:
                positions.append(match.end())
                awaiting_group = False
            depth += 1
            previous_word = ""
        elif kind == "close":
            depth -= 1
        elif kind == "word" and depth == 0:
            word = match.group().lower()
            if word == "where":
                if previous_word == "delete":
                    raise BindingError(
                        "DELETE WHERE {…} cannot take bindings; write DELETE {…} WHERE {…} instead"
                    )
                awaiting_group = True
            elif word == "data" and previous_word in {"insert", "delete"}:
                raise BindingError(f"{previous_word.upper()} DATA cannot take bindings; use a WHERE clause")
            previous_word = word
    if not positions:
        raise BindingError("the update has no WHERE group to bind values in")
    return positions
