/**
 * Renders Falco's configuration for one host: the main `/etc/falco/falco.yaml` and, when the HTTP output is on,
 * the secret-bearing drop-in `/etc/falco/config.d/90-falco-nodes-secrets.yaml` (mode 0600, written by converge).
 *
 * Pure: settings in, YAML text out, built as objects and serialised by the `yaml` library (never by string
 * concatenation). Every key emitted here exists in Falco's own config schema (checked by the tests against
 * the upstream `config.schema.json`; the schema is not shipped, so production code relies on the typed
 * settings plus the reserved-key check instead).
 */
import * as path from "path";
import * as YAML from "yaml";
import { CUSTOM_RULE_FILE_PREFIX } from "../rules";
import { k8sAuditPlugins, k8sAuditUpstreamRulesPath } from "./k8sAudit";
import { FALCO_CONFIG_D, FALCO_DEFAULT_RULES, FALCO_RULES_D, SECRET_PLACEHOLDER_PREFIX } from "./paths";
import { HostSecrets, RESERVED_EXTRA_KEYS, ResolvedHostSettings, httpOutputNeedsUrl } from "./settings";

/** A parsed Falco config document (the top-level map of falco.yaml or of a config.d drop-in). */
export type FalcoConfig = Record<string, unknown>;

/**
 * Falco's embedded webserver only ever listens on loopback: it serves `/healthz` for converge's health check,
 * and nothing off-host has any business with it (it has no authentication).
 */
export const WEBSERVER_LISTEN_ADDRESS = "127.0.0.1";

/**
 * Bound on Falco's output queue. Upstream's default 0 means unbounded, and our unit runs Falco with
 * `OOMScoreAdjust=-1000`: a stalled output (say an unreachable HTTP endpoint) would grow Falco until the kernel
 * OOM-kills *other* processes. Bounded, Falco drops alerts instead and counts them in the heartbeat
 * (`falco.outputs_queue_num_drops`), which is visible centrally.
 */
export const OUTPUTS_QUEUE_CAPACITY = 100_000;

/** Names of our files in `/etc/falco/rules.d`: `NN-name.yaml`, so lexical order is load order. */
export const RULE_FILE_NAME_PATTERN = /^[0-9]{2}-[a-z0-9][a-z0-9_-]*\.yaml$/;

/** The placeholder written instead of the HTTP URL when the bundle is rendered without secrets. */
export const HTTP_URL_PLACEHOLDER = `${SECRET_PLACEHOLDER_PREFIX}httpOutputUrl@@`;

const MAIN_HEADER = [
    " Managed by falco-nodes: converge overwrites this file. Change the stack's host settings instead.",
    " engine.kind is deliberately absent: the unit passes `-o engine.kind=<driver>` on ExecStart, so a driver",
    " chosen on the host (driver: auto) needs no re-render of this file.",
    " The HTTP output lives in config.d/90-falco-nodes-secrets.yaml (mode 0600): its URL may carry a token.",
].join("\n");

const SECRETS_HEADER = [
    " Managed by falco-nodes: converge writes this file with mode 0600 because the URL may carry a token.",
    " Falco merges it over falco.yaml (config_files, `append` strategy): http_output is absent there.",
].join("\n");

const YAML_OPTIONS: YAML.ToStringOptions = { lineWidth: 0, minContentWidth: 0 };

/**
 * Make `value` survive Falco's config loader unchanged. Falco rewrites every scalar of every config file
 * (yaml_helper `pre_process_env_vars`): `${NAME}` becomes the environment variable's value (or nothing), and
 * `$${` becomes `${`; the scan stops at the first `$` followed by anything else. So a program line such as
 * `curl -H "X: ${TOKEN}"` would be expanded by Falco at load time rather than by `sh` at run time. This doubles
 * the `$` of every `${` Falco would expand, so Falco hands the exact string on (and `sh -c` still expands
 * `${VAR}` from Falco's environment when the program runs, as the user expects). The one thing the loader can
 * never produce is a literal `$${...}` while its scan is live; such values are rejected, naming `key`.
 */
export function escapeFalcoEnvRefs(value: string, key: string): string {
    let out = "";
    let i = 0;
    for (;;) {
        const dollar = value.indexOf("$", i);
        if (dollar < 0) return out + value.slice(i);
        const rest = value.slice(dollar);
        const closes = rest.includes("}");
        if (rest.startsWith("${")) {
            // Falco would expand this reference; with no `}` anywhere after it, Falco stops scanning instead.
            if (!closes) return out + value.slice(i);
            out += value.slice(i, dollar) + "$$";
            i = dollar + 1; // continue at "{", exactly where Falco continues after un-escaping "$${"
        } else if (rest.startsWith("$${") && closes) {
            throw new Error(
                `${key} contains "$\${...}", which Falco's config loader would rewrite to "\${...}" and cannot ` +
                    `pass on literally; write it another way (e.g. "$ {" or a variable without braces)`,
            );
        } else {
            // Any other "$" ends Falco's scan: the rest of the string is taken literally.
            return out + value.slice(i);
        }
    }
}

/** A one-line string that may go to a config scalar (no NUL, CR or LF: Falco and `sh -c` treat those badly). */
function oneLine(value: string, key: string): string {
    if (/[\0\r\n]/.test(value)) throw new Error(`${key} must be a single line (no newline or NUL characters)`);
    return value;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
    return typeof v === "object" && v !== null && !Array.isArray(v);
}

const FORBIDDEN_KEYS = new Set(["__proto__", "constructor", "prototype"]);

/**
 * `over` merged onto `base`: maps merge key by key, anything else (scalars, lists) replaces. This is how
 * `extraConfig` applies. Neither input is modified.
 */
export function mergeConfig(base: FalcoConfig, over: Record<string, unknown>, where = "extraConfig"): FalcoConfig {
    const out: FalcoConfig = { ...base };
    for (const [k, v] of Object.entries(over)) {
        if (FORBIDDEN_KEYS.has(k)) throw new Error(`${where}.${k} is not allowed as a key`);
        const current = out[k];
        out[k] = isPlainObject(current) && isPlainObject(v) ? mergeConfig(current, v, `${where}.${k}`) : v;
    }
    return out;
}

function rulesFiles(s: ResolvedHostSettings, ruleFileNames: string[]): string[] {
    const seen = new Set<string>();
    for (const name of ruleFileNames) {
        if (!RULE_FILE_NAME_PATTERN.test(name))
            throw new Error(`rule file name ${JSON.stringify(name)} must look like NN-name.yaml (lowercase, no path)`);
        if (seen.has(name)) throw new Error(`rule file name ${name} is listed twice`);
        seen.add(name);
    }
    // Our files are listed one by one rather than as the directory: a stray file dropped into rules.d (by
    // hand, by falcoctl, by an intruder) is not loaded, and the list is in name order whatever the caller did.
    const sorted = [...ruleFileNames].sort().map((n) => `${FALCO_RULES_D}/${n}`);
    const isCustom = (f: string) => path.posix.basename(f).startsWith(CUSTOM_RULE_FILE_PREFIX);
    // Load order matters with `rule_matching: first` (below): Falco reports only the first rule, in load order,
    // whose condition matches an event (falcosecurity/falco userspace/engine/evttype_index_ruleset.cpp,
    // `evttype_index_ruleset::run`: it returns at the first match unless matching is `all`). Upstream's rules match
    // broadly ("Disallowed K8s User" matches every request by a user outside its list, "Attach/Exec Pod" every
    // exec), so loaded first they would replace our Critical tamper alerts by their Warning and Notice. Hence our
    // built-in files first, then the package's and the k8saudit plugin's rules, then the user's files (last, so
    // they can append to and override both). The cost, stated: an event one of our rules reports is not also
    // reported by an upstream rule it matches. `rule_matching: all` would report both, at the price of
    // evaluating every rule for every event instead of stopping at the first match.
    const k8sAuditRules = k8sAuditUpstreamRulesPath(s);
    const files = [
        ...sorted.filter((f) => !isCustom(f)),
        ...(s.rules.defaultRules ? [FALCO_DEFAULT_RULES] : []),
        ...(k8sAuditRules ? [k8sAuditRules] : []),
        ...sorted.filter(isCustom),
    ];
    if (files.length === 0)
        throw new Error(
            "no rules to load: rules.defaultRules is false and there are no rules.builtin or rules.custom files; " +
                "Falco would watch nothing. Enable one of them.",
        );
    return files;
}

/** The main config as an object (what `renderFalcoConfig` serialises). */
export function buildFalcoConfig(s: ResolvedHostSettings, ruleFileNames: string[]): FalcoConfig {
    const o = s.outputs;
    const k8sAudit = k8sAuditPlugins(s);
    const managed: FalcoConfig = {
        // The package's container-plugin drop-in lives here and the default rules need that plugin.
        config_files: [FALCO_CONFIG_D],
        // Converge is the only writer and restarts Falco itself (SIGHUP reload is unreliable on 0.42-0.44).
        watch_config_files: false,
        rules_files: rulesFiles(s, ruleFileNames),
        // Empty on purpose: config.d/falco.container_plugin.yaml appends `container` (listing it here too would
        // register the plugin twice and Falco would refuse to start). Its definition must live here.
        // With k8sAudit: its source plugin and json, which that drop-in's `container` is appended to.
        load_plugins: k8sAudit.load,
        plugins: [
            {
                name: "container",
                library_path: "libcontainer.so",
                init_config: { label_max_len: 100, with_size: false },
            },
            ...k8sAudit.entries,
        ],
        plugins_hostinfo: true,
        time_format_iso_8601: true,
        priority: o.minimumPriority,
        json_output: o.jsonOutput,
        json_include_output_property: true,
        json_include_message_property: false,
        json_include_output_fields_property: true,
        json_include_tags_property: true,
        // Unbuffered: an alert reaches the file/program as soon as it fires, not when a buffer fills.
        buffered_outputs: false,
        rule_matching: "first",
        outputs_queue: { capacity: OUTPUTS_QUEUE_CAPACITY },
        append_output: [{ suggested_output: true }],
        stdout_output: { enabled: o.stdout },
        syslog_output: { enabled: o.syslog },
        file_output: {
            enabled: o.file.enabled,
            // Keep the file open; logrotate's copytruncate (or SIGUSR1) handles rotation.
            keep_alive: true,
            filename: escapeFalcoEnvRefs(oneLine(o.file.path, "outputs.file.path"), "outputs.file.path"),
        },
        program_output: {
            enabled: o.program.enabled,
            keep_alive: o.program.keepAlive,
            // Falco requires the key even when the output is off.
            program: o.program.program
                ? escapeFalcoEnvRefs(oneLine(o.program.program, "outputs.program.program"), "outputs.program.program")
                : "",
        },
        webserver: {
            enabled: s.webserver.enabled,
            // One thread is plenty for a health endpoint; 0 would start one per core.
            threadiness: 1,
            listen_port: s.webserver.port,
            listen_address: WEBSERVER_LISTEN_ADDRESS,
            k8s_healthz_endpoint: "/healthz",
            prometheus_metrics_enabled: false,
            ssl_enabled: false,
        },
        // Falco's own log (not the alerts) goes to the journal once, through stderr. With both on every line is in
        // the journal twice. stderr is the one kept: systemd hands the unit a stream to journald when it starts, so
        // every line is filed under the unit, even the last one of a Falco that exits at once (a fatal start error,
        // which converge's failure report shows from `journalctl -u`). A /dev/log datagram from a process that has
        // exited before journald reads its /proc entry is not attributed to the unit (systemd/systemd#2913, open).
        // The cost: stream lines carry the unit's default priority (info), not Falco's log level.
        log_stderr: true,
        log_syslog: false,
        log_level: "info",
        output_timeout: 2000,
        syscall_event_drops: {
            threshold: 0.1,
            actions: ["log", "alert"],
            rate: 0.03333,
            max_burst: 1,
            simulate_drops: false,
        },
        // The heartbeat: "Falco internal: metrics snapshot" through the normal outputs every interval, so a node
        // that goes quiet can be alerted on centrally. Emitted at priority informational through
        // falco_outputs::handle_msg, which (unlike rule loading) does not apply `priority`; upstream's comment
        // asking for `priority: info` predates that path. Verify on a host when changing Falco versions.
        metrics: {
            enabled: s.heartbeat.enabled,
            interval: s.heartbeat.interval,
            output_rule: true,
            output_file: "",
            rules_counters_enabled: true,
            resource_utilization_enabled: true,
            state_counters_enabled: true,
            kernel_event_counters_enabled: true,
            kernel_event_counters_per_cpu_enabled: false,
            // Needs kernel.bpf_stats_enabled, which costs every BPF program some overhead; off.
            libbpf_stats_enabled: false,
            plugins_metrics_enabled: true,
            kernel_iter_event_counters_enabled: true,
            jemalloc_stats_enabled: false,
            convert_memory_to_mb: true,
            include_empty_values: false,
        },
    };

    for (const k of Object.keys(s.extraConfig)) {
        if (RESERVED_EXTRA_KEYS.includes(k))
            throw new Error(`extraConfig.${k} is managed by falco-nodes; use the typed settings instead`);
    }
    const merged = mergeConfig(managed, s.extraConfig);
    // Invariants that no merge may undo (the reserved-key check above already stops extraConfig reaching them).
    (merged.webserver as Record<string, unknown>).listen_address = WEBSERVER_LISTEN_ADDRESS;
    return merged;
}

/** The whole of `/etc/falco/falco.yaml`. `ruleFileNames` are our files in rules.d (`NN-name.yaml`). */
export function renderFalcoConfig(s: ResolvedHostSettings, ruleFileNames: string[]): string {
    const doc = new YAML.Document(buildFalcoConfig(s, ruleFileNames), { aliasDuplicateObjects: false });
    doc.commentBefore = MAIN_HEADER;
    return doc.toString(YAML_OPTIONS);
}

/** An HTTP(S) URL given as a secret: checked for shape without ever echoing it. */
function checkSecretUrl(url: string): string {
    if (typeof url !== "string" || !/^https?:\/\/[^\s\0]+$/.test(url))
        throw new Error("secret httpOutputUrl must be an http(s) URL with no whitespace (value not shown)");
    try {
        return escapeFalcoEnvRefs(url, "secret httpOutputUrl");
    } catch {
        throw new Error('secret httpOutputUrl contains "$${", which Falco cannot load literally (value not shown)');
    }
}

/**
 * The secrets drop-in as an object, or undefined when the HTTP output is off. `secrets` undefined means
 * "rendered without secrets": a URL that must come from a secret becomes `HTTP_URL_PLACEHOLDER`, which
 * converge refuses to install.
 */
export function buildSecretsConfig(s: ResolvedHostSettings, secrets: HostSecrets | undefined): FalcoConfig | undefined {
    const http = s.outputs.http;
    if (!http.enabled) return undefined;
    let url: string;
    if (secrets?.httpOutputUrl !== undefined) url = checkSecretUrl(secrets.httpOutputUrl);
    else if (http.url !== undefined) url = escapeFalcoEnvRefs(http.url, "outputs.http.url");
    else if (secrets === undefined) url = HTTP_URL_PLACEHOLDER;
    else throw new Error(httpOutputNeedsUrl(s, false) ?? "outputs.http is enabled but has no URL");
    return {
        http_output: {
            enabled: true,
            url,
            user_agent: "falcosecurity/falco",
            insecure: http.insecure,
            ca_path: "/etc/ssl/certs",
            mtls: false,
            echo: false,
            compress_uploads: false,
            // Reuse the connection: one TLS handshake rather than one per alert.
            keep_alive: true,
            max_consecutive_timeouts: 5,
        },
    };
}

/**
 * Content of `/etc/falco/config.d/90-falco-nodes-secrets.yaml`, or undefined when the HTTP output is off.
 * Carries the whole `http_output` block, even for a plain URL, so there is exactly one place for it.
 */
export function renderSecretsConfig(s: ResolvedHostSettings, secrets: HostSecrets | undefined): string | undefined {
    const config = buildSecretsConfig(s, secrets);
    if (!config) return undefined;
    const doc = new YAML.Document(config);
    doc.commentBefore = SECRETS_HEADER;
    return doc.toString(YAML_OPTIONS);
}
