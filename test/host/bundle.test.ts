import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Bundle, BundleFile, bundleParams, renderBundle } from "../../components/host/bundle";
import { HTTP_URL_PLACEHOLDER } from "../../components/host/falcoConfig";
import { CONVERGE_SCRIPT, splitScript } from "../../components/host/installScript";
import {
    FALCO_MAIN_CONFIG,
    FALCO_RULES_D,
    FALCO_SECRETS_CONFIG,
    LOGROTATE_PATH,
    SECRET_PLACEHOLDER_PREFIX,
    SSHD_DROPIN_PATH,
    SYSCTL_PATH,
    UNIT_NAME,
    UNIT_PATH,
} from "../../components/host/paths";
import { HostSettings, HostSettingsError, resolveHostSettings } from "../../components/host/settings";
import { deterministicTar, deterministicTarGz, deterministicTarGzSplit } from "../../components/host/tar";
import * as zlib from "zlib";
import { CANARY_UNIT_PATH, PERF_EVENT_PARANOID_DROPIN_PATH } from "../../components/host/unit";
import { CANARY_RULE_FILE } from "../../components/rules";
import { decodePayload } from "../support/payload";

const render = (settings: HostSettings = {}, secrets?: { httpOutputUrl?: string }) =>
    renderBundle(resolveHostSettings(settings), secrets);
const byPath = (b: Bundle, p: string, group?: string): BundleFile | undefined =>
    b.files.find((f) => f.path === p && (group === undefined || f.group === group));

const HTTP_NEEDS_SECRET: HostSettings = { outputs: { http: { enabled: true } } };
const TOKEN_A = "https://sidekick.example.com/alerts?token=s3cr3t-AAAA";
const TOKEN_B = "https://sidekick.example.com/alerts?token=s3cr3t-BBBB";

describe("renderBundle", () => {
    it("is deterministic: same settings give byte-identical files, scripts and hash", () => {
        const settings: HostSettings = { rules: { custom: { mine: "- list: my_list\n  items: [a]\n" } }, driver: "auto" };
        const a = render(settings);
        const b = render(JSON.parse(JSON.stringify(settings)));
        assert.deepEqual(a, b);
        assert.equal(a.installScript, b.installScript);
        assert.match(a.hash, /^[0-9a-f]{64}$/);
        assert.equal(a.secretsHash, undefined);
        assert.equal(a.unitName, UNIT_NAME);
    });

    it("changes the hash and only the rule file when a rule changes", () => {
        const a = render({ rules: { custom: { mine: "- list: my_list\n  items: [a]\n" } } });
        const b = render({ rules: { custom: { mine: "- list: my_list\n  items: [b]\n" } } });
        assert.notEqual(a.hash, b.hash);
        const rulePath = `${FALCO_RULES_D}/50-mine.yaml`;
        assert.deepEqual(a.files.map((f) => f.path), b.files.map((f) => f.path));
        const differing = a.files.filter((f, i) => f.content !== b.files[i].content).map((f) => f.path);
        // With the rules, the detection canary's token (rule and timer service): it proves the new rules are loaded.
        assert.deepEqual(differing, [`${FALCO_RULES_D}/${CANARY_RULE_FILE}`, rulePath, CANARY_UNIT_PATH]);
        assert.notEqual(a.installScript, b.installScript);
    });

    it("carries the node's hostname in its unit (both variants for driver auto), and nowhere else", () => {
        const s = resolveHostSettings({ driver: "auto" });
        const a = renderBundle(s, undefined, { hostname: "web-1" });
        const b = renderBundle(s, undefined, { hostname: "web-2" });
        assert.notEqual(a.hash, b.hash);
        const units = (x: Bundle) => x.files.filter((f) => f.path === UNIT_PATH);
        assert.equal(units(a).length, 2);
        for (const u of units(a)) assert.ok(u.content.includes('Environment="FALCO_HOSTNAME=web-1"'), u.group);
        const differing = a.files.filter((f, i) => f.content !== b.files[i].content).map((f) => `${f.path} ${f.group}`);
        assert.deepEqual(differing, [`${UNIT_PATH} unit-kmod`, `${UNIT_PATH} unit-modern_ebpf`]);
        // Without a node identity (the bundle for review only), no FALCO_HOSTNAME at all.
        assert.ok(!renderBundle(s).files.some((f) => f.content.includes("FALCO_HOSTNAME")));
    });

    it("renders the settings' files once per settings content: a changed copy of settings is rendered anew", () => {
        const s = resolveHostSettings({});
        const first = renderBundle(s, undefined, { hostname: "web-1" });
        const changed = structuredClone(s);
        changed.rules.custom = { mine: "- list: my_bins\n  items: [ls]\n" };
        const second = renderBundle(changed, undefined, { hostname: "web-1" });
        assert.ok(second.files.some((f) => f.path.endsWith("50-mine.yaml")));
        assert.ok(!first.files.some((f) => f.path.endsWith("50-mine.yaml")));
        assert.deepEqual(renderBundle(structuredClone(s), undefined, { hostname: "web-1" }), first);
    });

    it("changes the hash when a parameter changes", () => {
        assert.notEqual(render({ webserver: { port: 8765 } }).hash, render({ webserver: { port: 8766 } }).hash);
        assert.notEqual(render({ falcoVersion: "0.44.1" }).hash, render({ falcoVersion: "0.43.0" }).hash);
    });

    it("keeps the hash independent of secret values, and secretsHash dependent on them", () => {
        const a = render(HTTP_NEEDS_SECRET, { httpOutputUrl: TOKEN_A });
        const b = render(HTTP_NEEDS_SECRET, { httpOutputUrl: TOKEN_B });
        const none = render(HTTP_NEEDS_SECRET);
        assert.equal(a.hash, b.hash);
        // The component shows the hash of a render without secrets; the host reports the real bundle's.
        assert.equal(a.hash, none.hash);
        assert.match(a.secretsHash!, /^[0-9a-f]{64}$/);
        assert.notEqual(a.secretsHash, b.secretsHash);
        assert.equal(none.secretsHash, undefined);
        assert.notEqual(a.installScript, b.installScript);
        // The secret is in neither the hash input that is shown nor the uninstall script.
        assert.equal(a.uninstallScript, none.uninstallScript);
    });

    it("puts the secret only in the 0600 drop-in inside the payload, never in the script's text", async () => {
        const withSecret = render(HTTP_NEEDS_SECRET, { httpOutputUrl: TOKEN_A });
        const secretFile = byPath(withSecret, FALCO_SECRETS_CONFIG)!;
        assert.equal(secretFile.mode, "0600");
        assert.equal(secretFile.secret, true);
        assert.ok(secretFile.content.includes(TOKEN_A));
        assert.ok(!withSecret.installScript.includes("s3cr3t"), "the token must not appear in plain text");
        const decoded = await decodePayload(withSecret.installScript);
        assert.ok(decoded.content(FALCO_SECRETS_CONFIG)!.includes(TOKEN_A));
        for (const [name, content] of decoded.entries)
            if (content.includes("s3cr3t")) assert.equal(name, decoded.manifest.find((r) => r.path === FALCO_SECRETS_CONFIG)!.file);
        const uninstall = await decodePayload(withSecret.uninstallScript);
        for (const content of uninstall.entries.values()) assert.ok(!content.includes("s3cr3t"));
    });

    it("renders placeholders, not secrets, when rendered without secrets", async () => {
        const b = render(HTTP_NEEDS_SECRET);
        const decoded = await decodePayload(b.installScript);
        assert.ok(decoded.content(FALCO_SECRETS_CONFIG)!.includes(HTTP_URL_PLACEHOLDER));
        assert.ok(HTTP_URL_PLACEHOLDER.startsWith(SECRET_PLACEHOLDER_PREFIX));
    });

    it("rejects secrets that leave the HTTP output without a URL, naming the key", () => {
        assert.throws(() => render(HTTP_NEEDS_SECRET, {}), (e: unknown) => e instanceof HostSettingsError && /outputs\.http\.url/.test(e.message));
    });

    it("gives every file its group, mode and root-only secrecy", () => {
        const b = render();
        const expected: [string, string, string][] = [
            [FALCO_MAIN_CONFIG, "0640", "falco"],
            [UNIT_PATH, "0644", "unit"],
            [PERF_EVENT_PARANOID_DROPIN_PATH, "0644", "unit-dropin-perf"],
            [SYSCTL_PATH, "0644", "sysctl"],
            [SSHD_DROPIN_PATH, "0600", "sshd"],
            [LOGROTATE_PATH, "0644", "logrotate"],
        ];
        for (const [p, mode, group] of expected) {
            const f = byPath(b, p);
            assert.ok(f, `${p} is in the bundle`);
            assert.equal(f!.mode, mode, p);
            assert.equal(f!.group, group, p);
            assert.equal(f!.secret, false, p);
        }
        const rules = b.files.filter((f) => f.path.startsWith(`${FALCO_RULES_D}/`));
        assert.ok(rules.length >= 1, "the built-in self-protection rules are in rules.d");
        for (const r of rules) assert.deepEqual([r.mode, r.group], ["0640", "falco"]);
        assert.equal(byPath(b, FALCO_SECRETS_CONFIG), undefined, "no HTTP output, no secrets drop-in");
        const sorted = [...b.files].sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
        assert.deepEqual(b.files.map((f) => f.path), sorted.map((f) => f.path));
    });

    it("ships both unit variants for driver auto and no perf drop-in for kmod or lower-to-2", () => {
        const auto = render({ driver: "auto" });
        assert.deepEqual(
            auto.files.filter((f) => f.path === UNIT_PATH).map((f) => f.group).sort(),
            ["unit-kmod", "unit-modern_ebpf"],
        );
        assert.match(byPath(auto, UNIT_PATH, "unit-kmod")!.content, /engine\.kind=kmod/);
        assert.match(byPath(auto, UNIT_PATH, "unit-modern_ebpf")!.content, /engine\.kind=modern_ebpf/);
        assert.equal(byPath(render({ driver: "kmod" }), PERF_EVENT_PARANOID_DROPIN_PATH), undefined);
        const lowered = render({ perfEventParanoid: "lower-to-2" });
        assert.equal(byPath(lowered, PERF_EVENT_PARANOID_DROPIN_PATH), undefined);
        assert.match(byPath(lowered, SYSCTL_PATH)!.content, /^kernel\.perf_event_paranoid = 2$/m);
    });

    it("leaves out switched-off hardening", () => {
        const b = render({ hardening: { sysctl: { enabled: false }, sshd: { enabled: false } } });
        assert.equal(byPath(b, SYSCTL_PATH), undefined);
        assert.equal(byPath(b, SSHD_DROPIN_PATH), undefined);
    });

    it("packs exactly the files and params into the payload, readable by tar-stream and GNU tar", async () => {
        const b = render({ driver: "auto", rules: { custom: { mine: "- list: l\n  items: [x]\n" } } });
        const decoded = await decodePayload(b.installScript);
        assert.deepEqual(
            decoded.manifest.map((r) => [r.group, r.mode, r.path]),
            b.files.map((f) => [f.group, f.mode, f.path]),
        );
        for (const f of b.files) assert.equal(decoded.content(f.path, f.group), f.content);
        assert.deepEqual(decoded.params, { ...b.params, bundle_hash: b.hash });
        for (const h of decoded.headers) {
            assert.equal(h.uid, 0);
            assert.equal(h.mtime?.getTime(), 0);
            assert.equal(h.mode, 0o600);
        }
        // GNU tar agrees.
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bundle-tar-"));
        try {
            fs.writeFileSync(path.join(dir, "p.tgz"), splitScript(b.installScript).payload);
            const r = spawnSync("tar", ["-tzf", "p.tgz"], { cwd: dir, encoding: "utf8" });
            assert.equal(r.status, 0, r.stderr);
            assert.deepEqual(r.stdout.split("\n").filter(Boolean).sort(), [...decoded.entries.keys()].sort());
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    it("builds the scripts from the static converge.sh, calling main only on the last line", () => {
        const b = render();
        assert.ok(b.installScript.startsWith(CONVERGE_SCRIPT.trimEnd()));
        assert.ok(b.uninstallScript.startsWith(CONVERGE_SCRIPT.trimEnd()));
        assert.equal(b.installScript.trimEnd().split("\n").pop(), 'main "$@"');
        assert.equal(b.uninstallScript.trimEnd().split("\n").pop(), "main uninstall");
    });

    it("refuses parameters outside the allowlist even if settings validation were bypassed", () => {
        const s = resolveHostSettings({});
        for (const hostile of ["https://x/$(id)", "https://x/`id`", "a b", "x;y", "https://x/'q'", "x\n\ny"]) {
            const bad = { ...s, install: { ...s.install, repoUrl: hostile } };
            assert.throws(() => bundleParams(bad), /repo_url/);
        }
    });
});

describe("deterministicTarGz", () => {
    it("is byte-identical for the same entries in any order", () => {
        const a = deterministicTarGz([{ name: "b", content: "2" }, { name: "a/x", content: "1" }]);
        const b = deterministicTarGz([{ name: "a/x", content: "1" }, { name: "b", content: "2" }]);
        assert.ok(a.equals(b));
        assert.equal(a[9], 3, "gzip OS byte pinned");
    });

    it("split in two gzip members, it is the same archive: the shared member is byte-identical whatever the host's own part", () => {
        const shared = [{ name: "files/000", content: "rules ".repeat(500) }, { name: "params/x", content: "1" }];
        const a = deterministicTarGzSplit(shared, [{ name: "files/001", content: 'Environment="FALCO_HOSTNAME=web-1"' }]);
        const b = deterministicTarGzSplit(shared, [{ name: "files/001", content: 'Environment="FALCO_HOSTNAME=web-2"' }]);
        const sharedMember = (x: Buffer) => x.subarray(0, x.indexOf(Buffer.from([0x1f, 0x8b, 0x08]), 10));
        assert.ok(sharedMember(a).equals(sharedMember(b)), "the shared member is reused");
        assert.ok(!a.equals(b));
        // zlib reads both members as one stream: every entry's blocks, and the end-of-archive marker once, last.
        const all = [...shared, { name: "files/001", content: 'Environment="FALCO_HOSTNAME=web-1"' }];
        const tar = zlib.gunzipSync(a);
        assert.equal(tar.length, deterministicTar(all).length);
        assert.ok(tar.subarray(tar.length - 1024).equals(Buffer.alloc(1024)));
        // GNU tar extracts every entry of both members.
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bundle-split-"));
        try {
            fs.writeFileSync(path.join(dir, "p.tgz"), a);
            const r = spawnSync("tar", ["-xzf", "p.tgz"], { cwd: dir, encoding: "utf8" });
            assert.equal(r.status, 0, r.stderr);
            for (const e of all) assert.equal(fs.readFileSync(path.join(dir, e.name), "utf8"), e.content, e.name);
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
        assert.throws(() => deterministicTarGzSplit(shared, [{ name: "params/x", content: "2" }]), /duplicate tar entry params\/x/);
    });

    it("rejects names that are not short plain relative paths", () => {
        for (const name of ["/abs", "../x", "a/../b", "x".repeat(100), "a b", ""])
            assert.throws(() => deterministicTarGz([{ name, content: "" }]), /tar entry name/);
        assert.throws(() => deterministicTarGz([{ name: "a", content: "" }, { name: "a", content: "" }]), /duplicate/);
    });
});
