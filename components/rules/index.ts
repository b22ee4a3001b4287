/**
 * Rule files for `/etc/falco/rules.d`: our built-in sets, then the user's own files, named `NN-name.yaml` so
 * Falco loads them in a fixed order (falco.yaml lists them one by one in that order).
 */
import * as YAML from "yaml";
import { BuiltinRuleSet, RuleSetInputs } from "../shared/ruleInputs";
import { appConfigExampleRuleItems } from "./appConfigExample";
import { baseRuleItems } from "./base";
import { canaryRuleItems } from "./canary";
import { k8sAuditTamperRuleItems } from "./k8sAuditTamper";
import { selfProtectionRuleItems } from "./selfProtection";
import { FalcoRuleItem, RuleFile } from "./types";

export * from "./types";
export { BASE_MACROS, CONVERGE_MARKER_ENV, CONVERGE_MARKER_VALUE, baseRuleItems } from "./base";
export {
    FALCO_UNIT_STEM,
    SELF_PROTECTION_LISTS,
    SELF_PROTECTION_MACROS,
    SELF_PROTECTION_RULES,
    falcoProcessName,
    protectedPaths,
    selfProtectionRuleItems,
} from "./selfProtection";
export { CANARY_DIR, CANARY_RULE, canaryMarker, canaryPath, canaryRuleItems, canaryToken } from "./canary";
export { APP_CONFIG_DIR, APP_CONFIG_RULE, appConfigExampleRuleItems } from "./appConfigExample";
export {
    K8S_AUDIT_SOURCE,
    K8S_TAMPER_LISTS,
    K8S_TAMPER_MACROS,
    K8S_TAMPER_PLUGIN_REQUIREMENTS,
    K8S_TAMPER_RULES,
    k8sAuditTamperRuleItems,
} from "./k8sAuditTamper";

export const BASE_RULE_FILE = "00-falco-nodes-base.yaml";
/** The detection canary (always: converge waits for its alert). */
export const CANARY_RULE_FILE = "05-falco-nodes-canary.yaml";
export const BUILTIN_RULE_FILES: Record<BuiltinRuleSet, string> = {
    [BuiltinRuleSet.SelfProtection]: "10-falco-nodes-self-protection.yaml",
    [BuiltinRuleSet.AppConfigExample]: "20-falco-nodes-app-config-example.yaml",
};
/** Our k8s_audit rules (`k8sAudit.tamperRules`): after the built-in syscall sets, before the user's files. */
export const K8S_AUDIT_TAMPER_RULE_FILE = "30-falco-nodes-k8s-audit-tamper.yaml";
/** Users' files come after ours, so they can append to or override our lists, macros and rules. */
export const CUSTOM_RULE_FILE_PREFIX = "50-";

const BUILTIN_ORDER: BuiltinRuleSet[] = [BuiltinRuleSet.SelfProtection, BuiltinRuleSet.AppConfigExample];

function header(what: string): string {
    return `# Managed by falco-nodes (${what}): converge overwrites this file; change the stack's settings instead.\n`;
}

/**
 * The rules engine version our rule files require (`- required_engine_version:` first in each of them): the
 * engine of the Falco the project pins and tests against, 0.44.1 (`falco --version` with `json_output` reports
 * `engine_version_semver` 0.62.0: shared/reference/falco/outputs/version.json_output.stdout; upstream
 * falcosecurity/falco 0.44.1 userspace/engine/falco_engine_version.h). The engine version is raised whenever the
 * engine gains fields (falcosecurity/falco CHANGELOG v0.14.0, "Rules versioning support"; PR #2418): ours use
 * `proc.env[NAME]` and the `fs.path.*` fields, which are in 0.44.1's field list (shared/reference/falco/fields.txt)
 * and which we have not checked against any older engine, so we claim no lower version. An older Falco then refuses
 * our files at `falco --dry-run` (converge's check, before anything is swapped) with Falco's own message naming
 * both versions, instead of an "unknown field" error deep in a condition. Users' own files (`rules.custom`) are
 * left exactly as written.
 */
export const REQUIRED_ENGINE_VERSION = "0.62.0";

/** `- required_engine_version: X`: Falco refuses the file when its engine is older. */
interface FalcoRequiredEngineVersion {
    required_engine_version: string;
}

/** Rule items as a rules file, short lists in flow style, multi-line conditions as literal blocks. */
export function renderRuleItems(items: (FalcoRuleItem | FalcoRequiredEngineVersion)[], what: string): string {
    const doc = new YAML.Document(items, { aliasDuplicateObjects: false });
    YAML.visit(doc, {
        Seq(_, node) {
            if (node.items.every((i) => YAML.isScalar(i) || (YAML.isSeq(i) && i.flow))) node.flow = true;
        },
    });
    return header(what) + doc.toString({ lineWidth: 0, minContentWidth: 0, blockQuote: "literal" });
}

function itemsFor(set: BuiltinRuleSet, s: RuleSetInputs): FalcoRuleItem[] {
    switch (set) {
        case BuiltinRuleSet.SelfProtection:
            return selfProtectionRuleItems(s);
        case BuiltinRuleSet.AppConfigExample:
            return appConfigExampleRuleItems();
    }
}

/**
 * Every file for `/etc/falco/rules.d`, in load order: shared macros (when any built-in set is on), the
 * detection canary (always), the built-in sets, the k8s_audit tamper rules (with `k8sAudit`), then `rules.custom` as `50-<name>.yaml` with the user's text verbatim after a header comment.
 */
export function renderRuleFiles(s: RuleSetInputs): RuleFile[] {
    const files: RuleFile[] = [];
    const ours = (items: FalcoRuleItem[], what: string): string =>
        renderRuleItems([{ required_engine_version: REQUIRED_ENGINE_VERSION }, ...items], what);
    const builtin = BUILTIN_ORDER.filter((set) => s.rules.builtin.includes(set));
    if (builtin.length) files.push({ fileName: BASE_RULE_FILE, content: ours(baseRuleItems(), "shared macros") });
    files.push({ fileName: CANARY_RULE_FILE, content: ours(canaryRuleItems(s), "detection canary") });
    for (const set of builtin)
        files.push({ fileName: BUILTIN_RULE_FILES[set], content: ours(itemsFor(set, s), `rule set ${set}`) });
    if (s.k8sAudit.enabled && s.k8sAudit.tamperRules)
        files.push({ fileName: K8S_AUDIT_TAMPER_RULE_FILE, content: ours(k8sAuditTamperRuleItems(s), "k8sAudit.tamperRules") });
    for (const name of Object.keys(s.rules.custom).sort()) {
        if (!/^[a-z0-9][a-z0-9_-]{0,63}$/.test(name))
            throw new Error(`rules.custom.${JSON.stringify(name)}: rule file names must match [a-z0-9][a-z0-9_-]*`);
        const text = s.rules.custom[name].replace(/^\uFEFF/, "");
        files.push({
            fileName: `${CUSTOM_RULE_FILE_PREFIX}${name}.yaml`,
            content: header(`rules.custom.${name}`) + text + (text.endsWith("\n") ? "" : "\n"),
        });
    }
    return files;
}
