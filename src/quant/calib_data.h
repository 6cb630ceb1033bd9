/*
 * calib_data.h - calibration text for the quantizer (calib_data.c): the
 * built-in samples and the --calib_file reader.  Its own header (quantize.h
 * includes it) so that calib_data.c does not depend on the quantizer.
 */
#ifndef W8_CALIB_DATA_H
#define W8_CALIB_DATA_H

typedef struct {
    char **text;
    int n;
} w8_calib_set;

/* The built-in set: about 50 varied samples (English, Chinese, code, maths...). */
void w8_calib_builtin(w8_calib_set *s);
/* A file of plain text lines or JSON lines with "text" / "inputs_pretokenized";
 * empty lines skipped.  Error names the line. */
int w8_calib_load(const char *path, w8_calib_set *s);
void w8_calib_free(w8_calib_set *s);

#endif
