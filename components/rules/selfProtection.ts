/**
 * The self-protection rule set: someone tampering with Falco itself. Stopping, disabling or masking its unit,
 * signalling the Falco process, changing its configuration, unit, state or binary, and loading kernel code (a
 * kernel module or a BPF program) that could blind it.
 *
 * Every path comes from paths.ts (or the validated `install.binaryPath`), so the rules watch exactly what the
 * renderers and the converge script write. The `container.*` fields come from the container plugin falco.yaml
 * always loads (falcoConfig.ts); the set loads with or without the package's default rules.
 *
 * Reviewed against what an attacker with root tries first (docs/threat-model.md has the full table): stop,
 * disable or mask the unit (systemctl rule; runtime drop-ins and masks under /run are watched paths too), kill
 * it (signal rule), edit its config, rules, unit or plugins, or swap the binary (files rule; plugins live below
 * STATE_DIR), unload the kmod driver (module-unload rule), load code into the kernel (module and BPF rules), open
 * the k8saudit port to everyone (firewall rule). Filling the disk is not detected by a rule: Falco keeps running
 * (its outputs do not need the disk, the alert file stops growing) and the heartbeat shows it.
 *
 * Known gaps, so nobody over-trusts these rules (docs/threat-model.md has each with its tamper row): SIGKILL and
 * SIGSTOP take effect before Falco can report them; `pidfd_send_signal`, `truncate`, `fchmodat2` and the new mount
 * API (`move_mount`) reach Falco as generic events without their arguments (the pidfd's `pidfd_open` and
 * truncate's command line are matched instead); a root attacker can mimic converge (see `falco_nodes_converge`);
 * the exceptions trust the executables at their paths (a program root writes to kubelet's path gets kubelet's
 * allowances, systemd's private socket among them). The heartbeat (`metrics.output_rule`) and the detection canary
 * going missing centrally are the backstop.
 */
import * as path from "path";
import {
    FALCO_CONFIG_DIR,
    FIREWALL_RULES_PATH,
    FIREWALL_TABLE,
    FIREWALL_UNIT_PATH,
    REOPEN_SYSTEMCTL_ARGS,
    STATE_DIR,
    UNIT_DROPIN_DIR,
    UNIT_NAME,
    UNIT_PATH,
} from "../shared/paths";
import { Driver, RuleSetInputs, firewallEnabled } from "../shared/ruleInputs";
import { BASE_MACROS } from "./base";
import { FalcoException, FalcoRuleItem, WHO_FIELDS, belowOrAt, falcoString } from "./types";

const TAGS = ["falco-nodes", "self_protection", "host"];

/** systemd's own executable (pid 1), canonical path and the pre-usrmerge one. It starts and stops units. */
const SYSTEMD_EXEPATHS = ["/usr/lib/systemd/systemd", "/lib/systemd/systemd"];

/** systemctl verbs that stop Falco or keep it from running. */
const IMPAIRING_SYSTEMCTL_VERBS = ["stop", "disable", "mask", "kill", "freeze", "set-property", "revert", "edit"];
/** systemctl verbs that apply a planted unit file, drop-in or environment (Falco comes back, changed). */
const RELOADING_SYSTEMCTL_VERBS = ["restart", "reload"];
/** systemctl verbs that change the manager itself: they need no unit name. */
const MANAGER_SYSTEMCTL_VERBS = ["daemon-reload", "daemon-reexec", "set-environment", "unset-environment", "import-environment"];
/** Glob characters systemctl expands in unit names (`stop 'f[a]lco-nodes.service'` never names "falco"). */
const GLOB_CHARACTERS = ["*", "?", "["];
/** systemd D-Bus methods that stop, change or re-environ units (org.freedesktop.systemd1.Manager and .Unit). */
const SYSTEMD_BUS_METHODS = [
    "StopUnit", "KillUnit", "FreezeUnit", "RestartUnit", "TryRestartUnit", "ReloadOrRestartUnit", "ResetFailedUnit",
    "DisableUnitFiles", "MaskUnitFiles", "SetUnitProperties", "StartTransientUnit", "Reload", "Reexecute",
    "SetEnvironment", "UnsetEnvironment", "UnsetAndSetEnvironment", "KillUnitSubgroup", "CleanUnit", "Stop", "Kill", "Freeze",
];
/** Command-line D-Bus clients that can call those methods (a renamed copy is caught only if it uses systemd's private socket). */
const BUS_CLIENT_NAMES = ["busctl", "dbus-send", "gdbus", "qdbus", "dbus-cli"];

/**
 * Programs that talk to systemd over its private socket (`/run/systemd/private`, root only) on a healthy node, by
 * canonical path: systemd's own tools, and the container runtimes' go-systemd clients, which fall back to it when
 * the system bus is down (coreos/go-systemd `dbus.NewWithContext`). Append others in a custom rules file.
 */
const SYSTEMD_PRIVATE_SOCKET_CLIENTS = [
    ...["systemctl", "systemd-run", "systemd-analyze", "systemd-cgls", "systemd-cgtop", "systemd-mount", "systemd-umount", "journalctl"].flatMap((t) => [
        `/usr/bin/${t}`,
        `/bin/${t}`,
    ]),
    "/usr/bin/kubelet", "/usr/local/bin/kubelet", "/usr/bin/containerd", "/usr/local/bin/containerd", "/usr/bin/dockerd",
    "/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc", "/usr/bin/crun", "/usr/local/bin/crun",
];
export const SYSTEMD_PRIVATE_SOCKET = "/run/systemd/private";

/** The modprobe binary by canonical path: kmod provides it everywhere (Debian /bin/kmod, merged /usr/bin/kmod). */
const KMOD_EXEPATHS = ["/usr/bin/kmod", "/bin/kmod", "/usr/sbin/modprobe", "/sbin/modprobe"];
/** Container runtimes that run modprobe on the host themselves (dockerd's network drivers, containerd's aufs snapshotter). */
const RUNTIME_EXEPATHS = ["/usr/bin/containerd", "/usr/local/bin/containerd", "/usr/bin/dockerd", "/usr/sbin/dockerd"];
/**
 * The exact arguments those runtimes give modprobe (`proc.args`): moby `libnetwork/drivers/bridge/bridge.go`
 * (`configure`: `modprobe -va bridge br_netfilter`; older releases `-va bridge nf_nat br_netfilter`),
 * `libnetwork/ns/init_linux.go` (`loadNfConntrackModules`: `-va nf_conntrack`, `-va nf_conntrack_netlink`),
 * `libnetwork/ipvs/netlink.go` (`setup`: `-va ip_vs`), the overlay2/xfs storage checks (`modprobe overlay`,
 * `modprobe xfs`) and the aufs driver (moby 20.10 as Debian 12 ships it, docker.io 20.10.24, and containerd 1.6.20:
 * their binaries carry each of these modprobe messages).
 * Only these: a program placed at a runtime's path loads nothing else quietly. Append in a custom rules file.
 */
const RUNTIME_MODPROBE_ARGS = [
    "-va bridge br_netfilter", "-va bridge nf_nat br_netfilter", "-va nf_nat", "-va nf_conntrack", "-va nf_conntrack_netlink",
    "-va ip_vs", "overlay", "xfs", "aufs",
];
/**
 * Modules container-runtime units load with an `ExecStartPre=` that systemd runs: Debian's (and upstream's)
 * containerd.service has `ExecStartPre=-/sbin/modprobe overlay` (containerd/containerd `containerd.service`);
 * k3s's units add `br_netfilter`. Anyone can have systemd run that (`systemd-run modprobe overlay`), but it loads
 * only these modules, which every container host loads anyway.
 */
const UNIT_MODPROBE_ARGS = ["overlay", "br_netfilter"];
/** OCI runtimes that load a cgroup-v2 device-filter BPF program for every container they create. */
const OCI_RUNTIME_EXEPATHS = ["/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc", "/usr/local/bin/runc", "/usr/bin/crun", "/usr/local/bin/crun"];
/** The processes that run those runtimes on a Kubernetes or container host (containerd's shim, CRI-O's and podman's conmon). */
const OCI_RUNTIME_PARENTS = [
    "/usr/bin/containerd-shim-runc-v2", "/usr/local/bin/containerd-shim-runc-v2", "/usr/bin/containerd", "/usr/local/bin/containerd",
    "/usr/bin/conmon", "/usr/libexec/podman/conmon", "/usr/local/libexec/podman/conmon", "/usr/bin/crio", "/usr/local/bin/crio",
];
/** dpkg by canonical path: package maintainer scripts run below it. */
const DPKG_EXEPATHS = ["/usr/bin/dpkg", "/bin/dpkg"];

/** Falco's plugins as the packages install them (the container plugin), and falcoctl, which converge runs as root. */
export const FALCO_PACKAGE_PATHS = ["/usr/share/falco/plugins", "/usr/bin/falcoctl"] as const;

/**
 * systemd 252's unit search path for the system manager, in its order (systemd.unit(5), "Unit File Load Path";
 * src/core/unit-file.c / src/basic/path-lookup.c `lookup_paths_init`), with the pre-usrmerge /lib copy: a unit
 * or drop-in for our unit in any of them changes Falco's command line or environment.
 */
export const UNIT_SEARCH_PATH = [
    "/etc/systemd/system.control", "/run/systemd/system.control", "/run/systemd/transient", "/run/systemd/generator.early",
    "/etc/systemd/system", "/etc/systemd/system.attached", "/run/systemd/system", "/run/systemd/system.attached",
    "/run/systemd/generator", "/usr/local/lib/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system",
    "/run/systemd/generator.late",
] as const;

/** `falco-nodes.service` -> `falco-.service.d`: systemd reads drop-ins of each dash-prefix of a unit name. */
function prefixDropIns(unit: string): string[] {
    const [stem, type] = [unit.slice(0, unit.lastIndexOf(".")), unit.slice(unit.lastIndexOf(".") + 1)];
    const parts = stem.split("-");
    return parts.slice(0, -1).map((_, k) => `${parts.slice(0, k + 1).join("-")}-.${type}.d`);
}

/** Every name in the search path under which systemd would read our unit, a drop-in for it, or its boot-time link. */
export function unitSearchPaths(unit = UNIT_NAME): string[] {
    const names = [unit, `${unit}.d`, ...prefixDropIns(unit), `multi-user.target.wants/${unit}`];
    return UNIT_SEARCH_PATH.flatMap((d) => names.map((n) => `${d}/${n}`));
}

/**
 * What reaches every unit, ours included, from outside our unit's files: type drop-ins (`service.d/`), generators,
 * environment generators and the manager's own configuration (`DefaultEnvironment=`, `LD_PRELOAD`). Packages own
 * some of these (systemd's generators), so dpkg is excepted here and only here.
 */
export function systemdManagerPaths(): string[] {
    const roots = ["/etc/systemd", "/run/systemd", "/usr/local/lib/systemd", "/usr/lib/systemd", "/lib/systemd"];
    return [
        ...UNIT_SEARCH_PATH.map((d) => `${d}/service.d`),
        ...roots.flatMap((r) => [`${r}/system-generators`, `${r}/system-environment-generators`, `${r}/system.conf.d`]),
        "/etc/systemd/system.conf",
        "/usr/lib/environment.d",
        "/etc/environment.d",
    ];
}



/**
 * Substring of the unit names in a systemctl command line that means "Falco": it matches our unit
 * (`falco-nodes.service`, or `falco-nodes` without the suffix) and the packages' units and `falco.service` alias.
 */
export const FALCO_UNIT_STEM = "falco";

export const SELF_PROTECTION_MACROS = {
    onHost: "falco_nodes_on_host",
    protectedChange: "falco_nodes_protected_change",
    systemdChange: "falco_nodes_systemd_change",
    protectedTruncate: "falco_nodes_protected_truncate",
    systemdTruncate: "falco_nodes_systemd_truncate",
    packageManager: "falco_nodes_package_manager",
} as const;

export const SELF_PROTECTION_LISTS = {
    /** Executables allowed to load BPF programs and write BPF maps on the host. Append your own (e.g. an eBPF-based agent) in a custom file. */
    knownBpfLoaders: "falco_nodes_known_bpf_loaders",
    /**
     * Container images whose own agent loads BPF programs and writes BPF maps on every node (an eBPF CNI: Cilium).
     * Only the executable of `knownBpfLoaderContainerExepaths`, from the image itself (not its writable layer), is
     * excepted. Append your CNI's image (`container.image.repository`) and agent path in a custom file.
     */
    knownBpfLoaderImages: "falco_nodes_known_bpf_loader_images",
    knownBpfLoaderContainerExepaths: "falco_nodes_known_bpf_loader_container_exepaths",
    /** The exact arguments (proc.args) container runtimes give modprobe; append in a custom file. */
    runtimeModprobeArgs: "falco_nodes_runtime_modprobe_args",
    /** Falco's own files: configuration, unit (every search path), state, binary, plugins, falcoctl. */
    protectedPaths: "falco_nodes_protected_paths",
    /** Manager-wide systemd configuration that reaches our unit too. */
    systemdPaths: "falco_nodes_systemd_paths",
    /** Programs expected on systemd's private socket. */
    privateSocketClients: "falco_nodes_systemd_private_socket_clients",
} as const;

export const SELF_PROTECTION_RULES = {
    unitImpaired: "Falco-nodes unit stopped, disabled or masked",
    unitControl: "Falco-nodes unit restarted or systemd reconfigured",
    systemdBus: "systemd controlled by an unexpected program",
    cgroup: "Falco's cgroup changed",
    moduleUnload: "Falco kernel module unloaded",
    signal: "Signal sent to the Falco process",
    filesChanged: "Falco configuration, unit or binary changed",
    moduleLoad: "Kernel module loaded on a Falco node",
    bpfLoad: "BPF program loaded by an unexpected process",
    bpfMap: "BPF map written by an unexpected process",
} as const;

/** Runtime copies of the unit and its drop-ins (`systemctl edit --runtime`, `mask --runtime`, `set-property`). */
export const RUNTIME_UNIT_PATHS = {
    dirs: [`/run/systemd/system/${UNIT_NAME}.d`, `/run/systemd/system.control/${UNIT_NAME}.d`, `/etc/systemd/system.control/${UNIT_NAME}.d`],
    files: [`/run/systemd/system/${UNIT_NAME}`],
} as const;

/** Rule (only with the k8sAudit firewall): the nftables table that keeps the webhook to the API servers. */
export const SELF_PROTECTION_FIREWALL_RULE = "Falco-nodes firewall changed";

/** Our unit's cgroup (cgroup v2, systemd's layout): `cgroup.freeze` and `cgroup.kill` stop Falco without a signal. */
export const FALCO_CGROUP = `/sys/fs/cgroup/system.slice/${UNIT_NAME}`;

/**
 * What the file rules protect: whole directories and single files. The k8saudit plugins and rules live below
 * STATE_DIR; the firewall ruleset, its unit and the webhook's TLS certificate are added when configured.
 */
export function protectedPaths(s: RuleSetInputs): { dirs: string[]; files: string[] } {
    const firewall = firewallEnabled(s);
    const cert = s.k8sAudit.enabled ? s.k8sAudit.tls.certificatePath : undefined;
    return {
        dirs: [
            FALCO_CONFIG_DIR,
            UNIT_DROPIN_DIR,
            STATE_DIR,
            ...RUNTIME_UNIT_PATHS.dirs,
            FALCO_PACKAGE_PATHS[0],
            ...(firewall ? [path.posix.dirname(FIREWALL_RULES_PATH)] : []),
        ],
        files: [
            UNIT_PATH,
            s.install.binaryPath,
            FALCO_PACKAGE_PATHS[1],
            ...RUNTIME_UNIT_PATHS.files,
            ...(firewall ? [FIREWALL_UNIT_PATH] : []),
            ...(cert && !cert.startsWith(`${FALCO_CONFIG_DIR}/`) ? [cert] : []),
        ],
    };
}

/** Falco's process name as the kernel keeps it (comm: the executable's base name, at most 15 bytes). */
export function falcoProcessName(s: RuleSetInputs): string {
    return path.posix.basename(s.install.binaryPath).slice(0, 15);
}

const anyOf = (field: string, op: string, values: readonly string[]) => `(${values.map((v) => `${field} ${op} ${falcoString(v)}`).join(" or ")})`;

/**
 * Every way an event can change a path of `list`, as Falco 0.44 reports it:
 * - opens for writing (fd.name, resolved by the parser against the dirfd);
 * - path syscalls, by fs.path.* (falcosecurity/libs `userspace/libsinsp/sinsp_filtercheck_fspath.cpp`: set only on
 *   success, and a relative path is resolved against the cwd, never the dirfd) and, for the *at forms, also by the
 *   syscall's own path parameter, which `evt.arg.*` renders resolved against its dirfd (libsinsp event.cpp
 *   `sinsp_evt::get_base_dir`): `renameat(dirfd_of_/etc/falco, "x", ...)` from another cwd is seen that way only.
 * truncate(2) is separate (truncateOf): a generic event, without the arguments these tests read.
 */
function changeOf(list: string): string {
    const p = (field: string) => `${field} pmatch (${list})`;
    return [
        `((${BASE_MACROS.openWrite} and ${p("fd.name")})`,
        ` or (evt.type in (unlink, unlinkat, rmdir, mkdir, mkdirat, chmod, fchmodat, fchmod, chown, lchown, fchownat, fchown) and ${p("fs.path.name")})`,
        ` or (evt.type = unlinkat and ${p("evt.arg.name")})`,
        ` or (evt.type = mkdirat and ${p("evt.arg.path")})`,
        ` or (evt.type = fchmodat and ${p("evt.arg.filename")})`,
        ` or (evt.type = fchownat and ${p("evt.arg.pathname")})`,
        ` or (evt.type in (rename, renameat, renameat2, link, linkat, mount) and (${p("fs.path.source")} or ${p("fs.path.target")}))`,
        ` or (evt.type in (renameat, renameat2, linkat) and (${p("evt.arg.oldpath")} or ${p("evt.arg.newpath")}))`,
        // For a symlink the target is only the link's text; creating a link *at* a protected path matters.
        ` or (evt.type in (symlink, symlinkat) and ${p("fs.path.source")})`,
        ` or (evt.type = symlinkat and ${p("evt.arg.linkpath")}))`,
    ].join("\n");
}

/**
 * truncate(2) is a generic event in Falco's event table (events.md: no arguments): only the command line can name
 * the file (`truncate -s0 /etc/falco/falco.yaml`); a program calling truncate(2) or ftruncate(2) itself is not seen.
 */
function truncateOf(paths: readonly string[]): string {
    return `(evt.type = truncate and ${anyOf("proc.args", "contains", paths)})`;
}

export function selfProtectionRuleItems(s: RuleSetInputs): FalcoRuleItem[] {
    const notConverge = `not ${BASE_MACROS.converge}`;
    const falcoName = falcoString(falcoProcessName(s));
    const M = SELF_PROTECTION_MACROS;
    const L = SELF_PROTECTION_LISTS;
    const { dirs, files } = protectedPaths(s);
    const ownPaths = [...new Set([...dirs, ...files, ...unitSearchPaths()])];
    const managerPaths = systemdManagerPaths();
    const host = "host";
    const unitNamed = `(proc.args contains ${falcoString(FALCO_UNIT_STEM)} or ${anyOf("proc.args", "contains", GLOB_CHARACTERS)})`;

    const moduleLoaderExceptions: FalcoException[] = [
        {
            // udev loads drivers for hot-plugged devices in-process (libkmod). On Debian/Ubuntu systemd-udevd is
            // udevadm under another name, hence both paths.
            name: "udev_hotplug",
            fields: ["container.id", "proc.name", "proc.exepath"],
            comps: ["=", "=", "in"],
            values: [[host, "systemd-udevd", ["/usr/bin/udevadm", "/bin/udevadm", "/usr/lib/systemd/systemd-udevd", "/lib/systemd/systemd-udevd"]]],
        },
        {
            // Module autoload: the kernel itself runs modprobe (`request_module`, kernel/kmod.c, through a usermode
            // helper started from a kworker, kernel/umh.c) when a socket family, filesystem, nftables expression or
            // netdevice type needs a module. The parent is a kernel thread, whose ancestor two levels up is
            // kthreadd (pid 2): no user process has that ancestry, so renaming a process "kworker/..." does not
            // reach this exception; neither does a container (container.id).
            name: "kernel_module_autoload",
            fields: ["container.id", "proc.exepath", "proc.pname", "proc.apid[2]"],
            comps: ["=", "in", "startswith", "="],
            values: [[host, KMOD_EXEPATHS, "kworker/", "2"]],
        },
        {
            // dockerd and containerd running modprobe themselves: on the host, by the runtime's path as parent, and
            // only with the arguments those runtimes give it (a binary planted at a runtime's path loads nothing else).
            name: "container_runtime_modprobe",
            fields: ["container.id", "proc.exepath", "proc.pexepath", "proc.args"],
            comps: ["=", "in", "in", "in"],
            values: [[host, KMOD_EXEPATHS, RUNTIME_EXEPATHS, [L.runtimeModprobeArgs]]],
        },
        {
            // A runtime's unit loading its module before it starts (containerd.service `ExecStartPre=-/sbin/modprobe
            // overlay`): systemd itself is the parent; only those module names.
            name: "runtime_unit_modprobe",
            fields: ["container.id", "proc.exepath", "proc.pexepath", "proc.args"],
            comps: ["=", "in", "in", "in"],
            values: [[host, KMOD_EXEPATHS, SYSTEMD_EXEPATHS, UNIT_MODPROBE_ARGS]],
        },
        {
            // /etc/modules-load.d at boot, started by systemd itself.
            name: "systemd_modules_load",
            fields: ["container.id", "proc.exepath", "proc.pexepath"],
            comps: ["=", "in", "in"],
            values: [[host, ["/usr/lib/systemd/systemd-modules-load", "/lib/systemd/systemd-modules-load"], SYSTEMD_EXEPATHS]],
        },
    ];
    if (s.driver !== Driver.ModernEbpf)
        moduleLoaderExceptions.push({
            // The kmod driver is loaded with `modprobe falco` (as the packages' falco-kmod-inject.service does).
            // Anyone can run that too, but it only loads the driver already installed for Falco.
            name: "falco_kmod_driver",
            fields: ["container.id", "proc.name", "proc.args"],
            values: [[host, "modprobe", "falco"]],
        });

    const bpfLoaderExceptions: FalcoException[] = [
        {
            // The list's programs, on the host only: inside a container any path can be faked.
            name: "known_bpf_loaders_on_host",
            fields: ["container.id", "proc.exepath"],
            comps: ["=", "in"],
            values: [[host, [L.knownBpfLoaders]]],
        },
        {
            // An eBPF CNI's agent in its own pod (Cilium's cilium-agent loads and updates its programs and maps all
            // the time). In a container the path alone proves nothing (its root filesystem is writable), so: that
            // image, that path, and an executable from the image's own layers (proc.is_exe_upper_layer = false: not
            // written or replaced in the container). Another command run in that image (`kubectl exec ... -- bpftool`)
            // is not the agent's path and is reported. When the runtime's answer is late (the plugin has no image
            // for a new container yet) the first events of a starting agent are reported: noise, not a bypass.
            name: "known_bpf_loader_images",
            fields: ["container.image.repository", "proc.exepath", "proc.is_exe_upper_layer"],
            comps: ["in", "in", "="],
            values: [[[L.knownBpfLoaderImages], [L.knownBpfLoaderContainerExepaths], "false"]],
        },
    ];

    return [
        // The container plugin (always loaded by falco-nodes' falco.yaml) sets container.id to "host" for
        // processes outside containers. Host rules only look there: a container cannot raise them at will, and
        // an exception by executable path cannot be faked from a container's own filesystem.
        { macro: M.onHost, condition: `container.id = ${host}` },
        { list: L.protectedPaths, items: ownPaths },
        { list: L.systemdPaths, items: managerPaths },
        { list: L.privateSocketClients, items: SYSTEMD_PRIVATE_SOCKET_CLIENTS },
        { macro: M.protectedChange, condition: changeOf(L.protectedPaths) },
        { macro: M.systemdChange, condition: changeOf(L.systemdPaths) },
        { macro: M.protectedTruncate, condition: truncateOf(ownPaths) },
        { macro: M.systemdTruncate, condition: truncateOf(managerPaths) },
        {
            // Package maintainer scripts and dpkg's own writes (systemd's generators on an upgrade), on the host.
            macro: M.packageManager,
            condition: `(${M.onHost} and (${["proc.exepath", "proc.aexepath[2]", "proc.aexepath[3]"].map((f) => `${f} in (${DPKG_EXEPATHS.map(falcoString).join(", ")})`).join(" or ")}))`,
        },
        {
            list: L.knownBpfLoaders,
            // Falco itself (modern_ebpf) and systemd, which attaches BPF to cgroups for DeviceAllow=, IPAddressDeny= and the like.
            items: [s.install.binaryPath, ...SYSTEMD_EXEPATHS],
        },
        // Cilium's agent image (cilium/cilium install/kubernetes/cilium/values.yaml `image.repository`) and the
        // agent's path in it (images/cilium/Dockerfile installs /usr/bin/cilium-agent).
        { list: L.knownBpfLoaderImages, items: ["quay.io/cilium/cilium"] },
        { list: L.knownBpfLoaderContainerExepaths, items: ["/usr/bin/cilium-agent"] },
        { list: L.runtimeModprobeArgs, items: RUNTIME_MODPROBE_ARGS },
        {
            rule: SELF_PROTECTION_RULES.unitImpaired,
            desc:
                `systemctl was used to stop, disable, mask, kill, freeze or reconfigure Falco's unit (${UNIT_NAME}, ` +
                "one of the package's falco units, or any unit named by a glob). Converge's own changes and " +
                "logrotate's reopen signal (exactly its command line, run by logrotate) are excepted.",
            condition: [
                `${BASE_MACROS.spawnedProcess}`,
                `and ${M.onHost}`,
                "and proc.name = systemctl",
                `and ${anyOf("proc.args", "contains", IMPAIRING_SYSTEMCTL_VERBS)}`,
                `and ${unitNamed}`,
                `and ${notConverge}`,
            ].join("\n"),
            output: `Falco's unit stopped, disabled or masked with systemctl | ${WHO_FIELDS}`,
            priority: "CRITICAL",
            tags: [...TAGS, "process", "mitre_defense_evasion", "T1562.001"],
            exceptions: [
                {
                    // components/host/logrotate.ts: SIGUSR1 makes Falco reopen its output file, nothing else.
                    name: "logrotate_reopen",
                    fields: ["proc.cmdline", "proc.aexepath[2]"],
                    values: [[`systemctl ${REOPEN_SYSTEMCTL_ARGS.join(" ")}`, "/usr/sbin/logrotate"]],
                },
            ],
        },
        {
            rule: SELF_PROTECTION_RULES.unitControl,
            desc:
                "systemctl restarted Falco's unit, reloaded systemd's configuration, or changed the manager's " +
                "environment: each applies whatever unit file, drop-in, generator or environment was planted before " +
                "it (the plant itself is reported by the file rules). Converge and package maintainer scripts " +
                "(run below dpkg) are excepted.",
            condition: [
                `${BASE_MACROS.spawnedProcess}`,
                `and ${M.onHost}`,
                "and proc.name = systemctl",
                `and ((${anyOf("proc.args", "contains", RELOADING_SYSTEMCTL_VERBS)} and ${unitNamed})`,
                `     or ${anyOf("proc.args", "contains", MANAGER_SYSTEMCTL_VERBS)})`,
                `and not ${M.packageManager}`,
                `and ${notConverge}`,
            ].join("\n"),
            output: `Falco's unit restarted or systemd reconfigured with systemctl | ${WHO_FIELDS}`,
            priority: "WARNING",
            tags: [...TAGS, "process", "mitre_defense_evasion", "T1562.001"],
        },
        {
            rule: SELF_PROTECTION_RULES.systemdBus,
            desc:
                `A program other than systemd's own tools and the container runtimes connected to systemd's private ` +
                `socket (${SYSTEMD_PRIVATE_SOCKET}: a renamed copy of systemctl), or a D-Bus command-line client called ` +
                "a method that stops, changes or re-environs units. Append expected programs to " +
                `${L.privateSocketClients}.`,
            condition: [
                `((evt.type = connect and fd.name contains ${falcoString(SYSTEMD_PRIVATE_SOCKET)} and not proc.exepath in (${L.privateSocketClients}))`,
                ` or (${BASE_MACROS.spawnedProcess} and proc.name in (${BUS_CLIENT_NAMES.map(falcoString).join(", ")}) and ${anyOf("proc.args", "contains", SYSTEMD_BUS_METHODS)}))`,
                `and ${M.onHost}`,
                `and ${notConverge}`,
            ].join("\n"),
            output: `systemd controlled by an unexpected program | socket=%fd.name evt_type=%evt.type ${WHO_FIELDS}`,
            priority: "CRITICAL",
            tags: [...TAGS, "process", "mitre_defense_evasion", "T1562.001"],
        },
        {
            rule: SELF_PROTECTION_RULES.cgroup,
            desc:
                `Something other than systemd wrote to Falco's cgroup (${FALCO_CGROUP}): cgroup.freeze stops Falco ` +
                "without a signal (Restart= never fires), cgroup.kill kills it, limits starve it.",
            condition: [
                `((${BASE_MACROS.openWrite} and fd.name pmatch (${falcoString(FALCO_CGROUP)}))`,
                ` or (evt.type in (rmdir, mkdir, unlink) and fs.path.name pmatch (${falcoString(FALCO_CGROUP)})))`,
                `and ${M.onHost}`,
                `and ${notConverge}`,
            ].join("\n"),
            output: `Falco's cgroup changed | file=%fd.name path=%fs.path.name evt_type=%evt.type ${WHO_FIELDS}`,
            priority: "CRITICAL",
            tags: [...TAGS, "process", "mitre_defense_evasion", "T1562.001"],
            exceptions: [{ name: "systemd", fields: ["proc.exepath"], values: SYSTEMD_EXEPATHS.map((p) => [p]) }],
        },
        {
            rule: SELF_PROTECTION_RULES.signal,
            desc:
                "A process sent a signal to Falco, or opened a pidfd of it (pidfd_send_signal carries no arguments " +
                "in Falco's event table). systemd (stopping the unit, itself reported by the systemctl rule) and Falco " +
                "itself are excepted. Best effort: SIGKILL and SIGSTOP take effect before Falco reads their event.",
            condition: [
                "evt.type in (kill, tkill, tgkill, pidfd_open)",
                // evt.arg.pid/tid resolve to the target's process name (comm) when Falco knows the process.
                `and ((evt.type in (kill, tgkill, pidfd_open) and evt.arg.pid = ${falcoName}) or (evt.type = tkill and evt.arg.tid = ${falcoName}))`,
                `and ${M.onHost}`,
                `and ${notConverge}`,
            ].join("\n"),
            output:
                "Signal sent to the Falco process | signal=%evt.arg.sig target_pid=%evt.arg.pid target_tid=%evt.arg.tid " +
                `res=%evt.res evt_type=%evt.type ${WHO_FIELDS}`,
            priority: "CRITICAL",
            tags: [...TAGS, "process", "mitre_defense_evasion", "T1562.001"],
            exceptions: [
                {
                    name: "falco_and_systemd",
                    fields: ["proc.exepath"],
                    values: [s.install.binaryPath, ...SYSTEMD_EXEPATHS].map((p) => [p]),
                },
            ],
        },
        {
            rule: SELF_PROTECTION_RULES.filesChanged,
            desc:
                `Something other than converge wrote, created, renamed, linked, removed, truncated, re-owned, re-moded ` +
                `or mounted over Falco's configuration (${FALCO_CONFIG_DIR}), its unit (in every directory systemd ` +
                `reads units and drop-ins from), falco-nodes state (${STATE_DIR}), the Falco binary, its plugins or ` +
                "falcoctl; or systemd's manager-wide configuration (type drop-ins, generators, system.conf.d), " +
                "which reaches Falco's unit too (dpkg excepted there).",
            condition: [
                `(${M.protectedChange} or ${M.protectedTruncate}`,
                ` or ((${M.systemdChange} or ${M.systemdTruncate}) and not ${M.packageManager}))`, `and ${M.onHost}`, `and ${notConverge}`].join(
                "\n",
            ),
            output:
                "Falco configuration, unit or binary changed | file=%fd.name path=%fs.path.name source=%fs.path.source " +
                `target=%fs.path.target res=%evt.res evt_type=%evt.type ${WHO_FIELDS}`,
            priority: "CRITICAL",
            tags: [...TAGS, "filesystem", "mitre_defense_evasion", "T1562.001"],
        },
        {
            rule: SELF_PROTECTION_RULES.moduleUnload,
            desc:
                "The falco kernel module (kmod driver) was unloaded, or someone tried: without it Falco sees nothing. " +
                "systemd unloading it when the kmod unit stops (ExecStopPost) is excepted; stopping the unit is " +
                "reported by the systemctl rule.",
            condition: `evt.type = delete_module\nand evt.arg.name = ${falcoString("falco")}\nand ${notConverge}`,
            output: `Falco kernel module unloaded | module=%evt.arg.name res=%evt.res evt_type=%evt.type ${WHO_FIELDS}`,
            priority: "CRITICAL",
            tags: [...TAGS, "process", "mitre_defense_evasion", "T1562.001"],
            exceptions: [
                {
                    name: "systemd_stopping_the_unit",
                    fields: ["container.id", "proc.name", "proc.pexepath"],
                    comps: ["=", "=", "in"],
                    values: [[host, "rmmod", SYSTEMD_EXEPATHS]],
                },
            ],
        },
        ...(firewallEnabled(s)
            ? [
                  {
                      rule: SELF_PROTECTION_FIREWALL_RULE,
                      desc:
                          `nft was run to delete, flush or edit falco-nodes' table (inet ${FIREWALL_TABLE}), or to flush ` +
                          "the whole ruleset: that opens the k8saudit webhook to everyone. Converge's own runs are excepted.",
                      condition: [
                          `${BASE_MACROS.spawnedProcess}`,
                          `and ${M.onHost}`,
                          "and proc.name = nft",
                          `and (proc.args contains ${falcoString(FIREWALL_TABLE)} or proc.args contains ${falcoString("flush ruleset")})`,
                          `and ${notConverge}`,
                      ].join("\n"),
                      output: `Falco-nodes firewall changed with nft | ${WHO_FIELDS}`,
                      priority: "CRITICAL" as const,
                      tags: [...TAGS, "process", "network", "mitre_defense_evasion", "T1562.004"],
                  },
              ]
            : []),
        {
            rule: SELF_PROTECTION_RULES.moduleLoad,
            desc:
                "A kernel module was loaded (or an attempt failed) while Falco runs, on the host or from a container. " +
                "Kernel code can blind Falco or hide activity from it. Excepted, on the host only: udev hot-plug " +
                "loads, the kernel's own module autoload, containerd/dockerd with the modprobe arguments they use " +
                `(${L.runtimeModprobeArgs}), a runtime unit's ExecStartPre modprobe of overlay or br_netfilter, ` +
                "systemd-modules-load, converge. From a container nothing is excepted (its modprobe reads modules from " +
                "its own filesystem): preload what kube-proxy's IPVS mode loads with /etc/modules-load.d.",
            condition: `evt.type in (init_module, finit_module)\nand ${notConverge}`,
            output:
                "Kernel module load on a Falco node | module_fd=%evt.arg.fd module_args=%evt.arg.uargs res=%evt.res " +
                `evt_type=%evt.type ${WHO_FIELDS}`,
            priority: "WARNING",
            tags: [...TAGS, "process", "mitre_persistence", "mitre_defense_evasion", "T1547.006"],
            exceptions: moduleLoaderExceptions,
        },
        {
            rule: SELF_PROTECTION_RULES.bpfLoad,
            desc:
                `A BPF program was loaded by a process not in ${L.knownBpfLoaders} (on the host), or from a container ` +
                `other than an eBPF CNI's agent (${L.knownBpfLoaderImages}: Cilium by default). BPF programs can tamper ` +
                "with what Falco sees. runc and crun loading their cgroup device filter for the containers they " +
                "create are excepted (by path and parent, on the host). Append legitimate loaders (bpftrace, another " +
                "CNI) to those lists in a custom rule file.",
            condition: [
                "evt.type = bpf",
                `and evt.arg.cmd contains ${falcoString("BPF_PROG_LOAD")}`,
                `and ${notConverge}`,
            ].join("\n"),
            output: `BPF program loaded by an unexpected process | cmd=%evt.arg.cmd res=%evt.res evt_type=%evt.type ${WHO_FIELDS}`,
            priority: "WARNING",
            tags: [...TAGS, "process", "mitre_defense_evasion", "T1014"],
            exceptions: [
                ...bpfLoaderExceptions,
                {
                    // runc/crun's cgroup-v2 device filter (libcontainer/cgroups/devices/ebpf), one per container start.
                    name: "oci_runtime_device_filter",
                    fields: ["container.id", "proc.exepath", "proc.pexepath"],
                    comps: ["=", "in", "in"],
                    values: [[host, OCI_RUNTIME_EXEPATHS, OCI_RUNTIME_PARENTS]],
                },
            ],
        },
        {
            rule: SELF_PROTECTION_RULES.bpfMap,
            desc:
                `A BPF map was written or emptied by a process not in ${L.knownBpfLoaders} (on the host), or from a ` +
                `container other than an eBPF CNI's agent (${L.knownBpfLoaderImages}). Falco's own maps steer what ` +
                "its probe reports (falco#2915); the event carries the command, not the map, so every such write is reported.",
            condition: [
                "evt.type = bpf",
                `and ${anyOf("evt.arg.cmd", "contains", ["BPF_MAP_UPDATE_ELEM", "BPF_MAP_DELETE_ELEM", "BPF_MAP_UPDATE_BATCH", "BPF_MAP_DELETE_BATCH", "BPF_MAP_LOOKUP_AND_DELETE"])}`,
                `and ${notConverge}`,
            ].join("\n"),
            output: `BPF map written by an unexpected process | cmd=%evt.arg.cmd res=%evt.res evt_type=%evt.type ${WHO_FIELDS}`,
            priority: "WARNING",
            tags: [...TAGS, "process", "mitre_defense_evasion", "T1014"],
            exceptions: bpfLoaderExceptions,
        },
    ];
}
