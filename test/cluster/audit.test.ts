import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { buildAuditPolicy, renderAuditPolicy, renderAuditWebhookKubeconfig } from "../../components/cluster/audit";
import { auditWebhookServerUrl } from "../../components/host/k8sAudit";
import { resolveHostSettings } from "../../components/host/settings";
import { TEST_K8SAUDIT_DIGESTS } from "../support/k8sAuditDigests";

type Types = Record<string, Record<string, string> | string[]>;
const API = JSON.parse(fs.readFileSync(path.resolve(__dirname, "..", "fixtures", "kubernetes", "api-types.json"), "utf8"));

/**
 * Problems `value` has as an instance of `type` from the fixture (`string`, `boolean`, `object`, `[]T`, an enum
 * given as a list, or a struct given as field -> type): unknown fields, wrong kinds, values outside an enum.
 */
function typeProblems(types: Types, type: string, value: unknown, where = ""): string[] {
    if (type.startsWith("[]")) {
        if (!Array.isArray(value)) return [`${where}: expected a list`];
        return value.flatMap((v, i) => typeProblems(types, type.slice(2), v, `${where}[${i}]`));
    }
    if (type === "string" || type === "boolean") return typeof value === type ? [] : [`${where}: expected a ${type}`];
    if (type === "object") return typeof value === "object" && value !== null && !Array.isArray(value) ? [] : [`${where}: expected an object`];
    const def = types[type];
    if (def === undefined) throw new Error(`fixture has no type ${type}`);
    if (Array.isArray(def)) return def.includes(value as string) ? [] : [`${where}: ${JSON.stringify(value)} is not a ${type} (${def.join(", ")})`];
    if (typeof value !== "object" || value === null || Array.isArray(value)) return [`${where}: expected a ${type}`];
    return Object.entries(value).flatMap(([k, v]) =>
        def[k] === undefined ? [`${where}.${k}: not a field of ${type}`] : typeProblems(types, def[k], v, `${where}.${k}`),
    );
}

/** The rules kube-apiserver's own validation (ValidatePolicy) enforces beyond field types. */
function policySemanticProblems(policy: any): string[] {
    const problems: string[] = [];
    if (policy.apiVersion !== "audit.k8s.io/v1" || policy.kind !== "Policy") problems.push("not an audit.k8s.io/v1 Policy");
    if (!Array.isArray(policy.rules) || policy.rules.length === 0) problems.push("no rules");
    (policy.rules ?? []).forEach((r: any, i: number) => {
        if (r.level === undefined) problems.push(`rules[${i}]: level is required`);
        if (r.nonResourceURLs && (r.resources || r.namespaces))
            problems.push(`rules[${i}]: rules cannot apply to both regular resources and non-resource URLs`);
        for (const u of r.nonResourceURLs ?? [])
            if (!u.startsWith("/") || u.slice(0, -1).includes("*")) problems.push(`rules[${i}]: nonResourceURL ${u} must start with / and may end with *`);
        for (const g of r.resources ?? [])
            for (const res of g.resources ?? []) if (res.split("/").length > 2) problems.push(`rules[${i}]: resource ${res} is malformed`);
    });
    return problems;
}

describe("audit policy for self-managed clusters", () => {
    const text = renderAuditPolicy();
    const policy = YAML.parse(text);
    const types = API["audit.k8s.io/v1"];

    it("parses as an audit.k8s.io/v1 Policy: only known fields, valid levels and stages", () => {
        assert.deepStrictEqual(typeProblems(types, "Policy", policy), []);
        assert.deepStrictEqual(policySemanticProblems(policy), []);
        assert.match(text, /^# .*--audit-policy-file/m);
    });

    it("the checks can fail (unknown field, bad level, mixed non-resource rule)", () => {
        const bad = { ...policy, rules: [{ level: "Everything", resource: [] }, { level: "None", nonResourceURLs: ["/a*b"], resources: [{ group: "" }] }] };
        const problems = [...typeProblems(types, "Policy", bad), ...policySemanticProblems(bad)];
        assert.ok(problems.some((p) => p.includes('"Everything" is not a Level')), JSON.stringify(problems));
        assert.ok(problems.some((p) => p.includes("resource: not a field of PolicyRule")));
        assert.ok(problems.some((p) => p.includes("both regular resources and non-resource URLs")));
        assert.ok(problems.some((p) => p.includes("/a*b")));
    });

    /** The level the first matching rule gives a request (kube-apiserver's policy evaluation, simplified). */
    const levelFor = (req: { verb: string; group?: string; resource?: string; namespace?: string; user?: string; path?: string }) => {
        for (const r of buildAuditPolicy().rules) {
            if (r.users && !r.users.includes(req.user ?? "alice")) continue;
            if (r.verbs && !r.verbs.includes(req.verb)) continue;
            if (r.nonResourceURLs) {
                if (!req.path || !r.nonResourceURLs.some((u) => (u.endsWith("*") ? req.path!.startsWith(u.slice(0, -1)) : req.path === u))) continue;
            } else if (req.path) continue;
            if (r.resources) {
                const hit = r.resources.some((g) => g.group === (req.group ?? "") && (g.resources === undefined || g.resources.includes(req.resource!)));
                if (!hit) continue;
            }
            return r.level;
        }
        return "None";
    };

    it("sends the tamper rules' targets with their bodies, and every other change as metadata", () => {
        assert.strictEqual(levelFor({ verb: "delete", group: "apps", resource: "daemonsets" }), "RequestResponse");
        assert.strictEqual(levelFor({ verb: "patch", group: "apps", resource: "deployments/scale" }), "RequestResponse");
        assert.strictEqual(levelFor({ verb: "update", group: "rbac.authorization.k8s.io", resource: "clusterrolebindings" }), "RequestResponse");
        assert.strictEqual(levelFor({ verb: "delete", resource: "namespaces" }), "RequestResponse");
        assert.strictEqual(levelFor({ verb: "delete", group: "admissionregistration.k8s.io", resource: "validatingadmissionpolicybindings" }), "RequestResponse");
        assert.strictEqual(levelFor({ verb: "create", resource: "pods/exec" }), "Metadata");
        assert.strictEqual(levelFor({ verb: "get", resource: "pods/exec" }), "Metadata", "websocket exec is a GET");
        assert.strictEqual(levelFor({ verb: "get", resource: "nodes/proxy" }), "Metadata", "exec through the kubelet API is a GET too");
        assert.strictEqual(levelFor({ verb: "create", group: "networking.k8s.io", resource: "networkpolicies" }), "Metadata");
    });

    it("never sends the contents of Secrets, ConfigMaps or tokens, but does record who touched them", () => {
        for (const resource of ["secrets", "configmaps", "serviceaccounts/token"])
            for (const verb of ["get", "create", "update", "patch", "delete"])
                assert.strictEqual(levelFor({ verb, resource }), "Metadata", `${verb} ${resource}`);
        assert.strictEqual(levelFor({ verb: "create", group: "authentication.k8s.io", resource: "tokenreviews" }), "Metadata");
    });

    it("drops reads, probes, leases and events", () => {
        assert.strictEqual(levelFor({ verb: "list", resource: "pods" }), "None");
        assert.strictEqual(levelFor({ verb: "get", path: "/readyz?verbose" }), "None");
        assert.strictEqual(levelFor({ verb: "update", group: "coordination.k8s.io", resource: "leases" }), "None");
        assert.strictEqual(levelFor({ verb: "create", resource: "events" }), "None");
    });
});

describe("audit webhook kubeconfig", () => {
    const types = API["kubeconfig/v1"];
    const parse = (text: string) => YAML.parse(text);

    it("parses as a v1 Config whose current context names a cluster and user it defines", () => {
        const s = resolveHostSettings({ k8sAudit: { enabled: true, pluginDigests: TEST_K8SAUDIT_DIGESTS, allowedSources: ["10.0.0.10/32"], tls: { certificatePath: "/etc/falco/k.pem" } } });
        const server = auditWebhookServerUrl(s, "10.0.0.5");
        assert.strictEqual(server, "https://10.0.0.5:9765/k8s-audit");
        const config = parse(renderAuditWebhookKubeconfig({ server, certificateAuthorityFile: "/etc/kubernetes/pki/falco-ca.crt" }));
        assert.deepStrictEqual(typeProblems(types, "Config", config), []);
        assert.strictEqual(config.apiVersion, "v1");
        assert.strictEqual(config.kind, "Config");
        const ctx = config.contexts.find((c: any) => c.name === config["current-context"]);
        assert.ok(ctx, "current-context exists");
        const cluster = config.clusters.find((c: any) => c.name === ctx.context.cluster);
        assert.ok(config.users.some((u: any) => u.name === ctx.context.user));
        assert.strictEqual(cluster.cluster.server, server);
        assert.strictEqual(cluster.cluster["certificate-authority"], "/etc/kubernetes/pki/falco-ca.crt");
        assert.strictEqual(cluster.cluster["insecure-skip-tls-verify"], undefined);
    });

    it("embeds a PEM CA as base64, and brackets an IPv6 host", () => {
        const pem = "-----BEGIN CERTIFICATE-----\nTUlJQgo=\n-----END CERTIFICATE-----\n";
        const s = resolveHostSettings({ k8sAudit: { enabled: true, pluginDigests: TEST_K8SAUDIT_DIGESTS, allowedSources: ["fd00::/64"], tls: { certificatePath: "/etc/falco/k.pem" } } });
        const server = auditWebhookServerUrl(s, "fd00::5");
        assert.strictEqual(server, "https://[fd00::5]:9765/k8s-audit");
        const config = parse(renderAuditWebhookKubeconfig({ server, certificateAuthorityPem: pem }));
        assert.deepStrictEqual(typeProblems(types, "Config", config), []);
        assert.strictEqual(Buffer.from(config.clusters[0].cluster["certificate-authority-data"], "base64").toString(), pem);
    });

    it("refuses an https server without a CA, a CA for http, and a server that is not a URL", () => {
        assert.throws(() => renderAuditWebhookKubeconfig({ server: "https://10.0.0.5:9765/k8s-audit" }), /needs the CA/);
        assert.throws(() => renderAuditWebhookKubeconfig({ server: "http://10.0.0.5:9765/k8s-audit", certificateAuthorityFile: "/ca.crt" }), /only applies to an https/);
        assert.throws(() => renderAuditWebhookKubeconfig({ server: "10.0.0.5:9765" }), /must be an http\(s\) URL/);
        assert.throws(() => renderAuditWebhookKubeconfig({ server: "http://x/\"; y" }), /must be an http\(s\) URL/);
        assert.doesNotThrow(() => renderAuditWebhookKubeconfig({ server: "http://10.0.0.5:9765/k8s-audit" }));
    });

    it("the type check can fail", () => {
        const config = parse(renderAuditWebhookKubeconfig({ server: "http://10.0.0.5:9765/k8s-audit" }));
        config.clusters[0].cluster.insecureSkipTlsVerify = true;
        assert.ok(typeProblems(types, "Config", config).some((p) => p.includes("insecureSkipTlsVerify: not a field of Cluster")));
    });
});
