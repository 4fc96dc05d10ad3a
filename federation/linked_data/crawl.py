"""A linked-data crawler: from one IRI, dereference every IRI the descriptions mention, across hosts.

It asks for Turtle and parses with rdflib, so it checks our hosts the way an outside linked-data
client would (``test_crawl.py`` reaches every node, group and snapshot of a fungiverse from one
node's IRI). Breadth first, one request per document (an IRI without its ``#fragment``), bounded by
``max_documents``; what may be fetched is the caller's ``allow`` predicate, by default any http(s)
IRI outside the well-known vocabulary hosts, which describe terms rather than data.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urldefrag, urlsplit

import httpx
from rdflib import Graph, URIRef

__all__ = ["CrawlResult", "crawl", "not_a_vocabulary"]

ACCEPT = "text/turtle, application/n-triples;q=0.9"
VOCABULARY_HOSTS = frozenset(
    {"www.w3.org", "w3id.org", "schema.org", "purl.org", "rdfs.org", "xmlns.com", "joinmastodon.org"}
)
_PARSERS = {"text/turtle": "turtle", "application/n-triples": "nt"}


@dataclass
class CrawlResult:
    """Everything the crawl read, merged, and what it could not read (URL -> reason)."""

    graph: Graph = field(default_factory=Graph)
    documents: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)


def not_a_vocabulary(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and parts.hostname not in VOCABULARY_HOSTS


def crawl(
    start: str,
    *,
    allow: Callable[[str], bool] = not_a_vocabulary,
    max_documents: int = 1000,
    client: httpx.Client | None = None,
    timeout: float = 10.0,
) -> CrawlResult:
    """Crawl from ``start``; the graph holds every triple of every document that answered RDF."""
    result = CrawlResult()
    own = client is None
    client = client or httpx.Client(timeout=timeout, follow_redirects=True)
    queue, seen = deque([urldefrag(start).url]), {urldefrag(start).url}
    try:
        while queue and len(result.documents) < max_documents:
            url = queue.popleft()
            try:
                response = client.get(url, headers={"accept": ACCEPT})
            except httpx.HTTPError as error:
                result.failures[url] = type(error).__name__
                continue
            media = response.headers.get("content-type", "").split(";")[0].strip()
            if response.status_code != 200 or media not in _PARSERS:
                result.failures[url] = f"HTTP {response.status_code} {media}".strip()
                continue
            document = Graph()
            try:
                document.parse(data=response.text, format=_PARSERS[media], publicID=url)
            except Exception as error:  # rdflib raises several unrelated types for bad syntax
                result.failures[url] = f"unparsable {media}: {error}"[:200]
                continue
            result.documents.append(url)
            result.graph += document
            for triple in document:
                for term in (triple[0], triple[2]):
                    if isinstance(term, URIRef):
                        target = urldefrag(str(term)).url
                        if target not in seen and allow(target):
                            seen.add(target)
                            queue.append(target)
    finally:
        if own:
            client.close()
    return result
