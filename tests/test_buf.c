/*
 * test_buf.c - the library's growable buffer (src/buf.h): appends keep the
 * bytes NUL-terminated across growth, the limit drops a whole append and
 * every later one, and free makes the buffer reusable.
 */
#include <string.h>

#include "../src/buf.h"
#include "test.h"

static void test_growth(void) {
    w8_buf b = {0};
    CHECK(b.s == NULL && b.len == 0, "a zeroed buffer is empty");
    w8_buf_put(&b, "", 0);
    CHECK(b.s && b.s[0] == 0 && b.len == 0, "an empty append allocates and terminates");
    /* 1000 appends of 3 bytes: many doublings past the first 64 bytes */
    for (int i = 0; i < 1000; i++) w8_buf_put(&b, "abc", 3);
    w8_buf_putc(&b, '!');
    w8_buf_puts(&b, "end");
    int same = 1;
    for (int i = 0; i < 1000; i++) same &= memcmp(b.s + 3 * i, "abc", 3) == 0;
    CHECK(b.len == 3004 && same && strcmp(b.s + 3000, "!end") == 0 && b.cap > b.len,
          "3000 bytes of appends, then putc and puts, read back whole and terminated (len %zu)",
          b.len);
    char z[2] = {'x', 0};
    w8_buf_put(&b, z + 1, 1);
    CHECK(b.len == 3005 && b.s[3004] == 0 && b.s[3005] == 0, "an embedded NUL byte is kept");
    w8_buf_free(&b);
    CHECK(b.s == NULL && b.len == 0 && b.cap == 0, "free empties the buffer");
    w8_buf_puts(&b, "again");
    CHECK(b.len == 5 && strcmp(b.s, "again") == 0, "a freed buffer takes appends again");
    w8_buf_free(&b);
}

static void test_limit(void) {
    w8_buf b = {.limit = 8};
    w8_buf_puts(&b, "12345");
    w8_buf_puts(&b, "678");
    CHECK(b.len == 8 && !b.over && strcmp(b.s, "12345678") == 0, "appends up to the limit are kept");
    w8_buf_putc(&b, '9');
    CHECK(b.over && b.len == 8 && strcmp(b.s, "12345678") == 0,
          "an append past the limit is dropped and sets over");
    w8_buf_free(&b);
    w8_buf_puts(&b, "1234");
    w8_buf_puts(&b, "56789");
    CHECK(b.over && b.len == 4 && strcmp(b.s, "1234") == 0,
          "an append that would cross the limit is dropped whole, not cut");
    w8_buf_puts(&b, "a");
    CHECK(b.over && b.len == 4, "after over, later appends are dropped too");
    w8_buf_free(&b);
    CHECK(!b.over && b.limit == 8, "free clears over and keeps the limit");
    /* growth stops at limit + 1 bytes (the server's body buffer relies on it) */
    w8_buf big = {.limit = 1000};
    for (int i = 0; i < 1000; i++) w8_buf_putc(&big, 'x');
    CHECK(big.len == 1000 && !big.over && big.cap == 1001 && big.s[1000] == 0,
          "a limited buffer filled to its limit allocated limit + 1 bytes (cap %zu)", big.cap);
    w8_buf_free(&big);
}

int main(void) {
    test_growth();
    test_limit();
    TEST_DONE();
}
