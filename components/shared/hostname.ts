/**
 * The hostname a node's Falco reports: one function, used by the host unit (which sets it as `FALCO_HOSTNAME`)
 * and by the central alert rules (which match it as Falcosidekick's `hostname` label), so the two cannot disagree.
 *
 * Falco puts in every output, alerts and the heartbeat alike, the value of the `FALCO_HOSTNAME` environment
 * variable when it is set, else the kernel hostname (`gethostname`): falcosecurity/falco
 * `userspace/falco/app/actions/init_outputs.cpp` (`init_outputs`, the 0.44 line: read at commit 1048614315b9,
 * which no longer has the `FALCO_GRPC_HOSTNAME` fallback that went with gRPC in 0.44.0), passed to
 * `falco_outputs` as `m_hostname` and written as the JSON `hostname` of rule alerts and of internal events such as
 * "Falco internal: metrics snapshot" (`userspace/falco/falco_outputs.cpp`, `handle_event`, `handle_msg`). The
 * `evt.hostname` field follows the same variable: falcosecurity/libs `userspace/libscap/linux/scap_linux_platform.c`
 * (`scap_gethostname`), built by Falco with `SCAP_HOSTNAME_ENV_VAR "FALCO_HOSTNAME"` (falcosecurity/falco
 * `cmake/modules/falcosecurity-libs.cmake`).
 * Falcosidekick labels its event counter with that field. An AWS node's kernel hostname (`ip-10-0-1-23...`) is
 * not known before launch; the name the stack declares is, so our unit sets it.
 *
 * Pure: no Pulumi, no I/O.
 */

/** Who a host is, as its outputs say: the one per-node input of a host's bundle besides its settings. */
export interface NodeIdentity {
    /** What Falco reports as `hostname` (`FALCO_HOSTNAME` in the unit). */
    hostname: string;
}

/**
 * A DNS-like name: dot-separated labels of letters, digits and inner hyphens (RFC 1123), at most 253 characters;
 * inner underscores too, since Pulumi resource names (the default) often have them and nothing downstream minds
 * (Falco copies the variable as it is, Falcosidekick uses it as a label value). A plain Prometheus label value
 * and a word systemd reads back unchanged.
 */
const LABEL = "[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?";
export const HOSTNAME_PATTERN = new RegExp(`^(?=.{1,253}$)${LABEL}(?:\\.${LABEL})*$`);

/** Why `value` cannot be a reported hostname, or undefined when it can. */
export function hostnameProblem(value: unknown): string | undefined {
    if (typeof value !== "string") return "must be a string: the hostname this node's Falco reports";
    if (HOSTNAME_PATTERN.test(value)) return undefined;
    return (
        `${JSON.stringify(value)} is not a hostname: use letters, digits and inner hyphens or underscores, in dot-separated labels ` +
        "of at most 63 characters (253 in all)"
    );
}

/**
 * The hostname the node's Falco reports: the node's explicit `hostname` when it has one, else its name (the
 * stack's `nodes[].name`, or the FalcoHost / AwsFalcoNode resource name). Not validated here: see
 * `hostnameProblem`, which every caller applies before anything is declared.
 */
export function falcoHostname(nodeName: string, hostname?: string): string {
    return hostname ?? nodeName;
}
