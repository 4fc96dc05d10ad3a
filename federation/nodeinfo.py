"""NodeInfo 2.1 (https://nodeinfo.diaspora.software/protocol): what software a host runs, for crawlers."""

from __future__ import annotations

from typing import Any

__all__ = ["NODEINFO_SCHEMA", "discovery", "nodeinfo"]

NODEINFO_SCHEMA = "http://nodeinfo.diaspora.software/ns/schema/2.1"


def discovery(base_url: str) -> dict[str, Any]:
    return {"links": [{"rel": NODEINFO_SCHEMA, "href": f"{base_url}/nodeinfo/2.1"}]}


def nodeinfo(*, name: str, version: str, nodes: int, local_posts: int) -> dict[str, Any]:
    return {
        "version": "2.1",
        "software": {"name": name, "version": version, "homepage": "https://w3id.org/spore"},
        "protocols": ["activitypub"],
        "services": {"inbound": [], "outbound": []},
        "openRegistrations": False,
        "usage": {
            "users": {"total": nodes, "activeMonth": nodes, "activeHalfyear": nodes},
            "localPosts": local_posts,
        },
        "metadata": {"kind": "fungiverse host"},
    }
