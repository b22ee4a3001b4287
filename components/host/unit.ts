/**
 * Falco's systemd unit on the host, `/etc/systemd/system/falco-nodes.service`: everything about it in one place.
 *
 * Every directive is data carrying the reason Falco needs or tolerates it, and is rendered with that reason as
 * `#` comments above it, so the unit file on the host explains itself. Directives deliberately left out (because
 * they break Falco, or would break outputs) are data too and are rendered as comments, so nobody "hardens" the
 * unit into a crash loop. What "measured" means below: a real Falco 0.44.1 (modern eBPF, container plugin,
 * default rules) run under these directives in a Debian 12 VM, detecting a `cat /etc/shadow`
 * (see shared/reference/README.md).
 *
 * Two units exist, one per driver: the driver is chosen on ExecStart (`-o engine.kind=...`), not in falco.yaml,
 * so `driver: auto` is resolved on the host by installing one of the two rendered units.
 *
 * Pure: settings in, unit text out.
 */
import * as path from "path";
import { canaryPath } from "../rules";
import { hostnameProblem, NodeIdentity } from "../shared/hostname";
import { commentLines } from "./comments";
import { FALCO_MAIN_CONFIG, UNIT_DROPIN_DIR, UNIT_NAME, UNIT_PATH } from "./paths";
import { ResolvedHostSettings } from "./settings";
import { environmentAssignment } from "./systemdQuote";

/** A driver a unit can be rendered for (`auto` is resolved on the host by choosing one of the two units). */
export type UnitDriver = "modern_ebpf" | "kmod";

/** One `Key=value` line of the unit, with the reason it is there. */
export interface UnitDirective {
    /** Directive name, e.g. `ProtectSystem`. */
    readonly key: string;
    /** Value as written after `=`; may be empty (`AmbientCapabilities=` clears the set). */
    readonly value: string;
    /** Why Falco needs or tolerates it; rendered as `# ` comment lines above the directive. */
    readonly why: string;
}

/** A directive deliberately not set, with the reason; rendered as a comment so readers see the decision. */
export interface UnitOmission {
    /** The directive as one might be tempted to write it, e.g. `ProcSubset=pid`. */
    readonly directive: string;
    /** Why it is not set (what broke, or what it would break). */
    readonly why: string;
}

/** A `[Section]` of the unit. */
export interface UnitSection {
    readonly name: "Unit" | "Service" | "Install" | "Timer";
    readonly directives: readonly UnitDirective[];
    readonly notSet: readonly UnitOmission[];
}

/** File name of the drop-in that adds `CAP_SYS_ADMIN` for `kernel.perf_event_paranoid` > 2. */
export const PERF_EVENT_PARANOID_DROPIN_NAME = "10-perf-event-paranoid.conf";
/** Where converge installs that drop-in. */
export const PERF_EVENT_PARANOID_DROPIN_PATH = `${UNIT_DROPIN_DIR}/${PERF_EVENT_PARANOID_DROPIN_NAME}`;

/**
 * The least-privilege capability set measured to work for a root `modern_ebpf` Falco (kernel.perf_event_paranoid
 * <= 2). The docs' `CAP_SYS_BPF`/`CAP_SYS_PERFMON` are misspellings that systemd silently drops.
 */
export const MODERN_EBPF_CAPABILITIES = [
    "CAP_BPF", "CAP_PERFMON", "CAP_SYS_RESOURCE", "CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH",
] as const;

/**
 * Capabilities removed from the kmod unit (whose needs were not measured, so it keeps everything else): none of
 * them is used by Falco or by modprobe/rmmod. Written as a deny list (`~`), so that the perf_event_paranoid
 * drop-in, which ORs `CAP_SYS_ADMIN` into the set, is a no-op on this unit rather than shrinking it to one
 * capability.
 */
export const KMOD_DENIED_CAPABILITIES = [
    "CAP_SYS_BOOT", "CAP_SYS_TIME", "CAP_WAKE_ALARM", "CAP_LINUX_IMMUTABLE", "CAP_SYS_TTY_CONFIG",
    "CAP_MAC_ADMIN", "CAP_MAC_OVERRIDE", "CAP_BLOCK_SUSPEND", "CAP_LEASE", "CAP_SYS_PACCT",
] as const;

/** Syscall groups denied to the kmod unit: none is used by Falco or by modprobe/rmmod. */
export const KMOD_DENIED_SYSCALL_GROUPS = [
    "@clock", "@cpu-emulation", "@obsolete", "@raw-io", "@reboot", "@swap", "@mount",
] as const;

const MODPROBE = "/sbin/modprobe";
const RMMOD = "/sbin/rmmod";

// --- [Unit] ------------------------------------------------------------------------------------------------

function unitSection(driver: UnitDriver): UnitSection {
    return {
        name: "Unit",
        directives: [
            {
                key: "Description",
                value: `Falco runtime security (falco-nodes, ${driver} driver)`,
                why: "Shown by systemctl status. Names the driver, since converge installs one of two rendered units.",
            },
            {
                key: "Documentation",
                value: "https://falco.org/docs/",
                why: "Where `systemctl help falco-nodes` points.",
            },
            {
                key: "StartLimitIntervalSec",
                value: "0",
                why:
                    "A security sensor must never give up restarting: with systemd's default start limit (5 starts " +
                    "in 10 s) a crash loop would leave the host unmonitored until someone runs `systemctl reset-failed`.",
            },
        ],
        notSet: [
            {
                directive: "After=network-online.target",
                why:
                    "Falco should capture as early in boot as possible, before workloads start. Its outputs need no " +
                    "network at start (syslog and file are local; the http output connects per alert), so waiting " +
                    "for the network would only open a blind window.",
            },
            {
                directive: "Wants=falcoctl-artifact-follow.service",
                why:
                    "No automatic rule updates: falco-nodes deploys pinned, reviewed rules, and the packages' " +
                    "falcoctl-artifact-follow unit is masked.",
            },
            ...(driver === "kmod"
                ? [{
                      directive: "Requires=falco-kmod-inject.service",
                      why: "The package's module-loading unit is masked; this unit loads the module itself (ExecStartPre).",
                  }]
                : []),
        ],
    };
}

// --- [Service] ---------------------------------------------------------------------------------------------

/** The variable Falco reads for the hostname it reports (components/shared/hostname.ts cites where). */
export const FALCO_HOSTNAME_ENV = "FALCO_HOSTNAME";

/**
 * `Environment="FALCO_HOSTNAME=<name>"`: Falco reports the node's declared name (or its explicit `hostname`) in
 * every alert and heartbeat, which is what the central alert rules expect (components/alerting/rules.ts); none
 * without a node identity (Falco then reports the kernel hostname).
 */
function hostnameEnvironment(node: NodeIdentity | undefined): UnitDirective[] {
    if (!node) return [];
    // Callers validate with their own keys first; this is the last line before the host gets it.
    const problem = hostnameProblem(node.hostname);
    if (problem) throw new Error(`hostname: ${problem}`);
    return [
        {
            key: "Environment",
            value: environmentAssignment(FALCO_HOSTNAME_ENV, node.hostname),
            why:
                "The hostname Falco puts in every output (falcosecurity/falco userspace/falco/app/actions/" +
                "init_outputs.cpp reads FALCO_HOSTNAME before the kernel hostname): the node's name in the stack, " +
                "known before the machine exists, so the central alert rules can expect it (an EC2 node's kernel " +
                "hostname is ip-10-...). Changing the machine's hostname changes nothing Falco reports.",
        },
    ];
}

/** Directives both units share: process lifecycle. */
function lifecycle(s: ResolvedHostSettings, driver: UnitDriver, node: NodeIdentity | undefined): UnitDirective[] {
    return [
        {
            key: "Type",
            value: "simple",
            why:
                "Falco neither forks nor notifies systemd: the started process is the sensor. Readiness is checked " +
                "by converge through the webserver's /healthz on 127.0.0.1.",
        },
        {
            key: "ExecStart",
            value: `${s.install.binaryPath} -c ${FALCO_MAIN_CONFIG} -o engine.kind=${driver}`,
            why:
                "The driver is chosen here rather than in falco.yaml, so `driver: auto` is resolved on the host by " +
                "installing one of two rendered units, with the same falco.yaml.",
        },
        ...hostnameEnvironment(node),
        {
            key: "Restart",
            value: "always",
            why:
                "Restart on any exit. An attacker who sends SIGTERM gets a clean exit (status 0), which the " +
                "packages' Restart=on-failure would not restart.",
        },
        {
            key: "RestartSec",
            value: "5s",
            why:
                "Short, to keep the blind window after a crash small (start to first detection took 9-11 s in the " +
                "measured VM), yet not a busy loop: each start loads and attaches the driver again.",
        },
        {
            key: "TimeoutStopSec",
            value: "30s",
            why: "Time to flush outputs and detach the driver on SIGTERM before SIGKILL; the packages use 30 s too.",
        },
        {
            key: "KillMode",
            value: "control-group",
            why:
                "Stopping Falco also stops its children (the program output's `sh -c` pipeline), so none outlives " +
                "the sensor. systemd's default, stated so that a drop-in changing it stands out.",
        },
        {
            key: "OOMScoreAdjust",
            value: "-1000",
            why:
                "An attacker who exhausts memory must not get the sensor OOM-killed first. -1000 exempts Falco from " +
                "the OOM killer (measured fine); the flip side is that a runaway Falco makes the kernel kill other " +
                "processes, which is why falco.yaml bounds Falco's output queue.",
        },
    ];
}

/** Sandboxing both units share: Falco's userspace is the same whatever the driver. */
function sharedSandbox(): { fs: UnitDirective[]; kernel: UnitDirective[]; process: UnitDirective[]; net: UnitDirective[] } {
    return {
        fs: [
            {
                key: "NoNewPrivileges",
                value: "yes",
                why:
                    "Falco and the programs it runs can never gain privileges through setuid/setgid binaries or " +
                    "file capabilities. Measured tolerated.",
            },
            {
                key: "ProtectSystem",
                value: "strict",
                why:
                    "The whole file system is read-only for Falco except the directories systemd creates below " +
                    "(LogsDirectory, RuntimeDirectory) and PrivateTmp: a compromised Falco cannot plant or alter " +
                    "files. Measured tolerated.",
            },
            {
                key: "LogsDirectory",
                value: "falco",
                why:
                    "Creates /var/log/falco and makes it writable under ProtectSystem=strict: the alert file " +
                    "(outputs.file.path) lives there. Not ReadWritePaths=, which fails the start with 226/NAMESPACE " +
                    "when the path does not exist yet (measured).",
            },
            {
                key: "LogsDirectoryMode",
                value: "0700",
                why:
                    "Alerts carry command lines, file names and user names: root-only. Relax it in a drop-in if a " +
                    "log shipper running as another user must read them.",
            },
            {
                key: "RuntimeDirectory",
                value: "falco",
                why:
                    "A writable /run/falco (created at start, removed at stop) for anything Falco or a plugin keeps " +
                    "at run time, since /run is otherwise read-only under ProtectSystem=strict.",
            },
            {
                key: "RuntimeDirectoryMode",
                value: "0700",
                why: "Root-only, like everything else Falco writes.",
            },
            {
                key: "ProtectHome",
                value: "read-only",
                why:
                    "Falco never writes below /home, /root or /run/user. Read-only rather than inaccessible, as " +
                    "measured, so path lookups by Falco and its plugins still resolve.",
            },
            {
                key: "PrivateTmp",
                value: "yes",
                why:
                    "A private /tmp and /var/tmp: nothing Falco writes there is visible to other processes, and " +
                    "nothing they plant there is visible to Falco. Measured tolerated.",
            },
            {
                key: "UMask",
                value: "0077",
                why: "Files Falco creates (the alert file) are root-only, as in the packages' units.",
            },
        ],
        kernel: [
            {
                key: "ProtectKernelTunables",
                value: "yes",
                why:
                    "/proc/sys, /sys and similar are read-only: Falco reads kernel information (BTF, tracefs, " +
                    "/proc) but never changes kernel settings. Measured tolerated.",
            },
            {
                key: "ProtectKernelLogs",
                value: "yes",
                why: "Falco does not read the kernel log buffer (/dev/kmsg, /proc/kmsg). Measured tolerated.",
            },
            {
                key: "ProtectControlGroups",
                value: "yes",
                why:
                    "cgroupfs is read-only: Falco reads cgroups to attribute events to containers, never writes " +
                    "them. Measured tolerated.",
            },
            {
                key: "ProtectHostname",
                value: "yes",
                why: "Falco reads the host name for alerts, never sets it. Measured tolerated.",
            },
            {
                key: "ProtectProc",
                value: "invisible",
                why:
                    "Hides other users' processes from /proc unless the caller may ptrace them. Falco runs as root " +
                    "with CAP_SYS_PTRACE and still sees every process (measured); keeps /proc tight for anything " +
                    "else that runs in the unit.",
            },
        ],
        process: [
            {
                key: "RestrictNamespaces",
                value: "yes",
                why:
                    "Falco creates and joins no namespaces; denying it blocks a common step of escaping or hiding " +
                    "from a sandbox. Measured tolerated with the container plugin loaded.",
            },
            {
                key: "RestrictRealtime",
                value: "yes",
                why: "Falco needs no realtime scheduling, which could starve the host. Measured tolerated.",
            },
            {
                key: "RestrictSUIDSGID",
                value: "yes",
                why: "Falco never creates setuid/setgid files. Measured tolerated.",
            },
            {
                key: "LockPersonality",
                value: "yes",
                why: "Falco never changes its execution domain (personality(2)). Measured tolerated.",
            },
            {
                key: "MemoryDenyWriteExecute",
                value: "yes",
                why:
                    "No memory that is both writable and executable in Falco's userspace (the BPF JIT is the " +
                    "kernel's), which blocks a class of code injection. Measured tolerated, container plugin included.",
            },
            {
                key: "KeyringMode",
                value: "private",
                why: "Falco uses no kernel keyring; it gets its own, not shared with other services. Measured tolerated.",
            },
            {
                key: "SystemCallArchitectures",
                value: "native",
                why:
                    "Only the native syscall ABI (no 32-bit x86 calls on x86-64), which closes a way around the " +
                    "syscall filter. Measured tolerated.",
            },
        ],
        net: [
            {
                key: "RestrictAddressFamilies",
                value: "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
                why:
                    "AF_UNIX for syslog (/dev/log), the journal and container runtime sockets; AF_INET/AF_INET6 for " +
                    "the webserver on 127.0.0.1 and off-host outputs; AF_NETLINK because Falco lists network " +
                    "interfaces at start (measured: without it, `getifaddrs failed`). No AF_PACKET: no sniffing.",
            },
        ],
    };
}

/** Omissions both units share. */
const SHARED_NOT_SET: UnitOmission[] = [
    {
        directive: "ProcSubset=pid",
        why:
            "Breaks detection (measured): it hides /proc/stat and Falco stops with `An error occurred in an event " +
            "source, forcing termination`.",
    },
    {
        directive: "PrivateUsers=yes",
        why: "Breaks detection (measured): `ring buffer map type is not supported`.",
    },
    {
        directive: "IPAddressDeny=any / PrivateNetwork=yes",
        why:
            "Tolerated by Falco (measured) but they also block off-host outputs (http, a program output that " +
            "talks to the network). If your outputs are local, or you list their addresses, add IPAddressDeny=any " +
            "plus IPAddressAllow=localhost <output addresses> in a drop-in.",
    },
    {
        directive: "ReadWritePaths=",
        why:
            "A listed path that does not exist fails the start with 226/NAMESPACE (measured); LogsDirectory= and " +
            "RuntimeDirectory= create what they make writable.",
    },
    {
        directive: "ExecReload=",
        why:
            "Falco 0.42.0 to 0.44.1 silently ignore SIGHUP when watch_config_files is false, so a reload would " +
            "pretend to apply config; converge restarts Falco instead. `systemctl reload` fails loudly.",
    },
    {
        directive: "MemoryMax= / CPUQuota=",
        why:
            "Throttling the sensor makes it drop events, and an attacker can generate load on purpose to blind " +
            "it. The output queue is bounded in falco.yaml instead.",
    },
];

function modernEbpfService(s: ResolvedHostSettings, node: NodeIdentity | undefined): UnitSection {
    const sandbox = sharedSandbox();
    return {
        name: "Service",
        directives: [
            ...lifecycle(s, "modern_ebpf", node),
            {
                key: "CapabilityBoundingSet",
                value: MODERN_EBPF_CAPABILITIES.join(" "),
                why:
                    "The least-privilege set measured to work for root: CAP_BPF and CAP_PERFMON load and attach the " +
                    "programs, CAP_SYS_RESOURCE raises RLIMIT_MEMLOCK for the ring buffers (without it: `unable to " +
                    "bump RLIMIT_MEMLOCK`), CAP_SYS_PTRACE reads every process's /proc entries, CAP_DAC_READ_SEARCH " +
                    "reads root-only tracefs and /proc files. No CAP_SYS_ADMIN: when kernel.perf_event_paranoid > 2 " +
                    `(Debian/Ubuntu default) converge adds it with the drop-in ${PERF_EVENT_PARANOID_DROPIN_NAME}.`,
            },
            {
                key: "AmbientCapabilities",
                value: "",
                why: "Nothing beyond the bounding set is handed to the programs Falco runs.",
            },
            ...sandbox.fs,
            {
                key: "PrivateDevices",
                value: "yes",
                why:
                    "modern_ebpf needs no device node (it talks to the kernel through bpf() and ring buffers): /dev " +
                    "is a minimal private copy, and CAP_MKNOD/CAP_SYS_RAWIO are dropped. Measured tolerated.",
            },
            ...sandbox.kernel,
            {
                key: "ProtectKernelModules",
                value: "yes",
                why:
                    "The modern eBPF probe is built into the Falco binary: no module to load, and a compromised " +
                    "Falco cannot load one. Measured tolerated.",
            },
            {
                key: "ProtectClock",
                value: "yes",
                why: "Falco reads clocks, never sets them. Measured tolerated.",
            },
            ...sandbox.process,
            {
                key: "SystemCallFilter",
                value: "@system-service bpf perf_event_open",
                why:
                    "Allow list: what a typical service needs, plus bpf() to load the programs and perf_event_open() " +
                    "to attach the classic tracepoints libs 0.25 uses besides its tp_btf programs (measured: without " +
                    "perf_event_open Falco is killed).",
            },
            {
                key: "SystemCallFilter",
                value: "~@resources",
                why:
                    "Then deny changing scheduling, NUMA placement and the legacy setrlimit(2); Falco raises its " +
                    "memlock limit through prlimit64(2), which stays allowed. Measured tolerated.",
            },
            {
                key: "SystemCallErrorNumber",
                value: "EPERM",
                why:
                    "A filtered call fails with EPERM instead of killing Falco with SIGSYS. The call is denied either " +
                    "way; this way an optional call on an untested code path (a plugin, another distro's libc) " +
                    "degrades gracefully instead of blinding the host. A missing required call still shows up, as " +
                    "an `Operation not permitted` error in Falco's log.",
            },
            ...sandbox.net,
        ],
        notSet: [
            {
                directive: "User= / DynamicUser=yes",
                why:
                    "Root, with the bounding set above. A non-root Falco worked (measured: DynamicUser=yes, ambient " +
                    "CAP_BPF CAP_PERFMON CAP_SYS_PTRACE CAP_DAC_READ_SEARCH, LimitMEMLOCK=infinity) but needs " +
                    "kernel.perf_event_paranoid <= 2 or CAP_SYS_ADMIN anyway, leaves /var/log/falco owned by the " +
                    "dynamic user when switching back, and root-owned container runtime sockets were not tested.",
            },
            ...SHARED_NOT_SET,
        ],
    };
}

function kmodService(s: ResolvedHostSettings, node: NodeIdentity | undefined): UnitSection {
    const sandbox = sharedSandbox();
    return {
        name: "Service",
        directives: [
            {
                key: "ExecStartPre",
                value: `${MODPROBE} falco`,
                why:
                    "Load the falco module, built by `falcoctl driver` when the package was installed (this replaces " +
                    "the package's masked falco-kmod-inject unit). No `-` prefix: if the module is missing, the start " +
                    "fails with modprobe's own message instead of a vaguer one from Falco.",
            },
            {
                key: "ExecStopPost",
                value: `-${RMMOD} falco`,
                why:
                    "Unload the module when Falco stops, as the package's inject unit does, so a restart after an " +
                    "upgrade loads the newly built module. `-`: an unload that fails (module busy or gone) must not " +
                    "fail the stop.",
            },
            ...lifecycle(s, "kmod", node),
            {
                key: "CapabilityBoundingSet",
                value: "~" + KMOD_DENIED_CAPABILITIES.join(" "),
                why:
                    "kmod's privilege needs were not measured, so only capabilities that neither Falco nor " +
                    "modprobe/rmmod use are removed (rebooting, setting clocks, immutable files, TTYs, MAC policy, " +
                    "leases, process accounting). A deny list, so that the CAP_SYS_ADMIN drop-in cannot shrink this set by accident.",
            },
            ...sandbox.fs,
            ...sandbox.kernel,
            {
                key: "ReadWritePaths",
                value: "-/sys/module/falco",
                why:
                    "The module's parameters stay writable under ProtectKernelTunables, as in the package's kmod unit. " +
                    "`-`: a missing path is skipped instead of failing with 226/NAMESPACE.",
            },
            {
                key: "PrivateMounts",
                value: "yes",
                why:
                    "This Falco keeps CAP_SYS_ADMIN, so mounts it might make stay in its own namespace instead of " +
                    "propagating to the host. Host mounts still propagate in, so Falco's view is unchanged (Falco " +
                    "mounts nothing itself).",
            },
            ...sandbox.process,
            {
                key: "SystemCallFilter",
                value: "~" + KMOD_DENIED_SYSCALL_GROUPS.join(" "),
                why:
                    "A deny list of call groups that neither Falco nor modprobe/rmmod use: clocks, old ABIs and " +
                    "obsolete calls, raw port I/O, reboot/kexec, swap, mounts. (An allow list, as in the " +
                    "modern_ebpf unit, was not measured with kmod.)",
            },
            {
                key: "SystemCallErrorNumber",
                value: "EPERM",
                why:
                    "A filtered call fails with EPERM instead of killing Falco with SIGSYS, so an unforeseen call " +
                    "degrades instead of blinding the host (see the modern_ebpf unit).",
            },
            ...sandbox.net,
        ],
        notSet: [
            {
                directive: "PrivateDevices=yes",
                why: "Falco reads events from the module's devices, /dev/falco0..N.",
            },
            {
                directive: "ProtectClock=yes",
                why:
                    "It implies DeviceAllow=char-rtc r, which turns the device allow list on and would deny " +
                    "/dev/falco*.",
            },
            {
                directive: "ProtectKernelModules=yes",
                why: "ExecStartPre loads the module and ExecStopPost unloads it.",
            },
            {
                directive: "SystemCallFilter=@system-service ... (an allow list)",
                why:
                    "Not measured with kmod (module loading needs @module, the device interface its own ioctls); " +
                    "left out rather than risk a crash loop on the fallback driver.",
            },
            ...SHARED_NOT_SET,
        ],
    };
}

function installSection(): UnitSection {
    return {
        name: "Install",
        directives: [
            {
                key: "WantedBy",
                value: "multi-user.target",
                why: "Start at every boot, with the normal multi-user system.",
            },
        ],
        notSet: [
            {
                directive: "Alias=falco.service",
                why:
                    "The packages' units claim that alias; they are masked, and a second claimant would make " +
                    "`systemctl enable` fail or steal the name.",
            },
        ],
    };
}

/**
 * The unit as data: sections, directives and deliberate omissions, each with its reason. `node` sets the
 * hostname Falco reports (`FALCO_HOSTNAME`); FalcoHost always gives it.
 */
export function unitSections(s: ResolvedHostSettings, driver: UnitDriver, node?: NodeIdentity): UnitSection[] {
    const service = driver === "modern_ebpf" ? modernEbpfService(s, node) : kmodService(s, node);
    return [unitSection(driver), service, installSection()];
}

// --- rendering ---------------------------------------------------------------------------------------------

function renderSections(header: string[], sections: readonly UnitSection[]): string {
    const out: string[] = [...header];
    for (const section of sections) {
        out.push("", `[${section.name}]`);
        for (const d of section.directives) out.push(...commentLines(d.why), `${d.key}=${d.value}`);
        if (section.notSet.length) {
            out.push("#", "# Deliberately not set:");
            for (const o of section.notSet) out.push(...commentLines(`${o.directive}: ${o.why}`, "# - ", "#   "));
        }
    }
    return out.join("\n") + "\n";
}

/**
 * `/etc/systemd/system/falco-nodes.service` for `driver`: Falco under the hardened sandbox, every directive
 * commented with why Falco needs or tolerates it; with `node`, Falco reports `node.hostname`.
 */
export function renderUnit(s: ResolvedHostSettings, driver: UnitDriver, node?: NodeIdentity): string {
    const header = [
        `# ${UNIT_PATH}: Falco with the ${driver} driver, sandboxed.`,
        "# Managed by falco-nodes: converge overwrites this file. Put local changes in a drop-in,",
        `# ${UNIT_DROPIN_DIR}/*.conf, and check them with:`,
        `#   systemd-analyze security ${UNIT_NAME}`,
        "# Each directive's comment says why Falco needs or tolerates it; \"measured\" means checked with a real",
        "# Falco 0.44.1 (modern_ebpf) detecting under that directive.",
        ...(driver === "kmod"
            ? [
                  "# This kmod unit was not run: it shares the modern_ebpf unit's userspace sandbox (same Falco binary)",
                  "# and leaves out what the module needs (device access, module loading) or was not measured.",
              ]
            : []),
    ];
    return renderSections(header, unitSections(s, driver, node));
}

/**
 * The drop-in that adds `CAP_SYS_ADMIN` to the modern_ebpf unit's bounding set, for hosts whose
 * `kernel.perf_event_paranoid` is above 2. Converge installs it at `PERF_EVENT_PARANOID_DROPIN_PATH` when
 * `perfEventParanoid` is `auto` and the host's value is > 2, or always with `grant-sys-admin`; with `lower-to-2`
 * the sysctl file lowers the setting instead. On the kmod unit (a deny-list bounding set) it changes nothing.
 */
export function renderPerfEventParanoidDropIn(): string {
    const header = [
        `# ${PERF_EVENT_PARANOID_DROPIN_PATH}`,
        "# Managed by falco-nodes: installed by converge when kernel.perf_event_paranoid > 2 (perfEventParanoid:",
        "# auto) or always (perfEventParanoid: grant-sys-admin).",
    ];
    return renderSections(header, [
        {
            name: "Service",
            directives: [
                {
                    key: "CapabilityBoundingSet",
                    value: "CAP_SYS_ADMIN",
                    why:
                        "Added to (ORed into) the unit's set. With kernel.perf_event_paranoid > 2 on kernels built " +
                        "with CONFIG_SECURITY_PERF_EVENTS_RESTRICT (Debian, Ubuntu), perf_event_open() wants " +
                        "CAP_SYS_ADMIN and CAP_PERFMON does not satisfy it: without this, Falco fails with " +
                        "`perf_event_open() failed: Permission denied` and crash-loops (measured). The alternative is " +
                        "perfEventParanoid: lower-to-2, which keeps Falco without CAP_SYS_ADMIN but relaxes the " +
                        "setting for every user on the host.",
                },
            ],
            notSet: [],
        },
    ]);
}

// --- the detection canary timer ----------------------------------------------------------------------------

export const CANARY_UNIT_NAME = "falco-nodes-canary.service";
export const CANARY_TIMER_NAME = "falco-nodes-canary.timer";
export const CANARY_UNIT_PATH = `/etc/systemd/system/${CANARY_UNIT_NAME}`;
export const CANARY_TIMER_PATH = `/etc/systemd/system/${CANARY_TIMER_NAME}`;
/** How often the timer performs the canary action: central alerting expects a canary alert at least this often. */
export const CANARY_INTERVAL = "5min";

/**
 * The oneshot service the canary timer starts: it opens the canary file for reading (`cat`), which Falco reports
 * as "Falco-nodes detection canary" (components/rules/canary.ts). Nothing else: no network, no writes but the
 * runtime directory holding the (empty) canary file.
 */
export function renderCanaryService(s: ResolvedHostSettings): string {
    const file = canaryPath(s);
    return renderSections(
        [`# ${CANARY_UNIT_PATH}: the detection canary's action, started by ${CANARY_TIMER_NAME}.`, "# Managed by falco-nodes: converge overwrites this file."],
        [
            {
                name: "Unit",
                directives: [
                    { key: "Description", value: "falco-nodes detection canary (an open Falco must report)", why: "What it is." },
                    { key: "After", value: UNIT_NAME, why: "Only useful once Falco runs." },
                ],
                notSet: [],
            },
            {
                name: "Service",
                directives: [
                    { key: "Type", value: "oneshot", why: "One action per start." },
                    {
                        key: "RuntimeDirectory",
                        value: path.posix.basename(path.posix.dirname(file)),
                        why: "The canary file's directory under /run (a tmpfs: recreated after a reboot).",
                    },
                    { key: "RuntimeDirectoryPreserve", value: "yes", why: "Converge opens the same file between two runs." },
                    { key: "ExecStart", value: `touch ${file}`, why: "The canary file (empty); opening it for writing is not the canary." },
                    { key: "ExecStart", value: `cat ${file}`, why: "The canary action: an open for reading of this bundle's canary file." },
                    { key: "PrivateNetwork", value: "yes", why: "Needs no network." },
                    { key: "ProtectSystem", value: "strict", why: "Writes nothing but its runtime directory." },
                    { key: "ProtectHome", value: "yes", why: "Reads nothing in /home." },
                    { key: "NoNewPrivileges", value: "yes", why: "Runs two coreutils." },
                ],
                notSet: [],
            },
        ],
    );
}

/** The timer: the canary action after boot and every CANARY_INTERVAL, so its alert is an end-to-end heartbeat. */
export function renderCanaryTimer(): string {
    return renderSections(
        [`# ${CANARY_TIMER_PATH}: starts ${CANARY_UNIT_NAME} periodically.`, "# Managed by falco-nodes: converge overwrites this file."],
        [
            {
                name: "Unit",
                directives: [{ key: "Description", value: "falco-nodes detection canary, periodically", why: "What it is." }],
                notSet: [],
            },
            {
                name: "Timer",
                directives: [
                    { key: "OnBootSec", value: "2min", why: "Once Falco has had time to start after boot." },
                    { key: "OnUnitActiveSec", value: CANARY_INTERVAL, why: "Then at this interval: central alerting expects the canary alert this often." },
                    { key: "AccuracySec", value: "30s", why: "Close enough to the interval for a missing-heartbeat alert." },
                ],
                notSet: [],
            },
            {
                name: "Install",
                directives: [{ key: "WantedBy", value: "timers.target", why: "Started with the other timers at boot." }],
                notSet: [],
            },
        ],
    );
}
