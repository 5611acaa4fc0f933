/* bg-transfer-report.c: how a transfer ended, told to a person or as JSON, and the exit status
 *
 * Every message names the HTTP status with its reason phrase when there was one, and says what
 * to do next.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <glib/gi18n.h>

#include "bg-transfer-tool.h"
#include "bg-transfer-json.h"
#include "bg-transfer-report.h"

/* The longest upload answer that is shown as text. */
#define MAX_SHOWN_BODY 4096

int
bt_exit_for_response_kind (BgResponseKind kind)
{
  switch (kind)
    {
    case BG_RESPONSE_SUCCESS:
      return BT_EXIT_SUCCESS;
    case BG_RESPONSE_REJECTED:
      return BT_EXIT_REJECTED;
    case BG_RESPONSE_RETRY:
      return BT_EXIT_RETRY;
    case BG_RESPONSE_FAILED:
    default:
      return BT_EXIT_FAILED;
    }
}

int
bt_exit_for_error (const GError *error)
{
  /* Another process has the database: trying again later helps. */
  if (g_error_matches (error, BG_ERROR, BG_ERROR_BUSY))
    return BT_EXIT_RETRY;

  return BT_EXIT_FAILED;
}

/* "404 Not Found", or NULL when no answer came back. */
static char *
status_text (BgResponse *response)
{
  guint status = bg_response_get_status (response);
  const char *reason = bg_response_get_reason (response);

  if (status == 0)
    return NULL;
  if (reason == NULL || *reason == '\0')
    reason = soup_status_get_phrase (status);
  if (reason == NULL)
    return g_strdup_printf ("%u", status);

  return g_strdup_printf ("%u %s", status, reason);
}

static char *
file_display_name (GFile *file)
{
  return file ? g_file_get_parse_name (file) : g_strdup ("?");
}

static char *
file_size_text (GFile *file)
{
  g_autoptr(GFileInfo) info = NULL;

  if (file != NULL)
    info = g_file_query_info (file, G_FILE_ATTRIBUTE_STANDARD_SIZE, G_FILE_QUERY_INFO_NONE,
                              NULL, NULL);

  return g_format_size (info ? (guint64) g_file_info_get_size (info) : 0);
}

static char *
describe_success (BgTaskKind  kind,
                  BgResponse *response)
{
  GFile *file = bg_response_get_file (response);
  g_autofree char *name = file_display_name (file);
  g_autofree char *size = file_size_text (file);
  g_autofree char *status = status_text (response);

  if (kind == BG_TASK_KIND_DOWNLOAD)
    /* Translators: "Downloaded “/tmp/a.iso” (4.2 MB): 200 OK." */
    return status ? g_strdup_printf (_("Downloaded “%s” (%s): %s."), name, size, status)
                  : g_strdup_printf (_("Downloaded “%s” (%s)."), name, size);

  return status ? g_strdup_printf (_("Uploaded “%s” (%s): %s."), name, size, status)
                : g_strdup_printf (_("Uploaded “%s” (%s)."), name, size);
}

/* What to do about a final answer that is not a success. */
static const char *
rejected_hint (BgTaskKind kind,
               guint      status)
{
  switch (status)
    {
    case SOUP_STATUS_UNAUTHORIZED:
    case SOUP_STATUS_PROXY_UNAUTHORIZED:
      return _("Check your credentials; send them with -H 'Authorization: …'.");
    case SOUP_STATUS_FORBIDDEN:
      return _("Check that you are allowed to use this address.");
    case SOUP_STATUS_NOT_FOUND:
    case SOUP_STATUS_GONE:
      return _("Check the URL.");
    case SOUP_STATUS_METHOD_NOT_ALLOWED:
      return kind == BG_TASK_KIND_UPLOAD ? _("Check the URL, or try the other method with -X.")
                                         : _("Check the URL.");
    case SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE:
      return _("The file is too large for this server.");
    default:
      break;
    }

  if (status >= 300 && status < 400)
    return _("The server sent a redirection that cannot be followed; check the URL.");
  if (status >= 500)
    return _("The server cannot handle this request; contact its operator.");

  return _("Check the URL and the request headers.");
}

static char *
describe_rejected (BgTaskKind  kind,
                   BgResponse *response)
{
  g_autofree char *status = status_text (response);
  const char *hint = rejected_hint (kind, bg_response_get_status (response));

  if (kind == BG_TASK_KIND_DOWNLOAD)
    /* Translators: the first %s is a status such as "404 Not Found", the second advice. */
    return g_strdup_printf (_("The server refused the download: %s. %s"), status, hint);

  return g_strdup_printf (_("The server refused the upload: %s. %s"), status, hint);
}

/* The result was handed over, so the task is gone: only a new run of the command helps. */
static char *
retry_advice (BgResponse *response)
{
  gint64 retry_after = bg_response_get_retry_after (response);
  g_autofree char *wait = NULL;

  if (retry_after < 0)
    return g_strdup (_("Try again later: run the same command again."));

  wait = bt_format_seconds (retry_after);
  /* Translators: %s is a wait such as "7 seconds". */
  return g_strdup_printf (_("Try again in %s: run the same command again."), wait);
}

static char *
describe_retry (BgTaskKind  kind,
                BgResponse *response)
{
  g_autofree char *status = status_text (response);
  g_autofree char *advice = retry_advice (response);
  const GError *error = bg_response_get_error (response);
  guint code = bg_response_get_status (response);

  if (status != NULL && (code == SOUP_STATUS_SERVICE_UNAVAILABLE ||
                         code == 429 /* Too Many Requests */))
    /* Translators: the first %s is a status such as "503 Service Unavailable", the second
     * says when to try again. */
    return g_strdup_printf (_("The server is busy: %s. %s"), status, advice);
  if (status != NULL)
    return g_strdup_printf (_("The server had a temporary problem: %s. %s"), status, advice);

  if (kind == BG_TASK_KIND_DOWNLOAD)
    return g_strdup_printf (_("The download did not complete: %s. %s"),
                            error ? error->message : _("the connection failed"), advice);

  return g_strdup_printf (_("The upload did not complete: %s. %s"),
                          error ? error->message : _("the connection failed"), advice);
}

static const char *
failed_hint (const GError *error)
{
  if (error == NULL)
    return "";
  if (error->domain == G_TLS_ERROR)
    return _("Check that the address is right and that the server’s certificate is valid.");
  if (g_error_matches (error, BG_ERROR, BG_ERROR_INSECURE_REDIRECT))
    return _("Use an address that stays on https.");
  if (g_error_matches (error, BG_ERROR, BG_ERROR_PROTOCOL) ||
      g_error_matches (error, BG_ERROR, BG_ERROR_INTEGRITY))
    return _("The server’s answer cannot be used; report it to the server’s operator.");
  if (error->domain == G_IO_ERROR || g_error_matches (error, BG_ERROR, BG_ERROR_IO))
    return _("Check the file, its folder and the free disk space.");

  return "";
}

static char *
describe_failed (BgTaskKind  kind,
                 BgResponse *response)
{
  const GError *error = bg_response_get_error (response);
  g_autofree char *status = status_text (response);
  g_autofree char *reason = NULL;
  const char *what = error ? error->message : _("no usable answer came back");

  reason = status ? g_strdup_printf ("%s (%s)", what, status) : g_strdup (what);

  if (kind == BG_TASK_KIND_DOWNLOAD)
    return g_strstrip (g_strdup_printf (_("The download failed: %s. %s"),
                                        reason, failed_hint (error)));

  return g_strstrip (g_strdup_printf (_("The upload failed: %s. %s"),
                                      reason, failed_hint (error)));
}

static char *
describe_response (BgTaskKind  kind,
                   BgResponse *response)
{
  switch (bg_response_get_kind (response))
    {
    case BG_RESPONSE_SUCCESS:
      return describe_success (kind, response);
    case BG_RESPONSE_REJECTED:
      return describe_rejected (kind, response);
    case BG_RESPONSE_RETRY:
      return describe_retry (kind, response);
    case BG_RESPONSE_FAILED:
    default:
      return describe_failed (kind, response);
    }
}

/* The upload's answer when it is text that can be shown, or NULL. */
static const char *
body_text (BgResponse *response,
           gsize      *length)
{
  GBytes *body = bg_response_get_body (response);
  const char *data;

  *length = 0;
  if (body == NULL || g_bytes_get_size (body) == 0 || g_bytes_get_size (body) > MAX_SHOWN_BODY)
    return NULL;

  data = g_bytes_get_data (body, length);
  if (!g_utf8_validate_len (data, *length, NULL) || memchr (data, '\0', *length) != NULL)
    return NULL;

  return data;
}

static void
report_response_json (BtOutput   *output,
                      BgTaskKind  kind,
                      BgTask     *task,
                      BgResponse *response,
                      const char *message,
                      int         exit_code)
{
  g_autoptr(JsonBuilder) builder = bt_json_begin ("result");
  GFile *file = bg_response_get_file (response);
  g_autofree char *path = file ? g_file_get_path (file) : NULL;
  gint64 retry_after = bg_response_get_retry_after (response);
  gsize body_length;
  const char *body = body_text (response, &body_length);

  bt_json_add_optional_string (builder, "identifier", bg_response_get_identifier (response));
  bt_json_add_enum (builder, "operation", BG_TYPE_TASK_KIND, kind);
  bt_json_add_enum (builder, "kind", BG_TYPE_RESPONSE_KIND, bg_response_get_kind (response));
  bt_json_add_int (builder, "status", bg_response_get_status (response));
  bt_json_add_optional_string (builder, "reason", bg_response_get_reason (response));
  if (retry_after >= 0)
    bt_json_add_int (builder, "retry_after", retry_after);
  bt_json_add_optional_string (builder, "file", path);
  if (task != NULL)
    {
      g_autofree char *uri = bt_uri_for_display (bg_task_get_uri (task));

      bt_json_add_optional_string (builder, "uri", uri);
      bt_json_add_int (builder, "bytes", bg_task_get_bytes_transferred (task));
      bt_json_add_int (builder, "attempts", bg_task_get_attempts (task));
      /* The protocol, never the upload resource: its URL is a capability. */
      if (kind == BG_TASK_KIND_UPLOAD)
        bt_json_add_enum (builder, "protocol", BG_TYPE_UPLOAD_PROTOCOL,
                          bg_task_get_upload_protocol (task));
      bt_json_add_int (builder, "max_bandwidth", (gint64) bg_task_get_max_bandwidth (task));
    }
  if (body != NULL)
    {
      g_autofree char *copy = g_strndup (body, body_length);

      bt_json_add_optional_string (builder, "body", copy);
    }
  bt_json_add_error (builder, bg_response_get_error (response));
  bt_json_add_optional_string (builder, "message", message);
  bt_json_add_int (builder, "exit_code", exit_code);

  bt_output_json (output, builder);
}

int
bt_report_response (BtOutput   *output,
                    BgTaskKind  kind,
                    BgTask     *task,
                    BgResponse *response)
{
  BgResponseKind response_kind = bg_response_get_kind (response);
  int exit_code = bt_exit_for_response_kind (response_kind);
  g_autofree char *message = describe_response (kind, response);
  gsize body_length;
  const char *body = body_text (response, &body_length);

  report_response_json (output, kind, task, response, message, exit_code);
  bt_output_say (output, response_kind != BG_RESPONSE_SUCCESS, message);

  if (kind == BG_TASK_KIND_UPLOAD && body != NULL)
    {
      g_autofree char *copy = g_strndup (body, body_length);

      bt_output_say (output, response_kind != BG_RESPONSE_SUCCESS, g_strchomp (copy));
    }

  return exit_code;
}

static char *
describe_error (BgTaskKind    kind,
                const char   *identifier,
                GFile        *file,
                const GError *error)
{
  if (g_error_matches (error, BG_ERROR, BG_ERROR_CONFLICT))
    return g_strdup_printf (_("%s. Choose another identifier with --id, or first run "
                              "“bg-transfer cancel %s”."), error->message, identifier);
  if (g_error_matches (error, BG_ERROR, BG_ERROR_BUSY))
    return g_strdup_printf (_("%s. Wait for it to finish, or use another --session."),
                            error->message);
  if (g_error_matches (error, BG_ERROR, BG_ERROR_STORE))
    return g_strdup_printf (_("The task database cannot be used: %s."), error->message);

  if (kind == BG_TASK_KIND_DOWNLOAD && file != NULL && g_file_query_exists (file, NULL))
    return g_strdup_printf (_("Cannot start the download: %s. Remove the file, or choose "
                              "another name with --output."), error->message);
  if (kind == BG_TASK_KIND_DOWNLOAD)
    return g_strdup_printf (_("Cannot start the download: %s."), error->message);

  return g_strdup_printf (_("Cannot start the upload: %s."), error->message);
}

int
bt_report_error (BtOutput     *output,
                 BgTaskKind    kind,
                 const char   *identifier,
                 GFile        *file,
                 const GError *error)
{
  g_autofree char *message = describe_error (kind, identifier, file, error);
  int exit_code = bt_exit_for_error (error);
  g_autoptr(JsonBuilder) builder = bt_json_begin ("error");

  bt_json_add_optional_string (builder, "identifier", identifier);
  bt_json_add_enum (builder, "operation", BG_TYPE_TASK_KIND, kind);
  bt_json_add_error (builder, error);
  bt_json_add_optional_string (builder, "message", message);
  bt_json_add_int (builder, "exit_code", exit_code);
  bt_output_json (output, builder);

  bt_output_say (output, TRUE, message);

  return exit_code;
}

void
bt_report_message (BtOutput   *output,
                   int         exit_code,
                   const char *message)
{
  g_autoptr(JsonBuilder) builder = bt_json_begin ("error");

  bt_json_add_optional_string (builder, "message", message);
  bt_json_add_int (builder, "exit_code", exit_code);
  bt_output_json (output, builder);

  bt_output_say (output, TRUE, message);
}
