# shellcheck shell=bash
# falco-nodes host script, files and swap: which files this host gets, what changed, validating Falco's candidate configuration, staging and swapping, the last good set, the host manifest.
# A part of the one script components/host/installScript.ts assembles (see converge.sh); not run on its own.

# The perf_event_paranoid Falco will see, when perfEventParanoid is auto: the kernel's current value. (Our sysctl
# drop-in sets this key only for lower-to-2; the settings refuse it as an override, so with auto it never does.)
effective_perf_paranoid() {
    local value=""
    if [[ -r /proc/sys/kernel/perf_event_paranoid ]]; then read -r value </proc/sys/kernel/perf_event_paranoid || true; fi
    printf '%s' "${value:-2}"
}

# Whether Falco needs CAP_SYS_ADMIN (the unit drop-in): with modern_ebpf, when asked to, or when
# perf_event_paranoid stays > 2 (Debian/Ubuntu's 3/4), where CAP_PERFMON cannot attach the tracepoints.
perf_dropin_needed() {
    [[ $DRIVER == modern_ebpf ]] || return 1
    case $P_PERF in
    grant-sys-admin) return 0 ;;
    lower-to-2) return 1 ;;
    esac
    (($(effective_perf_paranoid) > 2))
}

# F_*: the files this host gets (unit variant resolved, optional drop-ins decided; F_SRC absolute).
# shellcheck disable=SC2153 # B_* are set by read_bundle_manifest (bundle.sh)
select_files() {
    local i group dropin_needed=false sshd_present=true
    F_GROUP=() F_MODE=() F_PATH=() F_SRC=()
    if perf_dropin_needed; then dropin_needed=true; fi
    command -v sshd >/dev/null 2>&1 || sshd_present=false
    for i in "${!B_PATH[@]}"; do
        group=${B_GROUP[i]}
        case $group in
        unit-modern_ebpf | unit-kmod)
            [[ $group == "unit-$DRIVER" ]] || continue
            group=unit
            ;;
        unit-dropin-perf) [[ $dropin_needed == true ]] || continue ;;
        sshd)
            if [[ $sshd_present == false ]]; then
                warn "sshd is not installed: skipping the sshd hardening drop-in ${B_PATH[i]}"
                continue
            fi
            ;;
        esac
        F_GROUP+=("$group") F_MODE+=("${B_MODE[i]}") F_PATH+=("${B_PATH[i]}") F_SRC+=("$WORK/bundle/${B_SRC[i]}")
    done
}

# The previous converge's manifest (group, mode, path per line).
# shellcheck disable=SC2153 # RE_PATH is a constant of converge.sh
read_host_manifest() {
    local group path
    O_GROUP=() O_PATH=()
    [[ -f $STATE_DIR/manifest ]] || return 0
    while IFS=$'\t' read -r group _ path; do
        if ! [[ $FILE_GROUPS == *" $group "* && $path =~ $RE_PATH && $path != *..* ]]; then
            warn "ignoring a malformed line in $STATE_DIR/manifest"
            continue
        fi
        O_GROUP+=("$group") O_PATH+=("$path")
    done <"$STATE_DIR/manifest"
}

# C_*: indexes into F_* of changed files (content, mode, root:root, a plain file); R_*: files of the previous
# manifest that are no longer ours. One stat and one sha256sum for all files rather than two processes per file:
# a process start is what a no-op converge mostly costs on a busy or emulated host.
plan_changes() {
    local i path name meta hash
    local -A wanted=() host_meta=() sum=()
    local present=() hashed=()
    C_INDEX=() R_GROUP=() R_PATH=()
    CHANGED_GROUPS=" "
    for i in "${!F_PATH[@]}"; do
        path=${F_PATH[i]}
        if [[ -f $path && ! -L $path ]]; then present+=("$path") hashed+=("${F_SRC[i]}" "$path"); fi
    done
    if ((${#present[@]} > 0)); then
        # Paths are allowlisted (no spaces or newlines), so each output line splits cleanly.
        while read -r name meta; do host_meta[$name]=$meta; done < <(stat -c '%n %a %u %g' -- "${present[@]}" 2>/dev/null || true)
        while read -r hash name; do sum[$name]=$hash; done < <(sha256sum -- "${hashed[@]}" 2>/dev/null || true)
    fi
    for i in "${!F_PATH[@]}"; do
        path=${F_PATH[i]}
        wanted[$path]=1
        if [[ ${host_meta[$path]:-} == "${F_MODE[i]#0} 0 0" && -n ${sum[$path]:-} && ${sum[$path]} == "${sum[${F_SRC[i]}]:-}" ]]; then
            continue
        fi
        C_INDEX+=("$i")
        CHANGED_GROUPS+="${F_GROUP[i]} "
    done
    for i in "${!O_PATH[@]}"; do
        path=${O_PATH[i]}
        [[ -z ${wanted[$path]:-} ]] || continue
        wanted[$path]=1
        R_GROUP+=("${O_GROUP[i]}") R_PATH+=("$path")
        if [[ -e $path || -L $path ]]; then CHANGED_GROUPS+="${O_GROUP[i]} "; fi
    done
}

group_changed() { [[ $CHANGED_GROUPS == *" $1 "* ]]; }

# Was a file of this group in the previous manifest and is no longer wanted?
group_removed() {
    local i
    for i in "${!R_GROUP[@]}"; do
        if [[ ${R_GROUP[i]} == "$1" ]]; then return 0; fi
    done
    return 1
}

# Build the complete /etc/falco as it will be and have Falco load it, in a private mount namespace where that
# tree is bind-mounted over /etc/falco: the running Falco and the host never see it.
validate_falco_config() {
    local candidate="$WORK/candidate-falco" i rel out
    mkdir -p -- "$candidate"
    if [[ -d $P_FALCO_DIR ]]; then cp -a -- "$P_FALCO_DIR/." "$candidate/"; fi
    for i in "${!R_PATH[@]}"; do
        if [[ ${R_PATH[i]} == "$P_FALCO_DIR"/* ]]; then rm -f -- "$candidate/${R_PATH[i]#"$P_FALCO_DIR"/}"; fi
    done
    for i in "${!F_PATH[@]}"; do
        [[ ${F_GROUP[i]} == falco && ${F_PATH[i]} == "$P_FALCO_DIR"/* ]] || continue
        rel=${F_PATH[i]#"$P_FALCO_DIR"/}
        mkdir -p -- "$candidate/$(dirname -- "$rel")"
        rm -f -- "$candidate/$rel"
        cp -- "${F_SRC[i]}" "$candidate/$rel"
    done
    make_dir 0755 "$P_FALCO_DIR"
    log "validating the new configuration with $P_BINARY --dry-run"
    # shellcheck disable=SC2016 # positional parameters of the inner shell
    if ! out=$(unshare --mount --propagation private -- bash -c \
        'mount --bind -- "$1" "$2" && exec "$3" -c "$4" --dry-run -o "engine.kind=$5"' \
        falco-nodes-validate "$candidate" "$P_FALCO_DIR" "$P_BINARY" "$P_FALCO_MAIN" "$DRIVER" 2>&1); then
        printf '%s\n' "$out" >&2
        die "Falco rejected the new configuration (falco --dry-run output above); $(unchanged_note)"
    fi
    # Falco only warns when falco.yaml fails its own schema (a misspelled extraConfig key is silently ignored).
    if grep -q "schema validation: failed" <<<"$out"; then
        grep "schema validation" <<<"$out" >&2 || true
        warn "Falco accepted the configuration but reports schema problems (above): check extraConfig"
    fi
}

# Keep every managed file as it is now (the set that was running), so a failed converge can put it back. Finishing
# an interrupted converge, the files it saved are the ones to go back to: only paths they lack are added.
save_last_good() {
    local dir="$STATE_DIR/last-good" next="$STATE_DIR/last-good.next" i group path
    local -A saved=()
    rm -rf -- "$next"
    if [[ $FILES_SAVED == true && -f $dir/manifest ]]; then
        cp -a -- "$dir" "$next"
        while IFS=$'\t' read -r _ _ path; do saved[$path]=1; done <"$next/manifest"
    else
        mkdir -p -- "$next/files"
        : >"$next/manifest"
    fi
    for i in "${!F_PATH[@]}"; do
        group=${F_GROUP[i]} path=${F_PATH[i]}
        if [[ -z ${saved[$path]:-} ]]; then save_one "$next" "$group" "$path"; fi
    done
    for i in "${!R_PATH[@]}"; do
        group=${R_GROUP[i]} path=${R_PATH[i]}
        if [[ -z ${saved[$path]:-} ]]; then save_one "$next" "$group" "$path"; fi
    done
    rm -rf -- "$dir"
    mv -- "$next" "$dir"
    FILES_SAVED=true
    write_pending
}

save_one() {
    local dest=$1 group=$2 path=$3
    if [[ -f $path && ! -L $path ]]; then
        mkdir -p -- "$dest/files${path%/*}"
        cp -p -- "$path" "$dest/files$path"
        printf '%s\tpresent\t%s\n' "$group" "$path" >>"$dest/manifest"
    else
        printf '%s\tabsent\t%s\n' "$group" "$path" >>"$dest/manifest"
    fi
}

ensure_parent_dir() {
    make_dir 0755 "${1%/*}"
}

# A directory (and any missing parent) with mode $1, root-owned. Each directory it creates is recorded in
# $STATE_DIR/created-dirs, so an uninstall (or the rollback of a first converge) removes the ones it leaves empty
# and no other: a directory that was there before is never ours.
make_dir() {
    local mode=$1 dir=$2 missing=()
    while [[ -n $dir && ! -d $dir ]]; do
        missing=("$dir" "${missing[@]}")
        dir=${dir%/*}
    done
    for dir in "${missing[@]}"; do
        install -d -m "$mode" -o root -g root -- "$dir"
        if [[ -d $STATE_DIR ]] && ! grep -qxsF -- "$dir" "$STATE_DIR/created-dirs"; then printf '%s\n' "$dir" >>"$STATE_DIR/created-dirs"; fi
    done
}

# The directories make_dir created that are empty now go, deepest first; those still holding something stay
# recorded (someone else's files, or ours of a converge that is still in place).
remove_created_dirs() {
    local file=$STATE_DIR/created-dirs dir dirs=() kept=""
    [[ -f $file ]] || return 0
    mapfile -t dirs < <(sort -u -- "$file" | sort -r)
    for dir in "${dirs[@]}"; do
        [[ $dir =~ $RE_PATH && $dir != *..* && -d $dir ]] || continue
        if rmdir -- "$dir" 2>/dev/null; then log "removing the directory $dir (created by falco-nodes, now empty)"; else kept+="$dir"$'\n'; fi
    done
    if [[ -n $kept ]]; then printf '%s' "$kept" >"$file"; else rm -f -- "$file"; fi
}

# A file that was there before falco-nodes first wrote the path (the package's falco.yaml, a conffile) is kept
# under $STATE_DIR/originals and put back when falco-nodes lets go of the path, so uninstall leaves the package
# as it found it.
keep_original() {
    local path=$1 copy=$STATE_DIR/originals/files$1
    [[ -f $path && ! -L $path && ! -e $copy ]] || return 0
    mkdir -p -- "${copy%/*}"
    cp -p -- "$path" "$copy"
}

# The md5 dpkg records for conffile $1 of the installed falco package (empty when it is none of its conffiles).
falco_conffile_md5() {
    local name sum
    have_executable dpkg-query || return 0
    # shellcheck disable=SC2016 # dpkg-query's own ${field} syntax, not shell
    while read -r name sum _; do
        if [[ $name == "$1" ]]; then
            printf '%s' "$sum"
            return 0
        fi
    done < <(dpkg-query -W -f='${Conffiles}\n' falco 2>/dev/null || true)
    return 0
}

# Remove our file at $1, or put back the original it replaced. When the package was upgraded while the file was
# ours, dpkg kept our file and put the new version's beside it as $1.dpkg-dist (--force-confold: dpkg(1)): that,
# when it is what the installed package ships (dpkg's conffile md5), is put back rather than the older version's.
release_path() {
    local path=$1 original=$STATE_DIR/originals/files$1 shipped line
    if [[ -f $path.dpkg-dist ]]; then
        shipped=$(falco_conffile_md5 "$path")
        line=$(md5sum -- "$path.dpkg-dist")
        if [[ -n $shipped && ${line%% *} == "$shipped" ]]; then
            log "restoring $path as the installed falco package ships it (from $path.dpkg-dist)"
            mv -f -- "$path.dpkg-dist" "$path"
            rm -f -- "$original"
            return 0
        fi
    fi
    if [[ -f $original ]]; then
        log "restoring $path as it was before falco-nodes"
        cp -p -- "$original" "$path$STAGE_SUFFIX"
        mv -f -- "$path$STAGE_SUFFIX" "$path"
        rm -f -- "$original"
    else
        log "removing $path"
        rm -f -- "$path"
    fi
}

# shellcheck disable=SC2034 # CHANGED is read by converge (converge.sh)
swap_in_changes() {
    local i path
    local -A managed=()
    for path in "${O_PATH[@]}"; do managed[$path]=1; done
    # Stage everything first (same filesystem as the target, so each mv is atomic), then swap. A write that fails
    # (a full or read-only filesystem) stops here, before anything was swapped; the EXIT trap removes the staged
    # copies.
    for i in "${C_INDEX[@]}"; do
        path=${F_PATH[i]}
        ensure_parent_dir "$path"
        STAGED+=("$path$STAGE_SUFFIX")
        install -m "${F_MODE[i]}" -o root -g root -- "${F_SRC[i]}" "$path$STAGE_SUFFIX" ||
            die "could not write $path$STAGE_SUFFIX (filesystem full or read-only?); nothing was changed: free some space there and converge again"
    done
    save_last_good
    for i in "${C_INDEX[@]}"; do
        if [[ -z ${managed[${F_PATH[i]}]:-} ]]; then keep_original "${F_PATH[i]}"; fi
    done
    for i in "${C_INDEX[@]}"; do
        path=${F_PATH[i]}
        log "updating $path"
        mv -f -- "$path$STAGE_SUFFIX" "$path"
        CHANGED=true
    done
    STAGED=()
    for i in "${!R_PATH[@]}"; do
        path=${R_PATH[i]}
        if [[ -e $path || -L $path ]]; then
            log "$path is no longer in the bundle"
            release_path "$path"
            CHANGED=true
        fi
        if [[ ${path%/*} == "$P_UNIT_DROPIN_DIR" ]]; then rmdir -- "$P_UNIT_DROPIN_DIR" 2>/dev/null || true; fi
    done
}

apply_sysctl() {
    local i
    for i in "${!F_PATH[@]}"; do
        [[ ${F_GROUP[i]} == sysctl ]] || continue
        sysctl -q -p "${F_PATH[i]}" || warn "sysctl could not apply every key of ${F_PATH[i]} (above); the rest is applied"
    done
    for i in "${!R_GROUP[@]}"; do
        [[ ${R_GROUP[i]} == sysctl ]] || continue
        # Values stay as they are until reboot unless another file sets them; re-apply the host's own files.
        sysctl -q --system >/dev/null || warn "sysctl --system reported errors"
        break
    done
}

# Two files with the same content (one sha256sum process for both).
same_content() {
    local sums=()
    mapfile -t sums < <(sha256sum -- "$1" "$2" 2>/dev/null)
    ((${#sums[@]} == 2)) && [[ ${sums[0]%% *} == "${sums[1]%% *}" ]]
}

restore_last_good() {
    local group state path sshd_touched=false
    [[ -f $STATE_DIR/last-good/manifest ]] || return 0
    while IFS=$'\t' read -r group state path; do
        [[ $path =~ $RE_PATH && $path != *..* ]] || continue
        if [[ $state == present ]]; then
            # A file this converge did not change stays as it is (no sshd reload or sysctl apply for it).
            if [[ -f $path ]] && same_content "$STATE_DIR/last-good/files$path" "$path"; then continue; fi
            cp -p -- "$STATE_DIR/last-good/files$path" "$path$STAGE_SUFFIX"
            mv -f -- "$path$STAGE_SUFFIX" "$path"
            if [[ $group == sysctl ]]; then sysctl -q -p "$path" || true; fi
            if [[ $group == firewall ]]; then nft -f "$path" || true; fi
        else
            if [[ ! -e $path && ! -L $path ]]; then continue; fi
            rm -f -- "$path"
        fi
        if [[ $group == sshd ]]; then sshd_touched=true; fi
    done <"$STATE_DIR/last-good/manifest"
    if [[ $sshd_touched == true ]] && sshd -t; then reload_sshd; fi
}

# Each state file is replaced (write, then rename) only when its content changes: a no-op converge writes nothing.
write_state_file() {
    local path=$1 content=$2 current=""
    if [[ -f $path ]]; then IFS= read -r -d '' current <"$path" || true; fi
    if [[ -f $path && $current == "$content" ]]; then return 0; fi
    printf '%s' "$content" >"$path.new" # umask 077: 0600
    mv -f -- "$path.new" "$path"
}

write_state() {
    local i line manifest=""
    for i in "${!F_PATH[@]}"; do
        printf -v line '%s\t%s\t%s\n' "${F_GROUP[i]}" "${F_MODE[i]}" "${F_PATH[i]}"
        manifest+=$line
    done
    write_state_file "$STATE_DIR/manifest" "$manifest"
    write_state_file "$STATE_DIR/bundle-hash" "$P_BUNDLE_HASH"$'\n'
    record_ownership
    prune_artifacts
}
