/*
 * unicode.c - UTF-8 validation/repair, Rust-compatible character classes and
 * GPT-2's byte-level alphabet.  See unicode.h.
 */
#include "unicode.h"

#include <pthread.h>
#include <string.h>
#include <utf8proc.h>

#include "../util.h"

/* Allowed range of the second byte for each lead byte; later continuation
 * bytes are always 0x80..0xBF.  This is the table from the Unicode standard
 * (Table 3-7, well-formed byte sequences), which Rust's decoder follows. */
static int lead_info(unsigned char b, int *len, unsigned char *lo, unsigned char *hi) {
    *lo = 0x80;
    *hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) *len = 2;
    else if (b == 0xE0) *len = 3, *lo = 0xA0;
    else if (b == 0xED) *len = 3, *hi = 0x9F;
    else if (b >= 0xE1 && b <= 0xEF) *len = 3;
    else if (b == 0xF0) *len = 4, *lo = 0x90;
    else if (b >= 0xF1 && b <= 0xF3) *len = 4;
    else if (b == 0xF4) *len = 4, *hi = 0x8F;
    else return 0;
    return 1;
}

size_t w8_utf8_unit(const unsigned char *s, size_t n, int *valid) {
    *valid = 0;
    if (n == 0) return 0;
    if (s[0] < 0x80) {
        *valid = 1;
        return 1;
    }
    int len;
    unsigned char lo, hi;
    if (!lead_info(s[0], &len, &lo, &hi)) return 1;
    if (n < 2 || s[1] < lo || s[1] > hi) return 1;
    for (int i = 2; i < len; i++)
        if ((size_t)i >= n || s[i] < 0x80 || s[i] > 0xBF) return (size_t)i;
    *valid = 1;
    return (size_t)len;
}

int w8_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    int valid;
    size_t len = w8_utf8_unit(s, n, &valid);
    if (!valid) return 0;
    switch (len) {
    case 1: *cp = s[0]; break;
    case 2: *cp = ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F); break;
    case 3: *cp = ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F); break;
    default:
        *cp = ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
              ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    }
    return (int)len;
}

int w8_utf8_encode(uint32_t cp, char *out) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

int w8_utf8_valid(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        int valid;
        size_t l = w8_utf8_unit(u + i, n - i, &valid);
        if (!valid) return 0;
        i += l;
    }
    return 1;
}

char *w8_utf8_lossy(const char *s, size_t n, size_t *out_len) {
    /* worst case: every byte becomes the 3-byte U+FFFD */
    char *out = w8_xmalloc(n * 3 + 1);
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, o = 0;
    while (i < n) {
        int valid;
        size_t l = w8_utf8_unit(u + i, n - i, &valid);
        if (valid) memcpy(out + o, s + i, l), o += l;
        else memcpy(out + o, "\xEF\xBF\xBD", 3), o += 3;
        i += l;
    }
    out[o] = 0;
    if (out_len) *out_len = o;
    return out;
}

int w8_uni_is_space(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

int w8_uni_is_alnum(uint32_t cp) {
    if (cp < 0x80)
        return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO: return 1;
    default: return 0;
    }
}

/* GPT-2's bytes_to_unicode(): printable Latin-1 bytes map to themselves, the
 * other 68 bytes to U+0100.. in byte order.  Built once (pthread_once, the
 * server encodes from several threads), read-only afterwards. */
static char bl_text[256][3];
static int16_t bl_back[324];
static pthread_once_t bl_once = PTHREAD_ONCE_INIT;

static void bl_build(void) {
    int n = 0;
    for (int i = 0; i < 324; i++) bl_back[i] = -1;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        uint32_t cp = printable ? (uint32_t)b : (uint32_t)(256 + n++);
        int l = w8_utf8_encode(cp, bl_text[b]);
        bl_text[b][l] = 0;
        bl_back[cp] = (int16_t)b;
    }
}

static void bl_init(void) { pthread_once(&bl_once, bl_build); }

const char *w8_bytelevel_char(unsigned char b) {
    bl_init();
    return bl_text[b];
}

int w8_bytelevel_byte(uint32_t cp) {
    bl_init();
    return cp < 324 ? bl_back[cp] : -1;
}
