"""The web page each host serves: recommendations, browsing the mycelium web, the live network view.

Server-rendered HTML (Jinja2 templates) with two small hand-written scripts that only enhance it.
:func:`mount_web` adds it to a host app; :func:`render_resource` is the rich ``text/html`` renderer the
linked-data routes call for the IRIs a node mints.
"""

from federation.web.app import mount_web
from federation.web.recommending import ModelRegistry, NodeModel
from federation.web.resources import render_resource
from federation.web.state import WebState, web_state

__all__ = ["ModelRegistry", "NodeModel", "WebState", "mount_web", "render_resource", "web_state"]
