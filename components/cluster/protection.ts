/**
 * Tamper protection for the in-cluster Falco: a ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1,
 * Kubernetes >= 1.30) and its binding that deny changing or deleting Falco's workloads, config, secrets, RBAC
 * and namespace, and exec-ing into its pods, to anyone but the named deployer identities. Without it, any
 * cluster-admin credential (a leaked kubeconfig, a compromised CI job) can switch Falco off with one
 * `kubectl delete` and nothing records why alerts stopped. Pure: plain API objects, no Pulumi.
 *
 * What is deliberately allowed:
 * - the exempt users and groups (the deployer; `pulumi up` with protection on keeps working);
 * - Falco's own service accounts (`system:serviceaccount:<namespace>:*`): whoever runs as them already runs
 *   Falco's privileged pods, and the chart's RBAC lets them update their ConfigMaps;
 * - the controllers that must touch these objects for Kubernetes to work: the garbage collector (removes
 *   finalizers when the deployer deletes something), the namespace controller (empties the namespace when the
 *   deployer deletes it), the root-CA publisher (rotates `kube-root-ca.crt`), and `system:kube-controller-manager`
 *   for clusters that run those controllers under one identity. They only act on deletions and rotations someone
 *   else started, and deleting Falco's objects directly is what is denied.
 * - status subresources (`daemonsets/status`, ...): they are not matched, so controllers keep reporting.
 * - CREATE: adding objects does not switch Falco off, and denying it would break the first deployment.
 *
 * Limits, also in the docs of `ProtectionSettings.enabled`:
 * - Kubernetes never runs admission policies on ValidatingAdmissionPolicy(Binding) objects (to avoid
 *   lock-outs), so the policy cannot protect itself: restrict `delete` on them with RBAC and alert on it.
 * - An identity allowed to impersonate an exempt user is treated as that user (impersonation is resolved before
 *   admission); the audit log shows it.
 *
 * Lifting it: as an exempt identity, `pulumi up` with `protection.enabled: false`, or
 * `kubectl delete validatingadmissionpolicybinding <release>-protect-falco`.
 */
import { CONTROLLER_IDENTITIES, chartNames } from "./names";
import type { ResolvedClusterSettings } from "./settings";

export { CONTROLLER_IDENTITIES };

export interface ResourceRule {
    apiGroups: string[];
    apiVersions: string[];
    resources: string[];
    operations: string[];
}

/** The requests the policy looks at (then its CEL decides by namespace, name and identity). */
export const PROTECTED_RESOURCE_RULES: ResourceRule[] = [
    { apiGroups: ["apps"], apiVersions: ["*"], resources: ["daemonsets", "deployments", "statefulsets"], operations: ["UPDATE", "DELETE"] },
    { apiGroups: [""], apiVersions: ["*"], resources: ["configmaps", "secrets", "serviceaccounts", "services"], operations: ["UPDATE", "DELETE"] },
    { apiGroups: [""], apiVersions: ["*"], resources: ["namespaces"], operations: ["UPDATE", "DELETE"] },
    // A shell in Falco's privileged container can stop or blind Falco without touching any object.
    { apiGroups: [""], apiVersions: ["*"], resources: ["pods/exec", "pods/attach"], operations: ["CONNECT"] },
    { apiGroups: [""], apiVersions: ["*"], resources: ["pods/ephemeralcontainers"], operations: ["UPDATE"] },
    {
        apiGroups: ["rbac.authorization.k8s.io"],
        apiVersions: ["*"],
        resources: ["roles", "rolebindings", "clusterroles", "clusterrolebindings"],
        operations: ["UPDATE", "DELETE"],
    },
    { apiGroups: ["scheduling.k8s.io"], apiVersions: ["*"], resources: ["priorityclasses"], operations: ["UPDATE", "DELETE"] },
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

    const variables = [
        { name: "exemptUser", expression: `request.userInfo.username in ${celStrings(s.protection.exemptUsers)}` },
        {
            name: "exemptGroup",
            expression: `has(request.userInfo.groups) && request.userInfo.groups.exists(g, g in ${celStrings(s.protection.exemptGroups)})`,
        },
        { name: "falcoServiceAccount", expression: `request.userInfo.username.startsWith(${celString(`system:serviceaccount:${ns}:`)})` },
        { name: "controller", expression: `request.userInfo.username in ${celStrings(CONTROLLER_IDENTITIES)}` },
        {
            name: "protectedObject",
            expression: [
                `request.namespace == ${celString(ns)}`,
                `(request.resource.resource == "namespaces" && request.name == ${celString(ns)})`,
                `(request.resource.resource in ["clusterroles", "clusterrolebindings"] && ` +
                    `(request.name == ${celString(clusterPrefix)} || request.name.startsWith(${celString(`${clusterPrefix}-`)})))`,
                `(request.resource.resource == "priorityclasses" && request.name == ${celString(s.priorityClass.name)})`,
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
                        "variables.falcoServiceAccount || variables.controller",
                    messageExpression:
                        `"falco-nodes protection: " + request.operation + " " + request.resource.resource + "/" + request.name + ` +
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
