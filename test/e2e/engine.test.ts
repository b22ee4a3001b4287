/**
 * FalcoHost under the Pulumi engine's own sequences, on a real (emulated) Debian 12 VM with the signed apt repo:
 * the steps come from the engine port (test/support/engine.ts, pulumi/pulumi step_generator.go) applied to what
 * FalcoHost registers under the mocks, and each step runs exactly what pulumi-command's remote Command runs for
 * it (`commandRun`): the step's command string as admin (sudo -n), one fresh SSH session, the step's stdin (the new
 * one for create/update, the old one from state for a delete).
 *   update  - a rule change: the update command with the new stdin;
 *   replace - `up --replace` with a rule change: create with the new stdin, then delete with the old stdin;
 *   rename  - the new FalcoHost's create, then the old one's delete;
 *   destroy - the delete with the inputs in state.
 * Falco stays active with the new files after each, except after destroy.
 *
 * Also the premise of refusing ssh-rsa pins (FalcoHost hostKeyProblem): the real sshd, with an RSA host key and
 * our baseline, refuses a client that offers only `ssh-rsa` as host key algorithm (what a pinned ssh-rsa key makes
 * the Go SSH client offer), while `rsa-sha2-512` with the same key is accepted.
 *
 * Falco is the TEST STAND-IN package (test/e2e/standin). Steps build on each other: the suite stops at the first failure.
 */
import * as assert from "assert";
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { FalcoHost } from "../../components/host/falcoHost";
import { STATE_DIR, UNIT_NAME, UNIT_PATH } from "../../components/host/paths";
import { HostSettings } from "../../components/host/settings";
import { commandRun, destroy, StateResource, Step, up } from "../support/engine";
import { outputOf, Recorded, settled, setupMocks } from "../support/mocks";
import { AptRepo, startAptRepo } from "./aptRepo";
import { stopAtFirstFailure, tail } from "./exec";
import { aptSettings, bundleFor, filesDiffering, filesForHost } from "./host";
import { e2eDebian, skipUnlessRelease } from "./artifacts";
import { startVm, Vm } from "./vm";

const COMMAND = "command:remote:Command";
const rule = (tag: string) =>
    [`- rule: e2e engine probe (${tag})`, "  desc: changed by the engine suite", `  condition: evt.type = open and fd.name = /etc/e2e-engine-${tag}`, `  output: "engine probe ${tag} (file=%fd.name)"`, "  priority: WARNING", ""].join("\n");

describe(`e2e: FalcoHost under the engine's update, replace, rename and destroy sequences (${e2eDebian().title} VM)`, function () {
    stopAtFirstFailure();
    let repo: AptRepo;
    let vm: Vm;
    let perfDropIn = false;
    let state: StateResource[] = [];

    const settings = (tag: string): HostSettings => aptSettings(repo, { falcoVersion: "0.44.1", rules: { custom: { "e2e-engine": rule(tag) } } });

    /** What FalcoHost `name` registers for `tag` under the mocks. */
    async function program(name: string, tag: string): Promise<Recorded[]> {
        const mocks = setupMocks({ strictCalls: true });
        const host = new FalcoHost(name, { connection: { host: "127.0.0.1", port: vm.port, user: vm.user, hostKey: vm.hostKey }, settings: settings(tag) });
        await outputOf(host.falcoVersion);
        await settled(mocks);
        return [...mocks.resources];
    }

    /** Run the converge command's steps as pulumi-command would; returns each run's final JSON line. */
    async function apply(steps: Step[]): Promise<{ op: string; report: Record<string, unknown> }[]> {
        const out: { op: string; report: Record<string, unknown> }[] = [];
        for (const step of steps) {
            const run = commandRun(step);
            if (!run) continue;
            const r = await vm.ssh(run.command, { stdin: run.stdin, fresh: true, timeoutMs: 15 * 60_000 });
            if (r.code !== 0) throw new Error(`${step.op} exited ${r.code}\n${tail(r.stdout)}\n${tail(r.stderr, 60)}`);
            const last = r.stdout.trim().split("\n").pop() ?? "";
            console.log(`[e2e] ${step.op}: ${last}`);
            out.push({ op: step.op, report: JSON.parse(last) });
        }
        return out;
    }

    const commandOps = (steps: Step[]) => steps.filter((s) => s.type === COMMAND).map((s) => s.op);
    const root = async (script: string) => {
        const r = await vm.runAsRoot(script);
        if (r.code !== 0) throw new Error(`root script exited ${r.code}\n${tail(r.stderr)}`);
        return r.stdout.trim();
    };
    /** The host runs FalcoHost `name`'s bundle for `tag`: its files, and its Falco given the name as its hostname. */
    async function expectConverged(name: string, tag: string) {
        assert.strictEqual(await root(`systemctl is-active ${UNIT_NAME}`), "active");
        assert.strictEqual(await root(`systemctl show -p Environment ${UNIT_NAME}`), `Environment=FALCO_HOSTNAME=${name}`);
        const bundle = bundleFor(settings(tag), {}, { hostname: name });
        const problems = await filesDiffering(vm, filesForHost(bundle, { driver: "modern_ebpf", perfDropIn }));
        assert.deepStrictEqual(problems, [], problems.join("\n"));
        assert.strictEqual(await root(`cat ${STATE_DIR}/bundle-hash`), bundle.hash);
    }

    before(async function () {
        skipUnlessRelease(this, ["bookworm"], "the engine's step sequences");
        this.timeout(15 * 60_000);
        repo = await startAptRepo();
        vm = await startVm({ guestHttpPort: repo.server.port });
        perfDropIn = Number((await vm.sshChecked("cat /proc/sys/kernel/perf_event_paranoid")).trim()) > 2;
    });
    after(async function () {
        if (this.currentTest?.state === "failed") console.log(`[e2e] console log: ${vm?.consoleLog}`);
        await vm?.stop();
        await repo?.stop();
    });

    it("first up: create converges with a claim for its owner", async function () {
        const d = up([], await program("web", "v1"));
        assert.deepStrictEqual(commandOps(d.steps), ["create"]);
        const [r] = await apply(d.steps);
        assert.strictEqual(r.report.changed, true);
        await expectConverged("web", "v1");
        assert.strictEqual(await root(`cat ${STATE_DIR}/claims`), "1");
        state = d.state;
    });

    it("update: a rule change runs update with the new stdin; Falco restarts with the new files", async function () {
        const d = up(state, await program("web", "v2"));
        assert.deepStrictEqual(commandOps(d.steps), ["update"]);
        const [r] = await apply(d.steps);
        assert.deepStrictEqual([r.report.changed, r.report.restarted], [true, true]);
        await expectConverged("web", "v2");
        state = d.state;
    });

    it("replace: create with the new stdin, then delete with the old stdin; Falco stays with the new files", async function () {
        const regs = await program("web", "v3");
        const d = up(state, regs, { replace: [regs.find((r) => r.type === COMMAND)!.urn] });
        assert.deepStrictEqual(commandOps(d.steps), ["create-replacement", "delete-replaced"]);
        const [, del] = await apply(d.steps);
        assert.deepStrictEqual(del.report, { uninstalled: false, reason: "still-claimed", unit: UNIT_NAME });
        await expectConverged("web", "v3");
        state = d.state;
    });

    it("rename: the new resource's create, then the old one's delete from another owner; Falco stays", async function () {
        const d = up(state, await program("frontend", "v3"));
        assert.deepStrictEqual(commandOps(d.steps), ["create", "delete"]);
        const [, del] = await apply(d.steps);
        assert.deepStrictEqual(del.report, { uninstalled: false, reason: "other-owner", unit: UNIT_NAME });
        await expectConverged("frontend", "v3");
        state = d.state;
    });

    it("destroy: the owner's delete with the bundle in state uninstalls; Falco is gone", async function () {
        const d = destroy(state);
        const [r] = await apply(d.steps);
        assert.strictEqual(r.report.uninstalled, true);
        assert.notStrictEqual(await root(`systemctl is-active ${UNIT_NAME} || true`), "active");
        assert.strictEqual(await vm.stat(UNIT_PATH), undefined);
        assert.strictEqual(await vm.stat(STATE_DIR), undefined);
    });

    it("sshd (with an RSA host key and our baseline) refuses a client offering only ssh-rsa; rsa-sha2-512 works", async function () {
        this.timeout(10 * 60_000);
        // Converge again for the sshd baseline (HostKeyAlgorithms without ssh-rsa), and give sshd an RSA host key
        // as most cloud images have.
        await apply(up([], await program("web", "v1")).steps);
        await root(
            "test -f /etc/ssh/ssh_host_rsa_key || ssh-keygen -q -t rsa -b 3072 -N '' -f /etc/ssh/ssh_host_rsa_key; " +
                "printf 'HostKey /etc/ssh/ssh_host_rsa_key\\n' > /etc/ssh/sshd_config.d/11-e2e-rsa-hostkey.conf; sshd -t && systemctl reload ssh",
        );
        const rsaPub = (await root("cat /etc/ssh/ssh_host_rsa_key.pub")).split(/\s+/).slice(0, 2).join(" ");
        assert.match(rsaPub, /^ssh-rsa /);
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "e2e-rsa-"));
        try {
            const knownHosts = path.join(dir, "known_hosts");
            fs.writeFileSync(knownHosts, `[127.0.0.1]:${vm.port} ${rsaPub}\n`);
            const attempt = (algorithm: string) =>
                new Promise<{ code: number | null; stderr: string }>((resolve) => {
                    const p = spawn("ssh", [
                        "-F", "/dev/null", "-p", String(vm.port), "-i", vm.privateKeyPath, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
                        "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${knownHosts}`,
                        "-o", "GlobalKnownHostsFile=/dev/null", "-o", `HostKeyAlgorithms=${algorithm}`, "-o", "ConnectTimeout=30",
                        `${vm.user}@127.0.0.1`, "true",
                    ]);
                    let stderr = "";
                    p.stderr.on("data", (b) => (stderr += b));
                    p.on("close", (code) => resolve({ code, stderr }));
                });
            const sha1 = await attempt("ssh-rsa");
            console.log(`[e2e] ssh-rsa only: exit ${sha1.code}: ${sha1.stderr.trim()}`);
            assert.notStrictEqual(sha1.code, 0, "sshd accepted an ssh-rsa (SHA-1) host key signature");
            assert.match(sha1.stderr, /no matching host key type found/);
            const sha2 = await attempt("rsa-sha2-512");
            assert.strictEqual(sha2.code, 0, `the same RSA key with rsa-sha2-512: ${sha2.stderr}`);
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
});
