/**
 * A port of what the Pulumi CLI does with project and stack config before it starts the program, so the stack
 * files can be checked against the CLI's own contract without the CLI (which cannot be installed here).
 *
 * Ported from pulumi/pulumi (Go), read with the search tool; each piece names the function it models:
 * - `sdk/go/common/workspace/config.go` (formerly `pkg/workspace/config.go`; read at commit 0a7aa0e2b59c, the
 *   shape since v3.202.0): `mergeConfig` (ESC `pulumiConfig` merged into the stack config, then every declared
 *   key missing from the stack gets its declared default through `createConfigValue`, always as a **plain**
 *   value; declared keys with neither are reported missing), then `validateStackConfigValues` /
 *   `validateStackConfigValue` (for every explicitly typed key: `secret: true` and a value that is not secure is
 *   "must be encrypted as it's secret"; otherwise the decrypted value must pass `ValidateConfigValue`). The
 *   first error stops the CLI, as here.
 * - `sdk/go/common/workspace/project.go` (read at commit 0351806b7a86, where `ValidateConfigValue` knows
 *   `object`): `ValidateConfigValue`, `InferFullTypeName`, `RewriteShorthandConfigValues`, `Project.Validate`;
 *   `project.json`, the schema of a config declaration (`configTypeDeclaration`). The copy of project.json read
 *   (commit 5351d868b25d) predates `object`; it is added to `simpleConfigType` here as pulumi/pulumi#20129 does
 *   (with #20132 parsing such values; in the CLI since v3.187.0).
 * - `sdk/go/common/resource/config/value.go` `Value.unmarshalValue` (how a stack file's YAML becomes a config
 *   value: a scalar is a plain string, `{secure: ...}` a secret, a map or list an object, secure when any
 *   value inside is) and `plaintext.go` / `toPlaintext` in config.go (how an ESC value becomes one:
 *   `fn::secret` strings are secure).
 *
 * Not modelled, and refused rather than guessed: ESC `imports`, interpolation and builtins other than
 * `fn::secret`; non-string ESC scalars (`Plaintext.encrypt`'s object representation); config keys that are
 * property paths (`a.b`, `a[0]`). Decryption: the CLI decrypts secure values before type-checking them; a
 * `secure:` ciphertext here decrypts to a stand-in string (its type, string, is all the check reads), an ESC
 * `fn::secret` to its template text.
 */
import Ajv2020 from "ajv/dist/2020";
import * as YAML from "yaml";

/** `config.Value`: the text (JSON when `object`), whether it is (or, for an object, holds) a secret. */
export interface ConfigValue {
    value: string;
    secure: boolean;
    object: boolean;
    /** The plaintext the CLI's decrypter would return (the stand-in for a ciphertext). */
    plaintext: string;
}

/** `ProjectConfigItemsType`. */
export interface ProjectConfigItemsType {
    type: string;
    items?: ProjectConfigItemsType;
}

/** `ProjectConfigType`: one declaration under `config:` in Pulumi.yaml. */
export interface ProjectConfigType {
    type?: string;
    description?: string;
    items?: ProjectConfigItemsType;
    default?: unknown;
    value?: unknown;
    secret?: boolean;
}

export interface Project {
    name: string;
    config: Record<string, ProjectConfigType>;
}

/** What `ValidateStackConfigAndApplyProjectConfig` leaves for the program: full key -> value. */
export type ConfigMap = Map<string, ConfigValue>;

/** What a `secure:` ciphertext decrypts to here. */
export const DECRYPTED_STAND_IN = "[decrypted by the stand-in decrypter]";

// --- project.go -------------------------------------------------------------------------------------------

/**
 * `project.json`'s `config` property with `configTypeDeclaration` and `configItemsType`, `object` added to
 * `simpleConfigType` (pulumi/pulumi#20129, v3.187.0). Only the `config` part of the project schema.
 */
const CONFIG_SCHEMA = {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    type: ["object", "string", "null"],
    additionalProperties: {
        oneOf: [{ type: "string" }, { type: "integer" }, { type: "boolean" }, { type: "array" }, { $ref: "#/$defs/configTypeDeclaration" }],
    },
    $defs: {
        simpleConfigType: { enum: ["string", "integer", "boolean", "array", "object"] },
        configItemsType: {
            type: "object",
            required: ["type"],
            properties: {
                type: { oneOf: [{ $ref: "#/$defs/simpleConfigType" }, { $ref: "#/$defs/configItemsType" }] },
                items: { $ref: "#/$defs/configItemsType" },
            },
            if: { properties: { type: { const: "array" } } },
            then: { required: ["items"] },
        },
        configTypeDeclaration: {
            type: "object",
            additionalProperties: false,
            properties: {
                type: { $ref: "#/$defs/simpleConfigType" },
                items: { $ref: "#/$defs/configItemsType" },
                description: { type: "string" },
                secret: { type: "boolean" },
                default: {},
                value: {},
            },
        },
    },
};
const validateConfigSection = new Ajv2020({ allErrors: true, strict: false }).compile(CONFIG_SCHEMA);

/** `configKeyIsNamespacedByProject`. */
function namespacedByProject(projectName: string, key: string): boolean {
    return !key.includes(":") || key.startsWith(`${projectName}:`);
}

/** `isPrimitiveValue`: Go's string, int and bool (a YAML float decodes as float64, which is not). */
function isPrimitive(v: unknown): boolean {
    return typeof v === "string" || typeof v === "boolean" || (typeof v === "number" && Number.isInteger(v));
}

/** `InferFullTypeName`. */
export function inferFullTypeName(typeName: string, items?: ProjectConfigItemsType): string {
    return items ? `array<${inferFullTypeName(items.type, items.items)}>` : typeName;
}

/** `ValidateConfigValue`. `value` is what Go would hold: a string, or JSON decoded into `any`. */
export function validateConfigValue(typeName: string, items: ProjectConfigItemsType | undefined, value: unknown): boolean {
    if (typeName === "string") return typeof value === "string";
    if (typeName === "integer") {
        // int, a whole float64 (YAML and JSON numbers), or a string strconv.Atoi accepts.
        if (typeof value === "number") return Number.isInteger(value);
        if (typeof value === "string") return /^[+-]?[0-9]+$/.test(value);
        return false;
    }
    if (typeName === "boolean") return value === "true" || value === "false" || typeof value === "boolean";
    if (typeName === "object") return typeof value === "object" && value !== null && !Array.isArray(value);
    if (!Array.isArray(value) || items === undefined) return false;
    return value.every((item) => validateConfigValue(items.type, items.items, item));
}

/** Load Pulumi.yaml's name and config the way the CLI does: schema, shorthand rewrite, `Project.Validate`. */
export function loadProject(text: string): Project {
    const raw = YAML.parse(text) as { name?: unknown; config?: unknown };
    if (typeof raw?.name !== "string" || raw.name === "") throw new Error("project is missing a non-empty string 'name' attribute");
    const name = raw.name;
    if (!validateConfigSection(raw.config ?? null))
        throw new Error(
            `could not validate Pulumi.yaml: ${validateConfigSection.errors!.map((e) => `#/config${e.instancePath}: ${e.message}`).join("; ")}`,
        );
    const config: Record<string, ProjectConfigType> = {};
    for (const [key, v] of Object.entries((raw.config ?? {}) as Record<string, unknown>)) {
        // RewriteShorthandConfigValues: a primitive or a list is a default (project keys) or a value (others).
        if (isPrimitive(v) || Array.isArray(v)) config[key] = namespacedByProject(name, key) ? { default: v } : { value: v };
        else config[key] = (v ?? {}) as ProjectConfigType;
    }
    // Project.Validate
    for (const [key, t] of Object.entries(config)) {
        const hasDefault = t.default !== undefined && t.default !== null;
        const hasValue = t.value !== undefined && t.value !== null;
        if (hasDefault && hasValue) throw new Error(`project config '${key}' cannot have both a 'default' and 'value' attribute`);
        if (namespacedByProject(name, key)) {
            if (t.type === "array" && t.items === undefined)
                throw new Error(`The configuration key '${key}' declares an array but does not specify the underlying type via the 'items' attribute`);
            if (t.type !== undefined && hasDefault && !validateConfigValue(t.type, t.items, t.default))
                throw new Error(`The default value specified for configuration key '${key}' is not of the expected type '${inferFullTypeName(t.type, t.items)}'`);
        } else {
            if (t.type !== undefined) throw new Error(`Configuration key '${key}' is not namespaced by the project and should not define a type`);
            if (hasDefault) throw new Error(`Configuration key '${key}' is not namespaced by the project and should not define a default value.`);
            if (!hasValue) throw new Error(`Configuration key '${key}' is namespaced and must provide an attribute 'value'`);
        }
    }
    return { name, config };
}

// --- resource/config ----------------------------------------------------------------------------------------

/** `parseConfigKey`: a key without a namespace belongs to the project. */
function parseConfigKey(projectName: string, key: string): string {
    const full = key.includes(":") ? key : `${projectName}:${key}`;
    if (/[.[]/.test(full.slice(full.indexOf(":") + 1))) throw new Error(`config key ${full}: property paths are not modelled`);
    return full;
}

/** `isSecureValue`: a map with exactly one key, `secure`, holding a string. */
function isSecureRepr(v: unknown): v is { secure: string } {
    return typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).length === 1 && typeof (v as { secure?: unknown }).secure === "string";
}

/** `hasSecureValue`. */
function hasSecure(v: unknown): boolean {
    if (isSecureRepr(v)) return true;
    if (Array.isArray(v)) return v.some(hasSecure);
    if (typeof v === "object" && v !== null) return Object.values(v).some(hasSecure);
    return false;
}

/** `decryptObject`: every `{secure: ...}` inside replaced by its plaintext. */
function decryptObject(v: unknown, decrypt: (ciphertext: string) => string): unknown {
    if (isSecureRepr(v)) return decrypt(v.secure);
    if (Array.isArray(v)) return v.map((x) => decryptObject(x, decrypt));
    if (typeof v === "object" && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, decryptObject(x, decrypt)]));
    return v;
}

/** Plaintexts of ESC secrets, by the ciphertext this port gives them. */
type Keyring = Map<string, string>;
const standInDecrypt = (keyring: Keyring) => (ciphertext: string) => keyring.get(ciphertext) ?? DECRYPTED_STAND_IN;

function objectValue(obj: unknown, keyring: Keyring): ConfigValue {
    return {
        value: JSON.stringify(obj),
        secure: hasSecure(obj),
        object: true,
        plaintext: JSON.stringify(decryptObject(obj, standInDecrypt(keyring))),
    };
}

/** `Value.unmarshalValue` on one YAML node of a stack file. */
function stackValue(node: unknown, keyring: Keyring): ConfigValue {
    if (YAML.isScalar(node)) {
        // go-yaml decodes any scalar into the string it is written as; null into "".
        const text = node.type === "PLAIN" ? (node.source ?? String(node.value ?? "")) : String(node.value ?? "");
        return { value: text, secure: false, object: false, plaintext: text };
    }
    const obj = (node as YAML.Node).toJSON();
    if (isSecureRepr(obj)) return { value: obj.secure, secure: true, object: false, plaintext: standInDecrypt(keyring)(obj.secure) };
    return objectValue(obj, keyring);
}

/** A stack file's `config:` (config.Map) and `environment:` (the ESC environments it imports). */
export function readStackConfig(projectName: string, text: string, keyring: Keyring = new Map()): { config: ConfigMap; environments: string[] } {
    const doc = YAML.parseDocument(text, { uniqueKeys: true });
    if (doc.errors.length) throw new Error(doc.errors[0].message);
    const config: ConfigMap = new Map();
    const section = doc.get("config", true);
    if (YAML.isMap(section))
        for (const pair of section.items) config.set(parseConfigKey(projectName, String((pair.key as YAML.Scalar).value)), stackValue(pair.value, keyring));
    const env = doc.toJS()?.environment;
    const environments = Array.isArray(env) ? env.map(String) : env ? [String(env)] : [];
    return { config, environments };
}

/** `toPlaintext` for one ESC value, as the JSON a config object holds (secrets as `{secure: <ciphertext>}`). */
function escPlaintext(v: unknown, at: string, keyring: Keyring): unknown {
    if (typeof v === "string") {
        if (v.includes("${")) throw new Error(`${at}: ESC interpolation is not modelled`);
        return v;
    }
    if (Array.isArray(v)) return v.map((x, i) => escPlaintext(x, `${at}[${i}]`, keyring));
    if (typeof v === "object" && v !== null) {
        const keys = Object.keys(v);
        const fn = keys.find((k) => k.startsWith("fn::"));
        if (fn !== undefined) {
            if (fn !== "fn::secret" || keys.length !== 1) throw new Error(`${at}: ESC builtin ${fn} is not modelled`);
            const text = (v as Record<string, unknown>)[fn];
            if (typeof text !== "string") throw new Error(`${at}: fn::secret of a non-string is not modelled`);
            const ciphertext = `v1:esc-secret-${keyring.size}`;
            keyring.set(ciphertext, text);
            return { secure: ciphertext };
        }
        return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, escPlaintext(x, `${at}.${k}`, keyring)]));
    }
    throw new Error(`${at}: a non-string ESC scalar (${JSON.stringify(v)}) is not modelled`);
}

/** `toConfigMap`: an ESC environment's `values.pulumiConfig`, as config values. */
export function readEscEnvironment(projectName: string, text: string, keyring: Keyring): ConfigMap {
    const doc = YAML.parse(text) as { imports?: unknown; values?: { pulumiConfig?: Record<string, unknown> } };
    if (doc?.imports !== undefined) throw new Error("ESC imports are not modelled");
    const out: ConfigMap = new Map();
    for (const [rawKey, v] of Object.entries(doc?.values?.pulumiConfig ?? {})) {
        const key = parseConfigKey(projectName, rawKey);
        const pt = escPlaintext(v, key, keyring);
        out.set(key, typeof pt === "string" ? { value: pt, secure: false, object: false, plaintext: pt } : isSecureRepr(pt) ? { value: pt.secure, secure: true, object: false, plaintext: keyring.get(pt.secure)! } : objectValue(pt, keyring));
    }
    return out;
}

/** JSON merge patch (RFC 7386) of `patch` onto `target`. */
function mergePatch(target: unknown, patch: unknown): unknown {
    if (typeof patch !== "object" || patch === null || Array.isArray(patch) || isSecureRepr(patch)) return patch;
    const out: Record<string, unknown> = typeof target === "object" && target !== null && !Array.isArray(target) && !isSecureRepr(target) ? { ...(target as object) } : {};
    for (const [k, v] of Object.entries(patch)) {
        if (v === null) delete out[k];
        else out[k] = mergePatch(out[k], v);
    }
    return out;
}

// --- config.go ------------------------------------------------------------------------------------------------

/** `missingStackConfigurationKeysError` with `formatMissingKeys`. */
function missingKeysError(keys: string[], stack: string): Error {
    const sorted = [...keys].sort();
    const list =
        sorted.length === 1
            ? `'${sorted[0]}'`
            : sorted.map((k, i) => (i === sorted.length - 1 ? `and '${k}'` : i === sorted.length - 2 ? `'${k}' ` : `'${k}', `)).join("");
    return new Error(`Stack '${stack}' is missing configuration ${keys.length > 1 ? "values" : "value"} ${list}`);
}

/** `createConfigValue`: a declared default, always a plain value. */
function createConfigValue(raw: unknown): ConfigValue {
    if (isPrimitive(raw)) {
        const text = String(raw);
        return { value: text, secure: false, object: false, plaintext: text };
    }
    const json = JSON.stringify(raw);
    return { value: json, secure: false, object: true, plaintext: json };
}

/** `validateStackConfigValue`. */
function validateStackConfigValue(stack: string, key: string, t: ProjectConfigType, v: ConfigValue): void {
    if (t.secret && !v.secure) throw new Error(`Stack '${stack}' with configuration key '${key}' must be encrypted as it's secret`);
    const content: unknown = v.object ? JSON.parse(v.plaintext) : v.plaintext;
    if (!validateConfigValue(t.type!, t.items, content))
        throw new Error(`Stack '${stack}' with configuration key '${key}' must be of type '${inferFullTypeName(t.type!, t.items)}'`);
}

/** `validateStackConfigValues`: every explicitly typed declaration against the merged config. */
function validateStackConfigValues(stack: string, project: Project, config: ConfigMap): void {
    for (const key of Object.keys(project.config).sort()) {
        const t = project.config[key];
        // stackConfig.Get on a key that is not there yields the zero Value: "", plain.
        const v = config.get(parseConfigKey(project.name, key)) ?? { value: "", secure: false, object: false, plaintext: "" };
        if (t.type !== undefined) validateStackConfigValue(stack, key, t, v);
    }
}

/**
 * `mergeConfig` with validation on, as `pulumi preview` / `pulumi up` run it
 * (`ValidateStackConfigAndApplyProjectConfig`): the ESC values merged in, the declared defaults applied, every
 * typed key validated. Throws the CLI's first error; returns the config the program would receive.
 */
export function mergeConfig(stack: string, project: Project, stackConfig: ConfigMap, envConfig: ConfigMap, keyring: Keyring = new Map()): ConfigMap {
    const merged: ConfigMap = new Map(stackConfig);
    for (const [key, envValue] of envConfig) {
        const onStack = merged.get(key);
        if (onStack === undefined) merged.set(key, envValue);
        else if (!onStack.object || !envValue.object) merged.set(key, onStack);
        // Value.Merge: JSON merge patch semantics, the stack's value preferred over the environment's.
        else merged.set(key, objectValue(mergePatch(JSON.parse(envValue.value), JSON.parse(onStack.value)), keyring));
    }
    const missing: string[] = [];
    for (const key of Object.keys(project.config).sort()) {
        const t = project.config[key];
        const full = parseConfigKey(project.name, key);
        const hasDefault = t.default !== undefined && t.default !== null;
        const hasValue = t.value !== undefined && t.value !== null;
        if (merged.has(full)) continue;
        if (!hasValue && !hasDefault) {
            if (full.startsWith(`${project.name}:`)) missing.push(key);
            continue;
        }
        merged.set(full, createConfigValue(hasDefault ? t.default : t.value));
    }
    if (missing.length) throw missingKeysError(missing, stack);
    validateStackConfigValues(stack, project, merged);
    return merged;
}
