# shellcheck shell=bash
# falco-nodes host script, the bundle: unpack it, read and check its parameters and manifest.
# A part of the one script components/host/installScript.ts assembles (see converge.sh); not run on its own.

unpack_bundle() {
    local stale
    install -d -m 0700 -o root -g root -- "$STATE_DIR"
    # Work directories of an interrupted run (we hold the lock, so none is in use).
    for stale in "$STATE_DIR"/work.*; do
        if [[ -d $stale ]]; then rm -rf -- "$stale"; fi
    done
    # One mkdir for both (not mktemp + mkdir): $STATE_DIR is root's alone (0700) and we hold the lock, so the
    # name needs to be unique, not unguessable.
    local work="$STATE_DIR/work.$$.$RANDOM"
    mkdir -m 0700 -- "$work" "$work/bundle" || die "could not create a work directory in $STATE_DIR"
    WORK=$work
    if ! falco_nodes_payload | tar -xzf - -C "$WORK/bundle" --no-same-owner --no-same-permissions; then
        die "could not unpack the bundle (truncated or damaged script?); nothing was changed"
    fi
    local format=""
    if [[ -f $WORK/bundle/params/format ]]; then IFS= read -r format <"$WORK/bundle/params/format" || true; fi
    [[ $format == "$PAYLOAD_FORMAT" ]] ||
        die "this bundle's format is not $PAYLOAD_FORMAT: render it with the same falco-nodes version as this script"
}

# param VAR NAME PATTERN: VAR = the parameter's value, which must match PATTERN (a bash regex).
param() {
    local -n param_into=$1
    local file="$WORK/bundle/params/$2" value=""
    [[ -f $file ]] || die "the bundle lacks parameter $2: render it again"
    # read, not $(<file): no subshell. A converge reads a few dozen parameters, and every fork counts on a slow host.
    IFS= read -r -d '' value <"$file" || true
    value=${value%$'\n'}
    [[ $value =~ $3 ]] || die "the bundle's parameter $2 is malformed: render it again"
    # shellcheck disable=SC2034 # a nameref: this assigns the caller's variable
    param_into=$value
}

# param_lines NAME PATTERN ARRAY: a multi-line parameter, one checked value per line, into ARRAY.
param_lines() {
    local -n into=$3
    local line
    into=()
    [[ -f $WORK/bundle/params/$1 ]] || die "the bundle lacks parameter $1: render it again"
    while IFS= read -r line || [[ -n $line ]]; do
        [[ -n $line ]] || continue
        [[ $line =~ $2 ]] || die "the bundle's parameter $1 is malformed: render it again"
        into+=("$line")
    done <"$WORK/bundle/params/$1"
}

load_params() {
    param P_VERSION falco_version '^[0-9]+\.[0-9]+\.[0-9]+$'
    param P_DRIVER driver '^(modern_ebpf|kmod|auto)$'
    param P_PERF perf_event_paranoid '^(auto|lower-to-2|grant-sys-admin)$'
    param P_SOURCE install_source '^(apt|rpm|package-file|preinstalled)$'
    param P_REPO_URL repo_url '^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%/-]*)?$'
    param P_KEY_URL key_url '^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%/-]*)?$'
    param P_KEY_FPR key_fingerprint '^[0-9A-F]{40}$'
    param P_PACKAGE_FILE package_file '^(/[A-Za-z0-9._/-]+\.(deb|rpm))?$'
    param P_PACKAGE_SHA256 package_sha256 '^([0-9a-f]{64})?$'
    param P_BINARY binary_path "$RE_PATH"
    param P_PURGE purge_on_uninstall "$RE_BOOL"
    param P_WEBSERVER webserver_enabled "$RE_BOOL"
    param P_PORT webserver_port '^[0-9]{1,5}$'
    param P_UNIT_NAME unit_name "$RE_UNIT"
    param P_UNIT_PATH unit_path "$RE_PATH"
    param P_UNIT_DROPIN_DIR unit_dropin_dir "$RE_PATH"
    param P_FALCO_DIR falco_config_dir "$RE_PATH"
    param P_FALCO_MAIN falco_main_config "$RE_PATH"
    param P_BUNDLE_HASH bundle_hash '^[0-9a-f]{64}$'
    param_lines package_units "$RE_UNIT" PACKAGE_UNITS
    param P_ARTIFACTS_DIR artifacts_dir "$RE_PATH"
    param_lines k8saudit_artifact_files '^[a-z0-9][a-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$' ART_FILES
    # Pinned by digest (components/host/k8sAudit.ts, artifactReference): an index name `name@sha256:...`, or a
    # mirror's `registry/repo:X.Y.Z@sha256:...`.
    param_lines k8saudit_artifact_refs '^([a-z0-9][a-z0-9-]*|[a-z0-9][a-z0-9.-]*(:[0-9]{1,5})?(/[a-z0-9][a-z0-9._-]*)+:[0-9]+\.[0-9]+\.[0-9]+)@sha256:[0-9a-f]{64}$' ART_REFS
    ((${#ART_FILES[@]} == ${#ART_REFS[@]})) || die "the bundle's k8saudit artifact parameters are malformed: render it again"
    param P_TLS_CERT k8saudit_tls_certificate '^(/[A-Za-z0-9._/-]+)?$'
    param P_FW_TABLE firewall_table '^[a-z][a-z0-9_]*$'
    param P_FW_UNIT firewall_unit_name "$RE_UNIT"
    param P_CANARY_PATH canary_path '^/run/falco-nodes-canary/[0-9a-f]{16}$'
    param P_CANARY_TOKEN canary_token '^[0-9a-f]{16}$'
    param P_CANARY_JOURNAL canary_journal "$RE_BOOL"
    param P_CANARY_FILE canary_file '^(/[A-Za-z0-9._/-]+)?$'
    param P_CANARY_TIMER canary_timer '^[A-Za-z0-9@._-]+\.timer$'
    local path
    for path in "$P_BINARY" "$P_UNIT_PATH" "$P_UNIT_DROPIN_DIR" "$P_FALCO_DIR" "$P_FALCO_MAIN" "$P_PACKAGE_FILE" "$P_ARTIFACTS_DIR" "$P_TLS_CERT" "$P_CANARY_FILE"; do
        [[ $path != *..* ]] || die "the bundle's paths are malformed: render it again"
    done
}

# The bundle's files: B_GROUP[i] B_MODE[i] B_PATH[i] B_SRC[i] (B_SRC relative to the unpacked bundle).
read_bundle_manifest() {
    local group mode path src
    B_GROUP=() B_MODE=() B_PATH=() B_SRC=()
    while IFS=$'\t' read -r group mode path src; do
        [[ $FILE_GROUPS == *" $group "* && $mode =~ ^0(600|640|644)$ && $path =~ $RE_PATH && $path != *..* &&
            $src =~ ^files/[0-9]+$ && -f $WORK/bundle/$src ]] || die "the bundle's manifest is malformed: render it again"
        B_GROUP+=("$group") B_MODE+=("$mode") B_PATH+=("$path") B_SRC+=("$src")
    done <"$WORK/bundle/manifest.tsv"
}

# A bundle rendered without its secrets (npm run render) holds placeholders: installing it would break outputs.
refuse_placeholders() {
    local names
    if grep -rqF -- "$SECRET_PLACEHOLDER" "$WORK/bundle/files"; then
        names=$(grep -rhoE -- "${SECRET_PLACEHOLDER}[A-Za-z0-9_]+" "$WORK/bundle/files" | sed "s/^${SECRET_PLACEHOLDER}//" | sort -u | tr '\n' ' ')
        die "this bundle was rendered without secrets (${names% }): converge it with Pulumi (pulumi up), which renders it with the stack's secrets; nothing was changed"
    fi
}
