import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { LOGROTATE_REOPEN_COMMAND, logrotateDirectives, renderLogrotate } from "../../components/host/logrotate";
import { LOGROTATE_PATH, UNIT_NAME } from "../../components/host/paths";
import { resolveHostSettings } from "../../components/host/settings";
import { tempDir } from "../support/systemd";

const LOGROTATE = "/usr/sbin/logrotate";

function logrotate(args: string[]): { status: number | null; output: string } {
    assert.ok(fs.existsSync(LOGROTATE), "needs logrotate: apt-get install --no-install-recommends logrotate");
    const r = spawnSync(LOGROTATE, args, { encoding: "utf8" });
    if (r.error) throw r.error;
    return { status: r.status, output: r.stdout + r.stderr };
}

describe("logrotate config for the alert file", () => {
    let tmp: { dir: string; cleanup: () => void };
    beforeEach(() => (tmp = tempDir("falco-logrotate-")));
    afterEach(() => tmp.cleanup());

    it("is accepted by `logrotate -d`, which reads the size and count from the settings", () => {
        const s = resolveHostSettings({ outputs: { file: { path: "/var/log/falco/alerts.json", rotateSizeMiB: 50, rotateKeep: 3 } } });
        const conf = path.join(tmp.dir, "falco-nodes");
        fs.writeFileSync(conf, renderLogrotate(s)!);
        const r = logrotate(["-d", "-s", path.join(tmp.dir, "state"), conf]);
        assert.equal(r.status, 0, r.output);
        assert.doesNotMatch(r.output, /error/i);
        assert.match(r.output, new RegExp(`rotating pattern: /var/log/falco/alerts\\.json\\s+${50 * 1024 * 1024} bytes \\(3 rotations\\)`));
    });

    it("rotates for real: renames, compresses, creates a root-only file and signals Falco once", function () {
        if (process.getuid?.() !== 0) this.skip(); // `create 0600 root root` needs root to chown
        const s = resolveHostSettings({ outputs: { file: { rotateSizeMiB: 1, rotateKeep: 2 } } });
        // The same config, pointed at a scratch file and with the signal replaced by a marker.
        const log = path.join(tmp.dir, "events.json");
        const marker = path.join(tmp.dir, "signalled");
        const text = renderLogrotate(s)!
            .replace(`${s.outputs.file.path} {`, `${log} {`)
            .replace(LOGROTATE_REOPEN_COMMAND, `echo USR1 >> ${marker}`);
        assert.ok(text.includes(marker), "the postrotate command is the exported one");
        const conf = path.join(tmp.dir, "conf");
        fs.writeFileSync(conf, text);
        fs.writeFileSync(log, "x".repeat(2 * 1024 * 1024));
        const r = logrotate(["-s", path.join(tmp.dir, "state"), conf]);
        assert.equal(r.status, 0, r.output);
        assert.ok(fs.existsSync(`${log}.1.gz`), fs.readdirSync(tmp.dir).join(" "));
        const fresh = fs.statSync(log);
        assert.equal(fresh.size, 0);
        assert.equal(fresh.mode & 0o777, 0o600);
        assert.equal(fs.readFileSync(marker, "utf8"), "USR1\n");
        // Below the size: nothing happens, and Falco is not signalled again.
        fs.writeFileSync(log, "{}\n");
        assert.equal(logrotate(["-s", path.join(tmp.dir, "state"), conf]).status, 0);
        assert.equal(fs.readFileSync(marker, "utf8"), "USR1\n");
    });

    it("signals only Falco's main process, only while the unit runs, and never uses copytruncate", () => {
        const text = renderLogrotate(resolveHostSettings())!;
        assert.ok(text.startsWith(`# ${LOGROTATE_PATH}`));
        assert.match(text, new RegExp(`postrotate\\n\\s+${LOGROTATE_REOPEN_COMMAND.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\n\\s+endscript`));
        assert.match(LOGROTATE_REOPEN_COMMAND, new RegExp(`is-active ${UNIT_NAME}; then .*kill --kill-who=main --signal=USR1 ${UNIT_NAME}; fi$`));
        assert.doesNotMatch(text, /^\s*copytruncate/m);
        assert.match(text, /^\s+create 0600 root root$/m);
    });

    it("explains every directive in a comment right above it", () => {
        const lines = renderLogrotate(resolveHostSettings())!.split("\n");
        for (const d of logrotateDirectives(resolveHostSettings())) {
            const at = lines.indexOf(`    ${d.line}`);
            assert.ok(at > 0, d.line);
            assert.match(lines[at - 1], /^\s+# \S/);
        }
    });

    it("is absent when the file output is off", () => {
        assert.equal(renderLogrotate(resolveHostSettings({ outputs: { file: { enabled: false } } })), undefined);
    });
});
