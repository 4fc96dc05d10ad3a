"""A seeded synthetic music graph with the structure recommenders rely on.

So that the product, its demo and most tests run without the licensed Last.fm files, this draws a
corpus of the same shape (see :mod:`knowledge.music.corpus`) with:

* **power-law popularity**: artist weight ``rank ** -popularity_exponent`` (Zipf), as in real
  listening logs where a few artists collect most plays;
* **communities of taste**: every artist and listener belongs to one community; a listener draws
  ``in_community`` of their artists from their own community and the rest from the whole catalogue,
  both weighted by popularity, so collaborative filtering has something to find beyond popularity;
* **tags that correlate with communities**: each community owns a block of tags and artists carry
  mostly their community's tags; a few tags are global ("seen live" style);
* **a sparse knowledge graph** like KGCN's: a popularity-biased fraction of artists has an entity,
  linked by ``music.artist.origin`` and ``music.artist.genre`` to entities their community shares;
* **friendships** mostly within a community, stored in both directions as in HetRec.

Sampling without replacement uses Gumbel top-k keys (Efraimidis and Spirakis 2006), O(artists)
per listener. Everything is drawn from one ``numpy.random.Generator`` seeded with ``seed``, in a
fixed order, so a seed always yields the same corpus and the same bytes.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import numpy as np

from knowledge.music.corpus import (
    Artist,
    Friendship,
    IriScheme,
    KnowledgeTriple,
    Listening,
    MusicCorpus,
    Tag,
    Tagging,
)

__all__ = ["SynthParams", "synthesize"]

_SYLLABLES = (
    "ka", "lo", "mi", "ra", "ven", "tor", "sa", "lu", "dri", "mo", "ne", "zu", "fel", "ari", "os",
    "quin", "bel", "ta", "yo", "rö", "sé", "ñu", "ji", "kø", "va", "ly", "an", "ek", "ul", "ish",
)  # fmt: skip
_WORDS = (
    "Velvet", "Echo", "Neon", "Paper", "Iron", "Silver", "Hollow", "Crimson", "Glass", "Northern",
    "Quiet", "Electric", "Wild", "Golden", "Broken", "Lunar", "Static", "Violet", "Ghost", "Ocean",
    "Mirrors", "Wolves", "Engines", "Gardens", "Signals", "Rivers", "Saints", "Machines", "Tides",
    "Lanterns", "Horses", "Satellites", "Cathedrals", "Orchids", "Pilots", "Shadows", "Comets",
)  # fmt: skip
_GENRES = (
    "rock", "pop", "metal", "jazz", "folk", "punk", "soul", "techno", "house", "ambient", "indie",
    "blues", "funk", "trance", "grunge", "shoegaze", "hip-hop", "reggae", "disco", "noise",
)  # fmt: skip
_STYLES = (
    "dream", "post", "neo", "dark", "acid", "lo-fi", "space", "math", "synth", "art", "baroque",
    "cold", "deep", "free", "garage", "psych", "minimal", "nu", "proto", "chamber",
)  # fmt: skip
_GLOBAL_TAGS = ("seen live", "favorites", "female vocalists", "male vocalists", "love", "awesome")
_FIRST_DAY = datetime.date(2005, 8, 1).toordinal()
_LAST_DAY = datetime.date(2011, 5, 1).toordinal()


@dataclass(frozen=True)
class SynthParams:
    """Sizes and structure of a synthetic corpus; defaults resemble Last.fm-2k at a smaller scale."""

    listeners: int = 300
    artists: int = 1500
    seed: int = 0
    communities: int | None = None  # default: about sqrt(listeners) / 3, between 2 and 24
    tags: int | None = None  # default: 12 per community plus the global ones
    artists_per_listener: float = 40.0
    in_community: float = 0.8
    # 1.1 matches Last.fm-2k: the top 1% / 5% / 20% of artists hold 32% / 57% / 80% of listenings
    popularity_exponent: float = 1.1
    tagging_share: float = 0.3
    friends_per_listener: float = 8.0
    in_community_friends: float = 0.85
    knowledge_share: float = 0.25

    def community_count(self) -> int:
        if self.communities is not None:
            return self.communities
        return int(min(24, max(2, round(self.listeners**0.5 / 3))))

    def validate(self) -> None:
        """Raise ``ValueError`` with the offending parameter, so the CLI can print one line."""
        if self.listeners < 1 or self.artists < 2:
            raise ValueError("need at least 1 listener and 2 artists")
        if self.community_count() < 1 or self.community_count() > self.artists:
            raise ValueError("communities must be between 1 and the number of artists")
        for name in ("in_community", "tagging_share", "in_community_friends", "knowledge_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.artists_per_listener < 1:
            raise ValueError("artists_per_listener must be at least 1")


def _weighted_sample(rng: np.random.Generator, weights: np.ndarray, size: int) -> np.ndarray:
    """Indices of ``size`` distinct items drawn with probability proportional to ``weights``."""
    size = min(size, int(np.count_nonzero(weights)))
    if size <= 0:
        return np.empty(0, dtype=np.int64)
    with np.errstate(divide="ignore"):
        keys = np.log(weights) - np.log(-np.log(rng.random(weights.shape[0])))
    top = np.argpartition(-keys, size - 1)[:size]
    return top[np.argsort(-keys[top], kind="stable")]


def _word(rng: np.random.Generator, syllables: int) -> str:
    return "".join(_SYLLABLES[i] for i in rng.integers(len(_SYLLABLES), size=syllables)).capitalize()


def _artist_names(rng: np.random.Generator, count: int) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    for _ in range(count):
        style = rng.integers(4)
        if style == 0:
            name = f"The {_WORDS[rng.integers(len(_WORDS))]} {_WORDS[rng.integers(len(_WORDS))]}"
        elif style == 1:
            name = f"{_word(rng, 2)} {_word(rng, 3)}"
        elif style == 2:
            name = f"{_WORDS[rng.integers(len(_WORDS))]} & the {_word(rng, 2)}s"
        else:
            name = _word(rng, int(rng.integers(2, 4)))
        base, suffix = name, 2
        while name.casefold() in seen:
            name, suffix = f"{base} {suffix}", suffix + 1
        seen.add(name.casefold())
        names.append(name)
    return names


def _tag_labels(rng: np.random.Generator, communities: int, per_community: int) -> list[str]:
    """Community tag blocks first (block c = tags c*per_community ...), then the global tags."""
    labels: list[str] = []
    seen = set(_GLOBAL_TAGS)
    for community in range(communities):
        genre = _GENRES[community % len(_GENRES)]
        for _ in range(per_community):
            label = f"{_STYLES[rng.integers(len(_STYLES))]} {genre}"
            if label in seen:
                label = f"{label} {len(labels)}"
            seen.add(label)
            labels.append(label)
    return labels + list(_GLOBAL_TAGS)


def synthesize(params: SynthParams) -> MusicCorpus:
    """Draw a corpus; the same ``params`` always give the same corpus."""
    params.validate()
    rng = np.random.default_rng(params.seed)
    n_listeners, n_artists, n_comm = params.listeners, params.artists, params.community_count()
    corpus = MusicCorpus(IriScheme.synthetic(params.seed), f"SPORE synthetic music graph, seed {params.seed}")

    community_share = rng.dirichlet(np.full(n_comm, 3.0))
    artist_comm = rng.choice(n_comm, size=n_artists, p=community_share)
    artist_comm[:n_comm] = np.arange(n_comm)  # every community owns at least one artist
    popularity = (rng.permutation(n_artists) + 1.0) ** -params.popularity_exponent
    listener_comm = rng.choice(n_comm, size=n_listeners, p=community_share)
    names = _artist_names(rng, n_artists)
    corpus.artists = [Artist(str(a + 1), names[a]) for a in range(n_artists)]

    per_comm = 12 if params.tags is None else max(1, (params.tags - len(_GLOBAL_TAGS)) // n_comm)
    labels = _tag_labels(rng, n_comm, per_comm)
    corpus.tags = [Tag(str(t + 1), label) for t, label in enumerate(labels)]
    global_tags = np.arange(n_comm * per_comm, len(labels))
    tag_pop = (np.arange(per_comm) + 1.0) ** -1.0
    artist_tags: list[np.ndarray] = []
    for a in range(n_artists):
        own = artist_comm[a] * per_comm + _weighted_sample(rng, tag_pop, int(rng.integers(1, 5)))
        extra = global_tags[rng.random(len(global_tags)) < 0.05]
        artist_tags.append(np.concatenate([own, extra]))

    # listening: own community's artists plus the whole catalogue, both by popularity
    members = [np.flatnonzero(artist_comm == c) for c in range(n_comm)]
    sizes = np.clip(
        np.round(rng.lognormal(np.log(params.artists_per_listener), 0.5, size=n_listeners)), 1, n_artists // 2
    ).astype(int)
    for u in range(n_listeners):
        own = members[listener_comm[u]]
        n_own = min(int(rng.binomial(sizes[u], params.in_community)), len(own))
        chosen = own[_weighted_sample(rng, popularity[own], n_own)]
        rest = popularity.copy()
        rest[chosen] = 0.0
        chosen = np.concatenate([chosen, _weighted_sample(rng, rest, int(sizes[u]) - n_own)])
        affinity = np.where(artist_comm[chosen] == listener_comm[u], 2.0, 1.0)
        plays = np.maximum(1, np.round(rng.lognormal(4.5, 1.3, size=len(chosen)) * affinity)).astype(int)
        listener = str(u + 1)
        for a, count in zip(chosen.tolist(), plays.tolist(), strict=True):
            corpus.listenings.append(Listening(listener, str(a + 1), count))
        tagged = chosen[rng.random(len(chosen)) < params.tagging_share]
        for a in tagged.tolist():
            options = artist_tags[a]
            picks = options[_weighted_sample(rng, np.ones(len(options)), int(rng.integers(1, 3)))]
            day = datetime.date.fromordinal(int(rng.integers(_FIRST_DAY, _LAST_DAY)))
            for t in sorted(picks.tolist()):
                corpus.taggings.append(Tagging(listener, str(a + 1), str(t + 1), day))

    corpus.friendships = _friendships(rng, params, listener_comm)
    _knowledge_graph(rng, params, corpus, artist_comm, popularity)
    corpus.report.kept.update(corpus.counts())
    return corpus


def _friendships(
    rng: np.random.Generator, params: SynthParams, listener_comm: np.ndarray
) -> list[Friendship]:
    n = len(listener_comm)
    by_comm = [np.flatnonzero(listener_comm == c) for c in range(int(listener_comm.max()) + 1)]
    pairs: set[tuple[int, int]] = set()
    for u in range(n):
        for _ in range(int(rng.poisson(params.friends_per_listener / 2))):
            pool = by_comm[listener_comm[u]] if rng.random() < params.in_community_friends else np.arange(n)
            friend = int(pool[rng.integers(len(pool))])
            if friend != u:
                pairs.update({(u, friend), (friend, u)})
    return [Friendship(str(u + 1), str(f + 1)) for u, f in sorted(pairs)]


def _knowledge_graph(
    rng: np.random.Generator,
    params: SynthParams,
    corpus: MusicCorpus,
    artist_comm: np.ndarray,
    popularity: np.ndarray,
) -> None:
    """KGCN-like: mapped artists are entities 0..M-1, then places and genres shared by communities."""
    n_comm = int(artist_comm.max()) + 1
    mapped = np.sort(
        _weighted_sample(rng, np.sqrt(popularity), int(round(params.knowledge_share * len(popularity))))
    )
    next_entity = len(mapped)
    places: list[list[int]] = []
    genres: list[list[int]] = []
    for community in range(n_comm):
        ids = list(range(next_entity, next_entity + 3))
        next_entity += 3
        places.append(ids)
        for e in ids:
            corpus.entity_labels[str(e)] = _word(rng, 3)
        genre_ids = list(range(next_entity, next_entity + 2))
        next_entity += 2
        genres.append(genre_ids)
        for i, e in enumerate(genre_ids):
            corpus.entity_labels[str(e)] = (
                f"{_STYLES[(community + 7 * i) % len(_STYLES)]} " + _GENRES[community % len(_GENRES)]
            )
    for entity, a in enumerate(mapped.tolist()):
        corpus.artist_entities[str(a + 1)] = str(entity)
        comm = int(artist_comm[a])
        home = comm if rng.random() < 0.8 else int(rng.integers(n_comm))
        origin = places[home][int(rng.integers(3))]
        corpus.knowledge.append(KnowledgeTriple(str(entity), "music.artist.origin", str(origin)))
        for g in sorted(set(rng.choice(genres[comm], size=int(rng.integers(1, 3))).tolist())):
            corpus.knowledge.append(KnowledgeTriple(str(entity), "music.artist.genre", str(g)))
