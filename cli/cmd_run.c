/*
 * cmd_run.c - `w8a8 run`: generate text for a few prompts, modelled on
 * MindIE's run_pa.py (same option names).  One input text with
 * --max_batch_size N is replicated N times (a batch-throughput run); several
 * texts run in batches of at most N.  Prints each prompt and its output, then
 * one line of token counts and prefill / decode speed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/chat_template.h"
#include "../src/generate.h"
#include "../src/tokenizer.h"
#include "../src/util.h"
#include "args.h"
#include "commands.h"

#define PREFILL_ROWS 512 /* rows per forward call in prefill (scratch is sized by it) */

typedef struct {
    const char *model_path;
    w8_strlist texts;
    int max_out, max_batch, chat, print_ids, block_size, threads, top_k;
    float temperature, top_p, rep_penalty, kv_gb;
    int seed;
} run_opts;

static int fail(const char *what) {
    fprintf(stderr, "w8a8: %s\n", what);
    return 1;
}

/* Sampling settings: the user's, else generation_config.json's (when it
 * samples), else greedy.  -1 marks "not given". */
static void sampling_opts(const run_opts *r, const w8_config *cfg, w8_gen_opts *o) {
    int cfg_samples = cfg->do_sample > 0;
    o->temperature = r->temperature >= 0   ? r->temperature
                     : cfg_samples         ? (cfg->temperature > 0 ? cfg->temperature : 1.0f)
                                           : 0.0f;
    o->top_k = r->top_k >= 0 ? r->top_k : (cfg_samples && cfg->top_k > 0 ? cfg->top_k : 0);
    o->top_p = r->top_p >= 0                                                   ? r->top_p
               : (cfg_samples && cfg->top_p > 0 && cfg->top_p < 1)            ? cfg->top_p
                                                                               : 1.0f;
    o->repetition_penalty = r->rep_penalty > 0 ? r->rep_penalty
                            : cfg->repetition_penalty > 0 ? cfg->repetition_penalty
                                                          : 1.0f;
    o->seed = (uint64_t)(unsigned)r->seed;
}

/* The text as one user turn through the tokenizer's chat template, with the
 * assistant prompt opened (as HF's apply_chat_template(add_generation_prompt=True)). */
static char *chat_text(const w8_tok *tok, const char *text) {
    const char *tmpl = w8_tok_chat_template(tok);
    if (!tmpl) {
        w8_seterr("--chat: the model has no chat template (no chat_template.jinja, "
                  "chat_template.json or chat_template in tokenizer_config.json)");
        return NULL;
    }
    json_t *msgs = json_pack("[{s:s, s:s}]", "role", "user", "content", text);
    if (!msgs) {
        w8_seterr("--chat: the input text is not valid UTF-8");
        return NULL;
    }
    char *r = w8_chat_render(tmpl, msgs, NULL, 1, NULL, w8_tok_bos_token(tok),
                             w8_tok_eos_token(tok));
    json_decref(msgs);
    return r;
}

/* Prompt ids of one text (chat template applied when asked).  An empty
 * prompt becomes [BOS]. Returns the count, or -1. */
static int encode_prompt(const w8_tok *tok, const w8_config *cfg, const char *text, int chat,
                         int **ids) {
    int n;
    if (chat) {
        /* the rendered template carries its own special tokens */
        char *r = chat_text(tok, text);
        if (!r) return -1;
        n = w8_tok_encode(tok, r, strlen(r), 0, ids);
        free(r);
    } else {
        n = w8_tok_encode(tok, text, strlen(text), 1, ids);
    }
    if (n < 0) return -1;
    if (n == 0) {
        int bos = cfg->bos_id >= 0 ? cfg->bos_id : w8_tok_bos_id(tok);
        if (bos < 0) return w8_seterr("empty prompt and the model has no BOS token");
        *ids = w8_xrealloc(*ids, sizeof(int));
        (*ids)[0] = bos;
        n = 1;
    }
    return n;
}

static void print_result(const w8_tok *tok, int idx, const char *prompt, const w8_gen_out *g,
                         int print_ids) {
    char *text = w8_tok_decode(tok, g->ids, (size_t)g->n_ids, 1);
    printf("[%d] prompt: %s\n", idx, prompt);
    printf("[%d] output: %s\n", idx, text ? text : "(undecodable)");
    free(text);
    if (print_ids) {
        printf("[%d] ids:", idx);
        for (int i = 0; i < g->n_ids; i++) printf(" %d", g->ids[i]);
        printf("\n");
    }
}

/* Run inputs [first, first + n) as one batch. */
static int run_batch(const run_opts *r, const w8_model *m, const w8_tok *tok, w8_ctx *ctx,
                     const w8_gen_opts *go, const char **texts, int first, int n,
                     w8_gen_stats *total, long *n_prompt, long *n_gen) {
    int **ids = w8_xcalloc((size_t)n, sizeof(int *));
    int *lens = w8_xcalloc((size_t)n, sizeof(int));
    w8_gen_out *out = w8_xcalloc((size_t)n, sizeof(w8_gen_out));
    w8_kv *kv = NULL;
    int rc = -1;
    long blocks = 0;
    for (int i = 0; i < n; i++) {
        if ((lens[i] = encode_prompt(tok, &m->cfg, texts[first + i], r->chat, &ids[i])) < 0)
            goto done;
        long need = (long)lens[i] + r->max_out;
        if (need > m->cfg.max_pos) need = m->cfg.max_pos;
        blocks += (need + r->block_size - 1) / r->block_size;
    }
    if (r->kv_gb > 0) {
        blocks = w8_kv_blocks_for_bytes(&m->cfg, r->block_size,
                                        (size_t)((double)r->kv_gb * 1073741824.0));
        if (blocks <= 0) {
            w8_seterr("--kv_cache_gb %g holds no block of %d tokens", (double)r->kv_gb,
                      r->block_size);
            goto done;
        }
    }
    if (blocks > (1 << 30)) blocks = 1 << 30;
    if (!(kv = w8_kv_new(&m->cfg, r->block_size, (int)blocks))) goto done;
    w8_gen_stats st;
    if (w8_generate(m, ctx, kv, n, (const int *const *)ids, lens, go, out, &st)) goto done;
    for (int i = 0; i < n; i++) {
        print_result(tok, first + i, texts[first + i], &out[i], r->print_ids);
        *n_prompt += lens[i];
        *n_gen += out[i].n_ids;
    }
    total->prefill_tokens += st.prefill_tokens;
    total->prefill_s += st.prefill_s;
    total->decode_tokens += st.decode_tokens;
    total->decode_s += st.decode_s;
    rc = 0;
done:
    w8_gen_free(out, n);
    for (int i = 0; i < n; i++) free(ids[i]);
    free(ids);
    free(lens);
    free(out);
    w8_kv_free(kv);
    return rc;
}

static int run_all(const run_opts *r, const char **texts, int n_texts) {
    w8_model *m = NULL;
    w8_tok *tok = NULL;
    w8_ctx *ctx = NULL;
    int rc = 1;
    if (!(m = w8_model_load(r->model_path))) goto done;
    if (!(tok = w8_tok_load(r->model_path))) goto done;
    w8_gen_opts go;
    w8_gen_opts_default(&go, r->max_out);
    sampling_opts(r, &m->cfg, &go);
    int tok_eos = w8_tok_eos_id(tok);
    if (tok_eos >= 0) {
        go.extra_eos = &tok_eos;
        go.n_extra_eos = 1;
    }
    int rows = r->max_batch > PREFILL_ROWS ? r->max_batch : PREFILL_ROWS;
    if (!(ctx = w8_ctx_new(m, rows))) goto done;
    if (!getenv("W8A8_QUIET"))
        fprintf(stderr, "w8a8: %s: %s, %d int8 + %d float linear layers\n", r->model_path,
                m->cfg.arch_name, m->n_int8, m->n_float);

    w8_gen_stats total = {0};
    long n_prompt = 0, n_gen = 0;
    for (int first = 0; first < n_texts; first += r->max_batch) {
        int n = n_texts - first < r->max_batch ? n_texts - first : r->max_batch;
        if (run_batch(r, m, tok, ctx, &go, texts, first, n, &total, &n_prompt, &n_gen)) goto done;
    }
    printf("prompt tokens %ld, generated tokens %ld, prefill %.1f tok/s, decode %.1f tok/s\n",
           n_prompt, n_gen, total.prefill_s > 0 ? total.prefill_tokens / total.prefill_s : 0.0,
           total.decode_s > 0 ? total.decode_tokens / total.decode_s : 0.0);
    rc = 0;
done:
    if (rc) fprintf(stderr, "w8a8: %s\n", w8_lasterr());
    w8_ctx_free(ctx);
    if (tok) w8_tok_free(tok);
    w8_model_free(m);
    return rc;
}

int w8_cmd_run(int argc, char **argv) {
    run_opts r = {.max_out = 20, .max_batch = 1, .block_size = 128, .top_k = -1,
                  .temperature = -1, .top_p = -1, .rep_penalty = -1};
    const w8_opt opts[] = {
        {"model_path", 0, W8_ARG_STR, &r.model_path, "model directory, float or W8A8 (required)"},
        {"input_texts", 0, W8_ARG_LIST, &r.texts, "prompts (default \"What's deep learning?\")"},
        {"max_output_length", 0, W8_ARG_INT, &r.max_out, "new tokens per prompt (default 20)"},
        {"max_batch_size", 0, W8_ARG_INT, &r.max_batch,
         "sequences per batch; one text is replicated N times (default 1)"},
        {"chat", 0, W8_ARG_FLAG, &r.chat, "apply the tokenizer's chat template"},
        {"temperature", 0, W8_ARG_FLOAT, &r.temperature,
         "0 = greedy (default: generation_config.json, else greedy)"},
        {"top_k", 0, W8_ARG_INT, &r.top_k, "top-k sampling, 0 = off (default: generation config)"},
        {"top_p", 0, W8_ARG_FLOAT, &r.top_p, "nucleus sampling, 1 = off (default: generation config)"},
        {"repetition_penalty", 0, W8_ARG_FLOAT, &r.rep_penalty,
         "HF repetition penalty, 1 = off (default: generation config, else 1)"},
        {"seed", 0, W8_ARG_INT, &r.seed, "sampling seed (default 0)"},
        {"block_size", 0, W8_ARG_INT, &r.block_size, "KV cache block size in tokens (default 128)"},
        {"kv_cache_gb", 0, W8_ARG_FLOAT, &r.kv_gb,
         "KV cache size in GiB (default: just enough for the batch)"},
        {"print_ids", 0, W8_ARG_FLAG, &r.print_ids, "also print the generated token ids"},
        {"threads", 't', W8_ARG_INT, &r.threads, "threads (default: all cores)"},
    };
    int pr = w8_args_parse(argc, argv, "w8a8 run --model_path DIR [options]",
                           "Generate text from a float or W8A8 model (MindIE run_pa style).", opts,
                           (int)(sizeof opts / sizeof opts[0]));
    if (pr) {
        free(r.texts.v);
        return pr > 0 ? 0 : 1;
    }
    w8_args_apply_threads(r.threads);
    const char *deflt = "What's deep learning?";
    int rc = 1;
    const char **texts = NULL;
    if (!r.model_path) {
        rc = fail("run: --model_path is required (see --help)");
    } else if (r.max_out < 0 || r.max_batch < 1 || r.block_size < 1 || r.block_size > 65536 ||
               r.top_k < -1 || (r.top_p >= 0 && r.top_p > 1) || isnan(r.temperature) ||
               isnan(r.top_p) || isnan(r.rep_penalty) || r.kv_gb < 0 || r.threads < 0) {
        rc = fail("run: an option is out of range (see --help)");
    } else {
        int n = r.texts.n ? r.texts.n : 1;
        if (n == 1 && r.max_batch > 1) n = r.max_batch; /* run_pa: replicate one text */
        texts = w8_xcalloc((size_t)n, sizeof(char *));
        for (int i = 0; i < n; i++)
            texts[i] = r.texts.n == 0 ? deflt : r.texts.v[r.texts.n == 1 ? 0 : i];
        rc = run_all(&r, texts, n);
    }
    free(texts);
    free(r.texts.v);
    return rc;
}
