#!/usr/bin/env bash
# Installs the Fedify interop peer (tests/interop/fedify_peer): @fedify/fedify and @fedify/vocab
# 2.3.6 under the node@22 npm package, exactly as pinned in its package-lock.json.
# Idempotent: does nothing when node_modules was installed from the same lock file.
set -euo pipefail
cd "$(dirname "$0")/../tests/interop/fedify_peer"
stamp=node_modules/.spore-installed
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ -x node_modules/.bin/node && -f $stamp && $(cat "$stamp") == "$want" ]]; then
    echo "install-fedify: up to date ($(node_modules/.bin/node --version))"
    exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
node_modules/.bin/node -e 'await import("@fedify/fedify"); await import("@fedify/vocab")' --input-type=module
echo "$want" > "$stamp"
echo "install-fedify: installed $(node_modules/.bin/node --version), @fedify/fedify $(node -p 'require("./node_modules/@fedify/fedify/package.json").version')"
