/*
 * stop_text.h - generated text cut at the first stop string, and how much of
 * it may be shown before the next token arrives.
 *
 * The server streams text while a stop string may still be forming: bytes at
 * the end that are the beginning of some stop string are held back until the
 * next piece either completes the stop string (the text ends before it) or
 * rules it out.  `ready` never decreases and the cut never falls before it,
 * so text once published is never taken back.  Pure and single-threaded: the
 * engine runs it on its scheduler thread, outside its mutex, and fuzz_stop
 * drives it with arbitrary bytes.
 */
#ifndef W8_STOP_TEXT_H
#define W8_STOP_TEXT_H

#include <stddef.h>

#include "buf.h"

typedef struct {
    char **stop;     /* the non-empty stop strings (owned copies) */
    int n_stop;
    size_t max_stop; /* longest stop string */
    w8_buf text;     /* text so far (text.s NUL-terminated, never NULL after init);
                      * bytes, not necessarily UTF-8 */
    size_t ready;    /* text.s[0, ready) can no longer be cut */
    int stopped;     /* a stop string occurred; text ends before it; further adds are ignored */
} w8_stop_text;

/* Copy the stop strings; empty ones are dropped (they would match at once,
 * and OpenAI's API ignores them too). */
void w8_stop_text_init(w8_stop_text *s, char *const *stop, int n_stop);
/* Append n bytes.  Returns 1 if a stop string now occurs in the text (the
 * text is cut where the first one begins), else 0. */
int w8_stop_text_add(w8_stop_text *s, const char *p, size_t n);
/* The text is complete (end of generation): all of it is ready. */
void w8_stop_text_end(w8_stop_text *s);
void w8_stop_text_free(w8_stop_text *s);

#endif
