/**
 * k8sAudit's artifacts from a real OCI registry, air-gapped: Debian's docker-registry (test/support/ociRegistry.ts)
 * holds plugins and a rules file pushed the way falcoctl pushes them, in a network namespace whose only network is
 * that registry. The real generated converge script runs in the sandbox inside that namespace, with falcoctl
 * played by the e2e TEST STAND-IN (test/e2e/standin/falcoctl-standin.sh: falcoctl v0.13's `artifact install`
 * over the OCI distribution API, pulling by digest and checking every digest). The digests pinned here are the
 * ones the registry serves for what was pushed: nothing is made up on the registry side.
 */
import { strict as assert } from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { renderBundle } from "../../components/host/bundle";
import { k8sAuditArtifacts } from "../../components/host/k8sAudit";
import { ARTIFACTS_DIR, FALCO_MAIN_CONFIG } from "../../components/host/paths";
import { DEFAULT_K8SAUDIT_PLUGIN_VERSIONS as V, HostSettings, K8sAuditPluginDigests, resolveHostSettings } from "../../components/host/settings";
import { HostSandbox, sandboxAvailable } from "../support/hostSandbox";
import { TEST_K8SAUDIT_NEXT_DIGEST } from "../support/k8sAuditDigests";
import { LocalOciRegistry, ociRegistryAvailable, pluginBuildContent, PushedArtifact, pushK8sAuditArtifacts } from "../support/ociRegistry";

const STANDIN = path.resolve(__dirname, "../e2e/standin/falcoctl-standin.sh");
const PREFIX = "mirror/falcosecurity/plugins";
/** Go's GOARCH for this machine, the platform falcoctl picks from a plugin's image index. */
const GOARCH = ({ x64: "amd64", arm64: "arm64" } as Record<string, string>)[os.arch()] ?? os.arch();
const RULES = "- list: k8s_audit_rules_from_the_local_registry\n  items: [registry]\n";

describe("k8sAudit artifacts from a local OCI registry (docker-registry), no other network", function () {
    let registry: LocalOciRegistry;
    let pushed: { k8saudit: PushedArtifact; json: PushedArtifact; rules: PushedArtifact };
    let sb: HostSandbox;
    const mirror = () => `${registry.host}/${PREFIX}`;
    const digests = (): K8sAuditPluginDigests => ({ k8saudit: pushed.k8saudit.digest, json: pushed.json.digest, rules: pushed.rules.digest });
    const settings = (k: HostSettings["k8sAudit"] = {}): HostSettings => ({
        install: { source: "preinstalled", binaryPath: sb.falco },
        k8sAudit: { enabled: true, allowedSources: ["10.0.0.10/32"], registry: mirror(), pluginDigests: digests(), ...k },
    });
    const converge = (s: HostSettings) => sb.run(renderBundle(resolveHostSettings(s)).installScript, { netns: registry.netns });

    before(async function () {
        if (!sandboxAvailable() || !ociRegistryAvailable()) this.skip();
        this.timeout(60_000);
        registry = new LocalOciRegistry();
        await registry.start();
        pushed = pushK8sAuditArtifacts(registry, PREFIX, GOARCH, V, RULES);
    });
    after(() => registry?.stop());
    beforeEach(() => {
        sb = new HostSandbox();
        sb.useFalcoctl(STANDIN, registry.caFile);
    });
    afterEach(() => sb?.cleanup());

    it("converge installs each artifact by its pinned digest, this platform's plugin build, then is idempotent", () => {
        const artifacts = k8sAuditArtifacts(resolveHostSettings(settings()));
        assert.deepEqual(artifacts.map((a) => a.ref), [
            `${mirror()}/plugin/k8saudit:${V.k8saudit}@${pushed.k8saudit.digest}`,
            `${mirror()}/plugin/json:${V.json}@${pushed.json.digest}`,
            `${mirror()}/ruleset/k8saudit:${V.rules}@${pushed.rules.digest}`,
        ]);
        const r = converge(settings());
        assert.equal(r.status, 0, r.stderr);
        assert.equal(sb.read(artifacts[0].path), pluginBuildContent("libk8saudit.so", `linux/${GOARCH}`));
        assert.equal(sb.read(artifacts[1].path), pluginBuildContent("libjson.so", `linux/${GOARCH}`));
        assert.equal(sb.read(artifacts[2].path), RULES);
        for (const a of artifacts) assert.equal(sb.read(`${ARTIFACTS_DIR}/${a.dir}/.falco-nodes-ref`), `${a.ref}\n`);
        // The stand-in logs the manifest it installed: the platform's one, reached through the pinned index.
        assert.match(r.stdout + r.stderr, new RegExp(`Artifact successfully installed .*digest=${pushed.k8saudit.manifests[`linux/${GOARCH}`]}`));
        assert.equal(sb.log("falcoctl").length, 3);

        sb.clearLogs();
        const again = converge(settings());
        assert.equal(again.status, 0, again.stderr);
        assert.equal(again.report?.changed, false);
        assert.deepEqual(sb.log("falcoctl"), [], "nothing pulled again");
    });

    it("refuses a digest the registry does not hold: Falco's configuration untouched", () => {
        assert.equal(converge({ install: { source: "preinstalled", binaryPath: sb.falco } }).status, 0);
        const yaml = sb.read(FALCO_MAIN_CONFIG);
        sb.clearLogs();
        const r = converge(settings({ pluginDigests: { ...digests(), json: TEST_K8SAUDIT_NEXT_DIGEST } }));
        assert.equal(r.status, 1);
        assert.match(r.stderr, new RegExp(`unable to fetch ${PREFIX}/plugin/json@${TEST_K8SAUDIT_NEXT_DIGEST}`));
        assert.match(r.stderr, /falcoctl could not install .*plugin\/json:.*k8sAudit\.pluginDigests.*not changed/);
        assert.equal(sb.read(FALCO_MAIN_CONFIG), yaml);
        assert.ok(!sb.log("systemctl").some((l) => l.startsWith("restart")));
    });

    it("refuses content that does not match its digest (a tampered registry), writing nothing", () => {
        const blob = registry.blobPath(pushed.k8saudit.layers[`linux/${GOARCH}`]);
        const original = fs.readFileSync(blob);
        fs.writeFileSync(blob, Buffer.concat([original, Buffer.from("tampered")]));
        try {
            const r = converge(settings());
            assert.equal(r.status, 1);
            assert.match(r.stderr, /unable to pull artifact .*plugin\/k8saudit@sha256:[0-9a-f]{64}: mismatched digest/);
            assert.match(r.stderr, /falcoctl could not install .*not changed/);
            assert.equal(sb.read(FALCO_MAIN_CONFIG), undefined, "no falco.yaml was written");
            assert.deepEqual(fs.readdirSync(path.join(sb.root, "varlib/upper")).filter((d) => d !== "falco-nodes"), []);
        } finally {
            fs.writeFileSync(blob, original);
        }
    });

    it("needs falcosecurity's index for falcosecurity's registry, and fails when it cannot be fetched, as falcoctl does", () => {
        // The default registry: index names, which only falcosecurity's index resolves (and signs).
        const r = converge(settings({ registry: undefined, pluginDigests: digests() }));
        assert.equal(r.status, 1);
        assert.match(r.stderr, /unable to fetch index "falcosecurity" with URL "https:\/\/falcosecurity\.github\.io\/falcoctl\/index\.yaml"/);
        assert.match(r.stderr, /falcoctl could not install k8saudit@sha256:.*k8sAudit\.registry.*not changed/);
        // And the index is fetched before anything else: with no `indexes` key even the mirror's reference fails.
        const dest = fs.mkdtempSync(path.join(os.tmpdir(), "falco-nodes-dest-"));
        try {
            fs.writeFileSync(path.join(dest, "falcoctl.yaml"), "");
            const ref = `${mirror()}/plugin/json:${V.json}@${pushed.json.digest}`;
            const direct = registry.exec(STANDIN, ["artifact", "install", "--config", path.join(dest, "falcoctl.yaml"), "--resolve-deps=false", "--plugins-dir", dest, "--", ref], {
                env: { ...process.env, SSL_CERT_FILE: registry.caFile, FALCOCTL_STANDIN_LOG: path.join(dest, "log") },
            });
            assert.equal(direct.status, 1);
            assert.match(direct.stderr, /unable to fetch index "falcosecurity"/);
            assert.ok(!fs.existsSync(path.join(dest, "libjson.so")));
        } finally {
            fs.rmSync(dest, { recursive: true, force: true });
        }
    });
});
