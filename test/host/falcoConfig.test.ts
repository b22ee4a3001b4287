import * as assert from "assert";
import fc from "fast-check";
import * as YAML from "yaml";
import {
    HTTP_URL_PLACEHOLDER,
    OUTPUTS_QUEUE_CAPACITY,
    WEBSERVER_LISTEN_ADDRESS,
    escapeFalcoEnvRefs,
    renderFalcoConfig,
    renderSecretsConfig,
} from "../../components/host/falcoConfig";
import { FALCO_CONFIG_D, FALCO_DEFAULT_RULES, FALCO_RULES_D, SECRET_PLACEHOLDER_PREFIX } from "../../components/host/paths";
import { HostSettings, ResolvedHostSettings, resolveHostSettings } from "../../components/host/settings";
import { renderRuleFiles } from "../../components/rules";
import { configSchemaErrors, falcoEnvExpand, mergeConfigAppend } from "../support/falcoReference";

type Config = Record<string, any>;

const SECRET_URL = "https://sidekick.example.com:2801/hook?token=s3cr3t-T0KEN";

const EVERYTHING_ON: HostSettings = {
    driver: "kmod",
    outputs: {
        minimumPriority: "warning",
        jsonOutput: true,
        syslog: true,
        stdout: true,
        file: { enabled: true, path: "/var/log/falco/alerts.json" },
        http: { enabled: true, insecure: true },
        program: { enabled: true, program: "jq '{text: .output}' | logger -t falco", keepAlive: false },
    },
    heartbeat: { enabled: true, interval: "15m" },
    webserver: { enabled: true, port: 9876 },
    rules: { defaultRules: true, builtin: ["self-protection", "app-config-example"], custom: { mine: "[]" } },
    extraConfig: { libs_logger: { enabled: true, severity: "notice" }, metrics: { include_empty_values: true } },
};

function render(input: HostSettings, secrets?: { httpOutputUrl?: string }) {
    const s = resolveHostSettings(input);
    const names = renderRuleFiles(s).map((f) => f.fileName);
    const mainText = renderFalcoConfig(s, names);
    const secretsText = renderSecretsConfig(s, secrets);
    return {
        s,
        names,
        mainText,
        secretsText,
        main: YAML.parse(mainText) as Config,
        secrets: secretsText === undefined ? undefined : (YAML.parse(secretsText) as Config),
    };
}

describe("renderFalcoConfig", () => {
    describe("with default settings", () => {
        const r = render({});

        it("validates against Falco's config schema", () => {
            assert.deepStrictEqual(configSchemaErrors(r.main), []);
        });

        it("starts with a header saying the file is managed", () => {
            assert.match(r.mainText, /^# Managed by falco-nodes/);
        });

        it("keeps config.d (the package's container plugin drop-in) and never watches files", () => {
            assert.deepStrictEqual(r.main.config_files, [FALCO_CONFIG_D]);
            assert.strictEqual(r.main.watch_config_files, false);
            assert.deepStrictEqual(r.main.load_plugins, []);
            assert.deepStrictEqual(r.main.plugins.map((p: Config) => p.name), ["container"]);
        });

        it("loads the package rules, then our files one by one in name order", () => {
            assert.deepStrictEqual(r.main.rules_files, [FALCO_DEFAULT_RULES, ...r.names.map((n) => `${FALCO_RULES_D}/${n}`)]);
        });

        it("leaves engine.kind to the unit's command line", () => {
            assert.strictEqual(r.main.engine, undefined);
        });

        it("binds the webserver to loopback and serves /healthz", () => {
            assert.strictEqual(r.main.webserver.listen_address, "127.0.0.1");
            assert.strictEqual(r.main.webserver.listen_port, 8765);
            assert.strictEqual(r.main.webserver.k8s_healthz_endpoint, "/healthz");
            assert.strictEqual(r.main.webserver.prometheus_metrics_enabled, false);
        });

        it("maps the output settings", () => {
            assert.strictEqual(r.main.priority, "notice");
            assert.strictEqual(r.main.json_output, true);
            assert.deepStrictEqual(r.main.syslog_output, { enabled: true });
            assert.deepStrictEqual(r.main.stdout_output, { enabled: false });
            assert.deepStrictEqual(r.main.file_output, { enabled: true, keep_alive: true, filename: "/var/log/falco/events.json" });
            assert.strictEqual(r.main.program_output.enabled, false);
            assert.strictEqual(r.main.buffered_outputs, false);
            assert.strictEqual(r.main.outputs_queue.capacity, OUTPUTS_QUEUE_CAPACITY);
            assert.ok(OUTPUTS_QUEUE_CAPACITY > 0);
            assert.strictEqual(r.main.log_syslog, true);
            assert.strictEqual(r.main.log_stderr, true);
            assert.strictEqual(r.main.log_level, "info");
        });

        it("emits the heartbeat as a metrics output rule", () => {
            assert.strictEqual(r.main.metrics.enabled, true);
            assert.strictEqual(r.main.metrics.interval, "5m");
            assert.strictEqual(r.main.metrics.output_rule, true);
            assert.strictEqual(r.main.metrics.output_file, "");
        });

        it("has no HTTP output anywhere", () => {
            assert.strictEqual(r.main.http_output, undefined);
            assert.strictEqual(r.secretsText, undefined);
        });
    });

    describe("with everything switched on", () => {
        const r = render(EVERYTHING_ON, { httpOutputUrl: SECRET_URL });

        it("validates main, drop-in and their merge against Falco's config schema", () => {
            assert.deepStrictEqual(configSchemaErrors(r.main), []);
            assert.deepStrictEqual(configSchemaErrors(r.secrets), []);
            assert.deepStrictEqual(configSchemaErrors(mergeConfigAppend(r.main, r.secrets!)), []);
        });

        it("maps every typed setting", () => {
            assert.strictEqual(r.main.priority, "warning");
            assert.deepStrictEqual(r.main.stdout_output, { enabled: true });
            assert.strictEqual(r.main.file_output.filename, "/var/log/falco/alerts.json");
            assert.deepStrictEqual(r.main.program_output, {
                enabled: true,
                keep_alive: false,
                program: "jq '{text: .output}' | logger -t falco",
            });
            assert.strictEqual(r.main.webserver.listen_port, 9876);
            assert.strictEqual(r.main.metrics.interval, "15m");
        });

        it("merges extraConfig over its own keys, keeping the rest", () => {
            assert.deepStrictEqual(r.main.libs_logger, { enabled: true, severity: "notice" });
            assert.strictEqual(r.main.metrics.include_empty_values, true);
            assert.strictEqual(r.main.metrics.output_rule, true);
        });

        it("puts the secret URL only in the drop-in", () => {
            assert.ok(!r.mainText.includes(SECRET_URL));
            assert.ok(!r.mainText.includes("s3cr3t"));
            assert.strictEqual(r.main.http_output, undefined);
            assert.strictEqual(r.secrets!.http_output.url, SECRET_URL);
            assert.strictEqual(r.secrets!.http_output.enabled, true);
            assert.strictEqual(r.secrets!.http_output.insecure, true);
            assert.deepStrictEqual(Object.keys(r.secrets!), ["http_output"]);
            assert.strictEqual((Object.prototype as Config).polluted, undefined);
        });
    });

    describe("the HTTP output URL", () => {
        it("comes from plain settings into the drop-in, not the main file", () => {
            const r = render({ outputs: { http: { enabled: true, url: "http://sidekick.internal:2801/" } } });
            assert.strictEqual(r.secrets!.http_output.url, "http://sidekick.internal:2801/");
            assert.ok(!r.mainText.includes("sidekick"));
            assert.deepStrictEqual(configSchemaErrors(r.secrets), []);
        });

        it("prefers the secret over the plain URL", () => {
            const r = render({ outputs: { http: { enabled: true, url: "http://plain.internal/" } } }, { httpOutputUrl: SECRET_URL });
            assert.strictEqual(r.secrets!.http_output.url, SECRET_URL);
        });

        it("is the placeholder when it must come from a secret and secrets are absent", () => {
            const r = render({ outputs: { http: { enabled: true } } }, undefined);
            assert.strictEqual(r.secrets!.http_output.url, HTTP_URL_PLACEHOLDER);
            assert.ok(HTTP_URL_PLACEHOLDER.startsWith(SECRET_PLACEHOLDER_PREFIX));
            // The placeholder is no URI (converge refuses it anyway); the real URL makes the drop-in schema-valid.
            assert.notDeepStrictEqual(configSchemaErrors(r.secrets), []);
            const substituted = { http_output: { ...r.secrets!.http_output, url: SECRET_URL } };
            assert.deepStrictEqual(configSchemaErrors(substituted), []);
        });

        it("is required when the output is on and secrets are known", () => {
            const s = resolveHostSettings({ outputs: { http: { enabled: true } } });
            assert.throws(() => renderSecretsConfig(s, {}), /outputs\.http\.enabled is true but no URL is set/);
        });

        it("is checked without being echoed when it comes from a secret", () => {
            const s = resolveHostSettings({ outputs: { http: { enabled: true } } });
            const bad = "https://host/with space?token=SECRETVALUE";
            assert.throws(
                () => renderSecretsConfig(s, { httpOutputUrl: bad }),
                (e: Error) => /httpOutputUrl/.test(e.message) && !e.message.includes("SECRETVALUE"),
            );
        });
    });

    describe("guards", () => {
        it("keeps the webserver on loopback whatever the input", () => {
            assert.throws(() => resolveHostSettings({ extraConfig: { webserver: { listen_address: "0.0.0.0" } } }), /extraConfig\.webserver/);
            const s = resolveHostSettings({ webserver: { enabled: false, port: 1 } });
            const hacked: ResolvedHostSettings = { ...s, extraConfig: { webserver: { listen_address: "0.0.0.0" } } };
            assert.throws(() => renderFalcoConfig(hacked, []), /extraConfig\.webserver is managed/);
            fc.assert(
                // (Ports below 1024 are refused by the settings: the unit cannot bind them.)
                fc.property(fc.boolean(), fc.integer({ min: 1024, max: 65535 }), (enabled, port) => {
                    const main = YAML.parse(renderFalcoConfig(resolveHostSettings({ webserver: { enabled, port } }), []));
                    assert.strictEqual(main.webserver.listen_address, WEBSERVER_LISTEN_ADDRESS);
                    assert.strictEqual(WEBSERVER_LISTEN_ADDRESS, "127.0.0.1");
                }),
                { numRuns: 50 },
            );
        });

        it("never lets extraConfig carry http_output into the main file", () => {
            const s = resolveHostSettings();
            assert.throws(() => renderFalcoConfig({ ...s, extraConfig: { http_output: { enabled: true, url: SECRET_URL } } }, []));
        });

        it("refuses prototype-polluting keys in extraConfig", () => {
            const s = resolveHostSettings();
            const extra = JSON.parse('{"metrics": {"__proto__": {"polluted": true}}}');
            assert.throws(() => renderFalcoConfig({ ...s, extraConfig: extra }, []), /__proto__/);
            assert.strictEqual(({} as Config).polluted, undefined);
        });

        it("leaves schema checking of extraConfig to the tests, which catch a bad value or a misspelt key", () => {
            // Production code cannot ship Falco's schema; the typed settings and reserved keys are its guard.
            for (const extraConfig of [{ outputs_queue: { capacity: "big" } }, { prioritty: "debug" }, { metrics: { enabled: "yes" } }]) {
                const r = render({ extraConfig });
                assert.notDeepStrictEqual(configSchemaErrors(r.main), [], JSON.stringify(extraConfig));
            }
        });

        it("rejects rule file names that are not NN-name.yaml, and a config with no rules at all", () => {
            const s = resolveHostSettings();
            for (const bad of ["../x.yaml", "10-x.yml", "x.yaml", "10-X.yaml", "10-a b.yaml"])
                assert.throws(() => renderFalcoConfig(s, [bad]), /NN-name\.yaml/, bad);
            assert.throws(() => renderFalcoConfig(s, ["10-a.yaml", "10-a.yaml"]), /twice/);
            // The settings refuse it, keyed; the renderer's own guard still holds for settings built by hand.
            assert.throws(() => resolveHostSettings({ rules: { defaultRules: false, builtin: [] } }), /invalid host setting rules: no rules to load/);
            const none: ResolvedHostSettings = { ...s, rules: { defaultRules: false, builtin: [], custom: {} } };
            assert.throws(() => renderFalcoConfig(none, []), /no rules to load/);
            assert.deepStrictEqual(YAML.parse(renderFalcoConfig(none, ["50-mine.yaml"])).rules_files, [`${FALCO_RULES_D}/50-mine.yaml`]);
        });

        it("is deterministic", () => {
            assert.strictEqual(render(EVERYTHING_ON).mainText, render(EVERYTHING_ON).mainText);
        });
    });

    describe("hostile strings (no YAML injection, no Falco ${VAR} expansion)", () => {
        const unit = fc.constantFrom("'", '"', "$(", "$", "${", "}", "{", ")", "\n", "#", ": ", "- ", "\\", "`", "é", "💥", "\t", "&x", "*x", "!", "%", " ", "a", "HOME");
        const hostile = fc.oneof(fc.string(), fc.string({ unit, maxLength: 30 }));
        const env = (name: string) => `<expanded ${name}>`;

        it("program output commands are rejected or reach Falco exactly as written", () => {
            let accepted = 0;
            fc.assert(
                fc.property(hostile, (program) => {
                    let s: ResolvedHostSettings;
                    try {
                        s = resolveHostSettings({ outputs: { program: { enabled: true, program } } });
                    } catch {
                        return;
                    }
                    let text: string;
                    try {
                        text = renderFalcoConfig(s, []);
                    } catch (e) {
                        // Only the one form Falco's loader cannot pass on is refused, with the key named.
                        assert.match((e as Error).message, /outputs\.program\.program contains "\$\$\{/);
                        return;
                    }
                    accepted++;
                    const value = YAML.parse(text).program_output.program;
                    if (!program.includes("${")) assert.strictEqual(value, program);
                    assert.strictEqual(falcoEnvExpand(value, env), program);
                }),
                { numRuns: 500 },
            );
            assert.ok(accepted > 100, `only ${accepted} hostile programs were accepted: the property tested little`);
        });

        it("secret URLs are rejected or reach Falco exactly as given", () => {
            const s = resolveHostSettings({ outputs: { http: { enabled: true } } });
            fc.assert(
                fc.property(hostile, (tail) => {
                    const url = `https://h/${tail}`;
                    let text: string | undefined;
                    try {
                        text = renderSecretsConfig(s, { httpOutputUrl: url });
                    } catch (e) {
                        assert.ok(!(e as Error).message.includes(url));
                        return;
                    }
                    assert.strictEqual(falcoEnvExpand(YAML.parse(text!).http_output.url, env), url);
                }),
                { numRuns: 300 },
            );
        });
    });
});

describe("escapeFalcoEnvRefs", () => {
    it("leaves strings without ${ alone", () => {
        for (const v of ["plain", "$HOME and $(id)", "a $ b", "${unclosed", "$x then ${HOME}"])
            assert.strictEqual(escapeFalcoEnvRefs(v, "k"), v);
    });

    it("escapes references Falco would expand", () => {
        assert.strictEqual(escapeFalcoEnvRefs("curl ${URL}/x", "k"), "curl $${URL}/x");
        assert.strictEqual(escapeFalcoEnvRefs("${A}${B}", "k"), "$${A}$${B}");
        assert.strictEqual(falcoEnvExpand("curl ${URL}", () => "EXPANDED"), "curl EXPANDED");
        assert.strictEqual(falcoEnvExpand(escapeFalcoEnvRefs("curl ${URL}", "k"), () => "EXPANDED"), "curl ${URL}");
    });

    it("refuses the one form Falco cannot pass on, naming the key", () => {
        assert.throws(() => escapeFalcoEnvRefs("echo $${X}", "outputs.program.program"), /outputs\.program\.program/);
    });

    it("round-trips through Falco's loader for any string it accepts", () => {
        const unit = fc.constantFrom("$", "{", "}", "$$", "${", "a", "B_1", " ");
        fc.assert(
            fc.property(fc.string({ unit, maxLength: 40 }), (v) => {
                let escaped: string;
                try {
                    escaped = escapeFalcoEnvRefs(v, "k");
                } catch {
                    // Refused only for a literal "$${", which Falco's loader cannot produce while scanning.
                    assert.match(v, /\$\$\{/);
                    return;
                }
                assert.strictEqual(falcoEnvExpand(escaped, (n) => `<${n}>`), v);
            }),
            { numRuns: 2000 },
        );
    });
});
