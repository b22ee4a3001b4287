import { strict as assert } from "assert";
import * as fc from "fast-check";
import {
    FALCO_KEY_FINGERPRINT,
    HostSettings,
    HostSettingsError,
    httpOutputNeedsUrl,
    resolveHostSettings,
} from "../../components/host/settings";

/** The error a bad input raises, as the list of keys it names. */
function keysOf(input: unknown): string[] {
    try {
        resolveHostSettings(input as HostSettings);
    } catch (e) {
        assert.ok(e instanceof HostSettingsError, `expected HostSettingsError, got ${e}`);
        return e.problems.map((p) => p.key);
    }
    assert.fail("expected the settings to be rejected");
}

describe("host settings", () => {
    it("fills in the defaults a security engineer would choose", () => {
        const s = resolveHostSettings();
        assert.equal(s.falcoVersion, "0.44.1");
        assert.equal(s.driver, "modern_ebpf");
        assert.equal(s.install.source, "apt");
        assert.equal(s.install.keyFingerprint, FALCO_KEY_FINGERPRINT);
        assert.equal(s.outputs.jsonOutput, true);
        assert.equal(s.outputs.http.enabled, false);
        assert.equal(s.outputs.file.path, "/var/log/falco/events.json");
        assert.equal(s.heartbeat.enabled, true);
        assert.equal(s.webserver.enabled, true);
        assert.deepEqual(s.rules.builtin, ["self-protection"]);
        assert.equal(s.hardening.sysctl.enabled, true);
        assert.equal(s.hardening.sshd.enabled, true);
        assert.equal(s.hardening.sshd.permitRootLogin, false);
    });

    it("uses the rpm repository when the source is rpm", () => {
        assert.equal(resolveHostSettings({ install: { source: "rpm" } }).install.repoUrl, "https://download.falco.org/packages/rpm");
    });

    it("normalises a fingerprint written with spaces and lower case", () => {
        const spaced = "478b 2fbb c75f 4237 b731  da43 6510 6822 b35b 1b1f";
        assert.equal(resolveHostSettings({ install: { keyFingerprint: spaced } }).install.keyFingerprint, FALCO_KEY_FINGERPRINT);
    });

    it("names the key and the fix for each problem, all at once", () => {
        try {
            resolveHostSettings({ falcoVersion: "latest", driver: "ebpf" as never, outputs: { minimumPriority: "loud" as never } });
            assert.fail("accepted bad settings");
        } catch (e) {
            assert.ok(e instanceof HostSettingsError);
            assert.match(e.message, /falcoVersion: must be an exact version X\.Y\.Z/);
            assert.match(e.message, /driver: must be one of: modern_ebpf, kmod, auto/);
            assert.match(e.message, /outputs\.minimumPriority: must be one of: emergency/);
        }
    });

    it("rejects unknown keys instead of ignoring a typo", () => {
        assert.deepEqual(keysOf({ outputs: { jsonOuput: true } }), ["outputs.jsonOuput"]);
    });

    it("prefixes keys with where the settings came from", () => {
        assert.throws(() => resolveHostSettings({ driver: "x" as never }, "falco-nodes:nodes[2].falco."), /invalid host setting falco-nodes:nodes\[2\]\.falco\.driver/);
    });

    it("requires a path and a sha256 for a staged package, and only then", () => {
        assert.deepEqual(keysOf({ install: { source: "package-file" } }).sort(), ["install.packageFile", "install.packageSha256"]);
        assert.deepEqual(keysOf({ install: { source: "apt", packageFile: "/tmp/falco.deb" } }), ["install.packageFile"]);
        const ok = resolveHostSettings({
            install: { source: "package-file", packageFile: "/srv/falco-0.44.1-x86_64.deb", packageSha256: "A".repeat(64) },
        });
        assert.equal(ok.install.packageSha256, "a".repeat(64));
    });

    it("rejects rule files that are not YAML lists of items", () => {
        assert.deepEqual(keysOf({ rules: { custom: { broken: "- rule: [" } } }), ["rules.custom.broken"]);
        assert.deepEqual(keysOf({ rules: { custom: { scalar: "just text" } } }), ["rules.custom.scalar"]);
        assert.deepEqual(keysOf({ rules: { custom: { "../etc/passwd": "[]" } } }), ['rules.custom."../etc/passwd"']);
    });

    it("keeps the managed falco.yaml keys out of extraConfig", () => {
        assert.deepEqual(keysOf({ extraConfig: { webserver: { listen_address: "0.0.0.0" } } }), ["extraConfig.webserver"]);
        assert.deepEqual(resolveHostSettings({ extraConfig: { log_level: "debug" } }).extraConfig, { log_level: "debug" });
    });

    it("requires a URL for the http output from settings or a secret", () => {
        const s = resolveHostSettings({ outputs: { http: { enabled: true } } });
        assert.match(httpOutputNeedsUrl(s, false) ?? "", /set outputs\.http\.url, or the secret httpOutputUrl/);
        assert.equal(httpOutputNeedsUrl(s, true), undefined);
    });

    // Values that would end up in a file, a unit or a script: anything with shell or YAML metacharacters is
    // refused at parse time, so no renderer has to quote it.
    const hostile = fc.oneof(
        fc.constantFrom("$(id)", "`id`", "a'b", 'a"b', "a\nb", "a;b", "a b", "#x", "${HOME}", "a\\b", "x\0y"),
        fc.string().filter((s) => /[^A-Za-z0-9._\/~%-]/.test(s)),
    );
    it("refuses hostile values in paths, URLs and hardening overrides", () => {
        fc.assert(
            fc.property(hostile, (bad) => {
                for (const input of [
                    { install: { source: "preinstalled", binaryPath: `/usr/bin/${bad}` } },
                    { install: { repoUrl: `https://example.com/${bad}` } },
                    { outputs: { file: { path: `/var/log/falco/${bad}` } } },
                    { hardening: { sshd: { overrides: { Banner: `/etc/${bad}#` } } } },
                    { hardening: { sysctl: { overrides: { "kernel.x": `1${bad}$` } } } },
                ] as HostSettings[])
                    assert.throws(() => resolveHostSettings(input), HostSettingsError, JSON.stringify(input));
            }),
        );
    });

    it("refuses paths that climb out of where they belong", () => {
        assert.deepEqual(keysOf({ outputs: { file: { path: "/var/log/falco/../../etc/shadow" } } }), ["outputs.file.path"]);
        assert.deepEqual(keysOf({ outputs: { file: { path: "/etc/falco/events.json" } } }), ["outputs.file.path"]);
    });
});
