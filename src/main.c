#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "config.h"
#include "control.h"
#include "egress.h"
#include "egress_proxy.h"
#include "hosts.h"
#include "init.h"
#include "log.h"
#include "loopback.h"
#include "loop.h"
#include "metrics.h"
#include "net.h"
#include "proxy.h"
#include "relay.h"
#include "status.h"
#include "supervisor.h"
#include "version.h"

enum exit_code { EXIT_OK = 0, EXIT_CONFIG = 1, EXIT_USAGE = 2, EXIT_RUNTIME = 3 };

#define DEFAULT_PARENT_CID 3
#define DEFAULT_CONTROL_PORT 6666
#define DEFAULT_STOP_TIMEOUT_S 10
/* Before the enclave half exits (or powers off), at most this long for the host to hear all. */
#define FLUSH_MS 5000

static const char usage_main[] =
    "Usage: qproxy <COMMAND>\n"
    "\n"
    "Carries TCP into and out of a QingTian (or Nitro) enclave over vsock.\n"
    "\n"
    "Commands:\n"
    "  host          The part of qproxy that runs outside the enclave\n"
    "  enclave       The part of qproxy that runs inside the enclave\n"
    "  check-config  Check the qproxy configuration file\n"
    "  status        Show the rules, counters and enclave link of the running host half\n"
    "  help          Print this message or the help of the given subcommand(s)\n"
    "\n"
    "Options:\n"
    "  -h, --help     Print help\n"
    "  -V, --version  Print version\n"
    "\n"
    "Exit codes: 0 ok, 1 bad configuration, 2 bad command line, 3 runtime failure.\n";

static const char usage_host[] =
    "The part of qproxy that runs outside the enclave\n"
    "\n"
    "Usage: qproxy host [OPTIONS] <CID>\n"
    "\n"
    "Arguments:\n"
    "  <CID>  The CID of the enclave [env: QPROXY_LISTEN_CID=]\n"
    "\n"
    "Options:\n"
    "      --config <CONFIG>          Path to the configuration file\n"
    "  -t, --threads <THREADS>        Accepted for compatibility and ignored: qproxy runs one\n"
    "                                 event loop in one thread [env: TOKIO_WORKER_THREADS=]\n"
    "      --ipv4                     Only resolve IPv4 addresses\n"
    "      --ipv6                     Only resolve IPv6 addresses\n"
    "      --control-port <PORT>      The vsock port of the control channel; no rule may use it\n"
    "                                 [env: QPROXY_CONTROL_PORT=] [default: 6666] [0..=65535]\n"
    "      --vsock-dir <DIR>          Emulate vsock with Unix sockets DIR/CID.PORT, to run both\n"
    "                                 halves on one Linux box; this half listens as CID 3.\n"
    "                                 Emulated peers have no CID, so the check that only the\n"
    "                                 enclave's CID may connect is not made [env: "
    "QPROXY_VSOCK_DIR=]\n"
    "      --status-socket <PATH>     Where `qproxy status` asks this half (root only)\n"
    "                                 [env: QPROXY_STATUS_SOCKET=] [default: " STATUS_PATH_DEFAULT
    "]\n"
    "      --metrics <IP:PORT>        Serve Prometheus metrics of both halves at\n"
    "                                 http://IP:PORT/metrics, e.g. 127.0.0.1:9464 or [::1]:9464;\n"
    "                                 over [host] metrics in the config [env: QPROXY_METRICS=]\n"
    "  -h, --help                     Print help\n"
    "\n"
    "Vsock connections are accepted only from <CID>; others are closed and logged.\n"
    "With [egress] in the config it takes the enclave's egress connections on its vsock_port,\n"
    "each checked against its own policy before it is connected.\n"
    "The enclave half's log lines arrive over the control channel and are written to this\n"
    "half's log, each marked '[enclave]'.\n"
    "Logs: [log_location] host_log in the config, else stderr; RUST_LOG=off|error|warn|info|\n"
    "debug|trace overrides log_level (default warn).\n";

static const char usage_enclave[] =
    "The part of qproxy that runs inside the enclave\n"
    "\n"
    "Usage: qproxy enclave [OPTIONS] [-- COMMAND [ARGS...]]\n"
    "\n"
    "Options:\n"
    "      --parent-cid <PARENT_CID>  The CID of the parent VM of this enclave\n"
    "                                 [env: QPROXY_PARENT_CID=] [default: 3]\n"
    "      --config <CONFIG>          Path to the configuration file\n"
    "  -t, --threads <THREADS>        Accepted for compatibility and ignored: qproxy runs one\n"
    "                                 event loop in one thread [env: TOKIO_WORKER_THREADS=]\n"
    "      --control-port <PORT>      The vsock port of the control channel; no rule may use it\n"
    "                                 [env: QPROXY_CONTROL_PORT=] [default: 6666] [0..=65535]\n"
    "      --vsock-dir <DIR>          Emulate vsock with Unix sockets DIR/CID.PORT, to run both\n"
    "                                 halves on one Linux box; needs --cid. Emulated peers have\n"
    "                                 no CID, so the check that only the parent may connect is\n"
    "                                 not made [env: QPROXY_VSOCK_DIR=]\n"
    "      --cid <CID>                This enclave's own CID, with --vsock-dir [env: QPROXY_CID=]\n"
    "      --restart <POLICY>         With a COMMAND: no, on-failure or always [default: no]\n"
    "      --stop-timeout <SECONDS>   With a COMMAND: from SIGTERM (or SIGINT) passed on to the\n"
    "                                 app to SIGKILL [default: 10] [0..=3600]\n"
    "  -h, --help                     Print help\n"
    "\n"
    "Vsock connections are accepted only from the parent CID; others are closed and logged.\n"
    "Logs: [log_location] enclave_log in the config, else stderr; RUST_LOG overrides log_level.\n"
    "Every log line also goes to the host half over the control channel.\n"
    "At start it brings the loopback interface up if it is down, and writes [enclave] "
    "hosts_file.\n"
    "With [egress] it serves HTTP CONNECT and SOCKS5 on 127.0.0.1:proxy_port, and with\n"
    "dns = true a DNS server on 127.0.0.1:53 (resolv_conf pointed at it).\n"
    "\n"
    "With -- COMMAND, it then runs the app: in its own process group, its stdout and stderr\n"
    "logged here and on the host as '[app]' lines (stdout at info, stderr at warn, whatever\n"
    "the log level). SIGTERM and SIGINT go to the app; when it ends and --restart does not\n"
    "start it again, this half exits with its status (128+N for signal N). As process 1 it\n"
    "mounts /proc, /sys, /dev, /run and /tmp where missing, reaps orphans, and powers the\n"
    "machine off at the end.\n";

static const char usage_check[] =
    "Check the qproxy configuration file\n"
    "\n"
    "Usage: qproxy check-config [--config] <CONFIG>\n"
    "\n"
    "Prints the rules understood, as canonical TOML, and exits 0; or prints every error\n"
    "as FILE:LINE: message and exits 1.\n"
    "\n"
    "Options:\n"
    "      --config <CONFIG>          Path to the configuration file\n"
    "      --control-port <PORT>      The control port the halves will use [default: 6666]\n"
    "  -h, --help                     Print help\n";

static const char usage_status[] =
    "Show the rules, counters and enclave link of the running host half\n"
    "\n"
    "Usage: qproxy status [--status-socket <PATH>]\n"
    "\n"
    "Asks the host half over its status socket and prints, per rule and half, the open and\n"
    "total connections, the failed ones, and the bytes each way. Exits 3 when no host half\n"
    "answers.\n"
    "\n"
    "Options:\n"
    "      --status-socket <PATH>     [env: QPROXY_STATUS_SOCKET=] [default: " STATUS_PATH_DEFAULT
    "]\n"
    "  -h, --help                     Print help\n";

enum cmd { CMD_HOST, CMD_ENCLAVE, CMD_CHECK, CMD_STATUS, NCMDS };

struct opts {
	enum cmd cmd;
	const char *config;
	const char *vsock_dir;
	const char *cid;	/* host: the enclave's CID; enclave: its own, with --vsock-dir */
	const char *parent_cid; /* enclave */
	const char *control_port;
	const char *threads;
	const char *status_socket;
	const char *metrics;
	const char *restart;
	const char *stop_timeout;
	char **app_argv; /* enclave: COMMAND [ARGS...] after --, NULL-terminated */
	int family;
};

static int usage_error(const char *cmd, const char *fmt, const char *arg)
{
	fprintf(stderr, "qproxy: error: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nRun 'qproxy %s%s--help' for usage.\n", cmd ? cmd : "", cmd ? " " : "");
	return EXIT_USAGE;
}

/* Strict decimal in [min, max]: no sign, no blanks, no trailing text. */
static bool parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	uint64_t v = 0;

	if (!s || !*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > max)
			return false;
	}
	if (v < min)
		return false;
	*out = (uint32_t)v;
	return true;
}

struct optdef {
	const char *name;
	char short_name;
	unsigned cmds; /* bit per enum cmd */
	bool value;
	size_t field; /* offset of the const char * in struct opts, or 0 */
};

#define ALL ((1u << CMD_HOST) | (1u << CMD_ENCLAVE) | (1u << CMD_CHECK))
#define HALVES ((1u << CMD_HOST) | (1u << CMD_ENCLAVE))
#define F(x) offsetof(struct opts, x)

static const struct optdef optdefs[] = {
    {"config", 0, ALL, true, F(config)},
    {"control-port", 0, ALL, true, F(control_port)},
    {"threads", 't', HALVES, true, F(threads)},
    {"vsock-dir", 0, HALVES, true, F(vsock_dir)},
    {"ipv4", 0, 1u << CMD_HOST, false, 0},
    {"ipv6", 0, 1u << CMD_HOST, false, 0},
    {"parent-cid", 0, 1u << CMD_ENCLAVE, true, F(parent_cid)},
    {"cid", 0, 1u << CMD_ENCLAVE, true, F(cid)},
    {"restart", 0, 1u << CMD_ENCLAVE, true, F(restart)},
    {"stop-timeout", 0, 1u << CMD_ENCLAVE, true, F(stop_timeout)},
    {"status-socket", 0, (1u << CMD_HOST) | (1u << CMD_STATUS), true, F(status_socket)},
    /* The enclave half takes it only to say where the metrics are served. */
    {"metrics", 0, HALVES, true, F(metrics)},
    {"help", 'h', ALL | (1u << CMD_STATUS), false, 0},
};

static const char *const cmd_names[] = {"host", "enclave", "check-config", "status"};
static const char *const cmd_usage[] = {usage_host, usage_enclave, usage_check, usage_status};

/* name: len bytes after "--" (is_long), or the one letter after "-". */
static const struct optdef *find_opt(const char *name, size_t len, bool is_long, enum cmd cmd)
{
	for (size_t i = 0; i < sizeof(optdefs) / sizeof(optdefs[0]); i++) {
		const struct optdef *d = &optdefs[i];
		if (!(d->cmds & (1u << cmd)))
			continue;
		if (is_long ? strlen(d->name) == len && memcmp(d->name, name, len) == 0
			    : len == 1 && d->short_name == name[0])
			return d;
	}
	return NULL;
}

/* Returns -1 to go on, or an exit code (help printed, or a usage error). */
static int parse_args(int argc, char **argv, struct opts *o)
{
	const char *cmd = cmd_names[o->cmd];
	const char *positional = NULL;
	bool only_positional = false;

	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		if (only_positional || a[0] != '-' || a[1] == '\0') {
			if (positional)
				return usage_error(cmd, "unexpected argument '%s'", a);
			positional = a;
			continue;
		}
		if (strcmp(a, "--") == 0 && o->cmd == CMD_ENCLAVE) {
			/* The rest is the app's: its options are not ours. */
			if (i + 1 >= argc)
				return usage_error(cmd, "%s", "'--' must be followed by a COMMAND");
			o->app_argv = argv + i + 1;
			break;
		}
		if (strcmp(a, "--") == 0) {
			only_positional = true;
			continue;
		}
		bool is_long = a[1] == '-';
		const char *name = is_long ? a + 2 : a + 1;
		const char *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);
		const char *attached = eq ? eq + 1 : NULL;
		if (!is_long && len > 1) { /* -t4 */
			attached = name + 1;
			len = 1;
		}
		const struct optdef *d = find_opt(name, len, is_long, o->cmd);
		if (!d)
			return usage_error(cmd, "unknown option '%s'", a);
		if (strcmp(d->name, "help") == 0) {
			fputs(cmd_usage[o->cmd], stdout);
			return EXIT_OK;
		}
		if (!d->value) {
			if (attached)
				return usage_error(cmd, "option '%s' takes no value", a);
			o->family = strcmp(d->name, "ipv4") == 0 ? AF_INET : AF_INET6;
			continue;
		}
		if (!attached) {
			if (i + 1 >= argc)
				return usage_error(cmd, "option '%s' needs a value", a);
			attached = argv[++i];
		}
		*(const char **)((char *)o + d->field) = attached;
	}
	if (o->cmd == CMD_HOST && positional)
		o->cid = positional;
	else if (o->cmd == CMD_CHECK && positional && !o->config)
		o->config = positional;
	else if (positional)
		return usage_error(cmd, "unexpected argument '%s'", positional);
	if (!o->app_argv && (o->restart || o->stop_timeout))
		return usage_error(
		    cmd, "%s", "--restart and --stop-timeout need an app: -- COMMAND [ARGS...]");
	return -1;
}

static const char *env_or(const char *value, const char *name)
{
	const char *e;

	if (value)
		return value;
	e = getenv(name);
	return e && *e ? e : NULL;
}

/*
 * RUST_LOG as the vendor's tool reads it: a level ("info"), or EnvFilter
 * directives ("warn,qproxy=debug") of which we honour the bare level and any
 * qproxy target. -1 when it names no level we can use.
 */
static int rust_log_level(const char *spec)
{
	char buf[256];
	int level = -1;

	snprintf(buf, sizeof(buf), "%s", spec);
	for (char *save, *d = strtok_r(buf, ",", &save); d; d = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(d, '=');
		if (!eq) {
			int l = log_level_parse(d);
			if (l >= 0 && level < 0)
				level = l;
			continue;
		}
		*eq = '\0';
		if (strncmp(d, "qproxy", 6) == 0 && log_level_parse(eq + 1) >= 0)
			return log_level_parse(eq + 1);
	}
	return level;
}

static void raise_nofile(void)
{
	struct rlimit rl;

	/* Each connection costs two fds; the soft default of 1024 is far too low for a proxy. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int load_config(const struct opts *o, uint32_t control_port, struct config *c)
{
	if (config_load(c, o->config, control_port) == 0) {
		for (size_t i = 0; i < c->nwarnings; i++)
			fprintf(stderr, "%s\n", c->warnings[i]);
		return 0;
	}
	for (size_t i = 0; i < c->nerrors; i++)
		fprintf(stderr, "%s\n", c->errors[i]);
	if (c->nomem)
		fprintf(stderr, "%s: out of memory\n", o->config);
	return -1;
}

static int check_config(const struct opts *o, uint32_t control_port)
{
	struct config c;

	if (!o->config)
		return usage_error("check-config", "%s", "no configuration file given");
	if (load_config(o, control_port, &c) != 0) {
		config_free(&c);
		return EXIT_CONFIG;
	}
	config_print(&c, stdout);
	config_free(&c);
	return EXIT_OK;
}

static int status(const struct opts *o)
{
	char err[512];

	if (status_query(o->status_socket, stdout, err, sizeof(err)) != 0) {
		fprintf(stderr, "qproxy: error: %s\n", err);
		return EXIT_RUNTIME;
	}
	return EXIT_OK;
}

/* What the enclave half does for itself before it listens: loopback, hosts file. */
static int enclave_setup(const struct config *c, char *err, size_t errlen)
{
	int r = loopback_up(err, errlen);

	if (r < 0)
		return -1;
	if (r > 0)
		log_warn(0, "the loopback interface lo was down: brought it up with 127.0.0.1/8");
	if (*c->hosts_file) {
		if (hosts_write(c->hosts_file, c, err, errlen) != 0)
			return -1;
		log_info(0, "wrote the outbound hostnames to %s", c->hosts_file);
	}
	return 0;
}

/* The CIDs of a half's command line: its peer's in po, its own (with --vsock-dir) in self. */
static int half_cids(const struct opts *o, struct proxy_opts *po, uint32_t *self)
{
	const char *cmd = cmd_names[o->cmd];

	*self = DEFAULT_PARENT_CID;
	if (o->cmd == CMD_HOST) {
		if (!o->cid)
			return usage_error(cmd, "%s", "the enclave's <CID> is required");
		if (!parse_u32(o->cid, 0, UINT32_MAX - 1, &po->peer_cid))
			return usage_error(cmd, "invalid enclave CID '%s'", o->cid);
		return -1;
	}
	po->peer_cid = DEFAULT_PARENT_CID;
	if (o->parent_cid && !parse_u32(o->parent_cid, 0, UINT32_MAX - 1, &po->peer_cid))
		return usage_error(cmd, "invalid --parent-cid '%s'", o->parent_cid);
	if (o->vsock_dir && !o->cid)
		return usage_error(cmd, "%s", "--vsock-dir needs --cid, this enclave's own CID");
	if (o->cid && !parse_u32(o->cid, 0, UINT32_MAX - 1, self))
		return usage_error(cmd, "invalid --cid '%s'", o->cid);
	return -1;
}

/* The level: the config's, RUST_LOG over it. */
static void log_level_setup(const struct config *c)
{
	int level = c->log_level >= 0 ? c->log_level : LOG_WARN;
	const char *rust_log = getenv("RUST_LOG");

	if (rust_log && *rust_log) {
		int l = rust_log_level(rust_log);
		if (l >= 0)
			level = l;
		else
			fprintf(stderr, "qproxy: warning: RUST_LOG=%s names no level; using %s\n",
				rust_log, log_level_name(level));
	}
	log_set_level(level);
}

/* This half's log file, if it has one. */
static int log_file_setup(const struct config *c, bool host, char *err, size_t errlen)
{
	const char *file = host ? c->host_log : c->enclave_log;
	if (c->has_log_location && *file)
		return log_open(host ? c->host_log_dir : c->enclave_log_dir, file, err, errlen);
	return 0;
}

/* What the process needs whatever the half: signals, fds, the copy mode, the vsock emulation. */
static int process_setup(const struct opts *o, uint32_t self_cid, char *err, size_t errlen)
{
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	/* A diagnostic switch, and the way the benchmarks compare: QPROXY_SPLICE=0 copies. */
	const char *sp = getenv("QPROXY_SPLICE");
	if (sp && strcmp(sp, "0") == 0)
		relay_use_splice(false);
	if (o->vsock_dir && net_vsock_emulate(o->vsock_dir, self_cid, err, errlen) != 0)
		return -1;
	return 0;
}

static void on_app_changed(void *arg, const struct msg_app *app)
{
	control_set_app(arg, app);
}

/*
 * The loop until the half stops: a signal (passed on to the app, when there is
 * one, which then ends the half by ending), or the app's end. SIGCHLD reaps.
 * A caught signal's number, 0 when the app ended, or -1 on an error.
 */
static int run_loop(struct loop *l, struct supervisor *sup)
{
	for (;;) {
		int sig = loop_run(l);
		if (sig == SIGCHLD && sup) {
			supervisor_reap(sup);
		} else if (sig == SIGCHLD) {
			/* Process 1 without an app: orphans still come to it. */
			while (waitpid(-1, NULL, WNOHANG) > 0)
				;
		} else if (sup && (sig == SIGTERM || sig == SIGINT)) {
			supervisor_stop(sup, sig);
		} else {
			return sig;
		}
	}
}

/* Let the host half hear the end (the app's last lines, its exit), for a while at most. */
static void flush_control(struct loop *l, struct control *ctl, struct supervisor *sup)
{
	int64_t end = loop_now() + FLUSH_MS;

	while (!control_drained(ctl) && loop_now() < end)
		if (loop_once(l, 100) == SIGCHLD && sup)
			supervisor_reap(sup);
}

/* The half itself, until a signal stops it: an exit code. */
static int run(const struct opts *o, const struct config *c, const struct proxy_opts *po,
	       uint32_t control_port, const struct supervisor_opts *so)
{
	bool host = o->cmd == CMD_HOST;
	const char *cmd = cmd_names[o->cmd];
	char err[512];
	int rc = EXIT_RUNTIME;
	struct control_opts co = {
	    .role = po->role,
	    .peer_cid = po->peer_cid,
	    .port = control_port,
	};
	struct control *ctl = NULL;
	struct status_server *st = NULL;
	struct egress_server *es = NULL;
	struct egress_proxy *ep = NULL;
	struct metrics *ms = NULL;
	const char *metrics_at = o->metrics ? o->metrics : c->metrics;
	struct supervisor *sup = NULL;
	bool pid1 = !host && init_is_pid1();
	struct loop *l = loop_new();
	struct proxy *px = l ? proxy_new(l, c, po) : NULL;
	if (px)
		ctl = control_new(l, c, px, &co);
	if (ctl && host)
		st = status_new(l, c, px, ctl, po->peer_cid);
	if (st)
		es = egress_server_new(l, c, po);
	if (es)
		status_set_egress(st, egress_server_stats(es));
	if (ctl && !host)
		ep = egress_proxy_new(l, c, po);
	if (ep)
		control_set_egress(ctl, egress_proxy_stats(ep));
	if (st && *metrics_at)
		ms = metrics_new(l, c, px, ctl);
	if (ms && es)
		metrics_set_egress(ms, egress_server_stats(es));
	if (ctl && so)
		sup = supervisor_new(l, so, on_app_changed, ctl);
	if (!ctl || (host && !es) || (!host && !ep) || (host && *metrics_at && !ms) ||
	    (so && !sup) || loop_catch_signal(l, SIGTERM) != 0 ||
	    loop_catch_signal(l, SIGINT) != 0 ||
	    ((sup || pid1) && loop_catch_signal(l, SIGCHLD) != 0)) {
		fprintf(stderr, "qproxy: error: start: %s\n", strerror(errno));
		goto out;
	}
	if ((!host && enclave_setup(c, err, sizeof(err)) != 0) ||
	    proxy_listen(px, err, sizeof(err)) != 0 ||
	    (host ? egress_server_listen(es, err, sizeof(err))
		  : egress_proxy_listen(ep, err, sizeof(err))) != 0 ||
	    control_start(ctl, err, sizeof(err)) != 0) {
		fprintf(stderr, "qproxy: error: %s\n", err);
		log_error(0, "%s", err);
		goto out;
	}
	/* Status is a convenience: without it the host half still does its job. */
	enum status_start_result sr =
	    host ? status_start(st, o->status_socket, err, sizeof(err)) : STATUS_STARTED;
	if (sr == STATUS_UNSAFE_DIR) {
		fprintf(stderr, "qproxy: error: %s\n", err);
		log_error(0, "%s", err);
		goto out;
	}
	if (sr == STATUS_UNAVAILABLE)
		log_warn(0, "control: no qproxy status: %s", err);
	/* Unlike status, asked for by name: without it the half must not seem to run fine. */
	struct sockaddr_storage at;
	socklen_t atlen = ms ? net_parse_ip_port(metrics_at, &at, err, sizeof(err)) : 0;
	if (ms && (atlen == 0 ||
		   metrics_start(ms, (struct sockaddr *)&at, atlen, err, sizeof(err)) != 0)) {
		fprintf(stderr, "qproxy: error: %s\n", err);
		log_error(0, "%s", err);
		goto out;
	}
	log_info(0, "qproxy %s %s started: %zu rules, %s CID %u%s%s", QPROXY_VERSION, cmd,
		 c->nrules, host ? "enclave" : "parent", po->peer_cid,
		 o->vsock_dir ? ", vsock emulated" : "", pid1 ? ", as process 1" : "");
	/* Only now, with the listeners up, lo up and the hosts file written: the app's network. */
	if (sup && supervisor_start(sup, err, sizeof(err)) != 0) {
		fprintf(stderr, "qproxy: error: %s\n", err);
		log_error(0, "%s", err);
		goto out;
	}
	int sig = run_loop(l, sup);
	if (sig < 0) {
		log_error(0, "event loop: %s", strerror(errno));
		fprintf(stderr, "qproxy: error: event loop: %s\n", strerror(errno));
		goto out;
	}
	rc = sup ? supervisor_status(sup) : EXIT_OK;
	if (sup)
		log_info(0, "qproxy %s stopping: the app has ended, status %d", cmd, rc);
	else
		log_info(0, "qproxy %s stopping on signal %d", cmd, sig);
	if (sup || pid1)
		flush_control(l, ctl, sup);
out:
	supervisor_free(sup);
	metrics_free(ms);
	egress_server_free(es);
	egress_proxy_free(ep);
	status_free(st);
	control_free(ctl);
	proxy_free(px);
	loop_free(l);
	return rc;
}

/* The app's options from the command line into so; -1, or a usage error's exit code. */
static int app_opts(const struct opts *o, struct supervisor_opts *so)
{
	uint32_t secs = DEFAULT_STOP_TIMEOUT_S;

	*so = (struct supervisor_opts){.argv = o->app_argv, .restart = RESTART_NO};
	if (o->restart && supervisor_restart_parse(o->restart, &so->restart) != 0)
		return usage_error(cmd_names[o->cmd],
				   "invalid --restart '%s' (no, on-failure, always)", o->restart);
	if (o->stop_timeout && !parse_u32(o->stop_timeout, 0, 3600, &secs))
		return usage_error(cmd_names[o->cmd],
				   "invalid --stop-timeout '%s' (0..3600 seconds)",
				   o->stop_timeout);
	so->stop_timeout_ms = (int64_t)secs * 1000;
	return -1;
}

static int run_half(const struct opts *o, uint32_t control_port)
{
	bool host = o->cmd == CMD_HOST;
	struct supervisor_opts so;
	struct proxy_opts po = {.role = host ? PROXY_HOST : PROXY_ENCLAVE, .family = o->family};
	uint32_t self_cid;
	char err[512];
	struct config c;

	int rc = half_cids(o, &po, &self_cid);
	if (rc >= 0 || (o->app_argv && (rc = app_opts(o, &so)) >= 0))
		return rc;
	if (!o->config)
		return usage_error(cmd_names[o->cmd], "%s",
				   "no configuration file given: use --config FILE");
	if (load_config(o, control_port, &c) != 0) {
		config_free(&c);
		return EXIT_CONFIG;
	}
	bool pid1 = !host && init_is_pid1();
	log_level_setup(&c);
	/* Process 1 mounts first: the log file may be on /tmp or /run. */
	if (pid1)
		init_mount();
	if (log_file_setup(&c, host, err, sizeof(err)) != 0 ||
	    process_setup(o, self_cid, err, sizeof(err)) != 0) {
		fprintf(stderr, "qproxy: error: %s\n", err);
		rc = EXIT_RUNTIME;
	} else {
		rc = run(o, &c, &po, control_port, o->app_argv ? &so : NULL);
	}
	config_free(&c);
	return rc;
}

static int qproxy_main(int argc, char **argv)
{
	struct opts o = {.family = AF_UNSPEC};
	const char *cmd = argc > 1 ? argv[1] : NULL;

	if (!cmd) {
		fputs(usage_main, stderr);
		return EXIT_USAGE;
	}
	if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
		fputs(usage_main, stdout);
		return EXIT_OK;
	}
	if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0) {
		printf("qproxy %s\n", QPROXY_VERSION);
		return EXIT_OK;
	}
	if (strcmp(cmd, "help") == 0) {
		if (argc < 3) {
			fputs(usage_main, stdout);
			return EXIT_OK;
		}
		for (int i = 0; i < NCMDS; i++)
			if (strcmp(argv[2], cmd_names[i]) == 0) {
				fputs(cmd_usage[i], stdout);
				return EXIT_OK;
			}
		return usage_error(NULL, "no such command '%s'", argv[2]);
	}
	int i;
	for (i = 0; i < NCMDS && strcmp(cmd, cmd_names[i]) != 0; i++)
		;
	if (i == NCMDS)
		return usage_error(NULL, "no such command '%s'", cmd);
	o.cmd = (enum cmd)i;

	int rc = parse_args(argc, argv, &o);
	if (rc >= 0)
		return rc;
	o.control_port = env_or(o.control_port, "QPROXY_CONTROL_PORT");
	o.threads = env_or(o.threads, "TOKIO_WORKER_THREADS");
	o.vsock_dir = env_or(o.vsock_dir, "QPROXY_VSOCK_DIR");
	o.status_socket = env_or(o.status_socket, "QPROXY_STATUS_SOCKET");
	if (o.cmd == CMD_HOST)
		o.metrics = env_or(o.metrics, "QPROXY_METRICS");
	if (o.cmd == CMD_ENCLAVE && o.metrics)
		return usage_error(cmd, "%s",
				   "--metrics is the host half's: it serves both halves' figures, "
				   "the enclave's as they come over the control channel");
	if (!o.status_socket)
		o.status_socket = STATUS_PATH_DEFAULT;
	if (o.cmd == CMD_HOST)
		o.cid = env_or(o.cid, "QPROXY_LISTEN_CID");
	if (o.cmd == CMD_ENCLAVE) {
		o.cid = env_or(o.cid, "QPROXY_CID");
		o.parent_cid = env_or(o.parent_cid, "QPROXY_PARENT_CID");
	}

	uint32_t control_port = DEFAULT_CONTROL_PORT, threads;
	if (o.control_port && !parse_u32(o.control_port, 0, 65535, &control_port))
		return usage_error(cmd, "invalid control port '%s' (0..65535)", o.control_port);
	if (o.threads && !parse_u32(o.threads, 1, 1024, &threads))
		return usage_error(cmd, "invalid thread count '%s'", o.threads);
	struct sockaddr_storage ss;
	char why[NET_ERR_LEN];
	if (o.metrics && net_parse_ip_port(o.metrics, &ss, why, sizeof(why)) == 0)
		return usage_error(cmd, "invalid --metrics: %s", why);
	if (o.cmd == CMD_CHECK)
		return check_config(&o, control_port);
	if (o.cmd == CMD_STATUS)
		return status(&o);
	return run_half(&o, control_port);
}

int main(int argc, char **argv)
{
	int rc = qproxy_main(argc, argv);

	/*
	 * The enclave half as process 1 must not exit, whatever ended it (a bad config
	 * too): the kernel would panic. The other commands keep their exit, as the CMD of
	 * a container (a PID namespace) they are often process 1 and mean to exit.
	 */
	if (init_is_pid1() && argc > 1 && strcmp(argv[1], "enclave") == 0) {
		log_always(LOG_INFO, "qproxy: process 1 powering off (exit status %d)", rc);
		init_poweroff();
		log_error(0, "power off: %s", strerror(errno));
	}
	return rc;
}
