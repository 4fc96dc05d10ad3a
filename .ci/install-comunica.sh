#!/usr/bin/env bash
# Installs Comunica (tests/interop/comunica): @comunica/query-sparql 5.4.1 under the node@22 npm
# package, exactly as pinned in its package-lock.json; tests/interop/test_comunica.py runs it.
# Idempotent: does nothing when node_modules was installed from the same lock file.
set -euo pipefail
cd "$(dirname "$0")/../tests/interop/comunica"
stamp=node_modules/.spore-installed
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ -x node_modules/.bin/node && -f $stamp && $(cat "$stamp") == "$want" ]]; then
    echo "install-comunica: up to date ($(node_modules/.bin/node --version))"
    exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
node_modules/.bin/node --input-type=module -e 'await import("@comunica/query-sparql")'
echo "$want" > "$stamp"
echo "install-comunica: installed $(node_modules/.bin/node --version), @comunica/query-sparql $(node -p 'require("./node_modules/@comunica/query-sparql/package.json").version')"
