import * as assert from "assert";
import * as YAML from "yaml";
import { OUTPUTS_QUEUE_CAPACITY, renderFalcoConfig, renderSecretsConfig } from "../../components/host/falcoConfig";
import { HostSettings, resolveHostSettings } from "../../components/host/settings";
import { renderRuleFiles } from "../../components/rules";
import { configSchemaErrors } from "../support/falcoReference";

/** What docs/alerting.md and docs/threat-model.md promise about the heartbeat and drops, as rendered. */
function main(settings: HostSettings): Record<string, any> {
    const s = resolveHostSettings(settings);
    return YAML.parse(renderFalcoConfig(s, renderRuleFiles(s).map((f) => f.fileName)));
}

describe("heartbeat and drops (docs/alerting.md)", () => {
    it("emits the metrics snapshot through the normal outputs, with drop and kernel counters, by default", () => {
        const m = main({}).metrics;
        assert.strictEqual(m.enabled, true);
        assert.strictEqual(m.output_rule, true, 'the "Falco internal: metrics snapshot" event goes to the outputs');
        assert.strictEqual(m.interval, "5m");
        assert.strictEqual(m.kernel_event_counters_enabled, true);
        assert.strictEqual(m.rules_counters_enabled, true);
    });

    it("follows heartbeat.interval and can be turned off", () => {
        assert.strictEqual(main({ heartbeat: { interval: "1m" } }).metrics.interval, "1m");
        assert.strictEqual(main({ heartbeat: { enabled: false } }).metrics.enabled, false);
    });

    it("raises an alert (not only a log line) when the kernel drops events, and bounds the output queue", () => {
        const c = main({});
        assert.ok(c.syscall_event_drops.actions.includes("alert"), JSON.stringify(c.syscall_event_drops));
        assert.strictEqual(c.outputs_queue.capacity, OUTPUTS_QUEUE_CAPACITY);
        assert.ok(OUTPUTS_QUEUE_CAPACITY > 0, "0 would mean unbounded");
    });

    it("sends alerts and the heartbeat off the host when the HTTP output is on (beside syslog, i.e. the journal)", () => {
        const settings: HostSettings = { outputs: { http: { enabled: true, url: "https://sidekick.example.com:2801/" } } };
        const c = main(settings);
        assert.strictEqual(c.syslog_output.enabled, true);
        const secrets = YAML.parse(renderSecretsConfig(resolveHostSettings(settings), {})!);
        assert.strictEqual(secrets.http_output.enabled, true);
        assert.strictEqual(secrets.http_output.url, "https://sidekick.example.com:2801/");
        assert.strictEqual(secrets.http_output.insecure, false);
        assert.deepStrictEqual(configSchemaErrors({ ...c, ...secrets }), []);
    });
});
