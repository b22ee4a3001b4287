/**
 * Typed settings for the in-cluster layer (the `falcosecurity/falco` chart with Falcosidekick): what a user writes
 * (`FalcoClusterSettings`, every field optional with a documented default; `FalcoClusterSecrets` for the values
 * that must never reach state or chart values in plain text) and what the renderers consume
 * (`ResolvedClusterSettings`, every default filled in).
 *
 * `resolveClusterSettings` is the only way from one to the other. It rejects bad input with a
 * `ClusterSettingsError` naming the key and the fix, before any resource is declared. Pure: no Pulumi at run
 * time (the secrets type only mentions `pulumi.Input`), no I/O.
 */
import type * as pulumi from "@pulumi/pulumi";
import { z } from "zod";
import { zodProblems } from "../validation";

const UNKNOWN_CLUSTER_SETTING = "unknown setting; check the spelling against FalcoClusterSettings (components/cluster/settings.ts)";
import { PRIORITIES, type Priority, type RuleSettings } from "../host/settings";

/** Chart `driver.kind`. Falco chart 9.1.0 accepts only these three (the legacy `ebpf` probe is gone). */
export const ClusterDriver = {
    /** CO-RE eBPF built into Falco; nodes need kernel >= 5.8 with BTF. No driver download, no kernel module. */
    ModernEbpf: "modern_ebpf",
    /** The kernel module, built or downloaded by the chart's init container; fully privileged. Old kernels only. */
    Kmod: "kmod",
    /** Let the chart's driver loader pick per node. */
    Auto: "auto",
} as const;
export type ClusterDriver = (typeof ClusterDriver)[keyof typeof ClusterDriver];

export const DEFAULT_CHART_VERSION = "9.1.0";
export const DEFAULT_CHART_REPO = "https://falcosecurity.github.io/charts";
export const DEFAULT_NAMESPACE = "falco";
export const DEFAULT_RELEASE_NAME = "falco";
export const DEFAULT_PRIORITY_CLASS_NAME = "falco-nodes-critical";
/** The highest value Kubernetes allows for a user-defined PriorityClass (above it: system classes only). */
export const MAX_USER_PRIORITY = 1_000_000_000;

export interface ResourceQuantities {
    /** CPU quantity, e.g. `100m`, `1`. */
    cpu?: string;
    /** Memory quantity, e.g. `512Mi`, `1Gi`. */
    memory?: string;
}

export interface ResourceSettings {
    /** Guaranteed share. Default `cpu: 100m, memory: 512Mi` (the chart's, sized for the default rules). */
    requests?: ResourceQuantities;
    /**
     * Hard cap. Default `cpu: 1000m, memory: 1024Mi`. Raise memory on busy nodes: an OOM-killed Falco is a
     * blind node until it restarts.
     */
    limits?: ResourceQuantities;
}

/** A Kubernetes toleration, as in a pod spec. */
export interface Toleration {
    key?: string;
    operator?: "Exists" | "Equal";
    value?: string;
    effect?: "NoSchedule" | "PreferNoSchedule" | "NoExecute";
    tolerationSeconds?: number;
}

export interface PriorityClassSettings {
    /**
     * Name of the PriorityClass this component creates and wires to Falco (`podPriorityClassName`) and
     * Falcosidekick (the guide's "QoS and priority classes" advice: under memory or CPU pressure the scheduler
     * and the kubelet evict the sensor last). Default `falco-nodes-critical`.
     */
    name?: string;
    /**
     * Its value. Default 1000000000, the highest a user class may have, so Falco preempts ordinary workloads
     * to get onto a full node rather than the other way round. Lower it if other agents must win.
     */
    value?: number;
}

export interface SlackSettings {
    /**
     * Send only alerts at or above this priority to Slack. Default `warning`: the channel stays readable; the
     * full stream still goes to the other outputs. The webhook URL itself is the secret `slackWebhookUrl`.
     */
    minimumPriority?: Priority;
    /** Override the webhook's channel. Default: the webhook's own. */
    channel?: string;
    /** Override the webhook's user name. Default: the webhook's own. */
    username?: string;
    /** `all` (default: text and fields), `text` or `fields`. */
    outputFormat?: "all" | "text" | "fields";
}

export interface WebhookSettings {
    /**
     * Forward alerts at or above this priority to a generic HTTP endpoint. Default `notice`. The address (often
     * carrying a token) is the secret `webhookAddress`; extra headers (e.g. `Authorization`) the secret
     * `webhookCustomHeaders`.
     */
    minimumPriority?: Priority;
    /** `POST` (default) or `PUT`. */
    method?: "POST" | "PUT";
    /** Verify the endpoint's TLS certificate. Default true; never turn it off outside a lab. */
    checkCert?: boolean;
}

export interface ElasticsearchSettings {
    /** `http(s)://host:port` of Elasticsearch. Required to enable this output. */
    hostPort: string;
    /** Index name. Default `falco`. */
    index?: string;
    /** Index rotation suffix. Default `daily`. */
    suffix?: "daily" | "monthly" | "annually" | "none";
    /** Basic-auth user (not secret); its password is the secret `elasticsearchPassword`. Default: no auth. */
    username?: string;
    /** Minimum priority to index. Default `debug`: a search backend wants everything. */
    minimumPriority?: Priority;
    /** Verify Elasticsearch's TLS certificate. Default true. */
    checkCert?: boolean;
}

export interface PrometheusSettings {
    /**
     * Falcosidekick always serves `/metrics` (alert counts by rule and priority) and its Service carries the
     * `prometheus.io/scrape` annotation. Set true to also create a prometheus-operator `ServiceMonitor` (needs
     * its CRD in the cluster). Default false.
     */
    serviceMonitor?: boolean;
    /** Alert fields to add as metric labels (e.g. `k8s.ns.name`), on top of rule, source, priority and tags. */
    extraLabels?: string[];
}

export interface WebUiSettings {
    /**
     * Deploy Falcosidekick-UI (with its Redis). Default false: it is a browsable copy of every alert, so only
     * turn it on when someone will look at it. Its login never uses the chart's `admin:admin`: the password is
     * the secret `webUiPassword`, or generated (stable across runs, stored encrypted in state) when absent. Its
     * Redis (no password in the chart's default) gets a generated password, also only in Secrets.
     */
    enabled?: boolean;
    /** The UI login name. Default `falco`. */
    login?: string;
    /** UI replicas. Default 1 (the chart's 2 buys little for an operator console). */
    replicas?: number;
}

export interface SidekickSettings {
    /** Deploy Falcosidekick and send Falco's alerts to it. Default true. */
    enabled?: boolean;
    /** Replicas. Default 2, so an alert is not lost while one pod restarts. */
    replicas?: number;
    /** Slack output; present = enabled (needs the secret `slackWebhookUrl`). */
    slack?: SlackSettings;
    /** Generic webhook output; present = enabled (needs the secret `webhookAddress`). */
    webhook?: WebhookSettings;
    /** Elasticsearch output; present = enabled. */
    elasticsearch?: ElasticsearchSettings;
    /** Prometheus metrics (always served; this adds a ServiceMonitor and labels). */
    prometheus?: PrometheusSettings;
    /** Falcosidekick-UI. */
    webUi?: WebUiSettings;
}

export interface ProtectionSettings {
    /**
     * Install a ValidatingAdmissionPolicy (Kubernetes >= 1.30) that, in Falco's namespace, denies changing,
     * scaling or deleting Falco's workloads, config, secrets and RBAC, deleting or adding pods and workloads,
     * quotas, LimitRanges, NetworkPolicies, minting its service accounts' tokens and exec into its pods, and
     * changing or deleting its namespace, to everyone but the identities below (and the Kubernetes components
     * listed in components/cluster/protection.ts), so that cluster-admin credentials alone cannot quietly switch
     * Falco off. Default true.
     *
     * Lifting it: as an exempt identity, set `protection.enabled: false` and run `pulumi up` (or
     * `kubectl delete validatingadmissionpolicybinding <release>-protect-falco`). Note the limits: Kubernetes
     * never applies admission policies to policy or webhook objects, so whoever may delete the binding may
     * lift the protection (restrict that verb with RBAC and watch the audit log); and impersonation is invisible
     * to admission: anyone allowed to impersonate an exempt identity is treated as that identity.
     */
    enabled?: boolean;
    /**
     * Users allowed to change Falco: the identity `pulumi up` runs as (`kubectl auth whoami`), e.g.
     * `arn:aws:sts::123456789012:assumed-role/deployer/ci` or `system:serviceaccount:ci:pulumi`. At least one
     * user or group is required while protection is on, or the deployer would lock itself out.
     */
    exemptUsers?: string[];
    /** Groups allowed to change Falco, e.g. a break-glass group. Avoid `system:masters`: that is every admin. */
    exemptGroups?: string[];
}

/** Everything about the in-cluster layer. Every field is optional; the defaults are what we would run. */
export interface FalcoClusterSettings {
    /** Namespace for Falco, created and labelled `pod-security.kubernetes.io/enforce: privileged`. Default `falco`. */
    namespace?: string;
    /** Helm release name (prefix of every object's name). Default `falco`. */
    releaseName?: string;
    /** Exact chart version. Default `9.1.0` (Falco 0.44.1). Check values against the new chart before bumping. */
    chartVersion?: string;
    /** Chart repository. Default `https://falcosecurity.github.io/charts`; point it at a mirror when air-gapped. */
    chartRepo?: string;
    /** Capture driver (`driver.kind`). Default `modern_ebpf`. */
    driver?: ClusterDriver;
    /**
     * Keep the chart's falcoctl rules download: its init container pulls the moving tag `falco-rules:5` at every
     * pod start and its `artifact follow` sidecar new versions every week. Default false: no rules artifact is
     * pulled at all; Falco loads the default rules its image ships (pinned with the image the chart pins, as the
     * hosts' come pinned with the package) and ours from the ConfigMap, so rules change only when you deploy and
     * a review sees every change. The init container still installs the chart's plugins (pinned by tag).
     */
    followRuleUpdates?: boolean;
    /**
     * `modern_ebpf` only: run with the capabilities `BPF PERFMON SYS_RESOURCE SYS_PTRACE` instead of a privileged
     * container. Default false: measured on Debian, that set crash-loops at `kernel.perf_event_paranoid` > 2
     * (the Debian/Ubuntu default); enable it where nodes run with paranoid <= 2.
     */
    leastPrivileged?: boolean;
    /** Falco's `priority`: rules below it are not loaded. Default `notice`, as on the hosts. */
    minimumPriority?: Priority;
    /** Falco container resources. Defaults as in `ResourceSettings`. */
    resources?: ResourceSettings;
    /**
     * Falco's tolerations. Default `[{operator: Exists}]`: every node, whatever its taints, since a node that
     * can be tainted out of Falco's reach is a node an attacker can blind.
     */
    tolerations?: Toleration[];
    priorityClass?: PriorityClassSettings;
    /**
     * Rules, the same settings the hosts take: the cluster loads the same rule files (one source of truth). The
     * custom files land in `/etc/falco/rules.d` through the chart's `customRules` ConfigMap.
     */
    rules?: RuleSettings;
    sidekick?: SidekickSettings;
    protection?: ProtectionSettings;
}

/**
 * Values that must never reach chart values or state in plain text. They go into a Kubernetes Secret
 * (`falcosidekick.config.existingSecret` / `webui.existingSecret`) whose data Pulumi stores encrypted.
 */
export interface FalcoClusterSecrets {
    /** Slack incoming-webhook URL. Required with `sidekick.slack`. */
    slackWebhookUrl?: pulumi.Input<string>;
    /** Generic webhook address (URL, may carry a token). Required with `sidekick.webhook`. */
    webhookAddress?: pulumi.Input<string>;
    /** Generic webhook headers, `key:value,key:value` (e.g. `Authorization:Bearer ...`). */
    webhookCustomHeaders?: pulumi.Input<string>;
    /** Elasticsearch password for `sidekick.elasticsearch.username`. */
    elasticsearchPassword?: pulumi.Input<string>;
    /** Falcosidekick-UI password. Default: generated (24 characters) and kept in state, encrypted. */
    webUiPassword?: pulumi.Input<string>;
}

/** Which secrets were given: all the pure resolver needs to know about them. */
export type SecretPresence = { [K in keyof FalcoClusterSecrets]-?: boolean };

export interface ResolvedClusterSettings {
    namespace: string;
    releaseName: string;
    chartVersion: string;
    chartRepo: string;
    driver: ClusterDriver;
    leastPrivileged: boolean;
    followRuleUpdates: boolean;
    minimumPriority: Priority;
    resources: { requests: Required<ResourceQuantities>; limits: Required<ResourceQuantities> };
    tolerations: Toleration[];
    priorityClass: Required<PriorityClassSettings>;
    rules: RuleSettings;
    sidekick: {
        enabled: boolean;
        replicas: number;
        slack?: Required<Pick<SlackSettings, "minimumPriority" | "outputFormat">> & Pick<SlackSettings, "channel" | "username">;
        webhook?: Required<WebhookSettings>;
        elasticsearch?: Required<Omit<ElasticsearchSettings, "username">> & Pick<ElasticsearchSettings, "username">;
        prometheus: { serviceMonitor: boolean; extraLabels: string[] };
        webUi: Required<WebUiSettings>;
    };
    protection: { enabled: boolean; exemptUsers: string[]; exemptGroups: string[] };
}

/** Bad cluster settings: `key` is the dotted path of the offending setting, the message says how to fix it. */
export class ClusterSettingsError extends Error {
    constructor(readonly problems: { key: string; message: string }[]) {
        super(problems.map((p) => `invalid cluster setting ${p.key || "(root)"}: ${p.message}`).join("\n"));
        this.name = "ClusterSettingsError";
    }
}

// --- validation ------------------------------------------------------------------------------------------
// Names end up in Kubernetes object names and CEL string literals; identities in CEL. Allowlists here mean no
// renderer ever has to escape a hostile value.

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;
/** Kubernetes user and group names as authenticators produce them (ARNs, emails, `system:...`). No quotes. */
const IDENTITY = /^[A-Za-z0-9@:._\/+=-]{1,253}$/;
const QUANTITY = /^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/;
const PLAIN_WORD = /^[A-Za-z0-9 #@._:-]{1,80}$/;
const ES_URL = /^https?:\/\/[A-Za-z0-9.-]+(:[0-9]{1,5})?\/?$/;
const FIELD_NAME = /^[a-z0-9_.\[\]-]{1,80}$/;

const enumOf = <T extends readonly [string, ...string[]]>(values: T) =>
    z.enum(values, { message: `must be one of: ${values.join(", ")}` });
const priority = enumOf(PRIORITIES);
const quantities = z
    .object({
        cpu: z.string().regex(QUANTITY, { message: "must be a Kubernetes quantity such as 100m or 1" }),
        memory: z.string().regex(QUANTITY, { message: "must be a Kubernetes quantity such as 512Mi or 1Gi" }),
    })
    .partial()
    .strict();
const plain = (what: string) =>
    z.string().regex(PLAIN_WORD, { message: `${what} must be 1-80 letters, digits, space or # @ . _ : -` });
const identity = z.string().regex(IDENTITY, {
    message: "must be a Kubernetes user/group name (letters, digits and @ : . _ / + = - only, no quotes or spaces)",
});

const schema = z
    .object({
        namespace: z.string().regex(DNS_LABEL, { message: "must be a DNS label (lowercase letters, digits, -; max 63)" }),
        releaseName: z.string().regex(/^[a-z0-9]([a-z0-9-]{0,28}[a-z0-9])?$/, {
            message: "must be a DNS label of at most 30 characters (the chart appends suffixes such as -falco-falcosidekick-ui-redis)",
        }),
        chartVersion: z.string().regex(/^[0-9]+\.[0-9]+\.[0-9]+$/, {
            message: "must be an exact chart version X.Y.Z, e.g. 9.1.0 (ranges are not allowed: pin what you tested)",
        }),
        chartRepo: z.string().regex(/^(https:\/\/|oci:\/\/)[A-Za-z0-9.\/_:-]+$/, {
            message: "must be an https:// or oci:// URL",
        }),
        driver: enumOf(Object.values(ClusterDriver) as [ClusterDriver, ...ClusterDriver[]]),
        leastPrivileged: z.boolean(),
        followRuleUpdates: z.boolean(),
        minimumPriority: priority,
        resources: z.object({ requests: quantities, limits: quantities }).partial().strict(),
        tolerations: z.array(
            z
                .object({
                    key: z.string().regex(/^[A-Za-z0-9.\/_-]{1,253}$/, { message: "must be a taint key" }),
                    operator: enumOf(["Exists", "Equal"]),
                    value: z.string().regex(/^[A-Za-z0-9._-]{0,63}$/, { message: "must be a taint value" }),
                    effect: enumOf(["NoSchedule", "PreferNoSchedule", "NoExecute"]),
                    tolerationSeconds: z.number().int().min(0),
                })
                .partial()
                .strict(),
        ),
        priorityClass: z
            .object({
                name: z.string().regex(DNS_SUBDOMAIN, { message: "must be a DNS subdomain name" }),
                value: z.number().int().min(0).max(MAX_USER_PRIORITY, {
                    message: `must be at most ${MAX_USER_PRIORITY} (higher values are reserved to system classes)`,
                }),
            })
            .partial()
            .strict(),
        // The hosts' resolver validates rule settings in depth; here only the shape, so both layers agree.
        rules: z.record(z.string(), z.unknown()),
        sidekick: z
            .object({
                enabled: z.boolean(),
                replicas: z.number().int().min(1).max(20),
                slack: z
                    .object({
                        minimumPriority: priority,
                        channel: plain("channel"),
                        username: plain("username"),
                        outputFormat: enumOf(["all", "text", "fields"]),
                    })
                    .partial()
                    .strict(),
                webhook: z
                    .object({ minimumPriority: priority, method: enumOf(["POST", "PUT"]), checkCert: z.boolean() })
                    .partial()
                    .strict(),
                elasticsearch: z
                    .object({
                        hostPort: z.string({ message: "required: http(s)://host:port of Elasticsearch" }).regex(ES_URL, {
                            message: "must be http(s)://host:port with no credentials or path (the password is the secret elasticsearchPassword)",
                        }),
                        index: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,100}$/, { message: "must be a lowercase index name" }),
                        suffix: enumOf(["daily", "monthly", "annually", "none"]),
                        username: plain("username"),
                        minimumPriority: priority,
                        checkCert: z.boolean(),
                    })
                    .partial({ index: true, suffix: true, username: true, minimumPriority: true, checkCert: true })
                    .strict(),
                prometheus: z
                    .object({
                        serviceMonitor: z.boolean(),
                        extraLabels: z.array(z.string().regex(FIELD_NAME, { message: "must be a Falco field name such as k8s.ns.name" })),
                    })
                    .partial()
                    .strict(),
                webUi: z
                    .object({
                        enabled: z.boolean(),
                        login: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, {
                            message: "must be 1-64 letters, digits, . _ - (no ':' : the UI reads login:password)",
                        }),
                        replicas: z.number().int().min(1).max(10),
                    })
                    .partial()
                    .strict(),
            })
            .partial()
            .strict(),
        protection: z
            .object({ enabled: z.boolean(), exemptUsers: z.array(identity), exemptGroups: z.array(identity) })
            .partial()
            .strict(),
    })
    .partial()
    .strict();

/**
 * Validate settings and fill in every default. `secrets` says which secrets were given (their values may be
 * unknown until deploy time). Throws `ClusterSettingsError` listing every problem with its key and fix.
 */
export function resolveClusterSettings(
    input: FalcoClusterSettings = {},
    secrets: Partial<SecretPresence> = {},
): ResolvedClusterSettings {
    const parsed = schema.safeParse(input);
    if (!parsed.success) throw new ClusterSettingsError(zodProblems(parsed.error.issues, UNKNOWN_CLUSTER_SETTING));
    const s = parsed.data as FalcoClusterSettings;
    const problems: { key: string; message: string }[] = [];

    const sidekickEnabled = s.sidekick?.enabled ?? true;
    const sk = s.sidekick ?? {};
    const need = (block: unknown, secret: keyof FalcoClusterSecrets, key: string, what: string) => {
        if (block !== undefined && !secrets[secret])
            problems.push({ key, message: `needs the secret ${secret} (${what}); set it as a Pulumi secret, or remove ${key}` });
        if (block === undefined && secrets[secret])
            problems.push({ key: `secrets.${secret}`, message: `is set but ${key} is not: add ${key} to enable that output, or drop the secret` });
    };
    if (sidekickEnabled) {
        need(sk.slack, "slackWebhookUrl", "sidekick.slack", "the Slack webhook URL");
        need(sk.webhook, "webhookAddress", "sidekick.webhook", "the endpoint address");
        if (secrets.webhookCustomHeaders && !sk.webhook)
            problems.push({ key: "secrets.webhookCustomHeaders", message: "is set but sidekick.webhook is not" });
        if (secrets.elasticsearchPassword && !sk.elasticsearch?.username)
            problems.push({ key: "secrets.elasticsearchPassword", message: "is set but sidekick.elasticsearch.username is not: set the user it belongs to" });
        if (secrets.webUiPassword && !sk.webUi?.enabled)
            problems.push({ key: "secrets.webUiPassword", message: "is set but sidekick.webUi.enabled is not true" });
    } else {
        for (const k of ["slack", "webhook", "elasticsearch", "prometheus", "webUi"] as const)
            if (sk[k] !== undefined)
                problems.push({ key: `sidekick.${k}`, message: "has no effect with sidekick.enabled: false; remove it or enable Falcosidekick" });
        for (const [k, given] of Object.entries(secrets))
            if (given) problems.push({ key: `secrets.${k}`, message: "has no effect with sidekick.enabled: false" });
    }

    const driver = s.driver ?? ClusterDriver.ModernEbpf;
    if (s.leastPrivileged && driver !== ClusterDriver.ModernEbpf)
        problems.push({ key: "leastPrivileged", message: "only applies to driver modern_ebpf (kmod and auto need a privileged container)" });

    const protection = {
        enabled: s.protection?.enabled ?? true,
        exemptUsers: s.protection?.exemptUsers ?? [],
        exemptGroups: s.protection?.exemptGroups ?? [],
    };
    if (protection.enabled && protection.exemptUsers.length + protection.exemptGroups.length === 0)
        problems.push({
            key: "protection.exemptUsers",
            message:
                "name the identity pulumi deploys with (run `kubectl auth whoami`), or a group; without one the " +
                "protection would lock the deployer out. To go without protection set protection.enabled: false",
        });
    if (protection.exemptGroups.includes("system:masters"))
        problems.push({ key: "protection.exemptGroups", message: "system:masters is every cluster-admin certificate: exempting it defeats the protection; name the deployer instead" });
    if (protection.exemptGroups.includes("system:authenticated"))
        problems.push({ key: "protection.exemptGroups", message: "system:authenticated is everyone: name the deployer instead" });

    if (problems.length) throw new ClusterSettingsError(problems);

    return {
        namespace: s.namespace ?? DEFAULT_NAMESPACE,
        releaseName: s.releaseName ?? DEFAULT_RELEASE_NAME,
        chartVersion: s.chartVersion ?? DEFAULT_CHART_VERSION,
        chartRepo: s.chartRepo ?? DEFAULT_CHART_REPO,
        driver,
        leastPrivileged: s.leastPrivileged ?? false,
        followRuleUpdates: s.followRuleUpdates ?? false,
        minimumPriority: s.minimumPriority ?? "notice",
        resources: {
            requests: { cpu: s.resources?.requests?.cpu ?? "100m", memory: s.resources?.requests?.memory ?? "512Mi" },
            limits: { cpu: s.resources?.limits?.cpu ?? "1000m", memory: s.resources?.limits?.memory ?? "1024Mi" },
        },
        tolerations: s.tolerations ?? [{ operator: "Exists" }],
        priorityClass: {
            name: s.priorityClass?.name ?? DEFAULT_PRIORITY_CLASS_NAME,
            value: s.priorityClass?.value ?? MAX_USER_PRIORITY,
        },
        rules: s.rules ?? {},
        sidekick: {
            enabled: sidekickEnabled,
            replicas: sk.replicas ?? 2,
            slack:
                sidekickEnabled && sk.slack
                    ? {
                          minimumPriority: sk.slack.minimumPriority ?? "warning",
                          outputFormat: sk.slack.outputFormat ?? "all",
                          channel: sk.slack.channel,
                          username: sk.slack.username,
                      }
                    : undefined,
            webhook:
                sidekickEnabled && sk.webhook
                    ? {
                          minimumPriority: sk.webhook.minimumPriority ?? "notice",
                          method: sk.webhook.method ?? "POST",
                          checkCert: sk.webhook.checkCert ?? true,
                      }
                    : undefined,
            elasticsearch:
                sidekickEnabled && sk.elasticsearch
                    ? {
                          hostPort: sk.elasticsearch.hostPort,
                          index: sk.elasticsearch.index ?? "falco",
                          suffix: sk.elasticsearch.suffix ?? "daily",
                          username: sk.elasticsearch.username,
                          minimumPriority: sk.elasticsearch.minimumPriority ?? "debug",
                          checkCert: sk.elasticsearch.checkCert ?? true,
                      }
                    : undefined,
            prometheus: {
                serviceMonitor: sk.prometheus?.serviceMonitor ?? false,
                extraLabels: sk.prometheus?.extraLabels ?? [],
            },
            webUi: {
                enabled: sidekickEnabled && (sk.webUi?.enabled ?? false),
                login: sk.webUi?.login ?? "falco",
                replicas: sk.webUi?.replicas ?? 1,
            },
        },
        protection,
    };
}
