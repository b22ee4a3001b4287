# shellcheck shell=bash
# falco-nodes host script, the transaction: a converge never leaves a host worse than it found it.
# A part of the one script components/host/installScript.ts assembles (see converge.sh); not run on its own.
#
# Before its first change a converge records what it found in $STATE_DIR/pending: the falco package's version,
# whether our package sources existed, every unit's load, active and enabled state, and (before the swap) which
# file groups it changes and whether the last good files were saved. Then:
# - a converge that fails (any error after the first change) puts all of it back from the EXIT trap
#   (rollback_converge): the files, the package version, the units' enabled and active states;
# - a converge that is interrupted (SIGKILL, power loss, an SSH drop: the record stays) is finished by the next
#   one, which reads the record (read_pending), treats the recorded groups as changed (restart, sshd reload,
#   sysctl apply) and, should it fail, rolls back to what the interrupted run found;
# - a converge that succeeds removes the record (commit_changes).
# Everything in the record is data read with `read` and checked; nothing is eval'd.

# FOUND_*: what this converge (or the interrupted one it finishes) found. One systemctl show for our unit and the
# package's: U_NAMES[k] with U_LOAD, U_ACTIVE, U_FILE (found), CUR_LOAD (now) and UNIT_ACTIVE_STATE (our unit, now).
# `read_unit_states installed`, after this converge installed the package: the units it brought (not there when
# converge began) are found as the package left them, and CUR_LOAD is read again, so they are masked once ours
# runs (without it, the first converge of a fresh host masked nothing and the second did).
# shellcheck disable=SC2034 # UNIT_ACTIVE_STATE is read by converge (converge.sh) and units.sh
read_unit_states() {
    local mode=${1:-found} line k=0 lines=() load=() active=() ufile=()
    U_NAMES=("$P_UNIT_NAME" "${PACKAGE_UNITS[@]}")
    # A block of Key=value lines per unit, in the order asked, blocks separated by a blank line.
    mapfile -t lines < <(systemctl show -p LoadState -p ActiveState -p UnitFileState -- "${U_NAMES[@]}" 2>/dev/null || true)
    for line in "${lines[@]}"; do
        case $line in
        "") k=$((k + 1)) ;;
        LoadState=*) load[k]=${line#LoadState=} ;;
        ActiveState=*) active[k]=${line#ActiveState=} ;;
        UnitFileState=*) ufile[k]=${line#UnitFileState=} ;;
        esac
    done
    UNIT_ACTIVE_STATE=${active[0]:-}
    CUR_LOAD=()
    for k in "${!U_NAMES[@]}"; do CUR_LOAD[k]=${load[k]:-not-found}; done
    [[ $RESUMED == false ]] || return 0
    if [[ $mode == installed ]]; then
        for k in "${!U_NAMES[@]}"; do
            if ((k == 0)) || [[ ${U_LOAD[k]:-not-found} != not-found ]]; then continue; fi
            U_LOAD[k]=${load[k]:-not-found} U_ACTIVE[k]=${active[k]:-inactive} U_FILE[k]=${ufile[k]:--}
        done
        if [[ $TXN == open ]]; then write_pending; fi
        return 0
    fi
    U_LOAD=() U_ACTIVE=() U_FILE=()
    for k in "${!U_NAMES[@]}"; do
        U_LOAD[k]=${load[k]:-not-found} U_ACTIVE[k]=${active[k]:-inactive} U_FILE[k]=${ufile[k]:--}
    done
}

# The record of an interrupted converge, if any: this run finishes it.
# shellcheck disable=SC2034 # TXN, FOUND_* and U_* are read by converge (converge.sh) and the rollback
read_pending() {
    local file=$STATE_DIR/$PENDING_FILE_NAME kind a b c d
    [[ -f $file ]] || return 0
    U_NAMES=() U_LOAD=() U_ACTIVE=() U_FILE=()
    while IFS=$'\t' read -r kind a b c d; do
        case $kind in
        version) [[ $a =~ ^(-|[0-9A-Za-z.+~:-]+)$ ]] && FOUND_VERSION=${a#-} ;;
        sources) [[ $a =~ ^(yes|no)$ ]] && FOUND_SOURCES=$a ;;
        unit)
            [[ $a =~ $RE_UNIT && $b =~ ^[a-z-]+$ && $c =~ ^[a-z-]+$ && $d =~ ^[a-z-]+$ ]] || continue
            U_NAMES+=("$a") U_LOAD+=("$b") U_ACTIVE+=("$c") U_FILE+=("$d")
            ;;
        groups) [[ $a =~ ^[a-z_\ -]*$ ]] && PENDING_GROUPS=" $a " ;;
        files-saved) FILES_SAVED=true ;;
        esac
    done <"$file"
    # Our unit comes first, so U_*[0] is always ours (a record from another unit name is not ours to finish).
    if [[ ${U_NAMES[0]:-} != "$P_UNIT_NAME" ]]; then
        warn "ignoring $file: it does not record $P_UNIT_NAME"
        U_NAMES=() FILES_SAVED=false PENDING_GROUPS=" "
        return 0
    fi
    RESUMED=true TXN=open
    log "an earlier converge was interrupted after it began changing this host: finishing it"
}

write_pending() {
    local k content groups
    groups=${PENDING_GROUPS# }
    printf -v content 'version\t%s\nsources\t%s\ngroups\t%s\n' "${FOUND_VERSION:--}" "$FOUND_SOURCES" "${groups% }"
    for k in "${!U_NAMES[@]}"; do
        printf -v content '%sunit\t%s\t%s\t%s\t%s\n' "$content" "${U_NAMES[k]}" "${U_LOAD[k]}" "${U_ACTIVE[k]}" "${U_FILE[k]}"
    done
    if [[ $FILES_SAVED == true ]]; then content+=$'files-saved\n'; fi
    write_state_file "$STATE_DIR/$PENDING_FILE_NAME" "$content"
}

# Called before each kind of change: the first call opens the transaction (the record is on disk before any
# change is made), later ones update the record.
begin_changes() {
    if [[ $TXN != open ]]; then
        TXN=open
        if [[ -f $APT_SOURCE || -f $RPM_REPO ]]; then FOUND_SOURCES=yes; else FOUND_SOURCES=no; fi
    fi
    write_pending
}

# The groups this run changes (and the files saved) go into the record before the swap.
record_groups() {
    PENDING_GROUPS=$CHANGED_GROUPS
    begin_changes
}

commit_changes() {
    rm -f -- "$STATE_DIR/$PENDING_FILE_NAME"
    rm -rf -- "$STATE_DIR/rollback-package"
    TXN=closed
}

# What to say when a check fails: whether anything was changed yet, and whether Falco still runs.
unchanged_note() {
    if [[ $TXN == open ]]; then
        printf 'putting back what this converge changed (below)'
    elif [[ $UNIT_ACTIVE_STATE == active ]]; then
        printf 'nothing was changed: Falco keeps running with its current configuration'
    else
        printf 'nothing was changed'
    fi
}

# Each unit's enabled and active state as found. Our unit: stopped and disabled when it was not there or not
# running; started again (with the restored files) when it was running and $1 (files, package or the unit itself
# were touched) is true, or it no longer runs. The package's: started again when found running (converge stops
# them only to start ours), unmasked when an interrupted run masked them.
restore_unit_states() {
    local touched=$1 k unit now
    for k in "${!U_NAMES[@]}"; do
        unit=${U_NAMES[k]}
        if ((k == 0)); then
            if [[ ${U_LOAD[0]} == not-found || ! -f $P_UNIT_PATH ]]; then
                systemctl disable --now --quiet -- "$unit" 2>/dev/null || true
                systemctl reset-failed -- "$unit" 2>/dev/null || true
                continue
            fi
            case ${U_FILE[0]} in
            enabled) systemctl enable --quiet -- "$unit" 2>/dev/null || true ;;
            disabled) systemctl disable --quiet -- "$unit" 2>/dev/null || true ;;
            esac
            if [[ ${U_ACTIVE[0]} == active ]]; then
                if [[ $touched == true ]] || ! systemctl is-active --quiet -- "$unit"; then
                    log "starting $unit again with the restored files"
                    systemctl restart -- "$unit" 2>/dev/null || true
                fi
            else
                systemctl stop -- "$unit" 2>/dev/null || true
                systemctl reset-failed -- "$unit" 2>/dev/null || true
            fi
            continue
        fi
        now=$(systemctl show -p LoadState --value -- "$unit" 2>/dev/null || true)
        if [[ $now == masked && ${U_LOAD[k]} != masked ]]; then
            systemctl unmask --quiet -- "$unit" 2>/dev/null || true
            if [[ ${U_FILE[k]} == enabled ]]; then systemctl enable --quiet -- "$unit" 2>/dev/null || true; fi
        fi
        if [[ ${U_ACTIVE[k]} == active ]]; then
            log "starting the package's $unit again (it was running)"
            systemctl start -- "$unit" 2>/dev/null || warn "could not start $unit again"
        fi
    done
}

# From the EXIT trap, after a failure: put back the files, the package and the units as found. Best effort: one
# step failing does not stop the others, and every message says what is now true.
rollback_converge() {
    local failed=() state touched=false
    set +e
    warn "converge failed after it began changing this host: putting back what it found"
    if [[ $FILES_SAVED == true || $RESTARTED == true || $RESUMED == true ]]; then touched=true; fi
    if [[ $FILES_SAVED == true ]]; then
        restore_last_good || failed+=("files")
    fi
    if [[ $P_SOURCE != preinstalled ]]; then
        read_installed_package
        if [[ $INSTALLED_VERSION != "$FOUND_VERSION" ]]; then touched=true; fi
        restore_package || failed+=("the falco package $FOUND_VERSION (dpkg/rpm now has: ${INSTALLED_VERSION:-none})")
    fi
    if [[ $FOUND_SOURCES == no ]]; then rm -f -- "$APT_SOURCE" "$APT_KEYRING" "$RPM_REPO" "$RPM_KEY"; fi
    systemctl daemon-reload || failed+=("systemd daemon-reload")
    restore_unit_states "$touched"
    if [[ ${U_ACTIVE[0]:-} == active && $touched == true ]]; then
        if wait_healthy; then log "$P_UNIT_NAME runs again with the files it had before this converge"; else failed+=("$P_UNIT_NAME running healthy"); fi
    fi
    remove_created_dirs
    rm -f -- "$STATE_DIR/$PENDING_FILE_NAME"
    rm -rf -- "$STATE_DIR/rollback-package"
    if [[ ! -f $STATE_DIR/manifest ]]; then rm -rf -- "$STATE_DIR/originals" "$STATE_DIR/last-good"; fi
    TXN=closed
    state="$P_UNIT_NAME $([[ ${U_ACTIVE[0]:-} == active ]] && printf running || printf 'not running')"
    if [[ $P_SOURCE != preinstalled ]]; then state="package falco ${FOUND_VERSION:-not installed}, $state"; fi
    if ((${#failed[@]} == 0)); then
        log "the host is back as this converge found it ($state)"
    else
        warn "could not put back: ${failed[*]}; the rest is as this converge found it ($state). Converge again once the cause is fixed"
    fi
}
