/**
 * The stack's configuration (`falco-nodes:*` keys in `stacks/Pulumi.<env>.yaml`), typed and validated in one
 * place, so `index.ts`, the render CLI and the tests read a stack file the same way.
 *
 * `parseStackConfig` checks everything that can be checked without a cloud or a host, and reports every
 * problem at once, each naming the full config key and the fix, before the program declares any resource.
 * Secret keys are never read here: only whether they are set (and set as secrets). The program reads their
 * values with `config.requireSecret` (see `secrets.ts`).
 *
 * Pure: no Pulumi, no I/O (files named by `ruleFiles` are read through the `readFile` the caller passes).
 */
import { z } from "zod";
import { zodProblems } from "../validation";
import type { AwsFalcoNodeArgs } from "../aws/node";
import { Architecture, DEFAULT_OS, installSourceFor, OperatingSystem } from "../aws/ami";
import { securityGroupRules } from "../aws/securityGroup";
import {
    ClusterSettingsError,
    FalcoClusterSettings,
    resolveClusterSettings,
    SecretPresence as ClusterSecretPresence,
} from "../cluster/settings";
import {
    HostSettings,
    HostSettingsError,
    httpOutputNeedsUrl,
    ResolvedHostSettings,
} from "../host/settings";
import { loginLockoutProblem } from "../host/hardening";
import { resolveHostSettingsMemo } from "../host/settingsMemo";
import {
    AlertingSettings,
    AlertingSettingsError,
    DEFAULT_SIDEKICK_JOB,
    ExpectedNode,
    ResolvedAlertingSettings,
    resolveAlertingSettings,
} from "../alerting";
import { chartNames } from "../cluster/names";
import { falcoHostname, hostnameProblem } from "../shared/hostname";
import { mergeSettings } from "./merge";

/** The config namespace: the project name. Every key is `falco-nodes:<key>`. */
export const CONFIG_NAMESPACE = "falco-nodes";

/** Plain (non-secret) keys, each holding structured YAML. */
export const PLAIN_KEYS = ["falco", "nodes", "aws", "ssh", "cluster", "ruleFiles", "alerting"] as const;
export type PlainKey = (typeof PLAIN_KEYS)[number];

/** Keys that must be set with `pulumi config set --secret` (or come from an ESC environment as secrets). */
export const SECRET_KEYS = [
    "sshPrivateKey",
    "bastionPrivateKey",
    "httpOutputUrl",
    "kubeconfig",
    "slackWebhookUrl",
    "webhookAddress",
    "webhookCustomHeaders",
    "elasticsearchPassword",
    "webUiPassword",
] as const;
export type SecretKey = (typeof SECRET_KEYS)[number];

/** The cluster's secrets: passed to FalcoCluster as they are. */
export const CLUSTER_SECRET_KEYS = [
    "slackWebhookUrl",
    "webhookAddress",
    "webhookCustomHeaders",
    "elasticsearchPassword",
    "webUiPassword",
] as const satisfies readonly SecretKey[];

export const NodeKind = {
    /** An EC2 instance launched and converged by `AwsFalcoNode`. */
    Aws: "aws",
    /** A server you already run, reached over SSH and converged by `FalcoHost`. */
    Existing: "existing",
} as const;
export type NodeKind = (typeof NodeKind)[keyof typeof NodeKind];

// --- what a stack file holds ------------------------------------------------------------------------------

/** An SSH endpoint: an existing node or the bastion. */
export interface SshEndpoint {
    /** DNS name or IP address. */
    host: string;
    /** SSH port. Default 22. */
    port?: number;
    /** Login user. Existing nodes: the fleet's `ssh.user` unless set here. A non-root user needs passwordless sudo. */
    user?: string;
    /**
     * The server's public host key (`ssh-ed25519 AAAA...`, from `ssh-keyscan` checked out of band or the
     * server's `/etc/ssh/ssh_host_ed25519_key.pub`). Required unless `ssh.allowUnpinnedHostKeys`: without it
     * the first connection, which carries the bundle and its secrets, trusts whoever answers.
     */
    hostKey?: string;
}

/** `falco-nodes:ssh`: how to reach existing servers (and, through `bastion`, private AWS nodes). */
export interface SshFleetConfig {
    /** Login user on existing servers unless a node sets its own. No default: `root` is locked out by the sshd hardening. */
    user?: string;
    /** SSH port on existing servers unless a node sets its own. Default 22. */
    port?: number;
    /**
     * Jump host for every node (existing and AWS) unless a node sets `viaBastion: false`. Its private key is
     * the secret `bastionPrivateKey` (default: `sshPrivateKey`). Default none: direct connections.
     */
    bastion?: SshEndpoint;
    /** Accept servers (and a bastion) without a pinned `hostKey`. Default false; a lab-only switch. */
    allowUnpinnedHostKeys?: boolean;
}

/** `falco-nodes:aws` (fleet defaults) and `nodes[i].aws` (per node): `AwsFalcoNodeArgs`' plain settings. */
export interface AwsNodeSettings
    extends Pick<
        AwsFalcoNodeArgs,
        | "os"
        | "architecture"
        | "replaceOnNewAmi"
        | "tags"
        | "rootVolumeSizeGiB"
        | "sshCidrs"
        | "egressCidrs"
        | "sshUser"
        | "ssmAccess"
        | "publicIp"
        | "allowWorldSsh"
        | "detailedMonitoring"
        | "pinHostKey"
        | "k8sAuditEksLogAccess"
    > {
    /** See `AwsFalcoNodeArgs.ami`. */
    ami?: string;
    /** See `AwsFalcoNodeArgs.instanceType`. */
    instanceType?: string;
    /** See `AwsFalcoNodeArgs.subnetId`. Required, on the fleet or the node. */
    subnetId?: string;
    /** See `AwsFalcoNodeArgs.securityGroupIds`. */
    securityGroupIds?: string[];
    /** See `AwsFalcoNodeArgs.kmsKeyId`. */
    kmsKeyId?: string;
    /** See `AwsFalcoNodeArgs.sshSourceSecurityGroupIds` (typically the bastion's group). */
    sshSourceSecurityGroupIds?: string[];
    /** See `AwsFalcoNodeArgs.iamInstanceProfile`. */
    iamInstanceProfile?: string;
    /** See `AwsFalcoNodeArgs.k8sAuditSourceSecurityGroupIds` (the API servers' group, for the webhook variant). */
    k8sAuditSourceSecurityGroupIds?: string[];
}

/** One entry of `falco-nodes:nodes`, as written. */
export interface NodeInput {
    /** Node name: lowercase letters, digits, `-`. Names resources and stack outputs; renaming replaces the node. */
    name: string;
    /** `aws` (launch an EC2 instance) or `existing` (a server reached over SSH). */
    kind: NodeKind;
    /**
     * The hostname this node's Falco reports in every alert and heartbeat (`FALCO_HOSTNAME` in its unit), and so
     * the `hostname` the central alert rules expect for it. Default: `name`. A DNS name; set it to keep a name
     * dashboards or a SIEM already know the machine by.
     */
    hostname?: string;
    /** Overrides of the fleet's `falco-nodes:falco`, merged as `merge.ts` describes. */
    falco?: HostSettings;
    /** `existing` only: the server's address, port, user and pinned host key. */
    ssh?: Partial<SshEndpoint> & { /** Connect through the fleet bastion. Default true when one is configured. */ viaBastion?: boolean };
    /** `aws` only: overrides of the fleet's `falco-nodes:aws`. */
    aws?: AwsNodeSettings & { /** Connect through the fleet bastion. Default true when one is configured. */ viaBastion?: boolean };
}

/** `falco-nodes:cluster`: the in-cluster layer. Every `FalcoClusterSettings` field, plus `enabled`. */
export interface ClusterConfig extends FalcoClusterSettings {
    /** Deploy Falco and Falcosidekick into the cluster of the secret `kubeconfig`. Default false. */
    enabled?: boolean;
}

// --- what the program gets --------------------------------------------------------------------------------

interface NodeCommon {
    name: string;
    /** The hostname its Falco reports (`falcoHostname`: `hostname` as written, else `name`). */
    hostname: string;
    /** The fleet settings with this node's overrides merged in (validated). */
    falco: HostSettings;
    /** What the host gets, every default filled in (an AWS node's package source follows its OS). */
    resolved: ResolvedHostSettings;
    /** Whether this node receives the secret `httpOutputUrl` (its HTTP output is on). */
    usesHttpOutputUrl: boolean;
    /** Connect through the fleet bastion. */
    viaBastion: boolean;
}
export interface ExistingNodeConfig extends NodeCommon {
    kind: "existing";
    ssh: { host: string; port: number; user: string; hostKey?: string };
}
export interface AwsNodeConfig extends NodeCommon {
    kind: "aws";
    /** The fleet's `aws` with this node's overrides laid over (shallow: lists replace). */
    aws: AwsNodeSettings & { subnetId: string };
}
export type NodeConfig = ExistingNodeConfig | AwsNodeConfig;

export interface StackConfig {
    /** Fleet-wide Falco settings (`falco-nodes:falco`), with `ruleFiles` added to `rules.custom`. */
    falco: HostSettings;
    nodes: NodeConfig[];
    aws: AwsNodeSettings;
    ssh: SshFleetConfig;
    /** Present when `cluster.enabled`; `rules` default to the fleet's, so hosts and cluster load the same files. */
    cluster?: FalcoClusterSettings;
    /** Which secrets are set (their values are never read here). */
    secrets: Record<SecretKey, boolean>;
    /** With `cluster`: which of its secrets count as given (set, or expected from outside where the settings need them). */
    clusterSecretPresence?: ClusterSecretPresence;
    /** `falco-nodes:alerting`, resolved, with the nodes it expects (see `StackAlerting`). */
    alerting: StackAlerting;
}

/** The central alert rules' inputs: settings, every declared node as the alerts see it, the Falcosidekick job. */
export interface StackAlerting {
    settings: ResolvedAlertingSettings;
    /** Every node of the stack, with the hostname its Falco reports (`alerting.hostnames`, default its name). */
    nodes: ExpectedNode[];
    /** `alerting.sidekickJob`, default the cluster layer's Falcosidekick Service, else `falcosidekick`. */
    sidekickJob: string;
    /** Where FalcoCluster puts the PrometheusRule (with `settings.prometheusRule.enabled`). */
    prometheusRuleNamespace?: string;
}

// --- input to the parser ----------------------------------------------------------------------------------

/** Where the parser reads config from: the running program's config, or a stack file. */
export interface StackConfigSource {
    /** Keys set under `falco-nodes:`, without the namespace. */
    keys(): string[];
    /** A plain key's value: structured values as objects/arrays (JSON text is parsed), strings as strings. */
    value(key: string): unknown;
    /** Whether the key's value is stored encrypted. */
    isSecret(key: string): boolean;
}

export interface ParseOptions {
    /** Reads a file named in `ruleFiles` (relative to the project directory); undefined when missing. */
    readFile?: (relativePath: string) => string | undefined;
    /**
     * Secrets may be supplied from outside what the source shows (the stack imports a Pulumi ESC environment
     * and the source is the bare stack file). Missing secrets are then not reported.
     */
    secretsMayBeExternal?: boolean;
}

export interface ConfigProblem {
    /** Full key, e.g. `falco-nodes:nodes[1].ssh.host`. */
    key: string;
    /** What is wrong and how to fix it. */
    message: string;
}

/** Bad stack config: every problem, each with its key and the fix. */
export class StackConfigError extends Error {
    constructor(readonly problems: ConfigProblem[]) {
        super(
            `invalid stack configuration (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n` +
                problems.map((p) => `  ${p.key}: ${p.message}`).join("\n"),
        );
        this.name = "StackConfigError";
    }
}

// --- validation -------------------------------------------------------------------------------------------
// Values that end up in resource names, SSH connections or AWS arguments are held to allowlists here.

const NODE_NAME = /^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$/;
const HOST = /^([A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|[0-9A-Fa-f:.]{2,45})$/;
const LINUX_USER = /^[a-z_][a-z0-9_-]{0,31}$/;
const HOST_KEY = /^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa) [A-Za-z0-9+/]+={0,2}( [^\n]{0,200})?$/;
const AWS_ID = (prefix: string) => new RegExp(`^${prefix}-[0-9a-f]{8,17}$`);
const RULE_FILE_PATH = /^[A-Za-z0-9_][A-Za-z0-9._\/-]*\.ya?ml$/;
const RULE_FILE_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;

const objValues = <T extends Record<string, string>>(o: T) => Object.values(o) as [T[keyof T], ...T[keyof T][]];
const enumOf = <T extends readonly [string, ...string[]]>(values: T) =>
    z.enum(values, { message: `must be one of: ${values.join(", ")}` });

const port = z.number({ message: "must be a port number" }).int().min(1).max(65535, { message: "must be a port number (1-65535)" });
const host = z.string({ message: "must be a DNS name or IP address" }).regex(HOST, {
    message: "must be a DNS name or IP address (letters, digits, . - :), no user@ or :port",
});
const user = z.string({ message: "must be a Linux user name" }).regex(LINUX_USER, {
    message: "must be a Linux user name ([a-z_][a-z0-9_-]*)",
});
const hostKey = z.string({ message: "must be an OpenSSH public key line" }).regex(HOST_KEY, {
    message: "must be one OpenSSH public key line such as 'ssh-ed25519 AAAA...' (from the server's /etc/ssh/ssh_host_ed25519_key.pub)",
});
const awsId = (prefix: string, what: string) =>
    z.string({ message: `must be ${what} id (${prefix}-...)` }).regex(AWS_ID(prefix), { message: `must be ${what} id such as ${prefix}-0123456789abcdef0` });

const endpoint = z.object({ host, port, user, hostKey }).partial().strict();

const awsSettings = z
    .object({
        os: enumOf(objValues(OperatingSystem)),
        architecture: enumOf(objValues(Architecture)),
        ami: awsId("ami", "an AMI"),
        replaceOnNewAmi: z.boolean(),
        instanceType: z.string().regex(/^[a-z][a-z0-9-]*\.[a-z0-9]+$/, { message: "must be an EC2 instance type such as t3.medium" }),
        subnetId: awsId("subnet", "a subnet"),
        securityGroupIds: z.array(awsId("sg", "a security group")),
        tags: z.record(z.string(), z.string({ message: "tag values must be strings" })),
        rootVolumeSizeGiB: z.number().int().min(8, { message: "must be 8 GiB or more" }).max(16384, { message: "must be at most 16384 GiB" }),
        kmsKeyId: z.string().regex(/^(arn:[a-z-]+:kms:[a-z0-9-]+:[0-9]{12}:(key|alias)\/[A-Za-z0-9\/_-]+|[0-9a-f-]{36}|alias\/[A-Za-z0-9\/_-]+)$/, {
            message: "must be a KMS key id, alias/... or key ARN",
        }),
        sshCidrs: z.array(z.string()),
        sshSourceSecurityGroupIds: z.array(awsId("sg", "a security group")),
        egressCidrs: z.array(z.string()),
        sshUser: user,
        ssmAccess: z.boolean(),
        iamInstanceProfile: z.string().regex(/^[A-Za-z0-9+=,.@_-]{1,128}$/, { message: "must be an instance profile name" }),
        publicIp: z.boolean(),
        allowWorldSsh: z.boolean(),
        detailedMonitoring: z.boolean(),
        pinHostKey: z.boolean(),
        k8sAuditEksLogAccess: z.boolean(),
        k8sAuditSourceSecurityGroupIds: z.array(awsId("sg", "a security group")),
    })
    .partial()
    .strict();

const nodeSchema = z
    .object({
        name: z.string({ message: "required: a node name (lowercase letters, digits, -)" }).regex(NODE_NAME, {
            message: "must be 1-40 lowercase letters, digits or - (it names resources and stack outputs)",
        }),
        kind: z.enum(["aws", "existing"], {
            message: "required: 'aws' (launch an EC2 instance) or 'existing' (a server reached over SSH)",
        }),
        hostname: z.string({ message: "must be a string: the hostname this node's Falco reports (default the node name)" }).superRefine((v, ctx) => {
            const problem = hostnameProblem(v);
            if (problem) ctx.addIssue({ code: "custom", message: `${problem} (it is what this node's Falco reports; default the node name)` });
        }),
        falco: z.record(z.string(), z.unknown(), { message: "must be a map of host settings (HostSettings)" }),
        ssh: endpoint.extend({ viaBastion: z.boolean() }).partial().strict(),
        aws: awsSettings.extend({ viaBastion: z.boolean() }).partial().strict(),
    })
    .partial({ hostname: true, falco: true, ssh: true, aws: true })
    .strict();

const stackSchema = z
    .object({
        falco: z.record(z.string(), z.unknown(), { message: "must be a map of host settings (HostSettings)" }),
        // Each node is checked on its own (step 6), so one malformed node does not hide the others' problems.
        nodes: z.array(z.unknown(), { message: "must be a list of nodes (- name: ..., kind: aws|existing)" }),
        aws: awsSettings,
        ssh: z
            .object({
                user,
                port,
                bastion: endpoint.required({ host: true }),
                allowUnpinnedHostKeys: z.boolean(),
            })
            .partial()
            .strict(),
        cluster: z.record(z.string(), z.unknown(), { message: "must be a map of cluster settings (FalcoClusterSettings)" }),
        // Each path is checked with the others in step 3, so every bad entry is reported at once.
        ruleFiles: z.array(z.string({ message: "must be a path" }), { message: "must be a list of rule file paths relative to the project directory" }),
        // Checked by resolveAlertingSettings (step 8), which names each bad key.
        alerting: z.record(z.string(), z.unknown(), { message: "must be a map of alerting settings (AlertingSettings in components/alerting/settings.ts)" }),
    })
    .partial();

type ParsedStack = z.infer<typeof stackSchema>;

function issuesToProblems(issues: z.core.$ZodIssue[]): ConfigProblem[] {
    return zodProblems(issues, "unknown key; check the spelling (the keys are documented in Pulumi.yaml and stacks/*.yaml)", CONFIG_NAMESPACE + ":");
}

/** Fold a component resolver's own error (keys relative to its settings) into ours. */
function collect(problems: ConfigProblem[], prefix: string, fn: () => void): void {
    try {
        fn();
    } catch (e) {
        if (e instanceof HostSettingsError || e instanceof ClusterSettingsError)
            for (const p of e.problems) problems.push({ key: `${prefix}${p.key}`, message: p.message });
        else problems.push({ key: prefix.replace(/\.$/, ""), message: (e as Error).message });
    }
}

function parseJsonish(v: unknown): unknown {
    if (typeof v !== "string") return v;
    const t = v.trim();
    if (!t.startsWith("{") && !t.startsWith("[")) return v;
    try {
        return JSON.parse(t);
    } catch {
        return v;
    }
}

/** How to set a secret without it landing in shell history or a process list. */
export function setSecretHint(key: SecretKey): string {
    const example: Record<SecretKey, string> = {
        sshPrivateKey: "pulumi config set --secret falco-nodes:sshPrivateKey < ~/.ssh/falco_nodes_ed25519",
        bastionPrivateKey: "pulumi config set --secret falco-nodes:bastionPrivateKey < ~/.ssh/bastion_ed25519",
        httpOutputUrl: "pulumi config set --secret falco-nodes:httpOutputUrl < url.txt",
        kubeconfig: "pulumi config set --secret falco-nodes:kubeconfig < ~/.kube/prod.yaml",
        slackWebhookUrl: "pulumi config set --secret falco-nodes:slackWebhookUrl < slack-webhook.txt",
        webhookAddress: "pulumi config set --secret falco-nodes:webhookAddress < webhook.txt",
        webhookCustomHeaders: "pulumi config set --secret falco-nodes:webhookCustomHeaders < headers.txt",
        elasticsearchPassword: "pulumi config set --secret falco-nodes:elasticsearchPassword < es-password.txt",
        webUiPassword: "pulumi config set --secret falco-nodes:webUiPassword < ui-password.txt",
    };
    return `set it with \`${example[key]}\` (or from a Pulumi ESC environment as a secret)`;
}

/**
 * Read, validate and default the stack's configuration. Throws `StackConfigError` with every problem found.
 */
export function parseStackConfig(source: StackConfigSource, options: ParseOptions = {}): StackConfig {
    const problems: ConfigProblem[] = [];
    const known = new Set<string>([...PLAIN_KEYS, ...SECRET_KEYS]);

    // 1. Keys: unknown ones, and secrets stored in plain text.
    // Unset, null and "" (Pulumi.yaml's default for optional secrets) all mean "not set".
    const present = new Set(source.keys().filter((k) => source.value(k) !== undefined && source.value(k) !== null && source.value(k) !== ""));
    for (const k of present) {
        if (!known.has(k))
            problems.push({
                key: `${CONFIG_NAMESPACE}:${k}`,
                message: `unknown key; the keys are ${[...PLAIN_KEYS, ...SECRET_KEYS].join(", ")} (see Pulumi.yaml)`,
            });
    }
    const secrets = Object.fromEntries(SECRET_KEYS.map((k) => [k, present.has(k)])) as Record<SecretKey, boolean>;
    for (const k of SECRET_KEYS)
        if (present.has(k) && !source.isSecret(k))
            problems.push({
                key: `${CONFIG_NAMESPACE}:${k}`,
                message: `is stored in plain text: run \`pulumi config rm ${CONFIG_NAMESPACE}:${k}\`, then ${setSecretHint(k)}`,
            });

    // 2. Shape of the plain keys, each on its own, so a slip in one does not hide the problems in the others.
    const s: ParsedStack = {};
    const failed = new Set<PlainKey>();
    for (const k of PLAIN_KEYS) {
        if (!present.has(k)) continue;
        const r = stackSchema.shape[k].safeParse(parseJsonish(source.value(k)));
        if (r.success) (s as Record<string, unknown>)[k] = r.data;
        else {
            failed.add(k);
            problems.push(...issuesToProblems(r.error.issues.map((i) => ({ ...i, path: [k, ...i.path] }))));
        }
    }
    const ssh: SshFleetConfig = s.ssh ?? {};
    const fleetAws: AwsNodeSettings = s.aws ?? {};
    const allowUnpinned = ssh.allowUnpinnedHostKeys ?? false;

    // 3. Rule files: read into the fleet's rules.custom, keyed by file name.
    let falco: HostSettings = (s.falco ?? {}) as HostSettings;
    const ruleFiles = s.ruleFiles ?? [];
    if (ruleFiles.length) {
        const custom: Record<string, string> = { ...(falco.rules?.custom ?? {}) };
        const problemWith = (file: string, name: string): string | undefined => {
            if (!RULE_FILE_PATH.test(file) || file.split("/").includes(".."))
                return "must be a relative path to a .yaml file inside the project (letters, digits, . _ / -; no '..')";
            if (!RULE_FILE_NAME.test(name))
                return `file name '${name}' must match [a-z0-9][a-z0-9_-]* (it becomes the rule file's name on the hosts); rename the file`;
            if (name in custom) return `a rule file named '${name}' is already in falco.rules.custom or ruleFiles; rename one`;
            return undefined;
        };
        ruleFiles.forEach((file, i) => {
            const key = `${CONFIG_NAMESPACE}:ruleFiles[${i}]`;
            const name = file.split("/").pop()!.replace(/\.ya?ml$/, "");
            const problem = problemWith(file, name);
            const text = problem ? undefined : options.readFile?.(file);
            if (problem) problems.push({ key, message: problem });
            else if (text === undefined)
                problems.push({ key, message: `file not found: ${file} (paths are relative to the directory holding Pulumi.yaml)` });
            else custom[name] = text;
        });
        falco = { ...falco, rules: { ...falco.rules, custom } };
    }

    // 4. Fleet host settings, then each node's merged settings.
    const fleetProblems: ConfigProblem[] = [];
    // Memoized by content: most nodes resolve to the fleet's settings, and resolving parses every rule file.
    collect(fleetProblems, `${CONFIG_NAMESPACE}:falco.`, () => resolveHostSettingsMemo(falco));
    problems.push(...fleetProblems);
    const fleetProblemKeys = new Set(fleetProblems.map((p) => p.key.slice(`${CONFIG_NAMESPACE}:falco.`.length)));

    // 5. Bastion.
    if (!failed.has("ssh") && ssh.bastion && ssh.bastion.hostKey === undefined && !allowUnpinned)
        problems.push({
            key: `${CONFIG_NAMESPACE}:ssh.bastion.hostKey`,
            message: "required: pin the bastion's host key (its /etc/ssh/ssh_host_ed25519_key.pub), or set ssh.allowUnpinnedHostKeys: true in a lab",
        });
    if (ssh.bastion && ssh.bastion.user === undefined)
        problems.push({ key: `${CONFIG_NAMESPACE}:ssh.bastion.user`, message: "required: the login user on the bastion" });

    // 6. Nodes.
    const names = new Set<string>();
    /** Where each node was written in `falco-nodes:nodes`, for keys of problems found later. */
    const nodeIndex = new Map<string, number>();
    const existingNames: string[] = [];
    const nodes: NodeConfig[] = [];
    // Node checks build on the fleet's ssh and aws settings: with those malformed they would only mislead.
    const nodeInputs = failed.has("ssh") || failed.has("aws") ? [] : (s.nodes ?? []);
    let wellFormed = 0;
    nodeInputs.forEach((raw, i) => {
        const at = `${CONFIG_NAMESPACE}:nodes[${i}]`;
        const shapedNode = nodeSchema.safeParse(raw);
        if (!shapedNode.success) {
            problems.push(...issuesToProblems(shapedNode.error.issues.map((x) => ({ ...x, path: ["nodes", i, ...x.path] }))));
            return;
        }
        wellFormed++;
        const n = shapedNode.data;
        if (names.has(n.name)) problems.push({ key: `${at}.name`, message: `'${n.name}' is used by another node; node names must be unique` });
        names.add(n.name);
        if (!nodeIndex.has(n.name)) nodeIndex.set(n.name, i);

        const merged = mergeSettings<HostSettings>(falco, n.falco ?? {});
        // What the host really gets: an AWS node's package source follows its OS unless set (as AwsFalcoNode does).
        const os = n.kind === NodeKind.Aws ? (n.aws?.os ?? fleetAws.os ?? DEFAULT_OS) : undefined;
        const effective: HostSettings =
            os && merged.install?.source === undefined ? { ...merged, install: { ...merged.install, source: installSourceFor(os) } } : merged;
        let resolved: ResolvedHostSettings | undefined;
        const nodeProblems: ConfigProblem[] = [];
        collect(nodeProblems, "", () => {
            // A copy of the shared resolution: the caller gets an object of its own per node, as before.
            resolved = structuredClone(resolveHostSettingsMemo(effective));
        });
        // A fleet problem shows up once, under falco.*, not again under every node.
        for (const p of nodeProblems)
            if (!fleetProblemKeys.has(p.key)) problems.push({ key: `${at}.falco.${p.key}`, message: p.message });

        let usesHttpOutputUrl = false;
        if (resolved) {
            const missing = httpOutputNeedsUrl(resolved, secrets.httpOutputUrl || !!options.secretsMayBeExternal);
            if (missing)
                problems.push({
                    key: `${at}.falco.outputs.http`,
                    message: `${missing.replace("the secret httpOutputUrl", "the secret falco-nodes:httpOutputUrl")}`,
                });
            usesHttpOutputUrl = resolved.outputs.http.enabled && secrets.httpOutputUrl;
        }

        if (n.kind === NodeKind.Existing) {
            if (n.aws) problems.push({ key: `${at}.aws`, message: "only for kind: aws; remove it, or set kind: aws" });
            const nssh = n.ssh ?? {};
            if (nssh.host === undefined) problems.push({ key: `${at}.ssh.host`, message: "required for kind: existing: the server's DNS name or IP address" });
            const loginUser = nssh.user ?? ssh.user;
            if (loginUser === undefined)
                problems.push({ key: `${at}.ssh.user`, message: "required: set the login user here or fleet-wide as falco-nodes:ssh.user (a sudo user; root is locked out by the sshd hardening)" });
            if (nssh.hostKey === undefined && !allowUnpinned)
                problems.push({
                    key: `${at}.ssh.hostKey`,
                    message: "required: pin the server's host key (its /etc/ssh/ssh_host_ed25519_key.pub, checked out of band), or set falco-nodes:ssh.allowUnpinnedHostKeys: true in a lab",
                });
            if (loginUser === "root" && resolved && loginLockoutProblem(resolved, loginUser))
                problems.push({
                    key: `${at}.ssh.user`,
                    message: "is root, but the sshd hardening (on by default) sets PermitRootLogin no and would lock the next converge out: log in as a sudo user, or set falco.hardening.sshd.permitRootLogin: true",
                });
            if (nssh.viaBastion && !ssh.bastion)
                problems.push({ key: `${at}.ssh.viaBastion`, message: "no bastion is configured: set falco-nodes:ssh.bastion or remove viaBastion" });
            existingNames.push(n.name);
            if (resolved && nssh.host !== undefined && loginUser !== undefined)
                nodes.push({
                    kind: "existing",
                    name: n.name,
                    hostname: falcoHostname(n.name, n.hostname),
                    falco: merged,
                    resolved,
                    usesHttpOutputUrl,
                    viaBastion: nssh.viaBastion ?? !!ssh.bastion,
                    ssh: { host: nssh.host, port: nssh.port ?? ssh.port ?? 22, user: loginUser, hostKey: nssh.hostKey },
                });
        } else {
            if (n.ssh) problems.push({ key: `${at}.ssh`, message: "only for kind: existing (AWS nodes get their address, key and pinned host key at launch); use aws.* instead" });
            const { viaBastion, ...nodeAws } = n.aws ?? {};
            const a: AwsNodeSettings = { ...fleetAws, ...nodeAws };
            const awsAt = (k: string) => (k in nodeAws ? `${at}.aws.${k}` : `${CONFIG_NAMESPACE}:aws.${k}`);
            if (!a.subnetId)
                problems.push({ key: `${at}.aws.subnetId`, message: "required: set falco-nodes:aws.subnetId for the fleet or aws.subnetId on the node (prefer a private subnet)" });
            if (!a.sshCidrs?.length && !a.sshSourceSecurityGroupIds?.length && !a.securityGroupIds?.length)
                problems.push({
                    key: `${at}.aws.sshSourceSecurityGroupIds`,
                    message: "no SSH path to the node: set aws.sshSourceSecurityGroupIds (the bastion's or in-VPC runner's group), aws.sshCidrs or aws.securityGroupIds, fleet-wide or on the node",
                });
            try {
                securityGroupRules({ sshCidrs: a.sshCidrs, allowWorldSsh: a.allowWorldSsh, egressCidrs: a.egressCidrs });
            } catch (e) {
                // The message names the argument (`invalid sshCidrs[2] ...`): point at the stack key that set it.
                const message = (e as Error).message;
                const arg = /^invalid (sshCidrs|egressCidrs)(\[[0-9]+\])?/.exec(message);
                problems.push({ key: awsAt(arg?.[1] ?? "sshCidrs") + (arg?.[2] ?? ""), message: message.replace(/^invalid \S+ /, "") });
            }
            if (a.ssmAccess && a.iamInstanceProfile)
                problems.push({ key: awsAt("iamInstanceProfile"), message: "not together with ssmAccess: add AmazonSSMManagedInstanceCore to your own role instead" });
            for (const k of Object.keys(a.tags ?? {}))
                if (k.startsWith(`${CONFIG_NAMESPACE}:`))
                    problems.push({ key: `${awsAt("tags")}.${k}`, message: "the falco-nodes: tag prefix is reserved (use publicIp: true to approve a public IP)" });
            if (viaBastion && !ssh.bastion)
                problems.push({ key: `${at}.aws.viaBastion`, message: "no bastion is configured: set falco-nodes:ssh.bastion or remove viaBastion" });
            if (resolved && a.subnetId)
                nodes.push({
                    kind: "aws",
                    name: n.name,
                    hostname: falcoHostname(n.name, n.hostname),
                    falco: merged,
                    resolved,
                    usesHttpOutputUrl,
                    viaBastion: viaBastion ?? !!ssh.bastion,
                    aws: { ...a, subnetId: a.subnetId },
                });
        }
    });
    if (existingNames.length && !options.secretsMayBeExternal && !secrets.sshPrivateKey)
        problems.push({
            key: `${CONFIG_NAMESPACE}:sshPrivateKey`,
            message: `required to log in to the existing nodes (${existingNames.join(", ")}): ${setSecretHint("sshPrivateKey")}`,
        });

    if (ssh.bastion && nodes.some((n) => n.viaBastion) && !options.secretsMayBeExternal && !secrets.bastionPrivateKey && !secrets.sshPrivateKey)
        problems.push({ key: `${CONFIG_NAMESPACE}:bastionPrivateKey`, message: `required to reach nodes through the bastion (falls back to sshPrivateKey): ${setSecretHint("bastionPrivateKey")}` });
    if (secrets.httpOutputUrl && !nodes.some((n) => n.resolved.outputs.http.enabled) && nodes.length === nodeInputs.length && nodes.length && wellFormed === nodes.length)
        problems.push({ key: `${CONFIG_NAMESPACE}:httpOutputUrl`, message: "is set but no node has outputs.http.enabled: true; enable the HTTP output in falco-nodes:falco, or remove the secret" });

    // 7. Cluster.
    let cluster: FalcoClusterSettings | undefined;
    let clusterSecretPresence: ClusterSecretPresence | undefined;
    let clusterNames: { namespace: string; sidekick: string } | undefined;
    const clusterInput = (s.cluster ?? {}) as ClusterConfig;
    if (clusterInput.enabled !== undefined && typeof clusterInput.enabled !== "boolean")
        problems.push({ key: `${CONFIG_NAMESPACE}:cluster.enabled`, message: "must be true or false" });
    if (clusterInput.enabled === true) {
        const { enabled: _enabled, ...settings } = clusterInput;
        const withRules: FalcoClusterSettings = { ...settings, rules: settings.rules ?? falco.rules };
        // Secrets from outside the source (ESC) count as present where the settings need them, and only there.
        const needed: Partial<Record<SecretKey, boolean>> = {
            slackWebhookUrl: settings.sidekick?.slack !== undefined,
            webhookAddress: settings.sidekick?.webhook !== undefined,
        };
        const presence = Object.fromEntries(
            CLUSTER_SECRET_KEYS.map((k) => [k, secrets[k] || (!!options.secretsMayBeExternal && !!needed[k])]),
        ) as ClusterSecretPresence;
        clusterSecretPresence = presence;
        collect(problems, `${CONFIG_NAMESPACE}:cluster.`, () => {
            const resolvedCluster = resolveClusterSettings(withRules, presence);
            clusterNames = { namespace: resolvedCluster.namespace, sidekick: chartNames(resolvedCluster.releaseName).sidekick };
        });
        // The resolver names secrets `secrets.<key>`; in a stack file they are top-level keys.
        for (const p of problems)
            p.key = p.key.replace(`${CONFIG_NAMESPACE}:cluster.secrets.`, `${CONFIG_NAMESPACE}:`);
        if (!secrets.kubeconfig && !options.secretsMayBeExternal)
            problems.push({
                key: `${CONFIG_NAMESPACE}:kubeconfig`,
                message: `required with cluster.enabled (never the ambient ~/.kube/config, so a deploy cannot hit the wrong cluster): ${setSecretHint("kubeconfig")}`,
            });
        cluster = withRules;
    }
    // Cluster settings kept while `enabled` is false are not checked: switching the layer on stays a one-line change.

    // 8. Alerting: every declared node is expected to report, under the hostname its Falco uses.
    const alerting = stackAlerting(s.alerting as AlertingSettings | undefined, nodes, nodeIndex, !!cluster, clusterNames, problems);

    if (problems.length) throw new StackConfigError(problems);
    return { falco, nodes, aws: fleetAws, ssh, cluster, clusterSecretPresence, secrets, alerting };
}

function stackAlerting(
    input: AlertingSettings | undefined,
    nodes: NodeConfig[],
    nodeIndex: ReadonlyMap<string, number>,
    hasCluster: boolean,
    clusterNames: { namespace: string; sidekick: string } | undefined,
    problems: ConfigProblem[],
): StackAlerting {
    const at = `${CONFIG_NAMESPACE}:alerting`;
    let settings: ResolvedAlertingSettings;
    try {
        settings = resolveAlertingSettings(input ?? {});
    } catch (e) {
        if (!(e instanceof AlertingSettingsError)) throw e;
        for (const p of e.problems) problems.push({ key: `${at}.${p.key}`, message: p.message });
        // Go on with the keys that were fine, so their problems are reported in the same run.
        const bad = new Set(e.problems.flatMap((p) => p.key.split(", ").map((k) => k.split(/[.[]/)[0])));
        settings = resolveAlertingSettings(Object.fromEntries(Object.entries(input ?? {}).filter(([k]) => !bad.has(k))));
    }
    // The same name the node's unit sets as FALCO_HOSTNAME (both come from falcoHostname).
    const expected: ExpectedNode[] = nodes.map((n) => ({
        name: n.name,
        hostname: n.hostname,
        heartbeatInterval: n.resolved.heartbeat.interval,
    }));
    if (settings.enabled) {
        const byHostname = new Map<string, string>();
        nodes.forEach((n) => {
            const other = byHostname.get(n.hostname);
            if (other)
                problems.push({
                    key: `${CONFIG_NAMESPACE}:nodes[${nodeIndex.get(n.name)}].hostname`,
                    message: `nodes '${other}' and '${n.name}' would both report hostname '${n.hostname}', so the alert rules could not tell them apart: give each node its own hostname (default: its name)`,
                });
            byHostname.set(n.hostname, n.name);
        });
        for (const n of nodes)
            if (!n.resolved.heartbeat.enabled)
                problems.push({
                    key: `${at}`,
                    message: `node '${n.name}' has falco.heartbeat.enabled: false, so nothing central can tell when it goes silent: turn its heartbeat on, or set alerting.enabled: false`,
                });
    }
    if (settings.prometheusRule.enabled && !hasCluster)
        problems.push({ key: `${at}.prometheusRule.enabled`, message: "needs the in-cluster layer (cluster.enabled: true); for a Prometheus outside a cluster load out/<stack>/alerts/ from npm run render instead" });
    return {
        settings,
        nodes: expected,
        sidekickJob: settings.sidekickJob ?? clusterNames?.sidekick ?? DEFAULT_SIDEKICK_JOB,
        prometheusRuleNamespace: settings.prometheusRule.namespace ?? clusterNames?.namespace,
    };
}

/**
 * A source over a full-key config map (`falco-nodes:x` -> value), as the CLI passes it in `PULUMI_CONFIG`;
 * `secretKeys` are the full keys whose values are secret. Other namespaces (`aws:region`) belong to providers.
 */
export function objectConfigSource(values: Record<string, unknown>, secretKeys: Iterable<string> = []): StackConfigSource {
    const prefix = `${CONFIG_NAMESPACE}:`;
    const ours = (k: string) => k.startsWith(prefix);
    const strip = (k: string) => k.slice(prefix.length);
    const map = new Map(Object.entries(values).filter(([k]) => ours(k)).map(([k, v]) => [strip(k), v]));
    const secretSet = new Set([...secretKeys].filter(ours).map(strip));
    return {
        keys: () => [...map.keys()],
        value: (k) => map.get(k),
        isSecret: (k) => secretSet.has(k),
    };
}
