/**
 * Turning a zod validation failure into the problems we report: one per bad key, each with the dotted key
 * (`outputs.http.url`, `nodes[1].ssh.host`) and what to do. Shared by the host settings, the cluster settings
 * and the stack config, so every error a user sees names keys the same way.
 */
import type { z } from "zod";

export interface SettingsProblem {
    /** Where: the dotted path of the setting, with any prefix (e.g. `falco-nodes:`). */
    key: string;
    /** What is wrong and how to fix it. */
    message: string;
}

/** `["nodes", 1, "ssh", "host"]` -> `nodes[1].ssh.host`; a name that is not a plain word is quoted. */
export function settingKey(path: readonly PropertyKey[], prefix = ""): string {
    let out = prefix;
    for (const p of path) {
        if (typeof p === "number") {
            out += `[${p}]`;
            continue;
        }
        const name = typeof p === "string" && /^[A-Za-z0-9_-]+$/.test(p) ? p : JSON.stringify(String(p));
        out += (out === "" || out.endsWith(":") ? "" : ".") + name;
    }
    return out;
}

/**
 * One problem per zod issue. Unknown keys (a misspelling would otherwise be ignored) get `unknownKeyHint`,
 * which says where the valid keys are documented.
 */
export function zodProblems(issues: readonly z.core.$ZodIssue[], unknownKeyHint: string, prefix = ""): SettingsProblem[] {
    return issues.map((i) =>
        i.code === "unrecognized_keys"
            ? { key: i.keys.map((k) => settingKey([...i.path, k], prefix)).join(", "), message: unknownKeyHint }
            : { key: settingKey(i.path, prefix), message: i.message },
    );
}
