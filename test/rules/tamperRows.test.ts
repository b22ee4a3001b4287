/**
 * The tamper rows (tamper-rows.yaml) against the rules: for each row, the events Falco would see for its snippet
 * (from the strace recorded on the e2e VM, test/fixtures/tamper/) are evaluated against the whole set of rule files
 * falco-nodes renders, in Falco's load order and with `rule_matching: first` (falcoConfig.ts), by the condition
 * model in test/support/falcoCondition.ts. A tamper row must be reported by its rule; a healthy-node row by none of
 * ours. A row whose program the VM does not run is evaluated as the node runs it (`asOnANode`), and the same trace as
 * recorded must raise `asRecorded`, so that the exception is what keeps it quiet; variants of those traces check
 * that each exception is no wider than the node's own program. Re-record the fixtures after changing a snippet
 * (test/e2e/recordTamperTraces.test.ts).
 */
import * as assert from "assert";
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { buildFalcoConfig } from "../../components/host/falcoConfig";
import { LOGROTATE_REOPEN_COMMAND } from "../../components/host/logrotate";
import { resolveHostSettings } from "../../components/host/settings";
import { FALCO_RULES_D } from "../../components/host/paths";
import { CANARY_RULE, SELF_PROTECTION_LISTS, SELF_PROTECTION_RULES, canaryPath, renderRuleFiles } from "../../components/rules";
import { firstMatch, ruleDefs } from "../support/falcoCondition";
import { TraceOptions, loadTrace, syscallExtractor, traceEvents } from "../support/syscallTrace";

type Item = Record<string, any>;

interface Row {
    id: string;
    why: string;
    alert: string | null;
    central?: string;
    snippet: string;
    needs?: string[];
    trace?: string;
    /** What a node changes about the recorded processes (syscallTrace.ts, ProcRewrite). */
    asOnANode?: TraceOptions;
    /** The rule that reports the trace as recorded (without asOnANode): a root shell doing the same by hand. */
    asRecorded?: string | null;
    /** A trace line that must be there (regex), so that a quiet row shows the action happened. */
    mustSee?: string;
    /** The event type the alert must come from (the snippet's setup may raise the same rule on the way). */
    alertOn?: string;
    /** Set only while a row's trace has not been (re-)recorded yet: the row is then reported pending, with why. */
    recording?: string;
    /** The recorded trace lacks what Falco's event has: the row is reported pending, with why (its trace must be current). */
    modelGap?: string;
}

const ROWS: Row[] = YAML.parse(fs.readFileSync(path.join(__dirname, "tamper-rows.yaml"), "utf8"));
const settings = resolveHostSettings();
const files = renderRuleFiles(settings);
const items: Item[] = files.flatMap((f) => YAML.parse(f.content) as Item[]);
const defs = ruleDefs(items);
const ours = new Set(items.filter((i) => i.rule).map((i) => i.rule as string));
const threatModel = fs.readFileSync(path.join(__dirname, "..", "..", "docs", "threat-model.md"), "utf8");

/** The rules a real Falco would report for a row: the first match of each event. */
function reported(row: Row, loaded: Item[] = items, loadedDefs = defs): { rules: Set<string>; hits: string[]; byType: Set<string> } {
    const trace = loadTrace(row.id);
    assert.ok(trace, `no fixture for row ${row.id}: record it (test/e2e/recordTamperTraces.test.ts)`);
    assert.strictEqual(
        trace.fixture.snippetSha256,
        createHash("sha256").update(row.snippet).digest("hex"),
        `the fixture of row ${row.id} is a trace of another version of its snippet: re-record it`,
    );
    if (row.mustSee) assert.match(trace.strace, new RegExp(row.mustSee, "m"), `${row.id}: the trace lacks ${row.mustSee}`);
    const events = traceEvents(trace.strace, trace.fixture, row.asOnANode);
    assert.ok(events.length > 0, `fixture ${row.id} has no events`);
    const rules = new Set<string>();
    const hits: string[] = [];
    const byType = new Set<string>();
    for (const e of events) {
        const r = firstMatch(loaded, "syscall", syscallExtractor(e), loadedDefs);
        if (r) {
            rules.add(r);
            hits.push(`${r}: ${e.line.slice(0, 160)}`);
            byType.add(`${r} on ${e.type}`);
        }
    }
    return { rules, hits, byType };
}

describe("tamper rows", () => {
    it("are well formed: unique ids, a reason, an alert that is one of our rules (or none, with a reason)", () => {
        assert.ok(ROWS.length >= 30);
        assert.strictEqual(new Set(ROWS.map((r) => r.id)).size, ROWS.length);
        for (const r of ROWS) {
            assert.ok(r.why && r.snippet, r.id);
            if (r.alert !== null) assert.ok(ours.has(r.alert), `${r.id}: ${r.alert} is not one of our rules`);
        }
        for (const name of Object.values(SELF_PROTECTION_RULES))
            if (name !== SELF_PROTECTION_RULES.moduleUnload) assert.ok(ROWS.some((r) => r.alert === name), `no row for ${name}`);
    });

    it("load our rule files before the package's default rules, so rule_matching: first reports ours", () => {
        const cfg = buildFalcoConfig(settings, files.map((f) => f.fileName));
        assert.strictEqual(cfg.rule_matching, "first");
        const order = cfg.rules_files as string[];
        const ourIdx = files.map((f) => order.indexOf(`${FALCO_RULES_D}/${f.fileName}`));
        assert.ok(ourIdx.every((k) => k >= 0));
        assert.ok(Math.max(...ourIdx) < order.indexOf("/etc/falco/falco_rules.yaml"), order.join(" "));
    });

    it("the canary row opens the default bundle's canary file (re-record the row when the token changes)", () => {
        assert.ok(ROWS.find((r) => r.id === "detection-canary")!.snippet.includes(`cat ${canaryPath(settings)}`));
    });

    it("marks a row pending only while its fixture is missing or stale", () => {
        for (const row of ROWS.filter((r) => r.recording)) {
            const trace = loadTrace(row.id);
            const fresh = trace?.fixture.snippetSha256 === createHash("sha256").update(row.snippet).digest("hex");
            assert.ok(!fresh, `row ${row.id} is marked "recording: ${row.recording}" but its fixture is current: remove the marker`);
        }
    });

    it("the logrotate row runs the postrotate command components/host/logrotate.ts renders", () => {
        const row = ROWS.find((r) => r.id === "logrotate-reopen")!;
        assert.ok(row.snippet.includes(LOGROTATE_REOPEN_COMMAND), "the row's postrotate differs from the rendered one");
    });

    for (const row of ROWS.filter((r) => r.asOnANode && r.asRecorded !== undefined)) {
        const what = row.asRecorded ? `is reported by "${row.asRecorded}": only as on a node is it quiet` : "is quiet too";
        it(`${row.id}, as recorded (by hand from a root shell), ${what}`, function () {
            if (row.recording) this.skip();
            const { rules, hits } = reported({ ...row, asOnANode: undefined });
            if (row.asRecorded) {
                assert.ok(ours.has(row.asRecorded), row.asRecorded);
                assert.ok(rules.has(row.asRecorded), JSON.stringify([...rules]));
            } else assert.deepStrictEqual(hits.filter((h) => ours.has(h.split(": ")[0])), []);
        });
    }

    it("every healthy row evaluated as on a node says what the same trace is by hand (asRecorded)", () => {
        for (const r of ROWS.filter((x) => x.asOnANode && x.alert === null && !x.mustSee)) assert.ok(r.asRecorded !== undefined, r.id);
    });

    describe("the exceptions are no wider than the node's own programs", () => {
        const variant = (id: string, asOnANode: TraceOptions) => reported({ ...ROWS.find((r) => r.id === id)!, asOnANode }).rules;
        const skipUnrecorded = function (this: Mocha.Context, ...ids: string[]) {
            if (ids.some((id) => ROWS.find((r) => r.id === id)!.recording)) this.skip();
        };

        it("a program at dockerd's path loading another module than dockerd's is reported", () => {
            const rules = variant("modprobe-by-hand", { rewrite: [{ exepath: "/usr/bin/kmod", parentName: "dockerd", parentExepath: "/usr/sbin/dockerd" }] });
            assert.ok(rules.has(SELF_PROTECTION_RULES.moduleLoad), JSON.stringify([...rules]));
        });

        it("systemd running modprobe for another module than a runtime unit's (systemd-run modprobe dummy) is reported", () => {
            const rules = variant("modprobe-by-hand", { rewrite: [{ exepath: "/usr/bin/kmod", parentName: "systemd", parentExepath: "/usr/lib/systemd/systemd" }] });
            assert.ok(rules.has(SELF_PROTECTION_RULES.moduleLoad), JSON.stringify([...rules]));
        });

        it("dockerd's own modprobe from a container (a fake dockerd path in its filesystem) is reported", function () {
            skipUnrecorded.call(this, "dockerd-modprobe");
            const rules = variant("dockerd-modprobe", {
                rewrite: [{ exepath: "/usr/bin/kmod", parentName: "dockerd", parentExepath: "/usr/sbin/dockerd", container: { id: "0a1b2c3d4e5f", imageRepository: "docker.io/library/debian" } }],
            });
            assert.ok(rules.has(SELF_PROTECTION_RULES.moduleLoad), JSON.stringify([...rules]));
        });

        const cilium = { id: "5f2b0c1d9e8a", imageRepository: "quay.io/cilium/cilium" };
        it("Cilium's image running the agent's path from its writable layer (a replaced agent) is reported", function () {
            skipUnrecorded.call(this, "cilium-agent-bpf");
            const rules = variant("cilium-agent-bpf", {
                rewrite: [{ exepath: "/usr/bin/perl", as: { exepath: "/usr/bin/cilium-agent", name: "cilium-agent" }, container: { ...cilium, exeUpperLayer: true } }],
            });
            assert.ok(rules.has(SELF_PROTECTION_RULES.bpfLoad) && rules.has(SELF_PROTECTION_RULES.bpfMap), JSON.stringify([...rules]));
        });

        it("another program in Cilium's image (kubectl exec ... -- bpftool) is reported", function () {
            skipUnrecorded.call(this, "cilium-agent-bpf");
            const rules = variant("cilium-agent-bpf", {
                rewrite: [{ exepath: "/usr/bin/perl", as: { exepath: "/usr/sbin/bpftool", name: "bpftool" }, container: { ...cilium, exeUpperLayer: false } }],
            });
            assert.ok(rules.has(SELF_PROTECTION_RULES.bpfLoad) && rules.has(SELF_PROTECTION_RULES.bpfMap), JSON.stringify([...rules]));
        });

        it("the agent's path in another image is reported", function () {
            skipUnrecorded.call(this, "cilium-agent-bpf");
            const rules = variant("cilium-agent-bpf", {
                rewrite: [{ exepath: "/usr/bin/perl", as: { exepath: "/usr/bin/cilium-agent", name: "cilium-agent" }, container: { id: "9e8a5f2b0c1d", imageRepository: "docker.io/attacker/cilium" } }],
            });
            assert.ok(rules.has(SELF_PROTECTION_RULES.bpfLoad), JSON.stringify([...rules]));
        });

        it("another eBPF CNI's agent is quiet once a custom rules file appends its image and path to the lists", function () {
            skipUnrecorded.call(this, "cilium-agent-bpf");
            const row = ROWS.find((r) => r.id === "cilium-agent-bpf")!;
            const other: TraceOptions = {
                rewrite: [{ exepath: "/usr/bin/perl", as: { exepath: "/usr/local/bin/cni-agent", name: "cni-agent" }, container: { id: "1c2d3e4f5a6b", imageRepository: "registry.example.com/cni/agent", exeUpperLayer: false } }],
            };
            assert.ok(reported({ ...row, asOnANode: other }).rules.has(SELF_PROTECTION_RULES.bpfLoad), "reported before the lists are appended");
            const site: Item[] = [
                { list: SELF_PROTECTION_LISTS.knownBpfLoaderImages, items: ["registry.example.com/cni/agent"], override: { items: "append" } },
                { list: SELF_PROTECTION_LISTS.knownBpfLoaderContainerExepaths, items: ["/usr/local/bin/cni-agent"], override: { items: "append" } },
            ];
            const withSite = [...items, ...site];
            assert.deepStrictEqual([...reported({ ...row, asOnANode: other }, withSite, ruleDefs(withSite)).rules].filter((r) => ours.has(r)), []);
        });

        it("a copy of systemctl at another path than kubelet's, named kubelet, is reported on the private socket", function () {
            skipUnrecorded.call(this, "kubelet-systemd-slice");
            const rules = variant("kubelet-systemd-slice", {
                rewrite: [{ exepath: "/tmp/kubelet-standin", as: { exepath: "/tmp/kubelet", name: "kubelet" } }],
            });
            assert.ok(rules.has(SELF_PROTECTION_RULES.systemdBus), JSON.stringify([...rules]));
        });
    });

    for (const row of ROWS) {
        const title = row.alert ? `${row.id}: reported by "${row.alert}"` : `${row.id}: none of our rules${row.central ? ` (caught centrally: ${row.central})` : ""}`;
        it(title, function () {
            if (row.modelGap) {
                const trace = loadTrace(row.id);
                assert.strictEqual(trace?.fixture.snippetSha256, createHash("sha256").update(row.snippet).digest("hex"), `re-record ${row.id}`);
                this.skip();
            }
            if (row.recording) {
                // Not silently: the row is listed as pending with the reason, and the well-formedness test below
                // fails once its fixture matches (so the marker cannot outlive the recording).
                this.skip();
            }
            const { rules, hits, byType } = reported(row);
            if (row.alert) {
                assert.ok(rules.has(row.alert), `${row.id} (${row.why}): not reported; reported: ${JSON.stringify(hits, null, 1)}`);
                if (row.alertOn) assert.ok(byType.has(`${row.alert} on ${row.alertOn}`), `${row.id}: not reported on its ${row.alertOn} event: ${JSON.stringify(hits, null, 1)}`);
                if (row.alert === CANARY_RULE) assert.deepStrictEqual([...rules], [CANARY_RULE], "the canary raised a tamper rule too");
            }
            else if (!row.central)
                assert.deepStrictEqual(hits.filter((h) => ours.has(h.split(": ")[0]) && !h.startsWith(CANARY_RULE)), [], `${row.id} (${row.why})`);
            else {
                // The rule sees the event, but Falco cannot report it: the threat model says what catches it.
                assert.ok(threatModel.includes(`\`${row.id}\``), `docs/threat-model.md does not name row ${row.id}`);
            }
        });
    }
});
