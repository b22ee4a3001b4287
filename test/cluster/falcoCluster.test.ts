import { strict as assert } from "assert";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { FalcoCluster, type FalcoClusterArgs } from "../../components/cluster/falcoCluster";
import { resolveHostSettings } from "../../components/host/settings";
import { renderRuleFiles } from "../../components/rules";
import { fakeSlackWebhookUrl } from "../support/fakeSecrets";
import { isSecretOutput, isSecretValue, outputOf, secretPaths, setupMocks, unwrapSecrets, type Mocks } from "../support/mocks";

const T = {
    component: "falco-nodes:index:FalcoCluster",
    chart: "kubernetes:helm.sh/v4:Chart",
    namespace: "kubernetes:core/v1:Namespace",
    secret: "kubernetes:core/v1:Secret",
    priorityClass: "kubernetes:scheduling.k8s.io/v1:PriorityClass",
    policy: "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy",
    binding: "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding",
    password: "random:index/randomPassword:RandomPassword",
};
const GENERATED_PASSWORD = "Gen3ratedPassw0rdFromState";
const SLACK = fakeSlackWebhookUrl("s3cr3tT0ken");
const WEBHOOK = "https://alerts.example.com/ingest?token=hunter2hunter2";
const ES_PASSWORD = "es-pass-Zq81";

let mocks: Mocks;
let provider: k8s.Provider;

/** Build the component and wait until every child has been registered. */
async function deploy(args: Omit<FalcoClusterArgs, "provider">): Promise<FalcoCluster> {
    const c = new FalcoCluster("falco", { provider, ...args });
    await outputOf(c.chart.urn);
    await outputOf(pulumi.all([c.namespace, c.webUiPassword, c.urn]));
    // Protection resources depend on the chart; give their registrations a turn to land.
    await new Promise((r) => setTimeout(r, 50));
    return c;
}

const chartValues = () => unwrapSecrets(mocks.one(T.chart).inputs.values);

describe("FalcoCluster component", () => {
    before(() => {
        mocks = setupMocks({
            state: { [T.password]: () => ({ result: GENERATED_PASSWORD }) },
        });
        provider = new k8s.Provider("k8s", { kubeconfig: "{}" });
    });
    beforeEach(() => mocks.reset());

    const deployer = { protection: { exemptUsers: ["system:serviceaccount:ci:pulumi"] } };

    it("registers under its type token with a privileged-PSA namespace and a priority class wired to the chart", async () => {
        const c = await deploy(deployer);
        assert.equal(mocks.one(T.component).name, "falco");
        const ns = mocks.one(T.namespace).inputs;
        assert.equal(ns.metadata.name, "falco");
        assert.equal(ns.metadata.labels["pod-security.kubernetes.io/enforce"], "privileged");
        assert.equal(await outputOf(c.namespace), "falco");
        assert.equal(await outputOf(c.releaseName), "falco");

        const pc = mocks.one(T.priorityClass).inputs;
        assert.equal(pc.value, 1_000_000_000);
        assert.equal(pc.globalDefault, false);
        assert.equal(chartValues().podPriorityClassName, pc.metadata.name);
        assert.equal(chartValues().falcosidekick.priorityClassName, pc.metadata.name);
    });

    it("installs the pinned falco chart from the official repository into the namespace, as the release", async () => {
        await deploy(deployer);
        const chart = mocks.one(T.chart);
        assert.equal(chart.custom, false, "helm.v4.Chart is a component: its objects are Pulumi resources");
        assert.equal(chart.inputs.chart, "falco");
        assert.equal(chart.inputs.version, "9.1.0");
        assert.deepEqual(chart.inputs.repositoryOpts, { repo: "https://falcosecurity.github.io/charts" });
        assert.equal(chart.inputs.name, "falco");
        assert.equal(chart.inputs.namespace, "falco");
        const v = chartValues();
        assert.equal(v.driver.kind, "modern_ebpf");
        assert.equal(v.tty, true);
    });

    it("deploys every Kubernetes object through the given provider", async () => {
        await deploy(deployer);
        const k8sResources = mocks.resources.filter((r) => r.type.startsWith("kubernetes:") && r.custom);
        assert.ok(k8sResources.length >= 4);
        for (const r of k8sResources) assert.match(r.provider ?? "", /pulumi:providers:kubernetes::k8s::/, `${r.type} ${r.name}`);
        assert.match(mocks.one(T.chart).provider ?? "", /k8s/);
    });

    it("loads the hosts' rule files, unchanged, as customRules", async () => {
        const rules = { custom: { "team-rules": "- list: team_bins\n  items: [nc, ncat]\n" } };
        await deploy({ ...deployer, rules });
        const files = renderRuleFiles(resolveHostSettings({ rules }));
        assert.deepEqual(chartValues().customRules, Object.fromEntries(files.map((f) => [f.fileName, f.content])));
        assert.ok(Object.keys(chartValues().customRules).some((k) => k.includes("team-rules")));
    });

    it("keeps credentials in a Secret only: secret in state, referenced by name from the values", async () => {
        await deploy({
            ...deployer,
            sidekick: { slack: { minimumPriority: "error" }, webhook: {}, elasticsearch: { hostPort: "https://es:9200", username: "falco" } },
            secrets: {
                slackWebhookUrl: pulumi.secret(SLACK),
                webhookAddress: pulumi.secret(WEBHOOK),
                elasticsearchPassword: pulumi.secret(ES_PASSWORD),
            },
        });
        const secret = mocks.one(T.secret);
        assert.equal(secret.inputs.metadata.name, "falco-falcosidekick-outputs");
        assert.equal(secret.inputs.metadata.namespace, "falco");
        assert.ok(isSecretValue(secret.inputs.stringData), "stringData is sent as a secret");
        assert.deepEqual(unwrapSecrets(secret.inputs.stringData), {
            SLACK_WEBHOOKURL: SLACK,
            WEBHOOK_ADDRESS: WEBHOOK,
            ELASTICSEARCH_PASSWORD: ES_PASSWORD,
        });

        const raw = mocks.one(T.chart).inputs.values;
        assert.deepEqual(secretPaths(raw), [], "nothing in the chart values is secret, so they stay readable in preview");
        const text = JSON.stringify(raw);
        for (const s of [SLACK, WEBHOOK, ES_PASSWORD, "s3cr3tT0ken", "hunter2"]) assert.ok(!text.includes(s), `values leak ${s}`);
        assert.equal(chartValues().falcosidekick.config.existingSecret, "falco-falcosidekick-outputs");
        assert.equal(chartValues().falcosidekick.config.slack.minimumpriority, "error");
    });

    it("even credentials given as plain strings end up secret", async () => {
        await deploy({ ...deployer, sidekick: { slack: {} }, secrets: { slackWebhookUrl: SLACK } });
        assert.ok(isSecretValue(mocks.one(T.secret).inputs.stringData));
        assert.ok(!JSON.stringify(mocks.one(T.chart).inputs.values).includes(SLACK));
    });

    it("web UI: a generated password, never admin:admin, kept secret", async () => {
        const c = await deploy({ ...deployer, sidekick: { webUi: { enabled: true } } });
        const passwords = mocks.ofType(T.password);
        assert.equal(passwords.length, 2, "the UI login and the UI's Redis");
        for (const p of passwords) assert.equal(p.inputs.length >= 20 && p.inputs.special === false, true);
        const secret = (n: string) => mocks.ofType(T.secret).find((x) => x.inputs.metadata.name === n)!;
        const login = secret("falco-falcosidekick-ui-login");
        assert.ok(isSecretValue(login.inputs.stringData));
        assert.deepEqual(unwrapSecrets(login.inputs.stringData), {
            FALCOSIDEKICK_UI_USER: `falco:${GENERATED_PASSWORD}`,
            FALCOSIDEKICK_UI_REDIS_PASSWORD: GENERATED_PASSWORD,
            REDIS_PASSWORD: GENERATED_PASSWORD,
        });
        const redis = secret("falco-falcosidekick-ui-redis-auth");
        assert.ok(isSecretValue(redis.inputs.stringData));
        assert.deepEqual(unwrapSecrets(redis.inputs.stringData), { REDIS_ARGS: `--requirepass ${GENERATED_PASSWORD}`, REDIS_PASSWORD: GENERATED_PASSWORD });
        const v = chartValues();
        assert.equal(v.falcosidekick.webui.enabled, true);
        assert.equal(v.falcosidekick.webui.user, "");
        assert.equal(v.falcosidekick.webui.existingSecret, "falco-falcosidekick-ui-login");
        assert.equal(v.falcosidekick.webui.redis.existingSecret, "falco-falcosidekick-ui-redis-auth");
        assert.ok(!JSON.stringify(mocks.one(T.chart).inputs.values).includes(GENERATED_PASSWORD), "no password in the chart values");
        assert.ok(!JSON.stringify(mocks.one(T.chart).inputs.values).includes("admin:admin"));
        assert.ok(!JSON.stringify(unwrapSecrets(login.inputs)).includes("admin:admin"));
        assert.equal(await isSecretOutput(c.webUiPassword), true);
        assert.equal(await outputOf(c.webUiAddress), "http://falco-falcosidekick-ui.falco.svc:2802");
    });

    it("web UI: a given password is used instead of generating one", async () => {
        await deploy({ ...deployer, sidekick: { webUi: { enabled: true, login: "secops" } }, secrets: { webUiPassword: pulumi.secret("Corr3ctHorseBattery") } });
        assert.equal(mocks.ofType(T.password).length, 1, "only the Redis password is generated");
        const login = mocks.ofType(T.secret).find((x) => x.inputs.metadata.name === "falco-falcosidekick-ui-login")!;
        assert.equal(unwrapSecrets(login.inputs.stringData).FALCOSIDEKICK_UI_USER, "secops:Corr3ctHorseBattery");
    });

    it("protection: a policy and binding that name the exempt identity, created after the chart", async () => {
        await deploy(deployer);
        const policy = mocks.one(T.policy).inputs;
        const binding = mocks.one(T.binding).inputs;
        assert.equal(policy.spec.failurePolicy, "Fail");
        assert.equal(binding.spec.policyName, policy.metadata.name);
        assert.deepEqual(binding.spec.validationActions, ["Deny", "Audit"]);
        const exempt = policy.spec.variables.find((v: { name: string }) => v.name === "exemptUser");
        assert.ok(exempt.expression.includes('"system:serviceaccount:ci:pulumi"'));
        const order = mocks.resources.map((r) => r.type);
        assert.ok(order.indexOf(T.policy) > order.indexOf(T.chart), "the policy waits for the chart");
    });

    it("works with protection and Falcosidekick switched off", async () => {
        const c = await deploy({ sidekick: { enabled: false }, protection: { enabled: false } });
        assert.equal(mocks.ofType(T.policy).length, 0);
        assert.equal(mocks.ofType(T.binding).length, 0);
        assert.equal(mocks.ofType(T.secret).length, 0);
        assert.deepEqual(chartValues().falcosidekick, { enabled: false });
        assert.equal(await outputOf(c.sidekickAddress), undefined);
        assert.equal(await outputOf(c.webUiAddress), undefined);
        assert.equal(await outputOf(c.webUiPassword), undefined);
    });

    it("outputs the sidekick address Falco and the hosts can post to", async () => {
        const c = await deploy({ ...deployer, releaseName: "sec", namespace: "runtime" });
        assert.equal(await outputOf(c.sidekickAddress), "http://sec-falco-falcosidekick.runtime.svc:2801");
        assert.equal(await outputOf(c.releaseName), "sec");
    });

    it("fails at construction, naming the key, before declaring anything", () => {
        mocks.reset();
        assert.throws(() => new FalcoCluster("bad", { provider, sidekick: { slack: {} }, ...deployer }), /sidekick\.slack: needs the secret slackWebhookUrl/);
        assert.throws(() => new FalcoCluster("bad2", { provider }), /protection\.exemptUsers/);
        assert.equal(mocks.ofType(T.chart).length + mocks.ofType(T.namespace).length, 0);
    });
});
