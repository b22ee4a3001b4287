/**
 * The rules in a cluster: FalcoCluster applies them as a PrometheusRule when given them, and the program gives
 * them when `alerting.prometheusRule.enabled`, rendered from the stack's node list in the same run.
 */
import { strict as assert } from "assert";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { renderAlertRules, resolveAlertingSettings } from "../../components/alerting";
import { ALERT_RULES_NAME, FalcoCluster } from "../../components/cluster/falcoCluster";
import { outputOf, setupMocks, type Mocks } from "../support/mocks";
import { cliConfigForStackFile, REPO_ROOT, runProgram } from "../support/program";
import * as path from "path";

const PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule";
const deployer = { protection: { exemptUsers: ["system:serviceaccount:ci:pulumi"] } };
const rules = renderAlertRules({
    stack: "prod",
    nodes: [{ name: "web-1", hostname: "web-1", heartbeatInterval: "5m" }],
    settings: resolveAlertingSettings(),
    sidekickJob: "falco-falcosidekick",
});

describe("FalcoCluster: alert rules as a PrometheusRule", () => {
    let mocks: Mocks;
    let provider: k8s.Provider;
    before(() => {
        mocks = setupMocks();
        provider = new k8s.Provider("k8s", { kubeconfig: "{}" });
    });
    beforeEach(() => mocks.reset());

    async function deploy(args: Partial<ConstructorParameters<typeof FalcoCluster>[1]>) {
        const c = new FalcoCluster("falco", { provider, ...deployer, ...args });
        await outputOf(pulumi.all([c.chart.urn, c.namespace, c.urn]));
        await new Promise((r) => setTimeout(r, 50));
        return c;
    }

    it("applies the rule groups as they were rendered, in Falco's namespace, with the selector labels", async () => {
        await deploy({ alertRules: { rules, labels: { release: "kube-prometheus-stack" } } });
        const r = mocks.one(PROMETHEUS_RULE);
        assert.equal(r.custom, true);
        assert.equal(r.inputs.apiVersion, "monitoring.coreos.com/v1");
        assert.equal(r.inputs.kind, "PrometheusRule");
        assert.equal(r.inputs.metadata.name, ALERT_RULES_NAME);
        assert.equal(r.inputs.metadata.namespace, "falco");
        assert.equal(r.inputs.metadata.labels.release, "kube-prometheus-stack");
        assert.equal(r.inputs.metadata.labels["app.kubernetes.io/managed-by"], "falco-nodes");
        assert.deepEqual(r.inputs.spec, JSON.parse(JSON.stringify(rules)));
    });

    it("goes to the namespace it is told", async () => {
        await deploy({ alertRules: { rules, namespace: "monitoring" } });
        assert.equal(mocks.one(PROMETHEUS_RULE).inputs.metadata.namespace, "monitoring");
    });

    it("declares none unless asked (a cluster without the Prometheus operator has no such CRD)", async () => {
        await deploy({});
        assert.equal(mocks.ofType(PROMETHEUS_RULE).length, 0);
    });
});

describe("program: the cluster stack applies the rules of its node list", function () {
    this.timeout(120_000);
    const prod = path.join(REPO_ROOT, "stacks", "Pulumi.prod.yaml");

    async function prometheusRules(change: (config: Record<string, string>) => void) {
        const c = cliConfigForStackFile(prod);
        change(c.config);
        const run = await runProgram(c);
        return run.ofType(PROMETHEUS_RULE);
    }
    const nodesOf = (spec: { groups: { rules: { labels: Record<string, string> }[] }[] }) =>
        [...new Set(spec.groups.flatMap((g) => g.rules.map((r) => r.labels.node)).filter(Boolean))].sort();

    const hostnamesOf = (spec: { groups: { rules: { labels: Record<string, string> }[] }[] }) =>
        Object.fromEntries(spec.groups.flatMap((g) => g.rules.filter((r) => r.labels.node).map((r) => [r.labels.node, r.labels.hostname])));

    it("the prod stack file applies one PrometheusRule expecting every node under the hostname its unit sets", async () => {
        const all = await prometheusRules(() => undefined);
        assert.equal(all.length, 1);
        const declared = JSON.parse(cliConfigForStackFile(prod).config["falco-nodes:nodes"]) as { name: string }[];
        assert.deepEqual(nodesOf(all[0].inputs.spec), declared.map((n) => n.name).sort());
        // No hostname set in the stack file: each node's Falco reports its name (FALCO_HOSTNAME in its unit).
        assert.deepEqual(hostnamesOf(all[0].inputs.spec), Object.fromEntries(declared.map((n) => [n.name, n.name])));
        assert.ok(JSON.stringify(all[0].inputs.spec).includes('job=\\"falco-falcosidekick\\"'), "the cluster's Falcosidekick Service is the job");
        assert.equal(all[0].inputs.metadata.labels.release, "kube-prometheus-stack", "what the stack file's ruleSelector label says");
    });

    it("adding or removing a node changes the rules in the same run as its FalcoHost", async () => {
        const declared = JSON.parse(cliConfigForStackFile(prod).config["falco-nodes:nodes"]) as Record<string, unknown>[];
        const run = async (nodes: Record<string, unknown>[]) => {
            const c = cliConfigForStackFile(prod);
            c.config["falco-nodes:nodes"] = JSON.stringify(nodes);
            const r = await runProgram(c);
            return { rules: r.ofType(PROMETHEUS_RULE), hosts: r.ofType("falco-nodes:index:FalcoHost").map((h) => h.name).sort() };
        };
        const more = await run([...declared, { name: "prod-c", kind: "aws", hostname: "prod-c.eu-west-1.internal" }]);
        assert.deepEqual(more.hosts, [...declared.map((n) => n.name as string), "prod-c"].sort());
        assert.deepEqual(nodesOf(more.rules[0].inputs.spec), more.hosts);
        assert.equal(hostnamesOf(more.rules[0].inputs.spec)["prod-c"], "prod-c.eu-west-1.internal");

        const fewer = await run(declared.slice(0, 1));
        assert.deepEqual(fewer.hosts, [declared[0].name]);
        assert.deepEqual(nodesOf(fewer.rules[0].inputs.spec), [declared[0].name]);
    });

    it("with alerting.prometheusRule.enabled false, applies none (a cluster without the Prometheus operator)", async () => {
        const off = await prometheusRules((c) => {
            c["falco-nodes:alerting"] = JSON.stringify({ prometheusRule: { enabled: false } });
        });
        assert.equal(off.length, 0);
    });
});
