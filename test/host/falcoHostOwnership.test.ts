/**
 * The engine's sequences for FalcoHost's converge command, run for real against the host script in the sandbox
 * (test/support/hostSandbox.ts: the production script, fake systemd): the steps come from the engine port
 * (test/support/engine.ts) applied to what FalcoHost registered under the mocks, and each step runs the command
 * string it would run (create/update/delete) with the stdin it would have (the new one, or the old one from state
 * for a delete), the way pulumi-command's remote Command does: one session, the string as the command, stdin piped.
 * The same sequences on the VM: test/e2e/engine.test.ts.
 */
import { strict as assert } from "assert";
import * as pulumi from "@pulumi/pulumi";
import { FalcoHost, ownerOf, remoteShell } from "../../components/host/falcoHost";
import { FALCO_RULES_D, STATE_DIR, UNIT_NAME, UNIT_PATH } from "../../components/host/paths";
import { HostSettings } from "../../components/host/settings";
import { argsOf, commandRun, destroy, initialState, StateResource, Step, up } from "../support/engine";
import { HostSandbox, RunResult, sandboxAvailable } from "../support/hostSandbox";
import { outputOf, Recorded, settled, setupMocks, unwrapSecrets } from "../support/mocks";

const COMMAND = "command:remote:Command";
const RULE = (items: string) => `- list: ownership_bins\n  items: [${items}]\n`;

describe("FalcoHost's engine sequences on a sandboxed host", function () {
    let sb: HostSandbox;
    before(function () {
        if (!sandboxAvailable()) this.skip();
    });
    beforeEach(() => (sb = new HostSandbox()));
    afterEach(() => sb?.cleanup());

    async function program(name: string, items: string, extra: { stack?: string; opts?: pulumi.ComponentResourceOptions } = {}): Promise<Recorded[]> {
        const mocks = setupMocks({ stack: extra.stack ?? "test", strictCalls: true });
        // The sandbox runs the command strings as root (no sudo): root logs in with a key, as the hardening allows.
        const settings: HostSettings = {
            install: { source: "preinstalled", binaryPath: sb.falco },
            rules: { custom: { mine: RULE(items) } },
            hardening: { sshd: { permitRootLogin: true } },
        };
        const host = new FalcoHost(name, { connection: { host: "10.0.0.5", user: "root", hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAISandbox" }, settings }, extra.opts);
        await outputOf(host.falcoVersion);
        await settled(mocks);
        return [...mocks.resources];
    }

    /** Run every command step on the sandbox, in order; each must succeed. */
    function apply(steps: Step[]): RunResult[] {
        const out: RunResult[] = [];
        for (const step of steps) {
            const run = commandRun(step);
            if (!run) continue;
            const r = sb.run(run.stdin, { args: argsOf(run.command) });
            assert.equal(r.status, 0, `${step.op}: ${r.stderr}`);
            out.push(r);
        }
        return out;
    }

    /** Our custom rule file's content, wherever the bundle puts it under rules.d. */
    const rules = () =>
        Object.entries(sb.snapshot())
            .filter(([p, c]) => p.startsWith(`${FALCO_RULES_D}/`) && c.includes("ownership_bins"))
            .map(([, c]) => c)
            .join("");
    const converged = (items: string) => {
        assert.ok(sb.has("active", UNIT_NAME), "Falco is active");
        assert.ok(sb.stat(UNIT_PATH), "our unit is there");
        assert.ok(rules().includes(`[${items}]`), `the rules hold [${items}]: ${rules()}`);
    };

    async function deployed(name: string, items: string): Promise<StateResource[]> {
        const d = up([], await program(name, items));
        apply(d.steps);
        converged(items);
        return d.state;
    }

    it("update: a rule change runs update with the new stdin; Falco stays up with the new files", async () => {
        const state = await deployed("web", "ls");
        const d = up(state, await program("web", "ls, cat"));
        assert.deepStrictEqual(d.steps.filter((s) => s.type === COMMAND).map((s) => s.op), ["update"]);
        const [r] = apply(d.steps);
        assert.equal(r.report?.changed, true);
        converged("ls, cat");
        assert.equal(sb.read(`${STATE_DIR}/claims`), "1\n");
    });

    it("replace (up --replace): create with the new stdin, then delete with the old: Falco stays, one claim left", async () => {
        const regs = await program("web", "ls");
        const state = await deployed("web", "ls");
        const urn = regs.find((r) => r.type === COMMAND)!.urn;
        const d = up(state, await program("web", "ls, cat"), { replace: [urn] });
        assert.deepStrictEqual(d.steps.filter((s) => s.type === COMMAND).map((s) => s.op), ["create-replacement", "delete-replaced"]);
        const [, del] = apply(d.steps);
        assert.deepStrictEqual(del.report, { uninstalled: false, reason: "still-claimed", unit: UNIT_NAME });
        converged("ls, cat");
        assert.equal(sb.read(`${STATE_DIR}/claims`), "1\n");
        // ...and a destroy afterwards still uninstalls: the claim count is right.
        const [gone] = apply(destroy(d.state).steps);
        assert.equal(gone.report?.uninstalled, true);
        assert.equal(sb.stat(UNIT_PATH), undefined);
    });

    it("rename: the old resource's delete comes from another owner and changes nothing", async () => {
        const state = await deployed("web", "ls");
        const d = up(state, await program("frontend", "ls"));
        assert.deepStrictEqual(d.steps.filter((s) => s.type === COMMAND).map((s) => s.op), ["create", "delete"]);
        const [, del] = apply(d.steps);
        assert.deepStrictEqual(del.report, { uninstalled: false, reason: "other-owner", unit: UNIT_NAME });
        assert.match(del.stderr, /belongs to owner [0-9a-f]{64}.*nothing was changed/);
        converged("ls");
        const owner = ownerOf("urn:pulumi:test::falco-nodes::falco-nodes:index:FalcoHost::frontend");
        assert.equal(sb.read(`${STATE_DIR}/owner`), `${owner}\n`);
    });

    it("move to another stack, then destroy of the old one: Falco stays for the new stack", async () => {
        const old = await deployed("web", "ls");
        apply(up([], await program("web", "ls", { stack: "prod" })).steps);
        const [del] = apply(destroy(old).steps);
        assert.equal(del.report?.reason, "other-owner");
        converged("ls");
    });

    it("destroy: the owner's last claim with the current bundle uninstalls everything", async () => {
        const state = await deployed("web", "ls");
        const [r] = apply(destroy(state).steps);
        assert.deepStrictEqual(r.report, { uninstalled: true, unit: UNIT_NAME, purged: false });
        assert.ok(!sb.has("active", UNIT_NAME));
        for (const p of [UNIT_PATH, STATE_DIR]) assert.equal(sb.stat(p), undefined, p);
    });

    it("an uninstall with a bundle the host has since replaced changes nothing and says so", async () => {
        const state = await deployed("web", "ls");
        const stale = state.find((r) => r.type === COMMAND)!;
        apply(up(state, await program("web", "ls, cat")).steps);
        const r = sb.run(String(stale.inputs.stdin), { args: argsOf(String(stale.inputs.delete)) });
        assert.equal(r.status, 0, r.stderr);
        assert.deepStrictEqual(r.report, { uninstalled: false, reason: "other-bundle", unit: UNIT_NAME });
        converged("ls, cat");
    });

    it("refuses a command whose --bundle is not the bundle on stdin, changing nothing", async () => {
        const regs = await program("web", "ls");
        const cmd = regs.find((r) => r.type === COMMAND)!;
        const stdin = String(unwrapSecrets(cmd.inputs.stdin));
        const owner = "a".repeat(64);
        const r = sb.run(stdin, { args: argsOf(remoteShell("root", "converge", { owner, bundleHash: "b".repeat(64) })) });
        assert.equal(r.status, 1);
        assert.match(r.stderr, /names bundle b{64} but the script carries [0-9a-f]{64}; nothing was changed/);
        assert.equal(sb.stat(STATE_DIR), undefined);
        for (const bad of [["converge", "--owner", "x"], ["uninstall", "--claim"], ["converge", "--owner", owner]]) {
            const b = sb.run(stdin, { args: bad });
            assert.equal(b.status, 1, bad.join(" "));
            assert.match(b.stderr, /64 lower-case hex|--claim is for converge only|go together/);
        }
    });

    it("a host converged before ownership (or by hand): the first owned update records the owner", async () => {
        const regs = await program("web", "ls");
        const cmd = regs.find((r) => r.type === COMMAND)!;
        const stdin = String(unwrapSecrets(cmd.inputs.stdin));
        assert.equal(sb.run(stdin, { args: ["converge"] }).status, 0, "an operator's run, no owner");
        assert.equal(sb.read(`${STATE_DIR}/owner`), undefined);
        const state = initialState(regs);
        apply(up(state, await program("web", "ls, cat")).steps);
        assert.match(sb.read(`${STATE_DIR}/owner`) ?? "", /^[0-9a-f]{64}\n$/);
        converged("ls, cat");
    });
});
