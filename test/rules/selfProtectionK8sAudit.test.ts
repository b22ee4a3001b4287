import * as assert from "assert";
import * as YAML from "yaml";
import { ARTIFACTS_DIR, FIREWALL_RULES_PATH, FIREWALL_TABLE, FIREWALL_UNIT_PATH, UNIT_NAME } from "../../components/host/paths";
import { HostSettings, resolveHostSettings } from "../../components/host/settings";
import { BUILTIN_RULE_FILES, SELF_PROTECTION_RULES, protectedPaths, renderRuleFiles } from "../../components/rules";
import { RUNTIME_UNIT_PATHS, SELF_PROTECTION_FIREWALL_RULE } from "../../components/rules/selfProtection";
import { conditionRefs, referenceProblems, rulesSchemaErrors } from "../support/falcoReference";
import { TEST_K8SAUDIT_DIGESTS } from "../support/k8sAuditDigests";

type Item = Record<string, any>;
const WEBHOOK: HostSettings = { k8sAudit: { enabled: true, pluginDigests: TEST_K8SAUDIT_DIGESTS, allowedSources: ["10.0.0.10/32"], tls: { certificatePath: "/etc/ssl/private/k8saudit.pem" } } };

function selfProtection(settings: HostSettings): Item[] {
    const file = renderRuleFiles(resolveHostSettings(settings)).find((f) => f.fileName === BUILTIN_RULE_FILES["self-protection"])!;
    return YAML.parse(file.content);
}

describe("self-protection, reviewed against a root attacker (with k8sAudit)", () => {
    it("all rule files together still load: schema, fields per source, macros and lists", () => {
        const files = renderRuleFiles(resolveHostSettings(WEBHOOK)).map((f) => YAML.parse(f.content) as Item[]);
        for (const items of files) assert.deepStrictEqual(rulesSchemaErrors(items), []);
        assert.deepStrictEqual(referenceProblems(files.flat(), { strictLists: true }), []);
    });

    it("watches the plugins (below the state directory), runtime unit overrides and the listener's key", () => {
        const { dirs, files } = protectedPaths(resolveHostSettings(WEBHOOK));
        assert.ok(ARTIFACTS_DIR.startsWith(`${dirs.find((d) => ARTIFACTS_DIR.startsWith(`${d}/`))}/`), "artifacts are below a watched directory");
        for (const d of RUNTIME_UNIT_PATHS.dirs) assert.ok(dirs.includes(d), d);
        assert.ok(files.includes(`/run/systemd/system/${UNIT_NAME}`), "a runtime mask");
        assert.ok(files.includes("/etc/ssl/private/k8saudit.pem"));
        assert.ok(files.includes(FIREWALL_UNIT_PATH));
        assert.ok(dirs.includes(FIREWALL_RULES_PATH.slice(0, FIREWALL_RULES_PATH.lastIndexOf("/"))));
        const plain = protectedPaths(resolveHostSettings());
        assert.ok(!plain.files.includes(FIREWALL_UNIT_PATH), "no firewall paths without the firewall");
    });

    it("alerts on unloading the falco module, but not when systemd stops the kmod unit", () => {
        const r = selfProtection({ driver: "kmod" }).find((i) => i.rule === SELF_PROTECTION_RULES.moduleUnload)!;
        assert.deepStrictEqual(conditionRefs(r.condition).evtTypes, ["delete_module"]);
        assert.match(r.condition, /evt\.arg\.name = "falco"/);
        assert.deepStrictEqual(r.exceptions[0].fields, ["container.id", "proc.name", "proc.pexepath"]);
        assert.ok(r.exceptions[0].values[0][2].includes("/usr/lib/systemd/systemd"));
    });

    it("alerts on nft deleting or flushing our table, only where that table exists", () => {
        const rule = (s: HostSettings) => selfProtection(s).find((i) => i.rule === SELF_PROTECTION_FIREWALL_RULE);
        assert.strictEqual(rule({}), undefined);
        assert.strictEqual(rule({ k8sAudit: { ...WEBHOOK.k8sAudit, firewall: false } }), undefined);
        const r = rule(WEBHOOK)!;
        assert.match(r.condition, new RegExp(`proc\\.args contains "${FIREWALL_TABLE}"`));
        assert.match(r.condition, /proc\.args contains "flush ruleset"/);
        assert.match(r.condition, /not falco_nodes_converge/);
    });
});
