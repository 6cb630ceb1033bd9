/*
 * calib_data.c - calibration text: the built-in set and the --calib_file reader.
 *
 * The built-in samples were written for this project (nothing is copied from
 * a data set).  They are deliberately varied, because the min/max observer
 * only sees the activation ranges that the samples provoke: English and
 * Chinese prose, dialogue, lists, source code, arithmetic and formulas,
 * instructions and short stories.  msModelSlim's practice is about 50 short
 * samples tokenized without a chat template; so is this.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "calib_data.h"
#include "../json.h"
#include "../util.h"

static const char *const builtin[] = {
    "The river was low that summer, and the children walked across it on the flat stones "
    "without getting their feet wet. By September the rain came back and the stones were "
    "gone again.",
    "Once upon a time there was a small cat who lived in a bakery. Every morning she slept "
    "on the warm bags of flour, and every evening the baker gave her a piece of bread.",
    "To make a simple tomato soup, soften an onion in olive oil, add chopped tomatoes and a "
    "little water, simmer for twenty minutes, then blend until smooth and season with salt.",
    "\"Are you coming with us tomorrow?\" asked Mia.\n\"I can't,\" said Tom. \"My grandmother "
    "is visiting, and I promised to show her the new library.\"",
    "User: How far is the Moon from the Earth?\nAssistant: On average about 384,400 "
    "kilometres, although the distance changes by roughly 40,000 km during each orbit.",
    "Shopping list:\n1. eggs (a dozen)\n2. rice, 2 kg\n3. green tea\n4. batteries, AA\n5. "
    "something for Sunday's dinner",
    "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n"
    "    return a\n\nprint([fibonacci(i) for i in range(10)])",
    "#include <stdio.h>\n\nint main(void) {\n    int sum = 0;\n    for (int i = 1; i <= 100; "
    "i++) sum += i;\n    printf(\"%d\\n\", sum);\n    return 0;\n}",
    "Solve for x: 3x + 7 = 22. Subtract 7 from both sides to get 3x = 15, then divide by 3, "
    "so x = 5. Check: 3 * 5 + 7 = 22.",
    "The area of a circle is pi r^2. With r = 2.5 cm the area is about 19.63 cm^2, and the "
    "circumference 2 pi r is about 15.71 cm.",
    "今天天气很好，我们去公园散步吧。湖边的柳树已经发芽了，孩子们在草地上放风筝。",
    "学习一门新的语言需要耐心。每天读一点，写一点，说一点，半年以后你会发现自己进步了很多。",
    "请把这段话翻译成英文：我明天上午九点在火车站等你，如果迟到了请给我打电话。",
    "小明有十二个苹果，他给了小红五个，又买了八个。现在小明一共有多少个苹果？答案是十五个。",
    "北京是中国的首都，有三千多年的历史。故宫、长城和天坛每年吸引着成千上万的游客。",
    "Q: What is the capital of Australia?\nA: Canberra. Many people guess Sydney, which is "
    "the largest city, but the capital was built as a compromise between Sydney and Melbourne.",
    "SELECT name, COUNT(*) AS orders\nFROM customers JOIN orders ON orders.customer_id = "
    "customers.id\nGROUP BY name\nORDER BY orders DESC\nLIMIT 10;",
    "function debounce(fn, ms) {\n  let timer = null;\n  return (...args) => {\n    "
    "clearTimeout(timer);\n    timer = setTimeout(() => fn(...args), ms);\n  };\n}",
    "The committee met on Tuesday to review the budget. After a long discussion it agreed to "
    "postpone the new building and to spend the money on repairs to the old one instead.",
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen. It happens "
    "in the chloroplasts, which contain the green pigment chlorophyll.",
    "Dear Sam,\nThank you for the book you sent for my birthday. I have already read half of "
    "it and I love the way the story jumps between the two sisters.\nBest wishes, Anna",
    "Steps to reset the router: unplug it, wait thirty seconds, plug it back in, and wait "
    "until the light turns green. If it stays orange, hold the reset button for ten seconds.",
    "In 1969 two astronauts walked on the Moon while a third stayed in orbit. The landing "
    "was watched live on television by hundreds of millions of people.",
    "A prime number has exactly two divisors. The first primes are 2, 3, 5, 7, 11, 13, 17, "
    "19, 23 and 29; there are infinitely many of them, as Euclid showed.",
    "The derivative of x^3 is 3x^2, and the integral of 1/x is ln|x| + C. By the chain rule, "
    "d/dx sin(2x) = 2 cos(2x).",
    "Matrix multiplication is not commutative: in general AB != BA. For 2x2 matrices, "
    "(AB)_ij = sum_k A_ik B_kj, which takes eight multiplications.",
    "He opened the door slowly. The room was dark except for a thin line of light under the "
    "curtain, and somewhere a clock was ticking much too loudly.",
    "Remember: the meeting has moved to room 4B, starts at 14:30 instead of 14:00, and you "
    "should bring the printed report and your laptop charger.",
    "\"I don't think that's a good idea,\" she said, putting down her cup. \"But if you "
    "really want to go, I'll drive you to the station.\"",
    "The little robot counted the stars every night. One night it counted one more than "
    "usual, and it spent the whole next day wondering where the new star had come from.",
    "git checkout -b fix-login\ngit add src/auth.c\ngit commit -m \"Check the token expiry "
    "before refreshing\"\ngit push origin fix-login",
    "{\"name\": \"Alice\", \"age\": 31, \"languages\": [\"English\", \"French\"], "
    "\"active\": true, \"score\": 97.5}",
    "for i in $(seq 1 5); do\n  echo \"run $i\"\n  ./bench --threads 2 >> results.txt\ndone",
    "Water boils at 100 degrees Celsius at sea level, but at the top of a high mountain it "
    "boils at a lower temperature, so pasta takes longer to cook there.",
    "Good morning everyone, and welcome to the third day of the conference. Before we start, "
    "a few practical notes about lunch and the evening dinner.",
    "The train to the airport leaves every fifteen minutes from platform 2. A single ticket "
    "costs 12 euros; children under six travel free.",
    "I think the main problem with the plan is time. We have three weeks, but the testing "
    "alone took five weeks last year, and the team is smaller now.",
    "Percentages: 15% of 80 is 12. If a price rises from 50 to 60, that is a 20% increase; "
    "if it then falls back to 50, that is a decrease of about 16.7%.",
    "The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs. "
    "How vexingly quick daft zebras jump!",
    "他打开窗户，一阵凉风吹了进来。远处传来火车的声音，他想起了小时候住在铁路旁边的日子。",
    "人工智能正在改变很多行业，但是它也带来了新的问题，比如隐私保护和工作岗位的变化。",
    "一、准备材料；二、按照说明书组装；三、检查所有螺丝是否拧紧；四、通电测试。",
    "妈妈说：\"吃完饭再看电视。\"弟弟点点头，可是眼睛还一直盯着屏幕。",
    "class Stack:\n    def __init__(self):\n        self.items = []\n    def push(self, x):\n"
    "        self.items.append(x)\n    def pop(self):\n        return self.items.pop()",
    "Error: connection refused (errno 111) while connecting to 127.0.0.1:8080. Is the server "
    "running? Try `systemctl status myapp` to check.",
    "Temperature log: 06:00 -3.5 C, 09:00 1.2 C, 12:00 6.8 C, 15:00 7.4 C, 18:00 2.9 C, "
    "21:00 -0.6 C. Daily mean about 2.4 C.",
    "Kindness is a language that the deaf can hear and the blind can see, people often say. "
    "Whatever its origin, the idea is simple: small acts matter.",
    "The old lighthouse keeper had a notebook in which he wrote down every ship that passed. "
    "After forty years the notebook had become eleven notebooks.",
    "Bonjour, je voudrais un café et un croissant, s'il vous plaît. Guten Tag, wie geht es "
    "Ihnen? Hola, ¿dónde está la estación?",
    "Summary: the experiment was repeated five times with the same settings. The mean error "
    "was 0.031 with a standard deviation of 0.004, well inside the expected range.",
    "Lily found a red ball in the garden. She threw it to her dog, and the dog ran after it "
    "so fast that he rolled over in the grass. Lily laughed and laughed.",
    "Binary search halves the interval at each step, so it needs about log2(n) comparisons: "
    "20 comparisons are enough for a sorted list of a million items.",
};

void w8_calib_builtin(w8_calib_set *s) {
    int n = (int)(sizeof builtin / sizeof builtin[0]);
    s->n = n;
    s->text = w8_xcalloc((size_t)n, sizeof(char *));
    for (int i = 0; i < n; i++) s->text[i] = w8_xstrdup(builtin[i]);
}

void w8_calib_free(w8_calib_set *s) {
    for (int i = 0; i < s->n; i++) free(s->text[i]);
    free(s->text);
    s->text = NULL;
    s->n = 0;
}

static void push(w8_calib_set *s, int *cap, char *text) {
    if (s->n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        s->text = w8_xrealloc(s->text, (size_t)*cap * sizeof(char *));
    }
    s->text[s->n++] = text;
}

/* A line is JSON when it starts with '{' and parses as an object; then it must
 * carry "text" or "inputs_pretokenized" (msModelSlim's two field names).  A
 * line that starts with '{' but is not JSON is plain text (e.g. code). */
static int take_line(w8_calib_set *s, int *cap, const char *path, long lineno, char *line,
                     size_t len) {
    while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
        line[--len] = 0;
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t')) i++;
    if (i == len) return 0;
    if (line[i] == '{') {
        json_error_t e;
        json_t *v = json_loadb(line + i, len - i, 0, &e);
        if (v && json_is_object(v)) {
            const json_t *t = json_object_get(v, "text");
            if (!json_is_string(t)) t = json_object_get(v, "inputs_pretokenized");
            if (!json_is_string(t)) {
                json_decref(v);
                return w8_seterr("%s:%ld: JSON line has no string field \"text\" or "
                                 "\"inputs_pretokenized\"", path, lineno);
            }
            if (json_string_length(t) > 0)
                push(s, cap, w8_xstrndup(json_string_value(t), json_string_length(t)));
            json_decref(v);
            return 0;
        }
        json_decref(v);
    }
    push(s, cap, w8_xstrndup(line, len));
    return 0;
}

int w8_calib_load(const char *path, w8_calib_set *s) {
    s->n = 0;
    s->text = NULL;
    int cap = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return w8_seterr("%s: cannot open calibration file: %s", path, strerror(errno));
    char *line = NULL;
    size_t lcap = 0;
    ssize_t got;
    long lineno = 0;
    int rc = 0;
    while ((got = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        size_t len = (size_t)got;
        if (len && line[len - 1] == '\n') line[--len] = 0;
        if (memchr(line, 0, len)) {
            rc = w8_seterr("%s:%ld: NUL byte in calibration text", path, lineno);
            break;
        }
        if ((rc = take_line(s, &cap, path, lineno, line, len)) != 0) break;
    }
    if (rc == 0 && ferror(f)) rc = w8_seterr("%s: read error", path);
    free(line);
    fclose(f);
    if (rc == 0 && s->n == 0) rc = w8_seterr("%s: no calibration text (file is empty)", path);
    if (rc != 0) w8_calib_free(s);
    return rc;
}
