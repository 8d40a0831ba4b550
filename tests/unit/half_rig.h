/*
 * For the unit tests of the control channel and the status server: one half's config,
 * loop, proxy (not listening) and control channel (not started), as main.c builds them.
 * Include after cmocka.h.
 */
#ifndef QPROXY_TEST_HALF_RIG_H
#define QPROXY_TEST_HALF_RIG_H

#include <stdio.h>
#include <string.h>

#include "config.h"
#include "control.h"
#include "loop.h"
#include "proxy.h"

struct half {
	struct config cfg;
	struct loop *loop;
	struct proxy *px;
	struct control *ctl;
};

/* The half of role, whose peer is peer_cid, with the rules of toml and the control port. */
static inline void half_new(struct half *h, enum proxy_role role, uint32_t peer_cid, uint32_t port,
			    const char *toml)
{
	struct proxy_opts po = {.role = role, .peer_cid = peer_cid};
	struct control_opts co = {.role = role, .peer_cid = peer_cid, .port = port};
	FILE *f = fmemopen((void *)toml, strlen(toml), "r");

	assert_non_null(f);
	assert_int_equal(config_parse(&h->cfg, "test.toml", f, port), 0);
	fclose(f);
	h->loop = loop_new();
	assert_non_null(h->loop);
	h->px = proxy_new(h->loop, &h->cfg, &po);
	assert_non_null(h->px);
	h->ctl = control_new(h->loop, &h->cfg, h->px, &co);
	assert_non_null(h->ctl);
}

static inline void half_free(struct half *h)
{
	control_free(h->ctl);
	proxy_free(h->px);
	loop_free(h->loop);
	config_free(&h->cfg);
}

#endif
