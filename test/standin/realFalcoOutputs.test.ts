/**
 * The e2e TEST STAND-IN falco (test/e2e/standin/falco-standin.c) against what a real Falco 0.44.1 printed
 * (shared/reference/falco/outputs/, captured under falco-nodes' own unit on a Debian 12 VM). Every converge path
 * the VM and sandbox suites exercise reads these outputs, so a difference between the stand-in and Falco fails
 * here instead of hiding a defect (as the text-only `--version` once hid that every converge after the first
 * failed on a real host).
 *
 * Each case recreates the captured command's files under a scratch root whose prefix is then removed, so paths
 * compare as captured. Log lines compare after their time prefix is normalised; what the stand-in does not do
 * (load plugins, lint rules for warnings, compile conditions) is left out by name below, nowhere else.
 */
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as path from "path";
import * as YAML from "yaml";
import { renderBundle } from "../../components/host/bundle";
import { resolveHostSettings } from "../../components/host/settings";
import { referencePath } from "../support/reference";
import { standinBinary } from "../support/standin";
import { tempDir } from "../support/systemd";

const VERSION = "0.44.1";
const captured = (name: string) => fs.readFileSync(referencePath("falco", "outputs", name), "utf8");

interface Run {
    stdout: string;
    stderr: string;
    rc: number;
}

/**
 * Log messages as falco_logger writes them: a line starting with a time prefix opens a message, lines without
 * one continue it. The time becomes `<time>`; `System info:` (the kernel's own text) becomes `<system>`.
 */
function messages(stderr: string): string[] {
    const out: string[] = [];
    for (const line of stderr.split("\n")) {
        const m = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}: (.*)$/.exec(line);
        if (m) out.push(m[1].startsWith("System info: ") ? "System info: <system>" : m[1]);
        else if (out.length && line !== "") out[out.length - 1] += `\n${line}`;
        else if (line !== "") out.push(line);
    }
    return out;
}

/** What real Falco logs that the stand-in, by design, does not: plugin loading and rule-lint warnings. */
function withoutPluginsAndWarnings(msgs: string[]): string[] {
    return msgs.filter((m) => !/^Loaded plugin '|^\[libs\]: container: /.test(m) && !/: Ok, with warnings\n/.test(m));
}

/**
 * The captured log with its "Loading rules from:" list replaced by `files`, each in the captured line's format:
 * Falco logs one such line per rules file, in falco.yaml's order (load_rules_files.cpp), and the bundle's list has
 * changed since the capture (the detection canary, our files before the package's).
 */
function withRulesFiles(msgs: string[], files: string[]): string[] {
    const line = /^   (\/\S+) \| schema validation: ok$/;
    const first = msgs.indexOf("Loading rules from:") + 1;
    let end = first;
    while (end < msgs.length && line.test(msgs[end])) end++;
    const format = (f: string) => msgs[first].replace(line.exec(msgs[first])![1], f);
    return [...msgs.slice(0, first), ...files.map(format), ...msgs.slice(end)];
}

describe("the e2e falco stand-in prints what a real Falco 0.44.1 prints", function () {
    this.timeout(120_000);
    let falco: string;
    let root: string;
    const run = (args: string[]): Run => {
        const r = spawnSync(falco, args, { encoding: "utf8", timeout: 20_000 });
        const strip = (s: string) => s.split(root).join("");
        return { stdout: strip(r.stdout), stderr: strip(r.stderr), rc: r.status ?? -1 };
    };
    const write = (rel: string, text: string) => {
        const file = path.join(root, rel);
        fs.mkdirSync(path.dirname(file), { recursive: true });
        fs.writeFileSync(file, text);
        return file;
    };
    /**
     * The bundle of the captured run (default settings plus the app-config example rules), its falco.yaml and
     * rules and the package's container drop-in, re-rooted under `root`.
     */
    const hostConfig = () => {
        const bundle = renderBundle(resolveHostSettings({ rules: { builtin: ["self-protection", "app-config-example"] } }));
        for (const f of bundle.files.filter((x) => x.path.startsWith("/etc/falco/"))) {
            write(f.path, f.content.split("/etc/falco/").join(`${root}/etc/falco/`));
        }
        write("/etc/falco/falco_rules.yaml", fs.readFileSync(referencePath("falco", "falco_rules.yaml"), "utf8"));
        write("/etc/falco/config.d/falco.container_plugin.yaml", "load_plugins: [container]\n");
        return path.join(root, "etc/falco/falco.yaml");
    };
    /** The captured bad rule, with the unknown field spelled as the stand-in's invalid marker. */
    const badRule = () => write("/tmp/bad.yaml", captured("bad.yaml").replace("fd.nosuchfield", "fd.STANDIN-INVALID"));
    const asCaptured = (text: string) => text.split("STANDIN-INVALID").join("nosuchfield");

    before(() => {
        falco = standinBinary(VERSION);
    });
    let cleanup: () => void = () => undefined;
    beforeEach(() => {
        ({ dir: root, cleanup } = tempDir("falco-standin-"));
    });
    afterEach(() => cleanup());

    it("--version with no config (`-c /dev/null`): the text form, byte for byte", () => {
        const r = run(["-c", "/dev/null", "--version"]);
        assert.deepStrictEqual(r, {
            stdout: captured("version.noconfig.stdout"),
            stderr: captured("version.noconfig.stderr"),
            rc: Number(captured("version.noconfig.rc")),
        });
    });

    it("--version with a config that has json_output: true: JSON on stdout, the config's log on stderr", () => {
        write("/etc/falco/config.d/falco.container_plugin.yaml", "load_plugins: [container]\n");
        const config = write(
            "/tmp/json.yaml",
            `config_files:\n  - ${root}/etc/falco/config.d\njson_output: true\nlog_stderr: true\nlog_syslog: false\ntime_format_iso_8601: true\n`,
        );
        const r = run(["-c", config, "--version"]);
        assert.strictEqual(r.stdout, captured("version.json_output.stdout"));
        assert.strictEqual(r.rc, Number(captured("version.json_output.rc")));
        assert.deepStrictEqual(messages(r.stderr), messages(captured("version.json_output.stderr")));
    });

    it("--dry-run on our own config and rules: exit 0, nothing on stdout, the same log", () => {
        const config = hostConfig();
        const r = run(["-c", config, "--dry-run"]);
        assert.strictEqual(r.rc, Number(captured("dryrun.ok.rc")));
        assert.strictEqual(r.stdout, captured("dryrun.ok.stdout"));
        const files = (YAML.parse(fs.readFileSync(config, "utf8")).rules_files as string[]).map((f) => f.split(root).join(""));
        assert.deepStrictEqual(messages(r.stderr), withRulesFiles(withoutPluginsAndWarnings(messages(captured("dryrun.ok.stderr"))), files));
    });

    it("--dry-run with a rule Falco cannot compile: exit 1, and Falco's error with its code, rule and condition", () => {
        const r = run(["-c", hostConfig(), "-r", badRule(), "--dry-run"]);
        assert.strictEqual(r.rc, Number(captured("dryrun.badrule.rc")));
        assert.strictEqual(r.stdout, captured("dryrun.badrule.stdout"));
        assertSameFailure(asCaptured(r.stderr), captured("dryrun.badrule.stderr"));
    });

    it("-V on a bad rules file: the JSON load result on stdout (json_output), exit 1, the summary as the error", () => {
        const config = hostConfig();
        const r = run(["-c", config, "-V", badRule()]);
        assert.strictEqual(r.rc, Number(captured("validate.bad.rc")));
        const got = JSON.parse(asCaptured(r.stdout));
        const want = JSON.parse(captured("validate.bad.stdout"));
        assert.deepStrictEqual(shape(got), shape(want));
        const result = (j: any) => {
            const res = j.falco_load_results[0];
            const err = res.errors[0];
            return {
                name: res.name, successful: res.successful, schema_valid: res.schema_valid, warnings: res.warnings,
                code: err.code, codedesc: err.codedesc, message: err.message,
                // Falco adds a "condition expression" location (libsinsp's parser position); the stand-in does not parse.
                locations: err.context.locations.filter((l: any) => l.item_type !== "condition expression"),
            };
        };
        assert.deepStrictEqual(result(got), result(want));
        assertSameFailure(asCaptured(r.stderr), captured("validate.bad.stderr"));
    });

    it("-V on a valid rules file: a successful JSON load result, exit 0", () => {
        const config = hostConfig();
        const file = path.join(root, "etc/falco/rules.d/00-falco-nodes-base.yaml");
        const r = run(["-c", config, "-V", file]);
        assert.strictEqual(r.rc, 0, r.stderr);
        const got = JSON.parse(r.stdout);
        // Same keys as Falco's result, successful, no errors. (The captured validate.ok case fails in Falco: `-V`
        // of one file alone cannot see macros from the others. The stand-in does not resolve macros; see its header.)
        const failedShape = Object.entries(shape(JSON.parse(captured("validate.bad.stdout"))));
        assert.deepStrictEqual(shape(got), {
            ...Object.fromEntries(failedShape.filter(([k]) => !k.startsWith("falco_load_results[].errors"))),
            "falco_load_results[].errors": "array(empty)",
            "falco_load_results[].warnings": "array(empty)",
        });
        assert.strictEqual(got.falco_load_results[0].successful, true);
    });

    describe("the daemon", () => {
        let child: ReturnType<typeof import("child_process").spawn> | undefined;
        let port: number;
        let events: string;
        afterEach(() => child?.kill("SIGTERM"));

        const start = async (extra: string, env: Record<string, string> = {}) => {
            port = await freePort();
            events = path.join(root, "events.json");
            const config = write(
                "/etc/falco/falco.yaml",
                [
                    "rules_files: []",
                    "json_output: true",
                    "json_include_output_property: true",
                    "json_include_output_fields_property: true",
                    "json_include_tags_property: true",
                    "log_stderr: false",
                    "log_syslog: false",
                    "time_format_iso_8601: true",
                    "stdout_output:\n  enabled: false",
                    "syslog_output:\n  enabled: false",
                    `file_output:\n  enabled: true\n  filename: ${events}`,
                    `webserver:\n  enabled: true\n  listen_port: ${port}\n  listen_address: 127.0.0.1`,
                    extra,
                    "",
                ].join("\n"),
            );
            write("/etc/falco/rules.d/none.yaml", "[]\n");
            const { spawn } = await import("child_process");
            child = spawn(falco, ["-c", config, "-r", path.join(root, "etc/falco/rules.d")], { stdio: "ignore", env: { ...process.env, ...env } });
            await waitFor(() => get("/healthz").then(() => true, () => false));
        };

        it("serves /healthz exactly as Falco does, and /versions with Falco's keys and version", async () => {
            await start("");
            assert.strictEqual(await rawGet(port, "/healthz"), captured("healthz.http"));
            const versions = await get("/versions");
            const want = JSON.parse(captured("versions.http").split("\r\n\r\n")[1]);
            assert.deepStrictEqual(Object.keys(versions.body), Object.keys(want));
            // The stand-in loads no plugin, so it lists none; every other value is Falco 0.44.1's.
            assert.deepStrictEqual({ ...versions.body, plugin_versions: want.plugin_versions }, want);
            assert.deepStrictEqual(versions.body.plugin_versions, {});
        });

        it("emits the heartbeat (metrics snapshot) in Falco's alert format, at metrics.interval", async () => {
            await start("metrics:\n  enabled: true\n  interval: 1s\n  output_rule: true");
            await waitFor(async () => fs.existsSync(events) && fs.readFileSync(events, "utf8").split("\n").length > 2);
            const lines = fs.readFileSync(events, "utf8").trim().split("\n").map((l) => JSON.parse(l));
            const want = JSON.parse(captured("alert.metrics_snapshot.json"));
            for (const got of lines) {
                assert.deepStrictEqual(Object.keys(got), Object.keys(want), "the same keys, in Falco's order");
                for (const k of ["output", "priority", "rule", "source"]) assert.strictEqual(got[k], want[k], k);
                assert.match(got.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
                for (const [field, value] of Object.entries(got.output_fields)) {
                    assert.ok(field in want.output_fields, `${field} is a field Falco reports`);
                    assert.strictEqual(typeof value, typeof want.output_fields[field], field);
                }
                for (const field of ["falco.start_ts", "falco.version", "evt.hostname", "scap.n_drops", "falco.outputs_queue_num_drops"])
                    assert.ok(field in got.output_fields, `${field} is reported`);
                assert.strictEqual(got.output_fields["falco.version"], VERSION);
            }
            assert.ok(lines.length >= 2);
            assert.strictEqual(lines[0].output_fields["falco.start_ts"], lines[1].output_fields["falco.start_ts"], "start_ts is the start, not the event");
            assert.ok(lines[1].output_fields["evt.time"] > lines[0].output_fields["evt.time"]);
        });

        it("reports FALCO_HOSTNAME, when set, as the hostname and evt.hostname of its events (as Falco's init_outputs and libscap do)", async () => {
            await start("metrics:\n  enabled: true\n  interval: 1s\n  output_rule: true", { FALCO_HOSTNAME: "node-from-the-stack" });
            await waitFor(async () => fs.existsSync(events) && fs.readFileSync(events, "utf8").split("\n").length > 1);
            const line = JSON.parse(fs.readFileSync(events, "utf8").trim().split("\n")[0]);
            assert.strictEqual(line.hostname, "node-from-the-stack");
            assert.strictEqual(line.output_fields["evt.hostname"], "node-from-the-stack");
        });

        const get = (p: string) =>
            new Promise<{ status: number; body: any }>((resolve, reject) => {
                http.get({ host: "127.0.0.1", port, path: p }, (res) => {
                    let body = "";
                    res.on("data", (d) => (body += d));
                    res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(body) }));
                }).on("error", reject);
            });
    });
});

/**
 * The same log up to Falco's fatal error, and an error block naming the same file, rule, condition and code, with
 * the same condition shown. Falco adds libsinsp's parser position ("condition expression") and puts its caret
 * where its parser stopped; the stand-in parses nothing, so those two lines are left out.
 */
function assertSameFailure(gotStderr: string, wantStderr: string): void {
    const got = splitError(gotStderr);
    const want = splitError(wantStderr);
    assert.deepStrictEqual(withoutPluginsAndWarnings(messages(got.log)), withoutPluginsAndWarnings(messages(want.log)));
    const errorLines = (e: string) => e.split("\n").filter((l) => !/^\s+condition expression: |^\s*\^$/.test(l));
    assert.deepStrictEqual(errorLines(got.error), errorLines(want.error));
}

/** Falco's stderr split where its fatal error ("Error: ...", printed by main, no time prefix) begins. */
function splitError(stderr: string): { log: string; error: string } {
    const at = stderr.search(/^Error: /m);
    return at < 0 ? { log: stderr, error: "" } : { log: stderr.slice(0, at), error: stderr.slice(at) };
}

/** A JSON value's shape: every path to a key, with the type found there (arrays by their first element). */
function shape(v: unknown, at = "", out: Record<string, string> = {}): Record<string, string> {
    if (Array.isArray(v)) {
        if (!v.length) out[at] = "array(empty)";
        else shape(v[0], `${at}[]`, out);
    } else if (v && typeof v === "object") {
        for (const [k, x] of Object.entries(v)) shape(x, at ? `${at}.${k}` : k, out);
    } else {
        out[at] = v === null ? "null" : typeof v;
    }
    return out;
}

function rawGet(port: number, p: string): Promise<string> {
    return new Promise((resolve, reject) => {
        const s = net.connect(port, "127.0.0.1", () => s.write(`GET ${p} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`));
        let data = "";
        s.on("data", (d) => (data += d));
        s.on("end", () => resolve(data));
        s.on("error", reject);
    });
}

function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.listen(0, "127.0.0.1", () => {
            const port = (srv.address() as net.AddressInfo).port;
            srv.close(() => resolve(port));
        });
        srv.on("error", reject);
    });
}

async function waitFor(check: () => Promise<boolean> | boolean, ms = 15_000): Promise<void> {
    const end = Date.now() + ms;
    while (Date.now() < end) {
        if (await check()) return;
        await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error("timed out");
}
