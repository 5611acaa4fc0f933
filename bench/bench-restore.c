/* bench-restore.c: how long restore takes with many unfinished tasks in the database
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Usage:
 *   bench-restore fill DATABASE COUNT FOLDER URL-BASE
 *   bench-restore restore DATABASE
 *
 * "fill" writes COUNT unfinished download records straight into the store at DATABASE, as an
 * earlier run that was killed would have left them: half still queued, half cut off in the
 * middle of an attempt with a checkpoint, a total and an ETag.  Their destinations are in FOLDER
 * and their URLs are URL-BASE/NNNNNNNN.bin (bench/run points them at a port where nothing
 * listens, so an attempt that does start ends at once).
 *
 * "restore" opens a BgDownloader on DATABASE with max-concurrent 1 and times
 * bg_downloader_restore_async() from the call to its callback, then exits without waiting for
 * the tasks.  It prints one line of key=value pairs:
 *   open_ms      constructing the downloader (opening the database), not part of restore
 *   restore_ms   bg_downloader_restore_async() to its callback
 *   idle_ms      the same call to the first default-priority idle after the callback, that is
 *                until the main loop is free again
 *   tasks        the number of tasks the downloader knows afterwards
 */

#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "bg-downloader-private.h"
#include "bg-http-private.h"
#include "bg-store-private.h"

static int
fill (const char *database,
      guint       count,
      const char *folder,
      const char *url_base)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(BgStore) store = NULL;
  g_autoptr(SoupMessageHeaders) headers = NULL;
  g_autofree char *encoded = NULL;
  gint64 start = g_get_monotonic_time ();
  gint64 now = g_get_real_time ();

  store = bg_store_open (database, &error);
  if (store == NULL)
    {
      g_printerr ("bench-restore: %s\n", error->message);
      return 1;
    }

  headers = soup_message_headers_new (SOUP_MESSAGE_HEADERS_REQUEST);
  soup_message_headers_append (headers, "Accept", "*/*");
  soup_message_headers_append (headers, "User-Agent", "bench-restore");
  encoded = bg_http_encode_headers (headers);

  for (guint i = 0; i < count; i++)
    {
      g_autoptr(BgStoreRecord) record = bg_store_record_new ();

      record->identifier = g_strdup_printf ("bench/restore/%08u", i);
      record->kind = BG_TASK_KIND_DOWNLOAD;
      record->method = g_strdup ("GET");
      record->uri = g_strdup_printf ("%s/%08u.bin", url_base, i);
      record->request_headers = g_strdup (encoded);
      record->file_path = g_strdup_printf ("%s/file-%08u.bin", folder, i);
      record->partial_path = g_strdup_printf ("%s/.bg-%08x%024u.part", folder,
                                              g_str_hash (record->identifier), i);
      record->total = -1;
      record->source_size = -1;
      record->created_at = now - (count - i);
      record->updated_at = record->created_at;

      if (i % 2 == 0)
        {
          record->state = BG_TASK_STATE_QUEUED;
        }
      else
        {
          /* Cut off mid-attempt by the earlier run. */
          record->state = BG_TASK_STATE_RUNNING;
          record->checkpoint = 8 * 1024 * 1024;
          record->total = 64 * 1024 * 1024;
          record->etag = g_strdup_printf ("\"%08x-4000000\"", i);
          record->attempts = 1;
        }

      if (!bg_store_save (store, record, &error))
        {
          g_printerr ("bench-restore: record %u: %s\n", i, error->message);
          return 1;
        }
    }

  g_print ("fill_ms=%.1f records=%u\n",
           (g_get_monotonic_time () - start) / 1000.0, count);

  return 0;
}

typedef struct
{
  GMainLoop *loop;
  gint64     start;
  gint64     done;
  gint64     idle;
  gboolean   ok;
} RestoreState;

static gboolean
after_restore_idle (gpointer user_data)
{
  RestoreState *state = user_data;

  state->idle = g_get_monotonic_time ();
  g_main_loop_quit (state->loop);

  return G_SOURCE_REMOVE;
}

static void
restore_done_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  RestoreState *state = user_data;
  g_autoptr(GError) error = NULL;

  state->done = g_get_monotonic_time ();
  state->ok = bg_downloader_restore_finish (BG_DOWNLOADER (source), result, &error);
  if (!state->ok)
    g_printerr ("bench-restore: %s\n", error->message);

  g_idle_add_full (G_PRIORITY_DEFAULT, after_restore_idle, state, NULL);
}

static int
restore (const char *database)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(BgDownloader) downloader = NULL;
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  RestoreState state = { 0 };
  gint64 open_start;
  gint64 open_end;
  guint n_tasks;

  open_start = g_get_monotonic_time ();
  downloader = g_initable_new (BG_TYPE_DOWNLOADER, NULL, &error,
                               "session-id", "bench-restore",
                               "database-path", database,
                               "max-concurrent", 1,
                               NULL);
  open_end = g_get_monotonic_time ();
  if (downloader == NULL)
    {
      g_printerr ("bench-restore: %s\n", error->message);
      return 1;
    }

  state.loop = loop;
  state.start = g_get_monotonic_time ();
  bg_downloader_restore_async (downloader, NULL, restore_done_cb, &state);
  g_main_loop_run (loop);

  if (!state.ok)
    return 1;

  n_tasks = g_list_model_get_n_items (bg_downloader_get_tasks (downloader));

  g_print ("open_ms=%.2f restore_ms=%.2f idle_ms=%.2f tasks=%u\n",
           (open_end - open_start) / 1000.0,
           (state.done - state.start) / 1000.0,
           (state.idle - state.start) / 1000.0,
           n_tasks);
  fflush (stdout);

  return 0;
}

int
main (int   argc,
      char *argv[])
{
  if (argc == 6 && g_str_equal (argv[1], "fill"))
    return fill (argv[2], (guint) strtoul (argv[3], NULL, 10), argv[4], argv[5]);
  if (argc == 3 && g_str_equal (argv[1], "restore"))
    return restore (argv[2]);

  g_printerr ("Usage: %s fill DATABASE COUNT FOLDER URL-BASE\n"
              "       %s restore DATABASE\n", argv[0], argv[0]);
  return 64;
}
