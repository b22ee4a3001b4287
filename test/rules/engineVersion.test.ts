/**
 * `required_engine_version` in the rule files we render: the engine of the Falco we pin (as a real Falco 0.44.1
 * reports it), first in each of our files, never added to a user's file.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as YAML from "yaml";
import { DEFAULT_FALCO_VERSION, HostSettings, resolveHostSettings } from "../../components/host/settings";
import { CUSTOM_RULE_FILE_PREFIX, REQUIRED_ENGINE_VERSION, renderRuleFiles } from "../../components/rules";
import { rulesSchemaErrors } from "../support/falcoReference";
import { referencePath } from "../support/reference";
import { TEST_K8SAUDIT_DIGESTS } from "../support/k8sAuditDigests";

type Item = Record<string, unknown>;

/** -1, 0, 1 for two X.Y.Z versions. */
function compareSemver(a: string, b: string): number {
    const pa = a.split(".").map(Number);
    const pb = b.split(".").map(Number);
    for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return pa[i] < pb[i] ? -1 : 1;
    return 0;
}

describe("rule files: required_engine_version", () => {
    // What a real Falco 0.44.1 prints for `--version` with json_output (captured, shared/reference/falco/outputs).
    const captured = JSON.parse(fs.readFileSync(referencePath("falco", "outputs", "version.json_output.stdout"), "utf8")) as {
        falco_version: string;
        engine_version_semver: string;
    };
    const settings: HostSettings = {
        rules: { builtin: ["self-protection", "app-config-example"], custom: { mine: "- list: my_list\n  items: [a]\n" } },
        k8sAudit: { enabled: true, pluginDigests: TEST_K8SAUDIT_DIGESTS, allowedSources: ["10.0.0.1/32"] },
    };
    const files = renderRuleFiles(resolveHostSettings(settings));

    it("is the engine version of the Falco we pin, as that Falco reports it", () => {
        assert.strictEqual(captured.falco_version, DEFAULT_FALCO_VERSION, "the captured outputs are of the pinned Falco");
        assert.strictEqual(REQUIRED_ENGINE_VERSION, captured.engine_version_semver);
    });

    it("is no lower than what the default rules we load beside ours require", () => {
        const defaults = YAML.parse(fs.readFileSync(referencePath("falco", "falco_rules.yaml"), "utf8")) as Item[];
        const theirs = defaults.find((i) => "required_engine_version" in i)?.required_engine_version;
        assert.ok(typeof theirs === "string", "the default rules name an engine version");
        assert.ok(compareSemver(REQUIRED_ENGINE_VERSION, theirs) >= 0, `${REQUIRED_ENGINE_VERSION} < ${theirs}`);
    });

    it("comes first in each of our files, once, and the files still validate against Falco's rules schema", () => {
        const ours = files.filter((f) => !f.fileName.startsWith(CUSTOM_RULE_FILE_PREFIX));
        assert.ok(ours.length >= 4, `expected the base, two built-in and the k8s_audit files, got ${ours.map((f) => f.fileName)}`);
        for (const f of ours) {
            const items = YAML.parse(f.content) as Item[];
            assert.deepStrictEqual(items[0], { required_engine_version: REQUIRED_ENGINE_VERSION }, f.fileName);
            assert.strictEqual(items.filter((i) => "required_engine_version" in i).length, 1, f.fileName);
            assert.deepStrictEqual(rulesSchemaErrors(items), [], f.fileName);
        }
    });

    it("is not added to a user's own file", () => {
        const custom = files.find((f) => f.fileName === `${CUSTOM_RULE_FILE_PREFIX}mine.yaml`);
        assert.ok(custom);
        assert.ok(!custom.content.includes("required_engine_version"), custom.content);
    });
});
