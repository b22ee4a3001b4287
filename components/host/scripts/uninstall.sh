# shellcheck shell=bash
# falco-nodes host script, uninstall: take away everything converge put on this host, but only when the
# uninstall comes from the resource that owns what is there now (ownership, below).
# A part of the one script components/host/installScript.ts assembles (see converge.sh); not run on its own.

# --- ownership ----------------------------------------------------------------------------------------------
#
# The Pulumi engine runs an uninstall with the inputs in its state, after the converges of the same deployment:
# a rename, a move to another stack, or any replacement creates the new resource (converge) before it deletes
# the old one (uninstall, with the OLD bundle and command). FalcoHost passes who each run is for: `--owner`
# (sha256 of its URN), `--bundle` (the plain hash of the bundle on stdin) and, on create only, `--claim`.
# converge records in $STATE_DIR: owner, claims (how many resources of that owner converged this host and have
# not been deleted: a replacement of the same resource makes it 2 until the old one's delete), and bundle-hash.
# An uninstall removes something only if it comes from the recorded owner, takes that owner's last claim, and
# brings the bundle this host runs now; otherwise it changes nothing (but the claim count) and says why.
# Runs without `--owner` (an operator's `bash install.sh converge|uninstall`) leave the record alone and uninstall
# unconditionally. A host converged before ownership existed has no record: its first owned uninstall is allowed
# (the bundle must still match), its first owned converge records the owner.

# parse_ownership_args ACTION [--owner HEX --bundle HEX [--claim]]
parse_ownership_args() {
    local action=$1
    shift
    while (($# > 0)); do
        case $1 in
        --owner | --bundle)
            if (($# < 2)) || [[ ! $2 =~ $RE_HEX64 ]]; then die "$1 needs 64 lower-case hex digits"; fi
            if [[ $1 == --owner ]]; then OWNER=$2; else ARG_BUNDLE=$2; fi
            shift 2
            ;;
        --claim)
            [[ $action == converge ]] || die "--claim is for converge only"
            CLAIM=true
            shift
            ;;
        *) die "unknown argument '$1': use [converge|uninstall] [--owner HEX --bundle HEX [--claim]]" ;;
        esac
    done
    if [[ -n $OWNER && -z $ARG_BUNDLE ]] || [[ -z $OWNER && ( -n $ARG_BUNDLE || $CLAIM == true ) ]]; then
        die "--owner and --bundle go together (--claim only with them)"
    fi
}

# The bundle on stdin must be the one the command names (the hash a preview showed).
check_bundle_arg() {
    if [[ -n $ARG_BUNDLE && $ARG_BUNDLE != "$P_BUNDLE_HASH" ]]; then
        die "the command names bundle $ARG_BUNDLE but the script carries $P_BUNDLE_HASH; nothing was changed"
    fi
}

# read_state_value VAR FILE PATTERN: VAR = the file's first line if it matches PATTERN, else "".
read_state_value() {
    local -n state_into=$1
    local value=""
    if [[ -f $2 ]]; then IFS= read -r value <"$2" || true; fi
    [[ $value =~ $3 ]] || value=""
    # shellcheck disable=SC2034 # a nameref: this assigns the caller's variable
    state_into=$value
}

# After a successful converge (write_state): record the owner and its claims. Without --owner, nothing.
record_ownership() {
    [[ -n $OWNER ]] || return 0
    local current claims
    read_state_value current "$STATE_DIR/owner" "$RE_HEX64"
    read_state_value claims "$STATE_DIR/claims" '^[0-9]+$'
    if [[ $current != "$OWNER" ]]; then
        if [[ -n $current ]]; then log "this host now belongs to owner $OWNER (was $current)"; fi
        claims=1
    elif [[ $CLAIM == true ]]; then
        claims=$((${claims:-0} + 1))
    elif ((${claims:-0} < 1)); then
        claims=1
    fi
    write_state_file "$STATE_DIR/owner" "$OWNER"$'\n'
    write_state_file "$STATE_DIR/claims" "$claims"$'\n'
}

# Whether this uninstall may remove anything; when not, it says why and prints the report.
uninstall_owned() {
    [[ -n $OWNER ]] || return 0
    local current claims bundle reason=""
    read_state_value current "$STATE_DIR/owner" "$RE_HEX64"
    read_state_value claims "$STATE_DIR/claims" '^[0-9]+$'
    read_state_value bundle "$STATE_DIR/bundle-hash" "$RE_HEX64"
    if [[ -n $current && $current != "$OWNER" ]]; then
        log "uninstall for owner $OWNER, but this host belongs to owner $current (a renamed or moved FalcoHost, or another stack converged it since): nothing was changed"
        reason=other-owner
    elif [[ -n $current ]] && ((${claims:-1} > 1)); then
        claims=$((claims - 1))
        write_state_file "$STATE_DIR/claims" "$claims"$'\n'
        log "owner $OWNER still holds $claims claim(s) on this host (a replacement converged it before this delete): nothing was removed"
        reason=still-claimed
    elif [[ -n $bundle && $bundle != "$P_BUNDLE_HASH" ]]; then
        if [[ -n $current ]]; then write_state_file "$STATE_DIR/claims" "0"$'\n'; fi
        log "uninstall with bundle $P_BUNDLE_HASH, but this host runs bundle $bundle (converged since): nothing was removed"
        reason=other-bundle
    fi
    [[ -n $reason ]] || return 0
    printf '{"uninstalled":false,"reason":"%s","unit":"%s"}\n' "$reason" "$P_UNIT_NAME" >&3
    return 1
}

# A converge that was interrupted after it began swapping files (its record is still there) put files in place that
# no manifest lists: put back the files it saved, so the manifest of the last finished converge is the whole truth.
undo_interrupted_converge() {
    [[ -f $STATE_DIR/$PENDING_FILE_NAME ]] || return 0
    if grep -qx 'files-saved' -- "$STATE_DIR/$PENDING_FILE_NAME"; then
        log "an earlier converge was interrupted: putting back the files it replaced before uninstalling"
        restore_last_good
    fi
    rm -f -- "$STATE_DIR/$PENDING_FILE_NAME"
}

# shellcheck disable=SC2153 # O_* and B_* are set by read_host_manifest (files.sh) and read_bundle_manifest (bundle.sh)
uninstall() {
    local i group path purged=false sshd_touched=false sysctl_touched=false unit
    local -A seen=()
    local U_GROUP=() U_PATH=() masked=()

    # The bundle may carry secrets: unpacked in root's own state directory (0700), not /tmp; the EXIT trap
    # removes it on every path, and the rm -rf of $STATE_DIR below on success.
    unpack_bundle
    load_params
    check_bundle_arg
    if ! uninstall_owned; then return 0; fi
    read_bundle_manifest
    undo_interrupted_converge
    read_host_manifest
    # Ours: exactly what the last finished converge recorded. A path the bundle names but the host manifest does not
    # (a converge that failed and was rolled back, or never ran) is the package's or an admin's: it stays.
    for i in "${!O_PATH[@]}"; do U_GROUP+=("${O_GROUP[i]}") U_PATH+=("${O_PATH[i]}"); done

    if [[ $(systemctl show -p LoadState --value -- "$P_UNIT_NAME" 2>/dev/null || true) != not-found ]]; then
        log "stopping and disabling $P_UNIT_NAME"
        # --no-reload here and on unmask below: one daemon-reload at the end instead of one per call.
        systemctl --no-reload disable --now --quiet -- "$P_UNIT_NAME" 2>/dev/null || true
    fi
    # Falco no longer listens: the webhook firewall and its boot unit can go.
    for group in "${U_GROUP[@]}"; do
        if [[ $group == firewall-unit ]]; then systemctl disable --quiet -- "$P_FW_UNIT" 2>/dev/null || true; fi
        if [[ $group == canary ]]; then systemctl --no-reload disable --now --quiet -- "$P_CANARY_TIMER" 2>/dev/null || true; fi
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
    remove_installed_kmod

    if [[ $sshd_touched == true ]] && command -v sshd >/dev/null 2>&1; then
        if sshd -t; then reload_sshd; else warn "sshd -t fails without our drop-in (above): sshd was not reloaded"; fi
    fi
    if [[ $sysctl_touched == true ]]; then sysctl -q --system >/dev/null || warn "sysctl --system reported errors"; fi

    PKG_FAMILY=$(source_family)
    if [[ -z $PKG_FAMILY ]]; then PKG_FAMILY=$(os_family); fi
    if [[ $P_SOURCE != preinstalled && -n $(package_version) ]]; then
        # The hold/versionlock is ours: release it whether or not the package goes.
        if [[ $PKG_FAMILY == debian ]]; then
            apt_mark unhold falco 2>/dev/null || true
        elif "$(rpm_tool)" versionlock list >/dev/null 2>&1; then
            "$(rpm_tool)" -q versionlock delete falco >/dev/null 2>&1 || true
        fi
        if [[ $P_PURGE == true ]]; then
            log "purging the falco package (install.purgeOnUninstall)"
            umask 022
            if [[ $PKG_FAMILY == debian ]]; then
                DEBIAN_FRONTEND=noninteractive apt-get purge -y -q -o DPkg::Lock::Timeout="$APT_LOCK_TIMEOUT_SECONDS" falco </dev/null
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
    restore_package_units_found
    remove_created_dirs
    rm -rf -- "$STATE_DIR"

    log "uninstalled (package purged: $purged)"
    printf '{"uninstalled":true,"unit":"%s","purged":%s}\n' "$P_UNIT_NAME" "$purged" >&3
}
