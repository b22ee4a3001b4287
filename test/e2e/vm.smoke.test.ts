/**
 * Smoke test of the e2e harness itself: the VM boots with systemd, admin has passwordless sudo, the guest reaches
 * the test's own HTTP server (where the signed apt repository lives) and nothing else. Kept short: installing the
 * TEST STAND-IN falco from that repository, its health endpoint, restarts and config rejection are exercised by
 * the product's own suites (lifecycle.test.ts, faults.test.ts) on VMs of their own.
 */
import * as assert from "assert";
import { AptRepo, startAptRepo } from "./aptRepo";
import { shQuote } from "./exec";
import { e2eDebian } from "./artifacts";
import { startVm, Vm } from "./vm";

describe(`e2e harness smoke test (${e2eDebian().title} VM + stand-in apt repository)`, function () {
    let repo: AptRepo;
    let vm: Vm;
    let t0 = 0;

    before(async function () {
        t0 = Date.now();
        repo = await startAptRepo();
        vm = await startVm({ guestHttpPort: repo.server.port, forwardPorts: [8765] });
    });

    after(async function () {
        if (this.currentTest?.state === "failed" || process.env.E2E_SHOW_CONSOLE === "1") {
            console.log(`[e2e] console log: ${vm?.consoleLog}`);
        }
        await vm?.stop();
        await repo?.stop();
        console.log(`[e2e] smoke test total: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    });

    it("runs systemd as PID 1 and settles to running or degraded", async function () {
        assert.strictEqual((await vm.sshChecked("cat /proc/1/comm")).trim(), "systemd");
        const state = (await vm.ssh("systemctl is-system-running --wait")).stdout.trim();
        assert.ok(["running", "degraded"].includes(state), `system state: ${state}`);
        if (state === "degraded") {
            console.log(await vm.ssh("systemctl --failed --no-legend").then((r) => r.stdout));
        }
        assert.match(await vm.sshChecked("ip -4 -o addr show"), /inet 10\.0\.2\.15\//);
    });

    it("reaches the test's HTTP server as 10.0.2.100 and nothing else (restrict=on)", async function () {
        assert.match(await vm.sshChecked(`curl -fsS -m 20 ${shQuote(repo.keyUrl)}`), /BEGIN PGP PUBLIC KEY BLOCK/);
        // 10.0.2.2 is qemu's alias for this machine's loopback: restricted user networking must drop it.
        const host = await vm.ssh(`curl -sS -m 5 http://10.0.2.2:${repo.server.port}/`);
        assert.notStrictEqual(host.code, 0, `the guest reached the host directly: ${host.stdout}`);
        // Another user cannot ride on admin's shared connection.
        const root = await vm.ssh("true", { user: "root" });
        assert.notStrictEqual(root.code, 0, "root logged in with admin's key");
    });

    it("gives admin passwordless sudo, and logs in with the pinned host key only", async function () {
        assert.strictEqual((await vm.sshChecked("sudo -n id -u")).trim(), "0");
        assert.strictEqual((await vm.sshChecked("id -un")).trim(), "admin");
        const probe = await vm.runAsRoot('echo "$(id -u) $1"', { args: ["arg one"] });
        assert.strictEqual(probe.stdout.trim(), "0 arg one", probe.stderr);
        // The guest's host key is the one the harness generated for this run.
        const served = (await vm.readFile("/etc/ssh/ssh_host_ed25519_key.pub")).trim().split(/\s+/).slice(0, 2).join(" ");
        assert.strictEqual(served, vm.hostKey);
        // Password login works before any hardening (the product's tests prove it is refused after).
        const pw = await vm.tryPasswordLogin();
        assert.strictEqual(pw.code, 0, `password login failed: ${pw.stderr}`);
        const wrong = await vm.tryPasswordLogin("not-the-password");
        assert.notStrictEqual(wrong.code, 0);
    });

    it("reads files, modes and unit properties as root", async function () {
        await vm.writeFile("/etc/e2e-probe/probe.conf", "hello\n", { mode: "0640", owner: "root:adm" });
        assert.strictEqual(await vm.readFile("/etc/e2e-probe/probe.conf"), "hello\n");
        assert.deepStrictEqual(await vm.stat("/etc/e2e-probe/probe.conf"), {
            mode: "640",
            owner: "root",
            group: "adm",
            type: "regular file",
            size: 6,
        });
        assert.strictEqual(await vm.stat("/nonexistent"), undefined);
        const props = await vm.unitProps("ssh.service", ["ActiveState", "SubState"]);
        assert.deepStrictEqual(props, { ActiveState: "active", SubState: "running" });
    });
});
