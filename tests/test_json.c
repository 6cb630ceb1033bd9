/*
 * test_json.c - src/json.c and src/util.c: JSON error lines, the nesting
 * limit, typed lookups, file size caps, checked arithmetic, half precision.
 */
#include <string.h>
#include <unistd.h>

#include "../src/json.h"
#include "../src/util.h"
#include "test.h"

static void test_nesting_limit(void) {
    /* 100k nested arrays: refused with a message, no stack overflow */
    size_t n = 100000;
    char *deep = w8_xmalloc(2 * n + 1);
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    deep[2 * n] = 0;
    json_t *v = w8_json_load_buf(deep, 2 * n, "deep.json");
    CHECK(v == NULL, "100000-deep JSON is refused");
    CHECK(strstr(w8_lasterr(), "deep.json:1:") && strstr(w8_lasterr(), "depth"),
          "the error names the file, position and the depth limit: %s", w8_lasterr());
    /* 1000 levels is within the limit */
    v = w8_json_load_buf(deep + n - 1000, 2000, "ok.json");
    CHECK(v != NULL, "1000-deep JSON parses");
    json_decref(v);
    free(deep);
}

static void test_errors_and_lookups(void) {
    json_t *v = w8_json_load_buf("{\"a\": 1,\n \"b\": }", 16, "cfg.json");
    CHECK(v == NULL && strstr(w8_lasterr(), "cfg.json:2:") && strstr(w8_lasterr(), "malformed"),
          "malformed JSON names file:line: %s", w8_lasterr());
    v = w8_json_load_buf("{\"a\":1,\"a\":2}", 13, "dup.json");
    CHECK(v == NULL, "duplicate keys are refused");
    const char *txt = "{\"i\": 7, \"f\": 4096.0, \"h\": 1.5, \"big\": 1e300, \"s\": \"x\", \"b\": true, \"n\": null}";
    v = w8_json_load_buf(txt, strlen(txt), "t.json");
    long long i = 0;
    CHECK(w8_json_get_int(v, "i", "t.json", &i) == 0 && i == 7, "integer");
    CHECK(w8_json_get_int(v, "f", "t.json", &i) == 0 && i == 4096, "integral real as integer");
    CHECK(w8_json_get_int(v, "h", "t.json", &i) == -1 &&
              strstr(w8_lasterr(), "t.json: key 'h': expected integer, got number"),
          "1.5 is not an integer: %s", w8_lasterr());
    CHECK(w8_json_get_int(v, "big", "t.json", &i) == -1, "1e300 is out of range, not UB");
    CHECK(w8_json_get_int(v, "n", "t.json", &i) == 1, "null counts as absent");
    CHECK(w8_json_get_int(v, "zz", "t.json", &i) == 1, "absent key");
    const char *s = NULL;
    CHECK(w8_json_get_str(v, "s", "t.json", &s) == 0 && !strcmp(s, "x"), "string");
    CHECK(w8_json_get_str(v, "i", "t.json", &s) == -1, "integer is not a string");
    int b = 0;
    CHECK(w8_json_get_bool(v, "b", "t.json", &b) == 0 && b == 1, "boolean");
    json_decref(v);
}

/* Integers beyond the long long range, as Hugging Face writes them. */
static void test_big_ints(void) {
    const char *txt = "{\"model_max_length\": 1000000000000000019884624838656,\n"
                      " \"neg\": -99999999999999999999, \"edge\": 9223372036854775807,\n"
                      " \"s\": \"12345678901234567890123\", \"r\": 1.5e300,\n"
                      " \"huge\": 1" "0000000000000000000000000000000000000000000000000000000000000000000"
                      "000000000000000000000000000000000000000000000000000000000000000000000000000000000"
                      "000000000000000000000000000000000000000000000000000000000000000000000000000000000"
                      "000000000000000000000000000000000000000000000000000000000000000000000000000000000"
                      "00000000000, \"list\": [18446744073709551616]}";
    json_t *v = w8_json_load_buf(txt, strlen(txt), "tokenizer_config.json");
    CHECK(v != NULL, "integers of any size parse (%s)", v ? "" : w8_lasterr());
    if (v) {
        CHECK(json_real_value(json_object_get(v, "model_max_length")) == 1e30,
              "LLaMA's model_max_length is the double 1e30");
        CHECK(json_real_value(json_object_get(v, "neg")) == -1e20, "a negative one: -1e20");
        CHECK(json_is_integer(json_object_get(v, "edge")) &&
                  json_integer_value(json_object_get(v, "edge")) == 9223372036854775807LL,
              "LLONG_MAX stays an integer");
        CHECK(!strcmp(json_string_value(json_object_get(v, "s")), "12345678901234567890123"),
              "digits inside a string are untouched");
        CHECK(json_real_value(json_object_get(v, "r")) == 1.5e300, "a real is untouched");
        CHECK(json_real_value(json_object_get(v, "huge")) == 1.7976931348623157e308,
              "one past the double range is the largest double");
        CHECK(json_real_value(json_array_get(json_object_get(v, "list"), 0)) == 18446744073709551616.0,
              "2^64 in a list");
    }
    json_decref(v);
    /* an error after a rewritten integer keeps its line and column */
    const char *bad = "{\"a\": 100000000000000000000000, \"b\": ]}";
    v = w8_json_load_buf(bad, strlen(bad), "x.json");
    CHECK(v == NULL && strstr(w8_lasterr(), "x.json:1:38:"),
          "a later error keeps its column: %s", w8_lasterr());
}

/* Text edits of an object that keep the other bytes. */
static void edit_case(const char *what, char *got, const char *want) {
    CHECK(got && !strcmp(got, want), "text edit: %s", what);
    if (!got || strcmp(got, want)) printf("# got:\n%s\n", got ? got : "(null)");
    free(got);
}

static void test_text_edits(void) {
    const char *t = "{\n  \"a\": 1e-05,\n  \"b\": {\"x\": \"}\"},\n  \"c\": [1, \"]\"]\n}\n";
    edit_case("set replaces a value in place", w8_json_text_set(t, strlen(t), "b", "2"),
              "{\n  \"a\": 1e-05,\n  \"b\": 2,\n  \"c\": [1, \"]\"]\n}\n");
    edit_case("set appends in the last member's style", w8_json_text_set(t, strlen(t), "q", "\"w8a8\""),
              "{\n  \"a\": 1e-05,\n  \"b\": {\"x\": \"}\"},\n  \"c\": [1, \"]\"],\n  \"q\": \"w8a8\"\n}\n");
    edit_case("del of a middle member", w8_json_text_del(t, strlen(t), "b"),
              "{\n  \"a\": 1e-05,\n  \"c\": [1, \"]\"]\n}\n");
    edit_case("del of the last member", w8_json_text_del(t, strlen(t), "c"),
              "{\n  \"a\": 1e-05,\n  \"b\": {\"x\": \"}\"}\n}\n");
    edit_case("del of an absent key", w8_json_text_del(t, strlen(t), "zz"), t);
    const char *c = "{\"a\":1,\"b\":true}";
    edit_case("compact style kept", w8_json_text_set(c, strlen(c), "q", "\"w\""),
              "{\"a\":1,\"b\":true,\"q\":\"w\"}");
    edit_case("empty object", w8_json_text_set("{}", 2, "q", "1"), "{\n  \"q\": 1\n}");
    edit_case("del of the only member", w8_json_text_del("{\"a\": 1}", 8, "a"), "{}");
    edit_case("nested keys are not top-level", w8_json_text_set(t, strlen(t), "x", "0"),
              "{\n  \"a\": 1e-05,\n  \"b\": {\"x\": \"}\"},\n  \"c\": [1, \"]\"],\n  \"x\": 0\n}\n");
    CHECK(w8_json_text_set("[1]", 3, "a", "1") == NULL, "not an object: NULL");
}

static void test_file_cap(void) {
    char path[] = "/tmp/w8a8-test-json-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "temp file");
    CHECK(write(fd, "{\"a\": [1, 2, 3]}", 16) == 16, "write");
    close(fd);
    size_t len;
    char *buf = w8_read_file(path, 8, &len);
    CHECK(buf == NULL && strstr(w8_lasterr(), "over the limit"), "size cap: %s", w8_lasterr());
    buf = w8_read_file(path, 1 << 20, &len);
    CHECK(buf && len == 16 && buf[16] == 0, "read under the cap, NUL-terminated");
    free(buf);
    unlink(path);
    CHECK(w8_json_load_file("/nonexistent/x.json") == NULL &&
              strstr(w8_lasterr(), "/nonexistent/x.json: cannot open"),
          "missing file named: %s", w8_lasterr());
}

static void test_arith_and_halves(void) {
    size_t r = 0;
    CHECK(w8_mul_ok((size_t)1 << 40, (size_t)1 << 20, &r) && r == (size_t)1 << 60, "mul fits");
    CHECK(!w8_mul_ok((size_t)1 << 40, (size_t)1 << 40, &r), "mul overflow detected");
    CHECK(!w8_add_ok(SIZE_MAX, 1, &r), "add overflow detected");
    /* every f16 value round-trips through f32 */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = w8_f16_to_f32((uint16_t)h);
        if (f != f) continue; /* NaN payloads may be canonicalized */
        if (w8_f32_to_f16(f) != h) bad++;
    }
    CHECK(bad == 0, "all non-NaN f16 values round-trip (%d bad)", bad);
    CHECK(w8_f32_to_f16(65520.0f) == 0x7c00, "65520 rounds to f16 Inf");
    CHECK(w8_f32_to_f16(1.0f + 1.0f / 2048) == 0x3c00, "tie rounds to even (down)");
    CHECK(w8_f32_to_f16(1.0f + 3.0f / 2048) == 0x3c02, "tie rounds to even (up)");
    CHECK(w8_f32_to_bf16(1.0f + 1.0f / 256) == 0x3f80, "bf16 tie rounds to even");
    CHECK(w8_bf16_to_f32(0x3fc0) == 1.5f, "bf16 to f32");
    CHECK(w8_round_even(2.5f) == 2.0f && w8_round_even(3.5f) == 4.0f &&
              w8_round_even(-2.5f) == -2.0f,
          "round half to even");
}

int main(void) {
    test_nesting_limit();
    test_errors_and_lookups();
    test_big_ints();
    test_text_edits();
    test_file_cap();
    test_arith_and_halves();
    TEST_DONE();
}
