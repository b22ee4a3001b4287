/**
 * What the Pulumi engine does with FalcoHost's converge command for each kind of change, decided the way the
 * engine decides (test/support/engine.ts, a port of pulumi/pulumi pkg/resource/deploy/step_generator.go
 * generateSteps / applyReplaceOnChanges / continueStepsFromDiff / GenerateDeletes, with pulumi-command v1.2.1's
 * own Diff rules) from what the component really registered under the mocks: its inputs and its resource options
 * (replaceOnChanges as @pulumi/command adds them, ignoreChanges, aliases). Nothing here lists which change is an
 * update: the steps come out of the port.
 *
 * The host side of each sequence (owner, claims, bundle) runs on the VM in test/e2e/engine.test.ts.
 */
import { strict as assert } from "assert";
import * as pulumi from "@pulumi/pulumi";
import { FalcoHost, FalcoHostArgs, ownerOf } from "../../components/host/falcoHost";
import { HostSettings } from "../../components/host/settings";
import {
    COMMAND_SCHEMA_REPLACE_ON_CHANGES,
    destroy,
    detailedDiff,
    initialState,
    parsePropertyPath,
    pathContains,
    processIgnoreChanges,
    StateResource,
    Step,
    up,
} from "../support/engine";
import { fakeOpensshPrivateKey } from "../support/fakeSecrets";
import { outputOf, Recorded, settled, setupMocks } from "../support/mocks";

const COMMAND = "command:remote:Command";
const PRIVATE_KEY = fakeOpensshPrivateKey("falco-host-engine-test");
const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEngineTestHostKey";
const WEBHOOK = "https://hooks.example.com/services/T0000/B0000/engine-secret";

interface Program {
    name?: string;
    settings?: HostSettings;
    connection?: Partial<FalcoHostArgs["connection"]>;
    secretUrl?: string;
    opts?: pulumi.ComponentResourceOptions;
}

/** Run the program under fresh mocks and return what it registered (URNs, inputs, options). */
async function registrations(p: Program, stack = "test"): Promise<Recorded[]> {
    const mocks = setupMocks({ stack, strictCalls: true });
    const settings = p.settings ?? {};
    const host = new FalcoHost(
        p.name ?? "web",
        {
            connection: { host: "10.0.0.5", user: "admin", privateKey: pulumi.secret(PRIVATE_KEY), hostKey: HOST_KEY, ...p.connection },
            settings: p.secretUrl ? { ...settings, outputs: { ...settings.outputs, http: { enabled: true } } } : settings,
            secrets: p.secretUrl ? { httpOutputUrl: pulumi.secret(p.secretUrl) } : undefined,
        },
        p.opts,
    );
    await outputOf(host.falcoVersion);
    await settled(mocks);
    return [...mocks.resources];
}

const commandSteps = (steps: Step[]) => steps.filter((s) => s.type === COMMAND);
const str = (inputs: Record<string, unknown>, k: string) => String(inputs[k]);
/** The --owner and --bundle a command string carries. */
function ownership(cmd: string): { owner: string; bundle: string; claim: boolean } {
    const owner = /--owner ([0-9a-f]{64})/.exec(cmd)?.[1];
    const bundle = /--bundle ([0-9a-f]{64})/.exec(cmd)?.[1];
    assert.ok(owner && bundle, `no ownership in '${cmd}'`);
    return { owner, bundle, claim: / --claim\b/.test(cmd) };
}

async function change(before: Program, after: Program) {
    const state = initialState(await registrations(before));
    return up(state, await registrations(after));
}

const RULE_A = "- list: my_bins\n  items: [ls]\n";
const RULE_B = "- list: my_bins\n  items: [ls, cat]\n";

describe("FalcoHost under the engine's step rules", () => {
    it("registers the options the decisions come from: @pulumi/command's replaceOnChanges, our ignoreChanges", async () => {
        const cmd = (await registrations({})).find((r) => r.type === COMMAND)!;
        assert.deepStrictEqual(cmd.options.replaceOnChanges, ["triggers[*]"]);
        assert.deepStrictEqual(cmd.options.ignoreChanges, ["triggers"]);
        assert.equal(cmd.options.deleteBeforeReplace, undefined, "create-before-delete, as the provider leaves it");
        assert.equal(cmd.inputs.triggers, undefined, "nothing in triggers");
        // The provider's schema and the SDK agree on what replaces: the SDK's paths are generated from the schema.
        const roots = new Set(cmd.options.replaceOnChanges.map((p) => String(parsePropertyPath(p)[0])));
        assert.deepStrictEqual(roots, COMMAND_SCHEMA_REPLACE_ON_CHANGES);
    });

    for (const [what, before, after, changed] of [
        ["a rule change", { settings: { rules: { custom: { mine: RULE_A } } } }, { settings: { rules: { custom: { mine: RULE_B } } } }, ["create", "delete", "stdin", "update"]],
        ["a setting change", {}, { settings: { falcoVersion: "0.44.2" } as HostSettings }, ["create", "delete", "stdin", "update"]],
        ["a new secret URL", { secretUrl: WEBHOOK }, { secretUrl: `${WEBHOOK}-rotated` }, ["stdin"]],
        ["a connection change (address, key, port)", {}, { connection: { host: "10.0.0.6", port: 2222, hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOtherKey" } }, ["connection"]],
        ["another login user", {}, { connection: { user: "ops" } }, ["connection"]],
        ["a bastion added", {}, { connection: { proxy: { host: "bastion.example.com", user: "jump", hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBastion" } } }, ["connection"]],
    ] as [string, Program, Program, string[]][]) {
        it(`${what} is an in-place update of the converge command, with the new inputs, and no delete`, async () => {
            const d = await change(before, after);
            const steps = commandSteps(d.steps);
            assert.deepStrictEqual(steps.map((s) => s.op), ["update"]);
            const step = steps[0] as Extract<Step, { op: "update" }>;
            assert.deepStrictEqual(step.changed.sort(), changed);
            assert.notEqual(JSON.stringify(step.inputs), JSON.stringify(step.olds));
            // What the provider's Update runs: the new `update` string with the new stdin.
            assert.match(str(step.inputs, "update"), /bash -s -- converge --owner [0-9a-f]{64} --bundle [0-9a-f]{64}$/);
            assert.ok(!d.steps.some((s) => s.op.startsWith("delete")), "nothing is deleted");
        });
    }

    it("a changed bundle is readable in the preview diff: the new hash in the command strings", async () => {
        const d = await change({ settings: { rules: { custom: { mine: RULE_A } } } }, { settings: { rules: { custom: { mine: RULE_B } } } });
        const step = commandSteps(d.steps)[0] as Extract<Step, { op: "update" }>;
        const [o, n] = [ownership(str(step.olds, "update")), ownership(str(step.inputs, "update"))];
        assert.equal(o.owner, n.owner);
        assert.notEqual(o.bundle, n.bundle);
    });

    it("a user change that needs sudo changes the strings too, still an update", async () => {
        // Root may log in (key only) where the hardening allows it; by default FalcoHost refuses root (lockout).
        const rootOk: HostSettings = { hardening: { sshd: { permitRootLogin: true } } };
        const d = await change({ connection: { user: "root" }, settings: rootOk }, { connection: { user: "admin" }, settings: rootOk });
        const step = commandSteps(d.steps)[0] as Extract<Step, { op: "update" }>;
        assert.equal(step.op, "update");
        assert.match(str(step.olds, "update"), /^env /);
        assert.match(str(step.inputs, "update"), /^sudo -n env /);
    });

    it("no change: same, nothing runs", async () => {
        const d = await change({}, {});
        assert.deepStrictEqual(commandSteps(d.steps).map((s) => s.op), ["same"]);
    });

    it("a rename creates the new command, then deletes the old one with its own (other) owner", async () => {
        const d = await change({ name: "web" }, { name: "frontend" });
        const steps = commandSteps(d.steps);
        assert.deepStrictEqual(steps.map((s) => s.op), ["create", "delete"]);
        const [created, deleted] = steps as [Extract<Step, { op: "create" }>, Extract<Step, { op: "delete" }>];
        const c = ownership(str(created.inputs, "create"));
        const x = ownership(str(deleted.inputs, "delete"));
        assert.ok(c.claim, "create takes a claim");
        assert.notEqual(c.owner, x.owner, "the old uninstall comes from an owner the host no longer has");
        assert.equal(c.owner, ownerOf("urn:pulumi:test::falco-nodes::falco-nodes:index:FalcoHost::frontend"));
        assert.match(str(deleted.inputs, "delete"), /bash -s -- uninstall --owner/);
    });

    it("a rename with an alias is the same resource: an update that hands the host to the new owner", async () => {
        const d = await change({ name: "web" }, { name: "frontend", opts: { aliases: [{ name: "web" }] } });
        const steps = commandSteps(d.steps);
        assert.deepStrictEqual(steps.map((s) => s.op), ["update"]);
        const step = steps[0] as Extract<Step, { op: "update" }>;
        assert.notEqual(ownership(str(step.olds, "update")).owner, ownership(str(step.inputs, "update")).owner);
        assert.ok(!d.steps.some((s) => s.op.startsWith("delete")));
    });

    it("a move to another stack: the new stack creates (its own owner), the old stack's destroy deletes (the old owner)", async () => {
        const created = commandSteps(up([], await registrations({}, "prod")).steps);
        const deleted = commandSteps(destroy(initialState(await registrations({}, "test"))).steps);
        assert.deepStrictEqual([...created, ...deleted].map((s) => s.op), ["create", "delete"]);
        const c = ownership(str((created[0] as Extract<Step, { op: "create" }>).inputs, "create"));
        const x = ownership(str((deleted[0] as Extract<Step, { op: "delete" }>).inputs, "delete"));
        assert.notEqual(c.owner, x.owner);
        assert.equal(c.bundle, x.bundle);
    });

    it("a replacement for any other reason (up --replace): create with a claim first, then the old delete, same owner", async () => {
        const regs = await registrations({});
        const state = initialState(regs);
        const urn = regs.find((r) => r.type === COMMAND)!.urn;
        const steps = commandSteps(up(state, regs, { replace: [urn] }).steps);
        assert.deepStrictEqual(steps.map((s) => s.op), ["create-replacement", "delete-replaced"]);
        const c = ownership(str((steps[0] as Extract<Step, { op: "create-replacement" }>).inputs, "create"));
        const x = ownership(str((steps[1] as Extract<Step, { op: "delete-replaced" }>).inputs, "delete"));
        // Same owner, same bundle: only the claim the create took keeps this delete from uninstalling.
        assert.deepStrictEqual([c.owner, c.bundle, c.claim], [x.owner, x.bundle, true]);
    });

    describe("upgrading a stack that a falco-nodes with the hash in triggers converged", () => {
        /** State as the previous version left it: triggers [hash], command strings without ownership. */
        async function legacyState(): Promise<StateResource[]> {
            const state = initialState(await registrations({ settings: { rules: { custom: { mine: RULE_A } } } }));
            const cmd = state.find((r) => r.type === COMMAND)!;
            cmd.inputs = {
                ...cmd.inputs,
                triggers: ["0".repeat(64)],
                create: "sudo -n env FALCO_NODES_CONVERGE=1 bash -s -- converge",
                update: "sudo -n env FALCO_NODES_CONVERGE=1 bash -s -- converge",
                delete: "sudo -n env FALCO_NODES_CONVERGE=1 bash -s -- uninstall",
            };
            return state;
        }

        it("the first up is an update (triggers kept from state), so the old uninstall never runs", async () => {
            const d = up(await legacyState(), await registrations({ settings: { rules: { custom: { mine: RULE_B } } } }));
            const steps = commandSteps(d.steps);
            assert.deepStrictEqual(steps.map((s) => s.op), ["update"]);
            const cmd = d.state.find((r) => r.type === COMMAND)!;
            assert.deepStrictEqual(cmd.inputs.triggers, ["0".repeat(64)], "the old triggers stay in state");
            assert.match(String(cmd.inputs.delete), /--owner/, "from now on state holds the owned uninstall");
        });

        it("without ignoreChanges the same upgrade would be the replacement that uninstalled Falco", async () => {
            const regs = await registrations({ settings: { rules: { custom: { mine: RULE_B } } } });
            for (const r of regs) if (r.type === COMMAND) r.options = { ...r.options, ignoreChanges: [] };
            const steps = commandSteps(up(await legacyState(), regs).steps);
            assert.deepStrictEqual(steps.map((s) => s.op), ["create-replacement", "delete-replaced"]);
            assert.equal(str((steps[1] as Extract<Step, { op: "delete-replaced" }>).inputs, "delete"), "sudo -n env FALCO_NODES_CONVERGE=1 bash -s -- uninstall");
        });

        it("and the previous version's own rule change was a replacement (the bug this fixes)", async () => {
            const regs = await registrations({ settings: { rules: { custom: { mine: RULE_B } } } });
            for (const r of regs)
                if (r.type === COMMAND) {
                    r.options = { ...r.options, ignoreChanges: [] };
                    r.inputs = { ...r.inputs, triggers: ["1".repeat(64)] };
                }
            const steps = commandSteps(up(await legacyState(), regs).steps);
            assert.deepStrictEqual(steps.map((s) => s.op), ["create-replacement", "delete-replaced"]);
        });
    });

    it("destroy deletes with the inputs in state: the owned uninstall of the last converged bundle", async () => {
        const regs = await registrations({ settings: { rules: { custom: { mine: RULE_A } } } });
        const d = destroy(up(initialState(await registrations({})), regs).state);
        const del = commandSteps(d.steps)[0] as Extract<Step, { op: "delete" }>;
        assert.equal(del.op, "delete");
        const own = ownership(str(del.inputs, "delete"));
        const host = regs.find((r) => r.type === "falco-nodes:index:FalcoHost")!;
        assert.equal(own.owner, ownerOf(host.urn));
        assert.equal(own.bundle, ownership(str(regs.find((r) => r.type === COMMAND)!.inputs, "create")).bundle);
    });

    it("uninstallOnDelete: false registers no delete command (pulumi-command's Delete then runs nothing)", async () => {
        const mocks = setupMocks({ strictCalls: true });
        const host = new FalcoHost("kept", { connection: { host: "10.0.0.5", user: "admin", hostKey: HOST_KEY }, uninstallOnDelete: false });
        await outputOf(host.falcoVersion);
        await settled(mocks);
        const del = commandSteps(destroy(initialState(mocks.resources)).steps)[0] as Extract<Step, { op: "delete" }>;
        assert.equal(del.inputs.delete, undefined);
    });
});

describe("the engine port itself (test/support/engine.ts)", () => {
    it("parses and matches property paths as properties_path.go does", () => {
        assert.deepStrictEqual(parsePropertyPath('triggers[*]'), ["triggers", "*"]);
        assert.deepStrictEqual(parsePropertyPath('a.b[0]["c.d"]'), ["a", "b", 0, "c.d"]);
        assert.ok(pathContains(["triggers", "*"], ["triggers", 0]));
        assert.ok(!pathContains(["triggers", "*"], ["triggers"]), "the whole list is not an element");
        assert.ok(pathContains(["connection"], ["connection", "host"]));
    });

    it("diffs to leaf paths and resets ignored properties from the old inputs", () => {
        const d = detailedDiff({ a: [1, 2], o: { x: 1 }, gone: 1 }, { a: [1, 3, 4], o: { x: 2 }, added: null });
        assert.deepStrictEqual(Object.fromEntries(d), { "a[1]": "update", "a[2]": "add", "o.x": "update", gone: "delete" });
        assert.deepStrictEqual(processIgnoreChanges({ a: 2 }, { a: 1, t: [1] }, ["t", "a"]), { a: 1, t: [1] });
        assert.deepStrictEqual(processIgnoreChanges({ t: [2] }, {}, ["t"]), {});
    });

    it("replaces on a registered replaceOnChanges path: triggers elements, as @pulumi/command registers them", () => {
        const reg = (triggers: string[]): Recorded => ({
            type: COMMAND,
            name: "probe",
            urn: "urn:pulumi:test::falco-nodes::command:remote:Command::probe",
            parent: "",
            custom: true,
            inputs: { create: "true", triggers },
            options: { replaceOnChanges: ["triggers[*]"], ignoreChanges: [], aliases: [], deletedWith: "", dependencies: [] },
        });
        const steps = up(initialState([reg(["a"])]), [reg(["b"])]).steps;
        assert.deepStrictEqual(steps.map((s) => s.op), ["create-replacement", "delete-replaced"]);
        assert.deepStrictEqual(up(initialState([reg(["a"])]), [{ ...reg(["a"]), inputs: { create: "false", triggers: ["a"] } }]).steps.map((s) => s.op), ["update"]);
    });
});
