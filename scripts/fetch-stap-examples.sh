#!/usr/bin/env bash
# Downloads Debian's systemtap-doc package once and prints the directory of SystemTap's
# example scripts it ships (examples/ with one directory per subject). They are users'
# input for rstap's tests, never part of rstap: they stay in a cache outside the
# repository ($RSTAP_TEST_CACHE, else $XDG_CACHE_HOME/rstap-tests, else ~/.cache/rstap-tests).
set -euo pipefail

cache=${RSTAP_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rstap-tests}/systemtap-doc
examples=$cache/usr/share/systemtap/examples
if [[ -d $examples ]]; then
    echo "$examples"
    exit 0
fi
mkdir -p "$cache"
exec 9>"$cache.lock"
flock 9
if [[ -d $examples ]]; then
    echo "$examples"
    exit 0
fi

work=$(mktemp -d "$cache.XXXXXX")
trap 'rm -rf "$work"' EXIT
sudo_cmd=()
[[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
# apt-get download uses the system's package lists; a machine that has never updated them
# has none to find the package in.
if ! (cd "$work" && apt-get download -q systemtap-doc >&2 2>"$work/download.err"); then
    echo "updating the package lists to find systemtap-doc" >&2
    "${sudo_cmd[@]}" apt-get update -qq >&2
    (cd "$work" && apt-get download -q systemtap-doc >&2)
fi
dpkg-deb -x "$work"/systemtap-doc_*.deb "$work/root"
[[ -d $work/root/usr/share/systemtap/examples ]] || {
    echo "systemtap-doc has no usr/share/systemtap/examples" >&2
    exit 1
}
rm -rf "$cache"
mv "$work/root" "$cache"
echo "$examples"
