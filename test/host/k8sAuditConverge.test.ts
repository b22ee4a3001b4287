import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as YAML from "yaml";
import { renderBundle } from "../../components/host/bundle";
import { k8sAuditArtifacts } from "../../components/host/k8sAudit";
import {
    ARTIFACTS_DIR,
    FALCO_MAIN_CONFIG,
    FIREWALL_RULES_PATH,
    FIREWALL_UNIT_NAME,
    FIREWALL_UNIT_PATH,
    STATE_DIR,
    UNIT_NAME,
} from "../../components/host/paths";
import { HostSettings, resolveHostSettings } from "../../components/host/settings";
import { HostSandbox, sandboxAvailable } from "../support/hostSandbox";
import { TEST_K8SAUDIT_DIGESTS, TEST_K8SAUDIT_NEXT_DIGEST } from "../support/k8sAuditDigests";

const WEBHOOK: HostSettings = {
    k8sAudit: { enabled: true, pluginDigests: TEST_K8SAUDIT_DIGESTS, allowedSources: ["10.0.0.10/32", "10.0.0.11/32", "fd00::10/128"] },
};
const EKS: HostSettings = {
    k8sAudit: { enabled: true, pluginDigests: TEST_K8SAUDIT_DIGESTS, variant: "eks", eks: { clusterName: "prod", region: "eu-west-1" } },
};

describe("converge with k8sAudit: generated scripts (static)", () => {
    for (const [name, settings] of [["webhook", WEBHOOK], ["eks", EKS]] as const) {
        it(`the install and uninstall scripts are shellcheck-clean and parse (${name})`, () => {
            const b = renderBundle(resolveHostSettings(settings));
            const dir = fs.mkdtempSync(path.join(os.tmpdir(), "falco-nodes-k8s-"));
            try {
                const files = [b.installScript, b.uninstallScript].map((text, i) => {
                    const f = path.join(dir, `s${i}.sh`);
                    fs.writeFileSync(f, text);
                    return f;
                });
                const r = spawnSync("shellcheck", ["-x", "--severity=style", "--shell=bash", ...files], { encoding: "utf8" });
                assert.equal(r.status, 0, r.stdout + r.stderr);
                for (const f of files) assert.equal(spawnSync("bash", ["-n", f]).status, 0);
            } finally {
                fs.rmSync(dir, { recursive: true, force: true });
            }
        });
    }
});

describe("converge with k8sAudit: real runs in a sandbox", function () {
    let sb: HostSandbox;
    const bundleFor = (settings: HostSettings) => {
        const resolved = resolveHostSettings({ ...settings, install: { source: "preinstalled", binaryPath: sb.falco } });
        return { bundle: renderBundle(resolved), artifacts: k8sAuditArtifacts(resolved) };
    };
    const falcoYaml = () => YAML.parse(sb.read(FALCO_MAIN_CONFIG)!);

    before(function () {
        if (!sandboxAvailable()) this.skip();
    });
    beforeEach(() => {
        sb = new HostSandbox();
    });
    afterEach(() => sb?.cleanup());

    it("installs the pinned artifacts and the firewall before Falco starts listening, then is idempotent", () => {
        const { bundle, artifacts } = bundleFor(WEBHOOK);
        const r = sb.run(bundle.installScript);
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.report?.restarted, true);

        // One falcoctl call per pinned reference, each into a staging directory below the artifacts directory.
        const calls = sb.log("falcoctl");
        assert.equal(calls.length, 3, calls.join("\n"));
        for (const a of artifacts) {
            assert.ok(calls.some((c) => c.endsWith(`-- ${a.ref}`) && c.includes("--resolve-deps=false")), a.ref);
            assert.ok(sb.read(a.path), `${a.path} installed`);
            assert.equal(sb.read(`${ARTIFACTS_DIR}/${a.dir}/.falco-nodes-ref`), `${a.ref}\n`);
        }
        // falco.yaml loads exactly those files.
        const config = falcoYaml();
        const libs = config.plugins.map((p: { library_path: string }) => p.library_path);
        for (const a of artifacts.filter((x) => x.kind === "plugin")) assert.ok(libs.includes(a.path), a.path);
        assert.ok(config.rules_files.includes(artifacts.find((a) => a.kind === "rulesfile")!.path));

        // The ruleset was checked, then loaded, and its boot unit enabled, all before the restart.
        const nft = sb.log("nft");
        assert.ok(nft.some((l) => l.startsWith("-c -f ")), nft.join("\n"));
        assert.equal(sb.stateFile("nft-ruleset"), sb.read(FIREWALL_RULES_PATH));
        assert.ok(sb.has("enabled", FIREWALL_UNIT_NAME));
        assert.ok(sb.read(FIREWALL_UNIT_PATH));
        const systemctl = sb.log("systemctl");
        const enableFirewall = systemctl.findIndex((l) => l.includes(`enable --quiet -- ${FIREWALL_UNIT_NAME}`));
        const restart = systemctl.findIndex((l) => l.startsWith(`restart -- ${UNIT_NAME}`));
        assert.ok(enableFirewall >= 0 && restart > enableFirewall, systemctl.join("\n"));

        sb.clearLogs();
        const before = sb.snapshot();
        const again = sb.run(bundle.installScript);
        assert.equal(again.status, 0, again.stderr);
        assert.deepEqual([again.report?.changed, again.report?.restarted], [false, false]);
        assert.deepEqual(sb.log("falcoctl"), [], "nothing downloaded again");
        assert.ok(!sb.log("nft").some((l) => l.startsWith("-f ")), "the ruleset is not reloaded");
        assert.deepEqual(sb.snapshot(), before);
    });

    it("replaces an artifact that changed on the host, and restarts Falco off the changed copy", () => {
        const { bundle, artifacts } = bundleFor(WEBHOOK);
        assert.equal(sb.run(bundle.installScript).status, 0);
        const plugin = artifacts[0];
        const original = sb.read(plugin.path)!;
        sb.write(plugin.path, "a trojaned plugin\n", 0o644);
        sb.clearLogs();
        const r = sb.run(bundle.installScript);
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stderr, /is not what converge installed/);
        assert.equal(sb.read(plugin.path), original);
        assert.deepEqual(sb.log("falcoctl").length, 1);
        assert.equal(r.report?.restarted, true);
    });

    it("stages a new version beside the old one and prunes the old one only after Falco came up", () => {
        const { bundle: old, artifacts: oldArtifacts } = bundleFor(WEBHOOK);
        assert.equal(sb.run(old.installScript).status, 0);
        const { bundle: next, artifacts: nextArtifacts } = bundleFor({
            k8sAudit: { ...WEBHOOK.k8sAudit, pluginVersions: { k8saudit: "0.19.0" }, pluginDigests: { ...TEST_K8SAUDIT_DIGESTS, k8saudit: TEST_K8SAUDIT_NEXT_DIGEST } },
        });
        const r = sb.run(next.installScript);
        assert.equal(r.status, 0, r.stderr);
        assert.ok(sb.read(nextArtifacts[0].path));
        assert.equal(sb.stat(`${ARTIFACTS_DIR}/${oldArtifacts[0].dir}`), undefined, "old version pruned");
        assert.ok(sb.read(oldArtifacts[1].path), "unchanged artifacts stay");
    });

    it("installs a new digest of the same version again, in place, and restarts Falco on it", () => {
        const { bundle: old, artifacts: oldArtifacts } = bundleFor(WEBHOOK);
        assert.equal(sb.run(old.installScript).status, 0);
        sb.clearLogs();
        const { bundle: next, artifacts: nextArtifacts } = bundleFor({
            k8sAudit: { ...WEBHOOK.k8sAudit, pluginDigests: { ...TEST_K8SAUDIT_DIGESTS, k8saudit: TEST_K8SAUDIT_NEXT_DIGEST } },
        });
        assert.equal(nextArtifacts[0].path, oldArtifacts[0].path, "same version, same directory");
        const r = sb.run(next.installScript);
        assert.equal(r.status, 0, r.stderr);
        assert.deepEqual(sb.log("falcoctl").map((c) => c.split(" -- ")[1]), [nextArtifacts[0].ref], "only the changed artifact is pulled");
        assert.match(sb.read(nextArtifacts[0].path) ?? "", new RegExp(TEST_K8SAUDIT_NEXT_DIGEST));
        assert.equal(sb.read(`${ARTIFACTS_DIR}/${nextArtifacts[0].dir}/.falco-nodes-ref`), `${nextArtifacts[0].ref}\n`);
        assert.equal(r.report?.restarted, true);
    });

    it("keeps Falco's files and the old artifacts when the new version fails to come up", () => {
        const { bundle: old, artifacts: oldArtifacts } = bundleFor(WEBHOOK);
        assert.equal(sb.run(old.installScript).status, 0);
        const yaml = sb.read(FALCO_MAIN_CONFIG);
        const { bundle: crashing } = bundleFor({
            k8sAudit: { ...WEBHOOK.k8sAudit, pluginVersions: { k8saudit: "0.19.0" }, pluginDigests: { ...TEST_K8SAUDIT_DIGESTS, k8saudit: TEST_K8SAUDIT_NEXT_DIGEST } },
            rules: { custom: { crash: "- list: FAIL_AT_START\n  items: [x]\n" } },
        });
        const r = sb.run(crashing.installScript);
        assert.equal(r.status, 1);
        assert.equal(sb.read(FALCO_MAIN_CONFIG), yaml);
        assert.ok(sb.read(oldArtifacts[0].path), "the running version's plugin is still there");
    });

    it("loads the firewall again when someone flushed it, without restarting Falco", () => {
        const { bundle } = bundleFor(WEBHOOK);
        assert.equal(sb.run(bundle.installScript).status, 0);
        sb.mark("nft-ruleset", false);
        sb.clearLogs();
        const r = sb.run(bundle.installScript);
        assert.equal(r.status, 0, r.stderr);
        assert.equal(sb.stateFile("nft-ruleset"), sb.read(FIREWALL_RULES_PATH));
        assert.deepEqual([r.report?.changed, r.report?.restarted], [true, false]);
    });

    it("refuses, changing nothing, when nft is missing", () => {
        const r = sb.run(bundleFor(WEBHOOK).bundle.installScript, { hide: ["nft"] });
        assert.equal(r.status, 1);
        assert.match(r.stderr, /nft \(nftables\) is not installed.*k8sAudit\.firewall: false.*nothing was changed/);
        assert.equal(sb.stat(FALCO_MAIN_CONFIG), undefined);
        assert.deepEqual(sb.log("falcoctl"), []);
    });

    it("needs no nft for the eks variant, and installs its plugin instead of the webhook's", () => {
        const { bundle, artifacts } = bundleFor(EKS);
        const r = sb.run(bundle.installScript, { hide: ["nft"] });
        assert.equal(r.status, 0, r.stderr);
        assert.deepEqual(artifacts.map((a) => a.name), ["k8saudit-eks", "json", "k8saudit-rules"]);
        assert.equal(sb.stat(FIREWALL_RULES_PATH), undefined);
        assert.equal(falcoYaml().load_plugins[0], "k8saudit-eks");
    });

    it("changes nothing in Falco's configuration when falcoctl cannot fetch an artifact", () => {
        const { bundle } = bundleFor({});
        assert.equal(sb.run(bundle.installScript).status, 0);
        const yaml = sb.read(FALCO_MAIN_CONFIG);
        sb.mark("falcoctl-fail");
        sb.clearLogs();
        const r = sb.run(bundleFor(WEBHOOK).bundle.installScript);
        assert.equal(r.status, 1);
        assert.match(r.stderr, /falcoctl could not install k8saudit@sha256:[0-9a-f]{64} .*not changed/);
        assert.equal(sb.read(FALCO_MAIN_CONFIG), yaml);
        assert.ok(!sb.log("systemctl").some((l) => l.startsWith("restart")));
    });

    it("changes nothing when nft rejects the ruleset", () => {
        const { bundle } = bundleFor({});
        assert.equal(sb.run(bundle.installScript).status, 0);
        sb.mark("nft-reject");
        const before = sb.snapshot();
        const r = sb.run(bundleFor(WEBHOOK).bundle.installScript);
        assert.equal(r.status, 1);
        assert.match(r.stderr, /nft rejected the k8saudit firewall ruleset/);
        // Only staged artifacts (unused by Falco) may have appeared.
        const after = Object.keys(sb.snapshot()).filter((p) => !p.startsWith(ARTIFACTS_DIR));
        assert.deepEqual(after, Object.keys(before));
        assert.equal(sb.stateFile("nft-ruleset"), undefined);
    });

    it("refuses a TLS certificate file that is missing or readable by others, and accepts a root-only one", () => {
        const cert = "/etc/pki-test/k8saudit.pem";
        const withTls = { k8sAudit: { ...WEBHOOK.k8sAudit, tls: { certificatePath: cert } } };
        const { bundle } = bundleFor(withTls);
        let r = sb.run(bundle.installScript);
        assert.equal(r.status, 1);
        assert.match(r.stderr, /k8sAudit\.tls\.certificatePath \/etc\/pki-test\/k8saudit\.pem is not a file on this host/);
        sb.write(cert, "-----BEGIN CERTIFICATE-----\n", 0o644);
        r = sb.run(bundle.installScript);
        assert.equal(r.status, 1);
        assert.match(r.stderr, /is not root-owned with mode 0600 \(owner uid and mode: 0 644\)/);
        assert.equal(sb.stat(FALCO_MAIN_CONFIG), undefined);
        sb.write(cert, "-----BEGIN CERTIFICATE-----\n", 0o600);
        r = sb.run(bundle.installScript);
        assert.equal(r.status, 0, r.stderr);
        const source = falcoYaml().plugins.find((p: { name: string }) => p.name === "k8saudit");
        assert.equal(source.init_config.sslCertificate, cert);
        assert.match(source.open_params, /^https:/);
    });

    it("takes the firewall, its unit and the artifacts away when k8sAudit is turned off", () => {
        assert.equal(sb.run(bundleFor(WEBHOOK).bundle.installScript).status, 0);
        sb.clearLogs();
        const r = sb.run(bundleFor({}).bundle.installScript);
        assert.equal(r.status, 0, r.stderr);
        assert.equal(sb.stat(FIREWALL_RULES_PATH), undefined);
        assert.equal(sb.stat(FIREWALL_UNIT_PATH), undefined);
        assert.ok(!sb.has("enabled", FIREWALL_UNIT_NAME));
        assert.equal(sb.stateFile("nft-ruleset"), undefined, "table deleted");
        assert.equal(sb.stat(ARTIFACTS_DIR), undefined, "artifacts pruned");
        assert.equal(falcoYaml().load_plugins.length, 0);
        // The table goes only after Falco restarted without the listener.
        const restartAt = sb.log("systemctl").findIndex((l) => l.startsWith("restart"));
        assert.ok(restartAt >= 0);
    });

    it("uninstall removes the firewall table, its unit and every artifact", () => {
        const { bundle } = bundleFor(WEBHOOK);
        assert.equal(sb.run(bundle.installScript).status, 0);
        const r = sb.run(bundle.installScript, { args: ["uninstall"] });
        assert.equal(r.status, 0, r.stderr);
        assert.equal(sb.stateFile("nft-ruleset"), undefined);
        assert.ok(!sb.has("enabled", FIREWALL_UNIT_NAME));
        for (const p of [FIREWALL_RULES_PATH, FIREWALL_UNIT_PATH, STATE_DIR]) assert.equal(sb.stat(p), undefined, p);
    });
});
