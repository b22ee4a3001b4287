/**
 * The k8saudit plugin's side of the rule model: fields extracted from an audit.k8s.io/v1 Event as the plugin does
 * (falcosecurity/plugins `plugins/k8saudit/pkg/k8saudit/extract.go`: `ka.user.name` is `user.username`,
 * `ka.target.*` come from `objectRef`, ...), evaluated by the condition model in falcoCondition.ts. A field the
 * model does not extract throws, so a rule using more than this model knows fails its test.
 */
import { Extractor, allMatches, firstMatch } from "./falcoCondition";

/** An audit.k8s.io/v1 Event, as much of it as the rules look at. */
export interface AuditEvent {
    stage: string;
    verb: string;
    requestURI?: string;
    user: { username: string; groups?: string[] };
    impersonatedUser?: { username: string };
    objectRef?: { resource?: string; subresource?: string; namespace?: string; name?: string; apiGroup?: string };
    responseStatus?: { code: number };
    /** The request body, for `ka.req.*` and `json.value[...]` fields of upstream rules. */
    requestObject?: Record<string, unknown>;
}

/** The k8saudit plugin's value for `field` on `e` (undefined when the event lacks it). */
export function extract(e: AuditEvent, field: string): string | string[] | undefined {
    const param = /^ka\.uri\.param\[(.+)\]$/.exec(field);
    if (param) return e.requestURI ? new URL(e.requestURI, "http://x").searchParams.get(param[1]) ?? undefined : undefined;
    const value: Record<string, unknown> = {
        "ka.stage": e.stage,
        "ka.verb": e.verb,
        "ka.uri": e.requestURI,
        "ka.user.name": e.user.username,
        "ka.impuser.name": e.impersonatedUser?.username,
        "ka.target.resource": e.objectRef?.resource,
        "ka.target.subresource": e.objectRef?.subresource,
        "ka.target.namespace": e.objectRef?.namespace,
        "ka.target.name": e.objectRef?.name,
        "ka.response.code": e.responseStatus === undefined ? undefined : String(e.responseStatus.code),
    };
    if (field in value) return value[field] as string | undefined;
    const req = requestFields(e, field);
    if (req !== NOT_A_REQUEST_FIELD) return req;
    throw new Error(`the model does not extract ${field}`);
}

const NOT_A_REQUEST_FIELD = Symbol("not a request field");

/** A JSON pointer (RFC 6901) into the event, as the json plugin's `json.value[...]` / `jevt.value[...]` read it. */
function pointer(e: AuditEvent, ptr: string): unknown {
    let v: unknown = e;
    for (const part of ptr.split("/").slice(1).map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"))) {
        if (v === null || typeof v !== "object") return undefined;
        v = (v as Record<string, unknown>)[part];
    }
    return v;
}

const str = (v: unknown): string | undefined => (v === undefined || v === null ? undefined : typeof v === "object" ? JSON.stringify(v) : String(v));

/**
 * The fields upstream's k8s_audit_rules.yaml reads from the request (k8saudit plugin, pkg/k8saudit/extract.go): list
 * fields over the pod's containers and volumes, the service type, the ConfigMap's data, the binding's role, the
 * role's rules. Values as the plugin renders them (booleans as "true"/"false", absent when the request lacks them).
 */
function requestFields(e: AuditEvent, field: string): string | string[] | undefined | typeof NOT_A_REQUEST_FIELD {
    const ro = (e.requestObject ?? {}) as Record<string, any>;
    const containers: Record<string, any>[] = ro.spec?.containers ?? [];
    const ptr = /^(?:jevt|json)\.value\[(\/.*)\]$/.exec(field);
    if (ptr) return str(pointer(e, ptr[1]));
    switch (field) {
        case "jevt.rawtime":
            return "1";
        case "ka.auth.decision":
            return (e as any).annotations?.["authorization.k8s.io/decision"];
        case "ka.req.pod.containers.image":
            return containers.map((c) => String(c.image));
        case "ka.req.pod.containers.image.repository":
            return containers.map((c) => String(c.image).replace(/[:@].*$/, ""));
        case "ka.req.pod.containers.privileged":
            return containers.map((c) => String(c.securityContext?.privileged ?? false));
        case "ka.req.pod.volumes.hostpath":
            return ((ro.spec?.volumes ?? []) as Record<string, any>[]).filter((v) => v.hostPath).map((v) => String(v.hostPath.path));
        case "ka.req.pod.host_network":
            return ro.spec?.hostNetwork === undefined ? undefined : [String(ro.spec.hostNetwork)];
        case "ka.req.pod.host_pid":
            return ro.spec?.hostPID === undefined ? undefined : [String(ro.spec.hostPID)];
        case "ka.req.pod.host_ipc":
            return ro.spec?.hostIPC === undefined ? undefined : [String(ro.spec.hostIPC)];
        case "ka.req.service.type":
            return ro.spec?.type;
        case "ka.req.configmap.obj":
            return ro.data === undefined ? undefined : JSON.stringify(ro.data);
        case "ka.req.binding.role":
            return ro.roleRef?.name;
        case "ka.req.role.rules.resources":
            return ((ro.rules ?? []) as Record<string, any>[]).flatMap((r) => r.resources ?? []);
        case "ka.req.role.rules.verbs":
            return ((ro.rules ?? []) as Record<string, any>[]).flatMap((r) => r.verbs ?? []);
        default:
            return NOT_A_REQUEST_FIELD;
    }
}

type Item = Record<string, any>;

/** The extractor for one audit event. */
export function auditExtractor(e: AuditEvent): Extractor {
    return (field) => extract(e, field);
}

/** The names of every `k8s_audit` rule in `items` whose condition matches `e` (as `rule_matching: all` reports). */
export function firingRules(items: Item[], e: AuditEvent): string[] {
    return allMatches(items, "k8s_audit", auditExtractor(e));
}

/** The one rule `rule_matching: first` reports for `e`, given the whole loaded set in Falco's load order. */
export function reportedRule(items: Item[], e: AuditEvent): string | undefined {
    return firstMatch(items, "k8s_audit", auditExtractor(e));
}
