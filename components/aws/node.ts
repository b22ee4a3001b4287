/**
 * AwsFalcoNode: a hardened EC2 instance that comes up as a Falco node (converged by FalcoHost).
 *
 * For users who do not bring their own servers. The constructor reads as: check the arguments, pick the image,
 * generate the keys, declare the security group, (optionally) the SSM role, the instance, then the FalcoHost
 * that converges it. Everything with a decision in it lives in a pure module: `ami.ts`, `userdata.ts`,
 * `securityGroup.ts`.
 *
 * Hardening defaults, each mapped to the AWS Security Hub control it satisfies; the opt-outs are named
 * arguments, so a weakened node is visible in the program that declares it (and the policy pack blocks most):
 * - IMDSv2 required, hop limit 1, instance metadata tags off (EC2.8, AutoScaling.4). No opt-out.
 * - Encrypted gp3 root volume, optional customer KMS key (EC2.3). No opt-out.
 * - No public IPv4 address (EC2.9). Opt out: `publicIp: true` (tagged `falco-nodes:public-ip=approved`).
 * - No SSH from 0.0.0.0/0 or ::/0 (EC2.13, EC2.53, EC2.54). Opt out: `allowWorldSsh: true`.
 * - Detailed monitoring. Opt out: `detailedMonitoring: false`.
 * - SSH host key pinned from launch. Opt out: `pinHostKey: false` (see `userdata.ts` for the trade-off).
 *
 * With `settings.k8sAudit` (Kubernetes audit events on this node): the webhook variant opens its port in the
 * security group to `k8sAudit.allowedSources` only; the eks variant gets read access to the cluster's
 * CloudWatch audit log on the node's role when `k8sAuditEksLogAccess` asks for it (see `k8sAuditAccess.ts`).
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { FalcoHost, FalcoHostArgs, nodeIdentity, SshProxyArgs } from "../host/falcoHost";
import { HostSettings, K8sAuditVariant } from "../host/settings";
import { resolveHostSettingsMemo } from "../host/settingsMemo";
import {
    amiFilter,
    Architecture,
    assertArchitecture,
    assertOperatingSystem,
    DEFAULT_ARCHITECTURE,
    DEFAULT_OS,
    defaultInstanceType,
    installSourceFor,
    OperatingSystem,
    sshUserFor,
} from "./ami";
import { eksAuditLogPolicy, k8sAuditIngressRules } from "./k8sAuditAccess";
import { SSH_PORT, securityGroupRules } from "./securityGroup";
import { AWS_FALCO_NODE_TYPE, NODE_TAG, PUBLIC_IP_APPROVAL_TAG, PUBLIC_IP_APPROVED } from "./tags";
import { renderUserData } from "./userdata";

/** AWS managed policy that lets Systems Manager (Session Manager, patching, inventory) manage the node. */
export const SSM_MANAGED_POLICY = "AmazonSSMManagedInstanceCore";
export const DEFAULT_ROOT_VOLUME_GIB = 20;

export interface AwsFalcoNodeArgs {
    /**
     * Operating system. Default `ubuntu-24.04`. Also decides the login user and Falco's package source (rpm for
     * `al2023`), so set it to match when you pass your own `ami`.
     */
    os?: OperatingSystem;
    /**
     * CPU architecture. Default `x86_64`; `arm64` (Graviton) is cheaper per vCPU. Must match `instanceType`.
     */
    architecture?: Architecture;
    /**
     * An explicit AMI id instead of the newest vendor image (e.g. your own golden image). Default: looked up
     * with `aws.ec2.getAmi` from the vendor's account for `os` and `architecture`.
     */
    ami?: pulumi.Input<string>;
    /**
     * Replace the node when the vendor publishes a newer image. Default false: the looked-up AMI is ignored
     * after creation, so a routine `pulumi up` never replaces a running node (patch with the OS's updates).
     * Set true for immutable nodes.
     */
    replaceOnNewAmi?: boolean;
    /** Instance type. Default `t3.medium` (x86_64) or `t4g.medium` (arm64): 2 vCPU / 4 GiB suits Falco. */
    instanceType?: pulumi.Input<string>;
    /**
     * Subnet to launch in. Required: default-VPC subnets hand out public addresses, and the security group
     * must be created in the subnet's VPC. Prefer a private subnet with a NAT gateway or package mirror.
     */
    subnetId: pulumi.Input<string>;
    /** Extra security groups to attach (e.g. a shared monitoring group). Default none. */
    securityGroupIds?: pulumi.Input<string>[];
    /** Tags for the instance, its volume and every other resource of the node. Ours (`falco-nodes:*`) win. */
    tags?: Record<string, string>;
    /** Root volume size in GiB (8..16384). Default 20: OS, Falco and rotated alert logs. */
    rootVolumeSizeGiB?: number;
    /**
     * KMS key (id or ARN) for the root volume. Default: the account's default EBS key (`aws/ebs`). Set a
     * customer key to control who can read snapshots.
     */
    kmsKeyId?: pulumi.Input<string>;

    /**
     * CIDRs allowed to SSH to the node (port 22 only). Default none. Use your operator or CI egress addresses;
     * `/0` is refused unless `allowWorldSsh` is set.
     */
    sshCidrs?: string[];
    /**
     * Security groups allowed to SSH to the node, e.g. the bastion's or the VPC-hosted CI runner's. Default none.
     * The way in when `pulumi up` runs inside the VPC.
     */
    sshSourceSecurityGroupIds?: pulumi.Input<string>[];
    /**
     * Reach the node through this bastion (SSH ProxyJump). Default none. Allow the bastion in with
     * `sshSourceSecurityGroupIds`.
     */
    bastion?: SshProxyArgs;
    /** Where the node may connect to, any port. Default everything: Falco and OS packages come from the internet. */
    egressCidrs?: string[];
    /**
     * SSH login key pair (OpenSSH). Default: an ed25519 key generated per node and kept as a secret in state.
     * Give your own to log in with a key you already hold.
     */
    sshKey?: {
        /** The private key, OpenSSH or PEM. Treated as a secret. */
        privateKey: pulumi.Input<string>;
        /** Its public key line (`ssh-ed25519 AAAA...`), registered as the EC2 key pair. */
        publicKey: pulumi.Input<string>;
    };
    /** Login user. Default the image's (`ubuntu`, `admin` on Debian, `ec2-user` on Amazon Linux). */
    sshUser?: string;

    /**
     * Attach an instance profile with `AmazonSSMManagedInstanceCore`, so Session Manager can reach the node
     * without SSH. Default false: no AWS credentials on the node unless you want them.
     */
    ssmAccess?: boolean;
    /** Your own instance profile (name) instead. Default none. Not together with `ssmAccess`. */
    iamInstanceProfile?: pulumi.Input<string>;
    /**
     * With `settings.k8sAudit.variant: eks`: give the node's instance role read access to the EKS cluster's
     * CloudWatch audit log (`logs:FilterLogEvents` on `/aws/eks/<cluster>/cluster` in `k8sAudit.eks.region` of
     * this account, nothing else), creating the role and instance profile if `ssmAccess` did not. Default false:
     * no AWS credentials on the node unless you want them. Not together with `iamInstanceProfile` (add the
     * policy from `eksAuditLogPolicy` to your own role instead). The cluster must log `audit` to CloudWatch.
     */
    k8sAuditEksLogAccess?: boolean;
    /**
     * With the k8sAudit webhook variant: security groups (e.g. the control plane's) also allowed to reach the
     * webhook port, besides `k8sAudit.allowedSources`. Default none. The host's own firewall still admits only
     * `allowedSources`, so list the API servers' addresses there too.
     */
    k8sAuditSourceSecurityGroupIds?: pulumi.Input<string>[];

    /** Falco, outputs, rules and host hardening (see `HostSettings`). `install.source` defaults per `os`. */
    settings?: HostSettings;
    /**
     * The hostname this node's Falco reports (see `FalcoHostArgs.hostname`). Default: this resource's name, not
     * the EC2 hostname (`ip-10-...`), which is unknown before launch.
     */
    hostname?: string;
    /** Secret host values (see `FalcoHostArgs.secrets`). */
    secrets?: FalcoHostArgs["secrets"];

    // --- Opt-outs from the hardening defaults ---------------------------------------------------------------
    /**
     * OPT-OUT. Give the node a public IPv4 address (Security Hub EC2.9 fails) and converge over it. Default
     * false. The instance gets the tag `falco-nodes:public-ip=approved`, which the policy pack requires.
     */
    publicIp?: boolean;
    /** OPT-OUT. Accept `0.0.0.0/0` or `::/0` in `sshCidrs` (EC2.13/53/54 fail; the policy pack blocks it). */
    allowWorldSsh?: boolean;
    /** OPT-OUT when false. One-minute CloudWatch metrics. Default true (small extra cost). */
    detailedMonitoring?: boolean;
    /**
     * OPT-OUT when false. Install a generated SSH host key through user data and pin it in FalcoHost. Default
     * true. False keeps every secret out of user data but accepts whatever host key the node presents.
     */
    pinHostKey?: boolean;
}

/** Check what can be checked before any resource is declared; names the argument and the fix. */
function checkArgs(args: AwsFalcoNodeArgs): void {
    if (args.os !== undefined) assertOperatingSystem(args.os, "os");
    if (args.architecture !== undefined) assertArchitecture(args.architecture, "architecture");
    const size = args.rootVolumeSizeGiB;
    if (size !== undefined && (!Number.isInteger(size) || size < 8 || size > 16384))
        throw new Error(`invalid rootVolumeSizeGiB ${size}: must be a whole number of GiB from 8 to 16384`);
    if (args.ssmAccess && args.iamInstanceProfile !== undefined)
        throw new Error("invalid iamInstanceProfile: not together with ssmAccess (add AmazonSSMManagedInstanceCore to your own role instead)");
    if (args.sshUser !== undefined && !/^[a-z_][a-z0-9_-]{0,31}$/.test(args.sshUser))
        throw new Error(`invalid sshUser '${args.sshUser}': must be a Linux user name ([a-z_][a-z0-9_-]*)`);
    for (const k of Object.keys(args.tags ?? {}))
        if (k.startsWith("falco-nodes:"))
            throw new Error(`invalid tags.${k}: the falco-nodes: prefix is reserved (use publicIp: true to approve a public IP)`);
    if (args.k8sAuditEksLogAccess) {
        if (args.iamInstanceProfile !== undefined)
            throw new Error(
                "invalid k8sAuditEksLogAccess: not together with iamInstanceProfile; add the policy eksAuditLogPolicy() " +
                    "renders (logs:FilterLogEvents on /aws/eks/<cluster>/cluster) to your own role instead",
            );
        const k = args.settings?.k8sAudit;
        if (!k?.enabled || k.variant !== K8sAuditVariant.Eks)
            throw new Error("invalid k8sAuditEksLogAccess: only for settings.k8sAudit with enabled: true and variant: eks");
    }
    const noWayIn =
        !args.sshCidrs?.length && !args.sshSourceSecurityGroupIds?.length && !args.securityGroupIds?.length;
    if (noWayIn)
        throw new Error(
            "no SSH path to the node: set sshCidrs (your addresses), sshSourceSecurityGroupIds (a bastion's or the " +
                "in-VPC runner's group) or securityGroupIds (a group that already allows port 22)",
        );
}

/** The node's host settings: Falco's package source defaults to the OS's package manager unless chosen. */
export function nodeHostSettings(os: OperatingSystem, settings: HostSettings | undefined): HostSettings {
    if (settings?.install?.source !== undefined) return settings;
    return { ...settings, install: { ...settings?.install, source: installSourceFor(os) } };
}

export class AwsFalcoNode extends pulumi.ComponentResource {
    /** The EC2 instance. */
    public readonly instance: aws.ec2.Instance;
    public readonly instanceId: pulumi.Output<string>;
    public readonly privateIp: pulumi.Output<string>;
    /** The public IPv4 address, only with `publicIp: true`. */
    public readonly publicIp: pulumi.Output<string | undefined>;
    /** The node's own security group. */
    public readonly securityGroupId: pulumi.Output<string>;
    /** The login key (secret): generated, or the one you gave. */
    public readonly sshPrivateKey: pulumi.Output<string>;
    /** The login user. */
    public readonly sshUser: pulumi.Output<string>;
    /** The pinned SSH host public key (`ssh-ed25519 ...`); undefined with `pinHostKey: false`. */
    public readonly hostPublicKey: pulumi.Output<string | undefined>;
    /** The FalcoHost converging this node. */
    public readonly falcoHost: FalcoHost;
    public readonly bundleHash: pulumi.Output<string>;
    public readonly falcoVersion: pulumi.Output<string>;
    public readonly driver: pulumi.Output<string>;

    constructor(name: string, args: AwsFalcoNodeArgs, opts?: pulumi.ComponentResourceOptions) {
        // Bad arguments fail before anything is registered, naming the argument and the fix.
        checkArgs(args);
        nodeIdentity(name, args.hostname);
        const rules = securityGroupRules({
            sshCidrs: args.sshCidrs,
            allowWorldSsh: args.allowWorldSsh,
            egressCidrs: args.egressCidrs,
        });
        const os = args.os ?? DEFAULT_OS;
        // Bad host settings fail here too, before anything is registered (FalcoHost checks them again).
        const hostSettings = resolveHostSettingsMemo(nodeHostSettings(os, args.settings));
        const webhook = hostSettings.k8sAudit.enabled && hostSettings.k8sAudit.variant === K8sAuditVariant.Webhook;
        if (args.k8sAuditSourceSecurityGroupIds?.length && !webhook)
            throw new Error("invalid k8sAuditSourceSecurityGroupIds: only with settings.k8sAudit enabled, variant webhook");
        super(AWS_FALCO_NODE_TYPE, name, {}, opts);
        const arch = args.architecture ?? DEFAULT_ARCHITECTURE;
        const publicIp = args.publicIp ?? false;
        const pinHostKey = args.pinHostKey ?? true;
        const tags: Record<string, string> = { ...args.tags, Name: args.tags?.Name ?? name, [NODE_TAG]: name };
        const instanceTags = publicIp ? { ...tags, [PUBLIC_IP_APPROVAL_TAG]: PUBLIC_IP_APPROVED } : tags;
        const parent = { parent: this };

        const ami = args.ami ?? aws.ec2.getAmiOutput(amiFilter(os, arch), parent).id;

        // Login key: only its public half goes to AWS; the private half stays a secret in state.
        let loginPrivateKey: pulumi.Output<string>;
        let loginPublicKey: pulumi.Input<string>;
        if (args.sshKey) {
            loginPrivateKey = pulumi.secret(pulumi.output(args.sshKey.privateKey));
            loginPublicKey = args.sshKey.publicKey;
        } else {
            const login = new tls.PrivateKey(`${name}-login`, { algorithm: "ED25519" }, parent);
            loginPrivateKey = pulumi.secret(login.privateKeyOpenssh);
            loginPublicKey = login.publicKeyOpenssh;
        }
        const keyPair = new aws.ec2.KeyPair(`${name}-login`, { publicKey: loginPublicKey, tags }, parent);

        // Host key: generated here so it can be pinned before the node ever answers (see userdata.ts).
        const hostKey = pinHostKey ? new tls.PrivateKey(`${name}-host`, { algorithm: "ED25519" }, parent) : undefined;
        const hostPublicKey = hostKey ? hostKey.publicKeyOpenssh.apply((k) => k.trim()) : undefined;
        const userData = hostKey
            ? pulumi.secret(
                  pulumi
                      .all([hostKey.privateKeyOpenssh, hostKey.publicKeyOpenssh])
                      .apply(([privateKeyOpenssh, publicKeyOpenssh]) => renderUserData({ hostKey: { privateKeyOpenssh, publicKeyOpenssh } })),
              )
            : undefined;

        const vpcId = aws.ec2.getSubnetOutput({ id: args.subnetId }, parent).vpcId;
        const securityGroup = new aws.ec2.SecurityGroup(
            `${name}-sg`,
            {
                description: webhook
                    ? `falco-nodes ${name}: SSH and the k8saudit webhook from listed sources only`
                    : `falco-nodes ${name}: SSH from listed sources only`,
                vpcId,
                ingress: [
                    ...rules.ingress,
                    ...k8sAuditIngressRules(hostSettings),
                    ...(args.k8sAuditSourceSecurityGroupIds?.length
                        ? [{
                              description: "Kubernetes audit webhook (Falco k8saudit) from listed security groups",
                              protocol: "tcp",
                              fromPort: hostSettings.k8sAudit.port,
                              toPort: hostSettings.k8sAudit.port,
                              securityGroups: args.k8sAuditSourceSecurityGroupIds,
                          }]
                        : []),
                    ...(args.sshSourceSecurityGroupIds?.length
                        ? [{
                              description: "SSH from listed security groups (bastion, in-VPC runner)",
                              protocol: "tcp",
                              fromPort: SSH_PORT,
                              toPort: SSH_PORT,
                              securityGroups: args.sshSourceSecurityGroupIds,
                          }]
                        : []),
                ],
                egress: rules.egress,
                tags,
            },
            parent,
        );

        let iamInstanceProfile: pulumi.Input<string> | undefined = args.iamInstanceProfile;
        if (args.ssmAccess || args.k8sAuditEksLogAccess) {
            const partition = aws.getPartitionOutput({}, parent).partition;
            // `-ssm` kept for nodes that had only SSM access before, so their role is not replaced.
            const roleName = args.ssmAccess ? `${name}-ssm` : `${name}-node`;
            const purposes = [...(args.ssmAccess ? ["Systems Manager access"] : []), ...(args.k8sAuditEksLogAccess ? ["EKS audit log read"] : [])];
            const role = new aws.iam.Role(
                roleName,
                {
                    description: `falco-nodes ${name}: ${purposes.join(", ")}`,
                    assumeRolePolicy: JSON.stringify({
                        Version: "2012-10-17",
                        Statement: [{ Effect: "Allow", Principal: { Service: "ec2.amazonaws.com" }, Action: "sts:AssumeRole" }],
                    }),
                    tags,
                },
                parent,
            );
            if (args.ssmAccess)
                new aws.iam.RolePolicyAttachment(
                    `${name}-ssm`,
                    { role: role.name, policyArn: pulumi.interpolate`arn:${partition}:iam::aws:policy/${SSM_MANAGED_POLICY}` },
                    parent,
                );
            if (args.k8sAuditEksLogAccess) {
                const eks = hostSettings.k8sAudit.eks!;
                const accountId = aws.getCallerIdentityOutput({}, parent).accountId;
                new aws.iam.RolePolicy(
                    `${name}-k8saudit-eks`,
                    {
                        role: role.id,
                        policy: pulumi
                            .all([partition, accountId])
                            .apply(([p, account]) =>
                                JSON.stringify(eksAuditLogPolicy({ partition: p, region: eks.region, accountId: account, clusterName: eks.clusterName })),
                            ),
                    },
                    parent,
                );
            }
            iamInstanceProfile = new aws.iam.InstanceProfile(roleName, { role: role.name, tags }, parent).name;
        }

        this.instance = new aws.ec2.Instance(
            `${name}-instance`,
            {
                ami,
                instanceType: args.instanceType ?? defaultInstanceType(arch),
                subnetId: args.subnetId,
                vpcSecurityGroupIds: [securityGroup.id, ...(args.securityGroupIds ?? [])],
                keyName: keyPair.keyName,
                iamInstanceProfile,
                associatePublicIpAddress: publicIp,
                metadataOptions: {
                    httpEndpoint: "enabled",
                    httpTokens: "required",
                    // 1: a container behind a bridge (one hop more) cannot reach IMDS and the node's role.
                    httpPutResponseHopLimit: 1,
                    instanceMetadataTags: "disabled",
                },
                rootBlockDevice: {
                    encrypted: true,
                    kmsKeyId: args.kmsKeyId,
                    volumeType: "gp3",
                    volumeSize: args.rootVolumeSizeGiB ?? DEFAULT_ROOT_VOLUME_GIB,
                    deleteOnTermination: true,
                    tags,
                },
                monitoring: args.detailedMonitoring ?? true,
                ebsOptimized: true,
                userData,
                // cloud-init applies user data on first boot only, and the pinned key must match the host.
                userDataReplaceOnChange: true,
                tags: instanceTags,
            },
            {
                parent: this,
                additionalSecretOutputs: ["userData"],
                ignoreChanges: args.ami === undefined && !args.replaceOnNewAmi ? ["ami"] : [],
            },
        );

        const sshUser = args.sshUser ?? sshUserFor(os);
        this.falcoHost = new FalcoHost(
            name,
            {
                connection: {
                    host: publicIp ? this.instance.publicIp : this.instance.privateIp,
                    user: sshUser,
                    privateKey: loginPrivateKey,
                    hostKey: hostPublicKey,
                    proxy: args.bastion,
                },
                settings: nodeHostSettings(os, args.settings),
                hostname: args.hostname,
                secrets: args.secrets,
                // The FalcoHost goes only with its instance (same name, same parent), which the stack terminates
                // right after: an SSH uninstall first is pointless and, with the host unreachable, holds destroy up.
                uninstallOnDelete: false,
            },
            parent,
        );

        this.instanceId = this.instance.id;
        this.privateIp = this.instance.privateIp;
        this.publicIp = publicIp ? this.instance.publicIp : pulumi.output(undefined);
        this.securityGroupId = securityGroup.id;
        this.sshPrivateKey = loginPrivateKey;
        this.sshUser = pulumi.output(sshUser);
        this.hostPublicKey = hostPublicKey ?? pulumi.output(undefined);
        this.bundleHash = this.falcoHost.bundleHash;
        this.falcoVersion = this.falcoHost.falcoVersion;
        this.driver = this.falcoHost.driver;

        this.registerOutputs({
            instanceId: this.instanceId,
            privateIp: this.privateIp,
            publicIp: this.publicIp,
            securityGroupId: this.securityGroupId,
            sshPrivateKey: this.sshPrivateKey,
            sshUser: this.sshUser,
            hostPublicKey: this.hostPublicKey,
            bundleHash: this.bundleHash,
            falcoVersion: this.falcoVersion,
            driver: this.driver,
        });
    }
}
