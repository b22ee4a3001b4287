import { strict as assert } from "assert";
import * as pulumi from "@pulumi/pulumi";
import { FalcoHost, FalcoHostArgs, parseConvergeReport, remoteShell } from "../../components/host/falcoHost";
import { HostSettings } from "../../components/host/settings";
import { fakeOpensshPrivateKey } from "../support/fakeSecrets";
import { type Mocks, outputOf, setupMocks, unwrapSecrets } from "../support/mocks";

const PRIVATE_KEY = fakeOpensshPrivateKey("falco-host-test");
const WEBHOOK = "https://hooks.example.com/services/T0000/B0000/very-secret-token";
const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyForTests";

function args(settings: HostSettings = {}, extra: Partial<FalcoHostArgs> = {}): FalcoHostArgs {
    return {
        connection: { host: "10.0.0.5", user: "admin", privateKey: pulumi.secret(PRIVATE_KEY), hostKey: HOST_KEY },
        settings,
        ...extra,
    };
}

const report = { changed: true, version: "0.44.1", driver: "modern_ebpf", bundleHash: "h", unit: "falco-nodes.service", restarted: true };

describe("FalcoHost", () => {
    let mocks: Mocks;
    before(() => {
        mocks = setupMocks({
            strictCalls: true,
            // What the host would print: the converge script's final JSON line after its progress output.
            state: { "command:remote:Command": () => ({ stdout: `installing\n${JSON.stringify(report)}\n`, stderr: "" }) },
        });
    });

    const commandOf = (host: string) => {
        const r = mocks.resources.find((x) => x.type === "command:remote:Command" && x.name === `${host}-converge`);
        assert.ok(r, `no converge command for ${host}`);
        return { ...r, inputs: unwrapSecrets(r.inputs) };
    };

    it("declares one converge command under the component, with converge, update and uninstall", async () => {
        const host = new FalcoHost("wiring", args());
        await outputOf(host.falcoVersion);
        const cmd = commandOf("wiring");
        assert.match(await outputOf(host.converge.urn), /::falco-nodes:index:FalcoHost\$command:remote:Command::wiring-converge$/);
        assert.equal(cmd.inputs.create, "sudo -n env FALCO_NODES_CONVERGE=1 bash -s -- converge");
        assert.equal(cmd.inputs.update, "sudo -n env FALCO_NODES_CONVERGE=1 bash -s -- converge");
        assert.equal(cmd.inputs.delete, "sudo -n env FALCO_NODES_CONVERGE=1 bash -s -- uninstall");
        assert.match(cmd.inputs.stdin as string, /^#!\/usr\/bin\/env bash/);
        assert.equal(cmd.inputs.addPreviousOutputInEnv, false);
    });

    it("runs as root without sudo", () => {
        assert.equal(remoteShell("root", "converge"), "env FALCO_NODES_CONVERGE=1 bash -s -- converge");
        assert.equal(remoteShell("ubuntu", "uninstall"), "sudo -n env FALCO_NODES_CONVERGE=1 bash -s -- uninstall");
    });

    it("builds the same commands from a user known only later (an Output)", async () => {
        const host = new FalcoHost("later-user", args({}, { connection: { ...args().connection, user: pulumi.output("ops") } }));
        await outputOf(host.falcoVersion);
        const cmd = commandOf("later-user");
        assert.equal(cmd.inputs.create, "sudo -n env FALCO_NODES_CONVERGE=1 bash -s -- converge");
        assert.equal(cmd.inputs.update, "sudo -n env FALCO_NODES_CONVERGE=1 bash -s -- converge");
        assert.equal(cmd.inputs.delete, "sudo -n env FALCO_NODES_CONVERGE=1 bash -s -- uninstall");
    });

    it("hosts with the same settings and secret get the same bundle; another secret changes only the secret parts", async () => {
        const withUrl = (name: string, url: string) =>
            new FalcoHost(name, args({ outputs: { http: { enabled: true } } }, { secrets: { httpOutputUrl: pulumi.secret(url) } }));
        const hosts = [withUrl("same-a", WEBHOOK), withUrl("same-b", WEBHOOK), withUrl("other", `${WEBHOOK}-rotated`)];
        await Promise.all(hosts.map((h) => outputOf(h.falcoVersion)));
        const [a, b, other] = ["same-a", "same-b", "other"].map(commandOf);
        assert.equal(a.inputs.stdin, b.inputs.stdin);
        assert.deepStrictEqual(a.inputs.triggers, b.inputs.triggers);
        assert.notEqual(other.inputs.stdin, a.inputs.stdin);
        assert.equal(other.inputs.triggers[0], a.inputs.triggers[0], "the public hash does not depend on the secret");
        assert.notEqual(other.inputs.triggers[1], a.inputs.triggers[1], "the secrets trigger does");
    });

    it("reports the version and driver the converge script printed", async () => {
        const host = new FalcoHost("report", args({ driver: "auto" }));
        assert.equal(await outputOf(host.falcoVersion), "0.44.1");
        assert.equal(await outputOf(host.driver), "modern_ebpf");
        assert.equal(await outputOf(host.unitName), "falco-nodes.service");
        assert.match(await outputOf(host.bundleHash), /^[0-9a-f]{64}$/);
    });

    it("pins the host key and passes the bastion through, with boot-tolerant dial defaults", async () => {
        const host = new FalcoHost("proxy", args({}, {
            connection: {
                host: "10.0.1.7", user: "admin", privateKey: pulumi.secret(PRIVATE_KEY), hostKey: HOST_KEY,
                proxy: { host: "bastion.example.com", user: "jump", privateKey: pulumi.secret(PRIVATE_KEY), hostKey: "ssh-ed25519 AAAABastion" },
            },
        }));
        await outputOf(host.falcoVersion);
        const c = commandOf("proxy").inputs.connection as Record<string, any>;
        assert.equal(c.host, "10.0.1.7");
        assert.equal(c.hostKey, HOST_KEY);
        assert.equal(c.port, 22);
        assert.equal(c.dialErrorLimit, 30);
        assert.equal(c.perDialTimeout, 15);
        assert.equal(c.proxy.host, "bastion.example.com");
        assert.equal(c.proxy.user, "jump");
        assert.equal(c.proxy.hostKey, "ssh-ed25519 AAAABastion");
    });

    it("keeps the private key and the bundle secret, and no secret in any command string", async () => {
        const host = new FalcoHost("secrets", args({ outputs: { http: { enabled: true } } }, { secrets: { httpOutputUrl: pulumi.secret(WEBHOOK) } }));
        await outputOf(host.falcoVersion);
        assert.ok(await pulumi.isSecret(host.converge.stdin), "stdin must be secret");
        assert.ok(await pulumi.isSecret(host.converge.connection.apply((c) => c.privateKey)), "private key must be secret");
        const cmd = commandOf("secrets");
        for (const k of ["create", "update", "delete"] as const) {
            assert.ok(!String(cmd.inputs[k]).includes("very-secret-token"), `${k} carries the webhook`);
            assert.ok(!String(cmd.inputs[k]).includes("PRIVATE KEY"), `${k} carries the key`);
        }
        // The plain trigger (the hash) does not depend on the secret; the secret's own trigger is secret.
        const triggers = cmd.inputs.triggers as unknown[];
        assert.equal(triggers.length, 2);
        assert.ok(!JSON.stringify(triggers[0]).includes("very-secret-token"));
        assert.ok(await pulumi.isSecret(host.converge.triggers), "triggers holding the secret digest must be secret");
    });

    it("renders a different secrets trigger when the secret changes, but the same public hash", async () => {
        const a = new FalcoHost("sec-a", args({ outputs: { http: { enabled: true } } }, { secrets: { httpOutputUrl: pulumi.secret(WEBHOOK) } }));
        const b = new FalcoHost("sec-b", args({ outputs: { http: { enabled: true } } }, { secrets: { httpOutputUrl: pulumi.secret(WEBHOOK + "2") } }));
        await Promise.all([outputOf(a.falcoVersion), outputOf(b.falcoVersion)]);
        const ta = commandOf("sec-a").inputs.triggers as string[];
        const tb = commandOf("sec-b").inputs.triggers as string[];
        assert.equal(ta[0], tb[0]);
        assert.notEqual(ta[1], tb[1]);
    });

    it("gives identical inputs for identical settings (no diff on a second up)", async () => {
        const a = new FalcoHost("same-a", args({ rules: { custom: { mine: "- list: my_bins\n  items: [ls]\n" } } }));
        const b = new FalcoHost("same-b", args({ rules: { custom: { mine: "- list: my_bins\n  items: [ls]\n" } } }));
        await Promise.all([outputOf(a.falcoVersion), outputOf(b.falcoVersion)]);
        const { connection: _ca, ...ia } = commandOf("same-a").inputs;
        const { connection: _cb, ...ib } = commandOf("same-b").inputs;
        assert.deepEqual(ia, ib);
    });

    it("a rule change changes the triggers and the bundle, nothing else", async () => {
        const a = new FalcoHost("rule-a", args({ rules: { custom: { mine: "- list: my_bins\n  items: [ls]\n" } } }));
        const b = new FalcoHost("rule-b", args({ rules: { custom: { mine: "- list: my_bins\n  items: [ls, cat]\n" } } }));
        await Promise.all([outputOf(a.falcoVersion), outputOf(b.falcoVersion)]);
        const ia = commandOf("rule-a").inputs;
        const ib = commandOf("rule-b").inputs;
        const changed = Object.keys({ ...ia, ...ib }).filter((k) => JSON.stringify(ia[k]) !== JSON.stringify(ib[k]));
        assert.deepEqual(changed.sort(), ["stdin", "triggers"]);
    });

    it("fails at construction, naming the key, on bad settings", () => {
        assert.throws(() => new FalcoHost("bad", args({ driver: "ebpf" as never })), /invalid host setting driver/);
        assert.throws(() => new FalcoHost("nourl", args({ outputs: { http: { enabled: true } } })), /outputs\.http.*set outputs\.http\.url/);
    });

    it("refuses to log in as root (the default user) while the sshd hardening would lock root out", () => {
        const { user: _, ...withoutUser } = args().connection;
        const lockout = /invalid host setting hardening\.sshd\.permitRootLogin: the connection logs in as root .*PermitRootLogin no.*log in as a sudo user \(connection\.user\), or set hardening\.sshd\.permitRootLogin: true/;
        assert.throws(() => new FalcoHost("root-default", args({}, { connection: withoutUser })), lockout);
        assert.throws(() => new FalcoHost("root", args({}, { connection: { ...withoutUser, user: "root" } })), lockout);
        // An override that keeps root out the same way is caught too.
        assert.throws(
            () => new FalcoHost("root-override", args({ hardening: { sshd: { permitRootLogin: true, overrides: { PermitRootLogin: "forced-commands-only" } } } }, { connection: withoutUser })),
            /PermitRootLogin forced-commands-only/,
        );
        // Root with a key only, no sshd hardening, or a sudo user: accepted.
        new FalcoHost("root-key", args({ hardening: { sshd: { permitRootLogin: true } } }, { connection: withoutUser }));
        new FalcoHost("root-nohardening", args({ hardening: { sshd: { enabled: false } } }, { connection: withoutUser }));
        new FalcoHost("root-dropped", args({ hardening: { sshd: { overrides: { PermitRootLogin: null } } } }, { connection: withoutUser }));
        new FalcoHost("sudo-user", args());
    });

    it("parses the converge report only from a JSON last line", () => {
        assert.deepEqual(parseConvergeReport(`x\n${JSON.stringify(report)}\n`), report);
        assert.equal(parseConvergeReport("no json here"), undefined);
        assert.equal(parseConvergeReport(undefined), undefined);
    });
});

describe("FalcoHost in preview", () => {
    it("plans without a host: the bundle hash is known, the host's report is not", async () => {
        setupMocks({ preview: true, strictCalls: true });
        const host = new FalcoHost("preview", args());
        assert.match(await outputOf(host.bundleHash), /^[0-9a-f]{64}$/);
    });
});
