import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { buildFalcoConfig } from "../../components/host/falcoConfig";
import { FALCO_DEFAULT_RULES, FALCO_RULES_D } from "../../components/host/paths";
import { chartNames } from "../../components/cluster/names";
import { CONTROLLER_IDENTITIES, renderProtection } from "../../components/cluster/protection";
import { resolveClusterSettings } from "../../components/cluster/settings";
import { HostSettings, resolveHostSettings } from "../../components/host/settings";
import {
    K8S_AUDIT_SOURCE,
    K8S_AUDIT_TAMPER_RULE_FILE,
    K8S_TAMPER_LISTS,
    K8S_TAMPER_RULES,
    renderRuleFiles,
} from "../../components/rules";
import { fieldProblem, referenceProblems, rulesSchemaErrors } from "../support/falcoReference";
import { AuditEvent, firingRules, reportedRule } from "../support/k8sAuditEval";
import { referencePath } from "../support/reference";
import { TEST_K8SAUDIT_DIGESTS } from "../support/k8sAuditDigests";

type Item = Record<string, any>;

const DEPLOYER = "system:serviceaccount:ci:pulumi";
const ON: HostSettings = { k8sAudit: { enabled: true, pluginDigests: TEST_K8SAUDIT_DIGESTS, allowedSources: ["10.0.0.10/32"], trustedUsers: [DEPLOYER] } };

function tamperItems(settings: HostSettings = ON): Item[] {
    const file = renderRuleFiles(resolveHostSettings(settings)).find((f) => f.fileName === K8S_AUDIT_TAMPER_RULE_FILE);
    assert.ok(file, "no tamper rules file");
    return YAML.parse(file.content);
}

/** An audit event for `verb` on `objectRef` by `user`, completed with `code`. */
function event(verb: string, objectRef: AuditEvent["objectRef"], user = "alice@example.com", extra: Partial<AuditEvent> = {}): AuditEvent {
    return { stage: "ResponseComplete", verb, user: { username: user }, objectRef, responseStatus: { code: 200 }, ...extra };
}

describe("k8s_audit tamper rules", () => {
    const items = tamperItems();
    const rules = items.filter((i) => i.rule);

    it("are emitted only with k8sAudit on and tamperRules not off", () => {
        const has = (s: HostSettings) => renderRuleFiles(resolveHostSettings(s)).some((f) => f.fileName === K8S_AUDIT_TAMPER_RULE_FILE);
        assert.strictEqual(has({}), false);
        assert.strictEqual(has(ON), true);
        assert.strictEqual(has({ k8sAudit: { ...ON.k8sAudit, tamperRules: false } }), false);
    });

    it("validate against Falco's rules schema", () => {
        assert.deepStrictEqual(rulesSchemaErrors(items), []);
    });

    it("use only fields the k8saudit and json plugins have, and macros and lists they define", () => {
        assert.deepStrictEqual(referenceProblems(items, { strictLists: true }), []);
        for (const r of rules) assert.strictEqual(r.source, K8S_AUDIT_SOURCE, r.rule);
    });

    it("are checked against the plugin's fields, not the syscall ones (the check can fail)", () => {
        assert.ok(fieldProblem("ka.bogus", "k8s_audit"));
        assert.ok(fieldProblem("proc.name", "k8s_audit"), "a syscall field in a k8s_audit rule");
        assert.ok(fieldProblem("ka.uri.param", "k8s_audit"), "ka.uri.param needs a key");
        assert.strictEqual(fieldProblem("ka.user.name", "syscall") !== undefined, true);
        const problems = referenceProblems([
            { macro: "m", condition: "ka.user.name = x" },
            { rule: "r", source: "syscall", condition: "m and evt.type = open", output: "%ka.verb" },
        ]);
        assert.ok(problems.some((p) => p.includes("through macro m") && p.includes("ka.user.name")), JSON.stringify(problems));
        assert.ok(problems.some((p) => p.includes("output") && p.includes("ka.verb")), JSON.stringify(problems));
    });

    it("require the k8saudit plugin (or k8saudit-eks) and json, so Falco refuses them without", () => {
        const req = items.find((i) => i.required_plugin_versions)!.required_plugin_versions;
        assert.deepStrictEqual(req.map((r: Item) => r.name), ["k8saudit", "json"]);
        assert.deepStrictEqual(req[0].alternatives.map((a: Item) => a.name), ["k8saudit-eks"]);
    });

    it("are critical, tagged, and print who did it from where", () => {
        assert.strictEqual(rules.length, Object.keys(K8S_TAMPER_RULES).length);
        for (const r of rules) {
            assert.strictEqual(r.priority, "CRITICAL", r.rule);
            assert.ok(r.tags.includes("falco-nodes") && r.tags.includes("T1562.001"), r.rule);
            for (const f of ["%ka.user.name", "%ka.sourceips", "%ka.response.code", "%ka.impuser.name"]) assert.ok(r.output.includes(f), `${r.rule}: ${f}`);
        }
    });

    it("trust the deployer and the controllers that finish deletions", () => {
        const list = items.find((i) => i.list === K8S_TAMPER_LISTS.trustedUsers)!;
        assert.ok(list.items.includes(DEPLOYER));
        for (const c of CONTROLLER_IDENTITIES) assert.ok(list.items.includes(c), c);
    });

    describe("on audit events", () => {
        const fire = (e: AuditEvent, settings?: HostSettings) => firingRules(settings ? tamperItems(settings) : items, e);
        const names = chartNames("falco");

        it("catch deleting, patching and scaling Falco's workloads, but not status updates or the deployer", () => {
            const ds = { resource: "daemonsets", apiGroup: "apps", namespace: "falco", name: names.falco };
            assert.deepStrictEqual(fire(event("delete", ds)), [K8S_TAMPER_RULES.workload]);
            assert.deepStrictEqual(fire(event("patch", ds)), [K8S_TAMPER_RULES.workload]);
            assert.deepStrictEqual(
                fire(event("patch", { resource: "deployments", namespace: "falco", name: names.sidekick, subresource: "scale" })),
                [K8S_TAMPER_RULES.workload],
            );
            assert.deepStrictEqual(fire(event("update", { ...ds, subresource: "status" }, "system:serviceaccount:kube-system:daemon-set-controller")), []);
            assert.deepStrictEqual(fire(event("patch", ds, DEPLOYER)), []);
            assert.deepStrictEqual(fire(event("get", ds)), [], "reads are not changes");
            assert.deepStrictEqual(fire(event("delete", { ...ds, namespace: "default" })), [], "another namespace");
            assert.deepStrictEqual(fire({ ...event("delete", ds), stage: "RequestReceived" }), [], "once per request");
        });

        it("report a change the protection policy refused (the attempt is the news)", () => {
            const refused = event("delete", { resource: "daemonsets", namespace: "falco", name: names.falco }, "alice", { responseStatus: { code: 403 } });
            assert.deepStrictEqual(fire(refused), [K8S_TAMPER_RULES.workload]);
        });

        it("catch edits to Falco's ConfigMaps and Secrets, in Falco's namespace only", () => {
            assert.deepStrictEqual(fire(event("update", { resource: "configmaps", namespace: "falco", name: "falco" })), [K8S_TAMPER_RULES.config]);
            assert.deepStrictEqual(fire(event("delete", { resource: "secrets", namespace: "falco", name: names.outputsSecret })), [K8S_TAMPER_RULES.config]);
            assert.deepStrictEqual(fire(event("update", { resource: "configmaps", namespace: "kube-system", name: "falco" })), []);
            assert.deepStrictEqual(fire(event("create", { resource: "configmaps", namespace: "falco", name: "new" })), [], "adding does not switch Falco off");
        });

        it("catch RBAC changes: namespaced in Falco's namespace, cluster-wide by name", () => {
            assert.deepStrictEqual(fire(event("delete", { resource: "clusterroles", name: names.falco })), [K8S_TAMPER_RULES.rbac]);
            assert.deepStrictEqual(fire(event("patch", { resource: "clusterrolebindings", name: `${names.falco}-k8saudit` })), [K8S_TAMPER_RULES.rbac]);
            assert.deepStrictEqual(fire(event("update", { resource: "rolebindings", namespace: "falco", name: "x" })), [K8S_TAMPER_RULES.rbac]);
            assert.deepStrictEqual(fire(event("delete", { resource: "clusterroles", name: "view" })), []);
        });

        it("catch deleting Falco's namespace, but not the namespace controller emptying it", () => {
            assert.deepStrictEqual(fire(event("delete", { resource: "namespaces", name: "falco" })), [K8S_TAMPER_RULES.namespace]);
            assert.deepStrictEqual(fire(event("delete", { resource: "namespaces", name: "other" })), []);
            assert.deepStrictEqual(
                fire(event("delete", { resource: "configmaps", namespace: "falco", name: "falco" }, "system:serviceaccount:kube-system:namespace-controller")),
                [],
            );
        });

        it("catch changes to exactly the admission policy and binding FalcoCluster renders", () => {
            const { policy, binding } = renderProtection(resolveClusterSettings({ protection: { exemptUsers: [DEPLOYER] } }));
            const vap = (resource: string, name: string) => event("delete", { resource, apiGroup: "admissionregistration.k8s.io", name });
            assert.deepStrictEqual(fire(vap("validatingadmissionpolicies", policy.metadata.name)), [K8S_TAMPER_RULES.protection]);
            assert.deepStrictEqual(fire(vap("validatingadmissionpolicybindings", binding.metadata.name)), [K8S_TAMPER_RULES.protection]);
            assert.deepStrictEqual(fire(vap("validatingadmissionpolicies", "someone-elses-policy")), []);
        });

        it("follow a custom namespace and release name (as FalcoCluster's settings)", () => {
            const custom: HostSettings = { k8sAudit: { ...ON.k8sAudit, falcoNamespace: "runtime-security", falcoReleaseName: "sec" } };
            const { policy } = renderProtection(resolveClusterSettings({ namespace: "runtime-security", releaseName: "sec", protection: { exemptUsers: [DEPLOYER] } }));
            assert.deepStrictEqual(fire(event("delete", { resource: "validatingadmissionpolicies", name: policy.metadata.name }), custom), [K8S_TAMPER_RULES.protection]);
            assert.deepStrictEqual(fire(event("delete", { resource: "configmaps", namespace: "runtime-security", name: "sec-falco" }), custom), [K8S_TAMPER_RULES.config]);
            assert.deepStrictEqual(fire(event("delete", { resource: "configmaps", namespace: "falco", name: "falco" }), custom), []);
            assert.deepStrictEqual(fire(event("delete", { resource: "clusterroles", name: chartNames("sec").falco }), custom), [K8S_TAMPER_RULES.rbac]);
        });

        it("catch a new or changed admission webhook or policy (it could deny Falco's pods), not our own policy twice", () => {
            const adm = (verb: string, resource: string, name: string, user = "alice") =>
                event(verb, { resource, apiGroup: "admissionregistration.k8s.io", name }, user);
            assert.deepStrictEqual(fire(adm("create", "validatingwebhookconfigurations", "deny-falco")), [K8S_TAMPER_RULES.admission]);
            assert.deepStrictEqual(fire(adm("patch", "mutatingwebhookconfigurations", "rewrite-pods")), [K8S_TAMPER_RULES.admission]);
            assert.deepStrictEqual(fire(adm("create", "validatingadmissionpolicybindings", "deny-falco-pods")), [K8S_TAMPER_RULES.admission]);
            assert.deepStrictEqual(fire(adm("create", "mutatingadmissionpolicies", "m")), [K8S_TAMPER_RULES.admission]);
            assert.deepStrictEqual(fire(adm("delete", "validatingwebhookconfigurations", "old")), [], "removing a webhook cannot deny Falco's pods");
            assert.deepStrictEqual(fire(adm("create", "validatingwebhookconfigurations", "x", DEPLOYER)), [], "the deployer");
            const { policy } = renderProtection(resolveClusterSettings({ protection: { exemptUsers: [DEPLOYER] } }));
            assert.deepStrictEqual(fire(adm("update", "validatingadmissionpolicies", policy.metadata.name)), [K8S_TAMPER_RULES.protection]);
        });

        it("catch exec, run, attach and port-forward through nodes/proxy, not metrics scrapes", () => {
            const proxy = (path: string, verb = "create", stage = "ResponseStarted", code = 101) =>
                ({
                    stage,
                    verb,
                    user: { username: "alice" },
                    requestURI: `/api/v1/nodes/ip-10-0-0-5/proxy${path}`,
                    objectRef: { resource: "nodes", subresource: "proxy", name: "ip-10-0-0-5" },
                    responseStatus: { code },
                }) as AuditEvent;
            assert.deepStrictEqual(fire(proxy("/exec/falco/falco-x7k2p/falco?command=sh&input=1&output=1&tty=1", "get")), [K8S_TAMPER_RULES.nodeProxy]);
            assert.deepStrictEqual(fire(proxy("/run/web/app-1/app?cmd=id", "create", "ResponseComplete", 403)), [K8S_TAMPER_RULES.nodeProxy]);
            assert.deepStrictEqual(fire(proxy("/attach/falco/falco-x7k2p/falco")), [K8S_TAMPER_RULES.nodeProxy]);
            assert.deepStrictEqual(fire(proxy("/portForward/falco/falco-x7k2p")), [K8S_TAMPER_RULES.nodeProxy]);
            assert.deepStrictEqual(fire(proxy("/metrics/cadvisor", "get")), []);
            assert.deepStrictEqual(fire(proxy("/exec/falco/falco-x7k2p/falco", "get", "ResponseComplete", 101)), [], "once per session");
        });

        it("catch a shell in a Falco pod when it starts or is refused, not again when it ends", () => {
            const exec = (stage: string, code: number) =>
                ({
                    stage,
                    verb: "create",
                    user: { username: "alice" },
                    requestURI: "/api/v1/namespaces/falco/pods/falco-abcde/exec?command=sh&container=falco",
                    objectRef: { resource: "pods", subresource: "exec", namespace: "falco", name: "falco-abcde" },
                    responseStatus: { code },
                }) as AuditEvent;
            assert.deepStrictEqual(fire(exec("ResponseStarted", 101)), [K8S_TAMPER_RULES.exec]);
            assert.deepStrictEqual(fire(exec("ResponseComplete", 101)), []);
            assert.deepStrictEqual(fire(exec("ResponseComplete", 403)), [K8S_TAMPER_RULES.exec]);
            assert.deepStrictEqual(fire({ ...exec("ResponseStarted", 101), objectRef: { resource: "pods", subresource: "exec", namespace: "web", name: "x" } }), []);
        });
    });
});

describe("k8s_audit tamper rules in the whole loaded set (Falco's load order, rule_matching: first)", () => {
    // Upstream's k8saudit rules, unmodified: falcosecurity/plugins plugins/k8saudit/rules/k8s_audit_rules.yaml at
    // 029593e335101df1d4f0734a8d447ed8db718203 (what converge installs with falcoctl as k8saudit-rules).
    const upstream: Item[] = YAML.parse(fs.readFileSync(path.join(__dirname, "..", "fixtures", "k8saudit", "k8s_audit_rules.yaml"), "utf8"));
    const defaults: Item[] = YAML.parse(fs.readFileSync(referencePath("falco", "falco_rules.yaml"), "utf8"));
    const s = resolveHostSettings(ON);
    const files = renderRuleFiles(s);
    const ours = new Map(files.map((f) => [`${FALCO_RULES_D}/${f.fileName}`, YAML.parse(f.content) as Item[]]));
    /** Every file falco.yaml lists, in its order, as Falco loads them. */
    const loaded = (order: string[]): Item[] =>
        order.flatMap((p) => ours.get(p) ?? (p === FALCO_DEFAULT_RULES ? defaults : p.endsWith("/k8s_audit_rules.yaml") ? upstream : assert.fail(`unknown rules file ${p}`)));
    const order = buildFalcoConfig(s, files.map((f) => f.fileName)).rules_files as string[];
    const names = chartNames("falco");
    const ds = { resource: "daemonsets", apiGroup: "apps", namespace: "falco", name: names.falco };
    const exec = (ns: string, name: string): AuditEvent => ({
        stage: "ResponseStarted",
        verb: "create",
        user: { username: "alice" },
        requestURI: `/api/v1/namespaces/${ns}/pods/${name}/exec?command=sh`,
        objectRef: { resource: "pods", subresource: "exec", namespace: ns, name },
        responseStatus: { code: 101 },
    });

    it("loads upstream's k8saudit rules (both files are in the set)", () => {
        assert.ok(order.some((p) => p.endsWith("/k8s_audit_rules.yaml")), order.join(" "));
        assert.ok(upstream.some((i) => i.rule === "Disallowed K8s User") && upstream.some((i) => i.rule === "Attach/Exec Pod"));
    });

    it("reports our Critical rule, not upstream's Warning or Notice, for deleting Falco's DaemonSet or a shell in its pod", () => {
        const items = loaded(order);
        assert.strictEqual(reportedRule(items, event("delete", ds)), K8S_TAMPER_RULES.workload);
        assert.strictEqual(reportedRule(items, exec("falco", "falco-abcde")), K8S_TAMPER_RULES.exec);
    });

    it("leaves upstream's rules reporting what ours do not match", () => {
        const items = loaded(order);
        assert.strictEqual(reportedRule(items, exec("web", "shop-1")), "Attach/Exec Pod");
        assert.strictEqual(reportedRule(items, event("delete", { resource: "configmaps", namespace: "web", name: "x" })), "Disallowed K8s User");
    });

    it("would lose our alerts to upstream's with upstream loaded first (the old order: the check can fail)", () => {
        const old = [...order.filter((p) => !ours.has(p)), ...order.filter((p) => ours.has(p))];
        const items = loaded(old);
        assert.strictEqual(reportedRule(items, event("delete", ds)), "Disallowed K8s User");
        assert.strictEqual(reportedRule(items, exec("falco", "falco-abcde")), "Attach/Exec Pod");
    });
});
