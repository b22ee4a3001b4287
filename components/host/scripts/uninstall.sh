# shellcheck shell=bash
# falco-nodes host script, uninstall: take away everything converge put on this host.
# A part of the one script components/host/installScript.ts assembles (see converge.sh); not run on its own.

# shellcheck disable=SC2153 # O_* and B_* are set by read_host_manifest (files.sh) and read_bundle_manifest (bundle.sh)
uninstall() {
    local i group path purged=false sshd_touched=false sysctl_touched=false unit
    local -A seen=()
    local U_GROUP=() U_PATH=() masked=()

    # The bundle may carry secrets: unpacked in root's own state directory (0700), not /tmp; the EXIT trap
    # removes it on every path, and the rm -rf of $STATE_DIR below on success.
    unpack_bundle
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
    rm -rf -- "$STATE_DIR"

    log "uninstalled (package purged: $purged)"
    printf '{"uninstalled":true,"unit":"%s","purged":%s}\n' "$P_UNIT_NAME" "$purged" >&3
}
