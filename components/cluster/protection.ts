/**
 * Tamper protection for the in-cluster Falco: a ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1,
 * Kubernetes >= 1.30) and its binding. In Falco's namespace only the named deployer identities may change or
 * delete Falco's workloads (scale subresources included), config, secrets, services, RBAC and network policies,
 * delete its pods, create pods, workloads, ResourceQuotas, LimitRanges or NetworkPolicies, mint tokens for its
 * service accounts, or exec into its pods; nor may anyone else change or delete its namespace, the chart's
 * ClusterRoles and our PriorityClass. Without it, any cluster-admin credential (a leaked kubeconfig, a
 * compromised CI job) can switch Falco off with one `kubectl` command. Pure: plain API objects, no Pulumi.
 *
 * How the API server presents a request to the policy (what the CEL sees, and what the tests model):
 * - `request` is the admission.k8s.io/v1 AdmissionRequest as its JSON form (kubernetes/kubernetes
 *   staging/src/k8s.io/apiserver/pkg/cel/common/ UnstructuredReflectToVal, used by
 *   staging/src/k8s.io/apiserver/pkg/admission/plugin/cel/activation.go): empty `omitempty` fields are absent, and
 *   reading an absent field is an error. `namespace` is empty for cluster-scoped objects, the Namespace object
 *   included (rootScopeNaming in staging/src/k8s.io/apiserver/pkg/endpoints/handlers/rest.go), so every optional
 *   field is read through `has()`. An error counts as the failure policy (`Fail` here: deny; policy/validating/
 *   validator.go), so an unguarded read would deny requests the policy never meant to touch.
 * - Impersonation is resolved before admission and leaves no trace there: the impersonation filter replaces the
 *   user with the impersonated name, groups, UID and only the `Impersonate-Extra-*` values the caller asked for,
 *   and strips the headers "to prevent downstream layers from knowing that impersonation was used"
 *   (staging/src/k8s.io/apiserver/pkg/endpoints/filters/impersonation/impersonation.go, WithImpersonation, and
 *   constrained_impersonation.go). No `request.userInfo` field says "impersonated": the policy cannot refuse an
 *   impersonated request as such. What it can check is what a plain `--as` lacks: a service account's own
 *   pod-bound token carries `authentication.kubernetes.io/pod-name` and `pod-uid` in `extra`
 *   (pkg/serviceaccount/util.go, ServiceAccountInfo.UserInfo), which `--as=system:serviceaccount:...` does not
 *   set. A caller allowed to impersonate `userextras/authentication.kubernetes.io/pod-name` (cluster-admin's
 *   `*` is) can forge it; the audit log still names the real user, and the host's tamper rules alert on it.
 *
 * What is deliberately allowed:
 * - the exempt users and groups (the deployer; `pulumi up` with protection on keeps working);
 * - Falco's own service account (`<falco fullname>`) updating Falco's ConfigMap (the chart's RBAC grants it, the
 *   driver loader writes the chosen engine there with `driver.kind: auto`), and only with its pod-bound token
 *   from one of Falco's pods; no other service account of the namespace is exempt;
 * - the controllers that must act for Kubernetes to work: the garbage collector, the namespace controller and
 *   the root-CA publisher (`CONTROLLER_IDENTITIES`, anything they must do); the workload controllers that
 *   create and replace Falco's pods and the ReplicaSets behind Falcosidekick (`POD_CREATORS`, pod CREATE;
 *   `REPLICASET_CREATORS`); the controllers, the scheduler and pod GC that delete pods (`POD_DELETERS`); a
 *   kubelet finishing the deletion of a pod someone else started (its `deletionTimestamp` is set) and minting the
 *   pod tokens of Falco's service accounts;
 * - status subresources (`daemonsets/status`, ...): not matched, so controllers keep reporting;
 * - evictions (`pods/eviction`): `kubectl drain` and the cluster autoscaler must work; an evicted pod is
 *   recreated (the quota and LimitRange that would stop that are denied);
 * - creating objects the namespace needs and nobody can switch Falco off with (ConfigMaps, Secrets, Services,
 *   Events, EndpointSlices, ControllerRevisions, PVCs).
 *
 * Limits, also in docs/threat-model.md:
 * - Kubernetes never runs admission on ValidatingAdmissionPolicy(Binding) or webhook configuration objects
 *   (IsExemptAdmissionConfigurationResource in staging/src/k8s.io/apiserver/pkg/admission/plugin/webhook/
 *   predicates/rules/rules.go), so the policy cannot protect itself, nor stop a new webhook or policy that
 *   denies Falco's pods: the host's k8saudit rules alert on both.
 * - Whoever may impersonate an exempt identity (the deployer, a controller, a kubelet) is treated as it.
 * - Requests that never reach the API server's admission: the kubelet's own API (`nodes/proxy`, port 10250),
 *   aggregated API servers, cluster-scoped network policies of a CNI (Calico GlobalNetworkPolicy, Cilium
 *   clusterwide policies, AdminNetworkPolicy) and EndpointSlice edits are not covered.
 *
 * Lifting it: as an exempt identity, `pulumi up` with `protection.enabled: false`, or
 * `kubectl delete validatingadmissionpolicybinding <release>-protect-falco`.
 */
import { CONTROLLER_IDENTITIES, chartNames } from "./names";
import type { ResolvedClusterSettings } from "./settings";

const kubeSystem = (name: string) => `system:serviceaccount:kube-system:${name}`;

export { CONTROLLER_IDENTITIES };

/** Controllers that create (and replace) Falco's pods: the DaemonSet, Falcosidekick's ReplicaSets, the UI's Redis. */
export const POD_CREATORS = [kubeSystem("daemon-set-controller"), kubeSystem("replicaset-controller"), kubeSystem("statefulset-controller")] as const;

/** The controller that creates a Deployment's ReplicaSets (a rollout the deployer started). */
export const REPLICASET_CREATORS = [kubeSystem("deployment-controller")] as const;

/**
 * Who deletes pods for Kubernetes to work: the workload controllers (rollouts, failed pods), pod GC (pods of deleted
 * nodes), taint eviction (`taint-eviction-controller` since 1.29, `node-controller` before) and the scheduler
 * (preempting the UI's pods, which have no priority class).
 */
export const POD_DELETERS = [
    ...POD_CREATORS,
    kubeSystem("pod-garbage-collector"),
    kubeSystem("taint-eviction-controller"),
    kubeSystem("node-controller"),
    "system:kube-scheduler",
] as const;

/** The key the service-account authenticator puts a pod-bound token's pod name under (pkg/serviceaccount/util.go). */
export const POD_NAME_EXTRA = "authentication.kubernetes.io/pod-name";

export interface ResourceRule {
    apiGroups: string[];
    apiVersions: string[];
    resources: string[];
    operations: string[];
}

const rule = (apiGroups: string[], resources: string[], operations: string[]): ResourceRule => ({
    apiGroups,
    apiVersions: ["*"],
    resources,
    operations,
});

/**
 * The requests the policy looks at (then its CEL decides by namespace, name and identity). A rule on `deployments`
 * does not match `deployments/scale`: each subresource that changes a workload is listed.
 */
export const PROTECTED_RESOURCE_RULES: ResourceRule[] = [
    rule(["apps"], ["daemonsets", "deployments", "statefulsets", "deployments/scale", "statefulsets/scale"], ["UPDATE", "DELETE"]),
    // A new workload in Falco's (privileged) namespace could run as Falco's service account.
    rule(["apps"], ["daemonsets", "deployments", "statefulsets", "replicasets"], ["CREATE"]),
    rule([""], ["replicationcontrollers"], ["CREATE"]),
    rule(["batch"], ["jobs", "cronjobs"], ["CREATE"]),
    rule([""], ["configmaps", "secrets", "serviceaccounts", "services"], ["UPDATE", "DELETE"]),
    rule([""], ["namespaces"], ["UPDATE", "DELETE"]),
    // Deleting Falco's pods, and creating pods that are not Falco's.
    rule([""], ["pods"], ["CREATE", "DELETE"]),
    // `pods=0` or a tiny memory limit: the deleted pods would never come back.
    rule([""], ["resourcequotas", "limitranges"], ["CREATE", "UPDATE"]),
    // A deny-egress policy silences every output.
    rule(["networking.k8s.io"], ["networkpolicies"], ["CREATE", "UPDATE", "DELETE"]),
    rule(["cilium.io"], ["ciliumnetworkpolicies"], ["CREATE", "UPDATE", "DELETE"]),
    rule(["crd.projectcalico.org"], ["networkpolicies"], ["CREATE", "UPDATE", "DELETE"]),
    // A token for Falco's service account would pass for Falco.
    rule([""], ["serviceaccounts/token"], ["CREATE"]),
    // A shell in Falco's privileged container can stop or blind Falco without touching any object.
    rule([""], ["pods/exec", "pods/attach"], ["CONNECT"]),
    rule([""], ["pods/ephemeralcontainers"], ["UPDATE"]),
    rule(["rbac.authorization.k8s.io"], ["roles", "rolebindings", "clusterroles", "clusterrolebindings"], ["UPDATE", "DELETE"]),
    rule(["scheduling.k8s.io"], ["priorityclasses"], ["UPDATE", "DELETE"]),
];

/** A CEL list literal of strings. Callers pass values already held to allowlists (no quotes or backslashes). */
function celStrings(values: readonly string[]): string {
    for (const v of values)
        if (!/^[A-Za-z0-9@:._\/+=*-]*$/.test(v)) throw new Error(`refusing to put ${JSON.stringify(v)} in a CEL expression`);
    return `[${values.map((v) => JSON.stringify(v)).join(", ")}]`;
}
const celString = (v: string) => celStrings([v]).slice(1, -1);

interface ObjectMeta {
    name: string;
    labels: Record<string, string>;
}

export interface PolicySpec {
    failurePolicy: "Fail" | "Ignore";
    matchConstraints: { matchPolicy: "Equivalent" | "Exact"; resourceRules: (ResourceRule & { scope: string })[] };
    variables: { name: string; expression: string }[];
    validations: { expression: string; messageExpression: string; reason: string }[];
}

export interface BindingSpec {
    policyName: string;
    validationActions: ("Deny" | "Warn" | "Audit")[];
    matchResources: {
        namespaceSelector: { matchExpressions: { key: string; operator: "In"; values: string[] }[] };
    };
}

export interface ProtectionObjects {
    policy: { apiVersion: string; kind: string; metadata: ObjectMeta; spec: PolicySpec };
    binding: { apiVersion: string; kind: string; metadata: ObjectMeta; spec: BindingSpec };
}

/** The policy and binding for these settings. */
export function renderProtection(s: ResolvedClusterSettings): ProtectionObjects {
    const names = chartNames(s.releaseName);
    const ns = s.namespace;
    const labels = { "app.kubernetes.io/managed-by": "falco-nodes", "app.kubernetes.io/part-of": "falco-nodes" };
    // Cluster-scoped names the chart derives from its fullname: `<falco>`, `<falco>-falcosidekick`, ...
    const clusterPrefix = names.falco;
    const on = (resource: string, subresource: string, operation: string) =>
        `request.resource.resource == ${celString(resource)} && variables.requestSubresource == ${celString(subresource)} && ` +
        `request.operation == ${celString(operation)}`;

    // Every optional AdmissionRequest field is read through has(): an absent one is an error, and an error denies.
    // Variable names must be CEL identifiers that are not reserved words ("namespace" is one): isCELIdentifier in
    // kubernetes/kubernetes pkg/apis/admissionregistration/validation/validation.go.
    const variables = [
        { name: "requestNamespace", expression: `has(request.namespace) ? request.namespace : ""` },
        { name: "requestName", expression: `has(request.name) ? request.name : ""` },
        { name: "requestSubresource", expression: `has(request.subResource) ? request.subResource : ""` },
        { name: "username", expression: `has(request.userInfo.username) ? request.userInfo.username : ""` },
        { name: "exemptUser", expression: `variables.username in ${celStrings(s.protection.exemptUsers)}` },
        {
            name: "exemptGroup",
            expression: `has(request.userInfo.groups) && request.userInfo.groups.exists(g, g in ${celStrings(s.protection.exemptGroups)})`,
        },
        { name: "controller", expression: `variables.username in ${celStrings(CONTROLLER_IDENTITIES)}` },
        {
            name: "kubelet",
            expression:
                `variables.username.startsWith("system:node:") && has(request.userInfo.groups) && ` +
                `"system:nodes" in request.userInfo.groups`,
        },
        {
            // Falco's own service account with the token the kubelet mounted into one of Falco's pods (a plain
            // `--as=system:serviceaccount:...` carries no pod name), writing the one ConfigMap the chart lets it.
            name: "falcoServiceAccount",
            expression:
                `variables.username == ${celString(`system:serviceaccount:${ns}:${names.falco}`)} && ` +
                `has(request.userInfo.extra) && ${celString(POD_NAME_EXTRA)} in request.userInfo.extra && ` +
                `request.userInfo.extra[${celString(POD_NAME_EXTRA)}].exists(p, p.startsWith(${celString(`${names.falco}-`)})) && ` +
                `${on("configmaps", "", "UPDATE")} && variables.requestName == ${celString(names.falco)}`,
        },
        {
            name: "kubernetesAtWork",
            expression: [
                `(${on("pods", "", "CREATE")} && variables.username in ${celStrings(POD_CREATORS)})`,
                `(${on("replicasets", "", "CREATE")} && variables.username in ${celStrings(REPLICASET_CREATORS)})`,
                `(${on("pods", "", "DELETE")} && variables.username in ${celStrings(POD_DELETERS)})`,
                // The kubelet's final DELETE of a pod whose deletion someone else started.
                `(${on("pods", "", "DELETE")} && variables.kubelet && oldObject != null && has(oldObject.metadata.deletionTimestamp))`,
                // The kubelet minting the projected tokens of the pods it runs.
                `(${on("serviceaccounts", "token", "CREATE")} && variables.kubelet)`,
            ].join(" || "),
        },
        {
            name: "protectedObject",
            expression: [
                `variables.requestNamespace == ${celString(ns)}`,
                `(request.resource.resource == "namespaces" && variables.requestName == ${celString(ns)})`,
                `(request.resource.resource in ["clusterroles", "clusterrolebindings"] && ` +
                    `(variables.requestName == ${celString(clusterPrefix)} || variables.requestName.startsWith(${celString(`${clusterPrefix}-`)})))`,
                `(request.resource.resource == "priorityclasses" && variables.requestName == ${celString(s.priorityClass.name)})`,
            ].join(" || "),
        },
    ];

    const policy: ProtectionObjects["policy"] = {
        apiVersion: "admissionregistration.k8s.io/v1",
        kind: "ValidatingAdmissionPolicy",
        metadata: { name: names.protectionPolicy, labels },
        spec: {
            // If the policy cannot be evaluated, deny: an attacker must not be able to win by breaking it.
            failurePolicy: "Fail",
            matchConstraints: { matchPolicy: "Equivalent", resourceRules: PROTECTED_RESOURCE_RULES.map((r) => ({ ...r, scope: "*" })) },
            variables,
            validations: [
                {
                    expression:
                        "!variables.protectedObject || variables.exemptUser || variables.exemptGroup || " +
                        "variables.controller || variables.kubernetesAtWork || variables.falcoServiceAccount",
                    messageExpression:
                        `"falco-nodes protection: " + request.operation + " " + request.resource.resource + ` +
                        `(variables.requestSubresource == "" ? "" : "/" + variables.requestSubresource) + " " + variables.requestName + ` +
                        `" is reserved to the Falco deployer identity; lift the protection as described in FalcoCluster's docs"`,
                    reason: "Forbidden",
                },
            ],
        },
    };

    const binding: ProtectionObjects["binding"] = {
        apiVersion: "admissionregistration.k8s.io/v1",
        kind: "ValidatingAdmissionPolicyBinding",
        metadata: { name: names.protectionBinding, labels },
        spec: {
            policyName: names.protectionPolicy,
            // Deny, and record the denial in the API server's audit log.
            validationActions: ["Deny", "Audit"],
            // Namespaced objects: only Falco's namespace is evaluated at all (a broken expression cannot hurt the
            // rest of the cluster). Cluster-scoped ones (ClusterRoles, PriorityClasses) are always evaluated and
            // filtered by name in CEL; the Namespace object matches through its own name label.
            matchResources: {
                namespaceSelector: {
                    matchExpressions: [{ key: "kubernetes.io/metadata.name", operator: "In", values: [ns] }],
                },
            },
        },
    };
    return { policy, binding };
}
