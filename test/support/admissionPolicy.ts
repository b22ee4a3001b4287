/**
 * A model of kube-apiserver running one ValidatingAdmissionPolicy and its binding on one request, with the real CEL
 * expressions evaluated by a CEL implementation (@marcbachmann/cel-js), not by hand. What it models, and where:
 *
 * - Which requests reach the policy at all: admission configuration objects never do
 *   (IsExemptAdmissionConfigurationResource, staging/src/k8s.io/apiserver/pkg/admission/plugin/webhook/predicates/
 *   rules/rules.go); `matchConstraints.resourceRules` match group, version, operation and `resource` or
 *   `resource/subresource` exactly, `*` as a wildcard (Matcher.resource in the same file); the binding's
 *   namespaceSelector filters namespaced requests by their namespace's labels, matches a Namespace object by its own
 *   labels and never filters other cluster-scoped objects (GetNamespaceLabels / MatchNamespaceSelector,
 *   staging/src/k8s.io/apiserver/pkg/admission/plugin/webhook/predicates/namespace/matcher.go). Namespaces carry
 *   `kubernetes.io/metadata.name` (set by the API server since 1.21).
 * - The `request` variable: the admission.k8s.io/v1 AdmissionRequest as its JSON form, so `omitempty` fields that
 *   are empty are absent and reading them is an error (UnstructuredReflectToVal,
 *   staging/src/k8s.io/apiserver/pkg/cel/common/, bound in admission/plugin/cel/activation.go). `namespace` is empty
 *   for cluster-scoped objects including Namespaces (rootScopeNaming, endpoints/handlers/rest.go). `object` and
 *   `oldObject` are null when the operation has none (CREATE has no oldObject, DELETE no object); CONNECT's object is
 *   the options (PodExecOptions). `namespaceObject` is the namespace (null for cluster-scoped requests); `params` is
 *   null (the policy has no paramKind); `authorizer` is not provided (the policy does not use it, and the model
 *   throws if an expression names it).
 * - Impersonation: the impersonation filter has already replaced the user
 *   (staging/src/k8s.io/apiserver/pkg/endpoints/filters/impersonation/impersonation.go): `userInfo` is the
 *   impersonated name, the groups asked for (plus `system:authenticated` unless `system:unauthenticated` was asked
 *   for), the `Impersonate-Extra-*` values asked for and nothing else. `impersonate()` below builds exactly that.
 * - Variables are evaluated lazily, in order, each at most once; an error in one surfaces where it is read
 *   (composition.go). A validation that errors, or is not `true`, decides by `failurePolicy` / denies
 *   (policyDecisionActionForError and Validate, admission/plugin/policy/validating/validator.go).
 */
import { Environment, evaluate, parse } from "@marcbachmann/cel-js";

export interface UserInfo {
    username: string;
    uid?: string;
    groups?: string[];
    extra?: Record<string, string[]>;
}

/** A request as the API server has it before building the AdmissionRequest. */
export interface AdmissionAttributes {
    user: UserInfo;
    group: string;
    version?: string;
    resource: string;
    subresource?: string;
    /** Empty for cluster-scoped objects. */
    namespace?: string;
    name?: string;
    operation: "CREATE" | "UPDATE" | "DELETE" | "CONNECT";
    object?: Record<string, unknown> | null;
    oldObject?: Record<string, unknown> | null;
}

export interface PolicyLike {
    spec: {
        failurePolicy: "Fail" | "Ignore";
        matchConstraints: { resourceRules: { apiGroups: string[]; apiVersions: string[]; resources: string[]; operations: string[]; scope?: string }[] };
        variables: { name: string; expression: string }[];
        validations: { expression: string; messageExpression?: string; reason?: string }[];
    };
}
export interface BindingLike {
    spec: { validationActions: string[]; matchResources: { namespaceSelector: { matchExpressions: { key: string; operator: string; values: string[] }[] } } };
}

/** Who a caller becomes with `--as`, `--as-group`, `--as-user-extra` (WithImpersonation). */
export function impersonate(username: string, groups: string[] = [], extra: Record<string, string[]> = {}): UserInfo {
    const sa = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(username);
    let g = [...groups];
    // Without --as-group, a service account gets its fixed groups (serviceaccount.MakeGroupNames).
    if (sa && groups.length === 0) g = ["system:serviceaccounts", `system:serviceaccounts:${sa[1]}`];
    if (username !== "system:anonymous" && !g.includes("system:authenticated") && !g.includes("system:unauthenticated"))
        g.push("system:authenticated");
    return { username, groups: g, ...(Object.keys(extra).length ? { extra } : {}) };
}

/** A service account's own token from a pod (what the kubelet mounts): pkg/serviceaccount/util.go UserInfo. */
export function podServiceAccount(namespace: string, name: string, podName: string): UserInfo {
    return {
        username: `system:serviceaccount:${namespace}:${name}`,
        uid: "00000000-0000-0000-0000-0000000000aa",
        groups: ["system:serviceaccounts", `system:serviceaccounts:${namespace}`, "system:authenticated"],
        extra: { "authentication.kubernetes.io/pod-name": [podName], "authentication.kubernetes.io/pod-uid": ["11111111-2222-3333-4444-555555555555"] },
    };
}

/** JSON `omitempty`: drop empty strings, lists and maps, as encoding/json does for the AdmissionRequest's fields. */
function omitEmpty<T extends Record<string, unknown>>(o: T): Partial<T> {
    return Object.fromEntries(
        Object.entries(o).filter(([, v]) => !(v === undefined || v === "" || (Array.isArray(v) && v.length === 0) || (v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length === 0))),
    ) as Partial<T>;
}

const KINDS: Record<string, string> = { pods: "Pod", namespaces: "Namespace", configmaps: "ConfigMap" };

/** The CEL `request` variable for these attributes (CreateAdmissionRequest, as JSON). */
export function admissionRequest(a: AdmissionAttributes): Record<string, unknown> {
    const gvr = { group: a.group, version: a.version ?? "v1", resource: a.resource };
    const gvk = { group: a.group, version: a.version ?? "v1", kind: KINDS[a.resource] ?? a.resource };
    return omitEmpty({
        kind: gvk,
        resource: gvr,
        subResource: a.subresource ?? "",
        requestKind: gvk,
        requestResource: gvr,
        requestSubResource: a.subresource ?? "",
        name: a.name ?? "",
        namespace: a.namespace ?? "",
        operation: a.operation,
        userInfo: omitEmpty({ username: a.user.username, uid: a.user.uid ?? "", groups: a.user.groups ?? [], extra: a.user.extra ?? {} }),
    });
}

const ADMISSION_CONFIGURATION_KINDS = ["validatingwebhookconfigurations", "mutatingwebhookconfigurations", "validatingadmissionpolicies", "validatingadmissionpolicybindings"];

/** Does the policy's matchConstraints plus the binding's namespaceSelector select this request? */
export function selects(policy: PolicyLike, binding: BindingLike, a: AdmissionAttributes): boolean {
    if (a.group === "admissionregistration.k8s.io" && ADMISSION_CONFIGURATION_KINDS.includes(a.resource)) return false;
    const target = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
    const ruleHit = policy.spec.matchConstraints.resourceRules.some((r) => {
        const group = r.apiGroups.includes("*") || r.apiGroups.includes(a.group);
        const version = r.apiVersions.includes("*") || r.apiVersions.includes(a.version ?? "v1");
        const op = r.operations.includes("*") || r.operations.includes(a.operation);
        const res = r.resources.some((x) => {
            const [res, sub = ""] = x.split("/");
            return (res === "*" || res === a.resource) && (sub === "*" || sub === (a.subresource ?? ""));
        });
        return group && version && op && res;
    });
    if (!ruleHit) return false;
    const nsName = a.namespace || (a.resource === "namespaces" && !a.subresource ? a.name : undefined);
    if (!nsName) return true; // cluster-scoped, not a Namespace: never filtered by namespace
    const labels: Record<string, string> = { "kubernetes.io/metadata.name": nsName };
    return binding.spec.matchResources.namespaceSelector.matchExpressions.every((m) => {
        if (m.operator !== "In") throw new Error(`the model does not know selector operator ${m.operator}`);
        return m.key in labels && m.values.includes(labels[m.key]);
    });
}

export type Decision = { selected: false } | { selected: true; allowed: boolean; error?: string; message?: string };

/** What the API server decides for this request: not selected, admitted, or denied (and why, when it errored). */
export function decide(policy: PolicyLike, binding: BindingLike, a: AdmissionAttributes): Decision {
    if (!selects(policy, binding, a)) return { selected: false };
    const request = admissionRequest(a);
    const context: Record<string, unknown> = {
        request,
        object: a.object ?? null,
        oldObject: a.oldObject ?? null,
        params: null,
        namespaceObject: a.namespace ? { metadata: { name: a.namespace, labels: { "kubernetes.io/metadata.name": a.namespace } } } : null,
    };
    const cache = new Map<string, { value?: unknown; error?: Error }>();
    const variables: Record<string, unknown> = {};
    for (const v of policy.spec.variables)
        Object.defineProperty(variables, v.name, {
            enumerable: true,
            get() {
                if (!cache.has(v.name)) {
                    try {
                        cache.set(v.name, { value: run(v.expression) });
                    } catch (e) {
                        cache.set(v.name, { error: e as Error });
                    }
                }
                const r = cache.get(v.name)!;
                if (r.error) throw r.error;
                return r.value;
            },
        });
    context.variables = variables;
    function run(expression: string): unknown {
        if (/\bauthorizer\b/.test(expression)) throw new Error("the model provides no authorizer variable");
        return evaluate(expression, context);
    }
    const failClosed = policy.spec.failurePolicy !== "Ignore";
    const deny = binding.spec.validationActions.includes("Deny");
    for (const val of policy.spec.validations) {
        let result: unknown;
        try {
            result = run(val.expression);
        } catch (e) {
            if (failClosed && deny) return { selected: true, allowed: false, error: (e as Error).message };
            continue;
        }
        if (result !== true && deny) {
            // validator.go: the messageExpression's string when it evaluates to one, else the expression.
            let message: string | undefined;
            try {
                const m = val.messageExpression === undefined ? undefined : run(val.messageExpression);
                if (typeof m === "string" && m.trim() && !m.includes("\n")) message = m.trim();
            } catch {
                message = undefined;
            }
            return { selected: true, allowed: false, message: message ?? `failed expression: ${val.expression}` };
        }
    }
    return { selected: true, allowed: true };
}

// pkg/apis/admissionregistration/validation/validation.go: isCELIdentifier (variable names), the operations and
// failure policies it accepts, `resource/subresource` with at most one "/", validation actions.
const CEL_IDENT = /^[_a-zA-Z][_a-zA-Z0-9]*$/;
const CEL_RESERVED = ["true", "false", "null", "in", "as", "break", "const", "continue", "else", "for", "function", "if", "import", "let", "loop", "package", "namespace", "return", "var", "void", "while"];
const OPERATIONS = ["*", "CREATE", "UPDATE", "DELETE", "CONNECT"];

/** What the API server's validation of the policy and binding objects would refuse (a subset), plus CEL syntax. */
export function policyProblems(policy: PolicyLike, binding: BindingLike): string[] {
    const problems: string[] = [];
    const seen = new Set<string>();
    for (const v of policy.spec.variables) {
        if (!CEL_IDENT.test(v.name) || CEL_RESERVED.includes(v.name)) problems.push(`variables ${v.name}: not a CEL identifier (or reserved)`);
        if (seen.has(v.name)) problems.push(`variables ${v.name}: duplicate`);
        seen.add(v.name);
    }
    if (!["Fail", "Ignore"].includes(policy.spec.failurePolicy)) problems.push("failurePolicy");
    if (policy.spec.validations.length === 0) problems.push("validations: required");
    for (const r of policy.spec.matchConstraints.resourceRules) {
        for (const op of r.operations) if (!OPERATIONS.includes(op)) problems.push(`operation ${op}`);
        for (const res of r.resources) if (res.split("/").length > 2 || res === "") problems.push(`resource ${res}`);
        if (r.apiGroups.length === 0 || r.apiVersions.length === 0 || r.resources.length === 0) problems.push("empty rule");
    }
    const actions = binding.spec.validationActions;
    if (actions.some((a) => !["Deny", "Warn", "Audit"].includes(a)) || (actions.includes("Deny") && actions.includes("Warn")))
        problems.push(`validationActions ${actions.join(",")}`);
    const expressions = [
        ...policy.spec.variables.map((v) => v.expression),
        ...policy.spec.validations.flatMap((v) => [v.expression, ...(v.messageExpression ? [v.messageExpression] : [])]),
    ];
    for (const e of expressions)
        try {
            parse(e);
        } catch (err) {
            problems.push(`does not parse: ${e}: ${(err as Error).message.split("\n")[0]}`);
        }
    // A variable may only read variables declared before it (composition.go compiles them in order).
    policy.spec.variables.forEach((v, i) => {
        for (const m of v.expression.matchAll(/variables\.([_a-zA-Z][_a-zA-Z0-9]*)/g))
            if (!policy.spec.variables.slice(0, i).some((x) => x.name === m[1])) problems.push(`variables ${v.name}: reads ${m[1]} before it is declared`);
    });
    return problems;
}

/** The `request` variable's declared type: BuildRequestType in staging/src/k8s.io/apiserver/pkg/admission/plugin/cel/compile.go. */
const GVK = { group: "string", version: "string", kind: "string" };
const GVR = { group: "string", version: "string", resource: "string" };
const REQUEST_TYPE = {
    kind: GVK,
    resource: GVR,
    subResource: "string",
    requestKind: GVK,
    requestResource: GVR,
    requestSubResource: "string",
    name: "string",
    namespace: "string",
    operation: "string",
    userInfo: { username: "string", uid: "string", groups: "list<string>", extra: "map<string, list<string>>" },
    dryRun: "bool",
    options: "dyn",
};

/**
 * Type-check every expression as the API server compiles them (createEnvForOpts in compile.go: `object`,
 * `oldObject`, `params` dyn; `request` typed; `variables` typed by what each earlier variable returns): variables of
 * any type, validations bool, messageExpressions string. Returns the problems.
 */
export function typeProblems(policy: PolicyLike): string[] {
    const problems: string[] = [];
    const varTypes: Record<string, string> = {};
    const env = () =>
        new Environment()
            .registerVariable({ name: "request", schema: REQUEST_TYPE } as never)
            .registerVariable("object", "dyn")
            .registerVariable("oldObject", "dyn")
            .registerVariable("params", "dyn")
            .registerVariable("namespaceObject", "dyn")
            .registerVariable({ name: "variables", schema: { ...varTypes } } as never);
    const check = (what: string, expression: string, want?: string) => {
        let r: { valid: boolean; type?: string; error?: Error };
        try {
            r = env().check(expression) as typeof r;
        } catch (e) {
            r = { valid: false, error: e as Error };
        }
        if (!r.valid) problems.push(`${what}: ${(r.error?.message ?? "type error").split("\n")[0]}`);
        else if (want && r.type !== want) problems.push(`${what}: must be ${want}, is ${r.type}`);
        return r.valid ? r.type : undefined;
    };
    for (const v of policy.spec.variables) varTypes[v.name] = check(`variables ${v.name}`, v.expression) ?? "dyn";
    for (const v of policy.spec.validations) {
        check(`validation ${v.expression}`, v.expression, "bool");
        if (v.messageExpression) check(`messageExpression ${v.messageExpression}`, v.messageExpression, "string");
    }
    return problems;
}
