/**
 * What Falcosidekick 2.31.1 (the version the falcosidekick 0.12.1 sub-chart runs: its Chart.yaml `appVersion`)
 * exports to Prometheus, and the Falco event names our alerts count. Everything the alert rules match on is here,
 * so a Falcosidekick or Falco upgrade that renames something is a change to this file.
 *
 * Upstream, falcosecurity/falcosidekick (the metric names of PR #995, released in 2.30.0 and unchanged in
 * 2.31.x; the stored source we read is master after 2.31.1, not the tag itself):
 * - `stats_prometheus.go` `getFalcoNewCounterVec`: one counter, `falcosecurity_falcosidekick_falco_events_total`,
 *   with the labels `hostname, rule, priority, priority_raw, source, k8s_ns_name, k8s_pod_name`, then one label
 *   per `customfields` / `templatedfields` key and per `prometheus.extralabels` entry (dots become `_`).
 * - `handlers.go` `newFalcoPayload`: the counter is incremented once per event received, before any output runs
 *   (so whatever an output's `minimumpriority`). `hostname` is the event's top-level `hostname` (`"unknown"` when
 *   empty); `priority` is the priority's number (`strconv.Itoa`) and `priority_raw` its lower-case name. An
 *   `extralabels` entry takes the output field's value **only when it is a string** (`case string:`; the payload
 *   is decoded with `UseNumber`, so numbers are `json.Number` and are skipped): numeric fields such as
 *   `falco.start_ts`, `scap.n_drops` or `falco.outputs_queue_num_drops` can never become labels or values
 *   (falcosecurity/falcosidekick issue #1124 is a user finding the same). A label set is created on its first
 *   event, at value 1; it is never deleted while the process runs.
 * - The Falcosidekick scrape target's `up` series: the falcosidekick chart's own PrometheusRule
 *   (`charts/falcosidekick/templates/prometheusrule.yaml`, falcosecurity/charts) alerts on `absent(up{job=<fullname>})`;
 *   the chart's ServiceMonitor (`charts/falcosidekick/templates/servicemonitor.yaml`) sets no `jobLabel`, so the
 *   Prometheus operator names the job after the Service.
 */
import { CANARY_RULE } from "../rules/canary";

/** The event counter (stats_prometheus.go `metricPrefix + "falco_events_total"`). */
export const FALCO_EVENTS_METRIC = "falcosecurity_falcosidekick_falco_events_total";

/** Its label names (stats_prometheus.go `getFalcoNewCounterVec` `labelnames`, before custom/extra labels). */
export const FALCO_EVENTS_LABELS = ["hostname", "rule", "priority", "priority_raw", "source", "k8s_ns_name", "k8s_pod_name"] as const;

/** The labels our rules match on. */
export const HOSTNAME_LABEL = "hostname" satisfies (typeof FALCO_EVENTS_LABELS)[number];
export const RULE_LABEL = "rule" satisfies (typeof FALCO_EVENTS_LABELS)[number];

/**
 * Falcosidekick's numbering of priorities (falcosidekick `types/types.go` `Priority`: Default 0, Debug 1,
 * Informational 2, Notice 3, Warning 4, Error 5, Critical 6, Alert 7, Emergency 8), the value of `priority`.
 */
export const SIDEKICK_PRIORITY = {
    debug: 1,
    informational: 2,
    notice: 3,
    warning: 4,
    error: 5,
    critical: 6,
    alert: 7,
    emergency: 8,
} as const;

/**
 * The heartbeat: Falco's metrics snapshot, emitted every `metrics.interval` when `metrics.output_rule` is on
 * (falcosecurity/falco `userspace/falco/stats_writer.cpp` `stats_writer::worker`; a real one is
 * shared/reference/falco/outputs/alert.metrics_snapshot.json).
 */
export const HEARTBEAT_RULE = "Falco internal: metrics snapshot";

/**
 * Kernel-side drops: with `syscall_event_drops.actions` containing `alert` (our falco.yaml sets `[log, alert]`),
 * Falco emits this event when drops pass the threshold, rate-limited (Falco's falco.yaml, `syscall_event_drops`:
 * "Emits a Falco rule named "Falco internal: syscall event drop""). It is what Falcosidekick can count of
 * `scap.n_drops`.
 */
export const SYSCALL_DROP_RULE = "Falco internal: syscall event drop";

/**
 * The detection canary's alert (components/rules/canary.ts: a systemd timer on each node opens the canary file,
 * which our canary rule detects, every 5 minutes by default).
 */
export const DETECTION_CANARY_RULE = CANARY_RULE;
