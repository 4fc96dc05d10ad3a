"""Music data: readers for Last.fm-2k and KGCN's Freebase graph, a synthetic generator, and RDF.

Every source becomes a :class:`MusicCorpus`; :mod:`knowledge.music.rdf` writes any corpus into a
node's catalogue and private graphs, and :mod:`knowledge.music.importer` loads it into a store.
"""

from knowledge.music.corpus import IriScheme, MusicCorpus, ReadReport
from knowledge.music.names import NameIndex, NameMatches, normalize_name
from knowledge.music.synth import SynthParams, synthesize
from knowledge.music.tsv import MusicDataError

__all__ = [
    "IriScheme",
    "MusicCorpus",
    "MusicDataError",
    "NameIndex",
    "NameMatches",
    "ReadReport",
    "SynthParams",
    "normalize_name",
    "synthesize",
]
