/**
 * `falco-nodes:alerting`: the central alert rules rendered from the stack's node list (see rules.ts), their
 * windows, severities and labels, and whether FalcoCluster applies them as a PrometheusRule. Every field is
 * optional; `resolveAlertingSettings` fills the documented defaults and reports bad values by key.
 *
 * Pure: no Pulumi, no I/O.
 */
import { z } from "zod";
import { zodProblems } from "../validation";

/** The alerts rendered per stack: five per expected node, one for Falcosidekick itself. */
export const AlertKind = {
    /** The node reported before, and has sent no heartbeat for `silenceIntervals` heartbeat intervals. */
    Silent: "silent",
    /**
     * No heartbeat series for the node at all for `silenceIntervals` intervals: it never reported (not up yet,
     * it reports another hostname than the node's), or went quiet before Falcosidekick last restarted.
     */
    Unreported: "unreported",
    /** Heartbeats arrive but no detection canary alert for `canaryWindow`: Falco runs, blind. */
    NotDetecting: "notDetecting",
    /** Falco was signalled outside a converge (the self-protection signal rule fired): it restarts. */
    Restarted: "restarted",
    /** Falco reported kernel-side event drops ("Falco internal: syscall event drop"). */
    Drops: "drops",
    /** Falcosidekick is down or not scraped: none of the node alerts can fire without it. */
    SidekickDown: "sidekickDown",
} as const;
export type AlertKind = (typeof AlertKind)[keyof typeof AlertKind];

/** Prometheus alert names, one per kind. */
export const ALERT_NAMES: Record<AlertKind, string> = {
    silent: "FalcoNodeSilent",
    unreported: "FalcoNodeUnreported",
    notDetecting: "FalcoNodeNotDetecting",
    restarted: "FalcoNodeRestarted",
    drops: "FalcoNodeDroppingEvents",
    sidekickDown: "FalcosidekickDown",
};

export const DEFAULT_SEVERITIES: Record<AlertKind, string> = {
    silent: "critical",
    unreported: "critical",
    notDetecting: "critical",
    restarted: "warning",
    drops: "warning",
    sidekickDown: "critical",
};

/** The Falcosidekick scrape job when the stack has no in-cluster layer (your Prometheus's `job_name`). */
export const DEFAULT_SIDEKICK_JOB = "falcosidekick";

export interface PrometheusRuleSettings {
    /**
     * FalcoCluster applies the rules as a `PrometheusRule` (monitoring.coreos.com/v1). Needs `cluster.enabled`
     * and the Prometheus operator's CRDs in that cluster (the apply fails without them). Default false.
     */
    enabled?: boolean;
    /** Namespace of the PrometheusRule. Default: the cluster layer's namespace. */
    namespace?: string;
    /**
     * Labels on the PrometheusRule object, for the operator's `ruleSelector` (kube-prometheus-stack selects
     * `release: <its release>` by default). Default none.
     */
    labels?: Record<string, string>;
}

export interface AlertingSettings {
    /** Render the alert rules at all (`npm run render` writes them to out/<stack>/alerts/). Default true. */
    enabled?: boolean;
    /**
     * A node is silent after this many of its heartbeat intervals (`falco.heartbeat.interval`, 5m by default)
     * without a heartbeat. Default 3: one late or lost event pages nobody.
     */
    silenceIntervals?: number;
    /**
     * A node whose heartbeats arrive is "not detecting" after this long without a detection canary alert. The
     * canary fires every 5 minutes by default; keep this about three canary periods. Default 15m.
     */
    canaryWindow?: string;
    /** How long a restart or drop event keeps its alert firing. Default 15m. */
    eventWindow?: string;
    /** `for:` of the silence, not-detecting and Falcosidekick alerts: how long the condition must hold. Default 2m. */
    pendingFor?: string;
    /**
     * The `severity` label per alert. Defaults: silent, unreported, notDetecting, sidekickDown critical;
     * restarted, drops warning.
     */
    severities?: Partial<Record<AlertKind, string>>;
    /** Extra labels on every alert (e.g. `team: security` for Alertmanager routing). Default none. */
    labels?: Record<string, string>;
    /**
     * The Falcosidekick scrape job (the `job` label of its `up` and event series). Default: with the cluster
     * layer, its Falcosidekick Service name (what the chart's ServiceMonitor uses); else `falcosidekick`.
     */
    sidekickJob?: string;
    /** Apply the rules in the cluster as a PrometheusRule. */
    prometheusRule?: PrometheusRuleSettings;
}

export interface ResolvedAlertingSettings {
    enabled: boolean;
    silenceIntervals: number;
    canaryWindow: string;
    eventWindow: string;
    pendingFor: string;
    severities: Record<AlertKind, string>;
    labels: Record<string, string>;
    /** Undefined: the caller's default (depends on the cluster layer). */
    sidekickJob?: string;
    prometheusRule: { enabled: boolean; namespace?: string; labels: Record<string, string> };
}

export class AlertingSettingsError extends Error {
    constructor(readonly problems: { key: string; message: string }[]) {
        super(problems.map((p) => `${p.key}: ${p.message}`).join("\n"));
        this.name = "AlertingSettingsError";
    }
}

/** A Prometheus duration we can also do arithmetic on: one number and one unit. */
export const PROMETHEUS_DURATION = /^[1-9][0-9]*(ms|s|m|h|d|w|y)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000, y: 31_536_000_000 };

/** Milliseconds of a duration such as `5m` (Falco's and Prometheus' duration syntax, one unit). */
export function durationMs(d: string): number {
    const m = /^([0-9]+)(ms|s|m|h|d|w|y)$/.exec(d);
    if (!m) throw new Error(`not a duration: ${JSON.stringify(d)}`);
    return Number(m[1]) * UNIT_MS[m[2]];
}

/** The shortest Prometheus duration for a number of milliseconds (`900000` -> `15m`). */
export function formatDuration(ms: number): string {
    if (!Number.isInteger(ms) || ms <= 0) throw new Error(`not a positive whole number of milliseconds: ${ms}`);
    for (const unit of ["y", "w", "d", "h", "m", "s"]) if (ms % UNIT_MS[unit] === 0) return `${ms / UNIT_MS[unit]}${unit}`;
    return `${ms}ms`;
}

// Label names as Prometheus allows them, without the reserved `__` prefix; values kept to one printable line.
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const labelName = z.string().regex(LABEL_NAME, { message: "must be a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)" }).refine((k) => !k.startsWith("__"), {
    message: "label names starting with __ are reserved by Prometheus",
});
const labelValue = z.string().regex(/^[^\n\r"\\]{1,200}$/, { message: "must be one line of 1-200 characters without quotes or backslashes" });
const labels = z.record(labelName, labelValue, { message: "must be a map of label name to value" });
const duration = z.string().regex(PROMETHEUS_DURATION, { message: "must be a duration such as 30s, 15m or 1h" });
const K8S_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

const schema = z
    .object({
        enabled: z.boolean(),
        silenceIntervals: z.number().int().min(2, { message: "must be 2 or more (1 pages on every late heartbeat)" }).max(100),
        canaryWindow: duration,
        eventWindow: duration,
        pendingFor: duration,
        severities: z
            .object(Object.fromEntries(Object.values(AlertKind).map((k) => [k, labelValue])) as Record<AlertKind, typeof labelValue>)
            .partial()
            .strict(),
        labels,
        sidekickJob: labelValue,
        prometheusRule: z
            .object({
                enabled: z.boolean(),
                namespace: z.string().regex(K8S_NAME, { message: "must be a Kubernetes namespace name" }),
                labels,
            })
            .partial()
            .strict(),
    })
    .partial()
    .strict();

/** Labels our rules set themselves: an extra label of the same name would be silently overwritten. */
export const RESERVED_ALERT_LABELS = ["severity", "node", "hostname", "stack"] as const;

/**
 * Fill the defaults and check every value. Keys in the error are relative to `falco-nodes:alerting`
 * (`canaryWindow`, `severities.silent`).
 */
export function resolveAlertingSettings(input: AlertingSettings = {}): ResolvedAlertingSettings {
    // `hostnames` (node name -> the hostname its Falco reports) went when the unit started setting FALCO_HOSTNAME:
    // the rules and the unit now take the name from one place, the node (components/shared/hostname.ts).
    const { hostnames, ...rest } = (input ?? {}) as AlertingSettings & { hostnames?: unknown };
    const removed =
        hostnames === undefined
            ? []
            : [{ key: "hostnames", message: "is gone: each node's Falco reports its node name now (FALCO_HOSTNAME in its unit); to report another name, set hostname on the node (falco-nodes:nodes[].hostname)" }];
    const r = schema.safeParse(rest);
    if (!r.success || removed.length)
        throw new AlertingSettingsError([
            ...removed,
            ...(r.success ? [] : zodProblems(r.error.issues, "unknown key; the alerting settings are documented in components/alerting/settings.ts", "")),
        ]);
    const s = r.data;
    const problems: { key: string; message: string }[] = [];
    for (const k of Object.keys(s.labels ?? {}))
        if ((RESERVED_ALERT_LABELS as readonly string[]).includes(k))
            problems.push({ key: `labels.${k}`, message: `is set by the rules themselves (${RESERVED_ALERT_LABELS.join(", ")}); use another label name` });
    if (problems.length) throw new AlertingSettingsError(problems);
    return {
        enabled: s.enabled ?? true,
        silenceIntervals: s.silenceIntervals ?? 3,
        canaryWindow: s.canaryWindow ?? "15m",
        eventWindow: s.eventWindow ?? "15m",
        pendingFor: s.pendingFor ?? "2m",
        severities: { ...DEFAULT_SEVERITIES, ...s.severities },
        labels: s.labels ?? {},
        sidekickJob: s.sidekickJob,
        prometheusRule: { enabled: s.prometheusRule?.enabled ?? false, namespace: s.prometheusRule?.namespace, labels: s.prometheusRule?.labels ?? {} },
    };
}
