"""Reader for the Freebase artist graph published with KGCN (Wang et al., WWW 2019) for Last.fm.

``item_index2entity_id.txt`` maps Last.fm artist ids to entity ids; ``kg.txt`` holds
``head <TAB> relation <TAB> tail`` with Freebase relation names such as ``music.artist.origin``.
Both files use CRLF line ends. Entities carry no names in these files.
"""

from __future__ import annotations

import re
from pathlib import Path

from knowledge.music.corpus import KnowledgeTriple, ReadReport
from knowledge.music.tsv import numeric_key, read_table, require_files

__all__ = ["KGCN_FILES", "read_kgcn"]

KGCN_FILES = ("item_index2entity_id.txt", "kg.txt")

# Relation names become IRIs, so only Freebase's dotted identifier alphabet is let through.
RELATION_NAME = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")


def read_kgcn(
    directory: Path, artist_keys: set[str], report: ReadReport
) -> tuple[dict[str, str], list[KnowledgeTriple]]:
    """Return (artist key -> entity key, knowledge triples), skipping rows that do not fit."""
    require_files(directory, KGCN_FILES)
    mapping_path = directory / "item_index2entity_id.txt"
    artist_entities: dict[str, str] = {}
    mapped_entities: set[str] = set()
    for fields in read_table(mapping_path, encoding="utf-8", columns=2, report=report, header=False):
        artist, entity = numeric_key(fields[0]), numeric_key(fields[1])
        if artist is None or entity is None:
            report.skip(mapping_path.name, "non-numeric field")
        elif artist not in artist_keys:
            report.skip(mapping_path.name, "unknown artist")
        elif artist in artist_entities or entity in mapped_entities:
            report.skip(mapping_path.name, "artist or entity mapped twice")
        else:
            artist_entities[artist] = entity
            mapped_entities.add(entity)
            report.kept[mapping_path.name] += 1
    kg_path = directory / "kg.txt"
    seen: set[KnowledgeTriple] = set()
    triples: list[KnowledgeTriple] = []
    for fields in read_table(kg_path, encoding="utf-8", columns=3, report=report, header=False):
        head, relation, tail = numeric_key(fields[0]), fields[1].strip(), numeric_key(fields[2])
        if head is None or tail is None:
            report.skip(kg_path.name, "non-numeric entity id")
        elif not RELATION_NAME.match(relation):
            report.skip(kg_path.name, "malformed relation name")
        elif (triple := KnowledgeTriple(head, relation, tail)) in seen:
            report.skip(kg_path.name, "duplicate triple")
        else:
            seen.add(triple)
            triples.append(triple)
    report.kept[kg_path.name] += len(triples)
    return artist_entities, triples
