/**
 * The host lifecycle on one real (emulated) Debian 12 VM, in order: fresh converge from the signed apt repository,
 * a no-op converge, a rule change, a configuration Falco rejects, `kill -9`, drift, the OS hardening, uninstall and
 * re-install. Each step drives the product's own script exactly as FalcoHost does (`remoteShell()`, the bundle on
 * stdin of one SSH session) and checks the host's real state: systemd's view and the kernel's (/proc/<pid>).
 *
 * Falco is the TEST STAND-IN package (test/e2e/standin): it loads and validates config and rules like Falco and
 * serves /healthz, but captures nothing. Steps build on each other, so the suite stops at the first failure.
 */
import * as assert from "assert";
import { Bundle } from "../../components/host/bundle";
import { FALCO_MAIN_CONFIG, FALCO_RULES_D, PACKAGE_UNITS, STATE_DIR, SYSCTL_PATH, UNIT_DROPIN_DIR, UNIT_NAME, UNIT_PATH } from "../../components/host/paths";
import { HostSettings } from "../../components/host/settings";
import { PERF_EVENT_PARANOID_DROPIN_PATH } from "../../components/host/unit";
import { AptRepo, startAptRepo } from "./aptRepo";
import { shQuote, stopAtFirstFailure, tail, waitFor } from "./exec";
import {
    aptSettings,
    bundleFor,
    capabilityMask,
    convergeOk,
    filesDiffering,
    filesForHost,
    hostFiles,
    runHostScript,
    unitValues,
} from "./host";
import { e2eDebian } from "./artifacts";
import { startVm, Vm } from "./vm";

const PINNED = "0.44.1";
const NEWER = "0.44.2";

function ruleFile(tag: string, condition = `evt.type = open and fd.name = /etc/e2e-probe-${tag}`): string {
    return [
        `- rule: e2e probe opened (${tag})`,
        `  desc: a rule the e2e suite installs and changes`,
        `  condition: ${condition}`,
        `  output: "e2e probe ${tag} opened (user=%user.name file=%fd.name)"`,
        `  priority: WARNING`,
        "",
    ].join("\n");
}

/** Systemd properties that must read back exactly as the unit file writes them (directive -> show property). */
const PLAIN_PROPERTIES: Record<string, string> = {
    Type: "Type",
    Restart: "Restart",
    RestartSec: "RestartUSec",
    TimeoutStopSec: "TimeoutStopUSec",
    KillMode: "KillMode",
    OOMScoreAdjust: "OOMScoreAdjust",
    NoNewPrivileges: "NoNewPrivileges",
    ProtectSystem: "ProtectSystem",
    ProtectHome: "ProtectHome",
    PrivateTmp: "PrivateTmp",
    PrivateDevices: "PrivateDevices",
    ProtectKernelTunables: "ProtectKernelTunables",
    ProtectKernelModules: "ProtectKernelModules",
    ProtectKernelLogs: "ProtectKernelLogs",
    ProtectControlGroups: "ProtectControlGroups",
    ProtectClock: "ProtectClock",
    ProtectHostname: "ProtectHostname",
    ProtectProc: "ProtectProc",
    RestrictNamespaces: "RestrictNamespaces",
    RestrictRealtime: "RestrictRealtime",
    RestrictSUIDSGID: "RestrictSUIDSGID",
    LockPersonality: "LockPersonality",
    MemoryDenyWriteExecute: "MemoryDenyWriteExecute",
    KeyringMode: "KeyringMode",
    UMask: "UMask",
    SystemCallArchitectures: "SystemCallArchitectures",
    AmbientCapabilities: "AmbientCapabilities",
};
/** Directives the least-privilege claim rests on: the test fails if the rendered unit stops setting one. */
const REQUIRED_DIRECTIVES = ["CapabilityBoundingSet", "NoNewPrivileges", "ProtectSystem", "ProtectKernelModules", "PrivateDevices", "SystemCallFilter", "RestrictAddressFamilies"];

describe(`e2e: host lifecycle on a ${e2eDebian().title} VM (apt install, converge, drift, hardening, uninstall)`, function () {
    stopAtFirstFailure();
    let repo: AptRepo;
    let vm: Vm;
    let t0 = 0;
    const timings: string[] = [];
    const settings = (tag: string, condition?: string): HostSettings =>
        aptSettings(repo, { falcoVersion: PINNED, rules: { custom: { "e2e-probe": ruleFile(tag, condition) } } });
    let v1: Bundle;
    let v2: Bundle;
    /** Whether this host's kernel.perf_event_paranoid > 2, which puts the CAP_SYS_ADMIN drop-in on the unit. */
    let perfDropIn = false;
    let current: Bundle;

    const sh = (cmd: string) => vm.sshChecked(cmd).then((s) => s.trim());
    const root = (script: string) =>
        vm.runAsRoot(script).then((r) => {
            if (r.code !== 0) throw new Error(`root script exited ${r.code}\n${tail(r.stdout)}\n${tail(r.stderr)}`);
            return r.stdout.trim();
        });
    const props = (...p: string[]) => vm.unitProps(UNIT_NAME, p);
    // Falco logs to stderr only (log_stderr; log_syslog is off): count starts by pid all the same.
    const starts = async () =>
        Number(await root(`journalctl -b -o cat -u ${UNIT_NAME} | grep -o 'Falco stand-in started: pid=[0-9]*' | sort -u | wc -l`));
    const expectFiles = async (bundle: Bundle) => {
        const problems = await filesDiffering(vm, filesForHost(bundle, { driver: "modern_ebpf", perfDropIn }));
        assert.deepStrictEqual(problems, [], `host files differ from the bundle:\n${problems.join("\n")}`);
    };
    const healthz = () => root("curl -fsS --max-time 5 http://127.0.0.1:8765/healthz");
    const time = (what: string, seconds: number) => {
        timings.push(`${what}: ${seconds.toFixed(1)} s`);
        console.log(`[e2e] ${what}: ${seconds.toFixed(1)} s`);
    };

    before(async function () {
        this.timeout(15 * 60_000);
        t0 = Date.now();
        repo = await startAptRepo();
        vm = await startVm({ guestHttpPort: repo.server.port });
        v1 = bundleFor(settings("v1"));
        v2 = bundleFor(settings("v2"));
        perfDropIn = Number(await sh("cat /proc/sys/kernel/perf_event_paranoid")) > 2;
    });

    after(async function () {
        if (this.currentTest?.state === "failed") console.log(`[e2e] console log: ${vm?.consoleLog}`);
        await vm?.stop();
        await repo?.stop();
        console.log(`[e2e] lifecycle total: ${((Date.now() - t0) / 1000).toFixed(1)} s (${timings.join(", ")})`);
    });

    it("1. fresh converge: installs the pinned version from the signed repo, files as rendered, package units masked, sandbox in force", async function () {
        this.timeout(15 * 60_000);
        // The repository offers a newer version too: only the pin keeps the host on 0.44.1.
        assert.ok(repo.debPaths.some((p) => p.includes(NEWER)), "the repo should offer a newer version than the pin");
        assert.strictEqual(await vm.stat(UNIT_PATH), undefined, "a fresh host has no unit");

        const report = await convergeOk(vm, v1);
        time("fresh converge (apt install)", report.seconds);
        assert.deepStrictEqual(
            { ...report, seconds: 0 },
            { changed: true, restarted: true, version: PINNED, driver: "modern_ebpf", bundleHash: v1.hash, unit: UNIT_NAME, seconds: 0 },
        );
        assert.strictEqual(await sh(`systemctl is-active ${UNIT_NAME}`), "active");
        assert.strictEqual(await sh(`systemctl is-enabled ${UNIT_NAME}`), "enabled");
        assert.deepStrictEqual(JSON.parse(await healthz()), { status: "ok" });

        // Every file as rendered: content, mode, root:root; the CAP_SYS_ADMIN drop-in exactly when the kernel needs it.
        await expectFiles(v1);
        const dropIn = await vm.stat(PERF_EVENT_PARANOID_DROPIN_PATH);
        assert.strictEqual(dropIn !== undefined, perfDropIn, `drop-in present: ${dropIn !== undefined}, perf_event_paranoid > 2: ${perfDropIn}`);
        assert.strictEqual(await root(`cat ${STATE_DIR}/bundle-hash`), v1.hash);

        // The package: the pinned version, held, from our source with its key pinned by signed-by.
        assert.strictEqual(await sh("dpkg-query -W -f='${Version}' falco"), PINNED);
        // Our falco.yaml has json_output: true, so a plain `falco --version` prints JSON, as real Falco's does
        // (shared/reference/falco/outputs/version.json_output.stdout); converge asks with `-c /dev/null`.
        // (falco.yaml is root-only, 0640: as the login user, only the `-c /dev/null` form runs.)
        assert.strictEqual(JSON.parse((await root("falco --version 2>/dev/null")).split("\n")[0]).falco_version, PINNED);
        assert.strictEqual((await sh("falco -c /dev/null --version")).split("\n")[0], `Falco version: ${PINNED}`);
        assert.match(await sh("apt-cache madison falco"), new RegExp(`falco \\| +${NEWER.replace(/\./g, "\\.")} \\|`));
        assert.deepStrictEqual((await sh("apt-mark showhold")).split("\n"), ["falco"]);
        const sources = await root("grep -rh '^deb' /etc/apt/sources.list.d/");
        const keyring = /^deb \[signed-by=(\/[^\] ]+)\] (\S+) stable main$/.exec(sources);
        assert.ok(keyring, `apt source without signed-by: ${sources}`);
        assert.strictEqual(keyring[2], repo.url);
        const fprs = (await sh(`gpg --show-keys --with-colons ${shQuote(keyring[1])} | awk -F: '$1=="fpr"{print $10}'`)).split("\n");
        assert.strictEqual(fprs[0], repo.fingerprint, "the keyring holds the pinned key");
        assert.ok(repo.server.requests.some((q) => q.url.endsWith(`/falco_${PINNED}_amd64.deb`) && q.status === 200));
        assert.ok(!repo.server.requests.some((q) => q.url.endsWith(`/falco_${NEWER}_amd64.deb`)), "the newer package was never fetched");

        // The package's own units (those the package ships) are masked and not running: only ours runs Falco.
        const packaged = (await sh("dpkg -L falco | grep '\\.service$' | xargs -n1 basename")).split("\n");
        const ours = PACKAGE_UNITS.filter((u) => packaged.includes(u));
        assert.ok(ours.length >= 4, `the package ships ${packaged.join(", ")}`);
        for (const unit of ours) {
            const p = await vm.unitProps(unit, ["LoadState", "ActiveState"]);
            assert.deepStrictEqual(p, { LoadState: "masked", ActiveState: "inactive" }, unit);
        }
        assert.deepStrictEqual((await sh("pgrep -x falco")).split("\n").length, 1, "exactly one Falco runs");

        // systemd's view of the running unit equals the rendered unit...
        const unit = filesForHost(v1, { driver: "modern_ebpf", perfDropIn }).find((f) => f.path === UNIT_PATH)!.content;
        for (const d of REQUIRED_DIRECTIVES) assert.ok(unitValues(unit, d).length > 0, `the rendered unit sets ${d}`);
        const keys = Object.keys(PLAIN_PROPERTIES).filter((k) => unitValues(unit, k).length > 0);
        const shown = await props(...keys.map((k) => PLAIN_PROPERTIES[k]), "CapabilityBoundingSet", "RestrictAddressFamilies", "SystemCallFilter", "MainPID");
        for (const k of keys) assert.strictEqual(shown[PLAIN_PROPERTIES[k]], unitValues(unit, k).pop(), `${k} on the running unit`);
        const dropInText = dropIn ? await vm.readFile(PERF_EVENT_PARANOID_DROPIN_PATH) : "";
        const caps = [...unitValues(unit, "CapabilityBoundingSet"), ...unitValues(dropInText, "CapabilityBoundingSet")]
            .flatMap((v) => v.split(/\s+/))
            .filter(Boolean);
        assert.ok(!caps.some((c) => c.startsWith("~")), "modern_ebpf's bounding set is an allow list");
        const sorted = (xs: string[]) => [...new Set(xs.map((x) => x.toLowerCase()))].sort();
        assert.deepStrictEqual(sorted(shown.CapabilityBoundingSet.split(" ")), sorted(caps));
        assert.deepStrictEqual(sorted(shown.RestrictAddressFamilies.split(" ")), sorted(unitValues(unit, "RestrictAddressFamilies").pop()!.split(" ")));
        const allowed = shown.SystemCallFilter.split(" ");
        for (const call of ["bpf", "perf_event_open"]) assert.ok(allowed.includes(call), `${call} allowed`);
        for (const call of ["init_module", "reboot", "kexec_load", "setrlimit"]) assert.ok(!allowed.includes(call), `${call} filtered`);

        // ...and the kernel's view of the process proves it is in force, not just configured.
        const pid = shown.MainPID;
        assert.ok(Number(pid) > 0);
        const status = await root(`cat /proc/${pid}/status`);
        const field = (name: string) => new RegExp(`^${name}:\\s*(\\S+)`, "m").exec(status)?.[1];
        const mask = capabilityMask(caps);
        for (const set of ["CapBnd", "CapPrm", "CapEff"]) assert.strictEqual(BigInt(`0x${field(set)}`), mask, `${set} of pid ${pid}`);
        assert.strictEqual(BigInt(`0x${field("CapAmb")}`), 0n);
        assert.strictEqual(field("NoNewPrivs"), "1");
        assert.strictEqual(field("Seccomp"), "2", "a seccomp filter is attached");
        assert.strictEqual(field("Umask"), unitValues(unit, "UMask").pop());
        const mounts = (await root(`awk '$5=="/"||$5=="/tmp"||$5=="/dev"{print $5" "$6" "$9}' /proc/${pid}/mountinfo`)).split("\n");
        assert.ok(mounts.some((m) => /^\/ ro[, ]/.test(m)), `ProtectSystem=strict: / read-only for Falco\n${mounts.join("\n")}`);
        assert.ok(mounts.some((m) => /^\/dev \S+ tmpfs$/.test(m)), `PrivateDevices: a private /dev\n${mounts.join("\n")}`);
        assert.ok(mounts.some((m) => m.startsWith("/tmp ")), `PrivateTmp: a private /tmp\n${mounts.join("\n")}`);
        current = v1;
    });

    it("2. second converge with the same bundle (json_output: true, as by default): no change, no restart", async function () {
        this.timeout(10 * 60_000);
        const before = await props("MainPID", "NRestarts", "InvocationID");
        const startsBefore = await starts();
        const report = await convergeOk(vm, v1);
        time("no-op converge", report.seconds);
        assert.strictEqual(report.changed, false);
        assert.strictEqual(report.restarted, false);
        assert.strictEqual(report.bundleHash, v1.hash);
        assert.deepStrictEqual(await props("MainPID", "NRestarts", "InvocationID"), before);
        assert.strictEqual(await starts(), startsBefore);
        await expectFiles(v1);
    });

    it("3. rule change (json_output: true): applied with exactly one restart, the new rule file in place", async function () {
        this.timeout(10 * 60_000);
        const before = await props("MainPID", "NRestarts", "InvocationID");
        const startsBefore = await starts();
        const report = await convergeOk(vm, v2);
        time("rule-change converge", report.seconds);
        assert.strictEqual(report.changed, true);
        assert.strictEqual(report.restarted, true);
        assert.strictEqual(report.bundleHash, v2.hash);
        const after = await props("MainPID", "NRestarts", "InvocationID", "ActiveState");
        assert.notStrictEqual(after.MainPID, before.MainPID);
        assert.notStrictEqual(after.InvocationID, before.InvocationID);
        assert.strictEqual(after.NRestarts, before.NRestarts, "no crash restarts");
        assert.strictEqual(after.ActiveState, "active");
        assert.strictEqual(await starts(), startsBefore + 1, "Falco started exactly once");
        const rule = v2.files.find((f) => f.path.startsWith(`${FALCO_RULES_D}/`) && f.path.includes("e2e-probe"))!;
        assert.match(await vm.readFile(rule.path), /e2e-probe-v2/);
        await expectFiles(v2);
        current = v2;
    });

    it("4. a configuration Falco rejects: converge fails clearly; the old files and the old process keep running", async function () {
        this.timeout(10 * 60_000);
        const bad = bundleFor(settings("bad", "evt.type = open and fd.name = STANDIN-INVALID"));
        const before = await props("MainPID", "InvocationID");
        const r = await runHostScript(vm, bad);
        assert.notStrictEqual(r.code, 0, "converge must fail");
        assert.strictEqual(r.report, undefined, "no report line on failure");
        assert.match(r.stderr, /STANDIN-INVALID/, "Falco's own message is shown");
        assert.match(r.stderr, /error: Falco rejected the new configuration.*nothing was changed/);
        assert.deepStrictEqual(await props("MainPID", "InvocationID"), before);
        await expectFiles(v2);
        assert.strictEqual(await root(`cat ${STATE_DIR}/bundle-hash`), v2.hash);
        assert.strictEqual(await root("find /etc -name '*.falco-nodes-new' | wc -l"), "0", "no staged leftovers");
        assert.deepStrictEqual(JSON.parse(await healthz()), { status: "ok" });
    });

    it("5. kill -9 of Falco: systemd brings it back after the unit's restart delay", async function () {
        this.timeout(5 * 60_000);
        const unit = filesForHost(current, { driver: "modern_ebpf", perfDropIn }).find((f) => f.path === UNIT_PATH)!.content;
        const restartSec = Number(/^([0-9]+)s$/.exec(unitValues(unit, "RestartSec").pop()!)![1]);
        const before = await props("MainPID", "NRestarts");
        const killedAt = Number((await root(`kill -9 ${before.MainPID} && cut -d' ' -f1 /proc/uptime`)).trim());
        let after: Record<string, string> = {};
        await waitFor(
            "a new Falco main process",
            async () => {
                after = await props("MainPID", "NRestarts", "ActiveState", "ExecMainStartTimestampMonotonic");
                return after.ActiveState === "active" && after.MainPID !== "0" && after.MainPID !== before.MainPID;
            },
            { timeoutMs: 120_000, intervalMs: 500 },
        );
        const delay = Number(after.ExecMainStartTimestampMonotonic) / 1e6 - killedAt;
        time(`kill -9 to new main process (RestartSec=${restartSec}s)`, delay);
        assert.strictEqual(Number(after.NRestarts), Number(before.NRestarts) + 1);
        // systemd waits RestartSec, then starts it: emulation adds a little, never much.
        assert.ok(delay >= restartSec - 0.5 && delay <= restartSec + 10, `restarted ${delay.toFixed(2)} s after the kill`);
        await waitFor("/healthz after the restart", () => healthz().then(() => true, () => false), { timeoutMs: 60_000, intervalMs: 1000 });
    });

    it("6. drift: a deleted, an edited and a re-moded file are restored by the next converge", async function () {
        this.timeout(10 * 60_000);
        const rules = current.files.filter((f) => f.path.startsWith(`${FALCO_RULES_D}/`));
        const deleted = rules.find((f) => f.path.includes("e2e-probe"))!;
        const edited = rules.find((f) => f !== deleted)!;
        await root(`set -e
rm -f ${shQuote(deleted.path)}
printf '%s\\n' '- macro: e2e_tampered' '  condition: (always_true)' >> ${shQuote(edited.path)}
chmod 0666 ${shQuote(SYSCTL_PATH)}`);
        assert.ok((await filesDiffering(vm, current.files.filter((f) => [deleted, edited].includes(f) || f.path === SYSCTL_PATH))).length === 3);
        const startsBefore = await starts();
        const report = await convergeOk(vm, current);
        time("drift-repair converge", report.seconds);
        assert.strictEqual(report.changed, true);
        assert.strictEqual(report.restarted, true, "Falco's rules changed under it: restart");
        assert.strictEqual(await starts(), startsBefore + 1);
        await expectFiles(current);
        const again = await convergeOk(vm, current);
        assert.strictEqual(again.changed, false, "repaired for good");
    });

    it("6b. drift outside the files: a lifted package hold is put back and a stopped Falco started by the next converge", async function () {
        this.timeout(10 * 60_000);
        await root(`set -e
apt-mark unhold falco >/dev/null
systemctl stop ${UNIT_NAME}`);
        assert.strictEqual(await sh("apt-mark showhold"), "");
        const startsBefore = await starts();
        const report = await convergeOk(vm, current);
        time("hold + stopped repair converge", report.seconds);
        assert.deepStrictEqual([report.changed, report.restarted], [true, true]);
        assert.strictEqual(await sh("apt-mark showhold"), "falco");
        assert.strictEqual((await props("ActiveState")).ActiveState, "active");
        assert.strictEqual(await starts(), startsBefore + 1, "started exactly once");
        await expectFiles(current);
        const again = await convergeOk(vm, current);
        assert.deepStrictEqual([again.changed, again.restarted], [false, false], "repaired for good");
    });

    it("7. OS hardening: sysctls in effect, sshd config valid, the key still logs in, passwords are refused", async function () {
        this.timeout(5 * 60_000);
        const conf = current.files.find((f) => f.path === SYSCTL_PATH)!.content;
        const wanted = conf
            .split("\n")
            .map((l) => /^(-?)([a-z0-9_.]+) = (.+)$/.exec(l))
            .filter((m): m is RegExpExecArray => m !== null)
            .map((m) => ({ optional: m[1] === "-", key: m[2], value: m[3] }));
        assert.ok(wanted.length >= 20, `sysctl file parsed: ${wanted.length} keys`);
        const got = await root(wanted.map((w) => `printf '%s=%s\\n' ${w.key} "$(sysctl -n ${w.key} 2>/dev/null || echo MISSING)"`).join("\n"));
        const values = Object.fromEntries(got.split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
        const wrong = wanted.filter((w) => !(values[w.key] === w.value || (w.optional && values[w.key] === "MISSING")));
        assert.deepStrictEqual(wrong, [], `sysctls not in effect: ${JSON.stringify(wrong.map((w) => [w.key, w.value, values[w.key]]))}`);
        assert.ok(wanted.filter((w) => values[w.key] === w.value).length >= 20, "most keys exist on this kernel");

        assert.strictEqual((await vm.runAsRoot("sshd -t")).code, 0, "sshd -t");
        const effective = await root("sshd -T");
        assert.match(effective, /^passwordauthentication no$/m);
        assert.match(effective, /^kbdinteractiveauthentication no$/m);
        assert.match(effective, /^permitrootlogin no$/m);
        const key = await vm.ssh("id -un", { fresh: true });
        assert.strictEqual(key.code, 0, `a fresh key login failed: ${key.stderr}`);
        assert.strictEqual(key.stdout.trim(), vm.user);
        const pw = await vm.tryPasswordLogin();
        assert.notStrictEqual(pw.code, 0, "the password login was accepted");
        assert.match(pw.stderr, /Permission denied/);
    });

    it("8. uninstall: no unit, no managed files, no failed units; the package is as shipped; a re-install works", async function () {
        this.timeout(15 * 60_000);
        const masked = (await root(`cat ${STATE_DIR}/masked-units`)).split("\n");
        assert.ok(masked.length >= 4, `converge recorded the units it masked: ${masked.join(", ")}`);
        const r = await runHostScript(vm, current, "uninstall");
        time("uninstall", r.seconds);
        assert.strictEqual(r.code, 0, tail(r.stderr, 40));
        assert.deepStrictEqual(JSON.parse(r.stdout.trim().split("\n").pop()!), { uninstalled: true, unit: UNIT_NAME, purged: false });

        assert.strictEqual((await props("LoadState")).LoadState, "not-found");
        assert.strictEqual(await vm.stat(UNIT_DROPIN_DIR), undefined);
        assert.strictEqual(await vm.stat(STATE_DIR), undefined);
        const left = await hostFiles(vm, current.files.map((f) => f.path).filter((p) => p !== FALCO_MAIN_CONFIG));
        assert.deepStrictEqual(Object.entries(left).filter(([, f]) => f.sha256 !== "absent").map(([p]) => p), []);
        assert.strictEqual(await root(`ls -A ${FALCO_RULES_D} 2>/dev/null || true`), "", "none of our rule files left");
        // The directory goes too unless the package owns it (converge created it: issue 13, point 5).
        if (!(await sh("dpkg -L falco")).split("\n").includes(FALCO_RULES_D)) assert.strictEqual(await vm.stat(FALCO_RULES_D), undefined, "no empty rules.d of ours");
        // falco.yaml is the package's own again (it was a conffile before converge replaced it): dpkg finds every
        // file of the package as shipped.
        assert.strictEqual(await root("dpkg --verify falco; echo rc=$?"), "rc=0");
        assert.strictEqual(await sh("systemctl --failed --no-legend --plain"), "");
        for (const unit of masked) assert.strictEqual((await vm.unitProps(unit, ["LoadState"])).LoadState, "loaded", `${unit} unmasked`);
        assert.strictEqual(await root("ls -A /etc/apt/sources.list.d/ /usr/share/keyrings/ | grep -c falco-nodes || true"), "0");
        assert.strictEqual(await sh("apt-mark showhold"), "");
        assert.strictEqual(await sh("dpkg-query -W -f='${Version}' falco"), PINNED, "the package stays (purgeOnUninstall false)");
        assert.strictEqual(await sh("pgrep -x falco || true"), "");
        // sshd was reloaded without our drop-in: the image's own policy (password logins allowed) is back.
        assert.strictEqual((await vm.tryPasswordLogin()).code, 0, "sshd back to the host's own configuration");

        const again = await convergeOk(vm, current);
        time("re-install converge", again.seconds);
        assert.strictEqual(again.changed, true);
        assert.strictEqual(again.restarted, true);
        assert.strictEqual(await sh(`systemctl is-active ${UNIT_NAME}`), "active");
        await expectFiles(current);
        for (const unit of masked) assert.strictEqual((await vm.unitProps(unit, ["LoadState"])).LoadState, "masked", unit);
        assert.deepStrictEqual(JSON.parse(await healthz()), { status: "ok" });
    });
});
