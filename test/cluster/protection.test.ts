import { strict as assert } from "assert";
import { falcoFullname } from "../../components/cluster/names";
import { CONTROLLER_IDENTITIES, renderProtection } from "../../components/cluster/protection";
import { resolveClusterSettings, type FalcoClusterSettings } from "../../components/cluster/settings";

const settings: FalcoClusterSettings = {
    namespace: "runtime-security",
    releaseName: "sec",
    priorityClass: { name: "sensor" },
    protection: {
        exemptUsers: ["arn:aws:sts::123456789012:assumed-role/deployer/ci", "system:serviceaccount:ci:pulumi"],
        exemptGroups: ["falco-breakglass"],
    },
};
const { policy, binding } = renderProtection(resolveClusterSettings(settings));
const spec = policy.spec;
const variable = (name: string) => {
    const v = spec.variables.find((x) => x.name === name);
    assert.ok(v, `variable ${name}`);
    return v.expression;
};

/** The operations the policy matches for a resource (`group/resource`). */
function operationsFor(groupResource: string): string[] {
    const [group, resource] = groupResource.includes("/") && !groupResource.startsWith("pods/")
        ? [groupResource.slice(0, groupResource.indexOf("/")), groupResource.slice(groupResource.indexOf("/") + 1)]
        : ["", groupResource];
    return spec.matchConstraints.resourceRules
        .filter((r) => r.apiGroups.includes(group) && r.resources.includes(resource))
        .flatMap((r) => r.operations);
}

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

    it("matches changes and deletions of Falco's workloads, config, secrets, RBAC and namespace", () => {
        for (const r of [
            "apps/daemonsets", "apps/deployments", "apps/statefulsets",
            "configmaps", "secrets", "serviceaccounts", "services", "namespaces",
            "rbac.authorization.k8s.io/roles", "rbac.authorization.k8s.io/rolebindings",
            "rbac.authorization.k8s.io/clusterroles", "rbac.authorization.k8s.io/clusterrolebindings",
            "scheduling.k8s.io/priorityclasses",
        ])
            assert.deepEqual(operationsFor(r).sort(), ["DELETE", "UPDATE"], r);
        assert.deepEqual(operationsFor("pods/exec"), ["CONNECT"]);
        assert.deepEqual(operationsFor("pods/attach"), ["CONNECT"]);
        assert.deepEqual(operationsFor("pods/ephemeralcontainers"), ["UPDATE"]);
    });

    it("leaves creation and status subresources alone, so installs and controllers keep working", () => {
        const rules = spec.matchConstraints.resourceRules;
        assert.ok(rules.every((r) => !r.operations.includes("CREATE") && !r.operations.includes("*")));
        assert.ok(rules.every((r) => r.resources.every((res) => !res.endsWith("/status") && !res.includes("*"))));
        // Kubernetes never runs admission policies on policy objects: claiming to cover them would mislead.
        assert.ok(rules.every((r) => !r.apiGroups.includes("admissionregistration.k8s.io")));
    });

    it("denies unless the caller is an exempt identity, Falco's own service account or a housekeeping controller", () => {
        assert.equal(spec.validations.length, 1);
        const rule = spec.validations[0].expression;
        assert.equal(
            rule,
            "!variables.protectedObject || variables.exemptUser || variables.exemptGroup || variables.falcoServiceAccount || variables.controller",
        );
        assert.equal(
            variable("exemptUser"),
            'request.userInfo.username in ["arn:aws:sts::123456789012:assumed-role/deployer/ci", "system:serviceaccount:ci:pulumi"]',
        );
        assert.match(variable("exemptGroup"), /request\.userInfo\.groups\.exists\(g, g in \["falco-breakglass"\]\)/);
        assert.equal(variable("falcoServiceAccount"), 'request.userInfo.username.startsWith("system:serviceaccount:runtime-security:")');
        for (const c of CONTROLLER_IDENTITIES) assert.ok(variable("controller").includes(JSON.stringify(c)), c);
        assert.ok(!variable("controller").includes("system:masters"));
        assert.equal(spec.validations[0].reason, "Forbidden");
        assert.match(spec.validations[0].messageExpression, /deployer identity/);
    });

    it("scopes protection to Falco's namespace and the chart's cluster-scoped objects by name", () => {
        const p = variable("protectedObject");
        assert.ok(p.includes('request.namespace == "runtime-security"'));
        assert.ok(p.includes('request.resource.resource == "namespaces" && request.name == "runtime-security"'));
        const full = falcoFullname("sec");
        assert.ok(p.includes(`request.name == "${full}" || request.name.startsWith("${full}-")`), "ClusterRoles named after the release");
        assert.ok(p.includes('request.resource.resource == "priorityclasses" && request.name == "sensor"'));
        assert.deepEqual(binding.spec.matchResources.namespaceSelector.matchExpressions, [
            { key: "kubernetes.io/metadata.name", operator: "In", values: ["runtime-security"] },
        ]);
    });

    it("works with only a group exempt (an empty user list is valid CEL)", () => {
        const p = renderProtection(resolveClusterSettings({ protection: { exemptGroups: ["ops"] } }));
        assert.equal(p.policy.spec.variables.find((v) => v.name === "exemptUser")?.expression, "request.userInfo.username in []");
    });
});
