#!/bin/bash
# TEST STAND-IN `falcoctl` (falco-nodes e2e suite), NOT falcoctl: only the commands converge uses, modelled on
# falcoctl v0.13, including the parts that make those paths hard.
#
# `driver`, for the kmod install path:
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
# pins it.
#
# `artifact install`, for k8sAudit's plugins and rules (falco-nodes components/host/scripts/k8saudit.sh):
#   artifact install [--config F] [--plugins-dir D] [--rulesfiles-dir D] [--allowed-types T,..] [--plain-http]
#                    [--resolve-deps=BOOL] [--log-format F] [--] REF...
#   1. Indexes (cmd/artifact/artifact.go PersistentPreRun; internal/config/config.go Load): a config without an
#      `indexes` key gets falcoctl's default, falcosecurity's https://falcosecurity.github.io/falcoctl/index.yaml;
#      every index is fetched before anything else, and one that cannot be fetched is fatal ("unable to fetch
#      index ..."), whether or not a reference needs it. `indexes: []` means none. Only those two shapes and a
#      plain list of `- name:`/`url:` entries are read (no YAML parser here).
#   2. References (pkg/index/index/index.go ResolveReference, SignatureForIndexRef): a name without "/" is looked
#      up in the fetched indexes (`name`, `name:tag`, `name@digest`) and becomes `<registry>/<repository>` with that
#      tag or digest; only such a name gets the entry's cosign signature, whose keyless verification needs
#      Sigstore (internal/signature): NOT modelled, the stand-in refuses a signed entry instead of pretending. A full
#      reference is used as given: `host/repo:tag`, `host/repo@digest`, or `host/repo:tag@digest`, whose tag is
#      dropped (oras-go registry/reference.go ParseReference, "Valid Form B").
#   3. Pull (pkg/oci/puller/puller.go Pull, oras-go's Copy) over the OCI distribution API, https unless
#      --plain-http, trusting the system's CAs or $SSL_CERT_FILE as Go's crypto/x509 does on Linux: the manifest
#      by tag or digest; an image index (how falcoctl pushes plugins, pkg/oci/pusher/pusher.go packIndex) narrowed
#      to the manifest for linux/<this machine's GOARCH>; then the config blob and the one layer. Every blob and
#      manifest fetched by digest is checked against it, as oras-go does (content.NewVerifyReader): a mismatch is
#      fatal before anything is written. The layer's media type says what the artifact is
#      (application/vnd.cncf.falco.plugin.layer.v1+tar.gz or ...rulesfile.layer.v1+tar.gz, pkg/oci/constants.go),
#      and must be among --allowed-types (puller CheckAllowedType).
#   4. Install (cmd/artifact/install/install.go RunArtifactInstall; internal/utils/extract.go ExtractTarGz): the
#      destination (--plugins-dir for a plugin, --rulesfiles-dir for a rules file) must exist and be writable; the
#      layer is untarred into it, refusing any member name containing "..".
# Dependencies (--resolve-deps) are not modelled: converge passes --resolve-deps=false.
#
# Every call is appended to /var/log/falcoctl-standin.log (for the tests; $FALCOCTL_STANDIN_LOG overrides it).
set -euo pipefail
CONFIG=/etc/falcoctl/falcoctl.yaml
printf '%s\n' "$*" >>"${FALCOCTL_STANDIN_LOG:-/var/log/falcoctl-standin.log}"
log() { printf 'INFO  %s\n' "$*"; }
warn() { printf 'WARN  %s\n' "$*"; }
fail() { printf 'ERROR %s\n' "$*" >&2; exit 1; }
case "${1:-} ${2:-}" in
driver\ *) ;;
"artifact install") ;;
*) echo "falcoctl stand-in: only 'driver' and 'artifact install' are modelled, not: $*" >&2; exit 1 ;;
esac
group=$1 cmd=${2:-}
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

# --- artifact install ---------------------------------------------------------------------------------------

readonly DEFAULT_INDEX_NAME=falcosecurity
readonly DEFAULT_INDEX_URL=https://falcosecurity.github.io/falcoctl/index.yaml
readonly PLUGIN_LAYER=application/vnd.cncf.falco.plugin.layer.v1+tar.gz
readonly RULESFILE_LAYER=application/vnd.cncf.falco.rulesfile.layer.v1+tar.gz
readonly OCI_INDEX=application/vnd.oci.image.index.v1+json
readonly OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json

# curl as falcoctl's Go HTTP client would connect: https, the system's CAs or $SSL_CERT_FILE.
http_get() { # URL OUT [curl args...]
    local url=$1 out=$2
    shift 2
    local ca=()
    [[ -n ${SSL_CERT_FILE:-} ]] && ca=(--cacert "$SSL_CERT_FILE")
    curl -fsSL --max-time 60 "${ca[@]}" "$@" -o "$out" -- "$url"
}

sha256_of() { sha256sum -- "$1" | cut -d' ' -f1; }

# Fetch blob or manifest $3 (a digest) of repository $2 at $1 into $4, and check it against the digest.
fetch_verified() { # BASE REPO DIGEST OUT KIND
    local base=$1 repo=$2 digest=$3 out=$4 kind=$5 accept=()
    [[ $digest =~ ^sha256:[0-9a-f]{64}$ ]] || fail "invalid digest \"$digest\": only sha256 is modelled"
    [[ $kind == manifests ]] && accept=(-H "Accept: $OCI_INDEX, $OCI_MANIFEST")
    http_get "$base/v2/$repo/$kind/$digest" "$out" "${accept[@]}" || fail "unable to fetch $repo@$digest: $kind request failed"
    [[ sha256:$(sha256_of "$out") == "$digest" ]] ||
        fail "unable to pull artifact $repo@$digest: mismatched digest: fetched content has sha256:$(sha256_of "$out")"
}

# The index entries' fields for NAME across the fetched index files: "registry repository signed".
index_entry() { # NAME INDEXFILES...
    local name=$1
    shift
    awk -v want="$name" '
        /^- name:/ { if (found) exit; sub(/^- name: */, ""); cur = $0; reg = ""; repo = ""; signed = "unsigned"; next }
        cur == want && /^ +registry:/ { sub(/^ +registry: */, ""); reg = $0 }
        cur == want && /^ +repository:/ { sub(/^ +repository: */, ""); repo = $0 }
        cur == want && /^ +signature:/ { signed = "signed" }
        cur == want { found = 1 }
        END { if (found) print reg, repo, signed }
    ' "$@"
}

artifact_install() {
    local config=/etc/falcoctl/falcoctl.yaml pdir=/usr/share/falco/plugins rdir=/etc/falco allowed="" scheme=https
    local refs=() work names=() urls=() i ref
    while (($#)); do
        case $1 in
        --config) config=$2; shift ;;
        --config=*) config=${1#*=} ;;
        --plugins-dir) pdir=$2; shift ;;
        --plugins-dir=*) pdir=${1#*=} ;;
        --rulesfiles-dir) rdir=$2; shift ;;
        --rulesfiles-dir=*) rdir=${1#*=} ;;
        --allowed-types) allowed=$2; shift ;;
        --allowed-types=*) allowed=${1#*=} ;;
        --plain-http | --plain-http=true) scheme=http ;;
        --log-format) shift ;;
        --log-format=* | --resolve-deps=false) ;;
        --resolve-deps | --resolve-deps=true) fail "falcoctl stand-in: dependency resolution is not modelled (pass --resolve-deps=false)" ;;
        --) shift; refs+=("$@"); break ;;
        -*) fail "falcoctl stand-in: flag $1 is not modelled" ;;
        *) refs+=("$1") ;;
        esac
        shift
    done
    ((${#refs[@]})) || fail "no artifacts to install, please configure artifacts or pass them as arguments to this command"
    work=$(mktemp -d)
    # shellcheck disable=SC2064 # expand now: $work is local
    trap "rm -rf -- '$work'" EXIT

    # 1. Indexes.
    if [[ ! -f $config ]] || ! grep -q '^indexes:' "$config"; then
        names=("$DEFAULT_INDEX_NAME") urls=("$DEFAULT_INDEX_URL")
    elif ! grep -qx 'indexes: *\[\] *' "$config"; then
        mapfile -t names < <(sed -n 's/^ *- *name: *//p' "$config")
        mapfile -t urls < <(sed -n 's/^ *url: *//p' "$config")
    fi
    for i in "${!names[@]}"; do
        http_get "${urls[i]}" "$work/index-$i.yaml" 2>"$work/err" ||
            fail "unable to fetch index \"${names[i]}\" with URL \"${urls[i]}\": $(tr '\n' ' ' <"$work/err")"
    done

    for ref in "${refs[@]}"; do
        install_one "$ref" "$work" "$pdir" "$rdir" "$allowed" "$scheme" "${#names[@]}"
    done
}

install_one() { # REF WORK PLUGINS_DIR RULESFILES_DIR ALLOWED SCHEME N_INDEXES
    local ref=$1 work=$2 pdir=$3 rdir=$4 allowed=$5 scheme=$6 nidx=$7
    local host rest repo reference name tail entry signed base mtype arch digest config_digest layer type dest member
    # 2. Resolve.
    if [[ $ref != */* ]]; then
        name=${ref%%[@:]*} tail=${ref#"$name"}
        entry=""
        ((nidx)) && entry=$(index_entry "$name" "$work"/index-*.yaml)
        [[ -n $entry ]] || fail "cannot find $ref among the configured indexes, skipping"
        read -r host repo signed <<<"$entry"
        [[ $signed == unsigned ]] ||
            fail "falcoctl stand-in: $ref is signed in its index and cosign verification (Sigstore) is not modelled"
        ref=$host/$repo$tail
    fi
    host=${ref%%/*} rest=${ref#*/}
    if [[ $rest == *@* ]]; then
        repo=${rest%%@*} repo=${repo%%:*} reference=${rest#*@}
    elif [[ $rest == *:* ]]; then
        repo=${rest%:*} reference=${rest##*:}
    else
        repo=$rest reference=latest
    fi
    base=$scheme://$host
    log "Preparing to pull artifact ref=$ref"

    # 3. Pull: the manifest (by digest: verified), an index narrowed to this platform, then the blobs.
    if [[ $reference == sha256:* ]]; then
        fetch_verified "$base" "$repo" "$reference" "$work/root.json" manifests
    else
        http_get "$base/v2/$repo/manifests/$reference" "$work/root.json" -H "Accept: $OCI_INDEX, $OCI_MANIFEST" ||
            fail "unable to fetch reference $ref"
    fi
    digest=sha256:$(sha256_of "$work/root.json")
    mtype=$(jq -r '.mediaType // empty' "$work/root.json")
    if [[ $mtype == "$OCI_INDEX" ]]; then
        case $(uname -m) in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) arch=$(uname -m) ;; esac
        digest=$(jq -r --arg arch "$arch" '[.manifests[] | select(.platform.os == "linux" and .platform.architecture == $arch)][0].digest // empty' "$work/root.json")
        [[ -n $digest ]] || fail "unable to pull artifact $ref: unable to find a manifest matching the given platform: linux $arch"
        fetch_verified "$base" "$repo" "$digest" "$work/manifest.json" manifests
    else
        cp -- "$work/root.json" "$work/manifest.json"
    fi
    config_digest=$(jq -r '.config.digest' "$work/manifest.json")
    fetch_verified "$base" "$repo" "$config_digest" "$work/config.json" blobs
    layer=$(jq -r '.layers[0].digest // empty' "$work/manifest.json")
    [[ -n $layer ]] || fail "no layers in manifest"
    case $(jq -r '.layers[0].mediaType' "$work/manifest.json") in
    "$PLUGIN_LAYER") type=plugin dest=$pdir ;;
    "$RULESFILE_LAYER") type=rulesfile dest=$rdir ;;
    *) fail "unknown media type: \"$(jq -r '.layers[0].mediaType' "$work/manifest.json")\"" ;;
    esac
    if [[ -n $allowed && ,$allowed, != *",$type,"* ]]; then
        fail "artifact type \"$type\" not allowed, allowed types: $allowed"
    fi
    fetch_verified "$base" "$repo" "$layer" "$work/layer.tar.gz" blobs

    # 4. Install.
    [[ -d $dest && -w $dest ]] || fail "cannot use directory \"$dest\" as install destination: not an existing, writable directory"
    log "Extracting and installing artifact type=$type file=$(jq -r '.layers[0].annotations["org.opencontainers.image.title"] // ""' "$work/manifest.json")"
    while IFS= read -r member; do
        [[ $member != *..* ]] || fail "cannot extract \"$work/layer.tar.gz\" to \"$dest\": not allowed relative path in tar archive"
    done < <(tar -tzf "$work/layer.tar.gz")
    tar -xzf "$work/layer.tar.gz" -C "$dest" --no-same-owner
    log "Artifact successfully installed name=$ref type=$type digest=$digest directory=$dest"
}

if [[ $group == artifact ]]; then
    artifact_install "$@"
    exit 0
fi

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
