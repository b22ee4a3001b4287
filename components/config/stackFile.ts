/**
 * Read a stack file (`stacks/Pulumi.<env>.yaml`) the way the Pulumi CLI would hand it to the program, without
 * the CLI: for the render CLI, the tests and the benchmark. Secrets stay opaque: a `secure:` value only tells
 * the parser the key is set, encrypted; nothing here can or does decrypt it.
 *
 * What the CLI does that this cannot: decrypt secrets, and merge values from Pulumi ESC environments the stack
 * imports (`environment:`). For a stack with `environment:`, missing secrets are therefore not reported here
 * (`secretsMayBeExternal`); `pulumi preview` reports them.
 */
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { CONFIG_NAMESPACE, parseStackConfig, StackConfig, StackConfigSource } from "./stackConfig";

export interface StackFile {
    /** Absolute path of the stack file. */
    path: string;
    /** Stack name, from `Pulumi.<stack>.yaml`. */
    stack: string;
    /** The directory holding `Pulumi.yaml`. */
    projectDir: string;
    /** `falco-nodes:*` values (project defaults from Pulumi.yaml filled in), secrets as `{ secure: ... }`. */
    values: Record<string, unknown>;
    /** Full keys (`falco-nodes:x`) whose value is encrypted. */
    secretKeys: string[];
    /** Every config key of the file, any namespace (e.g. `aws:region`), as written. */
    allValues: Record<string, unknown>;
    /** Pulumi ESC environments the stack imports. */
    environments: string[];
}

/** Is this a `secure:` (encrypted) config value? */
export function isSecureValue(v: unknown): boolean {
    return typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).length === 1 && "secure" in v;
}

/** The nearest directory at or above `from` holding `Pulumi.yaml`. */
export function findProjectDir(from: string): string {
    let dir = path.resolve(from);
    for (;;) {
        if (fs.existsSync(path.join(dir, "Pulumi.yaml"))) return dir;
        const up = path.dirname(dir);
        if (up === dir) throw new Error(`no Pulumi.yaml at or above ${from}`);
        dir = up;
    }
}

/** The project's declared config (`config:` in Pulumi.yaml): key (with namespace) -> declaration. */
export function readProjectConfig(projectDir: string): Record<string, { type?: string; description?: string; default?: unknown; secret?: boolean; items?: unknown }> {
    const project = YAML.parse(fs.readFileSync(path.join(projectDir, "Pulumi.yaml"), "utf8")) ?? {};
    const out: Record<string, any> = {};
    for (const [k, v] of Object.entries((project.config ?? {}) as Record<string, unknown>)) {
        const key = k.includes(":") ? k : `${project.name}:${k}`;
        out[key] = typeof v === "object" && v !== null && !Array.isArray(v) ? v : { default: v };
    }
    return out;
}

/** Parse a stack file. Project defaults from Pulumi.yaml fill keys the file does not set, as the CLI does. */
export function readStackFile(file: string, projectDir = findProjectDir(path.dirname(file))): StackFile {
    const text = fs.readFileSync(file, "utf8");
    const doc = YAML.parseDocument(text, { uniqueKeys: true });
    if (doc.errors.length) throw new Error(`${file}: ${doc.errors[0].message}`);
    const parsed = (doc.toJS() ?? {}) as { config?: Record<string, unknown>; environment?: unknown };
    // A key without a namespace belongs to the project, as the CLI reads it.
    const allValues = Object.fromEntries(
        Object.entries(parsed.config ?? {}).map(([k, v]) => [k.includes(":") ? k : `${CONFIG_NAMESPACE}:${k}`, v]),
    );
    const values: Record<string, unknown> = {};
    for (const [k, decl] of Object.entries(readProjectConfig(projectDir)))
        if (k.startsWith(`${CONFIG_NAMESPACE}:`) && decl.default !== undefined) values[k] = decl.default;
    for (const [k, v] of Object.entries(allValues)) if (k.startsWith(`${CONFIG_NAMESPACE}:`)) values[k] = v;
    const environments = Array.isArray(parsed.environment) ? parsed.environment.map(String) : parsed.environment ? [String(parsed.environment)] : [];
    const m = /^Pulumi\.(.+)\.ya?ml$/.exec(path.basename(file));
    return {
        path: path.resolve(file),
        stack: m ? m[1] : path.basename(file),
        projectDir,
        values,
        secretKeys: Object.keys(values).filter((k) => isSecureValue(values[k])),
        allValues,
        environments,
    };
}

/** A parser source over a stack file. */
export function stackFileSource(f: StackFile): StackConfigSource {
    const strip = (k: string) => k.slice(CONFIG_NAMESPACE.length + 1);
    return {
        keys: () => Object.keys(f.values).map(strip),
        value: (k) => f.values[`${CONFIG_NAMESPACE}:${k}`],
        isSecret: (k) => isSecureValue(f.values[`${CONFIG_NAMESPACE}:${k}`]),
    };
}

/** Reads `ruleFiles` entries relative to the project directory. */
export function projectFileReader(projectDir: string): (relativePath: string) => string | undefined {
    return (rel) => {
        const p = path.resolve(projectDir, rel);
        if (!p.startsWith(path.resolve(projectDir) + path.sep)) return undefined;
        return fs.existsSync(p) ? fs.readFileSync(p, "utf8") : undefined;
    };
}

/**
 * Read and validate a stack file into the `StackConfig` the program would build from it. Secrets are only
 * known as set or not (`StackConfig.secrets`). Throws `StackConfigError` listing every problem.
 */
export function loadStackConfigFile(file: string, opts: { projectDir?: string } = {}): StackConfig {
    const f = readStackFile(file, opts.projectDir);
    return parseStackConfig(stackFileSource(f), {
        readFile: projectFileReader(f.projectDir),
        secretsMayBeExternal: f.environments.length > 0,
    });
}
