import { strict as assert } from "assert";
import { chartNames, falcoFullname } from "../../components/cluster/names";
import { CONTROLLER_IDENTITIES, POD_CREATORS, POD_DELETERS, renderProtection } from "../../components/cluster/protection";
import { resolveClusterSettings, type FalcoClusterSettings } from "../../components/cluster/settings";
import { type AdmissionAttributes, decide, impersonate, podServiceAccount, policyProblems, typeProblems, type UserInfo } from "../support/admissionPolicy";

const DEPLOYER = "arn:aws:sts::123456789012:assumed-role/deployer/ci";
const settings: FalcoClusterSettings = {
    namespace: "runtime-security",
    releaseName: "sec",
    priorityClass: { name: "sensor" },
    protection: { exemptUsers: [DEPLOYER, "system:serviceaccount:ci:pulumi"], exemptGroups: ["falco-breakglass"] },
};
const { policy, binding } = renderProtection(resolveClusterSettings(settings));
const spec = policy.spec;
const NS = "runtime-security";
const names = chartNames("sec");

// Identities as the API server presents them to admission (after authentication and impersonation).
const admin: UserInfo = { username: "kubernetes-admin", groups: ["kubeadm:cluster-admins", "system:authenticated"] };
const deployer: UserInfo = { username: DEPLOYER, groups: ["system:authenticated"] };
const breakGlass: UserInfo = { username: "oncall@example.com", groups: ["falco-breakglass", "system:authenticated"] };
const kubelet: UserInfo = { username: "system:node:ip-10-0-0-5", groups: ["system:nodes", "system:authenticated"] };
const sa = (name: string): UserInfo => ({
    username: `system:serviceaccount:kube-system:${name}`,
    groups: ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"],
});
const falcoPodToken = podServiceAccount(NS, names.falco, `${names.falco}-x7k2p`);
const sidekickPodToken = podServiceAccount(NS, names.sidekick, `${names.sidekick}-5d8f9-abcde`);

const pod = (deleting = false) => ({
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: `${names.falco}-x7k2p`, namespace: NS, ...(deleting ? { deletionTimestamp: "2026-12-01T09:00:00Z" } : {}) },
    spec: { serviceAccountName: names.falco, nodeName: "ip-10-0-0-5" },
});
const scale = (name: string, replicas: number) => ({ apiVersion: "autoscaling/v1", kind: "Scale", metadata: { name, namespace: NS }, spec: { replicas } });

type Expect = "deny" | "allow" | "not evaluated";
interface Row {
    move: string;
    request: AdmissionAttributes;
    expect: Expect;
}

/**
 * One row per move: the request as the API server presents it to admission, and what the policy must do with it.
 * docs/threat-model.md ("cluster-admin") lists the same moves.
 */
const ROWS: Row[] = [
    // --- the moves of issue 16 ---------------------------------------------------------------------------------
    {
        move: "kubectl scale deploy <sidekick> --replicas=0 (deployments/scale)",
        request: { user: admin, group: "apps", resource: "deployments", subresource: "scale", namespace: NS, name: names.sidekick, operation: "UPDATE", object: scale(names.sidekick, 0), oldObject: scale(names.sidekick, 2) },
        expect: "deny",
    },
    {
        move: "kubectl scale statefulset <ui redis> --replicas=0 (statefulsets/scale)",
        request: { user: admin, group: "apps", resource: "statefulsets", subresource: "scale", namespace: NS, name: `${names.sidekickUi}-redis`, operation: "UPDATE", object: scale(`${names.sidekickUi}-redis`, 0), oldObject: scale(`${names.sidekickUi}-redis`, 1) },
        expect: "deny",
    },
    {
        move: "kubectl create quota --hard=pods=0 in Falco's namespace",
        request: { user: admin, group: "", resource: "resourcequotas", namespace: NS, name: "zero", operation: "CREATE", object: { kind: "ResourceQuota", metadata: { name: "zero" }, spec: { hard: { pods: "0" } } } },
        expect: "deny",
    },
    {
        move: "a LimitRange whose max no Falco pod fits",
        request: { user: admin, group: "", resource: "limitranges", namespace: NS, name: "tiny", operation: "CREATE", object: { kind: "LimitRange", spec: { limits: [{ type: "Container", max: { memory: "1Mi" } }] } } },
        expect: "deny",
    },
    {
        move: "kubectl delete pod <falco pod> (running, no deletion started)",
        request: { user: admin, group: "", resource: "pods", namespace: NS, name: `${names.falco}-x7k2p`, operation: "DELETE", oldObject: pod() },
        expect: "deny",
    },
    {
        move: "a deny-egress NetworkPolicy in Falco's namespace",
        request: { user: admin, group: "networking.k8s.io", resource: "networkpolicies", namespace: NS, name: "deny-egress", operation: "CREATE", object: { kind: "NetworkPolicy", spec: { podSelector: {}, policyTypes: ["Egress"] } } },
        expect: "deny",
    },
    {
        move: "editing an existing NetworkPolicy there",
        request: { user: admin, group: "networking.k8s.io", resource: "networkpolicies", namespace: NS, name: names.sidekick, operation: "UPDATE", object: { kind: "NetworkPolicy" }, oldObject: { kind: "NetworkPolicy" } },
        expect: "deny",
    },
    {
        move: "a CiliumNetworkPolicy in Falco's namespace",
        request: { user: admin, group: "cilium.io", version: "v2", resource: "ciliumnetworkpolicies", namespace: NS, name: "deny", operation: "CREATE", object: { kind: "CiliumNetworkPolicy" } },
        expect: "deny",
    },
    {
        move: "a Calico NetworkPolicy (crd.projectcalico.org) in Falco's namespace",
        request: { user: admin, group: "crd.projectcalico.org", resource: "networkpolicies", namespace: NS, name: "deny", operation: "CREATE", object: { kind: "NetworkPolicy" } },
        expect: "deny",
    },
    {
        move: "--as=system:serviceaccount:<ns>:x --as-group=system:masters editing Falco's ConfigMap",
        request: { user: impersonate(`system:serviceaccount:${NS}:x`, ["system:masters"]), group: "", resource: "configmaps", namespace: NS, name: names.falco, operation: "UPDATE", object: {}, oldObject: {} },
        expect: "deny",
    },
    {
        move: "--as=<Falco's own service account> (no pod-bound token) editing Falco's ConfigMap",
        request: { user: impersonate(`system:serviceaccount:${NS}:${names.falco}`), group: "", resource: "configmaps", namespace: NS, name: names.falco, operation: "UPDATE", object: {}, oldObject: {} },
        expect: "deny",
    },
    {
        move: "another service account of the namespace (Falcosidekick's pod token) editing Falco's ConfigMap",
        request: { user: sidekickPodToken, group: "", resource: "configmaps", namespace: NS, name: names.falco, operation: "UPDATE", object: {}, oldObject: {} },
        expect: "deny",
    },
    {
        move: "Falco's pod token editing the rules ConfigMap (not the one the chart lets it write)",
        request: { user: falcoPodToken, group: "", resource: "configmaps", namespace: NS, name: `${names.falco}-rules`, operation: "UPDATE", object: {}, oldObject: {} },
        expect: "deny",
    },
    {
        move: "Falco's pod token deleting its ConfigMap",
        request: { user: falcoPodToken, group: "", resource: "configmaps", namespace: NS, name: names.falco, operation: "DELETE", oldObject: {} },
        expect: "deny",
    },
    {
        move: "kubectl create token <Falco's service account> (TokenRequest)",
        request: { user: admin, group: "", resource: "serviceaccounts", subresource: "token", namespace: NS, name: names.falco, operation: "CREATE", object: { kind: "TokenRequest", spec: { boundObjectRef: { kind: "Pod", name: `${names.falco}-x7k2p` } } } },
        expect: "deny",
    },
    {
        move: "a pod of one's own in Falco's (privileged) namespace, as Falco's service account",
        request: { user: admin, group: "", resource: "pods", namespace: NS, name: `${names.falco}-fake`, operation: "CREATE", object: pod() },
        expect: "deny",
    },
    {
        move: "a Deployment of one's own in Falco's namespace",
        request: { user: admin, group: "apps", resource: "deployments", namespace: NS, name: "x", operation: "CREATE", object: { kind: "Deployment" } },
        expect: "deny",
    },
    {
        move: "--as=system:node:<n> --as-group=system:nodes deleting a running Falco pod",
        request: { user: impersonate("system:node:ip-10-0-0-5", ["system:nodes"]), group: "", resource: "pods", namespace: NS, name: `${names.falco}-x7k2p`, operation: "DELETE", oldObject: pod() },
        expect: "deny",
    },
    // --- the moves the policy already covered ------------------------------------------------------------------
    {
        move: "kubectl delete ds <falco>",
        request: { user: admin, group: "apps", resource: "daemonsets", namespace: NS, name: names.falco, operation: "DELETE", oldObject: { kind: "DaemonSet" } },
        expect: "deny",
    },
    {
        move: "kubectl patch ds <falco> (a nodeSelector no node matches)",
        request: { user: admin, group: "apps", resource: "daemonsets", namespace: NS, name: names.falco, operation: "UPDATE", object: { spec: { template: { spec: { nodeSelector: { none: "x" } } } } }, oldObject: {} },
        expect: "deny",
    },
    {
        move: "editing Falco's rules ConfigMap",
        request: { user: admin, group: "", resource: "configmaps", namespace: NS, name: `${names.falco}-rules`, operation: "UPDATE", object: {}, oldObject: {} },
        expect: "deny",
    },
    {
        move: "editing a RoleBinding in Falco's namespace",
        request: { user: admin, group: "rbac.authorization.k8s.io", resource: "rolebindings", namespace: NS, name: names.falco, operation: "UPDATE", object: {}, oldObject: {} },
        expect: "deny",
    },
    {
        move: "editing the outputs Secret",
        request: { user: admin, group: "", resource: "secrets", namespace: NS, name: names.outputsSecret, operation: "UPDATE", object: {}, oldObject: {} },
        expect: "deny",
    },
    {
        move: "kubectl delete namespace <falco>",
        request: { user: admin, group: "", resource: "namespaces", name: NS, operation: "DELETE", oldObject: { kind: "Namespace" } },
        expect: "deny",
    },
    {
        move: "kubectl exec into a Falco pod",
        request: { user: admin, group: "", resource: "pods", subresource: "exec", namespace: NS, name: `${names.falco}-x7k2p`, operation: "CONNECT", object: { kind: "PodExecOptions", command: ["sh"] } },
        expect: "deny",
    },
    {
        move: "kubectl debug (ephemeral container) in a Falco pod",
        request: { user: admin, group: "", resource: "pods", subresource: "ephemeralcontainers", namespace: NS, name: `${names.falco}-x7k2p`, operation: "UPDATE", object: pod(), oldObject: pod() },
        expect: "deny",
    },
    {
        move: "deleting the chart's ClusterRole",
        request: { user: admin, group: "rbac.authorization.k8s.io", resource: "clusterroles", name: names.falco, operation: "DELETE", oldObject: {} },
        expect: "deny",
    },
    {
        move: "deleting our PriorityClass",
        request: { user: admin, group: "scheduling.k8s.io", resource: "priorityclasses", name: "sensor", operation: "DELETE", oldObject: {} },
        expect: "deny",
    },
    // --- what must keep working --------------------------------------------------------------------------------
    {
        move: "the deployer updating the DaemonSet (pulumi up)",
        request: { user: deployer, group: "apps", resource: "daemonsets", namespace: NS, name: names.falco, operation: "UPDATE", object: {}, oldObject: {} },
        expect: "allow",
    },
    {
        move: "the deployer creating a NetworkPolicy",
        request: { user: deployer, group: "networking.k8s.io", resource: "networkpolicies", namespace: NS, name: names.sidekick, operation: "CREATE", object: {} },
        expect: "allow",
    },
    {
        move: "the break-glass group scaling Falcosidekick",
        request: { user: breakGlass, group: "apps", resource: "deployments", subresource: "scale", namespace: NS, name: names.sidekick, operation: "UPDATE", object: scale(names.sidekick, 3), oldObject: scale(names.sidekick, 2) },
        expect: "allow",
    },
    {
        move: "Falco's driver loader (its pod token) writing the engine kind into Falco's ConfigMap",
        request: { user: falcoPodToken, group: "", resource: "configmaps", namespace: NS, name: names.falco, operation: "UPDATE", object: {}, oldObject: {} },
        expect: "allow",
    },
    {
        move: "the DaemonSet controller creating a Falco pod",
        request: { user: sa("daemon-set-controller"), group: "", resource: "pods", namespace: NS, operation: "CREATE", object: pod() },
        expect: "allow",
    },
    {
        move: "the DaemonSet controller replacing a pod during a rollout",
        request: { user: sa("daemon-set-controller"), group: "", resource: "pods", namespace: NS, name: `${names.falco}-x7k2p`, operation: "DELETE", oldObject: pod() },
        expect: "allow",
    },
    {
        move: "the deployment controller creating Falcosidekick's ReplicaSet",
        request: { user: sa("deployment-controller"), group: "apps", resource: "replicasets", namespace: NS, name: `${names.sidekick}-5d8f9`, operation: "CREATE", object: {} },
        expect: "allow",
    },
    {
        move: "the kubelet finishing a deletion someone else started",
        request: { user: kubelet, group: "", resource: "pods", namespace: NS, name: `${names.falco}-x7k2p`, operation: "DELETE", oldObject: pod(true) },
        expect: "allow",
    },
    {
        move: "the kubelet minting the projected token of a Falco pod",
        request: { user: kubelet, group: "", resource: "serviceaccounts", subresource: "token", namespace: NS, name: names.falco, operation: "CREATE", object: { kind: "TokenRequest" } },
        expect: "allow",
    },
    {
        move: "the garbage collector deleting a pod",
        request: { user: sa("generic-garbage-collector"), group: "", resource: "pods", namespace: NS, name: `${names.sidekick}-5d8f9-abcde`, operation: "DELETE", oldObject: pod() },
        expect: "allow",
    },
    {
        move: "the root-CA publisher rotating kube-root-ca.crt",
        request: { user: sa("root-ca-cert-publisher"), group: "", resource: "configmaps", namespace: NS, name: "kube-root-ca.crt", operation: "UPDATE", object: {}, oldObject: {} },
        expect: "allow",
    },
    {
        move: "someone else's ClusterRole updated (the aggregation controller): cluster-scoped, evaluated, admitted",
        request: { user: sa("clusterrole-aggregation-controller"), group: "rbac.authorization.k8s.io", resource: "clusterroles", name: "admin", operation: "UPDATE", object: {}, oldObject: {} },
        expect: "allow",
    },
    {
        move: "an admin deleting another PriorityClass",
        request: { user: admin, group: "scheduling.k8s.io", resource: "priorityclasses", name: "batch-low", operation: "DELETE", oldObject: {} },
        expect: "allow",
    },
    {
        move: "deleting a pod in another namespace",
        request: { user: admin, group: "", resource: "pods", namespace: "web", name: "x", operation: "DELETE", oldObject: {} },
        expect: "not evaluated",
    },
    {
        move: "deleting another namespace",
        request: { user: admin, group: "", resource: "namespaces", name: "web", operation: "DELETE", oldObject: {} },
        expect: "not evaluated",
    },
    {
        move: "kubectl drain evicting a Falcosidekick pod (pods/eviction)",
        request: { user: admin, group: "", resource: "pods", subresource: "eviction", namespace: NS, name: `${names.sidekick}-5d8f9-abcde`, operation: "CREATE", object: { kind: "Eviction" } },
        expect: "not evaluated",
    },
    {
        move: "the DaemonSet controller reporting status",
        request: { user: sa("daemon-set-controller"), group: "apps", resource: "daemonsets", subresource: "status", namespace: NS, name: names.falco, operation: "UPDATE", object: {}, oldObject: {} },
        expect: "not evaluated",
    },
    // --- limits: what the policy cannot stop (docs/threat-model.md says which alert catches it) -----------------
    {
        move: "LIMIT: deleting the policy binding (admission never runs on policy objects)",
        request: { user: admin, group: "admissionregistration.k8s.io", resource: "validatingadmissionpolicybindings", name: binding.metadata?.name ?? "x", operation: "DELETE", oldObject: {} },
        expect: "not evaluated",
    },
    {
        move: "LIMIT: a new ValidatingWebhookConfiguration that denies Falco's pods",
        request: { user: admin, group: "admissionregistration.k8s.io", resource: "validatingwebhookconfigurations", name: "deny-falco", operation: "CREATE", object: {} },
        expect: "not evaluated",
    },
    {
        move: "LIMIT: exec through the kubelet API (nodes/proxy)",
        request: { user: admin, group: "", resource: "nodes", subresource: "proxy", name: "ip-10-0-0-5", operation: "CONNECT", object: { kind: "NodeProxyOptions", path: `/exec/${NS}/${names.falco}-x7k2p/falco` } },
        expect: "not evaluated",
    },
    {
        move: "LIMIT: --as=<the deployer>",
        request: { user: impersonate(DEPLOYER), group: "apps", resource: "daemonsets", namespace: NS, name: names.falco, operation: "DELETE", oldObject: {} },
        expect: "allow",
    },
    {
        move: "LIMIT: --as=<Falco's service account> with a forged pod-name extra",
        request: {
            user: impersonate(`system:serviceaccount:${NS}:${names.falco}`, [], { "authentication.kubernetes.io/pod-name": [`${names.falco}-x7k2p`] }),
            group: "", resource: "configmaps", namespace: NS, name: names.falco, operation: "UPDATE", object: {}, oldObject: {},
        },
        expect: "allow",
    },
];

const outcome = (r: Row): Expect => {
    const d = decide(policy, binding as never, r.request);
    if (!d.selected) return "not evaluated";
    return d.allowed ? "allow" : "deny";
};

describe("cluster protection policy", () => {
    it("is a v1 ValidatingAdmissionPolicy that fails closed, bound with Deny", () => {
        assert.equal(policy.apiVersion, "admissionregistration.k8s.io/v1");
        assert.equal(policy.kind, "ValidatingAdmissionPolicy");
        assert.equal(binding.kind, "ValidatingAdmissionPolicyBinding");
        assert.equal(spec.failurePolicy, "Fail");
        assert.equal(binding.spec.policyName, policy.metadata.name);
        assert.ok(binding.spec.validationActions.includes("Deny"));
        assert.ok(!binding.spec.validationActions.includes("Warn" as never), "Deny and Warn cannot be combined");
    });

    it("passes the API server's validation of the objects (variable names, rules, actions) and every expression parses", () => {
        assert.deepEqual(policyProblems(policy, binding as never), []);
        // The check can fail: "namespace" is a reserved CEL word, refused as a variable name.
        const bad = structuredClone(policy);
        bad.spec.variables = [{ name: "namespace", expression: "request.namespace" }, ...bad.spec.variables];
        bad.spec.validations = [{ ...bad.spec.validations[0], expression: "variables.later && (" }];
        const problems = policyProblems(bad, binding as never);
        assert.ok(problems.some((p) => p.startsWith("variables namespace: not a CEL identifier")), problems.join("; "));
        assert.ok(problems.some((p) => p.startsWith("does not parse")), problems.join("; "));
    });

    it("type-checks against the variables the API server declares (request typed, object/oldObject dyn)", () => {
        assert.deepEqual(typeProblems(policy), []);
        const bad = structuredClone(policy);
        bad.spec.variables = [...bad.spec.variables, { name: "wrong", expression: 'request.userInfo.groups + "x"' }];
        bad.spec.validations = [{ ...bad.spec.validations[0], expression: "variables.requestName" }];
        const problems = typeProblems(bad);
        assert.ok(problems.some((p) => p.startsWith("variables wrong")), problems.join("; "));
        assert.ok(problems.some((p) => p.includes("must be bool, is string")), problems.join("; "));
    });

    describe("on each move, as the API server presents it to admission (CEL evaluated by cel-js)", () => {
        for (const r of ROWS)
            it(`${r.expect}: ${r.move}`, () => {
                const d = decide(policy, binding as never, r.request);
                // A denial must come from the rule, not from an expression that broke on this request.
                if (d.selected && !d.allowed) {
                    assert.equal(d.error, undefined, `evaluation error: ${d.error}`);
                    assert.match(d.message ?? "", new RegExp(`^falco-nodes protection: ${r.request.operation} ${r.request.resource}`), "the denial says what and why");
                }
                assert.equal(outcome(r), r.expect);
            });
    });

    it("every optional request field is read through has(): an unguarded read errors, and an error denies", () => {
        // The model itself: the same ClusterRole update is denied by a policy that reads request.namespace bare.
        const bare = structuredClone(policy);
        bare.spec.variables = bare.spec.variables.map((v) => (v.name === "requestNamespace" ? { ...v, expression: "request.namespace" } : v));
        const row = ROWS.find((r) => r.move.startsWith("someone else's ClusterRole"))!;
        const d = decide(bare, binding as never, row.request);
        assert.ok(d.selected && !d.allowed && /namespace/.test(d.error ?? ""), JSON.stringify(d));
    });

    it("the rows would catch a policy that exempts every service account of the namespace (the old rule)", () => {
        const old = structuredClone(policy);
        old.spec.variables = old.spec.variables.map((v) =>
            v.name === "falcoServiceAccount" ? { ...v, expression: `variables.username.startsWith("system:serviceaccount:${NS}:")` } : v,
        );
        const failing = ROWS.filter((r) => r.expect === "deny" && decide(old, binding as never, r.request).selected && (decide(old, binding as never, r.request) as { allowed: boolean }).allowed);
        assert.ok(failing.some((r) => r.move.includes("--as-group=system:masters")), failing.map((r) => r.move).join("; "));
    });

    it("lists the workload controllers, the scheduler and pod GC among pod deleters, and no admin group anywhere", () => {
        for (const c of [...POD_CREATORS, "system:kube-scheduler"]) assert.ok((POD_DELETERS as readonly string[]).includes(c), c);
        const all = spec.variables.map((v) => v.expression).join("\n");
        for (const c of CONTROLLER_IDENTITIES) assert.ok(all.includes(JSON.stringify(c)), c);
        assert.ok(!all.includes("system:masters"));
        assert.equal(spec.validations[0].reason, "Forbidden");
        assert.match(spec.validations[0].messageExpression, /deployer identity/);
    });

    it("matches subresources that change workloads explicitly, never status or admission configuration", () => {
        const resources = spec.matchConstraints.resourceRules.flatMap((r) => r.resources);
        for (const r of ["deployments/scale", "statefulsets/scale", "serviceaccounts/token", "pods/exec", "pods/attach", "pods/ephemeralcontainers"])
            assert.ok(resources.includes(r), r);
        assert.ok(resources.every((r) => !r.endsWith("/status") && !r.includes("*")));
        assert.ok(spec.matchConstraints.resourceRules.every((r) => !r.apiGroups.includes("admissionregistration.k8s.io")));
    });

    it("scopes namespaced objects to Falco's namespace through the binding", () => {
        assert.deepEqual(binding.spec.matchResources.namespaceSelector.matchExpressions, [
            { key: "kubernetes.io/metadata.name", operator: "In", values: [NS] },
        ]);
        assert.equal(falcoFullname("sec"), names.falco);
    });

    it("works with only a group exempt (an empty user list is valid CEL) and still denies others", () => {
        const p = renderProtection(resolveClusterSettings({ protection: { exemptGroups: ["ops"] } }));
        assert.equal(p.policy.spec.variables.find((v) => v.name === "exemptUser")?.expression, "variables.username in []");
        const del: AdmissionAttributes = { user: admin, group: "apps", resource: "daemonsets", namespace: "falco", name: "falco", operation: "DELETE", oldObject: {} };
        assert.equal((decide(p.policy, p.binding as never, del) as { allowed: boolean }).allowed, false);
        assert.deepEqual(decide(p.policy, p.binding as never, { ...del, user: { username: "x", groups: ["ops"] } }), { selected: true, allowed: true });
    });
});
