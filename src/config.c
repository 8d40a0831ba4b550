#include "config.h"

#include "log.h"
#include "message.h"
#include "net.h"
#include "proxyproto.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/*
 * The config is read through inih with Debian's default build switches, and
 * each of them would change what a TOML file means. So our reader checks every
 * line's TOML structure itself and hands inih only lines it cannot misread:
 * "[N]" for the N-th table header (inih would merge consecutive [[x]] tables),
 * "key=value" with no indentation (inih would take an indented line for a
 * continuation) and with every ';' turned into SEMI (inih would cut the value at
 * " ;"), "key=" for a key line it has reported, and "" for anything else.
 * The handler sees one key at a time; the value layer below it decodes, checks
 * and stores the value; the checks across tables come after the last line.
 */

/* The longest line, without its newline, that inih reads in one go. */
#define LINE_MAX_LEN (CONFIG_STR_MAX - 1)
/*
 * A raw line may be longer than what inih takes: comments and blanks never
 * reach it. Only the "key=value" handed on must fit in LINE_MAX_LEN.
 */
#define RAW_MAX 4096
/*
 * Stand for ';', the start of an array and an element of it, between reader
 * and handler: raw control characters are rejected, so none comes from a file.
 */
#define SEMI '\x1f'
#define ARRAY_OPEN '\x1d'
#define ARRAY_ITEM '\x1e'
#define DEFAULT_LOG_DIR "/var/log/qproxy"
#define VSOCK_PORT_MAX 0xfffffffeu /* 0xffffffff is VMADDR_PORT_ANY */
#define LEVEL_NAMES "off, error, warn, info, debug, trace"

enum kind { T_INBOUND, T_OUTBOUND, T_ENCLAVE, T_EGRESS, T_HOST, T_LOG, T_IGNORED };

static const struct {
	const char *name;
	bool array; /* [[name]], a rule each; else [name], at most once, held in struct config */
} kinds[] = {
    [T_INBOUND] = {"inbound_connections", true},
    [T_OUTBOUND] = {"outbound_connections", true},
    [T_ENCLAVE] = {"enclave", false},
    [T_EGRESS] = {"egress", false},
    [T_HOST] = {"host", false},
    [T_LOG] = {"log_location", false},
};

/*
 * V_ADDRESS: a dotted-quad IPv4 address in 127.0.0.0/8, stored as a uint32_t
 * in host byte order and printed only when it is not INADDR_LOOPBACK, its
 * default. V_PATH: a string holding an absolute path. V_NUMBER: an integer in
 * 1..number_max(), a uint32_t printed only when set (0 stands for not set).
 * V_PP: "v1" or "v2", an enum pp_version in a uint8_t, printed only when set.
 * V_BOOL: true or false, unquoted, printed only when true. V_POLICY: an array of
 * strings, each a policy entry, into a struct policy_list; always printed, one
 * entry a line. V_LISTEN: a string "IPv4:PORT" or "[IPv6]:PORT"
 * (net_parse_ip_port()), kept as written.
 */
enum type {
	V_TCP_PORT,
	V_VSOCK_PORT,
	V_STRING,
	V_LOG_LEVEL,
	V_ADDRESS,
	V_PATH,
	V_NUMBER,
	V_PP,
	V_BOOL,
	V_POLICY,
	V_LISTEN
};

/*
 * Ports that two rules must not share: vsock ports, and TCP ports the halves
 * listen on. The host half listens on 0.0.0.0; the enclave half on each
 * outbound rule's enclave_address, so its ports clash only at one address.
 */
enum space { SP_NONE, SP_VSOCK, SP_HOST, SP_ENCLAVE };

struct key {
	enum kind kind;
	const char *name;
	enum type type;
	bool required;
	enum space space;
	size_t offset; /* in struct rule, or in struct config for a [name] table */
};

#define RULE(f) offsetof(struct rule, f)
#define CONF(f) offsetof(struct config, f)

/* In the order config_print() writes them, which is the guide's. */
static const struct key keys[] = {
    {T_INBOUND, "host_port", V_TCP_PORT, true, SP_HOST, RULE(host_port)},
    /*
     * The enclave half connects to 127.0.0.1:enclave_port, where an outbound
     * rule's tcp_port would be listening; but the guide's reference config
     * has enclave_port = tcp_port = 443 and must pass, so it is not a clash.
     */
    {T_INBOUND, "enclave_port", V_TCP_PORT, true, SP_NONE, RULE(enclave_port)},
    {T_INBOUND, "vsock_port", V_VSOCK_PORT, true, SP_VSOCK, RULE(vsock_port)},
    /* Limits, in both kinds of rule: each half enforces its own. */
    {T_INBOUND, "max_connections", V_NUMBER, false, SP_NONE, RULE(max_connections)},
    {T_INBOUND, "idle_timeout", V_NUMBER, false, SP_NONE, RULE(idle_timeout)},
    {T_INBOUND, "connect_timeout", V_NUMBER, false, SP_NONE, RULE(connect_timeout)},
    {T_INBOUND, "proxy_protocol", V_PP, false, SP_NONE, RULE(proxy_protocol)},
    {T_INBOUND, "accept_proxy_protocol", V_BOOL, false, SP_NONE, RULE(accept_proxy_protocol)},
    {T_OUTBOUND, "hostname", V_STRING, true, SP_NONE, RULE(hostname)},
    {T_OUTBOUND, "vsock_port", V_VSOCK_PORT, true, SP_VSOCK, RULE(vsock_port)},
    /* The enclave half listens on enclave_address:tcp_port. */
    {T_OUTBOUND, "tcp_port", V_TCP_PORT, true, SP_ENCLAVE, RULE(tcp_port)},
    {T_OUTBOUND, "enclave_address", V_ADDRESS, false, SP_NONE, RULE(enclave_address)},
    {T_OUTBOUND, "max_connections", V_NUMBER, false, SP_NONE, RULE(max_connections)},
    {T_OUTBOUND, "idle_timeout", V_NUMBER, false, SP_NONE, RULE(idle_timeout)},
    {T_OUTBOUND, "connect_timeout", V_NUMBER, false, SP_NONE, RULE(connect_timeout)},
    {T_ENCLAVE, "hosts_file", V_PATH, false, SP_NONE, CONF(hosts_file)},
    {T_ENCLAVE, "sync_clock", V_BOOL, false, SP_NONE, CONF(sync_clock)},
    {T_EGRESS, "vsock_port", V_VSOCK_PORT, true, SP_VSOCK, CONF(egress_vsock_port)},
    /* The enclave half listens on 127.0.0.1:proxy_port, where an outbound rule might. */
    {T_EGRESS, "proxy_port", V_TCP_PORT, false, SP_ENCLAVE, CONF(egress_proxy_port)},
    {T_EGRESS, "dns", V_BOOL, false, SP_NONE, CONF(egress_dns)},
    {T_EGRESS, "resolv_conf", V_PATH, false, SP_NONE, CONF(egress_resolv_conf)},
    {T_EGRESS, "connect_timeout", V_NUMBER, false, SP_NONE, CONF(egress_connect_timeout)},
    /* As a rule's: each half enforces its own. */
    {T_EGRESS, "max_connections", V_NUMBER, false, SP_NONE, CONF(egress_max_connections)},
    {T_EGRESS, "idle_timeout", V_NUMBER, false, SP_NONE, CONF(egress_idle_timeout)},
    {T_EGRESS, "allow", V_POLICY, false, SP_NONE, CONF(egress.allow)},
    {T_EGRESS, "deny", V_POLICY, false, SP_NONE, CONF(egress.deny)},
    /* The host half's Prometheus endpoint; --metrics overrides it. */
    {T_HOST, "metrics", V_LISTEN, false, SP_NONE, CONF(metrics)},
    {T_LOG, "host_log", V_STRING, false, SP_NONE, CONF(host_log)},
    {T_LOG, "enclave_log", V_STRING, false, SP_NONE, CONF(enclave_log)},
    {T_LOG, "log_level", V_LOG_LEVEL, false, SP_NONE, CONF(log_level)},
    {T_LOG, "host_log_dir", V_STRING, false, SP_NONE, CONF(host_log_dir)},
    {T_LOG, "enclave_log_dir", V_STRING, false, SP_NONE, CONF(enclave_log_dir)},
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))
_Static_assert(NKEYS <= 32, "struct table keeps one bit per key in an unsigned");

struct table {
	enum kind kind;
	int line;	     /* of its header */
	size_t rule;	     /* index in c->rules, for T_INBOUND and T_OUTBOUND */
	int key_line[NKEYS]; /* where each key was set, 0 when it was not */
	unsigned valid;	     /* bit k: keys[k] was set to a valid value */
};

struct error {
	int line;
	size_t seq;
	bool warning;
	char *msg;
};

struct parser {
	struct config *c;
	const char *name;
	FILE *f;
	uint32_t control_port;
	int line;
	int single_line[T_IGNORED]; /* of each [name] table's header, 0 when none yet */
	int read_errno;
	bool nomem;
	struct table *tables;
	size_t ntables, tables_cap, rules_cap;
	struct error *errors;
	size_t nerrors, errors_cap;
	char raw[RAW_MAX + 2]; /* the line being read */
	/*
	 * An array value, read one element per reader call so that no line limit
	 * caps its length: arr_line is its key's line (0: no array is open),
	 * arr_rest what is left of the current line (NULL: read the next one),
	 * arr_elem whether an element came since the '[' or the last ','. elem
	 * holds the element handed on, as written; arr_skip says the handler
	 * refused the array, whose elements then go nowhere.
	 */
	int arr_line;
	char *arr_rest;
	bool arr_elem, arr_skip;
	char arr_key[CONFIG_STR_MAX];
	char elem[RAW_MAX + 1];
};

/* arr with room for element n, or NULL (and arr unchanged) when out of memory. */
static void *grow(struct parser *p, void *arr, size_t *cap, size_t n, size_t size)
{
	void *a = array_grow(arr, cap, n + 1, size);

	if (!a)
		p->nomem = true;
	return a;
}

static bool note_at(struct parser *p, bool warning, int line, const char *fmt, va_list ap)
{
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	struct error *errors = grow(p, p->errors, &p->errors_cap, p->nerrors, sizeof(*errors));
	if (!errors)
		return false;
	p->errors = errors;
	const char *kind = warning ? "warning: " : "";
	int n = line ? snprintf(NULL, 0, "%s:%d: %s%s", p->name, line, kind, msg)
		     : snprintf(NULL, 0, "%s: %s%s", p->name, kind, msg);
	char *s = malloc((size_t)n + 1);
	if (!s) {
		p->nomem = true;
		return false;
	}
	if (line)
		snprintf(s, (size_t)n + 1, "%s:%d: %s%s", p->name, line, kind, msg);
	else
		snprintf(s, (size_t)n + 1, "%s: %s%s", p->name, kind, msg);
	p->errors[p->nerrors] = (struct error){line, p->nerrors, warning, s};
	p->nerrors++;
	return false;
}

/* Always false, for "return error_at(...)". line 0: an error about the whole file. */
__attribute__((format(printf, 3, 4))) static bool error_at(struct parser *p, int line,
							   const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	note_at(p, false, line, fmt, ap);
	va_end(ap);
	return false;
}

/* Something legal that will not work as the user probably means; the config still loads. */
__attribute__((format(printf, 3, 4))) static void warning_at(struct parser *p, int line,
							     const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	note_at(p, true, line, fmt, ap);
	va_end(ap);
}

static const char *table_title(enum kind kind)
{
	static const char *const titles[] = {
	    [T_INBOUND] = "[[inbound_connections]]",
	    [T_OUTBOUND] = "[[outbound_connections]]",
	    [T_ENCLAVE] = "[enclave]",
	    [T_EGRESS] = "[egress]",
	    [T_HOST] = "[host]",
	    [T_LOG] = "[log_location]",
	};
	return titles[kind];
}

static char *table_base(struct parser *p, const struct table *t)
{
	return kinds[t->kind].array ? (char *)&p->c->rules[t->rule] : (char *)p->c;
}

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

static bool is_key_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '_' || ch == '-';
}

static char *skip_blanks(char *s)
{
	while (is_blank(*s))
		s++;
	return s;
}

static size_t key_len(const char *s)
{
	size_t n = 0;

	while (is_key_char(s[n]))
		n++;
	return n;
}

/* Starts table number p->ntables and tells inih so with "[N]". */
static void table_start(struct parser *p, enum kind kind, char *out)
{
	struct table *t = grow(p, p->tables, &p->tables_cap, p->ntables, sizeof(*t));
	if (!t) {
		out[0] = '\0';
		return;
	}
	p->tables = t;
	t += p->ntables;
	*t = (struct table){.kind = kind, .line = p->line};
	if (kind == T_INBOUND || kind == T_OUTBOUND) {
		struct config *c = p->c;
		struct rule *rules = grow(p, c->rules, &p->rules_cap, c->nrules, sizeof(*rules));
		if (!rules) {
			t->kind = T_IGNORED;
		} else {
			c->rules = rules;
			t->rule = c->nrules++;
			c->rules[t->rule] = (struct rule){
			    .dir = kind == T_INBOUND ? RULE_INBOUND : RULE_OUTBOUND,
			    .line = p->line,
			    .enclave_address = kind == T_OUTBOUND ? INADDR_LOOPBACK : 0,
			};
		}
	} else if (kind != T_IGNORED) {
		p->single_line[kind] = p->line;
		if (kind == T_LOG)
			p->c->has_log_location = true;
		if (kind == T_EGRESS)
			p->c->has_egress = true;
	}
	sprintf(out, "[%zu]", p->ntables++);
}

/* s: a trimmed line starting with '['. */
static bool parse_header(struct parser *p, char *s, char *out)
{
	bool array = s[1] == '[';
	char *name = skip_blanks(s + (array ? 2 : 1));
	size_t n = key_len(name);
	char *e = skip_blanks(name + n);
	bool closed = n > 0 && e[0] == ']' && (!array || e[1] == ']');
	enum kind kind;

	if (closed)
		e = skip_blanks(e + (array ? 2 : 1));
	if (!closed || (*e && *e != '#')) {
		error_at(p, p->line, "malformed table header %s", s);
		return false;
	}
	name[n] = '\0';
	for (kind = 0; kind < T_IGNORED; kind++)
		if (strcmp(name, kinds[kind].name) == 0)
			break;
	if (kind == T_IGNORED) {
		error_at(p, p->line, array ? "unknown table [[%s]]" : "unknown table [%s]", name);
	} else if (array != kinds[kind].array) {
		if (array)
			error_at(p, p->line, "%s is a table: write [%s], not [[%s]]", name, name,
				 name);
		else
			error_at(p, p->line, "%s is an array of tables: write [[%s]]", name, name);
		kind = T_IGNORED;
	} else if (!array && p->single_line[kind]) {
		error_at(p, p->line, "%s is already defined at line %d", table_title(kind),
			 p->single_line[kind]);
		kind = T_IGNORED;
	}
	table_start(p, kind, out);
	return true;
}

/*
 * s starts with '"': past its closing quote, or NULL when it has none. The value
 * layer checks the escapes; here we only need the string's end.
 */
static char *string_end(char *s)
{
	for (s++; *s && *s != '"'; s++)
		if (*s == '\\' && s[1])
			s++;
	return *s == '"' ? s + 1 : NULL;
}

/* s: a trimmed line that is not blank, a comment or a header. */
static bool parse_key_value(struct parser *p, char *s, char *out)
{
	int n = (int)key_len(s);
	char *v = skip_blanks(s + n), *e;

	if (n == 0)
		return error_at(p, p->line, "expected key = value, [table] or [[table]]");
	if (*v != '=')
		return error_at(p, p->line, "expected = after key %.*s", n, s);
	e = v = skip_blanks(v + 1);
	if (*e == '[') {
		if ((size_t)n + 2 > LINE_MAX_LEN)
			return error_at(p, p->line,
					"%.*s: key and value take %zu bytes, at most %d", n, s,
					(size_t)n + 2, LINE_MAX_LEN);
		p->arr_line = p->line;
		p->arr_rest = e + 1;
		p->arr_elem = false;
		snprintf(p->arr_key, sizeof(p->arr_key), "%.*s", n, s);
		sprintf(out, "%.*s=%c", n, s, ARRAY_OPEN);
		return true;
	}
	if (*e == '"') {
		e = string_end(e);
		if (!e)
			return error_at(p, p->line, "%.*s: unterminated string", n, s);
	} else {
		while (*e && *e != '#' && !is_blank(*e))
			e++;
	}
	if (e == v)
		return error_at(p, p->line, "%.*s: missing value", n, s);
	char *rest = skip_blanks(e);
	if (*rest && *rest != '#')
		return error_at(p, p->line, "%.*s: unexpected text after value: %s", n, s, rest);
	*e = '\0';
	if ((size_t)n + 1 + strlen(v) > LINE_MAX_LEN)
		return error_at(p, p->line, "%.*s: key and value take %zu bytes, at most %d", n, s,
				(size_t)n + 1 + strlen(v), LINE_MAX_LEN);
	for (char *c = v; *c; c++)
		if (*c == ';')
			*c = SEMI;
	sprintf(out, "%.*s=%s", n, s, v);
	return true;
}

/*
 * Reads one raw line into raw (its first RAW_MAX bytes, NUL-terminated)
 * and its length into *len, without the "\n" or "\r\n" and without a leading
 * UTF-8 byte order mark. Returns false at the end of the input.
 */
static bool read_line(struct parser *p, char raw[RAW_MAX + 2], size_t *len)
{
	size_t n = 0;
	int ch, last = EOF;
	bool any = false, bom = p->line == 0;

	while ((ch = getc(p->f)) != EOF && ch != '\n') {
		any = true;
		if (n <= RAW_MAX)
			raw[n] = (char)ch;
		n++;
		last = ch;
		if (bom && n == 3) {
			bom = false;
			if (memcmp(raw, "\xef\xbb\xbf", 3) == 0)
				n = 0, last = EOF;
		}
	}
	if (ch == EOF && ferror(p->f))
		p->read_errno = errno ? errno : EIO;
	if (last == '\r')
		n--;
	raw[n <= RAW_MAX ? n : RAW_MAX] = '\0';
	*len = n;
	return any || ch == '\n';
}

/* Debian's inih reads into a buffer of INI_MAX_LINE bytes: out always has room for a line. */
_Static_assert(INI_MAX_LINE >= LINE_MAX_LEN + 1, "inih's line buffer is too small");

/* The array opened at p->arr_line ends here without its ']': say so, and close it. */
static void array_unclosed(struct parser *p, const char *before)
{
	error_at(p, p->arr_line, "%s: unterminated array: no ] before %s", p->arr_key, before);
	p->arr_line = 0;
	p->arr_rest = NULL;
}

/*
 * Inside an array, a table header or a key = value line means its ']' is
 * missing: nothing else starts that way (its elements are strings).
 */
static bool array_interrupted(char *s)
{
	size_t n = key_len(s);

	return *s == '[' || (n > 0 && *skip_blanks(s + n) == '=');
}

/*
 * The next step through an open array, from p->arr_rest: an element goes to
 * the handler as "key=ARRAY_ITEM" with its text in p->elem; a ',' or ']', a
 * comment or the line's end give nothing. Errors skip the rest of the line.
 */
static void array_next(struct parser *p, char *out)
{
	char *s = skip_blanks(p->arr_rest), *e;

	p->arr_rest = NULL;
	if (*s == '\0' || *s == '#')
		return;
	if (*s == ']') {
		p->arr_line = 0;
		s = skip_blanks(s + 1);
		if (*s && *s != '#')
			error_at(p, p->line, "%s: unexpected text after value: %s", p->arr_key, s);
		return;
	}
	if (*s == ',') {
		if (!p->arr_elem)
			error_at(p, p->line, "%s: expected a string before ,", p->arr_key);
		p->arr_elem = false;
		p->arr_rest = s + 1;
		return;
	}
	if (p->arr_elem) {
		/* The rest of the line is lost: the next one starts afresh. */
		error_at(p, p->line, "%s: expected , or ] after an element, got %s", p->arr_key, s);
		p->arr_elem = false;
		return;
	}
	p->arr_elem = true;
	if (*s != '"') {
		size_t n = strcspn(s, " \t,]#");
		/* An array the handler refused has been reported once: that is enough. */
		if (!p->arr_skip)
			error_at(p, p->line, "%s: expected a string in the array, got %.*s",
				 p->arr_key, (int)n, s);
		p->arr_rest = s + n;
		return;
	}
	e = string_end(s);
	if (!e) {
		error_at(p, p->line, "%s: unterminated string", p->arr_key);
		return;
	}
	memcpy(p->elem, s, (size_t)(e - s));
	p->elem[e - s] = '\0';
	p->arr_rest = e;
	sprintf(out, "%s=%c", p->arr_key, ARRAY_ITEM);
}

/*
 * One call, one line for inih, whose handler sees it before the next call: an
 * input line, or one step through an array, which may take several calls per
 * input line and span several lines.
 */
static char *reader(char *out, int size, void *stream)
{
	struct parser *p = stream;
	size_t n, len;

	out[0] = '\0';
	if (p->arr_rest) {
		array_next(p, out);
		goto done;
	}
	if (!read_line(p, p->raw, &n) || p->read_errno) {
		if (p->arr_line && !p->read_errno)
			array_unclosed(p, "the end of the file");
		return NULL;
	}
	p->line++;
	char *s = skip_blanks(p->raw);
	if (n > RAW_MAX) {
		error_at(p, p->line, "line is %zu bytes long, at most %d", n, RAW_MAX);
		goto bad;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p->raw[i];
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
			error_at(p, p->line, "control character 0x%02x is not allowed", ch);
			goto bad;
		}
	}
	char *e = s + strlen(s);
	while (e > s && is_blank(e[-1]))
		e--;
	*e = '\0';
	if (p->arr_line && !array_interrupted(s)) {
		p->arr_rest = s;
		array_next(p, out);
		goto done;
	}
	if (p->arr_line) {
		char before[32];
		snprintf(before, sizeof(before), "line %d", p->line);
		array_unclosed(p, before);
	}
	if (*s == '[') {
		if (!parse_header(p, s, out))
			goto bad;
	} else if (*s && *s != '#') {
		if (!parse_key_value(p, s, out))
			goto bad;
	}
done:
	/*
	 * inih needs no newline; give it one when it fits. A line of 199 bytes gets
	 * none, which inih r55 (Debian 12) takes as is; r59 and later would take it
	 * for the start of a longer line and read on.
	 */
	len = strlen(out);
	if (len + 1 < (size_t)size)
		memcpy(out + len, "\n", 2);
	return out;
bad:
	/*
	 * Keys after a header we cannot read belong to no table we know. A key on
	 * a line we cannot read reaches the handler with no value: it is set, and
	 * must not be reported missing as well. Inside an array, the line is only
	 * skipped.
	 */
	if (p->arr_line) {
		return out;
	} else if (*s == '[') {
		table_start(p, T_IGNORED, out);
	} else if (key_len(s) > 0 && key_len(s) < (size_t)size - 1) {
		sprintf(out, "%.*s=", (int)key_len(s), s);
	}
	return out;
}

static int find_key(enum kind kind, const char *name)
{
	for (size_t k = 0; k < NKEYS; k++)
		if (keys[k].kind == kind && strcmp(keys[k].name, name) == 0)
			return (int)k;
	return -1;
}

/*
 * A TOML decimal integer: [+-]digits, with single '_' between digits, and no leading
 * zero (TOML forbids them: 0080 is no integer). Saturates at UINT64_MAX.
 */
static bool parse_int(const char *s, bool *neg, uint64_t *v)
{
	*neg = *s == '-';
	if (*s == '-' || *s == '+')
		s++;
	*v = 0;
	if (*s < '0' || *s > '9' || (*s == '0' && s[1] != '\0'))
		return false;
	for (; *s; s++) {
		if (*s == '_' && s[1] >= '0' && s[1] <= '9')
			s++;
		if (*s < '0' || *s > '9')
			return false;
		unsigned d = (unsigned)(*s - '0');
		*v = *v > (UINT64_MAX - d) / 10 ? UINT64_MAX : *v * 10 + d;
	}
	return true;
}

static uint64_t number_max(const struct key *k)
{
	if (strcmp(k->name, "max_connections") == 0)
		return CONFIG_MAX_CONNECTIONS;
	if (strcmp(k->name, "idle_timeout") == 0)
		return CONFIG_IDLE_TIMEOUT_MAX;
	return CONFIG_CONNECT_TIMEOUT_MAX;
}

/* The string v[0, n), quotes included, without them and its escapes into s, m bytes. */
static bool unquote(struct parser *p, const struct key *k, const char *v, size_t n, char *s,
		    size_t *m)
{
	*m = 0;
	for (size_t i = 1; i < n - 1; i++) {
		if (v[i] == '\\') {
			unsigned char e = (unsigned char)v[i + 1];
			if (e != '"' && e != '\\') {
				/* As the user can read it: a byte that is not plain ASCII, in hex.
				 */
				char shown[8];
				if (e > 0x20 && e < 0x7f)
					snprintf(shown, sizeof(shown), "%c", e);
				else
					snprintf(shown, sizeof(shown), "x%02x", e);
				return error_at(p, p->line,
						"%s: bad escape \\%s in string (only \\\" and \\\\ "
						"are allowed)",
						k->name, shown);
			}
			i++;
		}
		s[(*m)++] = v[i];
	}
	s[*m] = '\0';
	return true;
}

/* One element of an array of policy entries, from p->elem: into k's list, or an error. */
static void add_entry(struct parser *p, const struct table *t, const struct key *k)
{
	struct policy_list *l = (struct policy_list *)(table_base(p, t) + k->offset);
	char s[RAW_MAX + 1], why[POLICY_ERR_LEN];
	struct policy_entry e;
	size_t m;

	if (!unquote(p, k, p->elem, strlen(p->elem), s, &m))
		return;
	if (m == 0) {
		error_at(p, p->line, "%s: an entry is empty", k->name);
		return;
	}
	if (policy_parse_entry(s, &e, why, sizeof(why)) != 0) {
		error_at(p, p->line, "%s: %s", k->name, why);
		return;
	}
	struct policy_entry *v = grow(p, l->v, &l->cap, l->n, sizeof(*v));
	if (!v)
		return;
	e.line = p->line;
	l->v = v;
	l->v[l->n++] = e;
}

/* The value layer: v is exactly what followed "key = ", the quotes of a string included. */
static bool set_value(struct parser *p, const struct table *t, const struct key *k,
		      const char *value)
{
	char v[CONFIG_STR_MAX], s[CONFIG_STR_MAX];
	char *dst = table_base(p, t) + k->offset;
	size_t n = 0;

	for (; value[n] && n < sizeof(v) - 1; n++)
		v[n] = value[n] == SEMI ? ';' : value[n];
	v[n] = '\0';
	if (v[0] == ARRAY_OPEN) {
		if (k->type != V_POLICY)
			return error_at(p, p->line, "%s: expected %s, got an array", k->name,
					k->type == V_BOOL ? "true or false"
					: k->type == V_TCP_PORT || k->type == V_VSOCK_PORT ||
						k->type == V_NUMBER
					    ? "an integer"
					    : "a string");
		p->arr_skip = false;
		return true;
	}
	if (k->type == V_POLICY)
		return error_at(p, p->line,
				"%s: expected an array of strings, as [\"api.example.com:443\"], "
				"got %s",
				k->name, v);
	if (k->type == V_TCP_PORT || k->type == V_VSOCK_PORT || k->type == V_NUMBER) {
		uint64_t i, max = k->type == V_NUMBER	  ? number_max(k)
				  : k->type == V_TCP_PORT ? UINT16_MAX
							  : VSOCK_PORT_MAX;
		bool neg;
		if (!parse_int(v, &neg, &i))
			return error_at(p, p->line, "%s: expected an integer, got %s", k->name, v);
		if (neg || i < 1 || i > max)
			return error_at(p, p->line, "%s %s is out of range 1..%" PRIu64, k->name, v,
					max);
		if (k->type == V_TCP_PORT)
			*(uint16_t *)dst = (uint16_t)i;
		else
			*(uint32_t *)dst = (uint32_t)i;
		return true;
	}
	if (k->type == V_BOOL) {
		if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0)
			return error_at(p, p->line, "%s: expected true or false, got %s", k->name, v);
		*(bool *)dst = v[0] == 't';
		return true;
	}
	if (v[0] != '"' || n < 2 || v[n - 1] != '"')
		return error_at(p, p->line, "%s: expected a string, got %s", k->name, v);
	size_t m;
	if (!unquote(p, k, v, n, s, &m))
		return false;
	s[m] = '\0';
	if (m == 0)
		return error_at(p, p->line, "%s is empty", k->name);
	if (k->type == V_LOG_LEVEL) {
		int level = log_level_parse(s);
		if (level < 0)
			return error_at(p, p->line, "%s %s is not one of " LEVEL_NAMES, k->name, v);
		*(int *)dst = level;
		return true;
	}
	if (k->type == V_PP) {
		if (strcmp(s, "v1") != 0 && strcmp(s, "v2") != 0)
			return error_at(p, p->line, "%s %s is not one of v1, v2", k->name, v);
		*(uint8_t *)dst = s[1] == '1' ? PP_V1 : PP_V2;
		return true;
	}
	if (k->type == V_ADDRESS) {
		struct in_addr a;
		if (inet_pton(AF_INET, s, &a) != 1)
			return error_at(p, p->line, "%s %s is not a dotted-quad IPv4 address",
					k->name, v);
		uint32_t h = ntohl(a.s_addr);
		if (h >> 24 != 127)
			return error_at(p, p->line, "%s %s is not in 127.0.0.0/8", k->name, v);
		/* Linux lets a socket listen there, but refuses a TCP connect to it. */
		if (h == 0x7fffffff)
			return error_at(p, p->line, "%s %s is the broadcast address of 127.0.0.0/8",
					k->name, v);
		*(uint32_t *)dst = h;
		return true;
	}
	if (k->type == V_LISTEN) {
		struct sockaddr_storage ss;
		char why[NET_ERR_LEN];
		if (net_parse_ip_port(s, &ss, why, sizeof(why)) == 0)
			return error_at(p, p->line, "%s: %s", k->name, why);
	}
	if (k->type == V_PATH && s[0] != '/')
		return error_at(p, p->line, "%s %s must be an absolute path", k->name, v);
	memcpy(dst, s, m + 1);
	return true;
}

/* Always 1: inih would only count errors, and we report each one ourselves. */
static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct parser *p = user;

	/* The handler took the array's key: its table and key are known and good. */
	if (value[0] == ARRAY_ITEM) {
		if (!p->arr_skip) {
			const struct table *t = &p->tables[strtoul(section, NULL, 10)];
			add_entry(p, t, &keys[find_key(t->kind, name)]);
		}
		return 1;
	}
	/* Refused until the value layer takes it: then its elements go nowhere. */
	if (value[0] == ARRAY_OPEN)
		p->arr_skip = true;
	if (section[0] == '\0') {
		error_at(p, p->line, "key %s is outside any table", name);
		return 1;
	}
	struct table *t = &p->tables[strtoul(section, NULL, 10)];
	if (t->kind == T_IGNORED)
		return 1;
	int k = find_key(t->kind, name);
	if (value[0] == '\0') {
		/* The reader has reported this line. */
		if (k >= 0 && !t->key_line[k])
			t->key_line[k] = p->line;
		return 1;
	}
	if (k < 0) {
		error_at(p, p->line, "unknown key %s in %s", name, table_title(t->kind));
		return 1;
	}
	if (t->key_line[k]) {
		error_at(p, p->line, "%s is already set at line %d", name, t->key_line[k]);
		return 1;
	}
	t->key_line[k] = p->line;
	if (set_value(p, t, &keys[k], value))
		t->valid |= 1u << k;
	return 1;
}

static uint32_t port_value(struct parser *p, const struct table *t, size_t k)
{
	const char *f = table_base(p, t) + keys[k].offset;

	return keys[k].type == V_TCP_PORT ? *(const uint16_t *)f : *(const uint32_t *)f;
}

/*
 * Where the enclave half listens for a table: an outbound rule's
 * enclave_address, [egress]'s 127.0.0.1; false when it is bad, which has been
 * reported.
 */
static bool enclave_address(struct parser *p, const struct table *t, uint32_t *addr)
{
	int a = find_key(T_OUTBOUND, "enclave_address");

	if (t->kind != T_OUTBOUND) {
		*addr = INADDR_LOOPBACK;
		return true;
	}
	if (t->key_line[a] && !(t->valid & 1u << a))
		return false;
	*addr = p->c->rules[t->rule].enclave_address;
	return true;
}

/*
 * Is port v of keys[k] in table ti already used by an earlier rule, at the
 * same address? Rules are few.
 */
static void check_clash(struct parser *p, size_t ti, size_t k, uint32_t v)
{
	const struct table *t = &p->tables[ti];
	bool enclave = keys[k].space == SP_ENCLAVE;
	uint32_t at = INADDR_LOOPBACK, at_u;
	char buf[NET_IPV4_LEN];

	/* A port at a bad address clashes with nothing: one error for it is enough. */
	if (enclave && !enclave_address(p, t, &at))
		return;
	for (size_t tj = 0; tj < ti; tj++) {
		const struct table *u = &p->tables[tj];
		for (size_t j = 0; j < NKEYS; j++) {
			if (!(u->valid & 1u << j) || keys[j].space != keys[k].space ||
			    port_value(p, u, j) != v)
				continue;
			if (enclave && (!enclave_address(p, u, &at_u) || at_u != at))
				continue;
			if (at == INADDR_LOOPBACK)
				error_at(p, t->key_line[k],
					 "%s %" PRIu32 " is already used at line %d", keys[k].name,
					 v, u->key_line[j]);
			else
				error_at(p, t->key_line[k],
					 "%s %" PRIu32 " on %s is already used at line %d",
					 keys[k].name, v, net_ipv4_str(at, buf), u->key_line[j]);
			return;
		}
	}
}

/*
 * The guide's own reference config gives an outbound tcp_port and an inbound
 * enclave_port the same number: legal, but inside the enclave the enclave half
 * then listens where that rule's application must. Say so, and load it. The
 * application listens on 127.0.0.1: an outbound rule at another enclave_address
 * is out of its way.
 */
static void check_enclave_ports(struct parser *p)
{
	int tcp = find_key(T_OUTBOUND, "tcp_port"), enc = find_key(T_INBOUND, "enclave_port");
	uint32_t at;

	for (size_t i = 0; i < p->ntables; i++) {
		const struct table *o = &p->tables[i];
		if (o->kind != T_OUTBOUND || !(o->valid & 1u << tcp) ||
		    !enclave_address(p, o, &at) || at != INADDR_LOOPBACK)
			continue;
		uint32_t port = port_value(p, o, (size_t)tcp);
		for (size_t j = 0; j < p->ntables; j++) {
			const struct table *in = &p->tables[j];
			if (in->kind != T_INBOUND || !(in->valid & 1u << enc) ||
			    port_value(p, in, (size_t)enc) != port)
				continue;
			warning_at(p, o->key_line[tcp],
				   "tcp_port %" PRIu32 " is also the enclave_port at line %d: the "
				   "enclave half will listen on 127.0.0.1:%" PRIu32
				   ", where that rule's application must",
				   port, in->key_line[enc], port);
			break;
		}
	}
}

/*
 * The name an outbound rule puts in the hosts file, at *addr; NULL when it puts
 * none: an IP literal needs no entry, and a bad value has been reported.
 */
static const char *mapped_name(struct parser *p, const struct table *t, uint32_t *addr)
{
	int name = find_key(T_OUTBOUND, "hostname");

	if (t->kind != T_OUTBOUND || !(t->valid & 1u << name) || !enclave_address(p, t, addr))
		return NULL;
	const char *s = p->c->rules[t->rule].hostname;
	if (net_is_ip_literal(s))
		return NULL;
	return s;
}

/*
 * With a hosts_file, the enclave half maps each outbound hostname to its
 * rule's enclave_address: one name at two addresses would make that file
 * ambiguous. Names compare without case, as resolvers do. A hosts_file with
 * a bad value still asks for the check, so that all the errors come at once.
 */
static void check_hostnames(struct parser *p)
{
	int hf = find_key(T_ENCLAVE, "hosts_file"), name = find_key(T_OUTBOUND, "hostname");
	bool hosts = false;
	char buf[NET_IPV4_LEN];

	for (size_t i = 0; i < p->ntables; i++)
		hosts |= p->tables[i].kind == T_ENCLAVE && p->tables[i].key_line[hf];
	if (!hosts)
		return;
	for (size_t i = 0; i < p->ntables; i++) {
		const struct table *t = &p->tables[i];
		uint32_t at, at_u;
		const char *s = mapped_name(p, t, &at);
		for (size_t j = 0; s && j < i; j++) {
			const struct table *u = &p->tables[j];
			const char *s_u = mapped_name(p, u, &at_u);
			if (!s_u || strcasecmp(s, s_u) != 0 || at == at_u)
				continue;
			error_at(p, t->key_line[name],
				 "hostname %s is already mapped to %s at line %d", s,
				 net_ipv4_str(at_u, buf), u->key_line[name]);
			break;
		}
	}
}

/*
 * The first rule at which a message of total bytes, made of a head and one share
 * per rule in order, crosses MSG_MAX; and through it, the size up to there.
 */
static size_t crossing_rule(const struct config *c, size_t total,
			    size_t (*share)(const struct rule *r), size_t *at)
{
	size_t i;

	*at = total;
	for (i = 0; i < c->nrules; i++)
		*at -= share(&c->rules[i]);
	for (i = 0; i < c->nrules; i++) {
		*at += share(&c->rules[i]);
		if (*at > MSG_MAX)
			break;
	}
	return i;
}

/*
 * Each half sends all its rules to the other in one HELLO on the control link,
 * and the enclave half its counters in one STATS. A config that either cannot
 * hold would load, and then its link would fail and be retried forever, or
 * `qproxy status` would never show the enclave's counters: refuse it here, at
 * the rule that crosses the limit.
 */
static void check_link_limits(struct parser *p)
{
	const struct config *c = p->c;
	size_t at, i;

	if (c->nrules > MSG_MAX_RULES) {
		error_at(p, c->rules[MSG_MAX_RULES].line,
			 "rule %d of %zu: the control channel carries at most %d rules",
			 MSG_MAX_RULES + 1, c->nrules, MSG_MAX_RULES);
		return;
	}
	size_t total = msg_hello_size(c->rules, c->nrules, c->egress_vsock_port);
	if (total > MSG_MAX) {
		i = crossing_rule(c, total, msg_rule_size, &at);
		error_at(p, c->rules[i].line,
			 "the control channel carries a hello of at most %d bytes: the rules up to "
			 "this one make it %zu (all %zu rules: %zu); use fewer rules or shorter "
			 "hostnames",
			 MSG_MAX, at, c->nrules, total);
		return;
	}
	total = msg_stats_size(c->rules, c->nrules);
	if (total > MSG_MAX) {
		i = crossing_rule(c, total, msg_stat_size, &at);
		error_at(p, c->rules[i].line,
			 "the control channel carries the enclave half's counters in at most %d "
			 "bytes: the rules up to this one may make them %zu (all %zu rules: %zu); "
			 "set max_connections on fewer rules",
			 MSG_MAX, at, c->nrules, total);
	}
}

/*
 * resolv_conf points the enclave's resolver at the DNS server: without dns =
 * true nothing would answer there, and every lookup in the enclave would fail.
 */
/*
 * Is 127.0.0.1:port in the enclave already someone's: an inbound rule's
 * application, and unless inbound_only an outbound rule's listener there or the
 * proxy? The first such key's line in *line and its name in *what.
 */
static bool enclave_port_taken(struct parser *p, uint32_t port, bool inbound_only, int *line,
			       const char **what)
{
	const int k[] = {find_key(T_INBOUND, "enclave_port"),
			 inbound_only ? -1 : find_key(T_OUTBOUND, "tcp_port"),
			 inbound_only ? -1 : find_key(T_EGRESS, "proxy_port")};
	uint32_t at;

	for (size_t i = 0; i < p->ntables; i++) {
		const struct table *t = &p->tables[i];
		for (size_t j = 0; j < sizeof(k) / sizeof(k[0]); j++) {
			if (k[j] < 0 || keys[k[j]].kind != t->kind || !(t->valid & 1u << k[j]) ||
			    port_value(p, t, (size_t)k[j]) != port || !enclave_address(p, t, &at) ||
			    at != INADDR_LOOPBACK)
				continue;
			*line = t->key_line[k[j]];
			*what = keys[k[j]].name;
			return true;
		}
	}
	return false;
}

/*
 * resolv_conf points the enclave's resolver at the DNS server: without dns =
 * true nothing would answer there, and every lookup in the enclave would fail.
 * The proxy and the DNS server listen on 127.0.0.1 in the enclave, where no
 * application may (outbound rules were checked against proxy_port with the
 * other ports that clash).
 */
static void check_egress(struct parser *p)
{
	int rc = find_key(T_EGRESS, "resolv_conf"), dns = find_key(T_EGRESS, "dns");
	int proxy = find_key(T_EGRESS, "proxy_port");
	const char *what;
	int line;

	for (size_t i = 0; i < p->ntables; i++) {
		const struct table *t = &p->tables[i];
		if (t->kind != T_EGRESS)
			continue;
		/* A bad dns value has been reported: one error for it is enough. */
		bool dns_bad = t->key_line[dns] && !(t->valid & 1u << dns);
		if ((t->valid & 1u << rc) && !dns_bad && !p->c->egress_dns)
			error_at(p, t->key_line[rc],
				 "resolv_conf points the resolver at qproxy's DNS server: it needs "
				 "dns = true");
		if ((t->valid & 1u << dns) && p->c->egress_dns &&
		    enclave_port_taken(p, 53, false, &line, &what))
			error_at(p, t->key_line[dns],
				 "dns = true listens on 127.0.0.1:53, where the %s at line %d is",
				 what, line);
		uint32_t port = p->c->egress_proxy_port;
		if ((t->valid & 1u << proxy) && enclave_port_taken(p, port, true, &line, &what))
			error_at(
			    p, t->key_line[proxy],
			    "proxy_port %" PRIu32 " is the enclave_port at line %d: the proxy "
			    "and that rule's application cannot both listen on 127.0.0.1:%" PRIu32,
			    port, line, port);
	}
}

static void check_tables(struct parser *p)
{
	for (size_t ti = 0; ti < p->ntables; ti++) {
		const struct table *t = &p->tables[ti];
		for (size_t k = 0; k < NKEYS; k++) {
			if (keys[k].kind != t->kind)
				continue;
			if (keys[k].required && !t->key_line[k])
				error_at(p, t->line, "missing key %s in %s", keys[k].name,
					 table_title(t->kind));
			if (!(t->valid & 1u << k) || keys[k].space == SP_NONE)
				continue;
			uint32_t v = port_value(p, t, k);
			if (keys[k].space == SP_VSOCK && v == p->control_port)
				error_at(p, t->key_line[k],
					 "%s %" PRIu32 " is the control port (see --control-port)",
					 keys[k].name, v);
			else
				check_clash(p, ti, k, v);
		}
	}
	if (p->c->nrules == 0 && !p->c->has_egress)
		error_at(p, 1,
			 "no rules: add [[inbound_connections]], [[outbound_connections]] or "
			 "[egress]");
	check_link_limits(p);
	check_hostnames(p);
	check_egress(p);
	check_enclave_ports(p);
}

static int error_cmp(const void *a, const void *b)
{
	const struct error *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void config_init(struct config *c)
{
	memset(c, 0, sizeof(*c));
	strcpy(c->host_log_dir, DEFAULT_LOG_DIR);
	strcpy(c->enclave_log_dir, DEFAULT_LOG_DIR);
	c->log_level = -1;
}

/*
 * Hands the errors, in line order, to p->c, and returns what config_parse() returns.
 * Out of memory at any point refuses the config as a whole: nothing is half-applied.
 */
static int finish(struct parser *p)
{
	struct config *c = p->c;
	char **list = p->nerrors > 0 ? malloc(p->nerrors * sizeof(*list)) : NULL;
	size_t n = 0, nwarnings = 0;

	free(p->tables);
	if (p->nerrors > 0 && !list)
		p->nomem = true;
	for (size_t i = 0; i < p->nerrors; i++)
		nwarnings += p->errors[i].warning;
	bool failed = p->nerrors > nwarnings || p->nomem;
	if (failed) {
		free(c->rules);
		policy_free(&c->egress);
		config_init(c);
		c->nomem = p->nomem;
	}
	if (p->nerrors > 0)
		qsort(p->errors, p->nerrors, sizeof(*p->errors), error_cmp);
	/* With errors, the warnings are dropped: the config is not loaded at all. */
	for (size_t i = 0; i < p->nerrors; i++) {
		if (list && p->errors[i].warning != failed)
			list[n++] = p->errors[i].msg;
		else
			free(p->errors[i].msg);
	}
	free(p->errors);
	if (n == 0) {
		free(list);
		list = NULL;
	}
	if (failed) {
		c->errors = list;
		c->nerrors = n;
	} else {
		c->warnings = list;
		c->nwarnings = n;
	}
	return failed ? -1 : 0;
}

int config_parse(struct config *c, const char *name, FILE *f, uint32_t control_port)
{
	struct parser p = {.c = c, .name = name, .f = f, .control_port = control_port};

	config_init(c);
	if (ini_parse_stream(reader, &p, handler, &p) < 0)
		p.nomem = true;
	if (p.read_errno)
		error_at(&p, 0, "cannot read: %s", strerror(p.read_errno));
	else
		check_tables(&p);
	return finish(&p);
}

int config_load(struct config *c, const char *path, uint32_t control_port)
{
	FILE *f = fopen(path, "r");

	if (!f) {
		struct parser p = {.c = c, .name = path};
		config_init(c);
		error_at(&p, 0, "cannot open: %s", strerror(errno));
		return finish(&p);
	}
	int rc = config_parse(c, path, f, control_port);
	fclose(f);
	return rc;
}

static void print_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', out);
		fputc(*s, out);
	}
	fputc('"', out);
}

static void print_policy(FILE *out, const char *name, const struct policy_list *l)
{
	char buf[POLICY_ENTRY_LEN];

	fprintf(out, "%s = [%s", name, l->n ? "\n" : "");
	for (size_t i = 0; i < l->n; i++)
		fprintf(out, "  \"%s\",\n", policy_entry_str(&l->v[i], buf, sizeof(buf)));
	fprintf(out, "]\n");
}

static void print_table(FILE *out, enum kind kind, const char *base)
{
	char buf[NET_IPV4_LEN];

	fprintf(out, "%s\n", table_title(kind));
	for (size_t k = 0; k < NKEYS; k++) {
		const struct key *key = &keys[k];
		const char *f = base + key->offset;
		if (key->kind != kind)
			continue;
		switch (key->type) {
		case V_TCP_PORT:
			/* Every rule's is required; [egress]'s proxy_port is 0 when not set. */
			if (*(const uint16_t *)f)
				fprintf(out, "%s = %u\n", key->name, *(const uint16_t *)f);
			break;
		case V_VSOCK_PORT:
			fprintf(out, "%s = %" PRIu32 "\n", key->name, *(const uint32_t *)f);
			break;
		case V_NUMBER:
			if (*(const uint32_t *)f)
				fprintf(out, "%s = %" PRIu32 "\n", key->name, *(const uint32_t *)f);
			break;
		case V_STRING:
		case V_PATH:
		case V_LISTEN:
			if (*f) {
				fprintf(out, "%s = ", key->name);
				print_string(out, f);
				fputc('\n', out);
			}
			break;
		case V_LOG_LEVEL:
			if (*(const int *)f >= 0)
				fprintf(out, "%s = \"%s\"\n", key->name,
					log_level_name(*(const int *)f));
			break;
		case V_ADDRESS:
			if (*(const uint32_t *)f != INADDR_LOOPBACK)
				fprintf(out, "%s = \"%s\"\n", key->name,
					net_ipv4_str(*(const uint32_t *)f, buf));
			break;
		case V_PP:
			if (*(const uint8_t *)f != PP_NONE)
				fprintf(out, "%s = \"v%u\"\n", key->name, *(const uint8_t *)f);
			break;
		case V_BOOL:
			if (*(const bool *)f)
				fprintf(out, "%s = true\n", key->name);
			break;
		case V_POLICY:
			print_policy(out, key->name, (const struct policy_list *)f);
			break;
		}
	}
}

/*
 * Rules, then [enclave], [egress], [host], then [log_location]: the guide's files
 * end with their logs. [enclave] and [host] are printed only when one of their keys
 * is set.
 */
void config_print(const struct config *c, FILE *out)
{
	char buf[NET_IPV4_LEN];

	for (size_t i = 0; i < c->nrules; i++) {
		const struct rule *r = &c->rules[i];
		if (i > 0)
			fputc('\n', out);
		if (r->dir == RULE_INBOUND) {
			fprintf(out,
				"# inbound: tcp 0.0.0.0:%u -> vsock port %" PRIu32
				" -> enclave 127.0.0.1:%u\n",
				r->host_port, r->vsock_port, r->enclave_port);
			print_table(out, T_INBOUND, (const char *)r);
		} else {
			bool v6 = strchr(r->hostname, ':') != NULL;
			fprintf(out,
				"# outbound: enclave %s:%u -> vsock port %" PRIu32
				" -> host %s%s%s:%u\n",
				net_ipv4_str(r->enclave_address, buf), r->tcp_port, r->vsock_port,
				v6 ? "[" : "", r->hostname, v6 ? "]" : "", r->tcp_port);
			print_table(out, T_OUTBOUND, (const char *)r);
		}
	}
	bool any = c->nrules > 0;
	if (c->hosts_file[0] || c->sync_clock) {
		if (any)
			fputc('\n', out);
		print_table(out, T_ENCLAVE, (const char *)c);
		any = true;
	}
	if (c->has_egress) {
		if (any)
			fputc('\n', out);
		fprintf(out, "# egress: deny wins over allow; anything not allowed is denied\n");
		print_table(out, T_EGRESS, (const char *)c);
		any = true;
	}
	if (c->metrics[0]) {
		if (any)
			fputc('\n', out);
		print_table(out, T_HOST, (const char *)c);
		any = true;
	}
	if (c->has_log_location) {
		if (any)
			fputc('\n', out);
		print_table(out, T_LOG, (const char *)c);
	}
}

const char *config_rule_name(const struct rule *r, char *buf, size_t size)
{
	if (r->dir == RULE_INBOUND) {
		snprintf(buf, size, "inbound %u", r->host_port);
	} else {
		bool v6 = strchr(r->hostname, ':') != NULL;
		snprintf(buf, size, "outbound %s%s%s:%u", v6 ? "[" : "", r->hostname, v6 ? "]" : "",
			 r->tcp_port);
	}
	return buf;
}

void config_free(struct config *c)
{
	for (size_t i = 0; i < c->nerrors; i++)
		free(c->errors[i]);
	free(c->errors);
	for (size_t i = 0; i < c->nwarnings; i++)
		free(c->warnings[i]);
	free(c->warnings);
	free(c->rules);
	policy_free(&c->egress);
	config_init(c);
}
