/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The monitor's description (qmp-schema.json): every command has a handler,
 * arguments are checked with QEMU 7.2's messages (recorded from it), and
 * query-qmp-schema's answer is whole (every type it names is in it).
 */
#include "monitor/qmp-int.h"
#include "monitor/qmp-schema.h"

#include <string.h>

static void test_handlers_match(void)
{
    g_autoptr(GError) err = NULL;
    g_assert_true(qmp_dispatch_check_schema(&err));
    g_assert_no_error(err);
}

/* The error text of checking args (JSON) for command, or NULL when accepted. */
static char *check(const char *command, const char *args)
{
    g_autoptr(JsonParser) p = json_parser_new();
    g_assert_true(json_parser_load_from_data(p, args, -1, NULL));
    g_autoptr(JsonNode) e =
        qmp_schema_check_args(command, json_node_get_object(json_parser_get_root(p)));
    if (!e) {
        return NULL;
    }
    JsonObject *err = json_object_get_object_member(json_node_get_object(e), "error");
    g_assert_cmpstr(json_object_get_string_member(err, "class"), ==, "GenericError");
    return g_strdup(json_object_get_string_member(err, "desc"));
}

static void test_argument_errors(void)
{
    /* As QEMU 7.2 answers each (tests/qmp/probe_test.py --reference shows them). */
    static const struct {
        const char *command, *args, *desc;
    } cases[] = {
        {"migrate-set-capabilities",
         "{\"capabilities\": [{\"capability\": \"bogus\", \"state\": true}]}",
         "Parameter 'capability' does not accept value 'bogus'"},
        {"migrate-set-capabilities",
         "{\"capabilities\": [{\"capability\": \"events\", \"state\": \"yes\"}]}",
         "Invalid parameter type for 'capabilities[0].state', expected: boolean"},
        {"migrate-set-capabilities", "{\"capabilities\": [{\"capability\": \"events\"}]}",
         "Parameter 'capabilities[0].state' is missing"},
        {"migrate-set-capabilities",
         "{\"capabilities\": [{\"capability\": \"events\", \"state\": true, \"x\": 1}]}",
         "Parameter 'capabilities[0].x' is unexpected"},
        {"migrate-set-capabilities", "{\"capabilities\": [5]}",
         "Invalid parameter type for 'capabilities[0]', expected: object"},
        {"migrate-set-capabilities", "{\"capabilities\": {}}",
         "Invalid parameter type for 'capabilities', expected: array"},
        {"migrate-set-capabilities", "{}", "Parameter 'capabilities' is missing"},
        {"qmp_capabilities", "{\"enable\": [\"bogus\"]}",
         "Parameter 'null' does not accept value 'bogus'"},
        {"qom-list-types", "{\"implements\": 5}",
         "Invalid parameter type for 'implements', expected: string"},
        {"human-monitor-command", "{\"command-line\": \"info version\", \"cpu-index\": \"x\"}",
         "Invalid parameter type for 'cpu-index', expected: integer"},
        {"migrate-set-parameters", "{\"downtime-limit\": 1.5}",
         "Parameter 'downtime-limit' expects uint64"},
        {"migrate-set-parameters", "{\"max-bandwidth\": \"1\"}",
         "Parameter 'max-bandwidth' expects size"},
        {"migrate", "{\"uri\": \"x\", \"blk\": null}",
         "Invalid parameter type for 'blk', expected: boolean"},
        {"stop", "{\"x\": 1}", "Parameter 'x' is unexpected"},
        {"query-stats", "{}", "Parameter 'target' is missing"},
        {"query-stats", "{\"target\": \"bogus\"}",
         "Parameter 'target' does not accept value 'bogus'"},
        {"query-stats",
         "{\"target\": \"vm\", \"providers\": [{\"provider\": \"kvm\", "
         "\"names\": [1]}]}",
         "Invalid parameter type for 'providers[0].names[0]', expected: string"},
        {"query-blockstats", "{\"query-nodes\": 1}",
         "Invalid parameter type for 'query-nodes', expected: boolean"},
        /* a missing member is reported before an unexpected one */
        {"getfd", "{\"x\": 1}", "Parameter 'fdname' is missing"},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *got = check(cases[i].command, cases[i].args);
        g_assert_cmpstr(got, ==, cases[i].desc);
    }
    static const struct {
        const char *command, *args;
    } fine[] = {
        {"migrate-set-capabilities",
         "{\"capabilities\": [{\"capability\": \"events\", \"state\": true}]}"},
        {"migrate-set-parameters", "{\"downtime-limit\": -1, \"max-bandwidth\": 5}"},
        {"qom-list-types", "{}"},
        {"qmp_capabilities", "{\"enable\": [\"oob\"]}"},
        {"migrate", "{\"uri\": \"x\", \"blk\": false}"},
        {"query-stats", "{\"target\": \"vcpu\", \"providers\": [{\"provider\": \"kvm\"}]}"},
        {"migrate-set-capabilities",
         "{\"capabilities\": [{\"capability\": \"return-path\", \"state\": true}]}"},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(fine); i++) {
        g_autofree char *got = check(fine[i].command, fine[i].args);
        g_assert_null(got);
    }
}

static void test_introspection_whole(void)
{
    g_autoptr(JsonNode) n = qmp_schema_introspect();
    JsonArray *a = json_node_get_array(n);
    g_autoptr(GHashTable) names = g_hash_table_new(g_str_hash, g_str_equal);
    for (guint i = 0; i < json_array_get_length(a); i++) {
        const char *name =
            json_object_get_string_member(json_array_get_object_element(a, i), "name");
        g_assert_true(g_hash_table_add(names, (gpointer)name)); /* no name twice */
    }
    unsigned commands = 0, alternates = 0;
    for (guint i = 0; i < json_array_get_length(a); i++) {
        JsonObject *e = json_array_get_object_element(a, i);
        const char *meta = json_object_get_string_member(e, "meta-type");
        static const char *const refs[] = {"arg-type", "ret-type", "element-type"};
        for (size_t r = 0; r < G_N_ELEMENTS(refs); r++) {
            if (json_object_has_member(e, refs[r])) {
                g_assert_true(
                    g_hash_table_contains(names, json_object_get_string_member(e, refs[r])));
            }
        }
        if (strcmp(meta, "alternate") == 0) {
            alternates++;
        }
        if (json_object_has_member(e, "members") &&
            (strcmp(meta, "object") == 0 || strcmp(meta, "alternate") == 0)) {
            JsonArray *m = json_object_get_array_member(e, "members");
            for (guint j = 0; j < json_array_get_length(m); j++) {
                const char *t =
                    json_object_get_string_member(json_array_get_object_element(m, j), "type");
                g_assert_true(g_hash_table_contains(names, t));
            }
        }
        if (strcmp(meta, "command") == 0) {
            g_assert_true(qmp_schema_has_command(json_object_get_string_member(e, "name")));
            commands++;
        }
    }
    g_autoptr(GList) all = qmp_schema_commands();
    g_assert_cmpuint(commands, ==, g_list_length(all));
    /* QEMU's shapes: "0" is the empty object; an enum lists its values twice. */
    g_assert_true(g_hash_table_contains(names, "0"));
    g_assert_cmpuint(alternates, ==, 1); /* StatsValue */
    g_assert_true(g_hash_table_contains(names, "str"));
}

static void test_qom_types(void)
{
    g_assert_true(qmp_schema_qom_is_a("virtio-blk-pci", "device"));
    g_assert_true(qmp_schema_qom_is_a("virtio-blk-pci", "virtio-blk-pci"));
    g_assert_false(qmp_schema_qom_is_a("rng-random", "device"));
    g_assert_false(qmp_schema_qom_is_a("nosuch", "object"));
    g_assert_nonnull(qmp_schema_qom_type("none-machine"));
    g_assert_null(qmp_schema_qom_type("memory-backend-file"));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qmp-schema/handlers", test_handlers_match);
    g_test_add_func("/qmp-schema/argument-errors", test_argument_errors);
    g_test_add_func("/qmp-schema/introspection", test_introspection_whole);
    g_test_add_func("/qmp-schema/qom-types", test_qom_types);
    return g_test_run();
}
