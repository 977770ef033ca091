/*
 * ascii: character classes of the protocols' ASCII, independent of the
 * C library's locale (ctype's answers change with setlocale()).
 */
#ifndef POSTERN_ASCII_H
#define POSTERN_ASCII_H

/* The value of a hex digit (either case), or -1. */
static inline int
ascii_hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

#endif
