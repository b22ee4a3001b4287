/**
 * Names shared by AwsFalcoNode and the policy pack. Kept apart from `node.ts` so the policy pack loads
 * without `@pulumi/aws` or the host bundle.
 */

/** AwsFalcoNode's Pulumi type token. */
export const AWS_FALCO_NODE_TYPE = "falco-nodes:index:AwsFalcoNode";
/** Tag on every resource of a node: which AwsFalcoNode it belongs to. */
export const NODE_TAG = "falco-nodes:node";
/** Tag that approves a public IP on an instance; the policy pack refuses a public IP without it. */
export const PUBLIC_IP_APPROVAL_TAG = "falco-nodes:public-ip";
export const PUBLIC_IP_APPROVED = "approved";
