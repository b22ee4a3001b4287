/**
 * `resolveHostSettings`, memoized by the settings' content.
 *
 * Why: a fleet repeats the same settings on most nodes, and the program resolves each node's settings twice
 * (the stack config check, then FalcoHost). Resolving is not free: zod walks the whole tree and every custom
 * rule file is parsed as YAML to validate it, tens of milliseconds for a large rule file. Without the memo a
 * 500-node fleet with one 60 KB rule file parses it a thousand times.
 *
 * The key is the input's content (`contentKey`), so equal settings built as separate objects (every node's
 * merged copy) share one resolution. Only successful resolutions are kept: bad input is resolved again and
 * throws its own error, with the caller's key prefix. Input that is not plain data (class instances,
 * functions, ...) is resolved every time, as before.
 *
 * Pure: no Pulumi, no I/O.
 */
import { HostSettings, ResolvedHostSettings, resolveHostSettings } from "./settings";

/**
 * A string that is equal for two values exactly when they hold the same plain data: strings, finite and
 * non-finite numbers, booleans, null, undefined, arrays and plain objects (own enumerable keys, in order,
 * since order reaches rendered files). Undefined when the value holds anything else, so the caller does not
 * cache what it cannot compare.
 */
export function contentKey(value: unknown): string | undefined {
    const parts: string[] = [];
    const path = new Set<object>(); // objects being walked: a cycle has no finite key
    const walk = (v: unknown): boolean => {
        switch (typeof v) {
            case "string":
                // Length-prefixed, not escaped: unambiguous, and no scan of a large rule file's text.
                parts.push(`s${v.length}:`, v);
                return true;
            case "number":
                // JSON would turn NaN and Infinity into null, and -0 into 0: keep them apart.
                parts.push(Number.isFinite(v) && !Object.is(v, -0) ? String(v) : `#${Object.is(v, -0) ? "-0" : String(v)}`);
                return true;
            case "boolean":
                parts.push(v ? "t" : "f");
                return true;
            case "undefined":
                parts.push("u");
                return true;
            case "object": {
                if (v === null) {
                    parts.push("n");
                    return true;
                }
                if (path.has(v)) return false;
                path.add(v);
                const ok = Array.isArray(v) ? walkArray(v) : walkObject(v);
                path.delete(v);
                return ok;
            }
            default:
                return false; // function, symbol, bigint
        }
    };
    const walkArray = (v: unknown[]): boolean => {
        if (Object.getPrototypeOf(v) !== Array.prototype) return false;
        parts.push("[");
        for (let i = 0; i < v.length; i++) {
            if (i) parts.push(",");
            if (!walk(v[i])) return false;
        }
        parts.push("]");
        return true;
    };
    const walkObject = (v: object): boolean => {
        const proto = Object.getPrototypeOf(v);
        if (proto !== Object.prototype && proto !== null) return false;
        parts.push("{");
        let first = true;
        for (const k of Object.keys(v)) {
            const d = Object.getOwnPropertyDescriptor(v, k)!;
            if (!("value" in d)) return false; // a getter may answer differently next time
            if (!first) parts.push(",");
            first = false;
            parts.push(`${k.length}:`, k, "=");
            if (!walk(d.value)) return false;
        }
        parts.push("}");
        return true;
    };
    return walk(value) ? parts.join("") : undefined;
}

/** Resolutions kept; a fleet has a handful of distinct settings, so a small bound is plenty. */
const MAX_ENTRIES = 64;
const resolved = new Map<string, ResolvedHostSettings>();

/**
 * `resolveHostSettings(input, keyPrefix)`, returning the same object for inputs with equal content.
 * The result is shared: read it, never modify it (the renderers don't). Callers that hand it out to others
 * should copy it (`structuredClone`).
 */
export function resolveHostSettingsMemo(input: HostSettings = {}, keyPrefix = ""): ResolvedHostSettings {
    const key = contentKey(input);
    if (key === undefined) return resolveHostSettings(input, keyPrefix);
    let s = resolved.get(key);
    if (!s) {
        // A copy: the resolution may hold references into this caller's input (extraConfig values), and later
        // callers with equal content must not see this caller's later changes to it.
        s = structuredClone(resolveHostSettings(input, keyPrefix));
        if (resolved.size >= MAX_ENTRIES) resolved.clear();
        resolved.set(key, s);
    }
    return s;
}
