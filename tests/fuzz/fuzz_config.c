/*
 * libFuzzer target for the config parser: no input may crash it or read out of
 * bounds, and whatever it accepts must print as TOML that parses back the same.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *print(const struct config *c, size_t *len)
{
	char *buf = NULL;
	FILE *o = open_memstream(&buf, len);

	config_print(c, o);
	fclose(o);
	return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config c, d;

	if (size == 0)
		return 0;
	FILE *f = fmemopen((void *)data, size, "r");
	if (config_parse(&c, "fuzz.toml", f, 6666) == 0) {
		size_t len, len2;
		char *buf = print(&c, &len);
		FILE *g = fmemopen(buf, len, "r");
		if (config_parse(&d, "again.toml", g, 6666) != 0)
			abort();
		char *buf2 = print(&d, &len2);
		if (len != len2 || memcmp(buf, buf2, len) != 0)
			abort();
		fclose(g);
		free(buf);
		free(buf2);
		config_free(&d);
	}
	fclose(f);
	config_free(&c);
	return 0;
}
