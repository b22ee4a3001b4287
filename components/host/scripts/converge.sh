#!/usr/bin/env bash
# shellcheck shell=bash
#
# falco-nodes host script: `converge` makes this host run the pinned Falco under our hardened unit with exactly
# the bundle's files; `uninstall` takes all of it away again.
#
# This file is the common part (settings, constants, output, the converge sequence, the entry point). One file
# per concern holds the rest, each read on its own by a reviewer and by shellcheck:
#   preflight.sh  root, systemd, tools, space, the lock, cloud-init, distribution and kernel (nothing changes yet)
#   bundle.sh     unpacking the bundle, its parameters and manifest
#   install.sh    the Falco package or binary, the pinned repository key, the hold, the kmod module
#   k8saudit.sh   what k8sAudit needs from the host, and its pinned plugins and rules
#   files.sh      which files this host gets, what changed, validating Falco's candidate config, the swap
#   units.sh      the package's units, our unit's health, the rollback
#   sshd.sh       validating and reloading sshd
#   firewall.sh   the k8saudit webhook's nftables allowlist
#   transaction.sh what a converge found, put back when it fails, finished when it was interrupted
#   uninstall.sh  taking it all away again
#
# How it arrives: components/host/installScript.ts concatenates this file and the parts above (in SCRIPT_PARTS'
# order) into one self-contained script and appends the function `falco_nodes_payload` (the bundle: a gzip'd tar,
# base64 inside a quoted heredoc, so nothing generated is ever parsed as shell) and, as the very last line, the
# call to `main`. A truncated upload therefore runs nothing. It runs as root, either as
# `sudo -n bash -s -- converge < install.sh` (one SSH session, the bundle on stdin: no secret is ever in argv or a
# command string) or as `bash install.sh [converge|uninstall]`. FalcoHost adds `--owner <hex> --bundle <hex>`
# (and `--claim` on create): who the run is for; see "ownership" in uninstall.sh.
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

# The constants every part reads (shellcheck, checking this file on its own, cannot see those reads).
# shellcheck disable=SC2034
{
# Must equal STATE_DIR and SECRET_PLACEHOLDER_PREFIX in components/host/paths.ts (checked by the tests); they are
# needed before the bundle is unpacked, so they cannot come from it.
readonly STATE_DIR=/var/lib/falco-nodes
readonly SECRET_PLACEHOLDER=@@falco-nodes-secret:
readonly LOCK_FILE=/run/falco-nodes.lock
readonly PAYLOAD_FORMAT=1
readonly STAGE_SUFFIX=.falco-nodes-new
readonly FILE_GROUPS=" falco unit unit-modern_ebpf unit-kmod unit-dropin-perf sysctl sshd logrotate firewall firewall-unit canary "

# Where converge puts Falco's package sources (ours alone: uninstall removes exactly these).
readonly APT_KEYRING=/usr/share/keyrings/falco-nodes-falco.gpg
readonly APT_SOURCE=/etc/apt/sources.list.d/falco-nodes-falco.list
readonly RPM_KEY=/etc/pki/rpm-gpg/RPM-GPG-KEY-falco-nodes
readonly RPM_REPO=/etc/yum.repos.d/falco-nodes-falco.repo
# The kmod module files converge installed where modprobe finds them (install.sh, install_kmod_copy).
readonly KMOD_INSTALLED=$STATE_DIR/kmod-installed

# Free space below which nothing is attempted: unpacking and state need little, a Falco package a lot more.
readonly MIN_FREE_ETC_MIB=10
readonly MIN_FREE_VAR_MIB=20
readonly MIN_FREE_VAR_INSTALL_MIB=200
readonly MIN_FREE_USR_INSTALL_MIB=200
# Falco needed 9-11 s to start under emulation; a real host is faster.
readonly HEALTH_TIMEOUT_SECONDS=90
# How long converge waits for the detection canary's alert once Falco is healthy.
readonly CANARY_TIMEOUT_SECONDS=60
# A fresh cloud instance may still be running cloud-init (users, packages, sshd keys) when SSH first answers.
readonly CLOUD_INIT_TIMEOUT_SECONDS=900
# unattended-upgrades may hold the dpkg lock on a fresh cloud host for minutes: apt waits this long for it.
readonly APT_LOCK_TIMEOUT_SECONDS=600
# The record of a converge in progress (transaction.sh), below STATE_DIR.
readonly PENDING_FILE_NAME=pending

# What a bundle parameter, path and unit name may look like.
readonly RE_PATH='^/[A-Za-z0-9._@/-]+$'
readonly RE_UNIT='^[A-Za-z0-9@._-]+\.service$'
readonly RE_BOOL='^(true|false)$'
# An owner id or a bundle hash (sha256, hex).
readonly RE_HEX64='^[0-9a-f]{64}$'
}

WORK=""
STAGED=()
# Who this run is for (FalcoHost's --owner/--bundle/--claim; "ownership" in uninstall.sh).
# shellcheck disable=SC2034 # set by parse_ownership_args, read by record_ownership and uninstall_owned (uninstall.sh)
OWNER="" ARG_BUNDLE="" CLAIM=false

# --- output -------------------------------------------------------------------------------------------------

log() { printf 'falco-nodes: %s\n' "$*" >&2; }
warn() { printf 'falco-nodes: warning: %s\n' "$*" >&2; }
die() {
    printf 'falco-nodes: error: %s\n' "$*" >&2
    exit 1
}

# A converge that fails after its first change puts the host back as it found it (transaction.sh).
on_exit() {
    local rc=$?
    if ((rc != 0)) && [[ ${TXN:-closed} == open && ${SIGNALLED:-false} == false ]]; then rollback_converge; fi
    cleanup
    exit "$rc"
}

cleanup() {
    local staged
    restart_unit_stopped_for_install
    for staged in "${STAGED[@]}"; do rm -f -- "$staged"; done
    if [[ -n $WORK ]]; then rm -rf -- "$WORK"; fi
    # A run that failed before writing any state leaves no empty state directory behind. (With a manifest the
    # directory is not empty: no rmdir process to find that out.)
    if [[ ! -e $STATE_DIR/manifest ]]; then
        remove_created_dirs
        rmdir -- "$STATE_DIR" 2>/dev/null || true
    fi
}

# --- shared helpers -----------------------------------------------------------------------------------------

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

# --- report -------------------------------------------------------------------------------------------------

# The last stdout line. Every value is a checked simple string (version, driver, hex hash, unit name).
print_report() {
    printf '{"changed":%s,"version":"%s","driver":"%s","bundleHash":"%s","unit":"%s","restarted":%s}\n' \
        "$CHANGED" "$P_VERSION" "$DRIVER" "$P_BUNDLE_HASH" "$P_UNIT_NAME" "$RESTARTED" >&3
}

# --- converge -----------------------------------------------------------------------------------------------

# shellcheck disable=SC2034 # the transaction's state (TXN, FOUND_*, U_*) is read by transaction.sh
converge() {
    local restart=false
    # shellcheck disable=SC2034 # systemd's view of our unit: read by check_unit_drift (units.sh)
    CHANGED=false RESTARTED=false NEED_DAEMON_RELOAD=false UNIT_ACTIVE_STATE="" UNIT_LOAD_STATE="" DRIFT_REPAIRED=false
    # shellcheck disable=SC2034
    UNIT_FRAGMENT="" UNIT_DROPINS=() UNIT_EXEC=""
    TXN=closed RESUMED=false FILES_SAVED=false PENDING_GROUPS=" " FOUND_VERSION="" FOUND_SOURCES=""
    U_NAMES=() U_LOAD=() U_ACTIVE=() U_FILE=() CUR_LOAD=()

    # Checks: nothing on the host changes before these pass.
    unpack_bundle
    load_params
    check_bundle_arg
    read_bundle_manifest
    refuse_placeholders
    wait_for_cloud_init
    require_space_for_files
    check_source_fits_host
    choose_driver
    plan_install
    check_k8saudit_host
    read_pending
    read_unit_states
    if [[ $RESUMED == false ]]; then FOUND_VERSION=${INSTALLED_VERSION:-}; fi

    # The package and the artifacts (staged: nothing Falco uses changes until the swap).
    if [[ $NEED_INSTALL == true ]]; then begin_changes; fi
    ensure_falco
    if [[ $NEED_INSTALL == true ]]; then read_unit_states installed; fi
    ensure_kmod_module
    ensure_k8saudit_artifacts

    select_files
    read_host_manifest
    plan_changes
    # An interrupted converge's groups count as changed: their restart, reload or apply never happened.
    CHANGED_GROUPS+=${PENDING_GROUPS# }
    if [[ $NEED_INSTALL == true ]]; then CHANGED_GROUPS+="package "; fi
    if [[ $ARTIFACTS_REPAIRED == true ]]; then CHANGED_GROUPS+="artifacts "; fi
    if group_changed falco || group_changed package || group_changed artifacts; then validate_falco_config; fi
    if group_changed sshd; then validate_sshd; fi
    if group_changed firewall; then validate_firewall; fi

    # A restart is the only reliable way to apply config (SIGHUP is ignored by Falco 0.42-0.44), so it
    # happens exactly when Falco's files, unit or binary changed, or when Falco is not running healthy.
    if group_changed falco || group_changed unit || group_changed unit-dropin-perf || group_changed package || group_changed artifacts; then
        restart=true
    elif [[ $UNIT_ACTIVE_STATE != active ]]; then
        log "$P_UNIT_NAME is not active"
        restart=true
    elif ! falco_healthy_now; then
        warn "$P_UNIT_NAME is active but not healthy (/healthz does not answer: hung or stopped): restarting it"
        restart=true
    fi
    if [[ $restart == true || $CHANGED_GROUPS != " " ]]; then record_groups; fi

    # A boot unit must be disabled while its file still exists.
    if group_removed firewall-unit; then systemctl disable --quiet -- "$P_FW_UNIT" 2>/dev/null || true; fi
    if group_removed canary; then systemctl disable --now --quiet -- "$P_CANARY_TIMER" 2>/dev/null || true; fi
    # shellcheck disable=SC2153 # R_PATH is set by plan_changes (files.sh)
    if ((${#C_INDEX[@]} + ${#R_PATH[@]} > 0)); then swap_in_changes; fi

    if group_changed sysctl; then apply_sysctl; fi
    if ! systemctl is-enabled --quiet -- "$P_UNIT_NAME"; then
        begin_changes
        log "enabling $P_UNIT_NAME"
        systemctl --no-reload enable --quiet -- "$P_UNIT_NAME"
        NEED_DAEMON_RELOAD=true
        CHANGED=true
    fi
    # One reload for everything (masks, unit files, enablement): each costs seconds on a busy or emulated host.
    if group_changed unit || group_changed unit-dropin-perf || group_changed firewall-unit || group_changed canary || [[ $NEED_DAEMON_RELOAD == true ]]; then
        systemctl daemon-reload
    fi
    check_unit_drift reread
    ensure_canary_timer
    apply_firewall
    if group_changed sshd; then reload_sshd; fi
    # Unit drift (a shadowing unit file, a foreign drop-in, a preloading manager environment) is repaired above
    # and needs a restart to take effect.
    if [[ $DRIFT_REPAIRED == true ]]; then restart=true; fi
    if [[ $restart == true ]]; then
        stop_package_units
        log "restarting $P_UNIT_NAME"
        RESTARTED=true CHANGED=true
        if ! systemctl restart -- "$P_UNIT_NAME"; then rollback_and_fail; fi
        if ! wait_healthy; then rollback_and_fail; fi
        if ! check_canary; then rollback_and_fail "reported no detection canary alert within ${CANARY_TIMEOUT_SECONDS}s"; fi
        log "$P_UNIT_NAME is up and detecting"
    elif ! check_canary; then
        # Nothing changed, so there is nothing to roll back to: a running Falco that detects nothing is an error.
        die "$P_UNIT_NAME is running but reported no detection canary alert within ${CANARY_TIMEOUT_SECONDS}s: its event source or outputs are stalled (see journalctl -u $P_UNIT_NAME); restart it"
    fi
    # Only now that ours runs healthy: the package's units are masked.
    mask_package_units
    if group_removed firewall; then remove_firewall_table; fi

    write_state
    commit_changes
    log "converged: Falco $P_VERSION, driver $DRIVER, $([[ $CHANGED == true ]] && printf changed || printf 'nothing to change')"
    print_report
}

# --- entry point --------------------------------------------------------------------------------------------

main() {
    # Progress goes to stderr, the report to the original stdout (fd 3). Nothing may read the script's own stdin.
    exec 3>&1 1>&2 </dev/null
    local action=${1:-converge}
    case $action in converge | uninstall) ;; *) die "unknown action '$action': use converge or uninstall" ;; esac
    if (($# > 0)); then shift; fi
    parse_ownership_args "$action" "$@"

    require_root
    require_systemd
    require_tools base64 gzip tar sha256sum systemctl flock timeout mktemp install stat df unshare mount uname sed grep sort date tail
    # converge checks every filesystem its files land on once the bundle is unpacked (require_space_for_files).
    if [[ $action == converge ]]; then require_space /var "$MIN_FREE_VAR_MIB"; else require_space /etc "$MIN_FREE_ETC_MIB"; fi
    take_lock
    trap on_exit EXIT
    # A signal (an SSH drop is a SIGHUP) leaves the transaction's record: the next converge finishes it.
    trap 'SIGNALLED=true; exit 130' INT TERM HUP
    "$action"
}

# installScript.ts appends the parts, then falco_nodes_payload() { ... } and then `main "$@"`.
