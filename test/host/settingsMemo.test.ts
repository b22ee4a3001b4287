import { strict as assert } from "assert";
import * as fc from "fast-check";
import { HostSettings, HostSettingsError, resolveHostSettings } from "../../components/host/settings";
import { contentKey, resolveHostSettingsMemo } from "../../components/host/settingsMemo";

/** Plain data as stack files and program literals hold it: what the memo must tell apart exactly. */
const plainData = fc.letrec((tie) => ({
    value: fc.oneof(
        { depthSize: "small", withCrossShrink: true },
        fc.string(),
        fc.integer(),
        fc.double(),
        fc.boolean(),
        fc.constant(null),
        fc.constant(undefined),
        fc.array(tie("value"), { maxLength: 4 }),
        fc.dictionary(fc.string({ maxLength: 6 }), tie("value"), { maxKeys: 4 }),
    ),
})).value;

/** Equal as data, in order: what decides whether two settings resolve and render the same. */
function sameData(a: unknown, b: unknown): boolean {
    if (typeof a === "number" && typeof b === "number") return Object.is(a, b);
    if (Array.isArray(a) || Array.isArray(b))
        return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => sameData(x, b[i]));
    if (typeof a === "object" && a !== null && typeof b === "object" && b !== null) {
        const ka = Object.keys(a);
        const kb = Object.keys(b);
        return ka.length === kb.length && ka.every((k, i) => k === kb[i] && sameData((a as never)[k], (b as never)[k]));
    }
    return a === b;
}

describe("host settings memo: contentKey", () => {
    it("is equal exactly when two values hold the same data in the same order", () => {
        fc.assert(
            fc.property(plainData, plainData, (a, b) => {
                assert.equal(contentKey(a) === contentKey(b), sameData(a, b));
                assert.equal(contentKey(a), contentKey(structuredClone(a)), "a copy has the same key");
            }),
            { numRuns: 500 },
        );
    });

    it("tells apart values JSON would merge or a naive join would confuse", () => {
        const pairs: [unknown, unknown][] = [
            [{ a: undefined }, {}],
            [[null], [undefined]],
            [NaN, null],
            [-0, 0],
            [["ab"], ["a", "b"]],
            [{ a: "1", b: "2" }, { b: "2", a: "1" }],
            [{ "a:b": "c" }, { a: "b:c" }],
            ["1", 1],
            [{ rules: { custom: { x: "- rule: a\n" } } }, { rules: { custom: { x: "- rule: b\n" } } }],
        ];
        for (const [a, b] of pairs) assert.notEqual(contentKey(a), contentKey(b), `${String(a)} vs ${String(b)}`);
    });

    it("gives no key for what it cannot compare: instances, functions, getters, cycles", () => {
        class Settings {
            driver = "kmod";
        }
        const cyclic: Record<string, unknown> = {};
        cyclic.self = cyclic;
        const getter = Object.defineProperty({}, "driver", { get: () => "kmod", enumerable: true });
        for (const v of [new Settings(), { f: () => 1 }, getter, cyclic, [new Date(0)], { n: 1n }])
            assert.equal(contentKey(v), undefined);
        const shared = { a: 1 };
        assert.notEqual(contentKey([shared, shared]), undefined, "a repeated (not cyclic) object is fine");
    });
});

describe("host settings memo: resolveHostSettingsMemo", () => {
    const custom = { site: "- rule: Site rule\n  desc: d\n  condition: evt.type = open\n  output: o\n  priority: WARNING\n" };

    it("resolves as resolveHostSettings does, once per distinct content", () => {
        const a: HostSettings = { driver: "kmod", rules: { custom: { ...custom } } };
        const b: HostSettings = { driver: "kmod", rules: { custom: { ...custom } } };
        const first = resolveHostSettingsMemo(a);
        assert.deepStrictEqual(first, resolveHostSettings(a));
        assert.equal(resolveHostSettingsMemo(b), first, "equal content built separately shares one resolution");
        const other = resolveHostSettingsMemo({ driver: "auto", rules: { custom: { ...custom } } });
        assert.notEqual(other, first);
        assert.equal(other.driver, "auto");
    });

    it("never caches a failure: bad settings throw every time, with the caller's key prefix", () => {
        const bad = { driver: "ebpf" } as unknown as HostSettings;
        for (const prefix of ["", "falco-nodes:nodes[3].falco."]) {
            assert.throws(() => resolveHostSettingsMemo(bad, prefix), (e: unknown) => {
                assert.ok(e instanceof HostSettingsError);
                assert.match(e.message, new RegExp(`invalid host setting ${prefix.replace(/[.[\]]/g, "\\$&")}driver`));
                return true;
            });
        }
    });

    it("is not changed by later changes to an input it resolved", () => {
        const input: HostSettings = { extraConfig: { buffered_outputs: { enabled: false } } as Record<string, unknown> };
        const resolved = resolveHostSettingsMemo(input);
        ((input.extraConfig as Record<string, { enabled: boolean }>).buffered_outputs).enabled = true;
        assert.deepStrictEqual(resolved.extraConfig, { buffered_outputs: { enabled: false } });
        assert.deepStrictEqual(resolveHostSettingsMemo(input).extraConfig, { buffered_outputs: { enabled: true } }, "the new content resolves anew");
    });

    it("still resolves input it cannot key (a class instance), every time", () => {
        class Driver {
            driver = "kmod" as const;
        }
        const a = resolveHostSettingsMemo(new Driver());
        const b = resolveHostSettingsMemo(new Driver());
        assert.equal(a.driver, "kmod");
        assert.notEqual(a, b);
    });
});
