/* SPDX-License-Identifier: GPL-2.0-or-later */
/* QMP input framing: where one JSON text ends in a byte stream. */
#include "monitor/qmp.h"

#include <string.h>

typedef struct {
    GPtrArray *texts;
    unsigned too_big;
} Collected;

static void collect(void *opaque, const char *text, size_t len, bool too_big)
{
    Collected *c = opaque;
    if (too_big) {
        c->too_big++;
        return;
    }
    g_ptr_array_add(c->texts, g_strndup(text, len));
}

static Collected *feed_all(const char *const *chunks)
{
    Collected *c = g_new0(Collected, 1);
    c->texts = g_ptr_array_new_with_free_func(g_free);
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
    g_free(c);
}

#define TEXT(c, i) ((const char *)g_ptr_array_index((c)->texts, (i)))

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
    /* Braces and quotes inside strings (double- and single-quoted) do not count. */
    const char *in[] = {"{\"a\": \"}{\\\"\", 'b': '}\\''}", "{\"z\": 1}", NULL};
    Collected *c = feed_all(in);
    g_assert_cmpuint(c->texts->len, ==, 2);
    g_assert_cmpstr(TEXT(c, 0), ==, "{\"a\": \"}{\\\"\", 'b': '}\\''}");
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
    /* 1025 levels: reported as too big once the text closes, then framing goes on. */
    GString *deep = g_string_new(NULL);
    for (int i = 0; i < 1025; i++) {
        g_string_append_c(deep, '[');
    }
    for (int i = 0; i < 1025; i++) {
        g_string_append_c(deep, ']');
    }
    g_string_append(deep, "{\"ok\": 1}");
    const char *in[] = {deep->str, NULL};
    Collected *c = feed_all(in);
    g_assert_cmpuint(c->too_big, ==, 1);
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
    g_test_add_func("/qmp/listen/errors", test_listen_errors);
    return g_test_run();
}
