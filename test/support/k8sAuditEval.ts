/**
 * A small model of Falco evaluating `k8s_audit` rule conditions against a Kubernetes audit event, enough to test
 * what our tamper rules match: `and`/`or`/`not`, parentheses, macros, lists, and the operators `=`, `!=`, `in`,
 * `contains`, `startswith`, `exists`. Fields are extracted from the audit.k8s.io/v1 Event as the k8saudit plugin
 * does (`ka.user.name` is `user.username`, `ka.target.*` come from `objectRef`, ...). As in Falco, a comparison on
 * a field the event lacks is false. Anything else in a condition throws, so a rule using more than this model
 * knows fails its test instead of passing by accident.
 */
import { tokenizeCondition } from "./falcoReference";

/** An audit.k8s.io/v1 Event, as much of it as the rules look at. */
export interface AuditEvent {
    stage: string;
    verb: string;
    requestURI?: string;
    user: { username: string; groups?: string[] };
    impersonatedUser?: { username: string };
    objectRef?: { resource?: string; subresource?: string; namespace?: string; name?: string; apiGroup?: string };
    responseStatus?: { code: number };
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

interface Rules {
    macros: Map<string, string>;
    lists: Map<string, string[]>;
}

const unquote = (t: string) => (/^["']/.test(t) ? t.slice(1, -1) : t);

/** Does `condition` match `e`, given the file's macros and lists? */
export function matches(condition: string, e: AuditEvent, rules: Rules): boolean {
    const tokens = tokenizeCondition(condition);
    let i = 0;
    const peek = () => tokens[i];
    const next = () => tokens[i++];
    const expect = (t: string) => {
        if (next() !== t) throw new Error(`expected ${t} in: ${condition}`);
    };

    const listValues = (): string[] => {
        expect("(");
        const out: string[] = [];
        while (peek() !== ")") {
            const t = next();
            if (t === ",") continue;
            if (t === undefined) throw new Error(`unclosed list in: ${condition}`);
            const list = rules.lists.get(t);
            out.push(...(list ?? [unquote(t)]));
        }
        expect(")");
        return out;
    };

    const primary = (): boolean => {
        const t = next();
        if (t === "(") {
            const v = or();
            expect(")");
            return v;
        }
        if (t === "not") return !primary();
        if (rules.macros.has(t)) return matches(rules.macros.get(t)!, e, rules);
        if (!t?.includes(".")) throw new Error(`unknown term ${t} in: ${condition}`);
        const value = extract(e, t);
        const op = next();
        if (op === "exists") return value !== undefined;
        if (op === "in") {
            const values = listValues();
            return value !== undefined && values.includes(value);
        }
        const operand = unquote(next());
        if (value === undefined) return false;
        switch (op) {
            case "=":
                return value === operand;
            case "!=":
                return value !== operand;
            case "contains":
                return value.includes(operand);
            case "startswith":
                return value.startsWith(operand);
            default:
                throw new Error(`the model does not know operator ${op} in: ${condition}`);
        }
    };
    const and = (): boolean => {
        let v = primary();
        while (peek() === "and") {
            next();
            const r = primary();
            v = v && r;
        }
        return v;
    };
    const or = (): boolean => {
        let v = and();
        while (peek() === "or") {
            next();
            const r = and();
            v = v || r;
        }
        return v;
    };
    const result = or();
    if (i !== tokens.length) throw new Error(`trailing tokens from ${tokens[i]} in: ${condition}`);
    return result;
}

/** The names of the rules (items with `rule`) whose condition matches `e`. */
export function firingRules(items: Record<string, any>[], e: AuditEvent): string[] {
    const rules: Rules = {
        macros: new Map(items.filter((x) => x.macro).map((x) => [x.macro, x.condition])),
        lists: new Map(items.filter((x) => x.list).map((x) => [x.list, (x.items as unknown[]).map(String)])),
    };
    return items.filter((x) => x.rule && matches(x.condition, e, rules)).map((x) => x.rule as string);
}
