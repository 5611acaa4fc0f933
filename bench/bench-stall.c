/* bench-stall.c: how late a 1 ms main-loop timer fires while a BgDownloader downloads
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Usage: bench-stall [--mode in-process|service] [--app-id ID] [--count N] URL DESTINATION
 *                    DATABASE
 *
 * Runs a repeating 1 ms GLib timeout on the same main context as a BgDownloader that downloads
 * URL to DESTINATION (which must not exist).  At every tick it records how late the tick is:
 * the time now minus the time the timeout became due.  Ticks are recorded from the return of
 * bg_downloader_download_async() until its callback.
 *
 * With --count N, the downloader downloads URL N times at once (max-concurrent N), into
 * DESTINATION-1 ... DESTINATION-N, and ticks are recorded until the last callback.  With
 * --mode service (and --app-id), the downloads go through the app's transfer service,
 * bg-transferd, on the session bus: what is measured is then the client's main loop, which
 * receives the service's batched progress and mirrors it into its BgTask objects.  Either way
 * the program follows the progress the way an app with a list of transfers would: it connects to
 * notify::bytes-transferred of every task in the queue's list, and counts the notifications.
 *
 * On success it prints one line of key=value pairs:
 *   ticks       number of ticks recorded
 *   p50_ms, p99_ms, p999_ms, max_ms   lateness percentiles and the worst tick
 *   over_10ms   ticks more than 10 ms late
 *   worst_at_s  when the worst tick happened, seconds after the first download started
 *   seconds     the downloads' wall time, from the first call to the last callback
 *   bytes       the size of the downloaded files, all together
 *   progress    notify::bytes-transferred signals received, all tasks together
 *   init_ms     the time g_initable_new() took to make the downloader (in service mode: the
 *               service's activation, if it was not running, and its OpenQueue)
 *   submit_ms   the time the calls to bg_downloader_download_async() took, all together:
 *               the ticks start after them
 * and exits 0; 1 when a download did not succeed, 64 on a usage error.
 */

#include <stdio.h>
#include <stdlib.h>

#include <bg-glib.h>

typedef struct
{
  GMainLoop *loop;
  GArray    *lateness;    /* gint64 µs */
  gint64     start;
  gint64     end;
  gint64     worst;
  gint64     worst_at;
  gboolean   running;
  guint      pending;
  guint      failed;
  goffset    bytes;
  guint64    progress;
} State;

static gboolean
tick_cb (gpointer user_data)
{
  State *state = user_data;
  gint64 now = g_get_monotonic_time ();
  gint64 due = g_source_get_ready_time (g_main_current_source ());
  gint64 late;

  if (!state->running || due < 0)
    return G_SOURCE_CONTINUE;

  late = MAX (0, now - due);
  g_array_append_val (state->lateness, late);
  if (late > state->worst)
    {
      state->worst = late;
      state->worst_at = now - state->start;
    }

  return G_SOURCE_CONTINUE;
}

static void
download_done_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  State *state = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(BgResponse) response = NULL;

  response = bg_downloader_download_finish (BG_DOWNLOADER (source), result, &error);
  if (response == NULL)
    {
      g_printerr ("bench-stall: %s\n", error->message);
      state->failed++;
    }
  else if (bg_response_get_kind (response) != BG_RESPONSE_SUCCESS)
    {
      const GError *response_error = bg_response_get_error (response);

      g_printerr ("bench-stall: %s: HTTP %u %s\n", bg_response_get_identifier (response),
                  bg_response_get_status (response),
                  response_error != NULL ? response_error->message : "");
      state->failed++;
    }
  else
    {
      g_autoptr(GFileInfo) info =
        g_file_query_info (bg_response_get_file (response), G_FILE_ATTRIBUTE_STANDARD_SIZE,
                           G_FILE_QUERY_INFO_NONE, NULL, NULL);

      if (info != NULL)
        state->bytes += g_file_info_get_size (info);
      else
        state->failed++;
    }

  g_assert (state->pending > 0);
  if (--state->pending > 0)
    return;

  state->end = g_get_monotonic_time ();
  state->running = FALSE;
  g_main_loop_quit (state->loop);
}

static void
progress_cb (GObject    *object,
             GParamSpec *pspec,
             gpointer    user_data)
{
  State *state = user_data;

  state->progress++;
}

/* Follows the progress of every task that enters the queue's list, as an app's list view
 * would. */
static void
tasks_changed_cb (GListModel *model,
                  guint       position,
                  guint       removed,
                  guint       added,
                  gpointer    user_data)
{
  for (guint i = position; i < position + added; i++)
    {
      g_autoptr(BgTask) task = g_list_model_get_item (model, i);

      g_signal_connect (task, "notify::bytes-transferred", G_CALLBACK (progress_cb), user_data);
    }
}

static int
compare_gint64 (gconstpointer a,
                gconstpointer b)
{
  gint64 x = *(const gint64 *) a;
  gint64 y = *(const gint64 *) b;

  return (x > y) - (x < y);
}

static double
percentile_ms (GArray *sorted,
               double  p)
{
  guint i;

  if (sorted->len == 0)
    return 0;
  i = MIN (sorted->len - 1, (guint) (p * sorted->len));

  return g_array_index (sorted, gint64, i) / 1000.0;
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(BgDownloader) downloader = NULL;
  g_autoptr(GMainLoop) loop = NULL;
  g_autoptr(GSource) timer = NULL;
  g_autofree char *mode_name = NULL;
  g_autofree char *app_id = NULL;
  g_autoptr(GEnumClass) modes = NULL;
  GEnumValue *mode;
  GListModel *tasks;
  int count = 1;
  gint64 init_start;
  gint64 init_end;
  gint64 submitted;
  State state = { 0 };
  guint over = 0;
  const GOptionEntry entries[] = {
    { "mode", 0, 0, G_OPTION_ARG_STRING, &mode_name,
      "in-process (the default) or service", "MODE" },
    { "app-id", 0, 0, G_OPTION_ARG_STRING, &app_id,
      "the app whose transfer service to use (with --mode service)", "ID" },
    { "count", 0, 0, G_OPTION_ARG_INT, &count,
      "download URL this many times at once (default 1)", "N" },
    G_OPTION_ENTRY_NULL
  };

  context = g_option_context_new ("URL DESTINATION DATABASE");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("bench-stall: %s\n", error->message);
      return 64;
    }
  if (argc != 4 || count < 1 || count > 1024)
    {
      g_printerr ("Usage: %s [--mode in-process|service] [--app-id ID] [--count N] "
                  "URL DESTINATION DATABASE\n", g_get_prgname ());
      return 64;
    }
  modes = g_type_class_ref (BG_TYPE_MODE);
  mode = g_enum_get_value_by_nick (modes, mode_name != NULL ? mode_name : "in-process");
  if (mode == NULL)
    {
      g_printerr ("bench-stall: unknown mode %s (in-process, service or auto)\n", mode_name);
      return 64;
    }

  init_start = g_get_monotonic_time ();
  downloader = g_initable_new (BG_TYPE_DOWNLOADER, NULL, &error,
                               "session-id", "bench-stall",
                               "database-path", argv[3],
                               "app-id", app_id,
                               "mode", mode->value,
                               "max-concurrent", (guint) count,
                               NULL);
  init_end = g_get_monotonic_time ();
  if (downloader == NULL)
    {
      g_printerr ("bench-stall: %s\n", error->message);
      return 1;
    }

  tasks = bg_task_queue_get_tasks (BG_TASK_QUEUE (downloader));
  g_signal_connect (tasks, "items-changed", G_CALLBACK (tasks_changed_cb), &state);
  tasks_changed_cb (tasks, 0, 0, g_list_model_get_n_items (tasks), &state);

  loop = g_main_loop_new (NULL, FALSE);
  state.loop = loop;
  state.lateness = g_array_sized_new (FALSE, FALSE, sizeof (gint64), 65536);

  state.start = g_get_monotonic_time ();
  state.running = TRUE;
  for (int i = 0; i < count; i++)
    {
      g_autoptr(SoupMessage) msg = soup_message_new ("GET", argv[1]);
      g_autoptr(GFile) destination = NULL;
      g_autofree char *identifier = NULL;

      if (msg == NULL)
        {
          g_printerr ("bench-stall: not a URL: %s\n", argv[1]);
          return 64;
        }
      if (count == 1)
        {
          destination = g_file_new_for_commandline_arg (argv[2]);
          identifier = g_strdup ("bench-stall");
        }
      else
        {
          g_autofree char *path = g_strdup_printf ("%s-%d", argv[2], i + 1);

          destination = g_file_new_for_commandline_arg (path);
          identifier = g_strdup_printf ("bench-stall-%d", i + 1);
        }
      state.pending++;
      bg_downloader_download_async (downloader, msg, destination, identifier, NULL, NULL,
                                    download_done_cb, &state);
    }
  submitted = g_get_monotonic_time ();

  /* The ticks start once every download was asked for: the time the calls themselves took is
   * submit_ms. */
  timer = g_timeout_source_new (1);
  g_source_set_callback (timer, tick_cb, &state, NULL);
  g_source_attach (timer, NULL);
  g_main_loop_run (loop);
  g_source_destroy (timer);
  g_signal_handlers_disconnect_by_data (tasks, &state);

  if (state.failed > 0)
    {
      g_printerr ("bench-stall: %u of %d downloads failed\n", state.failed, count);
      g_array_unref (state.lateness);
      return 1;
    }

  g_array_sort (state.lateness, compare_gint64);
  for (guint i = 0; i < state.lateness->len; i++)
    if (g_array_index (state.lateness, gint64, i) > 10 * 1000)
      over++;

  g_print ("ticks=%u p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f over_10ms=%u "
           "worst_at_s=%.3f seconds=%.3f bytes=%" G_GOFFSET_FORMAT " progress=%" G_GUINT64_FORMAT
           " init_ms=%.1f submit_ms=%.1f\n",
           state.lateness->len,
           percentile_ms (state.lateness, 0.50),
           percentile_ms (state.lateness, 0.99),
           percentile_ms (state.lateness, 0.999),
           state.worst / 1000.0,
           over,
           state.worst_at / (double) G_USEC_PER_SEC,
           (state.end - state.start) / (double) G_USEC_PER_SEC,
           state.bytes,
           state.progress,
           (init_end - init_start) / 1000.0,
           (submitted - state.start) / 1000.0);

  g_array_unref (state.lateness);

  return 0;
}
