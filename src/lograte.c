#include "lograte.h"

#include <stdio.h>
#include <string.h>

bool lograte_say(struct lograte *r, const char *key, int64_t now, unsigned long *unsaid)
{
	size_t n = strnlen(key, LOGRATE_KEY_MAX);
	unsigned slot = 0;

	for (unsigned i = 0; i < LOGRATE_KEYS; i++) {
		if (r->seen[i].said && strncmp(r->seen[i].key, key, n) == 0 &&
		    r->seen[i].key[n] == '\0') {
			slot = i;
			goto found;
		}
		if (r->seen[i].said < r->seen[slot].said)
			slot = i; /* an empty one, or the one said longest ago */
	}
	snprintf(r->seen[slot].key, sizeof(r->seen[slot].key), "%.*s", (int)n, key);
	r->seen[slot].unsaid = 0;
	r->seen[slot].said = now;
	*unsaid = 0;
	return true;
found:
	if (now - r->seen[slot].said < r->window) {
		r->seen[slot].unsaid++;
		return false;
	}
	*unsaid = r->seen[slot].unsaid;
	r->seen[slot].unsaid = 0;
	r->seen[slot].said = now;
	return true;
}

bool logcount_say(struct logcount *c, int64_t now, int64_t every, unsigned long *count)
{
	c->count++;
	if (c->said && now - c->said < every)
		return false;
	*count = c->count;
	c->count = 0;
	c->said = now;
	return true;
}
