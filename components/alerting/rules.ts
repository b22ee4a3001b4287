/**
 * The stack's central alert rules, as Prometheus rule groups: per expected node, "silent", "unreported",
 * "not detecting", "restarted" and "dropping events"; once, "Falcosidekick down". Rendered from the node list, so adding or
 * removing a node changes the rules in the same `pulumi up` (and a removed node stops being expected).
 *
 * Everything is counted from Falcosidekick's one event counter (falcosidekick.ts says what it has and what it
 * cannot have). Two properties of that counter shape every expression:
 * - A label set appears on its first event with value 1, and Prometheus' `increase()` cannot see that first
 *   event (it needs two samples). `eventsIn` adds the series that exist now but did not `window` ago, so the
 *   first heartbeat of a new node, or the first drop event a node ever reports, counts.
 * - A node that never sent anything has no series at all (a `by (hostname)` rule would never see it): one rule
 *   per expected node, and "unreported" for a node without any heartbeat series. It waits a whole silence window
 *   (`for:`), so a node that was just added, whose first heartbeat comes one interval after Falco starts, and a
 *   Falcosidekick restart (its counters start empty) page nobody.
 *
 * Node alerts are suppressed while Falcosidekick is down or not scraped (its own alert fires instead), and
 * "not detecting" needs a heartbeat within the last two intervals: a silenced node stops both, and its heartbeat
 * check fails first, so it pages once, as silent.
 *
 * Pure: no Pulumi, no I/O.
 */
import * as YAML from "yaml";
import { SELF_PROTECTION_RULES } from "../rules/selfProtection";
import {
    DETECTION_CANARY_RULE,
    FALCO_EVENTS_METRIC,
    HEARTBEAT_RULE,
    HOSTNAME_LABEL,
    RULE_LABEL,
    SYSCALL_DROP_RULE,
} from "./falcosidekick";
import { ALERT_NAMES, AlertKind, durationMs, formatDuration, ResolvedAlertingSettings } from "./settings";

/** One node the stack declares, as the alerts see it. */
export interface ExpectedNode {
    /** The node's name in the stack (`falco-nodes:nodes[].name`): the `node` label of its alerts. */
    name: string;
    /**
     * The hostname its Falco reports (Falcosidekick's `hostname` label): `falcoHostname` of the node
     * (components/shared/hostname.ts), the value its unit sets as `FALCO_HOSTNAME`.
     */
    hostname: string;
    /** Its heartbeat interval (`falco.heartbeat.interval`), e.g. `5m`. */
    heartbeatInterval: string;
}

export interface AlertRulesInput {
    /** Stack name: names the groups and labels every alert (`stack`), so stacks can share one Prometheus. */
    stack: string;
    nodes: readonly ExpectedNode[];
    settings: ResolvedAlertingSettings;
    /** The Falcosidekick scrape job (resolved: the settings' value or the stack's default). */
    sidekickJob: string;
}

/** A Prometheus alerting rule, as in a rule file (prometheus `rulefmt.RuleNode`). */
export interface AlertRule {
    alert: string;
    expr: string;
    for?: string;
    labels: Record<string, string>;
    annotations: Record<string, string>;
}
export interface RuleGroup {
    name: string;
    rules: AlertRule[];
}
/** A rule file's content, and a PrometheusRule's `spec`. */
export interface RuleGroups {
    groups: RuleGroup[];
}

/** A PromQL string literal. Inputs are validated to plain text; JSON's escapes are valid PromQL escapes. */
const str = (s: string) => JSON.stringify(s);

function selector(labels: Record<string, string>): string {
    return `{${Object.entries(labels).map(([k, v]) => `${k}=${str(v)}`).join(",")}}`;
}

/**
 * How many events matching `sel` Falcosidekick counted within `window`: the increase of existing series plus
 * one per series born within the window (whose first event `increase` misses). Always one sample, no labels.
 */
export function eventsIn(sel: string, window: string): string {
    const series = `${FALCO_EVENTS_METRIC}${sel}`;
    return `((sum(increase(${series}[${window}])) or vector(0)) + (count(${series} unless ${series} offset ${window}) or vector(0)))`;
}

/** The alert rules for a stack, or no groups when alerting is off. */
export function renderAlertRules(input: AlertRulesInput): RuleGroups {
    const { stack, nodes, settings: s, sidekickJob } = input;
    if (!s.enabled) return { groups: [] };
    const sidekickUp = `up${selector({ job: sidekickJob })} == 1`;
    const sidekickMissing = `absent(${sidekickUp})`;
    const labelsFor = (kind: AlertKind, extra: Record<string, string> = {}) => ({
        ...s.labels,
        severity: s.severities[kind],
        stack,
        ...extra,
    });

    const sidekick: RuleGroup = {
        name: `falco-nodes-${stack}-falcosidekick`,
        rules: [
            {
                alert: ALERT_NAMES.sidekickDown,
                expr: sidekickMissing,
                for: s.pendingFor,
                labels: labelsFor(AlertKind.SidekickDown),
                annotations: {
                    summary: `Falcosidekick (job ${sidekickJob}) is down or not scraped`,
                    description:
                        "No Falcosidekick target of this job is up, so no Falco node's heartbeat, canary or alert count can be seen: " +
                        "every falco-nodes node alert is held back until it is back. Check the Falcosidekick pods and the scrape configuration.",
                },
            },
        ],
    };

    const nodeRules = nodes.flatMap((n): AlertRule[] => {
        const on = (rule: string) => selector({ job: sidekickJob, [HOSTNAME_LABEL]: n.hostname, [RULE_LABEL]: rule });
        const silenceWindow = formatDuration(durationMs(n.heartbeatInterval) * s.silenceIntervals);
        const heartbeatSeries = `${FALCO_EVENTS_METRIC}${on(HEARTBEAT_RULE)}`;
        const heartbeats = eventsIn(on(HEARTBEAT_RULE), silenceWindow);
        const recentHeartbeats = eventsIn(on(HEARTBEAT_RULE), formatDuration(durationMs(n.heartbeatInterval) * 2));
        const who = { node: n.name, hostname: n.hostname };
        const where = n.hostname === n.name ? n.name : `${n.name} (hostname ${n.hostname})`;
        return [
            {
                alert: ALERT_NAMES.silent,
                expr: `${heartbeats} < 1 and on() count(${heartbeatSeries}) > 0 unless on() ${sidekickMissing}`,
                for: s.pendingFor,
                labels: labelsFor(AlertKind.Silent, who),
                annotations: {
                    summary: `Falco on ${n.name} is silent`,
                    description:
                        `No heartbeat ("${HEARTBEAT_RULE}") from ${where} for ${silenceWindow} (${s.silenceIntervals} intervals of ${n.heartbeatInterval}). ` +
                        "The node is down, Falco is stopped or cannot reach Falcosidekick, or someone silenced it: check `systemctl status falco-nodes.service` and the node's recent alerts.",
                },
            },
            {
                alert: ALERT_NAMES.unreported,
                // Not absent(): it would copy the selector's matchers (job, rule) onto the alert's labels.
                expr: `(count(${heartbeatSeries}) or vector(0)) == 0 unless on() ${sidekickMissing}`,
                for: silenceWindow,
                labels: labelsFor(AlertKind.Unreported, who),
                annotations: {
                    summary: `Falco on ${n.name} has not reported`,
                    description:
                        `Falcosidekick has no heartbeat from hostname ${n.hostname} (node ${n.name}) at all for ${silenceWindow}. ` +
                        "The node never came up or never reached Falcosidekick, or its Falco reports another hostname " +
                        "(our unit sets FALCO_HOSTNAME: check `systemctl show -p Environment falco-nodes.service`; an older " +
                        "unit or a drop-in may not), or it went silent before Falcosidekick last restarted.",
                },
            },
            {
                alert: ALERT_NAMES.notDetecting,
                expr: `${eventsIn(on(DETECTION_CANARY_RULE), s.canaryWindow)} < 1 and on() ${recentHeartbeats} >= 1`,
                for: s.pendingFor,
                labels: labelsFor(AlertKind.NotDetecting, who),
                annotations: {
                    summary: `Falco on ${n.name} is not detecting`,
                    description:
                        `${where} sends heartbeats but no detection canary alert ("${DETECTION_CANARY_RULE}") for ${s.canaryWindow}: ` +
                        "Falco runs but does not see or report what it should (driver detached, rules replaced or muted, canary timer stopped).",
                },
            },
            {
                alert: ALERT_NAMES.restarted,
                expr: `${eventsIn(on(SELF_PROTECTION_RULES.signal), s.eventWindow)} > 0`,
                labels: labelsFor(AlertKind.Restarted, who),
                annotations: {
                    summary: `Falco on ${n.name} was signalled outside a converge and restarts`,
                    description:
                        `Falco on ${where} reported "${SELF_PROTECTION_RULES.signal}" in the last ${s.eventWindow}: something other than converge ` +
                        "or systemd signalled it (systemd restarts it after a kill). Find who in that Critical alert.",
                },
            },
            {
                alert: ALERT_NAMES.drops,
                expr: `${eventsIn(on(SYSCALL_DROP_RULE), s.eventWindow)} > 0`,
                labels: labelsFor(AlertKind.Drops, who),
                annotations: {
                    summary: `Falco on ${n.name} is dropping kernel events`,
                    description:
                        `Falco on ${where} reported "${SYSCALL_DROP_RULE}" in the last ${s.eventWindow}: events were lost between the kernel and Falco, ` +
                        "so activity in that time may have gone unseen. A flood of syscalls is also a way to blind Falco.",
                },
            },
        ];
    });

    return { groups: [sidekick, ...(nodeRules.length ? [{ name: `falco-nodes-${stack}-nodes`, rules: nodeRules }] : [])] };
}

/** The rule file `npm run render` writes (`promtool check rules` accepts it as it is). */
export function renderAlertRulesFile(input: AlertRulesInput): string {
    const header =
        `# Prometheus alert rules for the falco-nodes stack ${input.stack}, rendered by falco-nodes (npm run render) from\n` +
        "# the stack's node list. Load with rule_files in prometheus.yml; see docs/alerting.md.\n";
    return header + YAML.stringify(renderAlertRules(input), { lineWidth: 0 });
}
