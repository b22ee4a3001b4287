/**
 * The bundle: everything one host receives, rendered from its settings. Pure and deterministic: the same
 * settings (and secrets) give byte-identical files, scripts and hashes.
 *
 * Files carry a group that tells the converge script what a change means (validate with `falco --dry-run` and
 * restart, daemon-reload, `sysctl -p`, `sshd -t` and reload, nothing). The install script is the static
 * `scripts/converge.sh` with the bundle appended as data (see installScript.ts); the same script uninstalls.
 *
 * Two hashes: `hash` covers everything that is not secret (secret-bearing files are hashed as rendered without
 * their secrets) and may be shown anywhere: stack outputs, command strings, the converge script's report.
 * `secretsHash` covers only the secret-bearing contents (for a program that wants to see a secret change as a
 * secret value of its own; FalcoHost needs none: the secret stdin itself changes).
 */
import { createHash } from "crypto";
import { canaryPath, canaryToken, renderRuleFiles } from "../rules";
import type { NodeIdentity } from "../shared/hostname";
import { renderFalcoConfig, renderSecretsConfig } from "./falcoConfig";
import { renderSshdConfig, renderSysctlConf } from "./hardening";
import { assembleScript, CONVERGE_SCRIPT } from "./installScript";
import { firewallEnabled, k8sAuditArtifacts, renderFirewallRules, renderFirewallUnit } from "./k8sAudit";
import { renderLogrotate } from "./logrotate";
import {
    ARTIFACTS_DIR,
    FALCO_CONFIG_DIR,
    FALCO_MAIN_CONFIG,
    FALCO_RULES_D,
    FALCO_SECRETS_CONFIG,
    FIREWALL_RULES_PATH,
    FIREWALL_TABLE,
    FIREWALL_UNIT_NAME,
    FIREWALL_UNIT_PATH,
    LOGROTATE_PATH,
    PACKAGE_UNITS,
    SSHD_DROPIN_PATH,
    SYSCTL_PATH,
    UNIT_DROPIN_DIR,
    UNIT_NAME,
    UNIT_PATH,
} from "./paths";
import { HostSecrets, HostSettingsError, httpOutputNeedsUrl, ResolvedHostSettings } from "./settings";
import { deterministicTarGzSplit, TarEntry } from "./tar";
import {
    CANARY_TIMER_NAME,
    CANARY_TIMER_PATH,
    CANARY_UNIT_PATH,
    PERF_EVENT_PARANOID_DROPIN_PATH,
    renderCanaryService,
    renderCanaryTimer,
    renderPerfEventParanoidDropIn,
    renderUnit,
} from "./unit";

/** What a change to a file means on the host. */
export const FileGroup = {
    /** Falco's config, config.d drop-ins and rules.d: validated with `falco --dry-run`; a change restarts Falco. */
    Falco: "falco",
    /** Our unit: daemon-reload and restart. */
    Unit: "unit",
    /** The modern_ebpf unit, when the driver is `auto`: installed at UNIT_PATH if the kernel supports it. */
    UnitModernEbpf: "unit-modern_ebpf",
    /** The kmod unit, when the driver is `auto`: installed at UNIT_PATH otherwise. */
    UnitKmod: "unit-kmod",
    /** `CAP_SYS_ADMIN` for modern_ebpf: installed only when perf_event_paranoid requires it (decided on the host). */
    UnitDropinPerf: "unit-dropin-perf",
    /** sysctl baseline: applied with `sysctl -p`. */
    Sysctl: "sysctl",
    /** sshd drop-in: checked with `sshd -t` before it is moved in; sshd is reloaded, never restarted. */
    Sshd: "sshd",
    /** logrotate config: nothing to apply. */
    Logrotate: "logrotate",
    /** The k8saudit webhook's nftables allowlist: checked with `nft -c`, loaded with `nft -f` before Falco restarts. */
    Firewall: "firewall",
    /** The oneshot unit loading that allowlist at boot: daemon-reload and enable. */
    FirewallUnit: "firewall-unit",
    /** The detection canary's service and timer: daemon-reload and enable the timer. */
    Canary: "canary",
} as const;
export type FileGroup = (typeof FileGroup)[keyof typeof FileGroup];

export type FileMode = "0600" | "0640" | "0644";

export interface BundleFile {
    /** Absolute path on the host. Unique, except the two unit variants of `driver: auto` (both at UNIT_PATH). */
    path: string;
    /** Mode on the host; the owner is always root:root. */
    mode: FileMode;
    group: FileGroup;
    content: string;
    /** May carry a secret (the HTTP output drop-in): excluded from `hash`, covered by `secretsHash`. */
    secret: boolean;
}

export interface Bundle {
    /** Sorted by path, then group. */
    files: BundleFile[];
    /** The script's parameters (what it needs besides the files), each a value settings.ts allowlisted. */
    params: Record<string, string>;
    /** sha256 (hex) of everything non-secret: files (secret-bearing ones as rendered without secrets), params, script. */
    hash: string;
    /** sha256 (hex) of the secret-bearing files as rendered with `secrets`; undefined without secrets. */
    secretsHash?: string;
    /**
     * The self-contained host script, run as root: `bash -s [-- converge|uninstall] < script`. Holds the secrets
     * when rendered with them: treat it as a secret.
     */
    installScript: string;
    /** The same script with the bundle rendered without secrets, uninstalling when run. Not secret. */
    uninstallScript: string;
    /** Our systemd unit's name. */
    unitName: string;
}

/** The payload layout version; the script refuses any other. */
export const BUNDLE_FORMAT = "1";

const MODE_FALCO: FileMode = "0640";
const MODE_SECRET: FileMode = "0600";
const MODE_PUBLIC: FileMode = "0644";

/** Anything a param may contain: letters, digits and `. _ : / @ % ~ + -`, lines separated by `\n`. */
const PARAM_VALUE = /^[A-Za-z0-9._:\/@%~+-]*(\n[A-Za-z0-9._:\/@%~+-]+)*$/;

function sha256(text: string | Buffer): string {
    return createHash("sha256").update(text).digest("hex");
}

/** What the script needs besides the files. Every value was allowlisted by settings.ts; checked again here. */
export function bundleParams(s: ResolvedHostSettings): Record<string, string> {
    const params: Record<string, string> = {
        format: BUNDLE_FORMAT,
        falco_version: s.falcoVersion,
        driver: s.driver,
        perf_event_paranoid: s.perfEventParanoid,
        install_source: s.install.source,
        repo_url: s.install.repoUrl,
        key_url: s.install.keyUrl,
        key_fingerprint: s.install.keyFingerprint,
        package_file: s.install.packageFile ?? "",
        package_sha256: s.install.packageSha256 ?? "",
        binary_path: s.install.binaryPath,
        purge_on_uninstall: String(s.install.purgeOnUninstall),
        webserver_enabled: String(s.webserver.enabled),
        webserver_port: String(s.webserver.port),
        unit_name: UNIT_NAME,
        unit_path: UNIT_PATH,
        unit_dropin_dir: UNIT_DROPIN_DIR,
        falco_config_dir: FALCO_CONFIG_DIR,
        falco_main_config: FALCO_MAIN_CONFIG,
        package_units: PACKAGE_UNITS.join("\n"),
        // k8sAudit: what converge pulls with falcoctl (parallel lines: directory/file below artifacts_dir, and the
        // pinned OCI reference), the TLS certificate it checks, and the firewall it manages.
        artifacts_dir: ARTIFACTS_DIR,
        k8saudit_artifact_files: k8sAuditArtifacts(s).map((a) => `${a.dir}/${a.file}`).join("\n"),
        k8saudit_artifact_refs: k8sAuditArtifacts(s).map((a) => a.ref).join("\n"),
        k8saudit_tls_certificate: (s.k8sAudit.enabled && s.k8sAudit.tls.certificatePath) || "",
        firewall_table: FIREWALL_TABLE,
        firewall_unit_name: FIREWALL_UNIT_NAME,
        // The detection canary (rules/canary.ts): what converge opens, and where it looks for the alert.
        canary_path: canaryPath(s),
        canary_token: canaryToken(s),
        canary_journal: String(s.outputs.stdout || s.outputs.syslog),
        canary_timer: CANARY_TIMER_NAME,
        canary_file: s.outputs.file.enabled && PARAM_VALUE.test(s.outputs.file.path) ? s.outputs.file.path : "",
    };
    for (const [name, value] of Object.entries(params))
        if (!PARAM_VALUE.test(value)) throw new Error(`bundle parameter ${name} has characters outside its allowlist`);
    return params;
}

type RenderedFile = BundleFile & { hashContent: string };

function plainFile(path: string, mode: FileMode, group: FileGroup, content: string): RenderedFile {
    return { path, mode, group, content, secret: false, hashContent: content };
}

/**
 * The files that depend on the settings alone (no secret, no node identity): the same for every node of a fleet
 * that shares settings, and the bulk of a render (rules, falco.yaml), so they are rendered once per settings
 * content. Only non-secret text is kept.
 */
const MAX_SETTINGS_RENDERS = 32;
const settingsFilesByContent = new Map<string, readonly RenderedFile[]>();
function settingsFiles(s: ResolvedHostSettings): readonly RenderedFile[] {
    const key = JSON.stringify(s);
    const known = settingsFilesByContent.get(key);
    if (known) return known;
    const files: RenderedFile[] = [];
    const add = (path: string, mode: FileMode, group: FileGroup, content: string | undefined) => {
        if (content !== undefined) files.push(plainFile(path, mode, group, content));
    };

    const rules = renderRuleFiles(s);
    for (const rule of rules)
        if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(rule.fileName))
            throw new Error(`rule file name ${JSON.stringify(rule.fileName)} is not a plain file name`);
    add(FALCO_MAIN_CONFIG, MODE_FALCO, FileGroup.Falco, renderFalcoConfig(s, rules.map((r) => r.fileName)));
    for (const rule of rules) add(`${FALCO_RULES_D}/${rule.fileName}`, MODE_FALCO, FileGroup.Falco, rule.content);

    // Whether CAP_SYS_ADMIN is needed depends on the host's perf_event_paranoid: the script decides.
    if (s.driver !== "kmod" && s.perfEventParanoid !== "lower-to-2")
        add(PERF_EVENT_PARANOID_DROPIN_PATH, MODE_PUBLIC, FileGroup.UnitDropinPerf, renderPerfEventParanoidDropIn());

    add(SYSCTL_PATH, MODE_PUBLIC, FileGroup.Sysctl, renderSysctlConf(s));
    // sshd reads its config as root; nobody else needs to read which ciphers are allowed.
    add(SSHD_DROPIN_PATH, MODE_SECRET, FileGroup.Sshd, renderSshdConfig(s));
    add(LOGROTATE_PATH, MODE_PUBLIC, FileGroup.Logrotate, renderLogrotate(s));
    add(CANARY_UNIT_PATH, MODE_PUBLIC, FileGroup.Canary, renderCanaryService(s));
    add(CANARY_TIMER_PATH, MODE_PUBLIC, FileGroup.Canary, renderCanaryTimer());
    if (firewallEnabled(s)) {
        add(FIREWALL_RULES_PATH, MODE_FALCO, FileGroup.Firewall, renderFirewallRules(s));
        add(FIREWALL_UNIT_PATH, MODE_PUBLIC, FileGroup.FirewallUnit, renderFirewallUnit());
    }
    if (settingsFilesByContent.size >= MAX_SETTINGS_RENDERS) settingsFilesByContent.clear();
    settingsFilesByContent.set(key, files);
    return files;
}

/** Our unit (both, for `driver: auto`): the one file that carries the node's identity (`FALCO_HOSTNAME`). */
function unitFiles(s: ResolvedHostSettings, node: NodeIdentity | undefined): RenderedFile[] {
    if (s.driver === "auto")
        return [
            plainFile(UNIT_PATH, MODE_PUBLIC, FileGroup.UnitModernEbpf, renderUnit(s, "modern_ebpf", node)),
            plainFile(UNIT_PATH, MODE_PUBLIC, FileGroup.UnitKmod, renderUnit(s, "kmod", node)),
        ];
    return [plainFile(UNIT_PATH, MODE_PUBLIC, FileGroup.Unit, renderUnit(s, s.driver, node))];
}

/** The files, with secret-bearing ones rendered both ways: with `secrets` (content) and without (for the hash). */
function renderFiles(s: ResolvedHostSettings, secrets: HostSecrets | undefined, node: NodeIdentity | undefined): RenderedFile[] {
    const files: RenderedFile[] = [...settingsFiles(s), ...unitFiles(s, node)];
    const withSecrets = renderSecretsConfig(s, secrets);
    if (withSecrets !== undefined)
        files.push({
            path: FALCO_SECRETS_CONFIG,
            mode: MODE_SECRET,
            group: FileGroup.Falco,
            content: withSecrets,
            secret: true,
            // Without secrets: the plain URL or a placeholder, never a secret value, so `hash` cannot reveal one.
            hashContent: renderSecretsConfig(s, undefined) ?? "",
        });

    files.sort((a, b) => (a.path !== b.path ? (a.path < b.path ? -1 : 1) : a.group < b.group ? -1 : a.group > b.group ? 1 : 0));
    for (let i = 1; i < files.length; i++)
        if (files[i].path === files[i - 1].path && !files[i].group.startsWith("unit-"))
            throw new Error(`two bundle files at ${files[i].path}`);
    return files;
}

/** The parameter that differs between hosts sharing settings (with the unit: the bundle hash covers the hostname). */
const OWN_PARAMS = new Set(["bundle_hash"]);

/**
 * The gzip'd tar the script unpacks: params, manifest.tsv and the file contents. What differs between hosts that
 * share settings (our unit with its FALCO_HOSTNAME, the bundle hash) and any secret-bearing file go in a second gzip
 * member, so the rest is compressed once for the fleet (tar.ts `deterministicTarGzSplit`); the archive is the same.
 */
function payload(
    files: { path: string; mode: FileMode; group: FileGroup; content: string; secret: boolean }[],
    params: Record<string, string>,
): Buffer {
    const shared: TarEntry[] = [];
    const own: TarEntry[] = [];
    const manifest: string[] = [];
    files.forEach((f, i) => {
        const name = `files/${String(i).padStart(3, "0")}`;
        const perHost = f.secret || f.group === FileGroup.Unit || f.group === FileGroup.UnitModernEbpf || f.group === FileGroup.UnitKmod;
        (perHost ? own : shared).push({ name, content: f.content });
        manifest.push(`${f.group}\t${f.mode}\t${f.path}\t${name}\n`);
    });
    shared.push({ name: "manifest.tsv", content: manifest.join("") });
    for (const [name, value] of Object.entries(params)) (OWN_PARAMS.has(name) ? own : shared).push({ name: `params/${name}`, content: value });
    return deterministicTarGzSplit(shared, own);
}

/**
 * Render everything `s` puts on a host. `secrets` undefined renders placeholders where a secret is needed
 * (`npm run render`): such a bundle is for review, and converge refuses to install it. `node` is who the host is
 * (the hostname its Falco reports, components/shared/hostname.ts); FalcoHost and `npm run render` always give it.
 */
export function renderBundle(s: ResolvedHostSettings, secrets?: HostSecrets, node?: NodeIdentity): Bundle {
    if (secrets !== undefined) {
        const missing = httpOutputNeedsUrl(s, secrets.httpOutputUrl !== undefined);
        if (missing) throw new HostSettingsError([{ key: "outputs.http.url", message: missing }]);
    }
    const rendered = renderFiles(s, secrets, node);
    const params = bundleParams(s);

    const hash = sha256(
        JSON.stringify({
            format: BUNDLE_FORMAT,
            script: CONVERGE_SCRIPT,
            params: Object.entries(params).sort(([a], [b]) => (a < b ? -1 : 1)),
            files: rendered.map((f) => [f.path, f.mode, f.group, f.secret, f.hashContent]),
        }),
    );
    const secretFiles = rendered.filter((f) => f.secret);
    const secretsHash =
        secrets !== undefined && secretFiles.length
            ? sha256(JSON.stringify(secretFiles.map((f) => [f.path, f.content])))
            : undefined;

    const scriptParams = { ...params, bundle_hash: hash };
    const files: BundleFile[] = rendered.map(({ hashContent: _, ...f }) => f);
    const installPayload = payload(files, scriptParams);
    // The uninstall script carries no secret; without secret files that is the install payload itself (one
    // gzip less per render, which every node of a fleet pays now that each unit carries its own hostname).
    const uninstallPayload = secretFiles.length ? payload(rendered.map((f) => ({ ...f, content: f.hashContent })), scriptParams) : installPayload;
    return {
        files,
        params,
        hash,
        secretsHash,
        installScript: assembleScript(installPayload, "converge"),
        uninstallScript: assembleScript(uninstallPayload, "uninstall"),
        unitName: UNIT_NAME,
    };
}
