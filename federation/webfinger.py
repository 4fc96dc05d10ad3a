"""WebFinger (RFC 7033) and host-meta (RFC 6415): how ``@name@host`` becomes an actor URL.

Pure functions from a resource string to a JRD (or a reason); the router in :mod:`federation.host`
turns the reason into 400/404. Mastodon looks nodes up as ``acct:name@host``; actor URLs are
accepted as resources too, as RFC 7033 section 4.5 allows any URI.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote
from xml.sax.saxutils import quoteattr

from federation.actors import ActorDirectory, LocalActor

__all__ = ["LookupFailure", "WebFingerError", "lookup", "jrd", "host_meta"]

JRD_MEDIA_TYPE = "application/jrd+json"


class LookupFailure(enum.StrEnum):
    MALFORMED = "malformed"  # 400 (RFC 7033 section 4.2: missing or malformed resource)
    UNKNOWN = "unknown"  # 404


@dataclass(frozen=True)
class WebFingerError:
    failure: LookupFailure
    detail: str


def lookup(resource: str | None, actors: ActorDirectory, domain: str) -> LocalActor | WebFingerError:
    """Resolve a WebFinger ``resource`` to a local actor."""
    if not resource:
        return WebFingerError(LookupFailure.MALFORMED, "missing resource parameter")
    resource = unquote(resource.strip())
    if resource.startswith(("http://", "https://")):
        actor = actors.by_id(resource)
        return actor or WebFingerError(LookupFailure.UNKNOWN, f"no actor {resource}")
    account = resource.removeprefix("acct:").lstrip("@")
    name, at, host = account.partition("@")
    if not at or not name or not host or "@" in host:
        return WebFingerError(LookupFailure.MALFORMED, f"resource {resource!r} is not acct:name@host")
    if host.lower() != domain.lower():
        return WebFingerError(LookupFailure.UNKNOWN, f"{host} is not this host ({domain})")
    if name == domain or name == actors.instance.name:
        return actors.instance
    actor = actors.nodes.get(name) or actors.groups.get(name)
    return actor or WebFingerError(LookupFailure.UNKNOWN, f"no account {name}@{host}")


def jrd(actor: LocalActor, domain: str) -> dict[str, Any]:
    return {
        "subject": f"acct:{actor.name}@{domain}",
        "aliases": [actor.id],
        "links": [
            {"rel": "self", "type": "application/activity+json", "href": actor.id},
            {"rel": "http://webfinger.net/rel/profile-page", "type": "text/html", "href": actor.id},
        ],
    }


def host_meta(base_url: str) -> str:
    """host-meta XRD with the WebFinger LRDD template (what older Fediverse software still reads)."""
    template = quoteattr(f"{base_url}/.well-known/webfinger?resource={{uri}}")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<XRD xmlns="http://docs.oasis-open.org/ns/xri/xrd-1.0">\n'
        f'  <Link rel="lrdd" template={template}/>\n'
        "</XRD>\n"
    )
