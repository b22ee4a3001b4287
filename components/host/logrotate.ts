/**
 * `/etc/logrotate.d/falco-nodes`: rotation of the JSON alert file (`outputs.file.path`).
 *
 * Falco never rotates its file output itself; it keeps the file open (`file_output.keep_alive: true`) and closes
 * and reopens it on SIGUSR1. So logrotate renames the file, creates a fresh one, and signals Falco's main
 * process to switch to it. Not `copytruncate`: alerts written between the copy and the truncation would be
 * lost, which for a security log is the wrong trade.
 *
 * Pure: settings in, text out. The path was held to an allowlist (below /var/log/falco, plain characters) by
 * `resolveHostSettings`, so it needs no quoting.
 */
import { commentLines } from "./comments";
import { LOGROTATE_PATH, REOPEN_SYSTEMCTL_ARGS, UNIT_NAME } from "./paths";
import { ResolvedHostSettings } from "./settings";

/** One logrotate directive for the alert file, with its reason. */
export interface LogrotateDirective {
    /** The directive line as written, e.g. `rotate 7`. */
    readonly line: string;
    readonly why: string;
}

/**
 * The postrotate command: SIGUSR1 to Falco's main process only, and only while the unit is running (a stopped
 * Falco has nothing to reopen, and the rotation must not be reported as failed for it). `--kill-who=main`:
 * Falco's children, such as the program output's shell, would die of a SIGUSR1 (its default action); Falco
 * respawns the program output itself on SIGUSR1.
 */
export const LOGROTATE_REOPEN_COMMAND =
    `if /bin/systemctl --quiet is-active ${UNIT_NAME}; then ` +
    `/bin/systemctl ${REOPEN_SYSTEMCTL_ARGS.join(" ")}; fi`;

/** The directives for `s`, in order (without the postrotate script). */
export function logrotateDirectives(s: ResolvedHostSettings): LogrotateDirective[] {
    const f = s.outputs.file;
    return [
        {
            line: `size ${f.rotateSizeMiB}M`,
            why:
                `Rotate once the file exceeds ${f.rotateSizeMiB} MiB (outputs.file.rotateSizeMiB), checked whenever ` +
                "logrotate runs (daily by default, from logrotate.timer or cron), whatever the file's age.",
        },
        {
            line: `rotate ${f.rotateKeep}`,
            why: `Keep ${f.rotateKeep} rotated files (outputs.file.rotateKeep); the oldest is deleted.`,
        },
        { line: "compress", why: "gzip the rotated files: JSON alerts compress well." },
        { line: "missingok", why: "No error while the file does not exist yet (no alert so far, or Falco not started)." },
        { line: "notifempty", why: "Do not rotate an empty file." },
        {
            line: "create 0600 root root",
            why: "The fresh file is root-only, like the rest of /var/log/falco: alerts carry command lines and file names.",
        },
        { line: "sharedscripts", why: "Signal Falco once per run, not once per file." },
    ];
}

/** The logrotate config for the alert file, or undefined when the file output is disabled. */
export function renderLogrotate(s: ResolvedHostSettings): string | undefined {
    if (!s.outputs.file.enabled) return undefined;
    const out = [
        `# ${LOGROTATE_PATH}: rotation of Falco's alert file.`,
        "# Managed by falco-nodes: converge overwrites this file; change outputs.file in the stack instead.",
        ...commentLines(
            "Falco keeps the file open and reopens it on SIGUSR1, so the file is renamed and Falco signalled, rather " +
                "than copytruncate, which loses the alerts written between copy and truncation.",
        ),
        `${s.outputs.file.path} {`,
    ];
    for (const d of logrotateDirectives(s)) out.push(...commentLines(d.why, "    # "), `    ${d.line}`);
    out.push(
        ...commentLines(
            "Tell Falco to reopen the file (SIGUSR1 to its main process only: children such as the program " +
                "output's shell would die of it), if it is running.",
            "    # ",
        ),
        "    postrotate",
        `        ${LOGROTATE_REOPEN_COMMAND}`,
        "    endscript",
        "}",
    );
    return out.join("\n") + "\n";
}
