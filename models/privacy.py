"""The last check before anything leaves a node: no listener, no interaction, no per-listener weight.

SPORE's privacy promise is structural (only item-side parameters are ever put in an update), and
this module verifies it at the boundary, on the bytes or objects that are about to be sent. It
looks for three things:

* a **listener IRI** of this node, anywhere: raw text, JSON strings, JSON-LD after expansion
  (so that a compacted ``ex:alice`` is found), RDF terms and literals, a safetensors header;
* a **per-listener parameter** or interaction tensor by name (``listener_*``, ``interactions``,
  ``play_counts``): safetensors tensor names, JSON keys, mapping keys, and ``listener_*``
  identifiers in free text;
* an **interaction** as RDF: ``spore:Listening``, ``schema:ListenAction``, ``spore:playCount``, in
  full, as CURIEs, or as compact JSON-LD types and keys.

Bytes that are neither UTF-8 text nor safetensors cannot be inspected and are refused: a payload
that cannot be read cannot be cleared. A safetensors payload's data section is not searched: it
holds numbers of the dtypes its header declares, and every name and string lives in the header.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rdflib import RDF, Graph, Literal, URIRef

from models.compression import is_xz, unxz
from models.lightgcn import PRIVATE_PREFIXES
from ontology import SPORE

__all__ = [
    "DEFAULT_PRIVATE_NAMES",
    "INTERACTION_TERMS",
    "Finding",
    "PrivacyViolation",
    "find_leaks",
    "check_outgoing",
]

DEFAULT_PRIVATE_NAMES: tuple[str, ...] = (*PRIVATE_PREFIXES, "interactions", "play_counts")
INTERACTION_TERMS: frozenset[str] = frozenset(
    {
        str(SPORE.Listening),
        str(SPORE.playCount),
        "https://schema.org/ListenAction",
        "http://schema.org/ListenAction",
    }
)
_COMPACT_INTERACTION_TERMS = frozenset({"Listening", "ListenAction", "playCount"})
_CURIE_INTERACTION_TERMS = frozenset({"spore:Listening", "spore:playCount", "schema:ListenAction"})
_ALL_INTERACTION_TERMS = INTERACTION_TERMS | _COMPACT_INTERACTION_TERMS | _CURIE_INTERACTION_TERMS
_TYPE_KEYS = frozenset({"@type", "type"})
# The largest compressed payload the scan decodes; statistics of a large catalogue stay far below.
MAX_SCANNED_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Finding:
    """One private item found: ``kind`` is ``listener``, ``parameter``, ``interaction`` or
    ``opaque``; ``what`` names it; ``where`` says in which part of the payload."""

    kind: str
    what: str
    where: str

    def __str__(self) -> str:
        return f"{self.kind} {self.what} in {self.where}"


class PrivacyViolation(Exception):
    """An outgoing payload holds private data; it must not be sent."""

    def __init__(self, findings: Iterable[Finding]) -> None:
        self.findings = tuple(findings)
        shown = "; ".join(str(f) for f in self.findings[:3])
        more = f" (and {len(self.findings) - 3} more)" if len(self.findings) > 3 else ""
        super().__init__(f"outgoing payload leaks private data: {shown}{more}")


def check_outgoing(
    payload: Any, private_iris: Iterable[str], private_param_names: Iterable[str] = DEFAULT_PRIVATE_NAMES
) -> None:
    """Raise :class:`PrivacyViolation` if ``payload`` holds any private item (see module doc).

    ``payload`` may be bytes, text (JSON, JSON-LD, Turtle, anything), a JSON-like object, an rdflib
    graph, a mapping of tensors, or a dataclass of these. ``private_param_names`` are names or
    name prefixes of parameters that never leave the node.
    """
    findings = find_leaks(payload, private_iris, private_param_names)
    if findings:
        raise PrivacyViolation(findings)


def find_leaks(
    payload: Any, private_iris: Iterable[str], private_param_names: Iterable[str] = DEFAULT_PRIVATE_NAMES
) -> tuple[Finding, ...]:
    """Every private item in ``payload``, deduplicated, in the order found."""
    scanner = _Scanner(private_iris, private_param_names)
    scanner.scan(payload, "payload")
    return tuple(dict.fromkeys(scanner.findings))


class _Scanner:
    def __init__(self, private_iris: Iterable[str], private_names: Iterable[str]) -> None:
        self.iris = frozenset(str(iri) for iri in private_iris if str(iri))
        # Listener IRIs usually share a few namespaces: one search for the namespace rules out
        # all of its IRIs at once, so a clean payload costs a handful of scans, not one per listener.
        self.namespaces: dict[str, list[str]] = {}
        for iri in sorted(self.iris):
            cut = max(iri.rfind("/", 0, len(iri) - 1), iri.rfind("#"), iri.rfind(":"))
            self.namespaces.setdefault(iri[: cut + 1] or iri, []).append(iri)
        self.names = tuple(private_names)
        identifiers = [re.escape(n) for n in self.names if "_" in n]
        self.name_pattern = (
            re.compile(r"(?<![A-Za-z0-9_])(?:" + "|".join(identifiers) + r")[A-Za-z0-9_.]*")
            if identifiers
            else None
        )
        self.findings: list[Finding] = []

    def add(self, kind: str, what: str, where: str) -> None:
        self.findings.append(Finding(kind, what, where))

    def scan(self, payload: Any, where: str) -> None:
        if isinstance(payload, bytes | bytearray | memoryview):
            self.scan_bytes(bytes(payload), where)
        elif isinstance(payload, str):
            self.scan_document(payload, where)
        elif isinstance(payload, Graph):
            self.scan_graph(payload, where)
        elif dataclasses.is_dataclass(payload) and not isinstance(payload, type):
            for item in dataclasses.fields(payload):
                self.scan_name(item.name, f"{where}.{item.name}")
                self.scan(getattr(payload, item.name), f"{where}.{item.name}")
        elif isinstance(payload, Mapping | list | tuple | set | frozenset):
            self.scan_json(payload, where)
            if isinstance(payload, Mapping) and ("@context" in payload):
                self.scan_expanded(payload, where)
        elif payload is None or isinstance(payload, bool | int | float) or _is_tensor(payload):
            return  # numbers carry no names
        else:
            self.scan_text(str(payload), where)

    # ---- text -------------------------------------------------------------------------------------

    def scan_text(self, text: str, where: str, *, vocabulary: bool = True) -> None:
        """Substring scans; ``vocabulary=False`` skips interaction terms and parameter names (for
        JSON-LD contexts, which define the vocabulary rather than use it)."""
        for namespace, iris in self.namespaces.items():
            if namespace in text:
                for iri in iris:
                    if iri in text:
                        self.add("listener", iri, where)
        if not vocabulary:
            return
        if self.name_pattern is not None:
            for match in self.name_pattern.finditer(text):
                self.add("parameter", match.group(0), where)
        for term in INTERACTION_TERMS | _CURIE_INTERACTION_TERMS:
            if term in text:
                self.add("interaction", term, where)

    def scan_document(self, text: str, where: str) -> None:
        stripped = text.lstrip()
        if stripped[:1] in ("{", "["):
            try:
                document = json.loads(text)
            except json.JSONDecodeError:
                document = None
            if document is not None:
                # Structurally, so that an inline @context's vocabulary is not mistaken for data.
                self.scan(document, f"{where} (JSON)")
                return
        self.scan_text(text, where)
        if "@prefix" in text or "PREFIX" in text or "<" in text:
            graph = Graph()
            try:
                graph.parse(data=text, format="turtle")
            except Exception:  # not Turtle after all; the text scan above still applies
                return
            self.scan_graph(graph, f"{where} (Turtle)")

    def scan_bytes(self, data: bytes, where: str) -> None:
        if is_xz(data):  # compressed payloads (co-listening statistics) are read as their receiver will
            try:
                data = unxz(data, limit=MAX_SCANNED_BYTES)
            except ValueError as error:
                self.add("opaque", f"xz payload that cannot be read: {error}", where)
                return
            where = f"{where} (xz)"
        header = _safetensors_header(data)
        if header is not None:
            for name, entry in header.items():
                if name == "__metadata__":
                    for key, value in (entry or {}).items():
                        self.scan_name(str(key), f"{where} safetensors metadata")
                        self.scan_document(str(value), f"{where} safetensors metadata {key}")
                else:
                    self.scan_name(name, f"{where} safetensors tensor")
                    self.scan_text(name, f"{where} safetensors tensor name")
            return
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            self.add("opaque", f"{len(data)} bytes neither UTF-8 nor safetensors", where)
            return
        self.scan_document(text, where)

    # ---- structures ---------------------------------------------------------------------------------

    def scan_name(self, name: str, where: str) -> None:
        if name.startswith(self.names):
            self.add("parameter", name, where)
        if name in _ALL_INTERACTION_TERMS:
            self.add("interaction", name, where)

    def scan_json(self, node: Any, where: str) -> None:
        if isinstance(node, str):
            self.scan_text(node, where)
        elif isinstance(node, Mapping):
            for key, value in node.items():
                key = str(key)
                if key == "@context":
                    self.scan_text(json.dumps(value), f"{where} @context", vocabulary=False)
                    continue
                self.scan_name(key, f"{where} key")
                if key in _TYPE_KEYS:
                    for kind in value if isinstance(value, list) else [value]:
                        if isinstance(kind, str) and kind in _ALL_INTERACTION_TERMS:
                            self.add("interaction", kind, f"{where} {key}")
                self.scan_json(value, where)
        elif isinstance(node, list | tuple | set | frozenset):
            for item in node:
                self.scan_json(item, where)
        else:
            self.scan(node, where)

    def scan_expanded(self, document: Mapping[str, Any], where: str) -> None:
        """JSON-LD after expansion with the frozen loader: compacted IRIs become full ones."""
        from ontology.jsonld import expand

        try:
            expanded = expand(dict(document))
        except Exception:  # an unknown or broken context: the textual scans above still applied
            return
        self.scan_json(expanded, f"{where} (expanded JSON-LD)")

    def scan_graph(self, graph: Graph, where: str) -> None:
        for subject, predicate, obj in graph:
            for term in (subject, predicate, obj):
                if isinstance(term, URIRef) and str(term) in self.iris:
                    self.add("listener", str(term), where)
                elif isinstance(term, Literal):
                    self.scan_text(str(term), where)
            if str(predicate) in INTERACTION_TERMS:
                self.add("interaction", str(predicate), where)
            if predicate == RDF.type and str(obj) in INTERACTION_TERMS:
                self.add("interaction", str(obj), where)


def _is_tensor(value: Any) -> bool:
    return type(value).__module__.startswith(("torch", "numpy"))


def _safetensors_header(data: bytes) -> dict[str, Any] | None:
    """The parsed header if ``data`` is laid out as safetensors, else None."""
    if len(data) < 10:
        return None
    length = int.from_bytes(data[:8], "little")
    if length > len(data) - 8 or data[8:9] != b"{":
        return None
    try:
        header = json.loads(data[8 : 8 + length])
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return header if isinstance(header, dict) else None
