/**
 * Kubernetes audit events on a host Falco (`k8sAudit` settings): which artifacts converge installs with falcoctl,
 * the `plugins:` entries falco.yaml gets, and the nftables allowlist that keeps the webhook listener to the API
 * servers. The thesis: the host Falco runs outside the cluster, so it is the right place to watch the cluster's
 * control plane too, including attempts to switch the in-cluster Falco off.
 *
 * Pure: settings in, data and text out. Every value that reaches a file was held to an allowlist by settings.ts
 * (versions, registry, CIDRs, addresses), so nothing here needs quoting.
 */
import { commentLines } from "./comments";
import { ARTIFACTS_DIR, FIREWALL_RULES_PATH, FIREWALL_TABLE, FIREWALL_UNIT_PATH, UNIT_NAME } from "./paths";
import { firewallEnabled } from "../shared/ruleInputs";
import {
    DEFAULT_K8SAUDIT_REGISTRY,
    isIpv6,
    K8SAUDIT_ARTIFACT_REPOS,
    K8sAuditPluginVersions,
    K8sAuditVariant,
    ResolvedHostSettings,
} from "./settings";

export { firewallEnabled };

/** Upstream's webhook path (the API server's webhook kubeconfig points here). */
export const K8SAUDIT_ENDPOINT = "/k8s-audit";
/** Largest single audit event the plugin accepts (upstream default): bigger ones are dropped and logged. */
export const K8SAUDIT_MAX_EVENT_SIZE = 262_144;
/** Largest webhook POST body (upstream default, 12 MiB): the API server batches events. */
export const K8SAUDIT_MAX_BATCH_SIZE = 12_582_912;
/** The rules file inside the `k8saudit-rules` artifact. */
export const K8SAUDIT_RULES_FILE = "k8s_audit_rules.yaml";
/** The nftables set and chain names inside our table. */
export const FIREWALL_SET_V4 = "k8s_audit_sources_v4";
export const FIREWALL_SET_V6 = "k8s_audit_sources_v6";

/** One falcoctl artifact: what to pull, and where its one file we use lands. */
export interface K8sAuditArtifact {
    /** falcoctl's name for it, as falcosecurity's index lists it (`k8saudit`, `k8saudit-eks`, `json`, `k8saudit-rules`). */
    name: string;
    kind: "plugin" | "rulesfile";
    version: string;
    /** The pinned manifest digest, `sha256:<hex>` (k8sAudit.pluginDigests). */
    digest: string;
    /**
     * What converge passes to `falcoctl artifact install`, always pinned by digest. From falcosecurity's registry:
     * the index name, `<name>@<digest>`, which falcoctl resolves through falcosecurity's index to
     * `ghcr.io/falcosecurity/plugins/<repo>@<digest>` and, being an index name, verifies against the index's cosign
     * signature; a fully qualified reference gets no signature from the index (falcosecurity/falcoctl
     * pkg/index/index/index.go, ResolveReference and SignatureForIndexRef: "Returns nil ... if the specified name
     * is a full reference"). Only `name@digest` resolves through the index (parseIndexRef: `name:tag@digest` would
     * look up the entry `name:tag`). From a mirror: `<registry>/<repo>:<version>@<digest>`, which falcoctl pulls by
     * digest, the tag only for the reader (oras-go registry/reference.go ParseReference, "Valid Form B (tag is
     * dropped)"; falcoctl pkg/oci/puller/puller.go Pull: `REGISTRY/REPO[:TAG|@DIGEST]`).
     */
    ref: string;
    /** Directory below ARTIFACTS_DIR, `<name>-<version>`: one per version, so an upgrade is staged beside the old one. */
    dir: string;
    /** The file Falco loads from it. */
    file: string;
    /** Absolute path of that file on the host. */
    path: string;
}

/** The reference falcoctl installs for artifact `name` (see K8sAuditArtifact.ref). */
export function artifactReference(registry: string, name: string, repo: string, version: string, digest: string): string {
    return registry === DEFAULT_K8SAUDIT_REGISTRY ? `${name}@${digest}` : `${registry}/${repo}:${version}@${digest}`;
}

function artifact(s: ResolvedHostSettings, key: keyof K8sAuditPluginVersions, name: string, kind: K8sAuditArtifact["kind"], file: string): K8sAuditArtifact {
    const version = s.k8sAudit.pluginVersions[key];
    const digest = s.k8sAudit.pluginDigests[key];
    // Validation requires the digest of every artifact installed; a resolved setting without one is a bug here.
    if (digest === undefined) throw new Error(`k8sAudit.pluginDigests.${key} is missing after validation`);
    const dir = `${name}-${version}`;
    return {
        name,
        kind,
        version,
        digest,
        ref: artifactReference(s.k8sAudit.registry, name, K8SAUDIT_ARTIFACT_REPOS[key], version, digest),
        dir,
        file,
        path: `${ARTIFACTS_DIR}/${dir}/${file}`,
    };
}

/** The source plugin for the variant: `k8saudit` (webhook) or `k8saudit-eks`. */
export function sourcePluginName(s: ResolvedHostSettings): string {
    return s.k8sAudit.variant === K8sAuditVariant.Eks ? "k8saudit-eks" : "k8saudit";
}

/** What converge installs for `k8sAudit`, in install order; empty when it is off. */
export function k8sAuditArtifacts(s: ResolvedHostSettings): K8sAuditArtifact[] {
    const k = s.k8sAudit;
    if (!k.enabled) return [];
    const source =
        k.variant === K8sAuditVariant.Eks
            ? artifact(s, "k8sauditEks", "k8saudit-eks", "plugin", "libk8saudit-eks.so")
            : artifact(s, "k8saudit", "k8saudit", "plugin", "libk8saudit.so");
    return [
        source,
        artifact(s, "json", "json", "plugin", "libjson.so"),
        ...(k.upstreamRules ? [artifact(s, "rules", "k8saudit-rules", "rulesfile", K8SAUDIT_RULES_FILE)] : []),
    ];
}

/** The upstream rules file to list in `rules_files` (after our built-in files: see falcoConfig.ts `rulesFiles`), or undefined. */
export function k8sAuditUpstreamRulesPath(s: ResolvedHostSettings): string | undefined {
    return k8sAuditArtifacts(s).find((a) => a.kind === "rulesfile")?.path;
}

/** The webhook listener as the plugin's open_params: `http(s)://<address>:<port>/k8s-audit`. */
export function webhookOpenParams(s: ResolvedHostSettings): string {
    const k = s.k8sAudit;
    const scheme = k.tls.certificatePath ? "https" : "http";
    const host = k.listenAddress === "" ? "" : isIpv6(k.listenAddress) ? `[${k.listenAddress}]` : k.listenAddress;
    return `${scheme}://${host}:${k.port}${K8SAUDIT_ENDPOINT}`;
}

/** A `plugins:` entry of falco.yaml (the schema's `Plugin`). */
export interface FalcoPluginEntry {
    name: string;
    library_path: string;
    init_config?: Record<string, unknown> | string;
    open_params?: string;
}

/** The `plugins:` entries and `load_plugins` names for `k8sAudit` (both empty when it is off). */
export function k8sAuditPlugins(s: ResolvedHostSettings): { entries: FalcoPluginEntry[]; load: string[] } {
    const k = s.k8sAudit;
    if (!k.enabled) return { entries: [], load: [] };
    const byName = new Map(k8sAuditArtifacts(s).map((a) => [a.name, a]));
    const source = sourcePluginName(s);
    let sourceEntry: FalcoPluginEntry;
    if (k.variant === K8sAuditVariant.Eks) {
        const eks = k.eks!;
        sourceEntry = {
            name: source,
            library_path: byName.get(source)!.path,
            init_config: {
                region: eks.region,
                polling_interval: eks.pollingIntervalSeconds,
                shift: eks.shiftSeconds,
                buffer_size: 500,
                // Upstream's recommendation for this plugin: extraction stays on Falco's thread.
                use_async: false,
            },
            open_params: eks.clusterName,
        };
    } else {
        sourceEntry = {
            name: source,
            library_path: byName.get(source)!.path,
            init_config: {
                maxEventSize: K8SAUDIT_MAX_EVENT_SIZE,
                webhookMaxBatchSize: K8SAUDIT_MAX_BATCH_SIZE,
                ...(k.tls.certificatePath ? { sslCertificate: k.tls.certificatePath } : {}),
            },
            open_params: webhookOpenParams(s),
        };
    }
    // json: an extractor for `jevt.*`/`json.*` fields, which the upstream rules and our tamper rules' outputs use.
    const json: FalcoPluginEntry = { name: "json", library_path: byName.get("json")!.path };
    return { entries: [sourceEntry, json], load: [source, "json"] };
}

// --- firewall ----------------------------------------------------------------------------------------------


/** `allowedSources` split by family, deduplicated, in a stable order. */
export function allowedSourcesByFamily(s: ResolvedHostSettings): { v4: string[]; v6: string[] } {
    const unique = [...new Set(s.k8sAudit.allowedSources.map((c) => c.toLowerCase()))].sort();
    return { v4: unique.filter((c) => !isIpv6(c)), v6: unique.filter(isIpv6) };
}

/**
 * `/etc/falco-nodes/k8s-audit.nft`: a table of our own that drops every packet to the webhook port unless it
 * comes from `allowedSources`. Loaded atomically (`nft -f`: the whole file is one transaction), and idempotent:
 * the table is declared, deleted and declared again, so loading it twice leaves one copy. It only adds a
 * restriction: an accept here cannot override a drop in the host's own firewall.
 */
export function renderFirewallRules(s: ResolvedHostSettings): string {
    const k = s.k8sAudit;
    const { v4, v6 } = allowedSourcesByFamily(s);
    const set = (name: string, type: string, elements: string[]) => [
        `\tset ${name} {`,
        `\t\ttype ${type}`,
        // interval: CIDRs; auto-merge: overlapping entries (10.0.0.0/24 and 10.0.0.5/32) are not an error.
        "\t\tflags interval",
        "\t\tauto-merge",
        `\t\telements = { ${elements.join(", ")} }`,
        "\t}",
    ];
    const lines = [
        "#!/usr/sbin/nft -f",
        ...commentLines(
            `${FIREWALL_RULES_PATH}: managed by falco-nodes (k8sAudit.allowedSources); converge overwrites it and ` +
                `${FIREWALL_UNIT_PATH} loads it at boot. Only the API servers may reach Falco's k8saudit webhook on ` +
                `tcp/${k.port}: the plugin authenticates nobody, so anyone else could inject audit events or flood Falco.`,
        ),
        `table inet ${FIREWALL_TABLE}`,
        `delete table inet ${FIREWALL_TABLE}`,
        "",
        `table inet ${FIREWALL_TABLE} {`,
        ...(v4.length ? set(FIREWALL_SET_V4, "ipv4_addr", v4) : []),
        ...(v6.length ? set(FIREWALL_SET_V6, "ipv6_addr", v6) : []),
        "\tchain input {",
        // Before the usual filter chains (priority 0): our drop happens whatever they accept.
        "\t\ttype filter hook input priority -10; policy accept;",
        ...(v4.length ? [`\t\ttcp dport ${k.port} ip saddr @${FIREWALL_SET_V4} accept`] : []),
        ...(v6.length ? [`\t\ttcp dport ${k.port} ip6 saddr @${FIREWALL_SET_V6} accept`] : []),
        `\t\ttcp dport ${k.port} counter drop comment "falco-nodes: k8saudit webhook, not an allowed source"`,
        "\t}",
        "}",
    ];
    return lines.join("\n") + "\n";
}

/**
 * `falco-nodes-firewall.service`: loads the allowlist at boot, before the network is up and before Falco opens
 * the listener, so there is no window in which the port is open to everyone.
 */
export function renderFirewallUnit(): string {
    const lines = [
        `# ${FIREWALL_UNIT_PATH}: managed by falco-nodes (k8sAudit); converge overwrites it.`,
        `# Loads ${FIREWALL_RULES_PATH} (nftables table inet ${FIREWALL_TABLE}) at boot.`,
        "",
        "[Unit]",
        "Description=falco-nodes: only the API servers may reach the k8saudit webhook (nftables)",
        "Documentation=https://falco.org/docs/",
        ...commentLines("Early boot: before any interface is configured, and before Falco starts listening."),
        "DefaultDependencies=no",
        "After=local-fs.target",
        `Before=network-pre.target ${UNIT_NAME} shutdown.target`,
        "Wants=network-pre.target",
        "Conflicts=shutdown.target",
        "",
        "[Service]",
        "Type=oneshot",
        "RemainAfterExit=yes",
        `ExecStart=/usr/sbin/nft -f ${FIREWALL_RULES_PATH}`,
        ...commentLines(
            "No ExecStop: stopping this unit must not open the port. Converge removes the table when k8sAudit is " +
                "turned off, and uninstall removes it with everything else.",
        ),
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ];
    return lines.join("\n") + "\n";
}

/**
 * The URL the API server's audit webhook kubeconfig points at: this host as the API server reaches it
 * (`address`: an IP or DNS name), on the listener's port, https when the listener has a certificate.
 */
export function auditWebhookServerUrl(s: ResolvedHostSettings, address: string): string {
    const k = s.k8sAudit;
    const scheme = k.tls.certificatePath ? "https" : "http";
    const host = isIpv6(address) && !address.startsWith("[") ? `[${address}]` : address;
    return `${scheme}://${host}:${k.port}${K8SAUDIT_ENDPOINT}`;
}
