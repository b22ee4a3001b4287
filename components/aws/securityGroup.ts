/**
 * The node's security group rules, computed (pure) from the access the user asked for.
 *
 * Ingress is SSH only, and only from what is listed: no CIDR by default, so a node is reachable over SSH just
 * from the security groups you name (a bastion's, a CI runner's) or not at all. A world-open source
 * (`0.0.0.0/0`, `::/0`, any `/0`) is refused unless `allowWorldSsh` says so, which AWS Security Hub flags
 * (EC2.13, EC2.53, EC2.54) and our policy pack blocks. Egress stays open by default: the converge script
 * downloads Falco and OS packages from public mirrors.
 */

export const SSH_PORT = 22;

export interface SecurityGroupRuleArgs {
    /** CIDRs allowed to reach SSH (IPv4 or IPv6). Default none. */
    sshCidrs?: string[];
    /** Accept a `/0` in `sshCidrs`. Default false. */
    allowWorldSsh?: boolean;
    /** CIDRs the node may connect to, any port. Default everything (`0.0.0.0/0`, `::/0`). */
    egressCidrs?: string[];
}

/** One rule in `aws.ec2.SecurityGroup` ingress/egress shape (security group sources are added by the caller). */
export interface SecurityGroupRule {
    description: string;
    protocol: string;
    fromPort: number;
    toPort: number;
    cidrBlocks?: string[];
    ipv6CidrBlocks?: string[];
}

const IPV4_CIDR = /^(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}\/([0-9]|[12][0-9]|3[0-2])$/;
const IPV6_CIDR = /^[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*\/([0-9]|[1-9][0-9]|1[01][0-9]|12[0-8])$/;

export function isIpv4Cidr(cidr: string): boolean {
    return IPV4_CIDR.test(cidr);
}
export function isIpv6Cidr(cidr: string): boolean {
    return IPV6_CIDR.test(cidr) && !cidr.includes(":::");
}
/** A CIDR that covers the whole address space of its family. */
export function isWorldCidr(cidr: string): boolean {
    return /\/0+$/.test(cidr.trim());
}

/** Split CIDRs by family, rejecting anything that is not a CIDR (the key names the offending entry). */
function splitCidrs(cidrs: string[], key: string): { v4: string[]; v6: string[] } {
    const v4: string[] = [];
    const v6: string[] = [];
    cidrs.forEach((c, i) => {
        if (isIpv4Cidr(c)) v4.push(c);
        else if (isIpv6Cidr(c)) v6.push(c);
        else throw new Error(`invalid ${key}[${i}] '${c}': must be an IPv4 or IPv6 CIDR such as 203.0.113.7/32 or 2001:db8::/64`);
    });
    return { v4, v6 };
}

/** Ingress and egress rules for the node's own security group. Throws on bad or world-open SSH input. */
export function securityGroupRules(args: SecurityGroupRuleArgs): { ingress: SecurityGroupRule[]; egress: SecurityGroupRule[] } {
    const sshCidrs = args.sshCidrs ?? [];
    const world = sshCidrs.filter(isWorldCidr);
    if (world.length && !args.allowWorldSsh)
        throw new Error(
            `invalid sshCidrs: ${world.join(", ")} opens SSH to the whole internet (Security Hub EC2.13/EC2.53/EC2.54). ` +
                "List your own addresses (e.g. 203.0.113.7/32), use a bastion or sshSourceSecurityGroupIds, " +
                "or set allowWorldSsh: true if you really mean it (the falco-nodes policy pack still blocks it).",
        );
    const ssh = splitCidrs(sshCidrs, "sshCidrs");
    const egressCidrs = args.egressCidrs ?? ["0.0.0.0/0", "::/0"];
    const out = splitCidrs(egressCidrs, "egressCidrs");

    const ingress: SecurityGroupRule[] = [];
    if (ssh.v4.length || ssh.v6.length)
        ingress.push({
            description: "SSH from listed CIDRs (falco-nodes converge)",
            protocol: "tcp",
            fromPort: SSH_PORT,
            toPort: SSH_PORT,
            ...(ssh.v4.length ? { cidrBlocks: ssh.v4 } : {}),
            ...(ssh.v6.length ? { ipv6CidrBlocks: ssh.v6 } : {}),
        });
    const egress: SecurityGroupRule[] = [];
    if (out.v4.length || out.v6.length)
        egress.push({
            description: "Outbound: Falco and OS package downloads, alert outputs",
            protocol: "-1",
            fromPort: 0,
            toPort: 0,
            ...(out.v4.length ? { cidrBlocks: out.v4 } : {}),
            ...(out.v6.length ? { ipv6CidrBlocks: out.v6 } : {}),
        });
    return { ingress, egress };
}
