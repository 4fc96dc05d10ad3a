#!/usr/bin/env bash
# Installs fediverse-pasture (verify_actor) into its own virtual environment,
# tests/interop/.pasture-venv: its dependencies pin an old cryptography and pyld that must not
# meet the project's venv. Versions are pinned in tests/interop/pasture/requirements.txt.
# Idempotent: does nothing when the venv was installed from the same requirements file.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/tests/interop/.pasture-venv"
reqs="$root/tests/interop/pasture/requirements.txt"
stamp="$venv/.spore-installed"
want=$(sha256sum "$reqs" | cut -d' ' -f1)
if [[ -x $venv/bin/uvicorn && -f $stamp && $(cat "$stamp") == "$want" ]]; then
    echo "install-pasture: up to date"
    exit 0
fi
"${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$reqs"
# Importing bovine writes a JSON-LD cache (bovine_jsonld_cache.sqlite) into the working directory.
(cd "$(mktemp -d)" && "$venv/bin/python" -c 'import fediverse_pasture.verify_actor, uvicorn')
echo "$want" > "$stamp"
echo "install-pasture: installed fediverse-pasture $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("fediverse-pasture"))')"
