/* bg-transfer-json.c: the JSON lines of bg-transfer --json, built with json-glib
 *
 * Every command builds its lines with these helpers, so that a member has the same name and
 * the same type in every event.  Printing them, or not, is bt_output_json()'s business.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include "bg-transfer-json.h"
#include "bg-transfer-output.h"

const char *
bt_enum_nick (GType enum_type,
              int   value)
{
  g_autoptr(GEnumClass) klass = g_type_class_ref (enum_type);
  GEnumValue *enum_value = g_enum_get_value (klass, value);

  /* The class of a static enum type is never freed, so the nick outlives it. */
  return enum_value ? enum_value->value_nick : "unknown";
}

JsonBuilder *
bt_json_begin (const char *event)
{
  JsonBuilder *builder = json_builder_new ();

  json_builder_begin_object (builder);
  bt_json_add_string (builder, "event", event);

  return builder;
}

char *
bt_json_end (JsonBuilder *builder)
{
  g_autoptr(JsonGenerator) generator = json_generator_new ();
  g_autoptr(JsonNode) root = NULL;

  json_builder_end_object (builder);
  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);

  return json_generator_to_data (generator, NULL);
}

void
bt_json_add_string (JsonBuilder *builder,
                    const char  *name,
                    const char  *value)
{
  json_builder_set_member_name (builder, name);
  if (value != NULL)
    json_builder_add_string_value (builder, value);
  else
    json_builder_add_null_value (builder);
}

void
bt_json_add_optional_string (JsonBuilder *builder,
                             const char  *name,
                             const char  *value)
{
  if (value != NULL)
    bt_json_add_string (builder, name, value);
}

void
bt_json_add_int (JsonBuilder *builder,
                 const char  *name,
                 gint64       value)
{
  json_builder_set_member_name (builder, name);
  json_builder_add_int_value (builder, value);
}

void
bt_json_add_boolean (JsonBuilder *builder,
                     const char  *name,
                     gboolean     value)
{
  json_builder_set_member_name (builder, name);
  json_builder_add_boolean_value (builder, value);
}

void
bt_json_add_enum (JsonBuilder *builder,
                  const char  *name,
                  GType        enum_type,
                  int          value)
{
  bt_json_add_string (builder, name, bt_enum_nick (enum_type, value));
}

void
bt_json_add_error (JsonBuilder  *builder,
                   const GError *error)
{
  if (error == NULL)
    return;

  json_builder_set_member_name (builder, "error");
  json_builder_begin_object (builder);
  bt_json_add_optional_string (builder, "domain", g_quark_to_string (error->domain));
  bt_json_add_int (builder, "code", error->code);
  bt_json_add_optional_string (builder, "message", error->message);
  json_builder_end_object (builder);
}

void
bt_json_add_task (JsonBuilder *builder,
                  BgTask      *task)
{
  GFile *file = bg_task_get_file (task);
  g_autofree char *path = file ? g_file_get_path (file) : NULL;
  g_autofree char *uri = bt_uri_for_display (bg_task_get_uri (task));
  g_autoptr(GDateTime) next = bg_task_dup_next_attempt_at (task);

  bt_json_add_string (builder, "identifier", bg_task_get_identifier (task));
  bt_json_add_enum (builder, "operation", BG_TYPE_TASK_KIND, bg_task_get_kind (task));
  bt_json_add_enum (builder, "state", BG_TYPE_TASK_STATE, bg_task_get_state (task));
  bt_json_add_string (builder, "uri", uri);
  bt_json_add_string (builder, "file", path);
  bt_json_add_int (builder, "bytes", bg_task_get_bytes_transferred (task));
  bt_json_add_int (builder, "total", bg_task_get_bytes_total (task));
  bt_json_add_int (builder, "attempts", bg_task_get_attempts (task));
  if (bg_task_get_wait_reason (task) != BG_WAIT_REASON_NONE)
    bt_json_add_enum (builder, "wait_reason", BG_TYPE_WAIT_REASON, bg_task_get_wait_reason (task));
  bt_json_add_boolean (builder, "paused", bg_task_get_paused (task));
  bt_json_add_int (builder, "max_bandwidth", (gint64) bg_task_get_max_bandwidth (task));
  bt_json_add_int (builder, "bytes_per_second", (gint64) bg_task_get_bytes_per_second (task));
  bt_json_add_int (builder, "eta", bg_task_get_eta (task));
  if (next != NULL)
    {
      g_autoptr(GDateTime) now = g_date_time_new_now_utc ();

      bt_json_add_int (builder, "next_attempt_in",
                       MAX (0, g_date_time_difference (next, now) / G_USEC_PER_SEC));
    }
}
