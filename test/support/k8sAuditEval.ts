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
export function extract(e: AuditEvent, field: string): string | undefined {
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
    if (!(field in value)) throw new Error(`the model does not extract ${field}`);
    return value[field] as string | undefined;
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
