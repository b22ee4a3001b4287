/**
 * Assembles the self-contained host scripts: the static parts in `scripts/` (real, shellcheck-clean files that
 * reviewers read: `converge.sh`, the common part with the entry point, then one file per concern), concatenated in
 * `SCRIPT_PARTS` order, followed by the bundle as data and the call to `main`.
 *
 * The bundle goes in as a gzip'd tar, base64-encoded inside a quoted heredoc (`<<'FALCO_NODES_PAYLOAD'`): the
 * shell never interprets a byte of it, so no generated text is ever parsed as shell and no value needs quoting.
 * `main` is called on the very last line, so a script cut short in transit defines functions and runs nothing.
 */
import * as fs from "fs";
import * as path from "path";

/** The directory of the static parts (copied next to the compiled module by scripts/build-package.js). */
export const SCRIPTS_DIR = path.join(__dirname, "scripts");

/**
 * The parts of the host script, in assembly order. `converge.sh` comes first (shebang, shell options, constants);
 * the others only define functions, so their order among themselves does not matter to bash.
 */
export const SCRIPT_PARTS: readonly string[] = [
    "converge.sh",
    "preflight.sh",
    "bundle.sh",
    "install.sh",
    "k8saudit.sh",
    "files.sh",
    "units.sh",
    "sshd.sh",
    "firewall.sh",
    "transaction.sh",
    "uninstall.sh",
];

/** The absolute path of each part, in `SCRIPT_PARTS` order. */
export const SCRIPT_PART_PATHS: readonly string[] = SCRIPT_PARTS.map((p) => path.join(SCRIPTS_DIR, p));

/** The static host script (both actions, `converge` and `uninstall`): the parts, one blank line between two. */
export const CONVERGE_SCRIPT: string = SCRIPT_PART_PATHS.map((p) => fs.readFileSync(p, "utf8").trimEnd() + "\n").join("\n");

/** The function the appended text defines; it writes the gzip'd tar to stdout. */
export const PAYLOAD_FUNCTION = "falco_nodes_payload";
/** The heredoc delimiter. Base64 text cannot contain `_`, so no payload line can end the heredoc early. */
export const PAYLOAD_DELIMITER = "FALCO_NODES_PAYLOAD";

/** What the assembled script does when run without an argument. */
export type ScriptAction = "converge" | "uninstall";

const BASE64_LINE = 76;

/**
 * `CONVERGE_SCRIPT` + the payload function + the call to `main`. For `converge` the caller may still choose
 * the action (`bash -s -- uninstall`); an `uninstall` script always uninstalls.
 */
export function assembleScript(payload: Buffer, action: ScriptAction): string {
    const b64 = payload.toString("base64");
    const lines: string[] = [];
    for (let i = 0; i < b64.length; i += BASE64_LINE) lines.push(b64.slice(i, i + BASE64_LINE));
    return [
        CONVERGE_SCRIPT.trimEnd(),
        "",
        `${PAYLOAD_FUNCTION}() {`,
        `    base64 -d <<'${PAYLOAD_DELIMITER}'`,
        ...lines,
        PAYLOAD_DELIMITER,
        "}",
        "",
        action === "converge" ? 'main "$@"' : "main uninstall",
        "",
    ].join("\n");
}

/** The parts of an assembled script: the text around the payload and the payload itself (for tests, render). */
export function splitScript(script: string): { before: string; payload: Buffer; after: string } {
    const open = `    base64 -d <<'${PAYLOAD_DELIMITER}'\n`;
    const start = script.indexOf(open);
    const end = script.indexOf(`\n${PAYLOAD_DELIMITER}\n`, start);
    if (start < 0 || end < 0) throw new Error("not an assembled falco-nodes script: no payload heredoc");
    const body = script.slice(start + open.length, end);
    return {
        before: script.slice(0, start + open.length),
        payload: Buffer.from(body.replace(/\n/g, ""), "base64"),
        after: script.slice(end),
    };
}
