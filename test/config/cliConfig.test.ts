/**
 * Every stack passes the Pulumi CLI's own config step (load Pulumi.yaml, merge the ESC environment and the
 * declared defaults, validate: test/config/pulumiCliConfig.ts, a port of pulumi/pulumi's `mergeConfig` and
 * `validateStackConfigValues`), and hands the program a config it accepts.
 *
 * The same step on the declarations before issue 12 (test/config/fixtures/Pulumi.before-issue-12.yaml: nine
 * `secret: true` keys with `default: ""`) fails every stack, as the real CLI did: the default is merged in as a
 * plain value, then refused as an unencrypted secret.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import {
    CONFIG_NAMESPACE,
    objectConfigSource,
    parseStackConfig,
    PLAIN_KEYS,
    projectFileReader,
    SECRET_KEYS,
    StackConfigError,
} from "../../components/config";
import { REPO_ROOT } from "../support/program";
import { ConfigMap, loadProject, mergeConfig, Project, readEscEnvironment, readStackConfig, validateConfigValue } from "./pulumiCliConfig";

const STACKS_DIR = path.join(REPO_ROOT, "stacks");
const OLD_PROJECT = path.join(__dirname, "fixtures", "Pulumi.before-issue-12.yaml");
const stackNames = fs
    .readdirSync(STACKS_DIR)
    .map((f) => /^Pulumi\.([^.]+)\.yaml$/.exec(f)?.[1])
    .filter((s): s is string => s !== undefined)
    .sort();

const readProject = (file: string) => loadProject(fs.readFileSync(file, "utf8"));

/** The ESC environment `falco-nodes/prod` is templated in stacks/environments/falco-nodes-prod.yaml. */
const escTemplate = (env: string) => path.join(STACKS_DIR, "environments", `${env.replace(/\//g, "-")}.yaml`);

/**
 * The CLI's step for one stack: its file (with the keys in `set` replaced), its ESC environments (from their
 * templates) unless `withoutEnvironment`.
 */
function cliStep(project: Project, stack: string, opts: { withoutEnvironment?: boolean; set?: Record<string, unknown> } = {}): ConfigMap {
    const keyring = new Map<string, string>();
    const doc = YAML.parseDocument(fs.readFileSync(path.join(STACKS_DIR, `Pulumi.${stack}.yaml`), "utf8"));
    for (const [k, v] of Object.entries(opts.set ?? {})) doc.setIn(["config", k], v);
    const { config, environments } = readStackConfig(project.name, doc.toString(), keyring);
    const env: ConfigMap = new Map();
    if (!opts.withoutEnvironment)
        for (const e of environments) for (const [k, v] of readEscEnvironment(project.name, fs.readFileSync(escTemplate(e), "utf8"), keyring)) env.set(k, v);
    return mergeConfig(stack, project, config, env, keyring);
}

/** What the program then reads: `PULUMI_CONFIG` (decrypted text) and `PULUMI_CONFIG_SECRET_KEYS`. */
function programConfig(merged: ConfigMap) {
    const values = Object.fromEntries([...merged].map(([k, v]) => [k, v.plaintext]));
    const secretKeys = [...merged].filter(([, v]) => v.secure).map(([k]) => k);
    return parseStackConfig(objectConfigSource(values, secretKeys), { readFile: projectFileReader(REPO_ROOT) });
}

describe("Pulumi CLI config step (port of pulumi/pulumi mergeConfig + validateStackConfigValues)", () => {
    const project = readProject(path.join(REPO_ROOT, "Pulumi.yaml"));

    it("finds the stacks", () => assert.deepStrictEqual(stackNames, ["baremetal", "dev", "prod"]));

    it("Pulumi.yaml loads: schema, Project.Validate, every default of its declared type", () => {
        assert.strictEqual(project.name, CONFIG_NAMESPACE);
        assert.deepStrictEqual(Object.keys(project.config).sort(), [...PLAIN_KEYS, ...SECRET_KEYS].sort());
    });

    it("types every key, the structured ones as objects or lists of objects, so the CLI checks their shape", () => {
        for (const [k, t] of Object.entries(project.config)) assert.ok(t.type !== undefined, `${k} has a type`);
        for (const k of ["falco", "aws", "ssh", "cluster"]) assert.strictEqual(project.config[k].type, "object", k);
        assert.deepStrictEqual([project.config.nodes.type, project.config.nodes.items], ["array", { type: "object" }]);
        assert.deepStrictEqual([project.config.ruleFiles.type, project.config.ruleFiles.items], ["array", { type: "string" }]);
    });

    for (const stack of stackNames) {
        it(`${stack}: passes with its ESC environment, and the program accepts what the CLI hands it`, () => {
            const merged = cliStep(project, stack);
            const cfg = programConfig(merged);
            for (const k of SECRET_KEYS) {
                const v = merged.get(`${CONFIG_NAMESPACE}:${k}`)!;
                // Set ones come encrypted; unset ones are the plain "" default, which the program reads as unset.
                assert.ok(v.secure || v.plaintext === "", `${k} is either a secret or unset`);
                assert.strictEqual(cfg.secrets[k], v.secure, `${k}: the program sees it ${v.secure ? "set" : "unset"}`);
            }
        });

        it(`${stack}: passes without its ESC environment too (secrets set with pulumi config set --secret instead)`, () => {
            const merged = cliStep(project, stack, { withoutEnvironment: true });
            for (const k of SECRET_KEYS) assert.strictEqual(merged.get(`${CONFIG_NAMESPACE}:${k}`)!.value, "", `${k} defaults to unset`);
        });
    }

    it("the baremetal stack without its environment: the CLI lets it through, the program names the missing secret", () => {
        const merged = cliStep(project, "baremetal", { withoutEnvironment: true });
        assert.throws(() => programConfig(merged), (e: StackConfigError) => {
            assert.match(e.message, /falco-nodes:sshPrivateKey: required to log in to the existing nodes/);
            return true;
        });
    });

    describe("what the types let the CLI refuse before the program runs", () => {
        const refuses = (stack: string, set: Record<string, unknown>, message: RegExp) => assert.throws(() => cliStep(project, stack, { set }), message);

        it("a node list written as one map, or a node as a bare name", () => {
            refuses("dev", { "falco-nodes:nodes": { name: "dev-1", kind: "aws" } }, /^Error: Stack 'dev' with configuration key 'nodes' must be of type 'array<object>'$/);
            refuses("dev", { "falco-nodes:nodes": ["dev-1"] }, /key 'nodes' must be of type 'array<object>'/);
        });

        it("fleet settings given as a list or a string", () => {
            refuses("prod", { "falco-nodes:cluster": ["enabled"] }, /key 'cluster' must be of type 'object'/);
            refuses("baremetal", { "falco-nodes:ssh": "falco-deploy" }, /key 'ssh' must be of type 'object'/);
            refuses("dev", { "falco-nodes:ruleFiles": "stacks/rules/site.yaml" }, /key 'ruleFiles' must be of type 'array<string>'/);
        });

        it("a secret given as a map (say, a kubeconfig pasted as YAML) instead of its text", () => {
            refuses("dev", { "falco-nodes:kubeconfig": { apiVersion: "v1" } }, /key 'kubeconfig' must be of type 'string'/);
        });

        it("but not a secret in plain text: the CLI cannot tell it from an unset optional secret; the program refuses it", () => {
            const merged = cliStep(project, "dev", { set: { "falco-nodes:httpOutputUrl": "https://hooks.example.com/token" } });
            assert.throws(() => programConfig(merged), /falco-nodes:httpOutputUrl: is stored in plain text: run `pulumi config rm falco-nodes:httpOutputUrl`/);
        });
    });

    describe("the declarations before issue 12 (fixture)", () => {
        const old = readProject(OLD_PROJECT);

        it("load (the CLI accepts the project file itself)", () => assert.strictEqual(old.config.sshPrivateKey.secret, true));

        for (const stack of stackNames)
            it(`${stack}: refused, a declared secret's "" default merged in as a plain value`, () => {
                assert.throws(() => cliStep(old, stack), /^Error: Stack '[a-z]+' with configuration key '[A-Za-z]+' must be encrypted as it's secret$/);
            });

        it("dev fails exactly as the CLI reported it", () => {
            assert.throws(() => cliStep(old, "dev"), { message: "Stack 'dev' with configuration key 'bastionPrivateKey' must be encrypted as it's secret" });
        });
    });

    describe("the port against upstream's own rules", () => {
        it("ValidateConfigValue: strings, integers (also as text), booleans (also as text), objects, typed lists", () => {
            assert.ok(validateConfigValue("string", undefined, ""));
            assert.ok(!validateConfigValue("string", undefined, {}));
            assert.ok(validateConfigValue("integer", undefined, "22") && validateConfigValue("integer", undefined, 22) && !validateConfigValue("integer", undefined, 2.5));
            assert.ok(validateConfigValue("boolean", undefined, "false") && !validateConfigValue("boolean", undefined, "no"));
            assert.ok(validateConfigValue("object", undefined, {}) && !validateConfigValue("object", undefined, []) && !validateConfigValue("object", undefined, "{}"));
            assert.ok(validateConfigValue("array", { type: "object" }, [{}, {}]) && !validateConfigValue("array", { type: "object" }, [{}, "x"]));
            assert.ok(!validateConfigValue("array", undefined, []), "an array without items never validates");
        });

        it("a declared key without a default is required by every stack", () => {
            const strict = loadProject("name: falco-nodes\nruntime: nodejs\nconfig:\n  sshPrivateKey:\n    type: string\n    secret: true\n");
            assert.throws(() => cliStep(strict, "dev"), { message: "Stack 'dev' is missing configuration value 'sshPrivateKey'" });
        });

        it("Project.Validate refuses a default of the wrong type and a list without items, the schema a type it does not know", () => {
            assert.throws(() => loadProject("name: p\nruntime: nodejs\nconfig:\n  a:\n    type: object\n    default: []\n"), /default value specified for configuration key 'a' is not of the expected type 'object'/);
            assert.throws(() => loadProject("name: p\nruntime: nodejs\nconfig:\n  a:\n    type: map\n"), /could not validate Pulumi.yaml/);
            assert.throws(() => loadProject("name: p\nruntime: nodejs\nconfig:\n  a:\n    type: array\n"), /'a' declares an array but does not specify the underlying type/);
        });
    });
});
