# shellcheck shell=bash
# falco-nodes host script, firewall: the k8saudit webhook's nftables allowlist.
# A part of the one script components/host/installScript.ts assembles (see converge.sh); not run on its own.

# nft checks the new ruleset (syntax and kernel support) before anything is swapped in.
validate_firewall() {
    local i out
    for i in "${!F_PATH[@]}"; do
        [[ ${F_GROUP[i]} == firewall ]] || continue
        if ! out=$(nft -c -f "${F_SRC[i]}" 2>&1); then
            printf '%s\n' "$out" >&2
            die "nft rejected the k8saudit firewall ruleset (output above; check k8sAudit.allowedSources); $(unchanged_note)"
        fi
    done
}

# Load the allowlist when it changed or is missing from the kernel (flushed by hand), before Falco (re)starts
# listening; enable its boot unit.
# shellcheck disable=SC2034 # CHANGED is read by converge (converge.sh)
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

# k8sAudit (or its firewall) was turned off: drop our table, once Falco no longer listens.
# shellcheck disable=SC2034 # CHANGED is read by converge (converge.sh)
remove_firewall_table() {
    have_executable nft || return 0
    if nft list table inet "$P_FW_TABLE" >/dev/null 2>&1; then
        log "removing the nftables table inet $P_FW_TABLE"
        nft delete table inet "$P_FW_TABLE"
        CHANGED=true
    fi
}
