/*
 * cmd_run.c - `w8a8 run`: generate text for a few prompts, modelled on
 * MindIE's run_pa.py (same option names and meanings).  One input text with
 * --max_batch_size N is replicated N times (a batch-throughput run); several
 * texts run in batches of at most N.  Prints each prompt and its output, then
 * one line of token counts and prefill / decode speed.
 *
 * run_pa's inputs: --input_texts (a word naming a file means the file's
 * text), --input_file (one prompt per line; with --is_chat_model a line may
 * be a JSON conversation, [{"role":..,"content":..}, ...] or
 * {"messages": [...]}), --chat_template FILE or template text.  Its
 * cluster options (--tp, --dp, --world_size, ...) are accepted at their
 * one-process values and refused otherwise.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/generate.h"
#include "../src/prompt.h"
#include "../src/tokenizer/tokenizer.h"
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
    int max_in, max_pos, ignore_eos;
    const char *tmpl; /* --chat_template text; NULL: the tokenizer's */
    w8_load_opts load; /* --float_layers */
} run_opts;

/* One input: plain text, or (chat) a conversation.  `show` is what the
 * output prints as the prompt. */
typedef struct {
    const char *text; /* plain text (NULL for a conversation) */
    json_t *msgs;     /* conversation (owned), or NULL */
    const char *show;
} run_input;

static int fail(const char *what) {
    fprintf(stderr, "w8a8: %s\n", what);
    return 1;
}

/* Sampling settings: the user's, else generation_config.json's
 * (w8_sampling_resolve, shared with serve).  -1 marks "not given". */
static void sampling_opts(const run_opts *r, const w8_config *cfg, w8_gen_opts *o) {
    w8_sampling_req q = {r->temperature >= 0, r->temperature, r->top_k >= 0, r->top_k,
                         r->top_p >= 0, r->top_p, r->rep_penalty > 0, r->rep_penalty};
    w8_gen_params p;
    w8_sampling_resolve(cfg, &q, &p);
    o->temperature = p.temperature;
    o->top_k = p.top_k;
    o->top_p = p.top_p;
    o->repetition_penalty = p.repetition_penalty;
    o->seed = (uint64_t)(unsigned)r->seed;
}

/* Prompt ids of one input (w8_prompt_ids, shared with serve): through the
 * chat template (--chat_template, else the tokenizer's) when asked, a plain
 * text as one user turn.  An empty prompt becomes [BOS].  Returns the count,
 * or -1. */
static int encode_prompt(const w8_tok *tok, const w8_config *cfg, const run_input *in, int chat,
                         const char *tmpl, int **ids) {
    w8_prompt p = {in->text, in->text ? strlen(in->text) : 0, in->msgs, chat, tmpl, 1, NULL};
    w8_prompt_err why;
    int n = w8_prompt_ids(tok, cfg, &p, ids, &why);
    if (why == W8_PROMPT_NO_TEMPLATE)
        w8_seterr("--chat: the model has no chat template (no chat_template.jinja, "
                  "chat_template.json or chat_template in tokenizer_config.json; "
                  "give one with --chat_template FILE)");
    else if (why == W8_PROMPT_BAD_TEXT)
        w8_seterr("--chat: the input text is not valid UTF-8");
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
                     const w8_gen_opts *go, const run_input *texts, int first, int n,
                     w8_gen_stats *total, long *n_prompt, long *n_gen) {
    int **ids = w8_xcalloc((size_t)n, sizeof(int *));
    int *lens = w8_xcalloc((size_t)n, sizeof(int));
    w8_gen_out *out = w8_xcalloc((size_t)n, sizeof(w8_gen_out));
    w8_kv *kv = NULL;
    int rc = -1;
    long blocks = 0;
    for (int i = 0; i < n; i++) {
        if ((lens[i] = encode_prompt(tok, &m->cfg, &texts[first + i], r->chat, r->tmpl,
                                     &ids[i])) < 0)
            goto done;
        /* run_pa's meaning: a longer prompt is warned about and still run whole */
        if (lens[i] > r->max_in)
            fprintf(stderr, "w8a8: warning: prompt %d has %d tokens, more than "
                    "--max_input_length %d (run whole, as run_pa does)\n", first + i, lens[i],
                    r->max_in);
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
        print_result(tok, first + i, texts[first + i].show, &out[i], r->print_ids);
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

static int run_all(const run_opts *r, const run_input *texts, int n_texts) {
    w8_model *m = NULL;
    w8_tok *tok = NULL;
    w8_ctx *ctx = NULL;
    int rc = 1;
    if (!(m = w8_model_load_opts(r->model_path, &r->load))) goto done;
    if (!(tok = w8_tok_load(r->model_path))) goto done;
    /* run_pa's --max_position_embeddings replaces the config's: the context
     * (prompt + output) ends there; RoPE is computed per position, so a
     * larger value extends it as on an NPU */
    if (r->max_pos > 0) m->cfg.max_pos = r->max_pos;
    w8_gen_opts go;
    w8_gen_opts_default(&go, r->max_out);
    go.ignore_eos = r->ignore_eos;
    sampling_opts(r, &m->cfg, &go);
    int tok_eos = w8_tok_eos_id(tok);
    if (tok_eos >= 0) {
        go.extra_eos = &tok_eos;
        go.n_extra_eos = 1;
    }
    int rows = r->max_batch > PREFILL_ROWS ? r->max_batch : PREFILL_ROWS;
    if (!(ctx = w8_ctx_new(m, rows))) goto done;
    if (!getenv("W8A8_QUIET"))
        fprintf(stderr, "w8a8: %s: %s, %d int8 + %d float linear layers%s\n", r->model_path,
                m->cfg.arch_name, m->n_int8, m->n_float,
                m->n_converted ? " (float layers made int8 at load)" : "");

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

#define INPUT_FILE_MAX ((size_t)256 << 20)

/* A JSON conversation: an array of {"role": string, "content": string}
 * objects, or {"messages": that}.  Returns a new reference, or NULL with the
 * reason in *why. */
static json_t *conversation(json_t *j, const char **why) {
    json_t *a = json_is_object(j) ? json_object_get(j, "messages") : j;
    *why = "a JSON line must be a list of {\"role\", \"content\"} messages or "
           "{\"messages\": [...]}";
    if (!json_is_array(a) || json_array_size(a) == 0) return NULL;
    size_t i;
    json_t *msg;
    json_array_foreach(a, i, msg) {
        if (!json_is_object(msg) || !json_is_string(json_object_get(msg, "role")) ||
            !json_is_string(json_object_get(msg, "content"))) {
            *why = "every message needs a string \"role\" and a string \"content\"";
            return NULL;
        }
    }
    return json_incref(a);
}

/* A line that holds a conversation: starts with '{', or is a JSON array of
 * objects (so "[INST] hi" stays text).  1 with *msgs set, 0 for text, -1 on
 * a malformed conversation (message printed). */
static int line_conversation(const char *path, int lineno, const char *line, json_t **msgs) {
    *msgs = NULL;
    if (line[0] != '{' && line[0] != '[') return 0;
    json_t *j = json_loads(line, JSON_DECODE_ANY, NULL);
    if (!j && line[0] == '[') return 0;
    if (j && json_is_array(j)) {
        int objects = json_array_size(j) > 0;
        for (size_t i = 0; i < json_array_size(j); i++)
            objects &= json_is_object(json_array_get(j, i));
        if (!objects) {
            json_decref(j);
            return 0;
        }
    }
    const char *why = "not valid JSON";
    if (j) *msgs = conversation(j, &why);
    json_decref(j);
    if (*msgs) return 1;
    fprintf(stderr, "w8a8: %s:%d: %s\n", path, lineno, why);
    return -1;
}

/* --input_file: one input per non-empty line (a trailing \r dropped); a
 * conversation line needs chat.  *buf keeps the lines' text alive. */
static run_input *read_input_file(const char *path, int chat, int *n_out, char **buf) {
    size_t len;
    if (!(*buf = w8_read_file(path, INPUT_FILE_MAX, &len))) {
        fprintf(stderr, "w8a8: --input_file: %s\n", w8_lasterr());
        return NULL;
    }
    if (memchr(*buf, 0, len)) {
        fprintf(stderr, "w8a8: %s: a NUL byte; --input_file takes text lines\n", path);
        return NULL;
    }
    size_t cap = 1;
    for (size_t i = 0; i < len; i++) cap += (*buf)[i] == '\n';
    run_input *in = w8_xcalloc(cap, sizeof *in);
    int n = 0, lineno = 0;
    for (char *p = *buf, *next; p; p = next) {
        lineno++;
        next = strchr(p, '\n');
        if (next) *next++ = 0;
        size_t l = strlen(p);
        if (l && p[l - 1] == '\r') p[--l] = 0;
        if (strspn(p, " \t") == l) continue;
        json_t *msgs;
        int c = line_conversation(path, lineno, p, &msgs);
        if (c < 0) goto bad;
        if (c && !chat) {
            json_decref(msgs);
            fprintf(stderr, "w8a8: %s:%d: a chat conversation; add --is_chat_model to run it "
                    "through the chat template\n", path, lineno);
            goto bad;
        }
        in[n].text = c ? NULL : p;
        in[n].msgs = msgs;
        in[n].show = p;
        n++;
    }
    if (n == 0) {
        fprintf(stderr, "w8a8: %s: no input line\n", path);
        goto bad;
    }
    *n_out = n;
    return in;
bad:
    for (int i = 0; i < n; i++) json_decref(in[i].msgs);
    free(in);
    return NULL;
}

/* run_pa's --chat_template: a file's text if the path exists, else the
 * value is the template itself.  A value with no Jinja tag is taken as a
 * path that does not exist (so a typo is not rendered as the template). */
static char *load_template(const char *v) {
    if (w8_file_exists(v) || (!strstr(v, "{{") && !strstr(v, "{%"))) {
        char *t = w8_read_file(v, (size_t)1 << 20, NULL);
        if (!t) fprintf(stderr, "w8a8: --chat_template: %s\n", w8_lasterr());
        return t;
    }
    return w8_xstrdup(v);
}

/* run_pa's cluster options: their one-process values are accepted; any
 * other would spread the run over NPUs (or change it) and is refused. */
typedef struct {
    int tp, dp, moe_tp, pp, moe_ep, sp, cp, microbatch, world_size, local_rank, rank;
    int max_prefill_tokens, max_prefill_batch, max_loras, max_lora_rank;
    int atb, distributed, embedding, load_tokenizer, trust;
    const char *kw_args, *lora_modules, *input_dict;
} npu_opts;

static int check_npu_opts(const npu_opts *c, int max_batch) {
    const struct {
        const char *name;
        int v;
    } par[] = {{"tp", c->tp}, {"dp", c->dp}, {"moe_tp", c->moe_tp}, {"pp", c->pp},
               {"moe_ep", c->moe_ep}, {"sp", c->sp}, {"cp", c->cp},
               {"world_size", c->world_size}};
    for (size_t i = 0; i < sizeof par / sizeof par[0]; i++)
        if (par[i].v != -1 && par[i].v != 1) {
            fprintf(stderr, "w8a8: run: --%s %d would split the model or the batch over %d NPU "
                    "processes; run is one CPU process (accepted: 1 or -1; -t N sets threads)\n",
                    par[i].name, par[i].v, par[i].v);
            return -1;
        }
    if (c->local_rank != 0 || c->rank != 0) {
        fprintf(stderr, "w8a8: run: --%s %d: run is one process, rank 0\n",
                c->local_rank ? "local_rank" : "rank", c->local_rank ? c->local_rank : c->rank);
        return -1;
    }
    if (c->microbatch != -1 && (c->microbatch < 1 || c->microbatch > max_batch)) {
        fprintf(stderr, "w8a8: run: --microbatch_size %d must be -1 or 1..%d (--max_batch_size)\n",
                c->microbatch, max_batch);
        return -1;
    }
    if (c->max_prefill_tokens < -1 || c->max_prefill_tokens == 0 || c->max_prefill_batch < 0) {
        fprintf(stderr, "w8a8: run: --max_prefill_tokens / --max_prefill_batch_size out of range\n");
        return -1;
    }
    if (c->embedding) {
        fprintf(stderr, "w8a8: run: --is_embedding_model: run generates text; embedding output is "
                "not supported\n");
        return -1;
    }
    if (!c->load_tokenizer) {
        fprintf(stderr, "w8a8: run: --load_tokenizer False: run encodes --input_texts and decodes "
                "the output with the model's tokenizer; it cannot run without it\n");
        return -1;
    }
    if (c->lora_modules || c->input_dict || c->max_loras != 0 || c->max_lora_rank != 0) {
        fprintf(stderr, "w8a8: run: LoRA adapters (--lora_modules, --input_dict, --max_loras, "
                "--max_lora_rank) are not supported; merge the adapter into the weights first\n");
        return -1;
    }
    if (c->kw_args && *c->kw_args && strcmp(c->kw_args, "{}")) {
        fprintf(stderr, "w8a8: run: --kw_args '%s': the NPU model runner's extra arguments are "
                "not supported\n", c->kw_args);
        return -1;
    }
    return 0;
}

int w8_cmd_run(int argc, char **argv) {
    run_opts r = {.max_out = 20, .max_batch = 1, .block_size = 128, .top_k = -1,
                  .temperature = -1, .top_p = -1, .rep_penalty = -1, .max_in = 1024};
    npu_opts c = {.tp = -1, .dp = -1, .moe_tp = -1, .pp = -1, .moe_ep = -1, .sp = -1, .cp = -1,
                  .microbatch = -1, .world_size = 1, .max_prefill_tokens = -1,
                  .load_tokenizer = 1};
    const char *input_file = NULL, *tmpl_arg = NULL, *float_layers = NULL;
    int is_chat = 0;
    const w8_opt opts[] = {
        {"model_path", 0, W8_ARG_STR, &r.model_path, "model directory, float or W8A8 (required)"},
        {"input_texts", 0, W8_ARG_LIST, &r.texts,
         "prompts; a word naming a file means its text (default \"What's deep learning?\")"},
        {"input_file", 0, W8_ARG_STR, &input_file,
         "one prompt per line; with --is_chat_model also JSON conversations "
         "([{\"role\":..,\"content\":..}] or {\"messages\":[...]})"},
        {"max_input_length", 0, W8_ARG_INT, &r.max_in,
         "prompt tokens above this are warned about, and run (run_pa; default 1024)"},
        {"max_output_length", 0, W8_ARG_INT, &r.max_out, "new tokens per prompt (default 20)"},
        {"max_batch_size", 0, W8_ARG_INT, &r.max_batch,
         "sequences per batch; one text is replicated N times (default 1)"},
        {"max_position_embeddings", 0, W8_ARG_INT, &r.max_pos,
         "context length in tokens, prompt + output (default: config.json)"},
        {"chat", 0, W8_ARG_FLAG, &r.chat, "apply the chat template"},
        {"is_chat_model", 0, W8_ARG_FLAG, &is_chat, "same as --chat (run_pa)"},
        {"chat_template", 0, W8_ARG_STR, &tmpl_arg,
         "chat template file (or template text) used instead of the tokenizer's"},
        {"ignore_eos", 0, W8_ARG_FLAG, &r.ignore_eos,
         "generate --max_output_length tokens, not stopping at EOS"},
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
        {"float_layers", 0, W8_ARG_STR, &float_layers, W8_ARGS_FLOAT_LAYERS_HELP},
        {"trust_remote_code", 0, W8_ARG_BOOL, &c.trust, "accepted; no model code is executed"},
        {"load_tokenizer", 0, W8_ARG_BOOL, &c.load_tokenizer, "True (default; False is refused)"},
        {"max_prefill_tokens", 0, W8_ARG_INT, &c.max_prefill_tokens,
         "accepted (prefill runs in chunks of 512 rows)"},
        {"max_prefill_batch_size", 0, W8_ARG_INT, &c.max_prefill_batch, "accepted"},
        {"enable_atb_torch", 0, W8_ARG_FLAG, &c.atb, "accepted (an NPU graph backend choice)"},
        {"distributed_enable", 0, W8_ARG_FLAG, &c.distributed, "accepted (one process)"},
        {"tp", 0, W8_ARG_INT, &c.tp, "NPU tensor parallelism: 1 or -1 accepted"},
        {"dp", 0, W8_ARG_INT, &c.dp, "NPU data parallelism: 1 or -1 accepted"},
        {"moe_tp", 0, W8_ARG_INT, &c.moe_tp, "1 or -1 accepted"},
        {"moe_ep", 0, W8_ARG_INT, &c.moe_ep, "1 or -1 accepted"},
        {"pp", 0, W8_ARG_INT, &c.pp, "1 or -1 accepted"},
        {"sp", 0, W8_ARG_INT, &c.sp, "1 or -1 accepted"},
        {"cp", 0, W8_ARG_INT, &c.cp, "1 or -1 accepted"},
        {"microbatch_size", 0, W8_ARG_INT, &c.microbatch, "-1 or 1..max_batch_size accepted"},
        {"world_size", 0, W8_ARG_INT, &c.world_size, "1 accepted"},
        {"local_rank", 0, W8_ARG_INT, &c.local_rank, "0 accepted"},
        {"rank", 0, W8_ARG_INT, &c.rank, "0 accepted"},
        {"is_embedding_model", 0, W8_ARG_FLAG, &c.embedding, "refused"},
        {"kw_args", 0, W8_ARG_STR, &c.kw_args, "empty or {} accepted"},
        {"lora_modules", 0, W8_ARG_STR, &c.lora_modules, "refused (LoRA)"},
        {"input_dict", 0, W8_ARG_STR, &c.input_dict, "refused (LoRA inputs)"},
        {"max_loras", 0, W8_ARG_INT, &c.max_loras, "0 accepted"},
        {"max_lora_rank", 0, W8_ARG_INT, &c.max_lora_rank, "0 accepted"},
    };
    int pr = w8_args_parse(argc, argv, "w8a8 run --model_path DIR [options]",
                           "Generate text from a float or W8A8 model (MindIE run_pa style).", opts,
                           (int)(sizeof opts / sizeof opts[0]));
    if (pr) {
        free(r.texts.v);
        return pr > 0 ? 0 : 1;
    }
    if (w8_args_float_layers(float_layers, &r.load)) {
        free(r.texts.v);
        return 1;
    }
    w8_args_apply_threads(r.threads);
    r.chat |= is_chat;
    const char *deflt = "What's deep learning?";
    int rc = 1, n = 0;
    run_input *texts = NULL;
    char *file_buf = NULL, *tmpl = NULL;
    char **file_texts = NULL; /* --input_texts words that named files */
    if (!r.model_path) {
        rc = fail("run: --model_path is required (see --help)");
    } else if (r.max_out < 0 || r.max_batch < 1 || r.block_size < 1 || r.block_size > 65536 ||
               r.top_k < -1 || (r.top_p >= 0 && r.top_p > 1) || isnan(r.temperature) ||
               isnan(r.top_p) || isnan(r.rep_penalty) || r.kv_gb < 0 || r.threads < 0 ||
               r.max_in < 1 || r.max_pos < 0 || r.max_pos == 1) {
        rc = fail("run: an option is out of range (see --help)");
    } else if (input_file && r.texts.n) {
        rc = fail("run: give --input_texts or --input_file, not both");
    } else if (check_npu_opts(&c, r.max_batch) == 0 &&
               (!tmpl_arg || (tmpl = load_template(tmpl_arg)))) {
        r.tmpl = tmpl;
        if (tmpl && !r.chat)
            fprintf(stderr, "w8a8: warning: --chat_template is used only with --is_chat_model "
                    "(or --chat)\n");
        if (input_file) {
            texts = read_input_file(input_file, r.chat, &n, &file_buf);
        } else {
            n = r.texts.n ? r.texts.n : 1;
            if (n == 1 && r.max_batch > 1) n = r.max_batch; /* run_pa: replicate one text */
            texts = w8_xcalloc((size_t)n, sizeof *texts);
            file_texts = w8_xcalloc((size_t)(r.texts.n + 1), sizeof(char *));
            for (int i = 0; i < r.texts.n; i++) {
                /* run_pa reads a word that names a file as that file's text */
                const char *t = r.texts.v[i];
                if (*t && w8_file_exists(t) && !w8_is_dir(t) &&
                    !(file_texts[i] = w8_read_file(t, INPUT_FILE_MAX, NULL))) {
                    fprintf(stderr, "w8a8: --input_texts: %s\n", w8_lasterr());
                    n = 0;
                    break;
                }
            }
            for (int i = 0; i < n; i++) {
                int k = r.texts.n == 1 ? 0 : i;
                texts[i].text = r.texts.n == 0 ? deflt : file_texts[k] ? file_texts[k] : r.texts.v[k];
                texts[i].show = texts[i].text;
            }
            if (n == 0) {
                free(texts);
                texts = NULL;
            }
        }
        if (texts) rc = run_all(&r, texts, n);
    }
    for (int i = 0; texts && i < n; i++) json_decref(texts[i].msgs);
    for (int i = 0; file_texts && i < r.texts.n; i++) free(file_texts[i]);
    free(file_texts);
    free(texts);
    free(file_buf);
    free(tmpl);
    free(r.texts.v);
    return rc;
}
