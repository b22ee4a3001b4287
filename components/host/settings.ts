/**
 * Typed settings for one Falco host: what a user writes (`HostSettings`, every field optional with a
 * documented default) and what the renderers consume (`ResolvedHostSettings`, every default filled in).
 *
 * `resolveHostSettings` is the only way from one to the other. It rejects bad input with a
 * `HostSettingsError` that names the key and the fix, before anything is rendered or any resource declared.
 * Pure: no Pulumi, no I/O.
 */
import { isIPv4, isIPv6 } from "net";
import * as YAML from "yaml";
import { z } from "zod";
import { BuiltinRuleSet, Driver, K8sAuditVariant } from "../shared/ruleInputs";
import { zodProblems } from "../validation";

export { BuiltinRuleSet, Driver, K8sAuditVariant };

const UNKNOWN_HOST_SETTING = "unknown setting; check the spelling against HostSettings (settings.ts)";


/** Where the Falco package comes from. */
export const InstallSource = {
    /** Falco's official apt repository (Debian, Ubuntu): key pinned by fingerprint, version pinned and held. */
    Apt: "apt",
    /** Falco's official rpm repository with dnf/yum (RHEL family, Amazon Linux): same pinning. */
    Rpm: "rpm",
    /** A .deb/.rpm already staged on the host (air-gapped hosts), verified by its sha256. */
    PackageFile: "package-file",
    /** Falco is already installed (e.g. built from source): verify binary and version, install nothing. */
    Preinstalled: "preinstalled",
} as const;
export type InstallSource = (typeof InstallSource)[keyof typeof InstallSource];

/** Falco rule priorities, most to least severe. */
export const PRIORITIES = [
    "emergency", "alert", "critical", "error", "warning", "notice", "informational", "debug",
] as const;
export type Priority = (typeof PRIORITIES)[number];

/**
 * How to live with `kernel.perf_event_paranoid` > 2 (Debian/Ubuntu default 3 or 4), under which the
 * least-privilege `modern_ebpf` capability set cannot attach Falco's tracepoints (measured: crash loop).
 */
export const PerfEventParanoid = {
    /**
     * Keep the host's setting. If it is > 2 when converging, a unit drop-in adds `CAP_SYS_ADMIN` to
     * Falco's capability set (exposure 3.1 instead of 2.8), so unprivileged users keep the stricter level.
     */
    Auto: "auto",
    /** Lower `kernel.perf_event_paranoid` to 2 via sysctl and keep Falco without `CAP_SYS_ADMIN`. */
    LowerToTwo: "lower-to-2",
    /** Always grant `CAP_SYS_ADMIN` to Falco, whatever the host's setting. */
    GrantSysAdmin: "grant-sys-admin",
} as const;
export type PerfEventParanoid = (typeof PerfEventParanoid)[keyof typeof PerfEventParanoid];


export interface InstallSettings {
    /** Where Falco comes from. Default `apt`; use `rpm` for RHEL/Amazon Linux, `package-file` when air-gapped. */
    source?: InstallSource;
    /** Package repository. Default Falco's official `https://download.falco.org/packages/deb` (apt) or `.../rpm` (rpm). */
    repoUrl?: string;
    /** The repository's signing key (ASCII armored). Default `https://falco.org/repo/falcosecurity-packages.asc`. */
    keyUrl?: string;
    /**
     * The key's full 40-hex-digit fingerprint; converge refuses a key that does not match. Default
     * `478B2FBBC75F4237B731DA4365106822B35B1B1F` (Falco's key since the Dec 2025 rotation).
     */
    keyFingerprint?: string;
    /** `package-file` only: absolute path of the staged .deb or .rpm on the host. */
    packageFile?: string;
    /** `package-file` only: the package's sha256 (64 hex digits); converge refuses any other file. */
    packageSha256?: string;
    /** `preinstalled` only: the Falco binary to run. Default `/usr/bin/falco`. */
    binaryPath?: string;
    /** Remove the Falco package on uninstall (apt/rpm/package-file). Default false: only our unit and files go. */
    purgeOnUninstall?: boolean;
}

export interface FileOutputSettings {
    /** Write alerts as JSON lines to a file. Default true: a local copy survives a network outage. */
    enabled?: boolean;
    /** Alert file; must be below `/var/log/falco`. Default `/var/log/falco/events.json`. */
    path?: string;
    /** Rotate when the file exceeds this many MiB (logrotate). Default 100. */
    rotateSizeMiB?: number;
    /** Rotated files to keep. Default 7. */
    rotateKeep?: number;
}

export interface HttpOutputSettings {
    /** Send alerts to Falcosidekick or a webhook. Default false. */
    enabled?: boolean;
    /**
     * The endpoint, when it carries no credential (e.g. an in-VPC Falcosidekick). A URL with a token must be
     * given as a secret instead (`HostSecrets.httpOutputUrl`), which takes precedence.
     */
    url?: string;
    /** Skip TLS verification. Default false; never turn it on for anything but a lab. */
    insecure?: boolean;
}

export interface ProgramOutputSettings {
    /** Pipe each alert to a program. Default false. */
    enabled?: boolean;
    /** The command line, run by Falco through `sh -c`. Required when enabled. */
    program?: string;
    /** Keep one program running and stream alerts to it. Default true. */
    keepAlive?: boolean;
}

export interface OutputSettings {
    /** Drop alerts below this priority. Default `notice`: the default rules' `debug`/`informational` noise stays local. */
    minimumPriority?: Priority;
    /** Emit alerts as JSON (what Falcosidekick and log pipelines want). Default true. */
    jsonOutput?: boolean;
    /** Alerts to syslog, i.e. the journal. Default true. */
    syslog?: boolean;
    /** Alerts to stdout (also the journal under systemd; duplicates syslog). Default false. */
    stdout?: boolean;
    file?: FileOutputSettings;
    http?: HttpOutputSettings;
    program?: ProgramOutputSettings;
}

export interface HeartbeatSettings {
    /**
     * Emit Falco's periodic metrics event as an alert (`metrics.output_rule`), so a node that goes silent can
     * be alerted on centrally. Default true. One event per event source and interval: with `k8sAudit` on, a
     * second one with `evt.source: k8s_audit` (docs/alerting.md, "The heartbeat").
     */
    enabled?: boolean;
    /** How often, as a Falco duration (`15m`, `1h`, ...). Default `5m`. */
    interval?: string;
}

export interface WebserverSettings {
    /** Serve `/healthz` (used by converge to confirm Falco is up). Always bound to 127.0.0.1. Default true. */
    enabled?: boolean;
    /** Port on 127.0.0.1. Default 8765. */
    port?: number;
}

export interface RuleSettings {
    /** Load the rules the Falco package ships (`/etc/falco/falco_rules.yaml`). Default true. */
    defaultRules?: boolean;
    /** The project's own rule sets. Default `["self-protection"]`. */
    builtin?: BuiltinRuleSet[];
    /** Your rule files: file name (`[a-z0-9_-]`, no extension) -> YAML text. Installed under `/etc/falco/rules.d`. */
    custom?: Record<string, string>;
}

export interface SysctlHardeningSettings {
    /** Apply the sysctl baseline (`/etc/sysctl.d/90-falco-nodes.conf`). Default true. */
    enabled?: boolean;
    /** Per-key overrides of the baseline; `null` drops a key from it. */
    overrides?: Record<string, string | number | null>;
}

export interface SshdHardeningSettings {
    /**
     * Apply the sshd baseline (`/etc/ssh/sshd_config.d/10-falco-nodes.conf`: keys only, strong kex/ciphers/MACs,
     * no forwarding), always checked with `sshd -t` before reload. Default true.
     */
    enabled?: boolean;
    /** Allow root login with a key (`prohibit-password`) instead of `no`. Default false. */
    permitRootLogin?: boolean;
    /** Extra or overriding sshd directives; `null` drops one from the baseline. */
    overrides?: Record<string, string | null>;
}

export interface HardeningSettings {
    sysctl?: SysctlHardeningSettings;
    sshd?: SshdHardeningSettings;
}


export interface K8sAuditPluginVersions {
    /** The `k8saudit` plugin (webhook variant), exact `X.Y.Z`. Default `0.18.0`. */
    k8saudit?: string;
    /** The `k8saudit-eks` plugin (eks variant), exact `X.Y.Z`. Default `0.12.0` (built against k8saudit 0.18.0). */
    k8sauditEks?: string;
    /** The `json` plugin, which the upstream `k8saudit-rules` need for `jevt.*` fields. Default `0.7.3`. */
    json?: string;
    /** The upstream `k8saudit-rules` rule set (released with the plugin, same version). Default `0.18.0`. */
    rules?: string;
}

/**
 * The sha256 digest (`sha256:<64 hex>`) of each artifact's manifest, as the registry serves it for the pinned tag:
 * for a plugin, the image index that lists one manifest per platform (falcoctl pushes plugins that way); for the
 * rule set, its manifest. Read it where you can reach the registry, e.g. `oras resolve
 * ghcr.io/falcosecurity/plugins/plugin/k8saudit:0.18.0` or `crane digest ...`, and set it beside the version: the
 * digest is what is installed (falcoctl drops the tag of a `repo:tag@digest` reference), the version names the
 * directory it lands in, so change both together. No default: falco-nodes cannot reach ghcr.io where it is
 * built and ships no digest it has not seen; each artifact converge installs needs one (the source plugin of the
 * variant, `json`, and `rules` unless `upstreamRules` is false).
 */
export interface K8sAuditPluginDigests {
    /** Digest of `plugin/k8saudit:<pluginVersions.k8saudit>` (webhook variant). */
    k8saudit?: string;
    /** Digest of `plugin/k8saudit-eks:<pluginVersions.k8sauditEks>` (eks variant). */
    k8sauditEks?: string;
    /** Digest of `plugin/json:<pluginVersions.json>`. */
    json?: string;
    /** Digest of `ruleset/k8saudit:<pluginVersions.rules>` (with `upstreamRules`). */
    rules?: string;
}

export interface K8sAuditTlsSettings {
    /**
     * PEM file on the host holding the listener's certificate chain AND its private key, concatenated (the
     * k8saudit plugin reads both from this one file). Setting it switches the webhook to HTTPS. Default none:
     * plain HTTP, acceptable only on a trusted network segment, since the audit stream then crosses it in clear.
     * falco-nodes never handles the key (it stays out of Pulumi state): provision the file yourself, root-owned,
     * mode 0600; converge refuses a missing or group/world-readable file. Watched by the self-protection rules.
     */
    certificatePath?: string;
}

export interface K8sAuditEksSettings {
    /** The EKS cluster's name (its audit log is CloudWatch log group `/aws/eks/<name>/cluster`). Required. */
    clusterName?: string;
    /** The cluster's AWS region, e.g. `eu-west-1`. Required: the plugin does not guess it. */
    region?: string;
    /** Seconds between two CloudWatch polls. Default 10: alerts lag the API call by up to this much. */
    pollingIntervalSeconds?: number;
    /**
     * How far back (seconds) the first poll after a start reads. Default 60, so a restart of Falco misses less;
     * events in that window may be reported again.
     */
    shiftSeconds?: number;
}

export interface K8sAuditSettings {
    /**
     * Watch the cluster's control plane from this host: Kubernetes audit events through Falco's `k8saudit`
     * plugin (or `k8saudit-eks`), with our rules against tampering with the in-cluster Falco. Default false.
     * Turn it on for ONE host per cluster: every audit event is delivered once, to one listener.
     */
    enabled?: boolean;
    /** `webhook` (the API server posts to us) or `eks` (we poll CloudWatch). Default `webhook`. */
    variant?: K8sAuditVariant;
    /** Exact versions of the plugins and rule set converge installs with falcoctl. */
    pluginVersions?: K8sAuditPluginVersions;
    /** The digest each of those versions must have (required for every artifact installed, see the type). */
    pluginDigests?: K8sAuditPluginDigests;
    /**
     * OCI repository prefix the artifacts are pulled from: `<registry>/plugin/<name>:<version>` and
     * `<registry>/ruleset/k8saudit:<version>`, always by digest (`pluginDigests`). Default
     * `ghcr.io/falcosecurity/plugins`: converge then names each artifact by its falcosecurity index name and digest
     * (`k8saudit@sha256:...`), so falcoctl resolves it through falcosecurity's index and verifies its cosign
     * signature; the host needs ghcr.io, falcosecurity.github.io (the index) and Sigstore's TUF repository
     * (tuf-repo-cdn.sigstore.dev). Point it at a mirror on hosts without internet access: falcoctl then uses no
     * index (`indexes: []`) and needs only the mirror, and verifies no signature (the index holds them), so the
     * artifacts are exactly the pinned digests, from wherever the mirror got them.
     */
    registry?: string;
    /**
     * Webhook variant: the address the listener binds (an IPv4 or IPv6 address of this host). Default all
     * addresses, with the firewall (`allowedSources`) deciding who may connect; set it to the interface the API
     * servers reach to keep the port off the others.
     */
    listenAddress?: string;
    /** Webhook variant: TCP port of the listener. Default 9765 (upstream's). */
    port?: number;
    /** Webhook variant: HTTPS for the listener. Default: plain HTTP. */
    tls?: K8sAuditTlsSettings;
    /**
     * Webhook variant: CIDRs of the API servers, the only sources allowed to reach the listener (nftables on the
     * host; the security group on AWS nodes). Required: the plugin authenticates nobody, so anyone who reaches the
     * port can inject fake audit events or flood Falco. A `/0` is refused.
     */
    allowedSources?: string[];
    /**
     * Webhook variant: enforce `allowedSources` with an nftables table of our own (`inet falco_nodes`), loaded by
     * converge and at boot by `falco-nodes-firewall.service`. Default true; converge fails if `nft` is missing.
     * Set false only when another firewall you control enforces the same allowlist.
     */
    firewall?: boolean;
    /** Load the upstream `k8saudit-rules` (privileged pods, RBAC grants, exec, ...). Default true. */
    upstreamRules?: boolean;
    /**
     * Load our rules against tampering with the in-cluster Falco through the API (its DaemonSet, ConfigMaps,
     * Secrets, RBAC, namespace and admission policy). Default true.
     */
    tamperRules?: boolean;
    /** Namespace of the in-cluster Falco the tamper rules watch (FalcoCluster's `namespace`). Default `falco`. */
    falcoNamespace?: string;
    /**
     * Helm release name of the in-cluster Falco (FalcoCluster's `releaseName`): it names the RBAC objects and the
     * protection policy the tamper rules watch. Default `falco`.
     */
    falcoReleaseName?: string;
    /**
     * Kubernetes user names whose changes to Falco's objects are expected (the deployer, e.g. the CI identity
     * running `pulumi up`): not alerted on. Default none. Keep in line with FalcoCluster's `protection.exemptUsers`.
     */
    trustedUsers?: string[];
    /** The eks variant's cluster and polling. */
    eks?: K8sAuditEksSettings;
}

/** Everything about one Falco host. Every field is optional; the defaults are what we would run. */
export interface HostSettings {
    /** Exact Falco version (`X.Y.Z`). Default `0.44.1`. */
    falcoVersion?: string;
    /** Capture driver. Default `modern_ebpf`. */
    driver?: Driver;
    /** How to live with `kernel.perf_event_paranoid` > 2 (see `PerfEventParanoid`). Default `auto`. */
    perfEventParanoid?: PerfEventParanoid;
    install?: InstallSettings;
    outputs?: OutputSettings;
    heartbeat?: HeartbeatSettings;
    webserver?: WebserverSettings;
    rules?: RuleSettings;
    /**
     * Extra top-level `falco.yaml` keys, merged over ours (validated against Falco's schema in tests). Keys we
     * own for safety (`webserver.listen_address`, outputs) are rejected here: use the typed settings.
     */
    extraConfig?: Record<string, unknown>;
    hardening?: HardeningSettings;
    /** Kubernetes audit events on this host (see `K8sAuditSettings`). Default off. */
    k8sAudit?: K8sAuditSettings;
}

/** Values that must never reach state, logs or command lines in plain text. */
export interface HostSecrets {
    /** HTTP output URL with a token (Falcosidekick, Slack-style webhook). Overrides `outputs.http.url`. */
    httpOutputUrl?: string;
}

type DeepRequired<T> = T extends (infer U)[]
    ? U[]
    : T extends object
      ? { [K in keyof T]-?: DeepRequired<NonNullable<T[K]>> }
      : T;

/** `k8sAudit` with every default filled in. `eks` is set for the eks variant only. */
export interface ResolvedK8sAuditSettings {
    enabled: boolean;
    variant: K8sAuditVariant;
    pluginVersions: Required<K8sAuditPluginVersions>;
    /** Only the digests given: validation has required the ones converge installs. */
    pluginDigests: K8sAuditPluginDigests;
    registry: string;
    /** "" means all addresses. */
    listenAddress: string;
    port: number;
    tls: { certificatePath?: string };
    allowedSources: string[];
    firewall: boolean;
    upstreamRules: boolean;
    tamperRules: boolean;
    falcoNamespace: string;
    falcoReleaseName: string;
    trustedUsers: string[];
    eks?: Required<K8sAuditEksSettings>;
}

/** Settings with every default filled in: what the renderers take. */
export interface ResolvedHostSettings {
    falcoVersion: string;
    driver: Driver;
    perfEventParanoid: PerfEventParanoid;
    install: Required<Omit<InstallSettings, "packageFile" | "packageSha256">> & {
        packageFile?: string;
        packageSha256?: string;
    };
    outputs: {
        minimumPriority: Priority;
        jsonOutput: boolean;
        syslog: boolean;
        stdout: boolean;
        file: DeepRequired<FileOutputSettings>;
        http: { enabled: boolean; url?: string; insecure: boolean };
        program: { enabled: boolean; program?: string; keepAlive: boolean };
    };
    heartbeat: DeepRequired<HeartbeatSettings>;
    webserver: DeepRequired<WebserverSettings>;
    rules: { defaultRules: boolean; builtin: BuiltinRuleSet[]; custom: Record<string, string> };
    extraConfig: Record<string, unknown>;
    hardening: {
        sysctl: { enabled: boolean; overrides: Record<string, string | number | null> };
        sshd: { enabled: boolean; permitRootLogin: boolean; overrides: Record<string, string | null> };
    };
    k8sAudit: ResolvedK8sAuditSettings;
}

export const DEFAULT_FALCO_VERSION = "0.44.1";
export const FALCO_APT_REPO = "https://download.falco.org/packages/deb";
export const FALCO_RPM_REPO = "https://download.falco.org/packages/rpm";
export const FALCO_KEY_URL = "https://falco.org/repo/falcosecurity-packages.asc";
export const FALCO_KEY_FINGERPRINT = "478B2FBBC75F4237B731DA4365106822B35B1B1F";
export const DEFAULT_K8SAUDIT_PLUGIN_VERSIONS: Required<K8sAuditPluginVersions> = {
    // k8saudit 0.18.0 and k8saudit-eks 0.12.0 were released together (falcosecurity/plugins #1401, #1402) and
    // use plugin-sdk-go 0.8.3, as the 0.16 series the falco 0.44/0.45 charts pin does: the same plugin API.
    k8saudit: "0.18.0",
    k8sauditEks: "0.12.0",
    json: "0.7.3",
    rules: "0.18.0",
};
export const DEFAULT_K8SAUDIT_REGISTRY = "ghcr.io/falcosecurity/plugins";
/** Each artifact's repository below the registry (falcosecurity/plugins' layout, which a mirror keeps). */
export const K8SAUDIT_ARTIFACT_REPOS: Record<keyof K8sAuditPluginVersions, string> = {
    k8saudit: "plugin/k8saudit",
    k8sauditEks: "plugin/k8saudit-eks",
    json: "plugin/json",
    rules: "ruleset/k8saudit",
};
export const DEFAULT_K8SAUDIT_PORT = 9765;


/** Bad host settings: `key` is the dotted path of the offending setting, the message says how to fix it. */
export class HostSettingsError extends Error {
    constructor(
        readonly problems: { key: string; message: string }[],
        prefix = "",
    ) {
        super(
            problems
                .map((p) => `invalid host setting ${prefix}${p.key || "(root)"}: ${p.message}`)
                .join("\n"),
        );
        this.name = "HostSettingsError";
    }
}

// --- validation ------------------------------------------------------------------------------------------
// Strings that end up in files, unit directives or script parameters are held to allowlists here, so no
// renderer ever has to quote a hostile value: what passes cannot break out of YAML, a unit or a shell word.

const SAFE_URL = /^https?:\/\/[A-Za-z0-9.-]+(:[0-9]{1,5})?(\/[A-Za-z0-9._~%\/-]*)?$/;
const safeUrl = (what: string) =>
    z.string().regex(SAFE_URL, {
        message: `${what} must be a plain http(s) URL (letters, digits, . _ ~ % / - only; no query, quotes, spaces or $)`,
    });
const absPath = (what: string, under?: string) =>
    z
        .string()
        .regex(/^\/[A-Za-z0-9._\/-]+$/, {
            message: `${what} must be an absolute path of letters, digits, . _ / - (no spaces, quotes or $)`,
        })
        .refine((p) => !p.split("/").includes(".."), { message: `${what} must not contain '..'` })
        .refine((p) => !under || p.startsWith(under + "/"), { message: `${what} must be below ${under}/` });

const duration = z.string().regex(/^[0-9]+(ms|s|m|h|d|w|y)$/, {
    message: "must be a Falco duration such as 30s, 5m or 1h",
});
const enumOf = <T extends readonly [string, ...string[]]>(values: T) =>
    z.enum(values, { message: `must be one of: ${values.join(", ")}` });
const objValues = <T extends Record<string, string>>(o: T) =>
    Object.values(o) as [T[keyof T], ...T[keyof T][]];

/** An IPv4 or IPv6 CIDR (`10.0.0.0/24`, `2001:db8::/64`), address checked by Node's parser. */
export function isCidr(v: string): boolean {
    const m = /^([0-9a-fA-F:.]+)\/([0-9]{1,3})$/.exec(v);
    if (!m) return false;
    const bits = Number(m[2]);
    return (isIPv4(m[1]) && bits <= 32) || (isIPv6(m[1]) && bits <= 128);
}
/** An IPv6 address or CIDR (what needs `[...]` in a URL and `ip6` in nftables). */
export function isIpv6(v: string): boolean {
    return v.includes(":");
}
const semver = z.string().regex(/^[0-9]+\.[0-9]+\.[0-9]+$/, { message: "must be an exact version X.Y.Z (no ranges, no 'latest')" });
/** An OCI content digest as falcoctl pins it: sha256 only, lowercase hex (opencontainers/go-digest, `Parse`). */
export const OCI_SHA256_DIGEST = /^sha256:[0-9a-f]{64}$/;
const ociDigest = z.string().regex(OCI_SHA256_DIGEST, {
    message: "must be an OCI manifest digest sha256:<64 lowercase hex digits>, as `oras resolve <ref>` prints it",
});
const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
/** Kubernetes user names as they appear in audit events (`system:serviceaccount:ns:name`, `alice@example.com`). */
const K8S_USER = /^[A-Za-z0-9@:._\/+-]{1,253}$/;
const RULE_FILE_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const SYSCTL_KEY = /^[a-z0-9_]+(\.[a-z0-9_*-]+)+$/;
// Values are words separated by single spaces: no leading/trailing space, which would render as an empty or
// ambiguous value.
const SYSCTL_VALUE = /^(?=.{1,128}$)[A-Za-z0-9_.:,-]+( [A-Za-z0-9_.:,-]+)*$/;
const SSHD_KEY = /^[A-Za-z][A-Za-z0-9]{1,39}$/;
const SSHD_VALUE = /^(?=.{1,256}$)[A-Za-z0-9@._,:*\/+-]+( [A-Za-z0-9@._,:*\/+-]+)*$/;
/** Top-level falco.yaml keys falco-nodes owns; `extraConfig` may not set them (the renderers re-check). */
export const RESERVED_EXTRA_KEYS: readonly string[] = [
    "webserver", "http_output", "program_output", "file_output", "syslog_output", "stdout_output",
    "rules_files", "config_files", "engine", "load_plugins", "watch_config_files",
];

const schema = z
    .object({
        falcoVersion: z.string().regex(/^[0-9]+\.[0-9]+\.[0-9]+$/, {
            message: "must be an exact version X.Y.Z, e.g. 0.44.1 (ranges and 'latest' are not allowed)",
        }),
        driver: enumOf(objValues(Driver)),
        perfEventParanoid: enumOf(objValues(PerfEventParanoid)),
        install: z
            .object({
                source: enumOf(objValues(InstallSource)),
                repoUrl: safeUrl("repoUrl"),
                keyUrl: safeUrl("keyUrl"),
                keyFingerprint: z
                    .string()
                    .transform((s) => s.replace(/\s+/g, "").toUpperCase())
                    .pipe(z.string().regex(/^[0-9A-F]{40}$/, { message: "must be a full 40-hex-digit key fingerprint" })),
                packageFile: absPath("packageFile").refine((p) => /\.(deb|rpm)$/.test(p), {
                    message: "packageFile must end in .deb or .rpm",
                }),
                packageSha256: z.string().regex(/^[0-9a-fA-F]{64}$/, { message: "must be a sha256 of 64 hex digits" }),
                binaryPath: absPath("binaryPath"),
                purgeOnUninstall: z.boolean(),
            })
            .partial()
            .strict(),
        outputs: z
            .object({
                minimumPriority: enumOf(PRIORITIES),
                jsonOutput: z.boolean(),
                syslog: z.boolean(),
                stdout: z.boolean(),
                file: z
                    .object({
                        enabled: z.boolean(),
                        path: absPath("file path", "/var/log/falco"),
                        rotateSizeMiB: z.number().int().min(1).max(100_000),
                        rotateKeep: z.number().int().min(1).max(1000),
                    })
                    .partial()
                    .strict(),
                http: z
                    .object({ enabled: z.boolean(), url: safeUrl("url"), insecure: z.boolean() })
                    .partial()
                    .strict(),
                program: z
                    .object({
                        enabled: z.boolean(),
                        program: z.string().min(1).max(4096).regex(/^[^\n\r\0]*$/, {
                            message: "must be one line (no newlines or NUL)",
                        }),
                        keepAlive: z.boolean(),
                    })
                    .partial()
                    .strict(),
            })
            .partial()
            .strict(),
        heartbeat: z.object({ enabled: z.boolean(), interval: duration }).partial().strict(),
        webserver: z
            .object({ enabled: z.boolean(), port: z.number().int().min(1).max(65535) })
            .partial()
            .strict(),
        rules: z
            .object({
                defaultRules: z.boolean(),
                builtin: z.array(enumOf(objValues(BuiltinRuleSet))),
                custom: z.record(z.string(), z.string({ message: "must be the rule file's YAML text" })),
            })
            .partial()
            .strict(),
        k8sAudit: z
            .object({
                enabled: z.boolean(),
                variant: enumOf(objValues(K8sAuditVariant)),
                pluginVersions: z
                    .object({ k8saudit: semver, k8sauditEks: semver, json: semver, rules: semver })
                    .partial()
                    .strict(),
                pluginDigests: z
                    .object({ k8saudit: ociDigest, k8sauditEks: ociDigest, json: ociDigest, rules: ociDigest })
                    .partial()
                    .strict(),
                registry: z.string().regex(/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?(\/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)*$/, {
                    message: "must be an OCI repository prefix such as ghcr.io/falcosecurity/plugins (lowercase, no scheme, no tag)",
                }),
                listenAddress: z.string().refine((v) => v === "" || isIPv4(v) || (isIPv6(v) && /^[0-9a-fA-F:.]+$/.test(v)), {
                    message: "must be an IPv4 or IPv6 address of this host (no brackets, no port), or empty for all addresses",
                }),
                port: z.number().int().min(1024, { message: "must be 1024-65535 (Falco has no CAP_NET_BIND_SERVICE)" }).max(65535),
                tls: z.object({ certificatePath: absPath("certificatePath") }).partial().strict(),
                allowedSources: z.array(
                    z.string().refine(isCidr, { message: "must be an IPv4 or IPv6 CIDR such as 10.0.0.10/32 or 2001:db8::/64" }),
                ),
                firewall: z.boolean(),
                upstreamRules: z.boolean(),
                tamperRules: z.boolean(),
                falcoNamespace: z.string().regex(DNS_LABEL, { message: "must be a DNS label (lowercase letters, digits, -; max 63)" }),
                falcoReleaseName: z.string().regex(/^[a-z0-9]([a-z0-9-]{0,28}[a-z0-9])?$/, {
                    message: "must be a Helm release name (lowercase letters, digits, -; max 30)",
                }),
                trustedUsers: z.array(z.string().regex(K8S_USER, { message: "must be a Kubernetes user name (letters, digits, @ : . _ / + -)" })),
                eks: z
                    .object({
                        clusterName: z.string().regex(/^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$/, {
                            message: "must be an EKS cluster name (letters, digits, - and _; max 100)",
                        }),
                        region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-[0-9]+$/, { message: "must be an AWS region such as eu-west-1" }),
                        pollingIntervalSeconds: z.number().int().min(1).max(3600),
                        shiftSeconds: z.number().int().min(1).max(86400),
                    })
                    .partial()
                    .strict(),
            })
            .partial()
            .strict(),
        extraConfig: z.record(z.string(), z.unknown()),
        hardening: z
            .object({
                sysctl: z
                    .object({
                        enabled: z.boolean(),
                        overrides: z.record(
                            z.string(),
                            z.union([z.string(), z.number().int(), z.null()], { message: "must be a string, an integer or null" }),
                        ),
                    })
                    .partial()
                    .strict(),
                sshd: z
                    .object({
                        enabled: z.boolean(),
                        permitRootLogin: z.boolean(),
                        overrides: z.record(
                            z.string(),
                            z.union([z.string(), z.null()], { message: "must be a string or null" }),
                        ),
                    })
                    .partial()
                    .strict(),
            })
            .partial()
            .strict(),
    })
    .partial()
    .strict();

/**
 * Validate user settings and fill in every default. Throws `HostSettingsError` listing every problem,
 * each with its key and the fix. `keyPrefix` is prepended to keys in messages (e.g. `falco:nodes[2].`).
 */
export function resolveHostSettings(input: HostSettings = {}, keyPrefix = ""): ResolvedHostSettings {
    const parsed = schema.safeParse(input);
    if (!parsed.success) throw new HostSettingsError(zodProblems(parsed.error.issues, UNKNOWN_HOST_SETTING), keyPrefix);
    const s = parsed.data;
    const problems: { key: string; message: string }[] = [];

    const source = s.install?.source ?? InstallSource.Apt;
    const install: ResolvedHostSettings["install"] = {
        source,
        repoUrl: s.install?.repoUrl ?? (source === InstallSource.Rpm ? FALCO_RPM_REPO : FALCO_APT_REPO),
        keyUrl: s.install?.keyUrl ?? FALCO_KEY_URL,
        keyFingerprint: s.install?.keyFingerprint ?? FALCO_KEY_FINGERPRINT,
        packageFile: s.install?.packageFile,
        packageSha256: s.install?.packageSha256?.toLowerCase(),
        binaryPath: s.install?.binaryPath ?? "/usr/bin/falco",
        purgeOnUninstall: s.install?.purgeOnUninstall ?? false,
    };
    if (source === InstallSource.PackageFile) {
        if (!install.packageFile)
            problems.push({ key: "install.packageFile", message: "required with source package-file: the absolute path of the staged .deb/.rpm" });
        if (!install.packageSha256)
            problems.push({ key: "install.packageSha256", message: "required with source package-file: run sha256sum on the package" });
    } else if (install.packageFile || install.packageSha256) {
        problems.push({ key: "install.packageFile", message: `only used with source package-file (source is ${source}); remove it or set install.source: package-file` });
    }
    if (source !== InstallSource.Preinstalled && s.install?.binaryPath && s.install.binaryPath !== "/usr/bin/falco") {
        problems.push({ key: "install.binaryPath", message: "only used with source preinstalled; packages install /usr/bin/falco" });
    }

    const http = {
        enabled: s.outputs?.http?.enabled ?? false,
        url: s.outputs?.http?.url,
        insecure: s.outputs?.http?.insecure ?? false,
    };
    const program = {
        enabled: s.outputs?.program?.enabled ?? false,
        program: s.outputs?.program?.program,
        keepAlive: s.outputs?.program?.keepAlive ?? true,
    };
    if (program.enabled && !program.program)
        problems.push({ key: "outputs.program.program", message: "required when outputs.program.enabled is true: the command to pipe alerts to" });

    // Keys are checked on the raw input: zod's parsed records silently drop a `__proto__` key, which must be
    // reported, not ignored.
    const raw = input as HostSettings;
    const keyChecks: [Record<string, unknown> | undefined, string, RegExp, string, RegExp?, string?][] = [
        [raw.rules?.custom, "rules.custom", RULE_FILE_NAME, "rule file names must match [a-z0-9][a-z0-9_-]* (no extension, no path)"],
        [raw.hardening?.sysctl?.overrides, "hardening.sysctl.overrides", SYSCTL_KEY, "sysctl keys look like net.ipv4.ip_forward",
            SYSCTL_VALUE, "sysctl values are integers or short plain words (letters, digits, . _ : , -) separated by single spaces, or null to drop the key"],
        [raw.hardening?.sshd?.overrides, "hardening.sshd.overrides", SSHD_KEY, "sshd directive names are a letter then letters or digits, e.g. MaxAuthTries or X11Forwarding",
            SSHD_VALUE, "sshd values are one line of words of letters, digits and @ . _ , : * / + - separated by single spaces (no quotes, $, #), or null to drop the directive"],
    ];
    for (const [record, where, keyPattern, keyMessage, valuePattern, valueMessage] of keyChecks)
        for (const [k, v] of Object.entries(record ?? {})) {
            if (!keyPattern.test(k)) problems.push({ key: `${where}.${JSON.stringify(k)}`, message: keyMessage });
            else if (valuePattern && typeof v === "string" && !valuePattern.test(v))
                problems.push({ key: `${where}.${k}`, message: valueMessage! });
        }
    // Overrides that would change how the rest of sshd's config parses, or fight a typed setting.
    for (const k of Object.keys(s.hardening?.sshd?.overrides ?? {}))
        if (/^(match|include)$/i.test(k))
            problems.push({ key: `hardening.sshd.overrides.${k}`, message: "Match and Include cannot be overrides: every directive after them (ours and the main sshd_config's) would fall under them; put them in your own sshd_config" });
    if (Object.keys(s.hardening?.sysctl?.overrides ?? {}).includes("kernel.perf_event_paranoid"))
        problems.push({ key: "hardening.sysctl.overrides.kernel.perf_event_paranoid", message: "is managed by perfEventParanoid (auto, lower-to-2 or grant-sys-admin); set that instead" });

    const custom = s.rules?.custom ?? {};
    for (const [name, text] of Object.entries(custom)) {
        if (!RULE_FILE_NAME.test(name)) continue;
        const key = `rules.custom.${name}`;
        let doc: unknown;
        try {
            const parsedDoc = YAML.parseDocument(text, { uniqueKeys: true });
            if (parsedDoc.errors.length) throw parsedDoc.errors[0];
            doc = parsedDoc.toJS();
        } catch (e) {
            problems.push({ key, message: `is not valid YAML (${(e as Error).message.split("\n")[0]}); fix the rule file` });
            continue;
        }
        if (!Array.isArray(doc) || doc.some((item) => typeof item !== "object" || item === null || Array.isArray(item)))
            problems.push({ key, message: "must be a YAML list of rule, macro and list items (- rule: ..., - macro: ..., - list: ...)" });
    }
    const builtin = s.rules?.builtin ?? [BuiltinRuleSet.SelfProtection];
    if (new Set(builtin).size !== builtin.length) problems.push({ key: "rules.builtin", message: "lists a rule set twice" });

    const extraConfig = s.extraConfig ?? {};
    for (const k of Object.keys(extraConfig)) {
        if (RESERVED_EXTRA_KEYS.includes(k))
            problems.push({ key: `extraConfig.${k}`, message: `is managed by falco-nodes; use the typed settings (outputs, webserver, rules, driver) instead` });
    }
    if (s.perfEventParanoid && s.driver === Driver.Kmod)
        problems.push({ key: "perfEventParanoid", message: "only applies to the modern_ebpf driver; remove it or set driver: modern_ebpf/auto" });

    const k8sAudit = resolveK8sAudit(s.k8sAudit ?? {}, problems);
    problems.push(...crossKeyProblems(raw, s, k8sAudit));

    if (problems.length) throw new HostSettingsError(problems, keyPrefix);

    return {
        falcoVersion: s.falcoVersion ?? DEFAULT_FALCO_VERSION,
        driver: s.driver ?? Driver.ModernEbpf,
        perfEventParanoid: s.perfEventParanoid ?? PerfEventParanoid.Auto,
        install,
        outputs: {
            minimumPriority: s.outputs?.minimumPriority ?? "notice",
            jsonOutput: s.outputs?.jsonOutput ?? true,
            syslog: s.outputs?.syslog ?? true,
            stdout: s.outputs?.stdout ?? false,
            file: {
                enabled: s.outputs?.file?.enabled ?? true,
                path: s.outputs?.file?.path ?? "/var/log/falco/events.json",
                rotateSizeMiB: s.outputs?.file?.rotateSizeMiB ?? 100,
                rotateKeep: s.outputs?.file?.rotateKeep ?? 7,
            },
            http,
            program,
        },
        heartbeat: { enabled: s.heartbeat?.enabled ?? true, interval: s.heartbeat?.interval ?? "5m" },
        webserver: { enabled: s.webserver?.enabled ?? true, port: s.webserver?.port ?? 8765 },
        rules: { defaultRules: s.rules?.defaultRules ?? true, builtin, custom },
        extraConfig,
        hardening: {
            sysctl: { enabled: s.hardening?.sysctl?.enabled ?? true, overrides: s.hardening?.sysctl?.overrides ?? {} },
            sshd: {
                enabled: s.hardening?.sshd?.enabled ?? true,
                permitRootLogin: s.hardening?.sshd?.permitRootLogin ?? false,
                overrides: s.hardening?.sshd?.overrides ?? {},
            },
        },
        k8sAudit,
    };
}

/** Object keys JavaScript gives a meaning to: a config holding one would be merged wrongly, or dropped unseen. */
const PROTOTYPE_KEYS = new Set(["__proto__", "constructor", "prototype"]);

/** The dotted paths of every such key in `value` (JSON-parsed input has `__proto__` as an own key). */
function prototypeKeyPaths(value: unknown, at: string): string[] {
    if (typeof value !== "object" || value === null) return [];
    const out: string[] = [];
    for (const k of Object.keys(value)) {
        if (PROTOTYPE_KEYS.has(k)) out.push(`${at}.${k}`);
        else out.push(...prototypeKeyPaths((value as Record<string, unknown>)[k], `${at}.${k}`));
    }
    return out;
}

/**
 * Falco's config loader rewrites `$${...}` to `${...}` (yaml_helper `pre_process_env_vars`, as described at
 * falcoConfig.ts's escapeFalcoEnvRefs), so such a value cannot reach Falco literally. The same scan as
 * escapeFalcoEnvRefs: `${` and `$${` are looked at, any other `$` ends the scan.
 */
function hasUnpassableEnvRef(value: string): boolean {
    for (let i = value.indexOf("$"); i >= 0; i = value.indexOf("$", i + 1)) {
        const rest = value.slice(i);
        if (!rest.includes("}")) return false;
        if (rest.startsWith("$${")) return true;
        if (!rest.startsWith("${")) return false;
    }
    return false;
}

/**
 * Problems that need several keys at once, or the raw input: each one would otherwise throw a bare Error while
 * rendering (a stack trace instead of the key), or pass and break the host.
 */
function crossKeyProblems(
    raw: HostSettings,
    s: HostSettings,
    k8sAudit: ResolvedK8sAuditSettings,
): { key: string; message: string }[] {
    const problems: { key: string; message: string }[] = [];
    for (const key of prototypeKeyPaths(raw.extraConfig, "extraConfig"))
        problems.push({ key, message: "is not allowed as a key (JavaScript gives it a meaning: it would be merged wrongly or dropped); remove it" });
    const rules = s.rules ?? {};
    if (rules.defaultRules === false && (rules.builtin ?? ["x"]).length === 0 && Object.keys(rules.custom ?? {}).length === 0 && !(k8sAudit.enabled && k8sAudit.upstreamRules))
        problems.push({ key: "rules", message: "no rules to load: defaultRules is false and builtin and custom are empty, so Falco would watch nothing; enable one of them" });
    const program = s.outputs?.program?.program;
    if (typeof program === "string" && hasUnpassableEnvRef(program))
        problems.push({ key: "outputs.program.program", message: 'contains "$${...}", which Falco\'s config loader rewrites to "${...}" and cannot pass on literally; write it another way (e.g. "$ {" or a variable without braces)' });
    const webserverOn = s.webserver?.enabled ?? true;
    const port = s.webserver?.port ?? 8765;
    if (webserverOn && port < 1024)
        problems.push({ key: "webserver.port", message: `${port} is a privileged port, which the hardened unit cannot bind (no CAP_NET_BIND_SERVICE): use a port from 1024 up, e.g. 8765` });
    if (webserverOn && k8sAudit.enabled && k8sAudit.variant === K8sAuditVariant.Webhook && k8sAudit.port === port)
        problems.push({ key: "webserver.port", message: `${port} is also k8sAudit.port: two listeners cannot share a port; give one of them another` });
    const filePath = s.outputs?.file?.path;
    if ((s.outputs?.file?.enabled ?? true) && typeof filePath === "string" && /^\/var\/log\/falco\/.*\//.test(filePath))
        problems.push({ key: "outputs.file.path", message: `${filePath} is in a directory below /var/log/falco that nothing creates (the unit's LogsDirectory= creates /var/log/falco only, and Falco creates no directory): put the file directly in /var/log/falco, e.g. /var/log/falco/events.json` });
    const modules = s.hardening?.sysctl?.overrides?.["kernel.modules_disabled"];
    if ((s.hardening?.sysctl?.enabled ?? true) && modules !== undefined && modules !== null && String(modules) !== "0" && (s.driver ?? Driver.ModernEbpf) !== Driver.ModernEbpf)
        problems.push({ key: "hardening.sysctl.overrides.kernel.modules_disabled", message: `with driver ${s.driver}, Falco may need to load its kernel module, which kernel.modules_disabled: ${modules} forbids until reboot: set driver: modern_ebpf, or drop the override` });
    return problems;
}

/** `k8sAudit` with its defaults, pushing problems that span keys (variant-specific requirements) to `problems`. */
function resolveK8sAudit(k: K8sAuditSettings, problems: { key: string; message: string }[]): ResolvedK8sAuditSettings {
    const enabled = k.enabled ?? false;
    const variant = k.variant ?? K8sAuditVariant.Webhook;
    const allowedSources = k.allowedSources ?? [];
    const key = (sub: string) => `k8sAudit.${sub}`;
    if (enabled && variant === K8sAuditVariant.Webhook) {
        if (allowedSources.length === 0)
            problems.push({
                key: key("allowedSources"),
                message: "required with the webhook variant: list the API servers' addresses (e.g. 10.0.0.10/32); the listener authenticates nobody",
            });
        for (const c of allowedSources)
            if (/\/0+$/.test(c))
                problems.push({ key: key("allowedSources"), message: `${c} admits every address: list the API servers' addresses instead` });
        if (k.eks !== undefined) problems.push({ key: key("eks"), message: "only used with variant: eks; remove it or set k8sAudit.variant: eks" });
    }
    let eks: Required<K8sAuditEksSettings> | undefined;
    if (variant === K8sAuditVariant.Eks) {
        for (const [sub, given] of [["listenAddress", k.listenAddress], ["port", k.port], ["tls", k.tls], ["allowedSources", k.allowedSources], ["firewall", k.firewall]] as const)
            if (given !== undefined)
                problems.push({ key: key(sub), message: "only used with the webhook variant (the eks variant polls CloudWatch and listens on nothing); remove it" });
        if (enabled && !k.eks?.clusterName) problems.push({ key: key("eks.clusterName"), message: "required with variant: eks: the EKS cluster's name" });
        if (enabled && !k.eks?.region) problems.push({ key: key("eks.region"), message: "required with variant: eks: the cluster's AWS region, e.g. eu-west-1" });
        eks = {
            clusterName: k.eks?.clusterName ?? "",
            region: k.eks?.region ?? "",
            pollingIntervalSeconds: k.eks?.pollingIntervalSeconds ?? 10,
            shiftSeconds: k.eks?.shiftSeconds ?? 60,
        };
    }
    if (enabled && k.upstreamRules === false && k.tamperRules === false)
        problems.push({ key: key("tamperRules"), message: "with upstreamRules also false no rule would read the audit events; enable one of them" });
    if (enabled) {
        const versions = { ...DEFAULT_K8SAUDIT_PLUGIN_VERSIONS, ...k.pluginVersions };
        const needed: (keyof K8sAuditPluginDigests)[] = [
            variant === K8sAuditVariant.Eks ? "k8sauditEks" : "k8saudit",
            "json",
            ...(k.upstreamRules === false ? [] : (["rules"] as const)),
        ];
        for (const name of needed)
            if (k.pluginDigests?.[name] === undefined)
                problems.push({
                    key: key(`pluginDigests.${name}`),
                    message:
                        `required: the sha256 digest of ${K8SAUDIT_ARTIFACT_REPOS[name]}:${versions[name]}, which converge pins ` +
                        `(read it with \`oras resolve ${k.registry ?? DEFAULT_K8SAUDIT_REGISTRY}/${K8SAUDIT_ARTIFACT_REPOS[name]}:${versions[name]}\` ` +
                        "where the registry is reachable, and set it as sha256:<64 hex>)",
                });
    }
    return {
        enabled,
        variant,
        pluginVersions: { ...DEFAULT_K8SAUDIT_PLUGIN_VERSIONS, ...k.pluginVersions },
        pluginDigests: { ...k.pluginDigests },
        registry: k.registry ?? DEFAULT_K8SAUDIT_REGISTRY,
        listenAddress: k.listenAddress ?? "",
        port: k.port ?? DEFAULT_K8SAUDIT_PORT,
        tls: { certificatePath: k.tls?.certificatePath },
        allowedSources,
        firewall: k.firewall ?? true,
        upstreamRules: k.upstreamRules ?? true,
        tamperRules: k.tamperRules ?? true,
        falcoNamespace: k.falcoNamespace ?? "falco",
        falcoReleaseName: k.falcoReleaseName ?? "falco",
        trustedUsers: k.trustedUsers ?? [],
        eks,
    };
}

/**
 * The http output needs a URL from somewhere: plain settings or the secret. Checked where both are known
 * (the bundle), since the secret may only be known as "present" at preview time.
 */
export function httpOutputNeedsUrl(s: ResolvedHostSettings, hasSecretUrl: boolean): string | undefined {
    if (s.outputs.http.enabled && !s.outputs.http.url && !hasSecretUrl)
        return "outputs.http.enabled is true but no URL is set: set outputs.http.url, or the secret httpOutputUrl for a URL with a token";
    return undefined;
}
