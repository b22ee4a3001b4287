/**
 * CrossGuard policies that hold any stack to the same rules AwsFalcoNode follows by default.
 *
 * Plain objects plus pure check functions (`props` in, violation messages out), so each rule is tested by calling
 * it; `policy/index.ts` only wraps them in a `PolicyPack` (whose constructor starts the policy server). Only
 * types come from `@pulumi/policy`, so importing this module costs nothing at runtime.
 *
 * The checks want explicit settings: a property left to an AWS default (account-level EBS encryption, the
 * subnet's public-IP setting, the AMI's IMDS default) is reported, because the stack alone cannot prove it.
 */
import type {
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
} from "@pulumi/policy";
import { AWS_FALCO_NODE_TYPE, PUBLIC_IP_APPROVAL_TAG, PUBLIC_IP_APPROVED } from "./tags";
import { isWorldCidr } from "./securityGroup";

export const TYPES = {
    instance: "aws:ec2/instance:Instance",
    launchTemplate: "aws:ec2/launchTemplate:LaunchTemplate",
    volume: "aws:ebs/volume:Volume",
    securityGroup: "aws:ec2/securityGroup:SecurityGroup",
    securityGroupRule: "aws:ec2/securityGroupRule:SecurityGroupRule",
    ingressRule: "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
    awsFalcoNode: AWS_FALCO_NODE_TYPE,
    falcoHost: "falco-nodes:index:FalcoHost",
    remoteCommand: "command:remote:Command",
} as const;

/** Remote administration ports Security Hub EC2.53/EC2.54 single out (SSH, RDP). */
export const ADMIN_PORTS = [22, 3389];

type Props = Record<string, any>;

// --- ec2-imdsv2-required -----------------------------------------------------------------------------------

/** IMDSv2 only, hop limit 1 (EC2.8, AutoScaling.4). A disabled metadata endpoint is compliant too. */
export function checkImds(metadataOptions: Props | undefined, what: string): string[] {
    const m = metadataOptions ?? {};
    if (m.httpEndpoint === "disabled") return [];
    const problems: string[] = [];
    if (m.httpTokens !== "required")
        problems.push(`${what}: set metadataOptions.httpTokens to "required" (IMDSv2 only; Security Hub EC2.8)`);
    if (m.httpPutResponseHopLimit !== 1)
        problems.push(`${what}: set metadataOptions.httpPutResponseHopLimit to 1 so containers cannot reach IMDS (AutoScaling.4)`);
    return problems;
}

export function checkImdsResource(type: string, props: Props): string[] {
    if (type === TYPES.instance) return checkImds(props.metadataOptions, "instance");
    if (type === TYPES.launchTemplate) return checkImds(props.metadataOptions, "launch template");
    return [];
}

// --- ebs-encrypted -----------------------------------------------------------------------------------------

/** Root and EBS volumes encrypted explicitly (EC2.3). */
export function checkEbsEncrypted(type: string, props: Props): string[] {
    if (type === TYPES.volume)
        return props.encrypted === true ? [] : ["EBS volume: set encrypted: true (Security Hub EC2.3)"];
    if (type !== TYPES.instance) return [];
    const problems: string[] = [];
    if (props.rootBlockDevice?.encrypted !== true)
        problems.push("instance: set rootBlockDevice.encrypted: true (Security Hub EC2.3; the account default is not visible to the stack)");
    (props.ebsBlockDevices ?? []).forEach((d: Props, i: number) => {
        if (d?.encrypted !== true)
            problems.push(`instance: set ebsBlockDevices[${i}].encrypted: true (Security Hub EC2.3)`);
    });
    return problems;
}

// --- no-world-open-ssh -------------------------------------------------------------------------------------

/** One ingress permission, normalized from the three ways AWS resources spell it. */
export interface IngressPermission {
    protocol: string | number | undefined;
    fromPort: number | undefined;
    toPort: number | undefined;
    cidrs: string[];
}

const ALL_PROTOCOLS = ["-1", "all"];
const TCP = ["tcp", "6"];

/** Does the permission let `port` in over TCP? Protocol "-1"/"all" covers every port whatever the range says. */
export function coversPort(p: IngressPermission, port: number): boolean {
    const protocol = String(p.protocol ?? "").toLowerCase();
    if (ALL_PROTOCOLS.includes(protocol)) return true;
    if (!TCP.includes(protocol)) return false;
    // A missing port range on a TCP rule means every port (aws.vpc rules may omit both).
    const from = p.fromPort ?? 0;
    const to = p.toPort ?? 65535;
    return from <= port && port <= to;
}

/** The ingress permissions a resource declares (none for other types or egress rules). */
export function ingressPermissions(type: string, props: Props): IngressPermission[] {
    switch (type) {
        case TYPES.securityGroup:
            return (props.ingress ?? []).map((r: Props) => ({
                protocol: r.protocol,
                fromPort: r.fromPort,
                toPort: r.toPort,
                cidrs: [...(r.cidrBlocks ?? []), ...(r.ipv6CidrBlocks ?? [])],
            }));
        case TYPES.securityGroupRule:
            if (props.type !== "ingress") return [];
            return [{
                protocol: props.protocol,
                fromPort: props.fromPort,
                toPort: props.toPort,
                cidrs: [...(props.cidrBlocks ?? []), ...(props.ipv6CidrBlocks ?? [])],
            }];
        case TYPES.ingressRule:
            return [{
                protocol: props.ipProtocol,
                fromPort: props.fromPort,
                toPort: props.toPort,
                cidrs: [props.cidrIpv4, props.cidrIpv6].filter((c): c is string => typeof c === "string"),
            }];
        default:
            return [];
    }
}

/** No remote-admin port open to 0.0.0.0/0 or ::/0 (EC2.13, EC2.53, EC2.54). */
export function checkNoWorldOpenSsh(type: string, props: Props): string[] {
    const problems: string[] = [];
    ingressPermissions(type, props).forEach((p, i) => {
        const world = p.cidrs.filter(isWorldCidr);
        const ports = ADMIN_PORTS.filter((port) => coversPort(p, port));
        if (world.length && ports.length)
            problems.push(
                `ingress rule ${i} opens port ${ports.join(" and ")} to ${world.join(", ")} (Security Hub EC2.13/EC2.53/EC2.54): ` +
                    "allow your own CIDRs or a bastion's security group instead",
            );
    });
    return problems;
}

// --- no-public-ip-without-tag ------------------------------------------------------------------------------

/**
 * A public IPv4 address needs the approval tag (EC2.9). Unset counts as public: it inherits the subnet's
 * `mapPublicIpOnLaunch`, which default-VPC subnets turn on.
 */
export function checkPublicIp(type: string, props: Props): string[] {
    if (type !== TYPES.instance) return [];
    if (props.associatePublicIpAddress === false) return [];
    if (props.tags?.[PUBLIC_IP_APPROVAL_TAG] === PUBLIC_IP_APPROVED) return [];
    const why = props.associatePublicIpAddress === true ? "requests a public IPv4 address" : "leaves associatePublicIpAddress unset (the subnet decides)";
    return [
        `instance ${why} without the tag ${PUBLIC_IP_APPROVAL_TAG}=${PUBLIC_IP_APPROVED} (Security Hub EC2.9): ` +
            "set associatePublicIpAddress: false, or approve the address with the tag",
    ];
}

// --- falco-node-has-falcohost ------------------------------------------------------------------------------

/** The URN of a resource's parent, from the parent object or the options. */
function parentUrn(r: PolicyResource): string | undefined {
    return r.parent?.urn ?? r.opts?.parent;
}

/** The last type in a URN's type chain (`...::parent$child::name` -> `child`). */
export function urnType(urn: string): string | undefined {
    const parts = urn.split("::");
    return parts.length >= 4 ? parts[parts.length - 2].split("$").pop() : undefined;
}

/**
 * Every EC2 instance an AwsFalcoNode creates has a FalcoHost beside it (same AwsFalcoNode parent) with its
 * converge `command:remote:Command`: a node without it would be a bare instance that never runs Falco.
 * Returns [urn, message] pairs.
 */
export function checkFalcoNodesHaveFalcoHost(resources: PolicyResource[]): [string, string][] {
    const childrenOf = new Map<string, PolicyResource[]>();
    for (const r of resources) {
        const p = parentUrn(r);
        if (p) childrenOf.set(p, [...(childrenOf.get(p) ?? []), r]);
    }
    const problems: [string, string][] = [];
    for (const r of resources) {
        if (r.type !== TYPES.instance) continue;
        const nodeUrn = parentUrn(r);
        if (!nodeUrn || urnType(nodeUrn) !== TYPES.awsFalcoNode) continue;
        const hosts = (childrenOf.get(nodeUrn) ?? []).filter((c) => c.type === TYPES.falcoHost);
        const converged = hosts.some((h) => (childrenOf.get(h.urn) ?? []).some((c) => c.type === TYPES.remoteCommand));
        if (!converged)
            problems.push([
                r.urn,
                `instance ${r.name} belongs to an AwsFalcoNode but has no FalcoHost with a converge command beside it: ` +
                    "the node would never run Falco",
            ]);
    }
    return problems;
}

// --- the policies --------------------------------------------------------------------------------------------

/** Wrap a pure check as a resource validation. */
function resourceCheck(check: (type: string, props: Props) => string[]) {
    return (args: ResourceValidationArgs, reportViolation: ReportViolation): void => {
        for (const message of check(args.type, args.props)) reportViolation(message);
    };
}

export const imdsV2Required: ResourceValidationPolicy = {
    name: "ec2-imdsv2-required",
    description: "EC2 instances and launch templates require IMDSv2 tokens with a hop limit of 1 (Security Hub EC2.8, AutoScaling.4).",
    enforcementLevel: "mandatory",
    validateResource: resourceCheck(checkImdsResource),
};

export const ebsEncrypted: ResourceValidationPolicy = {
    name: "ebs-encrypted",
    description: "Instance root and EBS volumes are encrypted explicitly (Security Hub EC2.3).",
    enforcementLevel: "mandatory",
    validateResource: resourceCheck(checkEbsEncrypted),
};

export const noWorldOpenSsh: ResourceValidationPolicy = {
    name: "no-world-open-ssh",
    description: "No security group lets SSH (22) or RDP (3389) in from 0.0.0.0/0 or ::/0 (Security Hub EC2.13, EC2.53, EC2.54).",
    enforcementLevel: "mandatory",
    validateResource: resourceCheck(checkNoWorldOpenSsh),
};

export const noPublicIpWithoutTag: ResourceValidationPolicy = {
    name: "no-public-ip-without-tag",
    description: `EC2 instances get no public IPv4 address unless tagged ${PUBLIC_IP_APPROVAL_TAG}=${PUBLIC_IP_APPROVED} (Security Hub EC2.9).`,
    enforcementLevel: "mandatory",
    validateResource: resourceCheck(checkPublicIp),
};

export const falcoNodeHasFalcoHost: StackValidationPolicy = {
    name: "falco-node-has-falcohost",
    description: "Every EC2 instance created by AwsFalcoNode is converged by its FalcoHost.",
    enforcementLevel: "mandatory",
    validateStack: (args: StackValidationArgs, reportViolation: ReportViolation) => {
        for (const [urn, message] of checkFalcoNodesHaveFalcoHost(args.resources)) reportViolation(message, urn);
    },
};

/** Everything `policy/index.ts` puts in the pack. */
export const falcoNodesPolicies: (ResourceValidationPolicy | StackValidationPolicy)[] = [
    imdsV2Required,
    ebsEncrypted,
    noWorldOpenSsh,
    noPublicIpWithoutTag,
    falcoNodeHasFalcoHost,
];
