"""ASGI factory for fediverse-pasture's ``verify_actor`` bound to one loopback address.

Runs inside the pasture's own virtual environment (its dependencies pin old ``cryptography``
and ``pyld``), never imported by the project. The package's own runner binds every interface
and reads its domain from a CLI flag, so tests start this factory with uvicorn instead::

    PASTURE_DOMAIN=127.0.0.1:PORT uvicorn --factory --app-dir tests/interop/pasture \
        pasture_app:create_app --host 127.0.0.1 --port PORT

``build_app`` writes its generated test actors to ``data.toml`` in the working directory, so
the caller runs it in a scratch directory.
"""

import os

from fediverse_pasture.verify_actor import build_app
from quart import Quart


def create_app() -> Quart:
    domain = os.environ["PASTURE_DOMAIN"]
    timeout = float(os.environ.get("PASTURE_TIMEOUT", "10"))
    return build_app(False, domain, False, timeout)
