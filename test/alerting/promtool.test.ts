/**
 * The rendered alert rules under the real Prometheus rule engine: `promtool check rules` on every stack's
 * rendered file, and `promtool test rules` over fleets whose Falcosidekick series are modelled by
 * ./sidekickSeries.ts (the counter as Falcosidekick 2.31.1 exports it, scraped once a minute).
 *
 * Each scenario checks, at each checkpoint, every alert name: promtool compares the full list of firing alerts
 * of a name, so "exactly these alerts" is what passes. Expected times follow from the settings (windows and
 * `for:`), not from a recorded run: a heartbeat counted at minute h (its increment sits between the samples at
 * h-1 and h) leaves a window W at h+W; the condition then needs `for:` to fire.
 */
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as YAML from "yaml";
import {
    ALERT_NAMES,
    AlertRule,
    DETECTION_CANARY_RULE,
    durationMs,
    HEARTBEAT_RULE,
    renderAlertRules,
    RuleGroups,
    SYSCALL_DROP_RULE,
} from "../../components/alerting";
import { SELF_PROTECTION_RULES } from "../../components/rules";
import { renderStackAlertRules } from "../../scripts/render";
import { counterSeries, EventStream, every, InputSeries, Target, upSeries } from "./sidekickSeries";
import { existingNode, parseStack } from "./stack";

const STACK = "test";
const HORIZON = 90;
const minutes = (d: string) => durationMs(d) / 60_000;

function promtool(args: string[], cwd: string): { status: number | null; out: string } {
    const r = spawnSync("promtool", args, { cwd, encoding: "utf8" });
    if (r.error) assert.fail(`promtool is needed for these tests (Debian's prometheus package: bash .ci/install-deps): ${r.error.message}`);
    return { status: r.status, out: `${r.stdout}\n${r.stderr}` };
}

/** The rules of a stack of existing nodes, parsed and rendered as the program and `npm run render` do. */
/** Rules for a stack of existing nodes, by name, or as `{ name, hostname }` for a node with its own hostname. */
function stackRules(nodes: (string | { name: string; hostname: string })[], alerting: Record<string, unknown> = {}, falco: Record<string, unknown> = {}): RuleGroups {
    const declared = nodes.map((n) => (typeof n === "string" ? existingNode(n) : { ...existingNode(n.name), hostname: n.hostname }));
    const a = parseStack({ "falco-nodes:nodes": declared, "falco-nodes:alerting": alerting, "falco-nodes:falco": falco }).alerting;
    return renderAlertRules({ stack: STACK, nodes: a.nodes, settings: a.settings, sidekickJob: a.sidekickJob });
}

const allRules = (g: RuleGroups): AlertRule[] => g.groups.flatMap((x) => x.rules);

/** A firing alert as promtool expects it: the rule's own labels and annotations (none are templated). */
function firing(rules: RuleGroups, alert: string, node?: string) {
    const r = allRules(rules).find((x) => x.alert === alert && (node === undefined || x.labels.node === node));
    assert.ok(r, `no rule ${alert} for ${node}`);
    return { exp_labels: r.labels, exp_annotations: r.annotations };
}

/** A healthy node: a heartbeat every 5 minutes from minute 0, a canary alert every 5 minutes from minute 2. */
function healthy(hostname: string, until = HORIZON): EventStream[] {
    return [
        { hostname, rule: HEARTBEAT_RULE, priority: "Informational", source: "internal", at: every(5, 0, until) },
        { hostname, rule: DETECTION_CANARY_RULE, priority: "Critical", source: "syscall", at: every(5, 2, until) },
    ];
}

type Expected = Partial<Record<string, ReturnType<typeof firing>[]>>;

/**
 * Run `promtool test rules` with `rules` over `streams`: at each checkpoint, exactly the alerts `expect(t)`
 * returns fire, and no other alert of any of our names.
 */
function runScenario(rules: RuleGroups, series: InputSeries[], checkpoints: number[], expect: (t: number) => Expected) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "falco-nodes-promtool-"));
    try {
        fs.writeFileSync(path.join(dir, "rules.yaml"), YAML.stringify(rules, { lineWidth: 0 }));
        const names = Object.values(ALERT_NAMES);
        const test = {
            rule_files: ["rules.yaml"],
            evaluation_interval: "1m",
            tests: [
                {
                    interval: "1m",
                    input_series: series,
                    alert_rule_test: checkpoints.flatMap((t) => {
                        const e = expect(t);
                        return names.map((alertname) => ({ eval_time: `${t}m`, alertname, exp_alerts: e[alertname] ?? [] }));
                    }),
                },
            ],
        };
        fs.writeFileSync(path.join(dir, "test.yaml"), YAML.stringify(test, { lineWidth: 0 }));
        const r = promtool(["test", "rules", "test.yaml"], dir);
        assert.strictEqual(r.status, 0, r.out);
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

/** What Prometheus holds for one Falcosidekick process (`target`) counting `streams`. */
const seriesOf = (streams: EventStream[], target: Target = {}) => [upSeries(HORIZON, target), ...streams.map((s) => counterSeries(s, HORIZON, target))];

describe("alert rules: promtool", function () {
    this.timeout(120_000);

    it("promtool check rules accepts the rendered file of every stack", () => {
        const stacksDir = path.resolve(__dirname, "../../stacks");
        const stacks = fs.readdirSync(stacksDir).map((f) => /^Pulumi\.(.+)\.yaml$/.exec(f)?.[1]).filter((s): s is string => !!s);
        assert.ok(stacks.length >= 3, `stacks found: ${stacks.join(", ")}`);
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "falco-nodes-rules-"));
        try {
            for (const stack of stacks) {
                const text = renderStackAlertRules(path.join(stacksDir, `Pulumi.${stack}.yaml`), stack);
                assert.ok(text, `${stack}: alerting is on by default`);
                const file = path.join(dir, `${stack}.rules.yaml`);
                fs.writeFileSync(file, text);
                const r = promtool(["check", "rules", file], dir);
                assert.strictEqual(r.status, 0, `${stack}: ${r.out}`);
                // One Falcosidekick rule, five per node of the stack.
                const nodes = YAML.parse(text).groups.flatMap((g: { rules: AlertRule[] }) => g.rules).filter((x: AlertRule) => x.labels.node);
                assert.match(r.out, new RegExp(`SUCCESS: ${1 + nodes.length} rules found`));
                assert.ok(nodes.length >= 5 && nodes.length % 5 === 0, `${stack}: ${nodes.length} node rules`);
            }
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    it("promtool check rules rejects a broken rule file (the check can fail)", () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "falco-nodes-rules-"));
        try {
            const rules = stackRules(["web-1"]);
            rules.groups[0].rules[0].expr = "absent(up{job=";
            fs.writeFileSync(path.join(dir, "bad.yaml"), YAML.stringify(rules));
            assert.notStrictEqual(promtool(["check", "rules", "bad.yaml"], dir).status, 0);
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    describe("a fleet of three: one goes silent, one stops detecting, one restarts", () => {
        const rules = stackRules(["web-1", "web-2", "db-1"]);
        const W = minutes("15m"); // 3 heartbeat intervals of 5m (silenceIntervals default)
        const C = minutes("15m"); // canaryWindow default
        const E = minutes("15m"); // eventWindow default
        const P = minutes("2m"); // pendingFor default
        const lastHeartbeat = 30; // web-1: Falco stopped, blinded or cut off after minute 30
        const lastCanary = 27; // web-2: canary alerts stop after minute 27, heartbeats go on
        const signalled = 41; // db-1: signalled at 41 (systemd restarts it), heartbeats resume at 46
        const streams: EventStream[] = [
            ...healthy("web-1", lastHeartbeat),
            healthy("web-2")[0],
            { ...healthy("web-2")[1], at: every(5, 2, lastCanary) },
            { ...healthy("db-1")[0], at: [...every(5, 0, 40), ...every(5, 46, HORIZON)] },
            healthy("db-1")[1],
            { hostname: "db-1", rule: SELF_PROTECTION_RULES.signal, priority: "Critical", source: "syscall", at: [signalled] },
        ];
        const silentAt = lastHeartbeat + W + P;
        const notDetectingAt = lastCanary + C + P;

        it("exactly the expected alerts fire, at the expected times", () => {
            const checkpoints = [...new Set([0, 10, 20, 40, signalled, silentAt - 1, silentAt, notDetectingAt - 1, notDetectingAt, signalled + E - 1, signalled + E, 70, HORIZON])].sort((a, b) => a - b);
            runScenario(rules, seriesOf(streams), checkpoints, (t) => ({
                [ALERT_NAMES.silent]: t >= silentAt ? [firing(rules, ALERT_NAMES.silent, "web-1")] : [],
                [ALERT_NAMES.notDetecting]: t >= notDetectingAt ? [firing(rules, ALERT_NAMES.notDetecting, "web-2")] : [],
                [ALERT_NAMES.restarted]: t >= signalled && t < signalled + E ? [firing(rules, ALERT_NAMES.restarted, "db-1")] : [],
            }));
        });

        it("a healthy fleet fires nothing", () => {
            const ok = ["web-1", "web-2", "db-1"].flatMap((h) => healthy(h));
            runScenario(rules, seriesOf(ok), every(5, 0, HORIZON), () => ({}));
        });

        it("kernel drops page as a warning while the drop events are in the window", () => {
            const drops: EventStream = { hostname: "web-2", rule: SYSCALL_DROP_RULE, priority: "Debug", source: "internal", at: [20, 22] };
            const ok = ["web-1", "web-2", "db-1"].flatMap((h) => healthy(h));
            runScenario(rules, seriesOf([...ok, drops]), [19, 20, 22, 30, 22 + E - 1, 22 + E], (t) => ({
                [ALERT_NAMES.drops]: t >= 20 && t < 22 + E ? [firing(rules, ALERT_NAMES.drops, "web-2")] : [],
            }));
        });

        it("Falcosidekick down pages once, as itself, and holds the node alerts back", () => {
            const failsAt = 60;
            const ok = ["web-1", "web-2", "db-1"].flatMap((h) => healthy(h));
            runScenario(rules, seriesOf(ok, { until: failsAt }), [failsAt, failsAt + P - 1, failsAt + P, failsAt + W + P, HORIZON], (t) => ({
                [ALERT_NAMES.sidekickDown]: t >= failsAt + P ? [firing(rules, ALERT_NAMES.sidekickDown)] : [],
            }));
        });

        it("a Falcosidekick restart (a new pod, its counters empty) pages nobody, and a node silent across it still pages", () => {
            // The old pod goes at 50, the new one is scraped from 51 and only counts what arrives after.
            const restart = 50;
            const ok = ["web-1", "web-2", "db-1"].flatMap((h) => healthy(h));
            const pods = (streams: EventStream[]) => [
                ...seriesOf(streams, { until: restart }),
                ...seriesOf(streams, { instance: "10.0.7.9:2801", from: restart + 1 }),
            ];
            runScenario(rules, pods(ok), every(1, restart - 2, restart + W + P + 5), () => ({}));
            // web-1 sent its last heartbeat at 45: the new pod never sees it, so it is unreported a window later.
            const silentAcross = [...healthy("web-1", 45), ...healthy("web-2"), ...healthy("db-1")];
            const unreportedAt = restart + 1 + W;
            runScenario(rules, pods(silentAcross), [unreportedAt - 1, unreportedAt, HORIZON], (t) => ({
                [ALERT_NAMES.unreported]: t >= unreportedAt ? [firing(rules, ALERT_NAMES.unreported, "web-1")] : [],
            }));
        });
    });

    describe("the node list decides who is expected", () => {
        // db-1 is uninstalled at minute 30 (its heartbeats stop); the other two stay healthy.
        const streams = [...healthy("web-1"), ...healthy("web-2"), ...healthy("db-1", 30)];
        const silentAt = 30 + minutes("15m") + minutes("2m");

        it("while db-1 is declared, its silence pages", () => {
            const rules = stackRules(["web-1", "web-2", "db-1"]);
            runScenario(rules, seriesOf(streams), [silentAt, HORIZON], () => ({ [ALERT_NAMES.silent]: [firing(rules, ALERT_NAMES.silent, "db-1")] }));
        });

        it("a node removed from the stack stops being expected", () => {
            const rules = stackRules(["web-1", "web-2"]);
            assert.ok(!JSON.stringify(rules).includes("db-1"));
            runScenario(rules, seriesOf(streams), [silentAt, HORIZON], () => ({}));
        });

        it("a node whose Falco reports another hostname than the one its unit sets is unreported", () => {
            // E.g. a host still on a unit without FALCO_HOSTNAME (or a drop-in overriding it): the EC2 hostname.
            const aws = healthy("ip-10-0-1-23");
            const expected = stackRules(["edge-1"]);
            const W = minutes("15m");
            runScenario(expected, seriesOf(aws), [W - 1, W, HORIZON], (t) => ({
                [ALERT_NAMES.unreported]: t >= W ? [firing(expected, ALERT_NAMES.unreported, "edge-1")] : [],
            }));
            // Reporting the name its unit sets, it is healthy; and with a hostname of its own, that one is expected.
            runScenario(expected, seriesOf(healthy("edge-1")), every(5, 0, HORIZON), () => ({}));
            const own = stackRules([{ name: "edge-1", hostname: "edge-1.eu-west-1.example.net" }]);
            runScenario(own, seriesOf(healthy("edge-1.eu-west-1.example.net")), every(5, 0, HORIZON), () => ({}));
        });

        it("a node's own heartbeat interval sets its silence window", () => {
            // 1m heartbeats, default 3 intervals: silent 3m (+ for) after the last one.
            const rules = stackRules(["web-1"], {}, { heartbeat: { interval: "1m" } });
            const fast: EventStream[] = [
                { hostname: "web-1", rule: HEARTBEAT_RULE, priority: "Informational", source: "internal", at: every(1, 0, 40) },
                { hostname: "web-1", rule: DETECTION_CANARY_RULE, priority: "Critical", source: "syscall", at: every(5, 2, HORIZON) },
            ];
            const at = 40 + 3 + minutes("2m");
            runScenario(rules, seriesOf(fast), [at - 1, at], (t) => ({ [ALERT_NAMES.silent]: t >= at ? [firing(rules, ALERT_NAMES.silent, "web-1")] : [] }));
        });
    });
});
