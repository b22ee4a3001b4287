#!/bin/bash
# TEST STAND-IN `falcoctl` (falco-nodes e2e suite), NOT falcoctl: only the `driver` commands the kmod install path
# uses, modelled on falcoctl v0.13 for the kmod driver, including the parts that make that path hard:
#   driver config [--type T] [--update-falco=BOOL] [--repo URL]   (cmd/driver/config/config.go RunDriverConfig)
#       stores the type (and repo) in /etc/falcoctl/falcoctl.yaml; with --update-falco true (the default) it
#       also tells Falco which engine to use, behind its owner's back: falcoctl v0.13 writes
#       /etc/falco/config.d/engine-kind-falcoctl.yaml (`engine: {kind: <type>}`), which Falco loads after
#       falco.yaml (issue 15's reading of v0.13; older falcoctl edited `kind:` in falco.yaml itself).
#   driver install [--download=BOOL] [--compile=BOOL]             (cmd/driver/install/install.go RunDriverInstall)
#       cleanup first (pkg/driver/type/kmod.go Cleanup: rmmod a loaded falco, 10 tries 5 s apart, then go on
#       with a warning); then the download only (no dkms here: compile is not modelled and fails), from
#       <repo>/<driver version>/x86_64/falco_debian_<uname -r>_1.ko into
#       ~/.falco/<driver version>/x86_64/ (pkg/driver/distro/distro.go toURL, toLocalPath), skipped when that file
#       exists (ErrAlreadyPresent); then `insmod` of that file (kmod.go Load). Nothing goes below /lib/modules.
#   driver cleanup                                                 (cmd/driver/cleanup/cleanup.go: kmod Cleanup)
# The driver version is the one the installed falco reports (`Default driver:`), as the package's falcoctl.yaml
# pins it. Every call is appended to /var/log/falcoctl-standin.log (for the tests).
set -euo pipefail
CONFIG=/etc/falcoctl/falcoctl.yaml
printf '%s\n' "$*" >>/var/log/falcoctl-standin.log
log() { printf 'INFO  %s\n' "$*"; }
warn() { printf 'WARN  %s\n' "$*"; }
[[ ${1:-} == driver ]] || { echo "falcoctl stand-in: only 'driver' is modelled, not: $*" >&2; exit 1; }
cmd=${2:-}
shift 2 || true

flag() { # flag NAME DEFAULT ARGS...: the value of --NAME=V / --NAME V / --NAME (true)
    local name=$1 value=$2
    shift 2
    while (($#)); do
        case $1 in
        "--$name="*) value=${1#*=} ;;
        "--$name") if [[ ${2:-} == true || ${2:-} == false || (${2:-} != --* && -n ${2:-}) ]]; then value=$2; shift; else value=true; fi ;;
        esac
        shift
    done
    printf '%s' "$value"
}
conf() { sed -n "s/^$1: *//p" "$CONFIG" 2>/dev/null | head -n 1; }

cleanup() {
    local i
    log "Check if kernel module is still loaded."
    if lsmod | cut -d' ' -f1 | grep -qx falco; then
        for ((i = 0; i < 10; i++)); do
            log "Kernel module is still loaded. Trying to unload it with 'rmmod'."
            if rmmod falco 2>/dev/null; then log "OK! Unloading module succeeded."; return 0; fi
            log "Nothing to do...'falcoctl' will wait until you remove the kernel module to have a clean termination."
            sleep 5
        done
        warn "Kernel module is still loaded, you could have incompatibility issues."
    else
        log "OK! There is no module loaded."
    fi
    log "Skipping dkms remove (dkms not found)."
}

case $cmd in
config)
    type=$(flag type "$(conf type)" "$@")
    update=$(flag update-falco true "$@")
    repo=$(flag repo "$(conf repo)" "$@")
    log "Running falcoctl driver config type=$type"
    if [[ $update == true && -d /etc/falco/config.d ]]; then
        printf 'engine:\n  kind: %s\n' "$type" >/etc/falco/config.d/engine-kind-falcoctl.yaml
    fi
    install -d -m 0755 "${CONFIG%/*}"
    printf 'type: %s\nrepo: %s\n' "$type" "${repo:-https://download.falco.org/driver}" >"$CONFIG"
    ;;
install)
    [[ $(conf type) == kmod ]] || { echo "falcoctl stand-in: only the kmod driver is modelled" >&2; exit 1; }
    download=$(flag download true "$@")
    version=$(falco -c /dev/null --version 2>/dev/null | sed -n 's/^ *Default driver: *//p')
    [[ -n $version ]] || { echo "ERROR unable to read the driver version from falco --version" >&2; exit 1; }
    file="falco_debian_$(uname -r)_1.ko"
    dest="$HOME/.falco/$version/x86_64/$file"
    log "Running falcoctl driver install driver version=$version driver type=kmod compile=$(flag compile true "$@") download=$download"
    cleanup
    if [[ -f $dest ]]; then
        log "Skipping download, driver already present. path=$dest"
    elif [[ $download == true ]]; then
        url="$(conf repo)/${version//+/%2B}/x86_64/$file" # toURL: url.QueryEscape(driver version)
        log "Trying to download a driver. url=$url"
        install -d -m 0750 "${dest%/*}"
        if ! curl -fsS --max-time 60 -o "$dest.part" -- "$url"; then
            rm -f "$dest.part"
            echo "ERROR failed: unable to find a prebuilt driver" >&2
            exit 1
        fi
        mv "$dest.part" "$dest"
        log "Driver downloaded. path=$dest"
    else
        echo "ERROR failed: failed to compile the module (compile is not modelled by the stand-in)" >&2
        exit 1
    fi
    if insmod "$dest" 2>/dev/null; then log "Success: module found and loaded in dkms. driver=$dest"; else warn "Unable to insmod module. driver=$dest"; fi
    ;;
cleanup)
    cleanup
    ;;
*)
    echo "falcoctl stand-in: 'driver $cmd' is not modelled" >&2
    exit 1
    ;;
esac
