/* transfer-helper.c: a tiny app that the crash tests start, watch and kill
 *
 * Usage:
 *   transfer-helper download DB URL DEST ID        download, collect, print the outcome
 *   transfer-helper upload DB URL SRC ID METHOD    upload, collect, print the outcome
 *   transfer-helper hold DB URL DEST ID            download, then exit without collecting
 *   transfer-helper restore download|upload DB     restore, print and forget every result
 *   transfer-helper submit-and-die DB URL DEST ID SHA256
 *                                                  submit a download with options (allow-metered,
 *                                                  priority 7, expected SHA256, keep-credentials),
 *                                                  then SIGKILL itself before the main loop runs
 *   transfer-helper many-and-die DB URL-PREFIX DIR N K
 *                                                  download URL-PREFIX0.bin ... (N files) into
 *                                                  DIR at once, max-concurrent 8, identifiers
 *                                                  many-0 ...; SIGKILL itself as soon as the Kth
 *                                                  task-finished has been printed
 *   transfer-helper restore-and-pause DB           restore the downloads, pause each one as soon
 *                                                  as it moves a byte in this run, and wait to be
 *                                                  killed (or for none to be left unfinished)
 *
 * It prints one line per event on stdout, flushed at once:
 *   progress BYTES TOTAL
 *   waiting NEXT-ATTEMPT-AT      (microseconds since the epoch)
 *   finished ID KIND STATUS [ERROR MESSAGE]
 *   paused ID                    (restore-and-pause: the task waits, paused)
 *   error MESSAGE
 *
 * BG_HELPER_MAX_ATTEMPTS in the environment sets max-attempts (default 1); for "upload",
 * BG_HELPER_UPLOAD_PROTOCOL (auto, plain, tus or ietf) sets the task's upload-protocol.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include <bg-glib.h>

static GMainLoop *loop;
static int exit_code;
static gboolean hold_results;
static guint die_after;   /* many-and-die: the announcement to be killed after */

static const char *
kind_name (BgResponseKind kind)
{
  switch (kind)
    {
    case BG_RESPONSE_SUCCESS: return "success";
    case BG_RESPONSE_RETRY: return "retry";
    case BG_RESPONSE_REJECTED: return "rejected";
    case BG_RESPONSE_FAILED: return "failed";
    default: return "?";
    }
}

static void
say (const char *format,
     ...)
{
  va_list args;

  va_start (args, format);
  vprintf (format, args);
  va_end (args);
  putchar ('\n');
  fflush (stdout);
}

static void
progress_cb (BgTask     *task,
             GParamSpec *pspec,
             gpointer    user_data)
{
  say ("progress %" G_GINT64_FORMAT " %" G_GINT64_FORMAT,
       bg_task_get_bytes_transferred (task), bg_task_get_bytes_total (task));
}

static void
state_cb (BgTask     *task,
          GParamSpec *pspec,
          gpointer    user_data)
{
  if (bg_task_get_state (task) == BG_TASK_STATE_WAITING)
    {
      g_autoptr(GDateTime) at = bg_task_dup_next_attempt_at (task);
      gint64 usec = 0;

      if (at != NULL)
        usec = g_date_time_to_unix (at) * G_USEC_PER_SEC + g_date_time_get_microsecond (at);
      say ("waiting %" G_GINT64_FORMAT, usec);
    }
}

/* tests/service_bus.py runs a suite in service mode; the helper, as an app of the suite, too. */
static BgMode
helper_mode (void)
{
  return g_strcmp0 (g_getenv ("BG_TEST_MODE"), "service") == 0 ? BG_MODE_SERVICE
                                                               : BG_MODE_IN_PROCESS;
}

static const char *
helper_app_id (void)
{
  const char *app_id = g_getenv ("BG_TEST_APP_ID");

  return app_id != NULL ? app_id : "org.bgglib.Test";
}

static guint
max_attempts (void)
{
  const char *value = g_getenv ("BG_HELPER_MAX_ATTEMPTS");

  return value ? (guint) g_ascii_strtoull (value, NULL, 10) : 1;
}

static void
watch_tasks (GListModel *model,
             guint       position,
             guint       removed,
             guint       added,
             gpointer    user_data)
{
  for (guint i = position; i < position + added; i++)
    {
      g_autoptr(BgTask) task = g_list_model_get_item (model, i);

      g_signal_connect (task, "notify::bytes-transferred", G_CALLBACK (progress_cb), NULL);
      g_signal_connect (task, "notify::state", G_CALLBACK (state_cb), NULL);
    }
}

static void
task_finished_cb (GObject    *source,
                  BgTask     *task,
                  BgResponse *response,
                  gpointer    user_data)
{
  const GError *error = bg_response_get_error (response);

  say ("finished %s %s %u%s%s", bg_task_get_identifier (task),
       kind_name (bg_response_get_kind (response)), bg_response_get_status (response),
       error ? " " : "", error ? error->message : "");

  if (hold_results)
    {
      /* Leave without collecting: the result stays in the database. */
      _exit (0);
    }

  /* Killed right after the announcement, before the main loop runs again. */
  if (die_after > 0 && --die_after == 0)
    raise (SIGKILL);
}

static void
many_done_cb (GObject      *object,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(BgResponse) response = NULL;

  response = bg_downloader_download_finish (BG_DOWNLOADER (object), result, &error);
  if (response == NULL)
    say ("error %s", error->message);
}

/* Once the task waits because it is paused; said once. */
static void
paused_cb (BgTask     *task,
           GParamSpec *pspec,
           gpointer    user_data)
{
  if (bg_task_get_state (task) == BG_TASK_STATE_WAITING &&
      bg_task_get_wait_reason (task) == BG_WAIT_REASON_PAUSED &&
      g_object_get_data (G_OBJECT (task), "said-paused") == NULL)
    {
      g_object_set_data (G_OBJECT (task), "said-paused", GINT_TO_POINTER (1));
      say ("paused %s", bg_task_get_identifier (task));
    }
}

/* Bytes moved in this run: the task is paused in the middle of its attempt. */
static void
pause_when_moving_cb (BgTask     *task,
                      GParamSpec *pspec,
                      gpointer    user_data)
{
  if (bg_task_get_state (task) == BG_TASK_STATE_RUNNING && !bg_task_get_paused (task))
    bg_task_set_paused (task, TRUE);
}

static void
watch_tasks_to_pause (GListModel *model,
                      guint       position,
                      guint       removed,
                      guint       added,
                      gpointer    user_data)
{
  for (guint i = position; i < position + added; i++)
    {
      g_autoptr(BgTask) task = g_list_model_get_item (model, i);

      g_signal_connect (task, "notify::bytes-transferred", G_CALLBACK (pause_when_moving_cb),
                        NULL);
      g_signal_connect (task, "notify::state", G_CALLBACK (paused_cb), NULL);
      g_signal_connect (task, "notify::wait-reason", G_CALLBACK (paused_cb), NULL);
    }
}

static void
download_done_cb (GObject      *object,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(BgResponse) response = NULL;

  response = bg_downloader_download_finish (BG_DOWNLOADER (object), result, &error);
  if (response == NULL)
    {
      say ("error %s", error->message);
      exit_code = 1;
    }
  g_main_loop_quit (loop);
}

static void
upload_done_cb (GObject      *object,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(BgResponse) response = NULL;

  response = bg_uploader_upload_finish (BG_UPLOADER (object), result, &error);
  if (response == NULL)
    {
      say ("error %s", error->message);
      exit_code = 1;
    }
  g_main_loop_quit (loop);
}

static guint
count_unfinished (GListModel *model)
{
  guint n = 0;

  for (guint i = 0; i < g_list_model_get_n_items (model); i++)
    {
      g_autoptr(BgTask) task = g_list_model_get_item (model, i);

      if (bg_task_get_state (task) != BG_TASK_STATE_FINISHED)
        n++;
    }

  return n;
}

static void
restored_finished_cb (GObject    *source,
                      BgTask     *task,
                      BgResponse *response,
                      gpointer    user_data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *identifier = g_strdup (bg_task_get_identifier (task));
  gboolean ok;

  if (BG_IS_DOWNLOADER (source))
    ok = bg_downloader_forget (BG_DOWNLOADER (source), identifier, &error);
  else
    ok = bg_uploader_forget (BG_UPLOADER (source), identifier, &error);
  if (!ok)
    say ("error %s", error->message);
}

static gboolean
check_done_cb (gpointer user_data)
{
  GListModel *model = user_data;

  if (count_unfinished (model) == 0)
    g_main_loop_quit (loop);

  return G_SOURCE_CONTINUE;
}

static void
restore_done_cb (GObject      *object,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  g_autoptr(GError) error = NULL;
  gboolean ok;

  if (BG_IS_DOWNLOADER (object))
    ok = bg_downloader_restore_finish (BG_DOWNLOADER (object), result, &error);
  else
    ok = bg_uploader_restore_finish (BG_UPLOADER (object), result, &error);

  if (!ok)
    {
      say ("error %s", error->message);
      exit_code = 1;
      g_main_loop_quit (loop);
      return;
    }

  /* The records load on a worker thread: only once they are in does an empty list mean that
   * nothing is left to do. */
  g_timeout_add (50, check_done_cb,
                 bg_task_queue_get_tasks (BG_TASK_QUEUE (object)));
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GObject) front = NULL;
  const char *mode;

  if (argc < 2)
    return 64;

  mode = argv[1];
  loop = g_main_loop_new (NULL, FALSE);

  if (g_str_equal (mode, "restore") && argc == 4)
    {
      gboolean download = g_str_equal (argv[2], "download");
      GListModel *model;

      if (download)
        front = g_initable_new (BG_TYPE_DOWNLOADER, NULL, &error,
                                "mode", helper_mode (), "app-id", helper_app_id (),
                                "session-id", "helper", "database-path", argv[3],
                                "max-attempts", max_attempts (), NULL);
      else
        front = g_initable_new (BG_TYPE_UPLOADER, NULL, &error,
                                "mode", helper_mode (), "app-id", helper_app_id (),
                                "session-id", "helper", "database-path", argv[3],
                                "max-attempts", max_attempts (), NULL);
      if (front == NULL)
        {
          say ("error %s", error->message);
          return 1;
        }

      model = download ? bg_downloader_get_tasks (BG_DOWNLOADER (front))
                       : bg_uploader_get_tasks (BG_UPLOADER (front));
      g_signal_connect (model, "items-changed", G_CALLBACK (watch_tasks), NULL);
      g_signal_connect (front, "task-finished", G_CALLBACK (task_finished_cb), NULL);
      g_signal_connect (front, "task-finished", G_CALLBACK (restored_finished_cb), NULL);

      if (download)
        bg_downloader_restore_async (BG_DOWNLOADER (front), NULL, restore_done_cb, NULL);
      else
        bg_uploader_restore_async (BG_UPLOADER (front), NULL, restore_done_cb, NULL);

      g_main_loop_run (loop);
      return exit_code;
    }

  if (g_str_equal (mode, "restore-and-pause") && argc == 3)
    {
      front = g_initable_new (BG_TYPE_DOWNLOADER, NULL, &error,
                              "mode", helper_mode (), "app-id", helper_app_id (),
                              "session-id", "helper", "database-path", argv[2], NULL);
      if (front == NULL)
        {
          say ("error %s", error->message);
          return 1;
        }
      g_signal_connect (bg_downloader_get_tasks (BG_DOWNLOADER (front)), "items-changed",
                        G_CALLBACK (watch_tasks_to_pause), NULL);
      g_signal_connect (front, "task-finished", G_CALLBACK (task_finished_cb), NULL);
      bg_downloader_restore_async (BG_DOWNLOADER (front), NULL, restore_done_cb, NULL);
      /* Until killed, or until no task is left unfinished (the pause did not hold): see
       * restore_done_cb(). */
      g_main_loop_run (loop);
      return exit_code;
    }

  if (g_str_equal (mode, "submit-and-die") && argc == 7)
    {
      g_autoptr(SoupMessage) msg = soup_message_new ("GET", argv[3]);
      g_autoptr(GFile) dest = g_file_new_for_path (argv[4]);
      g_autoptr(BgTaskOptions) options = bg_task_options_new ();

      front = g_initable_new (BG_TYPE_DOWNLOADER, NULL, &error,
                              "mode", helper_mode (), "app-id", helper_app_id (),
                              "session-id", "helper", "database-path", argv[2], NULL);
      if (front == NULL)
        {
          say ("error %s", error->message);
          return 1;
        }
      bg_task_options_set_allow_metered (options, TRUE);
      bg_task_options_set_priority (options, 7);
      bg_task_options_set_expected_sha256 (options, argv[6]);
      bg_task_options_set_keep_credentials (options, TRUE);
      bg_downloader_download_async (BG_DOWNLOADER (front), msg, dest, argv[5], options, NULL,
                                    download_done_cb, NULL);
      /* Killed before the main loop ever ran: only what the call committed is left. */
      raise (SIGKILL);
      return 1;
    }

  if ((g_str_equal (mode, "download") || g_str_equal (mode, "hold")) && argc == 6)
    {
      g_autoptr(SoupMessage) msg = soup_message_new ("GET", argv[3]);
      g_autoptr(GFile) dest = g_file_new_for_path (argv[4]);

      hold_results = g_str_equal (mode, "hold");
      front = g_initable_new (BG_TYPE_DOWNLOADER, NULL, &error,
                              "mode", helper_mode (), "app-id", helper_app_id (),
                              "session-id", "helper", "database-path", argv[2],
                              "max-attempts", max_attempts (), NULL);
      if (front == NULL)
        {
          say ("error %s", error->message);
          return 1;
        }
      g_signal_connect (bg_downloader_get_tasks (BG_DOWNLOADER (front)), "items-changed",
                        G_CALLBACK (watch_tasks), NULL);
      g_signal_connect (front, "task-finished", G_CALLBACK (task_finished_cb), NULL);
      bg_downloader_download_async (BG_DOWNLOADER (front), msg, dest, argv[5], NULL, NULL,
                                    download_done_cb, NULL);
      g_main_loop_run (loop);
      return exit_code;
    }

  if (g_str_equal (mode, "many-and-die") && argc == 7)
    {
      guint n = (guint) g_ascii_strtoull (argv[5], NULL, 10);

      die_after = (guint) g_ascii_strtoull (argv[6], NULL, 10);
      front = g_initable_new (BG_TYPE_DOWNLOADER, NULL, &error,
                              "mode", helper_mode (), "app-id", helper_app_id (),
                              "session-id", "helper", "database-path", argv[2],
                              "max-attempts", max_attempts (), "max-concurrent", 8, NULL);
      if (front == NULL)
        {
          say ("error %s", error->message);
          return 1;
        }
      g_signal_connect (front, "task-finished", G_CALLBACK (task_finished_cb), NULL);
      for (guint i = 0; i < n; i++)
        {
          g_autofree char *url = g_strdup_printf ("%s%u.bin", argv[3], i);
          g_autofree char *name = g_strdup_printf ("f%u.bin", i);
          g_autofree char *identifier = g_strdup_printf ("many-%u", i);
          g_autoptr(SoupMessage) msg = soup_message_new ("GET", url);
          g_autoptr(GFile) dest = g_file_new_build_filename (argv[4], name, NULL);

          bg_downloader_download_async (BG_DOWNLOADER (front), msg, dest, identifier, NULL,
                                        NULL, many_done_cb, NULL);
        }
      g_main_loop_run (loop);
      return exit_code;
    }

  if (g_str_equal (mode, "upload") && argc == 7)
    {
      g_autoptr(SoupMessage) msg = soup_message_new (argv[6], argv[3]);
      g_autoptr(GFile) src = g_file_new_for_path (argv[4]);
      g_autoptr(BgTaskOptions) options = bg_task_options_new ();
      const char *protocol = g_getenv ("BG_HELPER_UPLOAD_PROTOCOL");

      if (g_strcmp0 (protocol, "plain") == 0)
        bg_task_options_set_upload_protocol (options, BG_UPLOAD_PROTOCOL_PLAIN);
      else if (g_strcmp0 (protocol, "tus") == 0)
        bg_task_options_set_upload_protocol (options, BG_UPLOAD_PROTOCOL_TUS);
      else if (g_strcmp0 (protocol, "ietf") == 0)
        bg_task_options_set_upload_protocol (options, BG_UPLOAD_PROTOCOL_IETF);

      front = g_initable_new (BG_TYPE_UPLOADER, NULL, &error,
                              "mode", helper_mode (), "app-id", helper_app_id (),
                              "session-id", "helper", "database-path", argv[2],
                              "max-attempts", max_attempts (), NULL);
      if (front == NULL)
        {
          say ("error %s", error->message);
          return 1;
        }
      g_signal_connect (bg_uploader_get_tasks (BG_UPLOADER (front)), "items-changed",
                        G_CALLBACK (watch_tasks), NULL);
      g_signal_connect (front, "task-finished", G_CALLBACK (task_finished_cb), NULL);
      bg_uploader_upload_async (BG_UPLOADER (front), msg, src, argv[5], options, NULL,
                                upload_done_cb, NULL);
      g_main_loop_run (loop);
      return exit_code;
    }

  return 64;
}
