# shellcheck shell=bash
# falco-nodes host script, units: the package's units, our unit's health, and the rollback when Falco does not come up.
# A part of the one script components/host/installScript.ts assembles (see converge.sh); not run on its own.

# The package's own units would run a second, unhardened Falco: mask them (only those present and not masked).
# One `systemctl show` for all of them and --no-reload on disable/mask: each systemd reload costs seconds on a
# busy or emulated host, so converge reloads once, later (NEED_DAEMON_RELOAD).
# The same `systemctl show` also reads our unit's ActiveState (UNIT_ACTIVE_STATE), so that a no-op converge
# asks systemd once, not twice.
# shellcheck disable=SC2034 # CHANGED, NEED_DAEMON_RELOAD and UNIT_ACTIVE_STATE are read by converge (converge.sh)
mask_package_units() {
    local unit line k=0 i=0 lines=() load=() active=() to_mask=()
    # A block of Key=value lines per unit, in the order asked, blocks separated by a blank line.
    mapfile -t lines < <(systemctl show -p LoadState -p ActiveState -p FragmentPath -p DropInPaths -p ExecStart -- "$P_UNIT_NAME" "${PACKAGE_UNITS[@]}" 2>/dev/null || true)
    for line in "${lines[@]}"; do
        case $line in
        "") k=$((k + 1)) ;;
        LoadState=*) load[k]=${line#LoadState=} ;;
        ActiveState=*) active[k]=${line#ActiveState=} ;;
        *) ((k > 0)) || unit_view_line "$line" ;;
        esac
    done
    UNIT_ACTIVE_STATE=${active[0]:-} UNIT_LOAD_STATE=${load[0]:-}
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

# systemd's view of our unit, from `systemctl show -p FragmentPath -p DropInPaths -p ExecStart` lines.
# shellcheck disable=SC2034 # read by check_unit_drift
unit_view_line() {
    case $1 in
    FragmentPath=*) UNIT_FRAGMENT=${1#FragmentPath=} ;;
    DropInPaths=*) read -r -a UNIT_DROPINS <<<"${1#DropInPaths=}" ;;
    ExecStart=*)
        UNIT_EXEC=${1#*path=}
        UNIT_EXEC=${UNIT_EXEC%% *}
        ;;
    esac
}

# Unit drift: what systemd would run for our unit, compared with what converge installed. A unit file that
# shadows ours (system.control/, /run/systemd/system, transient/, /usr/local/lib/...), a drop-in outside our
# drop-in directory (prefix drop-ins, type drop-ins, /usr/lib/...), or a manager environment that preloads code
# changes Falco's command line or environment without touching a file converge manages. Each is moved to
# $STATE_DIR/quarantine (kept for the investigation), reported, and Falco restarted (DRIFT_REPAIRED).
check_unit_drift() {
    local view=${1:-cached} f name var lines=()
    DRIFT_REPAIRED=false
    if [[ $view == reread ]]; then
        UNIT_FRAGMENT="" UNIT_DROPINS=() UNIT_EXEC=""
        mapfile -t lines < <(systemctl show -p LoadState -p FragmentPath -p DropInPaths -p ExecStart -- "$P_UNIT_NAME" 2>/dev/null || true)
        for f in "${lines[@]}"; do
            case $f in LoadState=*) UNIT_LOAD_STATE=${f#LoadState=} ;; *) unit_view_line "$f" ;; esac
        done
    fi
    [[ ${UNIT_LOAD_STATE:-} == loaded ]] || return 0
    for f in ${UNIT_FRAGMENT:+"$UNIT_FRAGMENT"} "${UNIT_DROPINS[@]}"; do
        [[ $f == "$P_UNIT_PATH" || $f == "$P_UNIT_DROPIN_DIR"/* ]] && continue
        [[ -e $f || -L $f ]] || continue
        warn "drift: systemd reads $f for $P_UNIT_NAME, which converge did not install: moving it to $STATE_DIR/quarantine"
        name=$(printf '%s' "$f" | tr '/' '_')
        install -d -m 0700 -- "$STATE_DIR/quarantine"
        mv -f -- "$f" "$STATE_DIR/quarantine/$name"
        DRIFT_REPAIRED=true
    done
    if [[ -n ${UNIT_EXEC:-} && $UNIT_EXEC != "$P_BINARY" && $DRIFT_REPAIRED == false ]]; then
        warn "drift: systemd would start $UNIT_EXEC for $P_UNIT_NAME instead of $P_BINARY"
        DRIFT_REPAIRED=true
    fi
    # The manager's own environment reaches every unit it starts (systemctl set-environment, DefaultEnvironment=).
    while IFS= read -r var; do
        case $var in
        LD_PRELOAD=* | LD_LIBRARY_PATH=* | LD_AUDIT=*)
            warn "drift: systemd's manager environment sets ${var%%=*}: unsetting it"
            systemctl unset-environment -- "${var%%=*}"
            DRIFT_REPAIRED=true
            ;;
        esac
    done < <(systemctl show-environment 2>/dev/null || true)
    if [[ $DRIFT_REPAIRED == true ]]; then
        systemctl daemon-reload
        CHANGED=true
    fi
}

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

# The detection canary (components/rules/canary.ts): open the canary file for reading, as the canary timer does,
# and wait for Falco to report it in its own output, the journal (stdout or syslog output) or its output file.
# Proves what /healthz does not (falco#3968): events reach the rules and alerts reach the outputs. Returns 0
# when the alert came (or when no output converge can read is configured: then it warns), 1 when it did not.
check_canary() {
    local deadline=$((SECONDS + CANARY_TIMEOUT_SECONDS)) since size=0 dir=${P_CANARY_PATH%/*}
    if [[ $P_CANARY_JOURNAL != true && -z $P_CANARY_FILE ]]; then
        warn "no stdout, syslog or file output: converge cannot see the detection canary's alert (central alerting still can)"
        return 0
    fi
    since=$(date +%s)
    if [[ -n $P_CANARY_FILE && -f $P_CANARY_FILE ]]; then size=$(stat -c %s -- "$P_CANARY_FILE"); fi
    if [[ ! -e $P_CANARY_PATH ]]; then
        install -d -m 0755 -- "$dir"
        : >"$P_CANARY_PATH"
    fi
    while ((SECONDS < deadline)); do
        # The canary action itself: an open for reading (bash's own openat, O_RDONLY).
        : <"$P_CANARY_PATH"
        if canary_seen "$since" "$size"; then return 0; fi
        sleep 2
    done
    return 1
}

# canary_seen SINCE SIZE: the canary alert with this bundle's token is in the journal since SINCE (epoch seconds)
# or in the output file beyond byte SIZE.
canary_seen() {
    local marker="falco_nodes_canary=$P_CANARY_TOKEN"
    if [[ $P_CANARY_JOURNAL == true ]] &&
        journalctl -q -o cat --no-pager "_SYSTEMD_UNIT=$P_UNIT_NAME" --since "@$1" 2>/dev/null | grep -qF -- "$marker"; then
        return 0
    fi
    [[ -n $P_CANARY_FILE && -f $P_CANARY_FILE ]] && tail -c "+$(($2 + 1))" -- "$P_CANARY_FILE" 2>/dev/null | grep -qF -- "$marker"
}

# The canary timer (components/host/unit.ts): enabled and started once its files are in place.
ensure_canary_timer() {
    bundle_has_group canary || return 0
    if ! systemctl is-enabled --quiet -- "$P_CANARY_TIMER"; then
        log "enabling $P_CANARY_TIMER (the detection canary, every few minutes)"
        systemctl enable --now --quiet -- "$P_CANARY_TIMER"
        CHANGED=true
    fi
}

# rollback_and_fail [WHY]: the last good files back, Falco restarted on them, and a clear error.
rollback_and_fail() {
    local journal why=${1:-"did not become healthy within ${HEALTH_TIMEOUT_SECONDS}s"}
    journal=$(journalctl -u "$P_UNIT_NAME" -n 30 --no-pager 2>&1 || true)
    warn "$P_UNIT_NAME $why: restoring the last good files"
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
