#!/usr/bin/env bash
# Installs the peer tracers the benchmark compares rstap with (Debian 12's bpftrace), on
# top of what scripts/install-deps.sh installs. Idempotent: present packages are left alone.
set -euo pipefail

packages=(bpftrace)

missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
((${#missing[@]} > 0)) || exit 0

sudo_cmd=()
[[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
echo "installing: ${missing[*]}" >&2
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
