#!/usr/bin/env bash
# shellcheck shell=bash
#
# falco-nodes host script: `converge` makes this host run the pinned Falco under our hardened unit with exactly
# the bundle's files; `uninstall` takes all of it away again.
#
# How it arrives: components/host/installScript.ts appends to this file the function `falco_nodes_payload` (the
# bundle: a gzip'd tar, base64 inside a quoted heredoc, so nothing generated is ever parsed as shell) and, as the
# very last line, the call to `main`. A truncated upload therefore runs nothing. It runs as root, either as
# `sudo -n bash -s -- converge < install.sh` (one SSH session, the bundle on stdin: no secret is ever in argv or a
# command string) or as `bash install.sh [converge|uninstall]`.
#
# The bundle: params/<name> (one value each, already held to allowlists by settings.ts and checked again here),
# manifest.tsv (group, mode, path, payload file), files/<n> (the contents), bundle-hash. Values are read with
# `$(<file)` and `read`; nothing is ever eval'd or sourced.
#
# Output: progress and errors on stderr; the last stdout line is one JSON object (print_report).
#
# Guarantees: a failed preflight or a configuration Falco (or sshd) rejects changes nothing; a converge that
# changes nothing restarts nothing; a Falco that does not come up healthy gets the last good files back.

set -euo pipefail
umask 077
export LC_ALL=C
# Fixed, root-owned PATH: the caller's environment has no say in which binaries a root script runs.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# Must equal STATE_DIR and SECRET_PLACEHOLDER_PREFIX in components/host/paths.ts (checked by the tests); they are
# needed before the bundle is unpacked, so they cannot come from it.
readonly STATE_DIR=/var/lib/falco-nodes
readonly SECRET_PLACEHOLDER=@@falco-nodes-secret:
readonly LOCK_FILE=/run/falco-nodes.lock
readonly PAYLOAD_FORMAT=1
readonly STAGE_SUFFIX=.falco-nodes-new
readonly FILE_GROUPS=" falco unit unit-modern_ebpf unit-kmod unit-dropin-perf sysctl sshd logrotate firewall firewall-unit "

# Where converge puts Falco's package sources (ours alone: uninstall removes exactly these).
readonly APT_KEYRING=/usr/share/keyrings/falco-nodes-falco.gpg
readonly APT_SOURCE=/etc/apt/sources.list.d/falco-nodes-falco.list
readonly RPM_KEY=/etc/pki/rpm-gpg/RPM-GPG-KEY-falco-nodes
readonly RPM_REPO=/etc/yum.repos.d/falco-nodes-falco.repo

# Free space below which nothing is attempted: unpacking and state need little, a Falco package a lot more.
readonly MIN_FREE_ETC_MIB=10
readonly MIN_FREE_VAR_MIB=20
readonly MIN_FREE_VAR_INSTALL_MIB=200
readonly MIN_FREE_USR_INSTALL_MIB=200
# Falco needed 9-11 s to start under emulation; a real host is faster.
readonly HEALTH_TIMEOUT_SECONDS=90
# A fresh cloud instance may still be running cloud-init (users, packages, sshd keys) when SSH first answers.
readonly CLOUD_INIT_TIMEOUT_SECONDS=900

WORK=""
STAGED=()

# --- output -------------------------------------------------------------------------------------------------

log() { printf 'falco-nodes: %s\n' "$*" >&2; }
warn() { printf 'falco-nodes: warning: %s\n' "$*" >&2; }
die() {
    printf 'falco-nodes: error: %s\n' "$*" >&2
    exit 1
}

cleanup() {
    local staged
    for staged in "${STAGED[@]}"; do rm -f -- "$staged"; done
    if [[ -n $WORK ]]; then rm -rf -- "$WORK"; fi
    # A run that failed before writing any state leaves no empty state directory behind. (With a manifest the
    # directory is not empty: no rmdir process to find that out.)
    if [[ ! -e $STATE_DIR/manifest ]]; then rmdir -- "$STATE_DIR" 2>/dev/null || true; fi
}

# --- preflight (nothing on the host changes before these pass) ----------------------------------------------

require_root() {
    [[ ${EUID} -eq 0 ]] || die "must run as root: run as root or via sudo -n (sudo -n bash -s -- converge < install.sh)"
}

require_systemd() {
    [[ -d /run/systemd/system ]] || die "systemd is not PID 1 on this host (no /run/systemd/system): falco-nodes runs Falco as a systemd service; nothing was changed"
}

require_tools() {
    local tool missing=()
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    ((${#missing[@]} == 0)) || die "required tools missing: ${missing[*]}; install them and run again (nothing was changed)"
}

free_mib() {
    local kib
    kib=$(df -Pk -- "$1" | {
        read -r _
        read -r _ _ _ avail _
        printf '%s' "${avail:-0}"
    })
    printf '%s' "$((kib / 1024))"
}

require_space() {
    local dir=$1 need=$2 have
    have=$(free_mib "$dir")
    ((have >= need)) || die "no space: $dir has ${have} MiB free, falco-nodes needs at least ${need} MiB there; free some space and run again (nothing was changed)"
}

# Every filesystem a bundle file lands on needs room, not only /etc's: /etc/falco may be a volume of its own.
# One df for all of them, before anything changes, so a full disk fails here with a clear message.
require_space_for_files() {
    local i dir avail dirs=() have=()
    local -A seen=()
    for i in "${!B_PATH[@]}"; do
        dir=${B_PATH[i]%/*}
        while [[ -n $dir && ! -d $dir ]]; do dir=${dir%/*}; done
        dir=${dir:-/}
        [[ -z ${seen[$dir]:-} ]] || continue
        seen[$dir]=1
        dirs+=("$dir")
    done
    ((${#dirs[@]} > 0)) || return 0
    mapfile -t have < <(df -k --output=avail -- "${dirs[@]}")
    have=("${have[@]:1}") # the header line
    for i in "${!dirs[@]}"; do
        avail=${have[i]//[[:space:]]/}
        [[ $avail =~ ^[0-9]+$ ]] || die "could not tell the free space of ${dirs[i]} (df)"
        ((avail / 1024 >= MIN_FREE_ETC_MIB)) ||
            die "no space: ${dirs[i]} has $((avail / 1024)) MiB free, falco-nodes needs at least $MIN_FREE_ETC_MIB MiB there; free some space and run again (nothing was changed)"
    done
}

take_lock() {
    exec 9>"$LOCK_FILE"
    flock -w 600 9 || die "another falco-nodes converge or uninstall still holds $LOCK_FILE after 10 minutes"
}

# A fresh cloud instance answers SSH before cloud-init has finished (apt sources, users, the sshd host key our
# connection pinned): wait for it, so package installs and the sshd drop-in do not race it. Hosts without
# cloud-init (bare metal) go straight on.
wait_for_cloud_init() {
    local rc=0 bin result=""
    # command -v also names a file that is not executable (bash reports it so running it fails clearly).
    bin=$(command -v cloud-init 2>/dev/null) && [[ -x $bin ]] || return 0
    # Finished on this boot without errors: cloud-init's own result file says so (/run is per boot; `cloud-init
    # status` reads the same file). Reading it spares every later converge a Python start; anything else, including
    # a format we do not recognise, asks cloud-init itself.
    if [[ -f /run/cloud-init/result.json ]]; then
        IFS= read -r -d '' result </run/cloud-init/result.json || true
        if [[ $result =~ \"errors\"[[:space:]]*:[[:space:]]*\[[[:space:]]*\] ]]; then return 0; fi
    fi
    log "waiting for cloud-init to finish (at most ${CLOUD_INIT_TIMEOUT_SECONDS}s)"
    timeout "$CLOUD_INIT_TIMEOUT_SECONDS" cloud-init status --wait >/dev/null 2>&1 || rc=$?
    case $rc in
    0 | 2) ;; # 2: done, with recoverable errors (cloud-init >= 23.4)
    124) die "cloud-init did not finish within ${CLOUD_INIT_TIMEOUT_SECONDS}s (cloud-init status --long says why); nothing was changed" ;;
    *) warn "cloud-init finished with an error (cloud-init status --long says which); converging anyway" ;;
    esac
}

# --- the bundle ---------------------------------------------------------------------------------------------

unpack_bundle() {
    local stale
    install -d -m 0700 -o root -g root -- "$STATE_DIR"
    # Work directories of an interrupted run (we hold the lock, so none is in use).
    for stale in "$STATE_DIR"/work.*; do
        if [[ -d $stale ]]; then rm -rf -- "$stale"; fi
    done
    # One mkdir for both (not mktemp + mkdir): $STATE_DIR is root's alone (0700) and we hold the lock, so the
    # name needs to be unique, not unguessable.
    local work="$STATE_DIR/work.$$.$RANDOM"
    mkdir -m 0700 -- "$work" "$work/bundle" || die "could not create a work directory in $STATE_DIR"
    WORK=$work
    if ! falco_nodes_payload | tar -xzf - -C "$WORK/bundle" --no-same-owner --no-same-permissions; then
        die "could not unpack the bundle (truncated or damaged script?); nothing was changed"
    fi
    local format=""
    if [[ -f $WORK/bundle/params/format ]]; then IFS= read -r format <"$WORK/bundle/params/format" || true; fi
    [[ $format == "$PAYLOAD_FORMAT" ]] ||
        die "this bundle's format is not $PAYLOAD_FORMAT: render it with the same falco-nodes version as this script"
}

# param VAR NAME PATTERN: VAR = the parameter's value, which must match PATTERN (a bash regex).
param() {
    local -n param_into=$1
    local file="$WORK/bundle/params/$2" value=""
    [[ -f $file ]] || die "the bundle lacks parameter $2: render it again"
    # read, not $(<file): no subshell. A converge reads a few dozen parameters, and every fork counts on a slow host.
    IFS= read -r -d '' value <"$file" || true
    value=${value%$'\n'}
    [[ $value =~ $3 ]] || die "the bundle's parameter $2 is malformed: render it again"
    # shellcheck disable=SC2034 # a nameref: this assigns the caller's variable
    param_into=$value
}

# param_lines NAME PATTERN ARRAY: a multi-line parameter, one checked value per line, into ARRAY.
param_lines() {
    local -n into=$3
    local line
    into=()
    [[ -f $WORK/bundle/params/$1 ]] || die "the bundle lacks parameter $1: render it again"
    while IFS= read -r line || [[ -n $line ]]; do
        [[ -n $line ]] || continue
        [[ $line =~ $2 ]] || die "the bundle's parameter $1 is malformed: render it again"
        into+=("$line")
    done <"$WORK/bundle/params/$1"
}

readonly RE_PATH='^/[A-Za-z0-9._@/-]+$'
readonly RE_UNIT='^[A-Za-z0-9@._-]+\.service$'
readonly RE_BOOL='^(true|false)$'

load_params() {
    param P_VERSION falco_version '^[0-9]+\.[0-9]+\.[0-9]+$'
    param P_DRIVER driver '^(modern_ebpf|kmod|auto)$'
    param P_PERF perf_event_paranoid '^(auto|lower-to-2|grant-sys-admin)$'
    param P_SOURCE install_source '^(apt|rpm|package-file|preinstalled)$'
    param P_REPO_URL repo_url '^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%/-]*)?$'
    param P_KEY_URL key_url '^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%/-]*)?$'
    param P_KEY_FPR key_fingerprint '^[0-9A-F]{40}$'
    param P_PACKAGE_FILE package_file '^(/[A-Za-z0-9._/-]+\.(deb|rpm))?$'
    param P_PACKAGE_SHA256 package_sha256 '^([0-9a-f]{64})?$'
    param P_BINARY binary_path "$RE_PATH"
    param P_PURGE purge_on_uninstall "$RE_BOOL"
    param P_WEBSERVER webserver_enabled "$RE_BOOL"
    param P_PORT webserver_port '^[0-9]{1,5}$'
    param P_UNIT_NAME unit_name "$RE_UNIT"
    param P_UNIT_PATH unit_path "$RE_PATH"
    param P_UNIT_DROPIN_DIR unit_dropin_dir "$RE_PATH"
    param P_FALCO_DIR falco_config_dir "$RE_PATH"
    param P_FALCO_MAIN falco_main_config "$RE_PATH"
    param P_BUNDLE_HASH bundle_hash '^[0-9a-f]{64}$'
    param_lines package_units "$RE_UNIT" PACKAGE_UNITS
    param P_ARTIFACTS_DIR artifacts_dir "$RE_PATH"
    param_lines k8saudit_artifact_files '^[a-z0-9][a-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$' ART_FILES
    param_lines k8saudit_artifact_refs '^[a-z0-9][a-z0-9.-]*(:[0-9]{1,5})?(/[a-z0-9][a-z0-9._-]*)+:[0-9]+\.[0-9]+\.[0-9]+$' ART_REFS
    ((${#ART_FILES[@]} == ${#ART_REFS[@]})) || die "the bundle's k8saudit artifact parameters are malformed: render it again"
    param P_TLS_CERT k8saudit_tls_certificate '^(/[A-Za-z0-9._/-]+)?$'
    param P_FW_TABLE firewall_table '^[a-z][a-z0-9_]*$'
    param P_FW_UNIT firewall_unit_name "$RE_UNIT"
    local path
    for path in "$P_BINARY" "$P_UNIT_PATH" "$P_UNIT_DROPIN_DIR" "$P_FALCO_DIR" "$P_FALCO_MAIN" "$P_PACKAGE_FILE" "$P_ARTIFACTS_DIR" "$P_TLS_CERT"; do
        [[ $path != *..* ]] || die "the bundle's paths are malformed: render it again"
    done
}

# The bundle's files: B_GROUP[i] B_MODE[i] B_PATH[i] B_SRC[i] (B_SRC relative to the unpacked bundle).
read_bundle_manifest() {
    local group mode path src
    B_GROUP=() B_MODE=() B_PATH=() B_SRC=()
    while IFS=$'\t' read -r group mode path src; do
        [[ $FILE_GROUPS == *" $group "* && $mode =~ ^0(600|640|644)$ && $path =~ $RE_PATH && $path != *..* &&
            $src =~ ^files/[0-9]+$ && -f $WORK/bundle/$src ]] || die "the bundle's manifest is malformed: render it again"
        B_GROUP+=("$group") B_MODE+=("$mode") B_PATH+=("$path") B_SRC+=("$src")
    done <"$WORK/bundle/manifest.tsv"
}

# A bundle rendered without its secrets (npm run render) holds placeholders: installing it would break outputs.
refuse_placeholders() {
    local names
    if grep -rqF -- "$SECRET_PLACEHOLDER" "$WORK/bundle/files"; then
        names=$(grep -rhoE -- "${SECRET_PLACEHOLDER}[A-Za-z0-9_]+" "$WORK/bundle/files" | sed "s/^${SECRET_PLACEHOLDER}//" | sort -u | tr '\n' ' ')
        die "this bundle was rendered without secrets (${names% }): converge it with Pulumi (pulumi up), which renders it with the stack's secrets; nothing was changed"
    fi
}

# --- the host -----------------------------------------------------------------------------------------------

# debian, rpm or unknown, from /etc/os-release (read as data, never sourced).
os_family() {
    local key value words=() more=() word
    [[ -r /etc/os-release ]] || {
        printf unknown
        return
    }
    while IFS='=' read -r key value; do
        value=${value#[\"\']}
        value=${value%[\"\']}
        if [[ $key == ID || $key == ID_LIKE ]]; then
            read -ra more <<<"$value"
            words+=("${more[@]}")
        fi
    done </etc/os-release
    for word in "${words[@]}"; do
        case $word in
        debian | ubuntu)
            printf debian
            return
            ;;
        rhel | fedora | centos | rocky | almalinux | alma | amzn | ol)
            printf rpm
            return
            ;;
        esac
    done
    printf unknown
}

# The package family install.source implies (empty for preinstalled).
source_family() {
    # shellcheck disable=SC2153 # P_SOURCE is assigned by param (a nameref), which shellcheck cannot follow
    case $P_SOURCE:$P_PACKAGE_FILE in
    apt:* | package-file:*.deb) printf debian ;;
    rpm:* | package-file:*.rpm) printf rpm ;;
    esac
}

# The distribution's ID from /etc/os-release (read as data), for messages.
os_id() {
    local key value
    if [[ -r /etc/os-release ]]; then
        while IFS='=' read -r key value; do
            [[ $key == ID ]] || continue
            value=${value#[\"\']}
            printf '%s' "${value%[\"\']}"
            return
        done </etc/os-release
    fi
    printf 'none'
}

check_source_fits_host() {
    local family needs
    family=$(os_family)
    needs=$(source_family)
    PKG_FAMILY=${needs:-$family}
    [[ -z $needs || $family == "$needs" ]] && return 0
    if [[ $family == unknown ]]; then
        die "unsupported distribution '$(os_id)' (ID in /etc/os-release): falco-nodes installs Falco on the Debian family (Debian, Ubuntu; install.source apt) and the RHEL family (RHEL, Fedora, Amazon Linux; install.source rpm), or runs a preinstalled Falco (install.source preinstalled); nothing was changed"
    fi
    die "install.source is $P_SOURCE${P_PACKAGE_FILE:+ ($P_PACKAGE_FILE)} but this host ('$(os_id)' in /etc/os-release) is of the $family family: set install.source to match (apt for Debian/Ubuntu, rpm for RHEL/Fedora/Amazon Linux); nothing was changed"
}

# Why modern_ebpf cannot run on this kernel; empty when it can.
modern_ebpf_problem() {
    local release major minor
    release=$(uname -r)
    IFS=. read -r major minor _ <<<"$release"
    minor=${minor%%[!0-9]*}
    if ! [[ $major =~ ^[0-9]+$ && $minor =~ ^[0-9]+$ ]]; then
        printf 'kernel %s has an unrecognised version' "$release"
    elif ((major < 5 || (major == 5 && minor < 8))); then
        printf 'kernel %s is older than 5.8' "$release"
    elif [[ ! -r /sys/kernel/btf/vmlinux ]]; then
        printf 'kernel %s lacks BTF (/sys/kernel/btf/vmlinux)' "$release"
    fi
}

choose_driver() {
    local problem
    problem=$(modern_ebpf_problem)
    case $P_DRIVER in
    modern_ebpf)
        [[ -z $problem ]] || die "$problem, which the modern_ebpf driver needs: set driver: kmod or auto; nothing was changed"
        DRIVER=modern_ebpf
        ;;
    kmod) DRIVER=kmod ;;
    auto)
        if [[ -z $problem ]]; then DRIVER=modern_ebpf; else DRIVER=kmod; fi
        log "driver auto: using $DRIVER${problem:+ ($problem)}"
        ;;
    esac
}

# INSTALLED_VERSION: the installed falco package's version (empty when none); INSTALLED_SELECTION: dpkg's selection
# (`hold` when held; empty on rpm hosts). One dpkg-query for both: a no-op converge needs both.
read_installed_package() {
    local status="" want="" version=""
    INSTALLED_VERSION="" INSTALLED_SELECTION=""
    case $PKG_FAMILY in
    debian)
        # shellcheck disable=SC2016 # dpkg-query's own ${field} syntax, not shell
        read -r status want version < <(dpkg-query -W -f='${db:Status-Status} ${db:Status-Want} ${Version}\n' falco 2>/dev/null || true) || true
        if [[ $status == installed ]]; then INSTALLED_VERSION=$version; fi
        INSTALLED_SELECTION=$want
        ;;
    rpm)
        if version=$(rpm -q --qf '%{VERSION}' falco 2>/dev/null); then INSTALLED_VERSION=$version; fi
        ;;
    esac
}

# Version of the installed falco package; empty when none.
package_version() {
    read_installed_package
    printf '%s' "$INSTALLED_VERSION"
}

# The version the binary reports; empty when it does not run. `-c /dev/null` keeps the host's current config out of
# it: with `json_output: true` there, Falco prints the version as JSON on stdout (and its log on stderr) instead of
# the `Falco version: X.Y.Z` text (falcosecurity/falco 0.44.1 userspace/falco/app/actions/print_version.cpp;
# captured in shared/reference/falco/outputs/version.*). Both forms are read, so an older or patched binary that
# ignores -c still answers.
binary_version() {
    local out line re_json='"falco_version":[[:space:]]*"([0-9]+\.[0-9]+\.[0-9]+)"'
    out=$("$1" -c /dev/null --version 2>/dev/null) || return 0
    while IFS= read -r line; do
        if [[ $line =~ ^Falco\ version:\ ([0-9]+\.[0-9]+\.[0-9]+) || $line =~ $re_json ]]; then
            printf '%s' "${BASH_REMATCH[1]}"
            return 0
        fi
    done <<<"$out"
}

# rpm names an imported key gpg-pubkey-<last 8 hex digits of the fingerprint, lower case>.
rpm_key_id() {
    local fpr=${P_KEY_FPR,,}
    printf '%s' "${fpr: -8}"
}

rpm_tool() {
    if command -v dnf >/dev/null 2>&1; then printf dnf; else printf yum; fi
}

plan_install() {
    NEED_INSTALL=false
    case $P_SOURCE in
    preinstalled)
        [[ -f $P_BINARY && -x $P_BINARY ]] || die "install.binaryPath $P_BINARY is not an executable file (install.source: preinstalled); nothing was changed"
        ;;
    *)
        read_installed_package
        [[ $INSTALLED_VERSION == "$P_VERSION" ]] || NEED_INSTALL=true
        ;;
    esac
    if [[ $NEED_INSTALL == true ]]; then
        require_space /var "$MIN_FREE_VAR_INSTALL_MIB"
        require_space /usr "$MIN_FREE_USR_INSTALL_MIB"
        case $P_SOURCE:$PKG_FAMILY in
        apt:*) require_tools curl gpg apt-get apt-mark dpkg-query ;;
        rpm:*) require_tools curl gpg rpm "$(rpm_tool)" ;;
        package-file:debian) require_tools apt-get apt-mark dpkg-query ;;
        package-file:rpm) require_tools rpm "$(rpm_tool)" ;;
        esac
        if [[ $P_SOURCE == package-file && ! -f $P_PACKAGE_FILE ]]; then
            die "install.packageFile $P_PACKAGE_FILE does not exist on this host: copy the package there first; nothing was changed"
        fi
    fi
}

# --- installing Falco ---------------------------------------------------------------------------------------

# Download the repository key and keep only the key whose fingerprint is pinned: $WORK/falco.gpg (binary) and
# $WORK/falco.asc (armored). A key file with any other primary key is refused.
fetch_pinned_key() {
    local kind field found=() want=false
    curl -fsSL --retry 3 --max-time 120 -o "$WORK/key.asc" -- "$P_KEY_URL" ||
        die "could not download the Falco signing key from $P_KEY_URL (install.keyUrl)"
    export GNUPGHOME="$WORK/gnupg"
    install -d -m 0700 -- "$GNUPGHOME"
    gpg --batch --quiet --import "$WORK/key.asc" 2>/dev/null ||
        die "$P_KEY_URL (install.keyUrl) is not an OpenPGP key"
    while IFS=: read -r kind _ _ _ _ _ _ _ _ field _; do
        if [[ $kind == fpr && $want == true ]]; then found+=("$field"); fi
        if [[ $kind == pub ]]; then want=true; else want=false; fi
    done < <(gpg --batch --with-colons --fingerprint 2>/dev/null)
    [[ " ${found[*]} " == *" $P_KEY_FPR "* ]] ||
        die "key fingerprint mismatch: expected $P_KEY_FPR got ${found[*]:-no key}; refusing (install.keyFingerprint, install.keyUrl)"
    ((${#found[@]} == 1)) || log "the key file holds ${#found[@]} keys; trusting only $P_KEY_FPR"
    gpg --batch --export -- "$P_KEY_FPR" >"$WORK/falco.gpg"
    gpg --batch --armor --export -- "$P_KEY_FPR" >"$WORK/falco.asc"
    [[ -s $WORK/falco.gpg ]] || die "could not export key $P_KEY_FPR"
}

apt_install() {
    # FALCO_DRIVER_CHOICE=none: the package's postinst neither picks a driver nor enables its own units.
    FALCO_FRONTEND=noninteractive FALCO_DRIVER_CHOICE=none FALCOCTL_ENABLED=no DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends --allow-downgrades --allow-change-held-packages \
        -o Dpkg::Options::=--force-confold -o Dpkg::Options::=--force-confdef "$@" </dev/null
}

rpm_install() {
    local tool current verb=install
    tool=$(rpm_tool)
    current=$(package_version)
    if [[ -n $current && $current != "$P_VERSION" &&
        $(printf '%s\n%s\n' "$current" "$P_VERSION" | sort -V | tail -n 1) == "$current" ]]; then
        verb=downgrade
    fi
    if "$tool" versionlock list >/dev/null 2>&1; then "$tool" -q versionlock delete falco >/dev/null 2>&1 || true; fi
    FALCO_FRONTEND=noninteractive FALCO_DRIVER_CHOICE=none FALCOCTL_ENABLED=no \
        "$tool" -y -q "$verb" "$@" </dev/null
    if "$tool" versionlock list >/dev/null 2>&1; then "$tool" -q versionlock add falco >/dev/null; fi
}

install_from_apt() {
    fetch_pinned_key
    install -m 0644 -o root -g root -- "$WORK/falco.gpg" "$APT_KEYRING"
    printf 'deb [signed-by=%s] %s stable main\n' "$APT_KEYRING" "$P_REPO_URL" >"$WORK/falco.list"
    install -m 0644 -o root -g root -- "$WORK/falco.list" "$APT_SOURCE"
    # Only Falco's repository: fast, and no other list on the host moves.
    apt-get update -q -o Dir::Etc::sourcelist="$APT_SOURCE" -o Dir::Etc::sourceparts=- \
        -o APT::Get::List-Cleanup=0 </dev/null || die "apt-get update of $P_REPO_URL (install.repoUrl) failed"
    if ! apt_install "falco=$P_VERSION"; then
        log "retrying with all package lists refreshed (Falco's dependencies may be missing)"
        apt-get update -q </dev/null || die "apt-get update failed"
        apt_install "falco=$P_VERSION" || die "apt-get could not install falco=$P_VERSION from $P_REPO_URL (falcoVersion, install.repoUrl)"
    fi
    apt-mark hold falco >/dev/null
}

install_from_rpm() {
    fetch_pinned_key
    install -d -m 0755 -- "${RPM_KEY%/*}"
    install -m 0644 -o root -g root -- "$WORK/falco.asc" "$RPM_KEY"
    if ! rpm -q "gpg-pubkey-$(rpm_key_id)" >/dev/null 2>&1; then
        rpm --import "$RPM_KEY"
        : >"$STATE_DIR/rpm-key-imported"
    fi
    printf '[falco-nodes-falco]\nname=Falco (managed by falco-nodes)\nbaseurl=%s\nenabled=1\ngpgcheck=1\nrepo_gpgcheck=0\ngpgkey=file://%s\n' \
        "$P_REPO_URL" "$RPM_KEY" >"$WORK/falco.repo"
    install -m 0644 -o root -g root -- "$WORK/falco.repo" "$RPM_REPO"
    rpm_install "falco-$P_VERSION" || die "could not install falco-$P_VERSION from $P_REPO_URL (falcoVersion, install.repoUrl)"
}

install_from_package_file() {
    local copy sum
    # Check and install a private copy, so the file cannot be swapped between the check and the install.
    copy="$WORK/falco-package.${P_PACKAGE_FILE##*.}"
    cp -- "$P_PACKAGE_FILE" "$copy"
    sum=$(sha256sum -- "$copy")
    sum=${sum%% *}
    [[ $sum == "$P_PACKAGE_SHA256" ]] ||
        die "install.packageFile $P_PACKAGE_FILE has sha256 $sum, not $P_PACKAGE_SHA256 (install.packageSha256); refusing"
    if [[ $copy == *.deb ]]; then
        apt_install "$copy" || die "apt-get could not install $P_PACKAGE_FILE"
        apt-mark hold falco >/dev/null
    else
        rpm_install "$copy" || die "could not install $P_PACKAGE_FILE"
    fi
}

ensure_falco() {
    local have
    if [[ $NEED_INSTALL == true ]]; then
        log "installing Falco $P_VERSION (installed: $(package_version | grep . || printf none)) from $P_SOURCE"
        # Package managers and maintainer scripts expect the usual umask: with ours (077) apt's lists and any
        # file a postinst creates would be root-only.
        umask 022
        case $P_SOURCE in
        apt) install_from_apt ;;
        rpm) install_from_rpm ;;
        package-file) install_from_package_file ;;
        esac
        umask 077
        CHANGED=true
    fi
    # The hold keeps unattended upgrades from moving Falco off the pinned version; restore it if someone lifted it.
    # (dpkg's selection, read with the version in plan_install, not `apt-mark showhold`: same answer, a fraction
    # of the cost on every no-op converge. After an install it is read again.)
    if [[ $P_SOURCE != preinstalled && $PKG_FAMILY == debian ]]; then
        if [[ $NEED_INSTALL == true ]]; then read_installed_package; fi
        if [[ $INSTALLED_SELECTION != hold ]]; then
            apt-mark hold falco >/dev/null
            CHANGED=true
        fi
    fi
    have=$(binary_version "$P_BINARY")
    if [[ $have != "$P_VERSION" ]]; then
        [[ $NEED_INSTALL == true ]] || die "$P_BINARY reports Falco version '${have:-none}', not $P_VERSION (falcoVersion); nothing was changed"
        die "after installing, $P_BINARY reports Falco version '${have:-none}', not $P_VERSION (falcoVersion)"
    fi
}

# The kmod driver needs the falco module for the running kernel; the package's postinst would have built it had
# we let it choose a driver, so do what it does.
ensure_kmod_module() {
    [[ $DRIVER == kmod ]] || return 0
    if modinfo falco >/dev/null 2>&1; then return 0; fi
    command -v falcoctl >/dev/null 2>&1 || die "driver kmod: no falco kernel module for $(uname -r) and no falcoctl to build one"
    log "driver kmod: installing the falco kernel module for $(uname -r)"
    umask 022
    falcoctl driver config --type kmod </dev/null
    falcoctl driver install --compile=true --download=true </dev/null ||
        die "driver kmod: falcoctl could not download or build the module for $(uname -r) (kernel headers and dkms are needed to build it)"
    umask 077
    CHANGED=true
}

# The package's own units would run a second, unhardened Falco: mask them (only those present and not masked).
# One `systemctl show` for all of them and --no-reload on disable/mask: each systemd reload costs seconds on a
# busy or emulated host, so converge reloads once, later (NEED_DAEMON_RELOAD).
# The same `systemctl show` also reads our unit's ActiveState (UNIT_ACTIVE_STATE), so that a no-op converge
# asks systemd once, not twice.
mask_package_units() {
    local unit line k=0 i=0 lines=() load=() active=() to_mask=()
    # A block of Key=value lines per unit, in the order asked, blocks separated by a blank line.
    mapfile -t lines < <(systemctl show -p LoadState -p ActiveState -- "$P_UNIT_NAME" "${PACKAGE_UNITS[@]}" 2>/dev/null || true)
    for line in "${lines[@]}"; do
        case $line in
        "") k=$((k + 1)) ;;
        LoadState=*) load[k]=${line#LoadState=} ;;
        ActiveState=*) active[k]=${line#ActiveState=} ;;
        esac
    done
    UNIT_ACTIVE_STATE=${active[0]:-}
    for unit in "${PACKAGE_UNITS[@]}"; do
        i=$((i + 1))
        [[ ${load[i]:-} == loaded ]] || continue
        log "masking the package's $unit (Falco runs as $P_UNIT_NAME)"
        to_mask+=("$unit")
    done
    ((${#to_mask[@]} > 0)) || return 0
    systemctl --no-reload disable --now --quiet -- "${to_mask[@]}" 2>/dev/null || true
    systemctl --no-reload mask --quiet -- "${to_mask[@]}"
    for unit in "${to_mask[@]}"; do
        if ! grep -qxF -- "$unit" "$STATE_DIR/masked-units" 2>/dev/null; then
            printf '%s\n' "$unit" >>"$STATE_DIR/masked-units"
        fi
    done
    NEED_DAEMON_RELOAD=true
    CHANGED=true
}

# --- Kubernetes audit events (k8sAudit) ----------------------------------------------------------------------

# An executable `$1` on PATH (bash's `command -v` also names a non-executable file when that is all it finds).
have_executable() {
    local found
    found=$(command -v -- "$1" 2>/dev/null) && [[ -f $found && -x $found ]]
}

bundle_has_group() {
    local group
    for group in "${B_GROUP[@]}"; do
        if [[ $group == "$1" ]]; then return 0; fi
    done
    return 1
}

# What the host must provide for k8sAudit, checked before anything changes: nft for the firewall, and the TLS
# certificate, which falco-nodes never handles (its key stays out of Pulumi state), in place and root-only.
check_k8saudit_host() {
    local owner_mode
    if bundle_has_group firewall && ! have_executable nft; then
        die "k8sAudit: nft (nftables) is not installed, and the webhook's firewall (k8sAudit.allowedSources) needs it: install the nftables package, or set k8sAudit.firewall: false if another firewall enforces the same allowlist; nothing was changed"
    fi
    [[ -n $P_TLS_CERT ]] || return 0
    [[ -f $P_TLS_CERT && ! -L $P_TLS_CERT ]] ||
        die "k8sAudit.tls.certificatePath $P_TLS_CERT is not a file on this host: put the PEM (certificate chain and private key, concatenated) there, root-owned with mode 0600; nothing was changed"
    owner_mode=$(stat -c '%u %a' -- "$P_TLS_CERT")
    [[ ${owner_mode%% *} == 0 && $((8#${owner_mode#* } & 8#077)) == 0 ]] ||
        die "k8sAudit.tls.certificatePath $P_TLS_CERT holds a private key but is not root-owned with mode 0600 (owner uid and mode: $owner_mode): run chown root:root and chmod 0600 on it; nothing was changed"
}

# Is artifact directory $1 what converge installed from ref $2 (same reference, file $3 unchanged)?
artifact_intact() {
    local dir=$1 ref=$2 name=$3
    [[ -d $dir && ! -L $dir && -f $dir/.falco-nodes-ref && -f $dir/$name && ! -L $dir/$name ]] || return 1
    [[ $(<"$dir/.falco-nodes-ref") == "$ref" ]] || return 1
    (cd -- "$dir" && sha256sum --quiet --status -c .falco-nodes-sha256) 2>/dev/null
}

# The pinned plugins and rules, with falcoctl, each into its own versioned directory below artifacts_dir. Staged
# before validation, which is safe: nothing Falco uses changes until the new falco.yaml naming them is swapped in.
# An artifact that is present and intact is not downloaded again; one that changed on the host is replaced, and
# Falco restarted so it stops running the changed copy.
ensure_k8saudit_artifacts() {
    local i file name ref target tmp
    ARTIFACTS_REPAIRED=false
    ((${#ART_FILES[@]})) || return 0
    install -d -m 0700 -o root -g root -- "$P_ARTIFACTS_DIR"
    for i in "${!ART_FILES[@]}"; do
        file=${ART_FILES[i]} ref=${ART_REFS[i]}
        name=${file#*/} target="$P_ARTIFACTS_DIR/${file%%/*}"
        if artifact_intact "$target" "$ref" "$name"; then continue; fi
        if [[ -e $target || -L $target ]]; then
            warn "$target is not what converge installed from $ref (changed, or left incomplete): installing it again"
            ARTIFACTS_REPAIRED=true
        fi
        command -v falcoctl >/dev/null 2>&1 ||
            die "k8sAudit: falcoctl is not installed (the Falco packages ship it) and $ref is needed; nothing was changed"
        tmp=$(mktemp -d "$P_ARTIFACTS_DIR/.install.XXXXXXXXXX")
        # An empty config: no index, no follow, no other artifacts; just the pinned reference.
        : >"$WORK/falcoctl.yaml"
        log "installing $ref with falcoctl"
        if ! falcoctl artifact install --config "$WORK/falcoctl.yaml" --log-format text --resolve-deps=false \
            --allowed-types plugin,rulesfile --plugins-dir "$tmp" --rulesfiles-dir "$tmp" -- "$ref" </dev/null >&2; then
            rm -rf -- "$tmp"
            die "falcoctl could not install $ref (k8sAudit.pluginVersions, k8sAudit.registry; output above); Falco's configuration was not changed"
        fi
        if [[ ! -f $tmp/$name || -L $tmp/$name ]]; then
            rm -rf -- "$tmp"
            die "$ref holds no $name: check k8sAudit.pluginVersions; Falco's configuration was not changed"
        fi
        printf '%s\n' "$ref" >"$tmp/.falco-nodes-ref"
        (cd -- "$tmp" && sha256sum -- "$name" >.falco-nodes-sha256)
        chown -R root:root -- "$tmp"
        chmod -R go-w -- "$tmp"
        rm -rf -- "$target"
        mv -- "$tmp" "$target"
        CHANGED=true
    done
}

# After a converge that succeeded: artifact directories this bundle does not name (older versions) go.
prune_artifacts() {
    local entry keep i
    [[ -d $P_ARTIFACTS_DIR ]] || return 0
    for entry in "$P_ARTIFACTS_DIR"/* "$P_ARTIFACTS_DIR"/.install.*; do
        [[ -e $entry || -L $entry ]] || continue
        keep=false
        for i in "${!ART_FILES[@]}"; do
            if [[ ${entry##*/} == "${ART_FILES[i]%%/*}" ]]; then keep=true; fi
        done
        if [[ $keep == false ]]; then
            log "removing $entry (no longer in the bundle)"
            rm -rf -- "$entry"
        fi
    done
    rmdir -- "$P_ARTIFACTS_DIR" 2>/dev/null || true
}

# nft checks the new ruleset (syntax and kernel support) before anything is swapped in.
validate_firewall() {
    local i out
    for i in "${!F_PATH[@]}"; do
        [[ ${F_GROUP[i]} == firewall ]] || continue
        if ! out=$(nft -c -f "${F_SRC[i]}" 2>&1); then
            printf '%s\n' "$out" >&2
            die "nft rejected the k8saudit firewall ruleset (output above; check k8sAudit.allowedSources); nothing was changed"
        fi
    done
}

# Load the allowlist when it changed or is missing from the kernel (flushed by hand), before Falco (re)starts
# listening; enable its boot unit.
apply_firewall() {
    local i
    for i in "${!F_PATH[@]}"; do
        case ${F_GROUP[i]} in
        firewall)
            if group_changed firewall || ! nft list table inet "$P_FW_TABLE" >/dev/null 2>&1; then
                log "loading the k8saudit webhook firewall (${F_PATH[i]})"
                nft -f "${F_PATH[i]}" || die "nft could not load ${F_PATH[i]} (output above)"
                CHANGED=true
            fi
            ;;
        firewall-unit)
            if ! systemctl is-enabled --quiet -- "$P_FW_UNIT"; then
                log "enabling $P_FW_UNIT"
                systemctl enable --quiet -- "$P_FW_UNIT"
                CHANGED=true
            fi
            ;;
        esac
    done
}

# Was a file of this group in the previous manifest and is no longer wanted?
group_removed() {
    local i
    for i in "${!R_GROUP[@]}"; do
        if [[ ${R_GROUP[i]} == "$1" ]]; then return 0; fi
    done
    return 1
}

# k8sAudit (or its firewall) was turned off: drop our table, once Falco no longer listens.
remove_firewall_table() {
    have_executable nft || return 0
    if nft list table inet "$P_FW_TABLE" >/dev/null 2>&1; then
        log "removing the nftables table inet $P_FW_TABLE"
        nft delete table inet "$P_FW_TABLE"
        CHANGED=true
    fi
}

# --- which files, and what changed ---------------------------------------------------------------------------

# The perf_event_paranoid Falco will see, when perfEventParanoid is auto: the kernel's current value. (Our sysctl
# drop-in sets this key only for lower-to-2; the settings refuse it as an override, so with auto it never does.)
effective_perf_paranoid() {
    local value=""
    if [[ -r /proc/sys/kernel/perf_event_paranoid ]]; then read -r value </proc/sys/kernel/perf_event_paranoid || true; fi
    printf '%s' "${value:-2}"
}

# Whether Falco needs CAP_SYS_ADMIN (the unit drop-in): with modern_ebpf, when asked to, or when
# perf_event_paranoid stays > 2 (Debian/Ubuntu's 3/4), where CAP_PERFMON cannot attach the tracepoints.
perf_dropin_needed() {
    [[ $DRIVER == modern_ebpf ]] || return 1
    case $P_PERF in
    grant-sys-admin) return 0 ;;
    lower-to-2) return 1 ;;
    esac
    (($(effective_perf_paranoid) > 2))
}

# F_*: the files this host gets (unit variant resolved, optional drop-ins decided; F_SRC absolute).
select_files() {
    local i group dropin_needed=false sshd_present=true
    F_GROUP=() F_MODE=() F_PATH=() F_SRC=()
    if perf_dropin_needed; then dropin_needed=true; fi
    command -v sshd >/dev/null 2>&1 || sshd_present=false
    for i in "${!B_PATH[@]}"; do
        group=${B_GROUP[i]}
        case $group in
        unit-modern_ebpf | unit-kmod)
            [[ $group == "unit-$DRIVER" ]] || continue
            group=unit
            ;;
        unit-dropin-perf) [[ $dropin_needed == true ]] || continue ;;
        sshd)
            if [[ $sshd_present == false ]]; then
                warn "sshd is not installed: skipping the sshd hardening drop-in ${B_PATH[i]}"
                continue
            fi
            ;;
        esac
        F_GROUP+=("$group") F_MODE+=("${B_MODE[i]}") F_PATH+=("${B_PATH[i]}") F_SRC+=("$WORK/bundle/${B_SRC[i]}")
    done
}

# The previous converge's manifest (group, mode, path per line).
read_host_manifest() {
    local group path
    O_GROUP=() O_PATH=()
    [[ -f $STATE_DIR/manifest ]] || return 0
    while IFS=$'\t' read -r group _ path; do
        if ! [[ $FILE_GROUPS == *" $group "* && $path =~ $RE_PATH && $path != *..* ]]; then
            warn "ignoring a malformed line in $STATE_DIR/manifest"
            continue
        fi
        O_GROUP+=("$group") O_PATH+=("$path")
    done <"$STATE_DIR/manifest"
}

# C_*: indexes into F_* of changed files (content, mode, root:root, a plain file); R_*: files of the previous
# manifest that are no longer ours. One stat and one sha256sum for all files rather than two processes per file:
# a process start is what a no-op converge mostly costs on a busy or emulated host.
plan_changes() {
    local i path name meta hash
    local -A wanted=() host_meta=() sum=()
    local present=() hashed=()
    C_INDEX=() R_GROUP=() R_PATH=()
    CHANGED_GROUPS=" "
    for i in "${!F_PATH[@]}"; do
        path=${F_PATH[i]}
        if [[ -f $path && ! -L $path ]]; then present+=("$path") hashed+=("${F_SRC[i]}" "$path"); fi
    done
    if ((${#present[@]} > 0)); then
        # Paths are allowlisted (no spaces or newlines), so each output line splits cleanly.
        while read -r name meta; do host_meta[$name]=$meta; done < <(stat -c '%n %a %u %g' -- "${present[@]}" 2>/dev/null || true)
        while read -r hash name; do sum[$name]=$hash; done < <(sha256sum -- "${hashed[@]}" 2>/dev/null || true)
    fi
    for i in "${!F_PATH[@]}"; do
        path=${F_PATH[i]}
        wanted[$path]=1
        if [[ ${host_meta[$path]:-} == "${F_MODE[i]#0} 0 0" && -n ${sum[$path]:-} && ${sum[$path]} == "${sum[${F_SRC[i]}]:-}" ]]; then
            continue
        fi
        C_INDEX+=("$i")
        CHANGED_GROUPS+="${F_GROUP[i]} "
    done
    for i in "${!O_PATH[@]}"; do
        path=${O_PATH[i]}
        [[ -z ${wanted[$path]:-} ]] || continue
        wanted[$path]=1
        R_GROUP+=("${O_GROUP[i]}") R_PATH+=("$path")
        if [[ -e $path || -L $path ]]; then CHANGED_GROUPS+="${O_GROUP[i]} "; fi
    done
}

group_changed() { [[ $CHANGED_GROUPS == *" $1 "* ]]; }

# --- validation before anything is swapped in ----------------------------------------------------------------

# Build the complete /etc/falco as it will be and have Falco load it, in a private mount namespace where that
# tree is bind-mounted over /etc/falco: the running Falco and the host never see it.
validate_falco_config() {
    local candidate="$WORK/candidate-falco" i rel out
    mkdir -p -- "$candidate"
    if [[ -d $P_FALCO_DIR ]]; then cp -a -- "$P_FALCO_DIR/." "$candidate/"; fi
    for i in "${!R_PATH[@]}"; do
        if [[ ${R_PATH[i]} == "$P_FALCO_DIR"/* ]]; then rm -f -- "$candidate/${R_PATH[i]#"$P_FALCO_DIR"/}"; fi
    done
    for i in "${!F_PATH[@]}"; do
        [[ ${F_GROUP[i]} == falco && ${F_PATH[i]} == "$P_FALCO_DIR"/* ]] || continue
        rel=${F_PATH[i]#"$P_FALCO_DIR"/}
        mkdir -p -- "$candidate/$(dirname -- "$rel")"
        rm -f -- "$candidate/$rel"
        cp -- "${F_SRC[i]}" "$candidate/$rel"
    done
    [[ -d $P_FALCO_DIR ]] || install -d -m 0755 -- "$P_FALCO_DIR"
    log "validating the new configuration with $P_BINARY --dry-run"
    # shellcheck disable=SC2016 # positional parameters of the inner shell
    if ! out=$(unshare --mount --propagation private -- bash -c \
        'mount --bind -- "$1" "$2" && exec "$3" -c "$4" --dry-run -o "engine.kind=$5"' \
        falco-nodes-validate "$candidate" "$P_FALCO_DIR" "$P_BINARY" "$P_FALCO_MAIN" "$DRIVER" 2>&1); then
        printf '%s\n' "$out" >&2
        die "Falco rejected the new configuration (falco --dry-run output above); nothing was changed: Falco keeps running with its current configuration"
    fi
    # Falco only warns when falco.yaml fails its own schema (a misspelled extraConfig key is silently ignored).
    if grep -q "schema validation: failed" <<<"$out"; then
        grep "schema validation" <<<"$out" >&2 || true
        warn "Falco accepted the configuration but reports schema problems (above): check extraConfig"
    fi
}

# The same for sshd: `sshd -t` with the candidate drop-in directory mounted over the real one.
validate_sshd() {
    local dir="" i out candidate="$WORK/candidate-sshd"
    for i in "${!F_PATH[@]}"; do
        if [[ ${F_GROUP[i]} == sshd ]]; then dir=${F_PATH[i]%/*}; fi
    done
    for i in "${!R_PATH[@]}"; do
        if [[ ${R_GROUP[i]} == sshd && -z $dir ]]; then dir=${R_PATH[i]%/*}; fi
    done
    [[ -n $dir ]] || return 0
    mkdir -p -- "$candidate"
    if [[ -d $dir ]]; then cp -a -- "$dir/." "$candidate/"; fi
    for i in "${!R_PATH[@]}"; do
        if [[ ${R_GROUP[i]} == sshd && ${R_PATH[i]%/*} == "$dir" ]]; then rm -f -- "$candidate/${R_PATH[i]##*/}"; fi
    done
    for i in "${!F_PATH[@]}"; do
        [[ ${F_GROUP[i]} == sshd ]] || continue
        [[ ${F_PATH[i]%/*} == "$dir" ]] || die "the bundle's sshd drop-ins must share one directory"
        cp -- "${F_SRC[i]}" "$candidate/${F_PATH[i]##*/}"
    done
    if ! grep -Eqs "^[[:space:]]*Include[[:space:]]+$dir/" /etc/ssh/sshd_config; then
        warn "/etc/ssh/sshd_config does not include $dir/*.conf: the sshd hardening drop-in will have no effect"
    fi
    [[ -d $dir ]] || install -d -m 0755 -- "$dir"
    # shellcheck disable=SC2016 # positional parameters of the inner shell
    if ! out=$(unshare --mount --propagation private -- bash -c \
        'mount --bind -- "$1" "$2" && exec sshd -t' falco-nodes-validate "$candidate" "$dir" 2>&1); then
        printf '%s\n' "$out" >&2
        die "sshd -t rejected the configuration with the new drop-in (output above); nothing was changed and sshd was not reloaded"
    fi
}

# --- swapping -----------------------------------------------------------------------------------------------

# Keep every managed file as it is now (the set that was running), so a Falco that fails to come up can get it back.
save_last_good() {
    local dir="$STATE_DIR/last-good" next="$STATE_DIR/last-good.next" i
    rm -rf -- "$next"
    mkdir -p -- "$next/files"
    : >"$next/manifest"
    for i in "${!F_PATH[@]}"; do save_one "$next" "${F_GROUP[i]}" "${F_PATH[i]}"; done
    for i in "${!R_PATH[@]}"; do save_one "$next" "${R_GROUP[i]}" "${R_PATH[i]}"; done
    rm -rf -- "$dir"
    mv -- "$next" "$dir"
}

save_one() {
    local dest=$1 group=$2 path=$3
    if [[ -f $path && ! -L $path ]]; then
        mkdir -p -- "$dest/files${path%/*}"
        cp -p -- "$path" "$dest/files$path"
        printf '%s\tpresent\t%s\n' "$group" "$path" >>"$dest/manifest"
    else
        printf '%s\tabsent\t%s\n' "$group" "$path" >>"$dest/manifest"
    fi
}

ensure_parent_dir() {
    local parent=${1%/*}
    [[ -d $parent ]] || install -d -m 0755 -o root -g root -- "$parent"
}

# A file that was there before falco-nodes first wrote the path (the package's falco.yaml, a conffile) is kept
# under $STATE_DIR/originals and put back when falco-nodes lets go of the path, so uninstall leaves the package
# as it found it.
keep_original() {
    local path=$1 copy=$STATE_DIR/originals/files$1
    [[ -f $path && ! -L $path && ! -e $copy ]] || return 0
    mkdir -p -- "${copy%/*}"
    cp -p -- "$path" "$copy"
}

# Remove our file at $1, or put back the original it replaced.
release_path() {
    local path=$1 original=$STATE_DIR/originals/files$1
    if [[ -f $original ]]; then
        log "restoring $path as it was before falco-nodes"
        cp -p -- "$original" "$path$STAGE_SUFFIX"
        mv -f -- "$path$STAGE_SUFFIX" "$path"
        rm -f -- "$original"
    else
        log "removing $path"
        rm -f -- "$path"
    fi
}

swap_in_changes() {
    local i path
    local -A managed=()
    for path in "${O_PATH[@]}"; do managed[$path]=1; done
    # Stage everything first (same filesystem as the target, so each mv is atomic), then swap. A write that fails
    # (a full or read-only filesystem) stops here, before anything was swapped; the EXIT trap removes the staged
    # copies.
    for i in "${C_INDEX[@]}"; do
        path=${F_PATH[i]}
        ensure_parent_dir "$path"
        STAGED+=("$path$STAGE_SUFFIX")
        install -m "${F_MODE[i]}" -o root -g root -- "${F_SRC[i]}" "$path$STAGE_SUFFIX" ||
            die "could not write $path$STAGE_SUFFIX (filesystem full or read-only?); nothing was changed: free some space there and converge again"
    done
    save_last_good
    for i in "${C_INDEX[@]}"; do
        if [[ -z ${managed[${F_PATH[i]}]:-} ]]; then keep_original "${F_PATH[i]}"; fi
    done
    for i in "${C_INDEX[@]}"; do
        path=${F_PATH[i]}
        log "updating $path"
        mv -f -- "$path$STAGE_SUFFIX" "$path"
        CHANGED=true
    done
    STAGED=()
    for i in "${!R_PATH[@]}"; do
        path=${R_PATH[i]}
        if [[ -e $path || -L $path ]]; then
            log "$path is no longer in the bundle"
            release_path "$path"
            CHANGED=true
        fi
        if [[ ${path%/*} == "$P_UNIT_DROPIN_DIR" ]]; then rmdir -- "$P_UNIT_DROPIN_DIR" 2>/dev/null || true; fi
    done
}

reload_sshd() {
    local unit
    for unit in ssh.service sshd.service; do
        if systemctl is-active --quiet -- "$unit"; then
            log "reloading $unit"
            systemctl reload -- "$unit"
            return 0
        fi
    done
}

apply_sysctl() {
    local i
    for i in "${C_INDEX[@]}"; do
        [[ ${F_GROUP[i]} == sysctl ]] || continue
        sysctl -q -p "${F_PATH[i]}" || warn "sysctl could not apply every key of ${F_PATH[i]} (above); the rest is applied"
    done
    for i in "${!R_GROUP[@]}"; do
        [[ ${R_GROUP[i]} == sysctl ]] || continue
        # Values stay as they are until reboot unless another file sets them; re-apply the host's own files.
        sysctl -q --system >/dev/null || warn "sysctl --system reported errors"
        break
    done
}

# --- health and rollback ------------------------------------------------------------------------------------

healthz_ok() {
    [[ $P_WEBSERVER == true ]] || return 0
    if ! command -v curl >/dev/null 2>&1; then return 0; fi
    curl -fsS -o /dev/null --max-time 3 -- "http://127.0.0.1:$P_PORT/healthz" 2>/dev/null
}

# Healthy: active (and /healthz answering) on two probes in a row, so a crash loop between probes is not missed.
wait_healthy() {
    local deadline=$((SECONDS + HEALTH_TIMEOUT_SECONDS)) good=0
    if [[ $P_WEBSERVER == true ]] && ! command -v curl >/dev/null 2>&1; then
        warn "curl is not installed: checking only that $P_UNIT_NAME is active, not /healthz"
    fi
    while ((SECONDS < deadline)); do
        if systemctl is-active --quiet -- "$P_UNIT_NAME" && healthz_ok; then
            good=$((good + 1))
            ((good < 2)) || return 0
        else
            good=0
        fi
        sleep 3
    done
    return 1
}

restore_last_good() {
    local group state path sshd_touched=false
    [[ -f $STATE_DIR/last-good/manifest ]] || return 0
    while IFS=$'\t' read -r group state path; do
        [[ $path =~ $RE_PATH && $path != *..* ]] || continue
        if [[ $state == present ]]; then
            cp -p -- "$STATE_DIR/last-good/files$path" "$path$STAGE_SUFFIX"
            mv -f -- "$path$STAGE_SUFFIX" "$path"
            if [[ $group == sysctl ]]; then sysctl -q -p "$path" || true; fi
            if [[ $group == firewall ]]; then nft -f "$path" || true; fi
        else
            rm -f -- "$path"
        fi
        if [[ $group == sshd ]]; then sshd_touched=true; fi
    done <"$STATE_DIR/last-good/manifest"
    if [[ $sshd_touched == true ]] && sshd -t; then reload_sshd; fi
}

rollback_and_fail() {
    local journal
    journal=$(journalctl -u "$P_UNIT_NAME" -n 30 --no-pager 2>&1 || true)
    warn "$P_UNIT_NAME did not become healthy within ${HEALTH_TIMEOUT_SECONDS}s: restoring the last good files"
    restore_last_good
    systemctl daemon-reload
    if [[ -f $P_UNIT_PATH ]]; then
        systemctl restart -- "$P_UNIT_NAME" || true
    else
        systemctl disable --now --quiet -- "$P_UNIT_NAME" 2>/dev/null || true
        systemctl reset-failed -- "$P_UNIT_NAME" 2>/dev/null || true
    fi
    printf '%s\n' "--- journalctl -u $P_UNIT_NAME -n 30 ---" "$journal" >&2
    die "Falco did not come up with the new bundle (journal above); the previous files were restored. Fix the settings and converge again"
}

# --- state and report ---------------------------------------------------------------------------------------

# Each state file is replaced (write, then rename) only when its content changes: a no-op converge writes nothing.
write_state_file() {
    local path=$1 content=$2 current=""
    if [[ -f $path ]]; then IFS= read -r -d '' current <"$path" || true; fi
    if [[ -f $path && $current == "$content" ]]; then return 0; fi
    printf '%s' "$content" >"$path.new" # umask 077: 0600
    mv -f -- "$path.new" "$path"
}

write_state() {
    local i line manifest=""
    for i in "${!F_PATH[@]}"; do
        printf -v line '%s\t%s\t%s\n' "${F_GROUP[i]}" "${F_MODE[i]}" "${F_PATH[i]}"
        manifest+=$line
    done
    write_state_file "$STATE_DIR/manifest" "$manifest"
    write_state_file "$STATE_DIR/bundle-hash" "$P_BUNDLE_HASH"$'\n'
    prune_artifacts
}

# The last stdout line. Every value is a checked simple string (version, driver, hex hash, unit name).
print_report() {
    printf '{"changed":%s,"version":"%s","driver":"%s","bundleHash":"%s","unit":"%s","restarted":%s}\n' \
        "$CHANGED" "$P_VERSION" "$DRIVER" "$P_BUNDLE_HASH" "$P_UNIT_NAME" "$RESTARTED" >&3
}

# --- converge -----------------------------------------------------------------------------------------------

converge() {
    local restart=false
    CHANGED=false RESTARTED=false NEED_DAEMON_RELOAD=false UNIT_ACTIVE_STATE=""

    unpack_bundle
    load_params
    read_bundle_manifest
    refuse_placeholders
    wait_for_cloud_init
    require_space_for_files
    check_source_fits_host
    choose_driver
    plan_install
    check_k8saudit_host

    ensure_falco
    ensure_kmod_module
    mask_package_units
    ensure_k8saudit_artifacts

    select_files
    read_host_manifest
    plan_changes
    if group_changed falco || [[ $NEED_INSTALL == true || $ARTIFACTS_REPAIRED == true ]]; then validate_falco_config; fi
    if group_changed sshd; then validate_sshd; fi
    if group_changed firewall; then validate_firewall; fi

    # A boot unit must be disabled while its file still exists.
    if group_removed firewall-unit; then systemctl disable --quiet -- "$P_FW_UNIT" 2>/dev/null || true; fi
    if ((${#C_INDEX[@]} + ${#R_PATH[@]} > 0)); then swap_in_changes; fi

    if group_changed sysctl; then apply_sysctl; fi
    if ! systemctl is-enabled --quiet -- "$P_UNIT_NAME"; then
        log "enabling $P_UNIT_NAME"
        systemctl --no-reload enable --quiet -- "$P_UNIT_NAME"
        NEED_DAEMON_RELOAD=true
        CHANGED=true
    fi
    # One reload for everything (masks, unit files, enablement): each costs seconds on a busy or emulated host.
    if group_changed unit || group_changed unit-dropin-perf || group_changed firewall-unit || [[ $NEED_DAEMON_RELOAD == true ]]; then
        systemctl daemon-reload
    fi
    apply_firewall
    if group_changed sshd; then reload_sshd; fi
    # A restart is the only reliable way to apply config (SIGHUP is ignored by Falco 0.42-0.44), so it
    # happens exactly when Falco's files, unit or binary changed, or when Falco is not running.
    if group_changed falco || group_changed unit || group_changed unit-dropin-perf || [[ $NEED_INSTALL == true || $ARTIFACTS_REPAIRED == true ]]; then
        restart=true
    elif [[ $UNIT_ACTIVE_STATE != active ]] && ! systemctl is-active --quiet -- "$P_UNIT_NAME"; then
        log "$P_UNIT_NAME is not active"
        restart=true
    fi
    if [[ $restart == true ]]; then
        log "restarting $P_UNIT_NAME"
        RESTARTED=true CHANGED=true
        if ! systemctl restart -- "$P_UNIT_NAME"; then rollback_and_fail; fi
        if ! wait_healthy; then rollback_and_fail; fi
        log "$P_UNIT_NAME is up"
    fi
    if group_removed firewall; then remove_firewall_table; fi

    write_state
    log "converged: Falco $P_VERSION, driver $DRIVER, $([[ $CHANGED == true ]] && printf changed || printf 'nothing to change')"
    print_report
}

# --- uninstall ----------------------------------------------------------------------------------------------

uninstall() {
    local i group path purged=false sshd_touched=false sysctl_touched=false unit
    local -A seen=()
    local U_GROUP=() U_PATH=() masked=()

    WORK=$(mktemp -d)
    mkdir -- "$WORK/bundle"
    falco_nodes_payload | tar -xzf - -C "$WORK/bundle" --no-same-owner --no-same-permissions ||
        die "could not unpack the bundle (truncated or damaged script?); nothing was changed"
    load_params
    read_bundle_manifest
    read_host_manifest
    # Ours: what the last converge recorded, plus everything this bundle could have put here.
    for i in "${!O_PATH[@]}"; do U_GROUP+=("${O_GROUP[i]}") U_PATH+=("${O_PATH[i]}"); done
    for i in "${!B_PATH[@]}"; do U_GROUP+=("${B_GROUP[i]}") U_PATH+=("${B_PATH[i]}"); done

    if [[ $(systemctl show -p LoadState --value -- "$P_UNIT_NAME" 2>/dev/null || true) != not-found ]]; then
        log "stopping and disabling $P_UNIT_NAME"
        # --no-reload here and on unmask below: one daemon-reload at the end instead of one per call.
        systemctl --no-reload disable --now --quiet -- "$P_UNIT_NAME" 2>/dev/null || true
    fi
    # Falco no longer listens: the webhook firewall and its boot unit can go.
    for group in "${U_GROUP[@]}"; do
        if [[ $group == firewall-unit ]]; then systemctl disable --quiet -- "$P_FW_UNIT" 2>/dev/null || true; fi
        if [[ $group == firewall ]]; then remove_firewall_table; fi
    done
    for i in "${!U_PATH[@]}"; do
        path=${U_PATH[i]} group=${U_GROUP[i]}
        [[ -z ${seen[$path]:-} ]] || continue
        seen[$path]=1
        rm -f -- "$path$STAGE_SUFFIX"
        [[ -e $path || -L $path ]] || continue
        release_path "$path"
        if [[ $group == sshd ]]; then sshd_touched=true; fi
        if [[ $group == sysctl ]]; then sysctl_touched=true; fi
    done
    rmdir -- "$P_UNIT_DROPIN_DIR" 2>/dev/null || true
    rm -f -- "$APT_SOURCE" "$APT_KEYRING" "$RPM_REPO"

    if [[ $sshd_touched == true ]] && command -v sshd >/dev/null 2>&1; then
        if sshd -t; then reload_sshd; else warn "sshd -t fails without our drop-in (above): sshd was not reloaded"; fi
    fi
    if [[ $sysctl_touched == true ]]; then sysctl -q --system >/dev/null || warn "sysctl --system reported errors"; fi

    PKG_FAMILY=$(source_family)
    if [[ -z $PKG_FAMILY ]]; then PKG_FAMILY=$(os_family); fi
    if [[ $P_SOURCE != preinstalled && -n $(package_version) ]]; then
        # The hold/versionlock is ours: release it whether or not the package goes.
        if [[ $PKG_FAMILY == debian ]]; then
            apt-mark unhold falco >/dev/null 2>&1 || true
        elif "$(rpm_tool)" versionlock list >/dev/null 2>&1; then
            "$(rpm_tool)" -q versionlock delete falco >/dev/null 2>&1 || true
        fi
        if [[ $P_PURGE == true ]]; then
            log "purging the falco package (install.purgeOnUninstall)"
            umask 022
            if [[ $PKG_FAMILY == debian ]]; then
                DEBIAN_FRONTEND=noninteractive apt-get purge -y -q falco </dev/null
            else
                "$(rpm_tool)" -y -q remove falco </dev/null
            fi
            purged=true
        fi
    fi
    rm -f -- "$RPM_KEY"
    if [[ -f $STATE_DIR/rpm-key-imported ]]; then
        rpm -e --allmatches "gpg-pubkey-$(rpm_key_id)" >/dev/null 2>&1 || true
    fi

    if [[ -f $STATE_DIR/masked-units ]]; then
        while IFS= read -r unit; do
            [[ $unit =~ $RE_UNIT ]] || continue
            log "unmasking $unit"
            masked+=("$unit")
        done <"$STATE_DIR/masked-units"
    fi
    if ((${#masked[@]} > 0)); then systemctl --no-reload unmask --quiet -- "${masked[@]}" 2>/dev/null || true; fi
    systemctl daemon-reload
    systemctl reset-failed -- "$P_UNIT_NAME" "${PACKAGE_UNITS[@]}" >/dev/null 2>&1 || true
    rm -rf -- "$STATE_DIR"

    log "uninstalled (package purged: $purged)"
    printf '{"uninstalled":true,"unit":"%s","purged":%s}\n' "$P_UNIT_NAME" "$purged" >&3
}

# --- entry point --------------------------------------------------------------------------------------------

main() {
    # Progress goes to stderr, the report to the original stdout (fd 3). Nothing may read the script's own stdin.
    exec 3>&1 1>&2 </dev/null
    local action=${1:-converge}
    case $action in converge | uninstall) ;; *) die "unknown action '$action': use converge or uninstall" ;; esac

    require_root
    require_systemd
    require_tools base64 gzip tar sha256sum systemctl flock timeout mktemp install stat df unshare mount uname sed grep sort
    # converge checks every filesystem its files land on once the bundle is unpacked (require_space_for_files).
    if [[ $action == converge ]]; then require_space /var "$MIN_FREE_VAR_MIB"; else require_space /etc "$MIN_FREE_ETC_MIB"; fi
    take_lock
    trap cleanup EXIT
    trap 'exit 130' INT TERM HUP
    "$action"
}

# installScript.ts appends here: falco_nodes_payload() { ... } and then `main "$@"`.
