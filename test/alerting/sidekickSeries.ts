/**
 * Test double: the series a Prometheus scraping Falcosidekick 2.31.1 holds, written as `promtool test rules`
 * input series. Models falcosecurity/falcosidekick `handlers.go` `newFalcoPayload` and `stats_prometheus.go`
 * `getFalcoNewCounterVec`:
 * - one counter `falcosecurity_falcosidekick_falco_events_total` per label set; a label set is born on its first
 *   event at value 1 (`promStats.Falco.With(promLabels).Inc()`), counts +1 per event and is never deleted while
 *   the process runs: it is scraped, unchanged, after its node has gone quiet;
 * - labels: `hostname` (the event's top-level `hostname`), `rule`, `priority` (Falcosidekick's number),
 *   `priority_raw` (the lower-case name), `source`; `k8s_ns_name` / `k8s_pod_name` are empty for host events,
 *   and Prometheus drops empty-valued labels at scrape, so they are absent here;
 * - the scrape target's labels (`job`, `instance`) on every series, and `up`.
 * And Prometheus' scrape: a sample per scrape interval; a failed scrape writes `up 0` and a staleness marker on
 * every series of the target (prometheus `scrape/scrape.go`), which promtool writes as `stale`.
 *
 * Times are whole minutes from the start of the test; one scrape per minute.
 */
import { FALCO_EVENTS_METRIC, SIDEKICK_PRIORITY } from "../../components/alerting";

export const SCRAPE = { job: "falcosidekick", instance: "falcosidekick.monitoring.svc:2801" } as const;

export interface EventStream {
    /** The Falco event's top-level `hostname`. */
    hostname: string;
    /** Its `rule`. */
    rule: string;
    /** Its priority name, as Falco writes it (`Informational`, `Critical`, ...). */
    priority: string;
    /** Its `source` (`internal` for Falco's own events, `syscall` for rules). */
    source: string;
    /** Minutes at which Falcosidekick receives one such event. */
    at: number[];
}

export interface InputSeries {
    series: string;
    values: string;
}

/** Every minute from `from` to `to` inclusive, every `step` minutes. */
export function every(step: number, from: number, to: number): number[] {
    const out: number[] = [];
    for (let t = from; t <= to; t += step) out.push(t);
    return out;
}

function labelText(labels: Record<string, string>): string {
    return `{${Object.entries(labels).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(",")}}`;
}

/** One Falcosidekick process as a scrape target: its address, and the minutes it is scraped (from, until). */
export interface Target {
    instance?: string;
    /** First minute it is scraped: a new process, whose counters start empty. Default 0. */
    from?: number;
    /** First minute its scrape fails (a staleness marker, then no sample). Default never. */
    until?: number;
}

/** The scraped counter of one event stream, as one Falcosidekick process counts it, until `horizon`. */
export function counterSeries(e: EventStream, horizon: number, target: Target = {}): InputSeries {
    const { instance = SCRAPE.instance, from = 0, until = Infinity } = target;
    const raw = e.priority.toLowerCase() as keyof typeof SIDEKICK_PRIORITY;
    const labels = {
        job: SCRAPE.job,
        instance,
        hostname: e.hostname,
        rule: e.rule,
        priority: String(SIDEKICK_PRIORITY[raw]),
        priority_raw: raw,
        source: e.source,
    };
    const samples: string[] = [];
    for (let t = 0; t <= horizon; t++) {
        // Events before the process started went to the previous one.
        const count = e.at.filter((x) => x >= from && x <= t).length;
        if (t === until) samples.push("stale");
        else if (t > until || t < from || count === 0) samples.push("_");
        else samples.push(String(count));
    }
    return { series: `${FALCO_EVENTS_METRIC}${labelText(labels)}`, values: samples.join(" ") };
}

/** The target's `up`: 1 while scraped, 0 once its scrape fails (`until`); no sample before `from`. */
export function upSeries(horizon: number, target: Target = {}): InputSeries {
    const { instance = SCRAPE.instance, from = 0, until = Infinity } = target;
    const samples: string[] = [];
    for (let t = 0; t <= horizon; t++) samples.push(t < from ? "_" : t >= until ? "0" : "1");
    return { series: `up${labelText({ job: SCRAPE.job, instance })}`, values: samples.join(" ") };
}
