/* bg-transfer-transfer.c: what download and upload share: one task, from the request to its
 * result
 *
 * The command builds the request from its command line; this runs it: it starts or joins the
 * task whose identifier the command line gives or implies, shows its progress and reports how
 * it ended.  Ctrl-C ends only the wait; the task stays in the database.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <glib/gi18n.h>

#include "bg-transfer-transfer.h"
#include "bg-transfer-json.h"
#include "bg-transfer-report.h"

/* How many hex digits of the SHA-256 a derived identifier keeps. */
#define DERIVED_ID_DIGITS 16

BtTransferOptions bt_transfer_options;
BgTaskOptions *bt_upload_task_options;

typedef struct
{
  BtApp       *app;
  BgTaskKind   kind;
  SoupMessage *msg;
  GFile       *file;
  char        *identifier;
  BgTask      *task;
  BgResponse  *response;
  GError      *error;
  gboolean     done;
} Transfer;

static void
transfer_clear (Transfer *self)
{
  g_clear_object (&self->msg);
  g_clear_object (&self->file);
  g_clear_pointer (&self->identifier, g_free);
  g_clear_object (&self->task);
  g_clear_object (&self->response);
  g_clear_error (&self->error);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Transfer, transfer_clear)

/* --- The command line ---------------------------------------------------------------------- */

GUri *
bt_transfer_parse_url (const char *text)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GUri) uri = g_uri_parse (text, SOUP_HTTP_URI_FLAGS, &error);

  g_autofree char *shown = bt_uri_for_display (text);
  const char *scheme;

  if (uri == NULL)
    {
      bt_usage_error (_("“%s” is not a URL: %s"), shown, error->message);
      return NULL;
    }

  scheme = g_uri_get_scheme (uri);
  if (g_ascii_strcasecmp (scheme, "http") != 0 && g_ascii_strcasecmp (scheme, "https") != 0)
    {
      bt_usage_error (_("“%s” is not an http or https URL"), shown);
      return NULL;
    }
  if (g_uri_get_host (uri) == NULL || *g_uri_get_host (uri) == '\0')
    {
      bt_usage_error (_("“%s” has no host name"), shown);
      return NULL;
    }

  return g_steal_pointer (&uri);
}

static gboolean
is_token (const char *text,
          gsize       length)
{
  static const char specials[] = "!#$%&'*+-.^_`|~";

  if (length == 0)
    return FALSE;
  for (gsize i = 0; i < length; i++)
    {
      if (!g_ascii_isalnum (text[i]) && strchr (specials, text[i]) == NULL)
        return FALSE;
    }

  return TRUE;
}

/* Adds every -H 'Name: value' to @msg; FALSE after a usage message when one is malformed. */
static gboolean
add_headers (SoupMessage *msg,
             char       **headers)
{
  SoupMessageHeaders *request_headers = soup_message_get_request_headers (msg);

  g_assert (SOUP_IS_MESSAGE (msg));

  for (guint i = 0; headers != NULL && headers[i] != NULL; i++)
    {
      const char *colon = strchr (headers[i], ':');
      g_autofree char *name = NULL;
      g_autofree char *value = NULL;

      if (colon == NULL || !is_token (headers[i], (gsize) (colon - headers[i])) ||
          strpbrk (colon, "\r\n") != NULL)
        {
          bt_usage_error (_("“%s” is not a header; write it as 'Name: value'"), headers[i]);
          return FALSE;
        }

      name = g_strndup (headers[i], (gsize) (colon - headers[i]));
      value = g_strstrip (g_strdup (colon + 1));
      soup_message_headers_append (request_headers, name, value);
    }

  return TRUE;
}

SoupMessage *
bt_transfer_new_message (const char *method,
                         GUri       *uri)
{
  g_autoptr(SoupMessage) msg = soup_message_new_from_uri (method, uri);

  if (!add_headers (msg, bt_transfer_options.headers))
    return NULL;

  return g_steal_pointer (&msg);
}

GFile *
bt_file_for_argument (const char *argument)
{
  g_autofree char *path = g_canonicalize_filename (argument, NULL);

  return g_file_new_for_path (path);
}

gboolean
bt_transfer_check_identifier (void)
{
  if (bt_transfer_options.identifier == NULL || *bt_transfer_options.identifier != '\0')
    return TRUE;

  bt_usage_error (_("--id needs a non-empty identifier"));
  return FALSE;
}

gboolean
bt_transfer_parse_rate (const char  *text,
                        guint64     *bytes_per_second,
                        GError     **error)
{
  static const struct {
    const char *suffix;
    double      factor;
  } units[] = {
    { "", 1 },
    { "K", 1e3 }, { "M", 1e6 }, { "G", 1e9 },
    { "KiB", 1024.0 }, { "MiB", 1024.0 * 1024 }, { "GiB", 1024.0 * 1024 * 1024 },
  };
  const char *p = text;
  double value = 0;
  double scale = 1;
  gboolean digits = FALSE;

  g_assert (text != NULL && bytes_per_second != NULL);

  /* Plain decimal digits, with an optional fraction: no sign, exponent or hexadecimal. */
  for (; g_ascii_isdigit (*p); p++, digits = TRUE)
    value = value * 10 + (*p - '0');
  if (*p == '.')
    for (p++; g_ascii_isdigit (*p); p++, digits = TRUE)
      value += (*p - '0') * (scale /= 10);

  if (digits)
    for (guint i = 0; i < G_N_ELEMENTS (units); i++)
      if (g_ascii_strcasecmp (p, units[i].suffix) == 0)
        {
          double bytes = value * units[i].factor + 0.5;

          if (bytes >= (double) G_MAXINT64)
            {
              g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                           _("The rate “%s” is too large"), text);
              return FALSE;
            }
          if (value > 0 && bytes < 1)
            {
              g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                           _("The rate “%s” is less than one byte per second"), text);
              return FALSE;
            }
          *bytes_per_second = (guint64) bytes;
          return TRUE;
        }

  g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
               _("“%s” is not a rate: give bytes per second, such as 500K, 5M or 1.5MiB"), text);
  return FALSE;
}

/* The options the command line gives a new task (or one it joins); NULL for the defaults. */
static BgTaskOptions *
transfer_task_options (BgTaskKind kind)
{
  g_autoptr(BgTaskOptions) options = NULL;
  guint64 rate = 0;
  gboolean capped;

  capped = bt_transfer_options.max_bandwidth != NULL &&
           bt_transfer_parse_rate (bt_transfer_options.max_bandwidth, &rate, NULL);

  /* An upload's protocol options come from the upload command's own switches. */
  if (kind == BG_TASK_KIND_UPLOAD && bt_upload_task_options != NULL)
    options = g_object_ref (bt_upload_task_options);
  else if (capped)
    options = bg_task_options_new ();
  else
    return NULL;

  if (capped)
    bg_task_options_set_max_bandwidth (options, rate);
  return g_steal_pointer (&options);
}

/* "download-" or "upload-" and the start of a SHA-256 of what the command is about, so that
 * the same command names the same task in every run. */
static char *
derive_identifier (const char  *operation,
                   SoupMessage *msg,
                   GFile       *file)
{
  g_autoptr(GChecksum) checksum = g_checksum_new (G_CHECKSUM_SHA256);
  g_autofree char *uri = g_uri_to_string (soup_message_get_uri (msg));
  g_autofree char *path = g_file_get_path (file);

  g_checksum_update (checksum, (const guchar *) operation, -1);
  g_checksum_update (checksum, (const guchar *) "\n", 1);
  if (strcmp (operation, "upload") == 0)
    {
      g_checksum_update (checksum, (const guchar *) soup_message_get_method (msg), -1);
      g_checksum_update (checksum, (const guchar *) "\n", 1);
    }
  g_checksum_update (checksum, (const guchar *) uri, -1);
  g_checksum_update (checksum, (const guchar *) "\n", 1);
  g_checksum_update (checksum, (const guchar *) (path ? path : ""), -1);

  return g_strdup_printf ("%s-%.*s", operation, DERIVED_ID_DIGITS,
                          g_checksum_get_string (checksum));
}

/* --- Running one task ---------------------------------------------------------------------- */

static void
download_done_cb (GObject      *object,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  Transfer *self = user_data;

  self->response = bg_downloader_download_finish (BG_DOWNLOADER (object), result, &self->error);
  self->done = TRUE;
}

static void
upload_done_cb (GObject      *object,
                GAsyncResult *result,
                gpointer      user_data)
{
  Transfer *self = user_data;

  self->response = bg_uploader_upload_finish (BG_UPLOADER (object), result, &self->error);
  self->done = TRUE;
}

/* Starts or joins the task, and keeps the BgTask when it is ours. */
static void
transfer_start (Transfer *self)
{
  BtApp *app = self->app;
  g_autoptr(BgTaskOptions) options = transfer_task_options (self->kind);
  BgTask *task;

  if (self->kind == BG_TASK_KIND_DOWNLOAD)
    {
      bg_downloader_download_async (app->downloader, self->msg, self->file, self->identifier,
                                    options,
                                    app->interrupt, download_done_cb, self);
      task = bg_downloader_lookup_task (app->downloader, self->identifier);
    }
  else
    {
      bg_uploader_upload_async (app->uploader, self->msg, self->file, self->identifier,
                                options,
                                app->interrupt, upload_done_cb, self);
      task = bg_uploader_lookup_task (app->uploader, self->identifier);
    }

  /* A task of that identifier for another file is a conflict that _finish reports. */
  if (task != NULL && g_file_equal (bg_task_get_file (task), self->file))
    self->task = g_object_ref (task);
}

static void
announce_start_json (Transfer   *self,
                     const char *uri,
                     gint64      checkpoint,
                     gboolean    joined)
{
  g_autoptr(JsonBuilder) builder = bt_json_begin ("start");
  g_autofree char *path = g_file_get_path (self->file);
  BgTaskQueue *queue = self->kind == BG_TASK_KIND_DOWNLOAD ? BG_TASK_QUEUE (self->app->downloader)
                                                           : BG_TASK_QUEUE (self->app->uploader);

  bt_json_add_string (builder, "identifier", self->identifier);
  bt_json_add_enum (builder, "operation", BG_TYPE_TASK_KIND, self->kind);
  bt_json_add_string (builder, "method", soup_message_get_method (self->msg));
  bt_json_add_string (builder, "uri", uri);
  bt_json_add_string (builder, "file", path);
  bt_json_add_boolean (builder, "joined", joined);
  bt_json_add_int (builder, "checkpoint", checkpoint);
  bt_json_add_enum (builder, "mode", BG_TYPE_MODE, bg_task_queue_get_mode (queue));
  if (self->task != NULL)
    bt_json_add_int (builder, "max_bandwidth", (gint64) bg_task_get_max_bandwidth (self->task));

  bt_output_json (self->app->output, builder);
}

/* Only the bytes an earlier run left are known here: whether the server sends the rest is
 * told once its answer comes (see bt_output_track). */
static void
announce_checkpoint (Transfer *self,
                     gint64    bytes)
{
  BtOutput *output = self->app->output;
  gint64 total = bg_task_get_bytes_total (self->task);
  g_autofree char *done = g_format_size (bytes);

  if (total > 0)
    {
      g_autofree char *all = g_format_size (total);

      /* Translators: "An earlier run downloaded 1.2 MB of 4.0 MB; asking the server for the
       * rest." */
      bt_output_info (output, _("An earlier run downloaded %s of %s; asking the server for the "
                                "rest."), done, all);
    }
  else
    bt_output_info (output, _("An earlier run downloaded %s; asking the server for the rest."),
                    done);
}

/* Says what is about to happen, and whether an earlier run had started it. */
static void
announce_start (Transfer *self)
{
  BtOutput *output = self->app->output;
  g_autofree char *full_uri = g_uri_to_string (soup_message_get_uri (self->msg));
  g_autofree char *uri = bt_uri_for_display (full_uri);
  g_autofree char *name = g_file_get_parse_name (self->file);
  gint64 bytes = self->task ? bg_task_get_bytes_transferred (self->task) : 0;
  gboolean joined = self->task && (bg_task_get_attempts (self->task) > 0 ||
                                   bg_task_get_state (self->task) == BG_TASK_STATE_FINISHED);
  gboolean continuing = self->kind == BG_TASK_KIND_DOWNLOAD && bytes > 0 &&
                        bg_task_get_state (self->task) != BG_TASK_STATE_FINISHED;

  announce_start_json (self, uri, continuing ? bytes : 0, joined);

  if (self->kind == BG_TASK_KIND_DOWNLOAD)
    /* Translators: "Downloading URL to “FILE” (task IDENTIFIER)." */
    bt_output_info (output, _("Downloading %s to “%s” (task %s)."), uri, name, self->identifier);
  else
    bt_output_info (output, _("Uploading “%s” to %s with %s (task %s)."),
                    name, uri, soup_message_get_method (self->msg), self->identifier);

  if (self->task != NULL && bg_task_get_state (self->task) == BG_TASK_STATE_FINISHED)
    bt_output_info (output, _("The task finished in an earlier run; this is its result."));
  else if (continuing)
    announce_checkpoint (self, bytes);
  else if (joined)
    bt_output_info (output, _("Continuing the task that an earlier run started."));
}

static int
report_interrupted (Transfer *self)
{
  BtApp *app = self->app;
  g_autoptr(JsonBuilder) builder = bt_json_begin ("interrupted");
  g_autofree char *message = NULL;
  int exit_code = bt_app_interrupted_exit (app);

  if (self->kind == BG_TASK_KIND_DOWNLOAD)
    message = g_strdup_printf (_("Interrupted. The download is kept as task %s: run the same "
                                 "command again, or “bg-transfer resume”, to continue it from "
                                 "the last checkpoint."), self->identifier);
  else
    message = g_strdup_printf (_("Interrupted. The upload is kept as task %s: run the same "
                                 "command again, or “bg-transfer resume”, to send it."),
                               self->identifier);

  bt_json_add_string (builder, "identifier", self->identifier);
  bt_json_add_string (builder, "message", message);
  bt_json_add_int (builder, "exit_code", exit_code);
  bt_output_json (app->output, builder);
  bt_output_say (app->output, TRUE, message);

  return exit_code;
}

/* A task the user paused does not move in this run: the command says so and ends, keeping it. */
static int
report_paused (Transfer *self)
{
  BtApp *app = self->app;
  g_autoptr(JsonBuilder) builder = bt_json_begin ("kept");
  g_autofree char *message = NULL;

  message = g_strdup_printf (_("Task %s is paused and kept as it is: “bg-transfer unpause %s” "
                               "lets it go on."), self->identifier, self->identifier);
  bt_json_add_string (builder, "identifier", self->identifier);
  bt_json_add_string (builder, "message", message);
  bt_json_add_int (builder, "exit_code", BT_EXIT_RETRY);
  bt_output_json (app->output, builder);
  bt_output_say (app->output, TRUE, message);

  return BT_EXIT_RETRY;
}

static int
transfer_run (Transfer *self)
{
  BtApp *app = self->app;

  transfer_start (self);
  announce_start (self);
  if (self->task != NULL)
    bt_output_track (app->output, self->task);

  while (!self->done && (self->task == NULL || !bg_task_get_paused (self->task)))
    g_main_context_iteration (NULL, TRUE);

  if (self->task != NULL)
    bt_output_untrack (app->output, self->task);

  if (!self->done)
    return report_paused (self);

  if (self->response != NULL)
    return bt_report_response (app->output, self->kind, self->task, self->response);
  if (app->signal_number != 0 && g_error_matches (self->error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return report_interrupted (self);

  return bt_report_error (app->output, self->kind, self->identifier, self->file, self->error);
}

int
bt_transfer_run (BtApp       *app,
                 BgTaskKind   kind,
                 SoupMessage *msg,
                 GFile       *file)
{
  g_auto(Transfer) transfer = { .app = app, .kind = kind };
  gboolean download = kind == BG_TASK_KIND_DOWNLOAD;
  int exit_code;

  g_assert (SOUP_IS_MESSAGE (msg) && G_IS_FILE (file));

  if (bt_transfer_options.max_bandwidth != NULL)
    {
      g_autoptr(GError) error = NULL;
      guint64 rate;

      if (!bt_transfer_parse_rate (bt_transfer_options.max_bandwidth, &rate, &error))
        {
          bt_usage_error (_("--max-bandwidth: %s"), error->message);
          return BT_EXIT_USAGE;
        }
    }

  transfer.msg = g_object_ref (msg);
  transfer.file = g_object_ref (file);
  transfer.identifier = bt_transfer_options.identifier
                        ? g_strdup (bt_transfer_options.identifier)
                        : derive_identifier (download ? "download" : "upload", msg, file);

  if (download && !bt_app_open_downloader (app, &exit_code))
    return exit_code;
  if (!download && !bt_app_open_uploader (app, &exit_code))
    return exit_code;

  return transfer_run (&transfer);
}
