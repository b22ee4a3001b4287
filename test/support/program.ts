/**
 * Run the program (`index.ts`) under Pulumi mocks with a stack's config, as `pulumi preview` would hand it over:
 * the config as the CLI's `PULUMI_CONFIG` JSON (project defaults from Pulumi.yaml applied, secrets decrypted),
 * the secret keys in `PULUMI_CONFIG_SECRET_KEYS`, and a fresh module cache so the program reads it anew.
 *
 * Secrets are dummies (`dummy-secret:<key>`), so a test can search every recorded input for them and prove
 * that no secret reaches a resource in plain text.
 */
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as YAML from "yaml";
import { isSecureValue, readProjectConfig, readStackFile } from "../../components/config/stackFile";
import { pemArmour } from "./fakeSecrets";
import { isSecretValue, Mocks, outputOf, Recorded, settled, setupCloudMocks } from "./mocks";

/** bench/program.ts waits on the program's resources with it, through this module. */
export { settled };

export const REPO_ROOT = path.resolve(__dirname, "..", "..");
export const PROGRAM = path.join(REPO_ROOT, "index.ts");

/** What `PULUMI_CONFIG` / `PULUMI_CONFIG_SECRET_KEYS` carry. */
export interface CliConfig {
    config: Record<string, string>;
    secretKeys: string[];
}

/** Marks every dummy secret, so a test can search recorded inputs for it. */
export const SECRET_MARKER = "dummysecret";

/** A well-formed stand-in for each secret (the components validate URLs and keys), carrying the marker. */
export function dummySecret(fullKey: string): string {
    const key = fullKey.replace(/^falco-nodes:/, "");
    if (/PrivateKey$/.test(key)) return pemArmour("OPENSSH", `${SECRET_MARKER}-${key}`);
    if (key === "kubeconfig") return `apiVersion: v1\nkind: Config\ncurrent-context: ${SECRET_MARKER}\n`;
    if (/Url$|Address$/.test(key)) return `https://alerts.example.com/hook/${SECRET_MARKER}-${key}`;
    return `${SECRET_MARKER}-${key}`;
}

/** Config values travel as strings: structured values as JSON, like the CLI sends them. */
function asConfigString(v: unknown): string {
    return typeof v === "string" ? v : typeof v === "object" && v !== null ? JSON.stringify(v) : String(v);
}

/** The keys an ESC environment template (`stacks/environments/<name>.yaml`) provides, and which are secrets. */
export function escTemplateKeys(file: string): { key: string; secret: boolean }[] {
    const doc = YAML.parse(fs.readFileSync(file, "utf8")) ?? {};
    const config = (doc.values?.pulumiConfig ?? {}) as Record<string, unknown>;
    return Object.entries(config).map(([key, v]) => ({
        key,
        secret: typeof v === "object" && v !== null && "fn::secret" in (v as object),
    }));
}

/** ESC template file for an environment name like `falco-nodes/prod`. */
export function escTemplateFor(env: string): string {
    return path.join(REPO_ROOT, "stacks", "environments", `${env.replace(/\//g, "-")}.yaml`);
}

/** The config the CLI would pass for a stack file: ESC values, then the file, then project defaults. */
export function cliConfigForStackFile(file: string): CliConfig {
    const f = readStackFile(file);
    const config: Record<string, string> = {};
    const secretKeys = new Set<string>();
    for (const env of f.environments)
        for (const { key, secret } of escTemplateKeys(escTemplateFor(env))) {
            config[key] = secret ? dummySecret(key) : "";
            if (secret) secretKeys.add(key);
        }
    for (const [key, value] of Object.entries(f.allValues)) {
        if (isSecureValue(value)) {
            config[key] = dummySecret(key);
            secretKeys.add(key);
        } else config[key] = asConfigString(value);
    }
    for (const [key, decl] of Object.entries(readProjectConfig(f.projectDir)))
        if (!(key in config) && decl.default !== undefined) config[key] = asConfigString(decl.default);
    return { config, secretKeys: [...secretKeys] };
}

/** A config map from plain `falco-nodes:*` values (tests of the program's own checks). */
export function cliConfig(values: Record<string, unknown>, secrets: string[] = []): CliConfig {
    const config: Record<string, string> = {};
    for (const [k, v] of Object.entries(values)) config[k] = asConfigString(v);
    for (const k of secrets) config[k] = dummySecret(k);
    return { config, secretKeys: secrets };
}

export interface ProgramRun {
    resources: Recorded[];
    /** The program's exports (stack outputs), resolved. */
    outputs: Record<string, any>;
    ofType(type: string): Recorded[];
}

/** The shared cloud mocks (test/support/mocks.ts), as `pulumi preview` runs, recording into `resources`. */
export function installProgramMocks(resources: Recorded[]): Mocks {
    return setupCloudMocks({ preview: true, into: resources });
}

/** Forget every module of this repository, so `index.ts` runs again with the current config. */
export function freshProgramModules(): void {
    for (const id of Object.keys(require.cache))
        if (id.startsWith(REPO_ROOT + path.sep) && !id.includes(`${path.sep}node_modules${path.sep}`) && !id.includes(`${path.sep}test${path.sep}`))
            delete require.cache[id];
}

/** Set the config the way the CLI does: the environment, and the SDK's store read from it. */
export function setCliConfig(c: CliConfig): void {
    process.env["PULUMI_CONFIG"] = JSON.stringify(c.config);
    process.env["PULUMI_CONFIG_SECRET_KEYS"] = JSON.stringify(c.secretKeys);
    pulumi.runtime.setAllConfig(c.config, c.secretKeys);
}

/** Undo `setCliConfig`, so suites that run later see no stack config. */
export function clearCliConfig(): void {
    delete process.env["PULUMI_CONFIG"];
    delete process.env["PULUMI_CONFIG_SECRET_KEYS"];
    pulumi.runtime.setAllConfig({}, []);
}

/** Resolve every Output inside a value (plain objects and arrays of outputs, as stack exports are). */
export async function resolveDeep(v: any): Promise<any> {
    if (pulumi.Output.isInstance(v)) return resolveDeep(await outputOf(v as pulumi.Output<any>));
    if (Array.isArray(v)) return Promise.all(v.map(resolveDeep));
    if (v && typeof v === "object" && !(v instanceof pulumi.Resource)) {
        const out: Record<string, any> = {};
        for (const [k, x] of Object.entries(v)) out[k] = await resolveDeep(x);
        return out;
    }
    return v;
}

/** Evaluate `index.ts` with this config under mocks, recording into `resources`. Throws what the program throws. */
export async function runProgram(c: CliConfig, resources: Recorded[] = []): Promise<ProgramRun> {
    const mocks = installProgramMocks(resources);
    setCliConfig(c);
    freshProgramModules();
    const mod = require(PROGRAM) as Record<string, unknown>;
    const outputs: Record<string, any> = {};
    for (const [k, v] of Object.entries(mod)) if (k !== "__esModule") outputs[k] = await resolveDeep(v);
    await settled(resources, 50);
    return { resources, outputs, ofType: (t) => mocks.ofType(t) };
}

/** Every path in a recorded input where a string contains `needle` outside a secret wrapper. */
export function plainOccurrences(v: any, needle: string, at = "", out: string[] = []): string[] {
    if (isSecretValue(v)) return out;
    if (typeof v === "string") {
        if (v.includes(needle)) out.push(at || "(root)");
    } else if (Array.isArray(v)) v.forEach((x, i) => plainOccurrences(x, needle, `${at}[${i}]`, out));
    else if (v && typeof v === "object") for (const [k, x] of Object.entries(v)) plainOccurrences(x, needle, at ? `${at}.${k}` : k, out);
    return out;
}
