/*
 * writer.h - the quantizer's output directory writer (internal).
 */
#ifndef W8_QUANT_WRITER_H
#define W8_QUANT_WRITER_H

#include "quant_impl.h"

/* Write the whole output of a planned and calibrated qstate into DIR (the
 * transaction's temporary directory); fills rep's tensor, shard, byte and
 * write-time counts.  0, or -1 with w8_lasterr(). */
int w8_qwrite(qstate *s, const char *dir, w8_quant_report *rep);

#endif
