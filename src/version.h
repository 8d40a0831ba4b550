#ifndef QPROXY_VERSION_H
#define QPROXY_VERSION_H

/* The Makefile sets it; a build without it says so. */
#ifndef QPROXY_VERSION
#define QPROXY_VERSION "dev"
#endif

#endif
