/**
 * The components as a package another program imports: `npm run build` emits JavaScript and .d.ts, `npm pack`
 * ships them (and the files they read at run time), and a separate program that installs the tarball next to its
 * own, different `@pulumi/pulumi` 3.x (from the npm registry) shares that one copy of the SDK, can
 * `import { FalcoHost, AwsFalcoNode, FalcoCluster } from "falco-nodes"`, type-check against it, construct each
 * component under mocks, and compile and run every TypeScript example of README.md.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { SCRIPT_PARTS } from "../../components/host/installScript";
import { installConsumer, run, writeConsumer } from "../support/consumer";
import { fakeOpensshPrivateKey } from "../support/fakeSecrets";
import { dummySecret, REPO_ROOT } from "../support/program";

const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "package.json"), "utf8"));
const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICGs/MbsDJVGgX3toQvta8TevR8slzykb4it4nBZjqrW";
/** What the packages share with their importer: published as peer ranges, pinned exactly for this repository. */
const SHARED = ["@pulumi/pulumi", "@pulumi/aws", "@pulumi/kubernetes"];
/** The consumer's SDK: another 3.x than ours (the floor of our peer range), from the npm registry. */
const CONSUMER_SDK = "3.200.0";

/** Does `version` satisfy `range`, for the caret ranges we publish (`^X.Y.Z`: same major, not lower)? */
function satisfiesCaret(version: string, range: string): boolean {
    const m = /^\^([0-9]+)\.([0-9]+)\.([0-9]+)$/.exec(range);
    assert.ok(m, `${range}: we publish caret ranges only`);
    const [maj, min, pat] = m.slice(1).map(Number);
    const [a, b, c] = version.split(".").map(Number);
    return a === maj && (b > min || (b === min && c >= pat));
}

/** The cloud mocks a consumer program installs, recording each resource's type into `types`. */
const CONSUMER_MOCKS = `
const pulumi = require("@pulumi/pulumi");
const types = [];
const PUB = "${HOST_KEY}\\n";
const PRIV = ${JSON.stringify(fakeOpensshPrivateKey("consumer"))};
process.on("unhandledRejection", (e) => { console.error("unhandled rejection:", e); process.exit(1); });
pulumi.runtime.setMocks({
    newResource(a) {
        types.push(a.type);
        switch (a.type) {
            case "tls:index/privateKey:PrivateKey": return { id: a.name, state: { ...a.inputs, privateKeyOpenssh: PRIV, publicKeyOpenssh: PUB } };
            case "aws:ec2/keyPair:KeyPair": return { id: a.name, state: { ...a.inputs, keyName: a.name } };
            case "aws:ec2/instance:Instance": return { id: "i-1", state: { ...a.inputs, privateIp: "10.0.0.9", publicIp: "" } };
            case "command:remote:Command": return { id: a.name, state: { ...a.inputs, stdout: "", stderr: "" } };
            default: return { id: a.name + "-id", state: a.inputs };
        }
    },
    call(a) {
        if (a.token === "aws:ec2/getAmi:getAmi") return { id: "ami-0123456789abcdef0" };
        if (a.token === "aws:ec2/getSubnet:getSubnet") return { id: a.inputs.id, vpcId: "vpc-0123456789abcdef0" };
        return a.inputs;
    },
}, "consumer", "test", true);
const value = (o) => new Promise((r) => o.apply(r));
`;

/** A plain-JavaScript program, as a user would write it, that builds one of each component under mocks. */
const CONSUMER_JS = `${CONSUMER_MOCKS}
const k8s = require("@pulumi/kubernetes");
const { FalcoHost, AwsFalcoNode, FalcoCluster } = require("falco-nodes");
const host = new FalcoHost("host", {
    connection: { host: "10.0.0.5", user: "deploy", privateKey: pulumi.secret(PRIV), hostKey: PUB.trim() },
    settings: { driver: "kmod" },
});
const node = new AwsFalcoNode("node", { subnetId: "subnet-0123456789abcdef0", sshCidrs: ["10.0.0.0/16"] });
const provider = new k8s.Provider("k8s", { kubeconfig: pulumi.secret("apiVersion: v1") });
const cluster = new FalcoCluster("cluster", { provider, protection: { exemptGroups: ["deployers"] } });
Promise.all([value(host.bundleHash), value(host.driver), value(node.bundleHash), value(cluster.namespace)]).then(async ([hostHash, driver, nodeHash, namespace]) => {
    await new Promise((r) => setTimeout(r, 300));
    console.log(JSON.stringify({ hostHash, driver, nodeHash, namespace, types: [...new Set(types)].sort() }));
});
`;

/** A TypeScript program importing by package name; the expect-error line proves the types are real. */
const CONSUMER_TS = `
import { AwsFalcoNode, FalcoCluster, FalcoHost, type AwsFalcoNodeArgs, type FalcoHostArgs } from "falco-nodes";
const hostArgs: FalcoHostArgs = { connection: { host: "10.0.0.5", user: "deploy" }, settings: { driver: "kmod" } };
// @ts-expect-error: driver is a typed union, not any string
const badArgs: FalcoHostArgs = { connection: { host: "10.0.0.5" }, settings: { driver: "ebpf" } };
const nodeArgs: AwsFalcoNodeArgs = { subnetId: "subnet-0123456789abcdef0", sshCidrs: ["10.0.0.0/16"] };
export const components = [FalcoHost, AwsFalcoNode, FalcoCluster];
export { hostArgs, badArgs, nodeArgs };
`;

/** README.md's TypeScript examples, in order. */
const README_EXAMPLES = [...fs.readFileSync(path.join(REPO_ROOT, "README.md"), "utf8").matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]);

/** The config keys an example reads (`cfg.requireSecret("x")` and the like). */
const configKeysOf = (src: string) => [...new Set([...src.matchAll(/\.(?:require|get)(?:Secret)?(?:Object|Number|Boolean)?\("([A-Za-z0-9]+)"\)/g)].map((m) => m[1]))];

/** How many of each component an example constructs. */
function componentsOf(src: string): Record<string, number> {
    const out: Record<string, number> = {};
    for (const m of src.matchAll(/\bnew (FalcoHost|AwsFalcoNode|FalcoCluster)\(/g)) out[m[1]] = (out[m[1]] ?? 0) + 1;
    return out;
}

/** Runs a compiled example under the consumer's mocks; prints every resource type once nothing is left to do. */
const exampleRunner = (compiled: string) => `${CONSUMER_MOCKS}
require(${JSON.stringify(compiled)});
let printed = false;
process.on("beforeExit", () => { if (!printed) { printed = true; console.log(JSON.stringify({ types })); } });
`;

describe("package: other programs import the components", function () {
    this.timeout(600_000);
    let tmp: string;
    let tarball: string;
    let packed: { files: { path: string }[] };

    before(() => {
        tmp = fs.mkdtempSync(path.join(os.tmpdir(), "falco-nodes-pkg-"));
        run("npm", ["run", "build"], REPO_ROOT);
        const out = JSON.parse(run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", tmp], REPO_ROOT));
        packed = out[0];
        tarball = path.join(tmp, out[0].filename);
    });
    after(() => tmp && fs.rmSync(tmp, { recursive: true, force: true }));

    it("publishes ranges (peer dependencies) for what it shares with its importer, and pins everything else exactly", () => {
        for (const [k, v] of Object.entries({ ...pkg.dependencies, ...pkg.devDependencies }))
            assert.match(String(v), /^[0-9]+\.[0-9]+\.[0-9]+$/, `${k}: ${v} is exact (this repository's program and CI)`);
        assert.deepStrictEqual(Object.keys(pkg.peerDependencies ?? {}).sort(), [...SHARED].sort());
        for (const k of SHARED) {
            assert.ok(!(k in pkg.dependencies), `${k} is not a dependency: a consumer on another version would get a second copy`);
            assert.ok(satisfiesCaret(pkg.devDependencies[k], pkg.peerDependencies[k]), `${k}: our pinned ${pkg.devDependencies[k]} is in ${pkg.peerDependencies[k]}`);
        }
        assert.ok(satisfiesCaret(CONSUMER_SDK, pkg.peerDependencies["@pulumi/pulumi"]) && CONSUMER_SDK !== pkg.devDependencies["@pulumi/pulumi"]);
        assert.strictEqual(pkg.dependencies["@pulumi/command"], "1.2.1");
    });

    it("says Node.js 22 or newer everywhere: engines, .nvmrc, @types/node", () => {
        assert.strictEqual(pkg.engines?.node, ">=22");
        assert.strictEqual(fs.readFileSync(path.join(REPO_ROOT, ".nvmrc"), "utf8").trim(), "22");
        assert.match(pkg.devDependencies["@types/node"], /^22\./);
    });

    it("carries its licence and where it comes from", () => {
        assert.strictEqual(pkg.license, "Apache-2.0");
        assert.match(fs.readFileSync(path.join(REPO_ROOT, "LICENSE"), "utf8"), /^\s*Apache License\s+Version 2\.0, January 2004/);
        assert.match(pkg.repository?.url ?? "", /^git\+https:\/\/.+\.git$/);
    });

    it("package.json points importers at the built JavaScript and its declarations", () => {
        const root = pkg.exports?.["."];
        assert.ok(root, "package.json needs exports['.']");
        for (const target of [root.types, root.default ?? root.require]) {
            assert.ok(typeof target === "string" && target.startsWith("./dist/"), `export target ${target} must be in dist/`);
            assert.ok(fs.existsSync(path.join(REPO_ROOT, target)), `${target} is built`);
        }
        assert.match(root.types, /\.d\.ts$/);
    });

    it("the tarball holds the JavaScript, the declarations and every part of the converge script; no sources, tests or stacks", () => {
        const files = packed.files.map((f) => f.path);
        const scripts = SCRIPT_PARTS.map((p) => `dist/host/scripts/${p}`);
        for (const f of ["LICENSE", "package.json", "dist/index.js", "dist/index.d.ts", "dist/host/falcoHost.js", "dist/aws/node.d.ts", "dist/cluster/falcoCluster.js", ...scripts])
            assert.ok(files.includes(f), `${f} is missing from the package`);
        const stray = files.filter((f) => /(^|\/)(test|stacks|\.github)\//.test(f) || (/\.ts$/.test(f) && !/\.d\.ts$/.test(f)));
        assert.deepStrictEqual(stray, [], "only what importers need");
    });

    describe(`a consumer program on @pulumi/pulumi ${CONSUMER_SDK} with the tarball installed`, () => {
        let consumer: string;
        before(() => {
            consumer = path.join(tmp, "consumer");
            fs.mkdirSync(consumer);
            // The consumer's own pins: another SDK than ours; the providers and Node types at the versions the npm
            // cache already holds (they are not what this test is about).
            writeConsumer(consumer, tarball, {
                "@pulumi/pulumi": CONSUMER_SDK,
                "@pulumi/aws": pkg.devDependencies["@pulumi/aws"],
                "@pulumi/kubernetes": pkg.devDependencies["@pulumi/kubernetes"],
                "@types/node": pkg.devDependencies["@types/node"],
            });
            installConsumer(consumer);
        });

        it("has one copy of @pulumi/pulumi, the consumer's, shared with falco-nodes and its providers", () => {
            // npm ls exits non-zero on a missing or unmet (peer) dependency.
            const copies = run("npm", ["ls", "@pulumi/pulumi", "--all", "--parseable"], consumer).trim().split("\n").filter(Boolean);
            assert.deepStrictEqual(copies, [path.join(consumer, "node_modules", "@pulumi", "pulumi")]);
            const version = JSON.parse(fs.readFileSync(path.join(copies[0], "package.json"), "utf8")).version;
            assert.strictEqual(version, CONSUMER_SDK);
            const tree = run("npm", ["ls", "@pulumi/pulumi", "--all"], consumer);
            assert.match(tree, /falco-nodes@/, "falco-nodes resolves @pulumi/pulumi");
            assert.ok(!fs.existsSync(path.join(consumer, "node_modules", "falco-nodes", "node_modules", "@pulumi", "pulumi")), "no nested copy");
        });

        it("constructs FalcoHost, AwsFalcoNode and FalcoCluster under mocks", () => {
            fs.writeFileSync(path.join(consumer, "index.js"), CONSUMER_JS);
            const stdout = run(process.execPath, ["index.js"], consumer);
            const last = stdout.trim().split("\n").pop() ?? "";
            assert.ok(last.startsWith("{"), `the consumer printed no result:\n${stdout}`);
            const out = JSON.parse(last);
            assert.match(out.hostHash, /^[0-9a-f]{64}$/);
            assert.match(out.nodeHash, /^[0-9a-f]{64}$/);
            assert.notStrictEqual(out.hostHash, out.nodeHash, "different settings, different bundles");
            assert.strictEqual(out.driver, "kmod");
            assert.strictEqual(out.namespace, "falco");
            for (const t of ["falco-nodes:index:FalcoHost", "falco-nodes:index:AwsFalcoNode", "falco-nodes:index:FalcoCluster", "command:remote:Command", "aws:ec2/instance:Instance", "kubernetes:helm.sh/v4:Chart"])
                assert.ok(out.types.includes(t), `${t} not declared: ${out.types.join(", ")}`);
        });

        it("type-checks against the shipped declarations, resolved through exports", () => {
            fs.writeFileSync(path.join(consumer, "check.ts"), CONSUMER_TS);
            fs.writeFileSync(
                path.join(consumer, "tsconfig.json"),
                JSON.stringify({
                    compilerOptions: { module: "node16", moduleResolution: "node16", target: "ES2022", strict: true, noEmit: true, skipLibCheck: true, types: [] },
                    files: ["check.ts"],
                }),
            );
            run(process.execPath, [require.resolve("typescript/bin/tsc"), "-p", "."], consumer);
        });

        it("README.md: every TypeScript example type-checks (strict) and constructs its components under mocks", () => {
            assert.ok(README_EXAMPLES.length > 0, "README.md has TypeScript examples");
            // The example reads a rule file of the program's own, as ours does.
            fs.mkdirSync(path.join(consumer, "rules"), { recursive: true });
            fs.copyFileSync(path.join(REPO_ROOT, "stacks", "rules", "site.yaml"), path.join(consumer, "rules", "site.yaml"));
            const files = README_EXAMPLES.map((src, i) => {
                const f = `readme-${i}.ts`;
                fs.writeFileSync(path.join(consumer, f), src);
                return f;
            });
            fs.writeFileSync(
                path.join(consumer, "tsconfig.readme.json"),
                JSON.stringify({
                    compilerOptions: { module: "node16", moduleResolution: "node16", target: "ES2022", strict: true, skipLibCheck: true, types: ["node"], outDir: "readme-out" },
                    files,
                }),
            );
            run(process.execPath, [require.resolve("typescript/bin/tsc"), "-p", "tsconfig.readme.json"], consumer);
            README_EXAMPLES.forEach((src, i) => {
                const keys = configKeysOf(src);
                const config = Object.fromEntries(keys.map((k) => [`consumer:${k}`, dummySecret(k)]));
                fs.writeFileSync(path.join(consumer, `readme-${i}-run.js`), exampleRunner(`./readme-out/readme-${i}.js`));
                const stdout = run(process.execPath, [`readme-${i}-run.js`], consumer, {
                    PULUMI_CONFIG: JSON.stringify(config),
                    PULUMI_CONFIG_SECRET_KEYS: JSON.stringify(Object.keys(config)),
                });
                const last = stdout.trim().split("\n").pop() ?? "";
                assert.ok(last.startsWith("{"), `README example ${i + 1} printed no result:\n${stdout}`);
                const types: string[] = JSON.parse(last).types;
                const expected = componentsOf(src);
                assert.ok(Object.keys(expected).length > 0, `README example ${i + 1} constructs a component`);
                // At least: an AwsFalcoNode declares a FalcoHost of its own.
                for (const [name, count] of Object.entries(expected)) {
                    const n = types.filter((t) => t === `falco-nodes:index:${name}`).length;
                    assert.ok(n >= count, `README example ${i + 1}: ${count} ${name} constructed, ${n} registered`);
                }
                assert.ok(types.includes("command:remote:Command"), `README example ${i + 1} converges its hosts`);
            });
        });
    });
});
