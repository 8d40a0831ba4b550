#ifndef QPROXY_APPLINE_H
#define QPROXY_APPLINE_H

#include <stddef.h>
#include <stdint.h>

/*
 * The app's output cut into log lines: pure, bytes in, lines out. A line ends at
 * '\n' (a '\r' before it goes too); one without an end is handed on at EOF. Its
 * first APPLINE_KEEP bytes are kept, the rest only counted, so a line of any length
 * costs the same memory. Each line is handed on as valid UTF-8 text: a byte that is
 * not part of a UTF-8 character, and a control character other than tab, becomes
 * \xNN. A line cut short, or whose escapes outgrow APPLINE_TEXT_MAX, ends in
 * " [line cut: N bytes]", N being the whole line's length.
 */
#define APPLINE_KEEP 768
#define APPLINE_TEXT_MAX 900
/* The text handed on, with its mark and '\0', fits in this. */
#define APPLINE_OUT_MAX (APPLINE_TEXT_MAX + 48)

struct appline {
	size_t len;	/* bytes kept of the line so far */
	uint64_t total; /* bytes of the line so far, kept or not */
	unsigned char kept[APPLINE_KEEP];
};

/* text is '\0'-terminated, len bytes long. */
typedef void appline_fn(void *arg, const char *text, size_t len);

void appline_init(struct appline *a);
/* Take n bytes of output; fn for each line they end. */
void appline_feed(struct appline *a, const void *buf, size_t n, appline_fn *fn, void *arg);
/* The output ended: fn for the line it left unended, if any. */
void appline_end(struct appline *a, appline_fn *fn, void *arg);

/*
 * n bytes escaped as above into out (cap bytes, '\0' included); as many whole
 * characters as fit. Returns the length written; *used is the bytes of s taken.
 */
size_t appline_escape(const unsigned char *s, size_t n, char *out, size_t cap, size_t *used);

#endif
