# shellcheck shell=bash
# falco-nodes host script, sshd: validating the candidate drop-in directory and reloading sshd.
# A part of the one script components/host/installScript.ts assembles (see converge.sh); not run on its own.

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
        die "sshd -t rejected the configuration with the new drop-in (output above); sshd was not reloaded; $(unchanged_note)"
    fi
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
