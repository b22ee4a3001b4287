# shellcheck shell=bash
# falco-nodes host script, installing Falco: the installed package and binary, the pinned repository key, apt/rpm/package-file installs, the hold, the kmod module.
# A part of the one script components/host/installScript.ts assembles (see converge.sh); not run on its own.

# INSTALLED_VERSION: the installed falco package's version (empty when none); INSTALLED_SELECTION: dpkg's selection
# (`hold` when held; empty on rpm hosts). One dpkg-query for both: a no-op converge needs both.
read_installed_package() {
    local status="" want="" version=""
    INSTALLED_VERSION="" INSTALLED_SELECTION=""
    case $PKG_FAMILY in
    debian)
        # shellcheck disable=SC2016 # dpkg-query's own ${field} syntax, not shell
        read -r status want version < <(dpkg-query -W -f='${db:Status-Status} ${db:Status-Want} ${Version}\n' falco 2>/dev/null || true) || true
        if [[ $status == installed ]]; then INSTALLED_VERSION=$version; fi
        INSTALLED_SELECTION=$want
        ;;
    rpm)
        if version=$(rpm -q --qf '%{VERSION}' falco 2>/dev/null); then INSTALLED_VERSION=$version; fi
        ;;
    esac
}

# Version of the installed falco package; empty when none.
package_version() {
    read_installed_package
    printf '%s' "$INSTALLED_VERSION"
}

# The version the binary reports; empty when it does not run. `-c /dev/null` keeps the host's current config out of
# it: with `json_output: true` there, Falco prints the version as JSON on stdout (and its log on stderr) instead of
# the `Falco version: X.Y.Z` text (falcosecurity/falco 0.44.1 userspace/falco/app/actions/print_version.cpp;
# captured in shared/reference/falco/outputs/version.*). Both forms are read, so an older or patched binary that
# ignores -c still answers.
binary_version() {
    local out line re_json='"falco_version":[[:space:]]*"([0-9]+\.[0-9]+\.[0-9]+)"'
    out=$("$1" -c /dev/null --version 2>/dev/null) || return 0
    while IFS= read -r line; do
        if [[ $line =~ ^Falco\ version:\ ([0-9]+\.[0-9]+\.[0-9]+) || $line =~ $re_json ]]; then
            printf '%s' "${BASH_REMATCH[1]}"
            return 0
        fi
    done <<<"$out"
}

# rpm names an imported key gpg-pubkey-<last 8 hex digits of the fingerprint, lower case>.
rpm_key_id() {
    local fpr=${P_KEY_FPR,,}
    printf '%s' "${fpr: -8}"
}

rpm_tool() {
    if command -v dnf >/dev/null 2>&1; then printf dnf; else printf yum; fi
}

plan_install() {
    NEED_INSTALL=false
    case $P_SOURCE in
    preinstalled)
        [[ -f $P_BINARY && -x $P_BINARY ]] || die "install.binaryPath $P_BINARY is not an executable file (install.source: preinstalled); nothing was changed"
        check_root_only_path "$P_BINARY" "install.binaryPath"
        ;;
    *)
        read_installed_package
        [[ $INSTALLED_VERSION == "$P_VERSION" ]] || NEED_INSTALL=true
        ;;
    esac
    if [[ $NEED_INSTALL == true ]]; then
        require_space /var "$MIN_FREE_VAR_INSTALL_MIB"
        require_space /usr "$MIN_FREE_USR_INSTALL_MIB"
        case $P_SOURCE:$PKG_FAMILY in
        apt:*) require_tools curl gpg apt-get apt-mark dpkg-query ;;
        rpm:*) require_tools curl gpg rpm "$(rpm_tool)" ;;
        package-file:debian) require_tools apt-get apt-mark dpkg-query ;;
        package-file:rpm) require_tools rpm "$(rpm_tool)" ;;
        esac
        if [[ $P_SOURCE == package-file && ! -f $P_PACKAGE_FILE ]]; then
            die "install.packageFile $P_PACKAGE_FILE does not exist on this host: copy the package there first; nothing was changed"
        fi
    fi
}

# Download the repository key and keep only the key whose fingerprint is pinned: $WORK/falco.gpg (binary) and
# $WORK/falco.asc (armored). A key file with any other primary key is refused.
fetch_pinned_key() {
    local kind field found=() want=false
    curl -fsSL --retry 3 --max-time 120 -o "$WORK/key.asc" -- "$P_KEY_URL" ||
        die "could not download the Falco signing key from $P_KEY_URL (install.keyUrl)"
    export GNUPGHOME="$WORK/gnupg"
    install -d -m 0700 -- "$GNUPGHOME"
    gpg --batch --quiet --import "$WORK/key.asc" 2>/dev/null ||
        die "$P_KEY_URL (install.keyUrl) is not an OpenPGP key"
    while IFS=: read -r kind _ _ _ _ _ _ _ _ field _; do
        if [[ $kind == fpr && $want == true ]]; then found+=("$field"); fi
        if [[ $kind == pub ]]; then want=true; else want=false; fi
    done < <(gpg --batch --with-colons --fingerprint 2>/dev/null)
    [[ " ${found[*]} " == *" $P_KEY_FPR "* ]] ||
        die "key fingerprint mismatch: expected $P_KEY_FPR got ${found[*]:-no key}; refusing (install.keyFingerprint, install.keyUrl)"
    ((${#found[@]} == 1)) || log "the key file holds ${#found[@]} keys; trusting only $P_KEY_FPR"
    gpg --batch --export -- "$P_KEY_FPR" >"$WORK/falco.gpg"
    gpg --batch --armor --export -- "$P_KEY_FPR" >"$WORK/falco.asc"
    [[ -s $WORK/falco.gpg ]] || die "could not export key $P_KEY_FPR"
}

# Root runs $1 (setting $2): it must be root-owned and writable by root alone, and so must every directory above
# it and above what it resolves to through symlinks, or whoever can write there decides what root runs. A sticky
# root-owned directory (/tmp) is fine above a root-owned entry: only root may rename or remove that entry there.
check_root_only_path() {
    local path=$1 key=$2 real dir meta uid mode dirs=()
    real=$(readlink -f -- "$path") || die "$key $path cannot be resolved; nothing was changed"
    dir=$real
    while [[ -n $dir ]]; do
        dirs+=("$dir")
        dir=${dir%/*}
    done
    dir=${path%/*}
    while [[ -n $dir ]]; do
        dirs+=("$dir")
        dir=${dir%/*}
    done
    dirs+=(/)
    for dir in "${dirs[@]}"; do
        meta=$(stat -L -c '%u %a' -- "$dir") || die "$key: cannot stat $dir; nothing was changed"
        uid=${meta%% *} mode=${meta#* }
        if [[ $uid != 0 ]]; then
            die "$key $path: $dir is owned by uid $uid, not root, so someone other than root could change what converge runs as root: make it and every directory above it root-owned (chown root:root) and writable by root only (chmod go-w); nothing was changed"
        fi
        if (((8#$mode & 8#022) != 0)) && ! [[ -d $dir && -k $dir && $dir != "$real" && $dir != "$path" ]]; then
            die "$key $path: $dir is writable by others (mode $mode), so someone other than root could change what converge runs as root: make it and every directory above it writable by root only (chmod go-w); nothing was changed"
        fi
    done
}

apt_install() {
    # FALCO_DRIVER_CHOICE=none: the package's postinst neither picks a driver nor enables its own units.
    # --no-remove: an install that would remove any package fails instead. DPkg::Lock::Timeout: wait for the dpkg
    # lock (unattended-upgrades on a fresh cloud host) instead of failing at once.
    FALCO_FRONTEND=noninteractive FALCO_DRIVER_CHOICE=none FALCOCTL_ENABLED=no DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends --no-remove --allow-downgrades --allow-change-held-packages \
        -o DPkg::Lock::Timeout="$APT_LOCK_TIMEOUT_SECONDS" \
        -o Dpkg::Options::=--force-confold -o Dpkg::Options::=--force-confdef "$@" </dev/null
}

# apt-mark under the same lock wait (it takes dpkg's lock to write selections).
apt_mark() {
    apt-mark -o DPkg::Lock::Timeout="$APT_LOCK_TIMEOUT_SECONDS" "$@" >/dev/null
}

# apt-get update, waiting for apt's lists lock (apt-daily) as apt_install waits for dpkg's: apt-get update fails
# at once when another apt holds the lists lock, so retry while that is the reason, up to the same timeout.
apt_update() {
    local out rc deadline=$((SECONDS + APT_LOCK_TIMEOUT_SECONDS))
    while :; do
        rc=0
        out=$(apt-get update -q -o DPkg::Lock::Timeout="$APT_LOCK_TIMEOUT_SECONDS" "$@" </dev/null 2>&1) || rc=$?
        if ((rc == 0)) || [[ $out != *"Could not get lock"* ]] || ((SECONDS >= deadline)); then break; fi
        log "waiting for another apt to release its lock (apt-get update)"
        sleep 5
    done
    printf '%s\n' "$out" >&2
    return "$rc"
}

# A version change needs a way back to the version installed now: its package is kept under
# $STATE_DIR/rollback-package (from apt's cache or downloaded from the repository) before the new one goes in.
# Without one, converge refuses to change the version: a failure could not be undone.
prepare_way_back() {
    local dir=$STATE_DIR/rollback-package cached
    [[ -n $FOUND_VERSION && $FOUND_VERSION != "$P_VERSION" ]] || return 0
    case $PKG_FAMILY in
    debian)
        if compgen -G "$dir/falco_*.deb" >/dev/null; then return 0; fi
        install -d -m 0700 -- "$dir"
        for cached in /var/cache/apt/archives/falco_"${FOUND_VERSION//:/%3a}"_*.deb; do
            if [[ -f $cached ]]; then
                cp -- "$cached" "$dir/"
                return 0
            fi
        done
        if [[ $P_SOURCE == apt ]] && (cd -- "$dir" && apt-get download -q "falco=$FOUND_VERSION" </dev/null >&2); then return 0; fi
        rm -rf -- "$dir"
        ;;
    rpm)
        if "$(rpm_tool)" -q list --showduplicates "falco-$FOUND_VERSION" >/dev/null 2>&1; then return 0; fi
        ;;
    esac
    die "refusing to move Falco from $FOUND_VERSION to $P_VERSION: there is no way back to $FOUND_VERSION (neither apt's cache nor install.repoUrl has its package), so a failed converge could not restore it. Offer $FOUND_VERSION in the repository (or put its package in /var/cache/apt/archives), or uninstall first; Falco $FOUND_VERSION keeps running"
}

# From the rollback: the falco package as found (the version kept by prepare_way_back; none: removed again).
restore_package() {
    local deb
    read_installed_package
    [[ $INSTALLED_VERSION != "$FOUND_VERSION" ]] || return 0
    umask 022
    if [[ -z $FOUND_VERSION ]]; then
        log "removing the falco package this converge installed (the host had none)"
        if [[ $PKG_FAMILY == debian ]]; then
            apt_mark unhold falco || true
            DEBIAN_FRONTEND=noninteractive apt-get purge -y -q -o DPkg::Lock::Timeout="$APT_LOCK_TIMEOUT_SECONDS" falco </dev/null >&2
        else
            "$(rpm_tool)" -y -q remove falco </dev/null >&2
        fi
    else
        log "reinstalling falco $FOUND_VERSION (found installed) in place of $INSTALLED_VERSION"
        if [[ $PKG_FAMILY == debian ]]; then
            for deb in "$STATE_DIR"/rollback-package/falco_*.deb; do
                [[ -f $deb ]] || continue
                apt_install "$deb" >&2 && apt_mark hold falco
                umask 077
                read_installed_package
                [[ $INSTALLED_VERSION == "$FOUND_VERSION" ]]
                return
            done
            apt_install "falco=$FOUND_VERSION" >&2 && apt_mark hold falco
        else
            "$(rpm_tool)" -y -q downgrade "falco-$FOUND_VERSION" </dev/null >&2 || "$(rpm_tool)" -y -q install "falco-$FOUND_VERSION" </dev/null >&2
        fi
    fi
    umask 077
    read_installed_package
    [[ $INSTALLED_VERSION == "$FOUND_VERSION" ]]
}

rpm_install() {
    local tool current verb=install
    tool=$(rpm_tool)
    current=$(package_version)
    if [[ -n $current && $current != "$P_VERSION" &&
        $(printf '%s\n%s\n' "$current" "$P_VERSION" | sort -V | tail -n 1) == "$current" ]]; then
        verb=downgrade
    fi
    if "$tool" versionlock list >/dev/null 2>&1; then "$tool" -q versionlock delete falco >/dev/null 2>&1 || true; fi
    FALCO_FRONTEND=noninteractive FALCO_DRIVER_CHOICE=none FALCOCTL_ENABLED=no \
        "$tool" -y -q "$verb" "$@" </dev/null
    if "$tool" versionlock list >/dev/null 2>&1; then "$tool" -q versionlock add falco >/dev/null; fi
}

install_from_apt() {
    fetch_pinned_key
    install -m 0644 -o root -g root -- "$WORK/falco.gpg" "$APT_KEYRING"
    printf 'deb [signed-by=%s] %s stable main\n' "$APT_KEYRING" "$P_REPO_URL" >"$WORK/falco.list"
    install -m 0644 -o root -g root -- "$WORK/falco.list" "$APT_SOURCE"
    # Only Falco's repository: fast, and no other list on the host moves.
    apt_update -o Dir::Etc::sourcelist="$APT_SOURCE" -o Dir::Etc::sourceparts=- \
        -o APT::Get::List-Cleanup=0 || die "apt-get update of $P_REPO_URL (install.repoUrl) failed"
    prepare_way_back
    if ! apt_install "falco=$P_VERSION"; then
        log "retrying with all package lists refreshed (Falco's dependencies may be missing)"
        apt_update || die "apt-get update failed"
        apt_install "falco=$P_VERSION" || die "apt-get could not install falco=$P_VERSION from $P_REPO_URL (falcoVersion, install.repoUrl)"
    fi
    apt_mark hold falco
}

install_from_rpm() {
    fetch_pinned_key
    install -d -m 0755 -- "${RPM_KEY%/*}"
    install -m 0644 -o root -g root -- "$WORK/falco.asc" "$RPM_KEY"
    if ! rpm -q "gpg-pubkey-$(rpm_key_id)" >/dev/null 2>&1; then
        rpm --import "$RPM_KEY"
        : >"$STATE_DIR/rpm-key-imported"
    fi
    printf '[falco-nodes-falco]\nname=Falco (managed by falco-nodes)\nbaseurl=%s\nenabled=1\ngpgcheck=1\nrepo_gpgcheck=0\ngpgkey=file://%s\n' \
        "$P_REPO_URL" "$RPM_KEY" >"$WORK/falco.repo"
    install -m 0644 -o root -g root -- "$WORK/falco.repo" "$RPM_REPO"
    prepare_way_back
    rpm_install "falco-$P_VERSION" || die "could not install falco-$P_VERSION from $P_REPO_URL (falcoVersion, install.repoUrl)"
}

install_from_package_file() {
    local copy sum
    # Check and install a private copy, so the file cannot be swapped between the check and the install.
    copy="$WORK/falco-package.${P_PACKAGE_FILE##*.}"
    cp -- "$P_PACKAGE_FILE" "$copy"
    sum=$(sha256sum -- "$copy")
    sum=${sum%% *}
    [[ $sum == "$P_PACKAGE_SHA256" ]] ||
        die "install.packageFile $P_PACKAGE_FILE has sha256 $sum, not $P_PACKAGE_SHA256 (install.packageSha256); refusing"
    prepare_way_back
    if [[ $copy == *.deb ]]; then
        apt_install "$copy" || die "apt-get could not install $P_PACKAGE_FILE"
        apt_mark hold falco
    else
        rpm_install "$copy" || die "could not install $P_PACKAGE_FILE"
    fi
}

# shellcheck disable=SC2034 # CHANGED is read by converge (converge.sh)
ensure_falco() {
    local have
    if [[ $NEED_INSTALL == true ]]; then
        log "installing Falco $P_VERSION (installed: $(package_version | grep . || printf none)) from $P_SOURCE"
        # Package managers and maintainer scripts expect the usual umask: with ours (077) apt's lists and any
        # file a postinst creates would be root-only.
        umask 022
        case $P_SOURCE in
        apt) install_from_apt ;;
        rpm) install_from_rpm ;;
        package-file) install_from_package_file ;;
        esac
        umask 077
        CHANGED=true
    fi
    # The hold keeps unattended upgrades from moving Falco off the pinned version; restore it if someone lifted it.
    # (dpkg's selection, read with the version in plan_install, not `apt-mark showhold`: same answer, a fraction
    # of the cost on every no-op converge. After an install it is read again.)
    if [[ $P_SOURCE != preinstalled && $PKG_FAMILY == debian ]]; then
        if [[ $NEED_INSTALL == true ]]; then read_installed_package; fi
        if [[ $INSTALLED_SELECTION != hold ]]; then
            apt_mark hold falco
            CHANGED=true
        fi
    fi
    have=$(binary_version "$P_BINARY")
    if [[ $have != "$P_VERSION" ]]; then
        [[ $NEED_INSTALL == true ]] || die "$P_BINARY reports Falco version '${have:-none}', not $P_VERSION (falcoVersion); nothing was changed"
        die "after installing, $P_BINARY reports Falco version '${have:-none}', not $P_VERSION (falcoVersion)"
    fi
}

# The kmod driver needs the falco module for the running kernel; the package's postinst would have built it had
# we let it choose a driver, so do what it does.
# shellcheck disable=SC2034 # CHANGED is read by converge (converge.sh)
ensure_kmod_module() {
    [[ $DRIVER == kmod ]] || return 0
    if modinfo falco >/dev/null 2>&1; then return 0; fi
    command -v falcoctl >/dev/null 2>&1 || die "driver kmod: no falco kernel module for $(uname -r) and no falcoctl to build one"
    log "driver kmod: installing the falco kernel module for $(uname -r)"
    umask 022
    falcoctl driver config --type kmod </dev/null
    falcoctl driver install --compile=true --download=true </dev/null ||
        die "driver kmod: falcoctl could not download or build the module for $(uname -r) (kernel headers and dkms are needed to build it)"
    umask 077
    CHANGED=true
}
