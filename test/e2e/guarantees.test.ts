/**
 * Issue 13 on one real (emulated) Debian VM per release (12 and 13; steps 3 and 4, bash's and curl's part, on 12
 * only: skipUnlessRelease): a converge never leaves a host worse than it found it. In order:
 * a root login the drop-in would lock out (refused, after installing: the package goes again), a first converge
 * whose Falco does not start while the package's own Falco runs (every unit put back as found), a version change
 * the new binary rejects (the previous package back), a SIGSTOPped Falco (a no-op converge restarts it), a converge
 * killed or hung up at each step boundary (the next one finishes it), sshd overrides that would lock the operator
 * out (refused, a fresh login works), apt under a held dpkg lock (waits), and a preinstalled binary others can
 * replace (refused).
 *
 * Real systemctl, sshd, apt and curl throughout; Falco is the TEST STAND-IN package (test/e2e/standin). Steps
 * build on each other, so the suite stops at the first failure.
 */
import * as assert from "assert";
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Bundle } from "../../components/host/bundle";
import { PACKAGE_UNITS, SSHD_DROPIN_PATH, STATE_DIR, UNIT_NAME, UNIT_PATH } from "../../components/host/paths";
import { HostSettings } from "../../components/host/settings";
import { AptRepo, startAptRepo } from "./aptRepo";
import { shQuote, stopAtFirstFailure, tail } from "./exec";
import { aptSettings, bundleFor, convergeOk, filesDiffering, filesForHost, runHostScript, ScriptRun } from "./host";
import { e2eDebian, skipUnlessRelease } from "./artifacts";
import { startVm, Vm } from "./vm";

const PINNED = "0.44.1";
const NEWER = "0.44.2";
const HELD_PORT = 9876;

const rule = (tag: string, condition = `evt.type = open and fd.name = /etc/e2e-${tag}`) =>
    `- rule: e2e probe ${tag}\n  desc: e2e\n  condition: ${condition}\n  output: "e2e ${tag} (file=%fd.name)"\n  priority: WARNING\n`;

describe(`e2e: a converge never leaves a host worse than it found it (issue 13, ${e2eDebian().title} VM)`, function () {
    stopAtFirstFailure();
    let repo: AptRepo;
    let vm: Vm;
    let perfDropIn = false;
    let good: Bundle;
    const children: ChildProcess[] = [];

    const settings = (tag: string, extra: HostSettings = {}, condition?: string): HostSettings =>
        aptSettings(repo, { falcoVersion: PINNED, ...extra, rules: { custom: { "e2e-probe": rule(tag, condition) } } });
    const sh = (cmd: string) => vm.sshChecked(cmd).then((s) => s.trim());
    const root = (script: string) =>
        vm.runAsRoot(script).then((r) => {
            if (r.code !== 0) throw new Error(`root script exited ${r.code}\n${tail(r.stdout)}\n${tail(r.stderr)}`);
            return r.stdout.trim();
        });
    const props = (unit: string, ...p: string[]) => vm.unitProps(unit, p);
    const packageUnits = async () => {
        const out: Record<string, string> = {};
        for (const u of PACKAGE_UNITS) {
            const p = await props(u, "LoadState", "ActiveState", "UnitFileState");
            out[u] = `${p.LoadState}/${p.ActiveState}/${p.UnitFileState}`;
        }
        return out;
    };
    const failed = (r: ScriptRun, message: RegExp) => {
        assert.notStrictEqual(r.code, 0, `the converge must fail\n${tail(r.stderr, 60)}`);
        assert.strictEqual(r.report, undefined, "no report on failure");
        assert.match(r.stderr, message, tail(r.stderr, 60));
    };
    const freshLogin = async () => {
        const r = await vm.ssh("id -un", { fresh: true });
        assert.strictEqual(r.code, 0, `a fresh key login failed: ${r.stderr}`);
        assert.strictEqual(r.stdout.trim(), vm.user);
    };
    const healthz = () => root(`curl -fsS --max-time 5 http://127.0.0.1:8765/healthz`);
    const noPending = async () => assert.strictEqual(await vm.stat(`${STATE_DIR}/pending`), undefined, "no transaction record left");

    before(async function () {
        this.timeout(15 * 60_000);
        repo = await startAptRepo();
        vm = await startVm({ guestHttpPort: repo.server.port });
        perfDropIn = Number(await sh("cat /proc/sys/kernel/perf_event_paranoid")) > 2;
        good = bundleFor(settings("good"));
    });

    after(async function () {
        for (const c of children) if (c.exitCode === null && c.pid) try { process.kill(-c.pid, "SIGKILL"); } catch { /* gone */ }
        if (this.currentTest?.state === "failed") console.log(`[e2e] console log: ${vm?.consoleLog}`);
        await vm?.stop();
        await repo?.stop();
    });

    it("2a. root logging in where the drop-in sets PermitRootLogin no: refused by sshd -T before sshd reloads; the package it installed goes again", async function () {
        this.timeout(20 * 60_000);
        await root("install -d -m 0700 /root/.ssh && install -m 0600 /home/admin/.ssh/authorized_keys /root/.ssh/authorized_keys");
        const r = await runHostScript(vm, good, "converge", { user: "root" });
        failed(r, /would lock root \(connecting from [0-9.]+ to port 22\) out: PermitRootLogin no shuts root out/);
        assert.match(r.stderr, /removing the falco package this converge installed/);
        assert.match(r.stderr, /the host is back as this converge found it \(package falco not installed, falco-nodes.service not running\)/);
        assert.notStrictEqual((await vm.ssh("dpkg-query -W falco")).code, 0, "the package went again");
        assert.strictEqual(await vm.stat(SSHD_DROPIN_PATH), undefined, "no drop-in");
        assert.strictEqual(await vm.stat(UNIT_PATH), undefined, "no unit of ours");
        assert.strictEqual(await root("ls -A /etc/apt/sources.list.d/ /usr/share/keyrings/ | grep -c falco-nodes || true"), "0", "our sources went");
        assert.strictEqual(await vm.stat(STATE_DIR), undefined);
        const again = await vm.ssh("id -un", { user: "root", fresh: true });
        assert.strictEqual(again.stdout.trim(), "root", `root still logs in: ${again.stderr}`);
    });

    it("1a. a first converge whose Falco cannot start, while the package's own Falco runs: every unit put back as found, Falco's log kept on the host", async function () {
        this.timeout(20 * 60_000);
        // The package installed and its own unit running, as an admin might have left it.
        await vm.copyTo(repo.debPaths.find((p) => p.includes(`falco_${PINNED}_`))!, "/var/tmp/falco.deb");
        await root(`set -e
DEBIAN_FRONTEND=noninteractive apt-get install -y -q /var/tmp/falco.deb >/dev/null
systemctl enable --now falco-modern-bpf.service
# A socket unit holds the port (systemd listens; nothing ever answers).
systemd-run --unit e2e-port-holder --socket-property=ListenStream=127.0.0.1:${HELD_PORT} /bin/sleep 3600
for i in $(seq 30); do ss -Htln | grep -q '127.0.0.1:${HELD_PORT} ' && break; sleep 1; done
ss -Htln | grep -q '127.0.0.1:${HELD_PORT} ' || { echo "port ${HELD_PORT} is not held" >&2; exit 1; }`);
        const unitsBefore = await packageUnits();
        assert.strictEqual(unitsBefore["falco-modern-bpf.service"], "loaded/active/enabled");
        const pidBefore = (await props("falco-modern-bpf.service", "MainPID")).MainPID;
        const yamlBefore = await root("sha256sum /etc/falco/falco.yaml");

        // Port held: our Falco passes --dry-run (which does not listen) but cannot start.
        const r = await runHostScript(vm, bundleFor(settings("noport", { webserver: { port: HELD_PORT } })));
        failed(r, /did not come up healthy with the new bundle within 90s; its log stays on the host: run journalctl -u falco-nodes.service -n 50 there as root/);
        assert.doesNotMatch(r.stderr, /Falco stand-in started|cannot listen on/, "Falco's journal is not copied into the converge output");
        assert.match(r.stderr, /the host is back as this converge found it/);
        assert.deepStrictEqual(await packageUnits(), unitsBefore, "the package's units as found (not masked, still enabled)");
        assert.strictEqual((await props("falco-modern-bpf.service", "ActiveState")).ActiveState, "active");
        assert.notStrictEqual((await props("falco-modern-bpf.service", "MainPID")).MainPID, "0");
        assert.ok(pidBefore !== "0");
        assert.strictEqual((await props(UNIT_NAME, "LoadState")).LoadState, "not-found", "no unit of ours");
        assert.strictEqual(await root("sha256sum /etc/falco/falco.yaml"), yamlBefore, "the package's falco.yaml as found");
        assert.strictEqual(await root("dpkg --verify falco; echo rc=$?"), "rc=0");
        await noPending();

        // A configuration Falco rejects, on the same host: nothing changes, and the message says so.
        const bad = await runHostScript(vm, bundleFor(settings("bad", {}, "evt.type = open and fd.name = STANDIN-INVALID")));
        failed(bad, /Falco rejected the new configuration.*nothing was changed/);
        assert.deepStrictEqual(await packageUnits(), unitsBefore);
        await root("systemctl stop e2e-port-holder.socket e2e-port-holder.service");
    });

    it("1b. converging for real: the package's units are masked only once ours runs healthy", async function () {
        this.timeout(15 * 60_000);
        const report = await convergeOk(vm, good);
        assert.deepStrictEqual([report.changed, report.restarted], [true, true]);
        assert.deepStrictEqual(JSON.parse(await healthz()), { status: "ok" });
        const units = await packageUnits();
        assert.ok(units["falco-modern-bpf.service"].startsWith("masked/inactive"), JSON.stringify(units));
        assert.strictEqual(await sh("pgrep -xc falco"), "1", "exactly one Falco");
        assert.deepStrictEqual(await filesDiffering(vm, filesForHost(good, { driver: "modern_ebpf", perfDropIn })), []);
        await noPending();
    });

    it("4. a SIGSTOPped Falco (active to systemd, /healthz dead): the no-op converge restarts it and says so", async function () {
        skipUnlessRelease(this, ["bookworm"], "4. the hung-Falco check");
        this.timeout(10 * 60_000);
        const before = await props(UNIT_NAME, "MainPID");
        await root(`kill -STOP ${before.MainPID}`);
        assert.strictEqual((await props(UNIT_NAME, "ActiveState")).ActiveState, "active");
        assert.notStrictEqual((await vm.runAsRoot("curl -fsS --max-time 3 http://127.0.0.1:8765/healthz")).code, 0);
        const r = await runHostScript(vm, good);
        assert.strictEqual(r.code, 0, tail(r.stderr, 40));
        assert.match(r.stderr, /falco-nodes.service is active but not healthy \(\/healthz does not answer: hung or stopped\): restarting it/);
        assert.deepStrictEqual([r.report?.changed, r.report?.restarted], [true, true]);
        assert.notStrictEqual((await props(UNIT_NAME, "MainPID")).MainPID, before.MainPID);
        assert.deepStrictEqual(JSON.parse(await healthz()), { status: "ok" });
        const again = await convergeOk(vm, good);
        assert.deepStrictEqual([again.changed, again.restarted], [false, false]);
    });

    // A wrapper first on the script's PATH: when its arguments start with the marker's text, it kills the converge
    // shell (its parent) instead of acting, as a dropped connection (SIGHUP) or a power loss (SIGKILL) would.
    const installKiller = (tool: "systemctl" | "sysctl") =>
        root(`cat > /usr/local/sbin/${tool} <<'EOF'
#!/bin/bash
if [[ -s /run/e2e-kill-at ]]; then
    read -r sig at </run/e2e-kill-at
    if [[ "$*" == "$at"* ]]; then
        rm -f /run/e2e-kill-at
        kill -"$sig" "$PPID"
        exit 1
    fi
fi
for dir in /usr/sbin /usr/bin /sbin /bin; do
    if [[ -x $dir/${tool} ]]; then exec "$dir/${tool}" "$@"; fi
done
exit 127
EOF
chmod 0755 /usr/local/sbin/${tool}`);
    let step = 0;
    for (const [sig, at] of [["KILL", "-q -p /etc/sysctl.d"], ["KILL", "reload -- ssh.service"], ["KILL", `restart -- ${UNIT_NAME}`], ["HUP", `restart -- ${UNIT_NAME}`]] as const) {
        it(`3. a converge ${sig === "HUP" ? "hung up (SIGHUP, an SSH drop)" : "killed"} at '${at}' after the swap: the next converge finishes it`, async function () {
            skipUnlessRelease(this, ["bookworm"], "3. the interrupted-converge bookkeeping");
            this.timeout(15 * 60_000);
            if (step === 0) {
                await installKiller("systemctl");
                await installKiller("sysctl");
            }
            step++;
            const next = bundleFor(
                settings(`step${step}`, { hardening: { sysctl: { overrides: { "kernel.kptr_restrict": step % 2 ? 1 : 2 } }, sshd: { overrides: { MaxAuthTries: String(2 + step) } } } }),
            );
            const startsBefore = await props(UNIT_NAME, "InvocationID");
            const sshdReloads = async () => Number(await root("journalctl -b -u ssh.service -o cat | grep -c 'Received SIGHUP' || true"));
            await root(`printf '%s %s\\n' ${sig} ${shQuote(at)} > /run/e2e-kill-at`);
            const cut = await runHostScript(vm, next);
            assert.notStrictEqual(cut.code, 0, tail(cut.stderr, 40));
            const reloadsAfterCut = await sshdReloads();
            assert.strictEqual(await vm.stat("/run/e2e-kill-at"), undefined, "the converge reached the step");
            assert.ok(await vm.stat(`${STATE_DIR}/pending`), "the record of the interrupted converge stays");
            // The swap happened, the step did not: the retry must not see "nothing to do".
            const r = await runHostScript(vm, next);
            assert.strictEqual(r.code, 0, tail(r.stderr, 40));
            assert.match(r.stderr, /an earlier converge was interrupted after it began changing this host: finishing it/);
            assert.deepStrictEqual([r.report?.changed, r.report?.restarted], [true, true]);
            assert.notStrictEqual((await props(UNIT_NAME, "InvocationID")).InvocationID, startsBefore.InvocationID, "Falco restarted");
            assert.match(await root("sshd -T"), new RegExp(`^maxauthtries ${2 + step}$`, "m"));
            assert.ok((await sshdReloads()) > reloadsAfterCut, "sshd reloaded by the finishing converge");
            assert.strictEqual(await root("sysctl -n kernel.kptr_restrict"), String(step % 2 ? 1 : 2), "the sysctl file applied");
            assert.deepStrictEqual(await filesDiffering(vm, filesForHost(next, { driver: "modern_ebpf", perfDropIn })), []);
            assert.deepStrictEqual(JSON.parse(await healthz()), { status: "ok" });
            await noPending();
            const again = await convergeOk(vm, next);
            assert.deepStrictEqual([again.changed, again.restarted], [false, false], "finished for good");
            good = next;
        });
    }

    it("2b. sshd overrides that would lock the operator out (AllowUsers, Port, forwarding on a bastion): refused, sshd keeps its configuration, a fresh login works", async function () {
        this.timeout(20 * 60_000);
        await root("rm -f /usr/local/sbin/systemctl /usr/local/sbin/sysctl");
        const dropIn = await root(`sha256sum ${SSHD_DROPIN_PATH}`);
        for (const [overrides, message] of [
            [{ AllowUsers: "alice" }, /AllowUsers alice does not include admin from/],
            [{ Port: "2222" }, /sshd would no longer listen on [0-9.]+ port 22, where this connection came in/],
        ] as const) {
            const r = await runHostScript(vm, bundleFor({ ...settings("good"), hardening: { sshd: { overrides } } }));
            failed(r, /the new sshd configuration would lock admin \(connecting from [0-9.]+ to port 22\) out/);
            assert.match(r.stderr, message);
            assert.match(r.stderr, /sshd was not reloaded and keeps its current configuration; nothing was changed/);
            assert.strictEqual(await root(`sha256sum ${SSHD_DROPIN_PATH}`), dropIn);
            await freshLogin();
        }

        // This node as a bastion: allow forwarding, then hold a ProxyJump-style connection through it.
        const bastion = bundleFor({ ...settings("good"), hardening: { sshd: { overrides: { AllowTcpForwarding: "local" } } } });
        await convergeOk(vm, bastion);
        const kh = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "e2e-inner-")), "known_hosts");
        fs.writeFileSync(kh, `e2e-inner ${vm.hostKey}\n`);
        const proxy = ["ssh", ...vm.sshArgs, "-W", "127.0.0.1:22", `${vm.user}@127.0.0.1`].join(" ");
        const inner = spawn("ssh", [
            "-F", "/dev/null", "-i", vm.privateKeyPath, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "IdentityAgent=none",
            "-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${kh}`, "-o", "GlobalKnownHostsFile=/dev/null", "-o", "HostKeyAlias=e2e-inner",
            "-o", "HostKeyAlgorithms=ssh-ed25519", "-o", `ProxyCommand=${proxy}`, "-p", "22", `${vm.user}@127.0.0.1`, "echo jumped; sleep 900",
        ], { stdio: ["ignore", "pipe", "pipe"], detached: true });
        children.push(inner);
        let innerOut = "";
        inner.stdout!.on("data", (d) => (innerOut += d));
        inner.stderr!.on("data", (d) => (innerOut += d));
        for (let i = 0; i < 120 && !innerOut.includes("jumped") && inner.exitCode === null; i++) await new Promise((res) => setTimeout(res, 1000));
        assert.ok(innerOut.includes("jumped"), `the jump through the node works: ${innerOut}`);
        const r = await runHostScript(vm, good);
        failed(r, /AllowTcpForwarding no would cut the SSH connections this host forwards for ProxyJump \(a bastion: 127\.0\.0\.1:22\)/);
        assert.strictEqual(inner.exitCode, null, "the jumped session is still up");
        process.kill(-inner.pid!, "SIGTERM"); // the session and its ProxyCommand
        await freshLogin();
        await new Promise((res) => setTimeout(res, 3000));
        await convergeOk(vm, good);
    });

    it("1c. a version change the new binary rejects: the previous package is installed again, held, and Falco runs the old files", async function () {
        this.timeout(20 * 60_000);
        const bad = bundleFor({ ...settings("v2bad", {}, "evt.type = open and fd.name = STANDIN-INVALID"), falcoVersion: NEWER });
        const r = await runHostScript(vm, bad);
        failed(r, /Falco rejected the new configuration .*putting back what this converge changed/);
        assert.strictEqual(await sh("dpkg-query -W -f='${Status} ${Version}' falco"), `hold ok installed ${PINNED}`, tail(r.stderr, 30));
        assert.match(r.stderr, new RegExp(`reinstalling falco ${PINNED.replace(/\./g, "\\.")} \\(found installed\\) in place of ${NEWER.replace(/\./g, "\\.")}`));
        assert.match(r.stderr, new RegExp(`the host is back as this converge found it \\(package falco ${PINNED.replace(/\./g, "\\.")}, falco-nodes.service running\\)`));
        assert.strictEqual(await sh("dpkg-query -W -f='${Version}' falco"), PINNED);
        assert.strictEqual(await sh("apt-mark showhold"), "falco");
        assert.strictEqual((await props(UNIT_NAME, "ActiveState")).ActiveState, "active");
        assert.match(await sh("falco -c /dev/null --version"), new RegExp(PINNED.replace(/\./g, "\\.")), "the binary is the previous one again");
        assert.deepStrictEqual(JSON.parse(await healthz()), { status: "ok" });
        assert.deepStrictEqual(await filesDiffering(vm, filesForHost(good, { driver: "modern_ebpf", perfDropIn })), []);
        await noPending();
        assert.strictEqual(await vm.stat(`${STATE_DIR}/rollback-package`), undefined);
    });

    it("6. apt under a held dpkg lock: converge waits for it instead of failing (and installs with --no-remove)", async function () {
        this.timeout(20 * 60_000);
        // A package whose preinst sleeps, installed by apt-get in the background: apt holds dpkg's locks meanwhile,
        // as unattended-upgrades does on a fresh cloud host.
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "e2e-lockdeb-"));
        fs.mkdirSync(path.join(dir, "pkg", "DEBIAN"), { recursive: true });
        fs.writeFileSync(path.join(dir, "pkg", "DEBIAN", "control"), "Package: e2e-slow\nVersion: 1.0\nArchitecture: all\nMaintainer: e2e <e2e@example.com>\nDescription: holds the dpkg lock for a while\n");
        fs.writeFileSync(path.join(dir, "pkg", "DEBIAN", "preinst"), "#!/bin/sh\nsleep 60\n", { mode: 0o755 });
        const built = spawnSync("dpkg-deb", ["--root-owner-group", "--build", path.join(dir, "pkg"), path.join(dir, "e2e-slow.deb")], { encoding: "utf8" });
        assert.strictEqual(built.status, 0, built.stderr);
        await vm.copyTo(path.join(dir, "e2e-slow.deb"), "/var/tmp/e2e-slow.deb");
        await root(`systemd-run --unit e2e-apt-lock env DEBIAN_FRONTEND=noninteractive apt-get install -y -q /var/tmp/e2e-slow.deb
for i in $(seq 60); do pgrep -f 'sleep 60' >/dev/null && break; sleep 1; done`);
        const upgrade = bundleFor({ ...settings("good"), falcoVersion: NEWER });
        assert.strictEqual((await vm.ssh("pgrep -f 'sleep 60'")).code, 0, "the other apt still holds the lock as converge starts");
        const t0 = Date.now();
        const r = await runHostScript(vm, upgrade);
        assert.strictEqual(r.code, 0, tail(r.stderr, 60));
        console.log(`[e2e] converge under a held dpkg lock: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
        assert.strictEqual(await sh("dpkg-query -W -f='${Version}' falco"), NEWER);
        assert.strictEqual(await sh("dpkg-query -W -f='${Status}' e2e-slow"), "install ok installed", "the other install finished too");
        good = upgrade;
    });

    it("8. a preinstalled binary someone other than root could replace is refused before anything changes", async function () {
        this.timeout(10 * 60_000);
        await root("install -m 0755 -o admin -g admin /usr/bin/falco /home/admin/falco && install -d -m 0777 /opt/e2e-open && install -m 0755 /usr/bin/falco /opt/e2e-open/falco");
        for (const [binaryPath, message] of [
            ["/home/admin/falco", /install\.binaryPath \/home\/admin\/falco: \/home\/admin\/falco is owned by uid [1-9][0-9]*, not root/],
            ["/opt/e2e-open/falco", /install\.binaryPath \/opt\/e2e-open\/falco: \/opt\/e2e-open is writable by others \(mode 777\)/],
        ] as const) {
            const r = await runHostScript(vm, bundleFor({ falcoVersion: NEWER, driver: "modern_ebpf", install: { source: "preinstalled", binaryPath } }));
            failed(r, message);
            assert.match(r.stderr, /nothing was changed/);
        }
        assert.strictEqual((await props(UNIT_NAME, "ActiveState")).ActiveState, "active");
        assert.deepStrictEqual(await filesDiffering(vm, filesForHost(good, { driver: "modern_ebpf", perfDropIn })), []);
    });

    it("5. uninstall puts the package's units back as converge found them (enabled, running) and leaves nothing of ours", async function () {
        this.timeout(10 * 60_000);
        const r = await runHostScript(vm, good, "uninstall");
        assert.strictEqual(r.code, 0, tail(r.stderr, 40));
        assert.strictEqual((await props(UNIT_NAME, "LoadState")).LoadState, "not-found");
        const units = await packageUnits();
        assert.strictEqual(units["falco-modern-bpf.service"], "loaded/active/enabled", JSON.stringify(units));
        assert.strictEqual(await vm.stat(STATE_DIR), undefined);
        assert.strictEqual(await sh("apt-mark showhold"), "");
        // The package's falco.yaml is back as shipped (dpkg's conffile checksum), and every directory left empty
        // under /etc/falco* is one the package owns.
        const conffile = (await sh("dpkg-query -W -f='${Conffiles}' falco")).split("\n").map((l) => l.trim().split(/\s+/)).find(([p]) => p === "/etc/falco/falco.yaml");
        assert.ok(conffile, "the package ships /etc/falco/falco.yaml as a conffile");
        assert.strictEqual((await root("md5sum /etc/falco/falco.yaml")).split(/\s+/)[0], conffile[1], "falco.yaml as the package shipped it");
        const owned = new Set((await sh("dpkg -L falco")).split("\n"));
        const empty = (await root("find /etc/falco /etc/falcoctl -type d -empty 2>/dev/null || true")).split("\n").filter(Boolean);
        assert.deepStrictEqual(empty.filter((d) => !owned.has(d)), [], "no empty directory of ours left");
    });
});
