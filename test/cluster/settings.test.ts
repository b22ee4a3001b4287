import { strict as assert } from "assert";
import {
    ClusterSettingsError,
    FalcoClusterSettings,
    MAX_USER_PRIORITY,
    SecretPresence,
    resolveClusterSettings,
} from "../../components/cluster/settings";

const deployer = { protection: { exemptUsers: ["system:serviceaccount:ci:pulumi"] } };

/** The keys a bad input is rejected with. */
function keysOf(input: FalcoClusterSettings, secrets: Partial<SecretPresence> = {}): string[] {
    try {
        resolveClusterSettings(input, secrets);
    } catch (e) {
        assert.ok(e instanceof ClusterSettingsError, `expected ClusterSettingsError, got ${e}`);
        return e.problems.map((p) => p.key);
    }
    assert.fail("expected the settings to be rejected");
}

describe("cluster settings", () => {
    it("defaults: pinned chart, modern eBPF, sidekick on, UI off, protection on, every node tolerated", () => {
        const s = resolveClusterSettings(deployer);
        assert.equal(s.namespace, "falco");
        assert.equal(s.releaseName, "falco");
        assert.equal(s.chartVersion, "9.1.0");
        assert.equal(s.chartRepo, "https://falcosecurity.github.io/charts");
        assert.equal(s.driver, "modern_ebpf");
        assert.equal(s.leastPrivileged, false);
        assert.equal(s.followRuleUpdates, false);
        assert.equal(s.minimumPriority, "notice");
        assert.deepEqual(s.tolerations, [{ operator: "Exists" }]);
        assert.equal(s.priorityClass.value, MAX_USER_PRIORITY);
        assert.equal(s.sidekick.enabled, true);
        assert.equal(s.sidekick.webUi.enabled, false);
        assert.equal(s.sidekick.slack, undefined);
        assert.equal(s.protection.enabled, true);
        assert.deepEqual(s.protection.exemptUsers, ["system:serviceaccount:ci:pulumi"]);
    });

    it("requires a deployer identity while protection is on, and explains how to go without", () => {
        assert.deepEqual(keysOf({}), ["protection.exemptUsers"]);
        assert.throws(() => resolveClusterSettings({}), /kubectl auth whoami.*protection\.enabled: false/s);
        assert.equal(resolveClusterSettings({ protection: { enabled: false } }).protection.enabled, false);
        assert.equal(resolveClusterSettings({ protection: { exemptGroups: ["falco-deployers"] } }).protection.enabled, true);
    });

    it("refuses exemptions that would exempt every admin or everyone", () => {
        assert.deepEqual(keysOf({ protection: { exemptGroups: ["system:masters"] } }), ["protection.exemptGroups"]);
        assert.deepEqual(keysOf({ protection: { exemptGroups: ["system:authenticated"] } }), ["protection.exemptGroups"]);
    });

    it("holds identities to an allowlist (they become CEL string literals)", () => {
        for (const bad of ['x" || true || "', "a b", "x\\y", ""])
            assert.deepEqual(keysOf({ protection: { exemptUsers: [bad] } }), ["protection.exemptUsers[0]"], bad);
        const ok = ["arn:aws:sts::123456789012:assumed-role/deployer/ci", "ops@example.com", "system:serviceaccount:ci:pulumi"];
        assert.deepEqual(resolveClusterSettings({ protection: { exemptUsers: ok } }).protection.exemptUsers, ok);
    });

    it("names a misspelled key", () => {
        assert.deepEqual(keysOf({ ...deployer, priorityClassName: "x" } as FalcoClusterSettings), ["priorityClassName"]);
        assert.deepEqual(
            keysOf({ ...deployer, sidekick: { slack: { minimumpriority: "error" } } } as unknown as FalcoClusterSettings, { slackWebhookUrl: true }),
            ["sidekick.slack.minimumpriority"],
        );
    });

    it("ties each output block to its secret, both ways", () => {
        assert.deepEqual(keysOf({ ...deployer, sidekick: { slack: {} } }), ["sidekick.slack"]);
        assert.deepEqual(keysOf(deployer, { slackWebhookUrl: true }), ["secrets.slackWebhookUrl"]);
        assert.deepEqual(keysOf({ ...deployer, sidekick: { webhook: {} } }), ["sidekick.webhook"]);
        assert.deepEqual(keysOf(deployer, { webhookCustomHeaders: true }), ["secrets.webhookCustomHeaders"]);
        assert.deepEqual(
            keysOf({ ...deployer, sidekick: { elasticsearch: { hostPort: "https://es:9200" } } }, { elasticsearchPassword: true }),
            ["secrets.elasticsearchPassword"],
        );
        assert.deepEqual(keysOf(deployer, { webUiPassword: true }), ["secrets.webUiPassword"]);
        const s = resolveClusterSettings({ ...deployer, sidekick: { slack: { channel: "#sec" } } }, { slackWebhookUrl: true });
        assert.equal(s.sidekick.slack?.minimumPriority, "warning");
        assert.equal(s.sidekick.slack?.channel, "#sec");
    });

    it("rejects output settings that would do nothing with Falcosidekick off", () => {
        assert.deepEqual(keysOf({ ...deployer, sidekick: { enabled: false, webUi: { enabled: true } } }), ["sidekick.webUi"]);
        assert.deepEqual(keysOf({ ...deployer, sidekick: { enabled: false } }, { slackWebhookUrl: true }), ["secrets.slackWebhookUrl"]);
    });

    it("rejects an Elasticsearch URL with credentials or a path", () => {
        assert.deepEqual(keysOf({ ...deployer, sidekick: { elasticsearch: { hostPort: "https://u:p@es:9200" } } }), [
            "sidekick.elasticsearch.hostPort",
        ]);
        assert.deepEqual(keysOf({ ...deployer, sidekick: { elasticsearch: {} as never } }), ["sidekick.elasticsearch.hostPort"]);
    });

    it("checks driver, privilege, names and numbers", () => {
        assert.deepEqual(keysOf({ ...deployer, driver: "ebpf" as never }), ["driver"]);
        assert.deepEqual(keysOf({ ...deployer, driver: "kmod", leastPrivileged: true }), ["leastPrivileged"]);
        assert.deepEqual(keysOf({ ...deployer, releaseName: "a".repeat(31) }), ["releaseName"]);
        assert.deepEqual(keysOf({ ...deployer, namespace: "Falco" }), ["namespace"]);
        assert.deepEqual(keysOf({ ...deployer, chartVersion: "9.x" }), ["chartVersion"]);
        assert.deepEqual(keysOf({ ...deployer, priorityClass: { value: MAX_USER_PRIORITY + 1 } }), ["priorityClass.value"]);
        assert.deepEqual(keysOf({ ...deployer, resources: { limits: { memory: "lots" } } }), ["resources.limits.memory"]);
        assert.deepEqual(keysOf({ ...deployer, sidekick: { webUi: { login: "admin:admin" } } }), ["sidekick.webUi.login"]);
    });
});
