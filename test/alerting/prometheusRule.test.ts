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

    it("with alerting.prometheusRule.enabled, one PrometheusRule expecting every node; a removed node is not expected", async () => {
        const enable = (c: Record<string, string>) => {
            c["falco-nodes:alerting"] = JSON.stringify({ prometheusRule: { enabled: true } });
        };
        const all = await prometheusRules(enable);
        assert.equal(all.length, 1);
        const declared = JSON.parse(cliConfigForStackFile(prod).config["falco-nodes:nodes"]) as { name: string }[];
        assert.deepEqual(nodesOf(all[0].inputs.spec), declared.map((n) => n.name).sort());
        assert.ok(JSON.stringify(all[0].inputs.spec).includes('job=\\"falco-falcosidekick\\"'), "the cluster's Falcosidekick Service is the job");

        const fewer = await prometheusRules((c) => {
            enable(c);
            c["falco-nodes:nodes"] = JSON.stringify(declared.slice(0, 1));
        });
        assert.deepEqual(nodesOf(fewer[0].inputs.spec), [declared[0].name]);
    });

    it("by default applies none", async () => {
        assert.equal((await prometheusRules(() => undefined)).length, 0);
    });
});
