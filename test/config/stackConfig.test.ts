/**
 * The stack config parser: defaults, the merge of node overrides, and errors that name the full key and the fix,
 * all of them at once.
 */
import * as assert from "assert";
import * as fc from "fast-check";
import {
    mergeSettings,
    objectConfigSource,
    parseStackConfig,
    SECRET_KEYS,
    StackConfig,
    StackConfigError,
} from "../../components/config";
import { TEST_K8SAUDIT_DIGESTS } from "../support/k8sAuditDigests";

const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICGs/MbsDJVGgX3toQvta8TevR8slzykb4it4nBZjqrW";

function parse(values: Record<string, unknown>, secrets: string[] = [], files: Record<string, string> = {}): StackConfig {
    const all: Record<string, unknown> = { ...values };
    for (const s of secrets) all[`falco-nodes:${s}`] = "secret-value";
    return parseStackConfig(objectConfigSource(all, secrets.map((s) => `falco-nodes:${s}`)), { readFile: (p) => files[p] });
}

function problems(values: Record<string, unknown>, secrets: string[] = [], files: Record<string, string> = {}): { key: string; message: string }[] {
    try {
        parse(values, secrets, files);
    } catch (e) {
        assert.ok(e instanceof StackConfigError, `expected a StackConfigError, got ${(e as Error).message}`);
        return e.problems;
    }
    assert.fail("expected the config to be rejected");
}

const existing = (name: string, extra: Record<string, unknown> = {}) => ({
    name,
    kind: "existing",
    ssh: { host: `${name}.example.net`, user: "deploy", hostKey: HOST_KEY },
    ...extra,
});
const awsDefaults = { subnetId: "subnet-0a1b2c3d4e5f60718", sshSourceSecurityGroupIds: ["sg-0b1c2d3e4f5a60718"] };

describe("stack config: parseStackConfig", () => {
    it("an empty stack is valid: no nodes, no cluster, nothing secret", () => {
        const cfg = parse({});
        assert.deepStrictEqual(cfg.nodes, []);
        assert.strictEqual(cfg.cluster, undefined);
        assert.ok(SECRET_KEYS.every((k) => cfg.secrets[k] === false));
    });

    it("reads JSON-encoded values the way the CLI passes them", () => {
        const cfg = parse({ "falco-nodes:nodes": JSON.stringify([existing("web-1")]), "falco-nodes:ssh": JSON.stringify({ user: "deploy" }) }, ["sshPrivateKey"]);
        assert.strictEqual(cfg.nodes[0].name, "web-1");
        assert.strictEqual(cfg.ssh.user, "deploy");
    });

    it("ignores other namespaces and treats '' (Pulumi.yaml's secret default) as unset", () => {
        const cfg = parse({ "aws:region": "eu-west-1", "falco-nodes:httpOutputUrl": "" });
        assert.strictEqual(cfg.secrets.httpOutputUrl, false);
    });

    it("reads only full keys, as the program's Config does (the CLI namespaces bare stack-file keys)", () => {
        const cfg = parseStackConfig(objectConfigSource({ nodes: [{ name: "x" }], sshPrivateKey: "k" }, ["sshPrivateKey"]));
        assert.deepStrictEqual(cfg.nodes, []);
        assert.strictEqual(cfg.secrets.sshPrivateKey, false);
    });

    it("resolves an existing node: fleet user and port, pinned key, bastion by default", () => {
        const cfg = parse(
            {
                "falco-nodes:ssh": { user: "deploy", port: 2222, bastion: { host: "bastion.example.net", user: "jump", hostKey: HOST_KEY } },
                "falco-nodes:nodes": [{ name: "web-1", kind: "existing", ssh: { host: "10.0.0.5", hostKey: HOST_KEY } }],
            },
            ["sshPrivateKey"],
        );
        const n = cfg.nodes[0];
        assert.strictEqual(n.kind, "existing");
        if (n.kind !== "existing") return;
        assert.deepStrictEqual(n.ssh, { host: "10.0.0.5", port: 2222, user: "deploy", hostKey: HOST_KEY });
        assert.strictEqual(n.viaBastion, true);
        assert.strictEqual(n.resolved.falcoVersion, "0.44.1");
    });

    it("merges node overrides onto the fleet: maps key by key, lists replace", () => {
        const cfg = parse(
            {
                "falco-nodes:falco": {
                    driver: "auto",
                    outputs: { minimumPriority: "warning", file: { rotateKeep: 3 } },
                    rules: { builtin: ["self-protection", "app-config-example"], custom: { fleet: "- list: a\n  items: [x]\n" } },
                },
                "falco-nodes:nodes": [
                    existing("web-1"),
                    existing("db-1", {
                        falco: {
                            driver: "kmod",
                            outputs: { file: { rotateSizeMiB: 10 } },
                            rules: { builtin: [], custom: { db: "- list: b\n  items: [y]\n" } },
                        },
                    }),
                ],
            },
            ["sshPrivateKey"],
        );
        const [web, db] = cfg.nodes;
        assert.strictEqual(web.resolved.driver, "auto");
        assert.deepStrictEqual(web.resolved.rules.builtin, ["self-protection", "app-config-example"]);
        assert.strictEqual(db.resolved.driver, "kmod");
        assert.strictEqual(db.resolved.outputs.minimumPriority, "warning", "untouched fleet keys stay");
        assert.deepStrictEqual(db.resolved.outputs.file, { enabled: true, path: "/var/log/falco/events.json", rotateSizeMiB: 10, rotateKeep: 3 });
        assert.deepStrictEqual(db.resolved.rules.builtin, [], "a list replaces the fleet's");
        assert.deepStrictEqual(Object.keys(db.resolved.rules.custom).sort(), ["db", "fleet"], "rule files merge by name");
    });

    it("adds ruleFiles to every node's rules, named after the file", () => {
        const text = "- rule: r\n  desc: d\n  condition: evt.type = open\n  output: o\n  priority: WARNING\n";
        const cfg = parse({ "falco-nodes:ruleFiles": ["rules/site.yaml"], "falco-nodes:nodes": [existing("a"), existing("b")] }, ["sshPrivateKey"], {
            "rules/site.yaml": text,
        });
        for (const n of cfg.nodes) assert.strictEqual(n.resolved.rules.custom.site, text);
    });

    it("resolves an AWS node: fleet defaults under node overrides, bastion from the fleet", () => {
        const cfg = parse({
            "falco-nodes:aws": { ...awsDefaults, instanceType: "t3.small", tags: { team: "sec" } },
            "falco-nodes:ssh": { bastion: { host: "bastion.example.net", user: "jump", hostKey: HOST_KEY } },
            "falco-nodes:nodes": [{ name: "a", kind: "aws", aws: { subnetId: "subnet-0c1d2e3f4a5b60718", viaBastion: false } }],
        }, ["bastionPrivateKey"]);
        const n = cfg.nodes[0];
        assert.strictEqual(n.kind, "aws");
        if (n.kind !== "aws") return;
        assert.strictEqual(n.aws.subnetId, "subnet-0c1d2e3f4a5b60718");
        assert.strictEqual(n.aws.instanceType, "t3.small");
        assert.deepStrictEqual(n.aws.tags, { team: "sec" });
        assert.strictEqual(n.viaBastion, false);
    });

    it("passes the Kubernetes audit access settings through to the AWS node", () => {
        const cfg = parse({
            "falco-nodes:aws": { ...awsDefaults, k8sAuditSourceSecurityGroupIds: ["sg-0123456789abcdef0"] },
            "falco-nodes:falco": { k8sAudit: { enabled: true, pluginDigests: TEST_K8SAUDIT_DIGESTS, variant: "eks", eks: { clusterName: "prod", region: "eu-west-1" } } },
            "falco-nodes:nodes": [{ name: "a", kind: "aws", aws: { k8sAuditEksLogAccess: true } }],
        });
        const n = cfg.nodes[0];
        assert.ok(n.kind === "aws");
        assert.strictEqual(n.aws.k8sAuditEksLogAccess, true);
        assert.deepStrictEqual(n.aws.k8sAuditSourceSecurityGroupIds, ["sg-0123456789abcdef0"]);
        assert.deepStrictEqual(
            problems({ "falco-nodes:aws": { ...awsDefaults, k8sAuditSourceSecurityGroupIds: ["web"] }, "falco-nodes:nodes": [] }).map((p) => p.key),
            ["falco-nodes:aws.k8sAuditSourceSecurityGroupIds[0]"],
        );
    });

    it("an AWS node's package source follows its OS, as AwsFalcoNode installs it", () => {
        const cfg = parse({
            "falco-nodes:aws": awsDefaults,
            "falco-nodes:nodes": [
                { name: "ubuntu", kind: "aws" },
                { name: "amazon", kind: "aws", aws: { os: "al2023" } },
                { name: "pinned", kind: "aws", aws: { os: "al2023" }, falco: { install: { source: "preinstalled" } } },
            ],
        });
        assert.deepStrictEqual(cfg.nodes.map((n) => n.resolved.install.source), ["apt", "rpm", "preinstalled"]);
        assert.strictEqual(cfg.nodes[1].falco.install, undefined, "the user's settings stay as written");
    });

    it("passes the HTTP output secret only to nodes whose HTTP output is on", () => {
        const cfg = parse(
            {
                "falco-nodes:nodes": [existing("quiet"), existing("loud", { falco: { outputs: { http: { enabled: true } } } })],
            },
            ["sshPrivateKey", "httpOutputUrl"],
        );
        assert.deepStrictEqual(cfg.nodes.map((n) => [n.name, n.usesHttpOutputUrl]), [["quiet", false], ["loud", true]]);
    });

    it("enables the cluster with the fleet's rules unless it sets its own", () => {
        const cfg = parse(
            {
                "falco-nodes:falco": { rules: { builtin: ["app-config-example"] } },
                "falco-nodes:cluster": { enabled: true, protection: { exemptGroups: ["falco-nodes:deployers"] } },
            },
            ["kubeconfig"],
        );
        assert.deepStrictEqual(cfg.cluster?.rules, { builtin: ["app-config-example"] });
        assert.strictEqual((cfg.cluster as Record<string, unknown>).enabled, undefined, "enabled is ours, not a chart setting");
    });

    describe("errors", () => {
        it("reports every problem at once, each with the full key", () => {
            const p = problems({
                "falco-nodes:nodes": [
                    { name: "web-1", kind: "existing", ssh: { user: "deploy", hostKey: HOST_KEY } },
                    { name: "web-1", kind: "existing", ssh: { host: "10.0.0.2", user: "deploy", hostKey: HOST_KEY }, falco: { driver: "ebpf" } },
                ],
                "falco-nodes:falco": { falcoVersion: "latest" },
            });
            const keys = p.map((x) => x.key);
            for (const k of [
                "falco-nodes:falco.falcoVersion",
                "falco-nodes:nodes[0].ssh.host",
                "falco-nodes:nodes[1].name",
                "falco-nodes:nodes[1].falco.driver",
                "falco-nodes:sshPrivateKey",
            ])
                assert.ok(keys.includes(k), `missing ${k} in ${JSON.stringify(keys)}`);
            assert.ok(!keys.includes("falco-nodes:nodes[0].falco.falcoVersion"), "a fleet problem is not repeated per node");
        });

        it("names the fix, and the error message lists every key", () => {
            try {
                parse({ "falco-nodes:nodes": [{ name: "x", kind: "existing", ssh: { host: "h", user: "deploy" } }] }, ["sshPrivateKey"]);
                assert.fail("expected an error");
            } catch (e) {
                const msg = (e as Error).message;
                assert.match(msg, /falco-nodes:nodes\[0\]\.ssh\.hostKey: required: pin the server's host key/);
                assert.match(msg, /allowUnpinnedHostKeys/);
            }
        });

        it("requires a kind, and says what each means", () => {
            const p = problems({ "falco-nodes:nodes": [{ name: "x" }] });
            assert.deepStrictEqual(p.map((x) => x.key), ["falco-nodes:nodes[0].kind"]);
            assert.match(p[0].message, /'aws'.*'existing'/);
        });

        it("rejects unknown keys at every level", () => {
            const p = problems({ "falco-nodes:nodez": [], "falco-nodes:ssh": { usr: "x" }, "falco-nodes:falco": { outputs: { jsn: true } } });
            const keys = p.map((x) => x.key);
            assert.ok(keys.includes("falco-nodes:nodez"));
            assert.ok(keys.includes("falco-nodes:ssh.usr"));
            assert.ok(keys.includes("falco-nodes:falco.outputs.jsn"), `a slip in ssh does not hide one in falco: ${JSON.stringify(keys)}`);
        });

        it("rejects a secret stored in plain text and says how to set it encrypted", () => {
            const p = problems({ "falco-nodes:kubeconfig": "apiVersion: v1" });
            assert.strictEqual(p[0].key, "falco-nodes:kubeconfig");
            assert.match(p[0].message, /plain text.*pulumi config rm falco-nodes:kubeconfig.*--secret/);
        });

        it("refuses root logins the sshd hardening would lock out", () => {
            const p = problems({ "falco-nodes:nodes": [existing("x", { ssh: { host: "h", user: "root", hostKey: HOST_KEY } })] }, ["sshPrivateKey"]);
            assert.deepStrictEqual(p.map((x) => x.key), ["falco-nodes:nodes[0].ssh.user"]);
            assert.match(p[0].message, /PermitRootLogin/);
            // ...unless root login is explicitly kept.
            parse({ "falco-nodes:nodes": [existing("x", { ssh: { host: "h", user: "root", hostKey: HOST_KEY }, falco: { hardening: { sshd: { permitRootLogin: true } } } })] }, ["sshPrivateKey"]);
        });

        it("AWS nodes: subnet, a way in for SSH, no world-open SSH", () => {
            const p = problems({ "falco-nodes:nodes": [{ name: "a", kind: "aws" }, { name: "b", kind: "aws", aws: { ...awsDefaults, sshCidrs: ["0.0.0.0/0"] } }] });
            const keys = p.map((x) => x.key);
            assert.ok(keys.includes("falco-nodes:nodes[0].aws.subnetId"));
            assert.ok(keys.includes("falco-nodes:nodes[0].aws.sshSourceSecurityGroupIds"));
            const world = p.find((x) => x.key === "falco-nodes:nodes[1].aws.sshCidrs");
            assert.ok(world, JSON.stringify(keys));
            assert.match(world.message, /whole internet/);
        });

        it("points at the fleet key when the bad value came from the fleet", () => {
            const p = problems({ "falco-nodes:aws": { ...awsDefaults, sshCidrs: ["10.0.0.0/33"] }, "falco-nodes:nodes": [{ name: "a", kind: "aws" }] });
            assert.deepStrictEqual(p.map((x) => x.key), ["falco-nodes:aws.sshCidrs[0]"]);
        });

        it("needs the secrets the configuration implies", () => {
            const p = problems({
                "falco-nodes:nodes": [existing("a", { falco: { outputs: { http: { enabled: true } } } })],
                "falco-nodes:cluster": { enabled: true, sidekick: { slack: {} }, protection: { exemptGroups: ["deployers"] } },
            });
            const keys = p.map((x) => x.key);
            for (const k of ["falco-nodes:sshPrivateKey", "falco-nodes:kubeconfig", "falco-nodes:nodes[0].falco.outputs.http"])
                assert.ok(keys.includes(k), `missing ${k} in ${JSON.stringify(keys)}`);
            assert.ok(p.some((x) => /slackWebhookUrl/.test(x.message)), "the Slack webhook secret is asked for");
            assert.ok(p.every((x) => !/secret/.test(x.message) || /pulumi config set --secret|Pulumi secret|secret falco-nodes:/.test(x.message)), "secret problems say how to set them");
        });

        it("names missing and misnamed rule files", () => {
            const p = problems({ "falco-nodes:ruleFiles": ["rules/missing.yaml", "rules/Bad Name.yaml", "../outside.yaml"] });
            assert.deepStrictEqual(p.map((x) => x.key), ["falco-nodes:ruleFiles[0]", "falco-nodes:ruleFiles[1]", "falco-nodes:ruleFiles[2]"]);
            assert.match(p[0].message, /not found/);
        });

        it("cluster problems carry the cluster prefix; its secrets their own top-level key", () => {
            const shape = problems({ "falco-nodes:cluster": { enabled: true, namespace: "Bad_NS" } }, ["kubeconfig"]);
            assert.deepStrictEqual(shape.map((x) => x.key), ["falco-nodes:cluster.namespace"]);
            const p = problems({ "falco-nodes:cluster": { enabled: true, protection: { exemptGroups: ["system:masters"] } } }, ["kubeconfig", "webUiPassword"]);
            const keys = p.map((x) => x.key);
            assert.ok(keys.includes("falco-nodes:cluster.protection.exemptGroups"), JSON.stringify(keys));
            assert.ok(keys.includes("falco-nodes:webUiPassword"), `the unused secret is named by its stack key: ${JSON.stringify(keys)}`);
        });
    });
});

describe("stack config: mergeSettings", () => {
    const json = fc.jsonValue();
    // Compare as data (JSON), the way a stack file's values are: prototypes are not part of a setting.
    const same = (a: unknown, b: unknown) => assert.deepStrictEqual(JSON.parse(JSON.stringify(a) ?? "null"), JSON.parse(JSON.stringify(b) ?? "null"));
    it("an empty override changes nothing; undefined never overrides", () => {
        fc.assert(fc.property(json, (base) => same(mergeSettings(base, undefined), base)));
        fc.assert(fc.property(fc.dictionary(fc.string(), json), (base) => same(mergeSettings(base, {}), base)));
    });
    it("a key named __proto__ stays data and pollutes nothing", () => {
        const over = JSON.parse('{"__proto__": {"polluted": true}, "a": 1}');
        const out = mergeSettings<Record<string, unknown>>({}, over);
        assert.deepStrictEqual(Object.getPrototypeOf(out), Object.prototype);
        assert.deepStrictEqual(Object.getOwnPropertyDescriptor(out, "__proto__")?.value, { polluted: true });
        assert.strictEqual(({} as Record<string, unknown>).polluted, undefined);
    });
    it("every key of the override wins; keys it does not name keep the base's value", () => {
        fc.assert(
            fc.property(fc.dictionary(fc.string(), json), fc.dictionary(fc.string(), json), (base, over) => {
                const out = mergeSettings(base, over) as Record<string, unknown>;
                const own = (o: object, k: string) => Object.getOwnPropertyDescriptor(o, k)?.value;
                for (const [k, v] of Object.entries(over)) {
                    const isMap = (x: unknown) => typeof x === "object" && x !== null && !Array.isArray(x);
                    if (!(isMap(v) && isMap(own(base, k)))) same(own(out, k), v);
                }
                for (const k of Object.keys(base)) if (!Object.hasOwn(over, k)) same(own(out, k), own(base, k));
            }),
        );
    });
    it("lists replace, never concatenate; inputs are not modified", () => {
        const base = { a: [1, 2], m: { x: 1, y: { z: 1 } } };
        const over = { a: [3], m: { y: { w: 2 } } };
        const copy = JSON.parse(JSON.stringify(base));
        assert.deepStrictEqual(mergeSettings(base, over), { a: [3], m: { x: 1, y: { z: 1, w: 2 } } });
        assert.deepStrictEqual(base, copy);
    });
});
