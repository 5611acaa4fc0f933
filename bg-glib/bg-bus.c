/* bg-bus.c: what travels between the transfer service and its clients
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <gio/gio.h>
#include <glib/gi18n-lib.h>

#include "bg-bus-private.h"
#include "bg-enums.h"
#include "bg-error.h"
#include "bg-response-private.h"
#include "bg-task-options-private.h"
#include "bg-task-private.h"

void
bg_bus_ensure_error_domain (void)
{
  static gsize registered = 0;

  if (g_once_init_enter (&registered))
    {
      GEnumClass *klass = g_type_class_ref (BG_TYPE_ERROR);

      for (guint i = 0; i < klass->n_values; i++)
        {
          const GEnumValue *value = &klass->values[i];
          /* BG_ERROR_NOT_FOUND becomes org.gnome.BgGlib.Error.NotFound, say. */
          g_auto(GStrv) words = g_strsplit (value->value_nick, "-", -1);
          g_autoptr(GString) name = g_string_new ("org.gnome.BgGlib.Error.");

          for (guint w = 0; words[w] != NULL; w++)
            {
              if (words[w][0] != '\0')
                g_string_append_c (name, g_ascii_toupper (words[w][0]));
              g_string_append (name, words[w][0] != '\0' ? words[w] + 1 : "");
            }
          g_dbus_error_register_error (BG_ERROR, value->value, name->str);
        }
      g_type_class_unref (klass);
      g_once_init_leave (&registered, 1);
    }
}

const char *
bg_bus_kind_to_string (BgTaskKind kind)
{
  return kind == BG_TASK_KIND_UPLOAD ? "upload" : "download";
}

gboolean
bg_bus_kind_from_string (const char *string,
                         BgTaskKind *kind)
{
  if (g_strcmp0 (string, "download") == 0)
    *kind = BG_TASK_KIND_DOWNLOAD;
  else if (g_strcmp0 (string, "upload") == 0)
    *kind = BG_TASK_KIND_UPLOAD;
  else
    return FALSE;
  return TRUE;
}

char *
bg_bus_name_for_app_id (const char  *app_id,
                        GError     **error)
{
  g_autofree char *name = NULL;

  if (app_id == NULL || !g_application_id_is_valid (app_id))
    {
      g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                   _("“%s” is not a valid application id"), app_id ? app_id : "");
      return NULL;
    }

  name = g_strconcat (app_id, BG_BUS_NAME_SUFFIX, NULL);
  /* An id at the length limit leaves no room for the suffix. */
  if (!g_dbus_is_name (name))
    {
      g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                   _("The application id “%s” is too long for a transfer service"), app_id);
      return NULL;
    }

  return g_steal_pointer (&name);
}

/* --- Headers ------------------------------------------------------------------------------ */

GVariant *
bg_bus_headers_to_variant (SoupMessageHeaders *headers)
{
  GVariantBuilder builder;
  SoupMessageHeadersIter iter;
  const char *name, *value;

  g_variant_builder_init (&builder, G_VARIANT_TYPE ("a(ss)"));
  if (headers != NULL)
    {
      soup_message_headers_iter_init (&iter, headers);
      while (soup_message_headers_iter_next (&iter, &name, &value))
        g_variant_builder_add (&builder, "(ss)", name, value);
    }
  return g_variant_builder_end (&builder);
}

void
bg_bus_headers_from_variant (GVariant           *variant,
                             SoupMessageHeaders *headers)
{
  GVariantIter iter;
  const char *name, *value;

  g_return_if_fail (g_variant_is_of_type (variant, G_VARIANT_TYPE ("a(ss)")));

  g_variant_iter_init (&iter, variant);
  while (g_variant_iter_next (&iter, "(&s&s)", &name, &value))
    soup_message_headers_append (headers, name, value);
}

/* --- Options ------------------------------------------------------------------------------ */

GVariant *
bg_bus_options_to_variant (BgTaskOptions *options)
{
  GVariantBuilder builder;
  GDateTime *earliest_start;
  const char *sha256;

  g_variant_builder_init (&builder, G_VARIANT_TYPE_VARDICT);
  if (options == NULL)
    return g_variant_builder_end (&builder);

  g_variant_builder_add (&builder, "{sv}", "allow-metered",
                         g_variant_new_boolean (bg_task_options_get_allow_metered (options)));
  g_variant_builder_add (&builder, "{sv}", "discretionary",
                         g_variant_new_boolean (bg_task_options_get_discretionary (options)));
  g_variant_builder_add (&builder, "{sv}", "priority",
                         g_variant_new_int32 (bg_task_options_get_priority (options)));
  earliest_start = bg_task_options_get_earliest_start (options);
  if (earliest_start != NULL)
    g_variant_builder_add (&builder, "{sv}", "earliest-start",
                           g_variant_new_int64 (g_date_time_to_unix (earliest_start) * G_USEC_PER_SEC));
  sha256 = bg_task_options_get_expected_sha256 (options);
  if (sha256 != NULL)
    g_variant_builder_add (&builder, "{sv}", "expected-sha256", g_variant_new_string (sha256));
  g_variant_builder_add (&builder, "{sv}", "keep-credentials",
                         g_variant_new_boolean (bg_task_options_get_keep_credentials (options)));
  g_variant_builder_add (&builder, "{sv}", "upload-protocol",
                         g_variant_new_uint32 (bg_task_options_get_upload_protocol (options)));
  g_variant_builder_add (&builder, "{sv}", "allow-tus",
                         g_variant_new_boolean (bg_task_options_get_allow_tus (options)));
  g_variant_builder_add (&builder, "{sv}", "chunk-size",
                         g_variant_new_int64 (bg_task_options_get_chunk_size (options)));
  if (bg_task_options_get_max_bandwidth (options) != 0)
    g_variant_builder_add (&builder, "{sv}", "max-bandwidth",
                           g_variant_new_uint64 (bg_task_options_get_max_bandwidth (options)));
  return g_variant_builder_end (&builder);
}

static gboolean
lookup_typed (GVariant           *dict,
              const char         *key,
              const GVariantType *type,
              GVariant          **value,
              GError            **error)
{
  g_autoptr(GVariant) found = g_variant_lookup_value (dict, key, NULL);

  *value = NULL;
  if (found == NULL)
    return TRUE;
  if (!g_variant_is_of_type (found, type))
    {
      g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                   _("The option “%s” should be of type “%s”"), key,
                   g_variant_type_peek_string (type));
      return FALSE;
    }
  *value = g_steal_pointer (&found);
  return TRUE;
}

BgTaskOptions *
bg_bus_options_from_variant (GVariant  *variant,
                             GError   **error)
{
  g_autoptr(BgTaskOptions) options = bg_task_options_new ();
  g_autoptr(GVariant) value = NULL;

  g_return_val_if_fail (g_variant_is_of_type (variant, G_VARIANT_TYPE_VARDICT), NULL);

#define TAKE(key, type) \
  g_clear_pointer (&value, g_variant_unref); \
  if (!lookup_typed (variant, key, type, &value, error)) \
    return NULL; \
  if (value != NULL)

  TAKE ("allow-metered", G_VARIANT_TYPE_BOOLEAN)
    bg_task_options_set_allow_metered (options, g_variant_get_boolean (value));
  TAKE ("discretionary", G_VARIANT_TYPE_BOOLEAN)
    bg_task_options_set_discretionary (options, g_variant_get_boolean (value));
  TAKE ("keep-credentials", G_VARIANT_TYPE_BOOLEAN)
    bg_task_options_set_keep_credentials (options, g_variant_get_boolean (value));
  TAKE ("priority", G_VARIANT_TYPE_INT32)
    bg_task_options_set_priority (options, g_variant_get_int32 (value));
  TAKE ("earliest-start", G_VARIANT_TYPE_INT64)
    {
      gint64 usec = g_variant_get_int64 (value);

      if (usec != 0)
        {
          g_autoptr(GDateTime) when = g_date_time_new_from_unix_utc (usec / G_USEC_PER_SEC);

          if (when == NULL)
            {
              g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                           _("The earliest start is out of range"));
              return NULL;
            }
          bg_task_options_set_earliest_start (options, when);
        }
    }
  TAKE ("expected-sha256", G_VARIANT_TYPE_STRING)
    {
      const char *sha256 = g_variant_get_string (value, NULL);

      if (!bg_sha256_is_valid (sha256))
        {
          g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                       _("The expected SHA-256 “%s” is not 64 hexadecimal digits"), sha256);
          return NULL;
        }
      bg_task_options_set_expected_sha256 (options, sha256);
    }
  TAKE ("upload-protocol", G_VARIANT_TYPE_UINT32)
    {
      guint32 protocol = g_variant_get_uint32 (value);

      if (protocol > BG_UPLOAD_PROTOCOL_IETF)
        {
          g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                       _("The upload protocol %u is not one this version knows"), protocol);
          return NULL;
        }
      bg_task_options_set_upload_protocol (options, protocol);
    }
  TAKE ("allow-tus", G_VARIANT_TYPE_BOOLEAN)
    bg_task_options_set_allow_tus (options, g_variant_get_boolean (value));
  TAKE ("chunk-size", G_VARIANT_TYPE_INT64)
    {
      gint64 chunk_size = g_variant_get_int64 (value);

      if (chunk_size < 0)
        {
          g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                       _("The chunk size %" G_GINT64_FORMAT " is negative"), chunk_size);
          return NULL;
        }
      bg_task_options_set_chunk_size (options, chunk_size);
    }
  TAKE ("max-bandwidth", G_VARIANT_TYPE_UINT64)
    {
      guint64 rate = g_variant_get_uint64 (value);

      if (rate > G_MAXINT64)
        {
          g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                       _("The bandwidth cap %" G_GUINT64_FORMAT " bytes per second is out of "
                         "range"), rate);
          return NULL;
        }
      bg_task_options_set_max_bandwidth (options, rate);
    }
#undef TAKE

  return g_steal_pointer (&options);
}

/* --- Responses ---------------------------------------------------------------------------- */

GVariant *
bg_bus_response_to_variant (BgResponse *response)
{
  GVariantBuilder builder;
  const GError *error = bg_response_get_error (response);
  GBytes *body = bg_response_get_body (response);

  g_variant_builder_init (&builder, G_VARIANT_TYPE_VARDICT);
  g_variant_builder_add (&builder, "{sv}", "kind",
                         g_variant_new_uint32 (bg_response_get_kind (response)));
  g_variant_builder_add (&builder, "{sv}", "status",
                         g_variant_new_uint32 (bg_response_get_status (response)));
  if (bg_response_get_reason (response) != NULL)
    g_variant_builder_add (&builder, "{sv}", "reason",
                           g_variant_new_string (bg_response_get_reason (response)));
  if (bg_response_get_headers (response) != NULL)
    g_variant_builder_add (&builder, "{sv}", "headers",
                           bg_bus_headers_to_variant (bg_response_get_headers (response)));
  if (body != NULL)
    g_variant_builder_add (&builder, "{sv}", "body",
                           g_variant_new_from_bytes (G_VARIANT_TYPE_BYTESTRING, body, TRUE));
  if (error != NULL)
    {
      g_variant_builder_add (&builder, "{sv}", "error-domain",
                             g_variant_new_string (g_quark_to_string (error->domain)));
      g_variant_builder_add (&builder, "{sv}", "error-code", g_variant_new_int32 (error->code));
      g_variant_builder_add (&builder, "{sv}", "error-message",
                             g_variant_new_string (error->message ? error->message : ""));
    }
  return g_variant_builder_end (&builder);
}

BgResponse *
bg_bus_response_from_variant (GVariant   *variant,
                              const char *identifier,
                              GFile      *file)
{
  g_autoptr(SoupMessageHeaders) headers = NULL;
  g_autoptr(GVariant) headers_v = NULL;
  g_autoptr(GVariant) body_v = NULL;
  g_autoptr(GBytes) body = NULL;
  g_autoptr(GError) error = NULL;
  const char *reason = NULL, *domain = NULL, *message = "";
  guint32 kind = BG_RESPONSE_FAILED, status = 0;
  gint32 code = 0;

  g_variant_lookup (variant, "kind", "u", &kind);
  if (kind > BG_RESPONSE_FAILED)
    kind = BG_RESPONSE_FAILED;
  g_variant_lookup (variant, "status", "u", &status);
  g_variant_lookup (variant, "reason", "&s", &reason);
  headers_v = g_variant_lookup_value (variant, "headers", G_VARIANT_TYPE ("a(ss)"));
  if (headers_v != NULL)
    {
      headers = soup_message_headers_new (SOUP_MESSAGE_HEADERS_RESPONSE);
      bg_bus_headers_from_variant (headers_v, headers);
    }
  body_v = g_variant_lookup_value (variant, "body", G_VARIANT_TYPE_BYTESTRING);
  if (body_v != NULL)
    body = g_variant_get_data_as_bytes (body_v);
  if (g_variant_lookup (variant, "error-domain", "&s", &domain))
    {
      g_variant_lookup (variant, "error-code", "i", &code);
      g_variant_lookup (variant, "error-message", "&s", &message);
      error = g_error_new_literal (g_quark_from_string (domain), code, message);
    }

  return bg_response_new (kind, identifier, status, reason, headers, file, body, error);
}

/* --- Tasks -------------------------------------------------------------------------------- */

GVariant *
bg_bus_task_to_variant (BgTask   *task,
                        gboolean  collected)
{
  GVariantBuilder builder;
  GFile *file = bg_task_get_file (task);
  g_autoptr(GDateTime) next_attempt_at = bg_task_dup_next_attempt_at (task);
  BgResponse *response = bg_task_get_response (task);

  g_variant_builder_init (&builder, G_VARIANT_TYPE_VARDICT);
#define ADD(key, value) g_variant_builder_add (&builder, "{sv}", key, value)
  ADD ("state", g_variant_new_uint32 (bg_task_get_state (task)));
  ADD ("uri", g_variant_new_string (bg_task_get_uri (task) ? bg_task_get_uri (task) : ""));
  if (file != NULL)
    {
      g_autofree char *path = g_file_get_path (file);

      /* A string on the bus must be UTF-8: a task made in process under another name (the
       * same database) is listed without its file rather than not at all. */
      if (path != NULL && g_utf8_validate (path, -1, NULL))
        ADD ("file", g_variant_new_string (path));
    }
  ADD ("bytes-transferred", g_variant_new_int64 (bg_task_get_bytes_transferred (task)));
  ADD ("bytes-total", g_variant_new_int64 (bg_task_get_bytes_total (task)));
  ADD ("attempts", g_variant_new_uint32 (bg_task_get_attempts (task)));
  ADD ("restarts", g_variant_new_uint32 (bg_task_get_restarts (task)));
  ADD ("next-attempt-at",
       g_variant_new_int64 (next_attempt_at
                            ? g_date_time_to_unix (next_attempt_at) * G_USEC_PER_SEC +
                              g_date_time_get_microsecond (next_attempt_at)
                            : 0));
  ADD ("wait-reason", g_variant_new_uint32 (bg_task_get_wait_reason (task)));
  ADD ("paused", g_variant_new_boolean (bg_task_get_paused (task)));
  ADD ("allow-metered", g_variant_new_boolean (bg_task_get_allow_metered (task)));
  ADD ("discretionary", g_variant_new_boolean (bg_task_get_discretionary (task)));
  ADD ("priority", g_variant_new_int32 (bg_task_get_priority (task)));
  ADD ("earliest-start", g_variant_new_int64 (bg_task_get_earliest_start_usec (task)));
  if (bg_task_get_expected_sha256 (task) != NULL)
    ADD ("expected-sha256", g_variant_new_string (bg_task_get_expected_sha256 (task)));
  ADD ("keep-credentials", g_variant_new_boolean (bg_task_get_keep_credentials (task)));
  ADD ("upload-protocol", g_variant_new_uint32 (bg_task_get_upload_protocol (task)));
  ADD ("max-bandwidth", g_variant_new_uint64 (bg_task_get_max_bandwidth (task)));
  if (response != NULL)
    ADD ("response", bg_bus_response_to_variant (response));
  if (collected)
    ADD ("collected", g_variant_new_boolean (TRUE));
#undef ADD
  return g_variant_builder_end (&builder);
}

gboolean
bg_bus_snapshot_dict_flag (GVariantDict *snapshot,
                           const char   *key)
{
  gboolean flag = FALSE;

  g_variant_dict_lookup (snapshot, key, "b", &flag);
  return flag;
}

BgTask *
bg_bus_task_new_from_dict (BgTaskKind    kind,
                           const char   *identifier,
                           GVariantDict *snapshot)
{
  g_autoptr(GFile) file = NULL;
  const char *uri = NULL, *path = NULL, *sha256 = NULL;
  gboolean allow_metered = FALSE, discretionary = FALSE, keep_credentials = FALSE;
  gboolean paused = FALSE;
  gint32 priority = 0;
  gint64 earliest_start = 0;
  guint64 max_bandwidth = 0;
  BgTask *task;

  g_variant_dict_lookup (snapshot, "uri", "&s", &uri);
  if (g_variant_dict_lookup (snapshot, "file", "&s", &path))
    file = g_file_new_for_path (path);

  task = bg_task_new (kind, identifier, uri, file);

  g_variant_dict_lookup (snapshot, "allow-metered", "b", &allow_metered);
  g_variant_dict_lookup (snapshot, "discretionary", "b", &discretionary);
  g_variant_dict_lookup (snapshot, "priority", "i", &priority);
  g_variant_dict_lookup (snapshot, "earliest-start", "x", &earliest_start);
  g_variant_dict_lookup (snapshot, "expected-sha256", "&s", &sha256);
  g_variant_dict_lookup (snapshot, "keep-credentials", "b", &keep_credentials);
  g_variant_dict_lookup (snapshot, "paused", "b", &paused);
  bg_task_init_options (task, allow_metered, discretionary, priority, earliest_start, sha256,
                        keep_credentials);
  bg_task_init_paused (task, paused);
  g_variant_dict_lookup (snapshot, "max-bandwidth", "t", &max_bandwidth);
  bg_task_init_max_bandwidth (task, max_bandwidth);

  bg_bus_task_update_dict (task, snapshot, NULL);
  return task;
}

void
bg_bus_task_update_dict (BgTask       *task,
                         GVariantDict *snapshot,
                         BgResponse  **response_out)
{
  g_autoptr(GVariant) response_v = NULL;
  const char *uri = NULL, *sha256 = NULL;
  guint32 state, attempts, restarts, wait_reason;
  gint64 transferred, total, next_attempt_at, earliest_start;
  gboolean flag;
  gint32 priority;
  guint64 max_bandwidth;

  if (response_out != NULL)
    *response_out = NULL;

  g_object_freeze_notify (G_OBJECT (task));

  if (g_variant_dict_lookup (snapshot, "uri", "&s", &uri) && uri[0] != '\0')
    bg_task_set_uri (task, uri);
  if (g_variant_dict_lookup (snapshot, "upload-protocol", "u", &state) &&
      state <= BG_UPLOAD_PROTOCOL_IETF)
    bg_task_set_upload_protocol (task, state);

  /* Options first: a finished task takes none. */
  if (bg_task_get_state (task) != BG_TASK_STATE_FINISHED)
    {
      if (g_variant_dict_lookup (snapshot, "allow-metered", "b", &flag))
        bg_task_set_allow_metered (task, flag);
      if (g_variant_dict_lookup (snapshot, "discretionary", "b", &flag))
        bg_task_set_discretionary (task, flag);
      if (g_variant_dict_lookup (snapshot, "keep-credentials", "b", &flag))
        bg_task_set_keep_credentials (task, flag);
      if (g_variant_dict_lookup (snapshot, "paused", "b", &flag))
        bg_task_set_paused (task, flag);
      if (g_variant_dict_lookup (snapshot, "priority", "i", &priority))
        bg_task_set_priority (task, priority);
      if (g_variant_dict_lookup (snapshot, "max-bandwidth", "t", &max_bandwidth) &&
          max_bandwidth <= G_MAXINT64)
        bg_task_set_max_bandwidth (task, max_bandwidth);
      if (g_variant_dict_lookup (snapshot, "earliest-start", "x", &earliest_start) &&
          earliest_start != bg_task_get_earliest_start_usec (task))
        {
          g_autoptr(GDateTime) when = earliest_start != 0
            ? g_date_time_new_from_unix_utc (earliest_start / G_USEC_PER_SEC) : NULL;

          bg_task_set_earliest_start (task, when);
        }
      if (bg_task_get_kind (task) == BG_TASK_KIND_DOWNLOAD)
        {
          sha256 = NULL;
          g_variant_dict_lookup (snapshot, "expected-sha256", "&s", &sha256);
          if (g_strcmp0 (sha256, bg_task_get_expected_sha256 (task)) != 0)
            bg_task_set_expected_sha256 (task, sha256);
        }
    }

  if (g_variant_dict_lookup (snapshot, "bytes-transferred", "x", &transferred) &&
      g_variant_dict_lookup (snapshot, "bytes-total", "x", &total))
    bg_task_set_progress (task, transferred, total, FALSE);
  if (g_variant_dict_lookup (snapshot, "attempts", "u", &attempts))
    bg_task_set_attempts (task, attempts);
  if (g_variant_dict_lookup (snapshot, "restarts", "u", &restarts))
    bg_task_set_restarts (task, restarts);
  if (g_variant_dict_lookup (snapshot, "next-attempt-at", "x", &next_attempt_at))
    bg_task_set_next_attempt_at (task, next_attempt_at);
  if (g_variant_dict_lookup (snapshot, "wait-reason", "u", &wait_reason) &&
      wait_reason <= BG_WAIT_REASON_PAUSED)
    bg_task_set_wait_reason (task, wait_reason);

  response_v = g_variant_dict_lookup_value (snapshot, "response", G_VARIANT_TYPE_VARDICT);
  if (response_v != NULL && bg_task_get_response (task) == NULL)
    {
      g_autoptr(BgResponse) response =
        bg_bus_response_from_variant (response_v, bg_task_get_identifier (task),
                                      bg_task_get_file (task));

      bg_task_set_progress (task, bg_task_get_bytes_transferred (task),
                            bg_task_get_bytes_total (task), TRUE);
      bg_task_set_response (task, response);
      if (response_out != NULL)
        *response_out = g_object_ref (response);
    }

  if (g_variant_dict_lookup (snapshot, "state", "u", &state) &&
      state <= BG_TASK_STATE_FINISHED &&
      (state == BG_TASK_STATE_FINISHED) == (bg_task_get_response (task) != NULL))
    bg_task_set_state (task, state);

  g_object_thaw_notify (G_OBJECT (task));
}
