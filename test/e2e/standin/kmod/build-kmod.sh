#!/usr/bin/env bash
# Builds the TEST STAND-IN kernel module `falco` (falco-standin-kmod.c; NOT Falco's driver) for one kernel:
#
#   build-kmod.sh KERNEL_RELEASE DRIVER_VERSION OUTDIR
#
# with Debian's linux-headers-KERNEL_RELEASE (installed on this machine: /usr/src/linux-headers-KERNEL_RELEASE).
# Writes OUTDIR/falco.ko and checks its vermagic names KERNEL_RELEASE.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() { printf 'build-kmod: error: %s\n' "$*" >&2; exit 1; }
[[ $# -eq 3 ]] || die "usage: $0 KERNEL_RELEASE DRIVER_VERSION OUTDIR"
kr=$1 version=$2 out=$3
headers=/usr/src/linux-headers-$kr
[[ -f $headers/Makefile ]] || die "no kernel headers for $kr in $headers: apt-get install linux-headers-$kr"
for tool in make gcc modinfo; do command -v "$tool" >/dev/null || die "$tool not found"; done
mkdir -p "$out"
build=$(mktemp -d "${TMPDIR:-/tmp}/falco-standin-kmod.XXXXXX")
trap 'rm -rf "$build"' EXIT
cp "$HERE/falco-standin-kmod.c" "$build/falco.c"
printf 'obj-m := falco.o\nccflags-y := -DSTANDIN_DRIVER_VERSION=\\"%s\\"\n' "$version" >"$build/Kbuild"
make -s -C "$headers" M="$build" modules >&2
[[ $(modinfo -F vermagic "$build/falco.ko") == "$kr "* ]] || die "built module's vermagic is not for $kr"
[[ $(modinfo -F version "$build/falco.ko") == "$version" ]] || die "built module's version is not $version"
install -m 0644 "$build/falco.ko" "$out/falco.ko"
