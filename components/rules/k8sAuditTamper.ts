/**
 * Tampering with the in-cluster Falco, seen from the host Falco through the Kubernetes audit log (`k8sAudit`):
 * deleting or rewriting its DaemonSet (a nodeSelector that matches no node, a scale to zero), editing its
 * ConfigMaps or Secrets, its RBAC, deleting its namespace, changing the admission policy that protects it, or
 * opening a shell in its pods; and what the admission policy cannot stop: a new admission webhook or policy (it
 * could deny Falco's pods) and commands run through the kubelet API (`nodes/proxy`). The in-cluster Falco cannot
 * report most of these about itself (it is what is being switched off); the host Falco, outside the cluster, can.
 *
 * The file depends on nothing but the k8saudit plugin's fields (`ka.*`) and the json plugin's (`json.*`): its own
 * macros and list, so it loads with or without upstream's k8saudit-rules. Names come from the same helpers
 * FalcoCluster uses (`chartNames`, `CONTROLLER_IDENTITIES`), so the rules watch exactly what the chart creates and
 * the protection policy guards.
 *
 * Limits: the audit log shows a request, not intent. A PATCH shows only the patch body (so `node_selector`/
 * `replicas` in the output are what the request set, if it set them); a request denied by the protection policy
 * is still reported (response code 403), which is wanted: the attempt is the news.
 */
import { CONTROLLER_IDENTITIES, chartNames } from "../shared/names";
import { RuleSetInputs } from "../shared/ruleInputs";
import { FalcoRuleItem, falcoString } from "./types";

export const K8S_AUDIT_SOURCE = "k8s_audit";

export const K8S_TAMPER_MACROS = {
    completed: "falco_nodes_k8s_completed",
    change: "falco_nodes_k8s_change",
    status: "falco_nodes_k8s_status_update",
    trusted: "falco_nodes_k8s_trusted",
    falcoNamespace: "falco_nodes_k8s_in_falco_namespace",
} as const;

export const K8S_TAMPER_LISTS = {
    /** Users whose changes are expected: `k8sAudit.trustedUsers` plus the controllers that finish deletions. */
    trustedUsers: "falco_nodes_k8s_trusted_users",
} as const;

export const K8S_TAMPER_RULES = {
    workload: "Falco workload deleted or changed in Kubernetes",
    config: "Falco ConfigMap or Secret changed in Kubernetes",
    rbac: "Falco RBAC changed in Kubernetes",
    namespace: "Falco namespace deleted or changed in Kubernetes",
    protection: "Falco protection policy changed in Kubernetes",
    exec: "Shell or attach into a Falco pod",
    admission: "Admission webhook or policy created or changed in Kubernetes",
    nodeProxy: "Command run in a pod through the kubelet API (nodes/proxy)",
} as const;

/** Admission configuration: Kubernetes never runs admission on these, so only the audit log can watch them. */
const ADMISSION_CONFIGURATION = [
    "validatingwebhookconfigurations",
    "mutatingwebhookconfigurations",
    "validatingadmissionpolicies",
    "validatingadmissionpolicybindings",
    "mutatingadmissionpolicies",
    "mutatingadmissionpolicybindings",
];

/** Kubelet API paths that run something in a container (pkg/kubelet/server/server.go: /exec, /run, /attach, /portForward). */
const KUBELET_EXEC_PATHS = ["/exec/", "/run/", "/attach/", "/portForward/"];

/**
 * The oldest plugin versions with every field used here (upstream's k8saudit-rules ask for the same): Falco
 * refuses to load the file without one of them, instead of loading rules that can never match.
 */
export const K8S_TAMPER_PLUGIN_REQUIREMENTS = [
    { name: "k8saudit", version: "0.7.0", alternatives: [{ name: "k8saudit-eks", version: "0.4.0" }] },
    { name: "json", version: "0.7.0" },
];

const TAGS = ["falco-nodes", "k8s_audit_tamper", "k8s", "mitre_defense_evasion", "T1562.001"];

/** Who did what to which object, and how the API server answered. */
const WHO_WHAT =
    "user=%ka.user.name groups=%ka.user.groups impersonated=%ka.impuser.name verb=%ka.verb " +
    "resource=%ka.target.resource subresource=%ka.target.subresource namespace=%ka.target.namespace " +
    "name=%ka.target.name response=%ka.response.code reason=%ka.response.reason source_ips=%ka.sourceips " +
    "user_agent=%ka.useragent audit_id=%ka.auditid";

const quoted = (values: readonly string[]) => values.map(falcoString).join(", ");

export function k8sAuditTamperRuleItems(s: RuleSetInputs): FalcoRuleItem[] {
    const k = s.k8sAudit;
    const ns = falcoString(k.falcoNamespace);
    const names = chartNames(k.falcoReleaseName);
    const M = K8S_TAMPER_MACROS;
    const notTrusted = `not ${M.trusted}`;
    const changed = `${M.completed} and ${M.change} and not ${M.status} and ${notTrusted}`;
    const rule = (name: string, desc: string, condition: string[], output: string): FalcoRuleItem => ({
        rule: name,
        desc,
        condition: condition.join("\n"),
        output: `${output} | ${WHO_WHAT}`,
        priority: "CRITICAL",
        source: K8S_AUDIT_SOURCE,
        tags: TAGS,
    });

    return [
        { required_plugin_versions: K8S_TAMPER_PLUGIN_REQUIREMENTS },
        // Once per request, when the API server has answered (long-running requests have other stages too).
        { macro: M.completed, condition: `ka.stage = ${falcoString("ResponseComplete")}` },
        { macro: M.change, condition: `ka.verb in (${quoted(["update", "patch", "delete", "deletecollection"])})` },
        // Controllers report progress through `/status`; that is not a change anyone makes to Falco.
        { macro: M.status, condition: `ka.target.subresource = ${falcoString("status")}` },
        { list: K8S_TAMPER_LISTS.trustedUsers, items: [...new Set([...k.trustedUsers, ...CONTROLLER_IDENTITIES])] },
        { macro: M.trusted, condition: `ka.user.name in (${K8S_TAMPER_LISTS.trustedUsers})` },
        { macro: M.falcoNamespace, condition: `ka.target.namespace = ${ns}` },
        rule(
            K8S_TAMPER_RULES.workload,
            `A DaemonSet, Deployment or StatefulSet in Falco's namespace (${k.falcoNamespace}) was deleted, updated, ` +
                "patched or scaled: the ways to take the in-cluster Falco off nodes (delete it, give it a nodeSelector " +
                "or affinity no node matches, scale Falcosidekick to zero). The output shows the nodeSelector and " +
                "replicas the request set, when it set them.",
            [
                `ka.target.resource in (${quoted(["daemonsets", "deployments", "statefulsets"])})`,
                `and ${M.falcoNamespace}`,
                `and ${changed}`,
            ],
            "Falco workload deleted or changed through the Kubernetes API | " +
                "node_selector=%json.value[/requestObject/spec/template/spec/nodeSelector] " +
                "replicas=%json.value[/requestObject/spec/replicas]",
        ),
        rule(
            K8S_TAMPER_RULES.config,
            `A ConfigMap or Secret in Falco's namespace (${k.falcoNamespace}) was changed or deleted: Falco's ` +
                "configuration and rules, or the outputs' credentials (pointing alerts elsewhere silences them).",
            [`ka.target.resource in (${quoted(["configmaps", "secrets"])})`, `and ${M.falcoNamespace}`, `and ${changed}`],
            "Falco ConfigMap or Secret changed through the Kubernetes API",
        ),
        rule(
            K8S_TAMPER_RULES.rbac,
            `Falco's RBAC was changed or deleted: Roles and RoleBindings in ${k.falcoNamespace}, or ClusterRoles and ` +
                `ClusterRoleBindings whose name contains "${names.falco}". Without its permissions Falco loses its ` +
                "Kubernetes metadata, and an edited binding can hand Falco's service account to someone else.",
            [
                `((ka.target.resource in (${quoted(["roles", "rolebindings"])}) and ${M.falcoNamespace})`,
                ` or (ka.target.resource in (${quoted(["clusterroles", "clusterrolebindings"])}) and ka.target.name contains ${falcoString(names.falco)}))`,
                `and ${changed}`,
            ],
            "Falco RBAC changed through the Kubernetes API",
        ),
        rule(
            K8S_TAMPER_RULES.namespace,
            `Falco's namespace (${k.falcoNamespace}) was deleted or changed: deleting it removes every Falco object at once.`,
            [`ka.target.resource = ${falcoString("namespaces")}`, `and ka.target.name = ${ns}`, `and ${changed}`],
            "Falco namespace deleted or changed through the Kubernetes API",
        ),
        rule(
            K8S_TAMPER_RULES.protection,
            `The admission policy that protects Falco (${names.protectionPolicy}) or its binding was changed or ` +
                "deleted. Kubernetes never applies admission policies to these objects, so this alert is their only guard.",
            [
                `ka.target.resource in (${quoted(["validatingadmissionpolicies", "validatingadmissionpolicybindings"])})`,
                `and ka.target.name in (${quoted([...new Set([names.protectionPolicy, names.protectionBinding])])})`,
                `and ${changed}`,
            ],
            "Falco protection policy changed through the Kubernetes API",
        ),
        rule(
            K8S_TAMPER_RULES.exec,
            `Someone opened (or tried to open) a shell or attached to a container in Falco's namespace ` +
                `(${k.falcoNamespace}): a shell in Falco's privileged container can stop or blind it without changing ` +
                "any object. Reported when the session starts, or when it is refused.",
            [
                `ka.target.resource = ${falcoString("pods")}`,
                `and ka.target.subresource in (${quoted(["exec", "attach"])})`,
                `and ${M.falcoNamespace}`,
                `and (ka.stage = ${falcoString("ResponseStarted")} or (${M.completed} and ka.response.code startswith ${falcoString("4")}))`,
            ],
            "Shell or attach into a Falco pod | command=%ka.uri.param[command] pod=%ka.target.name",
        ),
        rule(
            K8S_TAMPER_RULES.admission,
            "An admission webhook or admission policy was created or changed. Any of them can deny the creation of " +
                "Falco's pods (the deleted pods then never come back) or rewrite them, and Kubernetes never runs " +
                "admission on these objects, so FalcoCluster's protection policy cannot stop it. Check that it does " +
                `not match pods in ${k.falcoNamespace}. (Changes to Falco's own protection policy raise "${K8S_TAMPER_RULES.protection}".) ` +
                "Operators that patch webhooks routinely (cert-manager's cainjector injecting CA bundles) raise it too: " +
                "list them in k8sAudit.trustedUsers if that is noise.",
            [
                `ka.target.resource in (${quoted(ADMISSION_CONFIGURATION)})`,
                `and not ka.target.name in (${quoted([...new Set([names.protectionPolicy, names.protectionBinding])])})`,
                `and ka.verb in (${quoted(["create", "update", "patch"])})`,
                `and ${M.completed} and ${notTrusted}`,
            ],
            "Admission webhook or policy created or changed through the Kubernetes API | kind=%ka.target.resource",
        ),
        rule(
            K8S_TAMPER_RULES.nodeProxy,
            "Someone used the kubelet API through the API server (`nodes/proxy`) to run a command in, attach to or " +
                "port-forward into a container. That path skips the pods/exec admission check and the exec rule, in " +
                `Falco's namespace (${k.falcoNamespace}) as anywhere. Reads such as metrics scrapes are not reported. ` +
                "Direct calls to a kubelet's port 10250 never reach the API server and are not seen at all.",
            [
                `ka.target.resource = ${falcoString("nodes")}`,
                `and ka.target.subresource = ${falcoString("proxy")}`,
                `and (${KUBELET_EXEC_PATHS.map((p) => `ka.uri contains ${falcoString(p)}`).join(" or ")})`,
                `and (ka.stage = ${falcoString("ResponseStarted")} or (${M.completed} and ka.response.code startswith ${falcoString("4")}))`,
            ],
            "Command run through the kubelet API | uri=%ka.uri node=%ka.target.name",
        ),
    ];
}
