export { FalcoCluster, type FalcoClusterArgs } from "./falcoCluster";
export * from "./settings";
export { chartNames, falcoFullname, type ChartNames } from "./names";
export {
    renderChartValues,
    renderCustomRules,
    renderOutputsSecretData,
    renderWebUiRedisSecretData,
    renderWebUiSecretData,
    serviceAddresses,
    type ChartSecretRefs,
    type ChartValues,
} from "./values";
export { renderProtection, CONTROLLER_IDENTITIES, PROTECTED_RESOURCE_RULES, type ProtectionObjects } from "./protection";
export { planCluster, renderClusterValues, type ClusterPlan } from "./render";
export {
    buildAuditPolicy,
    buildAuditWebhookKubeconfig,
    renderAuditPolicy,
    renderAuditWebhookKubeconfig,
    type AuditPolicy,
    type AuditPolicyRule,
    type AuditWebhookKubeconfigArgs,
} from "./audit";
