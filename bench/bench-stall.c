/* bench-stall.c: how late a 1 ms main-loop timer fires while a BgDownloader downloads
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Usage: bench-stall URL DESTINATION DATABASE
 *
 * Runs a repeating 1 ms GLib timeout on the same main context as a BgDownloader that downloads
 * URL to DESTINATION (which must not exist).  At every tick it records how late the tick is:
 * the time now minus the time the timeout became due.  Ticks are recorded from the call to
 * bg_downloader_download_async() until its callback.  On success it prints one line of
 * key=value pairs:
 *   ticks       number of ticks recorded
 *   p50_ms, p99_ms, p999_ms, max_ms   lateness percentiles and the worst tick
 *   over_10ms   ticks more than 10 ms late
 *   worst_at_s  when the worst tick happened, seconds after the download started
 *   seconds     the download's wall time
 *   bytes       the size of the downloaded file
 * and exits 0; 1 when the download did not succeed.
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
  gboolean   ok;
  goffset    bytes;
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

  state->end = g_get_monotonic_time ();
  state->running = FALSE;

  response = bg_downloader_download_finish (BG_DOWNLOADER (source), result, &error);
  if (response == NULL)
    {
      g_printerr ("bench-stall: %s\n", error->message);
    }
  else if (bg_response_get_kind (response) != BG_RESPONSE_SUCCESS)
    {
      const GError *response_error = bg_response_get_error (response);

      g_printerr ("bench-stall: HTTP %u %s\n", bg_response_get_status (response),
                  response_error != NULL ? response_error->message : "");
    }
  else
    {
      g_autoptr(GFileInfo) info =
        g_file_query_info (bg_response_get_file (response), G_FILE_ATTRIBUTE_STANDARD_SIZE,
                           G_FILE_QUERY_INFO_NONE, NULL, NULL);

      state->bytes = info != NULL ? g_file_info_get_size (info) : -1;
      state->ok = TRUE;
    }

  g_main_loop_quit (state->loop);
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
  g_autoptr(BgDownloader) downloader = NULL;
  g_autoptr(GMainLoop) loop = NULL;
  g_autoptr(SoupMessage) msg = NULL;
  g_autoptr(GFile) destination = NULL;
  g_autoptr(GSource) timer = NULL;
  State state = { 0 };
  guint over = 0;

  if (argc != 4)
    {
      g_printerr ("Usage: %s URL DESTINATION DATABASE\n", argv[0]);
      return 64;
    }

  downloader = g_initable_new (BG_TYPE_DOWNLOADER, NULL, &error,
                               "session-id", "bench-stall",
                               "database-path", argv[3],
                               NULL);
  if (downloader == NULL)
    {
      g_printerr ("bench-stall: %s\n", error->message);
      return 1;
    }

  msg = soup_message_new ("GET", argv[1]);
  if (msg == NULL)
    {
      g_printerr ("bench-stall: not a URL: %s\n", argv[1]);
      return 64;
    }
  destination = g_file_new_for_commandline_arg (argv[2]);

  loop = g_main_loop_new (NULL, FALSE);
  state.loop = loop;
  state.lateness = g_array_sized_new (FALSE, FALSE, sizeof (gint64), 65536);

  timer = g_timeout_source_new (1);
  g_source_set_callback (timer, tick_cb, &state, NULL);
  g_source_attach (timer, NULL);

  state.start = g_get_monotonic_time ();
  state.running = TRUE;
  bg_downloader_download_async (downloader, msg, destination, "bench-stall", NULL, NULL,
                                download_done_cb, &state);
  g_main_loop_run (loop);
  g_source_destroy (timer);

  if (!state.ok)
    {
      g_array_unref (state.lateness);
      return 1;
    }

  g_array_sort (state.lateness, compare_gint64);
  for (guint i = 0; i < state.lateness->len; i++)
    if (g_array_index (state.lateness, gint64, i) > 10 * 1000)
      over++;

  g_print ("ticks=%u p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f over_10ms=%u "
           "worst_at_s=%.3f seconds=%.3f bytes=%" G_GOFFSET_FORMAT "\n",
           state.lateness->len,
           percentile_ms (state.lateness, 0.50),
           percentile_ms (state.lateness, 0.99),
           percentile_ms (state.lateness, 0.999),
           state.worst / 1000.0,
           over,
           state.worst_at / (double) G_USEC_PER_SEC,
           (state.end - state.start) / (double) G_USEC_PER_SEC,
           state.bytes);

  g_array_unref (state.lateness);

  return 0;
}
