import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as fc from "fast-check";
import * as fs from "fs";
import * as path from "path";
import { HOST_KEY_DROPIN } from "../../components/aws/userdata";
import {
    PERF_EVENT_PARANOID_LOWERED,
    SSHD_BASELINE,
    SYSCTL_BASELINE,
    SYSCTL_NOT_SET,
    renderSshdConfig,
    renderSysctlConf,
    sshdEntries,
    sysctlEntries,
} from "../../components/host/hardening";
import { SSHD_DROPIN_PATH, SYSCTL_PATH } from "../../components/host/paths";
import { HostSettings, HostSettingsError, resolveHostSettings } from "../../components/host/settings";
import { tempDir } from "../support/systemd";

const SSHD = "/usr/sbin/sshd";
const NOBODY = 65534;

/** `key = value` lines of a sysctl file (a leading `-` marks an optional key). */
function sysctlLines(text: string): { key: string; value: string; optional: boolean; line: number }[] {
    return text.split("\n").flatMap((raw, line) => {
        if (raw === "" || raw.startsWith("#")) return [];
        const m = /^(-?)([a-z0-9_]+(?:\.[a-z0-9_*-]+)+) = (\S(?:.*\S)?)$/.exec(raw);
        assert.ok(m, `not a "key = value" line: ${JSON.stringify(raw)}`);
        return [{ optional: m[1] === "-", key: m[2], value: m[3], line }];
    });
}

/** `Keyword value` lines of an sshd config. */
function sshdLines(text: string): { key: string; value: string; line: number }[] {
    return text.split("\n").flatMap((raw, line) => {
        if (raw === "" || raw.startsWith("#")) return [];
        const m = /^([A-Za-z][A-Za-z0-9]*) (\S(?:.*\S)?)$/.exec(raw);
        assert.ok(m, `not a "Keyword value" line: ${JSON.stringify(raw)}`);
        return [{ key: m[1], value: m[2], line }];
    });
}

function rejects(input: HostSettings): boolean {
    try {
        resolveHostSettings(input);
        return false;
    } catch (e) {
        assert.ok(e instanceof HostSettingsError, `expected HostSettingsError, got ${e}`);
        return true;
    }
}

describe("sysctl hardening", () => {
    const defaults = resolveHostSettings();

    it("every baseline key is unique and has a reason", () => {
        const keys = SYSCTL_BASELINE.map((e) => e.key);
        assert.equal(new Set(keys).size, keys.length);
        for (const e of SYSCTL_BASELINE) assert.ok(e.why.length > 15, `${e.key} needs a reason`);
    });

    it("renders key = value lines, each with its reason as a comment right above", () => {
        const text = renderSysctlConf(defaults)!;
        assert.ok(text.startsWith(`# ${SYSCTL_PATH}`));
        const lines = sysctlLines(text);
        const all = text.split("\n");
        assert.deepEqual(lines.map((l) => [l.key, l.value, l.optional]), SYSCTL_BASELINE.map((e) => [e.key, e.value, !!e.optional]));
        for (const l of lines) assert.match(all[l.line - 1], /^# \S/, `no reason above ${l.key}`);
    });

    it("names keys this kernel has (reads /proc/sys; optional keys may be absent)", function () {
        if (!fs.existsSync("/proc/sys/kernel")) this.skip();
        const missing = SYSCTL_BASELINE.filter((e) => !e.optional && !fs.existsSync(`/proc/sys/${e.key.replace(/\./g, "/")}`));
        assert.deepEqual(missing.map((e) => e.key), [], "misspelled, or should be optional");
    });

    it("leaves alone what Falco or the host depends on", () => {
        const keys = sysctlLines(renderSysctlConf(defaults)!).map((l) => l.key);
        for (const forbidden of ["kernel.modules_disabled", "kernel.perf_event_paranoid", "net.core.bpf_jit_harden", "net.ipv4.ip_forward"])
            assert.ok(!keys.includes(forbidden), forbidden);
        assert.ok(!keys.some((k) => k.endsWith(".accept_ra")), "accept_ra off breaks IPv6 routes on clouds");
        for (const n of SYSCTL_NOT_SET) assert.ok(renderSysctlConf(defaults)!.includes(`# - ${n.key}:`), n.key);
        // Yama 3 forbids every ptrace attach until reboot; Falco does not need it, admins do.
        const yama = SYSCTL_BASELINE.find((e) => e.key === "kernel.yama.ptrace_scope")!;
        assert.ok(Number(yama.value) < 3);
    });

    it("lowers kernel.perf_event_paranoid to 2 only with perfEventParanoid lower-to-2", () => {
        const paranoid = (p?: HostSettings["perfEventParanoid"]) =>
            sysctlLines(renderSysctlConf(resolveHostSettings({ perfEventParanoid: p }))!).filter((l) => l.key === "kernel.perf_event_paranoid");
        assert.deepEqual(paranoid("lower-to-2").map((l) => l.value), ["2"]);
        assert.deepEqual(paranoid("auto"), []);
        assert.deepEqual(paranoid("grant-sys-admin"), []);
    });

    it("is absent when disabled, except for the perf_event_paranoid line Falco's unit depends on", () => {
        assert.equal(renderSysctlConf(resolveHostSettings({ hardening: { sysctl: { enabled: false } } })), undefined);
        const only = renderSysctlConf(resolveHostSettings({ perfEventParanoid: "lower-to-2", hardening: { sysctl: { enabled: false } } }))!;
        assert.deepEqual(sysctlLines(only).map((l) => `${l.key} = ${l.value}`), [`${PERF_EVENT_PARANOID_LOWERED.key} = 2`]);
    });

    it("applies overrides: a value replaces in place, null drops, a new key is added", () => {
        const s = resolveHostSettings({
            hardening: {
                sysctl: {
                    overrides: {
                        "kernel.yama.ptrace_scope": 2,
                        "kernel.kexec_load_disabled": null,
                        "net.ipv4.conf.all.rp_filter": "1",
                        "vm.swappiness": 10,
                    },
                },
            },
        });
        const lines = sysctlLines(renderSysctlConf(s)!);
        const value = (k: string) => lines.filter((l) => l.key === k).map((l) => l.value);
        assert.deepEqual(value("kernel.yama.ptrace_scope"), ["2"]);
        assert.deepEqual(value("net.ipv4.conf.all.rp_filter"), ["1"]);
        assert.deepEqual(value("kernel.kexec_load_disabled"), []);
        assert.deepEqual(value("vm.swappiness"), ["10"]);
        assert.equal(lines.length, SYSCTL_BASELINE.length);
        const yamaAt = lines.findIndex((l) => l.key === "kernel.yama.ptrace_scope");
        assert.equal(yamaAt, SYSCTL_BASELINE.findIndex((e) => e.key === "kernel.yama.ptrace_scope"), "replaced in place");
        assert.match(sysctlEntries(s).find((e) => e.key === "vm.swappiness")!.why, /hardening\.sysctl\.overrides/);
    });

    it("rejects perf_event_paranoid overrides (perfEventParanoid owns it) and non-integer numbers", () => {
        assert.ok(rejects({ hardening: { sysctl: { overrides: { "kernel.perf_event_paranoid": 1 } } } }));
        assert.ok(rejects({ hardening: { sysctl: { overrides: { "vm.swappiness": 1.5 } } } }));
    });

    it("never lets an override add a line or a comment: hostile keys and values are rejected (fast-check)", () => {
        const text = fc.oneof(
            fc.constantFrom("1\nkernel.modules_disabled = 1", "1 # x", "$(id)", "a=b", " ", "", "1\r", "-1", "x\0"),
            fc.string({ unit: "binary" }),
        );
        const key = fc.oneof(fc.constantFrom("a.b = 1\nc.d", "-kernel.x", "kernel.x y", "Kernel.X", "kernel", "__proto__"), fc.string());
        fc.assert(
            fc.property(key, fc.oneof(text, fc.integer(), fc.double()), (k, v) => {
                let s;
                try {
                    s = resolveHostSettings({ hardening: { sysctl: { overrides: { [k]: v } } } });
                } catch (e) {
                    return e instanceof HostSettingsError;
                }
                const lines = sysctlLines(renderSysctlConf(s)!);
                const mine = lines.filter((l) => l.key === k);
                return lines.length === sysctlEntries(s).length && mine.length === 1 && mine[0].value === String(v);
            }),
            { numRuns: 500 },
        );
    });
});

describe("sshd hardening", () => {
    const defaults = resolveHostSettings();
    let tmp: { dir: string; cleanup: () => void };
    let hostKey: string;

    /**
     * Run `sshd args...` on a temporary config, never starting a daemon (-t / -T only). As root, sshd insists on
     * its privilege separation directory (/run/sshd, which only the ssh service creates); as any other user it
     * does not, so the check runs as nobody on files nobody owns.
     */
    function sshd(args: string[]): { status: number | null; output: string } {
        assert.ok(fs.existsSync(SSHD), "needs the sshd binary: apt-get install --no-install-recommends openssh-server");
        const asNobody = process.getuid?.() === 0;
        if (asNobody) chownTree(tmp.dir);
        const r = asNobody
            ? spawnSync("setpriv", [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", SSHD, ...args], { encoding: "utf8" })
            : spawnSync(SSHD, args, { encoding: "utf8" });
        if (r.error) throw r.error;
        return { status: r.status, output: (r.stdout + r.stderr).trim() };
    }
    function chownTree(p: string): void {
        fs.chownSync(p, NOBODY, NOBODY);
        if (fs.statSync(p).isDirectory()) for (const e of fs.readdirSync(p)) chownTree(path.join(p, e));
    }

    /**
     * A config laid out like Debian's / Ubuntu's / AL2023's: `Include sshd_config.d/*.conf` at the top, then the
     * main file's own (weaker) settings; drop-ins beside ours as cloud images have them. Returns the main file.
     */
    function distroLayout(name: string, ours: string | undefined, others: Record<string, string> = {}): string {
        const dir = path.join(tmp.dir, name);
        fs.mkdirSync(path.join(dir, "sshd_config.d"), { recursive: true });
        const main = path.join(dir, "sshd_config");
        fs.writeFileSync(
            main,
            [
                `Include ${dir}/sshd_config.d/*.conf`,
                `HostKey ${hostKey}`,
                "KbdInteractiveAuthentication no",
                "PasswordAuthentication yes",
                "X11Forwarding yes",
                "PrintMotd no",
                "AcceptEnv LANG LC_*",
                "",
            ].join("\n"),
        );
        if (ours !== undefined) fs.writeFileSync(path.join(dir, "sshd_config.d", path.basename(SSHD_DROPIN_PATH)), ours);
        for (const [file, text] of Object.entries(others)) fs.writeFileSync(path.join(dir, "sshd_config.d", file), text);
        return main;
    }

    /** `sshd -T`: the effective configuration, lower-cased keys. */
    function effective(main: string): Map<string, string> {
        const r = sshd(["-T", "-f", main]);
        assert.equal(r.status, 0, r.output);
        return new Map(r.output.split("\n").map((l) => [l.slice(0, l.indexOf(" ")), l.slice(l.indexOf(" ") + 1)]));
    }

    const CLOUD_INIT = { "50-cloud-init.conf": "PasswordAuthentication yes\n", "50-redhat.conf": "X11Forwarding yes\nKexAlgorithms +diffie-hellman-group14-sha1\n" };

    before(() => {
        tmp = tempDir("falco-sshd-");
        hostKey = path.join(tmp.dir, "ssh_host_ed25519_key");
        const r = spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", hostKey], { encoding: "utf8" });
        assert.equal(r.status, 0, r.stderr);
    });
    after(() => tmp.cleanup());

    it("every baseline directive is unique (case-insensitively) and has a reason", () => {
        const keys = SSHD_BASELINE.map((e) => e.key.toLowerCase());
        assert.equal(new Set(keys).size, keys.length);
        for (const e of SSHD_BASELINE) assert.ok(e.why.length > 10, `${e.key} needs a reason`);
        assert.ok(!keys.includes("match") && !keys.includes("include"));
    });

    it("renders `Keyword value` lines, each with its reason as a comment right above", () => {
        const text = renderSshdConfig(defaults)!;
        const all = text.split("\n");
        const lines = sshdLines(text);
        assert.deepEqual(lines.map((l) => [l.key, l.value]), SSHD_BASELINE.map((e) => [e.key, e.value]));
        for (const l of lines) assert.match(all[l.line - 1], /^# \S/, `no reason above ${l.key}`);
        assert.match(text, /FIRST value/);
    });

    for (const [label, input] of [
        ["the baseline", {}],
        ["permitRootLogin", { hardening: { sshd: { permitRootLogin: true } } }],
        ["overrides", { hardening: { sshd: { overrides: { MaxAuthTries: "5", x11forwarding: null, AllowUsers: "admin deploy", Ciphers: "aes256-gcm@openssh.com" } } } }],
    ] as [string, HostSettings][])
        it(`is accepted by a real \`sshd -t\` (${label})`, () => {
            const main = distroLayout(`t-${label.replace(/\W/g, "")}`, renderSshdConfig(resolveHostSettings(input))!);
            const r = sshd(["-t", "-f", main]);
            assert.equal(r.status, 0, r.output);
        });

    it("is a real check: `sshd -t` rejects an algorithm sshd does not know", () => {
        const bad = renderSshdConfig(resolveHostSettings({ hardening: { sshd: { overrides: { KexAlgorithms: "no-such-kex@example.com" } } } }))!;
        const r = sshd(["-t", "-f", distroLayout("t-bad", bad)]);
        assert.notEqual(r.status, 0);
        assert.match(r.output, /KexAlgorithms/);
    });

    it("wins over the main sshd_config and the cloud images' drop-ins (sshd keeps the first value)", () => {
        const entries = sshdEntries(defaults);
        const eff = effective(distroLayout("t-effective", renderSshdConfig(defaults)!, CLOUD_INIT));
        for (const e of entries) assert.equal(eff.get(e.key.toLowerCase())?.toLowerCase(), e.value.toLowerCase(), e.key);
        assert.equal(eff.get("passwordauthentication"), "no");
        // Control: without our drop-in, the same layout lets passwords and weak key exchange in.
        const bare = effective(distroLayout("t-bare", undefined, CLOUD_INIT));
        assert.equal(bare.get("passwordauthentication"), "yes");
        assert.match(bare.get("kexalgorithms")!, /diffie-hellman-group14-sha1/);
        // ...and so would a name sorting after them (why SSHD_DROPIN_PATH is not 90-...).
        const late = distroLayout("t-late", undefined, { ...CLOUD_INIT, "90-falco-nodes.conf": renderSshdConfig(defaults)! });
        assert.equal(effective(late).get("passwordauthentication"), "yes");
    });

    it("sorts after the AWS host-key drop-in and before the distributions' 50- drop-ins", () => {
        const ours = path.basename(SSHD_DROPIN_PATH);
        assert.ok(path.basename(HOST_KEY_DROPIN) < ours);
        assert.ok(ours < "50-cloud-init.conf" && ours < "50-redhat.conf" && ours < "60-cloudimg-settings.conf");
    });

    it("permits root login with a key only when asked", () => {
        const value = (s: HostSettings) => sshdLines(renderSshdConfig(resolveHostSettings(s))!).filter((l) => l.key === "PermitRootLogin").map((l) => l.value);
        assert.deepEqual(value({}), ["no"]);
        assert.deepEqual(value({ hardening: { sshd: { permitRootLogin: true } } }), ["prohibit-password"]);
    });

    it("applies overrides case-insensitively: replace in place, null drops, new directives are added", () => {
        const s = resolveHostSettings({
            hardening: { sshd: { overrides: { maxauthtries: "6", AllowAgentForwarding: null, AllowUsers: "admin" } } },
        });
        const lines = sshdLines(renderSshdConfig(s)!);
        const of = (k: string) => lines.filter((l) => l.key.toLowerCase() === k.toLowerCase()).map((l) => l.value);
        assert.deepEqual(of("MaxAuthTries"), ["6"], "one line only: sshd would ignore a second one");
        assert.deepEqual(of("AllowAgentForwarding"), []);
        assert.deepEqual(of("AllowUsers"), ["admin"]);
        assert.equal(lines.findIndex((l) => l.key === "MaxAuthTries"), SSHD_BASELINE.findIndex((e) => e.key === "MaxAuthTries"));
    });

    it("is absent when disabled", () => {
        assert.equal(renderSshdConfig(resolveHostSettings({ hardening: { sshd: { enabled: false } } })), undefined);
    });

    it("rejects Match and Include overrides, which would capture every directive after them", () => {
        assert.ok(rejects({ hardening: { sshd: { overrides: { Match: "User root" } } } }));
        assert.ok(rejects({ hardening: { sshd: { overrides: { include: "/tmp/x.conf" } } } }));
    });

    it("never lets an override add a line or a comment: hostile keys and values are rejected (fast-check)", () => {
        const value = fc.oneof(
            fc.constantFrom("no\nPasswordAuthentication yes", "yes # x", '"quoted"', "$(id)", "", " ", "a\rb", "x\0", "'a'"),
            fc.string({ unit: "binary" }),
        );
        const key = fc.oneof(fc.constantFrom("Password Authentication", "X11Forwarding\nPermitRootLogin", "Match", "#x", "A", "__proto__"), fc.string());
        fc.assert(
            fc.property(key, value, (k, v) => {
                let s;
                try {
                    s = resolveHostSettings({ hardening: { sshd: { overrides: { [k]: v } } } });
                } catch (e) {
                    return e instanceof HostSettingsError;
                }
                const lines = sshdLines(renderSshdConfig(s)!);
                const mine = lines.filter((l) => l.key.toLowerCase() === k.toLowerCase());
                return lines.length === sshdEntries(s).length && mine.length === 1 && mine[0].value === v;
            }),
            { numRuns: 500 },
        );
    });
});
