/* bench-hundred-k.c: submitting and restoring 100,000 queued downloads
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Usage:
 *   bench-hundred-k submit [OPTIONS] DATABASE FOLDER
 *   bench-hundred-k restore [OPTIONS] DATABASE
 *
 * "submit" makes a BgDownloader on DATABASE (which should not exist yet) and submits --count
 * downloads (100,000 by default) into FOLDER with bg_downloader_download_async(), --batch of
 * them (200 by default) per main-loop turn, from an idle, as an app that imports a long list
 * would.  Nothing may start; --hold says how they are held:
 *
 *   queued     (the default) max-concurrent 1 and every URL at a port on 127.0.0.1 where this
 *              program listens without ever accepting: the first task's attempt connects (the
 *              kernel completes the handshake) and then waits for an answer that never comes,
 *              with stall-timeout 0, so every other task stays QUEUED behind it, which is what
 *              a long download list looks like to the engine
 *   paused     the queue is paused before the first submit: every task WAITING (paused)
 *   scheduled  every task has an earliest-start a day ahead: every task WAITING (scheduled)
 *
 * With --priorities, the tasks' priorities go round -1, 0, 1, 2 (otherwise all 0), so a
 * task submitted later often goes before many earlier ones.
 *
 * A repeating 1 ms timeout on the same main context records how late each tick fires, from the
 * first submit until every task is queued, that is until the first default-priority idle after
 * the last batch found each of them listed and no longer new.  Then the program reads VmRSS and
 * VmHWM from /proc/self/status and prints one line of key=value pairs:
 *   submit_ms    the time spent inside bg_downloader_download_async(), all calls together
 *   queued_ms    from the first submit until every task is queued (committed and announced)
 *   max_ms, p99_ms, over_10ms, ticks   the worst tick and the lateness percentiles
 *   rss_mib, hwm_mib   VmRSS and VmHWM once all are queued
 *   tasks        the number of tasks in the queue's list
 * With --cancel it then cancels every task, the last submitted first, and prints cancel_ms, the
 * time those calls took.
 *
 * "restore" makes a BgDownloader on DATABASE (held as --hold says; with "queued" and --port it
 * listens on that port again the same way, so that the first task hangs and the rest stay
 * queued) and times
 * bg_downloader_restore_async() from the call to its callback, with the same 1 ms timer around
 * it.  It prints open_ms, restore_ms, idle_ms (until the main loop runs an idle again), max_ms,
 * p99_ms, over_10ms, rss_mib, hwm_mib and tasks.
 *
 * Exits 0, 1 on a failure, 64 on a usage error.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bg-glib.h>

typedef enum
{
  HOLD_QUEUED,
  HOLD_PAUSED,
  HOLD_SCHEDULED,
} Hold;

typedef struct
{
  GMainLoop    *loop;
  BgDownloader *downloader;
  GArray       *lateness;    /* gint64 µs */
  gint64        worst;
  gboolean      ticking;

  /* submit */
  Hold          hold;
  const char   *folder;
  char         *url_base;
  guint         count;
  guint         batch;
  guint         next;
  gboolean      priorities;
  gboolean      cancel;
  BgTaskOptions *options[4];
  guint16       port;
  gint64        submit_us;
  guint         failed;

  /* restore */
  gint64        start;
  gint64        done;
  gint64        idle;
  gboolean      ok;
} State;

static gboolean
tick_cb (gpointer user_data)
{
  State *state = user_data;
  gint64 due = g_source_get_ready_time (g_main_current_source ());
  gint64 late;

  if (!state->ticking || due < 0)
    return G_SOURCE_CONTINUE;

  late = MAX (0, g_get_monotonic_time () - due);
  g_array_append_val (state->lateness, late);
  state->worst = MAX (state->worst, late);

  return G_SOURCE_CONTINUE;
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

/* VmRSS and VmHWM in MiB. */
static void
read_rss (double *rss,
          double *hwm)
{
  g_autofree char *status = NULL;
  const char *line;

  *rss = *hwm = -1;
  if (!g_file_get_contents ("/proc/self/status", &status, NULL, NULL))
    return;
  if ((line = strstr (status, "VmRSS:")) != NULL)
    *rss = g_ascii_strtod (line + 6, NULL) / 1024.0;
  if ((line = strstr (status, "VmHWM:")) != NULL)
    *hwm = g_ascii_strtod (line + 6, NULL) / 1024.0;
}

static void
print_stalls (State *state)
{
  guint over = 0;

  g_array_sort (state->lateness, compare_gint64);
  for (guint i = 0; i < state->lateness->len; i++)
    if (g_array_index (state->lateness, gint64, i) > 10 * 1000)
      over++;

  g_print (" max_ms=%.3f p99_ms=%.3f over_10ms=%u ticks=%u",
           state->worst / 1000.0, percentile_ms (state->lateness, 0.99), over,
           state->lateness->len);
}

/* A socket on 127.0.0.1 that listens and never accepts: a connection completes in the kernel's
 * backlog and its request is never answered. */
static GSocket *
listen_silently (guint16 *port)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new (loopback, *port);
  g_autoptr(GSocketAddress) bound = NULL;

  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP,
                         &error);
  if (socket == NULL ||
      !g_socket_bind (socket, address, TRUE, &error) ||
      !g_socket_listen (socket, &error) ||
      (bound = g_socket_get_local_address (socket, &error)) == NULL)
    {
      g_printerr ("bench-hundred-k: %s\n", error->message);
      return NULL;
    }

  *port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));

  return g_steal_pointer (&socket);
}

static BgDownloader *
make_downloader (const char *database,
                 Hold        hold)
{
  g_autoptr(GError) error = NULL;
  BgDownloader *downloader;

  downloader = g_initable_new (BG_TYPE_DOWNLOADER, NULL, &error,
                               "session-id", "bench-hundred-k",
                               "database-path", database,
                               "max-concurrent", 1,
                               "stall-timeout", 0,
                               "paused", hold == HOLD_PAUSED,
                               NULL);
  if (downloader == NULL)
    g_printerr ("bench-hundred-k: %s\n", error->message);

  return downloader;
}

static void
download_done_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  State *state = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(BgResponse) response = NULL;

  /* Only a refused submit ends here while the program runs. */
  response = bg_downloader_download_finish (BG_DOWNLOADER (source), result, &error);
  if (response == NULL && !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    {
      g_printerr ("bench-hundred-k: %s\n", error->message);
      state->failed++;
    }
}

/* Every task listed, and none still waiting for its submit to be committed. */
static gboolean
all_queued_idle (gpointer user_data)
{
  State *state = user_data;
  GListModel *tasks = bg_downloader_get_tasks (state->downloader);
  guint n = g_list_model_get_n_items (tasks);

  if (n < state->count && state->failed == 0)
    return G_SOURCE_CONTINUE;

  g_main_loop_quit (state->loop);

  return G_SOURCE_REMOVE;
}

static gboolean
submit_batch_idle (gpointer user_data)
{
  State *state = user_data;
  guint end = MIN (state->count, state->next + state->batch);
  gint64 start = g_get_monotonic_time ();

  for (; state->next < end; state->next++)
    {
      g_autofree char *uri = g_strdup_printf ("%s/%08u.bin", state->url_base, state->next);
      g_autofree char *path = g_strdup_printf ("%s/file-%08u.bin", state->folder, state->next);
      g_autofree char *identifier = g_strdup_printf ("bench/hundred-k/%08u", state->next);
      g_autoptr(SoupMessage) msg = soup_message_new ("GET", uri);
      g_autoptr(GFile) destination = g_file_new_for_path (path);
      BgTaskOptions *options = NULL;

      if (state->priorities || state->hold == HOLD_SCHEDULED)
        options = state->options[state->next % 4];

      bg_downloader_download_async (state->downloader, msg, destination, identifier, options,
                                    NULL, download_done_cb, state);
    }
  state->submit_us += g_get_monotonic_time () - start;

  if (state->next < state->count)
    return G_SOURCE_CONTINUE;

  g_idle_add_full (G_PRIORITY_DEFAULT, all_queued_idle, state, NULL);

  return G_SOURCE_REMOVE;
}

static int
submit (const char *database,
        const char *folder,
        State      *state)
{
  g_autoptr(BgDownloader) downloader = NULL;
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  g_autoptr(GSocket) listener = NULL;
  g_autoptr(GSource) timer = NULL;
  g_autoptr(GDateTime) tomorrow = NULL;
  guint16 port = state->port;
  gint64 start;
  gint64 queued;
  double rss, hwm;

  if (state->hold == HOLD_QUEUED && (listener = listen_silently (&port)) == NULL)
    return 1;
  if (port == 0)
    port = 9;  /* discard: nothing listens there on a test machine */

  downloader = make_downloader (database, state->hold);
  if (downloader == NULL)
    return 1;

  {
    g_autoptr(GDateTime) now = g_date_time_new_now_utc ();

    tomorrow = g_date_time_add_days (now, 1);
  }
  for (int i = 0; i < 4; i++)
    {
      state->options[i] = bg_task_options_new ();
      if (state->priorities)
        bg_task_options_set_priority (state->options[i], i - 1);
      if (state->hold == HOLD_SCHEDULED)
        bg_task_options_set_earliest_start (state->options[i], tomorrow);
    }

  state->loop = loop;
  state->downloader = downloader;
  state->folder = folder;
  state->url_base = g_strdup_printf ("http://127.0.0.1:%u", port);
  state->lateness = g_array_sized_new (FALSE, FALSE, sizeof (gint64), 65536);

  timer = g_timeout_source_new (1);
  g_source_set_callback (timer, tick_cb, state, NULL);
  g_source_attach (timer, NULL);
  g_idle_add_full (G_PRIORITY_DEFAULT_IDLE, submit_batch_idle, state, NULL);

  start = g_get_monotonic_time ();
  state->ticking = TRUE;
  g_main_loop_run (loop);
  state->ticking = FALSE;
  queued = g_get_monotonic_time ();
  read_rss (&rss, &hwm);
  g_source_destroy (timer);

  g_print ("submit_ms=%.1f queued_ms=%.1f",
           state->submit_us / 1000.0, (queued - start) / 1000.0);
  print_stalls (state);
  g_print (" rss_mib=%.1f hwm_mib=%.1f tasks=%u count=%u batch=%u\n", rss, hwm,
           g_list_model_get_n_items (bg_downloader_get_tasks (downloader)),
           state->count, state->batch);
  fflush (stdout);

  if (state->cancel)
    {
      gint64 cancel_start = g_get_monotonic_time ();

      /* Last first: each one is then as far from the head of the queue as it can be. */
      for (guint i = state->count; i-- > 0;)
        {
          g_autofree char *identifier = g_strdup_printf ("bench/hundred-k/%08u", i);

          bg_downloader_cancel (downloader, identifier, NULL);
        }
      g_print ("cancel_ms=%.1f\n", (g_get_monotonic_time () - cancel_start) / 1000.0);
    }

  for (int i = 0; i < 4; i++)
    g_clear_object (&state->options[i]);
  g_array_unref (state->lateness);
  g_free (state->url_base);

  return state->failed == 0 ? 0 : 1;
}

static gboolean
after_restore_idle (gpointer user_data)
{
  State *state = user_data;

  state->idle = g_get_monotonic_time ();
  g_main_loop_quit (state->loop);

  return G_SOURCE_REMOVE;
}

static void
restore_done_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  State *state = user_data;
  g_autoptr(GError) error = NULL;

  state->done = g_get_monotonic_time ();
  state->ok = bg_downloader_restore_finish (BG_DOWNLOADER (source), result, &error);
  if (!state->ok)
    g_printerr ("bench-hundred-k: %s\n", error->message);

  g_idle_add_full (G_PRIORITY_DEFAULT, after_restore_idle, state, NULL);
}

static int
restore (const char *database,
         State      *state)
{
  g_autoptr(BgDownloader) downloader = NULL;
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  g_autoptr(GSource) timer = NULL;
  g_autoptr(GSocket) listener = NULL;
  guint16 port = state->port;
  gint64 open_start;
  gint64 open_end;
  double rss, hwm;

  if (state->hold == HOLD_QUEUED && port != 0 && (listener = listen_silently (&port)) == NULL)
    return 1;

  open_start = g_get_monotonic_time ();
  downloader = make_downloader (database, state->hold);
  open_end = g_get_monotonic_time ();
  if (downloader == NULL)
    return 1;

  state->loop = loop;
  state->lateness = g_array_sized_new (FALSE, FALSE, sizeof (gint64), 65536);
  timer = g_timeout_source_new (1);
  g_source_set_callback (timer, tick_cb, state, NULL);
  g_source_attach (timer, NULL);

  state->ticking = TRUE;
  state->start = g_get_monotonic_time ();
  bg_downloader_restore_async (downloader, NULL, restore_done_cb, state);
  g_main_loop_run (loop);
  state->ticking = FALSE;
  read_rss (&rss, &hwm);
  g_source_destroy (timer);

  if (!state->ok)
    return 1;

  g_print ("open_ms=%.2f restore_ms=%.2f idle_ms=%.2f",
           (open_end - open_start) / 1000.0,
           (state->done - state->start) / 1000.0,
           (state->idle - state->start) / 1000.0);
  print_stalls (state);
  g_print (" rss_mib=%.1f hwm_mib=%.1f tasks=%u\n", rss, hwm,
           g_list_model_get_n_items (bg_downloader_get_tasks (downloader)));
  fflush (stdout);
  g_array_unref (state->lateness);

  return 0;
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GOptionContext) context = NULL;
  g_autofree char *hold = NULL;
  int count = 100000;
  int batch = 200;
  int port = 0;
  gboolean priorities = FALSE;
  gboolean cancel = FALSE;
  State state = { 0 };
  const GOptionEntry entries[] = {
    { "count", 0, 0, G_OPTION_ARG_INT, &count, "submit this many downloads (100000)", "N" },
    { "batch", 0, 0, G_OPTION_ARG_INT, &batch, "submits per main-loop turn (200)", "N" },
    { "port", 0, 0, G_OPTION_ARG_INT, &port,
      "with --hold queued, the port on 127.0.0.1 to listen on (any free port)", "PORT" },
    { "hold", 0, 0, G_OPTION_ARG_STRING, &hold,
      "queued (the default), paused or scheduled", "HOW" },
    { "priorities", 0, 0, G_OPTION_ARG_NONE, &priorities,
      "priorities -1, 0, 1, 2 in turn instead of all 0", NULL },
    { "cancel", 0, 0, G_OPTION_ARG_NONE, &cancel,
      "then cancel every task, last submitted first, and time it", NULL },
    G_OPTION_ENTRY_NULL
  };

  context = g_option_context_new ("submit DATABASE FOLDER | restore DATABASE");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("bench-hundred-k: %s\n", error->message);
      return 64;
    }

  if (hold == NULL || g_str_equal (hold, "queued"))
    state.hold = HOLD_QUEUED;
  else if (g_str_equal (hold, "paused"))
    state.hold = HOLD_PAUSED;
  else if (g_str_equal (hold, "scheduled"))
    state.hold = HOLD_SCHEDULED;
  else
    {
      g_printerr ("bench-hundred-k: unknown --hold %s (queued, paused or scheduled)\n", hold);
      return 64;
    }
  state.count = (guint) MAX (count, 1);
  state.batch = (guint) MAX (batch, 1);
  state.priorities = priorities;
  state.cancel = cancel;
  state.port = (guint16) CLAMP (port, 0, 65535);

  if (argc == 4 && g_str_equal (argv[1], "submit"))
    return submit (argv[2], argv[3], &state);
  if (argc == 3 && g_str_equal (argv[1], "restore"))
    return restore (argv[2], &state);

  g_printerr ("Usage: %s submit [OPTION...] DATABASE FOLDER\n"
              "       %s restore [OPTION...] DATABASE\n", argv[0], argv[0]);
  return 64;
}
