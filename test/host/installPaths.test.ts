/**
 * The install paths' pieces of the host script (components/host/scripts/install.sh), each function run on its own
 * by sourcing the assembled static script (which only defines functions: main is called by the bundle's last line).
 */
import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { CONVERGE_SCRIPT } from "../../components/host/installScript";

/** Runs `body` after sourcing the static host script; returns bash's result. */
function runFunctions(body: string, args: string[] = []): { status: number | null; stdout: string; stderr: string } {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "falco-nodes-install-"));
    try {
        const script = path.join(dir, "converge.sh");
        fs.writeFileSync(script, CONVERGE_SCRIPT);
        const r = spawnSync("bash", ["-c", `source "$1"; shift; ${body}`, "test", script, ...args], { encoding: "utf8" });
        return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

/**
 * A .repo file as dnf reads it: `[section]` then `key=value` lines (libdnf's ConfigParser: whitespace around `=`
 * is trimmed, `#`/`;` lines are comments). Every key is returned, so a duplicate (the last one wins in dnf) shows.
 */
function parseRepoFile(text: string): Record<string, [string, string][]> {
    const sections: Record<string, [string, string][]> = {};
    let current: [string, string][] | undefined;
    for (const raw of text.split("\n")) {
        const line = raw.trim();
        if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
        const section = /^\[(.+)\]$/.exec(line);
        if (section) {
            current = sections[section[1]] = [];
            continue;
        }
        const eq = line.indexOf("=");
        assert.ok(current && eq > 0, `not a repo file line: ${raw}`);
        current.push([line.slice(0, eq).trim(), line.slice(eq + 1).trim()]);
    }
    return sections;
}

describe("install.sh: the rpm repository file", () => {
    it("checks both the packages and the signed repository metadata against the pinned key file only", () => {
        const url = "https://mirror.example.com/falco/rpm";
        const r = runFunctions('P_REPO_URL=$1; rpm_repo_file', [url]);
        assert.equal(r.status, 0, r.stderr);
        const sections = parseRepoFile(r.stdout);
        assert.deepEqual(Object.keys(sections), ["falco-nodes-falco"]);
        const entries = sections["falco-nodes-falco"];
        const keys = entries.map(([k]) => k);
        assert.equal(new Set(keys).size, keys.length, `a key appears twice: ${keys.join(", ")}`);
        const repo = Object.fromEntries(entries);
        assert.equal(repo.baseurl, url);
        assert.equal(repo.enabled, "1");
        assert.equal(repo.gpgcheck, "1", "package signatures are checked");
        assert.equal(repo.repo_gpgcheck, "1", "repodata/repomd.xml's signature is checked (upstream signs it)");
        // The key the converge pinned by fingerprint and installed, not a URL fetched again at install time.
        const rpmKey = /^readonly RPM_KEY=(\S+)$/m.exec(CONVERGE_SCRIPT)?.[1];
        assert.ok(rpmKey);
        assert.equal(repo.gpgkey, `file://${rpmKey}`);
    });
});
