#include "appline.h"

#include <stdio.h>
#include <string.h>

#include "cbor.h"

void appline_init(struct appline *a)
{
	a->len = 0;
	a->total = 0;
}

size_t appline_escape(const unsigned char *s, size_t n, char *out, size_t cap, size_t *used)
{
	size_t i = 0, o = 0;

	while (i < n) {
		size_t k = cbor_utf8_char(s + i, n - i);
		/* Control characters would forge lines or move a terminal's cursor. */
		bool plain = k > 1 || (k == 1 && (s[i] >= 0x20 || s[i] == '\t') && s[i] != 0x7f);
		size_t w = plain ? k : 4;
		if (o + w + 1 > cap)
			break;
		if (plain)
			memcpy(out + o, s + i, k);
		else
			snprintf(out + o, 5, "\\x%02x", s[i]);
		o += w;
		i += plain ? k : 1;
	}
	if (cap > 0)
		out[o] = '\0';
	*used = i;
	return o;
}

static void emit(struct appline *a, appline_fn *fn, void *arg)
{
	char out[APPLINE_OUT_MAX];
	size_t used, len = a->len;

	if (len > 0 && a->kept[len - 1] == '\r' && a->total == len)
		len--;
	size_t n = appline_escape(a->kept, len, out, APPLINE_TEXT_MAX + 1, &used);
	if (used < len || a->total > a->len)
		n += (size_t)snprintf(out + n, sizeof(out) - n, " [line cut: %llu bytes]",
				      (unsigned long long)a->total);
	fn(arg, out, n);
	appline_init(a);
}

void appline_feed(struct appline *a, const void *buf, size_t n, appline_fn *fn, void *arg)
{
	const unsigned char *p = buf, *end = p + n;

	while (p < end) {
		const unsigned char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t chunk = (size_t)((nl ? nl : end) - p);
		size_t room = APPLINE_KEEP - a->len;
		size_t take = chunk < room ? chunk : room;
		memcpy(a->kept + a->len, p, take);
		a->len += take;
		a->total += chunk;
		p += chunk;
		if (!nl)
			return;
		emit(a, fn, arg);
		p++;
	}
}

void appline_end(struct appline *a, appline_fn *fn, void *arg)
{
	if (a->total > 0)
		emit(a, fn, arg);
}
