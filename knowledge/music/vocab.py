"""The vocabulary terms the music graph uses, as IRI strings for writing N-Quads and queries.

The spore: terms come from the ontology's generated constants (a term missing there fails at
import, not in a query); standard vocabularies are reused where they fit (schema.org for artists
and people, SKOS for tags, Dublin Core for dates).
"""

from __future__ import annotations

from ontology import PREFIXES
from ontology.terms import SPORE as _SPORE

# Namespaces as the ontology package binds them (schema.org is https://schema.org/ there).
SPORE = PREFIXES["spore"]
SCHEMA = PREFIXES["schema"]
SKOS = PREFIXES["skos"]
RDF = PREFIXES["rdf"]
RDFS = PREFIXES["rdfs"]
XSD = PREFIXES["xsd"]
DCTERMS = PREFIXES["dcterms"]

RDF_TYPE = RDF + "type"
RDF_PROPERTY = RDF + "Property"
RDFS_LABEL = RDFS + "label"
RDFS_SUBPROPERTY_OF = RDFS + "subPropertyOf"

MUSIC_GROUP = SCHEMA + "MusicGroup"
PERSON = SCHEMA + "Person"
NAME = SCHEMA + "name"
URL = SCHEMA + "url"
IMAGE = SCHEMA + "image"
KNOWS = SCHEMA + "knows"

CONCEPT = SKOS + "Concept"
CONCEPT_SCHEME = SKOS + "ConceptScheme"
PREF_LABEL = SKOS + "prefLabel"
IN_SCHEME = SKOS + "inScheme"

DATE = DCTERMS + "date"
TITLE = DCTERMS + "title"
XSD_INTEGER = XSD + "integer"
XSD_DATE = XSD + "date"

LISTENING = str(_SPORE.Listening)
TAGGING = str(_SPORE.Tagging)
LISTENER = str(_SPORE.listener)
ARTIST = str(_SPORE.artist)
TAG = str(_SPORE.tag)
PLAY_COUNT = str(_SPORE.playCount)
HAS_TAG = str(_SPORE.hasTag)
KNOWLEDGE_ENTITY_CLASS = str(_SPORE.KnowledgeEntity)
KNOWLEDGE_ENTITY = str(_SPORE.knowledgeEntity)
# The super-property of every knowledge-graph relation, which lets one query find artist-entity
# edges whatever the source's relation names are.
KNOWLEDGE_RELATION = str(_SPORE.knowledgeRelation)
