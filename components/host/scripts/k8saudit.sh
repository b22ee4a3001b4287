# shellcheck shell=bash
# falco-nodes host script, Kubernetes audit events (k8sAudit): what the host must provide, and the pinned plugins and rules.
# A part of the one script components/host/installScript.ts assembles (see converge.sh); not run on its own.

# What the host must provide for k8sAudit, checked before anything changes: nft for the firewall, and the TLS
# certificate, which falco-nodes never handles (its key stays out of Pulumi state), in place and root-only.
check_k8saudit_host() {
    local owner_mode
    if bundle_has_group firewall && ! have_executable nft; then
        die "k8sAudit: nft (nftables) is not installed, and the webhook's firewall (k8sAudit.allowedSources) needs it: install the nftables package, or set k8sAudit.firewall: false if another firewall enforces the same allowlist; nothing was changed"
    fi
    [[ -n $P_TLS_CERT ]] || return 0
    [[ -f $P_TLS_CERT && ! -L $P_TLS_CERT ]] ||
        die "k8sAudit.tls.certificatePath $P_TLS_CERT is not a file on this host: put the PEM (certificate chain and private key, concatenated) there, root-owned with mode 0600; nothing was changed"
    owner_mode=$(stat -c '%u %a' -- "$P_TLS_CERT")
    [[ ${owner_mode%% *} == 0 && $((8#${owner_mode#* } & 8#077)) == 0 ]] ||
        die "k8sAudit.tls.certificatePath $P_TLS_CERT holds a private key but is not root-owned with mode 0600 (owner uid and mode: $owner_mode): run chown root:root and chmod 0600 on it; nothing was changed"
}

# Is artifact directory $1 what converge installed from ref $2 (same reference, file $3 unchanged)?
artifact_intact() {
    local dir=$1 ref=$2 name=$3
    [[ -d $dir && ! -L $dir && -f $dir/.falco-nodes-ref && -f $dir/$name && ! -L $dir/$name ]] || return 1
    [[ $(<"$dir/.falco-nodes-ref") == "$ref" ]] || return 1
    (cd -- "$dir" && sha256sum --quiet --status -c .falco-nodes-sha256) 2>/dev/null
}

# The pinned plugins and rules, with falcoctl, each into its own versioned directory below artifacts_dir. Staged
# before validation, which is safe: nothing Falco uses changes until the new falco.yaml naming them is swapped in.
# An artifact that is present and intact is not downloaded again; one that changed on the host is replaced, and
# Falco restarted so it stops running the changed copy.
# shellcheck disable=SC2034 # CHANGED and ARTIFACTS_REPAIRED are read by converge (converge.sh)
ensure_k8saudit_artifacts() {
    local i file name ref target tmp
    ARTIFACTS_REPAIRED=false
    ((${#ART_FILES[@]})) || return 0
    make_dir 0700 "$P_ARTIFACTS_DIR"
    for i in "${!ART_FILES[@]}"; do
        file=${ART_FILES[i]} ref=${ART_REFS[i]}
        name=${file#*/} target="$P_ARTIFACTS_DIR/${file%%/*}"
        if artifact_intact "$target" "$ref" "$name"; then continue; fi
        if [[ -e $target || -L $target ]]; then
            warn "$target is not what converge installed from $ref (changed, or left incomplete): installing it again"
            ARTIFACTS_REPAIRED=true
        fi
        command -v falcoctl >/dev/null 2>&1 ||
            die "k8sAudit: falcoctl is not installed (the Falco packages ship it) and $ref is needed; nothing was changed"
        tmp=$(mktemp -d "$P_ARTIFACTS_DIR/.install.XXXXXXXXXX")
        # falcoctl fills every key its config leaves out with its default, and the default index list is
        # falcosecurity's, https://falcosecurity.github.io/falcoctl/index.yaml (falcosecurity/falcoctl
        # internal/config/config.go, Load: viper.SetDefault(IndexesKey, []Index{DefaultIndex})), added (fetched)
        # before any install and fatal when that fails (cmd/artifact/artifact.go, PersistentPreRun). That index
        # is also where the cosign signatures of falcosecurity's own artifacts come from, and only for a
        # reference given by index name: `artifact install` asks SignatureForIndexRef, which returns none for a
        # fully qualified reference (cmd/artifact/install/install.go; pkg/index/index/index.go). So the bundle
        # names falcosecurity's artifacts by index name and digest (`k8saudit@sha256:...`, k8sAudit.ts
        # artifactReference), resolved and signature-checked through the default index (online: ghcr.io, the
        # index, Sigstore); a mirror's artifacts by full reference and digest, with no index at all,
        # `indexes: []`, as that host cannot fetch falcosecurity's, which names no mirror anyway. Either way the
        # digest is pinned: falcoctl pulls the manifest by digest (oras-go verifies the content against it). No
        # follow, no other artifacts.
        if [[ $ref != */* ]]; then
            : >"$WORK/falcoctl.yaml"
        else
            printf 'indexes: []\n' >"$WORK/falcoctl.yaml"
        fi
        log "installing $ref with falcoctl"
        if ! falcoctl artifact install --config "$WORK/falcoctl.yaml" --log-format text --resolve-deps=false \
            --allowed-types plugin,rulesfile --plugins-dir "$tmp" --rulesfiles-dir "$tmp" -- "$ref" </dev/null >&2; then
            rm -rf -- "$tmp"
            die "falcoctl could not install $ref (k8sAudit.pluginVersions, k8sAudit.pluginDigests, k8sAudit.registry; output above); Falco's configuration was not changed"
        fi
        if [[ ! -f $tmp/$name || -L $tmp/$name ]]; then
            rm -rf -- "$tmp"
            die "$ref holds no $name: check k8sAudit.pluginVersions; Falco's configuration was not changed"
        fi
        printf '%s\n' "$ref" >"$tmp/.falco-nodes-ref"
        (cd -- "$tmp" && sha256sum -- "$name" >.falco-nodes-sha256)
        chown -R root:root -- "$tmp"
        chmod -R go-w -- "$tmp"
        rm -rf -- "$target"
        mv -- "$tmp" "$target"
        CHANGED=true
    done
}

# After a converge that succeeded: artifact directories this bundle does not name (older versions) go.
prune_artifacts() {
    local entry keep i
    [[ -d $P_ARTIFACTS_DIR ]] || return 0
    for entry in "$P_ARTIFACTS_DIR"/* "$P_ARTIFACTS_DIR"/.install.*; do
        [[ -e $entry || -L $entry ]] || continue
        keep=false
        for i in "${!ART_FILES[@]}"; do
            if [[ ${entry##*/} == "${ART_FILES[i]%%/*}" ]]; then keep=true; fi
        done
        if [[ $keep == false ]]; then
            log "removing $entry (no longer in the bundle)"
            rm -rf -- "$entry"
        fi
    done
    rmdir -- "$P_ARTIFACTS_DIR" 2>/dev/null || true
}
