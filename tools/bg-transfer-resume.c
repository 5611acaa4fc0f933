/* bg-transfer-resume.c: the resume command
 *
 * bg-transfer resume: carries on every unfinished task of the session until each one ends,
 * prints each result and forgets it.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <glib/gi18n.h>

#include "bg-transfer-session.h"
#include "bg-transfer-json.h"
#include "bg-transfer-report.h"

typedef struct
{
  BtApp     *app;
  GPtrArray *finished;    /* BgTask: results printed, to be forgotten */
  int        worst;
} Resume;

static void
resume_clear (Resume *self)
{
  g_clear_pointer (&self->finished, g_ptr_array_unref);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Resume, resume_clear)

static void
task_finished_cb (GObject    *front_end,
                  BgTask     *task,
                  BgResponse *response,
                  gpointer    user_data)
{
  Resume *self = user_data;
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
  bt_json_add_enum (builder, "mode", BG_TYPE_MODE,
                    bg_task_queue_get_mode (bt_session_queue (app, bg_task_get_kind (task))));
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
  return bt_task_is_pending (task) &&
         bg_task_get_wait_reason (task) == BG_WAIT_REASON_CREDENTIALS;
}

/* A task the user paused does not move in this run either: that is the user's choice, and
 * "bg-transfer unpause" lets it go on. */
static gboolean
task_is_paused (BgTask *task)
{
  return bt_task_is_pending (task) && bg_task_get_paused (task);
}

/* Counts the unfinished tasks that can still move in this run; in @n_stuck those that wait for
 * credentials, and in @n_paused those that were paused. */
static guint
count_pending (BtApp *app,
               guint *n_stuck,
               guint *n_paused)
{
  g_autoptr(GPtrArray) tasks = bt_session_dup_tasks (app);
  guint n = 0;

  *n_stuck = 0;
  *n_paused = 0;
  for (guint i = 0; i < tasks->len; i++)
    {
      BgTask *task = g_ptr_array_index (tasks, i);

      if (task_is_paused (task))
        (*n_paused)++;
      else if (task_needs_credentials (task))
        (*n_stuck)++;
      else if (bt_task_is_pending (task))
        n++;
    }

  return n;
}

/* The results were printed: they count as collected. */
static void
forget_finished (Resume *self)
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

/* Says which paused task stays where it is. */
static void
announce_paused (BtApp  *app,
                 BgTask *task)
{
  g_autoptr(JsonBuilder) builder = bt_json_begin ("kept");
  const char *identifier = bg_task_get_identifier (task);
  g_autofree char *file = g_file_get_parse_name (bg_task_get_file (task));
  g_autofree char *uri = bt_uri_for_display (bg_task_get_uri (task));

  bt_json_add_task (builder, task);
  bt_output_json (app->output, builder);

  if (bg_task_get_kind (task) == BG_TASK_KIND_DOWNLOAD)
    /* Translators: the first and the last %s are the task's identifier. */
    bt_output_info (app->output, _("The download %s of %s to “%s” is paused: it is kept as it "
                                   "is. “bg-transfer unpause %s” lets it go on."),
                    identifier, uri, file, identifier);
  else
    bt_output_info (app->output, _("The upload %s of “%s” to %s is paused: it is kept as it "
                                   "is. “bg-transfer unpause %s” lets it go on."),
                    identifier, file, uri, identifier);
}

/* Announces every unfinished task, and tracks those that can move; returns how many it
 * announced. */
static guint
track_pending (BtApp *app)
{
  g_autoptr(GPtrArray) tasks = bt_session_dup_tasks (app);
  guint n = 0;

  for (guint i = 0; i < tasks->len; i++)
    {
      BgTask *task = g_ptr_array_index (tasks, i);

      if (!bt_task_is_pending (task))
        continue;
      n++;
      if (task_is_paused (task))
        {
          announce_paused (app, task);
          continue;
        }
      announce_continue (app, task);
      bt_output_track (app->output, task);
    }

  return n;
}

/* What resume says at the end; returns the exit status.  The paused tasks were announced at
 * the start; keeping them is no failure. */
static int
report_end (Resume *self,
            guint   n_pending,
            guint   n_stuck,
            guint   n_paused)
{
  g_autofree char *message = NULL;

  if (n_pending > 0)
    return report_resume_interrupted (self->app, n_pending + n_stuck);
  if (n_paused > 0)
    {
      g_autofree char *paused = NULL;

      paused = g_strdup_printf (ngettext ("%u paused transfer is kept as it is.",
                                          "%u paused transfers are kept as they are.",
                                          n_paused),
                                n_paused);
      bt_output_say (self->app->output, FALSE, paused);
    }
  if (n_stuck == 0)
    return self->worst;

  /* Each one was described when it started to wait; they stay for a later run. */
  message = g_strdup_printf (ngettext ("%u transfer is kept until it is run again with its "
                                       "credentials.",
                                       "%u transfers are kept until they are run again "
                                       "with their credentials.", n_stuck),
                             n_stuck);
  bt_output_say (self->app->output, TRUE, message);
  return MAX (self->worst, BT_EXIT_RETRY);
}

/* Carries on the restored tasks until none can move, or until Ctrl-C; returns how many that
 * could move are left, in @n_stuck how many wait for credentials, and in @n_paused how many
 * were paused. */
static guint
run_pending (Resume *self,
             guint  *n_stuck,
             guint  *n_paused)
{
  BtApp *app = self->app;
  guint n_pending;

  if (track_pending (app) == 0 && self->finished->len == 0)
    bt_output_info (app->output, _("Nothing to resume."));

  while ((n_pending = count_pending (app, n_stuck, n_paused)) > 0 &&
         !g_cancellable_is_cancelled (app->interrupt))
    g_main_context_iteration (NULL, TRUE);

  return n_pending;
}

static int
resume_session (BtApp *app)
{
  g_auto(Resume) self = { .app = app };
  int exit_code = BT_EXIT_SUCCESS;
  guint n_pending = 0, n_stuck = 0, n_paused = 0;
  gboolean restored;

  self.finished = g_ptr_array_new_with_free_func (g_object_unref);
  g_signal_connect (app->downloader, "task-finished", G_CALLBACK (task_finished_cb), &self);
  g_signal_connect (app->uploader, "task-finished", G_CALLBACK (task_finished_cb), &self);

  restored = bt_session_restore (app, &exit_code);
  if (restored)
    n_pending = run_pending (&self, &n_stuck, &n_paused);

  g_signal_handlers_disconnect_by_data (app->downloader, &self);
  g_signal_handlers_disconnect_by_data (app->uploader, &self);
  if (!restored)
    return exit_code;

  forget_finished (&self);
  return report_end (&self, n_pending, n_stuck, n_paused);
}

static int
handle_resume (int      argc,
               char    *argv[],
               gboolean do_help)
{
  g_autoptr(GOptionContext) context = bt_command_context_new (&bt_command_resume);
  g_autoptr(BtApp) app = NULL;
  int exit_code = BT_EXIT_SUCCESS;

  if (do_help)
    return bt_command_show_help (context);
  if (!bt_command_parse (&bt_command_resume, context, &argc, &argv) ||
      !bt_check_arguments (argc - 1, 0, "bg-transfer resume"))
    return BT_EXIT_USAGE;

  app = bt_app_new ();
  if (!bt_session_open (app, &exit_code))
    return exit_code;

  return resume_session (app);
}

const BtCommand bt_command_resume = {
  .name = "resume",
  .synopsis = "resume",
  .description = N_("Carry on every unfinished download and upload of the session until each "
                    "one ends, and print each result. The exit status is that of the worst "
                    "result. Paused tasks are kept as they are."),
  .handle = handle_resume,
};
