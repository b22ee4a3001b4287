// The public API of the falco-nodes package: `import { FalcoHost, AwsFalcoNode, FalcoCluster } from "falco-nodes"`.
// Components with their argument types and settings, and the pure renderers a program may want to call itself.

// Host: one Linux server reached over SSH.
export * from "./host/settings";
export {
    FalcoHost,
    parseConvergeReport,
    DEFAULT_DIAL_ERROR_LIMIT,
    DEFAULT_PER_DIAL_TIMEOUT,
    type ConvergeReport,
    type FalcoHostArgs,
    type SshConnectionArgs,
    type SshProxyArgs,
} from "./host/falcoHost";
export * as paths from "./host/paths";

// AWS: a hardened EC2 instance converged by FalcoHost. (The CrossGuard policies stay out of the package root:
// their types come from @pulumi/policy, a development dependency; the policy pack imports them directly.)
export { AwsFalcoNode, SSM_MANAGED_POLICY, DEFAULT_ROOT_VOLUME_GIB, type AwsFalcoNodeArgs } from "./aws/node";
export * from "./aws/ami";
export { AWS_FALCO_NODE_TYPE, NODE_TAG, PUBLIC_IP_APPROVAL_TAG, PUBLIC_IP_APPROVED } from "./aws/tags";

// Cluster: the falcosecurity/falco chart with Falcosidekick.
export * from "./cluster";

// Rules and the stack configuration, as namespaces (their helpers are for programs that build their own).
export * as rules from "./rules";
export * as stackConfig from "./config";

// Program helper: declare many resources without the SDK's per-promise stack traces (see the module's notes).
export { withoutPromiseStackTraces, PROMISE_LEAKS_ENV } from "./sdk/promiseStackTraces";
