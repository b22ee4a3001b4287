/**
 * The kmod driver's install path on a real (emulated) Debian VM: converge, reboot, package upgrade, uninstall, with
 * modprobe finding the module each time. The module is a TEST STAND-IN named `falco` (standin/kmod, NOT Falco's
 * driver: it captures nothing) built for the VM's kernel from Debian's linux-headers for exactly that kernel, and
 * falcoctl is a TEST STAND-IN too (standin/falcoctl-standin.sh, modelling falcoctl v0.13's `driver config` and
 * `driver install`: cleanup, download into ~/.falco, insmod, nothing below /lib/modules, and a config.d file
 * written behind Falco's back unless --update-falco=false), serving the module from the test's HTTP server as
 * download.falco.org would. Falco is the stand-in package, whose prerm runs `falcoctl driver cleanup` like the
 * real package's.
 *
 * Debian 12 only: the module has to be compiled on this machine with the compiler the image's kernel was built
 * with, and a Debian 12 machine has gcc-12 (Debian 13's 6.12 kernel wants gcc-14). Steps build on each other.
 */
import * as assert from "assert";
import * as fs from "fs";
import { STATE_DIR, UNIT_NAME } from "../../components/host/paths";
import { HostSettings } from "../../components/host/settings";
import { AptRepo, startAptRepo } from "./aptRepo";
import { e2eDebian, ensureBaseImage } from "./artifacts";
import { stopAtFirstFailure, tail } from "./exec";
import { aptSettings, bundleFor, convergeOk, runHostScript } from "./host";
import { buildStandinKmod, FALCOCTL_STANDIN, imageKernelRelease } from "./kmod";
import { startVm, Vm } from "./vm";

const PINNED = "0.44.1";
const NEWER = "0.44.2";
/** The driver version the stand-in Falco reports (`Default driver:`), as a real Falco 0.44.1 does. */
const DRIVER_VERSION = "10.2.0+driver";

describe(`e2e: the kmod driver's module on a ${e2eDebian().title} VM (converge, reboot, upgrade, uninstall; stand-in module and falcoctl)`, function () {
    stopAtFirstFailure();
    let repo: AptRepo;
    let vm: Vm;
    let kr = "";
    let t0 = 0;
    const extra = () => `/lib/modules/${kr}/extra/falco.ko`;

    const root = (script: string) =>
        vm.runAsRoot(script).then((r) => {
            if (r.code !== 0) throw new Error(`root script exited ${r.code}\n${tail(r.stdout)}\n${tail(r.stderr)}`);
            return r.stdout.trim();
        });
    const settings = (version: string): HostSettings => aptSettings(repo, { driver: "kmod", falcoVersion: version, install: { purgeOnUninstall: true } });
    /** What modprobe would load (modinfo's lookup is modprobe's: modules.dep below /lib/modules/<kernel>). */
    const modprobeFinds = async () => (await vm.ssh("/sbin/modinfo -F filename falco")).stdout.trim();
    const loaded = async () => (await vm.ssh("grep -c '^falco ' /proc/modules || true")).stdout.trim() === "1";
    const active = async () => (await vm.unitProps(UNIT_NAME, ["ActiveState"])).ActiveState;

    before(async function () {
        if (e2eDebian().suite !== "bookworm") {
            console.log(`[e2e] kmod: skipped on ${e2eDebian().title} (the stand-in module is built with this machine's gcc-12, for Debian 12's kernel)`);
            this.skip();
        }
        this.timeout(20 * 60_000);
        t0 = Date.now();
        const image = await ensureBaseImage();
        kr = imageKernelRelease(image);
        const ko = await buildStandinKmod(kr, DRIVER_VERSION, (m) => console.log(`[e2e] ${m}`));
        repo = await startAptRepo();
        // The driver repository, laid out like download.falco.org/driver: <version, query-escaped>/<arch>/<file>.
        const wanted = `/driver/${encodeURIComponent(DRIVER_VERSION)}/x86_64/falco_debian_${kr}_1.ko`;
        repo.server.route("/driver/", (req, _body, res) => {
            if (req.url !== wanted) {
                res.writeHead(404).end();
                return;
            }
            res.writeHead(200, { "content-type": "application/octet-stream" }).end(fs.readFileSync(ko));
        });
        vm = await startVm({ guestHttpPort: repo.server.port });
        // falcoctl where the Falco packages put it, configured with the test's driver repository.
        await vm.copyTo(FALCOCTL_STANDIN, "/usr/bin/falcoctl", { mode: "0755" });
        await vm.writeFile("/etc/falcoctl/falcoctl.yaml", `type: modern_ebpf\nrepo: http://10.0.2.100/driver\n`);
        assert.strictEqual(await modprobeFinds(), "", "a fresh host has no falco module");
    });

    after(async function () {
        if (this.currentTest?.state === "failed") console.log(`[e2e] console log: ${vm?.consoleLog}`);
        await vm?.stop();
        await repo?.stop();
        if (t0) console.log(`[e2e] kmod total: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    });

    it("converge: falcoctl downloads the module, converge installs it where modprobe finds it, Falco runs on it", async function () {
        this.timeout(15 * 60_000);
        const report = await convergeOk(vm, bundleFor(settings(PINNED)));
        assert.strictEqual(report.driver, "kmod");
        // falcoctl only insmod'ed its download below ~/.falco; converge put a copy below /lib/modules and depmod'ed.
        assert.match(await root(`ls /root/.falco/${DRIVER_VERSION}/x86_64/`), new RegExp(`^falco_debian_${kr.replace(/[.+]/g, "\\$&")}_1\\.ko$`));
        assert.strictEqual(await modprobeFinds(), extra());
        assert.strictEqual((await root(`/sbin/modinfo -F description ${extra()}`)), "TEST STAND-IN named falco: not Falco's kernel driver");
        assert.strictEqual(await root(`cat ${STATE_DIR}/kmod-installed`), extra());
        assert.ok(await loaded(), "the module is loaded");
        assert.strictEqual(await active(), "active");
        // `driver config --update-falco=false`: falcoctl wrote nothing into Falco's configuration.
        assert.strictEqual(await vm.stat("/etc/falco/config.d/engine-kind-falcoctl.yaml"), undefined);
        const calls = (await root("cat /var/log/falcoctl-standin.log")).split("\n");
        assert.deepStrictEqual(calls, ["driver config --type kmod --update-falco=false", "driver install --compile=true --download=true"]);
        // A second converge finds the module and touches nothing.
        const again = await convergeOk(vm, bundleFor(settings(PINNED)));
        assert.strictEqual(again.changed, false);
        assert.strictEqual((await root("cat /var/log/falcoctl-standin.log")).split("\n").length, 2, "falcoctl not called again");
    });

    it("reboot: the unit's `modprobe falco` loads the module again and Falco comes up", async function () {
        this.timeout(15 * 60_000);
        await vm.reboot();
        assert.strictEqual(await active(), "active", await vm.journal(UNIT_NAME));
        assert.ok(await loaded(), "modprobe loaded the module at boot");
        assert.strictEqual(await modprobeFinds(), extra());
    });

    it("upgrade: our unit is stopped first (the package's prerm cleanup can unload the module at once), the module is refreshed, Falco runs again", async function () {
        this.timeout(15 * 60_000);
        await root(": > /var/log/falcoctl-standin.log");
        const r = await runHostScript(vm, bundleFor(settings(NEWER)));
        assert.strictEqual(r.code, 0, tail(r.stderr, 60));
        assert.match(r.stderr, /driver kmod: stopping falco-nodes\.service so the package change can unload the falco module/);
        assert.strictEqual(await root("dpkg-query -W -f='${Version}' falco"), NEWER);
        const calls = (await root("cat /var/log/falcoctl-standin.log")).split("\n");
        // The old package's prerm ran falcoctl's cleanup; with our unit stopped (ExecStopPost rmmod) nothing held
        // the module, so cleanup found it unloaded instead of retrying rmmod for 50 s.
        assert.strictEqual(calls[0], "driver cleanup");
        assert.doesNotMatch(r.stderr, /Kernel module is still loaded/);
        assert.match(r.stderr, /OK! There is no module loaded\./);
        assert.deepStrictEqual(calls.slice(1), ["driver config --type kmod --update-falco=false", "driver install --compile=true --download=true"]);
        assert.strictEqual(await modprobeFinds(), extra());
        assert.ok(await loaded());
        assert.strictEqual(await active(), "active");
    });

    it("uninstall: the module converge installed goes (modprobe finds none), nothing else of the kernel's", async function () {
        this.timeout(15 * 60_000);
        const before = await root(`find /lib/modules/${kr} -name '*.ko*' | wc -l`);
        const r = await runHostScript(vm, bundleFor(settings(NEWER)), "uninstall");
        assert.strictEqual(r.code, 0, tail(r.stderr, 60));
        assert.strictEqual(await vm.stat(extra()), undefined);
        assert.strictEqual(await modprobeFinds(), "");
        assert.ok(!(await loaded()), "the unit's ExecStopPost unloaded it");
        assert.strictEqual(Number(await root(`find /lib/modules/${kr} -name '*.ko*' | wc -l`)), Number(before) - 1);
        assert.strictEqual(await vm.stat(STATE_DIR), undefined);
    });
});
