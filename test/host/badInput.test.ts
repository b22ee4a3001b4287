/**
 * Bad input (issue 13, point 7): every case fails before anything changes, naming the key and the fix, as a
 * HostSettingsError or StackConfigError, never as a bare Error with a stack trace; and the settings and stack
 * parsers, fed arbitrary JSON, return settings or keyed problems and never throw anything else.
 */
import { strict as assert } from "assert";
import * as fc from "fast-check";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { renderBundle } from "../../components/host/bundle";
import { HostSettings, HostSettingsError, resolveHostSettings } from "../../components/host/settings";
import { objectConfigSource, parseStackConfig, StackConfigError } from "../../components/config/stackConfig";
import { main as renderMain } from "../../scripts/render";
import { TEST_K8SAUDIT_DIGESTS } from "../support/k8sAuditDigests";

const HOST_KEYS = [
    "falcoVersion", "driver", "perfEventParanoid", "install", "outputs", "heartbeat", "webserver", "rules", "extraConfig", "hardening", "k8sAudit",
];

/** Settings resolve, or fail with keyed problems; resolved settings render. Anything else is a crash. */
function resolvesOrKeyed(input: unknown): "ok" | "problems" {
    let s;
    try {
        s = resolveHostSettings(input as HostSettings);
    } catch (e) {
        assert.ok(e instanceof HostSettingsError, `not a HostSettingsError: ${(e as Error)?.stack ?? String(e)}`);
        assert.ok(e.problems.length > 0);
        for (const p of e.problems) assert.equal(typeof p.key, "string");
        return "problems";
    }
    renderBundle(s);
    return "ok";
}

describe("bad input: each fails before anything changes, naming the key and the fix", () => {
    const cases: [string, unknown, RegExp][] = [
        ["no rules at all", { rules: { defaultRules: false, builtin: [] } }, /invalid host setting rules: no rules to load.*enable one of them/],
        ["a program output containing $${HOME}", { outputs: { program: { enabled: true, program: "echo $${HOME}" } } }, /outputs\.program\.program: contains "\$\$\{\.\.\.\}"/],
        ["extraConfig.constructor", { extraConfig: { constructor: 1 } }, /extraConfig\.constructor: is not allowed as a key/],
        ["extraConfig.__proto__ (JSON)", JSON.parse('{"extraConfig": {"__proto__": {"log_level": "debug"}}}'), /extraConfig\.__proto__: is not allowed as a key/],
        ["a nested __proto__", JSON.parse('{"extraConfig": {"metrics": {"__proto__": {"enabled": true}}}}'), /extraConfig\.metrics\.__proto__: is not allowed/],
        ["webserver.port below 1024", { webserver: { port: 80 } }, /webserver\.port: 80 is a privileged port.*use a port from 1024 up/],
        ["webserver.port equal to k8sAudit.port", { webserver: { port: 9765 }, k8sAudit: { enabled: true, pluginDigests: TEST_K8SAUDIT_DIGESTS, allowedSources: ["10.0.0.1/32"], port: 9765 } }, /webserver\.port: 9765 is also k8sAudit\.port/],
        ["kernel.modules_disabled with kmod", { driver: "kmod", hardening: { sysctl: { overrides: { "kernel.modules_disabled": 1 } } } }, /kernel\.modules_disabled: with driver kmod.*set driver: modern_ebpf, or drop the override/],
        ["outputs.file.path in a directory nothing creates", { outputs: { file: { enabled: true, path: "/var/log/falco/alerts/events.json" } } }, /outputs\.file\.path: \/var\/log\/falco\/alerts\/events\.json is in a directory below \/var\/log\/falco that nothing creates.*put the file directly in \/var\/log\/falco/],
        ["kernel.modules_disabled with auto", { driver: "auto", hardening: { sysctl: { overrides: { "kernel.modules_disabled": "1" } } } }, /kernel\.modules_disabled: with driver auto/],
    ];
    for (const [name, input, message] of cases)
        it(name, () => {
            assert.throws(() => resolveHostSettings(input as HostSettings), (e: unknown) => e instanceof HostSettingsError && message.test(e.message));
        });

    it("still accepts what is fine: ${VAR} in a program, a high port, modules_disabled with modern_ebpf, only k8saudit's rules", () => {
        for (const input of [
            { outputs: { program: { enabled: true, program: "curl -H \"X: ${TOKEN}\" https://x" } } },
            { webserver: { port: 1024 } },
            { webserver: { enabled: false, port: 80 } },
            { driver: "modern_ebpf", hardening: { sysctl: { overrides: { "kernel.modules_disabled": 1 } } } },
            { driver: "kmod", hardening: { sysctl: { overrides: { "kernel.modules_disabled": 0 } } } },
            { rules: { defaultRules: false, builtin: [] }, k8sAudit: { enabled: true, pluginDigests: TEST_K8SAUDIT_DIGESTS, allowedSources: ["10.0.0.1/32"] } },
        ] as HostSettings[])
            assert.equal(resolvesOrKeyed(input), "ok", JSON.stringify(input));
    });
});

describe("bad input: the parsers over arbitrary JSON (fast-check)", () => {
    it("host settings: settings that render, or keyed problems; never another exception", () => {
        // Arbitrary JSON under the real keys (and a few others), so the parser's every branch sees junk.
        const value = fc.jsonValue({ maxDepth: 4 });
        const input = fc.oneof(
            value,
            fc.dictionary(fc.constantFrom(...HOST_KEYS, "other", "__proto__", "constructor"), value, { maxKeys: 5 }),
            fc.record(
                {
                    rules: fc.record({ defaultRules: fc.boolean(), builtin: fc.array(fc.constantFrom("self-protection", "app-config-example", "x")), custom: fc.dictionary(fc.string(), fc.string()) }, { requiredKeys: [] }),
                    webserver: fc.record({ enabled: fc.boolean(), port: fc.integer({ min: -1, max: 70000 }) }, { requiredKeys: [] }),
                    extraConfig: fc.dictionary(fc.constantFrom("log_level", "__proto__", "constructor", "prototype", "metrics", "x"), value),
                    outputs: fc.record({ program: fc.record({ enabled: fc.boolean(), program: fc.string() }, { requiredKeys: [] }) }, { requiredKeys: [] }),
                    driver: fc.constantFrom("kmod", "auto", "modern_ebpf", "ebpf"),
                    hardening: fc.record({ sysctl: fc.record({ overrides: fc.dictionary(fc.constantFrom("kernel.modules_disabled", "net.ipv4.ip_forward"), fc.oneof(fc.integer(), fc.string(), fc.constant(null))) }) }, { requiredKeys: [] }),
                },
                { requiredKeys: [] },
            ),
        );
        fc.assert(fc.property(input, (i) => void resolvesOrKeyed(i)), { numRuns: 400 });
    });

    it("stack config: a stack, or keyed problems; never another exception", () => {
        const value = fc.oneof(fc.jsonValue({ maxDepth: 4 }), fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)));
        const keys = fc.constantFrom("falco", "nodes", "aws", "ssh", "cluster", "rulesDir", "other", "__proto__");
        const config = fc.dictionary(keys.map((k) => `falco-nodes:${k}`), value, { maxKeys: 5 });
        fc.assert(
            fc.property(config, (values) => {
                try {
                    parseStackConfig(objectConfigSource(values), { secretsMayBeExternal: true });
                } catch (e) {
                    assert.ok(e instanceof StackConfigError, `not a StackConfigError: ${(e as Error)?.stack ?? String(e)}`);
                    for (const p of e.problems) assert.equal(typeof p.key, "string");
                }
            }),
            { numRuns: 300 },
        );
    });
});

describe("bad input: the render CLI", () => {
    it("a stack file with a duplicate key: a message naming the file and the line, no stack trace, nothing written", () => {
        const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "falco-nodes-badinput-"));
        try {
            const stacks = path.join(tmp, "stacks");
            fs.mkdirSync(stacks);
            fs.writeFileSync(path.join(stacks, "Pulumi.dup.yaml"), "config:\n  falco-nodes:falco:\n    driver: kmod\n  falco-nodes:falco:\n    driver: auto\n");
            const err: string[] = [];
            const out = path.join(tmp, "out");
            const code = renderMain(["--stack", "dup", "--stacks-dir", stacks, "--out", out], { out: () => undefined, err: (l) => err.push(l) });
            assert.equal(code, 1);
            const text = err.join("\n");
            assert.match(text, /Pulumi\.dup\.yaml: Map keys must be unique at line 4/);
            assert.doesNotMatch(text, /\n\s+at /, "no stack trace");
            assert.match(text, /nothing was written/);
            assert.ok(!fs.existsSync(out));
        } finally {
            fs.rmSync(tmp, { recursive: true, force: true });
        }
    });
});
