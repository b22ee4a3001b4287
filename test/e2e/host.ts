/**
 * Driving the product's host script on an e2e VM exactly as FalcoHost does: the bundle rendered from settings
 * (`renderBundle(resolveHostSettings(...))`), the command string from `remoteShell()`, the script on stdin of one
 * SSH session, the report parsed with `parseConvergeReport()`. Plus the few readers the lifecycle, fault and
 * bench suites share (files as the bundle says, capability masks).
 */
import * as crypto from "crypto";
import { Bundle, BundleFile, renderBundle } from "../../components/host/bundle";
import { ConvergeReport, parseConvergeReport, remoteShell } from "../../components/host/falcoHost";
import { HostSecrets, HostSettings, resolveHostSettings } from "../../components/host/settings";
import type { NodeIdentity } from "../../components/shared/hostname";
import { AptRepo } from "./aptRepo";
import { shQuote, tail } from "./exec";
import { Vm } from "./vm";

/**
 * Render what FalcoHost would send for `settings` (with secrets, as `pulumi up` does: never placeholders). With
 * `node`, the unit sets FALCO_HOSTNAME as a FalcoHost of that name (or hostname) does; without, the unit leaves
 * Falco the kernel hostname (the suites that drive the script directly).
 */
export function bundleFor(settings: HostSettings, secrets: HostSecrets = {}, node?: NodeIdentity): Bundle {
    return renderBundle(resolveHostSettings(settings), secrets, node);
}

/** Settings for Falco from the test's signed apt repository (the real `apt` install path). */
export function aptSettings(repo: AptRepo, extra: HostSettings = {}): HostSettings {
    return {
        driver: "modern_ebpf",
        ...extra,
        install: { source: "apt", repoUrl: repo.url, keyUrl: repo.keyUrl, keyFingerprint: repo.fingerprint, ...extra.install },
    };
}

export interface ScriptRun {
    code: number;
    stdout: string;
    stderr: string;
    /** The converge script's final JSON line, if any. */
    report?: ConvergeReport;
    /** Wall time of the SSH call, seconds. */
    seconds: number;
}

export interface ScriptRunOptions {
    /** Login user (default the VM's admin). */
    user?: string;
    /** A new SSH connection, as @pulumi/command opens per converge (default: the VM's shared one, faster). */
    fresh?: boolean;
    timeoutMs?: number;
    /** Command to run instead of remoteShell(user, action) (the bench wraps it to time the VM's side). */
    command?: string;
}

/** Run the bundle's script on the VM the way FalcoHost's remote.Command does: `remoteShell(user, action)`, script on stdin. */
export async function runHostScript(
    vm: Vm,
    bundle: Bundle,
    action: "converge" | "uninstall" = "converge",
    o: ScriptRunOptions = {},
): Promise<ScriptRun> {
    const user = o.user ?? vm.user;
    const script = action === "converge" ? bundle.installScript : bundle.uninstallScript;
    const t0 = Date.now();
    const r = await vm.ssh(o.command ?? remoteShell(user, action), {
        stdin: script,
        user,
        fresh: o.fresh,
        timeoutMs: o.timeoutMs ?? 15 * 60_000,
    });
    return { ...r, report: parseConvergeReport(r.stdout), seconds: (Date.now() - t0) / 1000 };
}

/** Converge and require success; returns the report. */
export async function convergeOk(vm: Vm, bundle: Bundle, o: ScriptRunOptions = {}): Promise<ConvergeReport & { seconds: number }> {
    const r = await runHostScript(vm, bundle, "converge", o);
    if (r.code !== 0 || !r.report) throw new Error(`converge exited ${r.code}\n--- stdout\n${tail(r.stdout)}\n--- stderr\n${tail(r.stderr, 60)}`);
    return { ...r.report, seconds: r.seconds };
}

export function sha256(text: string | Buffer): string {
    return crypto.createHash("sha256").update(text).digest("hex");
}

export interface HostFile {
    /** sha256 of the content, or "absent". */
    sha256: string;
    /** Octal mode without leading zero ("640"), owner and group names. */
    mode: string;
    owner: string;
    group: string;
}

/** sha256, mode and owner of several files in one SSH call ("absent" for a missing one). */
export async function hostFiles(vm: Vm, paths: readonly string[]): Promise<Record<string, HostFile>> {
    const script = `for f in ${paths.map(shQuote).join(" ")}; do
  if [ -f "$f" ]; then printf '%s|%s|%s\\n' "$f" "$(stat -c '%a|%U|%G' -- "$f")" "$(sha256sum -- "$f" | cut -d' ' -f1)"
  else printf '%s|absent\\n' "$f"; fi
done`;
    const r = await vm.runAsRoot(script);
    if (r.code !== 0) throw new Error(`reading files: ${r.stderr}`);
    const out: Record<string, HostFile> = {};
    for (const line of r.stdout.trim().split("\n")) {
        const [file, mode, owner, group, hash] = line.split("|");
        out[file] = mode === "absent" ? { sha256: "absent", mode: "", owner: "", group: "" } : { sha256: hash, mode, owner, group };
    }
    return out;
}

/** Where the host's files differ from what `files` says (content, mode, root:root); empty when they match. */
export async function filesDiffering(vm: Vm, files: readonly BundleFile[]): Promise<string[]> {
    const have = await hostFiles(vm, files.map((f) => f.path));
    const problems: string[] = [];
    for (const f of files) {
        const h = have[f.path];
        if (!h || h.sha256 === "absent") problems.push(`${f.path}: missing`);
        else {
            if (h.sha256 !== sha256(f.content)) problems.push(`${f.path}: content differs`);
            if (h.mode !== f.mode.replace(/^0/, "")) problems.push(`${f.path}: mode ${h.mode}, want ${f.mode}`);
            if (`${h.owner}:${h.group}` !== "root:root") problems.push(`${f.path}: owner ${h.owner}:${h.group}`);
        }
    }
    return problems;
}

/** The files of `bundle` this host gets: one unit variant, the perf drop-in only when the host needs it. */
export function filesForHost(bundle: Bundle, o: { driver: "modern_ebpf" | "kmod"; perfDropIn: boolean }): BundleFile[] {
    return bundle.files.filter((f) => {
        if (f.group === "unit-modern_ebpf" || f.group === "unit-kmod") return f.group === `unit-${o.driver}`;
        if (f.group === "unit-dropin-perf") return o.perfDropIn;
        return true;
    });
}

/** Linux capability numbers (include/uapi/linux/capability.h), for reading /proc/<pid>/status masks. */
const CAPABILITIES = [
    "chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid", "setpcap",
    "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw", "ipc_lock", "ipc_owner",
    "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct", "sys_admin", "sys_boot", "sys_nice",
    "sys_resource", "sys_time", "sys_tty_config", "mknod", "lease", "audit_write", "audit_control", "setfcap",
    "mac_override", "mac_admin", "syslog", "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf",
    "checkpoint_restore",
];

/** `CAP_BPF CAP_PERFMON ...` (any case, with or without the prefix) -> the kernel's bit mask. */
export function capabilityMask(names: readonly string[]): bigint {
    let mask = 0n;
    for (const n of names) {
        const i = CAPABILITIES.indexOf(n.toLowerCase().replace(/^cap_/, ""));
        if (i < 0) throw new Error(`unknown capability ${n}`);
        mask |= 1n << BigInt(i);
    }
    return mask;
}

/** A unit file's `Key=value` lines for `key`, in order (comments skipped). */
export function unitValues(unitText: string, key: string): string[] {
    return unitText
        .split("\n")
        .filter((l) => l.startsWith(`${key}=`))
        .map((l) => l.slice(key.length + 1));
}
