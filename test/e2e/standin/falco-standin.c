/*
 * TEST STAND-IN FOR FALCO. NOT FALCO. It captures no events and detects nothing.
 *
 * The falco-nodes e2e suite installs this as /usr/bin/falco (in a package named `falco`) inside a throwaway VM,
 * and the sandbox tests run it as a preinstalled binary, so that the product's converge script can be exercised
 * end to end (package install and upgrade, config validation before swap-in, unit start and restart, health
 * checks) without the real Falco, which needs a network download and a BPF-capable kernel. It lives under
 * test/e2e/ and must never be referenced from components/.
 *
 * It prints what a real Falco 0.44.1 prints, byte for byte where a real Falco's output does not depend on event
 * capture: test/standin/realFalcoOutputs.test.ts holds it against the outputs captured from a real Falco 0.44.1 in
 * shared/reference/falco/outputs/. Modelled on falcosecurity/falco 0.44.1:
 *   --version            userspace/falco/app/actions/print_version.cpp: after the config is loaded (so
 *                        `json_output: true` in the config makes it JSON), text or versions_info::as_json()
 *   config loading       userspace/falco/app/actions/load_config.cpp + falco_logger: log lines go to stderr only
 *                        when the config says `log_stderr: true` (default false: `-c /dev/null` logs nothing),
 *                        to syslog when `log_syslog: true`, prefixed by the time (ISO 8601 with
 *                        `time_format_iso_8601: true`, else ctime's form)
 *   -V FILE              userspace/falco/app/actions/validate_rules_files.cpp: results always on stdout (JSON
 *                        `falco_load_results` with json_output, else "FILE: Ok" / "FILE: Invalid ..."); failure
 *                        exits 1 with "Error: <summary>" on stderr
 *   --dry-run / daemon   load_rules_files.cpp: "Loading rules from:", each file with its schema result; a failed
 *                        file is fatal ("Error: FILE: Invalid" + the load result, exit 1). Error codes and texts
 *                        from userspace/engine/falco_load_result.cpp
 *   webserver            GET /healthz and /versions with the real responses (outputs/healthz.http, versions.http)
 *   alerts               falco_formats / outputs: one JSON line (hostname, output, output_fields, priority, rule,
 *                        source, tags, time) to the enabled outputs (stdout_output, syslog_output, file_output)
 *   heartbeat            metrics.enabled + metrics.output_rule: the "Falco internal: metrics snapshot" event
 *                        every metrics.interval, with the fields of outputs/alert.metrics_snapshot.json that do not
 *                        need capture (falco.start_ts, falco.version, drop counters at 0, ...)
 * Stand-in behaviour, not Falco's: a rules file is invalid when it contains the marker text STANDIN-INVALID
 * (reported as LOAD_ERR_COMPILE_CONDITION, like an unknown field), cannot be read, is indented with tabs, or is
 * not a YAML list at the top level; no plugin is loaded (no "Loaded plugin" lines; /versions lists none);
 * macros are not resolved (`-V` of one file that uses another file's macros passes, where Falco fails it: see
 * outputs/validate.ok.*); the daemon logs "Falco stand-in started" so tests can count starts. The YAML reader
 * is minimal: top-level keys, one level of nested keys, and the lists rules_files / config_files / load_plugins.
 * STAND-IN BEHAVIOUR for the detection canary (components/rules/canary.ts): the stand-in evaluates no rule, so
 * when a loaded rules file holds the rule "Falco-nodes detection canary", the daemon watches that rule's canary
 * file with inotify (IN_CLOSE_NOWRITE on its directory: the file was opened for reading and closed) and emits the
 * rule's alert, in the real alert format, to the enabled outputs. The process fields it cannot know print as
 * <NA> (Falco's notation for a field without a value). Nothing else is ever "detected".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#ifndef STANDIN_VERSION
#define STANDIN_VERSION "0.0.0"
#endif
#define MARKER "STANDIN-INVALID"
#define BANNER "falco-nodes e2e TEST STAND-IN, NOT Falco: it captures no events and detects nothing"

/* The versions Falco 0.44.1 reports besides its own (outputs/version.noconfig.stdout). */
#define LIBS_VERSION "0.25.4"
#define PLUGIN_API_VERSION "3.12.0"
#define ENGINE_VERSION "62"
#define ENGINE_SEMVER "0.62.0"
#define DRIVER_API_VERSION "10.0.0"
#define DRIVER_SCHEMA_VERSION "4.3.0"
#define DEFAULT_DRIVER_VERSION "10.2.0+driver"

/* ---- small containers ------------------------------------------------------------------------------------- */

struct strlist {
	char **v;
	size_t n, cap;
};

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (!p) {
		perror("realloc");
		exit(1);
	}
	return p;
}

static void list_add(struct strlist *l, const char *s)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = xrealloc(l->v, l->cap * sizeof(char *));
	}
	l->v[l->n++] = strdup(s);
}

static void list_clear(struct strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	l->n = 0;
}

/* A growable string. */
struct buf {
	char *s;
	size_t n, cap;
};

static void buf_add(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int need;
	va_start(ap, fmt);
	need = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (b->n + (size_t)need + 1 > b->cap) {
		b->cap = (b->n + (size_t)need + 1) * 2;
		b->s = xrealloc(b->s, b->cap);
	}
	va_start(ap, fmt);
	vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
	va_end(ap);
	b->n += (size_t)need;
}

/* A JSON string literal, as nlohmann::json dumps it. */
static void buf_json_str(struct buf *b, const char *s)
{
	buf_add(b, "\"");
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			buf_add(b, "\\%c", c);
		else if (c == '\n')
			buf_add(b, "\\n");
		else if (c == '\t')
			buf_add(b, "\\t");
		else if (c == '\r')
			buf_add(b, "\\r");
		else if (c < 0x20)
			buf_add(b, "\\u%04x", c);
		else
			buf_add(b, "%c", c);
	}
	buf_add(b, "\"");
}

/* ---- configuration: a flat key/value view ("key" and "section.key") plus the lists ---------------------------- */

struct kv {
	char *key, *val;
};

struct config {
	struct kv *kv;
	size_t nkv, capkv;
	struct strlist rules_files, config_files, load_plugins;
	/* Files loaded, in the order Falco reports them: included files first, then the main file. */
	struct strlist loaded;
};

static void cfg_set(struct config *c, const char *key, const char *val)
{
	for (size_t i = 0; i < c->nkv; i++) {
		if (!strcmp(c->kv[i].key, key)) {
			free(c->kv[i].val);
			c->kv[i].val = strdup(val);
			return;
		}
	}
	if (c->nkv == c->capkv) {
		c->capkv = c->capkv ? c->capkv * 2 : 64;
		c->kv = xrealloc(c->kv, c->capkv * sizeof *c->kv);
	}
	c->kv[c->nkv].key = strdup(key);
	c->kv[c->nkv].val = strdup(val);
	c->nkv++;
}

static const char *cfg_str(const struct config *c, const char *key, const char *dflt)
{
	for (size_t i = 0; i < c->nkv; i++)
		if (!strcmp(c->kv[i].key, key))
			return c->kv[i].val;
	return dflt;
}

static int cfg_bool(const struct config *c, const char *key, int dflt)
{
	const char *v = cfg_str(c, key, NULL);
	if (!v)
		return dflt;
	return !strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "yes");
}

/* ---- logging, as falco_logger does it --------------------------------------------------------------------- */

static const struct config *log_cfg; /* NULL until the config is loaded: Falco logs nothing before that */

static void time_prefix(char *out, size_t len)
{
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	if (log_cfg && cfg_bool(log_cfg, "time_format_iso_8601", 0))
		strftime(out, len, "%Y-%m-%dT%H:%M:%S%z", &tm);
	else
		strftime(out, len, "%a %b %e %H:%M:%S %Y", &tm);
}

static void flog(int level, const char *fmt, ...)
{
	char ts[64], msg[8192];
	va_list ap;
	if (!log_cfg)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (cfg_bool(log_cfg, "log_stderr", 0)) {
		time_prefix(ts, sizeof ts);
		fprintf(stderr, "%s: %s\n", ts, msg);
	}
	if (cfg_bool(log_cfg, "log_syslog", 0))
		syslog(level, "%s", msg);
}

/* ---- reading files ------------------------------------------------------------------------------------------ */

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *b = NULL;
	size_t len = 0, cap = 0, r;

	if (!f)
		return NULL;
	do {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 8192;
			b = xrealloc(b, cap + 1);
		}
		r = fread(b + len, 1, cap - len, f);
		len += r;
	} while (r > 0);
	if (ferror(f)) {
		fclose(f);
		free(b);
		return NULL;
	}
	fclose(f);
	b[len] = '\0';
	return b;
}

static char *trim(char *s)
{
	char *e;
	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
		*--e = '\0';
	return s;
}

/* A scalar as YAML writes it: drop a trailing " # comment" and surrounding quotes. */
static char *scalar(char *s)
{
	char *hash, *e;
	s = trim(s);
	if (*s != '"' && *s != '\'') {
		hash = strstr(s, " #");
		if (hash)
			*hash = '\0';
		s = trim(s);
	}
	e = s + strlen(s);
	if (e - s >= 2 && (*s == '"' || *s == '\'') && e[-1] == *s) {
		e[-1] = '\0';
		s++;
	}
	return s;
}

static void add_flow_list(struct strlist *l, char *s)
{
	char *end = strrchr(s, ']'), *tok, *save = NULL;
	if (end)
		*end = '\0';
	for (tok = strtok_r(s + 1, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *v = scalar(tok);
		if (*v)
			list_add(l, v);
	}
}

static int has_tab_indent(const char *text)
{
	for (const char *p = text; *p; p++)
		if ((p == text || p[-1] == '\n') && *p == '\t')
			return 1;
	return 0;
}

static struct strlist *list_for(struct config *c, const char *section)
{
	if (!strcmp(section, "rules_files"))
		return &c->rules_files;
	if (!strcmp(section, "config_files"))
		return &c->config_files;
	if (!strcmp(section, "load_plugins"))
		return &c->load_plugins;
	return NULL;
}

/* One config file. Errors are fatal, as Falco's yaml_helper throws on an unreadable or malformed file. */
static int parse_config(const char *path, int is_main, struct config *cfg, char *err, size_t errlen)
{
	char *text = read_file(path), *line, *save = NULL;
	char section[128] = "";
	int lineno = 0;

	if (!text) {
		snprintf(err, errlen, "Could not read configuration file %s: %s", path, strerror(errno));
		return -1;
	}
	if (strstr(text, MARKER) || has_tab_indent(text)) {
		snprintf(err, errlen, "Cannot read config file (%s): %s", path,
		         strstr(text, MARKER) ? "contains the stand-in's invalid marker " MARKER : "tab indentation is not valid YAML");
		free(text);
		return -1;
	}
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *t = trim(line), *colon;
		int indent = (int)(t - line);
		struct strlist *l;
		lineno++;
		if (!*t || *t == '#' || !strcmp(t, "---") || !strcmp(t, "..."))
			continue;
		if (indent == 0) {
			if (*t == '-') {
				snprintf(err, errlen, "Cannot read config file (%s): the top level must be a YAML map (line %d)", path, lineno);
				free(text);
				return -1;
			}
			colon = strchr(t, ':');
			if (!colon || (colon[1] && colon[1] != ' ')) {
				snprintf(err, errlen, "Cannot read config file (%s): expected 'key: value' at line %d", path, lineno);
				free(text);
				return -1;
			}
			*colon = '\0';
			snprintf(section, sizeof section, "%s", scalar(t));
			char *rest = scalar(colon + 1);
			l = list_for(cfg, section);
			if (l) {
				if (l == &cfg->config_files && !is_main) {
					snprintf(section, sizeof section, "%s", "(ignored)");
					continue;
				}
				/* The main file sets the list; included files append to it (Falco's default "append"). */
				if (is_main)
					list_clear(l);
				if (*rest == '[')
					add_flow_list(l, rest);
				else if (*rest && strcmp(rest, "~") && strcmp(rest, "null"))
					list_add(l, rest);
			} else if (*rest) {
				cfg_set(cfg, section, rest);
			}
			continue;
		}
		l = list_for(cfg, section);
		if (l) {
			char *item = t;
			if (*item == '-')
				item = scalar(item + 1);
			if (!strncmp(item, "path:", 5))
				list_add(l, scalar(item + 5));
			else if (*t == '-' && !strchr(item, ':'))
				list_add(l, item);
			continue;
		}
		if (indent > 2 || *t == '-')
			continue; /* deeper nesting and lists of maps: not read */
		colon = strchr(t, ':');
		if (!colon)
			continue;
		*colon = '\0';
		char key[300];
		snprintf(key, sizeof key, "%s.%s", section, scalar(t));
		char *val = scalar(colon + 1);
		if (*val)
			cfg_set(cfg, key, val);
	}
	free(text);
	list_add(&cfg->loaded, path);
	return 0;
}

static int cmpstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int has_yaml_ext(const char *name)
{
	size_t n = strlen(name);
	return (n > 5 && !strcmp(name + n - 5, ".yaml")) || (n > 4 && !strcmp(name + n - 4, ".yml"));
}

/* Files of a directory, sorted; only YAML files when yaml_only. */
static void dir_files(const char *dir, int yaml_only, struct strlist *out)
{
	struct strlist names = {0};
	DIR *d = opendir(dir);
	struct dirent *e;
	char full[4096];
	struct stat st;

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (yaml_only && !has_yaml_ext(e->d_name))
			continue;
		snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
		if (stat(full, &st) == 0 && S_ISREG(st.st_mode))
			list_add(&names, full);
	}
	closedir(d);
	if (names.n)
		qsort(names.v, names.n, sizeof(char *), cmpstr);
	for (size_t i = 0; i < names.n; i++)
		list_add(out, names.v[i]);
	list_clear(&names);
	free(names.v);
}

/* load_config.cpp: the main file, its config_files (files or whole directories), then -o overrides; logs after. */
static int load_config(const char *path, struct config *cfg, struct strlist *overrides, char *err, size_t errlen)
{
	struct strlist includes = {0};
	struct stat st;
	char sys[1024] = "";
	char *main_path;

	if (stat(path, &st) != 0) {
		snprintf(err, errlen, "Could not find configuration file at %s", path);
		return -1;
	}
	if (parse_config(path, 1, cfg, err, errlen) != 0)
		return -1;
	/* The main file is reported after its includes (outputs/dryrun.ok.stderr). */
	main_path = cfg->loaded.v[--cfg->loaded.n];
	for (size_t i = 0; i < cfg->config_files.n; i++) {
		const char *p = cfg->config_files.v[i];
		if (stat(p, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode))
			dir_files(p, 0, &includes);
		else
			list_add(&includes, p);
	}
	for (size_t i = 0; i < includes.n; i++)
		if (parse_config(includes.v[i], 0, cfg, err, errlen) != 0)
			return -1;
	list_add(&cfg->loaded, main_path);
	free(main_path);
	for (size_t i = 0; i < overrides->n; i++) {
		char kv[1024], *eq;
		snprintf(kv, sizeof kv, "%s", overrides->v[i]);
		eq = strchr(kv, '=');
		*eq = '\0';
		cfg_set(cfg, kv, eq + 1);
	}

	log_cfg = cfg;
	flog(LOG_INFO, "Falco version: %s (x86_64)", STANDIN_VERSION);
	flog(LOG_INFO, "Falco initialized with configuration files:");
	for (size_t i = 0; i < cfg->loaded.n; i++)
		flog(LOG_INFO, "   %s | schema validation: ok", cfg->loaded.v[i]);
	{
		char *v = read_file("/proc/version");
		if (v) {
			snprintf(sys, sizeof sys, "%s", trim(v));
			free(v);
		}
	}
	flog(LOG_INFO, "System info: %s", sys);
	return 0;
}

/* ---- rules: the load result, as falco::load_result renders it --------------------------------------------- */

struct location {
	const char *type; /* "rules content", "rule", "rule condition" */
	char name[256];   /* item name (the rule's) */
	int line, column, offset;
};

struct load_result {
	char name[4096];
	int ok;
	const char *code, *codedesc;
	char message[1024];
	char snippet[2048];
	struct location loc[3];
	int nloc;
};

static void add_location(struct load_result *r, const char *type, const char *name, int line, int column, int offset)
{
	struct location *l = &r->loc[r->nloc++];
	l->type = type;
	snprintf(l->name, sizeof l->name, "%s", name);
	l->line = line;
	l->column = column;
	l->offset = offset;
}

static void fail(struct load_result *r, const char *code, const char *codedesc)
{
	r->ok = 0;
	r->code = code;
	r->codedesc = codedesc;
}

/*
 * A rules file: readable, no tab indentation, a YAML list at the top level, no marker. A marker inside a rule's
 * condition is reported like libsinsp's unknown field: the rule and its condition as locations (rule_loader's
 * context), the condition as the snippet with a caret under the field.
 */
static void check_rules_file(const char *path, struct load_result *r)
{
	char *text = read_file(path), *p;
	int lineno = 0, rule_line = -1, rule_offset = 0;
	char rule[256] = "";

	memset(r, 0, sizeof *r);
	snprintf(r->name, sizeof r->name, "%s", path);
	r->ok = 1;
	if (!text) {
		fail(r, "LOAD_ERR_FILE_READ", "File read error");
		snprintf(r->message, sizeof r->message, "Could not open file %s for reading: %s", path, strerror(errno));
		return;
	}
	add_location(r, "rules content", "", 0, 0, 0);
	if (has_tab_indent(text)) {
		fail(r, "LOAD_ERR_YAML_PARSE", "YAML parse error");
		snprintf(r->message, sizeof r->message, "yaml-cpp: error: tab indentation is not valid YAML");
		free(text);
		return;
	}
	for (p = text; *p;) {
		char *eol = strchr(p, '\n'), *t = p;
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		char *m = memmem(p, len, MARKER, strlen(MARKER));
		while (t < p + len && *t == ' ')
			t++;
		if (t == p && len >= 8 && !strncmp(p, "- rule: ", 8)) {
			char raw[256];
			snprintf(raw, sizeof raw, "%.*s", (int)(len - 8), p + 8);
			snprintf(rule, sizeof rule, "%s", scalar(raw));
			rule_line = lineno;
			rule_offset = (int)(p - text) + 2;
		}
		if (m) {
			char *field = m, *cond = NULL;
			fail(r, "LOAD_ERR_COMPILE_CONDITION", "Error compiling condition");
			while (field > p && field[-1] != ' ' && field[-1] != '(')
				field--;
			if (rule_line >= 0)
				add_location(r, "rule", rule, rule_line, 2, rule_offset);
			if (!strncmp(t, "condition: ", 11) && t + 11 <= field) {
				cond = t + 11;
				add_location(r, "rule condition", "", lineno, (int)(cond - p), (int)(cond - text));
			}
			snprintf(r->message, sizeof r->message, "filter_check called with nonexistent field %.*s",
			         (int)strcspn(field, " )\n"), field);
			if (!cond)
				cond = t;
			snprintf(r->snippet, sizeof r->snippet, "%.*s\n%*s^\n", (int)(len - (size_t)(cond - p)), cond, (int)(field - cond), "");
			break;
		}
		if (t == p && len && *t != '-' && *t != '[' && *t != '#' && *t != '\r' && strncmp(t, "---", 3) && strncmp(t, "...", 3)) {
			fail(r, "LOAD_ERR_YAML_VALIDATE", "Error validating internal structure of YAML file");
			snprintf(r->message, sizeof r->message, "Rules content is not yaml array of objects");
			break;
		}
		lineno++;
		p = eol ? eol + 1 : p + len;
	}
	free(text);
}

/* load_result::as_string(true, ...): "NAME: Ok" or "NAME: Invalid" with the error, its locations and snippet. */
static void result_text(const struct load_result *r, struct buf *b)
{
	if (r->ok) {
		buf_add(b, "%s: Ok", r->name);
		return;
	}
	buf_add(b, "%s: Invalid\n1 Errors:\n", r->name);
	for (int i = 0; i < r->nloc; i++) {
		const struct location *l = &r->loc[i];
		if (*l->name)
			buf_add(b, "%s%s '%s': (%s:%d:%d)\n", i ? "    " : "", l->type, l->name, r->name, l->line, l->column);
		else
			buf_add(b, "%s%s: (%s:%d:%d)\n", i ? "    " : "In ", l->type, r->name, l->line, l->column);
	}
	if (*r->snippet)
		buf_add(b, "------\n%s------\n", r->snippet);
	buf_add(b, "%s (%s): %s\n", r->code, r->codedesc, r->message);
}

/* load_result::as_json(): the keys and their order as nlohmann::json dumps them (outputs/validate.*.stdout). */
static void result_json(const struct load_result *r, struct buf *b)
{
	buf_add(b, "{\"errors\":[");
	if (!r->ok) {
		buf_add(b, "{\"code\":\"%s\",\"codedesc\":\"%s\",\"context\":{\"locations\":[", r->code, r->codedesc);
		for (int i = 0; i < r->nloc; i++) {
			const struct location *l = &r->loc[i];
			buf_add(b, "%s{\"item_name\":", i ? "," : "");
			buf_json_str(b, l->name);
			buf_add(b, ",\"item_type\":\"%s\",\"position\":{\"column\":%d,\"line\":%d,\"name\":", l->type, l->column, l->line);
			buf_json_str(b, r->name);
			buf_add(b, ",\"offset\":%d}}", l->offset);
		}
		buf_add(b, "],\"snippet\":");
		buf_json_str(b, r->snippet);
		buf_add(b, "},\"message\":");
		buf_json_str(b, r->message);
		buf_add(b, "}");
	}
	buf_add(b, "],\"name\":");
	buf_json_str(b, r->name);
	buf_add(b, ",\"schema_valid\":true,\"schema_warnings\":[],\"successful\":%s,\"warnings\":[]}", r->ok ? "true" : "false");
}

/* load_rules_files.cpp: each file in order; the first invalid one is fatal. */
static int load_rules(struct strlist *paths, char *err, size_t errlen)
{
	struct strlist files = {0};
	struct stat st;

	if (!paths->n) {
		snprintf(err, errlen, "You must specify at least one rules file/directory via -r or a rules_files entry in falco.yaml");
		return -1;
	}
	for (size_t i = 0; i < paths->n; i++) {
		const char *p = paths->v[i];
		if (stat(p, &st) != 0)
			continue; /* like Falco: a configured path that does not exist loads nothing */
		if (S_ISDIR(st.st_mode))
			dir_files(p, 1, &files);
		else
			list_add(&files, p);
	}
	flog(LOG_INFO, "Loading rules from:");
	for (size_t i = 0; i < files.n; i++) {
		struct load_result r;
		struct buf b = {0};
		flog(LOG_INFO, "   %s | schema validation: ok", files.v[i]);
		check_rules_file(files.v[i], &r);
		if (!r.ok) {
			result_text(&r, &b);
			snprintf(err, errlen, "%s", b.s);
			free(b.s);
			return -1;
		}
	}
	return 0;
}

/* validate_rules_files.cpp */
static int validate_rules(struct strlist *files, const struct config *cfg)
{
	struct buf summary = {0}, json = {0};
	int ok = 1, as_json = cfg_bool(cfg, "json_output", 0);

	flog(LOG_INFO, "Validating rules file(s):");
	for (size_t i = 0; i < files->n; i++)
		flog(LOG_INFO, "   %s", files->v[i]);
	buf_add(&json, "{\"falco_load_results\":[");
	for (size_t i = 0; i < files->n; i++) {
		struct load_result r;
		check_rules_file(files->v[i], &r);
		ok &= r.ok;
		if (i)
			buf_add(&json, ",");
		result_json(&r, &json);
		if (summary.n)
			buf_add(&summary, "\n");
		result_text(&r, &summary);
	}
	buf_add(&json, "]}");
	printf("%s\n", as_json ? json.s : summary.s);
	if (!ok) {
		fprintf(stderr, "Error: %s\n", summary.s);
		return 1;
	}
	return 0;
}

/* ---- version ------------------------------------------------------------------------------------------------ */

/* versions_info: the text form, or as_json() (keys sorted, as nlohmann::json dumps them). */
static void print_version(const struct config *cfg)
{
	if (cfg_bool(cfg, "json_output", 0)) {
		printf("{\"default_driver_version\":\"" DEFAULT_DRIVER_VERSION "\",\"driver_api_version\":\"" DRIVER_API_VERSION
		       "\",\"driver_schema_version\":\"" DRIVER_SCHEMA_VERSION "\",\"engine_version\":\"" ENGINE_VERSION
		       "\",\"engine_version_semver\":\"" ENGINE_SEMVER "\",\"falco_version\":\"%s\",\"libs_version\":\"" LIBS_VERSION
		       "\",\"plugin_api_version\":\"" PLUGIN_API_VERSION "\"}\n",
		       STANDIN_VERSION);
		return;
	}
	printf("Falco version: %s\n", STANDIN_VERSION);
	printf("Libs version:  " LIBS_VERSION "\n");
	printf("Plugin API:    " PLUGIN_API_VERSION "\n");
	printf("Engine:        " ENGINE_SEMVER "\n");
	printf("Driver:\n");
	printf("  API version:    " DRIVER_API_VERSION "\n");
	printf("  Schema version: " DRIVER_SCHEMA_VERSION "\n");
	printf("  Default driver: " DEFAULT_DRIVER_VERSION "\n");
}

/* ---- alerts and the heartbeat ------------------------------------------------------------------------------- */

struct event {
	const char *rule, *priority, *source;
	const char *output;      /* the formatted output, without the time and priority prefix */
	int output_has_prefix;   /* rule alerts: "<time>: <Priority> <output>"; internal events: the output alone */
	const char *fields_json; /* output_fields, a JSON object */
	const char *tags_json;   /* a JSON array, or NULL for none */
};

static int syslog_level(const char *priority)
{
	static const char *const names[] = {"Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug"};
	for (int i = 0; i < 8; i++)
		if (!strcmp(priority, names[i]))
			return i;
	return LOG_INFO;
}

/* falco_formats::format_event + the outputs: one line to every enabled output (stdout, syslog, file). */
/*
 * The hostname Falco reports: FALCO_HOSTNAME when set, else the kernel hostname. For the JSON `hostname` of alerts
 * and internal events, falcosecurity/falco userspace/falco/app/actions/init_outputs.cpp (init_outputs); for the
 * `evt.hostname` field, falcosecurity/libs userspace/libscap/linux/scap_linux_platform.c (scap_gethostname), which
 * Falco builds with SCAP_HOSTNAME_ENV_VAR "FALCO_HOSTNAME" (falcosecurity/falco cmake/modules/falcosecurity-libs.cmake).
 */
static void reported_hostname(char *buf, size_t size)
{
	const char *env = getenv("FALCO_HOSTNAME");

	if (env)
		snprintf(buf, size, "%s", env);
	else
		gethostname(buf, size - 1);
}

static void emit_event(const struct config *cfg, const struct event *e)
{
	struct timespec now;
	struct tm tm;
	char host[256] = "", day[32], zone[8], stamp[64], iso[64];
	struct buf line = {0}, out = {0};
	int json = cfg_bool(cfg, "json_output", 0);

	clock_gettime(CLOCK_REALTIME, &now);
	reported_hostname(host, sizeof host);
	gmtime_r(&now.tv_sec, &tm);
	strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(iso, sizeof iso, "%s.%09ldZ", day, now.tv_nsec);
	localtime_r(&now.tv_sec, &tm);
	strftime(zone, sizeof zone, "%z", &tm);
	if (cfg_bool(cfg, "time_format_iso_8601", 0)) {
		strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(stamp, sizeof stamp, "%s.%09ld%s", day, now.tv_nsec, zone);
	} else {
		strftime(day, sizeof day, "%H:%M:%S", &tm);
		snprintf(stamp, sizeof stamp, "%s.%09ld", day, now.tv_nsec);
	}
	if (e->output_has_prefix)
		buf_add(&out, "%s: %s %s", stamp, e->priority, e->output);
	else
		buf_add(&out, "%s", e->output);

	if (json) {
		buf_add(&line, "{\"hostname\":");
		buf_json_str(&line, host);
		if (cfg_bool(cfg, "json_include_output_property", 1)) {
			buf_add(&line, ",\"output\":");
			buf_json_str(&line, out.s);
		}
		if (cfg_bool(cfg, "json_include_output_fields_property", 1))
			buf_add(&line, ",\"output_fields\":%s", e->fields_json);
		buf_add(&line, ",\"priority\":\"%s\",\"rule\":", e->priority);
		buf_json_str(&line, e->rule);
		buf_add(&line, ",\"source\":\"%s\"", e->source);
		if (e->tags_json && cfg_bool(cfg, "json_include_tags_property", 1))
			buf_add(&line, ",\"tags\":%s", e->tags_json);
		buf_add(&line, ",\"time\":\"%s\"}", iso);
	} else {
		buf_add(&line, "%s", out.s);
	}

	if (cfg_bool(cfg, "stdout_output.enabled", 1))
		printf("%s\n", line.s);
	if (cfg_bool(cfg, "syslog_output.enabled", 1))
		syslog(syslog_level(e->priority), "%s", line.s);
	if (cfg_bool(cfg, "file_output.enabled", 0)) {
		const char *name = cfg_str(cfg, "file_output.filename", "./events.txt");
		FILE *f = fopen(name, "a");
		if (f) {
			fprintf(f, "%s\n", line.s);
			fclose(f);
		} else {
			flog(LOG_ERR, "Unable to open file output %s: %s", name, strerror(errno));
		}
	}
	free(line.s);
	free(out.s);
}

/* metrics.interval: Falco's duration form (a number and ms, s, m or h); 0 when unreadable. */
static long interval_ms(const char *s)
{
	char *end;
	long n = strtol(s, &end, 10);
	if (end == s || n <= 0)
		return 0;
	if (!strcmp(end, "ms"))
		return n;
	if (!strcmp(end, "s"))
		return n * 1000;
	if (!strcmp(end, "m"))
		return n * 60000;
	if (!strcmp(end, "h"))
		return n * 3600000;
	return 0;
}

static long long now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static long long boot_ns(void)
{
	char *stat = read_file("/proc/stat"), *p;
	long long btime = 0;
	if (stat && (p = strstr(stat, "\nbtime ")))
		btime = atoll(p + 7);
	free(stat);
	return btime * 1000000000LL;
}

/* The "Falco internal: metrics snapshot" event (outputs/alert.metrics_snapshot.json), minus capture counters. */
static void emit_metrics_snapshot(const struct config *cfg, long long start_ns)
{
	struct buf f = {0};
	struct utsname u;
	char host[256] = "";
	long long now = now_ns();
	const char *kind = cfg_str(cfg, "engine.kind", "modern_ebpf");

	uname(&u);
	reported_hostname(host, sizeof host);
	buf_add(&f, "{\"evt.hostname\":");
	buf_json_str(&f, host);
	buf_add(&f, ",\"evt.source\":\"syscall\",\"evt.time\":%lld,\"falco.duration_sec\":%lld,\"falco.host_boot_ts\":%lld,"
	            "\"falco.host_num_cpus\":%ld,\"falco.kernel_release\":",
	        now, (now - start_ns) / 1000000000LL, boot_ns(), sysconf(_SC_NPROCESSORS_ONLN));
	buf_json_str(&f, u.release);
	buf_add(&f, ",\"falco.outputs_queue_num_drops\":0,\"falco.start_ts\":%lld,\"falco.version\":\"%s\","
	            "\"scap.engine_name\":\"%s\",\"scap.n_drops\":0,\"scap.n_evts\":0}",
	        start_ns, STANDIN_VERSION, !strcmp(kind, "kmod") ? "kmod" : "modern_bpf");
	struct event e = {"Falco internal: metrics snapshot", "Informational", "internal", "Falco metrics snapshot", 0, f.s, NULL};
	emit_event(cfg, &e);
	free(f.s);
}

/* ---- STAND-IN BEHAVIOUR: the detection canary ----------------------------------------------------------------- */

#define CANARY_RULE "Falco-nodes detection canary"

struct canary {
	char path[512], dir[512], name[256], token[64], priority[32];
	int fd, wd;
};

/* The canary rule of the loaded files: its file (fd.name = "..."), token (falco_nodes_canary=...) and priority. */
static int find_canary(const struct strlist *paths, struct canary *c)
{
	struct strlist files = {0};
	struct stat st;
	memset(c, 0, sizeof *c);
	c->fd = c->wd = -1;
	for (size_t i = 0; i < paths->n; i++) {
		if (stat(paths->v[i], &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode))
			dir_files(paths->v[i], 1, &files);
		else
			list_add(&files, paths->v[i]);
	}
	for (size_t i = 0; i < files.n; i++) {
		char *text = read_file(files.v[i]), *r, *p, *q;
		if (!text)
			continue;
		if ((r = strstr(text, "rule: " CANARY_RULE)) && (p = strstr(r, "fd.name = \"")) && (q = strchr(p + 11, '"')) &&
		    (size_t)(q - p - 11) < sizeof c->path) {
			memcpy(c->path, p + 11, (size_t)(q - p - 11));
			if ((p = strstr(r, "falco_nodes_canary=")))
				sscanf(p + 19, "%63[0-9a-f]", c->token);
			if ((p = strstr(r, "priority: ")))
				sscanf(p + 10, "%31[A-Z]", c->priority);
		}
		free(text);
		if (c->path[0])
			break;
	}
	list_clear(&files);
	if (!c->path[0] || !strrchr(c->path, '/'))
		return 0;
	snprintf(c->dir, sizeof c->dir, "%.*s", (int)(strrchr(c->path, '/') - c->path), c->path);
	snprintf(c->name, sizeof c->name, "%s", strrchr(c->path, '/') + 1);
	/* Falco prints the priority capitalised: NOTICE -> Notice. */
	for (char *x = c->priority + 1; *x; x++)
		*x = (char)(*x - 'A' + 'a');
	if (!c->priority[0])
		snprintf(c->priority, sizeof c->priority, "Notice");
	c->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	return c->fd >= 0;
}

/* Watch the directory once it exists (converge and the timer create it after Falco starts). */
static void canary_watch(struct canary *c)
{
	if (c->fd >= 0 && c->wd < 0)
		c->wd = inotify_add_watch(c->fd, c->dir, IN_CLOSE_NOWRITE | IN_DELETE_SELF | IN_IGNORED);
}

static void canary_events(const struct config *cfg, struct canary *c)
{
	char ev[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;
	while ((n = read(c->fd, ev, sizeof ev)) > 0) {
		for (char *p = ev; p < ev + n;) {
			struct inotify_event *ie = (struct inotify_event *)p;
			if (ie->mask & (IN_IGNORED | IN_DELETE_SELF))
				c->wd = -1;
			else if ((ie->mask & IN_CLOSE_NOWRITE) && ie->len && !strcmp(ie->name, c->name)) {
				struct buf out = {0}, fields = {0};
				buf_add(&out, "Falco-nodes detection canary | falco_nodes_canary=%s process=<NA> parent=<NA> command=<NA>", c->token);
				buf_add(&fields, "{\"evt.time\":%lld,\"proc.cmdline\":null,\"proc.name\":null,\"proc.pname\":null}", now_ns());
				struct event e = {CANARY_RULE, c->priority, "syscall", out.s, 1, fields.s, "[\"canary\",\"falco-nodes\",\"host\"]"};
				emit_event(cfg, &e);
				free(out.s);
				free(fields.s);
			}
			p += sizeof *ie + ie->len;
		}
	}
}

/* ---- the daemon --------------------------------------------------------------------------------------------- */

static volatile sig_atomic_t got_term, got_hup, got_usr1;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		got_hup = 1;
	else if (sig == SIGUSR1)
		got_usr1 = 1;
	else
		got_term = sig;
}

/* The webserver's answers, byte for byte as outputs/healthz.http and versions.http show them. */
static void serve_one(int fd)
{
	char req[4096];
	struct buf body = {0}, resp = {0};
	const char *status = "404 Not Found";
	ssize_t n;
	struct timeval tv = {2, 0};

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	n = recv(fd, req, sizeof req - 1, 0);
	if (n <= 0)
		return;
	req[n] = '\0';
	buf_add(&body, "%s", "");
	if (!strncmp(req, "GET /healthz ", 13) || !strncmp(req, "GET /healthz?", 13)) {
		status = "200 OK";
		buf_add(&body, "{\"status\": \"ok\"}");
	} else if (!strncmp(req, "GET /versions ", 14)) {
		status = "200 OK";
		buf_add(&body,
		        "{\"default_driver_version\":\"" DEFAULT_DRIVER_VERSION "\",\"driver_api_version\":\"" DRIVER_API_VERSION
		        "\",\"driver_schema_version\":\"" DRIVER_SCHEMA_VERSION "\",\"engine_version\":\"" ENGINE_VERSION
		        "\",\"engine_version_semver\":\"" ENGINE_SEMVER "\",\"falco_version\":\"%s\",\"libs_version\":\"" LIBS_VERSION
		        "\",\"plugin_api_version\":\"" PLUGIN_API_VERSION "\",\"plugin_versions\":{}}",
		        STANDIN_VERSION);
	}
	buf_add(&resp, "HTTP/1.1 %s\r\nKeep-Alive: timeout=5, max=100\r\nContent-Length: %zu\r\n%s\r\n%s", status, body.n,
	        body.n ? "Content-Type: application/json\r\n" : "", body.s);
	if (write(fd, resp.s, resp.n) < 0) {
		/* the client went away; nothing to do */
	}
	free(body.s);
	free(resp.s);
}

static int run_daemon(const struct config *cfg, const char *pidfile, const struct strlist *rules)
{
	struct sigaction sa;
	struct canary canary;
	int lfd = -1;
	long long start = now_ns(), next_metrics = 0;
	long every = 0;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal; /* no SA_RESTART: poll() returns EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	flog(LOG_INFO, "Falco stand-in started: pid=%d uid=%d version=%s engine.kind=%s (%s)", (int)getpid(), (int)getuid(),
	     STANDIN_VERSION, cfg_str(cfg, "engine.kind", "modern_ebpf"), BANNER);

	if (pidfile) {
		FILE *f = fopen(pidfile, "w");
		if (!f) {
			fprintf(stderr, "Error: cannot write pidfile %s: %s\n", pidfile, strerror(errno));
			return 1;
		}
		fprintf(f, "%d\n", (int)getpid());
		fclose(f);
	}

	if (cfg_bool(cfg, "webserver.enabled", 1)) {
		struct sockaddr_in addr;
		int one = 1, port = atoi(cfg_str(cfg, "webserver.listen_port", "8765"));
		const char *address = cfg_str(cfg, "webserver.listen_address", "0.0.0.0");
		memset(&addr, 0, sizeof addr);
		addr.sin_family = AF_INET;
		addr.sin_port = htons((unsigned short)port);
		if (inet_pton(AF_INET, address, &addr.sin_addr) != 1) {
			fprintf(stderr, "Error: webserver.listen_address %s is not an IPv4 address (the stand-in serves IPv4 only)\n", address);
			return 1;
		}
		lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
		    bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(lfd, 16) != 0) {
			fprintf(stderr, "Error: webserver: cannot listen on %s:%d: %s\n", address, port, strerror(errno));
			return 1;
		}
		flog(LOG_INFO, "Starting health webserver with threadiness %s, listening on %s:%d", cfg_str(cfg, "webserver.threadiness", "0"),
		     address, port);
	}
	flog(LOG_INFO, "Opening 'syscall' source: none, this is the %s", BANNER);
	if (cfg_bool(cfg, "metrics.enabled", 0) && cfg_bool(cfg, "metrics.output_rule", 0))
		every = interval_ms(cfg_str(cfg, "metrics.interval", "1h"));
	if (every)
		next_metrics = start + (long long)every * 1000000LL;
	find_canary(rules, &canary);

	while (!got_term) {
		struct pollfd pfd = {lfd, POLLIN, 0};
		int r = poll(&pfd, lfd >= 0 ? 1 : 0, every && every < 1000 ? (int)every : 1000);
		if (got_hup) {
			got_hup = 0;
			flog(LOG_INFO, "SIGHUP received");
		}
		if (got_usr1) {
			got_usr1 = 0;
			flog(LOG_INFO, "SIGUSR1 received, reopening outputs...");
		}
		canary_watch(&canary);
		if (canary.fd >= 0)
			canary_events(cfg, &canary);
		if (every && now_ns() >= next_metrics) {
			emit_metrics_snapshot(cfg, start);
			next_metrics += (long long)every * 1000000LL;
		}
		if (r > 0 && (pfd.revents & POLLIN)) {
			int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			if (cfd >= 0) {
				serve_one(cfd);
				close(cfd);
			}
		}
	}
	flog(LOG_INFO, "%s received, exiting...", got_term == SIGINT ? "SIGINT" : "SIGTERM");
	if (lfd >= 0)
		close(lfd);
	if (pidfile)
		unlink(pidfile);
	return 0;
}

static void usage(FILE *out)
{
	fprintf(out,
	        "falco " STANDIN_VERSION " -- " BANNER "\n"
	        "Usage: falco [--version] [-c FILE] [-o KEY=VALUE]... [-r PATH]... [--dry-run | -V FILE...]\n"
	        "             [--pidfile FILE] [-U] [--disable-source S] [--enable-source S] [-v]\n");
}

/* Options real Falco has that the stand-in cannot honour: a clear failure beats a silent pass. */
static const char *const unsupported[] = {
	"--list", "-L", "-l", "--list-events", "--list-plugins", "--plugin-info", "--support", "--config-schema",
	"--rule-schema", "-i", "-M", "-p", "--print", "-N", "--markdown", "-A", NULL,
};

/* Falco's main: a fatal result is printed as "Error: <message>" on stderr, exit 1. */
static int fatal(const char *msg)
{
	fprintf(stderr, "Error: %s\n", msg);
	return 1;
}

int main(int argc, char **argv)
{
	const char *config_path = NULL, *pidfile = NULL;
	struct strlist overrides = {0}, rules_opt = {0}, validate = {0};
	int dry_run = 0, version = 0;
	static struct config cfg;
	char err[8192] = "";

	setvbuf(stdout, NULL, _IOLBF, 0);
	setvbuf(stderr, NULL, _IOLBF, 0);

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
#define NEXT_ARG()                                                                   \
	do {                                                                             \
		if (i + 1 >= argc) {                                                         \
			fprintf(stderr, "Error: option %s requires an argument\n", a);           \
			return 1;                                                                \
		}                                                                            \
		i++;                                                                         \
	} while (0)
		if (!strcmp(a, "--version")) {
			version = 1;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(a, "-c")) {
			NEXT_ARG();
			config_path = argv[i];
		} else if (!strncmp(a, "-c", 2) && a[2]) {
			config_path = a + 2;
		} else if (!strcmp(a, "-o") || !strcmp(a, "--option")) {
			NEXT_ARG();
			if (!strchr(argv[i], '=')) {
				fprintf(stderr, "Error: -o %s: expected KEY=VALUE\n", argv[i]);
				return 1;
			}
			list_add(&overrides, argv[i]);
		} else if (!strcmp(a, "-r")) {
			NEXT_ARG();
			list_add(&rules_opt, argv[i]);
		} else if (!strcmp(a, "-V") || !strcmp(a, "--validate")) {
			NEXT_ARG();
			list_add(&validate, argv[i]);
		} else if (!strcmp(a, "--dry-run")) {
			dry_run = 1;
		} else if (!strcmp(a, "--pidfile")) {
			NEXT_ARG();
			pidfile = argv[i];
		} else if (!strcmp(a, "--disable-source") || !strcmp(a, "--enable-source")) {
			NEXT_ARG();
		} else if (!strcmp(a, "-U") || !strcmp(a, "--unbuffered") || !strcmp(a, "-v")) {
			/* accepted, no effect */
		} else {
			for (int u = 0; unsupported[u]; u++) {
				if (!strcmp(a, unsupported[u])) {
					fprintf(stderr, "Error: %s is not implemented by the falco-nodes e2e stand-in (not Falco)\n", a);
					return 2;
				}
			}
			fprintf(stderr, "Error: unknown option %s\n", a);
			usage(stderr);
			return 1;
		}
	}

	/* Without -c, Falco reads /etc/falco/falco.yaml; --version alone also works without any config file. */
	if (!config_path) {
		struct stat st;
		config_path = "/etc/falco/falco.yaml";
		if (version && stat(config_path, &st) != 0)
			config_path = "/dev/null";
	}
	openlog("falco", LOG_PID, LOG_USER);
	if (load_config(config_path, &cfg, &overrides, err, sizeof err) != 0)
		return fatal(err);
	if (version) {
		print_version(&cfg);
		return 0;
	}
	if (validate.n)
		return validate_rules(&validate, &cfg);
	if (load_rules(rules_opt.n ? &rules_opt : &cfg.rules_files, err, sizeof err) != 0)
		return fatal(err);
	flog(LOG_INFO, "The chosen syscall buffer dimension is: 8388608 bytes (8 MBs)");
	if (cfg_bool(&cfg, "metrics.enabled", 0)) {
		const char *iv = cfg_str(&cfg, "metrics.interval", "1h");
		flog(LOG_INFO, "Setting metrics interval to %s, equivalent to %ld (ms)", iv, interval_ms(iv));
	}
	if (dry_run)
		return 0;
	return run_daemon(&cfg, pidfile, rules_opt.n ? &rules_opt : &cfg.rules_files);
}
