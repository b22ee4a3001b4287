/**
 * `falco-nodes:alerting`: defaults, bad values named by key, the stack-level checks (one hostname per node, no
 * unwatchable node), the hostname each node is expected under (the one its unit sets), and what the renderer
 * makes of them.
 */
import * as assert from "assert";
import {
    ALERT_NAMES,
    AlertingSettingsError,
    DEFAULT_SEVERITIES,
    durationMs,
    FALCO_EVENTS_METRIC,
    formatDuration,
    renderAlertRules,
    resolveAlertingSettings,
} from "../../components/alerting";
import { StackConfigError } from "../../components/config";
import { existingNode as node, parseStack as parse } from "./stack";

function problems(values: Record<string, unknown>): { key: string; message: string }[] {
    try {
        parse(values);
    } catch (e) {
        assert.ok(e instanceof StackConfigError, String(e));
        return e.problems;
    }
    assert.fail("expected the config to be rejected");
}

describe("alerting settings", () => {
    it("defaults: on, 3 heartbeat intervals, 15m canary and event windows, 2m pending, documented severities", () => {
        const s = resolveAlertingSettings();
        assert.strictEqual(s.enabled, true);
        assert.strictEqual(s.silenceIntervals, 3);
        assert.strictEqual(s.canaryWindow, "15m");
        assert.strictEqual(s.eventWindow, "15m");
        assert.strictEqual(s.pendingFor, "2m");
        assert.deepStrictEqual(s.severities, DEFAULT_SEVERITIES);
        assert.strictEqual(s.severities.silent, "critical");
        assert.strictEqual(s.severities.restarted, "warning");
        assert.strictEqual(s.prometheusRule.enabled, false);
    });

    it("names every bad key at once", () => {
        try {
            resolveAlertingSettings({
                silenceIntervals: 1,
                canaryWindow: "fifteen minutes",
                severities: { silent: "page\nnow" } as never,
                labels: { "bad-name": "x" },
                colour: "red",
            } as never);
            assert.fail("expected an error");
        } catch (e) {
            assert.ok(e instanceof AlertingSettingsError);
            const keys = e.problems.map((p) => p.key).sort();
            assert.deepStrictEqual(keys, ["canaryWindow", "colour", "labels.bad-name", "severities.silent", "silenceIntervals"].sort());
        }
    });

    it("refuses extra labels the rules set themselves", () => {
        assert.throws(() => resolveAlertingSettings({ labels: { severity: "low" } }), (e: AlertingSettingsError) => e.problems[0].key === "labels.severity");
    });

    it("durations: parsed and formatted in Prometheus' syntax", () => {
        assert.strictEqual(durationMs("5m"), 300_000);
        assert.strictEqual(formatDuration(3 * durationMs("5m")), "15m");
        assert.strictEqual(formatDuration(3 * durationMs("20m")), "1h");
        assert.strictEqual(formatDuration(3 * durationMs("90s")), "270s");
        assert.strictEqual(formatDuration(3 * durationMs("250ms")), "750ms");
    });
});

describe("alerting in the stack config", () => {
    it("expects every declared node under the hostname its unit sets: its name, or its own hostname", () => {
        const cfg = parse({ "falco-nodes:nodes": [node("web-1"), { ...node("edge-1"), hostname: "edge-1.eu-west-1.example.net" }] });
        assert.deepStrictEqual(cfg.alerting.nodes, [
            { name: "web-1", hostname: "web-1", heartbeatInterval: "5m" },
            { name: "edge-1", hostname: "edge-1.eu-west-1.example.net", heartbeatInterval: "5m" },
        ]);
        assert.deepStrictEqual(cfg.nodes.map((n) => n.hostname), ["web-1", "edge-1.eu-west-1.example.net"]);
        assert.strictEqual(cfg.alerting.sidekickJob, "falcosidekick");
    });

    it("reports each problem with its full key and the fix", () => {
        const p = problems({
            "falco-nodes:nodes": [node("web-1"), { ...node("web-2"), hostname: "web-1" }, node("quiet", { heartbeat: { enabled: false } }), { ...node("odd"), hostname: "odd host" }, { ...node("num"), hostname: 42 }],
            "falco-nodes:alerting": { hostnames: { "web-2": "web-1" }, pendingFor: "soon", colour: "red", shade: 1, prometheusRule: { enabled: true } },
        });
        const byKey = Object.fromEntries(p.map((x) => [x.key, x.message]));
        assert.match(byKey["falco-nodes:alerting.pendingFor"], /duration/);
        assert.match(byKey["falco-nodes:alerting.colour, shade"], /unknown key/);
        assert.match(byKey["falco-nodes:alerting.hostnames"], /is gone: .*FALCO_HOSTNAME.*falco-nodes:nodes\[\]\.hostname/);
        assert.match(byKey["falco-nodes:nodes[1].hostname"], /nodes 'web-1' and 'web-2' would both report hostname 'web-1'/);
        assert.match(byKey["falco-nodes:nodes[3].hostname"], /"odd host" is not a hostname/);
        assert.match(byKey["falco-nodes:nodes[4].hostname"], /must be a string/);
        assert.match(byKey["falco-nodes:alerting"], /'quiet' has falco.heartbeat.enabled: false/);
        assert.match(byKey["falco-nodes:alerting.prometheusRule.enabled"], /cluster.enabled/);
    });

    it("a node without heartbeat is fine once alerting is off, and then nothing is rendered", () => {
        const cfg = parse({ "falco-nodes:nodes": [node("quiet", { heartbeat: { enabled: false } })], "falco-nodes:alerting": { enabled: false } });
        const a = cfg.alerting;
        assert.deepStrictEqual(renderAlertRules({ stack: "s", nodes: a.nodes, settings: a.settings, sidekickJob: a.sidekickJob }), { groups: [] });
    });
});

describe("alert rules: renderAlertRules", () => {
    const render = (alerting: Record<string, unknown>, nodes: Record<string, unknown>[] = [node("web-1"), node("web-2", { heartbeat: { interval: "1m" } })]) => {
        const a = parse({ "falco-nodes:nodes": nodes, "falco-nodes:alerting": alerting }).alerting;
        return renderAlertRules({ stack: "prod", nodes: a.nodes, settings: a.settings, sidekickJob: a.sidekickJob });
    };
    const rules = (g: ReturnType<typeof render>) => g.groups.flatMap((x) => x.rules);

    it("one Falcosidekick rule, five per node, each node's labelled with its node and hostname", () => {
        const g = render({});
        assert.deepStrictEqual(g.groups.map((x) => x.name), ["falco-nodes-prod-falcosidekick", "falco-nodes-prod-nodes"]);
        const r = rules(g);
        assert.strictEqual(r.length, 11);
        for (const n of ["web-1", "web-2"])
            assert.deepStrictEqual(
                r.filter((x) => x.labels.node === n).map((x) => x.alert).sort(),
                [ALERT_NAMES.silent, ALERT_NAMES.unreported, ALERT_NAMES.notDetecting, ALERT_NAMES.restarted, ALERT_NAMES.drops].sort(),
            );
        for (const x of r) assert.ok(x.expr.includes('job="falcosidekick"'), x.alert);
        assert.ok(r.every((x) => x.labels.stack === "prod"));
    });

    it("a node's silence window is its own heartbeat interval times silenceIntervals", () => {
        const silent = (g: ReturnType<typeof render>, n: string) => rules(g).find((x) => x.alert === ALERT_NAMES.silent && x.labels.node === n)!;
        assert.match(silent(render({}), "web-1").expr, /\[15m\]/);
        assert.match(silent(render({}), "web-2").expr, /\[3m\]/);
        assert.match(silent(render({ silenceIntervals: 4 }), "web-1").expr, /\[20m\]/);
        assert.strictEqual(rules(render({})).find((x) => x.alert === ALERT_NAMES.unreported && x.labels.node === "web-2")!.for, "3m");
    });

    it("matches the hostname Falco reports, and counts Falcosidekick's own metric", () => {
        const r = rules(render({}, [{ ...node("web-1"), hostname: "web-1.example.net" }])).filter((x) => x.labels.node === "web-1");
        assert.strictEqual(r.length, 5);
        for (const x of r) {
            assert.ok(x.expr.includes(`${FALCO_EVENTS_METRIC}{job="falcosidekick",hostname="web-1.example.net",rule=`), x.expr);
            assert.strictEqual(x.labels.hostname, "web-1.example.net");
        }
    });

    it("severities, extra labels, windows and the scrape job are settings", () => {
        const r = rules(render({ severities: { restarted: "page" }, labels: { team: "security" }, eventWindow: "1h", sidekickJob: "sidekick-prod" }));
        const restarted = r.find((x) => x.alert === ALERT_NAMES.restarted)!;
        assert.strictEqual(restarted.labels.severity, "page");
        assert.match(restarted.expr, /\[1h\]/);
        assert.ok(r.every((x) => x.labels.team === "security"));
        assert.ok(r.every((x) => x.expr.includes('job="sidekick-prod"')));
    });

    it("a removed node leaves no rule behind; a stack without nodes keeps the Falcosidekick rule", () => {
        assert.ok(!JSON.stringify(render({}, [node("web-1")])).includes("web-2"));
        assert.deepStrictEqual(rules(render({}, [])).map((x) => x.alert), [ALERT_NAMES.sidekickDown]);
    });
});
