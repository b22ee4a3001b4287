/**
 * OS hardening for a Falco node, as data (in the manner of dev-sec's os_hardening / ssh_hardening): a table of
 * sysctl settings and a table of sshd directives, each entry with the reason it is there, rendered into
 * `/etc/sysctl.d/90-falco-nodes.conf` and an sshd drop-in. Every entry can be replaced or dropped from the host
 * settings (`hardening.sysctl.overrides`, `hardening.sshd.overrides`; `null` drops an entry).
 *
 * The baseline never breaks Falco: settings Falco depends on (`kernel.modules_disabled` for kmod,
 * `kernel.perf_event_paranoid`) are listed as deliberately not set, with the reason.
 *
 * Pure: settings in, file text out. Override keys and values were held to allowlists by `resolveHostSettings`,
 * so nothing here can break out of a line.
 */
import { commentLines } from "./comments";
import { SSHD_DROPIN_PATH, SYSCTL_PATH } from "./paths";
import { HostSettingsError, PerfEventParanoid, ResolvedHostSettings } from "./settings";

/** One sysctl setting. */
export interface SysctlEntry {
    /** The key, e.g. `kernel.kptr_restrict`. */
    readonly key: string;
    /** The value as written after `=`. */
    readonly value: string;
    /** Why it is set to this value, and why that does not break Falco. */
    readonly why: string;
    /**
     * The key may not exist on every supported kernel (IPv6 disabled, Yama not built in, older kernels): written
     * with a `-` prefix, which both systemd-sysctl and procps' `sysctl -p` read as "ignore if it cannot be set".
     */
    readonly optional?: boolean;
}

/** One sshd directive. */
export interface SshdEntry {
    /** Directive name as sshd spells it, e.g. `PasswordAuthentication` (sshd matches names case-insensitively). */
    readonly key: string;
    readonly value: string;
    /** Why, including what it could break. */
    readonly why: string;
}

/** Something deliberately not set, with the reason; rendered as a comment. */
export interface NotSet {
    readonly key: string;
    readonly why: string;
}

const SYSCTL_FILE = SYSCTL_PATH;
const SSHD_FILE = SSHD_DROPIN_PATH;

export const SYSCTL_BASELINE: readonly SysctlEntry[] = [
    // --- kernel information leaks and attack surface
    {
        key: "kernel.kptr_restrict",
        value: "2",
        why:
            "Hide kernel addresses (/proc/kallsyms, %pK) from everyone, which makes kernel exploits harder. Falco " +
            "is unaffected: modern_ebpf attaches by BTF and tracepoints, not by symbol address, and our unit " +
            "withholds CAP_SYSLOG, so it never saw addresses anyway.",
    },
    {
        key: "kernel.dmesg_restrict",
        value: "1",
        why: "Only CAP_SYSLOG may read the kernel log, which leaks addresses and hardware details. Falco does not read it.",
    },
    {
        key: "kernel.unprivileged_bpf_disabled",
        value: "1",
        why:
            "No bpf() without CAP_BPF/CAP_SYS_ADMIN: unprivileged BPF has been a steady source of kernel exploits. " +
            "Falco holds CAP_BPF. 1 (unlike 2) cannot be undone until reboot, so an intruder cannot turn it back on.",
    },
    {
        key: "kernel.yama.ptrace_scope",
        value: "1",
        why:
            "A process may only ptrace its own descendants (or with CAP_SYS_PTRACE), so a compromised process cannot " +
            "read its neighbours' memory. Yama only restricts attaching; Falco's /proc reads are unaffected, so 2 " +
            "(admin only) is Falco-safe too, if the host's users need not debug their own processes. Not 3: it " +
            "forbids all attaching, root's debuggers included, until reboot.",
        optional: true,
    },
    {
        key: "kernel.kexec_load_disabled",
        value: "1",
        why:
            "Nobody can switch to another kernel (one without Falco's probe) through kexec, which skips firmware " +
            "and boot loader. Cannot be undone until reboot. Drop it (null) on hosts that use kdump, which loads " +
            "its crash kernel with kexec. (Absent on kernels built without kexec, e.g. some microVM kernels.)",
        optional: true,
    },
    {
        key: "kernel.sysrq",
        value: "0",
        why: "No magic SysRq key from the console, which can kill processes (Falco included) or reboot the host.",
        optional: true,
    },
    {
        key: "kernel.randomize_va_space",
        value: "2",
        why: "Full address space layout randomisation (stack, mmap, heap): the kernel default, enforced.",
    },
    {
        key: "dev.tty.ldisc_autoload",
        value: "0",
        why: "Unprivileged users cannot make the kernel load TTY line discipline modules, an old exploit vector.",
        optional: true,
    },
    {
        key: "vm.unprivileged_userfaultfd",
        value: "0",
        why: "userfaultfd, a tool for winning kernel race conditions, needs CAP_SYS_PTRACE. Falco does not use it.",
        optional: true,
    },
    // --- file system
    {
        key: "fs.protected_hardlinks",
        value: "1",
        why: "No hard links to files one does not own: blocks classic privilege escalation through setuid files.",
    },
    {
        key: "fs.protected_symlinks",
        value: "1",
        why: "Symlinks in sticky world-writable directories (/tmp) are only followed by their owner: blocks /tmp races.",
    },
    {
        key: "fs.protected_fifos",
        value: "2",
        why: "No opening of others' FIFOs in sticky world-writable directories with O_CREAT (data spoofing in /tmp).",
        optional: true,
    },
    {
        key: "fs.protected_regular",
        value: "2",
        why: "Same for regular files: no O_CREAT open of another user's file in /tmp-like directories.",
        optional: true,
    },
    {
        key: "fs.suid_dumpable",
        value: "0",
        why: "Setuid programs leave no core dumps, which could hold secrets (password hashes, keys).",
    },
    // --- IPv4
    {
        key: "net.ipv4.conf.all.accept_redirects",
        value: "0",
        why: "Ignore ICMP redirects, with which anyone on the link can reroute this host's traffic.",
    },
    { key: "net.ipv4.conf.default.accept_redirects", value: "0", why: "The same for interfaces that appear later." },
    {
        key: "net.ipv4.conf.all.secure_redirects",
        value: "0",
        why: "Not even redirects from the listed gateways: cloud and datacentre routing never needs them.",
    },
    { key: "net.ipv4.conf.default.secure_redirects", value: "0", why: "The same for interfaces that appear later." },
    {
        key: "net.ipv4.conf.all.send_redirects",
        value: "0",
        why: "A Falco node is not a router; sending redirects only leaks topology. (Container bridges do not need them.)",
    },
    { key: "net.ipv4.conf.default.send_redirects", value: "0", why: "The same for interfaces that appear later." },
    {
        key: "net.ipv4.conf.all.accept_source_route",
        value: "0",
        why: "Drop source-routed packets, with which a sender picks the route through (or around) your filtering.",
    },
    { key: "net.ipv4.conf.default.accept_source_route", value: "0", why: "The same for interfaces that appear later." },
    {
        key: "net.ipv4.conf.all.rp_filter",
        value: "2",
        why:
            "Reverse path filtering, loose mode: drop packets whose source is not reachable through any interface " +
            "(spoofed, bogons). Not strict (1), which drops legitimate traffic on multi-homed hosts with asymmetric " +
            "routes (several cloud NICs, policy routing, some CNIs); set 1 on single-homed hosts if you like. Note " +
            "that Calico's Felix refuses loose mode unless told to ignore it (IgnoreLooseRPF).",
    },
    { key: "net.ipv4.conf.default.rp_filter", value: "2", why: "The same for interfaces that appear later." },
    {
        key: "net.ipv4.conf.all.log_martians",
        value: "1",
        why: "Log packets with impossible source addresses: a sign of spoofing or misrouting worth seeing.",
    },
    { key: "net.ipv4.conf.default.log_martians", value: "1", why: "The same for interfaces that appear later." },
    {
        key: "net.ipv4.tcp_syncookies",
        value: "1",
        why: "Keep accepting connections (SSH included) under a SYN flood.",
    },
    {
        key: "net.ipv4.icmp_echo_ignore_broadcasts",
        value: "1",
        why: "Do not answer broadcast pings (smurf amplification).",
    },
    {
        key: "net.ipv4.icmp_ignore_bogus_error_responses",
        value: "1",
        why: "Do not log bogus ICMP error responses, which only fill the log.",
    },
    // --- IPv6 (optional: absent when IPv6 is disabled on the kernel command line)
    {
        key: "net.ipv6.conf.all.accept_redirects",
        value: "0",
        why: "Ignore ICMPv6 redirects, as for IPv4.",
        optional: true,
    },
    { key: "net.ipv6.conf.default.accept_redirects", value: "0", why: "The same for interfaces that appear later.", optional: true },
    {
        key: "net.ipv6.conf.all.accept_source_route",
        value: "0",
        why: "Drop IPv6 source-routed packets (routing header type 0 abuse).",
        optional: true,
    },
    { key: "net.ipv6.conf.default.accept_source_route", value: "0", why: "The same for interfaces that appear later.", optional: true },
];

/** sysctl settings a hardening guide might suggest that this baseline deliberately leaves alone. */
export const SYSCTL_NOT_SET: readonly NotSet[] = [
    {
        key: "kernel.modules_disabled",
        why:
            "Would stop the kmod driver (and any module the host needs later) from loading; the modern_ebpf unit " +
            "already forbids Falco itself from loading modules.",
    },
    {
        key: "kernel.perf_event_paranoid",
        why:
            "Only lowered to 2 when perfEventParanoid is lower-to-2; otherwise the host's value is kept and the " +
            "unit gets CAP_SYS_ADMIN by drop-in when it is above 2.",
    },
    {
        key: "net.core.bpf_jit_harden",
        why:
            "2 would blind constants in privileged programs too, Falco's ~190 included, costing CPU on every " +
            "syscall for no gain: unprivileged BPF is already disabled above.",
    },
    {
        key: "net.ipv6.conf.*.accept_ra",
        why:
            "Clouds (EC2 among them) hand out the IPv6 default route by router advertisement: turning it off cuts " +
            "the host's IPv6 connectivity.",
    },
    {
        key: "net.ipv4.ip_forward",
        why: "Docker, Kubernetes and VPN hosts need forwarding; a Falco node may be one of them.",
    },
    {
        key: "user.max_user_namespaces",
        why: "Rootless containers and browsers' sandboxes need user namespaces; Falco watches their use instead.",
    },
];

/** The kernel.perf_event_paranoid entry written when `perfEventParanoid` is `lower-to-2`. */
export const PERF_EVENT_PARANOID_LOWERED: SysctlEntry = {
    key: "kernel.perf_event_paranoid",
    value: "2",
    why:
        "perfEventParanoid: lower-to-2. Above 2 (Debian/Ubuntu default 3 or 4), Falco's least-privilege " +
        "capabilities cannot attach its tracepoints; at 2 it runs without CAP_SYS_ADMIN (measured), at the cost " +
        "of letting unprivileged users profile their own processes with perf.",
};

/** Key exchange: post-quantum hybrid first; all supported by OpenSSH 8.5+ (AL2023 has 8.7). */
export const SSHD_KEX_ALGORITHMS = [
    "sntrup761x25519-sha512@openssh.com",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group-exchange-sha256",
] as const;
/** Authenticated encryption first, then CTR modes (with the encrypt-then-MAC MACs below). */
export const SSHD_CIPHERS = [
    "chacha20-poly1305@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-gcm@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
] as const;
export const SSHD_MACS = [
    "hmac-sha2-512-etm@openssh.com",
    "hmac-sha2-256-etm@openssh.com",
    "umac-128-etm@openssh.com",
] as const;
export const SSHD_HOST_KEY_ALGORITHMS = [
    "ssh-ed25519",
    "ssh-ed25519-cert-v01@openssh.com",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    "ecdsa-sha2-nistp521",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    "rsa-sha2-512",
    "rsa-sha2-512-cert-v01@openssh.com",
    "rsa-sha2-256",
    "rsa-sha2-256-cert-v01@openssh.com",
] as const;

export const SSHD_BASELINE: readonly SshdEntry[] = [
    // --- who may log in, and how
    {
        key: "PermitRootLogin",
        value: "no",
        why:
            "Log in as yourself and escalate with sudo, which leaves a trail. hardening.sshd.permitRootLogin: true " +
            "turns this into prohibit-password (root with a key only).",
    },
    {
        key: "PasswordAuthentication",
        value: "no",
        why: "Keys only: passwords can be guessed and phished. Pulumi's command provider connects with a key.",
    },
    {
        key: "KbdInteractiveAuthentication",
        value: "no",
        why: "Closes the keyboard-interactive path to password (PAM) logins too.",
    },
    {
        key: "PermitEmptyPasswords",
        value: "no",
        why: "Never, even if a password login path were reopened.",
    },
    {
        key: "PubkeyAuthentication",
        value: "yes",
        why: "The one way in.",
    },
    {
        key: "AuthenticationMethods",
        value: "publickey",
        why: "Enforces the above whatever other directives or PAM say: a login must present a key.",
    },
    {
        key: "HostbasedAuthentication",
        value: "no",
        why: "Trusting other hosts' word for a user's identity means trusting every one of those hosts.",
    },
    {
        key: "IgnoreRhosts",
        value: "yes",
        why: "Ignore ~/.rhosts and ~/.shosts, the legacy trust files.",
    },
    {
        key: "PermitUserEnvironment",
        value: "no",
        why: "Users cannot set LD_PRELOAD and friends for sshd-started processes via ~/.ssh/environment.",
    },
    {
        key: "MaxAuthTries",
        value: "3",
        why:
            "Few guesses per connection. Each key an agent offers counts: with more than 3 keys loaded, connect " +
            "with IdentitiesOnly=yes and the right key.",
    },
    {
        key: "LoginGraceTime",
        value: "30",
        why: "Seconds to authenticate before sshd drops the connection: limits unauthenticated connection hogging.",
    },
    {
        key: "ClientAliveInterval",
        value: "300",
        why: "Probe an idle client every 5 minutes ...",
    },
    {
        key: "ClientAliveCountMax",
        value: "3",
        why:
            "... and drop it after 3 unanswered probes, so dead sessions do not linger. A live client (ssh, Pulumi's " +
            "Go SSH client) answers the probes, so long-running converge commands are not cut.",
    },
    {
        key: "LogLevel",
        value: "VERBOSE",
        why: "Log the fingerprint of the key each login used, so a login can be traced to a key.",
    },
    // --- what a session may do
    {
        key: "X11Forwarding",
        value: "no",
        why: "A server has no display to forward; X11 forwarding exposes the client's display to the server.",
    },
    {
        key: "AllowTcpForwarding",
        value: "no",
        why:
            "No port forwarding or jumping through this node (ProxyJump/-L/-R/-D): a Falco node is not a bastion, " +
            "and tunnels would let traffic bypass it unseen. Pulumi's command provider only runs commands and " +
            "copies files, which needs no forwarding.",
    },
    {
        key: "AllowStreamLocalForwarding",
        value: "no",
        why: "No Unix socket forwarding either (e.g. forwarding the Docker socket out of the host).",
    },
    {
        key: "AllowAgentForwarding",
        value: "no",
        why: "Whoever is root on this host could use a forwarded agent to log in elsewhere as you.",
    },
    {
        key: "PermitTunnel",
        value: "no",
        why: "No tun/tap VPN tunnels through sshd.",
    },
    {
        key: "GatewayPorts",
        value: "no",
        why: "Remote forwards could never listen on public addresses (moot with forwarding off; kept if you re-enable it).",
    },
    // --- cryptography
    {
        key: "KexAlgorithms",
        value: SSHD_KEX_ALGORITHMS.join(","),
        why:
            "Post-quantum hybrid sntrup761x25519 first, then curve25519 and large DH groups; no SHA-1, no NIST " +
            "curves. Supported by OpenSSH 8.5 and later (Ubuntu 22.04/24.04, Debian 12, Amazon Linux 2023) and by " +
            "Go's x/crypto/ssh (Pulumi) through curve25519-sha256.",
    },
    {
        key: "Ciphers",
        value: SSHD_CIPHERS.join(","),
        why: "Authenticated encryption (ChaCha20-Poly1305, AES-GCM) first, AES-CTR for older clients; no CBC, no 3DES.",
    },
    {
        key: "MACs",
        value: SSHD_MACS.join(","),
        why: "Encrypt-then-MAC with SHA-2 or UMAC-128 only (AEAD ciphers need none); no SHA-1, no MD5, no 64-bit tags.",
    },
    {
        key: "HostKeyAlgorithms",
        value: SSHD_HOST_KEY_ALGORITHMS.join(","),
        why:
            "Every host key type a host may have (Ed25519, ECDSA, RSA) stays usable, so no client's known_hosts " +
            "entry breaks, but RSA only with SHA-2 signatures (no ssh-rsa/SHA-1) and no DSA.",
    },
];

/** sshd directives this baseline deliberately leaves alone. */
export const SSHD_NOT_SET: readonly NotSet[] = [
    { key: "Port / ListenAddress", why: "Pulumi connects to the address and port the stack names; moving them locks it out." },
    { key: "UsePAM", why: "The distributions' PAM stacks (account expiry, limits, SELinux contexts) depend on it." },
    { key: "AllowUsers / AllowGroups", why: "Who may log in is site policy; set it through hardening.sshd.overrides." },
    {
        key: "MaxSessions",
        why: "Multiplexing clients (ssh ControlMaster, Ansible) open several sessions per connection; the default 10 stays.",
    },
];

// --- overrides ---------------------------------------------------------------------------------------------

function applyOverrides<T extends { key: string; value: string; why: string }>(
    baseline: readonly T[],
    overrides: Record<string, string | number | null>,
    sameKey: (a: string, b: string) => boolean,
    where: string,
): T[] {
    const out = baseline.map((e) => ({ ...e }));
    for (const [key, value] of Object.entries(overrides)) {
        const at = out.findIndex((e) => sameKey(e.key, key));
        if (value === null) {
            if (at >= 0) out.splice(at, 1);
        } else if (at >= 0) {
            out[at] = { ...out[at], value: String(value), why: `Set by ${where} (baseline: ${out[at].value}). ${out[at].why}` };
        } else {
            out.push({ key, value: String(value), why: `Set by ${where}.` } as T);
        }
    }
    return out;
}

/** The sysctl entries for `s`: the baseline with overrides applied, plus the perf_event_paranoid entry if asked. */
export function sysctlEntries(s: ResolvedHostSettings): SysctlEntry[] {
    const entries = s.hardening.sysctl.enabled
        ? applyOverrides(SYSCTL_BASELINE, s.hardening.sysctl.overrides, (a, b) => a === b, "hardening.sysctl.overrides")
        : [];
    if (s.perfEventParanoid === PerfEventParanoid.LowerToTwo) entries.push({ ...PERF_EVENT_PARANOID_LOWERED });
    return entries;
}

/** The sshd entries for `s`: the baseline, PermitRootLogin per settings, then overrides (matched case-insensitively). */
export function sshdEntries(s: ResolvedHostSettings): SshdEntry[] {
    if (!s.hardening.sshd.enabled) return [];
    const baseline = SSHD_BASELINE.map((e) =>
        e.key === "PermitRootLogin" && s.hardening.sshd.permitRootLogin
            ? {
                  ...e,
                  value: "prohibit-password",
                  why: "hardening.sshd.permitRootLogin: root may log in, with a key only, never with a password.",
              }
            : e,
    );
    return applyOverrides(baseline, s.hardening.sshd.overrides, (a, b) => a.toLowerCase() === b.toLowerCase(), "hardening.sshd.overrides");
}

// --- rendering ---------------------------------------------------------------------------------------------

function notSetLines(items: readonly NotSet[]): string[] {
    return ["", "# Deliberately not set:", ...items.flatMap((n) => commentLines(`${n.key}: ${n.why}`, "# - ", "#   "))];
}

/**
 * `/etc/sysctl.d/90-falco-nodes.conf`, or undefined when there is nothing to write (sysctl hardening disabled
 * and perfEventParanoid not `lower-to-2`). With hardening disabled but `lower-to-2`, the file holds only
 * `kernel.perf_event_paranoid = 2`, since Falco's least-privilege unit depends on it.
 */
export function renderSysctlConf(s: ResolvedHostSettings): string | undefined {
    const entries = sysctlEntries(s);
    if (!entries.length) return undefined;
    const out = [
        `# ${SYSCTL_FILE}: kernel hardening for a Falco node.`,
        "# Managed by falco-nodes: converge overwrites this file; change hardening.sysctl in the stack instead.",
        "# Files in /etc/sysctl.d apply in lexical order and the last value wins: 90- comes after the",
        "# distribution's defaults. A `-` before a key means: skip it if this kernel does not have it.",
    ];
    for (const e of entries) out.push("", ...commentLines(e.why), `${e.optional ? "-" : ""}${e.key} = ${e.value}`);
    if (s.hardening.sysctl.enabled) out.push(...notSetLines(SYSCTL_NOT_SET));
    return out.join("\n") + "\n";
}

/**
 * The sshd drop-in (`SSHD_DROPIN_PATH`), or undefined when sshd hardening is disabled. converge checks it with
 * `sshd -t` before reloading sshd.
 */
export function renderSshdConfig(s: ResolvedHostSettings): string | undefined {
    const entries = sshdEntries(s);
    if (!s.hardening.sshd.enabled) return undefined;
    const out = [
        `# ${SSHD_FILE}: sshd hardening for a Falco node.`,
        "# Managed by falco-nodes: converge overwrites this file; change hardening.sshd in the stack instead.",
        "# sshd keeps the FIRST value it reads for a directive. Debian, Ubuntu and Amazon Linux 2023 start",
        "# sshd_config with `Include /etc/ssh/sshd_config.d/*.conf`, which reads drop-ins in lexical order, so",
        "# this file (named to sort first) wins over the main file and over other drop-ins such as cloud-init's",
        "# 50-cloud-init.conf or Red Hat's 50-redhat.conf. Do not put a Match block before it.",
    ];
    for (const e of entries) out.push("", ...commentLines(e.why), `${e.key} ${e.value}`);
    out.push(...notSetLines(SSHD_NOT_SET));
    return out.join("\n") + "\n";
}

// --- the connecting user -----------------------------------------------------------------------------------

/**
 * Why logging in as `user` (the SSH connection's user; `root` when unset, as FalcoHost defaults it) would lock
 * the next converge and `pulumi destroy` out once the sshd drop-in is in place; undefined when it would not. Pure:
 * the same check for FalcoHost and the stack parser. The host script checks the merged candidate again with
 * `sshd -T -C user=...` before reloading sshd, which also covers the host's own configuration.
 */
export function loginLockoutProblem(s: ResolvedHostSettings, user: string | undefined): { key: string; message: string } | undefined {
    if ((user ?? "root") !== "root") return undefined;
    const permit = sshdEntries(s).find((e) => e.key.toLowerCase() === "permitrootlogin")?.value.toLowerCase();
    if (permit === undefined || ["yes", "prohibit-password", "without-password"].includes(permit)) return undefined;
    return {
        key: "hardening.sshd.permitRootLogin",
        message:
            `the connection logs in as root (connection.user ${user === undefined ? "is unset and defaults to root" : "is root"}), ` +
            `but the sshd hardening sets PermitRootLogin ${permit}, which would lock the next converge and pulumi destroy out: ` +
            "log in as a sudo user (connection.user), or set hardening.sshd.permitRootLogin: true (root with a key only)",
    };
}

/**
 * Throws HostSettingsError when `user` would be locked out (loginLockoutProblem). A user known only at deploy time
 * (an Output) cannot be checked here; the host script's `sshd -T` check refuses the drop-in then.
 */
export function assertLoginKeepsAccess(s: ResolvedHostSettings, user: unknown): void {
    if (user !== undefined && typeof user !== "string") return;
    const problem = loginLockoutProblem(s, user);
    if (problem) throw new HostSettingsError([problem]);
}
