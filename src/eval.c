/*
 * eval.c - lm-evaluation-harness style tasks (see eval.h).
 *
 * Three parts: reading the task file; scoring (log-likelihood requests laid
 * end to end as batch rows, greedy generation through w8_generate); and the
 * summary (means, lm-eval's standard errors, paired differences between
 * models).
 *
 * Batching: every continuation of every multiple-choice or loglikelihood
 * line becomes one request (its own sequence in the KV cache); requests are
 * packed in file order into batches of `batch` rows, a request spanning two
 * batches simply continuing at its next position, as generate.c's prefill
 * does.  Only rows whose next token belongs to the continuation want logits.
 */
#include "eval.h"

#include <math.h>
#include <oniguruma.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "chat_template.h"
#include "batch.h"
#include "forward.h"
#include "generate.h"
#include "json.h"
#include "kv_cache.h"
#include "ppl.h"
#include "util.h"

#define EVAL_BLOCK       16 /* KV block size: sequences here are short */
#define EVAL_MAX_FILE    (256u << 20)
#define EVAL_MAX_CHOICES 1024

static const char *kind_names[] = {"multiple_choice", "generation", "loglikelihood"};

/* ------------------------------------------------------------ task file */

static int ws(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static void item_free(w8_eval_item *it) {
    free(it->context);
    for (int i = 0; i < it->n_choices; i++) free(it->choices[i]);
    free(it->choices);
    free(it->continuation);
    free(it->answer);
    for (int i = 0; i < it->n_stop; i++) free(it->stop[i]);
    free(it->stop);
    free(it->regex);
}

void w8_eval_set_free(w8_eval_set *set) {
    for (int i = 0; i < set->n; i++) item_free(&set->items[i]);
    free(set->items);
    for (int i = 0; i < set->n_tasks; i++) free(set->tasks[i]);
    free(set->tasks);
    memset(set, 0, sizeof *set);
}

/* A required or optional string member; errors name "LABEL:LINE". */
static int get_str(const json_t *o, const char *key, int required, const char *label, int line,
                   char **out) {
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        if (required) return w8_seterr("%s:%d: missing \"%s\"", label, line, key);
        return 0;
    }
    if (!json_is_string(v))
        return w8_seterr("%s:%d: \"%s\" must be a string, got %s", label, line, key,
                         w8_json_type_name(v));
    *out = w8_xstrndup(json_string_value(v), json_string_length(v));
    return 0;
}

/* An array of strings (or one string, for "stop"). */
static int get_strs(const json_t *o, const char *key, const char *label, int line, char ***out,
                    int *n) {
    const json_t *v = json_object_get(o, key);
    *n = 0;
    if (!v || json_is_null(v)) return 0;
    if (json_is_string(v)) {
        *out = w8_xmalloc(sizeof(char *));
        (*out)[(*n)++] = w8_xstrndup(json_string_value(v), json_string_length(v));
        return 0;
    }
    if (!json_is_array(v))
        return w8_seterr("%s:%d: \"%s\" must be an array of strings, got %s", label, line, key,
                         w8_json_type_name(v));
    size_t k = json_array_size(v);
    if (k > EVAL_MAX_CHOICES)
        return w8_seterr("%s:%d: \"%s\" has %zu entries (at most %d)", label, line, key, k,
                         EVAL_MAX_CHOICES);
    *out = w8_xcalloc(k ? k : 1, sizeof(char *));
    for (size_t i = 0; i < k; i++) {
        const json_t *e = json_array_get(v, i);
        if (!json_is_string(e))
            return w8_seterr("%s:%d: \"%s\"[%zu] must be a string, got %s", label, line, key, i,
                             w8_json_type_name(e));
        (*out)[(*n)++] = w8_xstrndup(json_string_value(e), json_string_length(e));
    }
    return 0;
}

static int task_index(w8_eval_set *set, const char *name) {
    for (int i = 0; i < set->n_tasks; i++)
        if (!strcmp(set->tasks[i], name)) return i;
    set->tasks = w8_xrealloc(set->tasks, (size_t)(set->n_tasks + 1) * sizeof(char *));
    set->tasks[set->n_tasks] = w8_xstrdup(name);
    return set->n_tasks++;
}

/* One JSON object into *it (zeroed by the caller). */
static int parse_item(const json_t *o, const char *label, int line, w8_eval_item *it) {
    it->line = line;
    if (!json_is_object(o))
        return w8_seterr("%s:%d: expected a JSON object, got %s", label, line,
                         w8_json_type_name(o));
    if (json_object_get(o, "choices")) {
        it->kind = W8_EVAL_MC;
        if (get_str(o, "context", 1, label, line, &it->context) ||
            get_strs(o, "choices", label, line, &it->choices, &it->n_choices))
            return -1;
        if (!json_is_array(json_object_get(o, "choices")) || it->n_choices < 1)
            return w8_seterr("%s:%d: \"choices\" must be a non-empty array of strings", label,
                             line);
        for (int i = 0; i < it->n_choices; i++)
            if (!it->choices[i][0]) return w8_seterr("%s:%d: choice %d is empty", label, line, i);
        long long g;
        const json_t *gv = json_object_get(o, "gold");
        if (!gv) return w8_seterr("%s:%d: missing \"gold\"", label, line);
        if (!w8_json_as_int(gv, &g) || g < 0 || g >= it->n_choices)
            return w8_seterr("%s:%d: \"gold\" must be an index into the %d choices", label, line,
                             it->n_choices);
        it->gold = (int)g;
    } else if (json_object_get(o, "prompt")) {
        it->kind = W8_EVAL_GEN;
        if (get_str(o, "prompt", 1, label, line, &it->context) ||
            get_str(o, "answer", 1, label, line, &it->answer) ||
            get_strs(o, "stop", label, line, &it->stop, &it->n_stop) ||
            get_str(o, "regex", 0, label, line, &it->regex))
            return -1;
        for (int i = 0; i < it->n_stop; i++)
            if (!it->stop[i][0]) return w8_seterr("%s:%d: stop string %d is empty", label, line, i);
        long long mg;
        const json_t *mv = json_object_get(o, "max_gen_toks");
        if (mv) {
            if (!w8_json_as_int(mv, &mg) || mg < 1 || mg > 1 << 20)
                return w8_seterr("%s:%d: \"max_gen_toks\" must be a positive integer", label, line);
            it->max_gen_toks = (int)mg;
        }
    } else if (json_object_get(o, "continuation")) {
        it->kind = W8_EVAL_LL;
        if (get_str(o, "context", 1, label, line, &it->context) ||
            get_str(o, "continuation", 1, label, line, &it->continuation))
            return -1;
        if (!it->continuation[0]) return w8_seterr("%s:%d: \"continuation\" is empty", label, line);
    } else {
        return w8_seterr("%s:%d: a line needs \"choices\" (multiple choice), \"prompt\" "
                         "(generation) or \"continuation\" (loglikelihood)",
                         label, line);
    }
    return 0;
}

int w8_eval_parse(const char *buf, size_t len, const char *label, int limit, w8_eval_set *set) {
    memset(set, 0, sizeof *set);
    int *per_task = NULL, cap = 0, line = 0;
    size_t i = 0;
    while (i < len) {
        size_t e = i;
        while (e < len && buf[e] != '\n') e++;
        line++;
        size_t b = i;
        while (b < e && ws(buf[b])) b++;
        i = e + 1;
        if (b == e) continue; /* blank line */
        json_error_t je;
        json_t *o = json_loadb(buf + b, e - b, JSON_REJECT_DUPLICATES, &je);
        if (!o) {
            w8_seterr("%s:%d: %s", label, line, je.text);
            goto fail;
        }
        w8_eval_item it;
        memset(&it, 0, sizeof it);
        char *task = NULL;
        int rc = parse_item(o, label, line, &it);
        if (rc == 0) rc = get_str(o, "task", 0, label, line, &task);
        json_decref(o);
        if (rc != 0) {
            item_free(&it);
            goto fail;
        }
        it.task = task_index(set, task ? task : kind_names[it.kind]);
        free(task);
        if (set->n_tasks > cap) {
            per_task = w8_xrealloc(per_task, (size_t)set->n_tasks * sizeof *per_task);
            per_task[cap++] = 0;
        }
        if (limit > 0 && per_task[it.task] >= limit) {
            item_free(&it);
            continue;
        }
        per_task[it.task]++;
        set->items = w8_xrealloc(set->items, (size_t)(set->n + 1) * sizeof *set->items);
        set->items[set->n++] = it;
    }
    free(per_task);
    if (set->n == 0) {
        w8_seterr("%s: no task lines", label);
        w8_eval_set_free(set);
        return -1;
    }
    return 0;
fail:
    free(per_task);
    w8_eval_set_free(set);
    return -1;
}

int w8_eval_load(const char *path, int limit, w8_eval_set *set) {
    size_t len = 0;
    memset(set, 0, sizeof *set);
    char *buf = w8_read_file(path, EVAL_MAX_FILE, &len);
    if (!buf) return -1;
    int rc = w8_eval_parse(buf, len, path, limit, set);
    free(buf);
    return rc;
}

/* ------------------------------------------------------------ tokenizing */

static char *chat_text(const w8_tok *tok, const char *text) {
    const char *tmpl = w8_tok_chat_template(tok);
    if (!tmpl) {
        w8_seterr("--chat: the model's tokenizer_config.json has no chat_template");
        return NULL;
    }
    json_t *msgs = json_pack("[{s:s, s:s}]", "role", "user", "content", text);
    if (!msgs) {
        w8_seterr("--chat: a context is not valid UTF-8");
        return NULL;
    }
    char *r =
        w8_chat_render(tmpl, msgs, NULL, 1, NULL, w8_tok_bos_token(tok), w8_tok_eos_token(tok));
    json_decref(msgs);
    return r;
}

/* lm-eval's prefix token for an empty context: BOS, else EOS. */
static int prefix_token(const w8_tok *t, const w8_model *m) {
    int id = m->cfg.bos_id >= 0 ? m->cfg.bos_id : w8_tok_bos_id(t);
    if (id < 0) id = w8_tok_eos_id(t);
    if (id < 0 && m->cfg.n_eos > 0) id = m->cfg.eos_ids[0];
    return id;
}

int w8_eval_encode_pair(const w8_tok *t, const w8_model *m, const char *ctx, const char *cont,
                        int add_special, int **ctx_ids, int *n_ctx, int **cont_ids, int *n_cont) {
    *ctx_ids = *cont_ids = NULL;
    *n_ctx = *n_cont = 0;
    size_t lc = strlen(ctx), lk = strlen(cont), cut = lc;
    while (cut > 0 && ws(ctx[cut - 1])) cut--;
    /* context[:cut] and context[cut:] + continuation */
    char *whole = w8_xmalloc(lc + lk + 1);
    memcpy(whole, ctx, lc);
    memcpy(whole + lc, cont, lk + 1);
    int rc = -1;
    if (cut == 0) {
        int p = prefix_token(t, m);
        if (p < 0) {
            w8_seterr("empty context and the model has neither BOS nor EOS");
            goto out;
        }
        *ctx_ids = w8_xmalloc(sizeof(int));
        (*ctx_ids)[0] = p;
        *n_ctx = 1;
        if ((*n_cont = w8_tok_encode(t, whole, lc + lk, 0, cont_ids)) < 0) goto out;
    } else {
        int *all = NULL;
        int na = w8_tok_encode(t, whole, lc + lk, add_special, &all);
        if (na < 0) goto out;
        if ((*n_ctx = w8_tok_encode(t, ctx, cut, add_special, ctx_ids)) < 0) {
            free(all);
            goto out;
        }
        *n_cont = na - *n_ctx;
        if (*n_cont > 0) {
            *cont_ids = w8_xmalloc((size_t)*n_cont * sizeof(int));
            memcpy(*cont_ids, all + *n_ctx, (size_t)*n_cont * sizeof(int));
        }
        free(all);
        if (*n_ctx == 0) {
            w8_seterr("the context '%.40s' encodes to no tokens", ctx);
            goto out;
        }
    }
    if (*n_cont <= 0) {
        w8_seterr("the continuation '%.40s' adds no tokens to its context", cont);
        goto out;
    }
    rc = 0;
out:
    free(whole);
    if (rc) {
        free(*ctx_ids);
        free(*cont_ids);
        *ctx_ids = *cont_ids = NULL;
        *n_ctx = *n_cont = 0;
    }
    return rc;
}

/* Prompt ids of a generation item (chat template or special tokens as the
 * options say); an empty prompt becomes the prefix token. */
static int encode_prompt(const w8_tok *t, const w8_model *m, const char *text,
                         const w8_eval_opts *o, int **ids) {
    int n;
    *ids = NULL;
    if (o->chat) {
        char *r = chat_text(t, text);
        if (!r) return -1;
        n = w8_tok_encode(t, r, strlen(r), 0, ids);
        free(r);
    } else {
        n = w8_tok_encode(t, text, strlen(text), o->add_special, ids);
    }
    if (n == 0) {
        int p = prefix_token(t, m);
        if (p < 0) return w8_seterr("empty prompt and the model has neither BOS nor EOS");
        *ids = w8_xrealloc(*ids, sizeof(int));
        (*ids)[0] = p;
        n = 1;
    }
    return n;
}

/* ------------------------------------------------------------ log-likelihood */

/* Requests after left truncation: fed tokens are ctx + cont minus the last
 * continuation token; row p (p >= n_ctx - 1) predicts cont[p - n_ctx + 1]. */
typedef struct {
    const int *ctx;
    int n_ctx, len; /* len: rows fed */
} ll_plan;

static int tok_at(const w8_ll_req *r, const ll_plan *pl, int p) {
    return p < pl->n_ctx ? pl->ctx[p] : r->cont[p - pl->n_ctx];
}

/* Fill one batch of at most max_rows rows from request *ri, position *p on;
 * owner/pos of each row are written.  Returns the rows. */
static int fill_rows(const ll_plan *pl, int n, int *ri, int *p, int max_rows, int *owner,
                     int *pos) {
    int rows = 0;
    while (rows < max_rows && *ri < n) {
        int k = pl[*ri].len - *p;
        if (k > max_rows - rows) k = max_rows - rows;
        for (int j = 0; j < k; j++) {
            owner[rows + j] = *ri;
            pos[rows + j] = *p + j;
        }
        rows += k;
        *p += k;
        if (*p == pl[*ri].len) {
            (*ri)++;
            *p = 0;
        }
    }
    return rows;
}

/* KV blocks a batch needs: its sequences hold positions 0..(last row's)
 * of each owner; rows of one owner are consecutive. */
static long batch_blocks(const int *owner, const int *pos, int rows) {
    long b = 0;
    for (int i = 0; i < rows; i++)
        if (i + 1 == rows || owner[i + 1] != owner[i]) b += pos[i] / EVAL_BLOCK + 1;
    return b;
}

int w8_eval_loglik(const w8_model *m, w8_ll_req *r, int n, int max_rows, w8_ll_cb cb, void *ud) {
    if (n <= 0) return 0;
    if (max_rows < 1) return w8_seterr("eval: batch must be at least 1 row");
    const int vocab = m->cfg.vocab, max_pos = m->cfg.max_pos > 0 ? m->cfg.max_pos : 1 << 30;
    ll_plan *pl = w8_xcalloc((size_t)n, sizeof *pl);
    for (int i = 0; i < n; i++) {
        if (r[i].n_ctx < 1 || r[i].n_cont < 1)
            return free(pl), w8_seterr("eval: request %d has an empty context or continuation", i);
        if (r[i].n_cont > max_pos)
            return free(pl), w8_seterr("eval: a continuation of %d tokens does not fit the "
                                       "model's context of %d",
                                       r[i].n_cont, max_pos);
        for (int j = 0; j < r[i].n_ctx + r[i].n_cont; j++) {
            int id = j < r[i].n_ctx ? r[i].ctx[j] : r[i].cont[j - r[i].n_ctx];
            if (id < 0 || id >= vocab)
                return free(pl), w8_seterr("eval: token id %d outside the model's vocabulary (%d)",
                                           id, vocab);
        }
        /* lm-eval keeps the last max_length + 1 tokens and feeds all but the last */
        int drop = r[i].n_ctx + r[i].n_cont - 1 - max_pos;
        if (drop < 0) drop = 0;
        pl[i].ctx = r[i].ctx + drop;
        pl[i].n_ctx = r[i].n_ctx - drop;
        pl[i].len = pl[i].n_ctx + r[i].n_cont - 1;
        r[i].logprob = 0;
        r[i].greedy = 1;
    }
    int *owner = w8_xmalloc((size_t)max_rows * sizeof(int));
    int *pos = w8_xmalloc((size_t)max_rows * sizeof(int));
    /* the pool: the largest batch's need (a dry run of the packing) */
    long need = 1;
    for (int ri = 0, p = 0; ri < n;) {
        int rows = fill_rows(pl, n, &ri, &p, max_rows, owner, pos);
        long b = batch_blocks(owner, pos, rows);
        if (b > need) need = b;
    }
    if (need > 1 << 30) need = 1 << 30;
    w8_kv *kv = w8_kv_new(&m->cfg, EVAL_BLOCK, (int)need);
    w8_ctx *c = kv ? w8_ctx_new(m, max_rows) : NULL;
    w8_seq *seqs = w8_xcalloc((size_t)n, sizeof *seqs);
    w8_batch_buf bb;
    w8_batch_buf_init(&bb, max_rows);
    int *target = w8_xmalloc((size_t)max_rows * sizeof(int));
    int *wrow = w8_xmalloc((size_t)max_rows * sizeof(int));
    float *logits = w8_xmalloc((size_t)max_rows * (size_t)vocab * sizeof(float));
    double *lp = w8_xmalloc((size_t)max_rows * sizeof(double));
    char *top = w8_xmalloc((size_t)max_rows);
    int rc = kv && c ? 0 : -1;
    for (int i = 0; i < n; i++) w8_seq_init(&seqs[i]);
    for (int ri = 0, p = 0; ri < n && rc == 0;) {
        int first = ri;
        int rows = fill_rows(pl, n, &ri, &p, max_rows, owner, pos);
        int nw = 0;
        w8_batch_clear(&bb);
        for (int j = 0; j < rows; j++) {
            const w8_ll_req *q = &r[owner[j]];
            const ll_plan *pp = &pl[owner[j]];
            int want = pos[j] >= pp->n_ctx - 1;
            w8_batch_add(&bb, tok_at(q, pp, pos[j]), pos[j], &seqs[owner[j]], want);
            if (want) {
                target[nw] = q->cont[pos[j] - pp->n_ctx + 1];
                wrow[nw++] = owner[j];
            }
            if (w8_kv_seq_reserve(kv, &seqs[owner[j]], pos[j] + 1) != 0) {
                rc = w8_seterr("eval: KV cache out of blocks (internal sizing error)");
                break;
            }
        }
        if (rc) break;
        int got = w8_forward(c, m, kv, &bb.b, logits);
        if (got < 0) {
            rc = -1;
            break;
        }
        if (got != nw) {
            rc = w8_seterr("eval: forward pass returned %d logit rows for %d wanted", got, nw);
            break;
        }
        /* rows are independent: spread over the threads, summed in order below */
#pragma omp parallel for schedule(dynamic, 1) num_threads(w8_get_threads())
        for (int j = 0; j < nw; j++) {
            const float *l = logits + (size_t)j * vocab;
            lp[j] = w8_logprob(l, vocab, target[j]);
            top[j] = w8_argmax(l, vocab) == target[j];
        }
        for (int j = 0; j < nw; j++) {
            r[wrow[j]].logprob += lp[j];
            if (!top[j]) r[wrow[j]].greedy = 0;
        }
        /* requests whose last row ran are done: their blocks go back */
        for (int i = first; i < ri; i++) { /* ri: the first request not finished */
            w8_kv_seq_release(kv, &seqs[i]);
            if (cb) cb(ud, i);
        }
    }
    for (int i = 0; i < n; i++) {
        if (kv) w8_kv_seq_release(kv, &seqs[i]);
        free(seqs[i].blocks);
    }
    free(seqs);
    free(owner);
    free(pos);
    free(target);
    free(wrow);
    w8_batch_buf_free(&bb);
    free(logits);
    free(lp);
    free(top);
    w8_ctx_free(c);
    w8_kv_free(kv);
    free(pl);
    return rc;
}

/* ------------------------------------------------------------ answers */

static pthread_once_t onig_once = PTHREAD_ONCE_INIT;
static void onig_init_once(void) {
    OnigEncoding enc = ONIG_ENCODING_UTF8;
    onig_initialize(&enc, 1);
}

/* The first match of re in s: its first group when the regex has groups
 * (lm-eval's regex filter takes findall()[0]), else the whole match;
 * "[invalid]" when nothing matches.  NULL on a bad regex. */
static char *regex_extract(const char *s, const char *re) {
    pthread_once(&onig_once, onig_init_once);
    regex_t *reg = NULL;
    OnigErrorInfo einfo;
    int r = onig_new(&reg, (const UChar *)re, (const UChar *)re + strlen(re), ONIG_OPTION_NONE,
                     ONIG_ENCODING_UTF8, ONIG_SYNTAX_PERL, &einfo);
    if (r != ONIG_NORMAL) {
        UChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
        onig_error_code_to_str(msg, r, &einfo);
        w8_seterr("bad regex '%.60s': %s", re, (const char *)msg);
        return NULL;
    }
    const UChar *str = (const UChar *)s, *end = str + strlen(s);
    OnigRegion *rg = onig_region_new();
    char *out;
    r = onig_search(reg, str, end, str, end, rg, ONIG_OPTION_NONE);
    if (r >= 0) {
        int g = rg->num_regs > 1 ? 1 : 0;
        if (rg->beg[g] < 0) g = 0; /* the group did not take part in the match */
        out = w8_xstrndup(s + rg->beg[g], (size_t)(rg->end[g] - rg->beg[g]));
    } else if (r == ONIG_MISMATCH) {
        out = w8_xstrdup("[invalid]");
    } else {
        w8_seterr("regex '%.60s': search failed (code %d)", re, r);
        out = NULL;
    }
    onig_region_free(rg, 1);
    onig_free(reg);
    return out;
}

static char *strip_dup(const char *s, size_t n) {
    size_t b = 0;
    while (b < n && ws(s[b])) b++;
    while (n > b && ws(s[n - 1])) n--;
    return w8_xstrndup(s + b, n - b);
}

char *w8_eval_extract(const char *text, char *const *stop, int n_stop, const char *regex) {
    size_t n = strlen(text);
    for (int i = 0; i < n_stop; i++) {
        const char *f = strstr(text, stop[i]);
        if (f && (size_t)(f - text) < n) n = (size_t)(f - text);
    }
    char *cut = w8_xstrndup(text, n);
    if (!regex) {
        char *r = strip_dup(cut, n);
        free(cut);
        return r;
    }
    char *x = regex_extract(cut, regex);
    free(cut);
    if (!x) return NULL;
    char *r = strip_dup(x, strlen(x));
    free(x);
    return r;
}

/* ------------------------------------------------------------ running */

void w8_eval_opts_default(w8_eval_opts *o) {
    memset(o, 0, sizeof *o);
    o->add_special = 1;
    o->batch = 256;
    o->max_gen_toks = 64;
    o->gen_batch = 16;
}

void w8_eval_scores_free(w8_eval_score *s, int n) {
    if (!s) return;
    for (int i = 0; i < n; i++) {
        free(s[i].output);
        free(s[i].extracted);
        s[i].output = s[i].extracted = NULL;
    }
}

/* acc_norm's length of a choice: characters (UTF-8 code points, Python's
 * len()) without one leading space, since lm-eval measures the choice
 * without its target delimiter " " while our choices carry it; at least 1. */
static long norm_len(const char *s) {
    long n = 0;
    if (*s == ' ') s++;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n > 0 ? n : 1;
}

typedef struct {
    const w8_eval_set *set;
    const int *req_item; /* item of each request */
    int done;
    w8_eval_cb cb;
    void *ud;
} ll_progress;

static void on_req(void *ud, int i) {
    ll_progress *p = ud;
    /* an item is done with its last request */
    if (p->req_item[i + 1] != p->req_item[i]) {
        p->done++;
        if (p->cb) p->cb(p->ud, p->done, p->set->n);
    }
}

/* Multiple-choice and loglikelihood items: encode, score, reduce. */
static int run_loglik(const w8_model *m, const w8_tok *tok, const w8_eval_set *set,
                      const w8_eval_opts *o, w8_eval_score *out, ll_progress *prog) {
    int n_req = 0;
    for (int i = 0; i < set->n; i++)
        n_req += set->items[i].kind == W8_EVAL_MC   ? set->items[i].n_choices
                 : set->items[i].kind == W8_EVAL_LL ? 1
                                                    : 0;
    if (n_req == 0) return 0;
    w8_ll_req *req = w8_xcalloc((size_t)n_req, sizeof *req);
    int *req_item = w8_xmalloc((size_t)(n_req + 1) * sizeof(int));
    int rc = -1, k = 0;
    for (int i = 0; i < set->n; i++) {
        const w8_eval_item *it = &set->items[i];
        if (it->kind == W8_EVAL_GEN) continue;
        char *ctx = o->chat ? chat_text(tok, it->context) : w8_xstrdup(it->context);
        if (!ctx) {
            w8_preferr("line %d", it->line);
            goto out;
        }
        int add = o->chat ? 0 : o->add_special;
        int nc = it->kind == W8_EVAL_MC ? it->n_choices : 1;
        for (int c = 0; c < nc; c++, k++) {
            const char *cont = it->kind == W8_EVAL_MC ? it->choices[c] : it->continuation;
            int *ci, *ki;
            if (w8_eval_encode_pair(tok, m, ctx, cont, add, &ci, &req[k].n_ctx, &ki,
                                    &req[k].n_cont) != 0) {
                free(ctx);
                w8_preferr("line %d", it->line);
                goto out;
            }
            req[k].ctx = ci;
            req[k].cont = ki;
            req_item[k] = i;
        }
        free(ctx);
    }
    req_item[n_req] = -1;
    prog->req_item = req_item;
    if (w8_eval_loglik(m, req, n_req, o->batch, on_req, prog) != 0) goto out;
    k = 0;
    for (int i = 0; i < set->n; i++) {
        const w8_eval_item *it = &set->items[i];
        if (it->kind == W8_EVAL_LL) {
            out[i].v[0] = req[k].logprob;
            out[i].v[1] = req[k].greedy;
            k++;
        } else if (it->kind == W8_EVAL_MC) {
            /* argmax, first on ties (numpy's) */
            int best = 0, best_n = 0;
            double bn = -INFINITY;
            for (int c = 0; c < it->n_choices; c++) {
                double ll = req[k + c].logprob, lnorm = ll / (double)norm_len(it->choices[c]);
                if (ll > req[k + best].logprob) best = c;
                if (c == 0 || lnorm > bn) {
                    bn = lnorm;
                    best_n = c;
                }
            }
            out[i].v[0] = best == it->gold;
            out[i].v[1] = best_n == it->gold;
            k += it->n_choices;
        }
    }
    rc = 0;
out:
    for (int i = 0; i < n_req; i++) {
        free((void *)req[i].ctx);
        free((void *)req[i].cont);
    }
    free(req);
    free(req_item);
    return rc;
}

/* Generation items in groups of gen_batch prompts through w8_generate. */
static int run_gen(const w8_model *m, const w8_tok *tok, const w8_eval_set *set,
                   const w8_eval_opts *o, w8_eval_score *out, ll_progress *prog) {
    int *idx = w8_xmalloc((size_t)set->n * sizeof(int)), n_gen = 0;
    for (int i = 0; i < set->n; i++)
        if (set->items[i].kind == W8_EVAL_GEN) idx[n_gen++] = i;
    const int G = o->gen_batch > 0 ? o->gen_batch : 1;
    const int max_pos = m->cfg.max_pos > 0 ? m->cfg.max_pos : 1 << 30;
    int rc = n_gen ? -1 : 0;
    w8_ctx *c = n_gen ? w8_ctx_new(m, G > o->batch ? G : o->batch) : NULL;
    int tok_eos = w8_tok_eos_id(tok);
    int **ids = w8_xcalloc((size_t)G, sizeof(int *));
    int *lens = w8_xcalloc((size_t)G, sizeof(int));
    const int **prompts = w8_xcalloc((size_t)G, sizeof(int *));
    w8_gen_out *g = w8_xcalloc((size_t)G, sizeof *g);
    if (n_gen && !c) goto out;
    for (int first = 0; first < n_gen; first += G) {
        int n = n_gen - first < G ? n_gen - first : G, max_new = 1;
        long blocks = 0;
        for (int j = 0; j < n; j++) {
            const w8_eval_item *it = &set->items[idx[first + j]];
            int mg = it->max_gen_toks > 0 ? it->max_gen_toks : o->max_gen_toks;
            if (mg > max_new) max_new = mg;
        }
        int ok = 1;
        for (int j = 0; j < n && ok; j++) {
            const w8_eval_item *it = &set->items[idx[first + j]];
            lens[j] = encode_prompt(tok, m, it->context, o, &ids[j]);
            if (lens[j] < 0) {
                w8_preferr("line %d", it->line);
                ok = 0;
                break;
            }
            /* lm-eval keeps the last max_length - max_gen_toks prompt tokens */
            int keep = max_pos - max_new;
            if (keep < 1) keep = 1;
            prompts[j] = ids[j] + (lens[j] > keep ? lens[j] - keep : 0);
            if (lens[j] > keep) lens[j] = keep;
            long L = (long)lens[j] + max_new;
            blocks += (L > max_pos ? max_pos : L) / EVAL_BLOCK + 1;
        }
        if (!ok) goto out;
        w8_gen_opts go;
        w8_gen_opts_default(&go, max_new);
        if (tok_eos >= 0) {
            go.extra_eos = &tok_eos;
            go.n_extra_eos = 1;
        }
        w8_kv *kv = w8_kv_new(&m->cfg, EVAL_BLOCK, (int)(blocks > 1 << 30 ? 1 << 30 : blocks));
        if (!kv) goto out;
        int gr = w8_generate(m, c, kv, n, prompts, lens, &go, g, NULL);
        w8_kv_free(kv);
        if (gr != 0) goto out;
        for (int j = 0; j < n; j++) {
            int i = idx[first + j];
            const w8_eval_item *it = &set->items[i];
            int mg = it->max_gen_toks > 0 ? it->max_gen_toks : o->max_gen_toks;
            int nid = g[j].n_ids < mg ? g[j].n_ids : mg;
            char *text = w8_tok_decode(tok, g[j].ids, (size_t)nid, 1);
            if (!text) {
                w8_preferr("line %d", it->line);
                ok = 0;
                break;
            }
            char *x = w8_eval_extract(text, it->stop, it->n_stop, it->regex);
            if (!x) {
                free(text);
                w8_preferr("line %d", it->line);
                ok = 0;
                break;
            }
            /* the output as lm-eval returns it: cut at the first stop string */
            size_t cut = strlen(text);
            for (int s = 0; s < it->n_stop; s++) {
                const char *f = strstr(text, it->stop[s]);
                if (f && (size_t)(f - text) < cut) cut = (size_t)(f - text);
            }
            text[cut] = 0;
            char *ans = strip_dup(it->answer, strlen(it->answer));
            out[i].v[0] = strcmp(x, ans) == 0;
            free(ans);
            out[i].output = text;
            out[i].extracted = x;
            prog->done++;
            if (prog->cb) prog->cb(prog->ud, prog->done, set->n);
        }
        w8_gen_free(g, n);
        for (int j = 0; j < n; j++) {
            free(ids[j]);
            ids[j] = NULL;
        }
        if (!ok) goto out;
    }
    rc = 0;
out:
    w8_gen_free(g, G);
    for (int j = 0; j < G; j++) free(ids[j]);
    free(ids);
    free(lens);
    free(prompts);
    free(g);
    free(idx);
    w8_ctx_free(c);
    return rc;
}

int w8_eval_run(const w8_model *m, const w8_tok *tok, const w8_eval_set *set, const w8_eval_opts *o,
                w8_eval_score *out, w8_eval_cb cb, void *ud) {
    memset(out, 0, (size_t)set->n * sizeof *out);
    if (o->batch < 1 || o->max_gen_toks < 1)
        return w8_seterr("eval: --batch and --max_gen_toks must be at least 1");
    ll_progress prog = {set, NULL, 0, cb, ud};
    if (run_loglik(m, tok, set, o, out, &prog) != 0 || run_gen(m, tok, set, o, out, &prog) != 0) {
        w8_eval_scores_free(out, set->n);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ summary */

double w8_eval_mean_stderr(const double *x, int n) {
    if (n < 2) return NAN;
    double mu = 0, ss = 0;
    for (int i = 0; i < n; i++) mu += x[i];
    mu /= n;
    for (int i = 0; i < n; i++) ss += (x[i] - mu) * (x[i] - mu);
    return sqrt(ss / (n - 1)) / sqrt((double)n);
}

static const struct {
    w8_eval_kind kind;
    int slot;
    const char *name;
} metrics[] = {
    {W8_EVAL_MC, 0, "acc"},     {W8_EVAL_MC, 1, "acc_norm"}, {W8_EVAL_GEN, 0, "exact_match"},
    {W8_EVAL_LL, 0, "logprob"}, {W8_EVAL_LL, 1, "greedy"},
};
#define N_METRICS ((int)(sizeof metrics / sizeof metrics[0]))

/* One row over the items of `task` (-1: all) for metric mi; 0 when no item. */
static int make_row(const w8_eval_set *set, w8_eval_score *const *scores, int nm, int task, int mi,
                    w8_eval_row *row) {
    int *sel = w8_xmalloc((size_t)set->n * sizeof(int)), n = 0;
    for (int i = 0; i < set->n; i++)
        if (set->items[i].kind == metrics[mi].kind && (task < 0 || set->items[i].task == task))
            sel[n++] = i;
    if (n == 0) {
        free(sel);
        return 0;
    }
    memset(row, 0, sizeof *row);
    row->task = task;
    row->metric = metrics[mi].name;
    row->n = n;
    row->value = w8_xcalloc((size_t)nm, sizeof(double));
    row->stderr_ = w8_xcalloc((size_t)nm, sizeof(double));
    row->diff = w8_xcalloc((size_t)nm, sizeof(double));
    row->diff_se = w8_xcalloc((size_t)nm, sizeof(double));
    row->significant = w8_xcalloc((size_t)nm, sizeof(int));
    double *x = w8_xmalloc((size_t)n * sizeof(double)), *d = w8_xmalloc((size_t)n * sizeof(double));
    const int s = metrics[mi].slot;
    for (int k = 0; k < nm; k++) {
        double sum = 0;
        for (int j = 0; j < n; j++) {
            x[j] = scores[k][sel[j]].v[s];
            d[j] = x[j] - scores[0][sel[j]].v[s];
            sum += x[j];
        }
        row->value[k] = sum / n;
        row->stderr_[k] = w8_eval_mean_stderr(x, n);
        double ds = 0;
        for (int j = 0; j < n; j++) ds += d[j];
        row->diff[k] = ds / n;
        row->diff_se[k] = k == 0 ? 0 : w8_eval_mean_stderr(d, n);
        /* with every paired difference equal (se 0) any non-zero difference counts */
        row->significant[k] =
            k > 0 && row->diff[k] != 0 && !(fabs(row->diff[k]) <= 2 * row->diff_se[k]);
    }
    free(x);
    free(d);
    free(sel);
    return 1;
}

int w8_eval_summarize(const w8_eval_set *set, w8_eval_score *const *scores, int n_models,
                      w8_eval_row **rows) {
    int cap = (set->n_tasks + 1) * N_METRICS, n = 0;
    *rows = w8_xcalloc((size_t)cap, sizeof **rows);
    for (int t = 0; t < set->n_tasks; t++)
        for (int mi = 0; mi < N_METRICS; mi++)
            n += make_row(set, scores, n_models, t, mi, &(*rows)[n]);
    /* overall: a metric that more than one task reports, over all their items */
    for (int mi = 0; mi < N_METRICS; mi++) {
        int tasks_with = 0;
        for (int r = 0; r < n; r++) tasks_with += (*rows)[r].metric == metrics[mi].name;
        if (tasks_with > 1) n += make_row(set, scores, n_models, -1, mi, &(*rows)[n]);
    }
    return n;
}

void w8_eval_rows_free(w8_eval_row *rows, int n) {
    for (int i = 0; i < n; i++) {
        free(rows[i].value);
        free(rows[i].stderr_);
        free(rows[i].diff);
        free(rows[i].diff_se);
        free(rows[i].significant);
    }
    free(rows);
}
