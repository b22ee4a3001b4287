/**
 * How a node's `falco` overrides combine with the fleet's settings. One rule, so a reader of a stack file can
 * predict the result without opening code:
 *
 * - Maps merge key by key, at any depth: `{outputs: {http: {enabled: true}}}` on a node keeps the fleet's
 *   other `outputs` settings. This includes `rules.custom` (a node adds rule files; a file of the same name
 *   replaces the fleet's), `extraConfig` and the hardening `overrides` maps.
 * - Everything else replaces: scalars, `null` and lists (`rules.builtin: []` on a node switches the built-in
 *   sets off there; a list is never concatenated, since a partial list would be impossible to take back).
 *
 * Pure: no Pulumi, no I/O; neither input is modified.
 */

export function isPlainObject(v: unknown): v is Record<string, unknown> {
    return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** `over` laid onto `base` by the rule above. `undefined` in `over` leaves `base`'s value. */
export function mergeSettings<T>(base: T, over: unknown): T {
    if (over === undefined) return base;
    if (!isPlainObject(base) || !isPlainObject(over)) return over as T;
    const out: Record<string, unknown> = { ...base };
    // defineProperty, not assignment: a key named `__proto__` in a stack file stays data, never a prototype.
    for (const [k, v] of Object.entries(over))
        Object.defineProperty(out, k, { value: mergeSettings(Object.hasOwn(out, k) ? out[k] : undefined, v), enumerable: true, writable: true, configurable: true });
    return out as T;
}
