/**
 * Test-side models of what Falco itself does with our files, built from the upstream reference data:
 * schema validators (ajv, draft-06), the field and event catalogues (`falco --list`, `--list-events`), a small
 * rule-condition tokenizer, Falco's config-file merge (`append` strategy) and its `${VAR}` expansion.
 * Nothing here ships: the schemas live in ../shared, beside the repository.
 */
import Ajv, { ValidateFunction } from "ajv";
import addFormats from "ajv-formats";
import * as fs from "fs";
import * as path from "path";
import { referencePath } from "./reference";

// --- schemas ---------------------------------------------------------------------------------------------

function compile(schemaFile: string): ValidateFunction {
    const ajv = new Ajv({ allErrors: true, strict: true });
    ajv.addMetaSchema(require("ajv/dist/refs/json-schema-draft-06.json"));
    addFormats(ajv);
    // A vendor keyword from the tool that generated Falco's schema; it carries no constraint for us.
    ajv.addKeyword("qt-uri-protocols");
    return ajv.compile(JSON.parse(fs.readFileSync(referencePath("falco", schemaFile), "utf8")));
}

let configValidator: ValidateFunction | undefined;
let rulesValidator: ValidateFunction | undefined;

/** Problems `falco.yaml` content has against Falco's config schema ([] when valid). */
export function configSchemaErrors(config: unknown): string[] {
    configValidator ??= compile("config.schema.json");
    return configValidator(config) ? [] : (configValidator.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message}`);
}

/** Problems a rules file has against Falco's rules schema ([] when valid). */
export function rulesSchemaErrors(rules: unknown): string[] {
    rulesValidator ??= compile("rules.schema.json");
    return rulesValidator(rules) ? [] : (rulesValidator.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message}`);
}

// --- fields and events -----------------------------------------------------------------------------------

interface FieldInfo {
    argRequired: boolean;
    argAllowed: boolean;
}

let fieldCache: Map<string, FieldInfo> | undefined;

/** Every field `falco --list` knows (syscall and container fields), with whether it takes `[arg]`. */
export function knownFields(): Map<string, FieldInfo> {
    if (fieldCache) return fieldCache;
    fieldCache = new Map();
    for (const line of fs.readFileSync(referencePath("falco", "fields.txt"), "utf8").split("\n")) {
        const m = /^([a-z][A-Za-z0-9_.]*)(?:\s+(.*))?$/.exec(line);
        if (!m || /^(Field Class|Description|Event Sources):/.test(line)) continue;
        const flags = /^\(([A-Z_,]+)\)/.exec(m[2] ?? "")?.[1] ?? "";
        fieldCache.set(m[1], { argRequired: flags.includes("ARG_REQUIRED"), argAllowed: flags.includes("ARG_ALLOWED") });
    }
    return fieldCache;
}

/** Fields of the `evt (All event types)` class of fields.txt: valid for plugin event sources too. */
let universalCache: Set<string> | undefined;
export function universalFields(): Set<string> {
    if (universalCache) return universalCache;
    universalCache = new Set();
    let inClass = false;
    for (const line of fs.readFileSync(referencePath("falco", "fields.txt"), "utf8").split("\n")) {
        const cls = /^Field Class:\s+(.*)$/.exec(line);
        if (cls) {
            inClass = cls[1].trim() === "evt (All event types)";
            continue;
        }
        const m = /^([a-z][A-Za-z0-9_.]*)\s/.exec(line);
        if (inClass && m && !/^(Description|Event Sources):/.test(line)) universalCache.add(m[1]);
    }
    return universalCache;
}

/**
 * Fields of the k8saudit and json plugins (`ka.*`, `json.*`, `jevt.*`), from the fixture copied from upstream
 * (test/fixtures/k8saudit/fields.md, which says where it came from): what `k8s_audit` rules may use besides
 * the universal `evt.*` fields.
 */
let pluginFieldCache: Map<string, FieldInfo> | undefined;
export function k8sAuditFields(): Map<string, FieldInfo> {
    if (pluginFieldCache) return pluginFieldCache;
    pluginFieldCache = new Map();
    const file = path.resolve(__dirname, "..", "fixtures", "k8saudit", "fields.md");
    for (const line of fs.readFileSync(file, "utf8").split("\n")) {
        const m = /^\| `([a-z][A-Za-z0-9_.]*)` \| `[^`]+` \| ([^|]+) \|/.exec(line);
        if (!m) continue;
        const arg = m[2].trim();
        pluginFieldCache.set(m[1], { argRequired: arg === "Key, Required", argAllowed: arg === "Index" || arg.startsWith("Key") });
    }
    return pluginFieldCache;
}

/** The fields a rule of `source` may use (name -> argument kind). */
export function fieldsForSource(source: string): Map<string, FieldInfo> {
    if (source === "syscall") return knownFields();
    if (source !== "k8s_audit") throw new Error(`no field catalogue for event source ${source}`);
    const all = knownFields();
    const out = new Map(k8sAuditFields());
    for (const name of universalFields()) if (all.has(name)) out.set(name, all.get(name)!);
    return out;
}

interface EventCatalogue {
    /** Event names (`evt.type` values). */
    names: Set<string>;
    /** Names whose only parameters are the generic `ID`/`nativeID` (no arguments reach rules). */
    generic: Set<string>;
    /** Every parameter name of every event (`evt.arg.<name>`). */
    params: Set<string>;
}

let eventCache: EventCatalogue | undefined;

export function eventCatalogue(): EventCatalogue {
    if (eventCache) return eventCache;
    const names = new Set<string>();
    const specific = new Set<string>();
    const params = new Set<string>();
    for (const line of fs.readFileSync(referencePath("falco", "events.md"), "utf8").split("\n")) {
        const m = /^[<>] ([a-z0-9_]+)\((.*)\)\s*$/.exec(line);
        if (!m) continue;
        names.add(m[1]);
        const ps = [...m[2].matchAll(/\*\*([A-Za-z0-9_]+)\*\*/g)].map((p) => p[1]);
        ps.forEach((p) => params.add(p));
        if (ps.some((p) => p !== "ID" && p !== "nativeID")) specific.add(m[1]);
    }
    eventCache = { names, generic: new Set([...names].filter((n) => !specific.has(n))), params };
    return eventCache;
}

/**
 * Why `field` (as written in a condition or output, e.g. `proc.aname[2]`, `evt.arg.pid`) is unknown to rules
 * of `source`, or undefined.
 */
export function fieldProblem(field: string, source = "syscall"): string | undefined {
    const fields = fieldsForSource(source);
    const m = /^([A-Za-z0-9_.]+?)(?:\[([^\]]*)\])?$/.exec(field);
    if (!m) return `malformed field ${field}`;
    const [, name, arg] = m;
    const info = fields.get(name);
    if (info) {
        if (arg !== undefined && !info.argAllowed && !info.argRequired) return `${name} takes no [argument]`;
        if (arg === undefined && info.argRequired) return `${name} needs an argument`;
        return undefined;
    }
    // evt.arg.NAME / evt.rawarg.NAME: the argument is given after a dot and must be some event's parameter.
    const dotted = /^(evt\.arg|evt\.rawarg)\.([A-Za-z0-9_]+)$/.exec(name);
    if (dotted && fields.has(dotted[1]) && source === "syscall") {
        return eventCatalogue().params.has(dotted[2]) ? undefined : `no event has a parameter named ${dotted[2]}`;
    }
    return `unknown field ${field}`;
}

// --- conditions ------------------------------------------------------------------------------------------

const KEYWORDS = new Set(["and", "or", "not"]);
const SYMBOL_OPS = new Set(["=", "==", "!=", "<", "<=", ">", ">="]);
const WORD_OPS = new Set([
    "contains", "icontains", "bcontains", "startswith", "bstartswith", "endswith", "glob", "iglob", "regex",
]);
const LIST_OPS = new Set(["in", "intersects", "pmatch"]);
const TRANSFORMERS = new Set(["tolower", "toupper", "b64", "basename", "len", "val"]);

/** Tokens of a condition: parens, commas, operators, quoted strings and bare words. */
export function tokenizeCondition(condition: string): string[] {
    const re = /\s+|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|!=|<=|>=|==|=|<|>|\(|\)|,|[^\s(),=<>!"']+/y;
    const tokens: string[] = [];
    let m: RegExpExecArray | null;
    while (re.lastIndex < condition.length && (m = re.exec(condition))) if (!/^\s+$/.test(m[0])) tokens.push(m[0]);
    if (re.lastIndex < condition.length) throw new Error(`cannot tokenize condition at: ${condition.slice(re.lastIndex)}`);
    return tokens;
}

export interface ConditionRefs {
    /** Fields used (left-hand sides and transformer arguments). */
    fields: string[];
    /** Bare identifiers in term position: macro references. */
    macros: string[];
    /** Bare words inside `in (...)`-style lists, other than for evt.type: list references or bare values. */
    listItems: string[];
    /** Values compared with evt.type. */
    evtTypes: string[];
}

/** What a condition refers to: identifiers, not operators, keywords or literals. */
export function conditionRefs(condition: string): ConditionRefs {
    const tokens = tokenizeCondition(condition);
    const refs: ConditionRefs = { fields: [], macros: [], listItems: [], evtTypes: [] };
    let expect: "term" | "value" | "list" = "term";
    let lastField = "";
    const isQuoted = (t: string) => t.startsWith('"') || t.startsWith("'");
    for (let i = 0; i < tokens.length; i++) {
        const t = tokens[i];
        if (t === "(" && expect === "list") {
            for (i++; i < tokens.length && tokens[i] !== ")"; i++) {
                const item = tokens[i];
                if (item === "," || isQuoted(item)) continue;
                (lastField === "evt.type" ? refs.evtTypes : refs.listItems).push(item);
            }
            expect = "term";
            continue;
        }
        if (t === "(" || t === ")" || t === ",") continue;
        if (SYMBOL_OPS.has(t)) {
            expect = "value";
            continue;
        }
        if (isQuoted(t)) {
            expect = "term";
            continue;
        }
        if (KEYWORDS.has(t) || t === "exists") continue;
        if (WORD_OPS.has(t)) {
            expect = "value";
            continue;
        }
        if (LIST_OPS.has(t)) {
            expect = "list";
            continue;
        }
        if (TRANSFORMERS.has(t) && tokens[i + 1] === "(") continue;
        if (expect === "value") {
            if (lastField === "evt.type") refs.evtTypes.push(t);
            expect = "term";
            continue;
        }
        if (t.includes(".")) {
            refs.fields.push(t);
            lastField = t;
        } else refs.macros.push(t);
    }
    return refs;
}

/** `%field` references in a rule output. */
export function outputFields(output: string): string[] {
    return [...output.matchAll(/%([A-Za-z0-9_.]+(?:\[[^\]]*\])?)/g)].map((m) => m[1]);
}

interface RuleItem {
    rule?: string;
    macro?: string;
    list?: string;
    condition?: string;
    output?: string;
    items?: unknown[];
    exceptions?: { name: string; fields?: string[] | string }[];
    /** Event source of a rule; absent means `syscall`. */
    source?: string;
}

/**
 * Problems in a set of rule items (one or more files, in load order): macros, lists, fields and event types
 * they refer to that no item in `items` (plus `extraMacros`/`extraLists`) defines and Falco does not know.
 * `strictLists`: every bare word in an `in (...)` list must be a defined list (our files quote literal values).
 */
export function referenceProblems(
    items: RuleItem[],
    opts: { strictLists?: boolean; extraMacros?: Iterable<string>; extraLists?: Iterable<string> } = {},
): string[] {
    const macros = new Set([...(opts.extraMacros ?? []), ...items.filter((i) => i.macro).map((i) => i.macro!)]);
    const lists = new Set([...(opts.extraLists ?? []), ...items.filter((i) => i.list).map((i) => i.list!)]);
    const events = eventCatalogue();
    const problems: string[] = [];
    const macroConditions = new Map(items.filter((i) => i.macro && i.condition !== undefined).map((i) => [i.macro!, i.condition!]));
    /** Macros a condition uses, directly or through other macros. */
    const macrosUsed = (condition: string, seen = new Set<string>()): Set<string> => {
        for (const m of conditionRefs(condition).macros) {
            if (seen.has(m) || !macroConditions.has(m)) continue;
            seen.add(m);
            macrosUsed(macroConditions.get(m)!, seen);
        }
        return seen;
    };
    const macroFieldCache = new Map<string, string[]>();
    const macroFields = (m: string): string[] => {
        if (!macroFieldCache.has(m)) macroFieldCache.set(m, [...new Set(conditionRefs(macroConditions.get(m)!).fields)]);
        return macroFieldCache.get(m)!;
    };
    for (const item of items) {
        const where = item.rule ? `rule "${item.rule}"` : item.macro ? `macro ${item.macro}` : `list ${item.list}`;
        const source = item.source ?? "syscall";
        if (item.condition !== undefined) {
            const refs = conditionRefs(item.condition);
            for (const m of refs.macros) if (!macros.has(m)) problems.push(`${where}: unknown macro ${m}`);
            // A macro has no source of its own: its fields must exist for some source, and for each rule using it
            // in that rule's source (checked below, through the rule).
            for (const f of refs.fields) {
                const p = item.macro ? (fieldProblem(f) && fieldProblem(f, "k8s_audit")) : fieldProblem(f, source);
                if (p) problems.push(`${where}: ${p}`);
            }
            if (item.rule)
                for (const m of macrosUsed(item.condition))
                    for (const f of macroFields(m)) {
                        const p = fieldProblem(f, source);
                        if (p) problems.push(`${where} (through macro ${m}): ${p}`);
                    }
            for (const e of refs.evtTypes) {
                if (lists.has(e)) continue;
                if (!events.names.has(e)) problems.push(`${where}: unknown event type ${e}`);
                // A generic event (only ID/nativeID in events.md) still has its thread: process fields work, but
                // anything read from the event's arguments or fds does not.
                else if (events.generic.has(e) && refs.fields.some((f) => /^(evt\.(raw)?arg|fd\.|fs\.path\.)/.test(f)))
                    problems.push(`${where}: event type ${e} carries no arguments (generic)`);
            }
            if (opts.strictLists)
                for (const l of refs.listItems) if (!lists.has(l)) problems.push(`${where}: unknown list ${l}`);
        }
        for (const f of item.output ? outputFields(item.output) : []) {
            const p = fieldProblem(f, source);
            if (p) problems.push(`${where} output: ${p}`);
        }
        for (const ex of item.exceptions ?? []) {
            for (const f of ([] as string[]).concat(ex.fields ?? [])) {
                const p = fieldProblem(f, source);
                if (p) problems.push(`${where} exception ${ex.name}: ${p}`);
            }
        }
    }
    return problems;
}

// --- config files ----------------------------------------------------------------------------------------

/**
 * Falco's merge of a config.d file into the main config with the default `append` strategy (yaml_helper
 * `include_config_file`): a top-level sequence is appended to, anything else replaces the key.
 */
export function mergeConfigAppend(main: Record<string, unknown>, dropIn: Record<string, unknown>): Record<string, unknown> {
    const out: Record<string, unknown> = { ...main };
    for (const [k, v] of Object.entries(dropIn)) {
        if (Array.isArray(v)) out[k] = [...(Array.isArray(out[k]) ? (out[k] as unknown[]) : []), ...v];
        else out[k] = v;
    }
    return out;
}

/**
 * Falco's rewrite of every config scalar at load (yaml_helper `pre_process_env_vars`), ported line by line:
 * `${NAME}` becomes the variable's value (or nothing), `$${` becomes `${`, and the scan stops at the first `$`
 * followed by anything else.
 */
export function falcoEnvExpand(value: string, env: (name: string) => string | undefined = () => undefined): string {
    let v = value;
    let start = v.indexOf("$");
    while (start !== -1) {
        const sub = v.slice(start);
        if (sub.startsWith("${")) {
            const end = sub.indexOf("}");
            if (end === -1) break;
            const name = sub.slice(2, end);
            v = v.slice(0, start) + (env(name) ?? "") + v.slice(start + name.length + 3);
        } else if (sub.startsWith("$${")) {
            if (sub.indexOf("}") === -1) break;
            v = v.slice(0, start) + v.slice(start + 1);
            start++;
        } else {
            start += sub.length;
        }
        start = v.indexOf("$", start);
    }
    return v;
}
