#!/usr/bin/env bash
# Installs the Debian packages rstap needs to build, and the ones its VM tests need
# (qemu, busybox, cpio). Idempotent: packages already present are left alone.
set -euo pipefail

build_packages=(clang llvm libelf-dev zlib1g-dev pkg-config make gcc)
vm_packages=(qemu-system-x86 busybox-static cpio gzip xz-utils dpkg)

missing=()
for pkg in "${build_packages[@]}" "${vm_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
    exit 0
fi

sudo_cmd=()
[[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
echo "installing: ${missing[*]}" >&2
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
