/*
 * buf.h - the growable byte buffer of the library (tokenizer, Jinja
 * interpreter, OpenAI request parsing, the server's bodies and answers, the
 * engine's published text, stop-string text).
 *
 * A zeroed w8_buf is empty and ready; s stays NULL until the first append,
 * then it is always NUL-terminated (s[len] == 0), so a filled buffer is also
 * a C string.  An append may move s: pointers into it are dead after one.
 * Out of memory aborts (w8_xrealloc), as everywhere in the library.
 *
 * An optional limit caps what a buffer will hold: an append that would take
 * len past it is dropped whole and sets `over`, and every later append is
 * dropped too.  The Jinja interpreter uses it to bound a template's output;
 * the caller checks `over` and reports the error.  A limited buffer never
 * allocates more than limit + 1 bytes (the server bounds request bodies so).
 */
#ifndef W8_BUF_H
#define W8_BUF_H

#include <stddef.h>

typedef struct {
    char *s;          /* the bytes, NUL-terminated (NULL while nothing was appended) */
    size_t len, cap;  /* bytes held (without the NUL); bytes allocated */
    size_t limit;     /* 0: none; otherwise the most bytes the buffer takes */
    int over;         /* an append was dropped for the limit */
} w8_buf;

/* Append n bytes (n == 0 still allocates and terminates). */
void w8_buf_put(w8_buf *b, const void *p, size_t n);
void w8_buf_puts(w8_buf *b, const char *s);
static inline void w8_buf_putc(w8_buf *b, char c) { w8_buf_put(b, &c, 1); }
/* Free the bytes and make b empty again (the limit stays, `over` clears). */
void w8_buf_free(w8_buf *b);

#endif
