/**
 * Reading a stack file without the CLI (render CLI, tests): project defaults applied, secrets opaque, bare keys
 * namespaced, ESC environments trusted to supply secrets.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as YAML from "yaml";
import { loadStackConfigFile, readStackFile, StackConfigError } from "../../components/config";
import { fakeOpensshPrivateKey } from "../support/fakeSecrets";

const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICGs/MbsDJVGgX3toQvta8TevR8slzykb4it4nBZjqrW";

describe("stack config: stack files", () => {
    let dir: string;
    beforeEach(() => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "falco-nodes-stack-"));
        fs.writeFileSync(
            path.join(dir, "Pulumi.yaml"),
            YAML.stringify({ name: "falco-nodes", runtime: "nodejs", config: { falco: { default: { driver: "kmod" } }, sshPrivateKey: { type: "string", secret: true, default: "" } } }),
        );
        fs.mkdirSync(path.join(dir, "stacks"));
    });
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

    const write = (name: string, doc: unknown) => {
        const file = path.join(dir, "stacks", `Pulumi.${name}.yaml`);
        fs.writeFileSync(file, YAML.stringify(doc));
        return file;
    };
    const node = { name: "web-1", kind: "existing", ssh: { host: "10.0.0.1", user: "deploy", hostKey: HOST_KEY } };

    it("applies Pulumi.yaml defaults, namespaces bare keys and keeps secrets opaque", () => {
        const file = write("a", { config: { nodes: [node], "falco-nodes:sshPrivateKey": { secure: "v1:AAAA" }, "aws:region": "eu-west-1" } });
        const f = readStackFile(file);
        assert.strictEqual(f.stack, "a");
        assert.deepStrictEqual(f.secretKeys, ["falco-nodes:sshPrivateKey"]);
        const cfg = loadStackConfigFile(file);
        assert.strictEqual(cfg.nodes[0].resolved.driver, "kmod", "the project default applies");
        assert.strictEqual(cfg.secrets.sshPrivateKey, true);
        assert.ok(!JSON.stringify(cfg).includes("v1:AAAA"), "the ciphertext is not carried along");
    });

    it("rejects a secret written in plain text", () => {
        const file = write("b", { config: { "falco-nodes:nodes": [node], "falco-nodes:sshPrivateKey": fakeOpensshPrivateKey("plain-text") } });
        assert.throws(() => loadStackConfigFile(file), (e: unknown) => e instanceof StackConfigError && e.problems.some((p) => p.key === "falco-nodes:sshPrivateKey" && /plain text/.test(p.message)));
    });

    it("asks for a missing secret, unless an ESC environment may supply it", () => {
        const plain = write("c", { config: { "falco-nodes:nodes": [node] } });
        assert.throws(() => loadStackConfigFile(plain), /falco-nodes:sshPrivateKey: required/);
        const withEsc = write("d", { environment: ["falco-nodes/d"], config: { "falco-nodes:nodes": [node] } });
        assert.strictEqual(loadStackConfigFile(withEsc).nodes.length, 1);
    });

    it("reads ruleFiles relative to the project directory, never outside it", () => {
        fs.mkdirSync(path.join(dir, "rules"));
        fs.writeFileSync(path.join(dir, "rules", "site.yaml"), "- list: site_users\n  items: [www-data]\n");
        fs.writeFileSync(path.join(os.tmpdir(), "outside.yaml"), "- list: x\n  items: [y]\n");
        const ok = write("e", { config: { "falco-nodes:ruleFiles": ["rules/site.yaml"], "falco-nodes:nodes": [node], "falco-nodes:sshPrivateKey": { secure: "v1:x" } } });
        assert.match(loadStackConfigFile(ok).nodes[0].resolved.rules.custom.site, /site_users/);
        const escape = write("f", { config: { "falco-nodes:ruleFiles": ["rules/../../outside.yaml"] } });
        assert.throws(() => loadStackConfigFile(escape), /falco-nodes:ruleFiles\[0\]/);
    });
});
