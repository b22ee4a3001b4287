/**
 * The program's config contract: Pulumi.yaml declares exactly the keys the parser reads, the stack files and
 * their ESC templates agree with it, bad config stops the program before any resource, and the render CLI's
 * reader (`loadStackConfigFile`) sees what the program sees.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import {
    loadStackConfigFile,
    objectConfigSource,
    parseStackConfig,
    PLAIN_KEYS,
    projectFileReader,
    readProjectConfig,
    readStackFile,
    SECRET_KEYS,
} from "../../components/config";
import { knownFields, rulesSchemaErrors } from "../support/falcoReference";
import {
    clearCliConfig,
    cliConfig,
    cliConfigForStackFile,
    escTemplateFor,
    escTemplateKeys,
    REPO_ROOT,
    runProgram,
} from "../support/program";
import { Recorded } from "../support/mocks";

const STACKS_DIR = path.join(REPO_ROOT, "stacks");
const stackFiles = fs.readdirSync(STACKS_DIR).filter((f) => /^Pulumi\.[^.]+\.ya?ml$/.test(f)).map((f) => path.join(STACKS_DIR, f));

describe("program: config contract", function () {
    this.timeout(120_000);
    after(clearCliConfig);

    describe("Pulumi.yaml", () => {
        const project = YAML.parse(fs.readFileSync(path.join(REPO_ROOT, "Pulumi.yaml"), "utf8"));
        const declared = readProjectConfig(REPO_ROOT);

        it("runs index.ts, not the package entry point the library exports", () => {
            assert.strictEqual(project.main, "index.ts");
            assert.ok(fs.existsSync(path.join(REPO_ROOT, project.main)));
        });

        it("declares exactly the keys the program reads, each with a description", () => {
            assert.deepStrictEqual(Object.keys(declared).sort(), [...PLAIN_KEYS, ...SECRET_KEYS].map((k) => `falco-nodes:${k}`).sort());
            for (const [k, d] of Object.entries(declared)) assert.ok((d.description ?? "").length > 20, `${k} needs a description`);
        });

        it("declares every secret an optional string (default \"\": unset), without `secret: true`", () => {
            // The CLI merges a declared default in as a plain value, then refuses a `secret: true` key that is
            // not encrypted: `secret: true` with `default: ""` fails every stack that leaves the key unset
            // (test/config/cliConfig.test.ts runs that step). The program refuses a plain-text secret instead.
            for (const k of SECRET_KEYS) {
                const d = declared[`falco-nodes:${k}`];
                assert.notStrictEqual(d.secret, true, `${k}: no secret: true`);
                assert.strictEqual(d.type, "string");
                assert.strictEqual(d.default, "", `${k}: default "" (optional, unset)`);
                assert.match(d.description ?? "", /^Secret/, `${k}: its description says it is a secret`);
            }
            for (const k of PLAIN_KEYS) assert.notStrictEqual(declared[`falco-nodes:${k}`].secret, true, `${k} is not secret`);
        });

        it("its defaults are the parser's defaults", () => {
            const defaults = Object.fromEntries(Object.entries(declared).filter(([, d]) => d.default !== undefined).map(([k, d]) => [k, d.default]));
            assert.deepStrictEqual(parseStackConfig(objectConfigSource(defaults)), parseStackConfig(objectConfigSource({})));
        });
    });

    describe("stack files", () => {
        for (const file of stackFiles) {
            const name = path.basename(file);
            it(`${name}: valid, and read the same by the render CLI's loader and the program's config path`, () => {
                const fromFile = loadStackConfigFile(file);
                const cli = cliConfigForStackFile(file);
                const fromCli = parseStackConfig(objectConfigSource(cli.config, cli.secretKeys), { readFile: projectFileReader(REPO_ROOT) });
                assert.deepStrictEqual(fromFile.nodes.map((n) => [n.name, n.kind, n.falco]), fromCli.nodes.map((n) => [n.name, n.kind, n.falco]));
                assert.deepStrictEqual(fromFile.cluster, fromCli.cluster);
            });

            it(`${name}: every secret it needs comes encrypted or from an ESC environment with a template`, () => {
                const f = readStackFile(file);
                for (const [k, v] of Object.entries(f.allValues)) {
                    const bare = k.replace(/^falco-nodes:/, "");
                    if ((SECRET_KEYS as readonly string[]).includes(bare))
                        assert.ok(typeof v === "object" && v !== null && "secure" in v, `${k} must be encrypted (pulumi config set --secret)`);
                }
                for (const env of f.environments) {
                    const template = escTemplateFor(env);
                    assert.ok(fs.existsSync(template), `ESC environment ${env} needs its template at ${path.relative(REPO_ROOT, template)}`);
                    for (const { key, secret } of escTemplateKeys(template)) {
                        const bare = key.replace(/^falco-nodes:/, "");
                        if ((SECRET_KEYS as readonly string[]).includes(bare)) assert.ok(secret, `${template}: ${key} must be fn::secret`);
                    }
                }
                // With the ESC values present as the CLI would merge them, nothing required is missing.
                const cli = cliConfigForStackFile(file);
                parseStackConfig(objectConfigSource(cli.config, cli.secretKeys), { readFile: projectFileReader(REPO_ROOT) });
            });
        }

        const ruleFiles = fs.existsSync(path.join(STACKS_DIR, "rules")) ? fs.readdirSync(path.join(STACKS_DIR, "rules")) : [];
        for (const rf of ruleFiles)
            it(`stacks/rules/${rf}: a valid Falco rules file whose output fields exist`, () => {
                const items = YAML.parse(fs.readFileSync(path.join(STACKS_DIR, "rules", rf), "utf8"));
                assert.deepStrictEqual(rulesSchemaErrors(items), []);
                const fields = knownFields();
                for (const item of items)
                    for (const m of String(item.output ?? "").matchAll(/%([a-z][A-Za-z0-9_.]*)/g))
                        assert.ok(fields.has(m[1]), `${item.rule}: unknown field %${m[1]}`);
            });
    });

    describe("index.ts with bad config", () => {
        it("fails before declaring any resource, listing every bad key with its fix", async () => {
            const bad = cliConfig({
                "falco-nodes:nodes": [
                    { name: "web-1", kind: "existing", ssh: { host: "10.0.0.1", user: "deploy" } },
                    { name: "Web 2", kind: "vm" },
                ],
                "falco-nodes:falco": { driver: "ebpf" },
            });
            const recorded: Recorded[] = [];
            await assert.rejects(
                () => runProgram(bad, recorded),
                (e: Error) => {
                    assert.match(e.message, /falco-nodes:falco\.driver: must be one of: modern_ebpf, kmod, auto/);
                    assert.match(e.message, /falco-nodes:nodes\[0\]\.ssh\.hostKey: required/);
                    assert.match(e.message, /falco-nodes:nodes\[1\]\.name/);
                    assert.match(e.message, /falco-nodes:nodes\[1\]\.kind/);
                    return true;
                },
            );
            await new Promise((r) => setTimeout(r, 100));
            assert.deepStrictEqual(recorded, [], "no resource declared");
        });

        it("refuses a secret passed in plain text", async () => {
            const plain = cliConfig({ "falco-nodes:kubeconfig": "apiVersion: v1" });
            await assert.rejects(() => runProgram(plain), /falco-nodes:kubeconfig: is stored in plain text/);
        });

        it("runs a minimal stack with nothing configured (no nodes, no resources)", async () => {
            const run = await runProgram(cliConfig({}));
            assert.deepStrictEqual(run.outputs.nodes, {});
            assert.strictEqual(run.outputs.cluster, undefined);
            assert.strictEqual(run.resources.length, 0);
        });
    });
});
