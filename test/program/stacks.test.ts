/**
 * The program, evaluated under mocks with each stack file in stacks/ as the CLI would pass it: what every
 * environment must declare, what each reports, and that no secret reaches a resource in plain text.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { loadStackConfigFile, NodeConfig, StackConfig } from "../../components/config";
import {
    clearCliConfig,
    cliConfigForStackFile,
    plainOccurrences,
    ProgramRun,
    REPO_ROOT,
    runProgram,
    SECRET_MARKER,
} from "../support/program";
import { isSecretValue, unwrapSecrets } from "../support/mocks";
import { decodePayload } from "../support/payload";
import { unitLines } from "../support/systemd";
import { UNIT_PATH } from "../../components/host/paths";

const STACKS_DIR = path.join(REPO_ROOT, "stacks");
const stackFiles = fs
    .readdirSync(STACKS_DIR)
    .filter((f) => /^Pulumi\.[^.]+\.ya?ml$/.test(f))
    .map((f) => path.join(STACKS_DIR, f));
const stackName = (file: string) => /^Pulumi\.(.+)\.ya?ml$/.exec(path.basename(file))![1];

const T = {
    awsNode: "falco-nodes:index:AwsFalcoNode",
    host: "falco-nodes:index:FalcoHost",
    cluster: "falco-nodes:index:FalcoCluster",
    command: "command:remote:Command",
    instance: "aws:ec2/instance:Instance",
    k8sProvider: "pulumi:providers:kubernetes",
    chart: "kubernetes:helm.sh/v4:Chart",
    prometheusRule: "kubernetes:monitoring.coreos.com/v1:PrometheusRule",
};

/** What each environment must have. A new stack file fails the suite until it is listed here. */
const EXPECTATIONS: Record<string, (run: ProgramRun, cfg: StackConfig) => void> = {
    dev(run) {
        assert.strictEqual(run.ofType(T.awsNode).length, 1, "dev: exactly one AWS node");
        assert.strictEqual(run.ofType(T.instance).length, 1, "dev: one EC2 instance");
        assert.strictEqual(run.ofType(T.cluster).length, 0, "dev: no cluster");
        assert.strictEqual(run.ofType(T.k8sProvider).length, 0, "dev: no Kubernetes provider");
    },
    baremetal(run, cfg) {
        assert.strictEqual(run.ofType(T.instance).length, 0, "baremetal: nothing in a cloud");
        assert.strictEqual(run.ofType(T.cluster).length, 0, "baremetal: no cluster");
        assert.ok(cfg.nodes.length >= 2 && cfg.nodes.every((n) => n.kind === "existing"), "baremetal: existing servers");
        assert.strictEqual(run.ofType(T.host).length, cfg.nodes.length, "one FalcoHost per server");
        const bastion = cfg.ssh.bastion!;
        assert.ok(bastion?.hostKey, "the bastion's host key is pinned");
        for (const c of run.ofType(T.command)) {
            const conn = unwrapSecrets(c.inputs.connection);
            const node: NodeConfig | undefined = cfg.nodes.find((n) => c.name === `${n.name}-converge`);
            assert.ok(node, `a converge command per node (${c.name})`);
            if (node?.kind !== "existing") continue;
            assert.strictEqual(conn.host, node.ssh.host);
            assert.strictEqual(conn.user, node.ssh.user);
            assert.strictEqual(conn.hostKey, node.ssh.hostKey, `${node.name}: host key pinned as configured`);
            assert.ok(conn.hostKey?.startsWith("ssh-"), `${node.name}: host key pinned`);
            assert.deepStrictEqual(
                { host: conn.proxy?.host, user: conn.proxy?.user, hostKey: conn.proxy?.hostKey },
                { host: bastion.host, user: bastion.user, hostKey: bastion.hostKey },
                `${node.name}: through the pinned bastion`,
            );
        }
    },
    prod(run, cfg) {
        const awsNodes = cfg.nodes.filter((n) => n.kind === "aws");
        assert.ok(awsNodes.length >= 2, "prod: at least two AWS nodes");
        assert.strictEqual(run.ofType(T.awsNode).length, awsNodes.length);
        for (const i of run.ofType(T.instance)) {
            assert.strictEqual(i.inputs.associatePublicIpAddress, false, `${i.name}: no public IP`);
            assert.strictEqual(i.inputs.metadataOptions.httpTokens, "required", `${i.name}: IMDSv2`);
            assert.ok(cfg.nodes.some((n) => n.kind === "aws" && n.aws.subnetId === i.inputs.subnetId), `${i.name}: in a configured subnet`);
        }
        for (const c of run.ofType(T.command))
            assert.strictEqual(unwrapSecrets(c.inputs.connection).proxy?.host, cfg.ssh.bastion?.host, `${c.name}: private node reached through the bastion`);
        assert.strictEqual(run.ofType(T.cluster).length, 1, "prod: the in-cluster layer");
        const providers = run.ofType(T.k8sProvider);
        assert.strictEqual(providers.length, 1, "one Kubernetes provider");
        assert.ok(isSecretValue(providers[0].inputs.kubeconfig), "the kubeconfig stays a secret");
        assert.strictEqual(run.ofType(T.chart).length, 1, "the falco chart");
        const values = unwrapSecrets(run.ofType(T.chart)[0].inputs.values);
        assert.strictEqual(values.falcosidekick?.enabled, true, "with Falcosidekick");
        assert.match(run.outputs.cluster?.sidekickAddress ?? "", /^http:\/\/.+\.svc:[0-9]+$/, "the cluster's Falcosidekick address is an output");
        assert.strictEqual(values.falcosidekick?.serviceMonitor?.enabled, true, "Falcosidekick is scraped (the alert rules count its events)");
        const rules = run.ofType(T.prometheusRule);
        assert.strictEqual(rules.length, 1, "prod: the stack's alert rules as a PrometheusRule");
        const expected = new Set(JSON.stringify(rules[0].inputs.spec).match(/"node":"[^"]+"/g));
        assert.deepStrictEqual([...expected].sort(), cfg.nodes.map((n) => `"node":"${n.name}"`).sort(), "every node is expected");
    },
};

describe("program: every stack file", function () {
    this.timeout(120_000);
    after(clearCliConfig);

    it("the required environments exist (dev, baremetal, prod)", () => {
        const names = stackFiles.map(stackName);
        for (const env of ["dev", "baremetal", "prod"]) assert.ok(names.includes(env), `stacks/Pulumi.${env}.yaml is missing`);
    });

    for (const file of stackFiles) {
        const stack = stackName(file);
        describe(`stacks/${path.basename(file)}`, () => {
            let run: ProgramRun;
            let cfg: StackConfig;
            before(async () => {
                cfg = loadStackConfigFile(file);
                run = await runProgram(cliConfigForStackFile(file));
            });

            it("has expectations in this suite", () => {
                assert.ok(EXPECTATIONS[stack], `add the resources stack '${stack}' must have to EXPECTATIONS`);
            });

            it("declares what the environment must have", () => {
                EXPECTATIONS[stack]?.(run, cfg);
            });

            it("reports each node's address, Falco version, driver and bundle hash", () => {
                assert.deepStrictEqual(Object.keys(run.outputs.nodes).sort(), cfg.nodes.map((n) => n.name).sort());
                for (const n of cfg.nodes) {
                    const out = run.outputs.nodes[n.name];
                    assert.ok(typeof out.address === "string" && out.address.length > 0, `${n.name}: address`);
                    assert.strictEqual(out.falcoVersion, n.resolved.falcoVersion, `${n.name}: version`);
                    assert.strictEqual(out.driver, n.resolved.driver, `${n.name}: driver`);
                    assert.match(out.bundleHash, /^[0-9a-f]{64}$/, `${n.name}: bundle hash`);
                }
                // The bundle hash is a function of the settings and the hostname the node's Falco reports (its unit
                // carries it): equal both, equal hash; different, different.
                for (const a of cfg.nodes)
                    for (const b of cfg.nodes) {
                        const same = JSON.stringify(a.resolved) === JSON.stringify(b.resolved) && a.hostname === b.hostname;
                        const equalHash = run.outputs.nodes[a.name].bundleHash === run.outputs.nodes[b.name].bundleHash;
                        assert.strictEqual(equalHash, same, `${a.name} vs ${b.name}: hash equality follows settings and hostname equality`);
                    }
            });

            it("converges every node over a pinned connection with its key and bundle as secrets", () => {
                const commands = run.ofType(T.command);
                assert.strictEqual(commands.length, cfg.nodes.length, "one converge command per node");
                for (const c of commands) {
                    assert.ok(isSecretValue(c.inputs.stdin), `${c.name}: the bundle is a secret`);
                    const conn = unwrapSecrets(c.inputs.connection);
                    assert.ok(conn.privateKey, `${c.name}: has a login key`);
                    if (!cfg.ssh.allowUnpinnedHostKeys) assert.ok(conn.hostKey, `${c.name}: host key pinned`);
                }
            });

            it("each node's unit makes its Falco report the hostname the stack's alert rules expect for it", async () => {
                const expected = new Map(cfg.alerting.nodes.map((n) => [n.name, n.hostname]));
                assert.strictEqual(expected.size, cfg.nodes.length, "every node is expected");
                for (const n of cfg.nodes) {
                    const c = run.ofType(T.command).find((x) => x.name === `${n.name}-converge`)!;
                    const unit = (await decodePayload(unwrapSecrets(c.inputs.stdin))).content(UNIT_PATH)!;
                    const env = unitLines(unit).filter((l) => l.key === "Environment").map((l) => l.value);
                    assert.deepStrictEqual(env, [`"FALCO_HOSTNAME=${expected.get(n.name)}"`], n.name);
                }
            });

            it("puts no secret into any resource in plain text", () => {
                for (const r of run.resources) {
                    const leaks = plainOccurrences(r.inputs, SECRET_MARKER);
                    assert.deepStrictEqual(leaks, [], `${r.type} ${r.name} holds a secret in plain text at ${leaks.join(", ")}`);
                }
                const outputs = JSON.stringify(run.outputs);
                assert.ok(!outputs.includes(SECRET_MARKER), "no secret in the stack outputs");
            });
        });
    }
});
