"""The SPARQL 1.1 Protocol's pure parts: reading an operation from a request, negotiating the answer's
media type, restricting the dataset to public graphs, and deciding whether an update may run.

Nothing here does I/O: :mod:`federation.sparql` feeds it the request's method, parameters, content type
and body, and turns the :class:`ProtocolError` it may raise into one HTTP status with a one-line body.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

from pyoxigraph import NamedNode, QueryResultsFormat, RdfFormat
from rdflib.plugins.sparql.algebra import translateUpdate
from rdflib.plugins.sparql.parser import parseUpdate
from rdflib.term import URIRef

__all__ = [
    "Operation",
    "ProtocolError",
    "ProtocolRequest",
    "RESULT_FORMATS",
    "GRAPH_FORMATS",
    "parse_request",
    "url_parameters",
    "negotiate",
    "restrict_dataset",
    "check_update",
    "with_base",
    "unshift_position",
]

FORM = "application/x-www-form-urlencoded"
QUERY_TYPE = "application/sparql-query"
UPDATE_TYPE = "application/sparql-update"

# SPARQL 1.1 Query Results formats (JSON: sparql11-results-json section 4; XML: rdf-sparql-XMLres
# section 2; CSV/TSV: sparql11-results-csv-tsv section 5), in order of preference when the client
# accepts several equally; the aliases are what SPARQLWrapper and browsers send alongside.
RESULT_FORMATS: dict[str, QueryResultsFormat] = {
    "application/sparql-results+json": QueryResultsFormat.JSON,
    "application/sparql-results+xml": QueryResultsFormat.XML,
    "text/csv": QueryResultsFormat.CSV,
    "text/tab-separated-values": QueryResultsFormat.TSV,
    "application/json": QueryResultsFormat.JSON,
    "application/xml": QueryResultsFormat.XML,
}
# RDF for CONSTRUCT/DESCRIBE and the service description (Protocol section 2.1.6: any RDF syntax).
GRAPH_FORMATS: dict[str, RdfFormat] = {
    "text/turtle": RdfFormat.TURTLE,
    "application/n-triples": RdfFormat.N_TRIPLES,
    "application/ld+json": RdfFormat.JSON_LD,
    "application/rdf+xml": RdfFormat.RDF_XML,
    "text/plain": RdfFormat.N_TRIPLES,  # N-Triples' media type before RDF 1.1
}


class Operation(StrEnum):
    QUERY = "query"
    UPDATE = "update"


class ProtocolError(Exception):
    """A request the endpoint refuses; ``status`` is the HTTP status, the message its one-line body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class ProtocolRequest:
    """One operation as the protocol defines it (section 2.1 for queries, 2.2 for updates)."""

    operation: Operation
    text: str
    default_graphs: tuple[str, ...] = ()  # default-graph-uri, or using-graph-uri for an update
    named_graphs: tuple[str, ...] = ()  # named-graph-uri, or using-named-graph-uri
    dataset_given: bool = field(default=False)


def _media_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    if not content_type:
        return "", {}
    media, *params = (piece.strip() for piece in content_type.split(";"))
    parsed = {}
    for param in params:
        name, _, value = param.partition("=")
        parsed[name.strip().lower()] = value.strip().strip('"').lower()
    return media.lower(), parsed


def _decode(body: bytes, params: dict[str, str]) -> str:
    # Protocol sections 2.1.3 and 2.2.2: a direct POST body is UTF-8; anything else is refused rather
    # than guessed (W3C tests bad_query_non_utf8, bad_update_non_utf8).
    charset = params.get("charset", "utf-8")
    if charset not in ("utf-8", "utf8"):
        raise ProtocolError(415, f"the body must be UTF-8, not {charset}")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ProtocolError(400, f"the body is not valid UTF-8: {error}") from error


def url_parameters(query_string: str) -> list[tuple[str, str]]:
    """A URL's query string as (name, value) pairs, blank values kept (``query=`` is an empty query)."""
    return parse_qsl(query_string, keep_blank_values=True)


def parse_request(
    method: str, url_params: Sequence[tuple[str, str]], content_type: str | None, body: bytes
) -> ProtocolRequest | None:
    """The operation a request carries, or ``None`` for a plain GET (the service description).

    GET carries a query in the URL (``url_params``, from :func:`url_parameters`); POST a form
    (``query=``/``update=``) or a direct body whose media type names the operation. Update via GET is
    refused (W3C test bad_update_get): a link or a crawler must never change the store.
    """
    method = "GET" if method == "HEAD" else method
    if method == "GET":
        params = list(url_params)
    elif method == "POST":
        media, media_params = _media_type(content_type)
        if media == FORM:
            params = [*url_params, *parse_qsl(_decode(body, media_params), keep_blank_values=True)]
        elif media in (QUERY_TYPE, UPDATE_TYPE):
            operation = Operation.QUERY if media == QUERY_TYPE else Operation.UPDATE
            if any(name in ("query", "update") for name, _ in url_params):
                raise ProtocolError(400, f"a {media} body cannot be combined with query=/update= parameters")
            return _build(operation, _decode(body, media_params), url_params)
        elif not media:
            raise ProtocolError(415, f"POST needs a Content-Type: {FORM}, {QUERY_TYPE} or {UPDATE_TYPE}")
        else:
            raise ProtocolError(
                415, f"unsupported Content-Type {media}: use {FORM}, {QUERY_TYPE} or {UPDATE_TYPE}"
            )
    else:
        raise ProtocolError(405, f"method {method} not allowed: use GET or POST")
    queries = [value for name, value in params if name == "query"]
    updates = [value for name, value in params if name == "update"]
    if len(queries) + len(updates) > 1:
        raise ProtocolError(400, "exactly one query= or update= parameter is allowed")
    if updates and method == "GET":
        raise ProtocolError(405, "SPARQL Update needs POST")
    if not queries and not updates:
        if method == "GET" and not params:
            return None
        raise ProtocolError(400, "no query= or update= parameter")
    if updates:
        return _build(Operation.UPDATE, updates[0], params)
    return _build(Operation.QUERY, queries[0], params)


def _build(operation: Operation, text: str, params: Sequence[tuple[str, str]]) -> ProtocolRequest:
    default_name, named_name = (
        ("using-graph-uri", "using-named-graph-uri")
        if operation is Operation.UPDATE
        else ("default-graph-uri", "named-graph-uri")
    )
    defaults = tuple(value for name, value in params if name == default_name)
    named = tuple(value for name, value in params if name == named_name)
    if not text.strip():
        raise ProtocolError(400, f"the {operation} is empty")
    return ProtocolRequest(operation, text, defaults, named, dataset_given=bool(defaults or named))


def _accept_ranges(accept: str) -> list[tuple[str, float]]:
    ranges = []
    for part in accept.split(","):
        media, params = _media_type(part)
        if not media:
            continue
        try:
            quality = float(params.get("q", "1"))
        except ValueError:
            quality = 0.0
        ranges.append((media, quality))
    return ranges


def negotiate(accept: str | None, offers: Sequence[str]) -> str | None:
    """The offer the client prefers (RFC 9110 section 12.5.1), or ``None`` for 406.

    Each offer gets the quality of the most specific range that matches it (``type/sub`` over
    ``type/*`` over ``*/*``); the highest quality wins and ties go to the order of ``offers`` (the
    server's preference). No ``Accept`` means the first offer.
    """
    return _negotiate(accept, tuple(offers))


# Clients send the same few Accept headers over and over; remembering the answers takes parsing off
# every request (bounded, since the header is the client's to choose).
@lru_cache(maxsize=512)
def _negotiate(accept: str | None, offers: tuple[str, ...]) -> str | None:
    if not accept or not accept.strip():
        return offers[0] if offers else None
    ranges = _accept_ranges(accept)
    best, best_quality = None, 0.0
    for offer in offers:
        kind = offer.split("/")[0] + "/*"
        quality = None
        for specificity in (offer, kind, "*/*"):
            matching = [q for media, q in ranges if media == specificity]
            if matching:
                quality = max(matching)
                break
        if quality is not None and quality > best_quality:
            best, best_quality = offer, quality
    return best


def restrict_dataset(
    request: ProtocolRequest, public: Sequence[NamedNode]
) -> tuple[list[NamedNode], list[NamedNode]]:
    """The (default, named) graphs a query runs over: what the request names, within ``public``.

    Without ``default-graph-uri``/``named-graph-uri`` the default graph is the union of the public
    graphs and they are the named graphs. With them, each part is what was named (the other part
    empty, Protocol section 2.1.4); a graph outside ``public`` is simply not in the dataset.
    """
    if not request.dataset_given:
        return list(public), list(public)
    allowed = {graph.value: graph for graph in public}
    defaults = [allowed[iri] for iri in dict.fromkeys(request.default_graphs) if iri in allowed]
    named = [allowed[iri] for iri in dict.fromkeys(request.named_graphs) if iri in allowed]
    return defaults, named


def _graph_names(operation: Any) -> list[Any]:
    """Every graph an update operation writes to or clears (``None``: the store's default graph).

    rdflib's ``CompValue`` answers ``None`` for an absent attribute, which the absent clauses rely on."""
    name = getattr(operation, "name", "")
    if name in ("InsertData", "DeleteData", "DeleteWhere"):
        quads = operation.quads or {}
        return list(quads) + ([None] if operation.triples else [])
    if name == "Modify":
        written: list[Any] = []
        for clause in (operation.delete, operation.insert):
            if clause is not None:
                written += list(clause.quads or {})
                if clause.triples:
                    written.append(operation.withClause)
        return written
    if name in ("Clear", "Drop", "Create"):
        return [operation.graphiri]
    if name in ("Add", "Move", "Copy"):
        return list(operation.graph)
    raise ProtocolError(403, f"{name or 'this'} operation is not allowed through the public endpoint")


def check_update(text: str, writable: Sequence[NamedNode]) -> None:
    """Refuse an update that could touch or read anything but ``writable`` (the public graphs).

    Parsed with rdflib's SPARQL Update grammar so the decision rests on the operations, not on text
    search: every graph written, cleared, moved or copied must be named and public; ``LOAD`` is
    refused (it fetches a URL: SSRF); a ``DELETE/INSERT … WHERE`` must name its dataset with
    ``USING``/``USING NAMED`` over public graphs, so that its WHERE cannot read the private graph and
    copy it somewhere public. Raises :class:`ProtocolError` 400 for syntax errors, 403 for the rest.
    """
    try:
        parsed = translateUpdate(parseUpdate(text))
    except Exception as error:  # pyparsing raises its own exception types, with the position in them
        raise ProtocolError(400, f"malformed update: {str(error).splitlines()[0]}") from error
    allowed = {URIRef(graph.value) for graph in writable}
    for operation in parsed.algebra:
        if operation.name == "Modify":
            using = operation.using or []
            read = [clause.default or clause.named for clause in using]
            if not read:
                raise ProtocolError(
                    403, "DELETE/INSERT … WHERE needs USING or USING NAMED clauses naming public graphs"
                )
            if any(graph not in allowed for graph in read):
                raise ProtocolError(403, "USING may only name this endpoint's public graphs")
        for graph in _graph_names(operation):
            if graph is None or graph in ("DEFAULT", "NAMED", "ALL"):
                raise ProtocolError(403, "an update must name the public graphs it writes (GRAPH <…>)")
            if graph not in allowed:
                raise ProtocolError(403, f"graph {graph} is not one of this endpoint's public graphs")


def with_base(text: str, base: str) -> str:
    """The operation with the endpoint's URL as its base IRI, as RFC 3986 section 5.1.3 has it for a
    document retrieved from that URL (W3C tests query_content_type_construct, update_base_uri).

    The store interface takes no base IRI, so it is declared in the text: the prologue may repeat
    ``BASE`` and the operation's own declaration, coming later, still wins. It goes on a line of its
    own, and :func:`unshift_position` puts the parser's line numbers back.
    """
    return f"BASE <{base}>\n{text}"


def unshift_position(message: str) -> str:
    """A parser message about :func:`with_base`'s text, with the line number of the client's text."""
    return re.sub(
        r"error at (\d+):", lambda found: f"error at {max(int(found[1]) - 1, 1)}:", message, count=1
    )
