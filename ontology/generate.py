"""Generate :mod:`ontology.terms` from ``spore.ttl``.

Only the Turtle file spells SPORE's IRIs; this script turns its declared terms into an rdflib
``DefinedNamespace`` so that code gets autocompletion and a typo in a term name fails at import.
``tests/test_ontology.py`` checks that the committed module equals a fresh generation.

Run: ``python -m ontology.generate`` after editing ``spore.ttl``.
"""

from __future__ import annotations

from pathlib import Path

import pyoxigraph as ox

HERE = Path(__file__).parent
NAMESPACE = "https://w3id.org/spore/ns#"
RDF_TYPE = ox.NamedNode("http://www.w3.org/1999/02/22-rdf-syntax-ns#type")


def declared_terms(turtle: bytes) -> list[str]:
    """Local names of every SPORE IRI that ``spore.ttl`` gives a type, sorted."""
    names = set()
    for triple in ox.parse(turtle, format=ox.RdfFormat.TURTLE):
        subject = triple.subject
        if (
            triple.predicate == RDF_TYPE
            and isinstance(subject, ox.NamedNode)
            and subject.value.startswith(NAMESPACE)
        ):
            names.add(subject.value.removeprefix(NAMESPACE))
    return sorted(names)


def render(names: list[str]) -> str:
    lines = [
        '"""SPORE term constants, generated from ``spore.ttl`` by ``python -m ontology.generate``.',
        "",
        "Do not edit by hand: edit the ontology and regenerate.",
        '"""',
        "",
        "from rdflib import URIRef",
        "from rdflib.namespace import DefinedNamespace, Namespace",
        "",
        "",
        "class SPORE(DefinedNamespace):",
        '    """The SPORE ontology\'s classes, properties and individuals."""',
        "",
        "    _fail = True",
        "",
    ]
    lines += [f"    {name}: URIRef" for name in names]
    lines += ["", f'    _NS = Namespace("{NAMESPACE}")', ""]
    return "\n".join(lines)


def main() -> None:
    names = declared_terms((HERE / "spore.ttl").read_bytes())
    (HERE / "terms.py").write_text(render(names), encoding="utf-8")
    print(f"wrote {len(names)} terms to {HERE / 'terms.py'}")


if __name__ == "__main__":
    main()
