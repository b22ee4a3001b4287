/**
 * The Pulumi engine's step decisions for one `pulumi up` or `pulumi destroy`, ported for tests: given the state a
 * previous run left and the registrations the program made now (recorded under test/support/mocks.ts, with the
 * options the SDK really sent), which steps run, in which order, with which inputs.
 *
 * Ported from pulumi/pulumi pkg/resource/deploy/step_generator.go (as of commit 00285a9b6248):
 * - `generateSteps`: the URN is looked up in the old state first, then each alias (`generateAliases`,
 *   `collapseAliasToUrn`, `inheritedChildAlias`); with an old resource, `processIgnoreChanges` puts the old value
 *   back for every ignoreChanges path; without one it is a create.
 * - `diff` / `diffResource`: a `--replace` target is a replace blamed on `id`; a component (no provider) differs
 *   when its inputs do; a custom resource asks its provider's Diff (`PROVIDER_DIFFS` below).
 * - `continueStepsFromDiff` + `applyReplaceOnChanges`: the resource's registered replaceOnChanges paths turn the
 *   matching detailed-diff entries into replacements; a replacement is create-replacement now and delete of the
 *   old resource (with its OLD inputs) after every other step, unless deleteBeforeReplace (the resource option,
 *   else the provider's answer) deletes it first; otherwise an update (the provider's Update with the new
 *   inputs), or same.
 * - `GenerateDeletes` / `ScheduleDeletes`: old resources no registration claimed (by URN or alias) are deleted,
 *   with their old inputs, after everything else, dependents first; `destroy` deletes everything that way.
 * Property diffs follow sdk/go/common/resource/properties_diff.go (`PropertyMap.Diff`: null is absent, arrays by
 * index, objects by key, secrets compared by their elements) and sdk/go/common/resource/plugin/provider.go
 * (`NewDetailedDiffFromObjectDiff`); paths follow sdk/go/common/resource/properties_path.go (`ParsePropertyPath`
 * for `a.b[0]` / `a["b"]` / `*`, `Contains`, `Reset`).
 *
 * Not modelled (the tests here need none of it): `--target`, imports, provider changes and DiffConfig, plans,
 * policy packs, protect, read resources, the dependents a delete-before-replace also deletes, unknowns (preview).
 */
import { Recorded, RegisteredAlias, RegisteredOptions, ROOT_STACK_TYPE, engineUrn, qualifiedType, unwrapSecrets } from "./mocks";

/** A resource as the state holds it after a deployment. */
export interface StateResource {
    urn: string;
    type: string;
    name: string;
    custom: boolean;
    parent: string;
    /** Inputs as the last create/update left them (secrets unwrapped: the diff compares their elements). */
    inputs: Record<string, unknown>;
    options: RegisteredOptions;
}

export type Step =
    | { op: "create"; urn: string; type: string; inputs: Record<string, unknown> }
    | { op: "update"; urn: string; type: string; olds: Record<string, unknown>; inputs: Record<string, unknown>; changed: string[] }
    | { op: "same"; urn: string; type: string }
    | { op: "create-replacement"; urn: string; type: string; inputs: Record<string, unknown>; replaceKeys: string[] }
    | { op: "delete-replaced"; urn: string; type: string; inputs: Record<string, unknown> }
    | { op: "delete"; urn: string; type: string; inputs: Record<string, unknown> };

export interface Deployment {
    /** Steps in the order the engine runs them. */
    steps: Step[];
    /** The state afterwards. */
    state: StateResource[];
}

// --- property paths (sdk/go/common/resource/properties_path.go) ---------------------------------------------

type PathElement = string | number;

/** `ParsePropertyPath`: `a.b`, `a[0]`, `a["b.c"]`, `a[*]`, `*`. */
export function parsePropertyPath(path: string): PathElement[] {
    const out: PathElement[] = [];
    let i = 0;
    let key = "";
    const flush = () => {
        if (key !== "") out.push(key);
        key = "";
    };
    while (i < path.length) {
        const c = path[i];
        if (c === ".") {
            flush();
            i++;
        } else if (c === "[") {
            flush();
            const end = path.indexOf("]", i);
            if (end < 0) throw new Error(`missing closing bracket in property path '${path}'`);
            const inner = path.slice(i + 1, end);
            if (inner.startsWith('"')) {
                // a quoted key: find the closing quote (escapes \" allowed)
                let j = i + 2;
                let k = "";
                while (j < path.length && path[j] !== '"') {
                    if (path[j] === "\\") j++;
                    k += path[j++];
                }
                out.push(k);
                i = path.indexOf("]", j) + 1;
            } else if (inner === "*") {
                out.push("*");
                i = end + 1;
            } else {
                if (!/^[0-9]+$/.test(inner)) throw new Error(`invalid array index '${inner}' in property path '${path}'`);
                out.push(Number(inner));
                i = end + 1;
            }
        } else {
            key += c;
            i++;
        }
    }
    flush();
    return out;
}

/** `PropertyPath.Contains`: `*` matches any key or index at its level; a longer other path is contained. */
export function pathContains(p: PathElement[], other: PathElement[]): boolean {
    if (other.length < p.length) return false;
    return p.every((pp, i) => (typeof pp === "number" ? other[i] === pp : pp === "*" || (typeof other[i] === "string" && other[i] === pp)));
}

function pathString(p: PathElement[]): string {
    return p
        .map((k, i) =>
            typeof k === "number" ? `[${k}]` : /^[A-Za-z0-9_]+$/.test(k) ? (i === 0 ? k : `.${k}`) : `["${k.replace(/"/g, '\\"')}"]`,
        )
        .join("");
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const hasValue = (v: unknown) => v !== undefined && v !== null;

/**
 * `PropertyPath.Reset` for the paths the tests use (object keys, `*` not needed): the old value goes into new,
 * or the key is removed from new when old lacks it. Returns false on a path error, as upstream does.
 */
function resetPath(p: PathElement[], old: unknown, neu: unknown): boolean {
    if (p.length === 0) return false;
    const [key, ...rest] = p;
    if (typeof key !== "string" || key === "*") throw new Error("engine port: Reset supports object keys only");
    if (rest.length === 0) {
        const has = isObject(old) && key in old;
        if (has) {
            if (!isObject(neu)) return false;
            neu[key] = structuredClone(old[key]);
        } else if (isObject(neu)) delete neu[key];
        return true;
    }
    if (!isObject(old) || !isObject(neu)) return !isObject(old) && !isObject(neu);
    const hasOld = key in old;
    const hasNew = key in neu;
    if (hasOld && !hasNew) return false;
    if (!hasOld && !hasNew) return true;
    return resetPath(rest, old[key], neu[key]);
}

/** `processIgnoreChanges` (step_generator.go). */
export function processIgnoreChanges(inputs: Record<string, unknown>, oldInputs: Record<string, unknown>, ignoreChanges: string[]) {
    const ignored = structuredClone(inputs);
    const invalid = ignoreChanges.filter((c) => !resetPath(parsePropertyPath(c), oldInputs, ignored));
    if (invalid.length)
        throw new Error(`cannot ignore changes to the following properties because one or more elements of the path are missing: "${invalid.join(", ")}"`);
    return ignored;
}

// --- diffs (properties_diff.go, plugin/provider.go) ----------------------------------------------------------

export type DiffKind = "add" | "add-replace" | "delete" | "delete-replace" | "update" | "update-replace";
const asReplace = (k: DiffKind): DiffKind => (k.endsWith("-replace") ? k : (`${k}-replace` as DiffKind));

/** `NewDetailedDiffFromObjectDiff(oldInputs.Diff(newInputs))`: leaf paths of what was added, deleted, updated. */
export function detailedDiff(olds: Record<string, unknown>, news: Record<string, unknown>): Map<string, DiffKind> {
    const acc = new Map<string, DiffKind>();
    const value = (prefix: PathElement[], o: unknown, n: unknown) => {
        if (isObject(o) && isObject(n)) return object(prefix, o, n);
        if (Array.isArray(o) && Array.isArray(n)) {
            for (let i = 0; i < Math.max(o.length, n.length); i++) {
                if (i >= o.length) acc.set(pathString([...prefix, i]), "add");
                else if (i >= n.length) acc.set(pathString([...prefix, i]), "delete");
                else if (!deepEqual(o[i], n[i])) value([...prefix, i], o[i], n[i]);
            }
            return;
        }
        if (!hasValue(o) && hasValue(n)) acc.set(pathString(prefix), "add");
        else if (hasValue(o) && !hasValue(n)) acc.set(pathString(prefix), "delete");
        else acc.set(pathString(prefix), "update");
    };
    const object = (prefix: PathElement[], o: Record<string, unknown>, n: Record<string, unknown>) => {
        for (const k of new Set([...Object.keys(o), ...Object.keys(n)])) {
            const [ov, nv] = [o[k], n[k]];
            if (!hasValue(ov) && !hasValue(nv)) continue;
            if (!hasValue(ov)) acc.set(pathString([...prefix, k]), "add");
            else if (!hasValue(nv)) acc.set(pathString([...prefix, k]), "delete");
            else if (!deepEqual(ov, nv)) value([...prefix, k], ov, nv);
        }
    };
    object([], olds, news);
    return acc;
}

function deepEqual(a: unknown, b: unknown): boolean {
    if (!hasValue(a) && !hasValue(b)) return true;
    if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
    if (isObject(a) && isObject(b)) {
        const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
        return [...keys].every((k) => deepEqual(a[k], b[k]));
    }
    return a === b;
}

/** What a provider's Diff answers (plugin.DiffResult). */
export interface DiffResult {
    changes: boolean;
    replaceKeys: string[];
    changedKeys: string[];
    detailedDiff: Map<string, DiffKind>;
    deleteBeforeReplace: boolean;
}

/** A provider's Diff for one resource type. */
export type ProviderDiff = (olds: Record<string, unknown>, news: Record<string, unknown>, ignoreChanges: string[]) => DiffResult;

/**
 * The input properties pulumi-command v1.2.1's schema marks replaceOnChanges for `command:remote:Command`: only
 * `triggers` (the `provider:"replaceOnChanges"` tag on common.ResourceInputs.Triggers,
 * provider/pkg/provider/common/inputs.go; remote.CommandInputs tags `connection` `provider:"secret"` only,
 * provider/pkg/provider/remote/command.go). The SDK's replaceOnChanges ["triggers[*]"] is generated from the same
 * schema (test/host/falcoHostEngine.test.ts checks that they agree).
 */
export const COMMAND_SCHEMA_REPLACE_ON_CHANGES: ReadonlySet<string> = new Set(["triggers"]);

/**
 * pulumi-go-provider's default Diff for an infer resource with an Update (infer/resource.go,
 * `derivedResourceController.Diff` and `diff`; the same in every stored version of the file), which
 * pulumi-command's remote Command uses (it implements no CustomDiff):
 * ignoreChanges put the old values back; the old state is cut down to the input properties; the detailed diff's
 * entries whose key IS a schema property marked replaceOnChanges become replacements (the key is a leaf path, so
 * `triggers[0]` is not `triggers`: only adding or removing the whole list reaches it; the SDK's `triggers[*]`
 * covers the elements); DeleteBeforeReplace is never set.
 */
export function inferDefaultDiff(schemaReplaceOnChanges: ReadonlySet<string>, inputKeys: readonly string[]): ProviderDiff {
    return (olds, news, ignoreChanges) => {
        const n = structuredClone(news);
        for (const k of ignoreChanges) if (k in olds) n[k] = structuredClone(olds[k]);
        const oldInputs = Object.fromEntries(inputKeys.filter((k) => k in olds).map((k) => [k, olds[k]]));
        const plugin = detailedDiff(oldInputs, n);
        const detailed = new Map<string, DiffKind>();
        for (const [k, v] of plugin) detailed.set(k, schemaReplaceOnChanges.has(k) ? asReplace(v) : v);
        const changedKeys = [...new Set([...plugin.keys()].map((k) => String(parsePropertyPath(k)[0])))];
        // The gRPC layer reports as `replaces` the top-level keys of replacement entries.
        const replaceKeys = [...new Set([...detailed].filter(([, v]) => v.endsWith("-replace")).map(([k]) => String(parsePropertyPath(k)[0])))];
        return { changes: plugin.size > 0, replaceKeys, changedKeys, detailedDiff: detailed, deleteBeforeReplace: false };
    };
}

/** remote.CommandInputs' input properties in pulumi-command v1.2.1 (common.ResourceInputs + CommandInputs). */
export const COMMAND_INPUT_KEYS = ["triggers", "create", "update", "delete", "stdin", "logging", "connection", "environment", "addPreviousOutputInEnv"] as const;

/** Provider Diffs modelled, by resource type. A type not listed cannot be diffed (the port throws). */
export const PROVIDER_DIFFS: Record<string, ProviderDiff> = {
    "command:remote:Command": inferDefaultDiff(COMMAND_SCHEMA_REPLACE_ON_CHANGES, COMMAND_INPUT_KEYS),
};

/** `applyReplaceOnChanges` (step_generator.go), without init errors. */
export function applyReplaceOnChanges(diff: DiffResult, replaceOnChanges: string[]): DiffResult {
    if (!diff.changes) return diff;
    const paths = replaceOnChanges.map(parsePropertyPath);
    const detailed = new Map<string, DiffKind>();
    for (const [p, v] of diff.detailedDiff) {
        const dp = parsePropertyPath(p);
        detailed.set(p, paths.some((r) => pathContains(r, dp)) ? asReplace(v) : v);
    }
    const replaceKeys = new Set(diff.replaceKeys);
    for (const k of diff.changedKeys) if (paths.some((r) => pathContains(r, parsePropertyPath(k)))) replaceKeys.add(k);
    return { ...diff, detailedDiff: detailed, replaceKeys: [...replaceKeys] };
}

/** `DiffResult.Replace()` (plugin/provider.go). */
const isReplace = (d: DiffResult) => [...d.detailedDiff.values()].some((v) => v.endsWith("-replace")) || d.replaceKeys.length > 0;

// --- aliases (step_generator.go) -----------------------------------------------------------------------------

const urnName = (urn: string) => urn.split("::").slice(3).join("::");

interface Goal {
    type: string;
    name: string;
    parent: string;
    aliases: RegisteredAlias[];
}

interface Context {
    stack: string;
    project: string;
    /** sg.aliases: current URN -> the old URN it was found under. */
    aliases: Map<string, string>;
}

function collapseAliasToUrn(ctx: Context, goal: Goal, alias: RegisteredAlias): string {
    if ("urn" in alias) return alias.urn;
    const name = alias.name || goal.name;
    const type = alias.type || goal.type;
    let parent = alias.parentUrn || goal.parent;
    if (alias.parentUrn && ctx.aliases.has(alias.parentUrn)) parent = ctx.aliases.get(alias.parentUrn)!;
    if (alias.noParent || (parent && qualifiedType(parent) === ROOT_STACK_TYPE)) parent = "";
    return engineUrn(alias.stack || ctx.stack, alias.project || ctx.project, parent, type, name);
}

function inheritedChildAlias(ctx: Context, childType: string, childName: string, parentName: string, parentAlias: string): string {
    const aliasName = childName.startsWith(parentName) ? urnName(parentAlias) + childName.slice(parentName.length) : childName;
    return `urn:pulumi:${ctx.stack}::${ctx.project}::${qualifiedType(parentAlias)}$${childType}::${aliasName}`;
}

function generateAliases(ctx: Context, goal: Goal): string[] {
    const result: string[] = [];
    const add = (u: string) => {
        if (!result.includes(u)) result.push(u);
    };
    for (const a of goal.aliases) add(collapseAliasToUrn(ctx, goal, a));
    const parentAlias = goal.parent ? ctx.aliases.get(goal.parent) : undefined;
    if (parentAlias) {
        add(inheritedChildAlias(ctx, goal.type, goal.name, urnName(goal.parent), parentAlias));
        for (const a of goal.aliases) {
            const child = collapseAliasToUrn(ctx, goal, a);
            add(inheritedChildAlias(ctx, qualifiedType(child).split("$").pop()!, urnName(child), urnName(goal.parent), parentAlias));
        }
    }
    return result;
}

// --- deployments ---------------------------------------------------------------------------------------------

export interface UpOptions {
    stack?: string;
    project?: string;
    /** `pulumi up --replace <urn>`. */
    replace?: string[];
}

/** The state a first `pulumi up` of these registrations leaves (every resource created). */
export function initialState(registrations: readonly Recorded[]): StateResource[] {
    return up([], registrations).state;
}

/** One `pulumi up` from `state` to the program that made `registrations`. */
export function up(state: readonly StateResource[], registrations: readonly Recorded[], opts: UpOptions = {}): Deployment {
    const ctx: Context = { stack: opts.stack ?? "test", project: opts.project ?? "falco-nodes", aliases: new Map() };
    const olds = new Map(state.map((r) => [r.urn, r]));
    const steps: Step[] = [];
    const afterwards: Step[] = [];
    const newState: StateResource[] = [];
    const seen = new Set<string>(); // old URNs some registration claimed
    for (const reg of registrations) {
        const goal: Goal = { type: reg.type, name: reg.name, parent: reg.parent, aliases: reg.options.aliases };
        const urn = reg.urn;
        let old: StateResource | undefined;
        for (const u of [urn, ...generateAliases(ctx, goal)]) {
            old = olds.get(u);
            if (old) {
                seen.add(u);
                if (u !== urn) ctx.aliases.set(urn, u);
                break;
            }
        }
        let inputs = unwrapSecrets(reg.inputs) as Record<string, unknown>;
        const resource = (i: Record<string, unknown>): StateResource => ({
            urn,
            type: reg.type,
            name: reg.name,
            custom: reg.custom,
            parent: reg.parent,
            inputs: i,
            options: reg.options,
        });
        if (!old) {
            steps.push({ op: "create", urn, type: reg.type, inputs });
            newState.push(resource(inputs));
            continue;
        }
        inputs = processIgnoreChanges(inputs, old.inputs, reg.options.ignoreChanges);
        let diff: DiffResult;
        if (opts.replace?.includes(urn)) {
            diff = { changes: true, replaceKeys: ["id"], changedKeys: [], detailedDiff: new Map(), deleteBeforeReplace: false };
        } else if (!reg.custom) {
            const changed = !deepEqual(old.inputs, inputs);
            diff = { changes: changed, replaceKeys: [], changedKeys: [], detailedDiff: new Map(), deleteBeforeReplace: false };
        } else {
            const provider = PROVIDER_DIFFS[reg.type];
            if (!provider) {
                if (deepEqual(old.inputs, inputs)) diff = { changes: false, replaceKeys: [], changedKeys: [], detailedDiff: new Map(), deleteBeforeReplace: false };
                else throw new Error(`engine port: no provider Diff modelled for ${reg.type} (${urn} changed)`);
            } else diff = provider(old.inputs, inputs, reg.options.ignoreChanges);
        }
        diff = applyReplaceOnChanges(diff, reg.options.replaceOnChanges);
        if (!diff.changes) {
            steps.push({ op: "same", urn, type: reg.type });
            newState.push(resource(inputs));
        } else if (isReplace(diff)) {
            const dbr = reg.options.deleteBeforeReplace ?? diff.deleteBeforeReplace;
            const replaced: Step = { op: "delete-replaced", urn: old.urn, type: old.type, inputs: old.inputs };
            if (dbr) steps.push(replaced);
            steps.push({ op: "create-replacement", urn, type: reg.type, inputs, replaceKeys: diff.replaceKeys });
            // Create-before-delete: the old resource is deleted after all other steps (GenerateDeletes).
            if (!dbr) afterwards.push(replaced);
            newState.push(resource(inputs));
        } else {
            steps.push({ op: "update", urn, type: reg.type, olds: old.inputs, inputs, changed: diff.changedKeys });
            newState.push(resource(inputs));
        }
    }
    // GenerateDeletes: replaced resources and those no registration claimed; ScheduleDeletes runs dependents
    // (children, later in the state) first: reverse state order.
    const unseen = state.filter((r) => !seen.has(r.urn)).reverse();
    const deletes: Step[] = [...afterwards.reverse(), ...unseen.map((r): Step => ({ op: "delete", urn: r.urn, type: r.type, inputs: r.inputs }))];
    return { steps: [...steps, ...deletes], state: newState };
}

/** `pulumi destroy`: every resource deleted with the inputs in state, dependents first. */
export function destroy(state: readonly StateResource[]): Deployment {
    return { steps: [...state].reverse().map((r) => ({ op: "delete", urn: r.urn, type: r.type, inputs: r.inputs })), state: [] };
}

// --- what pulumi-command runs --------------------------------------------------------------------------------

/**
 * What pulumi-command v1.2.1's remote Command runs for a step (provider/pkg/provider/remote/commandController.go):
 * Create runs `create`, Update runs `update` (else `create`) with the new inputs, Delete runs `delete` with the
 * inputs in state and nothing when it is unset; each as one SSH session with `stdin` piped in.
 */
export function commandRun(step: Step): { command: string; stdin: string } | undefined {
    if (step.type !== "command:remote:Command" || step.op === "same") return undefined;
    const i = step.inputs;
    const command = step.op === "create" || step.op === "create-replacement" ? i.create : step.op === "update" ? (i.update ?? i.create) : i.delete;
    if (command === undefined) return undefined;
    return { command: String(command), stdin: String(i.stdin ?? "") };
}

/** The arguments after `bash -s --` of a FalcoHost command string (hex and flags only: splitting on spaces is exact). */
export function argsOf(cmd: string): string[] {
    const m = /bash -s -- (.*)$/.exec(cmd);
    if (!m) throw new Error(`not a host script command: ${cmd}`);
    return m[1].split(" ");
}
