import { strict as assert } from "assert";
import * as YAML from "yaml";
import { chartNames, falcoFullname } from "../../components/cluster/names";
import { planCluster, renderClusterValues } from "../../components/cluster/render";
import type { FalcoClusterSettings, SecretPresence } from "../../components/cluster/settings";
import { REDIS_PASSWORD_PLACEHOLDER, renderOutputsSecretData, renderWebUiRedisSecretData, renderWebUiSecretData, ruleFileKey, serviceAddresses } from "../../components/cluster/values";
import { referencePath } from "../support/reference";
import * as fs from "fs";
import { resolveHostSettings } from "../../components/host/settings";
import { renderRuleFiles } from "../../components/rules";
import { fakeSlackWebhookUrl } from "../support/fakeSecrets";
import { falcoChartReference, leafPaths, SIDEKICK_VALUES_FILE, sidekickChartReference, unknownValuePaths } from "../support/chartValues";

const deployer = { protection: { exemptUsers: ["system:serviceaccount:ci:pulumi"] } };
const allSecrets: SecretPresence = {
    slackWebhookUrl: true,
    webhookAddress: true,
    webhookCustomHeaders: true,
    elasticsearchPassword: true,
    webUiPassword: true,
};
/** Every option on: the widest set of key paths the component can set. */
const everything: FalcoClusterSettings = {
    ...deployer,
    releaseName: "sec",
    driver: "modern_ebpf",
    leastPrivileged: true,
    followRuleUpdates: true,
    minimumPriority: "warning",
    resources: { requests: { cpu: "200m", memory: "1Gi" }, limits: { cpu: "2", memory: "2Gi" } },
    tolerations: [{ key: "dedicated", operator: "Equal", value: "gpu", effect: "NoSchedule" }],
    priorityClass: { name: "sensor", value: 5000 },
    rules: { defaultRules: false, builtin: ["self-protection", "app-config-example"], custom: { mine: "- list: my_bins\n  items: [nc]\n" } },
    sidekick: {
        replicas: 3,
        slack: { minimumPriority: "error", channel: "#sec", username: "falco", outputFormat: "text" },
        webhook: { minimumPriority: "notice", method: "PUT", checkCert: true },
        elasticsearch: { hostPort: "https://es.example.com:9200", index: "alerts", suffix: "monthly", username: "falco", checkCert: true },
        prometheus: { serviceMonitor: true, extraLabels: ["k8s.ns.name", "k8s.pod.name"] },
        webUi: { enabled: true, login: "secops", replicas: 2 },
    },
};
const configurations: [string, FalcoClusterSettings, Partial<SecretPresence>][] = [
    ["defaults", deployer, {}],
    ["every option", everything, allSecrets],
    ["kmod driver, sidekick and protection off", { driver: "kmod", sidekick: { enabled: false }, protection: { enabled: false } }, {}],
];

const get = (o: unknown, path: string): any => path.split(".").reduce((x: any, k) => (x == null ? undefined : x[k]), o);

describe("cluster chart values", () => {
    describe("against the chart's values.yaml (Helm ignores misspelled keys silently)", () => {
        const reference = falcoChartReference();
        for (const [what, settings, secrets] of configurations)
            it(`every key path exists in the chart: ${what}`, () => {
                const values = renderClusterValues(settings, secrets);
                assert.ok(leafPaths(values).length > 5);
                assert.deepEqual(unknownValuePaths(values, reference), []);
            });

        it("the checker rejects misspelled keys, including the known priority-class trap", () => {
            const values = renderClusterValues(everything, allSecrets) as Record<string, any>;
            const broken = {
                ...values,
                priorityClassName: "x",
                driver: { ...values.driver, modernebpf: { leastPrivileged: true } },
                falcosidekick: { ...values.falcosidekick, config: { ...values.falcosidekick.config, slack: { webhookURL: "x" } } },
            };
            assert.deepEqual(unknownValuePaths(broken, reference).sort(), [
                "driver.modernebpf: not a key of the chart's values.yaml",
                "falcosidekick.config.slack.webhookURL: not a key of the chart's values.yaml",
                "priorityClassName: not a key of the chart's values.yaml",
            ]);
            assert.deepEqual(unknownValuePaths({ tty: { enabled: true } }, reference), ["tty: the chart has a boolean here, not a map"]);
        });

        it("checks Falcosidekick keys against 0.12.1, the sub-chart version falco 9.1.0 depends on", () => {
            const falcoChart = YAML.parse(fs.readFileSync(referencePath("charts", "falco-Chart.yaml"), "utf8"));
            const dep = falcoChart.dependencies.find((d: { name: string }) => d.name === "falcosidekick");
            const sidekickChart = YAML.parse(fs.readFileSync(referencePath("charts", SIDEKICK_VALUES_FILE.replace("-values.yaml", "-Chart.yaml")), "utf8"));
            assert.equal(dep.version, "0.12.*");
            assert.match(sidekickChart.version, /^0\.12\.[0-9]+$/);
            // 0.14.0-only keys are refused by the checker.
            assert.deepEqual(unknownValuePaths({ falcosidekick: { httproute: { enabled: true } } }, reference), [
                "falcosidekick.httproute: not a key of the chart's values.yaml",
            ]);
        });

        it("only descends into maps the chart defines, not into open ones like customRules", () => {
            assert.deepEqual(unknownValuePaths({ customRules: { "anything.yaml": "x" }, podAnnotations: { a: "b" } }, reference), []);
        });
    });

    it("defaults: modern eBPF, tty, the created priority class under the chart's real key, chart resources", () => {
        const plan = planCluster(deployer);
        const v = plan.values as Record<string, any>;
        assert.equal(v.driver.kind, "modern_ebpf");
        assert.equal(v.driver.modernEbpf.leastPrivileged, false);
        assert.equal(v.tty, true);
        // Each pod's Falco reports its Kubernetes node name, nothing of ours (the hosts report their stack names).
        assert.equal(v.falcoHostnameEnv, true);
        assert.equal((falcoChartReference() as Record<string, any>).falcoHostnameEnv, true, "the chart's own default, pinned");
        assert.ok(!JSON.stringify(v.extra ?? {}).includes("FALCO_HOSTNAME"));
        assert.equal(v.metrics, undefined, "no heartbeat from the chart's Falco (chart default metrics.enabled false): the alert rules expect the hosts only");
        assert.equal(v.falco.metrics, undefined);
        assert.equal(v.podPriorityClassName, plan.settings.priorityClass.name);
        assert.equal(v.priorityClassName, undefined);
        assert.deepEqual(v.resources, { requests: { cpu: "100m", memory: "512Mi" }, limits: { cpu: "1000m", memory: "1024Mi" } });
        assert.deepEqual(v.tolerations, [{ operator: "Exists" }]);
        assert.equal(v.falco.priority, "notice");
        assert.equal(v.falco.rules_files, undefined, "keeps the chart's default rules with ours after them");
        assert.equal(v.falcoctl.artifact.follow.enabled, false);
        // No rules artifact pulled at pod start (the chart's default is the moving tag falco-rules:5): the image's
        // rules stay in /etc/falco; plugins (the chart appends the container plugin's pinned ref) still install.
        assert.deepEqual(v.falcoctl.config.artifact.allowedTypes, ["plugin"]);
        assert.deepEqual(v.falcoctl.config.artifact.install.refs, []);
        const chartFalcoctl = (falcoChartReference() as Record<string, any>).falcoctl.config.artifact;
        assert.deepEqual(chartFalcoctl.install.refs, ["falco-rules:5"], "what the chart would pull otherwise");
        assert.ok(chartFalcoctl.allowedTypes.includes("rulesfile"));
        assert.equal(v.falcosidekick.enabled, true);
        assert.equal(v.falcosidekick.priorityClassName, plan.settings.priorityClass.name);
        assert.equal(v.falcosidekick.config.existingSecret, undefined, "no Secret to point at without credentials");
    });

    it("sets every chosen option where the chart reads it", () => {
        const v = renderClusterValues(everything, allSecrets);
        const expectations: [string, unknown][] = [
            ["driver.modernEbpf.leastPrivileged", true],
            ["podPriorityClassName", "sensor"],
            ["resources.limits.memory", "2Gi"],
            ["falco.priority", "warning"],
            ["falco.rules_files", ["/etc/falco/rules.d"]],
            ["falcoctl.artifact.follow.enabled", true],
            ["falcoctl.artifact.install.enabled", true],
            ["falcoctl.config", undefined],
            ["falcosidekick.replicaCount", 3],
            ["falcosidekick.config.existingSecret", "sec-falco-falcosidekick-outputs"],
            ["falcosidekick.config.slack.minimumpriority", "error"],
            ["falcosidekick.config.slack.channel", "#sec"],
            ["falcosidekick.config.slack.outputformat", "text"],
            ["falcosidekick.config.webhook.method", "PUT"],
            ["falcosidekick.config.elasticsearch.hostport", "https://es.example.com:9200"],
            ["falcosidekick.config.elasticsearch.index", "alerts"],
            ["falcosidekick.config.elasticsearch.username", "falco"],
            ["falcosidekick.config.prometheus.extralabels", "k8s.ns.name,k8s.pod.name"],
            ["falcosidekick.serviceMonitor.enabled", true],
            ["falcosidekick.webui.enabled", true],
            ["falcosidekick.webui.replicaCount", 2],
            ["falcosidekick.webui.existingSecret", "sec-falco-falcosidekick-ui-login"],
        ];
        for (const [path, want] of expectations) assert.deepEqual(get(v, path), want, path);
        assert.deepEqual(get(v, "tolerations"), everything.tolerations);
    });

    it("kmod: no modern-eBPF-only keys", () => {
        const v = renderClusterValues({ ...deployer, driver: "kmod" }) as Record<string, any>;
        assert.deepEqual(v.driver, { kind: "kmod" });
    });

    describe("Falcosidekick naming", () => {
        it("mirrors the falco chart's fullname helper", () => {
            assert.equal(falcoFullname("falco"), "falco");
            assert.equal(falcoFullname("falco-prod"), "falco-prod");
            assert.equal(falcoFullname("sec"), "sec-falco");
        });

        for (const release of ["falco", "sec", "prod-falco"])
            it(`pins the sub-chart name to the one Falco's http_output targets (release ${release})`, () => {
                const v = renderClusterValues({ ...deployer, releaseName: release }) as Record<string, any>;
                // falco chart: http_output.url = http://<falco fullname>-falcosidekick:2801
                assert.equal(v.falcosidekick.fullnameOverride, `${falcoFullname(release)}-falcosidekick`);
                const s = planCluster({ ...deployer, releaseName: release }).settings;
                assert.equal(serviceAddresses(s).sidekick, `http://${falcoFullname(release)}-falcosidekick.falco.svc:2801`);
            });
    });

    describe("rules: one source of truth with the hosts", () => {
        for (const rules of [{}, { builtin: [] }, { custom: { "my-rules": "- macro: m\n  condition: evt.num > 0\n" } }] as FalcoClusterSettings["rules"][])
            it(`customRules are exactly the hosts' rule files: ${JSON.stringify(rules)}`, () => {
                const v = renderClusterValues({ ...deployer, rules }) as Record<string, any>;
                const hostFiles = renderRuleFiles(resolveHostSettings({ rules }));
                assert.deepEqual(
                    v.customRules,
                    Object.fromEntries(hostFiles.map((f) => [f.fileName, f.content])),
                );
                for (const content of Object.values(v.customRules as Record<string, string>))
                    assert.ok(Array.isArray(YAML.parse(content) ?? []), "each file is a YAML rules list");
            });

        it("keeps file names Falco loads from a directory", () => {
            assert.equal(ruleFileKey("10-x.yaml"), "10-x.yaml");
            assert.equal(ruleFileKey("/etc/falco/rules.d/10-x.yml"), "10-x.yml");
            assert.equal(ruleFileKey("10-x"), "10-x.yaml");
            assert.throws(() => ruleFileKey("a b.yaml"), /ConfigMap key/);
        });

        it("rejects a bad user rule file with the hosts' error", () => {
            assert.throws(() => renderClusterValues({ ...deployer, rules: { custom: { mine: "rule: [" } } }), /rules\.custom\.mine/);
        });
    });

    describe("secrets and the UI login", () => {
        it("no credential and no admin:admin anywhere in the values", () => {
            const v = renderClusterValues(everything, allSecrets) as Record<string, any>;
            const text = JSON.stringify(v);
            assert.ok(!text.includes("admin:admin"));
            assert.equal(v.falcosidekick.webui.user, "", "the chart's own UI Secret gets no user at all");
            assert.equal(v.falcosidekick.webui.disableauth, false);
            // The one `password` key is the UI Redis's fixed marker (the chart needs a non-empty value), never a password.
            assert.equal(v.falcosidekick.webui.redis.password, REDIS_PASSWORD_PLACEHOLDER);
            const paths = leafPaths(v).filter((p) => p !== "falcosidekick.webui.redis.password");
            for (const credentialKey of ["webhookurl", "address", "password", "apikey", "customHeaders", "customheaders"])
                assert.ok(!paths.some((p) => p.endsWith(`.${credentialKey}`)), credentialKey);
        });

        it("the outputs Secret carries exactly the credentials, under the names Falcosidekick reads", () => {
            const s = planCluster(everything, allSecrets).settings;
            const slackUrl = fakeSlackWebhookUrl("X");
            const data = renderOutputsSecretData(s, {
                slackWebhookUrl: slackUrl,
                webhookAddress: "https://hook.example.com/t0ken",
                webhookCustomHeaders: "Authorization:Bearer abc",
                elasticsearchPassword: "pw",
            });
            assert.deepEqual(data, {
                SLACK_WEBHOOKURL: slackUrl,
                WEBHOOK_ADDRESS: "https://hook.example.com/t0ken",
                WEBHOOK_CUSTOMHEADERS: "Authorization:Bearer abc",
                ELASTICSEARCH_PASSWORD: "pw",
            });
            // Falcosidekick's env names are its config keys upper-cased with _ for "."; each must be a real key.
            const configKeys = new Set(leafPaths(sidekickChartReference().config).map((p) => p.replace(/\./g, "_").toUpperCase()));
            for (const name of Object.keys(data)) assert.ok(configKeys.has(name), `${name} is not a falcosidekick config key`);
        });

        it("the UI login is login:password from our Secret, and weak or malformed passwords are refused", () => {
            const s = planCluster(everything, allSecrets).settings;
            const redis = "R3disPassw0rdR3disPassw0rd";
            assert.deepEqual(renderWebUiSecretData(s, "k3Jx9QmZp2Lw7Vb", redis), {
                FALCOSIDEKICK_UI_USER: "secops:k3Jx9QmZp2Lw7Vb",
                FALCOSIDEKICK_UI_REDIS_PASSWORD: redis,
                REDIS_PASSWORD: redis,
            });
            assert.throws(() => renderWebUiSecretData(s, "admin", redis), /at least 12/);
            assert.throws(() => renderWebUiSecretData(s, "abc:defghijklmn", redis), /':'/);
            assert.throws(() => renderWebUiSecretData(s, "k3Jx9QmZp2Lw7Vb", "short"), /Redis password/);
        });

        it("the UI's Redis gets a password from our Secret, under the keys the chart's own Secrets use", () => {
            assert.deepEqual(renderWebUiRedisSecretData("R3disPassw0rdR3disPassw0rd"), {
                REDIS_ARGS: "--requirepass R3disPassw0rdR3disPassw0rd",
                REDIS_PASSWORD: "R3disPassw0rdR3disPassw0rd",
            });
            assert.throws(() => renderWebUiRedisSecretData("a b --loadmodule /x.so aaaaaaaaaaaaaaaaaaaa"), /letters and digits/);
            const v = renderClusterValues(everything, allSecrets) as Record<string, any>;
            assert.deepEqual(v.falcosidekick.webui.redis, { existingSecret: "sec-falco-falcosidekick-ui-redis-auth", password: REDIS_PASSWORD_PLACEHOLDER });
            // Both keys exist in chart 0.12.1, and the chart's default is no password at all.
            const ref = sidekickChartReference() as Record<string, any>;
            assert.equal(ref.webui.redis.password, "");
            assert.equal(ref.webui.redis.existingSecret, "");
            const off = renderClusterValues(deployer) as Record<string, any>;
            assert.equal(off.falcosidekick.webui.redis, undefined, "no UI, no Redis settings");
        });

        it("service addresses follow the pinned names", () => {
            const s = planCluster(everything, allSecrets).settings;
            const names = chartNames("sec");
            assert.deepEqual(serviceAddresses(s), {
                sidekick: `http://${names.sidekick}.falco.svc:2801`,
                webUi: `http://${names.sidekickUi}.falco.svc:2802`,
            });
            assert.deepEqual(serviceAddresses(planCluster({ ...deployer, sidekick: { enabled: false } }).settings), {
                sidekick: undefined,
                webUi: undefined,
            });
        });
    });
});
