/**
 * The falco-nodes program: one stack per environment (`stacks/Pulumi.<env>.yaml`). It reads the stack's
 * config, validates all of it (every problem at once, naming the key and the fix, before any resource is
 * declared), and composes the components: AWS nodes, existing servers, and optionally the in-cluster layer.
 */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { AwsFalcoNode, FalcoCluster, FalcoHost, SshProxyArgs, withoutPromiseStackTraces } from "./components";
import { renderAlertRules } from "./components/alerting";
import { clusterSecrets, NodeConfig, parseStackConfig, programConfigSource, projectFileReader, readStackSecrets, StackConfigError } from "./components/config";

function loadStackConfig() {
    try {
        return parseStackConfig(programConfigSource(), { readFile: projectFileReader(__dirname) });
    } catch (e) {
        // A RunError prints just the message: the list of keys to fix, not a stack trace.
        throw e instanceof StackConfigError ? new pulumi.RunError(e.message) : e;
    }
}
const cfg = loadStackConfig();
const secrets = readStackSecrets(cfg);

const bastion: SshProxyArgs | undefined = cfg.ssh.bastion && {
    ...cfg.ssh.bastion,
    privateKey: secrets.bastionPrivateKey ?? secrets.sshPrivateKey,
};

/** One node: an EC2 instance or an existing server, converged into a Falco node; what the stack reports about it. */
function declareNode(n: NodeConfig) {
    const host = {
        settings: n.falco,
        // The hostname its unit makes Falco report; the alert rules expect the same (cfg.alerting.nodes).
        hostname: n.hostname,
        secrets: n.usesHttpOutputUrl ? { httpOutputUrl: secrets.httpOutputUrl } : undefined,
    };
    const proxy = n.viaBastion ? bastion : undefined;
    if (n.kind === "aws") {
        const node = new AwsFalcoNode(n.name, { ...n.aws, ...host, bastion: proxy });
        const address = n.aws.publicIp ? node.publicIp : node.privateIp;
        return { address, falcoVersion: node.falcoVersion, driver: node.driver, bundleHash: node.bundleHash };
    }
    const node = new FalcoHost(n.name, { ...host, connection: { ...n.ssh, privateKey: secrets.sshPrivateKey, proxy } });
    return { address: pulumi.output(n.ssh.host), falcoVersion: node.falcoVersion, driver: node.driver, bundleHash: node.bundleHash };
}

function declareCluster() {
    if (!cfg.cluster) return undefined;
    // Only the stack's own kubeconfig, never the ambient ~/.kube/config: a deploy cannot land on the wrong cluster.
    const provider = new k8s.Provider("cluster", { kubeconfig: secrets.kubeconfig! });
    const a = cfg.alerting;
    // The same rules `npm run render` writes to out/<stack>/alerts/: every declared node is expected to report.
    const alertRules = a.settings.enabled && a.settings.prometheusRule.enabled
        ? {
              rules: renderAlertRules({ stack: pulumi.getStack(), nodes: a.nodes, settings: a.settings, sidekickJob: a.sidekickJob }),
              namespace: a.prometheusRuleNamespace,
              labels: a.settings.prometheusRule.labels,
          }
        : undefined;
    const cluster = new FalcoCluster("falco", { ...cfg.cluster, provider, secrets: clusterSecrets(secrets), alertRules });
    return { namespace: cluster.namespace, sidekickAddress: cluster.sidekickAddress, webUiAddress: cluster.webUiAddress };
}

// The SDK records a formatted stack trace on each of its internal promises, and reads them only when
// PULUMI_DEBUG_PROMISE_LEAKS is set: skipping them makes a 500-node preview several times faster
// (components/sdk/promiseStackTraces.ts; set that variable to get every stack back).
const declared = withoutPromiseStackTraces(() => ({
    nodes: Object.fromEntries(cfg.nodes.map((n) => [n.name, declareNode(n)])),
    cluster: declareCluster(),
}));

/** Per node: its address, Falco version, driver and bundle hash. */
export const nodes = declared.nodes;
/** The in-cluster layer's addresses, when the stack has one. */
export const cluster = declared.cluster;
