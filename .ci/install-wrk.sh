#!/usr/bin/env bash
# Installs wrk (Debian package), the load generator of bench/inbox.py: C, event-driven, scripted
# in Lua, so that replaying pre-signed activities costs far less CPU than the host it measures.
# Idempotent: does nothing when wrk is already on PATH.
set -euo pipefail
if command -v wrk >/dev/null 2>&1; then
    echo "install-wrk: up to date ($(command -v wrk))"
    exit 0
fi
sudo_cmd=()
[[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends wrk
echo "install-wrk: installed $(command -v wrk)"
