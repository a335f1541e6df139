#!/usr/bin/env bash
# Fetches one of Debian's cloud kernels for rstap's VM tests and prints the cache directory
# holding it: vmlinuz, release (its `uname -r`), config, System.map when the package has a
# real one, and with --debuginfo the DWARF vmlinux. A complete cache is used without any
# network access, so tests can call this every time. Packages come from the system's own
# mirrors through a private apt configuration, so the host's apt state is never touched.
#
# usage: vm/fetch-kernel.sh 6.1|6.12 [--debuginfo]
set -euo pipefail

usage() {
    echo "usage: $0 6.1|6.12 [--debuginfo]" >&2
    exit 2
}

(($# >= 1)) || usage
version=$1
shift
debuginfo=false
for arg in "$@"; do
    case $arg in
    --debuginfo) debuginfo=true ;;
    *) usage ;;
    esac
done

case $version in
6.1) suite=bookworm ;;
6.12) suite=trixie ;;
*) usage ;;
esac

cache_root=${RSTAP_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rstap-vm}
dir=$cache_root/$version
mkdir -p "$dir"

is_complete() {
    [[ -s $dir/vmlinuz && -s $dir/release ]] || return 1
    ! $debuginfo || [[ -s $dir/vmlinux ]]
}

if is_complete; then
    echo "$dir"
    exit 0
fi

# One fetch per kernel at a time; fetches of different kernels use different directories.
exec 9>"$dir/.lock"
flock 9
if is_complete; then
    echo "$dir"
    exit 0
fi

apt_dir=$dir/apt
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"

# Prints the host's deb sources as one-line entries with the host's codename replaced by
# the wanted suite, so that e.g. bookworm-security becomes trixie-security on the same mirror.
private_sources() {
    local host_codename
    host_codename=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release)
    [[ -n $host_codename ]] || {
        echo "cannot tell the host's Debian codename from /etc/os-release" >&2
        return 1
    }
    {
        # deb822 stanzas: one "URI SUITE [KEYRING]" line per URI and suite.
        for file in /etc/apt/sources.list.d/*.sources; do
            [[ -e $file ]] || continue
            awk '
                function flush() {
                    if (types ~ /(^| )deb( |$)/)
                        for (u in uris) for (s in suites) print uris[u], suites[s], keyring
                    types = ""; keyring = ""; split("", uris); split("", suites)
                }
                /^[ \t]*$/ { flush(); next }
                /^Types:/ { types = $0; sub(/^Types:[ \t]*/, "", types) }
                /^URIs:/ { for (i = 2; i <= NF; i++) uris[i] = $i }
                /^Suites:/ { for (i = 2; i <= NF; i++) suites[i] = $i }
                /^Signed-By:/ { keyring = $2 }
                END { flush() }
            ' "$file"
        done
        # One-line format: "deb [options] URI SUITE COMPONENTS...".
        for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
            [[ -e $file ]] || continue
            sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\) \([^ ]*\).*/\2 \3/p' "$file"
        done
    } | while read -r uri host_suite keyring; do
        [[ $host_suite == "$host_codename"* ]] || continue
        local options=""
        [[ -n ${keyring:-} ]] && options="[signed-by=$keyring] "
        echo "deb ${options}${uri} ${suite}${host_suite#"$host_codename"} main"
    done | sort -u
}

private_sources >"$apt_dir/sources.list"
[[ -s $apt_dir/sources.list ]] || {
    echo "no apt sources for the host's own suite found to derive $suite from" >&2
    exit 1
}

apt_options=(
    -o "Dir::Etc::sourcelist=$apt_dir/sources.list"
    -o Dir::Etc::sourceparts=/dev/null
    -o Dir::Etc::preferences=/dev/null
    -o Dir::Etc::preferencesparts=/dev/null
    -o "Dir::State::Lists=$apt_dir/lists"
    -o "Dir::Cache=$apt_dir/cache"
    -o APT::Sandbox::User="$(id -un)"
    -q
)

echo "updating the package lists for $suite" >&2
apt-get "${apt_options[@]}" update >&2

# The metapackage depends on the current signed image, whose name carries the release.
image=$(apt-cache "${apt_options[@]}" depends linux-image-cloud-amd64 |
    sed -n 's/^ *Depends: \(linux-image-[^ ]*-cloud-amd64\)$/\1/p' | head -n1)
[[ -n $image ]] || {
    echo "linux-image-cloud-amd64 in $suite names no kernel image" >&2
    exit 1
}
release=${image#linux-image-}
echo "current $suite cloud kernel: $release" >&2

work=$(mktemp -d "$dir/fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Downloads one package into $work and prints the path of the .deb.
download() {
    (cd "$work" && apt-get "${apt_options[@]}" download "$1" >&2)
    local deb
    deb=$(ls "$work"/"$1"_*.deb)
    echo "$deb"
}

if [[ ! -s $dir/vmlinuz || $(cat "$dir/release" 2>/dev/null) != "$release" ]]; then
    echo "downloading linux-image-$release-unsigned" >&2
    deb=$(download "linux-image-$release-unsigned")
    mkdir "$work/image"
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work/image" ./boot
    rm -f "$deb"
    boot=$work/image/boot
    for driver in SERIAL_8250 SERIAL_8250_CONSOLE BLK_DEV_INITRD; do
        grep -q "^CONFIG_$driver=y" "$boot/config-$release" || {
            echo "CONFIG_$driver is not built into $release: the VM harness needs it" >&2
            exit 1
        }
    done
    mv "$boot/config-$release" "$dir/config"
    # Debian ships a one-line placeholder here; the real map is in the -dbg package.
    map=$boot/System.map-$release
    if [[ -e $map && $(wc -l <"$map") -gt 1 ]]; then
        mv "$map" "$dir/System.map"
    else
        rm -f "$dir/System.map"
    fi
    # A debug vmlinux left by another release would not match this kernel.
    if [[ $(cat "$dir/release" 2>/dev/null) != "$release" ]]; then
        rm -f "$dir/vmlinux"
    fi
    echo "$release" >"$dir/release.new"
    mv "$dir/release.new" "$dir/release"
    mv "$boot/vmlinuz-$release" "$dir/vmlinuz"
fi

if $debuginfo && [[ ! -s $dir/vmlinux ]]; then
    echo "downloading linux-image-$release-dbg" >&2
    deb=$(download "linux-image-$release-dbg")
    echo "extracting the debug vmlinux" >&2
    mkdir "$work/dbg"
    dpkg-deb --fsys-tarfile "$deb" |
        tar -x -C "$work/dbg" --wildcards './usr/lib/debug/boot/vmlinux-*'
    rm -f "$deb"
    mv "$work/dbg/usr/lib/debug/boot/vmlinux-$release" "$dir/vmlinux"
fi

echo "$dir"
