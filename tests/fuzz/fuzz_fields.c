/*
 * libFuzzer target for the small field parsers that read outside input:
 * base64 and SASL PLAIN (from network clients), password-map values,
 * listen addresses and CIDR ranges (from the config), and map specs.
 * The first byte picks the parser; the rest is its input.  Round trips
 * are checked where they exist: a decoded base64 text encodes back to
 * the same text, and a parsed listener formats to text that parses to
 * the same listener.
 */
#include "autoconf.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "map.h"
#include "net.h"
#include "passwd.h"
#include "sasl.h"
#include "xalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* base64 must round-trip, and PLAIN splitting must stay inside msg. */
static void
fuzz_base64(const char *s, size_t n)
{
	struct buf dec = BUF_INIT, enc = BUF_INIT;
	const char *user, *pass, *error;
	size_t plen;

	if (base64_decode(s, n, &dec) == 0) {
		if (base64_encode(dec.data, dec.len, &enc) < 0 || enc.len != n ||
		    (n > 0 && memcmp(enc.data, s, n) != 0))
			abort();
		if (sasl_plain_split(&dec, &user, &pass, &plen, &error) == 0) {
			const char *end = dec.data + dec.len;

			if (user < dec.data || user > end || pass < dec.data ||
			    pass + plen > end || pass[plen] != '\0')
				abort();
		}
	}
	buf_free(&dec);
	buf_free(&enc);
}

/* A listener that parses formats back to the same listener. */
static void
fuzz_listen(const char *s)
{
	struct net_listen l, l2;
	struct net_cidr c;
	const char *error;
	char out[128];

	if (net_parse_listen(s, &l, &error) == 0) {
		net_listen_format(&l, out, sizeof(out));
		if (net_parse_listen(out, &l2, &error) < 0 || l.port != l2.port ||
		    strcmp(l.host, l2.host) != 0 || strcmp(l.tag, l2.tag) != 0)
			abort();
	}
	(void)!net_parse_cidr(s, &c, &error);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct passwd_entry pe;
	const char *error, *type, *arg;
	char *s;

	if (size < 1)
		return 0;
	s = xstrndup((const char *)data + 1, size - 1);	/* stops at a NUL */
	switch (data[0] % 4) {
	case 0:
		fuzz_base64((const char *)data + 1, size - 1);
		break;
	case 1:
		if (passwd_parse(s, &pe, &error) == 0) {
			char *again = passwd_format(&pe);

			passwd_entry_free(&pe);
			if (passwd_parse(again, &pe, &error) < 0)
				abort();
			passwd_entry_free(&pe);
			free(again);
		}
		break;
	case 2:
		fuzz_listen(s);
		break;
	case 3:
		(void)!map_parse_spec(s, &type, &arg, &error);
		break;
	}
	free(s);
	return 0;
}
