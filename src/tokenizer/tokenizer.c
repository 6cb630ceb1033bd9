/*
 * tokenizer.c - loading tokenizer.json and tokenizer_config.json, added
 * tokens, the encode pipeline and the post-processor.  See tokenizer.h and,
 * for how the work is divided between files, tok_internal.h.
 *
 * Encoding follows Hugging Face tokenizers' Tokenizer::encode:
 *   1. added tokens with normalized=false are cut out of the raw text
 *      (leftmost-longest, as its aho-corasick matcher), honouring lstrip,
 *      rstrip and single_word;
 *   2. each remaining segment is normalized, then cut on the added tokens
 *      with normalized=true (matched against their normalized content);
 *   3. each remaining piece is pre-tokenized into words, and every word is
 *      merged by the BPE model;
 *   4. with add_special, the TemplateProcessing post-processor (or, without
 *      one, tokenizer_config.json's add_bos_token/add_eos_token) adds ids.
 * The text HF receives is a Python str, so it is always valid UTF-8; bytes
 * that are not valid UTF-8 are replaced by U+FFFD first (as Python's
 * decode(errors="replace") and Rust's from_utf8_lossy would), never a crash.
 */
#include <stdlib.h>
#include <string.h>

#include "../chat_template.h"
#include "../json.h"
#include "tok_internal.h"
#include "tokenizer.h"
#include "unicode.h"
#include "../util.h"

#define MAX_ADDED_ID W8_MAX_VOCAB_ID

/* ---- loading */

static int parse_added(w8_tok *t, const json_t *arr, const char *label) {
    if (!arr || json_is_null(arr)) return 0;
    if (!json_is_array(arr))
        return w8_seterr("%s: 'added_tokens': expected an array, got %s", label, w8_json_type_name(arr));
    t->added = w8_xcalloc(json_array_size(arr) + 1, sizeof(w8_added));
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *e = json_array_get(arr, i);
        w8_added *a = &t->added[t->nadded];
        char what[64];
        snprintf(what, sizeof what, "%s: added_tokens[%zu]", label, i);
        if (!json_is_object(e)) return w8_seterr("%s: expected an object", what);
        long long id = -1;
        const json_t *c = json_object_get(e, "content");
        if (w8_json_get_int(e, "id", what, &id) != 0 || id < 0 || id >= MAX_ADDED_ID)
            return w8_seterr("%s: 'id' must be an integer in [0, %d)", what, MAX_ADDED_ID);
        if (!json_is_string(c) || json_string_length(c) == 0)
            return w8_seterr("%s: 'content' must be a non-empty string", what);
        if (w8_json_get_bool(e, "special", what, &a->special) < 0 ||
            w8_json_get_bool(e, "lstrip", what, &a->lstrip) < 0 ||
            w8_json_get_bool(e, "rstrip", what, &a->rstrip) < 0 ||
            w8_json_get_bool(e, "single_word", what, &a->single_word) < 0)
            return -1;
        /* HF's AddedToken default: normalized = !special */
        a->normalized = !a->special;
        if (w8_json_get_bool(e, "normalized", what, &a->normalized) < 0) return -1;
        a->id = (int)id;
        a->len = json_string_length(c);
        a->content = w8_xstrndup(json_string_value(c), a->len);
        if (!w8_utf8_valid(a->content, a->len)) return w8_seterr("%s: 'content' is not valid UTF-8", what);
        t->nadded++;
    }
    return 0;
}

/* TemplateProcessing "single": [{"SpecialToken": {"id": NAME}}, {"Sequence": {"id": "A"}}],
 * with NAME resolved through "special_tokens": {NAME: {"ids": [...]}}. */
static int parse_template(w8_tok *t, const json_t *pp, const char *label) {
    const json_t *single = json_object_get(pp, "single"), *sp = json_object_get(pp, "special_tokens");
    if (!json_is_array(single))
        return w8_seterr("%s: post_processor TemplateProcessing: 'single' must be an array", label);
    w8_ivec v = {0};
    int nseq = 0;
    for (size_t i = 0; i < json_array_size(single); i++) {
        const json_t *e = json_array_get(single, i);
        const json_t *st = json_object_get(e, "SpecialToken"), *sq = json_object_get(e, "Sequence");
        if (json_is_object(sq)) {
            w8_ivec_push(&v, -1);
            nseq++;
            continue;
        }
        const json_t *name = json_object_get(st, "id");
        const json_t *ids = json_object_get(json_object_get(sp, json_string_value(name) ? json_string_value(name) : ""), "ids");
        if (!json_is_string(name) || !json_is_array(ids)) {
            free(v.v);
            return w8_seterr("%s: post_processor TemplateProcessing: single[%zu] is not a known "
                             "SpecialToken or Sequence", label, i);
        }
        for (size_t k = 0; k < json_array_size(ids); k++) {
            const json_t *x = json_array_get(ids, k);
            if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) >= MAX_ADDED_ID) {
                free(v.v);
                return w8_seterr("%s: post_processor: special token '%s' has a bad id", label,
                                 json_string_value(name));
            }
            w8_ivec_push(&v, (int)json_integer_value(x));
        }
    }
    if (nseq != 1) {
        free(v.v);
        return w8_seterr("%s: post_processor TemplateProcessing: 'single' must hold the sequence once", label);
    }
    t->has_template = 1;
    t->tmpl = v.v;
    t->ntmpl = (int)v.n;
    return 0;
}

static int parse_post(w8_tok *t, const json_t *pp, const char *label) {
    if (!pp || json_is_null(pp)) return 0;
    const json_t *ty = json_object_get(pp, "type");
    const char *type = json_is_string(ty) ? json_string_value(ty) : "";
    if (!strcmp(type, "TemplateProcessing")) return parse_template(t, pp, label);
    if (!strcmp(type, "ByteLevel")) return 0; /* only moves offsets; ids unchanged */
    if (!strcmp(type, "Sequence")) {          /* Llama 3: [ByteLevel, TemplateProcessing] */
        const json_t *a = json_object_get(pp, "processors");
        if (!json_is_array(a)) return w8_seterr("%s: post_processor Sequence: 'processors' must be an array", label);
        for (size_t i = 0; i < json_array_size(a); i++)
            if (parse_post(t, json_array_get(a, i), label) < 0) return -1;
        return 0;
    }
    return w8_seterr("%s: post_processor type '%s' is not supported (only TemplateProcessing, "
                     "ByteLevel, Sequence)", label, type);
}

/* bos_token / eos_token: a string or {"content": ...}. */
static char *special_name(const json_t *cfg, const char *key) {
    const json_t *v = json_object_get(cfg, key);
    if (json_is_object(v)) v = json_object_get(v, "content");
    return json_is_string(v) ? w8_xstrdup(json_string_value(v)) : NULL;
}

static int parse_config(w8_tok *t, const char *cfg_json, size_t cfg_len, const char *label) {
    /* name the config file: DIR/tokenizer.json -> DIR/tokenizer_config.json */
    char *cl = NULL;
    size_t ll = strlen(label), sl = strlen("tokenizer.json");
    int r = ll >= sl && !strcmp(label + ll - sl, "tokenizer.json")
                ? asprintf(&cl, "%.*stokenizer_config.json", (int)(ll - sl), label)
                : asprintf(&cl, "%s (tokenizer_config.json)", label);
    if (r < 0) return w8_seterr("out of memory");
    json_t *cfg = w8_json_load_buf(cfg_json, cfg_len, cl);
    int rc = 0;
    if (!cfg) {
        rc = -1;
    } else if (!json_is_object(cfg)) {
        rc = w8_seterr("%s: expected an object", cl);
    } else {
        t->bos_token = special_name(cfg, "bos_token");
        t->eos_token = special_name(cfg, "eos_token");
        if (w8_json_get_bool(cfg, "add_bos_token", cl, &t->add_bos) < 0 ||
            w8_json_get_bool(cfg, "add_eos_token", cl, &t->add_eos) < 0)
            rc = -1;
        const json_t *ct = json_object_get(cfg, "chat_template");
        if (json_is_string(ct)) {
            t->chat_template = w8_xstrdup(json_string_value(ct));
        } else if (json_is_array(ct)) { /* [{"name", "template"}]: the "default" one */
            for (size_t i = 0; i < json_array_size(ct); i++) {
                const json_t *e = json_array_get(ct, i);
                const json_t *nm = json_object_get(e, "name"), *tp = json_object_get(e, "template");
                if (json_is_string(nm) && json_is_string(tp) && !strcmp(json_string_value(nm), "default"))
                    t->chat_template = w8_xstrdup(json_string_value(tp));
            }
        }
    }
    json_decref(cfg);
    free(cl);
    return rc;
}

static int build(w8_tok *t, const json_t *root, const w8_fast_ranges *fr) {
    const char *label = t->label;
    if (!json_is_object(root)) return w8_seterr("%s: expected a JSON object", label);
    int rc = w8_bpe_load(&t->bpe, json_object_get(root, "model"), label, fr);
    if (rc < 0) return rc;
    if (parse_added(t, json_object_get(root, "added_tokens"), label) < 0) return -1;
    const json_t *j;
    if ((j = json_object_get(root, "normalizer")) && !json_is_null(j) && !(t->norm = w8_norm_parse(j, label)))
        return -1;
    if ((j = json_object_get(root, "pre_tokenizer")) && !json_is_null(j) &&
        !(t->pretok = w8_pretok_parse(j, label)))
        return -1;
    if ((j = json_object_get(root, "decoder")) && !json_is_null(j) && !(t->dec = w8_dec_parse(j, label)))
        return -1;
    if (parse_post(t, json_object_get(root, "post_processor"), label) < 0) return -1;

    t->vocab_size = t->bpe.npiece;
    for (int i = 0; i < t->nadded; i++)
        if (t->added[i].id + 1 > t->vocab_size) t->vocab_size = t->added[i].id + 1;
    t->added_by_id = w8_xmalloc(((size_t)t->vocab_size + 1) * sizeof(int));
    for (int i = 0; i < t->vocab_size; i++) t->added_by_id[i] = -1;
    for (int i = 0; i < t->nadded; i++) {
        w8_added *a = &t->added[i];
        t->added_by_id[a->id] = i;
        /* normalized tokens are matched in normalized text, by their normalized form */
        if (a->normalized && t->norm) {
            w8_buf nb = {0};
            if (w8_norm_apply(t->norm, a->content, a->len, &nb) < 0) return -1;
            a->norm = nb.s ? nb.s : w8_xstrdup("");
            a->norm_len = nb.len;
        } else {
            a->norm = w8_xstrndup(a->content, a->len);
            a->norm_len = a->len;
        }
        if (a->normalized) {
            if (a->norm_len) t->first_norm[(unsigned char)a->norm[0]] = 1;
        } else {
            t->first_raw[(unsigned char)a->content[0]] = 1;
        }
    }
    for (int i = 0; i < t->ntmpl; i++)
        if (t->tmpl[i] >= t->vocab_size)
            return w8_seterr("%s: post_processor: id %d is past the vocab (%d)", label, t->tmpl[i],
                             t->vocab_size);
    return 0;
}

static w8_tok *tok_new(const char *label) {
    w8_tok *t = w8_xcalloc(1, sizeof *t);
    t->label = w8_xstrdup(label);
    t->bos_id = t->eos_id = -1;
    return t;
}

/* The fast path (tok_fastjson.c): jansson parses the document with
 * model.vocab and model.merges blanked out, and those two are read from the
 * text directly.  NULL with *fallback set: load the slow way instead. */
static w8_tok *from_json_fast(const char *buf, size_t len, const char *label, int *fallback) {
    *fallback = 1;
    w8_fast_ranges fr;
    if (w8_fast_skim(buf, len, &fr) < 0) return NULL;
    const char *r[2][2] = {{fr.vocab, fr.vocab_end}, {fr.merges, fr.merges_end}};
    int first = fr.vocab < fr.merges ? 0 : 1;
    const char *blank[2] = {"{}", "[]"};
    w8_buf sb = {0};
    w8_buf_put(&sb, buf, (size_t)(r[first][0] - buf));
    w8_buf_put(&sb, blank[first], 2);
    w8_buf_put(&sb, r[first][1], (size_t)(r[!first][0] - r[first][1]));
    w8_buf_put(&sb, blank[!first], 2);
    w8_buf_put(&sb, r[!first][1], (size_t)(buf + len - r[!first][1]));
    json_error_t e;
    json_t *root = w8_json_parse(sb.s, sb.len, &e);
    free(sb.s);
    if (!root) return NULL;
    w8_tok *t = tok_new(label);
    int rc = build(t, root, &fr);
    json_decref(root);
    if (rc == 0 || rc == -1) *fallback = 0;
    if (rc < 0) {
        w8_tok_free(t);
        return NULL;
    }
    return t;
}

w8_tok *w8_tok_from_json(const char *tok_json, size_t len, const char *cfg_json, size_t cfg_len,
                         const char *label) {
    if (!label) label = "tokenizer.json";
    int fallback;
    w8_tok *t = from_json_fast(tok_json, len, label, &fallback);
    if (!t && !fallback) return NULL;
    if (!t) {
        json_t *root = w8_json_load_buf(tok_json, len, label);
        if (!root) return NULL;
        t = tok_new(label);
        int rc = build(t, root, NULL);
        json_decref(root);
        if (rc < 0) {
            w8_tok_free(t);
            return NULL;
        }
    }
    if (cfg_json && parse_config(t, cfg_json, cfg_len, label) < 0) {
        w8_tok_free(t);
        return NULL;
    }
    if (t->bos_token) t->bos_id = w8_tok_token_id(t, t->bos_token);
    if (t->eos_token) t->eos_id = w8_tok_token_id(t, t->eos_token);
    return t;
}

w8_tok *w8_tok_load(const char *dir) {
    /* DIR holding tokenizer.json, or the tokenizer.json file itself */
    if (!w8_is_dir(dir) && !w8_file_exists(dir)) {
        w8_seterr("%s: no such directory (want a model directory holding tokenizer.json)", dir);
        return NULL;
    }
    char *path = w8_is_dir(dir) ? w8_path_join(dir, "tokenizer.json") : w8_xstrdup(dir);
    char *cdir = w8_is_dir(dir) ? w8_xstrdup(dir) : NULL;
    if (!cdir) {
        const char *sl = strrchr(path, '/');
        cdir = sl ? w8_xstrndup(path, (size_t)(sl - path)) : w8_xstrdup(".");
    }
    char *cpath = w8_path_join(cdir, "tokenizer_config.json");
    size_t len = 0, clen = 0;
    char *buf = w8_read_file(path, W8_JSON_MAX_FILE, &len);
    char *cbuf = NULL;
    w8_tok *t = NULL;
    if (buf && w8_file_exists(cpath)) cbuf = w8_read_file(cpath, W8_JSON_MAX_FILE, &clen);
    if (buf && (cbuf || !w8_file_exists(cpath))) t = w8_tok_from_json(buf, len, cbuf, clen, path);
    /* the directory's chat template, found as every command finds it
     * (chat_template.jinja first), replaces tokenizer_config.json's */
    char *tmpl = NULL;
    if (t && w8_chat_template_find(cdir, &tmpl) < 0) {
        w8_tok_free(t);
        t = NULL;
    } else if (t) {
        free(t->chat_template);
        t->chat_template = tmpl;
    }
    free(buf);
    free(cbuf);
    free(path);
    free(cpath);
    free(cdir);
    return t;
}

void w8_tok_free(w8_tok *t) {
    if (!t) return;
    w8_bpe_free(&t->bpe);
    for (int i = 0; i < t->nadded; i++) {
        free(t->added[i].content);
        free(t->added[i].norm);
    }
    free(t->added);
    free(t->added_by_id);
    w8_norm_free(t->norm);
    w8_pretok_free(t->pretok);
    w8_dec_free(t->dec);
    free(t->tmpl);
    free(t->bos_token);
    free(t->eos_token);
    free(t->chat_template);
    free(t->label);
    free(t);
}

/* ---- added tokens */

static int prev_is_word(const char *s, size_t pos) {
    if (pos == 0) return 0;
    size_t k = pos - 1;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
    uint32_t cp;
    return w8_utf8_decode((const unsigned char *)s + k, pos - k, &cp) > 0 && w8_uni_is_alnum(cp);
}

static int next_is_word(const char *s, size_t n, size_t pos) {
    uint32_t cp;
    return pos < n && w8_utf8_decode((const unsigned char *)s + pos, n - pos, &cp) > 0 && w8_uni_is_alnum(cp);
}

/* Cut s[0..n) into segments as HF's AddedVocabulary::find_matches: out gets
 * triples (start, end, added index or -1).  `normalized` picks the token
 * set (normalized=true ones, matched by their normalized content). */
static void split_added(const w8_tok *t, const char *s, size_t n, int normalized, w8_ivec *out) {
    const uint8_t *first = normalized ? t->first_norm : t->first_raw;
    size_t start_off = 0, i = 0;
    while (i < n) {
        if (!first[(unsigned char)s[i]]) {
            i++;
            continue;
        }
        int best = -1;
        size_t blen = 0;
        for (int k = 0; k < t->nadded; k++) {
            const w8_added *a = &t->added[k];
            if (a->normalized != normalized) continue;
            const char *c = normalized ? a->norm : a->content;
            size_t cl = normalized ? a->norm_len : a->len;
            if (cl > blen && cl <= n - i && !memcmp(s + i, c, cl)) best = k, blen = cl;
        }
        if (best < 0) {
            i++;
            continue;
        }
        /* the matcher consumed [i, i+blen) whether or not the checks below keep it */
        size_t st = i, en = i + blen;
        i = en;
        const w8_added *a = &t->added[best];
        if (a->single_word && (prev_is_word(s, st) || next_is_word(s, n, en))) continue;
        if (st < start_off) continue; /* overlaps what an rstrip already took */
        if (a->lstrip) {
            size_t b = st;
            while (b > start_off) {
                size_t k = b - 1;
                while (k > start_off && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
                uint32_t cp;
                if (w8_utf8_decode((const unsigned char *)s + k, b - k, &cp) <= 0 || !w8_uni_is_space(cp)) break;
                b = k;
            }
            st = b;
        }
        if (a->rstrip) {
            uint32_t cp;
            int l;
            while (en < n && (l = w8_utf8_decode((const unsigned char *)s + en, n - en, &cp)) > 0 &&
                   w8_uni_is_space(cp))
                en += (size_t)l;
            if (i < en) i = en;
        }
        if (start_off < st) {
            w8_ivec_push(out, (int)start_off), w8_ivec_push(out, (int)st), w8_ivec_push(out, -1);
        }
        w8_ivec_push(out, (int)st), w8_ivec_push(out, (int)en), w8_ivec_push(out, best);
        start_off = en;
    }
    if (start_off < n) {
        w8_ivec_push(out, (int)start_off), w8_ivec_push(out, (int)n), w8_ivec_push(out, -1);
    }
}

/* ---- encoding */

typedef struct {
    const w8_tok *t;
    w8_ivec *ids;
} word_sink;

static int bpe_sink(void *c, const char *s, size_t n, int at0) {
    word_sink *k = c;
    (void)at0;
    w8_bpe_word(&k->t->bpe, s, n, k->ids);
    return 0;
}

/* Pre-tokenize one normalized piece and run BPE on every word. */
static int encode_piece(const w8_tok *t, const char *s, size_t n, int at_start, w8_ivec *ids) {
    if (!t->pretok) {
        w8_bpe_word(&t->bpe, s, n, ids);
        return 0;
    }
    word_sink k = {t, ids};
    return w8_pretok_run(t->pretok, s, n, at_start, bpe_sink, &k);
}

/* One segment between raw added tokens: normalize it, cut it on the
 * normalized added tokens, and encode the pieces. */
static int encode_segment(const w8_tok *t, const char *s, size_t n, int at_start, w8_ivec *ids) {
    w8_buf nb = {0};
    if (t->norm && w8_norm_apply(t->norm, s, n, &nb) < 0) return -1;
    const char *ns = t->norm ? (nb.s ? nb.s : "") : s;
    size_t nn = t->norm ? nb.len : n;
    w8_ivec cut = {0};
    split_added(t, ns, nn, 1, &cut);
    int rc = 0;
    for (size_t k = 0; k < cut.n && rc == 0; k += 3) {
        int b = cut.v[k], e = cut.v[k + 1], a = cut.v[k + 2];
        if (a >= 0) w8_ivec_push(ids, t->added[a].id);
        else rc = encode_piece(t, ns + b, (size_t)(e - b), at_start && b == 0, ids);
    }
    free(cut.v);
    free(nb.s);
    return rc;
}

static void post_process(const w8_tok *t, w8_ivec *ids) {
    w8_ivec out = {0};
    if (t->has_template) {
        for (int i = 0; i < t->ntmpl; i++) {
            if (t->tmpl[i] >= 0) w8_ivec_push(&out, t->tmpl[i]);
            else
                for (size_t k = 0; k < ids->n; k++) w8_ivec_push(&out, ids->v[k]);
        }
    } else {
        if (t->add_bos && t->bos_id >= 0) w8_ivec_push(&out, t->bos_id);
        for (size_t k = 0; k < ids->n; k++) w8_ivec_push(&out, ids->v[k]);
        if (t->add_eos && t->eos_id >= 0) w8_ivec_push(&out, t->eos_id);
    }
    free(ids->v);
    *ids = out;
}

int w8_tok_encode(const w8_tok *t, const char *text, size_t len, int add_special, int **ids_out) {
    *ids_out = NULL;
    if (!text) text = "", len = 0;
    if (len > (size_t)1 << 30) return w8_seterr("tokenizer: text of %zu bytes is too long", len);
    char *fixed = NULL;
    if (!w8_utf8_valid(text, len)) {
        fixed = w8_utf8_lossy(text, len, &len);
        text = fixed;
    }
    w8_ivec ids = {0}, cut = {0};
    split_added(t, text, len, 0, &cut);
    int rc = 0;
    for (size_t k = 0; k < cut.n && rc == 0; k += 3) {
        int b = cut.v[k], e = cut.v[k + 1], a = cut.v[k + 2];
        if (a >= 0) w8_ivec_push(&ids, t->added[a].id);
        else rc = encode_segment(t, text + b, (size_t)(e - b), b == 0, &ids);
    }
    free(cut.v);
    free(fixed);
    if (rc < 0) {
        free(ids.v);
        return -1;
    }
    if (add_special) post_process(t, &ids);
    if (!ids.v) ids.v = w8_xmalloc(sizeof(int));
    *ids_out = ids.v;
    return (int)ids.n;
}

/* ---- accessors */

int w8_tok_vocab_size(const w8_tok *t) { return t->vocab_size; }

const char *w8_tok_piece(const w8_tok *t, int id) {
    if (id < 0 || id >= t->vocab_size) return NULL;
    if (t->added_by_id[id] >= 0) return t->added[t->added_by_id[id]].content;
    return id < t->bpe.npiece ? t->bpe.piece[id] : NULL;
}

int w8_tok_is_special(const w8_tok *t, int id) {
    if (id < 0 || id >= t->vocab_size || t->added_by_id[id] < 0) return 0;
    return t->added[t->added_by_id[id]].special;
}

int w8_tok_token_id(const w8_tok *t, const char *piece) {
    if (!piece) return -1;
    size_t n = strlen(piece);
    for (int i = 0; i < t->nadded; i++)
        if (t->added[i].len == n && !memcmp(t->added[i].content, piece, n)) return t->added[i].id;
    return w8_bpe_lookup(&t->bpe, piece, n);
}

int w8_tok_bos_id(const w8_tok *t) { return t->bos_id; }
int w8_tok_eos_id(const w8_tok *t) { return t->eos_id; }
const char *w8_tok_bos_token(const w8_tok *t) { return t->bos_token; }
const char *w8_tok_eos_token(const w8_tok *t) { return t->eos_token; }
const char *w8_tok_chat_template(const w8_tok *t) { return t->chat_template; }
