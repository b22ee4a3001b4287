import * as assert from "assert";
import fc from "fast-check";
import * as fs from "fs";
import * as YAML from "yaml";
import { RULE_FILE_NAME_PATTERN } from "../../components/host/falcoConfig";
import {
    FALCO_BINARY,
    FALCO_CONFIG_DIR,
    PACKAGE_UNITS,
    STATE_DIR,
    UNIT_DROPIN_DIR,
    UNIT_NAME,
    UNIT_PATH,
} from "../../components/host/paths";
import { HostSettings, ResolvedHostSettings, resolveHostSettings } from "../../components/host/settings";
import {
    APP_CONFIG_RULE,
    BASE_RULE_FILE,
    CANARY_RULE,
    CANARY_RULE_FILE,
    canaryPath,
    canaryToken,
    BUILTIN_RULE_FILES,
    CONVERGE_MARKER_ENV,
    FALCO_UNIT_STEM,
    SELF_PROTECTION_LISTS,
    SELF_PROTECTION_RULES,
    renderRuleFiles,
} from "../../components/rules";
import {
    conditionRefs,
    referenceProblems,
    rulesSchemaErrors,
    tokenizeCondition,
} from "../support/falcoReference";
import { referencePath } from "../support/reference";

type Item = Record<string, any>;

const ALL_BUILTIN: HostSettings = { rules: { builtin: ["self-protection", "app-config-example"] } };

function parsed(s: ResolvedHostSettings): { fileName: string; items: Item[] }[] {
    return renderRuleFiles(s).map((f) => ({ fileName: f.fileName, items: YAML.parse(f.content) as Item[] }));
}

function ourItems(s: ResolvedHostSettings): Item[] {
    return parsed(s).flatMap((f) => f.items);
}

const defaultRules: Item[] = YAML.parse(fs.readFileSync(referencePath("falco", "falco_rules.yaml"), "utf8"));

describe("condition tokenizer (test support)", () => {
    it("separates fields, macros, list references, event types and literals", () => {
        const refs = conditionRefs(
            "spawned_process and proc.name in (shell_binaries, 'sh') and fd.typechar='f' and fd.num>=0 " +
                "and not proc.aname[2] = systemd and evt.type in (open, openat) and proc.env[X] = 1 and " +
                'fd.name startswith /etc and tolower(proc.pname) contains "x" and proc.pname exists',
        );
        assert.deepStrictEqual(refs.macros, ["spawned_process"]);
        assert.deepStrictEqual(refs.listItems, ["shell_binaries"]);
        assert.deepStrictEqual(refs.evtTypes, ["open", "openat"]);
        assert.deepStrictEqual(refs.fields, [
            "proc.name", "fd.typechar", "fd.num", "proc.aname[2]", "evt.type", "proc.env[X]", "fd.name", "proc.pname", "proc.pname",
        ]);
        assert.deepStrictEqual(tokenizeCondition("a=b"), ["a", "=", "b"]);
    });

    it("finds no unknown references in the upstream default rules (so it reads real conditions right)", () => {
        const refs = defaultRules.filter((i) => i.condition).map((i) => conditionRefs(i.condition));
        assert.ok(refs.flatMap((r) => r.macros).length > 100, "too few macro references found: tokenizer broken?");
        assert.ok(refs.flatMap((r) => r.fields).length > 200, "too few fields found: tokenizer broken?");
        assert.deepStrictEqual(referenceProblems(defaultRules), []);
    });

    it("reports an unknown macro, list, field and event type (the check can fail)", () => {
        const problems = referenceProblems(
            [
                { macro: "m", condition: "evt.num = 0" },
                {
                    rule: "r",
                    condition: "m and no_such_macro and proc.nosuch = x and evt.type in (open, nosuchcall, pidfd_send_signal) and fd.name = x and proc.name in (nosuch_list)",
                    output: "x %proc.name %evt.arg.nosuchparam %fd.bogus",
                    exceptions: [{ name: "e", fields: ["proc.bogus"] }],
                },
            ],
            { strictLists: true },
        );
        const expected = [
            "unknown macro no_such_macro",
            "unknown field proc.nosuch",
            "unknown event type nosuchcall",
            "event type pidfd_send_signal carries no arguments",
            "unknown list nosuch_list",
            "no event has a parameter named nosuchparam",
            "unknown field fd.bogus",
            "exception e: unknown field proc.bogus",
        ];
        for (const e of expected) assert.ok(problems.some((p) => p.includes(e)), `expected a problem "${e}" in ${JSON.stringify(problems)}`);
        assert.strictEqual(problems.length, expected.length, JSON.stringify(problems));
    });
});

describe("renderRuleFiles", () => {
    const drivers = ["modern_ebpf", "kmod", "auto"] as const;

    it("emits the default set (self-protection) with its shared macros, in load order", () => {
        const names = renderRuleFiles(resolveHostSettings()).map((f) => f.fileName);
        assert.deepStrictEqual(names, [BASE_RULE_FILE, CANARY_RULE_FILE, BUILTIN_RULE_FILES["self-protection"]]);
    });

    it("orders built-in sets, then custom files by name, all named NN-name.yaml", () => {
        const s = resolveHostSettings({
            rules: { builtin: ["app-config-example", "self-protection"], custom: { zeta: "[]", alpha: "[]", "m-1": "[]" } },
        });
        const names = renderRuleFiles(s).map((f) => f.fileName);
        assert.deepStrictEqual(names, [
            BASE_RULE_FILE,
            CANARY_RULE_FILE,
            BUILTIN_RULE_FILES["self-protection"],
            BUILTIN_RULE_FILES["app-config-example"],
            "50-alpha.yaml",
            "50-m-1.yaml",
            "50-zeta.yaml",
        ]);
        assert.deepStrictEqual([...names].sort(), names);
        for (const n of names) assert.match(n, RULE_FILE_NAME_PATTERN);
    });

    it("emits only the detection canary when no built-in set is chosen", () => {
        assert.deepStrictEqual(renderRuleFiles(resolveHostSettings({ rules: { builtin: [] } })).map((f) => f.fileName), [CANARY_RULE_FILE]);
    });

    it("is deterministic", () => {
        const s = resolveHostSettings({ ...ALL_BUILTIN, rules: { ...ALL_BUILTIN.rules, custom: { b: "[]", a: "[]" } } });
        assert.deepStrictEqual(renderRuleFiles(s), renderRuleFiles(s));
    });

    for (const driver of drivers) {
        describe(`built-in files (driver ${driver})`, () => {
            const s = resolveHostSettings({ ...ALL_BUILTIN, driver });
            const files = parsed(s);
            const items = files.flatMap((f) => f.items);

            it("validate against Falco's rules schema", () => {
                for (const f of files) assert.deepStrictEqual(rulesSchemaErrors(f.items), [], f.fileName);
            });

            it("refer only to macros and lists they define, and to fields and events Falco has", () => {
                // Our files must load without the package's default rules, so nothing may come from those.
                assert.deepStrictEqual(referenceProblems(items, { strictLists: true }), []);
            });

            it("need no plugin but the container plugin falco.yaml always loads (container.id, and the image for the eBPF CNI exception), no required_plugin_versions", () => {
                const text = renderRuleFiles(s).map((f) => f.content).join("\n");
                assert.doesNotMatch(text, /k8s\.|required_plugin_versions/);
                assert.deepStrictEqual([...new Set(text.match(/container\.[a-z_.]+/g))].sort(), ["container.id", "container.image.repository"]);
            });

            it("do not collide with names in the default rules", () => {
                const upstream = new Set(defaultRules.flatMap((i) => [i.rule, i.macro, i.list]).filter(Boolean));
                for (const i of items) {
                    const name = i.rule ?? i.macro ?? i.list;
                    assert.ok(!upstream.has(name), `${name} is also defined upstream`);
                }
            });

            it("give every rule a description, output with fields, an alerting priority and our tags", () => {
                const rules = items.filter((i) => i.rule && i.rule !== CANARY_RULE);
                assert.ok(rules.length >= 6);
                for (const r of rules) {
                    assert.ok(r.desc.length > 20, r.rule);
                    assert.match(r.output, /%proc\.cmdline/, r.rule);
                    assert.ok(["CRITICAL", "WARNING"].includes(r.priority), r.rule);
                    assert.ok(r.tags.includes("falco-nodes"), r.rule);
                    assert.ok(r.tags.some((t: string) => t.startsWith("mitre_")), r.rule);
                }
            });
        });
    }

    describe("self-protection", () => {
        const s = resolveHostSettings();
        const items = ourItems(s);
        const rules = new Map(items.filter((i) => i.rule).map((i) => [i.rule, i]));
        const rule = (name: string): Item => {
            const r = rules.get(name);
            assert.ok(r, `no rule "${name}"`);
            return r;
        };
        const macros = new Map(items.filter((i) => i.macro).map((i) => [i.macro, i.condition as string]));
        const expand = (cond: string, depth = 0): string =>
            depth > 5 ? cond : cond.replace(/\b[a-z_]+\b/g, (w) => (macros.has(w) ? `(${expand(macros.get(w)!, depth + 1)})` : w));

        it("has its rules, each excepting converge", () => {
            for (const name of Object.values(SELF_PROTECTION_RULES)) {
                const r = rule(name);
                assert.match(expand(r.condition), new RegExp(`proc\\.env\\[${CONVERGE_MARKER_ENV}\\] = 1`), name);
                assert.match(r.condition, /not falco_nodes_converge/, name);
            }
        });

        it("watches the unit, config, state and binary paths from paths.ts, in every field a change shows in", () => {
            const list = items.find((i) => i.list === SELF_PROTECTION_LISTS.protectedPaths)!.items as string[];
            for (const p of [FALCO_CONFIG_DIR, UNIT_PATH, UNIT_DROPIN_DIR, STATE_DIR, FALCO_BINARY]) assert.ok(list.includes(p), p);
            const cond = expand(rule(SELF_PROTECTION_RULES.filesChanged).condition);
            for (const field of ["fd.name", "fs.path.name", "fs.path.source", "fs.path.target", "evt.arg.oldpath", "evt.arg.newpath", "evt.arg.name"])
                assert.ok(cond.includes(`${field} pmatch (${SELF_PROTECTION_LISTS.protectedPaths})`), field);
            assert.match(cond, /rename/);
            assert.match(cond, /unlinkat/);
            assert.match(cond, /evt\.type = truncate and \(proc\.args contains "\/etc\/falco"/);
        });

        it("names our unit and matches it and the package units in systemctl command lines", () => {
            const r = rule(SELF_PROTECTION_RULES.unitImpaired);
            assert.ok(r.desc.includes(UNIT_NAME));
            assert.ok(r.condition.includes(`proc.args contains "${FALCO_UNIT_STEM}"`));
            for (const unit of [UNIT_NAME, UNIT_NAME.replace(/\.service$/, ""), ...PACKAGE_UNITS])
                assert.ok(unit.includes(FALCO_UNIT_STEM), unit);
            for (const verb of ["stop", "disable", "mask", "kill"]) assert.ok(r.condition.includes(`contains "${verb}"`), verb);
        });

        it("targets the Falco process by name in kill/tkill/tgkill and excepts Falco and systemd", () => {
            const r = rule(SELF_PROTECTION_RULES.signal);
            assert.deepStrictEqual(conditionRefs(r.condition).evtTypes.sort(), ["kill", "kill", "pidfd_open", "pidfd_open", "tgkill", "tgkill", "tkill", "tkill"]);
            assert.match(r.condition, /evt\.arg\.pid = "falco"/);
            assert.match(r.condition, /evt\.arg\.tid = "falco"/);
            const excepted = r.exceptions[0].values.map((v: string[]) => v[0]);
            assert.ok(excepted.includes(FALCO_BINARY));
            assert.ok(excepted.includes("/usr/lib/systemd/systemd"));
        });

        it("follows a preinstalled binary path into every rule that names the binary", () => {
            const custom = resolveHostSettings({ install: { source: "preinstalled", binaryPath: "/opt/falco/bin/falco-0.44" } });
            const text = renderRuleFiles(custom).map((f) => f.content).join("\n");
            assert.ok(!text.includes(`"${FALCO_BINARY}"`), "default binary path still watched");
            const paths = ourItems(custom).find((i) => i.list === SELF_PROTECTION_LISTS.protectedPaths)!;
            assert.ok(paths.items.includes("/opt/falco/bin/falco-0.44"));
            assert.match(text, /evt\.arg\.pid = "falco-0\.44"/);
            const list = ourItems(custom).find((i) => i.list === "falco_nodes_known_bpf_loaders")!;
            assert.ok(list.items.includes("/opt/falco/bin/falco-0.44"));
        });

        it("allows `modprobe falco` only when the kernel module driver may be used", () => {
            const kmodException = (driver: "modern_ebpf" | "kmod" | "auto") =>
                ourItems(resolveHostSettings({ driver }))
                    .find((i) => i.rule === SELF_PROTECTION_RULES.moduleLoad)!
                    .exceptions.some((e: Item) => e.name === "falco_kmod_driver");
            assert.strictEqual(kmodException("modern_ebpf"), false);
            assert.strictEqual(kmodException("kmod"), true);
            assert.strictEqual(kmodException("auto"), true);
        });

        it("flags BPF program loads, not every bpf() call", () => {
            const r = rule(SELF_PROTECTION_RULES.bpfLoad);
            assert.match(r.condition, /evt\.type = bpf/);
            assert.match(r.condition, /evt\.arg\.cmd contains "BPF_PROG_LOAD"/);
        });
    });

    describe("app-config example", () => {
        it("is opt-in", () => {
            const names = ourItems(resolveHostSettings()).map((i) => i.rule);
            assert.ok(!names.includes(APP_CONFIG_RULE));
        });

        it("alerts on opens for writing below /app/config/", () => {
            const items = ourItems(resolveHostSettings({ rules: { builtin: ["app-config-example"] } }));
            const r = items.find((i) => i.rule === APP_CONFIG_RULE)!;
            assert.ok(r);
            const open = items.find((i) => i.macro === "falco_nodes_open_write")!.condition;
            assert.match(open, /evt\.is_open_write = true/);
            assert.match(r.condition, /fd\.name startswith "\/app\/config\/"/);
            assert.deepStrictEqual(referenceProblems(items, { strictLists: true }), []);
        });
    });

    describe("custom rule files", () => {
        it("carry the user's text verbatim after a header comment", () => {
            const text = "- rule: Mine\n  desc: d\n  condition: evt.num = 0\n  output: o\n  priority: NOTICE\n";
            const file = renderRuleFiles(resolveHostSettings({ rules: { builtin: [], custom: { mine: text } } })).find((f) => f.fileName.startsWith("50-"))!;
            assert.strictEqual(file.fileName, "50-mine.yaml");
            assert.match(file.content, /^# Managed by falco-nodes/);
            assert.ok(file.content.endsWith(text));
        });

        const hostile = fc.oneof(
            fc.string(),
            fc.string({ unit: fc.constantFrom("'", '"', "$(", ")", "\n", "#", ": ", "{", "}", "[", "]", "- ", "---", "\\", "é", "💥", "\t", "&a", "*a", "!!", "%", " ") }),
        );

        it("round-trip hostile rule content exactly (no YAML injection)", () => {
            fc.assert(
                fc.property(hostile, hostile, hostile, (name, condition, output) => {
                    const text = YAML.stringify([{ rule: name, desc: output, condition, output, priority: "NOTICE", tags: [name] }]);
                    const content = renderRuleFiles(resolveHostSettings({ rules: { builtin: [], custom: { x: text } } })).find((f) => f.fileName === "50-x.yaml")!.content;
                    assert.deepStrictEqual(YAML.parse(content), YAML.parse(text));
                }),
                { numRuns: 300 },
            );
        });

        it("either reject hostile raw texts and names or round-trip them", () => {
            fc.assert(
                fc.property(hostile, hostile, (name, text) => {
                    let s: ResolvedHostSettings;
                    try {
                        s = resolveHostSettings({ rules: { builtin: [], custom: { [name]: text } } });
                    } catch {
                        return; // rejected with a settings error: fine
                    }
                    const file = renderRuleFiles(s).find((f) => f.fileName.startsWith("50-"))!;
                    assert.strictEqual(file.fileName, `50-${name}.yaml`);
                    assert.match(file.fileName, RULE_FILE_NAME_PATTERN);
                    assert.deepStrictEqual(YAML.parse(file.content), YAML.parse(text.replace(/^\uFEFF/, "")));
                }),
                { numRuns: 500 },
            );
        });
    });
});

describe("the rules folder stands on its own", () => {
    // Read the sources: rules/ may import only itself, shared/ and npm packages; shared/ only itself and npm packages.
    const imports = (dir: string): { file: string; from: string }[] =>
        fs
            .readdirSync(`components/${dir}`)
            .filter((f) => f.endsWith(".ts"))
            .flatMap((f) =>
                [...fs.readFileSync(`components/${dir}/${f}`, "utf8").matchAll(/^(?:import|export)[^;]*? from "([^"]+)"/gms)].map((m) => ({
                    file: `${dir}/${f}`,
                    from: m[1],
                })),
            );

    it("rules/ imports only rules/, shared/ and packages; shared/ only shared/ and packages", () => {
        const rules = imports("rules");
        const shared = imports("shared");
        assert.ok(rules.some((i) => i.from.startsWith("../shared/")), "the scan found no import of shared/: scan broken?");
        const bad = [
            ...rules.filter((i) => i.from.startsWith(".") && !i.from.startsWith("./") && !i.from.startsWith("../shared/")),
            ...shared.filter((i) => i.from.startsWith(".") && !i.from.startsWith("./")),
        ];
        assert.deepStrictEqual(bad, []);
    });
});

describe("detection canary rule", () => {
    it("reports an open for reading of this bundle's canary file on the host, at the lowest priority Falco outputs", () => {
        for (const minimumPriority of ["notice", "warning", "debug"] as const) {
            const s = resolveHostSettings({ outputs: { minimumPriority } });
            const file = renderRuleFiles(s).find((f) => f.fileName === CANARY_RULE_FILE)!;
            const items: Item[] = YAML.parse(file.content);
            assert.deepStrictEqual(rulesSchemaErrors(items), []);
            assert.deepStrictEqual(referenceProblems(items, { strictLists: true }), []);
            const r = items.find((i) => i.rule === CANARY_RULE)!;
            assert.strictEqual(r.priority, minimumPriority.toUpperCase());
            assert.ok(r.condition.includes(`fd.name = "${canaryPath(s)}"`));
            assert.match(r.condition, /evt\.is_open_read = true/);
            assert.ok(r.output.includes(`falco_nodes_canary=${canaryToken(s)}`));
        }
    });

    it("keeps its token when only settings outside the rules change (no Falco restart for an sshd change)", () => {
        const a = resolveHostSettings();
        assert.strictEqual(canaryToken(a), canaryToken(resolveHostSettings({ hardening: { sshd: { enabled: false } } })));
        assert.notStrictEqual(canaryToken(a), canaryToken(resolveHostSettings({ rules: { builtin: ["app-config-example"] } })));
    });
});
