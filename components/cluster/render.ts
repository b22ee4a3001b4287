/**
 * Everything the in-cluster layer renders, from settings alone: the component declares resources from this
 * plan, and `npm run render` writes its chart values, so what you review is what gets deployed. Pure.
 */
import { resolveHostSettings } from "../host/settings";
import { renderRuleFiles } from "../rules";
import { renderProtection, type ProtectionObjects } from "./protection";
import {
    resolveClusterSettings,
    type FalcoClusterSettings,
    type ResolvedClusterSettings,
    type SecretPresence,
} from "./settings";
import { renderChartValues, type ChartSecretRefs, type ChartValues, type RuleFile } from "./values";

export interface ClusterPlan {
    settings: ResolvedClusterSettings;
    /** The hosts' rule files, the same ones the cluster loads. */
    ruleFiles: RuleFile[];
    /** Which of our Secrets exist. */
    refs: ChartSecretRefs;
    values: ChartValues;
    /** The protection objects, when protection is on. */
    protection?: ProtectionObjects;
}

/** Resolve settings and render the chart values and protection objects. `secrets` says which secrets are given. */
export function planCluster(input: FalcoClusterSettings = {}, secrets: Partial<SecretPresence> = {}): ClusterPlan {
    const settings = resolveClusterSettings(input, secrets);
    // The hosts' resolver validates the rule settings (file names, YAML) exactly as for a host.
    const ruleFiles = renderRuleFiles(resolveHostSettings({ rules: settings.rules }));
    const sk = settings.sidekick;
    const refs: ChartSecretRefs = {
        outputsSecret:
            sk.enabled &&
            Boolean(secrets.slackWebhookUrl || secrets.webhookAddress || secrets.webhookCustomHeaders || secrets.elasticsearchPassword),
        webUiSecret: sk.webUi.enabled,
    };
    return {
        settings,
        ruleFiles,
        refs,
        values: renderChartValues(settings, ruleFiles, refs),
        protection: settings.protection.enabled ? renderProtection(settings) : undefined,
    };
}

/** The chart values for a stack's cluster settings (what `npm run render` writes). No secret is ever in them. */
export function renderClusterValues(input: FalcoClusterSettings = {}, secrets: Partial<SecretPresence> = {}): ChartValues {
    return planCluster(input, secrets).values;
}
