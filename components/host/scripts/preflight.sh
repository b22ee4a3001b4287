# shellcheck shell=bash
# falco-nodes host script, preflight: root, systemd, tools, space, the lock, cloud-init, distribution and kernel. Nothing on the host changes before these pass.
# A part of the one script components/host/installScript.ts assembles (see converge.sh); not run on its own.

require_root() {
    [[ ${EUID} -eq 0 ]] || die "must run as root: run as root or via sudo -n (sudo -n bash -s -- converge < install.sh)"
}

require_systemd() {
    [[ -d /run/systemd/system ]] || die "systemd is not PID 1 on this host (no /run/systemd/system): falco-nodes runs Falco as a systemd service; nothing was changed"
}

require_tools() {
    local tool missing=()
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    ((${#missing[@]} == 0)) || die "required tools missing: ${missing[*]}; install them and run again (nothing was changed)"
}

free_mib() {
    local kib
    kib=$(df -Pk -- "$1" | {
        read -r _
        read -r _ _ _ avail _
        printf '%s' "${avail:-0}"
    })
    printf '%s' "$((kib / 1024))"
}

require_space() {
    local dir=$1 need=$2 have
    have=$(free_mib "$dir")
    ((have >= need)) || die "no space: $dir has ${have} MiB free, falco-nodes needs at least ${need} MiB there; free some space and run again (nothing was changed)"
}

# Every filesystem a bundle file lands on needs room, not only /etc's: /etc/falco may be a volume of its own.
# One df for all of them, before anything changes, so a full disk fails here with a clear message.
require_space_for_files() {
    local i dir avail dirs=() have=()
    local -A seen=()
    for i in "${!B_PATH[@]}"; do
        dir=${B_PATH[i]%/*}
        while [[ -n $dir && ! -d $dir ]]; do dir=${dir%/*}; done
        dir=${dir:-/}
        [[ -z ${seen[$dir]:-} ]] || continue
        seen[$dir]=1
        dirs+=("$dir")
    done
    ((${#dirs[@]} > 0)) || return 0
    mapfile -t have < <(df -k --output=avail -- "${dirs[@]}")
    have=("${have[@]:1}") # the header line
    for i in "${!dirs[@]}"; do
        avail=${have[i]//[[:space:]]/}
        [[ $avail =~ ^[0-9]+$ ]] || die "could not tell the free space of ${dirs[i]} (df)"
        ((avail / 1024 >= MIN_FREE_ETC_MIB)) ||
            die "no space: ${dirs[i]} has $((avail / 1024)) MiB free, falco-nodes needs at least $MIN_FREE_ETC_MIB MiB there; free some space and run again (nothing was changed)"
    done
}

take_lock() {
    exec 9>"$LOCK_FILE"
    flock -w 600 9 || die "another falco-nodes converge or uninstall still holds $LOCK_FILE after 10 minutes"
}

# A fresh cloud instance answers SSH before cloud-init has finished (apt sources, users, the sshd host key our
# connection pinned): wait for it, so package installs and the sshd drop-in do not race it. Hosts without
# cloud-init (bare metal) go straight on.
wait_for_cloud_init() {
    local rc=0 bin result=""
    # command -v also names a file that is not executable (bash reports it so running it fails clearly).
    bin=$(command -v cloud-init 2>/dev/null) && [[ -x $bin ]] || return 0
    # Finished on this boot without errors: cloud-init's own result file says so (/run is per boot; `cloud-init
    # status` reads the same file). Reading it spares every later converge a Python start; anything else, including
    # a format we do not recognise, asks cloud-init itself.
    if [[ -f /run/cloud-init/result.json ]]; then
        IFS= read -r -d '' result </run/cloud-init/result.json || true
        if [[ $result =~ \"errors\"[[:space:]]*:[[:space:]]*\[[[:space:]]*\] ]]; then return 0; fi
    fi
    log "waiting for cloud-init to finish (at most ${CLOUD_INIT_TIMEOUT_SECONDS}s)"
    timeout "$CLOUD_INIT_TIMEOUT_SECONDS" cloud-init status --wait >/dev/null 2>&1 || rc=$?
    case $rc in
    0 | 2) ;; # 2: done, with recoverable errors (cloud-init >= 23.4)
    124) die "cloud-init did not finish within ${CLOUD_INIT_TIMEOUT_SECONDS}s (cloud-init status --long says why); nothing was changed" ;;
    *) warn "cloud-init finished with an error (cloud-init status --long says which); converging anyway" ;;
    esac
}

# debian, rpm or unknown, from /etc/os-release (read as data, never sourced).
os_family() {
    local key value words=() more=() word
    [[ -r /etc/os-release ]] || {
        printf unknown
        return 0
    }
    while IFS='=' read -r key value; do
        value=${value#[\"\']}
        value=${value%[\"\']}
        if [[ $key == ID || $key == ID_LIKE ]]; then
            read -ra more <<<"$value"
            words+=("${more[@]}")
        fi
    done </etc/os-release
    for word in "${words[@]}"; do
        case $word in
        debian | ubuntu)
            printf debian
            return 0
            ;;
        rhel | fedora | centos | rocky | almalinux | alma | amzn | ol)
            printf rpm
            return 0
            ;;
        esac
    done
    printf unknown
}

# The package family install.source implies (empty for preinstalled).
source_family() {
    # shellcheck disable=SC2153 # P_SOURCE is assigned by param (a nameref), which shellcheck cannot follow
    case $P_SOURCE:$P_PACKAGE_FILE in
    apt:* | package-file:*.deb) printf debian ;;
    rpm:* | package-file:*.rpm) printf rpm ;;
    esac
}

# The distribution's ID from /etc/os-release (read as data), for messages.
os_id() {
    local key value
    if [[ -r /etc/os-release ]]; then
        while IFS='=' read -r key value; do
            [[ $key == ID ]] || continue
            value=${value#[\"\']}
            printf '%s' "${value%[\"\']}"
            return 0
        done </etc/os-release
    fi
    printf 'none'
}

# shellcheck disable=SC2034 # PKG_FAMILY is read by install.sh and uninstall.sh
check_source_fits_host() {
    local family needs
    family=$(os_family)
    needs=$(source_family)
    PKG_FAMILY=${needs:-$family}
    [[ -z $needs || $family == "$needs" ]] && return 0
    if [[ $family == unknown ]]; then
        die "unsupported distribution '$(os_id)' (ID in /etc/os-release): falco-nodes installs Falco on the Debian family (Debian, Ubuntu; install.source apt) and the RHEL family (RHEL, Fedora, Amazon Linux; install.source rpm), or runs a preinstalled Falco (install.source preinstalled); nothing was changed"
    fi
    die "install.source is $P_SOURCE${P_PACKAGE_FILE:+ ($P_PACKAGE_FILE)} but this host ('$(os_id)' in /etc/os-release) is of the $family family: set install.source to match (apt for Debian/Ubuntu, rpm for RHEL/Fedora/Amazon Linux); nothing was changed"
}

# Why modern_ebpf cannot run on this kernel; empty when it can.
modern_ebpf_problem() {
    local release major minor
    release=$(uname -r)
    IFS=. read -r major minor _ <<<"$release"
    minor=${minor%%[!0-9]*}
    if ! [[ $major =~ ^[0-9]+$ && $minor =~ ^[0-9]+$ ]]; then
        printf 'kernel %s has an unrecognised version' "$release"
    elif ((major < 5 || (major == 5 && minor < 8))); then
        printf 'kernel %s is older than 5.8' "$release"
    elif [[ ! -r /sys/kernel/btf/vmlinux ]]; then
        printf 'kernel %s lacks BTF (/sys/kernel/btf/vmlinux)' "$release"
    fi
}

choose_driver() {
    local problem
    problem=$(modern_ebpf_problem)
    case $P_DRIVER in
    modern_ebpf)
        [[ -z $problem ]] || die "$problem, which the modern_ebpf driver needs: set driver: kmod or auto; nothing was changed"
        DRIVER=modern_ebpf
        ;;
    kmod) DRIVER=kmod ;;
    auto)
        if [[ -z $problem ]]; then DRIVER=modern_ebpf; else DRIVER=kmod; fi
        log "driver auto: using $DRIVER${problem:+ ($problem)}"
        ;;
    esac
}
