import { strict as assert } from "assert";
import * as pulumi from "@pulumi/pulumi";
import { FalcoHost, FalcoHostArgs, hostKeyProblem, ownerOf, parseConvergeReport, remoteShell } from "../../components/host/falcoHost";
import { HostSettings } from "../../components/host/settings";
import { UNIT_PATH } from "../../components/host/paths";
import { fakeOpensshPrivateKey } from "../support/fakeSecrets";
import { decodePayload, type DecodedPayload } from "../support/payload";
import { unitLines } from "../support/systemd";
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

    /** The three command strings FalcoHost `name` (top level, stack `test`) gives for `hash`. */
    const expectedCommands = (name: string, hash: string, prefix = "sudo -n ") => {
        const own = `--owner ${ownerOf(`urn:pulumi:test::falco-nodes::falco-nodes:index:FalcoHost::${name}`)} --bundle ${hash}`;
        return {
            create: `${prefix}env FALCO_NODES_CONVERGE=1 bash -s -- converge ${own} --claim`,
            update: `${prefix}env FALCO_NODES_CONVERGE=1 bash -s -- converge ${own}`,
            delete: `${prefix}env FALCO_NODES_CONVERGE=1 bash -s -- uninstall ${own}`,
        };
    };

    it("declares one converge command under the component: converge with a claim, converge, owned uninstall", async () => {
        const host = new FalcoHost("wiring", args());
        await outputOf(host.falcoVersion);
        const cmd = commandOf("wiring");
        assert.match(await outputOf(host.converge.urn), /::falco-nodes:index:FalcoHost\$command:remote:Command::wiring-converge$/);
        const hash = await outputOf(host.bundleHash);
        const want = expectedCommands("wiring", hash);
        assert.deepStrictEqual({ create: cmd.inputs.create, update: cmd.inputs.update, delete: cmd.inputs.delete }, want);
        assert.match(cmd.inputs.stdin as string, /^#!\/usr\/bin\/env bash/);
        assert.equal(cmd.inputs.addPreviousOutputInEnv, false);
        assert.equal(cmd.inputs.triggers, undefined);
    });

    it("runs as root without sudo; the ownership arguments are hex only", () => {
        assert.equal(remoteShell("root", "converge"), "env FALCO_NODES_CONVERGE=1 bash -s -- converge");
        assert.equal(remoteShell("ubuntu", "uninstall"), "sudo -n env FALCO_NODES_CONVERGE=1 bash -s -- uninstall");
        const own = { owner: "a".repeat(64), bundleHash: "b".repeat(64) };
        assert.equal(remoteShell("root", "uninstall", own), `env FALCO_NODES_CONVERGE=1 bash -s -- uninstall --owner ${own.owner} --bundle ${own.bundleHash}`);
        assert.throws(() => remoteShell("root", "converge", { ...own, owner: "x; reboot" }), /owner must be 64 hex digits/);
        assert.throws(() => remoteShell("root", "converge", { ...own, bundleHash: "B".repeat(64) }), /bundleHash must be 64 hex digits/);
    });

    it("builds the same commands from a user known only later (an Output)", async () => {
        const host = new FalcoHost("later-user", args({}, { connection: { ...args().connection, user: pulumi.output("ops") } }));
        await outputOf(host.falcoVersion);
        const cmd = commandOf("later-user");
        const want = expectedCommands("later-user", await outputOf(host.bundleHash));
        assert.deepStrictEqual({ create: cmd.inputs.create, update: cmd.inputs.update, delete: cmd.inputs.delete }, want);
    });

    it("uninstallOnDelete: false leaves delete out (the provider's Delete runs nothing then)", async () => {
        const host = new FalcoHost("no-uninstall", args({}, { uninstallOnDelete: false }));
        await outputOf(host.falcoVersion);
        const cmd = commandOf("no-uninstall");
        assert.equal(cmd.inputs.delete, undefined);
        assert.match(cmd.inputs.create as string, /converge --owner/);
    });

    it("refuses an ssh-rsa host key pin, for the host and the bastion, before declaring anything", () => {
        const rsa = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 host";
        const before = mocks.resources.length;
        assert.throws(() => new FalcoHost("rsa", args({}, { connection: { ...args().connection, hostKey: rsa } })), /connection\.hostKey is an ssh-rsa key.*Pin the host's ed25519 key/s);
        assert.throws(
            () => new FalcoHost("rsa-proxy", args({}, { connection: { ...args().connection, proxy: { host: "b", hostKey: `  ${rsa}` } } })),
            /connection\.proxy\.hostKey is an ssh-rsa key/,
        );
        assert.equal(mocks.resources.length, before, "nothing registered");
        assert.equal(hostKeyProblem(HOST_KEY, "connection"), undefined);
        assert.equal(hostKeyProblem("ecdsa-sha2-nistp256 AAAAE2Vj", "connection"), undefined);
        assert.equal(hostKeyProblem(undefined, "connection"), undefined);
    });

    it("refuses an ssh-rsa pin known only later: the command is never registered", async () => {
        const rsa = pulumi.output("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7");
        const host = new FalcoHost("rsa-later", args({}, { connection: { ...args().connection, hostKey: rsa } }));
        await assert.rejects((host.converge.urn as unknown as { promise(): Promise<string> }).promise(), /connection\.hostKey is an ssh-rsa key/);
    });

    it("hosts with the same settings, hostname and secret get the same bundle; another secret changes only the secret parts", async () => {
        const withUrl = (name: string, url: string) =>
            new FalcoHost(name, args({ outputs: { http: { enabled: true } } }, { hostname: "shared", secrets: { httpOutputUrl: pulumi.secret(url) } }));
        const hosts = [withUrl("same-a", WEBHOOK), withUrl("same-b", WEBHOOK), withUrl("other", `${WEBHOOK}-rotated`)];
        await Promise.all(hosts.map((h) => outputOf(h.falcoVersion)));
        const [a, b, other] = ["same-a", "same-b", "other"].map(commandOf);
        assert.equal(a.inputs.stdin, b.inputs.stdin);
        assert.notEqual(other.inputs.stdin, a.inputs.stdin);
        const hashIn = (c: { inputs: any }) => /--bundle ([0-9a-f]{64})/.exec(c.inputs.update)![1];
        assert.equal(hashIn(other), hashIn(a), "the public hash does not depend on the secret");
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
        assert.equal(cmd.inputs.triggers, undefined, "no digest of the secret anywhere in the inputs");
    });

    it("gives identical inputs for identical settings and hostname (no diff on a second up)", async () => {
        const a = new FalcoHost("same-a", args({ rules: { custom: { mine: "- list: my_bins\n  items: [ls]\n" } } }, { hostname: "web-1" }));
        const b = new FalcoHost("same-b", args({ rules: { custom: { mine: "- list: my_bins\n  items: [ls]\n" } } }, { hostname: "web-1" }));
        await Promise.all([outputOf(a.falcoVersion), outputOf(b.falcoVersion)]);
        // Apart from the connection and the owner (another name is another owner).
        const strip = (i: Record<string, unknown>) => {
            const { connection: _c, ...rest } = i;
            return JSON.parse(JSON.stringify(rest).replace(/--owner [0-9a-f]{64}/g, "--owner X"));
        };
        assert.deepEqual(strip(commandOf("same-a").inputs), strip(commandOf("same-b").inputs));
    });

    it("a rule change changes the bundle and its hash in the command strings, nothing else", async () => {
        const a = new FalcoHost("rule-a", args({ rules: { custom: { mine: "- list: my_bins\n  items: [ls]\n" } } }));
        const b = new FalcoHost("rule-b", args({ rules: { custom: { mine: "- list: my_bins\n  items: [ls, cat]\n" } } }));
        await Promise.all([outputOf(a.falcoVersion), outputOf(b.falcoVersion)]);
        const same = (i: Record<string, unknown>) => JSON.parse(JSON.stringify(i).replace(/--owner [0-9a-f]{64}/g, "--owner X"));
        const ia = same(commandOf("rule-a").inputs);
        const ib = same(commandOf("rule-b").inputs);
        const changed = Object.keys({ ...ia, ...ib }).filter((k) => JSON.stringify(ia[k]) !== JSON.stringify(ib[k]));
        assert.deepEqual(changed.sort(), ["create", "delete", "stdin", "update"]);
        const [ha, hb] = [await outputOf(a.bundleHash), await outputOf(b.bundleHash)];
        assert.notEqual(ha, hb);
        assert.ok(ia.update.endsWith(`--bundle ${ha}`) && ib.update.endsWith(`--bundle ${hb}`));
    });

    it("its Falco reports the resource name unless told another hostname: only the unit's FALCO_HOSTNAME line differs", async () => {
        const named = new FalcoHost("edge-1", args());
        const mapped = new FalcoHost("edge-2", args({}, { hostname: "edge-2.eu-west-1.example.net" }));
        await Promise.all([outputOf(named.falcoVersion), outputOf(mapped.falcoVersion)]);
        const [a, b] = await Promise.all(["edge-1", "edge-2"].map((n) => decodePayload(commandOf(n).inputs.stdin as string)));
        const env = (p: DecodedPayload) => unitLines(p.content(UNIT_PATH)!).filter((l) => l.key === "Environment").map((l) => l.value);
        assert.deepEqual(env(a), ['"FALCO_HOSTNAME=edge-1"']);
        assert.deepEqual(env(b), ['"FALCO_HOSTNAME=edge-2.eu-west-1.example.net"']);
        const differing = a.manifest.filter((r) => !r.path.startsWith("params/") && a.content(r.path, r.group) !== b.content(r.path, r.group)).map((r) => r.path);
        assert.deepEqual(differing, [UNIT_PATH]);
        assert.notEqual(await outputOf(named.bundleHash), await outputOf(mapped.bundleHash), "a new name is a new bundle: the host converges");
    });

    it("refuses, before declaring anything, a hostname Falco should not report, or a resource name that cannot be one", () => {
        const before = mocks.resources.length;
        assert.throws(() => new FalcoHost("web-1", args({}, { hostname: "web 1" })), /invalid hostname \(FalcoHost web-1\): "web 1" is not a hostname/);
        assert.throws(() => new FalcoHost("db 1", args()), /invalid hostname \(FalcoHost db 1\): it defaults to the resource name, and "db 1" is not a hostname.*set hostname/);
        assert.equal(mocks.resources.length, before, "nothing registered");
        assert.doesNotThrow(() => new FalcoHost("db 2", args({}, { hostname: "db_2" })));
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
