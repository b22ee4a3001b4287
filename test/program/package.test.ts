/**
 * The components as a package another program imports: `npm run build` emits JavaScript and .d.ts, `npm pack`
 * ships them (and the files they read at run time), and a separate program that installs the tarball offline
 * can `import { FalcoHost, AwsFalcoNode, FalcoCluster } from "falco-nodes"`, type-check against it and construct
 * each component under mocks.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { SCRIPT_PARTS } from "../../components/host/installScript";
import { installConsumer, run, writeConsumer } from "../support/consumer";
import { fakeOpensshPrivateKey } from "../support/fakeSecrets";
import { REPO_ROOT } from "../support/program";

const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "package.json"), "utf8"));
const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICGs/MbsDJVGgX3toQvta8TevR8slzykb4it4nBZjqrW";

/** A plain-JavaScript program, as a user would write it, that builds one of each component under mocks. */
const CONSUMER_JS = `
const pulumi = require("@pulumi/pulumi");
const k8s = require("@pulumi/kubernetes");
const types = [];
const PUB = "${HOST_KEY}\\n";
const PRIV = ${JSON.stringify(fakeOpensshPrivateKey("consumer"))};
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

const { FalcoHost, AwsFalcoNode, FalcoCluster } = require("falco-nodes");
const host = new FalcoHost("host", {
    connection: { host: "10.0.0.5", user: "deploy", privateKey: pulumi.secret(PRIV), hostKey: PUB.trim() },
    settings: { driver: "kmod" },
});
const node = new AwsFalcoNode("node", { subnetId: "subnet-0123456789abcdef0", sshCidrs: ["10.0.0.0/16"] });
const provider = new k8s.Provider("k8s", { kubeconfig: pulumi.secret("apiVersion: v1") });
const cluster = new FalcoCluster("cluster", { provider, protection: { exemptGroups: ["deployers"] } });
const value = (o) => new Promise((r) => o.apply(r));
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
        for (const f of ["dist/index.js", "dist/index.d.ts", "dist/host/falcoHost.js", "dist/aws/node.d.ts", "dist/cluster/falcoCluster.js", ...scripts])
            assert.ok(files.includes(f), `${f} is missing from the package`);
        const stray = files.filter((f) => /(^|\/)(test|stacks|\.github)\//.test(f) || (/\.ts$/.test(f) && !/\.d\.ts$/.test(f)));
        assert.deepStrictEqual(stray, [], "only what importers need");
    });

    describe("a consumer program with the tarball installed (offline)", () => {
        let consumer: string;
        before(() => {
            consumer = path.join(tmp, "consumer");
            fs.mkdirSync(consumer);
            writeConsumer(consumer, tarball, ["@pulumi/pulumi", "@pulumi/kubernetes"]);
            installConsumer(consumer);
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
    });
});
