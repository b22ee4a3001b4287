/**
 * What an AWS node needs for `k8sAudit` (pure): for the eks variant, read access to the EKS cluster's CloudWatch
 * audit log and nothing else; for the webhook variant, security group ingress on the listener's port from the
 * API servers only (the same `allowedSources` the host's nftables table enforces: two layers, one list).
 */
import { allowedSourcesByFamily } from "../host/k8sAudit";
import { K8sAuditVariant, ResolvedHostSettings } from "../host/settings";
import { SecurityGroupRule } from "./securityGroup";

export interface EksAuditLogArgs {
    /** `aws`, `aws-cn` or `aws-us-gov`. */
    partition: string;
    region: string;
    accountId: string;
    clusterName: string;
}

/** The CloudWatch log group EKS writes a cluster's control plane logs to (audit among them). */
export function eksAuditLogGroupName(clusterName: string): string {
    return `/aws/eks/${clusterName}/cluster`;
}

/**
 * The IAM policy the `k8saudit-eks` plugin needs. Least privilege: the plugin calls only `FilterLogEvents`
 * (falcosecurity/plugins shared/go/aws/cloudwatchlogs), on the cluster's log group only: the group's ARN and its
 * streams (`:*`), not `logs:*`, not every group (upstream's README grants `Describe*`, `Get*`, `List*` too).
 */
export function eksAuditLogPolicy(a: EksAuditLogArgs): { Version: string; Statement: Record<string, unknown>[] } {
    for (const [key, value, pattern] of [
        ["partition", a.partition, /^aws(-[a-z]+)*$/],
        ["region", a.region, /^[a-z]{2}(-[a-z]+)+-[0-9]+$/],
        ["accountId", a.accountId, /^[0-9]{12}$/],
        ["clusterName", a.clusterName, /^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$/],
    ] as const)
        if (!pattern.test(value)) throw new Error(`invalid ${key} ${JSON.stringify(value)} for the EKS audit log policy`);
    const group = `arn:${a.partition}:logs:${a.region}:${a.accountId}:log-group:${eksAuditLogGroupName(a.clusterName)}`;
    return {
        Version: "2012-10-17",
        Statement: [
            {
                Sid: "ReadEksAuditLog",
                Effect: "Allow",
                Action: ["logs:FilterLogEvents"],
                Resource: [group, `${group}:*`],
            },
        ],
    };
}

/** Ingress for the k8saudit webhook, from `allowedSources` only; none unless the webhook variant is on. */
export function k8sAuditIngressRules(s: ResolvedHostSettings): SecurityGroupRule[] {
    const k = s.k8sAudit;
    if (!k.enabled || k.variant !== K8sAuditVariant.Webhook) return [];
    const { v4, v6 } = allowedSourcesByFamily(s);
    if (!v4.length && !v6.length) return [];
    return [
        {
            description: "Kubernetes audit webhook (Falco k8saudit) from the API servers only",
            protocol: "tcp",
            fromPort: k.port,
            toPort: k.port,
            ...(v4.length ? { cidrBlocks: v4 } : {}),
            ...(v6.length ? { ipv6CidrBlocks: v6 } : {}),
        },
    ];
}
