#!/usr/bin/env bash
# Builds a busybox initramfs (gzip, newc cpio) for rstap's throwaway VMs. Its /init mounts
# the kernel's pseudo file systems, brings lo up, runs the guest script with $RESULTS set to
# an empty directory, then writes that directory as a tar.gz to the second serial port
# (/dev/ttyS1, which vm/boot.sh connects to a host file) and powers off.
#
# usage: vm/build-initramfs.sh -o OUT -s GUEST_SCRIPT [-a HOST_PATH:GUEST_PATH]...
#                              [-r HOST_PATH:GUEST_PATH]...
#   -a copies a host file into the image; dynamically linked executables bring the
#      libraries `ldd` lists.
#   -r stores a big file uncompressed, in a cpio archive of its own before the compressed
#      one (the kernel unpacks concatenated archives): gzip is slow on a 590 MB debug
#      vmlinux, and decompressing it under TCG slower still.
# The guest script's exit status is saved as $RESULTS/status.
set -euo pipefail

usage() {
    echo "usage: $0 -o OUT -s GUEST_SCRIPT [-a HOST_PATH:GUEST_PATH]... [-r HOST_PATH:GUEST_PATH]..." >&2
    exit 2
}

out=""
script=""
adds=()
raws=()
while getopts "o:s:a:r:" opt; do
    case $opt in
    o) out=$OPTARG ;;
    s) script=$OPTARG ;;
    a) adds+=("$OPTARG") ;;
    r) raws+=("$OPTARG") ;;
    *) usage ;;
    esac
done
[[ -n $out && -n $script ]] || usage

busybox=$(command -v busybox) || {
    echo "busybox not found: install busybox-static" >&2
    exit 1
}
if ldd "$busybox" >/dev/null 2>&1; then
    echo "$busybox is dynamically linked: install busybox-static" >&2
    exit 1
fi

root=$(mktemp -d)
raw_root=$(mktemp -d)
trap 'rm -rf "$root" "$raw_root"' EXIT

mkdir -p "$root"/{bin,dev,proc,sys,tmp,results,etc,usr/local/bin}
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
    [[ $applet == busybox ]] || ln -s busybox "$root/bin/$applet"
done
ln -s bin "$root/sbin"
ln -s ../bin "$root/usr/bin"
ln -s ../bin "$root/usr/sbin"

# Copies a file to the same or a given path in the image, creating its directory.
place() {
    local src=$1 dest=$root$2
    mkdir -p "$(dirname "$dest")"
    cp -L "$src" "$dest"
}

# Copies the shared libraries and loader a dynamic executable needs, at their host paths.
place_libraries() {
    local lib
    { ldd "$1" 2>/dev/null || true; } | { grep -o '/[^ ]*' || true; } | while read -r lib; do
        [[ -e $root$lib ]] || place "$lib" "$lib"
    done
}

# Splits HOST_PATH:GUEST_PATH into $src and $dest.
split_mapping() {
    src=${1%:*}
    dest=${1##*:}
    [[ -n $src && $dest == /* && $src != "$1" ]] || {
        echo "wanted HOST_PATH:/GUEST/PATH, not $1" >&2
        exit 2
    }
    [[ -f $src ]] || {
        echo "$src: no such file" >&2
        exit 1
    }
}

for add in "${adds[@]}"; do
    split_mapping "$add"
    place "$src" "$dest"
    if [[ -x $src ]]; then
        place_libraries "$src"
    fi
done

# The raw archive links to the big files and cpio -L stores their contents: no copy.
for raw in "${raws[@]}"; do
    split_mapping "$raw"
    mkdir -p "$(dirname "$raw_root$dest")"
    ln -s "$(realpath "$src")" "$raw_root$dest"
done

place "$script" /guest-script
chmod +x "$root/guest-script"

cat >"$root/init" <<'EOF'
#!/bin/sh
export PATH=/usr/local/bin:/bin
export HOME=/tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t bpf bpf /sys/fs/bpf
ip link set lo up
read -r uptime _ </proc/uptime
echo "$uptime" >/results/boot-seconds
echo "rstap-vm: guest up after ${uptime}s: $(uname -r)"

RESULTS=/results /guest-script
echo $? >/results/status

# The host reads the results from the second serial port: raw, so no byte is translated.
stty -F /dev/ttyS1 raw -echo
tar -C /results -cz . >/dev/ttyS1
echo "rstap-vm: results sent, powering off"
poweroff -f
EOF
chmod +x "$root/init"

archive() {
    (cd "$1" && find . | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 "${@:2}")
}
{
    ((${#raws[@]} == 0)) || archive "$raw_root" --dereference
    archive "$root" | gzip -1
} >"$out"
