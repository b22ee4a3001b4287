#!/usr/bin/env bash
# Builds the TEST STAND-IN `falco` package (NOT Falco) for the falco-nodes e2e suite:
#
#   build-deb.sh VERSION OUTDIR [UNITS_DIR]
#
# writes OUTDIR/falco_VERSION_amd64.deb holding
#   /usr/bin/falco                       falco-standin.c, compiled static with this machine's gcc
#   /lib/systemd/system/*.service        the real packages' units, copied from UNITS_DIR (default: the upstream
#                                        reference data, shared/reference/falco/systemd beside the repository)
#   /etc/falco/...                       stand-in falco.yaml, rules and config.d (etc/ here)
# with maintainer scripts that approximate the real package's (debian/ here). The package version is baked into
# the binary (`falco --version`) and into the shipped config files, so two versions differ like real upgrades do.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() { printf 'build-deb: error: %s\n' "$*" >&2; exit 1; }

[[ $# -ge 2 && $# -le 3 ]] || die "usage: $0 VERSION OUTDIR [UNITS_DIR]"
VERSION=$1
OUT=$2
UNITS=${3:-${E2E_REFERENCE_UNITS:-$HERE/../../../../shared/reference/falco/systemd}}
[[ $VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "version must be X.Y.Z, got '$VERSION'"
[[ -d $UNITS ]] || die "unit files not found in $UNITS (set E2E_REFERENCE_UNITS)"
for tool in gcc dpkg-deb; do
  command -v "$tool" >/dev/null || die "$tool not found"
done
mkdir -p "$OUT"

PKG=$(mktemp -d "${TMPDIR:-/tmp}/falco-standin-deb.XXXXXX")
trap 'rm -rf "$PKG"' EXIT
chmod 0755 "$PKG"

install -d -m 0755 "$PKG/DEBIAN" "$PKG/usr/bin" "$PKG/lib/systemd/system" "$PKG/etc/falco/config.d"

gcc -static -O2 -Wall -Wextra -Werror -DSTANDIN_VERSION="\"$VERSION\"" \
  -o "$PKG/usr/bin/falco" "$HERE/falco-standin.c"
chmod 0755 "$PKG/usr/bin/falco"
"$PKG/usr/bin/falco" -c /dev/null --version | grep -qx "Falco version: $VERSION" || die "built binary reports the wrong version"

versioned() { sed "s/@@STANDIN_VERSION@@/$VERSION/g" "$1" > "$2"; chmod "$3" "$2"; }
versioned "$HERE/etc/falco.yaml" "$PKG/etc/falco/falco.yaml" 0644
versioned "$HERE/etc/falco_rules.yaml" "$PKG/etc/falco/falco_rules.yaml" 0644
versioned "$HERE/etc/falco_rules.local.yaml" "$PKG/etc/falco/falco_rules.local.yaml" 0644
versioned "$HERE/etc/config.d/falco.container_plugin.yaml" "$PKG/etc/falco/config.d/falco.container_plugin.yaml" 0644

units=0
for unit in "$UNITS"/*.service; do
  install -m 0644 "$unit" "$PKG/lib/systemd/system/"
  units=$((units + 1))
done
[[ $units -gt 0 ]] || die "no *.service in $UNITS"

versioned "$HERE/debian/control" "$PKG/DEBIAN/control" 0644
install -m 0644 "$HERE/debian/conffiles" "$PKG/DEBIAN/conffiles"
for script in postinst prerm postrm; do
  install -m 0755 "$HERE/debian/$script" "$PKG/DEBIAN/$script"
done

dpkg-deb --root-owner-group -Zgzip --build "$PKG" "$OUT/falco_${VERSION}_amd64.deb" >/dev/null
printf '%s\n' "$OUT/falco_${VERSION}_amd64.deb"
