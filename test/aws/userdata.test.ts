import * as assert from "assert";
import * as path from "path";
import * as YAML from "yaml";
import { SSHD_DROPIN_PATH } from "../../components/host/paths";
import { HOST_KEY_DROPIN, HOST_KEY_PATH, renderUserData } from "../../components/aws/userdata";
import { fakeKeyPair, pemArmour } from "../support/fakeSecrets";

describe("aws/userdata", () => {
    const key = fakeKeyPair("node-a-host");

    it("renders nothing without a host key", () => {
        assert.strictEqual(renderUserData({}), undefined);
    });

    it("installs exactly the given ed25519 host key and no other", () => {
        const text = renderUserData({ hostKey: key })!;
        assert.ok(text.startsWith("#cloud-config\n"), "cloud-init needs the #cloud-config header on line 1");
        const doc = YAML.parse(text);
        assert.strictEqual(doc.ssh_deletekeys, true);
        assert.deepStrictEqual(doc.ssh_genkeytypes, []);
        assert.deepStrictEqual(Object.keys(doc.ssh_keys).sort(), ["ed25519_private", "ed25519_public"]);
        assert.strictEqual(doc.ssh_keys.ed25519_private, key.privateKeyOpenssh);
        assert.strictEqual(doc.ssh_keys.ed25519_public, key.publicKeyOpenssh.trim());
    });

    it("makes sshd offer only that key, before the hardening drop-in", () => {
        const doc = YAML.parse(renderUserData({ hostKey: key })!);
        assert.strictEqual(doc.write_files.length, 1);
        const [file] = doc.write_files;
        assert.strictEqual(file.path, HOST_KEY_DROPIN);
        assert.strictEqual(path.dirname(HOST_KEY_DROPIN), path.dirname(SSHD_DROPIN_PATH));
        assert.ok(path.basename(HOST_KEY_DROPIN) < path.basename(SSHD_DROPIN_PATH), "sshd takes the first value: ours must sort first");
        assert.strictEqual(file.permissions, "0644");
        const directives = file.content.split("\n").filter((l: string) => l && !l.startsWith("#"));
        assert.deepStrictEqual(directives, [`HostKey ${HOST_KEY_PATH}`, "HostKeyAlgorithms ssh-ed25519,ssh-ed25519-cert-v01@openssh.com"]);
    });

    it("carries no secret but the host key", () => {
        const text = renderUserData({ hostKey: key })!;
        assert.strictEqual(text.match(/PRIVATE KEY-----/g)?.length, 2, "one private key (BEGIN and END lines)");
        const doc = YAML.parse(text);
        delete doc.ssh_keys.ed25519_private;
        assert.doesNotMatch(JSON.stringify(doc), /PRIVATE|password|token|secret/i);
    });

    it("rejects key material of the wrong kind", () => {
        assert.throws(() => renderUserData({ hostKey: { ...key, publicKeyOpenssh: "ssh-rsa AAAAB3NzaC1yc2E" } }), /hostKey.publicKeyOpenssh must be one OpenSSH ed25519 public key/);
        assert.throws(() => renderUserData({ hostKey: { ...key, publicKeyOpenssh: "ssh-ed25519 AAAA\nssh-ed25519 BBBB" } }), /publicKeyOpenssh/);
        assert.throws(
            () => renderUserData({ hostKey: { ...key, privateKeyOpenssh: pemArmour("RSA", "AAAA") } }),
            /hostKey.privateKeyOpenssh must be an OpenSSH private key/,
        );
    });
});
