/**
 * Which falcoctl index converge's artifact installs use (components/host/scripts/k8saudit.sh): falcosecurity's
 * own (falcoctl's default) for falcosecurity's registry, so falcoctl verifies the artifacts' signatures from it;
 * none (`indexes: []`) for any other registry, so a host behind a mirror with no other network can install. Real
 * runs of the generated script in the sandbox, whose fake falcoctl models falcoctl's index handling
 * (test/support/hostSandbox.ts).
 */
import { strict as assert } from "assert";
import { renderBundle } from "../../components/host/bundle";
import { CONVERGE_SCRIPT } from "../../components/host/installScript";
import { k8sAuditArtifacts } from "../../components/host/k8sAudit";
import { DEFAULT_K8SAUDIT_REGISTRY, HostSettings, resolveHostSettings } from "../../components/host/settings";
import { HostSandbox, sandboxAvailable } from "../support/hostSandbox";
import { TEST_K8SAUDIT_DIGESTS } from "../support/k8sAuditDigests";

const MIRROR = "registry.internal:5000/mirror/falcosecurity/plugins";
const WEBHOOK = (registry?: string): HostSettings => ({
    k8sAudit: { enabled: true, pluginDigests: TEST_K8SAUDIT_DIGESTS, allowedSources: ["10.0.0.10/32"], ...(registry ? { registry } : {}) },
});

describe("converge with k8sAudit: falcoctl's index", function () {
    let sb: HostSandbox;
    const bundleFor = (settings: HostSettings) => {
        const resolved = resolveHostSettings({ ...settings, install: { source: "preinstalled", binaryPath: sb.falco } });
        return { bundle: renderBundle(resolved), artifacts: k8sAuditArtifacts(resolved) };
    };

    it("names falcosecurity's artifacts by index name, a mirror's by full reference: what converge tells apart", () => {
        const refs = (registry?: string) => k8sAuditArtifacts(resolveHostSettings(WEBHOOK(registry))).map((a) => a.ref);
        assert.ok(refs().every((r) => !r.includes("/")), refs().join(" "));
        assert.ok(refs(DEFAULT_K8SAUDIT_REGISTRY).every((r) => !r.includes("/")));
        assert.ok(refs(MIRROR).every((r) => r.startsWith(`${MIRROR}/`)));
        assert.match(CONVERGE_SCRIPT, /if \[\[ \$ref != \*\/\* \]\]; then\n\s*: >"\$WORK\/falcoctl\.yaml"/);
    });

    describe("real runs in a sandbox", function () {
        before(function () {
            if (!sandboxAvailable()) this.skip();
        });
        beforeEach(() => {
            sb = new HostSandbox();
        });
        afterEach(() => sb?.cleanup());

        it("online, falcosecurity's registry: falcoctl's default index resolves the index names, so every signature is verified", () => {
            const { bundle, artifacts } = bundleFor(WEBHOOK());
            const r = sb.run(bundle.installScript);
            assert.equal(r.status, 0, r.stderr);
            assert.deepEqual(sb.stateFile("falcoctl-configs")?.split("\n").filter(Boolean), artifacts.map(() => "config:"));
            assert.deepEqual(sb.stateFile("falcoctl-verified")?.split("\n").filter(Boolean), [
                `verified ghcr.io/falcosecurity/plugins/plugin/k8saudit@${TEST_K8SAUDIT_DIGESTS.k8saudit}`,
                `verified ghcr.io/falcosecurity/plugins/plugin/json@${TEST_K8SAUDIT_DIGESTS.json}`,
                `verified ghcr.io/falcosecurity/plugins/ruleset/k8saudit@${TEST_K8SAUDIT_DIGESTS.rules}`,
            ]);
            // What landed is the pinned digest's content (the fake writes the digest it pulled).
            assert.match(sb.read(artifacts[0].path) ?? "", new RegExp(TEST_K8SAUDIT_DIGESTS.k8saudit));
        });

        it("air-gapped behind a mirror: no index (indexes: []), so nothing but the mirror is needed", () => {
            sb.mark("offline");
            const { bundle, artifacts } = bundleFor(WEBHOOK(MIRROR));
            assert.ok(artifacts.every((a) => a.ref.startsWith(`${MIRROR}/`)), "the refs name the mirror");
            const r = sb.run(bundle.installScript);
            assert.equal(r.status, 0, r.stderr);
            assert.deepEqual(sb.stateFile("falcoctl-configs")?.split("\n").filter(Boolean), artifacts.map(() => "config:indexes: [] "));
            for (const a of artifacts) assert.ok(sb.stat(a.path)?.isFile(), `${a.path} installed`);
            assert.equal(sb.stateFile("falcoctl-verified"), undefined, "a mirror's full references carry no index signature");
        });

        it("air-gapped with falcosecurity's registry: refused, naming the setting to change, Falco's configuration untouched", () => {
            sb.mark("offline");
            const { bundle } = bundleFor(WEBHOOK());
            const r = sb.run(bundle.installScript);
            assert.notEqual(r.status, 0);
            assert.match(r.stderr, /falcoctl could not install k8saudit@sha256:[0-9a-f]{64} .*k8sAudit\.registry.*not changed/);
        });
    });
});
