# shellcheck shell=bash
# falco-nodes host script, units: the package's units, our unit's health, and the rollback when Falco does not come up.
# A part of the one script components/host/installScript.ts assembles (see converge.sh); not run on its own.

# The package's own units would run a second, unhardened Falco: mask them (only those present and not masked),
# once ours runs healthy, so a converge that fails never leaves a host with neither. Their states come from the
# one `systemctl show` of read_unit_states (transaction.sh); --no-reload on disable/mask and one daemon-reload
# after: each reload costs seconds on a busy or emulated host.
# shellcheck disable=SC2034 # CHANGED is read by converge (converge.sh)
mask_package_units() {
    local unit k to_mask=()
    for k in "${!U_NAMES[@]}"; do
        ((k > 0)) || continue
        unit=${U_NAMES[k]}
        [[ ${CUR_LOAD[k]:-} == loaded ]] || continue
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
    record_package_units_found
    systemctl daemon-reload
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

# Before ours starts: a package unit that runs a Falco is stopped (two would fight over the driver and the
# webserver port). Not disabled or masked yet: a failed converge starts it again (restore_unit_states).
stop_package_units() {
    local k to_stop=()
    for k in "${!U_NAMES[@]}"; do
        ((k > 0)) || continue
        if [[ ${CUR_LOAD[k]:-} == loaded && ${U_ACTIVE[k]:-} != inactive ]]; then to_stop+=("${U_NAMES[k]}"); fi
    done
    ((${#to_stop[@]} > 0)) || return 0
    log "stopping the package's ${to_stop[*]} (until $P_UNIT_NAME runs healthy, when they are masked)"
    systemctl stop -- "${to_stop[@]}" 2>/dev/null || true
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
        # Below /run (emptied at every boot): not recorded as created, as make_dir would.
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

# Is the running Falco healthy now? /healthz must answer (a SIGSTOPped or hung Falco is `active` to systemd but
# answers nothing); one retry, so a single slow answer is not taken for a hang. Without the webserver (or curl)
# systemd's `active` is all there is to go by.
falco_healthy_now() {
    healthz_ok && return 0
    sleep 2
    healthz_ok
}

# Falco's log stays on the host: it holds alerts with command lines (root-only there), and this output goes to
# Pulumi's and CI's logs. The EXIT trap then puts back what this converge changed (rollback_converge).
# rollback_and_fail [WHY]
rollback_and_fail() {
    die "$P_UNIT_NAME ${1:-"did not come up healthy with the new bundle within ${HEALTH_TIMEOUT_SECONDS}s"}; its log stays on the host: run journalctl -u $P_UNIT_NAME -n 50 there as root. Putting back the previous files, package and units (below); fix the settings and converge again"
}

# How the package's units were before converge first masked them (enabled? running?), kept for uninstall:
# $STATE_DIR/package-units-found, one "unit<TAB>UnitFileState<TAB>ActiveState" line per unit, the first record
# of a unit kept.
record_package_units_found() {
    local k file=$STATE_DIR/package-units-found line have=" "
    if [[ -f $file ]]; then
        while IFS=$'\t' read -r line _; do have+="$line "; done <"$file"
    fi
    for k in "${!U_NAMES[@]}"; do
        ((k > 0)) || continue
        [[ ${CUR_LOAD[k]:-} == loaded && $have != *" ${U_NAMES[k]} "* ]] || continue
        printf '%s\t%s\t%s\n' "${U_NAMES[k]}" "${U_FILE[k]:--}" "${U_ACTIVE[k]:-inactive}" >>"$file"
    done
}

# Uninstall: the package's units as converge found them (unmasked by then): enabled again if they were, and
# started again if they were running. A unit the package no longer has (purged) is skipped.
restore_package_units_found() {
    local file=$STATE_DIR/package-units-found unit state active
    [[ -f $file ]] || return 0
    while IFS=$'\t' read -r unit state active; do
        [[ $unit =~ $RE_UNIT ]] || continue
        [[ $(systemctl show -p LoadState --value -- "$unit" 2>/dev/null || true) == loaded ]] || continue
        if [[ $state == enabled ]]; then
            log "enabling the package's $unit again (it was enabled before falco-nodes)"
            systemctl enable --quiet -- "$unit" || warn "could not enable $unit"
        fi
        if [[ $active == active ]]; then
            log "starting the package's $unit again (it was running before falco-nodes)"
            systemctl start -- "$unit" || warn "could not start $unit"
        fi
    done <"$file"
}
