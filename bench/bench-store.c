/* bench-store.c: how long the task database makes the main loop wait
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Usage: bench-store [FOLDER]
 *
 * Times, one call at a time, the writes the engine makes on the main loop: bg_store_save() of a
 * new record, bg_store_save() of a state change to an existing one, and bg_store_save_progress()
 * (back to back, then paced), and prints the median, the 99th percentile and the worst case of
 * each.  Then it fills the
 * database to 10,000 records in one burst (timing each save again) and times
 * bg_store_load_all(), which restore runs at startup.
 *
 * The database goes in a new temporary folder inside FOLDER (default: the system's temporary
 * folder), which is removed afterwards.  Pick a FOLDER on the disk you care about: on tmpfs
 * nothing ever waits for the disk.
 */

#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <glib/gstdio.h>

#include "bg-store-private.h"

#define N_COMMITS 2000
#define N_RECORDS 10000
#define N_LOADS   5

static gint64
now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (gint64) ts.tv_sec * G_GINT64_CONSTANT (1000000000) + ts.tv_nsec;
}

static int
compare_gint64 (gconstpointer a,
                gconstpointer b)
{
  gint64 x = *(const gint64 *) a;
  gint64 y = *(const gint64 *) b;

  return (x > y) - (x < y);
}

static void
report (const char *what,
        gint64     *samples,
        guint       n)
{
  qsort (samples, n, sizeof *samples, compare_gint64);
  printf ("%-28s n=%-5u p50 %8.1f µs   p99 %8.1f µs   max %8.1f µs\n",
          what, n,
          samples[n / 2] / 1000.0,
          samples[MIN (n - 1, (n * 99) / 100)] / 1000.0,
          samples[n - 1] / 1000.0);
}

/* What the engine stores for a download in flight. */
static BgStoreRecord *
typical_record (guint i)
{
  BgStoreRecord *record = bg_store_record_new ();
  gint64 now = g_get_real_time ();

  record->kind = BG_TASK_KIND_DOWNLOAD;
  record->identifier = g_strdup_printf ("com.example.App/attachments/%08u", i);
  record->state = BG_TASK_STATE_QUEUED;
  record->method = g_strdup ("GET");
  record->uri = g_strdup_printf ("https://cdn.example.com/v2/attachments/%08u/"
                                 "report-2024-final.pdf?sig=3f9a1c0be84d2a7f", i);
  record->request_headers = g_strdup ("Accept: */*\nAccept-Language: en-GB\n"
                                      "User-Agent: example-app/1.4 bg-glib/0.1\n");
  record->file_path = g_strdup_printf ("/home/user/Downloads/report-%08u.pdf", i);
  record->partial_path = g_strdup_printf ("/home/user/Downloads/.bg-%08x.partial",
                                          g_str_hash (record->identifier));
  record->total = 48 * 1024 * 1024;
  record->etag = g_strdup ("\"5f3a9c-2e00000-61b2c9a1\"");
  record->last_modified = g_strdup ("Tue, 02 Jan 2024 10:00:00 GMT");
  record->created_at = now;
  record->updated_at = now;

  return record;
}

static void
remove_tree (const char *path)
{
  GDir *dir = g_dir_open (path, 0, NULL);
  const char *name;

  if (dir != NULL)
    {
      while ((name = g_dir_read_name (dir)) != NULL)
        {
          g_autofree char *child = g_build_filename (path, name, NULL);

          if (g_file_test (child, G_FILE_TEST_IS_DIR) &&
              !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
            remove_tree (child);
          else
            g_unlink (child);
        }
      g_dir_close (dir);
    }

  g_rmdir (path);
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GError) error = NULL;
  g_autoptr(BgStore) store = NULL;
  g_autoptr(GPtrArray) records = NULL;
  g_autofree gint64 *samples = g_new (gint64, N_COMMITS);
  g_autofree gint64 *fill_samples = g_new (gint64, N_RECORDS);
  g_autofree char *dir = NULL;
  g_autofree char *xdg = NULL;
  g_autofree char *path = NULL;
  g_autofree char *wal = NULL;
  GStatBuf st;
  gint64 best_load = G_MAXINT64;
  gint64 first_load = 0;
  gint64 fill_start;
  gint64 fill_elapsed;
  guint n_loaded = 0;

  records = g_ptr_array_new_with_free_func ((GDestroyNotify) bg_store_record_free);

  dir = g_build_filename (argc > 1 ? argv[1] : g_get_tmp_dir (), "bench-store-XXXXXX", NULL);
  if (g_mkdtemp (dir) == NULL)
    {
      fprintf (stderr, "bench-store: could not make a temporary folder: %s\n", g_strerror (errno));
      return 1;
    }

  /* libgda writes its configuration under XDG_DATA_HOME: keep it in the temporary folder. */
  xdg = g_build_filename (dir, "xdg-data", NULL);
  g_setenv ("XDG_DATA_HOME", xdg, TRUE);

  path = g_build_filename (dir, "bench.sqlite", NULL);
  store = bg_store_open (path, &error);
  if (store == NULL)
    {
      fprintf (stderr, "bench-store: %s\n", error->message);
      remove_tree (dir);
      return 1;
    }

  printf ("bench-store: %s, %d commits per figure\n", path, N_COMMITS);

  /* New records: the commit before _async returns. */
  for (guint i = 0; i < N_COMMITS; i++)
    {
      BgStoreRecord *record = typical_record (i);
      gint64 start = now_ns ();

      if (!bg_store_save (store, record, &error))
        g_error ("%s", error->message);
      samples[i] = now_ns () - start;
      g_ptr_array_add (records, record);
    }
  report ("save (new record)", samples, N_COMMITS);

  /* State changes: queued → running → waiting → running … on records already there. */
  for (guint i = 0; i < N_COMMITS; i++)
    {
      BgStoreRecord *record = g_ptr_array_index (records, (i * 37) % records->len);
      gint64 start;

      record->state = record->state == BG_TASK_STATE_RUNNING
                      ? BG_TASK_STATE_WAITING : BG_TASK_STATE_RUNNING;
      record->attempts++;
      record->updated_at = g_get_real_time ();

      start = now_ns ();
      if (!bg_store_save (store, record, &error))
        g_error ("%s", error->message);
      samples[i] = now_ns () - start;
    }
  report ("save (state change)", samples, N_COMMITS);

  /* Progress of a handful of running transfers, as the checkpoint timer writes it. */
  for (guint i = 0; i < N_COMMITS; i++)
    {
      BgStoreRecord *record = g_ptr_array_index (records, i % 8);
      gint64 start;

      record->checkpoint += 8 * 1024 * 1024;
      record->updated_at = g_get_real_time ();

      start = now_ns ();
      if (!bg_store_save_progress (store, record, &error))
        g_error ("%s", error->message);
      samples[i] = now_ns () - start;
    }
  report ("save_progress", samples, N_COMMITS);

  /* The same, 1 ms apart: still far more often than transfers report progress, but with room for
   * the background checkpoints to catch up, as in real use. */
  for (guint i = 0; i < N_COMMITS; i++)
    {
      BgStoreRecord *record = g_ptr_array_index (records, i % 8);
      gint64 start;

      record->checkpoint += 8 * 1024 * 1024;
      record->updated_at = g_get_real_time ();

      g_usleep (1000);
      start = now_ns ();
      if (!bg_store_save_progress (store, record, &error))
        g_error ("%s", error->message);
      samples[i] = now_ns () - start;
    }
  report ("save_progress, 1 ms apart", samples, N_COMMITS);

  /* Filling up to N_RECORDS: a long burst of writes, the case where checkpoints lag behind. */
  fill_start = now_ns ();
  for (guint i = records->len; i < N_RECORDS; i++)
    {
      g_autoptr(BgStoreRecord) record = typical_record (i);
      gint64 start = now_ns ();

      if (!bg_store_save (store, record, &error))
        g_error ("%s", error->message);
      fill_samples[i - records->len] = now_ns () - start;
    }
  fill_elapsed = now_ns () - fill_start;
  report ("save (burst of new records)", fill_samples, N_RECORDS - records->len);
  printf ("%-28s %.1f ms in all\n", "", fill_elapsed / 1e6);

  /* Restore at startup. */
  for (guint i = 0; i < N_LOADS; i++)
    {
      g_autoptr(GPtrArray) all = NULL;
      gint64 start = now_ns ();
      gint64 elapsed;

      all = bg_store_load_all (store, BG_TASK_KIND_DOWNLOAD, &error);
      elapsed = now_ns () - start;
      if (all == NULL)
        g_error ("%s", error->message);

      n_loaded = all->len;
      if (i == 0)
        first_load = elapsed;
      best_load = MIN (best_load, elapsed);
    }
  printf ("%-28s %u records: first %.1f ms, best of %d %.1f ms\n", "load_all",
          n_loaded, first_load / 1e6, N_LOADS, best_load / 1e6);

  /* Checkpoints keep the log short; a WAL of many megabytes would mean they do not run. */
  wal = g_strconcat (path, "-wal", NULL);
  if (g_stat (path, &st) == 0)
    printf ("%-28s %.1f MiB\n", "database", st.st_size / 1048576.0);
  if (g_stat (wal, &st) == 0)
    printf ("%-28s %.1f MiB\n", "write-ahead log", st.st_size / 1048576.0);

  g_clear_object (&store);
  remove_tree (dir);

  return 0;
}
