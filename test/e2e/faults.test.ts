/**
 * Bad inputs at the host, on a fresh Debian 12 VM: an unsupported distribution or kernel, a login without sudo, a
 * repository key that is not the pinned one, a staged package whose sha256 does not match, a full disk on the config
 * path, and a write that fails half-way. Each must fail with a message that names the problem and leave nothing
 * half-written. In between, the `package-file` install path (a staged .deb verified by sha256) converges the host,
 * so the later faults hit a running Falco that must keep running.
 *
 * "Nothing written" is checked as the host sees it: no file under /etc, /usr, /opt or /var/lib newer than a marker
 * taken just before the attempt, and none of our directories created.
 */
import * as assert from "assert";
import * as fs from "fs";
import { remoteShell } from "../../components/host/falcoHost";
import { FALCO_CONFIG_DIR, FALCO_RULES_D, STATE_DIR, UNIT_NAME, UNIT_PATH } from "../../components/host/paths";
import { FALCO_KEY_FINGERPRINT, HostSettings } from "../../components/host/settings";
import { AptRepo, startAptRepo } from "./aptRepo";
import { stopAtFirstFailure, tail } from "./exec";
import { aptSettings, bundleFor, convergeOk, filesDiffering, filesForHost, runHostScript, ScriptRun, sha256 } from "./host";
import { e2eDebian } from "./artifacts";
import { startVm, Vm } from "./vm";

const VERSION = "0.44.1";
const STAGED_DEB = `/var/tmp/falco_${VERSION}_amd64.deb`;
const NO_SUDO_USER = "e2e-nosudo";

describe(`e2e: bad inputs at the host fail clearly and leave nothing half-written (fresh ${e2eDebian().title} VM)`, function () {
    stopAtFirstFailure();
    let repo: AptRepo;
    let vm: Vm;
    let debSha256: string;
    let otherSha256: string;
    let t0 = 0;

    const root = (script: string) =>
        vm.runAsRoot(script).then((r) => {
            if (r.code !== 0) throw new Error(`root script exited ${r.code}\n${tail(r.stdout)}\n${tail(r.stderr)}`);
            return r.stdout.trim();
        });
    const packageFile = (sum: string, extra: HostSettings = {}): HostSettings => ({
        driver: "modern_ebpf",
        falcoVersion: VERSION,
        ...extra,
        install: { source: "package-file", packageFile: STAGED_DEB, packageSha256: sum },
    });
    const probe = (tag: string) => ({
        "e2e-probe": `- rule: e2e probe ${tag}\n  desc: e2e\n  condition: evt.type = open and fd.name = /etc/e2e-${tag}\n  output: "e2e ${tag} (file=%fd.name)"\n  priority: WARNING\n`,
    });

    /** A marker just before an attempt: everything written after it shows up in writtenSince(). */
    const mark = () => root("touch /run/e2e-mark");
    const writtenSince = async () => {
        const out = await root("find /etc /usr /opt /var/lib -xdev -newer /run/e2e-mark ! -type d 2>/dev/null | sort");
        return out ? out.split("\n") : [];
    };
    /** A fresh host after a refused converge: nothing of ours, no package, no file written. */
    const assertUntouched = async (r: ScriptRun, message: RegExp) => {
        assert.notStrictEqual(r.code, 0, "the converge must fail");
        assert.strictEqual(r.report, undefined, "no report on failure");
        assert.match(r.stderr, message);
        assert.deepStrictEqual(await writtenSince(), [], "files written by a refused converge");
        for (const p of [STATE_DIR, UNIT_PATH, `${FALCO_CONFIG_DIR}/falco.yaml`]) assert.strictEqual(await vm.stat(p), undefined, `${p} exists`);
        assert.notStrictEqual((await vm.ssh("dpkg-query -W falco")).code, 0, "the falco package got installed");
    };
    const attempt = async (settings: HostSettings, o: { user?: string; command?: string } = {}) => {
        await mark();
        return runHostScript(vm, bundleFor(settings), "converge", o);
    };

    before(async function () {
        this.timeout(15 * 60_000);
        t0 = Date.now();
        repo = await startAptRepo();
        vm = await startVm({ guestHttpPort: repo.server.port });
        const [deb, other] = repo.debPaths;
        debSha256 = sha256(fs.readFileSync(deb));
        otherSha256 = sha256(fs.readFileSync(other));
        assert.ok(deb.endsWith(`falco_${VERSION}_amd64.deb`), deb);
        // Staged like an air-gapped operator would: copied to the host beforehand.
        await vm.copyTo(deb, STAGED_DEB, { mode: "0644" });
    });

    after(async function () {
        if (this.currentTest?.state === "failed") console.log(`[e2e] console log: ${vm?.consoleLog}`);
        await vm?.stop();
        await repo?.stop();
        console.log(`[e2e] faults total: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    });

    it("9a. an unsupported distribution: refused, naming it; nothing written", async function () {
        this.timeout(5 * 60_000);
        await vm.writeFile("/run/e2e/os-release", 'ID=alpine\nNAME="Alpine Linux"\nVERSION_ID=3.20.0\n');
        await root("mount --bind /run/e2e/os-release /etc/os-release");
        try {
            const r = await attempt(packageFile(debSha256));
            await assertUntouched(r, /error: unsupported distribution 'alpine' \(ID in \/etc\/os-release\).*nothing was changed/);
            // The same for an apt source on it.
            const apt = await attempt(aptSettings(repo));
            await assertUntouched(apt, /unsupported distribution 'alpine'/);
        } finally {
            await root("umount /etc/os-release");
        }
    });

    it("9b. an unsupported kernel for modern_ebpf (no BTF; older than 5.8): refused, suggesting kmod or auto; nothing written", async function () {
        this.timeout(5 * 60_000);
        // Hide BTF: an empty directory over /sys/kernel/btf, so /sys/kernel/btf/vmlinux is absent as on a kernel without it.
        await root("mkdir -p /run/e2e/empty && mount --bind /run/e2e/empty /sys/kernel/btf");
        try {
            const r = await attempt(packageFile(debSha256));
            await assertUntouched(r, /error: kernel \S+ lacks BTF \(\/sys\/kernel\/btf\/vmlinux\), which the modern_ebpf driver needs: set driver: kmod or auto; nothing was changed/);
        } finally {
            await root("umount /sys/kernel/btf");
        }
        // An old kernel, as uname reports it (first on the script's fixed PATH: /usr/local/bin before /usr/bin).
        await vm.writeFile("/usr/local/bin/uname", "#!/bin/sh\necho 4.19.0-27-amd64\n", { mode: "0755" });
        try {
            const r = await attempt(packageFile(debSha256));
            await assertUntouched(r, /error: kernel 4\.19\.0-27-amd64 is older than 5\.8, which the modern_ebpf driver needs: set driver: kmod or auto/);
        } finally {
            await root("rm -f /usr/local/bin/uname");
        }
    });

    it("9c. a login without sudo rights: refused by sudo -n (no password prompt), and by the script itself without sudo", async function () {
        this.timeout(5 * 60_000);
        await root(`set -e
id ${NO_SUDO_USER} >/dev/null 2>&1 || useradd -m -s /bin/bash ${NO_SUDO_USER}
install -d -m 0700 -o ${NO_SUDO_USER} -g ${NO_SUDO_USER} /home/${NO_SUDO_USER}/.ssh
install -m 0600 -o ${NO_SUDO_USER} -g ${NO_SUDO_USER} /home/${vm.user}/.ssh/authorized_keys /home/${NO_SUDO_USER}/.ssh/authorized_keys`);
        // Exactly what FalcoHost runs for a non-root user.
        const viaSudo = await attempt(packageFile(debSha256), { user: NO_SUDO_USER });
        await assertUntouched(viaSudo, /sudo: a password is required/);
        // A root-less login that skips sudo (connection.user "root" that is not root, say) gets the script's own refusal.
        const direct = await attempt(packageFile(debSha256), { user: NO_SUDO_USER, command: remoteShell("root", "converge") });
        await assertUntouched(direct, /error: must run as root: run as root or via sudo -n/);
    });

    it("apt: a repository key that is not the pinned one is refused before anything is installed", async function () {
        this.timeout(5 * 60_000);
        assert.notStrictEqual(repo.fingerprint, FALCO_KEY_FINGERPRINT);
        const r = await attempt(aptSettings(repo, { install: { keyFingerprint: FALCO_KEY_FINGERPRINT } }));
        await assertUntouched(r, new RegExp(`error: key fingerprint mismatch: expected ${FALCO_KEY_FINGERPRINT} got ${repo.fingerprint}; refusing`));
    });

    it("package-file: a staged package with another sha256 is refused; nothing installed", async function () {
        this.timeout(5 * 60_000);
        const r = await attempt(packageFile(otherSha256));
        await assertUntouched(r, new RegExp(`error: install.packageFile ${STAGED_DEB} has sha256 ${debSha256}, not ${otherSha256} \\(install.packageSha256\\); refusing`));
    });

    it("package-file: the staged package with its sha256 installs (no repository contacted) and converges", async function () {
        this.timeout(15 * 60_000);
        const requests = repo.server.requests.length;
        const bundle = bundleFor(packageFile(debSha256, { rules: { custom: probe("a") } }));
        const report = await convergeOk(vm, bundle);
        console.log(`[e2e] package-file fresh converge: ${report.seconds.toFixed(1)} s`);
        assert.deepStrictEqual([report.changed, report.restarted, report.version], [true, true, VERSION]);
        assert.strictEqual(repo.server.requests.length, requests, "an air-gapped install fetched something");
        assert.strictEqual((await vm.sshChecked("dpkg-query -W -f='${Version}' falco")).trim(), VERSION);
        assert.strictEqual((await vm.sshChecked("apt-mark showhold")).trim(), "falco");
        assert.strictEqual(await root("ls -A /etc/apt/sources.list.d/"), "", "no apt source for package-file");
        assert.strictEqual((await vm.sshChecked(`systemctl is-active ${UNIT_NAME}`)).trim(), "active");
        const perfDropIn = Number(await root("cat /proc/sys/kernel/perf_event_paranoid")) > 2;
        assert.deepStrictEqual(await filesDiffering(vm, filesForHost(bundle, { driver: "modern_ebpf", perfDropIn })), []);
    });

    /** /etc/falco replaced by a small filesystem holding a copy of it (options get the copy's inode count). */
    const falcoDirOn = async (options: (inodes: number) => string) => {
        await root(`rm -rf /run/e2e/falco-copy && mkdir -p /run/e2e && cp -a ${FALCO_CONFIG_DIR} /run/e2e/falco-copy`);
        const inodes = Number(await root("find /run/e2e/falco-copy | wc -l"));
        await root(`mount -t tmpfs -o ${options(inodes)} e2e-small ${FALCO_CONFIG_DIR} && cp -a /run/e2e/falco-copy/. ${FALCO_CONFIG_DIR}/`);
        return () => root(`umount ${FALCO_CONFIG_DIR}`);
    };
    const changed = () => bundleFor(packageFile(debSha256, { rules: { custom: { ...probe("b"), "e2e-extra": "- list: e2e_extra\n  items: [a, b]\n" } } }));
    const assertOldConfigRunning = async (r: ScriptRun, message: RegExp, mainPid: string) => {
        assert.notStrictEqual(r.code, 0, "the converge must fail");
        assert.strictEqual(r.report, undefined);
        assert.match(r.stderr, message);
        assert.strictEqual(await root(`diff -r ${FALCO_CONFIG_DIR} /run/e2e/falco-copy && echo same`), "same", "the old files, byte for byte");
        assert.strictEqual(await root(`find ${FALCO_CONFIG_DIR} /etc/systemd /etc/ssh /etc/sysctl.d -name '*.falco-nodes-new' | wc -l`), "0");
        assert.strictEqual((await vm.unitProps(UNIT_NAME, ["MainPID"])).MainPID, mainPid, "Falco was restarted");
        assert.strictEqual((await vm.unitProps(UNIT_NAME, ["ActiveState"])).ActiveState, "active");
    };

    it("9d. a full disk on the config path: refused by the free-space preflight, naming the path; Falco keeps its config", async function () {
        this.timeout(5 * 60_000);
        const { MainPID } = await vm.unitProps(UNIT_NAME, ["MainPID"]);
        const hash = await root(`cat ${STATE_DIR}/bundle-hash`);
        const restore = await falcoDirOn(() => "size=64k,mode=0755");
        try {
            assert.match(await root(`df -k --output=avail ${FALCO_CONFIG_DIR} | tail -n 1`), /^\s*[0-9]{1,2}$/, "the config path is (nearly) full");
            const r = await runHostScript(vm, changed());
            await assertOldConfigRunning(r, /error: no space: \/etc\/falco has 0 MiB free, falco-nodes needs at least [0-9]+ MiB there.*nothing was changed/, MainPID);
        } finally {
            await restore();
        }
        assert.strictEqual(await root(`cat ${STATE_DIR}/bundle-hash`), hash);
    });

    it("9e. a write that fails half-way (the config filesystem runs out of inodes): the staged files are removed, the old config keeps running", async function () {
        this.timeout(5 * 60_000);
        const { MainPID } = await vm.unitProps(UNIT_NAME, ["MainPID"]);
        const hash = await root(`cat ${STATE_DIR}/bundle-hash`);
        // Room for exactly one more file: the first staged file fits, the second does not.
        const restore = await falcoDirOn((inodes) => `size=16m,mode=0755,nr_inodes=${inodes + 1}`);
        try {
            const bundle = changed();
            const falcoFiles = bundle.files.filter((f) => f.path.startsWith(`${FALCO_CONFIG_DIR}/`));
            assert.ok((await filesDiffering(vm, falcoFiles)).length >= 2, "the change touches at least two files there");
            const r = await runHostScript(vm, bundle);
            await assertOldConfigRunning(r, /error: could not write \/etc\/falco\/\S+\.falco-nodes-new \(filesystem full or read-only\?\); nothing was changed/, MainPID);
            assert.match(r.stderr, /No space left on device/, "the system's own error is shown");
        } finally {
            await restore();
        }
        assert.strictEqual(await root(`cat ${STATE_DIR}/bundle-hash`), hash, "the recorded state is the old one");
        // And with room again, the same change goes through.
        const report = await convergeOk(vm, changed());
        assert.deepStrictEqual([report.changed, report.restarted], [true, true]);
        assert.match(await vm.readFile(`${FALCO_RULES_D}/50-e2e-extra.yaml`), /e2e_extra/);
    });
});
