/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "util/opts.h"

static void test_size(void)
{
    uint64_t v;
    g_assert_true(parse_size("512", 1 << 20, &v));
    g_assert_cmpuint(v, ==, 512ULL << 20);
    g_assert_true(parse_size("2G", 1 << 20, &v));
    g_assert_cmpuint(v, ==, 2ULL << 30);
    g_assert_true(parse_size("64k", 1, &v));
    g_assert_cmpuint(v, ==, 65536);
    g_assert_false(parse_size("12x", 1, &v));
    g_assert_false(parse_size("", 1, &v));
    g_assert_false(parse_size("-1", 1, &v));
    g_assert_false(parse_size("1MM", 1, &v));
    g_assert_false(parse_size("99999999999999999999", 1, &v));
    g_assert_false(parse_size("17179869184T", 1, &v)); /* overflows 64 bits */
}

static void test_keyvals(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(Opts) o = opts_parse("isa-debug-exit,iobase=0xf4,iosize=4,name=a,,b", "driver", &err);
    g_assert_no_error(err);
    g_assert_cmpstr(opts_get(o, "driver"), ==, "isa-debug-exit");
    g_assert_cmpstr(opts_get(o, "name"), ==, "a,b");
    uint64_t v;
    g_assert_true(opts_get_u64(o, "iobase", 0, &v, NULL));
    g_assert_cmphex(v, ==, 0xf4);
    g_assert_true(opts_check_unused(o, &err) == false);
    g_assert_nonnull(g_strrstr(err->message, "iosize"));
}

static void test_bool(void)
{
    g_autoptr(Opts) o = opts_parse("path,server=on,wait=off,x=maybe", "path", NULL);
    bool b;
    g_assert_true(opts_get_bool(o, "server", false, &b, NULL) && b);
    g_assert_true(opts_get_bool(o, "wait", true, &b, NULL) && !b);
    g_assert_true(opts_get_bool(o, "absent", true, &b, NULL) && b);
    g_autoptr(GError) err = NULL;
    g_assert_false(opts_get_bool(o, "x", false, &b, &err));
}

static void test_repeated(void)
{
    g_autoptr(Opts) o =
        opts_parse("user,hostfwd=tcp::1-:2,id=n,hostfwd=udp::3-:4,,x", "type", NULL);
    g_autoptr(GPtrArray) all = opts_get_all(o, "hostfwd");
    g_assert_cmpuint(all->len, ==, 2);
    g_assert_cmpstr(g_ptr_array_index(all, 0), ==, "tcp::1-:2");
    g_assert_cmpstr(g_ptr_array_index(all, 1), ==, "udp::3-:4,x");
    g_autoptr(GPtrArray) none = opts_get_all(o, "absent");
    g_assert_cmpuint(none->len, ==, 0);
    /* Both hostfwd values count as used; "type" and "id" were not asked for. */
    g_autoptr(GError) err = NULL;
    g_assert_cmpstr(opts_get(o, "type"), ==, "user");
    g_assert_false(opts_check_unused(o, &err));
    g_assert_nonnull(g_strrstr(err->message, "'id'"));
    g_clear_error(&err);
    g_assert_cmpstr(opts_get(o, "id"), ==, "n");
    g_assert_true(opts_check_unused(o, &err));
    g_assert_no_error(err);
}

/* QEMU's JSON form: nested objects as dotted keys, booleans on/off, numbers in decimal. */
static void test_json(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(Opts) o = opts_parse("{\"node-name\": \"f\", \"read-only\": false, \"n\": -3, "
                                   "\"file\": {\"driver\": \"file\", \"x\": {\"y\": true}}}",
                                   "driver", &err);
    g_assert_no_error(err);
    g_assert_cmpstr(opts_get(o, "node-name"), ==, "f");
    g_assert_cmpstr(opts_get(o, "read-only"), ==, "off");
    g_assert_cmpstr(opts_get(o, "n"), ==, "-3");
    g_assert_cmpstr(opts_get(o, "file.driver"), ==, "file");
    g_assert_cmpstr(opts_get(o, "file.x.y"), ==, "on");
    g_assert_true(opts_check_unused(o, NULL));
    static const char *const bad[] = {"{\"a\": [1]}", "{\"a\": 1.5}", "{\"a\": null}", "{",
                                      "{\"a\": 1} x"};
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GError) e = NULL;
        g_autoptr(Opts) b = opts_parse(bad[i], NULL, &e);
        g_assert_null(b);
        g_assert_nonnull(e);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/opts/size", test_size);
    g_test_add_func("/opts/keyvals", test_keyvals);
    g_test_add_func("/opts/bool", test_bool);
    g_test_add_func("/opts/json", test_json);
    g_test_add_func("/opts/repeated", test_repeated);
    return g_test_run();
}
