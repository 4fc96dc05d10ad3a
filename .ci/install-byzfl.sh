#!/usr/bin/env bash
# Installs byzfl (EPFL's Byzantine-robust aggregators) into the project venv as the reference that
# tests/test_merge_reference.py compares SPORE's rules against; those tests skip without it.
# byzfl declares torchvision, matplotlib and seaborn for its benchmark framework; a PyPI torchvision
# would replace the CPU torch (and its wheel fails to load against torch+cpu), while the aggregators
# need only numpy, torch and scipy. So: byzfl without dependencies, plus scipy pinned to the
# installed torch. Idempotent: does nothing when both import.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/${VENV:-.venv}/bin"
if "$bin/python" -c 'import importlib.util as u, sys; sys.exit(not (u.find_spec("byzfl") and u.find_spec("scipy")))'; then
    echo "install-byzfl: up to date"
    exit 0
fi
torch_version=$("$bin/python" -c 'import torch; print(torch.__version__.split("+")[0])')
"$bin/pip" install --quiet --disable-pip-version-check --no-deps byzfl==0.0.11
"$bin/pip" install --quiet --disable-pip-version-check scipy -c <(echo "torch==$torch_version")
echo "install-byzfl: installed byzfl 0.0.11 and scipy for torch $torch_version"
