/*
 * safetensors.c - zero-copy reader and streaming writer for safetensors.
 *
 * Reader: every file is mmap'ed read-only and tensors point into the
 * mapping, so opening a 15 GB model costs a header parse, not a copy.  The
 * header is untrusted input: each field is checked (dtype, shape, sizes with
 * overflow checks, ranges inside the data area, no overlaps) before any
 * w8_tensor is handed out, and every message names the file and the tensor.
 * A sharded model (*.safetensors.index.json) is one w8_st over all shards.
 *
 *   w8_st
 *   +- files[]    one mapping per shard (path, base, size)
 *   +- t[]        all tensors, ordered by (file, data offset)
 *   +- slots[]    open-addressing hash: name -> index into t[]
 *   +- meta[]     __metadata__ (single file) or index "metadata" + shards'
 *
 * Writer: declare all tensors, then the header is written once (keys in
 * declaration order, padded with spaces to 8 bytes), then data streams in
 * declaration order so memory stays at one tensor.
 */
#include "safetensors.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json.h"
#include "util.h"

/* "[2, 3]" into buf (for messages). */
static const char *shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, n - o, "[");
    for (int i = 0; i < ndim && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
    return buf;
}

/* ------------------------------------------------------------ reader */

typedef struct {
    char *path;  /* label used in messages */
    void *map;   /* NULL for w8_st_from_memory */
    size_t size;
    const unsigned char *base;
} st_file;

typedef struct {
    char *key, *value;
} st_meta;

struct w8_st {
    char *path;
    st_file *files;
    int nfiles;
    w8_tensor *t;
    size_t n, cap;
    size_t *begins;  /* data offset of t[i] inside its file's data area (for sorting) */
    int *fileidx;    /* file of t[i] */
    uint32_t *slots; /* hash slots: index+1, 0 = empty */
    size_t nslots;
    st_meta *meta;
    size_t nmeta;
    char *source;    /* file or index name w8_st_open_dir picked, or NULL */
};

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static w8_st *st_new(const char *path) {
    w8_st *st = w8_xcalloc(1, sizeof *st);
    st->path = w8_xstrdup(path);
    return st;
}

void w8_st_close(w8_st *st) {
    if (!st) return;
    free(st->source);
    for (int i = 0; i < st->nfiles; i++) {
        if (st->files[i].map) munmap(st->files[i].map, st->files[i].size);
        free(st->files[i].path);
    }
    for (size_t i = 0; i < st->n; i++) free((char *)st->t[i].name);
    for (size_t i = 0; i < st->nmeta; i++) {
        free(st->meta[i].key);
        free(st->meta[i].value);
    }
    free(st->files);
    free(st->t);
    free(st->begins);
    free(st->fileidx);
    free(st->slots);
    free(st->meta);
    free(st->path);
    free(st);
}

static void meta_add(w8_st *st, const char *key, const char *value) {
    for (size_t i = 0; i < st->nmeta; i++)
        if (!strcmp(st->meta[i].key, key)) return; /* first one wins */
    st->meta = w8_xrealloc(st->meta, (st->nmeta + 1) * sizeof *st->meta);
    st->meta[st->nmeta].key = w8_xstrdup(key);
    st->meta[st->nmeta].value = w8_xstrdup(value);
    st->nmeta++;
}

static int file_add(w8_st *st, const char *path, void *map, const void *base, size_t size) {
    st->files = w8_xrealloc(st->files, (size_t)(st->nfiles + 1) * sizeof *st->files);
    st_file *f = &st->files[st->nfiles];
    f->path = w8_xstrdup(path);
    f->map = map;
    f->size = size;
    f->base = base;
    return st->nfiles++;
}

/* Read one non-negative integer array element (shape dim or offset). */
static int get_u64(const json_t *v, uint64_t *out) {
    if (!json_is_integer(v) || json_integer_value(v) < 0) return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

/* Validate and append one header entry. data_size is the data area's size. */
static int parse_entry(w8_st *st, int fi, const char *name, const json_t *e, size_t data_size) {
    const char *label = st->files[fi].path;
    char sbuf[256];
    if (!json_is_object(e))
        return w8_seterr("%s: tensor '%s': expected an object, got %s", label, name,
                         w8_json_type_name(e));
    const json_t *jd = json_object_get(e, "dtype");
    const json_t *js = json_object_get(e, "shape");
    const json_t *jo = json_object_get(e, "data_offsets");
    if (!json_is_string(jd))
        return w8_seterr("%s: tensor '%s': 'dtype' must be a string", label, name);
    w8_dtype dt;
    if (w8_dtype_parse(json_string_value(jd), &dt) != 0)
        return w8_seterr("%s: tensor '%s': unsupported dtype '%s' (supported: F32 F16 BF16 I8 U8 I32 I64)",
                         label, name, json_string_value(jd));
    if (!json_is_array(js))
        return w8_seterr("%s: tensor '%s': 'shape' must be an array", label, name);
    size_t ndim = json_array_size(js);
    if (ndim > W8_ST_MAX_DIMS)
        return w8_seterr("%s: tensor '%s': shape has %zu dims (at most %d)", label, name, ndim,
                         W8_ST_MAX_DIMS);
    int64_t shape[W8_ST_MAX_DIMS];
    size_t numel = 1;
    int overflow = 0;
    for (size_t i = 0; i < ndim; i++) {
        uint64_t d;
        if (get_u64(json_array_get(js, i), &d) != 0)
            return w8_seterr("%s: tensor '%s': shape dim %zu is not a non-negative integer", label,
                             name, i);
        shape[i] = (int64_t)d;
        if (!w8_mul_ok(numel, (size_t)d, &numel)) overflow = 1;
    }
    size_t nbytes = 0;
    if (overflow || !w8_mul_ok(numel, w8_dtype_size(dt), &nbytes))
        return w8_seterr("%s: tensor '%s': shape %s with dtype %s is too large (size overflows)",
                         label, name, shape_str(sbuf, sizeof sbuf, (int)ndim, shape), w8_dtype_name(dt));
    if (!json_is_array(jo) || json_array_size(jo) != 2)
        return w8_seterr("%s: tensor '%s': 'data_offsets' must be an array [begin, end]", label, name);
    uint64_t b, en;
    if (get_u64(json_array_get(jo, 0), &b) != 0 || get_u64(json_array_get(jo, 1), &en) != 0)
        return w8_seterr("%s: tensor '%s': data_offsets must be non-negative integers", label, name);
    if (b > en)
        return w8_seterr("%s: tensor '%s': data_offsets [%llu, %llu] have begin > end", label, name,
                         (unsigned long long)b, (unsigned long long)en);
    if (en > data_size)
        return w8_seterr("%s: tensor '%s': data range [%llu, %llu) past end of data (%zu bytes)",
                         label, name, (unsigned long long)b, (unsigned long long)en, data_size);
    if (en - b != nbytes)
        return w8_seterr("%s: tensor '%s': shape %s with dtype %s needs %zu bytes, data_offsets give %llu",
                         label, name, shape_str(sbuf, sizeof sbuf, (int)ndim, shape),
                         w8_dtype_name(dt), nbytes, (unsigned long long)(en - b));
    if (st->n == st->cap) {
        st->cap = st->cap ? st->cap * 2 : 64;
        st->t = w8_xrealloc(st->t, st->cap * sizeof *st->t);
        st->begins = w8_xrealloc(st->begins, st->cap * sizeof *st->begins);
        st->fileidx = w8_xrealloc(st->fileidx, st->cap * sizeof *st->fileidx);
    }
    w8_tensor *t = &st->t[st->n];
    memset(t, 0, sizeof *t);
    t->name = w8_xstrdup(name);
    t->dtype = dt;
    t->ndim = (int)ndim;
    memcpy(t->shape, shape, ndim * sizeof *shape);
    t->numel = numel;
    t->nbytes = nbytes;
    st->begins[st->n] = (size_t)b;
    st->fileidx[st->n] = fi;
    st->n++;
    return 0;
}

/* Parse the header of file fi (already in st->files) and append its tensors. */
static int parse_file(w8_st *st, int fi) {
    const st_file *f = &st->files[fi];
    const char *label = f->path;
    if (f->size < 8)
        return w8_seterr("%s: file is %zu bytes, too short for a safetensors header", label, f->size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | f->base[i];
    if (hlen > W8_ST_MAX_HEADER)
        return w8_seterr("%s: header length %llu is over the limit of %zu bytes", label,
                         (unsigned long long)hlen, W8_ST_MAX_HEADER);
    if (hlen > f->size - 8)
        return w8_seterr("%s: header length %llu past end of file (%zu bytes)", label,
                         (unsigned long long)hlen, f->size);
    size_t data_size = f->size - 8 - (size_t)hlen;
    json_t *root = w8_json_load_buf((const char *)f->base + 8, (size_t)hlen, label);
    if (!root) return -1;
    int rc = 0;
    if (!json_is_object(root)) {
        rc = w8_seterr("%s: header is %s, expected an object", label, w8_json_type_name(root));
        goto out;
    }
    size_t first = st->n;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (!strcmp(key, "__metadata__")) {
            if (json_is_null(v)) continue;
            if (!json_is_object(v)) {
                rc = w8_seterr("%s: __metadata__ must be an object of strings", label);
                goto out;
            }
            const char *mk;
            json_t *mv;
            json_object_foreach(v, mk, mv) {
                if (!json_is_string(mv)) {
                    rc = w8_seterr("%s: __metadata__ key '%s': expected string, got %s", label, mk,
                                   w8_json_type_name(mv));
                    goto out;
                }
                meta_add(st, mk, json_string_value(mv));
            }
            continue;
        }
        if ((rc = parse_entry(st, fi, key, v, data_size)) != 0) goto out;
    }
    /* data pointers, once the file is known to be fully valid */
    for (size_t i = first; i < st->n; i++)
        st->t[i].data = f->base + 8 + hlen + st->begins[i];
out:
    json_decref(root);
    return rc;
}


/* Sort key: (file, begin, size), so w8_st_at() walks the data in file order. */
static int cmp_idx(const void *a, const void *b, void *ctx) {
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    const w8_st *st = ctx;
    if (st->fileidx[i] != st->fileidx[j]) return st->fileidx[i] < st->fileidx[j] ? -1 : 1;
    if (st->begins[i] != st->begins[j]) return st->begins[i] < st->begins[j] ? -1 : 1;
    if (st->t[i].nbytes != st->t[j].nbytes) return st->t[i].nbytes < st->t[j].nbytes ? -1 : 1;
    return i < j ? -1 : (i > j);
}

static const w8_tensor *hash_find(const w8_st *st, const char *name) {
    if (!st->nslots) return NULL;
    size_t mask = st->nslots - 1;
    for (size_t h = (size_t)hash_str(name) & mask;; h = (h + 1) & mask) {
        uint32_t s = st->slots[h];
        if (!s) return NULL;
        if (!strcmp(st->t[s - 1].name, name)) return &st->t[s - 1];
    }
}

/* Order tensors by (file, offset), reject overlapping ranges and duplicate
 * names (possible across shards), build the name hash. */
static int finalize(w8_st *st) {
    size_t n = st->n;
    size_t *idx = w8_xmalloc((n ? n : 1) * sizeof *idx);
    for (size_t i = 0; i < n; i++) idx[i] = i;
    qsort_r(idx, n, sizeof *idx, cmp_idx, st);
    w8_tensor *t = w8_xmalloc((n ? n : 1) * sizeof *t);
    size_t *begins = w8_xmalloc((n ? n : 1) * sizeof *begins);
    int *fileidx = w8_xmalloc((n ? n : 1) * sizeof *fileidx);
    for (size_t i = 0; i < n; i++) {
        t[i] = st->t[idx[i]];
        begins[i] = st->begins[idx[i]];
        fileidx[i] = st->fileidx[idx[i]];
    }
    free(idx);
    free(st->t);
    free(st->begins);
    free(st->fileidx);
    st->t = t;
    st->begins = begins;
    st->fileidx = fileidx;
    st->cap = n;

    /* overlap: with ranges sorted by begin, each non-empty range must start at
     * or after the furthest end seen so far in the same file */
    size_t far = 0;
    const w8_tensor *far_t = NULL;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || fileidx[i] != fileidx[i - 1]) far = 0, far_t = NULL;
        if (t[i].nbytes == 0) continue;
        if (far_t && begins[i] < far)
            return w8_seterr("%s: tensor '%s': data range [%zu, %zu) overlaps tensor '%s' (ends at %zu)",
                             st->files[fileidx[i]].path, t[i].name, begins[i],
                             begins[i] + t[i].nbytes, far_t->name, far);
        far = begins[i] + t[i].nbytes;
        far_t = &t[i];
    }

    size_t ns = 16;
    while (ns < 2 * n) ns *= 2;
    st->nslots = ns;
    st->slots = w8_xcalloc(ns, sizeof *st->slots);
    for (size_t i = 0; i < n; i++) {
        const w8_tensor *prev = hash_find(st, t[i].name);
        if (prev)
            return w8_seterr("%s: tensor '%s' appears twice (also in %s)", t[i].file, t[i].name,
                             prev->file);
        size_t h = (size_t)hash_str(t[i].name) & (ns - 1);
        while (st->slots[h]) h = (h + 1) & (ns - 1);
        st->slots[h] = (uint32_t)(i + 1);
    }
    return 0;
}

/* Map a file read-only and register it.  Returns its index or -1. */
static int map_file(w8_st *st, const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return w8_seterr("%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return w8_seterr("%s: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    void *map = NULL;
    if (size > 0) {
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            return w8_seterr("%s: cannot map: %s", path, strerror(e));
        }
    }
    close(fd);
    static const unsigned char empty[1];
    return file_add(st, path, map, map ? map : (const void *)empty, size);
}

static void fill_files(w8_st *st) {
    for (size_t i = 0; i < st->n; i++) st->t[i].file = st->files[st->fileidx[i]].path;
}

static w8_st *open_single(const char *path) {
    w8_st *st = st_new(path);
    int fi = map_file(st, path);
    if (fi < 0 || parse_file(st, fi) != 0) goto fail;
    fill_files(st);
    if (finalize(st) != 0) goto fail;
    return st;
fail:
    w8_st_close(st);
    return NULL;
}

w8_st *w8_st_from_memory(const void *buf, size_t len, const char *label) {
    w8_st *st = st_new(label);
    static const unsigned char empty[1];
    int fi = file_add(st, label, NULL, buf ? buf : (const void *)empty, buf ? len : 0);
    if (parse_file(st, fi) != 0) goto fail;
    fill_files(st);
    if (finalize(st) != 0) goto fail;
    return st;
fail:
    w8_st_close(st);
    return NULL;
}

static int strcmp_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* The index's "metadata" values as strings (total_size is a number). */
static void index_meta(w8_st *st, const json_t *m) {
    const char *k;
    json_t *v;
    if (!json_is_object(m)) return;
    json_object_foreach((json_t *)m, k, v) {
        char buf[64];
        if (json_is_string(v)) meta_add(st, k, json_string_value(v));
        else if (json_is_integer(v)) {
            snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
            meta_add(st, k, buf);
        }
    }
}

static w8_st *open_index(const char *path) {
    json_t *root = w8_json_load_file(path);
    if (!root) return NULL;
    w8_st *st = st_new(path);
    char *dir = w8_xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash) slash[1] = 0;
    else dir[0] = 0;
    const json_t *wm = json_object_get(root, "weight_map");
    const char *name;
    json_t *v;
    if (!json_is_object(root) || !json_is_object(wm)) {
        w8_seterr("%s: expected an object with a \"weight_map\" object", path);
        goto fail;
    }
    index_meta(st, json_object_get(root, "metadata"));
    /* open each shard once, in name order, so w8_st_at() order is stable */
    json_t *shards = json_array();
    json_object_foreach((json_t *)wm, name, v) {
        if (!json_is_string(v)) {
            json_decref(shards);
            w8_seterr("%s: weight_map['%s']: expected a file name string, got %s", path, name,
                      w8_json_type_name(v));
            goto fail;
        }
        const char *fn = json_string_value(v);
        if (!fn[0] || strchr(fn, '/') || !strcmp(fn, "..")) {
            json_decref(shards);
            w8_seterr("%s: weight_map['%s']: bad shard file name '%s'", path, name, fn);
            goto fail;
        }
        size_t i;
        for (i = 0; i < json_array_size(shards); i++)
            if (!strcmp(json_string_value(json_array_get(shards, i)), fn)) break;
        if (i == json_array_size(shards)) json_array_append_new(shards, json_string(fn));
    }
    size_t ns = json_array_size(shards);
    const char **names = w8_xmalloc((ns ? ns : 1) * sizeof *names);
    for (size_t i = 0; i < ns; i++) names[i] = json_string_value(json_array_get(shards, i));
    qsort(names, ns, sizeof *names, strcmp_ptr);
    int bad = 0;
    for (size_t i = 0; i < ns && !bad; i++) {
        /* shard names are relative to the index's directory */
        char *fp = dir[0] ? w8_path_join(dir, names[i]) : w8_xstrdup(names[i]);
        int fi = map_file(st, fp);
        if (fi < 0 || parse_file(st, fi) != 0) bad = 1;
        free(fp);
    }
    free(names);
    json_decref(shards);
    if (bad) goto fail;
    fill_files(st);
    if (finalize(st) != 0) goto fail;
    /* every tensor named in weight_map must be in the shard it names */
    json_object_foreach((json_t *)wm, name, v) {
        const w8_tensor *t = hash_find(st, name);
        const char *fn = json_string_value(v);
        const char *base = t ? strrchr(t->file, '/') : NULL;
        base = base ? base + 1 : t ? t->file : NULL;
        if (!t || strcmp(base, fn)) {
            char *fp = dir[0] ? w8_path_join(dir, fn) : w8_xstrdup(fn);
            w8_seterr("%s: tensor '%s' is listed in %s but is not in that file", fp, name, path);
            free(fp);
            goto fail;
        }
    }
    free(dir);
    json_decref(root);
    return st;
fail:
    free(dir);
    json_decref(root);
    w8_st_close(st);
    return NULL;
}

w8_st *w8_st_open(const char *path) {
    return ends_with(path, ".index.json") ? open_index(path) : open_single(path);
}

/* Several *.safetensors files without an index, opened as one set (as
 * vllm-ascend and MindIE load every weights file of a directory). */
static w8_st *open_files(const char *dir, char **names, size_t nn) {
    w8_st *st = st_new(dir);
    for (size_t i = 0; i < nn; i++) {
        char *fp = w8_path_join(dir, names[i]);
        int fi = map_file(st, fp);
        free(fp);
        if (fi < 0 || parse_file(st, fi) != 0) goto fail;
    }
    fill_files(st);
    if (finalize(st) != 0) goto fail;
    return st;
fail:
    w8_st_close(st);
    return NULL;
}

/* Other tools name the weights freely (msModelSlim's current saver writes
 * quant_model_weights.safetensors): after the known names, the one
 * *.safetensors.index.json of the directory, else all its *.safetensors. */
static w8_st *open_any(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) {
        w8_seterr("%s: cannot list: %s", dir, strerror(errno));
        return NULL;
    }
    char **idx = NULL, **files = NULL;
    size_t ni = 0, nf = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (ends_with(e->d_name, ".safetensors.index.json")) {
            idx = w8_xrealloc(idx, (ni + 1) * sizeof *idx);
            idx[ni++] = w8_xstrdup(e->d_name);
        } else if (ends_with(e->d_name, ".safetensors")) {
            files = w8_xrealloc(files, (nf + 1) * sizeof *files);
            files[nf++] = w8_xstrdup(e->d_name);
        }
    }
    closedir(d);
    w8_st *st = NULL;
    if (ni > 1) {
        qsort(idx, ni, sizeof *idx, strcmp_ptr);
        w8_seterr("%s: %zu weight indexes (%s, %s%s); cannot tell which one holds the model",
                  dir, ni, idx[0], idx[1], ni > 2 ? ", ..." : "");
    } else if (ni == 1) {
        char *p = w8_path_join(dir, idx[0]);
        if ((st = open_index(p))) {
            free(st->path);
            st->path = w8_xstrdup(dir);
            st->source = w8_xstrdup(idx[0]);
        }
        free(p);
    } else if (nf > 0) {
        qsort(files, nf, sizeof *files, strcmp_ptr);
        if ((st = open_files(dir, files, nf))) st->source = w8_xstrdup(files[0]);
    } else {
        w8_seterr("%s: no model.safetensors, model.safetensors.index.json, "
                  "quant_model_weight_w8a8.safetensors[.index.json] or other *.safetensors", dir);
    }
    for (size_t i = 0; i < ni; i++) free(idx[i]);
    for (size_t i = 0; i < nf; i++) free(files[i]);
    free(idx);
    free(files);
    return st;
}

w8_st *w8_st_open_dir(const char *dir) {
    static const char *const order[] = {
        "quant_model_weight_w8a8.safetensors.index.json",
        "quant_model_weight_w8a8.safetensors",
        "model.safetensors.index.json",
        "model.safetensors",
    };
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        char *p = w8_path_join(dir, order[i]);
        if (w8_file_exists(p)) {
            w8_st *st = w8_st_open(p);
            free(p);
            if (st) {
                free(st->path);
                st->path = w8_xstrdup(dir);
                st->source = w8_xstrdup(order[i]);
            }
            return st;
        }
        free(p);
    }
    if (!w8_is_dir(dir)) {
        w8_seterr("%s: not a directory", dir);
        return NULL;
    }
    return open_any(dir);
}

const char *w8_st_source(const w8_st *st) { return st->source; }

/* ------------------------------------------------------------ lookups */

size_t w8_st_count(const w8_st *st) { return st->n; }

const w8_tensor *w8_st_at(const w8_st *st, size_t i) { return i < st->n ? &st->t[i] : NULL; }

const w8_tensor *w8_st_find(const w8_st *st, const char *name) { return hash_find(st, name); }

const w8_tensor *w8_st_need(const w8_st *st, const char *name, int dtype, int ndim,
                            const int64_t *shape) {
    const w8_tensor *t = hash_find(st, name);
    if (!t) {
        w8_seterr("%s: tensor '%s' is missing", st->path, name);
        return NULL;
    }
    if (dtype >= 0 && (int)t->dtype != dtype) {
        w8_seterr("%s: tensor '%s' has dtype %s, expected %s", t->file, name,
                  w8_dtype_name(t->dtype), w8_dtype_name((w8_dtype)dtype));
        return NULL;
    }
    if (ndim >= 0) {
        int same = t->ndim == ndim;
        for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
        if (!same) {
            char a[256], b[256];
            w8_seterr("%s: tensor '%s' has shape %s, expected %s", t->file, name,
                      shape_str(a, sizeof a, t->ndim, t->shape),
                      shape_str(b, sizeof b, ndim > W8_ST_MAX_DIMS ? W8_ST_MAX_DIMS : ndim, shape));
            return NULL;
        }
    }
    return t;
}

const char *w8_st_meta(const w8_st *st, const char *key) {
    for (size_t i = 0; i < st->nmeta; i++)
        if (!strcmp(st->meta[i].key, key)) return st->meta[i].value;
    return NULL;
}

const char *w8_st_path(const w8_st *st) { return st->path; }

/* ------------------------------------------------------------ conversion */

/* Tensor data may sit at any byte offset in the file: read through memcpy. */
float w8_tensor_get_f32(const w8_tensor *t, size_t i) {
    const unsigned char *p = (const unsigned char *)t->data + i * w8_dtype_size(t->dtype);
    switch (t->dtype) {
    case W8_F32: { float f; memcpy(&f, p, 4); return f; }
    case W8_F16: { uint16_t h; memcpy(&h, p, 2); return w8_f16_to_f32(h); }
    case W8_BF16: { uint16_t h; memcpy(&h, p, 2); return w8_bf16_to_f32(h); }
    case W8_I8: return (float)*(const int8_t *)p;
    case W8_U8: return (float)*p;
    case W8_I32: { int32_t v; memcpy(&v, p, 4); return (float)v; }
    case W8_I64: { int64_t v; memcpy(&v, p, 8); return (float)v; }
    default: return 0.0f;
    }
}

void w8_tensor_to_f32(const w8_tensor *t, float *dst) {
    size_t n = t->numel;
    if (t->dtype == W8_F32) {
        memcpy(dst, t->data, n * 4);
        return;
    }
    const unsigned char *p = t->data;
    if (t->dtype == W8_F16) {
#pragma omp parallel for schedule(static) num_threads(w8_get_threads()) if (n > (1 << 18))
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = w8_f16_to_f32(h);
        }
        return;
    }
    if (t->dtype == W8_BF16) {
#pragma omp parallel for schedule(static) num_threads(w8_get_threads()) if (n > (1 << 18))
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = w8_bf16_to_f32(h);
        }
        return;
    }
    for (size_t i = 0; i < n; i++) dst[i] = w8_tensor_get_f32(t, i);
}

/* ------------------------------------------------------------ writer */

typedef struct {
    char *name;
    w8_dtype dtype;
    int ndim;
    int64_t shape[W8_ST_MAX_DIMS];
    size_t nbytes;
} stw_entry;

struct w8_stw {
    char *path;
    int fd;
    stw_entry *e;
    size_t n, cap;
    st_meta *meta;
    size_t nmeta;
    char *header;     /* built by begin (or file_size): JSON padded to 8 bytes */
    size_t hlen;
    int began;
    size_t next;      /* index of the next tensor to write */
    size_t part;      /* bytes of tensor `next` already written (write_part) */
    size_t data_size; /* sum of nbytes */
};

w8_stw *w8_stw_create(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        w8_seterr("%s: cannot create: %s", path, strerror(errno));
        return NULL;
    }
    w8_stw *w = w8_xcalloc(1, sizeof *w);
    w->path = w8_xstrdup(path);
    w->fd = fd;
    return w;
}

int w8_stw_declare(w8_stw *w, const char *name, w8_dtype dtype, int ndim, const int64_t *shape) {
    if (w->began) return w8_seterr("%s: tensor '%s' declared after the header was written", w->path, name);
    if ((unsigned)dtype >= W8_DTYPE_COUNT) return w8_seterr("%s: tensor '%s': bad dtype", w->path, name);
    if (ndim < 0 || ndim > W8_ST_MAX_DIMS)
        return w8_seterr("%s: tensor '%s': %d dims (at most %d)", w->path, name, ndim, W8_ST_MAX_DIMS);
    if (!strcmp(name, "__metadata__") || !name[0])
        return w8_seterr("%s: bad tensor name '%s'", w->path, name);
    for (size_t i = 0; i < w->n; i++)
        if (!strcmp(w->e[i].name, name))
            return w8_seterr("%s: tensor '%s' declared twice", w->path, name);
    size_t nbytes = w8_dtype_size(dtype), total;
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0 || !w8_mul_ok(nbytes, (size_t)shape[i], &nbytes))
            return w8_seterr("%s: tensor '%s': bad or too large shape", w->path, name);
    if (!w8_add_ok(w->data_size, nbytes, &total))
        return w8_seterr("%s: tensor '%s': file too large", w->path, name);
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 64;
        w->e = w8_xrealloc(w->e, w->cap * sizeof *w->e);
    }
    stw_entry *e = &w->e[w->n++];
    memset(e, 0, sizeof *e);
    e->name = w8_xstrdup(name);
    e->dtype = dtype;
    e->ndim = ndim;
    if (ndim) memcpy(e->shape, shape, (size_t)ndim * sizeof *shape);
    e->nbytes = nbytes;
    w->data_size = total;
    free(w->header); /* any header built for file_size is stale now */
    w->header = NULL;
    return 0;
}

int w8_stw_set_meta(w8_stw *w, const char *key, const char *value) {
    if (w->began) return w8_seterr("%s: metadata set after the header was written", w->path);
    for (size_t i = 0; i < w->nmeta; i++)
        if (!strcmp(w->meta[i].key, key)) {
            free(w->meta[i].value);
            w->meta[i].value = w8_xstrdup(value);
            goto stale;
        }
    w->meta = w8_xrealloc(w->meta, (w->nmeta + 1) * sizeof *w->meta);
    w->meta[w->nmeta].key = w8_xstrdup(key);
    w->meta[w->nmeta].value = w8_xstrdup(value);
    w->nmeta++;
stale:
    free(w->header);
    w->header = NULL;
    return 0;
}

/* Build the header: "__metadata__" first, tensors in declaration order, each
 * {"dtype", "shape", "data_offsets"} as HF writes them; padded with spaces so
 * the data area starts 8-byte aligned.  jansson keeps insertion order. */
static void build_header(w8_stw *w) {
    if (w->header) return;
    json_t *root = json_object();
    if (w->nmeta) {
        json_t *m = json_object();
        for (size_t i = 0; i < w->nmeta; i++)
            json_object_set_new(m, w->meta[i].key, json_string(w->meta[i].value));
        json_object_set_new(root, "__metadata__", m);
    }
    size_t off = 0;
    for (size_t i = 0; i < w->n; i++) {
        const stw_entry *e = &w->e[i];
        json_t *o = json_object(), *sh = json_array();
        for (int d = 0; d < e->ndim; d++) json_array_append_new(sh, json_integer(e->shape[d]));
        json_object_set_new(o, "dtype", json_string(w8_dtype_name(e->dtype)));
        json_object_set_new(o, "shape", sh);
        json_object_set_new(o, "data_offsets",
                            json_pack("[II]", (json_int_t)off, (json_int_t)(off + e->nbytes)));
        json_object_set_new(root, e->name, o);
        off += e->nbytes;
    }
    char *s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!s) {
        fprintf(stderr, "w8a8: out of memory serializing a safetensors header\n");
        abort();
    }
    size_t len = strlen(s), padded = (len + 7) & ~(size_t)7;
    w->header = w8_xmalloc(8 + padded);
    for (int i = 0; i < 8; i++) w->header[i] = (char)(((uint64_t)padded >> (8 * i)) & 0xff);
    memcpy(w->header + 8, s, len);
    memset(w->header + 8 + len, ' ', padded - len);
    w->hlen = 8 + padded;
    free(s);
}

size_t w8_stw_file_size(const w8_stw *w) {
    build_header((w8_stw *)w);
    return w->hlen + w->data_size;
}

static int write_all(w8_stw *w, const void *buf, size_t n) {
    const char *p = buf;
    while (n) {
        ssize_t r = write(w->fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = r < 0 ? errno : ENOSPC; /* write() returning 0 means the disk is full */
            return w8_seterr("%s: write failed: %s", w->path, strerror(e));
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

int w8_stw_begin(w8_stw *w) {
    if (w->began) return w8_seterr("%s: header already written", w->path);
    build_header(w);
    if (write_all(w, w->header, w->hlen) != 0) return -1;
    w->began = 1;
    return 0;
}

/* Check that `name` is the tensor due and `nbytes` fit in what is left of it. */
static int stw_due(w8_stw *w, const char *name, size_t nbytes, int whole) {
    if (!w->began) return w8_seterr("%s: tensor '%s' written before the header", w->path, name);
    if (w->next >= w->n)
        return w8_seterr("%s: tensor '%s' written but every declared tensor is done", w->path, name);
    const stw_entry *e = &w->e[w->next];
    if (strcmp(e->name, name))
        return w8_seterr("%s: tensor '%s' written out of order (next declared is '%s')", w->path,
                         name, e->name);
    if (whole ? (w->part != 0 || nbytes != e->nbytes) : nbytes > e->nbytes - w->part)
        return w8_seterr("%s: tensor '%s': %zu bytes given, declared size is %zu (%zu written)",
                         w->path, name, nbytes, e->nbytes, w->part);
    return 0;
}

static int stw_put(w8_stw *w, const void *data, size_t nbytes) {
    if (write_all(w, data, nbytes) != 0) return -1;
    w->part += nbytes;
    if (w->part == w->e[w->next].nbytes) {
        w->next++;
        w->part = 0;
    }
    return 0;
}

int w8_stw_write(w8_stw *w, const char *name, const void *data, size_t nbytes) {
    if (stw_due(w, name, nbytes, 1) != 0) return -1;
    return stw_put(w, data, nbytes);
}

int w8_stw_write_part(w8_stw *w, const char *name, const void *data, size_t nbytes) {
    if (stw_due(w, name, nbytes, 0) != 0) return -1;
    return stw_put(w, data, nbytes);
}

static void stw_free(w8_stw *w) {
    for (size_t i = 0; i < w->n; i++) free(w->e[i].name);
    for (size_t i = 0; i < w->nmeta; i++) {
        free(w->meta[i].key);
        free(w->meta[i].value);
    }
    free(w->e);
    free(w->meta);
    free(w->header);
    free(w->path);
    free(w);
}

int w8_stw_finish(w8_stw *w) {
    int rc = 0;
    if (!w->began && w8_stw_begin(w) != 0) rc = -1;
    else if (w->next < w->n)
        rc = w8_seterr("%s: tensor '%s' was declared but not written", w->path, w->e[w->next].name);
    else if (fsync(w->fd) != 0)
        rc = w8_seterr("%s: fsync failed: %s", w->path, strerror(errno));
    if (close(w->fd) != 0 && rc == 0) rc = w8_seterr("%s: close failed: %s", w->path, strerror(errno));
    stw_free(w);
    return rc;
}

void w8_stw_abort(w8_stw *w) {
    if (!w) return;
    close(w->fd);
    stw_free(w);
}
