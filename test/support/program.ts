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

// Self-contained on purpose: the program's suite should not move when a component's test helpers do.
const SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

/** Is this recorded input value a secret (the engine's secret wrapper)? */
export function isSecretValue(v: unknown): v is { value: unknown } {
    return typeof v === "object" && v !== null && (v as Record<string, unknown>)[SIG_KEY] === SECRET_SIG;
}

/** The value with every secret wrapper removed, at any depth. */
export function reveal(v: any): any {
    if (isSecretValue(v)) return reveal(v.value);
    if (Array.isArray(v)) return v.map(reveal);
    if (typeof v === "object" && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, reveal(x)]));
    return v;
}

/** Well-formed OpenSSH ed25519 key material, distinct per resource name. */
function fakeKeyPair(name: string): { publicKeyOpenssh: string; privateKeyOpenssh: string } {
    const pub = Buffer.from(`ed25519-public-${name}`).toString("base64");
    const priv = Buffer.from(`openssh-key-v1 private ${name} `.repeat(4)).toString("base64").replace(/(.{70})/g, "$1\n");
    return {
        publicKeyOpenssh: `ssh-ed25519 ${pub}\n`,
        privateKeyOpenssh: `-----BEGIN OPENSSH PRIVATE KEY-----\n${priv.trim()}\n-----END OPENSSH PRIVATE KEY-----\n`,
    };
}

const FAKE_AMI_ID = "ami-0123456789abcdef0";
const FAKE_VPC_ID = "vpc-0aaaabbbbccccdddd";
export const FAKE_PRIVATE_IP = "10.0.1.23";
export const FAKE_PUBLIC_IP = "198.51.100.7";

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
    if (/PrivateKey$/.test(key)) return `-----BEGIN OPENSSH PRIVATE KEY-----\n${SECRET_MARKER}-${key}\n-----END OPENSSH PRIVATE KEY-----\n`;
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

export interface RecordedResource {
    type: string;
    name: string;
    inputs: Record<string, any>;
    parent?: string;
}

export interface ProgramRun {
    resources: RecordedResource[];
    /** The program's exports (stack outputs), resolved. */
    outputs: Record<string, any>;
    ofType(type: string): RecordedResource[];
}

/** Mocks that answer like AWS, TLS, the command provider and Kubernetes would, just enough to wire through. */
export function installProgramMocks(resources: RecordedResource[]): void {
    pulumi.runtime.setMocks(
        {
            newResource(args: pulumi.runtime.MockResourceArgs) {
                resources.push({ type: args.type, name: args.name, inputs: args.inputs });
                const plain = reveal(args.inputs);
                const id = `${args.name}-id`;
                switch (args.type) {
                    case "tls:index/privateKey:PrivateKey":
                        return { id, state: { ...args.inputs, ...fakeKeyPair(args.name) } };
                    case "aws:ec2/keyPair:KeyPair":
                        return { id, state: { ...args.inputs, keyName: args.name } };
                    case "aws:ec2/instance:Instance":
                        return {
                            id: `i-${args.name}`,
                            state: { ...args.inputs, privateIp: FAKE_PRIVATE_IP, publicIp: plain.associatePublicIpAddress ? FAKE_PUBLIC_IP : "" },
                        };
                    case "aws:iam/role:Role":
                    case "aws:iam/instanceProfile:InstanceProfile":
                        return { id, state: { ...args.inputs, name: args.name, arn: `arn:aws:iam::123456789012:role/${args.name}` } };
                    case "command:remote:Command":
                        return { id, state: { ...args.inputs, stdout: "", stderr: "" } };
                    case "random:index/randomPassword:RandomPassword":
                        return { id, state: { ...args.inputs, result: "generated-password" } };
                    default:
                        return { id, state: args.inputs };
                }
            },
            call(args: pulumi.runtime.MockCallArgs) {
                switch (args.token) {
                    case "aws:ec2/getAmi:getAmi":
                        return { id: FAKE_AMI_ID, imageId: FAKE_AMI_ID };
                    case "aws:ec2/getSubnet:getSubnet":
                        return { id: args.inputs.id, vpcId: FAKE_VPC_ID };
                    case "aws:index/getPartition:getPartition":
                        return { id: "aws", partition: "aws", dnsSuffix: "amazonaws.com" };
                    default:
                        return args.inputs;
                }
            },
        },
        "falco-nodes",
        "test",
        true,
    );
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
    if (pulumi.Output.isInstance(v)) return resolveDeep(await new Promise((r) => (v as pulumi.Output<any>).apply((x) => r(x))));
    if (Array.isArray(v)) return Promise.all(v.map(resolveDeep));
    if (v && typeof v === "object" && !(v instanceof pulumi.Resource)) {
        const out: Record<string, any> = {};
        for (const [k, x] of Object.entries(v)) out[k] = await resolveDeep(x);
        return out;
    }
    return v;
}

/** Wait until no resource has been registered for a moment. */
export async function settled(resources: RecordedResource[], quietMs = 50): Promise<void> {
    let count = -1;
    while (count !== resources.length) {
        count = resources.length;
        await new Promise((r) => setTimeout(r, quietMs));
    }
}

/** Evaluate `index.ts` with this config under mocks, recording into `resources`. Throws what the program throws. */
export async function runProgram(c: CliConfig, resources: RecordedResource[] = []): Promise<ProgramRun> {
    installProgramMocks(resources);
    setCliConfig(c);
    freshProgramModules();
    const mod = require(PROGRAM) as Record<string, unknown>;
    const outputs: Record<string, any> = {};
    for (const [k, v] of Object.entries(mod)) if (k !== "__esModule") outputs[k] = await resolveDeep(v);
    await settled(resources);
    return { resources, outputs, ofType: (t) => resources.filter((r) => r.type === t) };
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
