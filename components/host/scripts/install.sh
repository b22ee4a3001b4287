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
    version_output_field "$1" 'Falco version' falco_version '[0-9]+\.[0-9]+\.[0-9]+'
}

# The driver version the binary $1 expects (`Default driver: X` in the text form, `default_driver_version` in
# the JSON; same output as binary_version); empty when it does not run.
binary_driver_version() {
    version_output_field "$1" 'Default driver' default_driver_version '[0-9]+\.[0-9]+\.[0-9]+\+driver'
}

# The first value matching $4 in `$1 -c /dev/null --version`: the text line `<$2>: <value>` (leading spaces
# allowed) or the JSON member `"<$3>": "<value>"`.
version_output_field() {
    local out line re_text re_json
    re_text="^[[:space:]]*$2:[[:space:]]+($4)"
    re_json="\"$3\":[[:space:]]*\"($4)\""
    out=$("$1" -c /dev/null --version 2>/dev/null) || return 0
    while IFS= read -r line; do
        if [[ $line =~ $re_text || $line =~ $re_json ]]; then
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
                # An explicit status: a bare `return` in a function the EXIT trap runs returns the status of the
                # command that failed before the trap (bash(1), SHELL BUILTIN COMMANDS, return), not of the test.
                if [[ $INSTALLED_VERSION == "$FOUND_VERSION" ]]; then return 0; fi
                return 1
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

# The yum/dnf repository file: packages (gpgcheck=1) and the repository metadata (repo_gpgcheck=1: upstream signs
# repodata/repomd.xml with a detached repodata/repomd.xml.asc on every publish, falcosecurity/falco
# scripts/publish-rpm sign_repo) are both checked against the pinned key only, the one fetch_pinned_key kept and
# install_from_rpm wrote to $RPM_KEY. With repo_gpgcheck=0 a mirror or
# proxy could serve old, validly signed packages as the latest metadata (a freeze or rollback); with it on, a
# repository whose repomd.xml is unsigned or signed by any other key is refused by dnf/yum.
rpm_repo_file() {
    printf '[falco-nodes-falco]\nname=Falco (managed by falco-nodes)\nbaseurl=%s\nenabled=1\ngpgcheck=1\nrepo_gpgcheck=1\ngpgkey=file://%s\n' \
        "$P_REPO_URL" "$RPM_KEY"
}

install_from_rpm() {
    fetch_pinned_key
    install -d -m 0755 -- "${RPM_KEY%/*}"
    install -m 0644 -o root -g root -- "$WORK/falco.asc" "$RPM_KEY"
    if ! rpm -q "gpg-pubkey-$(rpm_key_id)" >/dev/null 2>&1; then
        rpm --import "$RPM_KEY"
        : >"$STATE_DIR/rpm-key-imported"
    fi
    rpm_repo_file >"$WORK/falco.repo"
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
        stop_unit_for_kmod_install
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

# --- the kmod driver's module -------------------------------------------------------------------------------
# The unit loads the module with `modprobe falco` (ExecStartPre), so the module must be where modprobe finds it:
# below /lib/modules/<kernel> and in depmod's index. falcoctl 0.13's `driver install` does not always put it there
# (falcosecurity/falcoctl cmd/driver/install/install.go RunDriverInstall, pkg/driver/distro/distro.go,
# pkg/driver/type/kmod.go): it first cleans up (rmmod of a loaded falco, retried 10 times 5 s apart, then `dkms
# remove` of every version), then tries the download, which lands in ~/.falco/<driver version>/<arch>/ and is only
# `insmod`ed, gone after a reboot (falcosecurity/falco#2431), and only when the download fails builds with `dkms
# install`, which does install below /lib/modules/<kernel>/updates/dkms and runs depmod. Both paths leave a copy in
# ~/.falco; when modprobe still cannot find the module after falcoctl, that copy is installed as
# /lib/modules/<kernel>/extra/falco.ko and depmod'ed. The files converge put there are recorded in the state
# directory ($KMOD_INSTALLED), so uninstall removes those and nothing else.

# Does modprobe find a falco module for kernel $1 (a file below /lib/modules/$1, not a built-in)?
kmod_findable() {
    local file
    file=$(modinfo -k "$1" -F filename falco 2>/dev/null) || return 1
    [[ $file == /lib/modules/"$1"/* || $file == /usr/lib/modules/"$1"/* ]]
}

# Is the module modprobe finds for kernel $1 the copy converge installed?
kmod_is_ours() {
    local file
    file=$(modinfo -k "$1" -F filename falco 2>/dev/null) || return 1
    [[ -f $KMOD_INSTALLED ]] && grep -qxF -- "$file" "$KMOD_INSTALLED"
}

# The module falcoctl left in root's ~/.falco for kernel $1 and driver version $2 (falcoctl's toLocalPath:
# ~/.falco/<driver version>/<arch>/falco_<distro>_<kernel release>_<kernel version>.ko).
kmod_falcoctl_copy() {
    local home found=()
    [[ -n $2 ]] || return 1
    home=$(getent passwd root | cut -d: -f6)
    home=${home:-/root}
    shopt -s nullglob
    found=("$home/.falco/$2/$(uname -m)"/falco_*_"$1"_*.ko)
    shopt -u nullglob
    ((${#found[@]} == 1)) || return 1
    printf '%s' "${found[0]}"
}

# Install falcoctl's copy $1 for kernel $2 where modprobe finds it, and record the file as ours.
install_kmod_copy() {
    local dest=/lib/modules/$2/extra/falco.ko
    log "driver kmod: installing $1 as $dest (falcoctl only insmod'ed it; modprobe and the next boot need it there)"
    install -d -m 0755 -o root -g root -- "${dest%/*}"
    install -m 0644 -o root -g root -- "$1" "$dest.falco-nodes-new"
    mv -f -- "$dest.falco-nodes-new" "$dest"
    depmod -a -- "$2"
    install -d -m 0700 -- "$STATE_DIR"
    if ! grep -qxF -- "$dest" "$KMOD_INSTALLED" 2>/dev/null; then printf '%s\n' "$dest" >>"$KMOD_INSTALLED"; fi
}

# The kmod driver needs the falco module for the running kernel, built for the installed Falco's driver: get it
# when modprobe cannot find one, and again after the package changed (a new Falco may need a new driver version;
# the old package's prerm has also run `falcoctl driver cleanup`, which removes dkms-built modules). The
# package's postinst would have done this had we let it choose a driver (FALCO_DRIVER_CHOICE=none), with
# --download=false; we allow the download and then put the module where modprobe finds it.
# shellcheck disable=SC2034 # CHANGED is read by converge (converge.sh)
ensure_kmod_module() {
    local kr copy
    [[ $DRIVER == kmod ]] || return 0
    kr=$(uname -r)
    if [[ $NEED_INSTALL != true ]] && kmod_findable "$kr"; then return 0; fi
    command -v falcoctl >/dev/null 2>&1 || die "driver kmod: no falco kernel module for $kr and no falcoctl to build one"
    log "driver kmod: installing the falco kernel module for $kr"
    umask 022
    # --update-falco=false: otherwise `driver config` rewrites Falco's engine.kind behind converge's back
    # (falcosecurity/falcoctl cmd/driver/config/config.go, RunDriverConfig: commit() when Update, the default).
    falcoctl driver config --type kmod --update-falco=false </dev/null ||
        die "driver kmod: falcoctl driver config failed"
    falcoctl driver install --compile=true --download=true </dev/null ||
        die "driver kmod: falcoctl could not download or build the module for $kr (kernel headers and dkms are needed to build it)"
    # Our copy is refreshed too when it is what modprobe finds: after a package change it is the old driver.
    if copy=$(kmod_falcoctl_copy "$kr" "$(binary_driver_version "$P_BINARY")"); then
        if ! kmod_findable "$kr" || kmod_is_ours "$kr"; then install_kmod_copy "$copy" "$kr"; fi
    fi
    umask 077
    kmod_findable "$kr" || die "driver kmod: after falcoctl, modprobe still finds no falco module for $kr"
    CHANGED=true
}

# Stop our unit before the package changes under the kmod driver: the package's prerm runs `falcoctl driver
# cleanup`, whose rmmod fails (and is retried for 50 s) while our running Falco holds the module. The unit's
# ExecStopPost unloads it. converge starts the unit again (it restarts after any install); a converge that fails
# after this point starts it again on the way out (restart_unit_stopped_for_install, from cleanup).
stop_unit_for_kmod_install() {
    [[ $DRIVER == kmod && -n $INSTALLED_VERSION ]] || return 0
    systemctl is-active --quiet -- "$P_UNIT_NAME" || return 0
    log "driver kmod: stopping $P_UNIT_NAME so the package change can unload the falco module"
    systemctl stop -- "$P_UNIT_NAME"
    UNIT_STOPPED_FOR_INSTALL=true
}

# From cleanup on a failed converge: never leave Falco stopped because of stop_unit_for_kmod_install.
restart_unit_stopped_for_install() {
    [[ ${UNIT_STOPPED_FOR_INSTALL:-false} == true ]] || return 0
    if systemctl is-active --quiet -- "$P_UNIT_NAME"; then return 0; fi
    warn "starting $P_UNIT_NAME again (stopped for the package change)"
    systemctl start -- "$P_UNIT_NAME" || warn "$P_UNIT_NAME did not start again: see journalctl -u $P_UNIT_NAME"
}

# Uninstall: the module files converge installed (install_kmod_copy), and nothing else.
remove_installed_kmod() {
    local file kr
    [[ -f $KMOD_INSTALLED ]] || return 0
    while IFS= read -r file; do
        [[ $file =~ ^/lib/modules/([^/]+)/extra/falco\.ko$ ]] || continue
        kr=${BASH_REMATCH[1]}
        [[ -f $file && ! -L $file ]] || continue
        log "removing $file (installed by converge for the kmod driver)"
        rm -f -- "$file"
        depmod -a -- "$kr" 2>/dev/null || warn "depmod -a $kr failed"
    done <"$KMOD_INSTALLED"
}
