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
rollback_and_fail() {
    die "$P_UNIT_NAME did not come up healthy with the new bundle within ${HEALTH_TIMEOUT_SECONDS}s; its log stays on the host: run journalctl -u $P_UNIT_NAME -n 50 there as root. Putting back the previous files, package and units (below); fix the settings and converge again"
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
