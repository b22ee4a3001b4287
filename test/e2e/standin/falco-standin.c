/*
 * TEST STAND-IN FOR FALCO. NOT FALCO. It captures no events and detects nothing.
 *
 * The falco-nodes e2e suite installs this as /usr/bin/falco (in a package named `falco`) inside a throwaway VM,
 * so that the product's converge script can be exercised end to end (package install and upgrade, config
 * validation before swap-in, unit start and restart, SIGHUP, health checks) without the real Falco, which needs
 * a network download and a BPF-capable kernel. It lives under test/e2e/ and must never be referenced from
 * components/.
 *
 * What it mimics:
 *   --version                     "Falco version: X.Y.Z (x86_64)" (X.Y.Z = the package version it was built for)
 *   -c FILE --dry-run             load the config (and its config_files), then every rules file; exit 0 or 1
 *   -V FILE (repeatable)          validate rules files: "FILE: Ok" or "FILE: Invalid" and exit 1
 *   -r PATH (repeatable)          rules files/dirs to load instead of the config's rules_files
 *   -o KEY=VALUE                  accepted; webserver.enabled / .listen_port / .listen_address and engine.kind are used
 *   (no action)                   run as a daemon: load everything as above (exit 1 on error), serve GET /healthz
 *                                 ({"status": "ok"}) and /versions on webserver.listen_address:listen_port
 *                                 (defaults 0.0.0.0:8765 like Falco), log "SIGHUP received" on SIGHUP, exit 0 on
 *                                 SIGTERM/SIGINT
 * A file is invalid when it contains the marker text STANDIN-INVALID, cannot be read, is indented with tabs, or
 * (config) is not a YAML map / (rules) is not a YAML list at the top level. Missing rules paths are skipped with a
 * warning; a missing config file (-c) is an error. Like Falco >= 0.41, only *.yaml / *.yml are read from rules
 * directories; config_files directories are read whole, in lexicographic order.
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#ifndef STANDIN_VERSION
#define STANDIN_VERSION "0.0.0"
#endif
#define MARKER "STANDIN-INVALID"
#define BANNER "falco-nodes e2e TEST STAND-IN, NOT Falco: it captures no events and detects nothing"

struct strlist {
	char **v;
	size_t n, cap;
};

static void list_add(struct strlist *l, const char *s)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = realloc(l->v, l->cap * sizeof(char *));
		if (!l->v) {
			perror("realloc");
			exit(1);
		}
	}
	l->v[l->n++] = strdup(s);
}

static void list_clear(struct strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	l->n = 0;
}

struct config {
	struct strlist rules_files;
	struct strlist config_files;
	int webserver_enabled;
	int listen_port;
	char listen_address[64];
	char engine_kind[64];
};

static void logmsg(const char *fmt, ...)
{
	char ts[64];
	struct timeval tv;
	struct tm tm;
	va_list ap;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ldZ: ", ts, (long)(tv.tv_usec / 1000));
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static char *read_file(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0, cap = 0, r;

	if (!f) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		return NULL;
	}
	do {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 8192;
			buf = realloc(buf, cap + 1);
			if (!buf) {
				perror("realloc");
				exit(1);
			}
		}
		r = fread(buf + len, 1, cap - len, f);
		len += r;
	} while (r > 0);
	if (ferror(f)) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		fclose(f);
		free(buf);
		return NULL;
	}
	fclose(f);
	buf[len] = '\0';
	return buf;
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

/* Common checks for any file the stand-in reads: readable, no marker, no tab indentation. */
static char *load_checked(const char *what, const char *path, char *err, size_t errlen)
{
	char *text = read_file(path, err, errlen);
	const char *p;
	int lineno = 1;

	if (!text)
		return NULL;
	if (strstr(text, MARKER)) {
		snprintf(err, errlen, "%s %s contains the marker " MARKER " (the stand-in treats it as invalid)", what, path);
		free(text);
		return NULL;
	}
	for (p = text; *p; p++) {
		if ((p == text || p[-1] == '\n') && *p == '\t') {
			snprintf(err, errlen, "%s %s: line %d: tab indentation is not valid YAML", what, path, lineno);
			free(text);
			return NULL;
		}
		if (*p == '\n')
			lineno++;
	}
	return text;
}

/* Minimal YAML reading: top-level keys, block or flow lists under rules_files/config_files, and a few nested keys. */
static int parse_config(const char *path, int is_main, struct config *cfg, char *err, size_t errlen)
{
	char *text = load_checked("config file", path, err, errlen), *line, *save = NULL;
	char section[128] = "";
	int lineno = 0;

	if (!text)
		return -1;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *t = trim(line), *colon;
		int indent = (int)(t - line);
		lineno++;
		if (!*t || *t == '#' || !strcmp(t, "---") || !strcmp(t, "..."))
			continue;
		if (indent == 0) {
			if (*t == '-') {
				snprintf(err, errlen, "config file %s: line %d: the top level must be a YAML map, not a list", path, lineno);
				free(text);
				return -1;
			}
			colon = strchr(t, ':');
			if (!colon || (colon[1] && colon[1] != ' ')) {
				snprintf(err, errlen, "config file %s: line %d: expected 'key: value'", path, lineno);
				free(text);
				return -1;
			}
			*colon = '\0';
			snprintf(section, sizeof section, "%s", scalar(t));
			char *rest = scalar(colon + 1);
			if (!strcmp(section, "rules_files") || !strcmp(section, "config_files")) {
				struct strlist *l = !strcmp(section, "rules_files") ? &cfg->rules_files : &cfg->config_files;
				if (l == &cfg->config_files && !is_main) {
					logmsg("Warning: %s: config_files in an included file is ignored (no nested includes)", path);
					snprintf(section, sizeof section, "%s", "(ignored)");
					continue;
				}
				/* The main file sets the list; included files append to it (Falco's default "append" strategy). */
				if (is_main)
					list_clear(l);
				if (*rest == '[')
					add_flow_list(l, rest);
				else if (*rest && strcmp(rest, "~") && strcmp(rest, "null"))
					list_add(l, rest);
			} else if (!strcmp(section, "watch_config_files") || !strcmp(section, "log_level")) {
				logmsg("%s: %s", section, rest);
			}
			continue;
		}
		if (!strcmp(section, "rules_files") || !strcmp(section, "config_files")) {
			struct strlist *l = !strcmp(section, "rules_files") ? &cfg->rules_files : &cfg->config_files;
			char *item = t;
			if (*item == '-')
				item = scalar(item + 1);
			if (!strncmp(item, "path:", 5))
				list_add(l, scalar(item + 5));
			else if (*t == '-' && !strchr(item, ':'))
				list_add(l, item);
			continue;
		}
		colon = strchr(t, ':');
		if (!colon)
			continue;
		*colon = '\0';
		char *key = scalar(t), *val = scalar(colon + 1);
		if (!strcmp(section, "webserver")) {
			if (!strcmp(key, "enabled"))
				cfg->webserver_enabled = !strcmp(val, "true");
			else if (!strcmp(key, "listen_port"))
				cfg->listen_port = atoi(val);
			else if (!strcmp(key, "listen_address"))
				snprintf(cfg->listen_address, sizeof cfg->listen_address, "%s", val);
		} else if (!strcmp(section, "engine") && !strcmp(key, "kind")) {
			snprintf(cfg->engine_kind, sizeof cfg->engine_kind, "%s", val);
		}
	}
	free(text);
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

static int load_config(const char *path, struct config *cfg, struct strlist *overrides, char *err, size_t errlen)
{
	struct strlist includes = {0};
	struct stat st;

	memset(cfg, 0, sizeof *cfg);
	cfg->webserver_enabled = 1;
	cfg->listen_port = 8765;
	snprintf(cfg->listen_address, sizeof cfg->listen_address, "0.0.0.0");
	snprintf(cfg->engine_kind, sizeof cfg->engine_kind, "modern_ebpf");

	if (stat(path, &st) != 0) {
		snprintf(err, errlen, "Could not find configuration file at %s", path);
		return -1;
	}
	logmsg("Loading config file: %s", path);
	if (parse_config(path, 1, cfg, err, errlen) != 0)
		return -1;
	for (size_t i = 0; i < cfg->config_files.n; i++) {
		const char *p = cfg->config_files.v[i];
		if (stat(p, &st) != 0) {
			logmsg("Warning: config_files entry %s does not exist, skipped", p);
		} else if (S_ISDIR(st.st_mode)) {
			dir_files(p, 0, &includes);
		} else {
			list_add(&includes, p);
		}
	}
	for (size_t i = 0; i < includes.n; i++) {
		logmsg("Loading config file: %s", includes.v[i]);
		if (parse_config(includes.v[i], 0, cfg, err, errlen) != 0)
			return -1;
	}
	for (size_t i = 0; i < overrides->n; i++) {
		char kv[1024], *eq;
		snprintf(kv, sizeof kv, "%s", overrides->v[i]);
		eq = strchr(kv, '=');
		*eq = '\0';
		if (!strcmp(kv, "webserver.enabled"))
			cfg->webserver_enabled = !strcmp(eq + 1, "true");
		else if (!strcmp(kv, "webserver.listen_port"))
			cfg->listen_port = atoi(eq + 1);
		else if (!strcmp(kv, "webserver.listen_address"))
			snprintf(cfg->listen_address, sizeof cfg->listen_address, "%s", eq + 1);
		else if (!strcmp(kv, "engine.kind"))
			snprintf(cfg->engine_kind, sizeof cfg->engine_kind, "%s", eq + 1);
	}
	return 0;
}

/* A rules file: checked, and its top level must be a YAML list. Returns the number of rule/macro/list items. */
static int check_rules_file(const char *path, char *err, size_t errlen)
{
	char *text = load_checked("rules file", path, err, errlen), *line, *save = NULL;
	int lineno = 0, items = 0;

	if (!text)
		return -1;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *t = trim(line);
		lineno++;
		if (!*t || *t == '#' || !strcmp(t, "---") || !strcmp(t, "..."))
			continue;
		if (t == line) {
			if (*t != '-') {
				snprintf(err, errlen, "rules file %s: line %d: the top level must be a YAML list of rules, macros and lists", path, lineno);
				free(text);
				return -1;
			}
			items++;
		}
	}
	free(text);
	return items;
}

static int load_rules(struct strlist *paths, char *err, size_t errlen)
{
	struct strlist files = {0};
	struct stat st;
	int total = 0;

	if (!paths->n) {
		snprintf(err, errlen, "You must specify at least one rules file/directory via -r or a rules_files entry in falco.yaml");
		return -1;
	}
	for (size_t i = 0; i < paths->n; i++) {
		const char *p = paths->v[i];
		if (stat(p, &st) != 0)
			logmsg("Warning: rules path %s does not exist, skipped", p);
		else if (S_ISDIR(st.st_mode))
			dir_files(p, 1, &files);
		else
			list_add(&files, p);
	}
	for (size_t i = 0; i < files.n; i++) {
		int n = check_rules_file(files.v[i], err, errlen);
		if (n < 0)
			return -1;
		logmsg("Loading rules from file %s (%d items)", files.v[i], n);
		total += n;
	}
	logmsg("Loaded %zu rules files, %d items", files.n, total);
	return 0;
}

static volatile sig_atomic_t got_term, got_hup;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		got_hup = 1;
	else
		got_term = sig;
}

static void serve_one(int fd)
{
	char req[4096];
	char body[512], resp[1024];
	const char *status = "404 Not Found";
	ssize_t n;
	struct timeval tv = {2, 0};

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	n = recv(fd, req, sizeof req - 1, 0);
	if (n <= 0)
		return;
	req[n] = '\0';
	snprintf(body, sizeof body, "{\"error\": \"not found\"}\n");
	if (!strncmp(req, "GET /healthz ", 13) || !strncmp(req, "GET /healthz?", 13)) {
		status = "200 OK";
		snprintf(body, sizeof body, "{\"status\": \"ok\"}");
	} else if (!strncmp(req, "GET /versions ", 14)) {
		status = "200 OK";
		snprintf(body, sizeof body,
		         "{\"falco_version\": \"%s\", \"standin\": \"" BANNER "\"}", STANDIN_VERSION);
	}
	n = snprintf(resp, sizeof resp,
	             "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
	             status, strlen(body), body);
	if (write(fd, resp, (size_t)n) < 0) {
		/* the client went away; nothing to do */
	}
}

static int run_daemon(struct config *cfg, const char *pidfile)
{
	struct sigaction sa;
	int lfd = -1;
	char started[64];
	time_t now = time(NULL);
	struct tm tm;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal; /* no SA_RESTART: poll() returns EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	gmtime_r(&now, &tm);
	strftime(started, sizeof started, "%Y-%m-%dT%H:%M:%SZ", &tm);
	logmsg("Falco stand-in started: pid=%d uid=%d start_time=%s version=%s engine.kind=%s", (int)getpid(),
	       (int)getuid(), started, STANDIN_VERSION, cfg->engine_kind);

	if (pidfile) {
		FILE *f = fopen(pidfile, "w");
		if (!f) {
			logmsg("Error: cannot write pidfile %s: %s", pidfile, strerror(errno));
			return 1;
		}
		fprintf(f, "%d\n", (int)getpid());
		fclose(f);
	}

	if (cfg->webserver_enabled) {
		struct sockaddr_in addr;
		int one = 1;
		memset(&addr, 0, sizeof addr);
		addr.sin_family = AF_INET;
		addr.sin_port = htons((unsigned short)cfg->listen_port);
		if (inet_pton(AF_INET, cfg->listen_address, &addr.sin_addr) != 1) {
			logmsg("Error: webserver.listen_address %s is not an IPv4 address (the stand-in serves IPv4 only)",
			       cfg->listen_address);
			return 1;
		}
		lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
		    bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(lfd, 16) != 0) {
			logmsg("Error: webserver: cannot listen on %s:%d: %s", cfg->listen_address, cfg->listen_port,
			       strerror(errno));
			return 1;
		}
		logmsg("Starting health webserver with threadiness 1, listening on %s:%d", cfg->listen_address,
		       cfg->listen_port);
	} else {
		logmsg("webserver disabled");
	}
	logmsg("Stand-in running (no event capture: " BANNER ")");

	while (!got_term) {
		struct pollfd pfd = {lfd, POLLIN, 0};
		int r = poll(&pfd, lfd >= 0 ? 1 : 0, 1000);
		if (got_hup) {
			got_hup = 0;
			logmsg("SIGHUP received");
		}
		if (r > 0 && (pfd.revents & POLLIN)) {
			int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			if (cfd >= 0) {
				serve_one(cfd);
				close(cfd);
			}
		}
	}
	logmsg("%s received, exiting", got_term == SIGINT ? "SIGINT" : "SIGTERM");
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

int main(int argc, char **argv)
{
	const char *config_path = "/etc/falco/falco.yaml", *pidfile = NULL;
	struct strlist overrides = {0}, rules_opt = {0}, validate = {0};
	int dry_run = 0;
	struct config cfg;
	char err[2048] = "";

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
			printf("Falco version: %s (x86_64)\n", STANDIN_VERSION);
			printf("Stand-in:      %s\n", BANNER);
			return 0;
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

	logmsg("Falco version: %s (x86_64) -- %s", STANDIN_VERSION, BANNER);
	for (size_t i = 0; i < overrides.n; i++)
		logmsg("option: %s", overrides.v[i]);
	if (load_config(config_path, &cfg, &overrides, err, sizeof err) != 0) {
		logmsg("Error: %s", err);
		return 1;
	}

	if (validate.n) {
		int bad = 0;
		for (size_t i = 0; i < validate.n; i++) {
			struct strlist one = {0};
			list_add(&one, validate.v[i]);
			if (load_rules(&one, err, sizeof err) != 0) {
				printf("%s: Invalid\n", validate.v[i]);
				fprintf(stderr, "Error: %s\n", err);
				bad = 1;
			} else {
				printf("%s: Ok\n", validate.v[i]);
			}
		}
		return bad;
	}

	if (load_rules(rules_opt.n ? &rules_opt : &cfg.rules_files, err, sizeof err) != 0) {
		logmsg("Error: %s", err);
		return 1;
	}
	if (dry_run) {
		logmsg("Dry run: configuration and rules are valid, exiting");
		return 0;
	}
	return run_daemon(&cfg, pidfile);
}
