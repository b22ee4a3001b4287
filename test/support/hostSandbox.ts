/**
 * Runs the real generated host script, as root, without touching this machine: each run happens in a private
 * mount namespace (and an empty network and a private pid namespace) where /etc and /var/lib are overlays whose writes land in the
 * sandbox's own directories, /run is a fresh tmpfs (with /run/systemd/system, so the script sees a systemd host,
 * unless asked not to), and /usr/local/sbin (first on the script's fixed PATH) holds fakes of systemctl,
 * journalctl, sysctl, sshd, curl, falcoctl, nft and cloud-init that keep their state in the sandbox. Falco itself is the
 * e2e TEST STAND-IN binary (test/e2e/standin, held to a real Falco's outputs by test/standin/), installed as
 * `preinstalled`.
 *
 * Nothing in the script knows about this: no test hooks, the production code paths run. What cannot be
 * exercised here (real systemd, packages, a real Falco) is the VM suite's job.
 *
 * Fake behaviour the tests rely on:
 * - falco `--dry-run` fails (LOAD_ERR_COMPILE_CONDITION, exit 1) when a config or rules file it loads contains
 *   STANDIN-INVALID;
 * - `systemctl restart` fails when any file under /etc/falco contains FAIL_AT_START;
 * - `curl .../healthz` fails while the state has `healthz-dead` (a SIGSTOPped Falco: the unit stays active); a
 *   `systemctl restart` of our unit clears it (systemd's stop sends SIGTERM then SIGCONT, so the stopped process
 *   dies and a fresh one answers);
 * - any fake systemctl/sysctl call whose arguments start with the state's `kill-at` content SIGKILLs its caller
 *   (the converge shell) instead of acting: a converge cut off at that step, as by a dropped connection or a
 *   power loss, with no trap run;
 * - `sshd -t` fails when any file under /etc/ssh/sshd_config.d contains BadDirective;
 * - `falcoctl artifact install` writes a small fake file per reference (`lib<name>.so` for `.../plugin/<name>`,
 *   `k8s_audit_rules.yaml` for `.../ruleset/k8saudit`), and fails when the state has `falcoctl-fail`. Like the
 *   real one it first adds every index its `--config` names, and a config without an `indexes` key gets
 *   falcoctl's default, falcosecurity's index (falcosecurity/falcoctl internal/config/config.go, Load:
 *   `viper.SetDefault(IndexesKey, []Index{DefaultIndex})`; cmd/artifact/artifact.go, PersistentPreRun:
 *   `RunIndexAdd` per index under `CheckErr`, fatal). An index name (`k8saudit@sha256:...`) resolves through the
 *   default index to ghcr.io and is signature-verified, logged as `verified <resolved ref>`; a full reference is
 *   pulled as given and never verified (pkg/index/index/index.go, ResolveReference and SignatureForIndexRef). The
 *   host is online (falcosecurity's index and ghcr.io answer) unless the state has `offline`: then only other
 *   registries (a mirror) answer, and the default index or a ghcr.io reference fails the call. The fake file
 *   holds the pinned digest. The config of each call is appended to the state's `falcoctl-configs` (one line per call);
 * - `nft -f` keeps the loaded file as the state's `nft-ruleset` (the "kernel's" table), `list table` succeeds while
 *   it exists, `delete table` removes it; `nft -c` fails when the state has `nft-reject`.
 * - `systemctl show` also prints FragmentPath (the first unit file found along systemd's unit search path, in
 *   systemd's order: src/basic/path-lookup.c `lookup_paths_init`), DropInPaths (every `*.conf` in a
 *   `<unit>.d/` or `falco-.service.d/` directory of that path) and ExecStart (its `path=`) for our unit;
 *   `show-environment` prints the state's `manager-env`, `set-environment`/`unset-environment` edit it.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { standinBinary } from "./standin";

export const FAKE_FALCO_VERSION = "0.44.1";

/** Whether this machine can run the sandbox (root, unshare, overlayfs). */
export function sandboxAvailable(): boolean {
    if (process.getuid?.() !== 0) return false;
    const probe = spawnSync("unshare", ["--mount", "--net", "--propagation", "private", "true"]);
    return probe.status === 0;
}

export interface RunResult {
    status: number | null;
    stdout: string;
    stderr: string;
    /** The last stdout line parsed as JSON, when it is JSON. */
    report?: Record<string, unknown>;
}

export interface RunOptions {
    /** How the script is run. Default `stdin` (`bash -s -- <args> < script`, as over SSH). */
    mode?: "stdin" | "file" | "nobody";
    /** Whether /run/systemd/system exists (systemd is PID 1). Default true. */
    systemd?: boolean;
    args?: string[];
    /** Tools to make unavailable (every copy on the script's PATH is covered by a non-executable file). */
    hide?: string[];
    /** Files to put under the run's fresh /run (path relative to /run: content), e.g. `cloud-init/result.json`. */
    runFiles?: Record<string, string>;
    /**
     * A network namespace file to run in (e.g. LocalOciRegistry's, whose only network is a registry on loopback)
     * instead of a fresh, empty one.
     */
    netns?: string;
}

const WRAPPER = String.raw`
set -euo pipefail
R=$1 SCRIPT=$2 MODE=$3 SYSTEMD=$4 HIDE=$5
shift 5
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$R/etc/upper,workdir=$R/etc/work" /etc
mount -t overlay overlay -o "lowerdir=/var/lib,upperdir=$R/varlib/upper,workdir=$R/varlib/work" /var/lib
mount --bind "$R/fakebin" /usr/local/sbin
mount -t tmpfs -o mode=0755 tmpfs /run
if [[ $SYSTEMD == yes ]]; then mkdir -p /run/systemd/system; fi
if [[ -d $R/run-files ]]; then cp -R -- "$R/run-files/." /run/; fi
for tool in $HIDE; do
    for dir in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
        if [[ -e $dir/$tool ]]; then mount --bind /dev/null "$dir/$tool"; fi
    done
done
# Not exec'd: this shell stays PID 1 of the sandbox's pid namespace (the kernel ignores SIGKILL sent to its own
# namespace's init), so a fake can kill the script as a dropped connection would.
case $MODE in
stdin) bash -s -- "$@" <"$SCRIPT" ;;
file) bash "$SCRIPT" "$@" ;;
nobody) setpriv --reuid=65534 --regid=65534 --clear-groups bash -s -- "$@" <"$SCRIPT" ;;
esac
`;

const KILL_AT = String.raw`if [[ -s $S/kill-at && "$*" == "$(<"$S/kill-at")"* ]]; then
    rm -f -- "$S/kill-at"
    printf 'killed at: %s\n' "$*" >>"$S/killed.log"
    kill -KILL "$PPID"
    exit 1
fi
`;

const FAKE_SYSTEMCTL = String.raw`#!/bin/bash
S=__STATE__
${KILL_AT}
printf '%s\n' "$*" >>"$S/systemctl.log"
verb="" units=()
while (($#)); do
    case $1 in
    -p) shift ;;
    -*) ;;
    *) if [[ -z $verb ]]; then verb=$1; else units+=("$1"); fi ;;
    esac
    shift
done
u=${"${"}units[0]:-}
case $verb in
show)
    # Like systemctl show -p LoadState -p ActiveState -p UnitFileState (systemd's src/systemctl/systemctl-show.c
    # prints the asked properties of each unit as Key=value lines, a blank line between units): a block per unit,
    # in order.
    sep=""
    search="/etc/systemd/system.control /run/systemd/system.control /run/systemd/transient /etc/systemd/system /run/systemd/system /usr/local/lib/systemd/system /usr/lib/systemd/system"
    for u in "${"${"}units[@]}"; do
        printf '%s' "$sep"
        sep=$'\n'
        frag="" drop=()
        for d in $search; do
            if [[ -z $frag && -f $d/$u ]]; then frag=$d/$u; fi
            for c in "$d/$u.d"/*.conf "$d/falco-.service.d"/*.conf; do [[ -f $c ]] && drop+=("$c"); done
        done
        if [[ -e $S/masked/$u ]]; then echo LoadState=masked
        elif [[ -n $frag || -e $S/package-units/$u ]]; then echo LoadState=loaded
        else echo LoadState=not-found; fi
        if [[ -e $S/active/$u ]]; then echo ActiveState=active; else echo ActiveState=inactive; fi
        if [[ -e $S/masked/$u ]]; then echo UnitFileState=masked
        elif [[ -e $S/enabled/$u ]]; then echo UnitFileState=enabled
        elif [[ -e /etc/systemd/system/$u || -e $S/package-units/$u ]]; then echo UnitFileState=disabled
        else echo UnitFileState=; fi
        if [[ $u == falco-nodes.service && -n $frag ]]; then
            echo "FragmentPath=$frag"
            echo "DropInPaths=${"${"}drop[*]}"
            exe=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$frag" | tail -1)
            echo "ExecStart={ path=$exe ; argv[]=$exe ; ignore_errors=no }"
        fi
    done ;;
show-environment) cat "$S/manager-env" 2>/dev/null || printf 'LANG=C.UTF-8\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin\n' ;;
set-environment) for v in "${"${"}units[@]}"; do echo "$v" >>"$S/manager-env"; done ;;
unset-environment)
    for v in "${"${"}units[@]}"; do
        [[ -f $S/manager-env ]] && grep -v "^$v=" "$S/manager-env" >"$S/manager-env.new"; mv -f "$S/manager-env.new" "$S/manager-env" 2>/dev/null || true
    done ;;
is-enabled) [[ -e $S/enabled/$u ]] ;;
is-active) [[ -e $S/active/$u ]] ;;
enable) for u in "${"${"}units[@]}"; do touch "$S/enabled/$u"; done ;;
disable) for u in "${"${"}units[@]}"; do rm -f "$S/enabled/$u" "$S/active/$u"; done ;;
mask) for u in "${"${"}units[@]}"; do touch "$S/masked/$u"; done ;;
unmask) for u in "${"${"}units[@]}"; do rm -f "$S/masked/$u"; done ;;
daemon-reload | reset-failed | reload) ;;
stop) for u in "${"${"}units[@]}"; do rm -f "$S/active/$u"; done ;;
start)
    # systemctl start of a masked unit fails: "Unit X is masked." (exit 1)
    for u in "${"${"}units[@]}"; do
        if [[ -e $S/masked/$u ]]; then echo "Failed to start $u: Unit $u is masked." >&2; exit 1; fi
        touch "$S/active/$u"
    done ;;
restart)
    [[ -e /etc/systemd/system/$u ]] || { echo "Unit $u not found." >&2; exit 5; }
    if grep -rqs FAIL_AT_START /etc/falco; then
        rm -f "$S/active/$u"
        echo "Job for $u failed because the control process exited with error code." >&2
        exit 1
    fi
    if [[ $u == falco-nodes.service ]]; then rm -f "$S/healthz-dead"; fi
    touch "$S/active/$u" ;;
*) echo "fake systemctl: unsupported: $verb" >&2; exit 1 ;;
esac
`;

/**
 * journalctl. With a `_SYSTEMD_UNIT=` match (converge looking for the detection canary): the canary alert, in the
 * JSON format of a real Falco's syslog line (shared/reference/falco/outputs/alert.*.json), when the unit is
 * active, its canary rule file is installed and the canary file exists, i.e. what a detecting Falco would have
 * logged after converge opened it; nothing when the state has `canary-silent` (a Falco whose events stall).
 * Otherwise (the rollback's `-u UNIT -n 30`) a fixed journal.
 */
const FAKE_JOURNALCTL = String.raw`#!/bin/bash
S=__STATE__
unit=""
for a in "$@"; do case $a in _SYSTEMD_UNIT=*) unit=${"${"}a#_SYSTEMD_UNIT=} ;; esac; done
if [[ -n $unit ]]; then
    printf '%s\n' "canary $*" >>"$S/journalctl.log"
    [[ -e $S/active/$unit && ! -e $S/canary-silent ]] || exit 0
    rule=/etc/falco/rules.d/05-falco-nodes-canary.yaml
    token=$(grep -o 'falco_nodes_canary=[0-9a-f]*' "$rule" 2>/dev/null | head -1)
    [[ -n $token && -e /run/falco-nodes-canary/${"${"}token#falco_nodes_canary=} ]] || exit 0
    printf '{"hostname":"sandbox","output":"2026-12-01T00:00:00.000000000+0000: Notice Falco-nodes detection canary | %s process=bash parent=bash command=bash -s","priority":"Notice","rule":"Falco-nodes detection canary","source":"syscall","tags":["canary","falco-nodes","host"],"time":"2026-12-01T00:00:00.000000000Z"}\n' "$token"
    exit 0
fi
printf '%s\n' "-- fake journal ($*) --" "falco[42]: FAIL_AT_START found: exiting"
`;

const FAKE_SYSCTL = String.raw`#!/bin/bash
S=__STATE__
${KILL_AT}
printf '%s\n' "$*" >>__STATE__/sysctl.log
`;

const FAKE_SSHD = String.raw`#!/bin/bash
printf '%s\n' "$*" >>__STATE__/sshd.log
if [[ ${"${"}1:-} == -t ]] && grep -rqs BadDirective /etc/ssh/sshd_config.d; then
    echo "/etc/ssh/sshd_config.d/90-falco-nodes.conf: Bad configuration option: BadDirective" >&2
    exit 255
fi
`;

const FAKE_CURL = String.raw`#!/bin/bash
printf '%s\n' "$*" >>__STATE__/curl.log
[[ -e __STATE__/active/falco-nodes.service && ! -e __STATE__/healthz-dead ]]
`;

/** cloud-init: `status --wait` exits with the code in the state's `cloud-init-rc` (default 0, i.e. done). */
const FAKE_CLOUD_INIT = String.raw`#!/bin/bash
printf '%s\n' "$*" >>__STATE__/cloud-init.log
exit "$(cat __STATE__/cloud-init-rc 2>/dev/null || echo 0)"
`;

const FAKE_FALCOCTL = String.raw`#!/bin/bash
S=__STATE__
printf '%s
' "$*" >>"$S/falcoctl.log"
[[ ${"${"}1:-} == artifact && ${"${"}2:-} == install ]] || { echo "fake falcoctl: unsupported: $*" >&2; exit 1; }
shift 2
pdir=/usr/share/falco/plugins rdir=/etc/falco refs=() config=/etc/falcoctl/falcoctl.yaml
while (($#)); do
    case $1 in
    --plugins-dir) pdir=$2; shift ;;
    --rulesfiles-dir) rdir=$2; shift ;;
    --config) config=$2; shift ;;
    --log-format | --allowed-types) shift ;;
    --) shift; refs+=("$@"); break ;;
    -*) ;;
    *) refs+=("$1") ;;
    esac
    shift
done
printf 'config:%s\n' "$(tr '\n' ' ' <"$config" 2>/dev/null)" >>"$S/falcoctl-configs"
# Only the two index shapes converge can write are read: none given (the default index) or "indexes: []".
default_index=true
if grep -qx 'indexes: \[\]' "$config" 2>/dev/null; then default_index=false; fi
if [[ $default_index == true && -e $S/offline ]]; then
    echo "ERROR unable to fetch index \"falcosecurity\" with URL \"https://falcosecurity.github.io/falcoctl/index.yaml\": dial tcp: lookup falcosecurity.github.io: no such host" >&2
    exit 1
fi
if [[ -e $S/falcoctl-fail ]]; then echo "ERROR unable to get manifest: unable to fetch reference" >&2; exit 1; fi
for ref in "${"${"}refs[@]}"; do
    # An index name (no "/") resolves through the merged indexes to the entry's registry/repository, and only an
    # index name gets the entry's cosign signature; a full reference is used as is, unsigned
    # (pkg/index/index/index.go ResolveReference, SignatureForIndexRef). falcosecurity's index lists its plugins
    # under ghcr.io/falcosecurity/plugins/plugin/<name>, k8saudit-rules under .../ruleset/k8saudit.
    if [[ $ref != */* ]]; then
        name=${"${"}ref%%[@:]*}
        if [[ $default_index != true ]]; then
            echo "ERROR cannot find $ref among the configured indexes, skipping" >&2
            exit 1
        fi
        case $name in
        k8saudit-rules) ref=ghcr.io/falcosecurity/plugins/ruleset/k8saudit${"${"}ref#"$name"} ;;
        *) ref=ghcr.io/falcosecurity/plugins/plugin/$name${"${"}ref#"$name"} ;;
        esac
        printf 'verified %s\n' "$ref" >>"$S/falcoctl-verified"
    fi
    if [[ -e $S/offline && $ref == ghcr.io/* ]]; then
        echo "ERROR unable to get manifest: dial tcp: lookup ghcr.io: no such host" >&2
        exit 1
    fi
    pinned=${"${"}ref#*@}
    [[ $ref == *@sha256:* ]] || pinned=unpinned
    repo=${"${"}ref%@*}
    repo=${"${"}repo%:*}
    name=${"${"}repo##*/}
    case $repo in
    */plugin/*) printf 'fake plugin %s %s\n' "$name" "$pinned" >"$pdir/lib$name.so" ;;
    */ruleset/*) printf -- '- list: fake_k8s_audit_rules\n  items: [%s]\n' "$pinned" >"$rdir/k8s_audit_rules.yaml" ;;
    *) echo "fake falcoctl: unknown reference $ref" >&2; exit 1 ;;
    esac
done
`;

const FAKE_NFT = String.raw`#!/bin/bash
S=__STATE__
printf '%s
' "$*" >>"$S/nft.log"
case "$1 ${"${"}2:-}" in
"-c -f")
    if [[ -e $S/nft-reject ]]; then echo "$3:7:3-10: Error: syntax error, unexpected junk" >&2; exit 1; fi ;;
"-f "*) cp -- "$2" "$S/nft-ruleset" ;;
"list table") [[ -e $S/nft-ruleset ]] || { echo "Error: No such file or directory" >&2; exit 1; } ;;
"delete table") [[ -e $S/nft-ruleset ]] || { echo "Error: No such file or directory" >&2; exit 1; }; rm -f -- "$S/nft-ruleset" ;;
*) echo "fake nft: unsupported: $*" >&2; exit 1 ;;
esac
`;

export class HostSandbox {
    readonly root: string;
    /** The fake Falco: use as `install: { source: "preinstalled", binaryPath: sandbox.falco }`. */
    readonly falco: string;
    readonly state: string;

    constructor() {
        this.root = fs.mkdtempSync(path.join(os.tmpdir(), "falco-nodes-sbx-"));
        // The stand-in falco's path ends up in settings (binaryPath), which allow only [A-Za-z0-9._/-].
        if (!/^\/[A-Za-z0-9._\/-]+$/.test(this.root)) throw new Error(`sandbox path ${this.root} is not a plain path`);
        this.state = path.join(this.root, "state");
        for (const d of ["etc/upper", "etc/work", "varlib/upper", "varlib/work", "fakebin", "bin", "scripts"])
            fs.mkdirSync(path.join(this.root, d), { recursive: true });
        for (const d of ["enabled", "active", "masked", "package-units"]) fs.mkdirSync(path.join(this.state, d), { recursive: true });
        const write = (file: string, text: string) =>
            fs.writeFileSync(file, text.split("__STATE__").join(this.state), { mode: 0o755 });
        write(path.join(this.root, "fakebin", "systemctl"), FAKE_SYSTEMCTL);
        write(path.join(this.root, "fakebin", "journalctl"), FAKE_JOURNALCTL);
        write(path.join(this.root, "fakebin", "sysctl"), FAKE_SYSCTL);
        write(path.join(this.root, "fakebin", "sshd"), FAKE_SSHD);
        write(path.join(this.root, "fakebin", "curl"), FAKE_CURL);
        write(path.join(this.root, "fakebin", "falcoctl"), FAKE_FALCOCTL);
        write(path.join(this.root, "fakebin", "nft"), FAKE_NFT);
        write(path.join(this.root, "fakebin", "cloud-init"), FAKE_CLOUD_INIT);
        // The stand-in behind a wrapper that logs its arguments (`log("falco")`), as the other fakes do.
        this.falco = path.join(this.root, "bin", "falco");
        const standin = path.join(this.root, "bin", "falco-standin");
        fs.copyFileSync(standinBinary(FAKE_FALCO_VERSION), standin);
        fs.chmodSync(standin, 0o755);
        write(this.falco, `#!/bin/bash\nprintf '%s\\n' "$*" >>__STATE__/falco.log\nexec ${standin} "$@"\n`);
        // A host with sshd (its config includes the drop-in directory) that is running.
        fs.mkdirSync(path.join(this.root, "etc/upper/ssh/sshd_config.d"), { recursive: true });
        fs.writeFileSync(path.join(this.root, "etc/upper/ssh/sshd_config"), "Include /etc/ssh/sshd_config.d/*.conf\nPasswordAuthentication no\n");
        this.touch("active", "ssh.service");
    }

    /** Mark a fake unit's state: `package-units` (the Falco package's units exist), `active`, `enabled`, `masked`. */
    touch(kind: "enabled" | "active" | "masked" | "package-units", unit: string): void {
        fs.writeFileSync(path.join(this.state, kind, unit), "");
    }

    has(kind: "enabled" | "active" | "masked" | "package-units", unit: string): boolean {
        return fs.existsSync(path.join(this.state, kind, unit));
    }

    /**
     * Replace the fake falcoctl with `script` (the e2e TEST STAND-IN, test/e2e/standin/falcoctl-standin.sh, which
     * talks to a real registry), logging to the state's `falcoctl.log`. `caFile` plays the host's CA store (Go's
     * crypto/x509 reads $SSL_CERT_FILE on Linux). The stand-in runs with the system PATH, so it reaches the real
     * curl and not the sandbox's fake one.
     */
    useFalcoctl(script: string, caFile?: string): void {
        // Plain paths only, so they need no shell quoting.
        const q = (v: string) => {
            if (!/^\/[A-Za-z0-9._\/-]+$/.test(v)) throw new Error(`${v} is not a plain path`);
            return v;
        };
        fs.writeFileSync(
            path.join(this.root, "fakebin", "falcoctl"),
            [
                "#!/bin/bash",
                `export FALCOCTL_STANDIN_LOG=${q(path.join(this.state, "falcoctl.log"))}`,
                ...(caFile ? [`export SSL_CERT_FILE=${q(caFile)}`] : []),
                "export PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                `exec ${q(script)} "$@"`,
                "",
            ].join("\n"),
            { mode: 0o755 },
        );
    }

    /** Create (or with false, remove) a marker file in the fakes' state (`falcoctl-fail`, `nft-reject`, `nft-ruleset`). */
    mark(name: string, present = true): void {
        const file = path.join(this.state, name);
        if (present) fs.writeFileSync(file, "");
        else fs.rmSync(file, { force: true });
    }

    /** A file in the fakes' state (e.g. `nft-ruleset`, the ruleset the fake kernel holds), or undefined. */
    stateFile(name: string): string | undefined {
        const file = path.join(this.state, name);
        return fs.existsSync(file) ? fs.readFileSync(file, "utf8") : undefined;
    }

    /** Lines a fake logged (`systemctl`, `falco`, `sysctl`, `sshd`, `curl`, `falcoctl`, `nft`). */
    log(tool: string): string[] {
        const file = path.join(this.state, `${tool}.log`);
        return fs.existsSync(file) ? fs.readFileSync(file, "utf8").split("\n").filter(Boolean) : [];
    }

    clearLogs(): void {
        for (const f of fs.readdirSync(this.state)) if (f.endsWith(".log")) fs.rmSync(path.join(this.state, f));
    }

    /** Where a host path's sandbox copy lives (only /etc and /var/lib are writable in the sandbox). */
    private upper(hostPath: string): string {
        if (hostPath.startsWith("/etc/")) return path.join(this.root, "etc/upper", hostPath.slice(5));
        if (hostPath.startsWith("/var/lib/")) return path.join(this.root, "varlib/upper", hostPath.slice(9));
        throw new Error(`${hostPath} is outside the sandbox's writable trees`);
    }

    /** A file the script wrote, or undefined when absent (deleted or never written). */
    stat(hostPath: string): fs.Stats | undefined {
        const p = this.upper(hostPath);
        try {
            const st = fs.lstatSync(p);
            return st.isCharacterDevice() ? undefined : st; // an overlay whiteout: deleted
        } catch {
            return undefined;
        }
    }

    read(hostPath: string): string | undefined {
        const st = this.stat(hostPath);
        return st?.isFile() ? fs.readFileSync(this.upper(hostPath), "utf8") : undefined;
    }

    /** Write (or with undefined, delete) a file as if someone edited the host. */
    write(hostPath: string, content: string, mode = 0o644): void {
        const p = this.upper(hostPath);
        fs.mkdirSync(path.dirname(p), { recursive: true });
        fs.writeFileSync(p, content, { mode });
        fs.chmodSync(p, mode);
    }

    remove(hostPath: string): void {
        fs.rmSync(this.upper(hostPath), { force: true });
    }

    /** Octal mode string of a sandbox file (`0640`). */
    mode(hostPath: string): string | undefined {
        const st = this.stat(hostPath);
        return st ? "0" + (st.mode & 0o777).toString(8) : undefined;
    }

    /** Every file under the sandbox's /etc and /var/lib, with its content hash: to assert "nothing changed". */
    snapshot(): Record<string, string> {
        const out: Record<string, string> = {};
        const walk = (dir: string, prefix: string) => {
            if (!fs.existsSync(dir)) return;
            for (const name of fs.readdirSync(dir).sort()) {
                const full = path.join(dir, name);
                const st = fs.lstatSync(full);
                if (st.isDirectory()) walk(full, `${prefix}/${name}`);
                else out[`${prefix}/${name}`] = st.isFile() ? `${(st.mode & 0o777).toString(8)}:${fs.readFileSync(full, "utf8")}` : "special";
            }
        };
        walk(path.join(this.root, "etc/upper"), "/etc");
        walk(path.join(this.root, "varlib/upper"), "/var/lib");
        return out;
    }

    run(script: string, options: RunOptions = {}): RunResult {
        const runFiles = path.join(this.root, "run-files");
        fs.rmSync(runFiles, { recursive: true, force: true });
        for (const [rel, content] of Object.entries(options.runFiles ?? {})) {
            fs.mkdirSync(path.dirname(path.join(runFiles, rel)), { recursive: true });
            fs.writeFileSync(path.join(runFiles, rel), content);
        }
        const file = path.join(this.root, "scripts", `script-${Date.now()}-${Math.random().toString(36).slice(2)}.sh`);
        fs.writeFileSync(file, script, { mode: 0o644 });
        const net = options.netns ? ["nsenter", `--net=${options.netns}`, "unshare"] : ["unshare", "--net"];
        const r = spawnSync(
            net[0],
            // A pid namespace of its own (and its /proc): the script looks up its process tree for the SSH
            // connection it runs in, and must not find the one this test process may run under.
            [...net.slice(1), "--mount", "--pid", "--fork", "--mount-proc", "--propagation", "private", "bash", "-c", WRAPPER, "sandbox", this.root, file,
                options.mode ?? "stdin", options.systemd === false ? "no" : "yes", (options.hide ?? []).join(" "), ...(options.args ?? [])],
            { encoding: "utf8", timeout: 180_000 },
        );
        const last = r.stdout.trim().split("\n").pop() ?? "";
        let report: Record<string, unknown> | undefined;
        try {
            report = last.startsWith("{") ? JSON.parse(last) : undefined;
        } catch {
            report = undefined;
        }
        return { status: r.status, stdout: r.stdout, stderr: r.stderr, report };
    }

    cleanup(): void {
        fs.rmSync(this.root, { recursive: true, force: true });
    }
}

/**
 * For a mocha suite of sandbox runs: skips the suite where the sandbox cannot run, gives each test a fresh
 * sandbox (the returned getter) and cleans it up after.
 */
export function useSandbox(): () => HostSandbox {
    let sb: HostSandbox | undefined;
    before(function () {
        if (!sandboxAvailable()) this.skip();
    });
    beforeEach(() => {
        sb = new HostSandbox();
    });
    afterEach(() => sb?.cleanup());
    return () => sb!;
}
