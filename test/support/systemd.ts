/**
 * Run the real `systemd-analyze` (systemd 252 on the CI image) against rendered units: `verify` for syntax and
 * executables, `security --offline=true` for the exposure score and per-directive findings. Units are written to
 * a temporary directory as `<name>` plus `<name>.d/*.conf` drop-ins, which `systemd-analyze` picks up when given
 * the unit's path (checked: a CapabilityBoundingSet drop-in there changes the assessment).
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

export interface CommandResult {
    status: number | null;
    stdout: string;
    stderr: string;
}

/** Run `systemd-analyze args...` with a plain environment (no pager, no colours). */
export function systemdAnalyze(args: string[]): CommandResult {
    const r = spawnSync("systemd-analyze", args, {
        encoding: "utf8",
        env: { ...process.env, SYSTEMD_PAGER: "", SYSTEMD_COLORS: "0", LC_ALL: "C.UTF-8" },
    });
    if (r.error) throw new Error(`cannot run systemd-analyze (apt-get install systemd): ${r.error.message}`);
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A fresh temporary directory, removed by the returned cleanup function. */
export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Write `unitText` as `dir/name` and each drop-in as `dir/name.d/<file>`; returns the unit's path. */
export function writeUnitTree(dir: string, name: string, unitText: string, dropIns: Record<string, string> = {}): string {
    const unitPath = path.join(dir, name);
    fs.writeFileSync(unitPath, unitText);
    if (Object.keys(dropIns).length) {
        fs.mkdirSync(`${unitPath}.d`, { recursive: true });
        for (const [file, text] of Object.entries(dropIns)) fs.writeFileSync(path.join(`${unitPath}.d`, file), text);
    }
    return unitPath;
}

/** `systemd-analyze verify <unit>`: ok only with exit 0 and nothing said about the unit. */
export function verifyUnit(unitPath: string): { ok: boolean; output: string } {
    const r = systemdAnalyze(["verify", unitPath]);
    const output = (r.stdout + r.stderr).trim();
    return { ok: r.status === 0 && output === "", output };
}

/** One finding of `systemd-analyze security --json=short`. */
export interface SecurityCheck {
    /** The setting as systemd names it, e.g. `CapabilityBoundingSet=~CAP_SYS_ADMIN`. */
    name: string;
    /** Stable identifier, e.g. `CapabilityBoundingSet_CAP_SYS_ADMIN`. */
    json_field: string;
    /** true: the unit is protected in this respect; false: exposed; null: not applicable. */
    set: boolean | null;
    description: string;
    exposure: string | null;
}

export interface SecurityAssessment {
    /** The "Overall exposure level" (0 best, 10 worst). */
    exposure: number;
    /** systemd's word for it: OK, MEDIUM, EXPOSED, UNSAFE. */
    rating: string;
    /** Findings by json_field. */
    checks: Map<string, SecurityCheck>;
}

const OVERALL = /Overall exposure level for \S+: ([0-9]+\.[0-9]) ([A-Z]+)/;

/** `systemd-analyze security --offline=true` on a unit file (drop-ins in `<unit>.d/` included). */
export function assessUnit(unitPath: string): SecurityAssessment {
    const text = systemdAnalyze(["security", "--offline=true", "--no-pager", unitPath]);
    const m = OVERALL.exec(text.stdout);
    if (!m) throw new Error(`no "Overall exposure level" line for ${unitPath}:\n${text.stdout}\n${text.stderr}`);
    const json = systemdAnalyze(["security", "--offline=true", "--json=short", unitPath]);
    const checks = new Map<string, SecurityCheck>();
    for (const c of JSON.parse(json.stdout) as SecurityCheck[]) checks.set(c.json_field, c);
    return { exposure: Number(m[1]), rating: m[2], checks };
}

/** One `Key=value` line of a unit file. */
export interface UnitLine {
    section: string;
    key: string;
    value: string;
    /** 0-based line number. */
    line: number;
}

/** The directive lines of a unit file, with their sections (comments and blank lines skipped). */
export function unitLines(text: string): UnitLine[] {
    const out: UnitLine[] = [];
    let section = "";
    text.split("\n").forEach((raw, line) => {
        if (raw === "" || raw.startsWith("#") || raw.startsWith(";")) return;
        const header = /^\[([A-Za-z]+)\]$/.exec(raw);
        if (header) {
            section = header[1];
            return;
        }
        const kv = /^([A-Za-z]+)=(.*)$/.exec(raw);
        if (!kv) throw new Error(`line ${line + 1} is neither comment, section nor Key=value: ${raw}`);
        out.push({ section, key: kv[1], value: kv[2], line });
    });
    return out;
}

/**
 * The `Environment=` assignments systemd itself parsed from a unit file: systemd's `--test` mode loads the unit
 * with the real parser (systemd/systemd src/core/load-fragment.c `config_parse_environ`: unquoting, C escapes,
 * specifiers) and dumps it, `Environment: NAME=value` one per line. `--test` refuses to run as root ("Don't run
 * test mode as root"), so as root it runs as `nobody` (through setpriv), and the unit's directory must be readable
 * by it. The unit is found through SYSTEMD_UNIT_PATH (the directory, then the defaults).
 */
export function parsedEnvironment(unitPath: string): string[] {
    const dir = path.dirname(unitPath);
    const name = path.basename(unitPath);
    // Our temporary directories are 0700: open them (up to the system's temp directory) for `nobody` to read.
    for (let d = dir; d.startsWith(os.tmpdir() + path.sep); d = path.dirname(d)) fs.chmodSync(d, (fs.statSync(d).mode & 0o7777) | 0o005);
    fs.chmodSync(unitPath, 0o644);
    const systemd = ["/lib/systemd/systemd", "/usr/lib/systemd/systemd"].find((p) => fs.existsSync(p));
    if (!systemd) throw new Error("no systemd binary (apt-get install systemd)");
    const argv = [systemd, "--test", "--system", `--unit=${name}`, "--no-pager"];
    const asRoot = process.getuid?.() === 0;
    const r = spawnSync(asRoot ? "setpriv" : argv[0], asRoot ? ["--reuid=65534", "--regid=65534", "--clear-groups", "--", ...argv] : argv.slice(1), {
        encoding: "utf8",
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", SYSTEMD_UNIT_PATH: `${dir}:`, SYSTEMD_PAGER: "", SYSTEMD_COLORS: "0", LC_ALL: "C.UTF-8" },
        maxBuffer: 64 * 1024 * 1024,
    });
    if (r.error) throw new Error(`cannot run ${argv[0]} --test: ${r.error.message}`);
    // The dump lists every unit of the initial transaction; ours is the block after its "-> Unit <name>:" line.
    const lines = r.stdout.split("\n");
    const start = lines.findIndex((l) => l.trim() === `-> Unit ${name}:`);
    if (start < 0) throw new Error(`systemd --test did not dump ${name} (status ${r.status}):\n${r.stderr.slice(-2000)}`);
    const end = lines.findIndex((l, i) => i > start && /^\t-> Unit /.test(l));
    return lines
        .slice(start + 1, end < 0 ? undefined : end)
        .map((l) => /^\t\tEnvironment: (.*)$/.exec(l)?.[1])
        .filter((v): v is string => v !== undefined);
}
