/*
 * quant_impl.c - the helpers the quantizer's parts share (quant_impl.h).
 */
#include "quant_impl.h"

#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* Drop the pages of a finished source tensor from this process (the mapping
 * is read-only and file-backed, so they are simply re-read if touched): keeps
 * the resident set near one layer instead of the whole model. */
void w8_qs_release_pages(const w8_tensor *t) {
    if (t->nbytes < (1u << 20)) return;
    long pg = sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)t->data + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
    uintptr_t e = ((uintptr_t)t->data + t->nbytes) & ~((uintptr_t)pg - 1);
    if (e > a) madvise((void *)a, e - a, MADV_DONTNEED);
}

/* First non-finite element of a float tensor, by its bits (no conversion). */
long w8_qs_find_nonfinite(const w8_tensor *t) {
    size_t n = t->numel;
    if (t->dtype == W8_F32) {
        const uint32_t *p = t->data;
        for (size_t i = 0; i < n; i++)
            if ((p[i] & 0x7f800000u) == 0x7f800000u) return (long)i;
    } else if (t->dtype == W8_F16) {
        const uint16_t *p = t->data;
        for (size_t i = 0; i < n; i++)
            if ((p[i] & 0x7c00u) == 0x7c00u) return (long)i;
    } else if (t->dtype == W8_BF16) {
        const uint16_t *p = t->data;
        for (size_t i = 0; i < n; i++)
            if ((p[i] & 0x7f80u) == 0x7f80u) return (long)i;
    }
    return -1;
}

void w8_qs_free(qstate *s) {
    for (int g = 0; g < s->n_grp; g++) {
        free(s->grp[g].cmin);
        free(s->grp[g].cmax);
        free(s->grp[g].smooth);
    }
    for (int j = 0; j < s->n_lin && s->qbias; j++) {
        free(s->qbias[j]);
        free(s->deq[j]);
    }
    free(s->qbias);
    free(s->deq);
    free(s->grp);
    free(s->lin);
    if (s->st) w8_st_close(s->st);
}
