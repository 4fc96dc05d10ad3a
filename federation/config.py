"""What a host needs to know: its public base URL, its nodes and groups, its data directory and limits."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["HostConfig", "NodeSpec", "GroupSpec", "Limits", "NAME_PATTERN"]

# preferredUsername rules shared with the ontology's spore:nodeName (lower-case letters, digits, _).
NAME_PATTERN = re.compile(r"^[a-z0-9_]{1,64}$")


@dataclass(frozen=True)
class NodeSpec:
    """One fungus node served by the host (one ``Service`` actor)."""

    name: str
    display_name: str = ""
    summary: str = ""
    blueprint: str | None = None  # IRI of the node's current blueprint
    sparql_endpoint: str | None = None  # IRI of the node's public SPARQL endpoint

    def __post_init__(self) -> None:
        if not NAME_PATTERN.match(self.name):
            raise ValueError(f"node name {self.name!r} must match {NAME_PATTERN.pattern}")


@dataclass(frozen=True)
class GroupSpec:
    """A learning group hosted here: an AS2 ``Group`` actor identified by its hashtag."""

    name: str
    hashtag: str  # with the leading '#'
    summary: str = ""

    def __post_init__(self) -> None:
        if not NAME_PATTERN.match(self.name):
            raise ValueError(f"group name {self.name!r} must match {NAME_PATTERN.pattern}")
        if not re.fullmatch(r"#\w{1,100}", self.hashtag):
            raise ValueError(f"hashtag {self.hashtag!r} must be '#' followed by word characters")


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 256 * 1024  # Mastodon accepts up to 1 MB; activities of ours are a few KB
    max_json_depth: int = 32
    clock_window_seconds: float = 3600.0  # draft-cavage practice: Mastodon allows 1 hour (12 h future)
    rate_per_second: float = 200.0  # per remote host, sustained
    rate_burst: float = 400.0
    inbox_queue_size: int = 10_000
    delivery_queue_size: int = 100_000
    page_size: int = 20
    sparql_timeout_seconds: float = 30.0  # a public /sparql query's deadline (503 past it)
    sparql_max_result_bytes: int = 32 * 1024 * 1024  # a serialised answer's cap (422 past it)
    sparql_workers: int = 4  # queries evaluated at once; more get 503 with Retry-After


@dataclass(frozen=True)
class HostConfig:
    base_url: str  # public base URL, e.g. "https://spore.example" or "http://127.0.0.1:8001"
    data_dir: Path
    nodes: tuple[NodeSpec, ...] = ()
    groups: tuple[GroupSpec, ...] = ()
    allow_loopback: bool = False  # a local fungiverse sets this explicitly
    allow_private: bool = False
    limits: Limits = field(default_factory=Limits)
    software_name: str = "spore"
    software_version: str = "0.1.0"
    tls_verify: bool | str = True  # or a CA bundle path (a self-signed local fungiverse)
    sparql_update_token: str | None = None  # bearer token for SPARQL Update on /sparql; None: read-only
    # Serve collections and objects to signed GETs only (federation/authorized_fetch.py).
    authorized_fetch: bool = False

    def __post_init__(self) -> None:
        if not re.match(r"^https?://[^/]+$", self.base_url.rstrip("/")):
            raise ValueError(f"base_url {self.base_url!r} must be scheme://host[:port] without a path")
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        names = [spec.name for spec in self.nodes] + [spec.name for spec in self.groups]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicate node/group names: {', '.join(duplicates)}")

    @property
    def domain(self) -> str:
        """The WebFinger domain: host[:port] of the base URL."""
        return self.base_url.split("://", 1)[1]
