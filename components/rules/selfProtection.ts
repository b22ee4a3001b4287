/**
 * The self-protection rule set: someone tampering with Falco itself. Stopping, disabling or masking its unit,
 * signalling the Falco process, changing its configuration, unit, state or binary, and loading kernel code (a
 * kernel module or a BPF program) that could blind it.
 *
 * Every path comes from paths.ts (or the validated `install.binaryPath`), so the rules watch exactly what the
 * renderers and the converge script write. No `container.*` field is used: the set needs no plugin and loads
 * with or without the package's default rules.
 *
 * Reviewed against what an attacker with root tries first (docs/threat-model.md has the full table): stop,
 * disable or mask the unit (systemctl rule; runtime drop-ins and masks under /run are watched paths too), kill
 * it (signal rule), edit its config, rules, unit or plugins, or swap the binary (files rule; plugins live below
 * STATE_DIR), unload the kmod driver (module-unload rule), load code into the kernel (module and BPF rules), open
 * the k8saudit port to everyone (firewall rule). Filling the disk is not detected by a rule: Falco keeps running
 * (its outputs do not need the disk, the alert file stops growing) and the heartbeat shows it.
 *
 * Known gaps, so nobody over-trusts these rules: a SIGKILL may kill Falco before it reports the kill;
 * `pidfd_send_signal`, `fchmodat2` and the new mount API (`move_mount`) reach Falco as generic events without
 * their arguments and are not matched; a root attacker can mimic converge (see `falco_nodes_converge`). The
 * heartbeat (`metrics.output_rule`) going missing centrally is the backstop for all of them.
 */
import * as path from "path";
import {
    FALCO_CONFIG_DIR,
    FIREWALL_RULES_PATH,
    FIREWALL_TABLE,
    FIREWALL_UNIT_PATH,
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

/** systemctl verbs that stop Falco or keep it from running. `restart` is not here: Falco comes back. */
const IMPAIRING_SYSTEMCTL_VERBS = ["stop", "disable", "mask", "kill", "freeze", "set-property", "revert"];

/**
 * Substring of the unit names in a systemctl command line that means "Falco": it matches our unit
 * (`falco-nodes.service`, or `falco-nodes` without the suffix) and the packages' units and `falco.service` alias.
 */
export const FALCO_UNIT_STEM = "falco";

export const SELF_PROTECTION_MACROS = {
    protectedFd: "falco_nodes_protected_fd",
    protectedPathName: "falco_nodes_protected_path_name",
    protectedPathSourceOrTarget: "falco_nodes_protected_path_source_or_target",
    protectedPathSource: "falco_nodes_protected_path_source",
} as const;

export const SELF_PROTECTION_LISTS = {
    /** Executables allowed to load BPF programs. Append your own (e.g. an eBPF-based agent) in a custom file. */
    knownBpfLoaders: "falco_nodes_known_bpf_loaders",
} as const;

export const SELF_PROTECTION_RULES = {
    unitImpaired: "Falco-nodes unit stopped, disabled or masked",
    moduleUnload: "Falco kernel module unloaded",
    signal: "Signal sent to the Falco process",
    filesChanged: "Falco configuration, unit or binary changed",
    moduleLoad: "Kernel module loaded on a Falco node",
    bpfLoad: "BPF program loaded by an unexpected process",
} as const;

/** Runtime copies of the unit and its drop-ins (`systemctl edit --runtime`, `mask --runtime`, `set-property`). */
export const RUNTIME_UNIT_PATHS = {
    dirs: [`/run/systemd/system/${UNIT_NAME}.d`, `/run/systemd/system.control/${UNIT_NAME}.d`, `/etc/systemd/system.control/${UNIT_NAME}.d`],
    files: [`/run/systemd/system/${UNIT_NAME}`],
} as const;

/** Rule (only with the k8sAudit firewall): the nftables table that keeps the webhook to the API servers. */
export const SELF_PROTECTION_FIREWALL_RULE = "Falco-nodes firewall changed";

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
            ...(firewall ? [path.posix.dirname(FIREWALL_RULES_PATH)] : []),
        ],
        files: [
            UNIT_PATH,
            s.install.binaryPath,
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

function pathTest(field: string, s: RuleSetInputs): string {
    const { dirs, files } = protectedPaths(s);
    const parts = [...dirs.map((d) => belowOrAt(field, d)), ...files.map((f) => `${field} = ${falcoString(f)}`)];
    return `(${parts.join("\n or ")})`;
}

export function selfProtectionRuleItems(s: RuleSetInputs): FalcoRuleItem[] {
    const notConverge = `not ${BASE_MACROS.converge}`;
    const falcoName = falcoString(falcoProcessName(s));
    const M = SELF_PROTECTION_MACROS;

    const moduleLoaderExceptions: FalcoException[] = [
        {
            // udev loads drivers for hot-plugged devices in-process (libkmod). On Debian/Ubuntu systemd-udevd is
            // udevadm under another name, hence both paths.
            name: "udev_hotplug",
            fields: ["proc.name", "proc.exepath"],
            comps: ["=", "in"],
            values: [["systemd-udevd", ["/usr/bin/udevadm", "/bin/udevadm", "/usr/lib/systemd/systemd-udevd", "/lib/systemd/systemd-udevd"]]],
        },
    ];
    if (s.driver !== Driver.ModernEbpf)
        moduleLoaderExceptions.push({
            // The kmod driver is loaded with `modprobe falco` (as the packages' falco-kmod-inject.service does).
            // Anyone can run that too, but it only loads the driver already installed for Falco.
            name: "falco_kmod_driver",
            fields: ["proc.name", "proc.args"],
            values: [["modprobe", "falco"]],
        });

    return [
        { macro: M.protectedFd, condition: pathTest("fd.name", s) },
        { macro: M.protectedPathName, condition: pathTest("fs.path.name", s) },
        { macro: M.protectedPathSource, condition: pathTest("fs.path.source", s) },
        {
            macro: M.protectedPathSourceOrTarget,
            condition: `(${M.protectedPathSource} or ${pathTest("fs.path.target", s)})`,
        },
        {
            list: SELF_PROTECTION_LISTS.knownBpfLoaders,
            // Falco itself (modern_ebpf) and systemd, which attaches BPF to cgroups for IPAddressDeny= and the like.
            items: [s.install.binaryPath, ...SYSTEMD_EXEPATHS],
        },
        {
            rule: SELF_PROTECTION_RULES.unitImpaired,
            desc:
                `systemctl was used to stop, disable, mask, kill, freeze or reconfigure Falco's unit (${UNIT_NAME}, ` +
                "or one of the package's falco units). Converge's own changes are excepted.",
            condition: [
                `${BASE_MACROS.spawnedProcess}`,
                "and proc.name = systemctl",
                `and (${IMPAIRING_SYSTEMCTL_VERBS.map((v) => `proc.args contains ${falcoString(v)}`).join(" or ")})`,
                `and proc.args contains ${falcoString(FALCO_UNIT_STEM)}`,
                `and ${notConverge}`,
            ].join("\n"),
            output: `Falco's unit stopped, disabled or masked with systemctl | ${WHO_FIELDS}`,
            priority: "CRITICAL",
            tags: [...TAGS, "process", "mitre_defense_evasion", "T1562.001"],
        },
        {
            rule: SELF_PROTECTION_RULES.signal,
            desc:
                "A process sent a signal to Falco. systemd (stopping the unit, itself reported by the systemctl " +
                "rule) and Falco itself are excepted. Best effort: a SIGKILL can win the race against the report.",
            condition: [
                "evt.type in (kill, tkill, tgkill)",
                // evt.arg.pid/tid resolve to the target's process name (comm) when Falco knows the process.
                `and ((evt.type in (kill, tgkill) and evt.arg.pid = ${falcoName}) or (evt.type = tkill and evt.arg.tid = ${falcoName}))`,
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
                `Something other than converge wrote, created, renamed, linked, removed, re-owned, re-moded or ` +
                `mounted over Falco's configuration (${FALCO_CONFIG_DIR}), its unit (${UNIT_PATH} and ` +
                `${UNIT_DROPIN_DIR}), falco-nodes state (${STATE_DIR}) or the Falco binary.`,
            condition: [
                `((${BASE_MACROS.openWrite} and ${M.protectedFd})`,
                ` or (evt.type in (unlink, unlinkat, rmdir, mkdir, mkdirat, chmod, fchmodat, fchmod, chown, lchown, fchownat, fchown) and ${M.protectedPathName})`,
                ` or (evt.type in (rename, renameat, renameat2, link, linkat, mount) and ${M.protectedPathSourceOrTarget})`,
                // For a symlink the target is only the link's text; creating a link *at* a protected path matters.
                ` or (evt.type in (symlink, symlinkat) and ${M.protectedPathSource}))`,
                `and ${notConverge}`,
            ].join("\n"),
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
                    fields: ["proc.name", "proc.pexepath"],
                    comps: ["=", "in"],
                    values: [["rmmod", SYSTEMD_EXEPATHS]],
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
                "A kernel module was loaded (or an attempt failed) while Falco runs. Kernel code can blind Falco " +
                "or hide activity from it. udev hot-plug loads and converge are excepted.",
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
                "A BPF program was loaded by a process not in falco_nodes_known_bpf_loaders. BPF programs can " +
                "tamper with what Falco sees. Append legitimate loaders to that list in a custom rule file.",
            condition: [
                "evt.type = bpf",
                `and evt.arg.cmd contains ${falcoString("BPF_PROG_LOAD")}`,
                `and not proc.exepath in (${SELF_PROTECTION_LISTS.knownBpfLoaders})`,
                `and ${notConverge}`,
            ].join("\n"),
            output: `BPF program loaded by an unexpected process | cmd=%evt.arg.cmd res=%evt.res evt_type=%evt.type ${WHO_FIELDS}`,
            priority: "WARNING",
            tags: [...TAGS, "process", "mitre_defense_evasion", "T1014"],
        },
    ];
}
