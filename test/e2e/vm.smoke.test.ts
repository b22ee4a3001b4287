/**
 * Smoke test of the e2e harness itself: the VM boots with systemd, admin has passwordless sudo, and the guest
 * installs the TEST STAND-IN falco from the test's own signed apt repository, the only repository it can reach.
 */
import * as assert from "assert";
import { AptRepo, startAptRepo } from "./aptRepo";
import { shQuote, tail } from "./exec";
import { startVm, Vm } from "./vm";

describe("e2e harness smoke test (VM + stand-in apt repository)", function () {
    let repo: AptRepo;
    let vm: Vm;
    const t0 = Date.now();

    before(async function () {
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

    it("has no apt source but the test's signed repository, and installs the stand-in falco 0.44.1 from it", async function () {
        const keyring = "/usr/share/keyrings/falco-archive-keyring.gpg";
        const script = `
set -euo pipefail
test -z "$(find /etc/apt/sources.list /etc/apt/sources.list.d -type f 2>/dev/null)"
curl -fsSL ${shQuote(repo.keyUrl)} | gpg --dearmor -o ${keyring}
gpg --show-keys --with-colons ${keyring} | awk -F: '$1=="fpr"{print $10; exit}'
echo "deb [signed-by=${keyring}] ${repo.url} ${repo.suite} ${repo.component}" > /etc/apt/sources.list.d/falcosecurity.list
apt-get -o APT::Update::Error-Mode=any update
apt-cache madison falco
DEBIAN_FRONTEND=noninteractive FALCO_FRONTEND=noninteractive FALCO_DRIVER_CHOICE=none FALCOCTL_ENABLED=no \\
  apt-get install -y falco=0.44.1 </dev/null
falco --version
`;
        const r = await vm.runAsRoot(script, { timeoutMs: 600_000 });
        assert.strictEqual(r.code, 0, `install failed:\n${tail(r.stdout)}\n${tail(r.stderr)}`);
        assert.ok(r.stdout.includes(repo.fingerprint), `served key fingerprint ${repo.fingerprint} not in:\n${r.stdout}`);
        assert.match(r.stdout, /falco \|\s+0\.44\.2 \| http:\/\/10\.0\.2\.100\/packages\/deb stable\/main amd64 Packages/);
        assert.match(r.stdout, /^Falco version: 0\.44\.1 \(x86_64\)$/m);
        assert.match(r.stdout, /TEST STAND-IN, NOT Falco/);
        // Everything apt fetched came from our server.
        assert.ok(repo.server.requests.some((q) => q.url.endsWith("/falco_0.44.1_amd64.deb") && q.status === 200));
        // The package's units are there (masking them is the product's job), none enabled with FALCO_DRIVER_CHOICE=none.
        const units = await vm.sshChecked("systemctl list-unit-files --no-legend 'falco*' | awk '{print $1\" \"$2}'");
        assert.match(units, /^falco-modern-bpf\.service disabled$/m);
        assert.match(units, /^falcoctl-artifact-follow\.service masked$/m);
    });

    it("runs the stand-in daemon with a health endpoint, SIGHUP logging and a clean SIGTERM exit", async function () {
        const r = await vm.runAsRoot(`
set -euo pipefail
falco --dry-run -c /etc/falco/falco.yaml
systemd-run --unit=standin-probe --property=Type=simple /usr/bin/falco -c /etc/falco/falco.yaml
for i in $(seq 1 30); do curl -fsS http://127.0.0.1:8765/healthz && break; sleep 1; done
`);
        assert.strictEqual(r.code, 0, `${tail(r.stdout)}\n${tail(r.stderr)}`);
        assert.match(r.stdout, /\{"status": "ok"\}/);
        // The same endpoint from this machine, through the forwarded port.
        const res = await fetch(`http://127.0.0.1:${vm.forwardedPorts[8765]}/healthz`);
        assert.deepStrictEqual(await res.json(), { status: "ok" });
        const log = await vm.runAsRoot(`
set -euo pipefail
systemctl kill -s HUP standin-probe
sleep 2
systemctl stop standin-probe
journalctl -b -o cat -u standin-probe --no-pager
systemctl show -p Result --value standin-probe 2>/dev/null || true
`);
        assert.strictEqual(log.code, 0, log.stderr);
        assert.match(log.stdout, /SIGHUP received/);
        assert.match(log.stdout, /SIGTERM received, exiting/);
        assert.match(log.stdout, /Falco stand-in started: pid=\d+/);
        const bad = await vm.runAsRoot(
            "echo 'x: STANDIN-INVALID' > /etc/falco/config.d/zz-bad.yaml; falco -c /etc/falco/falco.yaml --dry-run; rc=$?; rm /etc/falco/config.d/zz-bad.yaml; exit $rc",
        );
        assert.strictEqual(bad.code, 1);
        assert.match(bad.stderr, /STANDIN-INVALID/);
    });
});
