/**
 * Where everything falco-nodes puts on a host lives. One table, so the renderers, the converge and uninstall
 * scripts, the self-protection rules (which watch these paths) and the tests agree.
 */

/** Our systemd unit. Not `falco.service`: the packages use that name as an alias of their own units, which we mask. */
export const UNIT_NAME = "falco-nodes.service";
export const UNIT_PATH = `/etc/systemd/system/${UNIT_NAME}`;
/** Drop-ins the converge script may add to our unit (e.g. `CAP_SYS_ADMIN` when perf_event_paranoid > 2). */
export const UNIT_DROPIN_DIR = `/etc/systemd/system/${UNIT_NAME}.d`;

/** Units the Falco packages ship; masked so only ours runs. */
export const PACKAGE_UNITS = [
    "falco-modern-bpf.service",
    "falco-kmod.service",
    "falco-kmod-inject.service",
    "falco-bpf.service",
    "falco-custom.service",
    "falcoctl-artifact-follow.service",
] as const;

export const FALCO_CONFIG_DIR = "/etc/falco";
export const FALCO_MAIN_CONFIG = "/etc/falco/falco.yaml";
/** Drop-in directory Falco loads after the main file (`config_files`). The package puts its container plugin here. */
export const FALCO_CONFIG_D = "/etc/falco/config.d";
/** Secret-bearing config (HTTP output URL with a token): its own file, mode 0600, never in falco.yaml. */
export const FALCO_SECRETS_CONFIG = "/etc/falco/config.d/90-falco-nodes-secrets.yaml";
/** The rules the package ships. */
export const FALCO_DEFAULT_RULES = "/etc/falco/falco_rules.yaml";
/** Our rule files (built-in sets and the user's). */
export const FALCO_RULES_D = "/etc/falco/rules.d";
export const FALCO_BINARY = "/usr/bin/falco";
export const FALCO_LOG_DIR = "/var/log/falco";

export const SYSCTL_PATH = "/etc/sysctl.d/90-falco-nodes.conf";
/**
 * Named to sort before the distributions' sshd drop-ins: sshd keeps the first value it reads for a directive, so
 * a file read earlier (cloud-init's 50-cloud-init.conf with `PasswordAuthentication yes`, Red Hat's
 * 50-redhat.conf with `X11Forwarding yes`) would otherwise override our hardening. After the AWS user data's
 * 05-falco-nodes-hostkey.conf, which pins the host key.
 */
export const SSHD_DROPIN_PATH = "/etc/ssh/sshd_config.d/10-falco-nodes.conf";
export const LOGROTATE_PATH = "/etc/logrotate.d/falco-nodes";

/** The converge script's state: the manifest of files it manages, the last good set, the bundle hash. */
export const STATE_DIR = "/var/lib/falco-nodes";

/** Marks a secret the bundle was rendered without (`npm run render`): converge refuses to install it. */
export const SECRET_PLACEHOLDER_PREFIX = "@@falco-nodes-secret:";

/**
 * Plugins and rule sets converge installs with falcoctl (k8sAudit), one directory per artifact and pinned version
 * (`k8saudit-0.18.0/libk8saudit.so`). Versioned directories make an upgrade safe to stage: the new files sit beside
 * the ones Falco runs until the new falco.yaml that names them has passed `falco --dry-run`. Below STATE_DIR: not
 * owned by any package (a Falco package that ships its own plugins cannot collide), root-only, read-only to Falco
 * under ProtectSystem=strict, and watched by the self-protection rules like the rest of our state.
 */
export const ARTIFACTS_DIR = `${STATE_DIR}/artifacts`;

/** The nftables ruleset that lets only the API servers reach the k8saudit webhook (table `inet falco_nodes`). */
export const FIREWALL_RULES_PATH = "/etc/falco-nodes/k8s-audit.nft";
/** The nftables table falco-nodes owns; nothing else of the host's firewall is touched. */
export const FIREWALL_TABLE = "falco_nodes";
/** Oneshot unit that loads the firewall ruleset at boot, before the network comes up and before Falco listens. */
export const FIREWALL_UNIT_NAME = "falco-nodes-firewall.service";
export const FIREWALL_UNIT_PATH = `/etc/systemd/system/${FIREWALL_UNIT_NAME}`;

/**
 * The systemctl arguments of logrotate's postrotate (components/host/logrotate.ts): SIGUSR1 to Falco's main process,
 * which makes it reopen its output file. The self-protection rules except exactly this command line (and nothing
 * else that `systemctl kill` can do), so a rotation is not reported as tampering.
 */
export const REOPEN_SYSTEMCTL_ARGS = ["kill", "--kill-who=main", "--signal=USR1", UNIT_NAME] as const;
