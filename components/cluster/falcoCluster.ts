/**
 * The optional second layer: Falco inside a Kubernetes cluster, from the official `falcosecurity/falco` chart,
 * with Falcosidekick forwarding alerts. What the guide's `helm install` / `helm upgrade` steps do, plus: a pinned
 * chart, a privileged-PSA namespace of its own, a PriorityClass, the hosts' rule files, credentials only in
 * Secrets, a UI login that is never `admin:admin`, and an admission policy that stops anyone but the deployer
 * from switching Falco off.
 *
 * The chart is a `helm.v4.Chart`: Pulumi renders it and manages each object itself, so every Kubernetes object
 * shows in `pulumi preview` and goes through policy packs.
 *
 * With `alertRules`, the stack's central alert rules (components/alerting) are applied as a `PrometheusRule`
 * (monitoring.coreos.com/v1) for the Prometheus operator to load; the cluster must have its CRDs.
 *
 * After rotating a credential (`secrets.*`), restart Falcosidekick as the deployer identity
 * (`kubectl -n <ns> rollout restart deploy/<release>-falcosidekick`, or `<release>-falco-falcosidekick` when
 * the release name lacks "falco"): it reads the Secret at start, and the chart's config checksum does not
 * cover Secrets it did not render.
 */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { chartNames } from "./names";
import { planCluster } from "./render";
import type { RuleGroups } from "../alerting/rules";
import type { FalcoClusterSecrets, FalcoClusterSettings, SecretPresence } from "./settings";
import { renderOutputsSecretData, renderWebUiRedisSecretData, renderWebUiSecretData, serviceAddresses } from "./values";

export interface FalcoClusterArgs extends FalcoClusterSettings {
    /** The Kubernetes provider (its kubeconfig) of the cluster to deploy to. Required: no ambient kubeconfig. */
    provider: k8s.Provider;
    /** Credentials, as Pulumi secrets (`pulumi config set --secret`). See `FalcoClusterSecrets`. */
    secrets?: FalcoClusterSecrets;
    /**
     * Alert rules to apply as a PrometheusRule (`renderAlertRules` from components/alerting). Default none.
     * Needs the Prometheus operator's CRDs in the cluster.
     */
    alertRules?: FalcoClusterAlertRules;
}

export interface FalcoClusterAlertRules {
    /** The rule groups (the PrometheusRule's `spec`). */
    rules: RuleGroups;
    /** Namespace of the PrometheusRule. Default: Falco's namespace. */
    namespace?: string;
    /** Labels for the operator's `ruleSelector` (e.g. `release: kube-prometheus-stack`). Default none. */
    labels?: Record<string, string>;
}

/** The PrometheusRule's name. */
export const ALERT_RULES_NAME = "falco-nodes-alerts";

const SECRET_KEYS = [
    "slackWebhookUrl", "webhookAddress", "webhookCustomHeaders", "elasticsearchPassword", "webUiPassword",
] as const satisfies readonly (keyof FalcoClusterSecrets)[];

export class FalcoCluster extends pulumi.ComponentResource {
    /** The namespace Falco runs in. */
    readonly namespace: pulumi.Output<string>;
    /** The Helm release name. */
    readonly releaseName: pulumi.Output<string>;
    /** Falcosidekick's in-cluster address (`http://<svc>.<ns>.svc:2801`), undefined when it is off. */
    readonly sidekickAddress: pulumi.Output<string | undefined>;
    /** Falcosidekick-UI's in-cluster address (`kubectl port-forward` to it), undefined when it is off. */
    readonly webUiAddress: pulumi.Output<string | undefined>;
    /** The UI password (secret), given or generated; undefined when the UI is off. */
    readonly webUiPassword: pulumi.Output<string | undefined>;
    /** The chart component, for `dependsOn`. */
    readonly chart: k8s.helm.v4.Chart;

    constructor(name: string, args: FalcoClusterArgs, opts: pulumi.ComponentResourceOptions = {}) {
        super("falco-nodes:index:FalcoCluster", name, {}, opts);
        const { provider, secrets = {}, alertRules, ...settings } = args;
        if (!provider) throw new Error(`FalcoCluster ${name}: args.provider is required (a k8s.Provider for the target cluster's kubeconfig)`);
        const presence = Object.fromEntries(SECRET_KEYS.map((k) => [k, secrets[k] !== undefined])) as SecretPresence;
        const plan = planCluster(settings, presence);
        const s = plan.settings;
        const names = chartNames(s.releaseName);
        const child = { parent: this, provider };
        const labels = { "app.kubernetes.io/managed-by": "falco-nodes", "app.kubernetes.io/part-of": "falco-nodes" };

        const namespace = new k8s.core.v1.Namespace(
            `${name}-namespace`,
            {
                metadata: {
                    name: s.namespace,
                    labels: {
                        ...labels,
                        // Falco needs host access (eBPF, /proc, the container runtime socket): Pod Security
                        // Admission must allow privileged pods here, and only here.
                        "pod-security.kubernetes.io/enforce": "privileged",
                        "pod-security.kubernetes.io/enforce-version": "latest",
                        "pod-security.kubernetes.io/warn": "privileged",
                        "pod-security.kubernetes.io/audit": "privileged",
                    },
                },
            },
            child,
        );
        const ns = namespace.metadata.name;

        const priorityClass = new k8s.scheduling.v1.PriorityClass(
            `${name}-priority`,
            {
                metadata: { name: s.priorityClass.name, labels },
                value: s.priorityClass.value,
                globalDefault: false,
                preemptionPolicy: "PreemptLowerPriority",
                description: "Falco and Falcosidekick: the runtime sensor is scheduled first and evicted last.",
            },
            child,
        );

        const secretDeps: pulumi.Resource[] = [];
        if (plan.refs.outputsSecret) {
            const data = pulumi
                .all({
                    slackWebhookUrl: secrets.slackWebhookUrl,
                    webhookAddress: secrets.webhookAddress,
                    webhookCustomHeaders: secrets.webhookCustomHeaders,
                    elasticsearchPassword: secrets.elasticsearchPassword,
                })
                .apply((v) => renderOutputsSecretData(s, v));
            secretDeps.push(
                new k8s.core.v1.Secret(
                    `${name}-outputs`,
                    { metadata: { name: names.outputsSecret, namespace: ns, labels }, type: "Opaque", stringData: pulumi.secret(data) },
                    { ...child, additionalSecretOutputs: ["data", "stringData"] },
                ),
            );
        }

        let webUiPassword: pulumi.Output<string | undefined> = pulumi.output(undefined);
        if (plan.refs.webUiSecret) {
            // Generated once and kept in state (encrypted), so it is stable across runs; no special characters
            // because the UI reads `login:password` from one variable.
            const password = pulumi.secret(
                secrets.webUiPassword !== undefined
                    ? pulumi.output(secrets.webUiPassword)
                    : new random.RandomPassword(`${name}-webui-password`, { length: 24, special: false }, { parent: this }).result,
            );
            webUiPassword = password;
            // The UI's Redis holds every alert: it gets a password too, generated once, that nobody needs to know.
            const redisPassword = pulumi.secret(
                new random.RandomPassword(`${name}-webui-redis-password`, { length: 32, special: false }, { parent: this }).result,
            );
            secretDeps.push(
                new k8s.core.v1.Secret(
                    `${name}-webui-login`,
                    {
                        metadata: { name: names.webUiSecret, namespace: ns, labels },
                        type: "Opaque",
                        stringData: pulumi.secret(pulumi.all([password, redisPassword]).apply(([p, r]) => renderWebUiSecretData(s, p, r))),
                    },
                    { ...child, additionalSecretOutputs: ["data", "stringData"] },
                ),
                new k8s.core.v1.Secret(
                    `${name}-webui-redis-auth`,
                    {
                        metadata: { name: names.webUiRedisSecret, namespace: ns, labels },
                        type: "Opaque",
                        stringData: pulumi.secret(redisPassword.apply(renderWebUiRedisSecretData)),
                    },
                    { ...child, additionalSecretOutputs: ["data", "stringData"] },
                ),
            );
        }

        const oci = s.chartRepo.startsWith("oci://");
        this.chart = new k8s.helm.v4.Chart(
            `${name}-chart`,
            {
                chart: oci ? `${s.chartRepo.replace(/\/+$/, "")}/falco` : "falco",
                version: s.chartVersion,
                name: s.releaseName,
                namespace: ns,
                ...(oci ? {} : { repositoryOpts: { repo: s.chartRepo } }),
                values: plan.values,
            },
            { ...child, dependsOn: [priorityClass, ...secretDeps] },
        );

        if (plan.protection) {
            // After the chart: on destroy the protection goes first, and the first install is never affected.
            const after = { ...child, dependsOn: [this.chart] };
            const policy = new k8s.admissionregistration.v1.ValidatingAdmissionPolicy(
                `${name}-protection`,
                {
                    metadata: plan.protection.policy.metadata,
                    spec: plan.protection.policy.spec,
                },
                after,
            );
            new k8s.admissionregistration.v1.ValidatingAdmissionPolicyBinding(
                `${name}-protection-binding`,
                {
                    metadata: plan.protection.binding.metadata,
                    spec: plan.protection.binding.spec,
                },
                { ...after, dependsOn: [this.chart, policy] },
            );
        }

        if (alertRules) {
            // A plain object of the operator's CRD: Pulumi shows the rules in the preview and replaces nothing on change.
            new k8s.apiextensions.CustomResource(
                `${name}-alert-rules`,
                {
                    apiVersion: "monitoring.coreos.com/v1",
                    kind: "PrometheusRule",
                    metadata: {
                        name: ALERT_RULES_NAME,
                        namespace: alertRules.namespace ?? ns,
                        labels: { ...alertRules.labels, ...labels },
                    },
                    spec: alertRules.rules,
                },
                { ...child, dependsOn: [namespace] },
            );
        }

        const addresses = serviceAddresses(s);
        this.namespace = ns;
        this.releaseName = pulumi.output(s.releaseName);
        this.sidekickAddress = pulumi.output(addresses.sidekick);
        this.webUiAddress = pulumi.output(addresses.webUi);
        this.webUiPassword = webUiPassword;
        this.registerOutputs({
            namespace: this.namespace,
            releaseName: this.releaseName,
            sidekickAddress: this.sidekickAddress,
            webUiAddress: this.webUiAddress,
            webUiPassword: this.webUiPassword,
        });
    }
}
