/**
 * A model of Falco evaluating rule conditions, for any event source: the grammar of falcosecurity/libs
 * `userspace/libsinsp/filter/parser.cpp` (`parser::parse_or` > `parse_and` > `parse_not` > `parse_check`: `or` binds
 * loosest, `not` tightest, parentheses, macro references, list references inside `(...)` value lists), the rule
 * loader's exception compilation (falcosecurity/falco `userspace/engine/rule_loader_compiler.cpp`,
 * `build_rule_exception_infos`: each exception becomes `and not ((f1 cmp v1 and f2 cmp v2) or ...)`), and the
 * engine's `rule_matching: first` (`userspace/engine/evttype_index_ruleset.cpp`, `run`: the first rule in load order
 * whose filter matches the event is the only one reported).
 *
 * No npm package parses Falco's condition language, hence this model. Operators: `=`/`==`, `!=`, `<`, `<=`, `>`,
 * `>=`, `contains`, `icontains`, `startswith`, `endswith`, `in`, `intersects`, `pmatch`, `exists`. As in Falco, a
 * comparison on a field the event does not have is false (and `not` of it true). Anything else throws, so a rule
 * using more than the model knows fails its test instead of passing by accident.
 */
import { tokenizeCondition } from "./falcoReference";

/** A field's value for one event: a string, several (list fields such as `ka.user.groups`), or absent. */
export type FieldValue = string | string[] | undefined;
export type Extractor = (field: string) => FieldValue;

export interface RuleDefs {
    macros: Map<string, string>;
    lists: Map<string, string[]>;
}

const unquote = (t: string) => (/^["']/.test(t) ? t.slice(1, -1) : t);
const asList = (v: FieldValue): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
const numeric = (s: string) => /^-?\d+$/.test(s);

function compare(op: string, value: FieldValue, operand: string): boolean {
    if (value === undefined) return false;
    const values = asList(value);
    const one = (v: string): boolean => {
        switch (op) {
            case "=":
            case "==":
                return v === operand;
            case "!=":
                return v !== operand;
            case "contains":
                return v.includes(operand);
            case "icontains":
                return v.toLowerCase().includes(operand.toLowerCase());
            case "startswith":
                return v.startsWith(operand);
            case "endswith":
                return v.endsWith(operand);
            case "<":
            case "<=":
            case ">":
            case ">=": {
                if (!numeric(v) || !numeric(operand)) throw new Error(`the model compares only integers with ${op}: ${v} ${op} ${operand}`);
                const a = Number(v);
                const b = Number(operand);
                return op === "<" ? a < b : op === "<=" ? a <= b : op === ">" ? a > b : a >= b;
            }
            default:
                throw new Error(`the model does not know operator ${op}`);
        }
    };
    return values.some(one);
}

/** Does `condition` match the event `extract` describes, given the loaded macros and lists? */
export function matches(condition: string, extract: Extractor, defs: RuleDefs): boolean {
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
            const list = defs.lists.get(t);
            out.push(...(list ?? [unquote(t)]));
        }
        expect(")");
        return out;
    };

    const check = (): boolean => {
        const t = next();
        if (t === "(") {
            const v = or();
            expect(")");
            return v;
        }
        if (defs.macros.has(t)) return matches(defs.macros.get(t)!, extract, defs);
        if (!t?.includes(".")) throw new Error(`unknown term ${t} in: ${condition}`);
        const value = extract(t);
        const op = next();
        if (op === "exists") return value !== undefined;
        if (op === "in" || op === "intersects" || op === "pmatch") {
            const values = listValues();
            if (value === undefined) return false;
            if (op === "pmatch")
                return asList(value).some((v) => values.some((p) => v === p || v.startsWith(p.endsWith("/") ? p : `${p}/`)));
            return asList(value).some((v) => values.includes(v));
        }
        const operand = next();
        if (operand === undefined) throw new Error(`missing operand after ${op} in: ${condition}`);
        return compare(op, value, unquote(operand));
    };
    const not = (): boolean => {
        if (peek() === "not") {
            next();
            return !not();
        }
        return check();
    };
    const and = (): boolean => {
        let v = not();
        while (peek() === "and") {
            next();
            const r = not();
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

type Item = Record<string, any>;

/** An exception's tuples as Falco compiles them: the event is excepted when every field of one tuple compares true. */
export function excepted(rule: Item, extract: Extractor, defs: RuleDefs): boolean {
    for (const ex of (rule.exceptions ?? []) as Item[]) {
        const fields: string[] = Array.isArray(ex.fields) ? ex.fields : [ex.fields];
        const comps: string[] = ex.comps ?? fields.map(() => "=");
        for (const tuple of (ex.values ?? []) as unknown[][]) {
            const all = fields.every((f, k) => {
                const want = tuple[k];
                const op = comps[k];
                if (op === "in" || op === "intersects" || op === "pmatch") {
                    const values = (Array.isArray(want) ? want : [want]).map(String).flatMap((w) => defs.lists.get(w) ?? [w]);
                    const v = extract(f);
                    if (v === undefined) return false;
                    if (op === "pmatch") return asList(v).some((x) => values.some((p) => x === p || x.startsWith(`${p}/`)));
                    return asList(v).some((x) => values.includes(x));
                }
                return compare(op, extract(f), String(want));
            });
            if (all) return true;
        }
    }
    return false;
}

/** Macros and lists of a loaded rule set, later definitions (and `append`s) applied in load order. */
export function ruleDefs(items: Item[]): RuleDefs {
    const defs: RuleDefs = { macros: new Map(), lists: new Map() };
    for (const x of items) {
        if (x.macro) defs.macros.set(x.macro, x.append || x.override?.condition === "append" ? `${defs.macros.get(x.macro) ?? ""} ${x.condition}` : x.condition);
        if (x.list) {
            const items = (x.items as unknown[]).map(String);
            defs.lists.set(x.list, x.append || x.override?.items === "append" ? [...(defs.lists.get(x.list) ?? []), ...items] : items);
        }
    }
    return defs;
}

/**
 * The rule `rule_matching: first` reports for one event: the first enabled rule of `source`, in load order, whose
 * condition matches and no exception of which applies. `items` is the whole loaded set, every file in order.
 */
export function firstMatch(items: Item[], source: string, extract: Extractor, defs = ruleDefs(items)): string | undefined {
    for (const r of items) {
        if (!r.rule || r.enabled === false || (r.source ?? "syscall") !== source) continue;
        if (matches(r.condition, extract, defs) && !excepted(r, extract, defs)) return r.rule;
    }
    return undefined;
}

/** Every rule of `source` that matches (what `rule_matching: all` would report). */
export function allMatches(items: Item[], source: string, extract: Extractor, defs = ruleDefs(items)): string[] {
    return items
        .filter((r) => r.rule && r.enabled !== false && (r.source ?? "syscall") === source)
        .filter((r) => matches(r.condition, extract, defs) && !excepted(r, extract, defs))
        .map((r) => r.rule as string);
}
