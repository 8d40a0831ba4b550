#ifndef QPROXY_UTIL_H
#define QPROXY_UTIL_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/*
 * The struct that holds member at ptr. The conditional is never evaluated: it
 * makes the compiler complain when ptr does not point to member's type.
 */
#define container_of(ptr, type, member)                                                            \
	((type *)(void *)((char *)(1 ? (ptr) : &((type *)0)->member) - offsetof(type, member)))

/*
 * arr, or a larger copy, with room for need elements of size bytes; *cap is
 * its room. Doubles, so that n appends cost O(n). NULL with errno ENOMEM, arr
 * untouched and still the caller's, when memory or size_t runs out.
 */
static inline void *array_grow(void *arr, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return arr;
	size_t ncap = *cap ? *cap : 8;
	while (ncap < need && ncap <= SIZE_MAX / 2)
		ncap *= 2;
	if (ncap < need || ncap > SIZE_MAX / size) {
		errno = ENOMEM;
		return NULL;
	}
	void *a = realloc(arr, ncap * size);
	if (!a) {
		errno = ENOMEM;
		return NULL;
	}
	*cap = ncap;
	return a;
}

#endif
