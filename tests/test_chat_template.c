/*
 * test_chat_template.c - the Jinja2 interpreter and the chat template.
 *
 * 1. Every case of ../shared/testdata/chat/qwen3_chat_template.jsonl renders
 *    byte for byte with Qwen3's template (the expected text came from
 *    transformers' Jinja2); a failure prints where the two first differ.
 * 2. A table of {template, context, expected} for each feature.  The
 *    expected strings were produced by Python's Jinja2 3.1 configured like
 *    transformers (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks,
 *    loopcontrols, transformers' tojson).
 * 3. Malformed and hostile templates: the error names line and column, and
 *    nothing crashes, hangs or leaks (this file also runs under ASan).
 * 4. One parsed template rendered by several threads at once gives what
 *    serial rendering gives (the server shares one parse between its
 *    request threads).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../src/chat_template.h"
#include "../src/jinja/runtime.h"
#include "../src/json.h"
#include "../src/tokenizer/tokenizer.h"
#include "../src/util.h"
#include "test.h"

/* ------------------------------------------------------------ feature table */

static const struct {
    const char *tmpl, *ctx, *want;
} cases[] = {
    {"hello",
     "{}",
     "hello"},
    {"a{# comment #}b",
     "{}",
     "ab"},
    {"{{ 'x' }}\n",
     "{}",
     "x"},
    {"line1\nline2\n\n",
     "{}",
     "line1\nline2\n"},
    {"a\r\nb\rc",
     "{}",
     "a\nb\nc"},
    {"a  {{- 'b' -}}  c",
     "{}",
     "abc"},
    {"a\n  {%- if true %}X{% endif -%}\n  b",
     "{}",
     "aXb"},
    {"a {%+ if true %}X{% endif %} b",
     "{}",
     "a X b"},
    {"{% if true %}\nyes\n{% endif %}\nafter",
     "{}",
     "yes\nafter"},
    {"  {% if true %}\n  yes\n  {% endif %}\nz",
     "{}",
     "  yes\nz"},
    {"x  {% if true %}y{% endif %}",
     "{}",
     "x  y"},
    {"  {{ 'v' }}\n",
     "{}",
     "  v"},
    {"{% for i in [1,2] %}\n  {{ i }}\n{% endfor %}\n",
     "{}",
     "  1\n  2\n"},
    {"  {# c #}\nA",
     "{}",
     "A"},
    {"a{# c -#}   \n b",
     "{}",
     "ab"},
    {"{% if true +%}\nkeep{% endif %}",
     "{}",
     "\nkeep"},
    {"\t{% if true %}T{% endif %}",
     "{}",
     "T"},
    {"{% raw %}{{ not }}{% endraw %}",
     "{}",
     "{{ not }}"},
    {"{{ 1 }} {{ 1.0 }} {{ -2.5 }} {{ 1e3 }} {{ 1_000 }} {{ 0x1f }} {{ 0.1 + 0.2 }} {{ 1e20 }} {{ 1e-7 }}",
     "{}",
     "1 1.0 -2.5 1000.0 1000 31 0.30000000000000004 1e+20 1e-07"},
    {"{{ true }} {{ True }} {{ false }} {{ none }} {{ None }}",
     "{}",
     "True True False None None"},
    {"{{ [1, 'a', none, true, 1.5] }} {{ (1, 2) }} {{ (1,) }} {{ {'a': 1, 'b': [2]} }} {{ [] }} {{ {} }}",
     "{}",
     "[1, 'a', None, True, 1.5] (1, 2) (1,) {'a': 1, 'b': [2]} [] {}"},
    {"{{ \"it's\" }} {{ ['it\\'s', \"q\\\"\", 'a\\nb'] }}",
     "{}",
     "it's [\"it's\", 'q\"', 'a\\nb']"},
    {"{{ 'a\\tb\\x41\\u00e9\\n' }}",
     "{}",
     "a\tbA\303\251\n"},
    {"{{ 'ab' 'cd' }}",
     "{}",
     "abcd"},
    {"{{ 7 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 2 ** 3 ** 2 }} {{ 7.5 // 2 }} {{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }}",
     "{}",
     "3.5 3 -4 1 2 1024 64 3.0 7 9"},
    {"{{ 'ab' * 3 }} {{ [1] * 2 }} {{ 'a' + 'b' }} {{ [1] + [2] }} {{ 1 ~ 2 ~ 'x' }} {{ -(3) }} {{ +3 }} {{ true + 1 }}",
     "{}",
     "ababab [1, 1] ab [1, 2] 12x -3 3 2"},
    {"{{ 1 < 2 }} {{ 1 == 1.0 }} {{ 'a' < 'b' }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 5 }} {{ [1,2] == [1,2] }} {{ 1 != 2 }} {{ 2 >= 2 }} {{ 1 <= 0 }}",
     "{}",
     "True True True True False True True True False"},
    {"{{ 'b' in 'abc' }} {{ 2 in [1,2] }} {{ 'k' in {'k': 1} }} {{ 3 not in [1] }} {{ not true }} {{ not (1 and 0) }}",
     "{}",
     "True True True True False True"},
    {"{{ 0 or 'x' }} {{ 1 and 'y' }} {{ '' or [] }} {{ none or 5 }} {{ 'a' and '' }}",
     "{}",
     "x y [] 5 "},
    {"{{ 'yes' if x else 'no' }} {{ 'yes' if not x else 'no' }} [{{ 'a' if false }}]",
     "{\"x\": 1}",
     "yes no []"},
    {"{{ m.role }} {{ m['content'] }} {{ xs[0] }} {{ xs[-1] }} {{ xs.1 }} [{{ m.missing }}] [{{ xs[10] }}]",
     "{\"m\": {\"role\": \"user\", \"content\": \"hi\"}, \"xs\": [1, 2, 3]}",
     "user hi 1 3 2 [] []"},
    {"{{ xs[1:] }} {{ xs[:2] }} {{ xs[::-1] }} {{ xs[::2] }} {{ xs[-2:] }} {{ xs[1:-1] }} {{ xs[5:] }} {{ xs[3:1:-1] }}",
     "{\"xs\": [1, 2, 3, 4]}",
     "[2, 3, 4] [1, 2] [4, 3, 2, 1] [1, 3] [3, 4] [2, 3] [] [4, 3]"},
    {"{{ 'hello'[1:3] }} {{ 'hello'[::-1] }} {{ 'h\303\251llo'[1:3] }} {{ 'h\303\251llo'[-1] }} {{ s[:5] }}",
     "{\"s\": \"\346\227\245\346\234\254\350\252\236\343\201\256\343\203\206\343\202\255\343\202\271\343\203\210\"}",
     "el olleh \303\251l o \346\227\245\346\234\254\350\252\236\343\201\256\343\203\206"},
    {"{% if x == 1 %}one{% elif x == 2 %}two{% elif x == 3 %}three{% else %}other{% endif %}",
     "{\"x\": 2}",
     "two"},
    {"{% if x %}T{% else %}F{% endif %}{% if y %}T{% else %}F{% endif %}{% if z %}T{% else %}F{% endif %}",
     "{\"x\": [], \"y\": {}, \"z\": \"0\"}",
     "FFT"},
    {"{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}",
     "{\"xs\": [\"a\", \"b\", \"c\"]}",
     "1032TrueFalse3;2121FalseFalse3;3210FalseTrue3;"},
    {"{% for x in xs %}{{ loop.previtem }}-{{ x }}-{{ loop.nextitem }};{% endfor %}",
     "{\"xs\": [1, 2, 3]}",
     "-1-2;1-2-3;2-3-;"},
    {"{% for x in xs if x is odd %}{{ x }}{{ loop.last }},{% endfor %}",
     "{\"xs\": [1, 2, 3, 4, 5]}",
     "1False,3False,5True,"},
    {"{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}",
     "{\"d\": {\"b\": 1, \"a\": 2}}",
     "b=1;a=2;"},
    {"{% for k in d %}{{ k }}{% endfor %}",
     "{\"d\": {\"b\": 1, \"a\": 2}}",
     "ba"},
    {"{% for x in [] %}x{% else %}empty{% endfor %}",
     "{}",
     "empty"},
    {"{% for x in xs %}{% if x == 3 %}{% break %}{% endif %}{% if x == 1 %}{% continue %}{% endif %}{{ x }}{% endfor %}",
     "{\"xs\": [1, 2, 3, 4]}",
     "2"},
    {"{% for c in 'abc' %}{{ c }}.{% endfor %}",
     "{}",
     "a.b.c."},
    {"{% for i in range(3) %}{% for j in range(2) %}{{ i }}{{ j }}{{ loop.index }} {% endfor %}{% endfor %}",
     "{}",
     "001 012 101 112 201 212 "},
    {"{% set x = 0 %}{% for i in [1,2,3] %}{{ x }}{% set x = i %}{% endfor %}{{ x }}",
     "{}",
     "0000"},
    {"{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }} {% endfor %}",
     "{}",
     "3 7 "},
    {"{% for x in xs %}{{ loop.cycle('odd', 'even') }} {% endfor %}",
     "{\"xs\": [1, 2, 3]}",
     "odd even odd "},
    {"{{ range(5) | list }} {{ range(1, 4) | list }} {{ range(10, 0, -3) | list }}",
     "{}",
     "[0, 1, 2, 3, 4] [1, 2, 3] [10, 7, 4, 1]"},
    {"{% set a = 1 %}{% set b, c = [2, 3] %}{{ a }}{{ b }}{{ c }}",
     "{}",
     "123"},
    {"{% set ns = namespace(found=false, n=0) %}{% for x in [1,2,3] %}{% if x == 2 %}{% set ns.found = true %}{% endif %}{% set ns.n = ns.n + x %}{% endfor %}{{ ns.found }} {{ ns.n }}",
     "{}",
     "True 6"},
    {"{% set body %}inner {{ 1 + 1 }}{% endset %}[{{ body }}]",
     "{}",
     "[inner 2]"},
    {"{% set body | upper %}shout{% endset %}{{ body }}",
     "{}",
     "SHOUT"},
    {"{% set t = (1, 2) %}{{ t[0] }}{{ t | length }}",
     "{}",
     "12"},
    {"{% macro greet(name, greeting='Hello') %}{{ greeting }}, {{ name }}!{% endmacro %}{{ greet('Ann') }} {{ greet('Bob', 'Hi') }} {{ greet(name='Cy', greeting='Yo') }}",
     "{}",
     "Hello, Ann! Hi, Bob! Yo, Cy!"},
    {"{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(3) }}",
     "{}",
     "321"},
    {"{% macro f() %}{{ y }}{% endmacro %}{% set y = 5 %}{{ f() }}",
     "{}",
     "5"},
    {"{% macro f(a) %}{{ a }}|{{ varargs }}|{{ kwargs }}{% endmacro %}{{ f(1, 2, 3, k=4) }}",
     "{}",
     "1|(2, 3)|{'k': 4}"},
    {"{% macro wrap() %}<{{ caller() }}>{% endmacro %}{% call wrap() %}inside{% endcall %}",
     "{}",
     "<inside>"},
    {"{% macro render(t) %}{% if t is mapping %}{ {% for k, v in t.items() %}{{ k }}: {{ render(v) }}{% if not loop.last %}, {% endif %}{% endfor %} }{% else %}{{ t }}{% endif %}{% endmacro %}{{ render(d) }}",
     "{\"d\": {\"a\": {\"b\": 1}, \"c\": 2}}",
     "{ a: { b: 1 }, c: 2 }"},
    {"{{ 'abc' | length }} {{ [1,2] | count }} {{ {'a':1} | length }} {{ 'h\303\251llo' | length }}",
     "{}",
     "3 2 1 5"},
    {"{{ '  x  ' | trim }}|{{ 'xxhixx' | trim('x') }}|{{ 'Hello' | upper }}|{{ 'HeLLo' | lower }}|{{ 'hello WORLD' | capitalize }}|{{ 'hello wORLD-foo (bar' | title }}",
     "{}",
     "x|hi|HELLO|hello|Hello world|Hello World-Foo (Bar"},
    {"{{ ['a', 'b'] | join(', ') }} {{ [1, 2] | join }} {{ users | join(', ', attribute='name') }}",
     "{\"users\": [{\"name\": \"x\"}, {\"name\": \"y\"}]}",
     "a, b 12 x, y"},
    {"{{ x | default('d') }} {{ none | default('d') }} {{ '' | default('d', true) }} {{ 0 | d('z', boolean=true) }} {{ 'v' | default('d') }}",
     "{}",
     "d None d z v"},
    {"{{ xs | first }} {{ xs | last }} {{ 'abc' | first }} {{ [] | first }}",
     "{\"xs\": [1, 2, 3]}",
     "1 3 a "},
    {"{{ 'ab' | list }} {{ 12 | string }} {{ '42' | int }} {{ '4.7' | int }} {{ 'x' | int }} {{ 'x' | int(7) }} {{ 3.9 | int }} {{ '2.5' | float }} {{ 3 | float }} {{ -3 | abs }} {{ -2.5 | abs }}",
     "{}",
     "['a', 'b'] 12 42 4 0 7 3 2.5 3.0 3 2.5"},
    {"{{ 'aXbX' | replace('X', '-') }} {{ 'aaa' | replace('a', 'b', 2) }} {{ 2.5 | round }} {{ 3.5 | round }} {{ 2.567 | round(2) }} {{ 3 | round }} {{ 2.1 | round(method='ceil') }} {{ 2.9 | round(0, 'floor') }}",
     "{}",
     "a-b- bba 2.0 4.0 2.57 3 3.0 2.0"},
    {"{{ d | items | list }} {{ d | dictsort }} {{ d | dictsort(reverse=true) }} {{ d | dictsort(by='value') }}",
     "{\"d\": {\"b\": 1, \"a\": 3, \"C\": 2}}",
     "[('b', 1), ('a', 3), ('C', 2)] [('a', 3), ('b', 1), ('C', 2)] [('C', 2), ('b', 1), ('a', 3)] [('b', 1), ('C', 2), ('a', 3)]"},
    {"{{ users | map(attribute='name') | join(',') }} {{ ['a', 'b'] | map('upper') | list }} {{ users | map(attribute='age', default=0) | list }}",
     "{\"users\": [{\"name\": \"x\", \"age\": 3}, {\"name\": \"y\"}]}",
     "x,y ['A', 'B'] [3, 0]"},
    {"{{ [1,2,3,4] | select('odd') | list }} {{ [1,2,3,4] | reject('odd') | list }} {{ [0, 1, '', 'a'] | select | list }} {{ [1,2,3] | select('greaterthan', 1) | list }}",
     "{}",
     "[1, 3] [2, 4] [1, 'a'] [2, 3]"},
    {"{{ msgs | selectattr('role', 'equalto', 'user') | map(attribute='content') | list }} {{ msgs | rejectattr('role', 'eq', 'user') | list | length }} {{ msgs | selectattr('x') | list }}",
     "{\"msgs\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", \"content\": \"b\", \"x\": 1}, {\"role\": \"user\", \"content\": \"c\"}]}",
     "['a', 'c'] 1 [{'role': 'assistant', 'content': 'b', 'x': 1}]"},
    {"{{ ['b', 'A', 'a', 'B'] | unique | list }} {{ ['b', 'A', 'a', 'c'] | sort }} {{ [3, 1, 2] | sort(reverse=true) }} {{ ['b', 'A'] | sort(case_sensitive=true) }} {{ users | sort(attribute='n') | map(attribute='n') | list }}",
     "{\"users\": [{\"n\": 2}, {\"n\": 1}]}",
     "['b', 'A'] ['A', 'a', 'b', 'c'] [3, 2, 1] ['A', 'b'] [1, 2]"},
    {"{{ [1,2,3,4,5] | batch(2) | list }} {{ [1,2,3] | batch(2, 'x') | list }}",
     "{}",
     "[[1, 2], [3, 4], [5]] [[1, 2], [3, 'x']]"},
    {"{{ 'a\\nb\\n\\nc' | indent }}|{{ 'a\\nb' | indent(2, true) }}|{{ 'a\\n\\nb' | indent('> ', blank=true) }}",
     "{}",
     "a\n    b\n\n    c|  a\n  b|a\n> \n> b"},
    {"{{ 'hello big world' | wordcount }} {{ [1,2] | reverse | list }} {{ 'abc' | reverse }} {{ [1,2,3] | sum }} {{ [3,1,2] | min }} {{ [3,1,2] | max }} {{ '<a&b>' | e }} {{ 'x' | safe }}",
     "{}",
     "3 [2, 1] cba 6 1 3 &lt;a&amp;b&gt; x"},
    {"{{ x | tojson }} {{ '\303\251\"\\n' | tojson }} {{ [1, 2.0, none, true] | tojson }} {{ {} | tojson }}",
     "{\"x\": {\"a\": [1, {\"b\": \"c\"}], \"d\": null}}",
     "{\"a\": [1, {\"b\": \"c\"}], \"d\": null} \"\303\251\\\"\\n\" [1, 2.0, null, true] {}"},
    {"{{ x | tojson(indent=2) }}",
     "{\"x\": {\"a\": [1, {\"b\": \"c\"}, []], \"d\": {}}}",
     "{\n  \"a\": [\n    1,\n    {\n      \"b\": \"c\"\n    },\n    []\n  ],\n  \"d\": {}\n}"},
    {"{{ x | tojson(sort_keys=true) }} {{ x | tojson(separators=(',', ':')) }}",
     "{\"x\": {\"b\": 1, \"a\": [1, 2]}}",
     "{\"a\": [1, 2], \"b\": 1} {\"b\":1,\"a\":[1,2]}"},
    {"{{ x is defined }} {{ y is defined }} {{ y is undefined }} {{ none is none }} {{ 'a' is string }} {{ 1 is number }} {{ 1.5 is number }} {{ 1 is integer }} {{ 1.5 is integer }} {{ 1.5 is float }} {{ true is boolean }}",
     "{\"x\": 1}",
     "True False True True True True True True False True True"},
    {"{{ {} is mapping }} {{ [] is mapping }} {{ [] is iterable }} {{ 'a' is iterable }} {{ 1 is iterable }} {{ [] is sequence }} {{ true is true }} {{ 1 is true }} {{ false is false }} {{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(4) }}",
     "{}",
     "True False True True False True True False True True True True False"},
    {"{{ 1 is eq 1 }} {{ 1 is equalto 2 }} {{ 1 is ne 2 }} {{ 1 is lt 2 }} {{ 2 is gt 1 }} {{ 2 is ge 2 }} {{ 2 is le 1 }} {{ 2 is in [1, 2] }} {{ x is not none }} {{ 'ABC' is upper }} {{ 'abc' is lower }}",
     "{\"x\": 1}",
     "True False True True True True False True True True True"},
    {"{% if m.reasoning is defined and m.reasoning is not none %}R{% else %}N{% endif %}",
     "{\"m\": {\"content\": \"x\"}}",
     "N"},
    {"{{ s.startswith('he') }} {{ s.endswith('lo') }} {{ s.startswith(('x', 'h')) }} {{ s.upper() }} {{ s.lower() }} {{ 'hello world'.title() }} {{ s.capitalize() }} {{ s.find('l') }} {{ s.rfind('l') }} {{ s.find('z') }} {{ s.count('l') }}",
     "{\"s\": \"hello\"}",
     "True True True HELLO hello Hello World Hello 2 3 -1 2"},
    {"{{ 'a,b,,c'.split(',') }} {{ '  a b  c '.split() }} {{ 'a,b,c'.split(',', 1) }} {{ 'a,b,c'.rsplit(',', 1) }} {{ 'a b c'.split(None, 1) }}",
     "{}",
     "['a', 'b', '', 'c'] ['a', 'b', 'c'] ['a', 'b,c'] ['a,b', 'c'] ['a', 'b c']"},
    {"[{{ '  x \\n'.strip() }}] [{{ 'xxaxx'.strip('x') }}] [{{ '\\n\\nab\\n'.lstrip('\\n') }}] [{{ 'ab  '.rstrip() }}] [{{ 'abcba'.strip('ab') }}]",
     "{}",
     "[x] [a] [ab\n] [ab] [c]"},
    {"{{ 'a-b-c'.replace('-', '+') }} {{ 'a-b-c'.replace('-', '', 1) }} {{ ', '.join(['x', 'y']) }} {{ 'l1\\nl2'.splitlines() }} {{ '12'.isdigit() }} {{ 'ab'.isalpha() }} {{ '{} and {}'.format('a', 'b') }} {{ '{x}!'.format(x=1) }}",
     "{}",
     "a+b+c ab-c x, y ['l1', 'l2'] True True a and b 1!"},
    {"{% set c = m.content %}{{ c.split('</think>')[-1].lstrip('\\n') }}|{{ c.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') }}",
     "{\"m\": {\"content\": \"<think>\\nreason\\n</think>\\n\\nanswer\"}}",
     "answer|reason"},
    {"{{ d.keys() | list }} {{ d.values() | list }} {{ d.get('a') }} {{ d.get('z') }} {{ d.get('z', 9) }} {{ d.items() | list }}",
     "{\"d\": {\"a\": 1, \"b\": 2}}",
     "['a', 'b'] [1, 2] 1 None 9 [('a', 1), ('b', 2)]"},
    {"{% for k, v in schema.items() %}{{ k }} {% endfor %}{{ schema['items'] }}",
     "{\"schema\": {\"type\": \"array\", \"items\": {\"type\": \"string\"}}}",
     "type items {'type': 'string'}"},
    {"{{ [1, 2, 1].index(2) }} {{ [1, 2, 1].count(1) }}",
     "{}",
     "1 2"},
    {"{% set d = dict(a=1, b='x') %}{{ d }} {{ dict([('k', 1)]) }} {{ namespace(a=1).a }}",
     "{}",
     "{'a': 1, 'b': 'x'} {'k': 1} 1"},
    {"{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}]",
     "{}",
     "3[]"},
    {"{% filter upper %}hello {{ 'x' }}{% endfilter %}",
     "{}",
     "HELLO X"},
    {"{% generation %}gen {{ 1 }}{% endgeneration %}!",
     "{}",
     "gen 1!"},
    {"[{{ x }}] [{{ x | length }}] [{% for i in x %}i{% endfor %}] [{{ x ~ 'a' }}] [{{ not x }}] [{{ x is defined }}]",
     "{}",
     "[] [0] [] [a] [True] [False]"},
    {"{{ d }} {{ [d] }} {{ [1.0, -0.0, 1e16, 12345678.9] }}",
     "{\"d\": {\"k\": \"v\", \"n\": null, \"t\": true, \"f\": 0.5}}",
     "{'k': 'v', 'n': None, 't': True, 'f': 0.5} [{'k': 'v', 'n': None, 't': True, 'f': 0.5}] [1.0, -0.0, 1e+16, 12345678.9]"},
    {"{{ '\344\270\255\346\226\207' ~ s | upper }} {{ '\303\211COLE' | lower }} {{ s | length }}",
     "{\"s\": \"stra\303\237e\"}",
     "\344\270\255\346\226\207STRASSE \303\251cole 6"},
    {"{{ 'a\\nb\\n\\nc' | indent }}|{{ 'a\\nb' | indent(2, true) }}|{{ 'a\\n\\nb' | indent('> ', blank=true) }}|{{ '' | indent(first=true) }}|{{ 'x\\n' | indent(2, true, true) }}|{{ '{\\n' | indent(4, first=true) }}",
     "{}",
     "a\n    b\n\n    c|  a\n  b|a\n> \n> b|    |  x\n  |    {\n"},
    {"{{ 'a'|safe + '<b>' }} {{ '<b>' + 'x'|safe }} {{ ('<'|e) ~ '<' }} {{ '<'|e|e }} {{ '<'|e|forceescape }} {{ ('<'|safe|upper) + '&' }} {{ '\"' ~ 'x'|safe }}",
     "{}",
     "a&lt;b&gt; &lt;b&gt;x &lt;< &lt; &amp;lt; <&amp; \"x"},
    {"{{ d.items is defined }} {{ d['items'] }} {{ d.items.type is defined }} {{ d.keys() | list }} {{ (d.get)('items') }}",
     "{\"d\": {\"items\": {\"type\": \"string\"}}}",
     "True {'type': 'string'} False ['items'] {'type': 'string'}"},
    {"{{ none | select | list }} {{ none | map('upper') | list }} {{ [] | selectattr('a') | list }}",
     "{}",
     "[] [] []"},
    {"{% macro m() %}{{ caller(1) }}{{ caller(2) }}{% endmacro %}{% call(v) m() %}[{{ v }}]{% endcall %}",
     "{}",
     "[1][2]"},
    {"{% macro wrap() %}({{ caller() }}){% endmacro %}{% for x in [1, 2] %}{% call wrap() %}{{ x }}-{{ loop.index }}{% endcall %}{% endfor %}",
     "{}",
     "(1-1)(2-2)"},
    {"{% for a in [1, 2] %}{% set outer = loop %}{% for b in [3, 4] %}{{ outer.index }}{{ loop.index }} {% endfor %}{% endfor %}",
     "{}",
     "11 12 21 22 "},
    {"{{ x | items | list }} {{ {'b': 1, 'a': 2} | dictsort(false, 'value', true) }}",
     "{}",
     "[] [('a', 2), ('b', 1)]"},
    {"{{ x | tojson(indent=1, sort_keys=true) }}",
     "{\"x\": {\"z\": [\"\303\274\", {\"b\": null, \"a\": 1.5}], \"a\": true}}",
     "{\n \"a\": true,\n \"z\": [\n  \"\303\274\",\n  {\n   \"a\": 1.5,\n   \"b\": null\n  }\n ]\n}"},
    {"{{ 'yes' if true }}|{{ 'no' if false }}|{{ 1 if 0 else 2 if 0 else 3 }}",
     "{}",
     "yes||3"},
    {"{{ none is sameas none }} {{ x is callable }} {{ range is callable }} {{ 'a' is in 'abc' }} {{ 2 is divisibleby 2 }}",
     "{\"x\": 1}",
     "True False True True True"},
    {"  {%- if true %}\n  a\n  {%- endif %}\n{{- 'b' -}}\n  c",
     "{}",
     "  abc"},
    {"{% raw -%}  x {%- endraw %}|",
     "{}",
     "x|"},
    {"  {% if true %}x{% endif %}\n  {# c #}  y\n",
     "{}",
     "x  y"},
    {"{% if true %}  \nz{% endif %}",
     "{}",
     "  \nz"},
    {"{% for i in range(3) %}{{ i }}{% if not loop.last %}, {% endif %}{% endfor %}",
     "{}",
     "0, 1, 2"},
    {"{% set ns = namespace(items=[]) %}{% for x in [1, 2] %}{% set ns.items = ns.items + [x * 10] %}{% endfor %}{{ ns.items }}",
     "{}",
     "[10, 20]"},
    {"{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% else %}{% set loop_messages = messages %}{% endif %}{% for m in loop_messages %}{{ m.role }}{% endfor %}",
     "{\"messages\": [{\"role\": \"system\"}, {\"role\": \"user\"}]}",
     "user"},
    {"{{ messages | selectattr('role', 'in', ['user', 'tool']) | list | length }} {{ messages | map(attribute='role') | unique | list }}",
     "{\"messages\": [{\"role\": \"system\"}, {\"role\": \"user\"}, {\"role\": \"tool\"}, {\"role\": \"user\"}]}",
     "3 ['system', 'user', 'tool']"},
    {"{{ 'Hello %s'|replace('%s', 'x') }} {{ 'a b'.split(' ')|join('-') }} {{ 'abc'[1] }} {{ 'abc'[-1:] }} {{ [1,2,3][-2] }}",
     "{}",
     "Hello x a-b b c 2"},
    {"{{ 3 * 'ab' }} {{ 1.5 * 2 }} {{ 7 % 2.5 }} {{ -7.5 // 2 }} {{ 2 ** -1 }} {{ 10 / 4 }} {{ 9 // 3 }} {{ 0.1 * 3 }}",
     "{}",
     "ababab 3.0 2.0 -4.0 0.5 2.5 3 0.30000000000000004"},
    {"{{ '%d items'|format(3) if false else 'x' }}",
     "{}",
     "x"},
    {"{% set a, b = 'xy' %}{{ b }}{{ a }}",
     "{}",
     "yx"},
    {"{{ loop is defined }}{% for x in [1] %}{{ loop is defined }}{% endfor %}",
     "{}",
     "FalseTrue"},
    {"{{ '%s and %s' % ('a', 1) }} {{ '%d%%' % 50 }} {{ '%5.2f|%-4s|%03d' % (3.14159, 'ab', 7) }} {{ '%(x)s!' % {'x': 'hi'} }} {{ '%r' % 'q' }} {{ '%s'|format([1]) }} {{ '%x' % 255 }}",
     "{}",
     "a and 1 50%  3.14|ab  |007 hi! 'q' [1] ff"},
    {"{% for i in [1,2] %}{% macro m() %}{{ i }}{% endmacro %}{{ m() }}{% endfor %}",
     "{}",
     "12"},
    {"{% macro outer(a) %}{% macro inner() %}{{ a }}{% endmacro %}{{ inner() }}{% endmacro %}{{ outer(5) }}",
     "{}",
     "5"},
    {"{% for i in [1] %}{% set x = 1 %}{% macro m() %}{{ x }}{% endmacro %}{% set x = 2 %}{{ m() }}{% endfor %}",
     "{}",
     "2"},
    {"{% set x = 0 %}{% macro m() %}[{{ x }}]{% set x = 1 %}[{{ x }}]{% endmacro %}{{ m() }}{{ x }}",
     "{}",
     "[0][1]0"},
};

/* Where two strings first differ, for failure messages. */
static void show_diff(const char *want, const char *got) {
    size_t i = 0;
    while (want[i] && want[i] == got[i]) i++;
    size_t from = i > 30 ? i - 30 : 0;
    printf("    first difference at byte %zu\n    want: ...%.60s\n    got:  ...%.60s\n", i, want + from, got + from);
}

static void test_table(void) {
    int n = (int)(sizeof cases / sizeof cases[0]), bad = 0;
    for (int i = 0; i < n; i++) {
        json_t *ctx = w8_json_load_buf(cases[i].ctx, strlen(cases[i].ctx), "ctx");
        EXPECT(ctx != NULL, "case %d: context parses", i);
        char *got = w8_jinja_render(cases[i].tmpl, strlen(cases[i].tmpl), ctx);
        if (!got) {
            bad++;
            EXPECT(0, "case %d: %s -> error: %s", i, cases[i].tmpl, w8_lasterr());
        } else if (strcmp(got, cases[i].want) != 0) {
            bad++;
            EXPECT(0, "case %d: %s", i, cases[i].tmpl);
            show_diff(cases[i].want, got);
        }
        free(got);
        json_decref(ctx);
    }
    CHECK(bad == 0, "%d feature cases render as Python's Jinja2 does (%d wrong)", n, bad);
}

/* ------------------------------------------------------------ Qwen3 data */

static char *qwen3_template(json_t **cfg_out) {
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizers/qwen3/tokenizer_config.json", shared_dir());
    json_t *cfg = w8_json_load_file(path);
    const char *t = NULL;
    if (cfg) w8_json_get_str(cfg, "chat_template", path, &t);
    char *r = t ? w8_xstrdup(t) : NULL;
    if (cfg_out) *cfg_out = cfg;
    else json_decref(cfg);
    return r;
}

static void test_qwen3(void) {
    json_t *cfg;
    char *tmpl = qwen3_template(&cfg);
    CHECK(tmpl != NULL, "qwen3 tokenizer_config.json has a chat_template");
    if (!tmpl) return;
    char path[512];
    snprintf(path, sizeof path, "%s/testdata/chat/qwen3_chat_template.jsonl", shared_dir());
    size_t len;
    char *data = w8_read_file(path, (size_t)64 << 20, &len);
    CHECK(data != NULL, "read %s", path);
    int n = 0, ok = 0;
    for (char *line = data ? strtok(data, "\n") : NULL; line; line = strtok(NULL, "\n")) {
        json_t *c = w8_json_load_buf(line, strlen(line), path);
        if (!c) continue;
        n++;
        json_t *in = json_object_get(c, "input");
        const char *want = json_string_value(json_object_get(c, "rendered"));
        json_t *extra = json_deep_copy(in);
        json_object_del(extra, "messages");
        json_object_del(extra, "tools");
        json_object_del(extra, "add_generation_prompt");
        char *got = w8_chat_render(tmpl, json_object_get(in, "messages"), json_object_get(in, "tools"),
                                   json_is_true(json_object_get(in, "add_generation_prompt")), extra, NULL,
                                   json_string_value(json_object_get(cfg, "eos_token")));
        if (got && want && !strcmp(got, want)) {
            ok++;
        } else {
            EXPECT(0, "qwen3 case %d renders as transformers (%s)", n, got ? "differs" : w8_lasterr());
            if (got && want) show_diff(want, got);
        }
        free(got);
        json_decref(extra);
        json_decref(c);
    }
    CHECK(n >= 8 && ok == n, "qwen3 testdata: %d of %d cases byte for byte", ok, n);
    free(data);
    free(tmpl);
    json_decref(cfg);
}

/* ------------------------------------------------------------ errors */

static const struct {
    const char *tmpl, *want; /* want: a substring of the error */
} errors[] = {
    {"{{ x ", "template:1:1: unexpected end of template"},
    {"ab\n{% if x %}", "template:2:4: 'if' is never closed (expected 'endif')"},
    {"{% for x in y %}\n  {% endif %}", "template:2:6: unexpected 'endif': expected 'endfor' to close the 'for' at 1:4"},
    {"{% endfor %}", "template:1:4: unexpected 'endfor'"},
    {"{{ 1 + }}", "template:1:8: unexpected '}}'"},
    {"{{ x | nosuch }}", "template:1:8: no filter named 'nosuch'"},
    {"{{ x is nosuch }}", "template:1:9: no test named 'nosuch'"},
    {"{% frobnicate %}", "template:1:4: unknown tag 'frobnicate'"},
    {"{{ (1, 2 }}", "template:1:10: unexpected '}', expected ')'"},
    {"{# never closed", "template:1:1: missing end of comment tag"},
    {"{{ 'abc }}", "template:1:4: unterminated string"},
    {"{{ a ! b }}", "template:1:6: unexpected char '!'"},
    {"{% break %}", "template:1:4: 'break' outside of a loop"},
    {"{% set x = 1 %}\n  {{ x + 'a' }}", "template:2:8: unsupported operand type(s) for +: 'int' and 'str'"},
    {"{{ 'a' + 1 }}", "can only concatenate str (not \"int\") to str"},
    {"{{ 1 / 0 }}", "template:1:6: division by zero"},
    {"{{ nope.attr }}", "template:1:4: 'nope' is undefined"},
    {"{{ none.x.y }}", "is undefined"},
    {"{{ [1,2].append(3) }}", "access to attribute 'append' of 'list' object is unsafe"},
    {"{{ 1 < 'a' }}", "'<' not supported between instances of 'int' and 'str'"},
    {"{{ raise_exception('Only user and assistant roles are supported!') }}",
     "Only user and assistant roles are supported!"},
    {"{% for i in range(200000) %}{% endfor %}", "template:1:13: range too big"},
    {"{% for a, b in [[1, 2, 3]] %}{% endfor %}", "too many values to unpack"},
    {"{% set ns = 1 %}{% set ns.a = 2 %}", "cannot assign attribute on non-namespace object 'ns'"},
    {"{{ 9223372036854775807 + 1 }}", "integer overflow"},
    {"{{ 5()}}", "'int' object is not callable"},
    {"{{ 'x'.nosuch() }}", "'str' object has no attribute 'nosuch'"},
};

static void test_errors(void) {
    int n = (int)(sizeof errors / sizeof errors[0]);
    for (int i = 0; i < n; i++) {
        char *got = w8_jinja_render(errors[i].tmpl, strlen(errors[i].tmpl), NULL);
        const char *e = w8_lasterr();
        CHECK(!got && strstr(e, errors[i].want), "error for %s: %s", errors[i].tmpl, got ? "(rendered!)" : e);
        free(got);
    }
}

/* ------------------------------------------------------------ limits */

static char *repeat_str(const char *s, int n) {
    size_t k = strlen(s);
    char *r = w8_xmalloc(k * (size_t)n + 1);
    for (int i = 0; i < n; i++) memcpy(r + k * (size_t)i, s, k);
    r[k * (size_t)n] = 0;
    return r;
}

static void expect_error(const char *what, const char *tmpl, const char *want) {
    double t0 = w8_now();
    char *got = w8_jinja_render(tmpl, strlen(tmpl), NULL);
    const char *e = w8_lasterr();
    CHECK(!got && strstr(e, want), "%s: clear error (%s) in %.2f s", what, got ? "rendered!" : e, w8_now() - t0);
    free(got);
}

static void test_limits(void) {
    expect_error("infinite macro recursion", "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
                 "nested too deeply");
    expect_error("huge loop", "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
                 "too many loop iterations");
    expect_error("huge output", "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", "output larger than");
    expect_error("huge string", "{{ 'x' * 100000000 }}", "value larger than");
    expect_error("doubling string",
                 "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                 "value larger than");
    /* a lower limit keeps this quick under ASan; the code path is the same */
    jj_iter_limit = 100000;
    expect_error("exponential macro calls",
                 "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}",
                 "too many loop iterations (limit 100000");
    /* work linear in a value's size counts too: big values in a loop stop */
    jj_iter_limit = 20000;
    expect_error("big strings built in a loop",
                 "{% for i in range(100000) %}{% set s = 'x' * 8000000 %}{% endfor %}", "too many loop iterations");
    jj_iter_limit = 100000;
    expect_error("searching a big list in a loop",
                 "{% set big = range(100000) | list %}{% for i in range(100000) %}{% if -1 in big %}{% endif %}{% endfor %}",
                 "too many loop iterations");
    expect_error("unique over a big list",
                 "{{ (range(100000) | list + range(100000) | list) | unique | length }}", "too many loop iterations");
    expect_error("a big string split into characters",
                 "{% set ns = namespace(n=0) %}{% for i in range(1000) %}{% set ns.n = ns.n + ('y' * 4000000) | list | length %}{% endfor %}",
                 "too many loop iterations");
    jj_iter_limit = W8_JINJA_MAX_ITERS;
    expect_error("deep value", "{% set ns = namespace(v=[]) %}{% for i in range(5000) %}{% set ns.v = [ns.v] %}{% endfor %}",
                 "nested too deeply");
    /* cycles through a namespace must not leak (ASan checks) */
    const char *cyc = "{% set ns = namespace() %}{% set ns.me = ns %}{% set ns.l = [ns] %}ok";
    char *r = w8_jinja_render(cyc, strlen(cyc), NULL);
    CHECK(r && !strcmp(r, "ok"), "namespace holding itself renders and is freed");
    free(r);
    /* a macro closing over a loop scope, kept past the loop in a namespace */
    const char *esc = "{% set ns = namespace() %}{% for i in [1, 2] %}{% macro m() %}{{ i }}{% endmacro %}"
                      "{% set ns.m = m %}{% endfor %}[{{ ns.m() }}]";
    r = w8_jinja_render(esc, strlen(esc), NULL);
    CHECK(r != NULL, "macro outliving its loop renders without leaks (%s)", r ? r : w8_lasterr());
    free(r);

    char *deep = repeat_str("{% if true %}", 5000);
    expect_error("deeply nested blocks", deep, "nested too deeply");
    free(deep);
    deep = repeat_str("(", 5000);
    memcpy(deep, "{{ ", 3);
    expect_error("deeply nested parentheses", deep, "template:1:");
    free(deep);
    char *chain = repeat_str("1 + ", 50000);
    size_t k = strlen(chain);
    char *t = w8_xmalloc(k + 16);
    snprintf(t, k + 16, "{{ %s1 }}", chain);
    expect_error("very long expression", t, "nested too deeply");
    free(t);
    free(chain);
    chain = repeat_str("|upper", 50000);
    k = strlen(chain);
    t = w8_xmalloc(k + 16);
    snprintf(t, k + 16, "{{ 'a'%s }}", chain);
    expect_error("very long filter chain", t, "nested too deeply");
    free(t);
    free(chain);
    char *nots = repeat_str("not ", 5000);
    k = strlen(nots);
    t = w8_xmalloc(k + 16);
    snprintf(t, k + 16, "{{ %s1 }}", nots);
    expect_error("many nots", t, "nested too deeply");
    free(t);
    free(nots);
}

/* ------------------------------------------------------------ chat render */

static void test_chat_render(void) {
    json_t *msgs = json_loads("[{\"role\":\"user\",\"content\":\"hi\"}]", 0, NULL);
    json_t *extra = json_loads("{\"enable_thinking\": false}", 0, NULL);
    const char *t = "{{ bos_token }}{% for m in messages %}{{ m.role }}:{{ m.content }}{{ eos_token }}{% endfor %}"
                    "{% if add_generation_prompt %}A:{% endif %}{{ tools is none }}{{ enable_thinking }}";
    char *r = w8_chat_render(t, msgs, NULL, 1, extra, "<s>", "</s>");
    CHECK(r && !strcmp(r, "<s>user:hi</s>A:TrueFalse"), "w8_chat_render builds the context (%s)", r ? r : w8_lasterr());
    free(r);
    r = w8_chat_render(t, NULL, NULL, 0, NULL, NULL, NULL);
    CHECK(!r, "w8_chat_render refuses missing messages (%s)", w8_lasterr());
    json_decref(msgs);
    json_decref(extra);
}

/* Where a model directory's template comes from: the real directories, and
 * the tokenizer (what serve and run --chat use) agreeing with it. */
static void test_find(void) {
    char dir[512];
    char *t = NULL;
    snprintf(dir, sizeof dir, "%s/realmodels/TinyLlama-1.1B-Chat-v1.0-resaved", shared_dir());
    char *jp = w8_path_join(dir, "chat_template.jinja");
    char *want = w8_read_file(jp, 1 << 20, NULL);
    CHECK(w8_chat_template_find(dir, &t) == 0 && want && t && !strcmp(t, want),
          "TinyLlama re-save: the template is chat_template.jinja's text");
    free(t);
    t = NULL;
    w8_tok *tok = w8_tok_load(dir);
    CHECK(tok && want && w8_tok_chat_template(tok) && !strcmp(w8_tok_chat_template(tok), want),
          "the tokenizer (serve, run --chat) carries the same template");
    w8_tok_free(tok);
    free(want);
    free(jp);
    snprintf(dir, sizeof dir, "%s/realmodels/SmolLM2-360M-Instruct", shared_dir());
    CHECK(w8_chat_template_find(dir, &t) == 0 && t && strstr(t, "<|im_start|>"),
          "SmolLM2: the template from tokenizer_config.json");
    free(t);
    t = (char *)1;
    snprintf(dir, sizeof dir, "%s/models/stories260K-hf-f16", shared_dir());
    CHECK(w8_chat_template_find(dir, &t) == 1 && t == NULL, "stories260K: no template (1, NULL)");
    /* a tokenizer_config.json template is replaced by chat_template.jinja */
    char tmp[] = "/tmp/w8a8-test-ctfind-XXXXXX";
    if (!mkdtemp(tmp)) return;
    char *src = w8_path_join(dir, "tokenizer.json"), *dst = w8_path_join(tmp, "tokenizer.json");
    w8_copy_file(src, dst);
    char *cp = w8_path_join(tmp, "tokenizer_config.json"), *jj = w8_path_join(tmp, "chat_template.jinja");
    FILE *f = fopen(cp, "w");
    fputs("{\"bos_token\": \"<s>\", \"model_max_length\": 1000000000000000019884624838656, "
          "\"chat_template\": \"CONFIG\"}", f);
    fclose(f);
    tok = w8_tok_load(tmp);
    CHECK(tok && w8_tok_chat_template(tok) && !strcmp(w8_tok_chat_template(tok), "CONFIG") &&
              w8_tok_bos_id(tok) == 1,
          "tokenizer_config.json with a too-big model_max_length: template and BOS read");
    w8_tok_free(tok);
    f = fopen(jj, "w");
    fputs("JINJA", f);
    fclose(f);
    tok = w8_tok_load(tmp);
    CHECK(tok && w8_tok_chat_template(tok) && !strcmp(w8_tok_chat_template(tok), "JINJA"),
          "chat_template.jinja wins over tokenizer_config.json in the tokenizer too");
    w8_tok_free(tok);
    free(src);
    free(dst);
    free(cp);
    free(jj);
    w8_rm_rf(tmp);
}

/* ------------------------------------------------------------ shared parse */

/* The Qwen3 cases as render arguments (each thread gets its own copies, so
 * only the parsed template is shared). */
typedef struct {
    json_t *msgs, *tools, *extra;
    int agp;
} chat_case;

#define CONC_THREADS 4
#define CONC_ROUNDS 8

typedef struct {
    const w8_chat_tmpl *t;
    chat_case *cases;
    int n, first; /* this thread starts at case `first`, so threads differ */
    const char *eos;
    char **want;
    int bad; /* renders that differed from the serial ones */
} conc_job;

static void *conc_render(void *arg) {
    conc_job *j = arg;
    for (int r = 0; r < CONC_ROUNDS; r++)
        for (int k = 0; k < j->n; k++) {
            int i = (j->first + k) % j->n;
            char *got = w8_chat_tmpl_render(j->t, j->cases[i].msgs, j->cases[i].tools, j->cases[i].agp,
                                            j->cases[i].extra, NULL, j->eos);
            if (!got || !j->want[i] || strcmp(got, j->want[i])) j->bad++;
            free(got);
        }
    return NULL;
}

static void test_shared_parse(void) {
    json_t *cfg;
    char *tmpl = qwen3_template(&cfg);
    CHECK(tmpl != NULL, "shared parse: qwen3 template");
    if (!tmpl) return;
    const char *eos = json_string_value(json_object_get(cfg, "eos_token"));
    char path[512];
    snprintf(path, sizeof path, "%s/testdata/chat/qwen3_chat_template.jsonl", shared_dir());
    char *data = w8_read_file(path, (size_t)64 << 20, NULL);
    CHECK(data != NULL, "read %s", path);
    json_t *all = json_array();
    for (char *line = data ? strtok(data, "\n") : NULL; line; line = strtok(NULL, "\n")) {
        json_t *c = w8_json_load_buf(line, strlen(line), path);
        if (c) json_array_append_new(all, c);
    }
    int n = (int)json_array_size(all);
    w8_chat_tmpl *t = w8_chat_tmpl_parse(tmpl);
    CHECK(t != NULL, "the qwen3 template parses once");
    chat_case *cs[CONC_THREADS];
    char **want = w8_xcalloc((size_t)(n ? n : 1), sizeof *want);
    for (int th = 0; th < CONC_THREADS; th++) {
        cs[th] = w8_xcalloc((size_t)(n ? n : 1), sizeof **cs);
        for (int i = 0; i < n; i++) {
            json_t *in = json_object_get(json_array_get(all, (size_t)i), "input");
            chat_case *c = &cs[th][i];
            c->msgs = json_deep_copy(json_object_get(in, "messages"));
            c->tools = json_deep_copy(json_object_get(in, "tools"));
            c->agp = json_is_true(json_object_get(in, "add_generation_prompt"));
            c->extra = json_deep_copy(in);
            json_object_del(c->extra, "messages");
            json_object_del(c->extra, "tools");
            json_object_del(c->extra, "add_generation_prompt");
        }
    }
    /* serial: the parsed template renders as the text does, twice alike */
    int same = 0;
    for (int i = 0; t && i < n; i++) {
        chat_case *c = &cs[0][i];
        want[i] = w8_chat_tmpl_render(t, c->msgs, c->tools, c->agp, c->extra, NULL, eos);
        char *again = w8_chat_tmpl_render(t, c->msgs, c->tools, c->agp, c->extra, NULL, eos);
        char *text = w8_chat_render(tmpl, c->msgs, c->tools, c->agp, c->extra, NULL, eos);
        same += want[i] && again && text && !strcmp(want[i], again) && !strcmp(want[i], text);
        free(again);
        free(text);
    }
    CHECK(n >= 8 && same == n, "one parse rendered serially = rendering the text (%d of %d)", same, n);
    if (t) {
        pthread_t tid[CONC_THREADS];
        conc_job jobs[CONC_THREADS];
        int started = 0, bad = 0;
        for (int th = 0; th < CONC_THREADS; th++) {
            jobs[th] = (conc_job){t, cs[th], n, th * n / CONC_THREADS, eos, want, 0};
            if (pthread_create(&tid[th], NULL, conc_render, &jobs[th]) == 0) started++;
            else break;
        }
        for (int th = 0; th < started; th++) {
            pthread_join(tid[th], NULL);
            bad += jobs[th].bad;
        }
        CHECK(started == CONC_THREADS && bad == 0,
              "%d threads x %d renders of one parse concurrently = serial (%d differ)",
              started, CONC_ROUNDS * n, bad);
    }
    /* the template still renders after all that (no count went astray) */
    char *after = t && n ? w8_chat_tmpl_render(t, cs[0][0].msgs, cs[0][0].tools, cs[0][0].agp,
                                               cs[0][0].extra, NULL, eos)
                         : NULL;
    CHECK(after && want[0] && !strcmp(after, want[0]), "the shared parse is unchanged after the threads");
    free(after);
    w8_chat_tmpl_free(t);
    for (int i = 0; i < n; i++) free(want[i]);
    free(want);
    for (int th = 0; th < CONC_THREADS; th++) {
        for (int i = 0; i < n; i++) {
            json_decref(cs[th][i].msgs);
            json_decref(cs[th][i].tools);
            json_decref(cs[th][i].extra);
        }
        free(cs[th]);
    }
    json_decref(all);
    free(data);
    free(tmpl);
    json_decref(cfg);
}

int main(void) {
    test_qwen3();
    test_table();
    test_errors();
    test_limits();
    test_chat_render();
    test_find();
    test_shared_parse();
    TEST_DONE();
}
