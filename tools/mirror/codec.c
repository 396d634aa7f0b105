/* SPDX-License-Identifier: Apache-2.0 */
/*
 * codec.c - record names as bucket keys, and a value's header.
 *
 * A NATS key is made of A-Z a-z 0-9 and - _ / = . (and a '.' separates
 * tokens, so it may not start or end one).  A record name is any bytes but
 * NUL.  The bytes of the first set but '=' and '.' stay as they are; every
 * other byte becomes "=XX", its value in upper-case hex: the mapping is
 * one-to-one, and the key of an ordinary name reads as the name.
 */
#include <string.h>

#include "mirror.h"

static bool keeps(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '/';
}

void mirror_key(const char *name, char *key)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;

	for (const unsigned char *p = (const unsigned char *)name; *p && n < MIRROR_KEY_MAX; p++) {
		if (keeps(*p)) {
			key[n++] = (char)*p;
		} else {
			key[n++] = '=';
			key[n++] = hex[*p >> 4];
			key[n++] = hex[*p & 15];
		}
	}
	key[n] = '\0';
}

static int unhex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int mirror_name(const char *key, char *name)
{
	size_t n = 0;

	for (const char *p = key; *p; p++) {
		int c;

		if (n == RSZSHM_NAME_MAX)
			return -1;
		if (keeps((unsigned char)*p)) {
			c = *p;
		} else {
			int hi, lo;

			if (*p != '=' || (hi = unhex(p[1])) < 0 || (lo = unhex(p[2])) < 0)
				return -1;
			c = hi << 4 | lo;
			/* Only the one spelling mirror_key() writes. */
			if (c == 0 || keeps((unsigned char)c))
				return -1;
			p += 2;
		}
		name[n++] = (char)c;
	}
	name[n] = '\0';
	return n ? 0 : -1;
}

void mirror_hdr(uint32_t type, unsigned char *out)
{
	memcpy(out, "rsz1", 4);
	for (int i = 0; i < 4; i++)
		out[4 + i] = (unsigned char)(type >> (8 * i));
}

int mirror_type(const void *v, size_t len, uint32_t *type)
{
	const unsigned char *b = v;

	if (len < MIRROR_HDR || memcmp(b, "rsz1", 4) != 0)
		return -1;
	*type = (uint32_t)b[4] | (uint32_t)b[5] << 8 | (uint32_t)b[6] << 16 | (uint32_t)b[7] << 24;
	return 0;
}
