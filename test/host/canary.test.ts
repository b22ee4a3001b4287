/**
 * The detection canary, end to end in the sandbox (the real host script; systemd, journald and Falco faked as
 * test/support/hostSandbox.ts describes): converge opens the canary file and waits for the canary alert with this
 * bundle's token; without it a restart is rolled back and a no-op converge fails; the timer is installed and
 * enabled. The rule itself is checked against a recorded trace in test/rules/canary.test.ts.
 */
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { renderBundle } from "../../components/host/bundle";
import { UNIT_NAME } from "../../components/host/paths";
import { HostSettings, resolveHostSettings } from "../../components/host/settings";
import {
    CANARY_TIMER_NAME,
    CANARY_TIMER_PATH,
    CANARY_UNIT_NAME,
    CANARY_UNIT_PATH,
    renderCanaryService,
    renderCanaryTimer,
} from "../../components/host/unit";
import { CANARY_RULE_FILE, canaryPath, canaryToken } from "../../components/rules";
import { useSandbox } from "../support/hostSandbox";

describe("detection canary (host script in the sandbox)", function () {
    // A silent canary is waited for as long as the script's CANARY_TIMEOUT_SECONDS (60 s) before converge gives up.
    this.timeout(240_000);
    const sandbox = useSandbox();
    const bundle = (settings: HostSettings = {}) =>
        renderBundle(resolveHostSettings({ ...settings, install: { source: "preinstalled", binaryPath: sandbox().falco } }));

    it("converge waits for the canary alert of this bundle's token, and enables the canary timer", () => {
        const sb = sandbox();
        const b = bundle();
        const r = sb.run(b.installScript);
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stderr, /is up and detecting/);
        const asked = sb.log("journalctl").filter((l) => l.startsWith("canary "));
        assert.ok(asked.length >= 1 && asked.every((l) => l.includes(`_SYSTEMD_UNIT=${UNIT_NAME}`)), JSON.stringify(asked));
        assert.ok(sb.has("enabled", CANARY_TIMER_NAME));
        for (const p of [CANARY_UNIT_PATH, CANARY_TIMER_PATH]) assert.ok(sb.read(p), p);
        assert.ok(b.files.some((f) => f.path.endsWith(`/${CANARY_RULE_FILE}`) && f.content.includes(`falco_nodes_canary=${canaryToken(resolveHostSettings({ install: { source: "preinstalled", binaryPath: sb.falco } }))}`)));
    });

    it("rolls back a restart whose Falco reports no canary, with a clear error", () => {
        const sb = sandbox();
        const first = sb.run(bundle().installScript);
        assert.equal(first.status, 0, first.stderr);
        sb.mark("canary-silent");
        const next = bundle({ outputs: { minimumPriority: "warning" } });
        const r = sb.run(next.installScript);
        assert.equal(r.status, 1);
        assert.match(r.stderr, /reported no detection canary alert within 60s; its log stays on the host.*Putting back the previous files/);
        assert.match(r.stderr, /runs again with the files it had before this converge/);
        assert.match(r.stderr, /the host is back as this converge found it \(falco-nodes\.service running\)/);
        assert.doesNotMatch(r.stderr, /reloading ssh/, "sshd's files did not change: no reload on the way back");
        assert.doesNotMatch(sb.read("/etc/falco/falco.yaml") ?? "", /priority: warning/);
    });

    it("fails a no-op converge while Falco runs but detects nothing, changing nothing", () => {
        const sb = sandbox();
        const b = bundle();
        assert.equal(sb.run(b.installScript).status, 0);
        sb.mark("canary-silent");
        const before = sb.snapshot();
        const r = sb.run(b.installScript);
        assert.equal(r.status, 1);
        assert.match(r.stderr, /running but reported no detection canary alert within 60s/);
        assert.deepEqual(sb.snapshot(), before);
    });

    it("gives each bundle its own token and canary file", () => {
        const s1 = resolveHostSettings({});
        const s2 = resolveHostSettings({ outputs: { minimumPriority: "warning" } });
        assert.notEqual(canaryToken(s1), canaryToken(s2));
        assert.equal(canaryToken(s1), canaryToken(resolveHostSettings({})));
        assert.match(canaryPath(s1), /^\/run\/falco-nodes-canary\/[0-9a-f]{16}$/);
    });
});

describe("detection canary units", () => {
    it("pass systemd's own loader (systemd-analyze verify) and open exactly the bundle's canary file for reading", function () {
        if (spawnSync("systemd-analyze", ["--version"]).status !== 0) this.skip();
        const s = resolveHostSettings();
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "canary-units-"));
        try {
            fs.writeFileSync(path.join(dir, CANARY_UNIT_NAME), renderCanaryService(s));
            fs.writeFileSync(path.join(dir, CANARY_TIMER_NAME), renderCanaryTimer());
            const r = spawnSync("systemd-analyze", ["verify", "--man=no", path.join(dir, CANARY_TIMER_NAME), path.join(dir, CANARY_UNIT_NAME)], {
                encoding: "utf8",
            });
            assert.equal(r.status, 0, r.stderr);
            assert.equal(r.stderr.trim(), "");
            assert.ok(renderCanaryService(s).includes(`\nExecStart=cat ${canaryPath(s)}\n`));
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
});
