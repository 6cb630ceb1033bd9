/*
 * unicode.h - the UTF-8 and character-class helpers the tokenizer needs.
 *
 * The Hugging Face tokenizers library works on Rust `String`s, which are
 * always valid UTF-8, and it asks Rust's `char` methods (is_whitespace,
 * is_alphanumeric) and `String::from_utf8_lossy` for the rest.  These helpers
 * reproduce exactly those behaviours in C so that the encoder and decoder
 * agree with it id for id and byte for byte.
 */
#ifndef W8_UNICODE_H
#define W8_UNICODE_H

#include <stddef.h>
#include <stdint.h>

/* Decode one UTF-8 character at s[0..n) (n >= 1).  Returns its length in bytes
 * (1..4) and stores the code point, or returns 0 when the bytes there do not
 * start a valid, shortest-form, non-surrogate character. */
int w8_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);

/* Length of the valid-or-invalid "unit" at s as Rust's from_utf8_lossy sees
 * it: for a valid character its length; for an invalid sequence the length of
 * the maximal subpart that is replaced by one U+FFFD (at least 1).
 * *valid says which. */
size_t w8_utf8_unit(const unsigned char *s, size_t n, int *valid);

/* Encode a code point (<= 0x10FFFF) into out[0..4); returns the length. */
int w8_utf8_encode(uint32_t cp, char *out);

/* 1 when s[0..n) is entirely valid UTF-8. */
int w8_utf8_valid(const char *s, size_t n);

/* A fresh NUL-terminated copy of s[0..n) with each invalid sequence replaced
 * by U+FFFD exactly as Rust's String::from_utf8_lossy does (maximal subparts).
 * *out_len gets the length (may be NULL). */
char *w8_utf8_lossy(const char *s, size_t n, size_t *out_len);

/* Rust's char::is_whitespace (the Unicode White_Space property). */
int w8_uni_is_space(uint32_t cp);
/* Rust's char::is_alphanumeric (Unicode Alphabetic or Numeric: letters,
 * Nl/No/Nd numbers; approximated by general categories L*, N*). */
int w8_uni_is_alnum(uint32_t cp);

/* GPT-2's byte-level alphabet: byte b <-> a printable code point.
 * w8_bytelevel_char(b) gives the UTF-8 text of that code point (1-2 bytes,
 * NUL-terminated); w8_bytelevel_byte(cp) the byte for a code point or -1. */
const char *w8_bytelevel_char(unsigned char b);
int w8_bytelevel_byte(uint32_t cp);

#endif
