import { strict as assert } from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as YAML from "yaml";
import { renderAuditPolicy } from "../../components/cluster/audit";
import { main } from "../../scripts/render";
import { TEST_K8SAUDIT_DIGESTS } from "../support/k8sAuditDigests";

describe("render CLI: k8sAudit files for the API servers", () => {
    let tmp: string;
    beforeEach(() => {
        tmp = fs.mkdtempSync(path.join(os.tmpdir(), "falco-nodes-render-k8s-"));
    });
    afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

    it("writes the audit policy and a webhook kubeconfig pointing at the node, for webhook nodes only", () => {
        const stacks = path.join(tmp, "stacks");
        fs.mkdirSync(stacks);
        fs.writeFileSync(
            path.join(stacks, "Pulumi.k8s.yaml"),
            [
                "config:",
                "  falco-nodes:ssh: {allowUnpinnedHostKeys: true, user: deploy}",
                "  falco-nodes:nodes:",
                "    - name: audit",
                "      kind: existing",
                "      ssh: {host: 10.0.0.5}",
                "      falco:",
                "        k8sAudit: {enabled: true, allowedSources: [10.0.0.10/32], tls: {certificatePath: /etc/falco/k8saudit.pem},",
                `          pluginDigests: {k8saudit: ${TEST_K8SAUDIT_DIGESTS.k8saudit}, json: ${TEST_K8SAUDIT_DIGESTS.json}, rules: ${TEST_K8SAUDIT_DIGESTS.rules}}}`,
                "    - {name: plain, kind: existing, ssh: {host: 10.0.0.6}}",
            ].join("\n"),
        );
        const out: string[] = [];
        const err: string[] = [];
        const dir = path.join(tmp, "out");
        assert.equal(main(["--stack", "k8s", "--stacks-dir", stacks, "--out", dir], { out: (l) => out.push(l), err: (l) => err.push(l) }), 0, err.join("\n"));
        const k8s = path.join(dir, "audit", "k8s-audit");
        assert.equal(fs.readFileSync(path.join(k8s, "audit-policy.yaml"), "utf8"), renderAuditPolicy());
        const kubeconfig = YAML.parse(fs.readFileSync(path.join(k8s, "audit-webhook.kubeconfig"), "utf8"));
        assert.equal(kubeconfig.clusters[0].cluster.server, "https://10.0.0.5:9765/k8s-audit");
        assert.equal(kubeconfig.clusters[0].cluster["certificate-authority"], "/etc/kubernetes/falco-nodes/audit-ca.crt");
        assert.equal(fs.existsSync(path.join(dir, "plain", "k8s-audit")), false);
        assert.match(out.join("\n"), /audit\/k8s-audit: kube-apiserver --audit-policy-file=.*copy the CA/);
    });
});
