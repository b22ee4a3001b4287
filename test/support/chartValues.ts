/**
 * Check chart values against the chart's own values.yaml. Neither the falco nor the falcosidekick chart has a
 * values schema, so Helm silently ignores a misspelled key: every key path we set must exist in the reference
 * values, except inside maps the chart leaves open (`{}` there, e.g. `customRules`, `podAnnotations`).
 */
import * as fs from "fs";
import * as YAML from "yaml";
import { referencePath } from "./reference";

type Tree = Record<string, unknown>;

const isMap = (v: unknown): v is Tree => typeof v === "object" && v !== null && !Array.isArray(v);

function load(file: string): Tree {
    return YAML.parse(fs.readFileSync(referencePath("charts", file), "utf8")) as Tree;
}

function merge(base: Tree, over: Tree): Tree {
    const out: Tree = { ...base };
    for (const [k, v] of Object.entries(over)) out[k] = isMap(v) && isMap(base[k]) ? merge(base[k] as Tree, v) : v;
    return out;
}

/**
 * The falcosidekick chart falco 9.1.0 deploys: its Chart.yaml depends on `falcosidekick` `0.12.*`, and 0.12.1 is
 * the newest 0.12 (not the standalone chart's 0.14.0, which adds keys 0.12.1 silently ignores).
 */
export const SIDEKICK_VALUES_FILE = "falcosidekick-0.12.1-values.yaml";

/**
 * The falco chart's values with the falcosidekick sub-chart's merged under `falcosidekick:` (as Helm does:
 * the parent's `falcosidekick.*` values are the sub-chart's values).
 */
export function falcoChartReference(): Tree {
    const falco = load("falco-values.yaml");
    const sidekick = load(SIDEKICK_VALUES_FILE);
    return { ...falco, falcosidekick: merge(sidekick, (falco.falcosidekick as Tree) ?? {}) };
}

/** The falcosidekick sub-chart's own values (0.12.1, what falco 9.1.0 deploys). */
export function sidekickChartReference(): Tree {
    return load(SIDEKICK_VALUES_FILE);
}

/**
 * Every key path in `values` the reference does not have, each with the reason. Arrays and scalars are leaves;
 * a map in the reference that is empty (`{}`) is open and not descended into.
 */
export function unknownValuePaths(values: unknown, reference: unknown, at = ""): string[] {
    if (!isMap(values)) return [];
    if (reference === null || reference === undefined) return [];
    if (!isMap(reference)) return [`${at || "(root)"}: the chart has a ${Array.isArray(reference) ? "list" : typeof reference} here, not a map`];
    if (Object.keys(reference).length === 0) return [];
    const problems: string[] = [];
    for (const [k, v] of Object.entries(values)) {
        const path = at ? `${at}.${k}` : k;
        if (!(k in reference)) {
            problems.push(`${path}: not a key of the chart's values.yaml`);
            continue;
        }
        problems.push(...unknownValuePaths(v, reference[k], path));
    }
    return problems;
}

/** Every leaf path (`a.b.c`) of a values tree: what the component sets. */
export function leafPaths(values: unknown, at = ""): string[] {
    if (!isMap(values) || Object.keys(values).length === 0) return at ? [at] : [];
    return Object.entries(values).flatMap(([k, v]) => leafPaths(v, at ? `${at}.${k}` : k));
}
