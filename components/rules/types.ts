/**
 * The shapes of a Falco rules file's items, as the rules schema (`falco --rule-schema`) defines them, and the
 * small helpers our rule sets share. Rule sets are built as these typed objects and serialised by the `yaml`
 * library, so no rule text is ever assembled by string concatenation of YAML.
 */

export interface FalcoMacro {
    macro: string;
    condition: string;
}

export interface FalcoList {
    list: string;
    items: (string | number)[];
}

/**
 * A rule exception: events whose `fields` compare (`comps`, default `=`) equal to one of the `values` tuples
 * are not alerted on. Users add tuples with an `override: {exceptions: append}` rule item in their own file.
 */
export interface FalcoException {
    name: string;
    fields: string[];
    comps?: string[];
    values: (string | number | (string | number)[])[][];
}

export type FalcoPriority = "EMERGENCY" | "ALERT" | "CRITICAL" | "ERROR" | "WARNING" | "NOTICE" | "INFORMATIONAL" | "DEBUG";

export interface FalcoRule {
    rule: string;
    desc: string;
    condition: string;
    output: string;
    priority: FalcoPriority;
    tags: string[];
    exceptions?: FalcoException[];
    /** The event source; absent means `syscall`. Plugin rules name theirs (`k8s_audit`). */
    source?: string;
}

/** A plugin (or an alternative to it) a rules file needs, at a minimum version (same major, semver-compatible). */
export interface FalcoPluginRequirement {
    name: string;
    version: string;
    alternatives?: { name: string; version: string }[];
}

/** `- required_plugin_versions: [...]`: Falco refuses the file unless these plugins are loaded. */
export interface FalcoRequiredPlugins {
    required_plugin_versions: FalcoPluginRequirement[];
}

export type FalcoRuleItem = FalcoMacro | FalcoList | FalcoRule | FalcoRequiredPlugins;

/** A file for `/etc/falco/rules.d`. */
export interface RuleFile {
    /** `NN-name.yaml`: the number orders loading. */
    fileName: string;
    content: string;
}

/**
 * A string operand for a Falco condition, double-quoted. Only our own constants (paths from paths.ts, the
 * validated binary path) go through here, so anything that would need escaping is a bug and throws.
 */
export function falcoString(value: string): string {
    if (!/^[A-Za-z0-9 ._\/:@+=*?\[-]+$/.test(value))
        throw new Error(`refusing to put ${JSON.stringify(value)} in a Falco condition: unexpected characters`);
    return `"${value}"`;
}

/** `field` is `path` or lies below it (directory match by whole components). */
export function belowOrAt(field: string, dir: string): string {
    return `${field} = ${falcoString(dir)} or ${field} startswith ${falcoString(dir + "/")}`;
}

/** The common output tail: who did it, from where (the same fields the default rules print). */
export const WHO_FIELDS =
    "user=%user.name user_uid=%user.uid user_loginuid=%user.loginuid process=%proc.name " +
    "proc_exepath=%proc.exepath parent=%proc.pname gparent=%proc.aname[2] command=%proc.cmdline terminal=%proc.tty container_id=%container.id";
