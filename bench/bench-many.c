/* bench-many.c: many small downloads through one BgDownloader
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Usage: bench-many [--ca FILE] LIST FOLDER DATABASE [MAX-CONCURRENT]
 *
 * LIST holds one http:// or https:// URL per line.  With --ca, the downloader's SoupSession
 * trusts the certificates in FILE (PEM) for https:// (bench/run's own CA, for case 12).  Every URL is handed to one BgDownloader at once (with
 * max-concurrent 8 unless told otherwise); each file lands in FOLDER under the last segment of its
 * URL.  The program exits when every task has finished: 0 when all of them succeeded, 1 when any
 * did not (each such task is named on stderr), 64 on a usage error.  On success it prints
 * "N files, BYTES bytes, SECONDS s" to stdout.  bench/run calls it for cases 4 and 12.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bg-glib.h>

#include "bench-list.h"

typedef struct
{
  GMainLoop *loop;
  guint      pending;
  guint      failed;
  guint      submitted;
  guint64    bytes;
} State;

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
      g_printerr ("bench-many: %s\n", error->message);
      state->failed++;
    }
  else if (bg_response_get_kind (response) != BG_RESPONSE_SUCCESS)
    {
      const GError *response_error = bg_response_get_error (response);

      g_printerr ("bench-many: %s: HTTP %u %s\n", bg_response_get_identifier (response),
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
    }

  if (--state->pending == 0)
    g_main_loop_quit (state->loop);
}

/* A session like the one a BgDownloader makes for itself, whose TLS database holds only the
 * certificates in @ca_path. */
static SoupSession *
session_trusting (const char  *ca_path,
                  GError     **error)
{
  g_autoptr(GTlsDatabase) db = bench_list_tls_database (ca_path, error);
  SoupSession *session;

  if (db == NULL)
    return NULL;

  session = soup_session_new_with_options ("user-agent", "bg-glib/" BG_VERSION_S " ",
                                           "max-conns", 64,
                                           "max-conns-per-host", 32,
                                           "timeout", 0,
                                           NULL);
  soup_session_set_tls_database (session, db);

  return session;
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GError) error = NULL;
  g_autofree char *ca_path = NULL;
  g_autoptr(SoupSession) session = NULL;
  g_autoptr(BgDownloader) downloader = NULL;
  g_autoptr(GMainLoop) loop = NULL;
  g_auto(GStrv) lines = NULL;
  State state = { 0 };
  guint max_concurrent;
  gint64 start;
  double seconds;

  lines = bench_list_parse ("bench-many", "LIST FOLDER DATABASE [MAX-CONCURRENT]", 3, &argc,
                            &argv, &ca_path, &max_concurrent);
  if (lines == NULL)
    return 64;

  if (ca_path != NULL)
    {
      session = session_trusting (ca_path, &error);
      if (session == NULL)
        {
          g_printerr ("bench-many: %s: %s\n", ca_path, error->message);
          return 64;
        }
    }

  /* Without --ca, soup-session is NULL and the downloader makes its own. */
  downloader = g_initable_new (BG_TYPE_DOWNLOADER, NULL, &error,
                               "session-id", "bench-many",
                               "database-path", argv[3],
                               "max-concurrent", max_concurrent,
                               "soup-session", session,
                               NULL);
  if (downloader == NULL)
    {
      g_printerr ("bench-many: %s\n", error->message);
      return 1;
    }

  loop = g_main_loop_new (NULL, FALSE);
  state.loop = loop;
  start = g_get_monotonic_time ();

  /* Hold one count until every task is submitted, so an early finish cannot end the loop. */
  state.pending = 1;

  for (guint i = 0; lines[i] != NULL; i++)
    {
      const char *url = g_strstrip (lines[i]);
      g_autoptr(SoupMessage) msg = NULL;
      g_autoptr(GFile) destination = NULL;
      g_autofree char *basename = NULL;
      g_autofree char *identifier = NULL;

      if (*url == '\0')
        continue;

      msg = soup_message_new ("GET", url);
      if (msg == NULL)
        {
          g_printerr ("bench-many: not a URL: %s\n", url);
          return 64;
        }

      basename = g_path_get_basename (g_uri_get_path (soup_message_get_uri (msg)));
      destination = g_file_new_build_filename (argv[2], basename, NULL);
      identifier = g_strdup_printf ("file-%u", i);

      state.pending++;
      state.submitted++;
      bg_downloader_download_async (downloader, msg, destination, identifier, NULL, NULL,
                                    download_done_cb, &state);
    }

  if (--state.pending > 0)
    g_main_loop_run (loop);

  seconds = (g_get_monotonic_time () - start) / (double) G_USEC_PER_SEC;

  if (state.failed > 0)
    {
      g_printerr ("bench-many: %u downloads did not succeed\n", state.failed);
      return 1;
    }

  g_print ("%u files, %" G_GUINT64_FORMAT " bytes, %.3f s\n",
           state.submitted, state.bytes, seconds);

  return 0;
}
