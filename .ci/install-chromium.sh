#!/usr/bin/env bash
# Installs what tests/browser/ drives: Debian's chromium (Playwright's own browser download cannot
# run here, so the tests point Playwright at /usr/bin/chromium), the Python `playwright` package
# (its driver ships inside the wheel) and axe-playwright-python (axe-core, for the accessibility
# checks). Idempotent: does nothing when all are present.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/${VENV:-.venv}/bin"
playwright_version="1.65.2"
axe_version="0.1.8"
if ! command -v chromium >/dev/null 2>&1; then
    sudo_cmd=""
    if [[ $(id -u) -ne 0 ]]; then sudo_cmd="sudo"; fi
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends chromium chromium-driver
fi
if ! "$bin/python" -c 'import playwright, axe_playwright_python' 2>/dev/null; then
    "$bin/pip" install --quiet --disable-pip-version-check "playwright==$playwright_version" \
        "axe-playwright-python==$axe_version"
fi
echo "install-chromium: $(chromium --version), playwright $("$bin/python" -c 'from importlib.metadata import version; print(version("playwright"))')"
