/* SPDX-License-Identifier: GPL-2.0-or-later */
/* QMP input framing: where one JSON text ends in a byte stream. */
#include "monitor/qmp.h"

#include <json-glib/json-glib.h>
#include <string.h>

typedef struct {
    GPtrArray *texts;    /* the texts handed on */
    GPtrArray *refusals; /* the messages of the texts refused */
} Collected;

static void collect(void *opaque, const char *text, size_t len, const char *refusal)
{
    Collected *c = opaque;
    if (refusal) {
        g_ptr_array_add(c->refusals, g_strdup(refusal));
        return;
    }
    g_ptr_array_add(c->texts, g_strndup(text, len));
}

static Collected *feed_all(const char *const *chunks)
{
    Collected *c = g_new0(Collected, 1);
    c->texts = g_ptr_array_new_with_free_func(g_free);
    c->refusals = g_ptr_array_new_with_free_func(g_free);
    QmpFramer *f = qmp_framer_new();
    for (const char *const *ch = chunks; *ch; ch++) {
        qmp_framer_feed(f, *ch, strlen(*ch), collect, c);
    }
    qmp_framer_free(f);
    return c;
}

static void collected_free(Collected *c)
{
    g_ptr_array_unref(c->texts);
    g_ptr_array_unref(c->refusals);
    g_free(c);
}

#define TEXT(c, i)    ((const char *)g_ptr_array_index((c)->texts, (i)))
#define REFUSAL(c, i) ((const char *)g_ptr_array_index((c)->refusals, (i)))

static void test_two_in_one_write(void)
{
    const char *in[] = {"{\"execute\": \"a\"}{\"execute\": \"b\"}\r\n [1, 2]", NULL};
    Collected *c = feed_all(in);
    g_assert_cmpuint(c->texts->len, ==, 3);
    g_assert_cmpstr(TEXT(c, 0), ==, "{\"execute\": \"a\"}");
    g_assert_cmpstr(TEXT(c, 1), ==, "{\"execute\": \"b\"}");
    g_assert_cmpstr(TEXT(c, 2), ==, "[1, 2]");
    collected_free(c);
}

static void test_split_across_writes(void)
{
    const char *in[] = {"{\"exe", "cute\": {\"x\": [", "1]}", "}", NULL};
    Collected *c = feed_all(in);
    g_assert_cmpuint(c->texts->len, ==, 1);
    g_assert_cmpstr(TEXT(c, 0), ==, "{\"execute\": {\"x\": [1]}}");
    collected_free(c);
}

static void test_strings(void)
{
    /*
     * Braces and quotes inside strings (double- and single-quoted) do not
     * count; '...' is handed on as "..." with QEMU's escapes kept.
     */
    const char *in[] = {"{\"a\": \"}{\\\"\\u00e9\", 'b': '}\\'\"\\n'}", "'top'", NULL};
    Collected *c = feed_all(in);
    g_assert_cmpuint(c->texts->len, ==, 2);
    g_assert_cmpstr(TEXT(c, 0), ==, "{\"a\": \"}{\\\"\\u00e9\", \"b\": \"}'\\\"\\n\"}");
    g_assert_cmpstr(TEXT(c, 1), ==, "\"top\"");
    g_assert_cmpuint(c->refusals->len, ==, 0);
    collected_free(c);
}

/* The deepest nesting in a JSON value. */
static unsigned node_depth(JsonNode *n)
{
    unsigned deepest = 0;
    if (JSON_NODE_HOLDS_ARRAY(n)) {
        JsonArray *a = json_node_get_array(n);
        for (guint i = 0; i < json_array_get_length(a); i++) {
            deepest = MAX(deepest, node_depth(json_array_get_element(a, i)));
        }
        return deepest + 1;
    }
    if (JSON_NODE_HOLDS_OBJECT(n)) {
        GList *members = json_object_get_values(json_node_get_object(n));
        for (GList *m = members; m; m = m->next) {
            deepest = MAX(deepest, node_depth(m->data));
        }
        g_list_free(members);
        return deepest + 1;
    }
    return 0;
}

/*
 * Texts json-glib reads differently from QEMU's lexer ('/' comments, '...'
 * without escapes, \u escapes that swallow the closing quote): whatever the
 * framer hands on, json-glib must not nest deeper than the limit (1,100
 * levels here: enough to show a bypass, too few to overflow the stack).
 */
static void test_parser_agrees(void)
{
    static const struct {
        const char *head, *tail, *refusal;
    } cases[] = {
        {"[/*\"*/", "\"]", "JSON parse error, stray '/'"},
        {"[//\"/ ", "\"]", "JSON parse error, stray '/'"},
        {"['\\',", "']", NULL},
        {"[\"\\u1\"\", ", "\"]", "JSON parse error, invalid hex escape sequence in string"},
        {"[\"\\ud800\"\", ", "\"]", "JSON parse error, invalid escape sequence in string"},
        {"[\"\\udc00\\u0041\"\", ", "\"]", "JSON parse error, invalid escape sequence in string"},
        {"[\"\\ud800\\u0041\"\", ", "\"]", "JSON parse error, invalid escape sequence in string"},
        {"[\"\\x\"\", ", "\"]", "JSON parse error, invalid escape sequence in string"},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        GString *in = g_string_new(cases[i].head);
        for (int d = 0; d < 1100; d++) {
            g_string_append_c(in, '[');
        }
        for (int d = 0; d < 1100; d++) {
            g_string_append_c(in, ']');
        }
        g_string_append(in, cases[i].tail);
        g_string_append(in, "{\"ok\": 1}");
        const char *chunks[] = {in->str, NULL};
        Collected *c = feed_all(chunks);
        for (guint t = 0; t < c->texts->len; t++) {
            g_autoptr(JsonParser) p = json_parser_new();
            if (json_parser_load_from_data(p, TEXT(c, t), -1, NULL)) {
                g_assert_cmpuint(node_depth(json_parser_get_root(p)), <=, 1024);
            }
        }
        if (cases[i].refusal) {
            g_assert_cmpuint(c->refusals->len, ==, 1);
            g_assert_cmpstr(REFUSAL(c, 0), ==, cases[i].refusal);
        } else {
            g_assert_cmpuint(c->refusals->len, ==, 0);
        }
        /* Framing goes on after the text: the next one is whole. */
        g_assert_cmpuint(c->texts->len, >, 0);
        g_assert_cmpstr(TEXT(c, c->texts->len - 1), ==, "{\"ok\": 1}");
        collected_free(c);
        g_string_free(in, TRUE);
    }
}

/* A surrogate pair is fine, and so is every escape QEMU's lexer takes. */
static void test_escapes(void)
{
    const char *in[] = {"[\"\\ud83d\\ude00 \\b\\f\\n\\r\\t\\/\\\\\\\"\\'\"]", NULL};
    Collected *c = feed_all(in);
    g_assert_cmpuint(c->refusals->len, ==, 0);
    g_assert_cmpuint(c->texts->len, ==, 1);
    g_assert_cmpstr(TEXT(c, 0), ==, "[\"\\ud83d\\ude00 \\b\\f\\n\\r\\t\\/\\\\\\\"'\"]");
    collected_free(c);
}

static void test_scalars(void)
{
    /* A bare top-level token is a text of its own (the server then says it is not an object). */
    const char *in[] = {"42 true{\"a\":1}", NULL};
    Collected *c = feed_all(in);
    g_assert_cmpuint(c->texts->len, ==, 3);
    g_assert_cmpstr(TEXT(c, 0), ==, "42");
    g_assert_cmpstr(TEXT(c, 1), ==, "true");
    g_assert_cmpstr(TEXT(c, 2), ==, "{\"a\":1}");
    collected_free(c);
}

static void test_depth_limit(void)
{
    /*
     * 1025 levels: refused as soon as the limit is passed, the rest of the
     * text skipped (one error), then framing goes on.
     */
    GString *deep = g_string_new(NULL);
    for (int i = 0; i < 1025; i++) {
        g_string_append_c(deep, '[');
    }
    const char *open[] = {deep->str, NULL};
    Collected *c = feed_all(open);
    g_assert_cmpuint(c->refusals->len, ==, 1);
    g_assert_cmpstr(REFUSAL(c, 0), ==, "JSON nesting depth limit exceeded");
    collected_free(c);
    for (int i = 0; i < 1025; i++) {
        g_string_append_c(deep, ']');
    }
    g_string_append(deep, "{\"ok\": 1}");
    const char *in[] = {deep->str, NULL};
    c = feed_all(in);
    g_assert_cmpuint(c->refusals->len, ==, 1);
    g_assert_cmpuint(c->texts->len, ==, 1);
    g_assert_cmpstr(TEXT(c, 0), ==, "{\"ok\": 1}");
    collected_free(c);
    g_string_free(deep, TRUE);
}

/* Monitor addresses qlite cannot listen on are refused with the reason. */
static void check_listen_error(QmpServer *s, const char *spec, const char *message)
{
    g_autoptr(GError) err = NULL;
    g_assert_false(qmp_server_listen(s, spec, &err));
    g_assert_nonnull(err);
    g_assert_cmpstr(err->message, ==, message);
}

static void test_listen_errors(void)
{
    static const QmpMachineOps ops;
    g_autoptr(GError) err = NULL;
    g_autoptr(QmpServer) s = qmp_server_new(&ops, NULL, &err);
    g_assert_no_error(err);
    check_listen_error(s, "", "'' is not a monitor address (unix:PATH or tcp:HOST:PORT)");
    check_listen_error(s, ",server=on,wait=off",
                       "'' is not a monitor address (unix:PATH or tcp:HOST:PORT)");
    check_listen_error(s, "unix:/x",
                       "only listening monitors are supported: add server=on,wait=off");
    check_listen_error(s, "unix:/x,server=on,wait=off,bogus", "unsupported option 'bogus'");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qmp/framer/two-in-one-write", test_two_in_one_write);
    g_test_add_func("/qmp/framer/split", test_split_across_writes);
    g_test_add_func("/qmp/framer/strings", test_strings);
    g_test_add_func("/qmp/framer/scalars", test_scalars);
    g_test_add_func("/qmp/framer/depth-limit", test_depth_limit);
    g_test_add_func("/qmp/framer/parser-agrees", test_parser_agrees);
    g_test_add_func("/qmp/framer/escapes", test_escapes);
    g_test_add_func("/qmp/listen/errors", test_listen_errors);
    return g_test_run();
}
