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
    make_dir 0755 "$dir"
    # shellcheck disable=SC2016 # positional parameters of the inner shell
    if ! out=$(unshare --mount --propagation private -- bash -c \
        'mount --bind -- "$1" "$2" && exec sshd -t' falco-nodes-validate "$candidate" "$dir" 2>&1); then
        printf '%s\n' "$out" >&2
        die "sshd -t rejected the configuration with the new drop-in (output above); sshd was not reloaded; $(unchanged_note)"
    fi
    check_sshd_access "$candidate" "$dir"
}

# The SSH connection this converge runs in: CONN_USER, CONN_ADDR (the client), CONN_LADDR and CONN_LPORT (where
# it reached sshd), from SSH_CONNECTION ("client port server port", set by sshd for the session) in the
# environment of the closest process up the tree that has it: this shell when root logged in, the login
# user's shell when sudo (which drops SSH_CONNECTION) ran us. Empty when not run over SSH.
find_ssh_connection() {
    local pid=$$ entry stat uid conn="" envs=()
    # shellcheck disable=SC2034 # read by check_sshd_access
    CONN_USER="" CONN_ADDR="" CONN_LADDR="" CONN_LPORT=""
    while [[ $pid =~ ^[0-9]+$ ]] && ((pid > 1)); do
        envs=()
        if [[ -r /proc/$pid/environ ]]; then mapfile -d '' envs </proc/"$pid"/environ 2>/dev/null || true; fi
        for entry in "${envs[@]}"; do
            if [[ $entry == SSH_CONNECTION=* ]]; then conn=${entry#SSH_CONNECTION=}; fi
        done
        if [[ -n $conn ]]; then
            # The real uid (the first on the Uid: line): sudo, setuid root, still has the login user's.
            uid=""
            while read -r entry stat _; do
                if [[ $entry == Uid: ]]; then uid=$stat; fi
            done <"/proc/$pid/status"
            [[ $uid =~ ^[0-9]+$ ]] || return 0
            CONN_USER=$(id -nu -- "$uid" 2>/dev/null) || return 0
            read -r CONN_ADDR _ CONN_LADDR CONN_LPORT <<<"$conn"
            [[ $CONN_LPORT =~ ^[0-9]+$ ]] || CONN_USER=""
            return 0
        fi
        # /proc/<pid>/stat: "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        IFS= read -r stat <"/proc/$pid/stat" 2>/dev/null || return 0
        stat=${stat##*) }
        read -r _ pid _ <<<"$stat"
    done
}

# Does IPv4 address $1 lie in CIDR $2? (Not IPv4: unknown, status 2.)
ipv4_in_cidr() {
    local a b c d net bits n m
    [[ $1 =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)\.([0-9]+)$ ]] || return 2
    n=$(((BASH_REMATCH[1] << 24) | (BASH_REMATCH[2] << 16) | (BASH_REMATCH[3] << 8) | BASH_REMATCH[4]))
    net=${2%/*} bits=${2#*/}
    IFS=. read -r a b c d <<<"$net"
    [[ $a$b$c$d =~ ^[0-9]+$ && $bits =~ ^[0-9]+$ ]] && ((bits <= 32)) || return 2
    m=$(((a << 24) | (b << 16) | (c << 8) | d))
    ((bits == 0)) && return 0
    (((n >> (32 - bits)) == (m >> (32 - bits))))
}

# sshd's user pattern (AllowUsers/DenyUsers: USER or USER@HOST, glob wildcards) against the connection.
# (OpenSSH auth.c match_user: HOST is matched against the client's name and address, CIDR allowed.)
sshd_user_matches() {
    local pattern=$1 upat hpat rc=0
    upat=${pattern%%@*}
    # shellcheck disable=SC2053 # a glob: sshd's * and ? wildcards
    [[ $CONN_USER == $upat ]] || return 1
    [[ $pattern == *@* ]] || return 0
    hpat=${pattern#*@}
    if [[ $hpat == */* ]]; then
        ipv4_in_cidr "$CONN_ADDR" "$hpat" || rc=$?
        ((rc != 2)) || return 0 # an IPv6 network: not evaluated here, taken as matching (never a false refusal)
        return "$rc"
    fi
    # shellcheck disable=SC2053
    [[ $CONN_ADDR == $hpat ]]
}

# Would the connecting user still get in with the candidate configuration? `sshd -T -C` evaluates it for this
# connection (Match blocks included: OpenSSH servconf.c), in the same private mount namespace as `sshd -t`. The
# checks follow what sshd does at login (auth.c allowed_user, auth2.c): the port and address it listens on,
# PermitRootLogin, Deny/Allow users and groups, AuthenticationMethods, and, on a host that carries forwarded SSH
# connections (a bastion), TCP forwarding. Any one failing keeps the old configuration.
check_sshd_access() {
    local candidate=$1 dir=$2 out line key value listen_ok=false method_ok=false groups=() g pattern matched
    local problems=() forwards="" users_allow=() users_deny=() groups_allow=() groups_deny=()
    local -A one=()
    find_ssh_connection
    if [[ -z $CONN_USER ]]; then
        log "not run over SSH: the new sshd configuration is checked for syntax only"
        return 0
    fi
    # shellcheck disable=SC2016 # positional parameters of the inner shell
    if ! out=$(unshare --mount --propagation private -- bash -c 'mount --bind -- "$1" "$2" && exec sshd -T -C "$3"' \
        falco-nodes-validate "$candidate" "$dir" "user=$CONN_USER,addr=$CONN_ADDR,host=$CONN_ADDR,laddr=$CONN_LADDR,lport=$CONN_LPORT" 2>&1); then
        printf '%s\n' "$out" >&2
        die "sshd -T could not evaluate the configuration with the new drop-in for $CONN_USER (output above); sshd was not reloaded; $(unchanged_note)"
    fi
    while IFS= read -r line; do
        key=${line%% *} value=${line#* }
        case $key in
        listenaddress)
            if [[ ${value##*:} == "$CONN_LPORT" ]]; then
                case ${value%:*} in "0.0.0.0" | "[::]" | "$CONN_LADDR" | "[$CONN_LADDR]") listen_ok=true ;; esac
            fi
            ;;
        allowusers) users_allow+=("$value") ;;
        denyusers) users_deny+=("$value") ;;
        allowgroups) groups_allow+=("$value") ;;
        denygroups) groups_deny+=("$value") ;;
        *) one[$key]=$value ;;
        esac
    done <<<"$out"
    [[ $listen_ok == true ]] || problems+=("sshd would no longer listen on $CONN_LADDR port $CONN_LPORT, where this connection came in (Port, ListenAddress)")
    if [[ $CONN_USER == root ]]; then
        case ${one[permitrootlogin]:-} in yes | prohibit-password | without-password) ;; *) problems+=("PermitRootLogin ${one[permitrootlogin]:-?} shuts root out") ;; esac
    fi
    [[ ${one[pubkeyauthentication]:-yes} == yes ]] || problems+=("PubkeyAuthentication no shuts out key logins")
    value=${one[authenticationmethods]:-any}
    if [[ $value == any ]]; then method_ok=true; fi
    for pattern in $value; do
        [[ ${pattern//publickey/} =~ ^[,]*$ ]] && method_ok=true
    done
    [[ $method_ok == true ]] || problems+=("AuthenticationMethods $value asks for more than a key, and this connection has only its key")
    [[ ${one[forcecommand]:-none} == none ]] || problems+=("ForceCommand ${one[forcecommand]} would replace the converge command")
    [[ ${one[maxsessions]:-10} != 0 ]] || problems+=("MaxSessions 0 allows no session")
    for pattern in "${users_deny[@]}"; do
        if sshd_user_matches "$pattern"; then problems+=("DenyUsers $pattern matches $CONN_USER"); fi
    done
    if ((${#users_allow[@]} > 0)); then
        matched=false
        for pattern in "${users_allow[@]}"; do
            if sshd_user_matches "$pattern"; then matched=true; fi
        done
        [[ $matched == true ]] || problems+=("AllowUsers ${users_allow[*]} does not include $CONN_USER from $CONN_ADDR")
    fi
    if ((${#groups_allow[@]} + ${#groups_deny[@]} > 0)); then
        read -ra groups <<<"$(id -Gn -- "$CONN_USER" 2>/dev/null || true)"
        for pattern in "${groups_deny[@]}"; do
            for g in "${groups[@]}"; do
                # shellcheck disable=SC2053
                if [[ $g == $pattern ]]; then problems+=("DenyGroups $pattern matches $CONN_USER's group $g"); fi
            done
        done
        if ((${#groups_allow[@]} > 0)); then
            matched=false
            for pattern in "${groups_allow[@]}"; do
                for g in "${groups[@]}"; do
                    # shellcheck disable=SC2053
                    if [[ $g == $pattern ]]; then matched=true; fi
                done
            done
            [[ $matched == true ]] || problems+=("AllowGroups ${groups_allow[*]} includes none of $CONN_USER's groups (${groups[*]:-none})")
        fi
    fi
    forwards=$(forwarded_connections)
    if [[ -n $forwards ]]; then
        if [[ ${one[disableforwarding]:-no} == yes ]]; then
            problems+=("DisableForwarding yes would cut the SSH connections this host forwards (a bastion: $forwards)")
        elif [[ ${one[allowtcpforwarding]:-yes} == no || ${one[allowtcpforwarding]:-yes} == remote ]]; then
            problems+=("AllowTcpForwarding ${one[allowtcpforwarding]} would cut the SSH connections this host forwards for ProxyJump (a bastion: $forwards); set hardening.sshd.overrides.AllowTcpForwarding: local")
        fi
    fi
    ((${#problems[@]} == 0)) && return 0
    for line in "${problems[@]}"; do warn "$line"; done
    die "the new sshd configuration would lock $CONN_USER (connecting from $CONN_ADDR to port $CONN_LPORT) out: ${problems[*]}. Fix hardening.sshd (or the host's own sshd configuration); sshd was not reloaded and keeps its current configuration; $(unchanged_note)"
}

# Where this host's sshd is connected onward (a forwarded direct-tcpip channel: ProxyJump, ssh -L): established
# TCP connections of sshd processes from a port sshd does not listen on. Empty when none, or without ss. Since
# OpenSSH 9.8 the per-connection process that opens the forwarded socket is `sshd-session` (openssh-portable
# sshd-session.c, split from sshd.c in V_9_8_P1; Debian 13 ships 10.0), the listener still `sshd`.
forwarded_connections() {
    local line local_addr peer listening=" " out=()
    have_executable ss || return 0
    while read -r line; do
        [[ $line == *'"sshd"'* ]] || continue
        read -r _ _ _ local_addr _ <<<"$line" # State Recv-Q Send-Q Local Peer Process
        listening+="${local_addr##*:} "
    done < <(ss -Htlnp 2>/dev/null || true)
    while read -r line; do
        [[ $line == *'"sshd"'* || $line == *'"sshd-session"'* ]] || continue
        read -r _ _ local_addr peer _ <<<"$line" # with a state filter, no State column
        [[ $listening == *" ${local_addr##*:} "* ]] && continue
        out+=("$peer")
    done < <(ss -Htnp state established 2>/dev/null || true)
    printf '%s' "${out[*]}"
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
