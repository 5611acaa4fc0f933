/* bg-transfer-session.c: the commands about the whole session: list, resume, cancel, forget
 *
 * The downloader and the uploader of one session share one database; each command opens both.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <glib/gi18n.h>

#include "bg-transfer.h"
#include "bg-transfer-json.h"
#include "bg-transfer-report.h"

typedef struct
{
  BtApp     *app;
  GPtrArray *finished;    /* BgTask: results printed, to be forgotten */
  int        worst;
  guint      restoring;
  GError    *error;
} Session;

static void
session_clear (Session *self)
{
  g_clear_pointer (&self->finished, g_ptr_array_unref);
  g_clear_error (&self->error);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Session, session_clear)

static gboolean
open_both (BtApp *app,
           int   *exit_code)
{
  return bt_app_open_downloader (app, exit_code) && bt_app_open_uploader (app, exit_code);
}

/* --- Restoring ----------------------------------------------------------------------------- */

static void
downloads_restored_cb (GObject      *object,
                       GAsyncResult *result,
                       gpointer      user_data)
{
  Session *self = user_data;
  g_autoptr(GError) error = NULL;

  if (!bg_downloader_restore_finish (BG_DOWNLOADER (object), result, &error) &&
      self->error == NULL)
    self->error = g_steal_pointer (&error);
  self->restoring--;
}

static void
uploads_restored_cb (GObject      *object,
                     GAsyncResult *result,
                     gpointer      user_data)
{
  Session *self = user_data;
  g_autoptr(GError) error = NULL;

  if (!bg_uploader_restore_finish (BG_UPLOADER (object), result, &error) &&
      self->error == NULL)
    self->error = g_steal_pointer (&error);
  self->restoring--;
}

/* Loads the tasks of earlier runs into both front ends.  Only the completions are waited for:
 * the restored transfers carry on while the caller iterates the main context. */
static gboolean
restore_both (Session *self,
              int     *exit_code)
{
  BtApp *app = self->app;

  self->restoring = 2;
  bg_downloader_restore_async (app->downloader, NULL, downloads_restored_cb, self);
  bg_uploader_restore_async (app->uploader, NULL, uploads_restored_cb, self);

  while (self->restoring > 0)
    g_main_context_iteration (NULL, TRUE);

  if (self->error == NULL)
    return TRUE;

  *exit_code = bt_exit_for_error (self->error);
  bt_report_message (app->output, *exit_code, self->error->message);
  return FALSE;
}

/* Every task of both front ends, downloads first. */
static GPtrArray *
all_tasks (BtApp *app)
{
  GListModel *models[] = {
    bg_downloader_get_tasks (app->downloader),
    bg_uploader_get_tasks (app->uploader),
  };
  GPtrArray *tasks = g_ptr_array_new_with_free_func (g_object_unref);

  for (guint m = 0; m < G_N_ELEMENTS (models); m++)
    {
      for (guint i = 0; i < g_list_model_get_n_items (models[m]); i++)
        g_ptr_array_add (tasks, g_list_model_get_item (models[m], i));
    }

  return tasks;
}

static gboolean
task_is_pending (BgTask *task)
{
  BgTaskState state = bg_task_get_state (task);

  return state != BG_TASK_STATE_FINISHED && state != BG_TASK_STATE_CANCELLED;
}

/* --- list ---------------------------------------------------------------------------------- */

static const char *
state_name (BgTaskState state)
{
  switch (state)
    {
    case BG_TASK_STATE_QUEUED: return _("queued");
    case BG_TASK_STATE_RUNNING: return _("running");
    case BG_TASK_STATE_WAITING: return _("waiting");
    case BG_TASK_STATE_FINISHED: return _("finished");
    case BG_TASK_STATE_CANCELLED: return _("cancelled");
    default: return "?";
    }
}

static char *
bytes_text (BgTask *task)
{
  gint64 bytes = bg_task_get_bytes_transferred (task);
  gint64 total = bg_task_get_bytes_total (task);
  g_autofree char *done = g_format_size (bytes);
  g_autofree char *all = NULL;

  if (total <= 0)
    return g_steal_pointer (&done);

  all = g_format_size (total);
  return g_strdup_printf (_("%s of %s (%d%%)"), done, all,
                          (int) (MIN (bytes, total) * 100 / total));
}

/* "rejected, 404 Not Found" for a finished task, or NULL. */
static char *
outcome_text (BgTask *task)
{
  BgResponse *response = bg_task_get_response (task);
  const char *kind;

  if (response == NULL)
    return NULL;

  kind = bt_enum_nick (BG_TYPE_RESPONSE_KIND, bg_response_get_kind (response));
  if (bg_response_get_status (response) == 0)
    return g_strdup (kind);

  return g_strdup_printf ("%s, %u %s", kind, bg_response_get_status (response),
                          bg_response_get_reason (response) ? bg_response_get_reason (response)
                                                            : "");
}

/* "finished (rejected, 404 Not Found)", "waiting (waiting for the network)", "running". */
static char *
state_text (BgTask *task)
{
  BgTaskState state = bg_task_get_state (task);
  g_autofree char *detail = NULL;

  if (state == BG_TASK_STATE_FINISHED)
    detail = outcome_text (task);
  else if (state == BG_TASK_STATE_WAITING)
    detail = bt_describe_wait (task);

  if (detail == NULL)
    return g_strdup (state_name (state));

  return g_strdup_printf ("%s (%s)", state_name (state), detail);
}

static void
print_task_text (BtOutput *output,
                 BgTask   *task)
{
  g_autofree char *bytes = bytes_text (task);
  g_autofree char *file = g_file_get_parse_name (bg_task_get_file (task));
  g_autofree char *state = state_text (task);
  guint attempts = bg_task_get_attempts (task);
  g_autofree char *attempts_text = g_strdup_printf (ngettext ("%u attempt", "%u attempts",
                                                              attempts), attempts);
  g_autofree char *uri = bt_uri_for_display (bg_task_get_uri (task));
  gboolean download = bg_task_get_kind (task) == BG_TASK_KIND_DOWNLOAD;

  bt_output_print (output, "%s  %s  %s  %s  %s", bg_task_get_identifier (task),
                   download ? _("download") : _("upload"), state, bytes, attempts_text);
  if (download)
    bt_output_print (output, "    %s → %s", uri, file);
  else
    bt_output_print (output, "    %s → %s", file, uri);
}

static void
print_task_json (BtOutput *output,
                 BgTask   *task)
{
  g_autoptr(JsonBuilder) builder = bt_json_begin ("task");
  BgResponse *response = bg_task_get_response (task);

  bt_json_add_task (builder, task);
  if (response != NULL)
    {
      bt_json_add_enum (builder, "kind", BG_TYPE_RESPONSE_KIND, bg_response_get_kind (response));
      bt_json_add_int (builder, "status", bg_response_get_status (response));
      bt_json_add_string (builder, "reason", bg_response_get_reason (response));
    }
  bt_output_json (output, builder);
}

int
bt_command_list (BtApp *app)
{
  g_auto(Session) session = { .app = app };
  g_autoptr(GPtrArray) tasks = NULL;
  int exit_code = BT_EXIT_SUCCESS;

  if (!bt_check_arguments (app, 0, "bg-transfer list"))
    return BT_EXIT_USAGE;
  if (!open_both (app, &exit_code) || !restore_both (&session, &exit_code))
    return exit_code;

  /* Printed before the main context runs again, so no restored transfer has started yet. */
  tasks = all_tasks (app);
  if (tasks->len == 0)
    {
      bt_output_info (app->output, _("The session has no tasks."));
      return BT_EXIT_SUCCESS;
    }

  for (guint i = 0; i < tasks->len; i++)
    {
      BgTask *task = g_ptr_array_index (tasks, i);

      print_task_text (app->output, task);
      print_task_json (app->output, task);
    }

  return BT_EXIT_SUCCESS;
}

/* --- resume -------------------------------------------------------------------------------- */

static void
task_finished_cb (GObject    *front_end,
                  BgTask     *task,
                  BgResponse *response,
                  gpointer    user_data)
{
  Session *self = user_data;
  int exit_code;

  bt_output_untrack (self->app->output, task);
  exit_code = bt_report_response (self->app->output, bg_task_get_kind (task), task, response);
  self->worst = MAX (self->worst, exit_code);
  g_ptr_array_add (self->finished, g_object_ref (task));
}

/* Says which task carries on.  A download only asks here for the bytes it lacks: whether the
 * server sends them, or the download starts over, is told once the answer comes (see
 * bt_output_track). */
static void
announce_continue (BtApp  *app,
                   BgTask *task)
{
  g_autoptr(JsonBuilder) builder = bt_json_begin ("start");
  g_autofree char *file = g_file_get_parse_name (bg_task_get_file (task));
  g_autofree char *uri = bt_uri_for_display (bg_task_get_uri (task));
  gboolean download = bg_task_get_kind (task) == BG_TASK_KIND_DOWNLOAD;
  gint64 checkpoint = download ? bg_task_get_bytes_transferred (task) : 0;

  bt_json_add_task (builder, task);
  bt_json_add_boolean (builder, "joined", TRUE);
  bt_json_add_int (builder, "checkpoint", checkpoint);
  bt_output_json (app->output, builder);

  if (checkpoint > 0)
    {
      g_autofree char *bytes = g_format_size (checkpoint);

      /* Translators: "Continuing the download ID of URL to “FILE”: 25.2 MB were downloaded
       * before." */
      bt_output_info (app->output, _("Continuing the download %s of %s to “%s”: %s were "
                                     "downloaded before."),
                      bg_task_get_identifier (task), uri, file, bytes);
    }
  else if (download)
    bt_output_info (app->output, _("Continuing the download %s of %s to “%s”."),
                    bg_task_get_identifier (task), uri, file);
  else
    bt_output_info (app->output, _("Continuing the upload %s of “%s” to %s."),
                    bg_task_get_identifier (task), file, uri);
}

/* A task that lost its credentials when an earlier run stopped cannot go on in this one: the
 * tool has nothing to give it.  Running the original command again, with them, carries it on. */
static gboolean
task_needs_credentials (BgTask *task)
{
  return task_is_pending (task) &&
         bg_task_get_wait_reason (task) == BG_WAIT_REASON_CREDENTIALS;
}

/* Counts the unfinished tasks that can still move in this run, and in @n_stuck those that wait
 * for credentials. */
static guint
count_pending (BtApp *app,
               guint *n_stuck)
{
  g_autoptr(GPtrArray) tasks = all_tasks (app);
  guint n = 0;

  *n_stuck = 0;
  for (guint i = 0; i < tasks->len; i++)
    {
      BgTask *task = g_ptr_array_index (tasks, i);

      if (task_needs_credentials (task))
        (*n_stuck)++;
      else if (task_is_pending (task))
        n++;
    }

  return n;
}

/* The results were printed: they count as collected. */
static void
forget_finished (Session *self)
{
  BtApp *app = self->app;

  for (guint i = 0; i < self->finished->len; i++)
    {
      BgTask *task = g_ptr_array_index (self->finished, i);
      const char *identifier = bg_task_get_identifier (task);
      g_autoptr(GError) error = NULL;
      gboolean ok;

      if (bg_task_get_kind (task) == BG_TASK_KIND_DOWNLOAD)
        ok = bg_downloader_forget (app->downloader, identifier, &error);
      else
        ok = bg_uploader_forget (app->uploader, identifier, &error);
      if (!ok && !g_error_matches (error, BG_ERROR, BG_ERROR_NOT_FOUND))
        bt_report_message (app->output, BT_EXIT_FAILED, error->message);
    }
}

static int
report_resume_interrupted (BtApp *app,
                           guint  n_pending)
{
  g_autoptr(JsonBuilder) builder = bt_json_begin ("interrupted");
  g_autofree char *message = NULL;
  int exit_code = bt_app_interrupted_exit (app);

  message = g_strdup_printf (ngettext ("Interrupted. %u transfer is kept: run “bg-transfer "
                                       "resume” again to continue it.",
                                       "Interrupted. %u transfers are kept: run “bg-transfer "
                                       "resume” again to continue them.", n_pending),
                             n_pending);

  bt_json_add_string (builder, "message", message);
  bt_json_add_int (builder, "exit_code", exit_code);
  bt_output_json (app->output, builder);
  bt_output_say (app->output, TRUE, message);

  return exit_code;
}

/* Announces and tracks every unfinished task; returns how many there are. */
static guint
track_pending (BtApp *app)
{
  g_autoptr(GPtrArray) tasks = all_tasks (app);
  guint n = 0;

  for (guint i = 0; i < tasks->len; i++)
    {
      BgTask *task = g_ptr_array_index (tasks, i);

      if (!task_is_pending (task))
        continue;
      announce_continue (app, task);
      bt_output_track (app->output, task);
      n++;
    }

  return n;
}

int
bt_command_resume (BtApp *app)
{
  g_auto(Session) session = { .app = app };
  int exit_code = BT_EXIT_SUCCESS;
  guint n_pending, n_stuck = 0;

  if (!bt_check_arguments (app, 0, "bg-transfer resume"))
    return BT_EXIT_USAGE;
  if (!open_both (app, &exit_code))
    return exit_code;

  session.finished = g_ptr_array_new_with_free_func (g_object_unref);
  g_signal_connect (app->downloader, "task-finished", G_CALLBACK (task_finished_cb), &session);
  g_signal_connect (app->uploader, "task-finished", G_CALLBACK (task_finished_cb), &session);

  if (!restore_both (&session, &exit_code))
    return exit_code;

  if (track_pending (app) == 0 && session.finished->len == 0)
    bt_output_info (app->output, _("Nothing to resume."));

  while ((n_pending = count_pending (app, &n_stuck)) > 0 &&
         !g_cancellable_is_cancelled (app->interrupt))
    g_main_context_iteration (NULL, TRUE);

  g_signal_handlers_disconnect_by_data (app->downloader, &session);
  g_signal_handlers_disconnect_by_data (app->uploader, &session);
  forget_finished (&session);

  if (n_pending > 0)
    return report_resume_interrupted (app, n_pending + n_stuck);

  if (n_stuck > 0)
    {
      g_autofree char *message = NULL;

      /* Each one was described when it started to wait; they stay for a later run. */
      message = g_strdup_printf (ngettext ("%u transfer is kept until it is run again with its "
                                           "credentials.",
                                           "%u transfers are kept until they are run again "
                                           "with their credentials.", n_stuck),
                                 n_stuck);
      bt_output_say (app->output, TRUE, message);
      return MAX (session.worst, BT_EXIT_RETRY);
    }

  return session.worst;
}

/* --- cancel and forget --------------------------------------------------------------------- */

typedef gboolean (*TaskAction) (BtApp *app, const char *identifier, GError **error);

static gboolean
cancel_download (BtApp *app, const char *identifier, GError **error)
{
  return bg_downloader_cancel (app->downloader, identifier, error);
}

static gboolean
cancel_upload (BtApp *app, const char *identifier, GError **error)
{
  return bg_uploader_cancel (app->uploader, identifier, error);
}

static gboolean
forget_download (BtApp *app, const char *identifier, GError **error)
{
  return bg_downloader_forget (app->downloader, identifier, error);
}

static gboolean
forget_upload (BtApp *app, const char *identifier, GError **error)
{
  return bg_uploader_forget (app->uploader, identifier, error);
}

static void
report_done (BtApp      *app,
             const char *event,
             const char *identifier,
             BgTaskKind  kind,
             const char *message)
{
  g_autoptr(JsonBuilder) builder = bt_json_begin (event);

  bt_json_add_string (builder, "identifier", identifier);
  bt_json_add_enum (builder, "operation", BG_TYPE_TASK_KIND, kind);
  bt_json_add_string (builder, "message", message);
  bt_output_json (app->output, builder);
  bt_output_say (app->output, FALSE, message);
}

/* Runs @download_action, then @upload_action when no download has the identifier.  Sets
 * @kind to the kind of the task that was found. */
static gboolean
act_on_task (BtApp       *app,
             TaskAction   download_action,
             TaskAction   upload_action,
             const char  *identifier,
             BgTaskKind  *kind,
             GError     **error)
{
  g_autoptr(GError) local_error = NULL;

  *kind = BG_TASK_KIND_DOWNLOAD;
  if (download_action (app, identifier, &local_error))
    return TRUE;
  if (!g_error_matches (local_error, BG_ERROR, BG_ERROR_NOT_FOUND))
    {
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }

  *kind = BG_TASK_KIND_UPLOAD;
  return upload_action (app, identifier, error);
}

static int
report_action_error (BtApp        *app,
                     const char   *identifier,
                     const GError *error)
{
  g_autofree char *message = NULL;

  if (g_error_matches (error, BG_ERROR, BG_ERROR_NOT_FOUND))
    message = g_strdup_printf (_("No task has the identifier “%s” in this session. Run "
                                 "“bg-transfer list” to see the tasks."), identifier);
  else
    message = g_strdup (error->message);

  bt_report_message (app->output, BT_EXIT_FAILED, message);
  return BT_EXIT_FAILED;
}

static int
run_task_action (BtApp      *app,
                 const char *synopsis,
                 TaskAction  download_action,
                 TaskAction  upload_action,
                 gboolean    cancel)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *message = NULL;
  const char *identifier;
  int exit_code = BT_EXIT_SUCCESS;
  BgTaskKind kind;

  if (!bt_check_arguments (app, 1, synopsis))
    return BT_EXIT_USAGE;
  identifier = app->args[0];
  if (*identifier == '\0')
    {
      bt_usage_error (_("The identifier is empty"));
      return BT_EXIT_USAGE;
    }
  if (!open_both (app, &exit_code))
    return exit_code;

  if (!act_on_task (app, download_action, upload_action, identifier, &kind, &error))
    return report_action_error (app, identifier, error);

  if (!cancel)
    message = g_strdup_printf (_("Forgot the task %s."), identifier);
  else if (kind == BG_TASK_KIND_DOWNLOAD)
    message = g_strdup_printf (_("Cancelled the download %s; its partial file was deleted."),
                               identifier);
  else
    message = g_strdup_printf (_("Cancelled the upload %s."), identifier);
  report_done (app, cancel ? "cancelled" : "forgotten", identifier, kind, message);

  return BT_EXIT_SUCCESS;
}

int
bt_command_cancel (BtApp *app)
{
  return run_task_action (app, "bg-transfer cancel ID",
                          cancel_download, cancel_upload, TRUE);
}

int
bt_command_forget (BtApp *app)
{
  return run_task_action (app, "bg-transfer forget ID",
                          forget_download, forget_upload, FALSE);
}
