/**
 * k8sAudit's artifacts on a real (emulated) Debian VM that can reach nothing but an OCI registry on its own
 * loopback: qemu user networking with restrict=on (vm.ts), and Debian's docker-registry running inside the guest.
 * The artifacts are pushed on this machine to a registry (test/support/ociRegistry.ts, the real push API) whose
 * storage, in distribution's filesystem layout, is then copied into the guest and served there with the same TLS
 * certificate; the guest trusts the test CA through ca-certificates, as a host trusts its mirror's CA.
 *
 * falcoctl is the TEST STAND-IN (standin/falcoctl-standin.sh, falcoctl v0.13's `artifact install`: pull by digest,
 * every digest checked). It reads manifests with jq, which the image does not have: this machine's jq and
 * docker-registry binaries (and jq's two libraries) are copied into the guest, test tooling only. Falco is the
 * stand-in package from the test's apt repository. Everything around them is real: apt, systemd, sshd, the files.
 * Steps build on each other.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { k8sAuditArtifacts } from "../../components/host/k8sAudit";
import { ARTIFACTS_DIR, FALCO_MAIN_CONFIG, UNIT_NAME } from "../../components/host/paths";
import { DEFAULT_K8SAUDIT_PLUGIN_VERSIONS as V, HostSettings, K8sAuditPluginDigests, resolveHostSettings } from "../../components/host/settings";
import { TEST_K8SAUDIT_NEXT_DIGEST } from "../support/k8sAuditDigests";
import { LocalOciRegistry, ociRegistryAvailable, pluginBuildContent, PushedArtifact, pushK8sAuditArtifacts } from "../support/ociRegistry";
import { AptRepo, startAptRepo } from "./aptRepo";
import { e2eDebian, ensureBaseImage, skipUnlessRelease } from "./artifacts";
import { runChecked, stopAtFirstFailure, tail } from "./exec";
import { aptSettings, bundleFor, convergeOk, runHostScript } from "./host";
import { FALCOCTL_STANDIN } from "./kmod";
import { startVm, Vm } from "./vm";

const PREFIX = "mirror/falcosecurity/plugins";
const RULES = "- list: k8s_audit_rules_from_the_guest_registry\n  items: [registry]\n";
/** This machine's files the guest needs for the registry and for jq (test tooling, not part of the product). */
const TOOLING = ["/usr/bin/docker-registry", "/usr/bin/jq", "/usr/lib/x86_64-linux-gnu/libjq.so.1", "/usr/lib/x86_64-linux-gnu/libonig.so.5"];

describe(`e2e: k8sAudit artifacts from an OCI registry, no other network, on a ${e2eDebian().title} VM (stand-in falcoctl)`, function () {
    stopAtFirstFailure();
    let repo: AptRepo;
    let vm: Vm;
    let registry: LocalOciRegistry;
    let pushed: { k8saudit: PushedArtifact; json: PushedArtifact; rules: PushedArtifact };
    let t0 = 0;

    const root = (script: string) =>
        vm.runAsRoot(script).then((r) => {
            if (r.code !== 0) throw new Error(`root script exited ${r.code}\n${tail(r.stdout)}\n${tail(r.stderr)}`);
            return r.stdout.trim();
        });
    const digests = (): K8sAuditPluginDigests => ({ k8saudit: pushed.k8saudit.digest, json: pushed.json.digest, rules: pushed.rules.digest });
    const settings = (k: HostSettings["k8sAudit"] = {}): HostSettings =>
        aptSettings(repo, {
            // The image has no nftables; the firewall is tested on its own (test/host/k8sAudit*.test.ts).
            k8sAudit: { enabled: true, allowedSources: ["10.0.2.2/32"], firewall: false, registry: `${registry.host}/${PREFIX}`, pluginDigests: digests(), ...k },
        });

    before(async function () {
        skipUnlessRelease(this, ["bookworm"], "the registry client (the falcoctl stand-in, with this machine's jq and docker-registry)");
        if (!ociRegistryAvailable() || !TOOLING.every((f) => fs.existsSync(f))) this.skip();
        this.timeout(20 * 60_000);
        t0 = Date.now();
        await ensureBaseImage();
        // Push on this machine, then take the registry's storage (and its certificate) into the guest.
        registry = new LocalOciRegistry();
        await registry.start();
        // The guest is x86_64 (qemu-system-x86_64): falcoctl must pick the linux/amd64 build.
        pushed = pushK8sAuditArtifacts(registry, PREFIX, "amd64", V, RULES);
        const payload = path.join(registry.dir, "guest.tar");
        await runChecked("tar", ["-cf", payload, "-C", registry.dir, "storage", "server.pem", "server.key", "ca.pem"]);
        repo = await startAptRepo();
        vm = await startVm({ guestHttpPort: repo.server.port });

        for (const f of TOOLING) {
            const lib = f.includes("/lib/");
            await vm.copyTo(fs.realpathSync(f), lib ? `/usr/local/lib/${path.basename(f)}` : `/usr/local/bin/${path.basename(f)}`, { mode: lib ? "0644" : "0755" });
        }
        await vm.copyTo(payload, "/srv/registry.tar", { mode: "0600" });
        await vm.copyTo(FALCOCTL_STANDIN, "/usr/bin/falcoctl", { mode: "0755" });
        await vm.writeFile(
            "/srv/registry/config.yml",
            YAML.stringify({
                version: 0.1,
                log: { level: "warn" },
                storage: { filesystem: { rootdirectory: "/srv/registry/storage" } },
                http: { addr: registry.host, tls: { certificate: "/srv/registry/server.pem", key: "/srv/registry/server.key" } },
            }),
        );
        await root(
            [
                "set -e",
                "ldconfig",
                "tar -xf /srv/registry.tar -C /srv/registry",
                "install -m 0644 /srv/registry/ca.pem /usr/local/share/ca-certificates/falco-nodes-test-registry.crt",
                "update-ca-certificates >/dev/null",
                "systemd-run --unit=test-registry /usr/local/bin/docker-registry serve /srv/registry/config.yml",
                `for i in $(seq 50); do curl -fsS -o /dev/null https://${registry.host}/v2/ && exit 0; sleep 0.2; done; exit 1`,
            ].join("\n"),
        );
        // Nothing else is reachable: not ghcr.io, not falcosecurity's index.
        const out = await vm.runAsRoot("curl -fsS --max-time 10 -o /dev/null https://falcosecurity.github.io/falcoctl/index.yaml");
        assert.notStrictEqual(out.code, 0, "the guest must not reach falcosecurity's index");
    });

    after(async function () {
        if (this.currentTest?.state === "failed") console.log(`[e2e] console log: ${vm?.consoleLog}`);
        await vm?.stop();
        await repo?.stop();
        registry?.stop();
        if (t0) console.log(`[e2e] k8sAudit registry total: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    });

    it("converge installs each artifact by its pinned digest from the registry, Falco loads them, a second run changes nothing", async function () {
        this.timeout(15 * 60_000);
        const report = await convergeOk(vm, bundleFor(settings()));
        assert.strictEqual(report.restarted, true);
        const artifacts = k8sAuditArtifacts(resolveHostSettings(settings()));
        assert.strictEqual(await vm.readFile(artifacts[0].path), pluginBuildContent("libk8saudit.so", "linux/amd64"));
        assert.strictEqual(await vm.readFile(artifacts[1].path), pluginBuildContent("libjson.so", "linux/amd64"));
        assert.strictEqual(await vm.readFile(artifacts[2].path), RULES);
        for (const a of artifacts) assert.strictEqual(await vm.readFile(`${ARTIFACTS_DIR}/${a.dir}/.falco-nodes-ref`), `${a.ref}\n`);
        const config = YAML.parse(await vm.readFile(FALCO_MAIN_CONFIG));
        assert.deepStrictEqual(config.load_plugins, ["k8saudit", "json"]);
        assert.strictEqual((await vm.unitProps(UNIT_NAME, ["ActiveState"])).ActiveState, "active");
        const calls = (await root("cat /var/log/falcoctl-standin.log")).split("\n");
        assert.deepStrictEqual(calls.map((c) => c.split(" -- ")[1]), artifacts.map((a) => a.ref));

        const again = await runHostScript(vm, bundleFor(settings()));
        assert.strictEqual(again.code, 0, tail(again.stderr, 60));
        assert.strictEqual(again.report?.changed, false, `the second converge changed something:\n${tail(again.stderr, 60)}`);
        assert.strictEqual((await root("cat /var/log/falcoctl-standin.log")).split("\n").length, 3, "nothing pulled again");
    });

    it("refuses a digest the registry does not hold: Falco keeps running on its files", async function () {
        this.timeout(10 * 60_000);
        const yaml = await vm.readFile(FALCO_MAIN_CONFIG);
        const pid = (await vm.unitProps(UNIT_NAME, ["MainPID"])).MainPID;
        const r = await runHostScript(vm, bundleFor(settings({ pluginVersions: { json: "0.7.4" }, pluginDigests: { ...digests(), json: TEST_K8SAUDIT_NEXT_DIGEST } })));
        assert.notStrictEqual(r.code, 0);
        assert.match(r.stderr, /falcoctl could not install .*plugin\/json:0\.7\.4@sha256:.*not changed/);
        assert.strictEqual(await vm.readFile(FALCO_MAIN_CONFIG), yaml);
        assert.strictEqual((await vm.unitProps(UNIT_NAME, ["MainPID"])).MainPID, pid, "Falco was not restarted");
    });
});
