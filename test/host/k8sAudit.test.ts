import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { FileGroup, renderBundle } from "../../components/host/bundle";
import { renderFalcoConfig } from "../../components/host/falcoConfig";
import {
    K8SAUDIT_ENDPOINT,
    K8SAUDIT_RULES_FILE,
    allowedSourcesByFamily,
    k8sAuditArtifacts,
    k8sAuditPlugins,
    renderFirewallRules,
    renderFirewallUnit,
    webhookOpenParams,
} from "../../components/host/k8sAudit";
import {
    ARTIFACTS_DIR,
    FALCO_DEFAULT_RULES,
    FALCO_RULES_D,
    FIREWALL_RULES_PATH,
    FIREWALL_TABLE,
    FIREWALL_UNIT_NAME,
    FIREWALL_UNIT_PATH,
    UNIT_NAME,
} from "../../components/host/paths";
import {
    DEFAULT_K8SAUDIT_PLUGIN_VERSIONS,
    HostSettings,
    HostSettingsError,
    K8sAuditPluginDigests,
    resolveHostSettings,
} from "../../components/host/settings";
import { K8S_AUDIT_TAMPER_RULE_FILE, renderRuleFiles } from "../../components/rules";
import { configSchemaErrors, mergeConfigAppend } from "../support/falcoReference";
import { tempDir, unitLines, verifyUnit, writeUnitTree } from "../support/systemd";
import { TEST_K8SAUDIT_DIGESTS } from "../support/k8sAuditDigests";

type Config = Record<string, any>;

const WEBHOOK: HostSettings = { k8sAudit: { enabled: true, pluginDigests: TEST_K8SAUDIT_DIGESTS, allowedSources: ["10.0.0.10/32", "10.0.0.0/24", "fd00::10/128"] } };
const EKS: HostSettings = {
    k8sAudit: { enabled: true, pluginDigests: TEST_K8SAUDIT_DIGESTS, variant: "eks", eks: { clusterName: "prod-1", region: "eu-west-1" } },
};
/** The package's drop-in, config.d/falco.container_plugin.yaml, as Falco merges it over falco.yaml. */
const PACKAGE_DROPIN = { load_plugins: ["container"] };

function keysOf(input: HostSettings): string[] {
    try {
        resolveHostSettings(input);
    } catch (e) {
        assert.ok(e instanceof HostSettingsError, String(e));
        return e.problems.map((p) => p.key);
    }
    assert.fail("expected the settings to be rejected");
}

function config(settings: HostSettings): Config {
    const s = resolveHostSettings(settings);
    return YAML.parse(renderFalcoConfig(s, renderRuleFiles(s).map((f) => f.fileName)));
}

describe("k8sAudit settings", () => {
    it("is off by default and changes nothing then", () => {
        const s = resolveHostSettings();
        assert.strictEqual(s.k8sAudit.enabled, false);
        assert.deepStrictEqual(k8sAuditArtifacts(s), []);
        assert.deepStrictEqual(k8sAuditPlugins(s), { entries: [], load: [] });
        assert.ok(!renderRuleFiles(s).some((f) => f.fileName === K8S_AUDIT_TAMPER_RULE_FILE));
    });

    it("fills in the defaults: webhook on 9765 on all addresses, firewalled, pinned versions, both rule sets", () => {
        const k = resolveHostSettings(WEBHOOK).k8sAudit;
        assert.strictEqual(k.variant, "webhook");
        assert.strictEqual(k.port, 9765);
        assert.strictEqual(k.listenAddress, "");
        assert.strictEqual(k.firewall, true);
        assert.strictEqual(k.upstreamRules, true);
        assert.strictEqual(k.tamperRules, true);
        assert.strictEqual(k.falcoNamespace, "falco");
        assert.deepStrictEqual(k.pluginVersions, DEFAULT_K8SAUDIT_PLUGIN_VERSIONS);
        for (const v of Object.values(k.pluginVersions)) assert.match(v, /^[0-9]+\.[0-9]+\.[0-9]+$/);
    });

    it("requires the API servers' addresses for the webhook, and refuses a /0", () => {
        assert.deepStrictEqual(keysOf({ k8sAudit: { enabled: true, pluginDigests: TEST_K8SAUDIT_DIGESTS } }), ["k8sAudit.allowedSources"]);
        assert.deepStrictEqual(keysOf({ k8sAudit: { enabled: true, pluginDigests: TEST_K8SAUDIT_DIGESTS, allowedSources: ["0.0.0.0/0"] } }), ["k8sAudit.allowedSources"]);
        assert.deepStrictEqual(keysOf({ k8sAudit: { enabled: true, pluginDigests: TEST_K8SAUDIT_DIGESTS, allowedSources: ["::/0"] } }), ["k8sAudit.allowedSources"]);
        assert.deepStrictEqual(keysOf({ k8sAudit: { enabled: true, pluginDigests: TEST_K8SAUDIT_DIGESTS, allowedSources: ["10.0.0.1"] } }), ["k8sAudit.allowedSources[0]"]);
        assert.deepStrictEqual(keysOf({ k8sAudit: { enabled: true, pluginDigests: TEST_K8SAUDIT_DIGESTS, allowedSources: ["10.0.0.1/32; flush ruleset"] } }), ["k8sAudit.allowedSources[0]"]);
    });

    it("requires cluster name and region for eks, and rejects webhook-only keys there", () => {
        assert.deepStrictEqual(keysOf({ k8sAudit: { enabled: true, pluginDigests: TEST_K8SAUDIT_DIGESTS, variant: "eks" } }).sort(), ["k8sAudit.eks.clusterName", "k8sAudit.eks.region"]);
        assert.deepStrictEqual(keysOf({ k8sAudit: { ...EKS.k8sAudit, port: 9999 } }), ["k8sAudit.port"]);
        assert.deepStrictEqual(keysOf({ k8sAudit: { ...EKS.k8sAudit, eks: { clusterName: "a b", region: "eu-west-1" } } }), ["k8sAudit.eks.clusterName"]);
        assert.deepStrictEqual(keysOf({ k8sAudit: { ...WEBHOOK.k8sAudit, eks: { clusterName: "x" } } }), ["k8sAudit.eks"]);
    });

    it("holds everything that reaches a file or the script to an allowlist, naming the key", () => {
        const bad: [HostSettings["k8sAudit"], string][] = [
            [{ pluginVersions: { k8saudit: "latest" } }, "k8sAudit.pluginVersions.k8saudit"],
            [{ pluginVersions: { json: "0.7" } }, "k8sAudit.pluginVersions.json"],
            [{ registry: "https://ghcr.io/x" }, "k8sAudit.registry"],
            [{ registry: "ghcr.io/x;id" }, "k8sAudit.registry"],
            [{ listenAddress: "0.0.0.0:80" }, "k8sAudit.listenAddress"],
            [{ listenAddress: "[::1]" }, "k8sAudit.listenAddress"],
            [{ listenAddress: "fe80::1%eth0" }, "k8sAudit.listenAddress"],
            [{ port: 443 }, "k8sAudit.port"],
            [{ tls: { certificatePath: "relative.pem" } }, "k8sAudit.tls.certificatePath"],
            [{ tls: { certificatePath: "/etc/x/../y.pem" } }, "k8sAudit.tls.certificatePath"],
            [{ falcoNamespace: "Falco" }, "k8sAudit.falcoNamespace"],
            [{ trustedUsers: ["alice\"; x"] }, "k8sAudit.trustedUsers[0]"],
            [{ bogus: true } as never, "k8sAudit.bogus"],
        ];
        for (const [k, key] of bad) assert.deepStrictEqual(keysOf({ k8sAudit: { ...WEBHOOK.k8sAudit, ...k } }), [key], JSON.stringify(k));
    });

    it("requires the digest of exactly the artifacts converge installs, and holds it to sha256:<64 hex>", () => {
        const { k8saudit, json, rules } = TEST_K8SAUDIT_DIGESTS;
        const problemKeys = (input: HostSettings) => {
            try {
                resolveHostSettings(input);
                return [];
            } catch {
                return keysOf(input);
            }
        };
        const webhook = (pluginDigests: K8sAuditPluginDigests, more: HostSettings["k8sAudit"] = {}) =>
            problemKeys({ k8sAudit: { ...WEBHOOK.k8sAudit, pluginDigests, ...more } });
        assert.deepStrictEqual(webhook({}), ["k8sAudit.pluginDigests.k8saudit", "k8sAudit.pluginDigests.json", "k8sAudit.pluginDigests.rules"]);
        assert.deepStrictEqual(webhook({ k8saudit, json }), ["k8sAudit.pluginDigests.rules"]);
        assert.deepStrictEqual(webhook({ k8saudit, json }, { upstreamRules: false }), []);
        assert.deepStrictEqual(keysOf({ k8sAudit: { ...EKS.k8sAudit, pluginDigests: { json, rules } } }), ["k8sAudit.pluginDigests.k8sauditEks"]);
        assert.deepStrictEqual(problemKeys({ k8sAudit: { enabled: false } }), [], "nothing is needed while k8sAudit is off");
        for (const bad of [k8saudit.toUpperCase(), k8saudit.slice(0, -1), k8saudit.replace("sha256", "sha512"), k8saudit.slice(7), `${k8saudit}\nx`])
            assert.deepStrictEqual(webhook({ k8saudit: bad, json, rules }), ["k8sAudit.pluginDigests.k8saudit"], bad);
        assert.throws(() => resolveHostSettings({ k8sAudit: { ...WEBHOOK.k8sAudit, pluginDigests: { json, rules } } }), (e: Error) => {
            assert.match(e.message, /invalid host setting k8sAudit\.pluginDigests\.k8saudit: required: the sha256 digest of plugin\/k8saudit:0\.18\.0.*oras resolve ghcr\.io\/falcosecurity\/plugins\/plugin\/k8saudit:0\.18\.0/);
            return true;
        });
    });

    it("refuses a configuration in which no rule would read the audit events", () => {
        assert.deepStrictEqual(keysOf({ k8sAudit: { ...WEBHOOK.k8sAudit, upstreamRules: false, tamperRules: false } }), ["k8sAudit.tamperRules"]);
    });
});

describe("k8sAudit artifacts and falco.yaml", () => {
    it("pins every artifact by digest: a mirror's by full reference, falcosecurity's by index name", () => {
        const D = TEST_K8SAUDIT_DIGESTS;
        const s = resolveHostSettings({ k8sAudit: { ...WEBHOOK.k8sAudit, registry: "mirror.example.com:5000/falco", pluginVersions: { json: "0.7.2" } } });
        const a = k8sAuditArtifacts(s);
        assert.deepStrictEqual(a.map((x) => x.ref), [
            `mirror.example.com:5000/falco/plugin/k8saudit:${DEFAULT_K8SAUDIT_PLUGIN_VERSIONS.k8saudit}@${D.k8saudit}`,
            `mirror.example.com:5000/falco/plugin/json:0.7.2@${D.json}`,
            `mirror.example.com:5000/falco/ruleset/k8saudit:${DEFAULT_K8SAUDIT_PLUGIN_VERSIONS.rules}@${D.rules}`,
        ]);
        // falcoctl looks an index name up in falcosecurity's index (and verifies its signature from there) only
        // in the `name@digest` form.
        const online = k8sAuditArtifacts(resolveHostSettings(WEBHOOK)).map((x) => x.ref);
        assert.deepStrictEqual(online, [`k8saudit@${D.k8saudit}`, `json@${D.json}`, `k8saudit-rules@${D.rules}`]);
        const eks = k8sAuditArtifacts(resolveHostSettings(EKS)).map((x) => x.ref);
        assert.deepStrictEqual(eks, [`k8saudit-eks@${D.k8sauditEks}`, `json@${D.json}`, `k8saudit-rules@${D.rules}`]);
        assert.deepStrictEqual(a.map((x) => x.path), [
            `${ARTIFACTS_DIR}/k8saudit-${DEFAULT_K8SAUDIT_PLUGIN_VERSIONS.k8saudit}/libk8saudit.so`,
            `${ARTIFACTS_DIR}/json-0.7.2/libjson.so`,
            `${ARTIFACTS_DIR}/k8saudit-rules-${DEFAULT_K8SAUDIT_PLUGIN_VERSIONS.rules}/${K8SAUDIT_RULES_FILE}`,
        ]);
    });

    for (const [name, settings] of [
        ["webhook", WEBHOOK],
        ["webhook with TLS on one address", { k8sAudit: { ...WEBHOOK.k8sAudit, listenAddress: "10.0.0.5", tls: { certificatePath: "/etc/falco/k8saudit.pem" } } }],
        ["eks", EKS],
    ] as [string, HostSettings][]) {
        it(`validates against Falco's config schema, merged with the package's drop-in (${name})`, () => {
            const main = config(settings);
            assert.deepStrictEqual(configSchemaErrors(main), []);
            assert.deepStrictEqual(configSchemaErrors(mergeConfigAppend(main, PACKAGE_DROPIN)), []);
        });
    }

    it("loads the source plugin and json, each defined once, with container appended by the package", () => {
        const merged = mergeConfigAppend(config(WEBHOOK), PACKAGE_DROPIN);
        assert.deepStrictEqual(merged.load_plugins, ["k8saudit", "json", "container"]);
        const names = (merged.plugins as Config[]).map((p) => p.name);
        assert.deepStrictEqual([...names].sort(), ["container", "json", "k8saudit"]);
        for (const loaded of merged.load_plugins as string[]) assert.ok(names.includes(loaded), `${loaded} has a plugins entry`);
        const s = resolveHostSettings(WEBHOOK);
        for (const p of merged.plugins as Config[])
            if (p.name !== "container") assert.ok(k8sAuditArtifacts(s).some((a) => a.path === p.library_path), p.library_path);
    });

    it("lists our files first, then the package rules and upstream's k8saudit rules (ours win with rule_matching: first)", () => {
        const s = resolveHostSettings(WEBHOOK);
        const names = renderRuleFiles(s).map((f) => f.fileName);
        assert.ok(names.includes(K8S_AUDIT_TAMPER_RULE_FILE));
        const upstream = k8sAuditArtifacts(s).find((a) => a.kind === "rulesfile")!.path;
        assert.deepStrictEqual(config(WEBHOOK).rules_files, [...names.map((n) => `${FALCO_RULES_D}/${n}`), FALCO_DEFAULT_RULES, upstream]);
        const without = config({ k8sAudit: { ...WEBHOOK.k8sAudit, upstreamRules: false } });
        assert.ok(!without.rules_files.includes(upstream));
    });

    it("listens on the configured address and port, https only with a certificate", () => {
        const open = (k: HostSettings["k8sAudit"]) => webhookOpenParams(resolveHostSettings({ k8sAudit: { ...WEBHOOK.k8sAudit, ...k } }));
        assert.strictEqual(open({}), `http://:9765${K8SAUDIT_ENDPOINT}`);
        assert.strictEqual(open({ listenAddress: "10.0.0.5", port: 19765 }), `http://10.0.0.5:19765${K8SAUDIT_ENDPOINT}`);
        assert.strictEqual(open({ listenAddress: "fd00::5", tls: { certificatePath: "/etc/falco/k.pem" } }), `https://[fd00::5]:9765${K8SAUDIT_ENDPOINT}`);
        const entry = k8sAuditPlugins(resolveHostSettings({ k8sAudit: { ...WEBHOOK.k8sAudit, tls: { certificatePath: "/etc/falco/k.pem" } } })).entries[0];
        assert.strictEqual((entry.init_config as Config).sslCertificate, "/etc/falco/k.pem");
        assert.strictEqual((k8sAuditPlugins(resolveHostSettings(WEBHOOK)).entries[0].init_config as Config).sslCertificate, undefined);
    });

    it("points k8saudit-eks at the cluster and region", () => {
        const [source] = k8sAuditPlugins(resolveHostSettings(EKS)).entries;
        assert.strictEqual(source.name, "k8saudit-eks");
        assert.strictEqual(source.open_params, "prod-1");
        assert.strictEqual((source.init_config as Config).region, "eu-west-1");
        assert.ok(source.library_path.endsWith("/libk8saudit-eks.so"));
    });
});

describe("k8sAudit firewall (nftables)", () => {
    const s = resolveHostSettings(WEBHOOK);
    const rules = renderFirewallRules(s);

    it("accepts the webhook port from the allowed sources only, per family, and drops the rest", () => {
        const { v4, v6 } = allowedSourcesByFamily(s);
        assert.deepStrictEqual(v4, ["10.0.0.0/24", "10.0.0.10/32"]);
        assert.deepStrictEqual(v6, ["fd00::10/128"]);
        assert.match(rules, /elements = \{ 10\.0\.0\.0\/24, 10\.0\.0\.10\/32 \}/);
        assert.match(rules, /elements = \{ fd00::10\/128 \}/);
        assert.match(rules, /tcp dport 9765 ip saddr @k8s_audit_sources_v4 accept/);
        assert.match(rules, /tcp dport 9765 ip6 saddr @k8s_audit_sources_v6 accept/);
        const lines = rules.split("\n");
        const drop = lines.findIndex((l) => /tcp dport 9765 counter drop/.test(l));
        assert.ok(drop > lines.findIndex((l) => /accept$/.test(l)), "the drop comes after the accepts");
        assert.match(rules, new RegExp(`^table inet ${FIREWALL_TABLE}\ndelete table inet ${FIREWALL_TABLE}\n`, "m"), "idempotent reload");
    });

    it("leaves out a family with no sources (an empty set is a syntax error)", () => {
        const only4 = renderFirewallRules(resolveHostSettings({ k8sAudit: { enabled: true, pluginDigests: TEST_K8SAUDIT_DIGESTS, allowedSources: ["192.0.2.1/32"] } }));
        assert.doesNotMatch(only4, /ipv6_addr|ip6 saddr/);
    });

    it("is accepted by nft -c (when nft is installed), in a network namespace of its own", function () {
        if (spawnSync("nft", ["--version"]).status !== 0) this.skip();
        const tmp = tempDir("falco-nodes-nft-");
        try {
            const file = path.join(tmp.dir, "k8s-audit.nft");
            for (const settings of [WEBHOOK, { k8sAudit: { enabled: true, pluginDigests: TEST_K8SAUDIT_DIGESTS, allowedSources: ["192.0.2.1/32"], port: 10250 } }]) {
                fs.writeFileSync(file, renderFirewallRules(resolveHostSettings(settings)));
                const r = spawnSync("unshare", ["--net", "nft", "-c", "-f", file], { encoding: "utf8" });
                if (r.status !== 0 && /Operation not permitted|Could not process rule: No such file/.test(r.stderr)) this.skip();
                assert.strictEqual(r.status, 0, r.stderr);
            }
            // And the check can fail: a broken ruleset is refused.
            fs.writeFileSync(file, rules.replace("elements = {", "elements = {{"));
            assert.notStrictEqual(spawnSync("unshare", ["--net", "nft", "-c", "-f", file]).status, 0);
        } finally {
            tmp.cleanup();
        }
    });

    it("has a boot unit that loads it before the network and before Falco, and passes systemd-analyze verify", function () {
        const unit = renderFirewallUnit();
        const lines = unitLines(unit);
        const get = (key: string) => lines.filter((l) => l.key === key).map((l) => l.value);
        assert.deepStrictEqual(get("ExecStart"), [`/usr/sbin/nft -f ${FIREWALL_RULES_PATH}`]);
        assert.ok(get("Before")[0].split(" ").includes("network-pre.target"));
        assert.ok(get("Before")[0].split(" ").includes(UNIT_NAME));
        assert.deepStrictEqual(get("ExecStop"), [], "stopping the unit must not open the port");
        if (!fs.existsSync("/usr/sbin/nft")) this.skip();
        const tmp = tempDir("falco-nodes-fwunit-");
        try {
            const r = verifyUnit(writeUnitTree(tmp.dir, FIREWALL_UNIT_NAME, unit));
            assert.ok(r.ok, r.output);
        } finally {
            tmp.cleanup();
        }
    });

    it("goes into the bundle only for the webhook variant with the firewall on", () => {
        const groups = (settings: HostSettings) =>
            renderBundle(resolveHostSettings(settings)).files.filter((f) => f.group === FileGroup.Firewall || f.group === FileGroup.FirewallUnit);
        assert.deepStrictEqual(groups(WEBHOOK).map((f) => [f.path, f.group]), [
            [FIREWALL_UNIT_PATH, FileGroup.FirewallUnit],
            [FIREWALL_RULES_PATH, FileGroup.Firewall],
        ].sort());
        assert.deepStrictEqual(groups(EKS), []);
        assert.deepStrictEqual(groups({ k8sAudit: { ...WEBHOOK.k8sAudit, firewall: false } }), []);
        assert.deepStrictEqual(groups({}), []);
    });

    it("hands converge the artifacts as checked parameters", () => {
        const b = renderBundle(resolveHostSettings(WEBHOOK));
        const artifacts = k8sAuditArtifacts(resolveHostSettings(WEBHOOK));
        assert.strictEqual(b.params.k8saudit_artifact_refs, artifacts.map((a) => a.ref).join("\n"));
        assert.strictEqual(b.params.k8saudit_artifact_files, artifacts.map((a) => `${a.dir}/${a.file}`).join("\n"));
        assert.strictEqual(b.params.artifacts_dir, ARTIFACTS_DIR);
        assert.strictEqual(renderBundle(resolveHostSettings()).params.k8saudit_artifact_refs, "");
    });
});
