#!/usr/bin/env bash
# Installs OpenLink Virtuoso 7 (Debian package virtuoso-opensource-7-bin): the second, independent
# SPARQL 1.1 endpoint that tests/test_store_virtuoso.py runs the remote store against. Only the
# server binary and isql come with it; no system service is installed or started (the tests start
# their own server on 127.0.0.1 with a throwaway database). Idempotent.
set -euo pipefail
if command -v virtuoso-t >/dev/null && command -v isql-vt >/dev/null; then
    echo "install-virtuoso: up to date ($(command -v virtuoso-t))"
    exit 0
fi
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo=sudo; fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends virtuoso-opensource-7-bin
echo "install-virtuoso: installed $(command -v virtuoso-t)"
