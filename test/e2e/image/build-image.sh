#!/usr/bin/env bash
# Builds the base disk image the e2e suite boots: Debian 12 (bookworm) or Debian 13 (trixie) with systemd as
# PID 1, like a cloud image (a non-root `admin` with passwordless sudo, openssh-server, DHCP networking), for
# qemu's direct kernel boot.
#
#   build-image.sh OUTDIR [SUITE]      SUITE: bookworm (default) or trixie
#
# Writes into OUTDIR (which must not exist yet or be empty):
#   rootfs.img     raw ext4 filesystem (sparse, 4 GiB) that the VM mounts as /dev/vda; used as a read-only
#                  qcow2 backing file, every run writes to its own overlay
#   vmlinuz        the image's kernel, booted with -kernel
#   initrd.img     its initramfs, booted with -initrd
#   manifest.txt   kernel version and installed packages, for the test log
#
# The image holds nothing secret and nothing per-run: no SSH host key, no authorized key, no usable password.
# Those arrive at boot on a small ext4 "seed" disk labelled E2ESEED (built by test/e2e/vm.ts: files
# ssh_host_ed25519_key{,.pub}, authorized_keys, admin-password-hash or admin-password), which the baked unit
# e2e-seed.service copies into place before sshd starts.
#
# The image has no apt sources: the tests' own signed repository is the only one a guest can reach.
#
# Needs root (mmdebstrap in root mode, chroot). Uses the machine's Debian mirror from
# /etc/apt/sources.list.d/debian.sources (override: E2E_DEBIAN_SOURCES=FILE, or E2E_DEBIAN_MIRROR=URL); a
# deb822 sources file names the machine's own release, so its `Suites:` are rewritten to SUITE (`bookworm`,
# `bookworm-updates`, `bookworm-security` become `trixie`, `trixie-updates`, `trixie-security`): same mirrors, the
# other release. The e2e harness caches OUTDIR under .cache/e2e/, one entry per SUITE, keyed by the sha256 of this
# script and the suite: edit it and the next run rebuilds.
set -euo pipefail

readonly SUITE=${2:-bookworm}
readonly IMAGE_SIZE=4G
readonly SEED_LABEL=E2ESEED

# What a Debian cloud image has that the product or the tests use. Recommends are not installed.
readonly PACKAGES=(
  systemd systemd-sysv udev dbus libpam-systemd
  linux-image-amd64 initramfs-tools kmod
  openssh-server sudo curl ca-certificates gnupg
  iproute2 iputils-ping procps util-linux e2fsprogs coreutils tar gzip xz-utils
  less logrotate libcap2-bin netbase
)

log() { printf '[build-image] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $# -eq 1 || $# -eq 2 ]] || die "usage: $0 OUTDIR [bookworm|trixie]"
case $SUITE in
bookworm | trixie) ;;
*) die "unsupported suite '$SUITE' (bookworm or trixie)" ;;
esac
[[ $(id -u) -eq 0 ]] || die "must run as root (mmdebstrap --mode=root, chroot)"
for tool in mmdebstrap mkfs.ext4 chroot; do
  command -v "$tool" >/dev/null || die "$tool not found"
done

OUT=$1
mkdir -p "$OUT"
[[ -z $(ls -A "$OUT") ]] || die "$OUT is not empty"
OUT=$(cd "$OUT" && pwd)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/e2e-image.XXXXXX")
chmod 0755 "$WORK" # apt's download sandbox user (_apt) must be able to reach the chroot
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
ROOTFS=$WORK/rootfs

# Only the machine's Debian entries: other files in sources.list.d (vendor repos) must not reach the image.
mirror_args=()
if [[ -n ${E2E_DEBIAN_MIRROR:-} ]]; then
  mirror_args=("$E2E_DEBIAN_MIRROR")
elif [[ -f ${E2E_DEBIAN_SOURCES:-/etc/apt/sources.list.d/debian.sources} ]]; then
  # Each suite on a `Suites:` line becomes SUITE with the same suffix (-updates, -security, -backports).
  sed -E "/^Suites:/{s/^Suites://; s/[[:space:]][a-z]+(-[a-z]+)?/ ${SUITE}\1/g; s/^/Suites:/}" \
    "${E2E_DEBIAN_SOURCES:-/etc/apt/sources.list.d/debian.sources}" >"$WORK/debian.sources"
  grep -q "^Suites:.*[[:space:]]${SUITE}\([[:space:]]\|$\)" "$WORK/debian.sources" ||
    die "no '$SUITE' suite in the rewritten sources: $(grep '^Suites:' "$WORK/debian.sources" | tr '\n' ' ')"
  mirror_args=("$WORK/debian.sources")
else
  mirror_args=("http://deb.debian.org/debian")
fi
log "mirror: ${mirror_args[*]}"

# Leave out kernel drivers for hardware qemu does not emulate here (GPUs, wireless, physical NICs, sound...):
# fewer files, faster build. (Excluding man pages this way trips dpkg on nested locale directories, so docs are
# deleted after the install instead.)
dpkg_excludes=()
for sub in drivers/gpu drivers/media drivers/net/wireless drivers/net/ethernet drivers/infiniband \
  drivers/staging drivers/bluetooth drivers/iio drivers/isdn drivers/hwmon drivers/input/touchscreen \
  drivers/usb/gadget sound net/wireless net/mac80211 net/bluetooth; do
  dpkg_excludes+=("/lib/modules/*/kernel/$sub/*" "/usr/lib/modules/*/kernel/$sub/*")
done
dpkg_opts=()
for pattern in "${dpkg_excludes[@]}"; do
  dpkg_opts+=("--dpkgopt=path-exclude=$pattern")
done

# Before the kernel is installed: a small initramfs with just what qemu's virtio disk needs (MODULES=most would
# take longer to build and to unpack under emulation). modules.d is read whatever MODULES says and, unlike
# /etc/initramfs-tools/modules, is no conffile dpkg would ask about.
# shellcheck disable=SC2016 # $1 is the chroot, expanded by the shell mmdebstrap runs the hook in
essential_hook='mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/usr/share/initramfs-tools/modules.d"
printf "MODULES=list\nCOMPRESS=gzip\n" > "$1/etc/initramfs-tools/conf.d/e2e.conf"
printf "virtio_pci\nvirtio_blk\next4\n" > "$1/usr/share/initramfs-tools/modules.d/e2e"'

log "mmdebstrap ${SUITE} (${#PACKAGES[@]} packages on top of minbase)"
started=$SECONDS
include=$(IFS=,; printf '%s' "${PACKAGES[*]}")
mmdebstrap --mode=root --variant=minbase --format=directory \
  --include="$include" \
  --aptopt='Acquire::Retries "3"' \
  --aptopt='APT::Install-Recommends "false"' \
  "${dpkg_opts[@]}" \
  --essential-hook="$essential_hook" \
  "$SUITE" "$ROOTFS" "${mirror_args[@]}"
log "mmdebstrap took $((SECONDS - started)) s"

log "configuring"
rm -rf "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* "$ROOTFS"/usr/share/lintian/*
find "$ROOTFS/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
# Host identity and name resolution. No DNS: the guest talks to nothing but the test host's forwarded port.
echo falco-e2e > "$ROOTFS/etc/hostname"
cat > "$ROOTFS/etc/hosts" <<'EOF'
127.0.0.1	localhost
127.0.1.1	falco-e2e
::1		localhost ip6-localhost ip6-loopback
EOF
echo '# e2e guest: no DNS (only the test host at 10.0.2.100 is reachable)' > "$ROOTFS/etc/resolv.conf"
printf 'LABEL=root\t/\text4\tdefaults\t0\t0\n' > "$ROOTFS/etc/fstab"
# A fixed machine-id: no first-boot semantics (systemd-firstboot prompts, preset-all) on every run.
head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$ROOTFS/etc/machine-id"
echo >> "$ROOTFS/etc/machine-id"

# DHCP on the first NIC (qemu user networking hands out 10.0.2.15), without waiting for it at boot.
mkdir -p "$ROOTFS/etc/systemd/network"
cat > "$ROOTFS/etc/systemd/network/80-e2e-dhcp.network" <<'EOF'
[Match]
Name=en* eth*

[Network]
DHCP=ipv4
LinkLocalAddressing=no
IPv6AcceptRA=no
EOF
chroot "$ROOTFS" systemctl enable systemd-networkd.service
# Slow or pointless in a short-lived VM without network: waiting for "online", periodic apt/man-db/fs jobs.
chroot "$ROOTFS" systemctl mask systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer \
  apt-daily.service apt-daily-upgrade.service man-db.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer

# The cloud image's user: passwordless sudo, SSH key login. Its password is set per run from the seed disk
# (so tests can show that password logins are refused once the host is hardened); '*' until then.
chroot "$ROOTFS" useradd --create-home --shell /bin/bash --groups sudo,adm,systemd-journal admin
chroot "$ROOTFS" usermod --password '*' admin
echo 'admin ALL=(ALL) NOPASSWD:ALL' > "$ROOTFS/etc/sudoers.d/90-e2e-admin"
chmod 0440 "$ROOTFS/etc/sudoers.d/90-e2e-admin"

# sshd: no baked host keys; the per-run ed25519 key comes from the seed, so the client can pin it.
rm -f "$ROOTFS"/etc/ssh/ssh_host_*
cat > "$ROOTFS/etc/ssh/sshd_config.d/10-e2e-harness.conf" <<'EOF'
# falco-nodes e2e harness: the only host key is the per-run one from the seed disk.
HostKey /etc/ssh/ssh_host_ed25519_key
EOF

cat > "$ROOTFS/usr/local/sbin/e2e-seed" <<EOF
#!/bin/sh
# falco-nodes e2e harness: install this run's SSH host key, admin's authorized key and password from the
# seed disk (label ${SEED_LABEL}). Nothing here is baked into the image.
set -eu
mnt=/run/e2e-seed
mkdir -p "\$mnt"
mount -o ro,nosuid,nodev,noexec LABEL=${SEED_LABEL} "\$mnt"
trap 'umount "\$mnt"' EXIT
install -m 0600 -o root -g root "\$mnt/ssh_host_ed25519_key" /etc/ssh/ssh_host_ed25519_key
install -m 0644 -o root -g root "\$mnt/ssh_host_ed25519_key.pub" /etc/ssh/ssh_host_ed25519_key.pub
install -d -m 0700 -o admin -g admin /home/admin/.ssh
install -m 0600 -o admin -g admin "\$mnt/authorized_keys" /home/admin/.ssh/authorized_keys
# A crypt(3) hash made on the test host: hashing here (yescrypt) takes seconds under emulation.
if [ -s "\$mnt/admin-password-hash" ]; then
  printf 'admin:%s\n' "\$(cat "\$mnt/admin-password-hash")" | chpasswd -e
elif [ -s "\$mnt/admin-password" ]; then
  printf 'admin:%s\n' "\$(cat "\$mnt/admin-password")" | chpasswd
fi
echo "e2e-seed: installed host key \$(cut -d' ' -f2 /etc/ssh/ssh_host_ed25519_key.pub | cut -c1-16)..."
EOF
chmod 0755 "$ROOTFS/usr/local/sbin/e2e-seed"
cat > "$ROOTFS/etc/systemd/system/e2e-seed.service" <<EOF
[Unit]
Description=falco-nodes e2e harness: per-run SSH keys and password from the seed disk
Requires=dev-disk-by\\x2dlabel-${SEED_LABEL}.device
After=dev-disk-by\\x2dlabel-${SEED_LABEL}.device local-fs.target
Before=ssh.service systemd-user-sessions.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/e2e-seed

[Install]
WantedBy=multi-user.target
EOF
chroot "$ROOTFS" systemctl enable e2e-seed.service

# Only the tests' own repository may be reachable: drop the build mirror's entries (and their cached lists).
rm -f "$ROOTFS/etc/apt/sources.list" "$ROOTFS"/etc/apt/sources.list.d/*
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin

kernel=$(find "$ROOTFS/boot" -maxdepth 1 -name 'vmlinuz-*' -printf '%f\n' | sort -V | tail -n 1)
[[ -n $kernel ]] || die "no kernel in $ROOTFS/boot"
kver=${kernel#vmlinuz-}
[[ -f $ROOTFS/boot/initrd.img-$kver ]] || die "no initrd for $kver"
cp "$ROOTFS/boot/vmlinuz-$kver" "$OUT/vmlinuz"
cp "$ROOTFS/boot/initrd.img-$kver" "$OUT/initrd.img"
{
  echo "suite: $SUITE"
  echo "kernel: $kver"
  echo "packages:"
  # shellcheck disable=SC2016 # dpkg-query's own ${field} syntax
  chroot "$ROOTFS" dpkg-query -W -f '  ${Package} ${Version}\n'
} > "$OUT/manifest.txt"

log "mkfs.ext4 -d ($(du -sh "$ROOTFS" | cut -f1) of files)"
mkfs.ext4 -q -F -L root -d "$ROOTFS" "$OUT/rootfs.img" "$IMAGE_SIZE"
log "done in $((SECONDS - started)) s: $OUT"
