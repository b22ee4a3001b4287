/**
 * Macros every built-in rule set uses. They live in their own file, loaded first, and carry a `falco_nodes_`
 * prefix so our files work with or without the package's default rules (`rules.defaultRules: false`) and never
 * collide with upstream macro names.
 */
import { FalcoRuleItem } from "./types";

/**
 * Environment variable the converge script exports to everything it runs, so our own changes to Falco's files
 * and unit are not reported as tampering. It must be in the environment the converge shell is *started* with
 * (e.g. `sudo env FALCO_NODES_CONVERGE=1 bash -s`), not merely `export`ed inside it: Falco reads a process's
 * environment as of its execve, so writes done by the shell itself would otherwise not carry it.
 */
export const CONVERGE_MARKER_ENV = "FALCO_NODES_CONVERGE";
export const CONVERGE_MARKER_VALUE = "1";

export const BASE_MACROS = {
    openWrite: "falco_nodes_open_write",
    spawnedProcess: "falco_nodes_spawned_process",
    converge: "falco_nodes_converge",
} as const;

export function baseRuleItems(): FalcoRuleItem[] {
    return [
        {
            macro: BASE_MACROS.openWrite,
            // The same test as upstream's `open_write`, plus creat(2), which always opens for writing, and
            // open_by_handle_at(2), which opens a file by handle (no path in the call; Falco's event carries the
            // path and flags of what was opened: events.md).
            condition:
                "((evt.type in (open, openat, openat2) and evt.is_open_write = true and fd.typechar = 'f' and fd.num >= 0)\n" +
                " or (evt.type = creat and fd.num >= 0)\n" +
                " or (evt.type = open_by_handle_at and fd.num >= 0 and (evt.arg.flags contains O_WRONLY or evt.arg.flags contains O_RDWR)))",
        },
        { macro: BASE_MACROS.spawnedProcess, condition: "(evt.type in (execve, execveat))" },
        {
            macro: BASE_MACROS.converge,
            // Trade-off, stated plainly: anyone with root can set this variable and mimic converge. The
            // alternative, alerting on every converge, teaches people to ignore these alerts; and a converge is
            // itself an audited `pulumi up`. Override this macro (`override: {condition: replace}`) with
            // `never_true`-style `(evt.num = 0)` to alert on converge too.
            condition: `(proc.env[${CONVERGE_MARKER_ENV}] = ${CONVERGE_MARKER_VALUE})`,
        },
    ];
}
