import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as fc from "fast-check";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { renderBundle } from "../../components/host/bundle";
import { assembleScript, CONVERGE_SCRIPT, SCRIPT_PART_PATHS, SCRIPTS_DIR, splitScript } from "../../components/host/installScript";
import {
    FALCO_MAIN_CONFIG,
    FALCO_RULES_D,
    LOGROTATE_PATH,
    SECRET_PLACEHOLDER_PREFIX,
    SSHD_DROPIN_PATH,
    STATE_DIR,
    SYSCTL_PATH,
    UNIT_DROPIN_DIR,
    UNIT_NAME,
    UNIT_PATH,
} from "../../components/host/paths";
import { HostSettings, HostSettingsError, resolveHostSettings } from "../../components/host/settings";
import { PERF_EVENT_PARANOID_DROPIN_PATH } from "../../components/host/unit";
import { HostSandbox, sandboxAvailable, useSandbox } from "../support/hostSandbox";

const EVERYTHING_ON: HostSettings = {
    driver: "auto",
    perfEventParanoid: "grant-sys-admin",
    install: { purgeOnUninstall: true },
    outputs: {
        minimumPriority: "warning",
        stdout: true,
        file: { enabled: true, rotateSizeMiB: 50, rotateKeep: 3 },
        http: { enabled: true },
        program: { enabled: true, program: "logger -t falco-alert", keepAlive: true },
    },
    heartbeat: { enabled: true, interval: "1m" },
    webserver: { enabled: true, port: 8766 },
    rules: {
        defaultRules: true,
        builtin: ["self-protection", "app-config-example"],
        custom: { mine: "- list: my_list\n  items: [a, b]\n" },
    },
    hardening: {
        sysctl: { enabled: true, overrides: { "net.ipv4.ip_forward": 1 } },
        sshd: { enabled: true, permitRootLogin: true, overrides: { MaxAuthTries: "4" } },
    },
};
const PACKAGE_FILE: HostSettings = {
    install: { source: "package-file", packageFile: "/var/tmp/falco-0.44.1-x86_64.deb", packageSha256: "a".repeat(64), purgeOnUninstall: true },
};

function shellcheck(...files: string[]): { status: number | null; output: string } {
    const r = spawnSync("shellcheck", ["-x", "--severity=style", "--shell=bash", ...files], { encoding: "utf8" });
    return { status: r.status, output: r.stdout + r.stderr };
}

function withTempScripts<T>(texts: string[], fn: (files: string[]) => T): T {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "falco-nodes-script-"));
    try {
        const files = texts.map((text, i) => {
            const file = path.join(dir, `script-${i}.sh`);
            fs.writeFileSync(file, text);
            return file;
        });
        return fn(files);
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

describe("host scripts: static checks", () => {
    it("each part of the host script is shellcheck-clean (all severities) on its own and parses", () => {
        for (const part of SCRIPT_PART_PATHS) {
            const r = shellcheck(part);
            assert.equal(r.status, 0, r.output);
            assert.equal(r.output, "", part);
            assert.equal(spawnSync("bash", ["-n", part]).status, 0, part);
        }
    });

    it("every return states its status: a bare return in a function the EXIT trap (the rollback) runs returns the failure before the trap", () => {
        // bash(1), SHELL BUILTIN COMMANDS, return: "If return is executed by a trap handler, the last command used to
        // determine the status is the last command executed before the trap handler." Shown with the real bash:
        const demo = spawnSync("bash", ["-ec", "f() { true; return; }; g() { true; return 0; }; t() { set +e; f; a=$?; g; echo $a$?; }; trap t EXIT; false"], { encoding: "utf8" });
        assert.equal(demo.stdout.trim(), "10", "bare return in the trap: 1 (false's status); explicit: 0");
        for (const part of SCRIPT_PART_PATHS) {
            const bare = fs.readFileSync(part, "utf8").split("\n").map((l, i) => [i + 1, l.replace(/#.*$/, "")] as const)
                .filter(([, l]) => /(^|[\s;{&|])return\s*($|;|\})/.test(l));
            assert.deepEqual(bare, [], `${part}: say return 0 or return 1`);
        }
    });

    it("assembles every script in scripts/ exactly once, converge.sh (the shebang and shell options) first", () => {
        const onDisk = fs.readdirSync(SCRIPTS_DIR).filter((f) => f.endsWith(".sh")).map((f) => path.join(SCRIPTS_DIR, f));
        assert.deepEqual([...SCRIPT_PART_PATHS].sort(), onDisk.sort());
        assert.equal(path.basename(SCRIPT_PART_PATHS[0]), "converge.sh");
        assert.match(CONVERGE_SCRIPT, /^#!\/usr\/bin\/env bash\n/);
        for (const part of SCRIPT_PART_PATHS) assert.ok(CONVERGE_SCRIPT.includes(fs.readFileSync(part, "utf8").trimEnd()), part);
        // The parts only define functions: the one top-level command outside converge.sh would run before main.
        for (const part of SCRIPT_PART_PATHS.slice(1)) {
            const topLevel = fs.readFileSync(part, "utf8").split("\n").filter((l) => l !== "" && !/^[ #}]/.test(l) && !/^[a-z_0-9]+\(\) \{/.test(l));
            assert.deepEqual(topLevel, [], `${part} has top-level commands`);
        }
    });

    for (const [name, settings, secrets] of [
        ["default settings", {}, undefined],
        ["everything on, rendered without secrets", EVERYTHING_ON, undefined],
        ["everything on, with secrets", EVERYTHING_ON, { httpOutputUrl: "https://hooks.example.com/x?token=abc'$(id)`" }],
        ["a staged package file", PACKAGE_FILE, undefined],
    ] as [string, HostSettings, { httpOutputUrl: string } | undefined][]) {
        it(`the generated install and uninstall scripts are shellcheck-clean and parse (${name})`, () => {
            const b = renderBundle(resolveHostSettings(settings), secrets);
            withTempScripts([b.installScript, b.uninstallScript], (files) => {
                const r = shellcheck(...files);
                assert.equal(r.status, 0, r.output);
                assert.equal(r.output, "");
                for (const file of files) assert.equal(spawnSync("bash", ["-n", file]).status, 0, file);
            });
        });
    }

    it("uses the same state directory and placeholder prefix as paths.ts", () => {
        const constant = (name: string) => new RegExp(`^readonly ${name}=(.*)$`, "m").exec(CONVERGE_SCRIPT)?.[1];
        assert.equal(constant("STATE_DIR"), STATE_DIR);
        assert.equal(constant("SECRET_PLACEHOLDER"), SECRET_PLACEHOLDER_PREFIX);
    });

    it("keeps the script text outside the payload identical for any settings (fast-check)", () => {
        const reference = splitScript(assembleScript(Buffer.from("x"), "converge"));
        // Strings a shell would choke on, everywhere settings take free text.
        const hostile = fc.oneof(
            fc.string({ maxLength: 40 }),
            fc.constantFrom("$(id)", "`id`", "'; rm -rf / #", "\"$HOME\"", "${IFS}", "FALCO_NODES_PAYLOAD", "\\", "a\tb"),
        );
        const oneLine = hostile.map((s) => s.replace(/[\r\n\0]/g, " ").trim() || "true");
        const settings = fc.record(
            {
                driver: fc.constantFrom("modern_ebpf", "kmod", "auto" as const),
                webserver: fc.record({ enabled: fc.boolean(), port: fc.integer({ min: 1, max: 65535 }) }),
                outputs: fc.record({
                    program: fc.record({ enabled: fc.constant(true), program: oneLine }),
                    http: fc.record({ enabled: fc.boolean() }),
                }),
                rules: fc.record({
                    custom: fc.dictionary(
                        fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,10}$/),
                        hostile.map((s) => `- list: my_list\n  items: [${JSON.stringify(s)}]\n`),
                        { maxKeys: 3 },
                    ),
                }),
                extraConfig: fc.record({ log_level: fc.constantFrom("info", "debug") }),
            },
            { requiredKeys: [] },
        );
        fc.assert(
            fc.property(settings, fc.option(hostile.map((s) => `https://h.example.com/?t=${s}`), { nil: undefined }), (s, url) => {
                let resolved;
                try {
                    resolved = resolveHostSettings(s as HostSettings);
                } catch (e) {
                    if (e instanceof HostSettingsError) return fc.pre(false);
                    throw e;
                }
                let b;
                try {
                    b = renderBundle(resolved, url === undefined ? undefined : { httpOutputUrl: url });
                } catch (e) {
                    // A secret URL the renderer rejects (whitespace, "$${"): a clean error, no script at all.
                    if (url !== undefined && /secret httpOutputUrl/.test((e as Error).message)) return fc.pre(false);
                    throw e;
                }
                for (const script of [b.installScript, b.uninstallScript]) {
                    const parts = splitScript(script);
                    assert.equal(parts.before, reference.before);
                    assert.match(parts.after, /^\nFALCO_NODES_PAYLOAD\n\}\n\nmain (uninstall|"\$@")\n$/);
                    assert.match(script.slice(reference.before.length, script.length - parts.after.length), /^[A-Za-z0-9+/=\n]*$/);
                }
            }),
            { numRuns: 60 },
        );
    });
});

describe("converge.sh: the repository key pin (function run on its own)", () => {
    // Sourcing the static script only defines functions (main is called by the assembled script's last line).
    let dir: string;
    const fprs: string[] = [];
    const gpg = (args: string[]) => {
        const r = spawnSync("gpg", ["--batch", ...args], { encoding: "utf8", env: { ...process.env, GNUPGHOME: path.join(dir, "gnupg") } });
        assert.equal(r.status, 0, r.stderr);
        return r.stdout;
    };
    const pin = (keyFile: string, fingerprint: string) => {
        const work = fs.mkdtempSync(path.join(dir, "work-"));
        const script = path.join(dir, "converge.sh");
        fs.writeFileSync(script, CONVERGE_SCRIPT);
        const r = spawnSync(
            "bash",
            ["-c", 'source "$1"; WORK=$2 P_KEY_URL=$3 P_KEY_FPR=$4; fetch_pinned_key; gpg --show-keys --with-colons "$WORK/falco.gpg"',
                "test", script, work, `file://${keyFile}`, fingerprint],
            { encoding: "utf8" },
        );
        const kept = r.stdout.split("\n").filter((l) => l.startsWith("fpr:")).map((l) => l.split(":")[9]);
        return { status: r.status, stderr: r.stderr, kept };
    };

    before(function () {
        if (spawnSync("gpg", ["--version"]).status !== 0) this.skip();
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "falco-nodes-key-"));
        fs.mkdirSync(path.join(dir, "gnupg"), { mode: 0o700 });
        for (const who of ["A", "B"]) gpg(["--passphrase", "", "--quick-gen-key", `Test ${who} <${who}@example.com>`, "ed25519", "sign", "never"]);
        for (const line of gpg(["--with-colons", "--fingerprint"]).split("\n")) {
            const f = line.split(":");
            if (f[0] === "fpr") fprs.push(f[9]);
        }
        assert.equal(fprs.length, 2);
        fs.writeFileSync(path.join(dir, "both.asc"), gpg(["--armor", "--export", ...fprs]));
        fs.writeFileSync(path.join(dir, "a.asc"), gpg(["--armor", "--export", fprs[0]]));
    });
    after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

    it("keeps exactly the pinned key, even from a file holding several", () => {
        for (const [file, want] of [["a.asc", fprs[0]], ["both.asc", fprs[1]]]) {
            const r = pin(path.join(dir, file), want);
            assert.equal(r.status, 0, r.stderr);
            assert.deepEqual(r.kept, [want]);
        }
    });

    it("refuses a key whose fingerprint does not match, naming both", () => {
        const other = "0123456789ABCDEF0123456789ABCDEF01234567";
        const r = pin(path.join(dir, "a.asc"), other);
        assert.equal(r.status, 1);
        assert.match(r.stderr, new RegExp(`key fingerprint mismatch: expected ${other} got ${fprs[0]}; refusing`));
        const garbage = path.join(dir, "garbage.asc");
        fs.writeFileSync(garbage, "<html>not a key</html>\n");
        assert.match(pin(garbage, fprs[0]).stderr, /is not an OpenPGP key/);
    });
});

describe("sshd.sh: forwarded connections (function run on its own)", () => {
    // A stand-in for iproute2's `ss` (misc/ss.c): -H drops the header; with a single `state` filter the State
    // column is left out; the process column is users:(("<comm>",pid=N,fd=N)). Connections as a Debian 12
    // (OpenSSH 9.2: the session process is "sshd") and a Debian 13 host (OpenSSH 10.0: "sshd-session") show them.
    const forwarded = (established: string[]) => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "falco-nodes-ss-"));
        const script = path.join(dir, "converge.sh");
        fs.writeFileSync(script, CONVERGE_SCRIPT);
        const listening = ['LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:(("sshd",pid=500,fd=3))'];
        const fake = `ss() { if [[ $* == *state* ]]; then printf '%s\\n' "$ESTABLISHED"; else printf '%s\\n' "$LISTENING"; fi; }; have_executable() { return 0; }`;
        const r = spawnSync("bash", ["-c", `source "$1"; ${fake}; forwarded_connections`, "test", script], {
            encoding: "utf8",
            env: { ...process.env, LISTENING: listening.join("\n"), ESTABLISHED: established.join("\n") },
        });
        fs.rmSync(dir, { recursive: true, force: true });
        assert.equal(r.status, 0, r.stderr);
        return r.stdout;
    };
    const operator = '0 0 10.0.2.15:22 10.0.2.2:50312 users:(("sshd-session",pid=801,fd=4))';

    it("counts a ProxyJump channel of OpenSSH 10's sshd-session and of OpenSSH 9's sshd, not the operator's own connection", () => {
        assert.equal(forwarded([operator]), "");
        assert.equal(forwarded([operator, '0 0 127.0.0.1:41234 127.0.0.1:22 users:(("sshd-session",pid=812,fd=7))']), "127.0.0.1:22");
        assert.equal(forwarded(['0 0 10.0.2.15:22 10.0.2.2:50312 users:(("sshd",pid=801,fd=4))', '0 0 10.0.0.5:40000 10.0.0.9:22 users:(("sshd",pid=812,fd=7))']), "10.0.0.9:22");
        assert.equal(forwarded([operator, '0 0 127.0.0.1:41000 127.0.0.1:22 users:(("ssh",pid=900,fd=3))']), "", "an ssh client is not sshd");
    });
});

describe("host scripts: real runs in a sandbox (mount namespace, overlays, fake systemd)", function () {
    let sb: HostSandbox;
    const managedBy = (settings: HostSettings = {}) =>
        renderBundle(resolveHostSettings({ ...settings, install: { source: "preinstalled", binaryPath: sb.falco } }));

    before(function () {
        if (!sandboxAvailable()) this.skip();
    });
    beforeEach(() => {
        sb = new HostSandbox();
    });
    afterEach(() => sb?.cleanup());

    it("refuses to run as a non-root user, changing nothing", () => {
        const r = sb.run(managedBy().installScript, { mode: "nobody" });
        assert.equal(r.status, 1);
        assert.match(r.stderr, /run as root or via sudo -n/);
        assert.equal(r.stdout, "");
        assert.deepEqual(Object.keys(sb.snapshot()), ["/etc/ssh/sshd_config"]);
    });

    it("refuses a host where systemd is not PID 1, changing nothing", () => {
        const r = sb.run(managedBy().installScript, { systemd: false });
        assert.equal(r.status, 1);
        assert.match(r.stderr, /systemd is not PID 1.*nothing was changed/);
        assert.equal(sb.stat(STATE_DIR), undefined);
        assert.deepEqual(Object.keys(sb.snapshot()), ["/etc/ssh/sshd_config"]);
    });

    it("runs nothing when the script arrives cut short", () => {
        const script = managedBy().installScript;
        for (const cut of [Math.floor(script.length * 0.8), script.lastIndexOf("main ")]) {
            const r = sb.run(script.slice(0, cut));
            assert.doesNotMatch(r.stderr, /falco-nodes:/);
            assert.equal(r.stdout, "");
            assert.equal(sb.stat(STATE_DIR), undefined);
        }
    });

    it("rejects an unknown action", () => {
        const r = sb.run(managedBy().installScript, { args: ["reboot"] });
        assert.equal(r.status, 1);
        assert.match(r.stderr, /unknown action 'reboot'/);
    });

    it("refuses a bundle rendered without secrets before changing anything", () => {
        const r = sb.run(managedBy({ outputs: { http: { enabled: true } } }).installScript);
        assert.equal(r.status, 1);
        assert.match(r.stderr, /rendered without secrets \(httpOutputUrl\): converge it with Pulumi/);
        assert.deepEqual(Object.keys(sb.snapshot()), ["/etc/ssh/sshd_config"]);
        assert.deepEqual(sb.log("systemctl"), []);
    });

    it("converges a fresh host, then changes and restarts nothing on a second run", () => {
        sb.touch("package-units", "falco-modern-bpf.service");
        const b = managedBy();
        const first = sb.run(b.installScript);
        assert.equal(first.status, 0, first.stderr);
        assert.equal(first.stdout.trim().split("\n").length, 1, "stdout is the report alone");
        assert.deepEqual(first.report, {
            changed: true, version: "0.44.1", driver: "modern_ebpf", bundleHash: b.hash, unit: UNIT_NAME, restarted: true,
        });
        for (const f of b.files.filter((x) => x.group !== "unit-dropin-perf")) {
            assert.equal(sb.read(f.path), f.content, f.path);
            assert.equal(sb.mode(f.path), f.mode, f.path);
        }
        // perf_event_paranoid here is <= 2 and the setting is auto: no CAP_SYS_ADMIN drop-in.
        const paranoid = Number(fs.readFileSync("/proc/sys/kernel/perf_event_paranoid", "utf8"));
        assert.equal(sb.stat(PERF_EVENT_PARANOID_DROPIN_PATH) !== undefined, paranoid > 2);
        assert.ok(sb.has("enabled", UNIT_NAME) && sb.has("active", UNIT_NAME));
        assert.ok(sb.has("masked", "falco-modern-bpf.service"));
        assert.ok(sb.log("falco").some((l) => /--dry-run -o engine\.kind=modern_ebpf$/.test(l)));
        assert.equal(sb.read(`${STATE_DIR}/bundle-hash`), `${b.hash}\n`);
        assert.equal(sb.mode(`${STATE_DIR}/manifest`), "0600");
        assert.ok(sb.read(`${STATE_DIR}/manifest`)!.includes(`falco\t0640\t${FALCO_MAIN_CONFIG}\n`));

        sb.clearLogs();
        const before = sb.snapshot();
        const second = sb.run(b.installScript);
        assert.equal(second.status, 0, second.stderr);
        assert.deepEqual(second.report, { ...first.report, changed: false, restarted: false });
        assert.ok(!sb.log("systemctl").some((l) => /^(restart|daemon-reload|enable|mask|reload)\b/.test(l)), sb.log("systemctl").join("\n"));
        assert.ok(!sb.log("falco").some((l) => l.includes("--dry-run")));
        assert.deepEqual(sb.snapshot(), before);
    });

    it("masks every one of the package's units that is present, and only those, with one systemctl call", () => {
        sb.touch("package-units", "falco-modern-bpf.service");
        sb.touch("package-units", "falco-kmod.service");
        const r = sb.run(managedBy().installScript);
        assert.equal(r.status, 0, r.stderr);
        assert.ok(sb.has("masked", "falco-modern-bpf.service") && sb.has("masked", "falco-kmod.service"));
        assert.ok(!sb.has("masked", "falco-bpf.service"), "a unit the package does not have is left alone");
        assert.deepEqual(sb.log("systemctl").filter((l) => /\bmask\b/.test(l)), ["--no-reload mask --quiet -- falco-modern-bpf.service falco-kmod.service"]);
    });

    it("starts Falco again when it is not running, touching no file", () => {
        const b = managedBy();
        assert.equal(sb.run(b.installScript).status, 0);
        fs.rmSync(path.join(sb.state, "active", UNIT_NAME));
        sb.clearLogs();
        const before = sb.snapshot();
        const r = sb.run(b.installScript);
        assert.equal(r.status, 0, r.stderr);
        assert.deepEqual([r.report?.changed, r.report?.restarted], [true, true]);
        assert.ok(sb.has("active", UNIT_NAME));
        assert.deepEqual(sb.log("systemctl").filter((l) => l.startsWith("restart")), [`restart -- ${UNIT_NAME}`]);
        assert.deepEqual(sb.snapshot(), before);
    });

    it("waits for cloud-init before changing anything, and only where cloud-init exists", () => {
        const b = managedBy();
        const r = sb.run(b.installScript);
        assert.equal(r.status, 0, r.stderr);
        assert.deepEqual(sb.log("cloud-init"), ["status --wait"]);
        assert.match(r.stderr, /waiting for cloud-init to finish/);

        // Finished with an error: say so and converge anyway (the host is as ready as it will get).
        fs.writeFileSync(path.join(sb.state, "cloud-init-rc"), "1");
        const failed = sb.run(b.installScript);
        assert.equal(failed.status, 0, failed.stderr);
        assert.match(failed.stderr, /cloud-init finished with an error/);

        // Still running after the wait: refuse, nothing changed (124 is timeout's code).
        const fresh = new HostSandbox();
        try {
            fs.writeFileSync(path.join(fresh.state, "cloud-init-rc"), "124");
            const stuck = fresh.run(renderBundle(resolveHostSettings({ install: { source: "preinstalled", binaryPath: fresh.falco } })).installScript);
            assert.equal(stuck.status, 1);
            assert.match(stuck.stderr, /cloud-init did not finish within 900s.*nothing was changed/);
            assert.equal(fresh.stat(UNIT_PATH), undefined);
            assert.deepEqual(fresh.log("systemctl"), []);
        } finally {
            fresh.cleanup();
        }

        // Finished on this boot (cloud-init's result file, with no errors): no wait, and cloud-init is not started.
        fs.writeFileSync(path.join(sb.state, "cloud-init-rc"), "0");
        sb.clearLogs();
        const result = (errors: string) => `{\n "v1": {\n  "datasource": "DataSourceEc2Local",\n  "errors": ${errors}\n }\n}\n`;
        const done = sb.run(b.installScript, { runFiles: { "cloud-init/result.json": result("[]") } });
        assert.equal(done.status, 0, done.stderr);
        assert.deepEqual(sb.log("cloud-init"), []);
        assert.doesNotMatch(done.stderr, /cloud-init/);
        // Errors recorded there, or a file we cannot read the answer from: cloud-init itself is asked.
        for (const content of [result('[\n   "config-scripts_user failed"\n  ]'), "not json"]) {
            sb.clearLogs();
            const asked = sb.run(b.installScript, { runFiles: { "cloud-init/result.json": content } });
            assert.equal(asked.status, 0, asked.stderr);
            assert.deepEqual(sb.log("cloud-init"), ["status --wait"], content);
        }

        // Bare metal: no cloud-init, no wait.
        const bare = sb.run(b.installScript, { hide: ["cloud-init"] });
        assert.equal(bare.status, 0, bare.stderr);
        assert.doesNotMatch(bare.stderr, /cloud-init/);
    });

    it("restores drifted files, restarting Falco only for Falco's own files", () => {
        const b = managedBy();
        assert.equal(sb.run(b.installScript).status, 0);
        const rule = b.files.find((f) => f.path.startsWith(`${FALCO_RULES_D}/`))!;
        sb.write(rule.path, "- macro: tampered\n  condition: always_true\n", 0o666);
        const r1 = sb.run(b.installScript);
        assert.equal(r1.status, 0, r1.stderr);
        assert.equal(sb.read(rule.path), rule.content);
        assert.equal(sb.mode(rule.path), "0640");
        assert.deepEqual([r1.report?.changed, r1.report?.restarted], [true, true]);

        sb.remove(LOGROTATE_PATH);
        const r2 = sb.run(b.installScript);
        assert.equal(r2.status, 0, r2.stderr);
        assert.ok(sb.read(LOGROTATE_PATH));
        assert.deepEqual([r2.report?.changed, r2.report?.restarted], [true, false]);
    });

    it("removes files that left the bundle and installs the perf drop-in only when needed", () => {
        const withRule = managedBy({ perfEventParanoid: "grant-sys-admin", rules: { custom: { mine: "- list: l\n  items: [x]\n" } } });
        assert.equal(sb.run(withRule.installScript).status, 0);
        assert.ok(sb.read(`${FALCO_RULES_D}/50-mine.yaml`));
        assert.ok(sb.read(PERF_EVENT_PARANOID_DROPIN_PATH));

        const without = managedBy({ perfEventParanoid: "lower-to-2" });
        const r = sb.run(without.installScript);
        assert.equal(r.status, 0, r.stderr);
        assert.equal(sb.stat(`${FALCO_RULES_D}/50-mine.yaml`), undefined);
        assert.equal(sb.stat(PERF_EVENT_PARANOID_DROPIN_PATH), undefined);
        assert.equal(sb.stat(UNIT_DROPIN_DIR), undefined, "the emptied drop-in directory goes too");
        assert.match(sb.read(SYSCTL_PATH)!, /^kernel\.perf_event_paranoid = 2$/m);
        assert.ok(sb.log("sysctl").some((l) => l.includes(SYSCTL_PATH)), "the new sysctl file is applied");
        assert.ok(!sb.read(`${STATE_DIR}/manifest`)!.includes("50-mine.yaml"));
        assert.equal(r.report?.restarted, true);
    });

    it("changes nothing when Falco rejects the new configuration", () => {
        assert.equal(sb.run(managedBy().installScript).status, 0);
        sb.clearLogs();
        const before = sb.snapshot();
        const bad = managedBy({ rules: { custom: { broken: "- rule: x\n  condition: evt.type = open and fd.STANDIN-INVALID = x\n  output: x\n  priority: ERROR\n  desc: x\n" } } });
        const r = sb.run(bad.installScript);
        assert.equal(r.status, 1);
        assert.match(r.stderr, /LOAD_ERR_COMPILE_CONDITION/, "Falco's own output is shown");
        assert.match(r.stderr, /Falco rejected the new configuration.*nothing was changed/);
        assert.equal(r.stdout, "");
        assert.deepEqual(sb.snapshot(), before);
        assert.ok(!sb.log("systemctl").some((l) => l.startsWith("restart")));
    });

    it("puts the last good files back when Falco does not come up", () => {
        const good = managedBy();
        assert.equal(sb.run(good.installScript).status, 0);
        const falcoYaml = sb.read(FALCO_MAIN_CONFIG);
        sb.clearLogs();
        const crashing = managedBy({ rules: { custom: { crash: "- list: FAIL_AT_START\n  items: [x]\n" } } });
        const r = sb.run(crashing.installScript);
        assert.equal(r.status, 1);
        // Falco's log holds alerts with command lines: it stays on the host, the message says where to read it.
        assert.doesNotMatch(r.stderr, /fake journal|FAIL_AT_START found/, "the journal is not copied into Pulumi's and CI's logs");
        assert.match(r.stderr, /its log stays on the host: run journalctl -u falco-nodes.service -n 50 there as root/);
        assert.match(r.stderr, /the host is back as this converge found it/);
        assert.equal(sb.stat(`${FALCO_RULES_D}/50-crash.yaml`), undefined);
        assert.equal(sb.read(FALCO_MAIN_CONFIG), falcoYaml);
        assert.equal(sb.read(`${STATE_DIR}/bundle-hash`), `${good.hash}\n`);
        assert.equal(sb.log("systemctl").filter((l) => l.startsWith("restart")).length, 2, "the new files, then the restored ones");
        assert.ok(sb.has("active", UNIT_NAME));
    });

    it("never installs an sshd drop-in that sshd -t rejects, and never reloads sshd then", () => {
        assert.equal(sb.run(managedBy().installScript).status, 0);
        const sshd = sb.read(SSHD_DROPIN_PATH);
        sb.clearLogs();
        const before = sb.snapshot();
        const r = sb.run(managedBy({ hardening: { sshd: { overrides: { Banner: "BadDirective" } } } }).installScript);
        assert.equal(r.status, 1);
        assert.match(r.stderr, /Bad configuration option/);
        assert.match(r.stderr, /sshd -t rejected/);
        assert.equal(sb.read(SSHD_DROPIN_PATH), sshd);
        assert.deepEqual(sb.snapshot(), before);
        assert.ok(!sb.log("systemctl").some((l) => l.startsWith("reload")));
    });

    it("uninstalls everything it installed, unmasks what it masked, and can run again", () => {
        sb.touch("package-units", "falco-modern-bpf.service");
        const b = managedBy({ perfEventParanoid: "grant-sys-admin" });
        assert.equal(sb.run(b.installScript, { mode: "file" }).status, 0);
        assert.ok(sb.read(PERF_EVENT_PARANOID_DROPIN_PATH));
        // The component runs the converge script's own stdin with `-- uninstall` on delete.
        const r = sb.run(b.installScript, { args: ["uninstall"] });
        assert.equal(r.status, 0, r.stderr);
        assert.deepEqual(r.report, { uninstalled: true, unit: UNIT_NAME, purged: false });
        for (const p of [FALCO_MAIN_CONFIG, UNIT_PATH, PERF_EVENT_PARANOID_DROPIN_PATH, SYSCTL_PATH, SSHD_DROPIN_PATH, LOGROTATE_PATH, STATE_DIR])
            assert.equal(sb.stat(p), undefined, p);
        assert.ok(!sb.has("enabled", UNIT_NAME) && !sb.has("active", UNIT_NAME));
        assert.ok(!sb.has("masked", "falco-modern-bpf.service"));
        assert.ok(sb.log("systemctl").includes("reload -- ssh.service"), "sshd reloaded without our drop-in");

        const again = sb.run(b.uninstallScript);
        assert.equal(again.status, 0, again.stderr);
        assert.equal(again.report?.uninstalled, true);
    });
});

describe("host scripts: a converge never leaves a host worse than it found it (sandbox; the VM suite is the proof)", function () {
    const sb = useSandbox();
    const managedBy = (settings: HostSettings = {}) =>
        renderBundle(resolveHostSettings({ ...settings, install: { source: "preinstalled", binaryPath: sb().falco } }));
    const crash = { rules: { custom: { crash: "- list: FAIL_AT_START\n  items: [x]\n" } } };

    it("a rejected first converge leaves the package's running Falco running, enabled and unmasked", () => {
        sb().touch("package-units", "falco-modern-bpf.service");
        sb().touch("enabled", "falco-modern-bpf.service");
        sb().touch("active", "falco-modern-bpf.service");
        const bad = managedBy({ rules: { custom: { broken: "- rule: x\n  condition: evt.type = open and fd.name = STANDIN-INVALID\n  output: x\n  priority: ERROR\n  desc: x\n" } } });
        const r = sb().run(bad.installScript);
        assert.equal(r.status, 1);
        assert.match(r.stderr, /Falco rejected the new configuration.*nothing was changed/);
        assert.ok(sb().has("active", "falco-modern-bpf.service") && sb().has("enabled", "falco-modern-bpf.service"));
        assert.ok(!sb().has("masked", "falco-modern-bpf.service"), "masked before ours ran");
        assert.deepEqual(sb().log("systemctl").filter((l) => /^(stop|disable|mask|--no-reload)/.test(l)), []);
    });

    it("a first converge whose Falco does not start puts every unit back as found: no unit of ours, the package's running again", () => {
        sb().touch("package-units", "falco-modern-bpf.service");
        sb().touch("enabled", "falco-modern-bpf.service");
        sb().touch("active", "falco-modern-bpf.service");
        const r = sb().run(managedBy(crash).installScript);
        assert.equal(r.status, 1, r.stderr);
        assert.match(r.stderr, /did not come up healthy/);
        assert.match(r.stderr, /the host is back as this converge found it \(falco-nodes.service not running\)/);
        assert.equal(sb().stat(UNIT_PATH), undefined, "our unit file is gone again");
        assert.ok(!sb().has("enabled", UNIT_NAME) && !sb().has("active", UNIT_NAME));
        assert.ok(sb().has("active", "falco-modern-bpf.service"), "the package's Falco runs again");
        assert.ok(sb().has("enabled", "falco-modern-bpf.service") && !sb().has("masked", "falco-modern-bpf.service"));
        assert.equal(sb().stat(`${STATE_DIR}/pending`), undefined);
        assert.equal(sb().stat(`${STATE_DIR}/manifest`), undefined);
    });

    it("an uninstall after a rolled-back first converge removes nothing it never owned: the package's falco.yaml and an admin's logrotate file stay", () => {
        sb().write(FALCO_MAIN_CONFIG, "# the package's falco.yaml\n");
        sb().write(LOGROTATE_PATH, "# the admin's own rotation\n");
        const before = sb().snapshot();
        const b = managedBy(crash);
        const r = sb().run(b.installScript);
        assert.equal(r.status, 1, r.stderr);
        assert.deepEqual(sb().snapshot(), before, "the rollback put everything back");
        const u = sb().run(b.installScript, { args: ["uninstall"] });
        assert.equal(u.status, 0, u.stderr);
        assert.equal(sb().read(FALCO_MAIN_CONFIG), "# the package's falco.yaml\n");
        assert.equal(sb().read(LOGROTATE_PATH), "# the admin's own rotation\n");
        assert.doesNotMatch(u.stderr, /removing \/etc/);
    });

    it("an uninstall after an interrupted first converge puts back the files it had replaced (the package's falco.yaml) and removes its new ones", () => {
        sb().write(FALCO_MAIN_CONFIG, "# the package's falco.yaml\n");
        const before = sb().snapshot();
        const b = managedBy();
        fs.writeFileSync(path.join(sb().state, "kill-at"), `restart -- ${UNIT_NAME}`);
        assert.notEqual(sb().run(b.installScript).status, 0, "killed at the restart, after the swap");
        assert.equal(sb().log("killed").length, 1);
        sb().mark("kill-at", false);
        assert.notEqual(sb().read(FALCO_MAIN_CONFIG), "# the package's falco.yaml\n", "the swap happened");
        const u = sb().run(b.installScript, { args: ["uninstall"] });
        assert.equal(u.status, 0, u.stderr);
        assert.match(u.stderr, /an earlier converge was interrupted: putting back the files it replaced/);
        assert.equal(sb().read(FALCO_MAIN_CONFIG), "# the package's falco.yaml\n");
        assert.deepEqual(Object.keys(sb().snapshot()).filter((f) => !(f in before)), [], "nothing of ours is left");
    });

    it("an uninstall removes the directories converge created once they are empty, and keeps those with someone else's files", () => {
        assert.equal(sb().stat("/etc/falco"), undefined, "this host has no /etc/falco");
        const b = managedBy({ rules: { custom: { mine: "- list: my_bins\n  items: [ls]\n" } } });
        assert.equal(sb().run(b.installScript).status, 0);
        assert.ok(sb().stat("/etc/falco/rules.d")?.isDirectory());
        const u = sb().run(b.installScript, { args: ["uninstall"] });
        assert.equal(u.status, 0, u.stderr);
        assert.equal(sb().stat("/etc/falco"), undefined, "no empty /etc/falco* directory left");
        assert.ok(sb().stat("/etc/ssh/sshd_config.d")?.isDirectory(), "a directory that was there before stays");

        assert.equal(sb().run(b.installScript).status, 0);
        sb().write("/etc/falco/rules.d/admin.yaml", "- list: admins\n  items: []\n");
        assert.equal(sb().run(b.installScript, { args: ["uninstall"] }).status, 0);
        assert.equal(sb().read("/etc/falco/rules.d/admin.yaml"), "- list: admins\n  items: []\n");
    });

    it("an uninstall unpacks the bundle (it may carry secrets) in root's own state directory and removes it on a failed exit too", () => {
        const b = managedBy();
        assert.equal(sb().run(b.installScript).status, 0);
        const stateDir = path.join(sb().root, "varlib/upper", STATE_DIR.replace(/^\/var\/lib\//, ""));
        const works = () => fs.readdirSync(stateDir).filter((n) => n.startsWith("work."));
        // A command naming another bundle fails after the unpack (the check needs the bundle's hash).
        const r = sb().run(b.installScript, { args: ["uninstall", "--owner", "a".repeat(64), "--bundle", "b".repeat(64)] });
        assert.equal(r.status, 1);
        assert.match(r.stderr, /nothing was changed/);
        assert.deepEqual(works(), [], "no unpacked bundle left behind");
        assert.equal(sb().mode(STATE_DIR), "0700");
        assert.doesNotMatch(CONVERGE_SCRIPT, /\/tmp\/|TMPDIR/, "the script never unpacks or stages under /tmp");
        const mktemps = CONVERGE_SCRIPT.split("\n").filter((l) => /\$\(mktemp/.test(l));
        assert.ok(mktemps.every((l) => l.includes('mktemp -d "$P_ARTIFACTS_DIR/')), `a temporary file outside root's own directories: ${mktemps.join("; ")}`);
    });

    it("a no-op converge restarts an active Falco whose /healthz is dead, and says so", () => {
        const b = managedBy({ webserver: { enabled: true } });
        assert.equal(sb().run(b.installScript).status, 0);
        const healthy = sb().run(b.installScript);
        assert.deepEqual([healthy.report?.changed, healthy.report?.restarted], [false, false]);
        sb().mark("healthz-dead");
        sb().clearLogs();
        const r = sb().run(b.installScript);
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stderr, /is active but not healthy \(\/healthz does not answer/);
        assert.deepEqual([r.report?.changed, r.report?.restarted], [true, true]);
        assert.deepEqual(sb().log("systemctl").filter((l) => l.startsWith("restart")), [`restart -- ${UNIT_NAME}`]);
    });

    for (const step of ["daemon-reload", "reload -- ssh.service", `restart -- ${UNIT_NAME}`, "-q -p /etc/sysctl.d"]) {
        it(`a converge killed at '${step}' is finished by the next one with the same bundle`, () => {
            const v1 = managedBy();
            assert.equal(sb().run(v1.installScript).status, 0);
            // A change to every group, so each step has work to do.
            const v2 = managedBy({
                rules: { custom: { mine: "- list: l\n  items: [x]\n" } },
                hardening: { sysctl: { overrides: { "net.ipv4.ip_forward": 0 } }, sshd: { overrides: { MaxAuthTries: "5" } } },
                perfEventParanoid: "grant-sys-admin",
            });
            fs.writeFileSync(path.join(sb().state, "kill-at"), step);
            const killed = sb().run(v2.installScript);
            assert.notEqual(killed.status, 0);
            assert.equal(sb().log("killed").length, 1, `killed at ${step}: ${killed.stderr}`);
            assert.ok(sb().read(`${STATE_DIR}/pending`), "the record of the interrupted converge stays");
            sb().clearLogs();
            const r = sb().run(v2.installScript);
            assert.equal(r.status, 0, r.stderr);
            assert.match(r.stderr, /an earlier converge was interrupted/);
            assert.deepEqual([r.report?.changed, r.report?.restarted], [true, true]);
            assert.ok(sb().log("systemctl").includes(`restart -- ${UNIT_NAME}`), "Falco restarted with the new files");
            assert.ok(sb().log("systemctl").includes("reload -- ssh.service"), "sshd reloaded with the new drop-in");
            assert.ok(sb().log("sysctl").some((l) => l.includes(SYSCTL_PATH)), "the new sysctl file applied");
            assert.equal(sb().stat(`${STATE_DIR}/pending`), undefined);
            assert.equal(sb().read(`${STATE_DIR}/bundle-hash`), `${v2.hash}\n`);
            for (const f of v2.files.filter((x) => x.group !== "unit-kmod")) assert.equal(sb().read(f.path), f.content, f.path);
            const again = sb().run(v2.installScript);
            assert.deepEqual([again.report?.changed, again.report?.restarted], [false, false], "finished for good");
        });
    }

    it("refuses a preinstalled Falco that someone other than root could replace", () => {
        fs.chownSync(sb().falco, 65534, 65534);
        let r = sb().run(managedBy().installScript);
        assert.equal(r.status, 1);
        assert.match(r.stderr, /install.binaryPath .*: .*\/bin\/falco is owned by uid 65534, not root.*nothing was changed/);
        fs.chownSync(sb().falco, 0, 0);
        fs.chmodSync(path.dirname(sb().falco), 0o777);
        r = sb().run(managedBy().installScript);
        assert.equal(r.status, 1);
        assert.match(r.stderr, /\/bin is writable by others \(mode 777\)/);
        assert.deepEqual(Object.keys(sb().snapshot()), ["/etc/ssh/sshd_config"]);
        fs.chmodSync(path.dirname(sb().falco), 0o755);
        assert.equal(sb().run(managedBy().installScript).status, 0, "root-owned, root-only: accepted");
    });
});
