/* test-downloader.c: BgDownloader against the fault server
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <sqlite3.h>

#include "bg-downloader-private.h"
#include "bg-http-private.h"
#include "bg-store-private.h"
#include "test-utils.h"

#define MiB (1024 * 1024)

typedef struct
{
  BgTestServer *server;
  char         *tmp;
  char         *db;
  BgDownloader *downloader;
  guint         finished_count;
  BgResponse   *last_finished;
} Fixture;

static void
on_task_finished (BgDownloader *downloader,
                  BgTask       *task,
                  BgResponse   *response,
                  Fixture      *f)
{
  f->finished_count++;
  g_set_object (&f->last_finished, response);
}

static BgDownloader *
open_downloader (Fixture *f)
{
  g_autoptr(GError) error = NULL;
  BgDownloader *downloader;

  downloader = g_initable_new (BG_TYPE_DOWNLOADER, NULL, &error,
                               "session-id", "test",
                               "database-path", f->db,
                               "max-attempts", 1,
                               "stall-timeout", 30,
                               "mode", bg_test_mode (),
                               "app-id", bg_test_app_id (),
                               NULL);
  g_assert_no_error (error);
  /* Shorter than retry-delay can say, for the tests that retry; the service keeps its own. */
  if (bg_downloader_get_engine (downloader) != NULL)
    bg_engine_set_backoff (bg_downloader_get_engine (downloader), 50, 200);
  g_signal_connect (downloader, "task-finished", G_CALLBACK (on_task_finished), f);

  return downloader;
}

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  f->server = bg_test_server_new (NULL, FALSE);
  f->tmp = bg_test_make_tmpdir ();
  f->db = g_build_filename (f->tmp, "tasks.sqlite", NULL);
  f->downloader = open_downloader (f);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  /* Nothing may keep the downloader alive once the test lets go. */
  if (f->downloader != NULL)
    bg_test_assert_finalized ((gpointer *) &f->downloader);
  g_clear_object (&f->last_finished);
  /* Let closing connections and idles run out. */
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_clear_pointer (&f->server, bg_test_server_free);
  bg_test_rm_rf (f->tmp);
  g_free (f->tmp);
  g_free (f->db);
}

static char *
serve_file (Fixture    *f,
            const char *name,
            gsize       size,
            guint32     seed)
{
  g_autofree char *path = g_build_filename (bg_test_server_get_root (f->server), name, NULL);

  return bg_test_write_random_file (path, size, seed);
}

static char *
dest_path (Fixture    *f,
           const char *name)
{
  return g_build_filename (f->tmp, name, NULL);
}

static void
start_download (Fixture      *f,
                const char   *path_and_query,
                const char   *dest,
                const char   *identifier,
                GCancellable *cancellable,
                GAsyncResult **result)
{
  bg_test_start_download (f->downloader, f->server, path_and_query, dest, identifier,
                          cancellable, result);
}

/* Starts @n downloads of @path_and_query, each under its own identifier NAME0, NAME1... into
 * NAME0.bin, NAME1.bin... in the fixture's folder; @results[i] is set when the i-th ends. */
static void
start_numbered (Fixture       *f,
                const char    *path_and_query,
                const char    *name,
                guint          n,
                GAsyncResult **results)
{
  for (guint i = 0; i < n; i++)
    {
      g_autofree char *dest = g_strdup_printf ("%s/%s%u.bin", f->tmp, name, i);
      g_autofree char *id = g_strdup_printf ("%s%u", name, i);

      start_download (f, path_and_query, dest, id, NULL, &results[i]);
    }
}

/* Downloads @msg as the caller made it (its URI and headers) into @dest: the response, or NULL
 * with @error when the task could not be made. */
static BgResponse *
download_request (Fixture      *f,
                  SoupMessage  *msg,
                  const char   *dest,
                  const char   *identifier,
                  GError      **error)
{
  g_autoptr(GFile) file = g_file_new_for_path (dest);
  g_autoptr(GAsyncResult) result = NULL;

  bg_downloader_download_async (f->downloader, msg, file, identifier, NULL, NULL,
                                bg_test_store_result_cb, &result);
  bg_test_wait_for_result (&result, 60);
  return bg_downloader_download_finish (f->downloader, result, error);
}

static BgResponse *
download (Fixture    *f,
          const char *path_and_query,
          const char *dest,
          const char *identifier)
{
  return bg_test_download (f->downloader, f->server, path_and_query, dest, identifier, 120);
}

/* Restores the fixture's downloader and waits until it has.  In service mode the service's
 * snapshots of tasks not listed yet are listed from then on. */
static void
restore_queue (Fixture *f)
{
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;

  bg_downloader_restore_async (f->downloader, NULL, bg_test_store_result_cb, &result);
  bg_test_wait_for_result (&result, 60);
  g_assert_true (bg_downloader_restore_finish (f->downloader, result, &error));
  g_assert_no_error (error);
}

static void
count_notify (BgTask     *task,
              GParamSpec *pspec,
              guint      *count)
{
  (*count)++;
}

static void
test_happy_path (Fixture       *f,
                 gconstpointer  data)
{
  g_autofree char *sha = serve_file (f, "big.bin", 64 * MiB, 1);
  g_autofree char *dest = dest_path (f, "big.bin");
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *got = NULL;
  GListModel *tasks = bg_downloader_get_tasks (f->downloader);
  g_autoptr(BgTask) task = NULL;
  guint notifies = 0;
  gint64 started;
  double elapsed;
  GStatBuf st;

  started = g_get_monotonic_time ();
  start_download (f, "/files/big.bin", dest, "big", NULL, &result);

  /* Committed and listed before the main loop even runs. */
  g_assert_cmpuint (g_list_model_get_n_items (tasks), ==, 1);
  task = g_list_model_get_item (tasks, 0);
  g_assert_cmpstr (bg_task_get_identifier (task), ==, "big");
  g_assert_cmpint (bg_task_get_kind (task), ==, BG_TASK_KIND_DOWNLOAD);
  g_assert_cmpint (bg_task_get_state (task), ==, BG_TASK_STATE_QUEUED);
  g_signal_connect (task, "notify::bytes-transferred", G_CALLBACK (count_notify), &notifies);
  /* The service holds the database in service mode. */
  if (bg_test_mode () == BG_MODE_IN_PROCESS)
  {
    g_autoptr(BgStore) store = bg_store_open (f->db, &error);
    g_autoptr(BgStoreRecord) record = NULL;

    g_assert_no_error (error);
    record = bg_store_lookup (store, BG_TASK_KIND_DOWNLOAD, "big", &error);
    g_assert_no_error (error);
    g_assert_nonnull (record);
    g_assert_cmpstr (record->file_path, ==, dest);
  }

  bg_test_wait_for_result (&result, 120);
  elapsed = (g_get_monotonic_time () - started) / (double) G_USEC_PER_SEC;
  response = bg_downloader_download_finish (f->downloader, result, &error);
  g_assert_no_error (error);

  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
  g_assert_cmpuint (bg_response_get_status (response), ==, 200);
  g_assert_cmpstr (bg_response_get_identifier (response), ==, "big");
  g_assert_null (bg_response_get_error (response));
  {
    g_autofree char *path = g_file_get_path (bg_response_get_file (response));

    g_assert_cmpstr (path, ==, dest);
  }

  /* What the checkpoints flushed left the page cache (a background download does not push the
   * user's working set out). The first checkpoint covers at least the first 6 MiB. */
  {
    double cached = bg_test_cached_fraction (dest, 6 * MiB);

    if (cached >= 0)
      g_assert_cmpfloat (cached, <, 0.5);
  }

  got = bg_test_sha256_file (dest);
  g_assert_cmpstr (got, ==, sha);
  g_assert_cmpint (g_stat (dest, &st), ==, 0);
  g_assert_cmpint (st.st_size, ==, 64 * MiB);
  g_assert_cmpuint (bg_test_count_partials (f->tmp), ==, 0);

  g_assert_cmpint (bg_task_get_bytes_transferred (task), ==, 64 * MiB);
  g_assert_cmpint (bg_task_get_bytes_total (task), ==, 64 * MiB);
  g_assert_cmpuint (bg_task_get_attempts (task), ==, 1);
  g_assert_cmpint (bg_task_get_state (task), ==, BG_TASK_STATE_FINISHED);
  g_assert_true (bg_task_get_response (task) == response);

  /* Throttled to about ten a second, plus the final one. */
  g_assert_cmpuint (notifies, >=, 1);
  g_assert_cmpuint (notifies, <=, (guint) (elapsed * 10) + 3);

  /* Collected: the task left the database, but stays listed as history until forgotten. */
  g_assert_cmpuint (f->finished_count, ==, 1);
  if (bg_test_mode () == BG_MODE_IN_PROCESS)
  {
    g_autoptr(BgStore) store = bg_store_open (f->db, &error);
    g_autoptr(BgStoreRecord) record = NULL;

    g_assert_no_error (error);
    record = bg_store_lookup (store, BG_TASK_KIND_DOWNLOAD, "big", &error);
    g_assert_no_error (error);
    g_assert_null (record);
  }
  g_assert_cmpuint (g_list_model_get_n_items (tasks), ==, 1);
  g_assert_true (bg_downloader_lookup_task (f->downloader, "big") == task);
  g_assert_true (bg_downloader_forget (f->downloader, "big", &error));
  g_assert_no_error (error);
  g_assert_cmpuint (g_list_model_get_n_items (tasks), ==, 0);
  g_assert_false (bg_downloader_forget (f->downloader, "big", &error));
  g_assert_error (error, BG_ERROR, BG_ERROR_NOT_FOUND);
}

/* Bodies of every length around the 512 KiB buffers a download writes in, the last of which is
 * written together with the file's fsync: each file arrives whole. */
static void
test_sizes_at_buffer_edges (Fixture       *f,
                            gconstpointer  data)
{
  static const gsize sizes[] = { 0, 1, 512 * 1024 - 1, 512 * 1024, 512 * 1024 + 1, MiB + 1 };
  enum { N = G_N_ELEMENTS (sizes) };
  GAsyncResult *results[N] = { NULL, };
  char *shas[N];

  for (guint i = 0; i < N; i++)
    {
      g_autofree char *name = g_strdup_printf ("edge%u.bin", i);

      shas[i] = serve_file (f, name, sizes[i], 60 + i);
    }

  for (guint i = 0; i < N; i++)
    {
      g_autofree char *name = g_strdup_printf ("edge%u.bin", i);
      g_autofree char *path = g_strconcat ("/files/", name, NULL);
      g_autofree char *dest = dest_path (f, name);

      start_download (f, path, dest, name, NULL, &results[i]);
    }

  for (guint i = 0; i < N; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(BgResponse) response = NULL;
      g_autofree char *path = NULL;
      g_autofree char *got = NULL;
      GStatBuf st;

      bg_test_wait_for_result (&results[i], 60);
      response = bg_downloader_download_finish (f->downloader, results[i], &error);
      g_clear_object (&results[i]);
      g_assert_no_error (error);
      g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
      path = g_file_get_path (bg_response_get_file (response));
      got = bg_test_sha256_file (path);
      g_assert_cmpstr (got, ==, shas[i]);
      g_assert_cmpint (g_stat (path, &st), ==, 0);
      g_assert_cmpint (st.st_size, ==, sizes[i]);
    }

  g_assert_cmpuint (bg_test_count_partials (f->tmp), ==, 0);
  for (guint i = 0; i < N; i++)
    g_free (shas[i]);
}

static void
count_items_changed (GListModel *model,
                     guint       position,
                     guint       removed,
                     guint       added,
                     guint      *count)
{
  (*count)++;
}

/* keep-finished FALSE: a collected task leaves the list at once.  TRUE (the default): it stays
 * until forgotten, and a new task of the same identifier takes its place. */
static void
test_keep_finished (Fixture       *f,
                    gconstpointer  data)
{
  GListModel *tasks = bg_downloader_get_tasks (f->downloader);
  g_autoptr(BgResponse) first = NULL;
  g_autoptr(BgResponse) second = NULL;
  g_autoptr(BgResponse) third = NULL;
  g_autofree char *d1 = dest_path (f, "k1.bin");
  g_autofree char *d2 = dest_path (f, "k2.bin");
  g_autofree char *d3 = dest_path (f, "k3.bin");
  g_autoptr(BgTask) old = NULL;

  g_free (serve_file (f, "k.bin", 1000, 63));
  g_assert_true (bg_task_queue_get_keep_finished (BG_TASK_QUEUE (f->downloader)));

  first = download (f, "/files/k.bin", d1, "k");
  g_assert_cmpuint (g_list_model_get_n_items (tasks), ==, 1);
  old = g_list_model_get_item (tasks, 0);
  g_assert_cmpint (bg_task_get_state (old), ==, BG_TASK_STATE_FINISHED);

  /* The same identifier again: a new task, and the old one gives way. */
  g_assert_true (g_unlink (d1) == 0);
  second = download (f, "/files/k.bin", d1, "k");
  g_assert_cmpuint (g_list_model_get_n_items (tasks), ==, 1);
  g_assert_true (bg_downloader_lookup_task (f->downloader, "k") != old);

  /* Turned off: the collected ones leave, and later ones do not stay. */
  bg_task_queue_set_keep_finished (BG_TASK_QUEUE (f->downloader), FALSE);
  g_assert_cmpuint (g_list_model_get_n_items (tasks), ==, 0);
  third = download (f, "/files/k.bin", d2, "k2");
  g_assert_cmpint (bg_response_get_kind (third), ==, BG_RESPONSE_SUCCESS);
  g_assert_cmpuint (g_list_model_get_n_items (tasks), ==, 0);
  g_assert_false (g_file_test (d3, G_FILE_TEST_EXISTS));
}

/* Restoring many tasks adds them to the list in one change. */
static void
test_restore_one_change (Fixture       *f,
                         gconstpointer  data)
{
  GAsyncResult *pending[5] = { NULL, };
  guint changes = 0;

  g_free (serve_file (f, "r1.bin", 1000, 64));
  bg_task_queue_set_max_concurrent (BG_TASK_QUEUE (f->downloader), 1);
  for (guint i = 0; i < G_N_ELEMENTS (pending); i++)
    {
      g_autofree char *name = g_strdup_printf ("later-%u", i);
      g_autofree char *dest = dest_path (f, name);

      /* A server that is slow to answer keeps them unfinished while the downloader closes. */
      start_download (f, "/files/r1.bin?delay=5000", dest, name, NULL, &pending[i]);
    }
  bg_downloader_close (f->downloader);
  g_clear_object (&f->downloader);
  for (guint i = 0; i < G_N_ELEMENTS (pending); i++)
    {
      bg_test_wait_for_result (&pending[i], 30);
      g_clear_object (&pending[i]);
    }

  f->downloader = open_downloader (f);
  g_signal_connect (bg_downloader_get_tasks (f->downloader), "items-changed",
                    G_CALLBACK (count_items_changed), &changes);
  restore_queue (f);
  g_assert_cmpuint (g_list_model_get_n_items (bg_downloader_get_tasks (f->downloader)), ==, 5);
  g_assert_cmpuint (changes, ==, 1);
  g_assert_false (G_IS_LIST_STORE (bg_downloader_get_tasks (f->downloader)));

  /* The list empties when the downloader goes, after this frame is gone. */
  g_signal_handlers_disconnect_by_data (bg_downloader_get_tasks (f->downloader), &changes);
}

static void
test_classification (Fixture       *f,
                     gconstpointer  data)
{
  g_autofree char *dest = dest_path (f, "c.bin");
  g_autoptr(BgResponse) r404 = NULL;
  g_autoptr(BgResponse) r503 = NULL;
  g_autoptr(BgResponse) refused = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new (loopback, 0);
  g_autoptr(GSocketAddress) bound = NULL;
  g_autofree char *url = NULL;
  g_autoptr(SoupMessage) msg = NULL;
  g_autoptr(GFile) file = NULL;
  guint port;

  r404 = download (f, "/files/missing.bin", dest, "c404");
  g_assert_cmpint (bg_response_get_kind (r404), ==, BG_RESPONSE_REJECTED);
  g_assert_cmpuint (bg_response_get_status (r404), ==, 404);
  g_assert_false (g_file_test (dest, G_FILE_TEST_EXISTS));

  r503 = download (f, "/files/missing.bin?status=503&retry-after=7", dest, "c503");
  g_assert_cmpint (bg_response_get_kind (r503), ==, BG_RESPONSE_RETRY);
  g_assert_cmpuint (bg_response_get_status (r503), ==, 503);
  g_assert_cmpint (bg_response_get_retry_after (r503), ==, 7);
  g_assert_nonnull (bg_response_get_headers (r503));

  /* A port nobody listens on: bind one, then close it. */
  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP,
                         &error);
  g_assert_no_error (error);
  g_socket_bind (socket, address, FALSE, &error);
  g_assert_no_error (error);
  bound = g_socket_get_local_address (socket, &error);
  g_assert_no_error (error);
  port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  g_socket_close (socket, NULL);

  url = g_strdup_printf ("http://127.0.0.1:%u/x", port);
  msg = soup_message_new ("GET", url);
  file = g_file_new_for_path (dest);
  bg_downloader_download_async (f->downloader, msg, file, "refused", NULL, NULL,
                                bg_test_store_result_cb, &result);
  bg_test_wait_for_result (&result, 60);
  refused = bg_downloader_download_finish (f->downloader, result, &error);
  g_assert_no_error (error);
  g_assert_cmpint (bg_response_get_kind (refused), ==, BG_RESPONSE_RETRY);
  g_assert_cmpuint (bg_response_get_status (refused), ==, 0);
  g_assert_error (bg_response_get_error (refused), G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED);
  g_assert_cmpuint (bg_test_count_partials (f->tmp), ==, 0);
}

static void
test_join (Fixture       *f,
           gconstpointer  data)
{
  g_autofree char *sha = serve_file (f, "j.bin", 2 * MiB, 2);
  g_autofree char *dest = dest_path (f, "j.bin");
  g_autoptr(GAsyncResult) r1 = NULL;
  g_autoptr(GAsyncResult) r2 = NULL;
  g_autoptr(BgResponse) a = NULL;
  g_autoptr(BgResponse) b = NULL;
  g_autoptr(BgResponse) c = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) stats = NULL;
  JsonObject *per_path;

  start_download (f, "/files/j.bin?delay=300", dest, "joined", NULL, &r1);
  start_download (f, "/files/j.bin?delay=300", dest, "joined", NULL, &r2);
  g_assert_cmpuint (g_list_model_get_n_items (bg_downloader_get_tasks (f->downloader)), ==, 1);

  bg_test_wait_for_result (&r1, 60);
  bg_test_wait_for_result (&r2, 60);
  a = bg_downloader_download_finish (f->downloader, r1, &error);
  g_assert_no_error (error);
  b = bg_downloader_download_finish (f->downloader, r2, &error);
  g_assert_no_error (error);
  g_assert_cmpint (bg_response_get_kind (a), ==, BG_RESPONSE_SUCCESS);
  g_assert_cmpint (bg_response_get_kind (b), ==, BG_RESPONSE_SUCCESS);

  stats = bg_test_server_stats (f->server);
  per_path = json_object_get_object_member (json_node_get_object (stats), "per_path");
  g_assert_cmpint (json_object_get_int_member (json_object_get_object_member (per_path,
                                                                              "/files/j.bin"),
                                               "requests"), ==, 1);

  /* Collected: the same identifier now starts a new task. */
  g_assert_cmpint (g_unlink (dest), ==, 0);
  c = download (f, "/files/j.bin", dest, "joined");
  g_assert_cmpint (bg_response_get_kind (c), ==, BG_RESPONSE_SUCCESS);
  g_clear_pointer (&stats, json_node_unref);
  stats = bg_test_server_stats (f->server);
  per_path = json_object_get_object_member (json_node_get_object (stats), "per_path");
  g_assert_cmpint (json_object_get_int_member (json_object_get_object_member (per_path,
                                                                              "/files/j.bin"),
                                               "requests"), ==, 2);
  {
    g_autofree char *got = bg_test_sha256_file (dest);
    g_assert_cmpstr (got, ==, sha);
  }
}

static void
test_conflict_and_arguments (Fixture       *f,
                             gconstpointer  data)
{
  g_autofree char *dest = dest_path (f, "x.bin");
  g_autofree char *other = dest_path (f, "y.bin");
  g_autofree char *missing_dir = g_build_filename (f->tmp, "no", "such", "dir.bin", NULL);
  g_autoptr(GAsyncResult) r1 = NULL;
  g_autoptr(GAsyncResult) r2 = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(BgResponse) response = NULL;

  g_free (serve_file (f, "x.bin", 1024, 3));
  start_download (f, "/files/x.bin?delay=200", dest, "conflict", NULL, &r1);
  start_download (f, "/files/x.bin", other, "conflict", NULL, &r2);
  bg_test_wait_for_result (&r2, 30);
  g_assert_null (bg_downloader_download_finish (f->downloader, r2, &error));
  g_assert_error (error, BG_ERROR, BG_ERROR_CONFLICT);
  g_clear_error (&error);
  bg_test_wait_for_result (&r1, 30);
  response = bg_downloader_download_finish (f->downloader, r1, &error);
  g_assert_no_error (error);
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);

  /* Bad calls, each with a clear error and nothing written. */
  {
    static const char *identifiers[] = { "" };
    g_autoptr(GAsyncResult) r = NULL;

    start_download (f, "/files/x.bin", other, identifiers[0], NULL, &r);
    bg_test_wait_for_result (&r, 30);
    g_assert_null (bg_downloader_download_finish (f->downloader, r, &error));
    g_assert_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT);
    g_clear_error (&error);
  }
  {
    g_autoptr(GAsyncResult) r = NULL;
    g_autofree char *huge = g_strnfill (1024 * 1024, 'i');

    start_download (f, "/files/x.bin", other, huge, NULL, &r);
    bg_test_wait_for_result (&r, 30);
    g_assert_null (bg_downloader_download_finish (f->downloader, r, &error));
    g_assert_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT);
    g_clear_error (&error);
  }
  {
    g_autoptr(GAsyncResult) r = NULL;

    start_download (f, "/files/x.bin", missing_dir, "missing-dir", NULL, &r);
    bg_test_wait_for_result (&r, 30);
    g_assert_null (bg_downloader_download_finish (f->downloader, r, &error));
    g_assert_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT);
    g_clear_error (&error);
  }
  {
    g_autoptr(GAsyncResult) r = NULL;

    /* The destination is a folder. */
    start_download (f, "/files/x.bin", f->tmp, "is-dir", NULL, &r);
    bg_test_wait_for_result (&r, 30);
    g_assert_null (bg_downloader_download_finish (f->downloader, r, &error));
    g_assert_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT);
    g_clear_error (&error);
  }
  {
    g_autoptr(GAsyncResult) r = NULL;

    /* The destination exists: it is never overwritten. */
    start_download (f, "/files/x.bin", dest, "exists", NULL, &r);
    bg_test_wait_for_result (&r, 30);
    g_assert_null (bg_downloader_download_finish (f->downloader, r, &error));
    g_assert_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT);
    g_clear_error (&error);
  }
  {
    g_autoptr(GAsyncResult) r = NULL;
    g_autoptr(SoupMessage) msg = soup_message_new ("GET", "ftp://127.0.0.1/x");
    g_autoptr(GFile) file = g_file_new_for_path (other);

    g_assert_nonnull (msg);
    bg_downloader_download_async (f->downloader, msg, file, "ftp", NULL, NULL,
                                  bg_test_store_result_cb, &r);
    bg_test_wait_for_result (&r, 30);
    g_assert_null (bg_downloader_download_finish (f->downloader, r, &error));
    g_assert_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT);
    g_clear_error (&error);
  }

  /* None of the refused calls made a task: only the collected "conflict" one is listed. */
  g_assert_false (g_file_test (other, G_FILE_TEST_EXISTS));
  g_assert_cmpuint (g_list_model_get_n_items (bg_downloader_get_tasks (f->downloader)), ==, 1);
  g_assert_nonnull (bg_downloader_lookup_task (f->downloader, "conflict"));
}

static void
test_max_concurrent (Fixture       *f,
                     gconstpointer  data)
{
  GAsyncResult *results[6] = { NULL, };

  bg_task_queue_set_max_concurrent (BG_TASK_QUEUE (f->downloader), 2);
  g_free (serve_file (f, "m.bin", 4096, 4));

  start_numbered (f, "/files/m.bin?delay=300", "m", G_N_ELEMENTS (results), results);

  for (guint i = 0; i < G_N_ELEMENTS (results); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(BgResponse) response = NULL;

      bg_test_wait_for_result (&results[i], 60);
      response = bg_downloader_download_finish (f->downloader, results[i], &error);
      g_assert_no_error (error);
      g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
      g_clear_object (&results[i]);
    }

  g_assert_cmpint (bg_test_server_stat_int (f->server, "max_active"), ==, 2);
}

/* Many tasks at once report progress together (through the service: in batched Changed signals,
 * taken in over several turns of the main loop).  Every task's progress only grows, its state
 * never leaves FINISHED once there, and each result is announced once, to both the callback and
 * task-finished, as the same response the listed task holds. */
typedef struct
{
  gint64   bytes;
  gboolean finished;
  guint    announced;
} Seen;

static void
many_progress_cb (BgTask     *task,
                  GParamSpec *pspec,
                  Seen       *seen)
{
  gint64 bytes = bg_task_get_bytes_transferred (task);

  g_assert_cmpint (bytes, >=, seen->bytes);
  seen->bytes = bytes;
}

static void
many_state_cb (BgTask     *task,
               GParamSpec *pspec,
               Seen       *seen)
{
  if (seen->finished)
    g_assert_cmpint (bg_task_get_state (task), ==, BG_TASK_STATE_FINISHED);
  seen->finished = bg_task_get_state (task) == BG_TASK_STATE_FINISHED;
}

static void
many_listed_cb (GListModel *model,
                guint       position,
                guint       removed,
                guint       added,
                GHashTable *seen)
{
  for (guint i = position; i < position + added; i++)
    {
      g_autoptr(BgTask) task = g_list_model_get_item (model, i);
      Seen *s = g_new0 (Seen, 1);

      g_assert_false (g_hash_table_contains (seen, bg_task_get_identifier (task)));
      g_hash_table_insert (seen, g_strdup (bg_task_get_identifier (task)), s);
      s->bytes = bg_task_get_bytes_transferred (task);
      g_signal_connect (task, "notify::bytes-transferred", G_CALLBACK (many_progress_cb), s);
      g_signal_connect (task, "notify::state", G_CALLBACK (many_state_cb), s);
    }
}

static void
many_finished_cb (BgDownloader *downloader,
                  BgTask       *task,
                  BgResponse   *response,
                  GHashTable   *seen)
{
  Seen *s = g_hash_table_lookup (seen, bg_task_get_identifier (task));

  g_assert_nonnull (s);
  g_assert_true (bg_task_get_response (task) == response);
  s->announced++;
}

static void
test_many_at_once_in_order (Fixture       *f,
                            gconstpointer  data)
{
  enum { N = 24, SIZE = 64 * 1024 };
  GAsyncResult *results[N] = { NULL, };
  g_autoptr(GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  GListModel *tasks = bg_task_queue_get_tasks (BG_TASK_QUEUE (f->downloader));

  bg_task_queue_set_max_concurrent (BG_TASK_QUEUE (f->downloader), N);
  g_free (serve_file (f, "many.bin", SIZE, 24));
  g_signal_connect (tasks, "items-changed", G_CALLBACK (many_listed_cb), seen);
  g_signal_connect (f->downloader, "task-finished", G_CALLBACK (many_finished_cb), seen);

  /* About half a second each, so that their progress comes in several batches. */
  start_numbered (f, "/files/many.bin?rate=131072", "many", N, results);

  for (guint i = 0; i < N; i++)
    {
      g_autofree char *id = g_strdup_printf ("many%u", i);
      g_autoptr(GError) error = NULL;
      g_autoptr(BgResponse) response = NULL;
      g_autoptr(BgTask) task = NULL;
      Seen *s;

      bg_test_wait_for_result (&results[i], 60);
      /* Listed until its result is collected. */
      task = bg_downloader_lookup_task (f->downloader, id);
      g_assert_nonnull (task);
      g_object_ref (task);
      g_signal_handlers_disconnect_by_data (task, g_hash_table_lookup (seen, id));
      response = bg_downloader_download_finish (f->downloader, results[i], &error);
      g_assert_no_error (error);
      g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
      g_clear_object (&results[i]);

      s = g_hash_table_lookup (seen, id);
      g_assert_nonnull (s);
      g_assert_true (bg_task_get_response (task) == response);
      g_assert_cmpint (bg_task_get_state (task), ==, BG_TASK_STATE_FINISHED);
      g_assert_cmpint (bg_task_get_bytes_transferred (task), ==, SIZE);
      g_assert_cmpint (s->bytes, ==, SIZE);
      g_assert_true (s->finished);
      g_assert_cmpuint (s->announced, ==, 1);
    }

  g_assert_cmpuint (g_hash_table_size (seen), ==, N);
  g_signal_handlers_disconnect_by_data (tasks, seen);
  g_signal_handlers_disconnect_by_data (f->downloader, seen);
}

/* Each result is collected as it comes, with keep-finished on or off; no snapshot the service
 * sent before it heard of a Collect lists the task again as a new one, or announces it twice. */
typedef struct
{
  BgDownloader *downloader;
  GHashTable   *announced;   /* identifier → times announced */
  GHashTable   *collected;   /* identifier → its BgResponse */
  guint         left;
  gboolean      done;
} CollectRace;

static void
collect_race_announced_cb (BgDownloader *downloader,
                           BgTask       *task,
                           BgResponse   *response,
                           CollectRace  *race)
{
  const char *id = bg_task_get_identifier (task);
  guint n = GPOINTER_TO_UINT (g_hash_table_lookup (race->announced, id));

  g_hash_table_replace (race->announced, g_strdup (id), GUINT_TO_POINTER (n + 1));
}

static void
collect_race_done_cb (GObject      *object,
                      GAsyncResult *result,
                      gpointer      user_data)
{
  CollectRace *race = user_data;
  g_autoptr(GError) error = NULL;
  BgResponse *response;

  response = bg_downloader_download_finish (race->downloader, result, &error);
  g_assert_no_error (error);
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
  g_hash_table_insert (race->collected, g_strdup (bg_response_get_identifier (response)),
                       response);
  race->done = --race->left == 0;
}

static void
test_collected_not_listed_again (Fixture       *f,
                                 gconstpointer  data)
{
  enum { N = 80 };
  gboolean keep = GPOINTER_TO_INT (data);
  GListModel *tasks = bg_task_queue_get_tasks (BG_TASK_QUEUE (f->downloader));
  CollectRace race = { f->downloader, NULL, NULL, N, FALSE };
  GHashTableIter iter;
  gpointer key, value;

  race.announced = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  race.collected = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_object_unref);
  restore_queue (f);

  bg_task_queue_set_keep_finished (BG_TASK_QUEUE (f->downloader), keep);
  bg_task_queue_set_max_concurrent (BG_TASK_QUEUE (f->downloader), 8);
  g_free (serve_file (f, "race.bin", 2000, 80));
  g_signal_connect (f->downloader, "task-finished", G_CALLBACK (collect_race_announced_cb),
                    &race);
  for (guint i = 0; i < N; i++)
    {
      g_autofree char *dest = g_strdup_printf ("%s/race%u.bin", f->tmp, i);
      g_autofree char *id = g_strdup_printf ("race%u", i);
      g_autoptr(SoupMessage) msg = NULL;
      g_autoptr(GFile) file = g_file_new_for_path (dest);
      g_autofree char *url = bg_test_server_url (f->server, "/files/race.bin");

      msg = soup_message_new ("GET", url);
      bg_downloader_download_async (f->downloader, msg, file, id, NULL, NULL,
                                    collect_race_done_cb, &race);
    }
  bg_test_wait_for (&race.done, 60);
  /* The service's batches of changes go out every 100 ms or so: let the last ones in. */
  bg_test_run_for (400);

  g_assert_cmpuint (g_hash_table_size (race.announced), ==, N);
  g_hash_table_iter_init (&iter, race.announced);
  while (g_hash_table_iter_next (&iter, &key, &value))
    {
      BgTask *task = bg_downloader_lookup_task (f->downloader, key);

      g_test_message ("%s announced %u times", (const char *) key, GPOINTER_TO_UINT (value));
      g_assert_cmpuint (GPOINTER_TO_UINT (value), ==, 1);
      if (keep)
        {
          g_assert_nonnull (task);
          g_assert_true (bg_task_get_response (task) == g_hash_table_lookup (race.collected,
                                                                             key));
        }
      else
        g_assert_null (task);
    }
  g_assert_cmpuint (g_list_model_get_n_items (tasks), ==, keep ? N : 0);

  g_signal_handlers_disconnect_by_data (f->downloader, &race);
  g_hash_table_unref (race.announced);
  g_hash_table_unref (race.collected);
}

/* The app changes an option of a running task again and again: the task never shows an older
 * value again, as it would if a snapshot the service took before the change were applied. */
static void
option_seen_cb (BgTask     *task,
                GParamSpec *pspec,
                GArray     *seen)
{
  int priority = bg_task_get_priority (task);

  g_array_append_val (seen, priority);
}

static void
test_option_not_set_back (Fixture       *f,
                          gconstpointer  data)
{
  enum { N = 200 };
  g_autofree char *dest = dest_path (f, "opt.bin");
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) seen = g_array_new (FALSE, FALSE, sizeof (int));
  BgTask *task;

  /* About 8 s at full speed: the service sends its progress all the while. */
  g_free (serve_file (f, "opt.bin", 2 * MiB, 81));
  start_download (f, "/files/opt.bin?rate=262144", dest, "opt", NULL, &result);
  task = bg_downloader_lookup_task (f->downloader, "opt");
  g_signal_connect (task, "notify::priority", G_CALLBACK (option_seen_cb), seen);

  for (int i = 1; i <= N && result == NULL; i++)
    {
      bg_task_set_priority (task, i);
      bg_test_run_for (7);
    }
  g_assert_null (result);

  for (guint i = 1; i < seen->len; i++)
    if (g_array_index (seen, int, i) < g_array_index (seen, int, i - 1))
      g_error ("The priority went back from %d to %d", g_array_index (seen, int, i - 1),
               g_array_index (seen, int, i));
  g_assert_cmpuint (seen->len, ==, N);
  g_assert_cmpint (bg_task_get_priority (task), ==, N);
  g_signal_handlers_disconnect_by_data (task, seen);

  g_assert_true (bg_downloader_cancel (f->downloader, "opt", NULL));
  bg_test_wait_for_result (&result, 30);
  response = bg_downloader_download_finish (f->downloader, result, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
}

static void
wait_for_bytes (BgDownloader *downloader,
                const char   *identifier,
                gint64        bytes)
{
  gint64 deadline = g_get_monotonic_time () + 60 * G_USEC_PER_SEC;

  while (TRUE)
    {
      BgTask *task = bg_downloader_lookup_task (downloader, identifier);

      if (task != NULL && bg_task_get_bytes_transferred (task) >= bytes)
        return;
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_main_context_iteration (NULL, TRUE);
    }
}

static void
test_cancel (Fixture       *f,
             gconstpointer  data)
{
  g_autofree char *dest = dest_path (f, "cancel.bin");
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(BgStore) store = NULL;
  g_autoptr(BgStoreRecord) record = NULL;

  g_free (serve_file (f, "cancel.bin", 16 * MiB, 5));
  start_download (f, "/files/cancel.bin?rate=4000000", dest, "cancel-me", NULL, &result);
  wait_for_bytes (f->downloader, "cancel-me", 1 * MiB);
  /* The partial file exists while the download runs. */
  g_assert_cmpuint (bg_test_count_partials (f->tmp), ==, 1);

  g_assert_true (bg_downloader_cancel (f->downloader, "cancel-me", &error));
  g_assert_no_error (error);

  bg_test_wait_for_result (&result, 30);
  g_assert_null (bg_downloader_download_finish (f->downloader, result, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);

  g_assert_cmpuint (bg_test_count_partials (f->tmp), ==, 0);
  g_assert_false (g_file_test (dest, G_FILE_TEST_EXISTS));
  g_assert_null (bg_downloader_lookup_task (f->downloader, "cancel-me"));
  g_assert_cmpuint (f->finished_count, ==, 0);

  if (bg_test_mode () == BG_MODE_IN_PROCESS)
    {
      store = bg_store_open (f->db, &error);
      g_assert_no_error (error);
      record = bg_store_lookup (store, BG_TASK_KIND_DOWNLOAD, "cancel-me", &error);
      g_assert_no_error (error);
      g_assert_null (record);
    }

  g_assert_false (bg_downloader_cancel (f->downloader, "cancel-me", &error));
  g_assert_error (error, BG_ERROR, BG_ERROR_NOT_FOUND);
}

/* Many running tasks are cancelled one after another: none comes back in the list, as it would
 * if a snapshot the service sent before it had the Cancel were taken for a task to list. */
static void
relisted_cb (GListModel *model,
             guint       position,
             guint       removed,
             guint       added,
             GHashTable *cancelled)
{
  for (guint i = position; i < position + added; i++)
    {
      g_autoptr(BgTask) task = g_list_model_get_item (model, i);

      if (g_hash_table_contains (cancelled, bg_task_get_identifier (task)))
        g_error ("The cancelled task “%s” was listed again", bg_task_get_identifier (task));
    }
}

static void
test_cancelled_not_listed_again (Fixture       *f,
                                 gconstpointer  data)
{
  enum { N = 24 };   /* fewer than the default session's connections to one host */
  GAsyncResult *results[N] = { NULL, };
  g_autoptr(GHashTable) cancelled = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                                           NULL);
  GListModel *tasks = bg_task_queue_get_tasks (BG_TASK_QUEUE (f->downloader));

  restore_queue (f);
  bg_task_queue_set_max_concurrent (BG_TASK_QUEUE (f->downloader), N);
  /* A minute each at that rate: all of them still run when the cancels come. */
  g_free (serve_file (f, "running.bin", 4 * MiB, 82));
  start_numbered (f, "/files/running.bin?rate=65536", "running", N, results);
  for (guint i = 0; i < N; i++)
    {
      g_autofree char *id = g_strdup_printf ("running%u", i);

      wait_for_bytes (f->downloader, id, 1);
    }

  /* Their progress goes on coming while they are cancelled, 5 ms apart. */
  g_signal_connect (tasks, "items-changed", G_CALLBACK (relisted_cb), cancelled);
  for (guint i = 0; i < N; i++)
    {
      g_autofree char *id = g_strdup_printf ("running%u", i);
      g_autoptr(GError) error = NULL;

      g_hash_table_add (cancelled, g_strdup (id));
      g_assert_true (bg_downloader_cancel (f->downloader, id, &error));
      g_assert_no_error (error);
      bg_test_run_for (5);
    }
  /* The service's batches of changes go out every 100 ms or so: let the last ones in. */
  bg_test_run_for (400);
  g_signal_handlers_disconnect_by_data (tasks, cancelled);

  g_assert_cmpuint (g_list_model_get_n_items (tasks), ==, 0);
  for (guint i = 0; i < N; i++)
    {
      g_autoptr(GError) error = NULL;

      g_autoptr(BgResponse) response = NULL;

      bg_test_wait_for_result (&results[i], 30);
      response = bg_downloader_download_finish (f->downloader, results[i], &error);
      g_assert_null (response);
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
      g_clear_object (&results[i]);
    }
  g_assert_cmpuint (f->finished_count, ==, 0);
}

static void
test_cancel_wait_only (Fixture       *f,
                       gconstpointer  data)
{
  g_autofree char *sha = serve_file (f, "w.bin", 4 * MiB, 6);
  g_autofree char *dest = dest_path (f, "w.bin");
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *got = NULL;

  start_download (f, "/files/w.bin?delay=200", dest, "wait-only", cancellable, &result);
  g_cancellable_cancel (cancellable);

  bg_test_wait_for_result (&result, 30);
  g_assert_null (bg_downloader_download_finish (f->downloader, result, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);

  /* The transfer went on, and its result arrives through the signal. */
  while (f->finished_count == 0)
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpint (bg_response_get_kind (f->last_finished), ==, BG_RESPONSE_SUCCESS);
  got = bg_test_sha256_file (dest);
  g_assert_cmpstr (got, ==, sha);

  /* Not collected yet: forget it. */
  g_assert_nonnull (bg_downloader_lookup_task (f->downloader, "wait-only"));
  g_assert_true (bg_downloader_forget (f->downloader, "wait-only", &error));
  g_assert_no_error (error);
  g_assert_null (bg_downloader_lookup_task (f->downloader, "wait-only"));
}

/* --- Resume, with the second attempt steered by prepare-request ---------------------------- */

typedef struct
{
  Fixture    *f;
  const char *second_query;   /* path and query for the attempts after the first */
  const char *rewrite_name;   /* a server file to replace before the second attempt */
  guint32     rewrite_seed;
  gsize       rewrite_size;
  char       *rewrite_sha;
  gboolean    saw_range;
} Steer;

static void
steer_prepare_cb (BgDownloader *downloader,
                  BgTask       *task,
                  SoupMessage  *msg,
                  Steer        *steer)
{
  if (bg_task_get_attempts (task) < 2)
    return;

  steer->saw_range =
    soup_message_headers_get_one (soup_message_get_request_headers (msg), "Range") != NULL;

  if (steer->rewrite_name != NULL && steer->rewrite_sha == NULL)
    steer->rewrite_sha = serve_file (steer->f, steer->rewrite_name, steer->rewrite_size,
                                     steer->rewrite_seed);

  if (steer->second_query != NULL)
    {
      g_autofree char *url = bg_test_server_url (steer->f->server, steer->second_query);
      g_autoptr(GUri) uri = g_uri_parse (url, SOUP_HTTP_URI_FLAGS, NULL);

      soup_message_set_uri (msg, uri);
    }
}

static BgResponse *
resume_download (Fixture    *f,
                 Steer      *steer,
                 const char *first_query,
                 const char *dest,
                 const char *identifier)
{
  gulong id;
  BgResponse *response;

  bg_task_queue_set_max_attempts (BG_TASK_QUEUE (f->downloader), 3);
  id = g_signal_connect (f->downloader, "prepare-request", G_CALLBACK (steer_prepare_cb), steer);
  response = download (f, first_query, dest, identifier);
  g_signal_handler_disconnect (f->downloader, id);

  return response;
}

static void
test_resume_range (Fixture       *f,
                   gconstpointer  data)
{
  g_autofree char *sha = serve_file (f, "r.bin", 12 * MiB, 7);
  g_autofree char *dest = dest_path (f, "r.bin");
  Steer steer = { f, "/files/r.bin", NULL, 0, 0, NULL, FALSE };
  g_autoptr(BgResponse) response = NULL;
  g_autofree char *got = NULL;

  /* The first attempt is cut off after 6 MiB, at 3 MB/s, so checkpoints were taken. */
  response = resume_download (f, &steer, "/files/r.bin?rate=3000000&drop=6291456", dest, "r");
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
  g_assert_cmpuint (bg_response_get_status (response), ==, 206);
  g_assert_true (steer.saw_range);
  got = bg_test_sha256_file (dest);
  g_assert_cmpstr (got, ==, sha);
  /* Less than the whole file was fetched twice. */
  g_assert_cmpint (bg_test_server_stat_int (f->server, "bytes_sent"), <, 12 * MiB + 6 * MiB);
}

static void
record_attempts_cb (BgDownloader *downloader,
                    BgTask       *task,
                    SoupMessage  *msg,
                    GArray       *seen)
{
  guint attempts = bg_task_get_attempts (task);

  g_array_append_val (seen, attempts);
}

/* A prepare-request handler sees the task as it is for the attempt it prepares: in service
 * mode too, where the task it is given is the client's copy. */
static void
test_prepare_sees_attempt (Fixture       *f,
                           gconstpointer  data)
{
  g_autofree char *dest = dest_path (f, "p.bin");
  g_autoptr(GArray) seen = g_array_new (FALSE, FALSE, sizeof (guint));
  g_autoptr(BgResponse) response = NULL;
  gulong id;

  bg_task_queue_set_max_attempts (BG_TASK_QUEUE (f->downloader), 3);
  g_object_set (f->downloader, "retry-delay", 1, "max-retry-delay", 1, NULL);
  id = g_signal_connect (f->downloader, "prepare-request", G_CALLBACK (record_attempts_cb), seen);
  response = download (f, "/files/p.bin?status=503", dest, "p");
  g_signal_handler_disconnect (f->downloader, id);

  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_RETRY);
  g_assert_cmpuint (seen->len, ==, 3);
  for (guint i = 0; i < seen->len; i++)
    g_assert_cmpuint (g_array_index (seen, guint, i), ==, i + 1);
}

static void
test_resume_ignored_range (Fixture       *f,
                           gconstpointer  data)
{
  g_autofree char *sha = serve_file (f, "n.bin", 8 * MiB, 8);
  g_autofree char *dest = dest_path (f, "n.bin");
  Steer steer = { f, "/files/n.bin?norange=1", NULL, 0, 0, NULL, FALSE };
  g_autoptr(BgResponse) response = NULL;
  g_autofree char *got = NULL;

  response = resume_download (f, &steer, "/files/n.bin?rate=3000000&drop=4194304", dest, "n");
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
  g_assert_cmpuint (bg_response_get_status (response), ==, 200);
  g_assert_true (steer.saw_range);
  got = bg_test_sha256_file (dest);
  g_assert_cmpstr (got, ==, sha);
}

static void
test_resume_changed_etag (Fixture       *f,
                          gconstpointer  data)
{
  g_autofree char *old_sha = serve_file (f, "e.bin", 8 * MiB, 9);
  g_autofree char *dest = dest_path (f, "e.bin");
  Steer steer = { f, "/files/e.bin", "e.bin", 10, 6 * MiB, NULL, FALSE };
  g_autoptr(BgResponse) response = NULL;
  g_autofree char *got = NULL;

  response = resume_download (f, &steer, "/files/e.bin?rate=3000000&drop=4194304", dest, "e");
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
  g_assert_cmpuint (bg_response_get_status (response), ==, 200);
  got = bg_test_sha256_file (dest);
  g_assert_cmpstr (got, !=, old_sha);
  g_assert_cmpstr (got, ==, steer.rewrite_sha);
  g_free (steer.rewrite_sha);
}

static void
test_resume_wrong_range (Fixture       *f,
                         gconstpointer  data)
{
  g_autofree char *dest = dest_path (f, "w.bin");
  Steer steer = { f, "/files/w.bin?wrongrange=100", NULL, 0, 0, NULL, FALSE };
  g_autoptr(BgResponse) response = NULL;

  g_free (serve_file (f, "w.bin", 8 * MiB, 11));
  response = resume_download (f, &steer, "/files/w.bin?rate=3000000&drop=4194304", dest, "w");
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_FAILED);
  g_assert_error (bg_response_get_error (response), BG_ERROR, BG_ERROR_PROTOCOL);
  g_assert_false (g_file_test (dest, G_FILE_TEST_EXISTS));
  g_assert_cmpuint (bg_test_count_partials (f->tmp), ==, 0);
}

/* A destination whose name is not UTF-8: in process it is downloaded like any other; the
 * transfer service cannot be given it (a path crosses the bus as a string), and says so. */
static void
test_path_not_utf8 (Fixture       *f,
                    gconstpointer  data)
{
  g_autofree char *sha = serve_file (f, "plain.bin", 1000, 15);
  g_autofree char *dest = dest_path (f, "na\xefve-\xff.bin");
  g_autofree char *url = bg_test_server_url (f->server, "/files/plain.bin");
  g_autoptr(SoupMessage) msg = soup_message_new ("GET", url);
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(GError) error = NULL;

  response = download_request (f, msg, dest, "not-utf8", &error);

  if (bg_test_mode () == BG_MODE_SERVICE)
    {
      g_assert_null (response);
      g_assert_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT);
      g_test_message ("%s", error->message);
      g_assert_true (g_utf8_validate (error->message, -1, NULL));
      g_assert_false (g_file_test (dest, G_FILE_TEST_EXISTS));
    }
  else
    {
      g_autofree char *got = NULL;

      g_assert_no_error (error);
      g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
      got = bg_test_sha256_file (dest);
      g_assert_cmpstr (got, ==, sha);
    }
}

/* A request header whose value is not UTF-8 cannot be kept with the task (the database keeps
 * headers as text, the bus as strings): refused at once, and no task is made. */
static void
test_header_not_utf8 (Fixture       *f,
                      gconstpointer  data)
{
  g_autofree char *dest = dest_path (f, "header.bin");
  g_autofree char *url = bg_test_server_url (f->server, "/files/header.bin");
  g_autoptr(SoupMessage) msg = soup_message_new ("GET", url);
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(GError) error = NULL;

  g_free (serve_file (f, "header.bin", 1000, 16));
  soup_message_headers_append (soup_message_get_request_headers (msg), "X-Latin-1", "caf\xe9");
  response = download_request (f, msg, dest, "header", &error);

  g_assert_null (response);
  g_assert_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "X-Latin-1"));
  g_assert_null (bg_downloader_lookup_task (f->downloader, "header"));
  g_assert_false (g_file_test (dest, G_FILE_TEST_EXISTS));
  g_assert_cmpint (bg_test_server_stat_int (f->server, "requests"), ==, 0);
}

/* A reason phrase that is not UTF-8 (the byte 0xff) reaches the app made valid, in service mode
 * too, where it crosses the bus as a string. */
static void
test_reason_not_utf8 (Fixture       *f,
                      gconstpointer  data)
{
  g_autofree char *dest = dest_path (f, "reason.bin");
  g_autoptr(BgResponse) response = NULL;
  const char *reason;

  g_free (serve_file (f, "reason.bin", 1000, 14));
  response = download (f, "/files/reason.bin?status=404&reason=Not%20Fou%C3%BFnd", dest, "reason");
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_REJECTED);
  g_assert_cmpuint (bg_response_get_status (response), ==, 404);
  reason = bg_response_get_reason (response);
  g_assert_nonnull (reason);
  g_assert_true (g_utf8_validate (reason, -1, NULL));
  g_assert_cmpstr (reason, ==, "Not Fou\xef\xbf\xbdnd");
}

/* A 206 whose Content-Length does not match its Content-Range: libsoup would read as many bytes
 * as the Content-Length says, past the range or short of it.  Either way the download fails
 * as a protocol error at once, with nothing left behind. */
static void
test_resume_range_length_lies (Fixture       *f,
                               gconstpointer  data)
{
  static const char *const seconds[] = {
    "/files/l.bin?length=1000",      /* fewer than the range: the rest would follow as junk */
    "/files/l.bin?length=8388608",   /* more: the server stops at the range's end, and waits */
  };

  g_free (serve_file (f, "l.bin", 8 * MiB, 13));
  for (guint i = 0; i < G_N_ELEMENTS (seconds); i++)
    {
      g_autofree char *dest = dest_path (f, "l.bin");
      g_autofree char *identifier = g_strdup_printf ("l%u", i);
      Steer steer = { f, seconds[i], NULL, 0, 0, NULL, FALSE };
      g_autoptr(BgResponse) response = NULL;
      const GError *error;

      response = resume_download (f, &steer, "/files/l.bin?rate=3000000&drop=4194304", dest,
                                  identifier);
      error = bg_response_get_error (response);
      g_test_message ("%s → %s", seconds[i], error != NULL ? error->message : "no error");
      g_assert_true (steer.saw_range);
      g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_FAILED);
      g_assert_error (error, BG_ERROR, BG_ERROR_PROTOCOL);
      g_assert_nonnull (strstr (error->message, "Content-Range"));
      g_assert_false (g_file_test (dest, G_FILE_TEST_EXISTS));
      g_assert_cmpuint (bg_test_count_partials (f->tmp), ==, 0);
    }
}

/* A partial file that already holds every byte, as a run that died after its last write
 * would leave it: the server's 416 says the download is complete. */
static void
test_416_complete (Fixture       *f,
                   gconstpointer  data)
{
  g_autofree char *sha = serve_file (f, "c.bin", 3 * MiB, 12);
  g_autofree char *dest = dest_path (f, "c.bin");
  g_autofree char *src = g_build_filename (bg_test_server_get_root (f->server), "c.bin", NULL);
  g_autofree char *contents = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(BgResponse) response = NULL;
  g_autofree char *got = NULL;
  gsize len;

  bg_test_skip_in_service_mode ("it writes records into the database, which the service holds");

  /* Make the record through a first attempt that the server refuses, then fake the state a
   * crash would leave: the whole file in the partial, a checkpoint at its end. */
  g_clear_object (&f->downloader);
  {
    g_autoptr(BgStore) store = bg_store_open (f->db, &error);
    g_autoptr(BgStoreRecord) record = bg_store_record_new ();
    g_autofree char *url = bg_test_server_url (f->server, "/files/c.bin");
    g_autoptr(SoupMessage) head = NULL;

    g_assert_no_error (error);
    record->identifier = g_strdup ("complete");
    record->kind = BG_TASK_KIND_DOWNLOAD;
    record->state = BG_TASK_STATE_RUNNING;
    record->method = g_strdup ("GET");
    record->uri = g_strdup (url);
    record->file_path = g_strdup (dest);
    record->partial_path = g_build_filename (f->tmp, ".bg-test.part", NULL);
    record->checkpoint = 3 * MiB;
    record->total = 3 * MiB;
    record->source_size = -1;
    record->attempts = 1;
    record->created_at = record->updated_at = g_get_real_time ();

    g_file_get_contents (src, &contents, &len, &error);
    g_assert_no_error (error);
    g_file_set_contents (record->partial_path, contents, len, &error);
    g_assert_no_error (error);

    /* The ETag the server gives this file. */
    {
      g_autoptr(SoupSession) session = soup_session_new ();
      g_autoptr(GBytes) body = NULL;

      head = soup_message_new ("HEAD", url);
      body = soup_session_send_and_read (session, head, NULL, &error);
      g_assert_no_error (error);
      record->etag = g_strdup (soup_message_headers_get_one (
                                 soup_message_get_response_headers (head), "ETag"));
      g_assert_nonnull (record->etag);
    }
    g_assert_true (bg_store_save (store, record, &error));
    g_assert_no_error (error);
  }
  f->downloader = open_downloader (f);
  restore_queue (f);

  while (f->finished_count == 0)
    g_main_context_iteration (NULL, TRUE);
  response = g_object_ref (f->last_finished);
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
  g_assert_cmpuint (bg_response_get_status (response), ==, 416);
  got = bg_test_sha256_file (dest);
  g_assert_cmpstr (got, ==, sha);
  g_assert_true (bg_downloader_forget (f->downloader, "complete", &error));
}

/* Writes @count queued download records straight into the database, as an earlier run would
 * have left them, created in the order of their numbers, with priorities -1, 0 and 1 in turn. */
static void
fill_queued_records (Fixture *f,
                     guint    count)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(BgStore) store = NULL;
  g_autofree char *url = bg_test_server_url (f->server, "/files/never.bin");
  gint64 now = g_get_real_time ();

  g_clear_object (&f->downloader);
  store = bg_store_open (f->db, &error);
  g_assert_no_error (error);

  for (guint i = 0; i < count; i++)
    {
      g_autoptr(BgStoreRecord) record = bg_store_record_new ();

      record->identifier = g_strdup_printf ("many/%06u", i);
      record->kind = BG_TASK_KIND_DOWNLOAD;
      record->state = BG_TASK_STATE_QUEUED;
      record->method = g_strdup ("GET");
      record->uri = g_strdup (url);
      record->file_path = g_strdup_printf ("%s/many-%06u.bin", f->tmp, i);
      record->partial_path = g_strdup_printf ("%s/.bg-many-%06u.part", f->tmp, i);
      record->total = -1;
      record->source_size = -1;
      record->priority = (int) (i % 3) - 1;
      record->created_at = record->updated_at = now - count + i;
      g_assert_true (bg_store_save (store, record, &error));
      g_assert_no_error (error);
    }
}

typedef struct
{
  Fixture *f;
  guint    changes;
  guint    added;
  char    *cancel;   /* cancelled at the first change */
} ManyChanges;

static void
many_changed_cb (GListModel  *model,
                 guint        position,
                 guint        removed,
                 guint        added,
                 ManyChanges *changes)
{
  changes->changes++;
  changes->added += added;
  if (changes->cancel != NULL && changes->changes == 1)
    {
      g_autoptr(GError) error = NULL;

      g_assert_true (bg_downloader_cancel (changes->f->downloader, changes->cancel, &error));
      g_assert_no_error (error);
    }
}

/* A restore of thousands of tasks adopts them a slice per main-loop turn instead of holding the
 * loop until all are in: more than one items-changed before its callback, every task listed
 * once, in the order they were created, and none started while the queue is paused. */
static void
test_restore_many_in_slices (Fixture       *f,
                             gconstpointer  data)
{
  ManyChanges changes = { f, 0, 0, NULL };
  GListModel *tasks;
  const guint count = 3500;

  bg_test_skip_in_service_mode ("it writes records into the database, which the service holds");

  fill_queued_records (f, count);
  f->downloader = open_downloader (f);
  bg_task_queue_set_paused (BG_TASK_QUEUE (f->downloader), TRUE);
  tasks = bg_downloader_get_tasks (f->downloader);
  g_signal_connect (tasks, "items-changed", G_CALLBACK (many_changed_cb), &changes);

  restore_queue (f);
  g_signal_handlers_disconnect_by_data (tasks, &changes);

  g_assert_cmpuint (changes.changes, >, 1);
  g_assert_cmpuint (changes.added, ==, count);
  g_assert_cmpuint (g_list_model_get_n_items (tasks), ==, count);
  for (guint i = 0; i < count; i++)
    {
      g_autoptr(BgTask) task = g_list_model_get_item (tasks, i);
      g_autofree char *expected = g_strdup_printf ("many/%06u", i);

      g_assert_cmpstr (bg_task_get_identifier (task), ==, expected);
      g_assert_cmpint (bg_task_get_state (task), ==, BG_TASK_STATE_WAITING);
      g_assert_cmpint (bg_task_get_wait_reason (task), ==, BG_WAIT_REASON_PAUSED);
    }
}

/* A task cancelled while a restore is still adopting (it was loaded, but not adopted yet) is not
 * brought back by the restore, nor left in the database. */
static void
test_cancel_while_restoring (Fixture       *f,
                             gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(BgStore) store = NULL;
  g_autoptr(BgStoreRecord) record = NULL;
  ManyChanges changes = { f, 0, 0, (char *) "many/002400" };
  GListModel *tasks;
  const guint count = 2500;

  bg_test_skip_in_service_mode ("it writes records into the database, which the service holds");

  fill_queued_records (f, count);
  f->downloader = open_downloader (f);
  bg_task_queue_set_paused (BG_TASK_QUEUE (f->downloader), TRUE);
  tasks = bg_downloader_get_tasks (f->downloader);
  g_signal_connect (tasks, "items-changed", G_CALLBACK (many_changed_cb), &changes);

  restore_queue (f);
  g_signal_handlers_disconnect_by_data (tasks, &changes);

  g_assert_null (bg_downloader_lookup_task (f->downloader, "many/002400"));
  g_assert_nonnull (bg_downloader_lookup_task (f->downloader, "many/002399"));
  g_assert_cmpuint (g_list_model_get_n_items (tasks), ==, count - 1);
  for (guint i = 0; i < g_list_model_get_n_items (tasks); i++)
    {
      g_autoptr(BgTask) task = g_list_model_get_item (tasks, i);

      g_assert_cmpstr (bg_task_get_identifier (task), !=, "many/002400");
    }

  store = bg_store_open (f->db, &error);
  g_assert_no_error (error);
  record = bg_store_lookup (store, BG_TASK_KIND_DOWNLOAD, "many/002400", &error);
  g_assert_no_error (error);
  g_assert_null (record);
}

/* A queued task keeps its record in the database only, and reads it back when it starts or is
 * cancelled.  Cancelling a restored task that waits in the queue behind another still removes
 * the partial file that its earlier run left: the record names it. */
static void
test_queued_cancel_restored (Fixture       *f,
                             gconstpointer  data)
{
  g_autofree char *dest = dest_path (f, "cut.bin");
  g_autofree char *blocker_dest = dest_path (f, "blocker.bin");
  g_autoptr(GAsyncResult) cut_result = NULL;
  g_autoptr(GAsyncResult) blocker_result = NULL;
  g_autoptr(GAsyncResult) restored = NULL;
  g_autoptr(GError) error = NULL;
  BgTask *task;

  bg_test_skip_in_service_mode ("the service carries the task on when this client closes");

  g_free (serve_file (f, "cut.bin", 16 * MiB, 21));
  start_download (f, "/files/cut.bin?rate=2000000", dest, "cut", NULL, &cut_result);
  wait_for_bytes (f->downloader, "cut", 256 * 1024);
  g_assert_cmpuint (bg_test_count_partials (f->tmp), ==, 1);

  /* Closed mid-download: the record and the partial file stay for the next run. */
  bg_test_assert_finalized ((gpointer *) &f->downloader);
  bg_test_wait_for_result (&cut_result, 30);
  g_clear_object (&cut_result);
  g_assert_cmpuint (bg_test_count_partials (f->tmp), ==, 1);

  /* The next run: one slow download holds the only slot, and the restored one queues. */
  f->downloader = open_downloader (f);
  bg_task_queue_set_max_concurrent (BG_TASK_QUEUE (f->downloader), 1);
  start_download (f, "/files/cut.bin?rate=500000", blocker_dest, "blocker", NULL,
                  &blocker_result);
  wait_for_bytes (f->downloader, "blocker", 1);
  restore_queue (f);

  task = bg_downloader_lookup_task (f->downloader, "cut");
  g_assert_nonnull (task);
  g_assert_cmpint (bg_task_get_state (task), ==, BG_TASK_STATE_QUEUED);
  g_assert_cmpuint (bg_test_count_partials (f->tmp), ==, 2);

  g_assert_true (bg_downloader_cancel (f->downloader, "cut", &error));
  g_assert_no_error (error);
  g_assert_cmpuint (bg_test_count_partials (f->tmp), ==, 1);
  g_assert_null (bg_downloader_lookup_task (f->downloader, "cut"));

  g_assert_true (bg_downloader_cancel (f->downloader, "blocker", &error));
  g_assert_no_error (error);
  bg_test_wait_for_result (&blocker_result, 30);
  g_assert_cmpuint (bg_test_count_partials (f->tmp), ==, 0);
}

/* A warning that a test expects: counted and kept out of the log, where it would abort the
 * test.  GLib's g_test_expect_message() does not see structured log messages. */
static const char *expected_warning;
static guint expected_warnings_seen;

static GLogWriterOutput
expect_warning_writer (GLogLevelFlags   log_level,
                       const GLogField *fields,
                       gsize            n_fields,
                       gpointer         user_data)
{
  if (expected_warning != NULL && (log_level & G_LOG_LEVEL_WARNING))
    {
      for (gsize i = 0; i < n_fields; i++)
        if (g_str_equal (fields[i].key, "MESSAGE") && fields[i].length < 0 &&
            g_pattern_match_simple (expected_warning, fields[i].value))
          {
            expected_warnings_seen++;
            return G_LOG_WRITER_HANDLED;
          }
    }

  return g_log_writer_default (log_level, fields, n_fields, user_data);
}

/* A queued task's record, deleted behind the queue's back by another connection to the
 * database, cannot be read back when the task's turn comes: its call fails with an error that
 * names the task and the database, and the queue goes on with the next one. */
static void
test_queued_record_deleted (Fixture       *f,
                            gconstpointer  data)
{
  g_autofree char *sha = serve_file (f, "q.bin", 100000, 22);
  g_autofree char *blocker_dest = dest_path (f, "blocker.bin");
  g_autofree char *gone_dest = dest_path (f, "gone.bin");
  g_autofree char *next_dest = dest_path (f, "next.bin");
  g_autoptr(GAsyncResult) blocker_result = NULL;
  g_autoptr(GAsyncResult) gone_result = NULL;
  g_autoptr(GAsyncResult) next_result = NULL;
  g_autoptr(BgResponse) blocker = NULL;
  g_autoptr(BgResponse) gone = NULL;
  g_autoptr(BgResponse) next = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *got = NULL;
  sqlite3 *db = NULL;

  bg_test_skip_in_service_mode ("it writes into the database, which the service holds");

  bg_task_queue_set_max_concurrent (BG_TASK_QUEUE (f->downloader), 1);
  start_download (f, "/files/q.bin?rate=100000", blocker_dest, "blocker", NULL,
                  &blocker_result);
  start_download (f, "/files/q.bin", gone_dest, "it's \"gone\"/1", NULL, &gone_result);
  start_download (f, "/files/q.bin", next_dest, "next", NULL, &next_result);
  wait_for_bytes (f->downloader, "blocker", 1);
  g_assert_cmpint (bg_task_get_state (bg_downloader_lookup_task (f->downloader,
                                                                 "it's \"gone\"/1")),
                   ==, BG_TASK_STATE_QUEUED);

  g_assert_cmpint (sqlite3_open_v2 (f->db, &db, SQLITE_OPEN_READWRITE, NULL), ==, SQLITE_OK);
  sqlite3_busy_timeout (db, 5000);
  g_assert_cmpint (sqlite3_exec (db, "DELETE FROM tasks WHERE identifier = 'it''s \"gone\"/1'",
                                 NULL, NULL, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_changes (db), ==, 1);
  sqlite3_close (db);

  /* The task cannot start, which the library tells the log too. */
  expected_warning = "Could not start task “it's \"gone\"/1”: *missing*";
  expected_warnings_seen = 0;

  bg_test_wait_for_result (&blocker_result, 60);
  blocker = bg_downloader_download_finish (f->downloader, blocker_result, &error);
  g_assert_no_error (error);
  g_assert_cmpint (bg_response_get_kind (blocker), ==, BG_RESPONSE_SUCCESS);

  bg_test_wait_for_result (&gone_result, 60);
  gone = bg_downloader_download_finish (f->downloader, gone_result, &error);
  g_assert_null (gone);
  g_assert_error (error, BG_ERROR, BG_ERROR_STORE);
  g_assert_nonnull (strstr (error->message, "it's \"gone\"/1"));
  g_assert_nonnull (strstr (error->message, f->db));
  g_clear_error (&error);
  g_assert_cmpuint (expected_warnings_seen, ==, 1);
  expected_warning = NULL;
  g_assert_null (bg_downloader_lookup_task (f->downloader, "it's \"gone\"/1"));
  g_assert_false (g_file_test (gone_dest, G_FILE_TEST_EXISTS));

  bg_test_wait_for_result (&next_result, 60);
  next = bg_downloader_download_finish (f->downloader, next_result, &error);
  g_assert_no_error (error);
  g_assert_cmpint (bg_response_get_kind (next), ==, BG_RESPONSE_SUCCESS);
  got = bg_test_sha256_file (next_dest);
  g_assert_cmpstr (got, ==, sha);
}

static void
test_redirects (Fixture       *f,
                gconstpointer  data)
{
  g_autofree char *sha = serve_file (f, "rd.bin", 100000, 13);
  g_autofree char *dest = dest_path (f, "rd.bin");
  g_autofree char *dest2 = dest_path (f, "loop.bin");
  g_autoptr(BgResponse) followed = NULL;
  g_autoptr(BgResponse) loop = NULL;
  g_autofree char *got = NULL;

  followed = download (f, "/files/rd.bin?redirect=3", dest, "redirected");
  g_assert_cmpint (bg_response_get_kind (followed), ==, BG_RESPONSE_SUCCESS);
  got = bg_test_sha256_file (dest);
  g_assert_cmpstr (got, ==, sha);

  loop = download (f, "/files/rd.bin?redirect=loop", dest2, "loop");
  g_assert_cmpint (bg_response_get_kind (loop), ==, BG_RESPONSE_FAILED);
  g_assert_error (bg_response_get_error (loop), BG_ERROR, BG_ERROR_PROTOCOL);
  g_assert_false (g_file_test (dest2, G_FILE_TEST_EXISTS));
}

static void
test_https_to_http (void)
{
  Fixture fx = { 0, };
  Fixture *f = &fx;
  g_autoptr(BgTestServer) plain = bg_test_server_new (NULL, FALSE);
  g_autofree char *cert = g_test_build_filename (G_TEST_DIST, "fixtures", "test-cert.pem", NULL);
  g_autoptr(GTlsDatabase) db = NULL;
  g_autoptr(SoupSession) session = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(BgResponse) secure = NULL;
  g_autoptr(BgResponse) downgraded = NULL;
  g_autoptr(BgResponse) untrusted = NULL;
  g_autofree char *plain_url = NULL;
  g_autofree char *escaped = NULL;
  g_autofree char *query = NULL;
  g_autofree char *dest = NULL;

  bg_test_skip_in_service_mode ("its SoupSession, with a test CA, cannot cross the bus");

  f->server = bg_test_server_new (NULL, TRUE);
  f->tmp = bg_test_make_tmpdir ();
  f->db = g_build_filename (f->tmp, "tasks.sqlite", NULL);
  g_free (serve_file (f, "s.bin", 50000, 14));

  /* The default TLS database does not trust the test certificate. */
  f->downloader = open_downloader (f);
  dest = dest_path (f, "untrusted.bin");
  untrusted = download (f, "/files/s.bin", dest, "untrusted");
  g_assert_cmpint (bg_response_get_kind (untrusted), ==, BG_RESPONSE_FAILED);
  g_assert_nonnull (bg_response_get_error (untrusted));
  g_assert_false (g_file_test (dest, G_FILE_TEST_EXISTS));
  g_clear_object (&f->downloader);

  /* With a session that trusts it, https works, and a redirect to http is refused. */
  db = g_tls_file_database_new (cert, &error);
  g_assert_no_error (error);
  session = bg_http_default_session_new ();
  soup_session_set_tls_database (session, db);
  f->downloader = g_initable_new (BG_TYPE_DOWNLOADER, NULL, &error,
                                  "session-id", "tls", "database-path", f->db,
                                  "soup-session", session, "max-attempts", 1, NULL);
  g_assert_no_error (error);
  g_assert_true (bg_task_queue_get_soup_session (BG_TASK_QUEUE (f->downloader)) == session);

  g_free (dest);
  dest = dest_path (f, "secure.bin");
  secure = download (f, "/files/s.bin", dest, "secure");
  g_assert_cmpint (bg_response_get_kind (secure), ==, BG_RESPONSE_SUCCESS);

  plain_url = bg_test_server_url (plain, "/files/s.bin");
  escaped = g_uri_escape_string (plain_url, NULL, FALSE);
  query = g_strdup_printf ("/files/s.bin?location=%s", escaped);
  g_free (dest);
  dest = dest_path (f, "downgraded.bin");
  downgraded = download (f, query, dest, "downgraded");
  g_assert_cmpint (bg_response_get_kind (downgraded), ==, BG_RESPONSE_FAILED);
  g_assert_error (bg_response_get_error (downgraded), BG_ERROR, BG_ERROR_INSECURE_REDIRECT);
  g_assert_false (g_file_test (dest, G_FILE_TEST_EXISTS));
  g_assert_cmpint (bg_test_server_stat_int (plain, "requests"), ==, 0);

  fixture_teardown (f, NULL);
}

/* --- A real kill --------------------------------------------------------------------------- */

static void
test_kill_and_restore (Fixture       *f,
                       gconstpointer  data)
{
  const gsize size = 24 * MiB;
  g_autofree char *sha = serve_file (f, "k.bin", size, 15);
  g_autofree char *dest = dest_path (f, "k.bin");
  g_autofree char *url = bg_test_server_url (f->server, "/files/k.bin?rate=4000000");
  g_autoptr(GSubprocess) helper = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *got = NULL;
  gint64 served;

  bg_test_skip_in_service_mode ("the download goes on at the service when the app is killed");

  /* The helper owns the database while it runs. */
  g_clear_object (&f->downloader);

  helper = bg_test_spawn_helper (&out, &error, "download", f->db, url, dest, "killed", NULL);
  g_assert_no_error (error);

  while (TRUE)
    {
      g_autofree char *line = g_data_input_stream_read_line_utf8 (out, NULL, NULL, &error);
      gint64 bytes;

      g_assert_no_error (error);
      g_assert_nonnull (line);
      g_assert_false (g_str_has_prefix (line, "finished"));
      g_assert_false (g_file_test (dest, G_FILE_TEST_EXISTS));
      if (sscanf (line, "progress %" G_GINT64_FORMAT, &bytes) == 1 && bytes >= 10 * MiB)
        break;
    }

  g_subprocess_send_signal (helper, SIGKILL);
  g_subprocess_wait (helper, NULL, &error);
  g_assert_no_error (error);
  g_assert_false (g_subprocess_get_if_exited (helper));
  g_assert_false (g_file_test (dest, G_FILE_TEST_EXISTS));
  g_assert_cmpuint (bg_test_count_partials (f->tmp), ==, 1);

  /* A new process carries it on. */
  f->downloader = open_downloader (f);
  restore_queue (f);
  g_assert_cmpuint (g_list_model_get_n_items (bg_downloader_get_tasks (f->downloader)), ==, 1);

  while (f->finished_count == 0)
    {
      g_main_context_iteration (NULL, TRUE);
      /* Never half-written. */
      if (g_file_test (dest, G_FILE_TEST_EXISTS))
        {
          GStatBuf st;

          g_assert_cmpint (g_stat (dest, &st), ==, 0);
          g_assert_cmpint (st.st_size, ==, size);
        }
    }

  g_assert_cmpuint (f->finished_count, ==, 1);
  g_assert_cmpint (bg_response_get_kind (f->last_finished), ==, BG_RESPONSE_SUCCESS);
  g_assert_cmpuint (bg_response_get_status (f->last_finished), ==, 206);
  got = bg_test_sha256_file (dest);
  g_assert_cmpstr (got, ==, sha);
  g_assert_cmpuint (bg_test_count_partials (f->tmp), ==, 0);

  /* At most one checkpoint interval (8 MiB) was fetched twice. */
  served = bg_test_server_stat_int (f->server, "bytes_sent");
  g_test_message ("served %" G_GINT64_FORMAT " bytes for a %" G_GSIZE_FORMAT " byte file",
                  served, size);
  g_assert_cmpint (served, <=, (gint64) size + 8 * MiB);
  g_assert_cmpint (served, >=, (gint64) size);

  g_assert_true (bg_downloader_forget (f->downloader, "killed", &error));
  g_assert_no_error (error);
}

/* A result that no one collected comes back in the next process, and only until collected. */
static void
test_uncollected_result (Fixture       *f,
                         gconstpointer  data)
{
  g_autofree char *sha = serve_file (f, "u.bin", 1 * MiB, 16);
  g_autofree char *dest = dest_path (f, "u.bin");
  g_autofree char *url = bg_test_server_url (f->server, "/files/u.bin");
  g_autoptr(GSubprocess) helper = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(BgResponse) stored = NULL;

  g_clear_object (&f->downloader);

  helper = bg_test_spawn_helper (&out, &error, "hold", f->db, url, dest, "held", NULL);
  g_assert_no_error (error);
  g_subprocess_wait_check (helper, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_file_test (dest, G_FILE_TEST_EXISTS));

  /* Without restore, the same call gets the stored result at once: no new request. */
  bg_test_server_reset (f->server);
  f->downloader = open_downloader (f);
  stored = download (f, "/files/u.bin", dest, "held");
  g_assert_cmpint (bg_response_get_kind (stored), ==, BG_RESPONSE_SUCCESS);
  g_assert_cmpuint (bg_response_get_status (stored), ==, 200);
  g_assert_cmpint (bg_test_server_stat_int (f->server, "requests"), ==, 0);
  {
    g_autofree char *path = g_file_get_path (bg_response_get_file (stored));
    g_autofree char *got = bg_test_sha256_file (path);

    g_assert_cmpstr (path, ==, dest);
    g_assert_cmpstr (got, ==, sha);
  }

  /* Collected by that _finish: a later restore announces nothing. */
  g_clear_object (&f->downloader);
  f->finished_count = 0;
  f->downloader = open_downloader (f);
  bg_downloader_restore_async (f->downloader, NULL, bg_test_store_result_cb, &result);
  bg_test_wait_for_result (&result, 30);
  g_assert_true (bg_downloader_restore_finish (f->downloader, result, &error));
  g_assert_cmpuint (f->finished_count, ==, 0);
  g_assert_cmpuint (g_list_model_get_n_items (bg_downloader_get_tasks (f->downloader)), ==, 0);
}

static void
test_restore_announces (Fixture       *f,
                        gconstpointer  data)
{
  g_autofree char *dest = dest_path (f, "a.bin");
  g_autofree char *url = bg_test_server_url (f->server, "/files/a.bin");
  g_autoptr(GSubprocess) helper = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  g_autoptr(GError) error = NULL;

  g_free (serve_file (f, "a.bin", 1000, 17));
  g_clear_object (&f->downloader);
  helper = bg_test_spawn_helper (&out, &error, "hold", f->db, url, dest, "announce", NULL);
  g_assert_no_error (error);
  g_subprocess_wait_check (helper, NULL, &error);
  g_assert_no_error (error);

  /* At-least-once until collected: two restores, two announcements. */
  for (guint round = 1; round <= 2; round++)
    {
      g_autoptr(GAsyncResult) result = NULL;

      f->downloader = open_downloader (f);
      bg_downloader_restore_async (f->downloader, NULL, bg_test_store_result_cb, &result);
      bg_test_wait_for_result (&result, 30);
      g_assert_true (bg_downloader_restore_finish (f->downloader, result, &error));
      g_assert_cmpuint (f->finished_count, ==, round);
      g_assert_cmpint (bg_response_get_kind (f->last_finished), ==, BG_RESPONSE_SUCCESS);
      g_assert_cmpstr (bg_response_get_identifier (f->last_finished), ==, "announce");
      g_clear_object (&f->downloader);
    }

  f->downloader = open_downloader (f);
  g_assert_true (bg_downloader_forget (f->downloader, "announce", &error));
  g_assert_no_error (error);
  g_clear_object (&f->downloader);
  f->downloader = open_downloader (f);
  {
    g_autoptr(GAsyncResult) result = NULL;

    bg_downloader_restore_async (f->downloader, NULL, bg_test_store_result_cb, &result);
    bg_test_wait_for_result (&result, 30);
    g_assert_true (bg_downloader_restore_finish (f->downloader, result, &error));
  }
  g_assert_cmpuint (f->finished_count, ==, 2);
  /* The published file is the app's; forgetting the record leaves it. */
  g_assert_true (g_file_test (dest, G_FILE_TEST_EXISTS));
}

/* Small downloads that finish close together share their commits, and every announcement waits
 * for the commit that holds its result.  The helper is killed right after the Kth task-finished:
 * each task announced by then has its result in the database (or was collected), its file is
 * published whole, and a restore finishes the others without starting any of them over. */
static void
test_kill_after_batch_announced (Fixture       *f,
                                 gconstpointer  data)
{
  enum { N_FILES = 40, KILL_AFTER = 20 };
  g_autofree char *prefix = bg_test_server_url (f->server, "/files/many");
  g_autofree char *n_arg = g_strdup_printf ("%d", N_FILES);
  g_autofree char *k_arg = g_strdup_printf ("%d", KILL_AFTER);
  g_autoptr(GPtrArray) shas = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GHashTable) announced = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                                           NULL);
  g_autoptr(GSubprocess) helper = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  guint n_records;
  char *line;

  if (bg_test_mode () != BG_MODE_IN_PROCESS)
    {
      g_test_skip ("The helper's own engine is what gets killed");
      return;
    }

  for (guint i = 0; i < N_FILES; i++)
    {
      g_autofree char *name = g_strdup_printf ("many%u.bin", i);

      g_ptr_array_add (shas, serve_file (f, name, 16 * 1024, 200 + i));
    }

  g_clear_object (&f->downloader);
  helper = bg_test_spawn_helper (&out, &error, "many-and-die", f->db, prefix, f->tmp, n_arg,
                                 k_arg, NULL);
  g_assert_no_error (error);
  while ((line = g_data_input_stream_read_line (out, NULL, NULL, NULL)) != NULL)
    {
      g_auto(GStrv) words = g_strsplit (line, " ", 4);

      g_free (line);
      g_assert_cmpstr (words[0], ==, "finished");
      g_assert_cmpstr (words[2], ==, "success");
      g_hash_table_add (announced, g_strdup (words[1]));
    }
  g_subprocess_wait (helper, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_signaled (helper));
  g_assert_cmpint (g_subprocess_get_term_sig (helper), ==, SIGKILL);
  g_assert_cmpuint (g_hash_table_size (announced), ==, KILL_AFTER);

  {
    g_autoptr(BgStore) store = bg_store_open (f->db, &error);
    g_autoptr(GPtrArray) records = NULL;

    g_assert_no_error (error);
    for (guint i = 0; i < N_FILES; i++)
      {
        g_autofree char *identifier = g_strdup_printf ("many-%u", i);
        g_autofree char *dest = g_strdup_printf ("%s/f%u.bin", f->tmp, i);
        g_autoptr(BgStoreRecord) record = NULL;
        g_autofree char *sha = NULL;

        if (!g_hash_table_contains (announced, identifier))
          continue;

        record = bg_store_lookup (store, BG_TASK_KIND_DOWNLOAD, identifier, &error);
        g_assert_no_error (error);
        if (record != NULL)
          {
            g_assert_cmpint (record->state, ==, BG_TASK_STATE_FINISHED);
            g_assert_true (record->has_response);
            g_assert_cmpint (record->response_kind, ==, BG_RESPONSE_SUCCESS);
          }
        sha = bg_test_sha256_file (dest);
        g_assert_cmpstr (sha, ==, g_ptr_array_index (shas, i));
      }

    records = bg_store_load_all (store, BG_TASK_KIND_DOWNLOAD, &error);
    g_assert_no_error (error);
    n_records = records->len;
  }

  /* Each record left is announced once more (a result not yet collected) or finishes now. */
  f->downloader = open_downloader (f);
  restore_queue (f);
  {
    gint64 deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;

    while (f->finished_count < n_records && g_get_monotonic_time () < deadline)
      g_main_context_iteration (NULL, TRUE);
  }
  g_assert_cmpuint (f->finished_count, ==, n_records);

  for (guint i = 0; i < N_FILES; i++)
    {
      g_autofree char *dest = g_strdup_printf ("%s/f%u.bin", f->tmp, i);
      g_autofree char *identifier = g_strdup_printf ("many-%u", i);
      g_autofree char *sha = bg_test_sha256_file (dest);
      BgTask *task = bg_downloader_lookup_task (f->downloader, identifier);

      g_assert_cmpstr (sha, ==, g_ptr_array_index (shas, i));
      if (task != NULL)
        g_assert_cmpint (bg_response_get_kind (bg_task_get_response (task)), ==,
                         BG_RESPONSE_SUCCESS);
    }
}

static void
test_busy (Fixture       *f,
           gconstpointer  data)
{
  g_autofree char *dest = dest_path (f, "b.bin");
  g_autofree char *url = bg_test_server_url (f->server, "/files/b.bin");
  g_autoptr(GSubprocess) helper = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *line = NULL;

  /* Every process of the app goes through the one service: no database is busy. */
  bg_test_skip_in_service_mode ("the service holds the database for every process");

  /* While this process holds the database, the helper is refused. */
  helper = bg_test_spawn_helper (&out, &error, "download", f->db, url, dest, "busy", NULL);
  g_assert_no_error (error);
  line = g_data_input_stream_read_line_utf8 (out, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (line);
  g_assert_true (g_str_has_prefix (line, "error "));
  g_assert_nonnull (strstr (line, f->db));
  g_subprocess_wait (helper, NULL, NULL);
  g_assert_cmpint (g_subprocess_get_exit_status (helper), ==, 1);
}

/* --- Servers that bend the rules on resume ------------------------------------------------- */

/* The file changes between the attempts, and the server (like npm's serve and http-server)
 * answers the stale If-Range with 206 of the new version: the bytes would not fit together. */
static void
test_server_ignores_if_range (Fixture       *f,
                              gconstpointer  data)
{
  g_autofree char *dest = dest_path (f, "i.bin");
  Steer steer = { f, "/files/i.bin?ifrange=ignore", "i.bin", 51, 8 * MiB, NULL, FALSE };
  g_autoptr(BgResponse) response = NULL;
  g_autofree char *got = NULL;

  g_free (serve_file (f, "i.bin", 8 * MiB, 50));
  response = resume_download (f, &steer, "/files/i.bin?rate=3000000&drop=4194304", dest, "ir");
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
  g_assert_true (steer.saw_range);
  /* Started over: the whole new version, never a mix of the two. */
  g_assert_cmpuint (bg_response_get_status (response), ==, 200);
  got = bg_test_sha256_file (dest);
  g_assert_cmpstr (got, ==, steer.rewrite_sha);
  g_free (steer.rewrite_sha);
}

/* A 206 whose complete length is not the one first served is for another file. */
static void
test_partial_with_other_length (Fixture       *f,
                                gconstpointer  data)
{
  g_autofree char *sha = serve_file (f, "t.bin", 8 * MiB, 52);
  g_autofree char *dest = dest_path (f, "t.bin");
  g_autofree char *second = g_strdup_printf ("/files/t.bin?rangetotal=%d", 6 * MiB);
  Steer steer = { f, second, NULL, 0, 0, NULL, FALSE };
  g_autoptr(BgResponse) response = NULL;
  g_autofree char *got = NULL;

  response = resume_download (f, &steer, "/files/t.bin?rate=3000000&drop=4194304", dest, "tl");
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
  g_assert_true (steer.saw_range);
  g_assert_cmpuint (bg_response_get_status (response), ==, 200);
  got = bg_test_sha256_file (dest);
  g_assert_cmpstr (got, ==, sha);
}

/* --- Hostile files ------------------------------------------------------------------------- */

/* The partial file's name, as anybody who knows the identifier and destination can work it out. */
static char *
predicted_partial (const char *identifier,
                   const char *dest)
{
  g_autoptr(GChecksum) checksum = g_checksum_new (G_CHECKSUM_SHA256);
  g_autofree char *dir = g_path_get_dirname (dest);
  g_autofree char *name = NULL;

  g_checksum_update (checksum, (const guchar *) identifier, -1);
  g_checksum_update (checksum, (const guchar *) "\n", 1);
  g_checksum_update (checksum, (const guchar *) dest, -1);
  name = g_strdup_printf (".bg-%.32s.part", g_checksum_get_string (checksum));

  return g_build_filename (dir, name, NULL);
}

/* A file outside the download's folder that an attacker points a link at. */
static char *
make_victim (Fixture    *f,
             char      **sha)
{
  g_autofree char *dir = g_build_filename (f->tmp, "elsewhere", NULL);
  char *victim = g_build_filename (dir, "victim", NULL);

  g_assert_cmpint (g_mkdir (dir, 0700), ==, 0);
  *sha = bg_test_write_random_file (victim, 256 * 1024, 99);

  return victim;
}

static void
assert_published_regular (const char *dest,
                          const char *sha)
{
  g_autofree char *got = bg_test_sha256_file (dest);
  GStatBuf st;

  g_assert_cmpint (g_lstat (dest, &st), ==, 0);
  g_assert_true (S_ISREG (st.st_mode));
  g_assert_cmpuint (st.st_uid, ==, geteuid ());
  g_assert_cmpstr (got, ==, sha);
}

/* Waits for the download of @result, which must succeed, and checks the file it published. */
static void
assert_download_published (Fixture       *f,
                           GAsyncResult **result,
                           const char    *dest,
                           const char    *sha)
{
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(GError) error = NULL;

  bg_test_wait_for_result (result, 30);
  response = bg_downloader_download_finish (f->downloader, *result, &error);
  g_assert_no_error (error);
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
  assert_published_regular (dest, sha);
  g_clear_object (result);
}

static void
test_planted_symlink_partial (Fixture       *f,
                              gconstpointer  data)
{
  g_autofree char *sha = serve_file (f, "p.bin", 3 * MiB, 40);
  g_autofree char *dest = dest_path (f, "p.bin");
  g_autofree char *planted = predicted_partial ("planted", dest);
  g_autofree char *victim_sha = NULL;
  g_autofree char *victim = make_victim (f, &victim_sha);
  g_autoptr(BgResponse) response = NULL;
  g_autofree char *after = NULL;
  g_autofree char *target = NULL;

  g_assert_cmpint (symlink (victim, planted), ==, 0);

  response = download (f, "/files/p.bin", dest, "planted");
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
  assert_published_regular (dest, sha);

  /* The link's target is untouched, and the link is left where it was. */
  after = bg_test_sha256_file (victim);
  g_assert_cmpstr (after, ==, victim_sha);
  target = g_file_read_link (planted, NULL);
  g_assert_cmpstr (target, ==, victim);
}

/* Another user's world-writable file at the partial file's name is neither written into nor
 * published. */
static void
test_planted_foreign_partial (Fixture       *f,
                              gconstpointer  data)
{
  g_autofree char *sha = serve_file (f, "o.bin", 2 * MiB, 41);
  g_autofree char *dest = dest_path (f, "o.bin");
  g_autofree char *planted = predicted_partial ("foreign", dest);
  g_autoptr(GError) error = NULL;
  g_autoptr(BgResponse) response = NULL;
  g_autofree char *contents = NULL;

  if (geteuid () != 0)
    {
      g_test_skip ("Planting another user's file needs root (chown)");
      return;
    }

  /* Others may walk into the folder, as in a shared one. */
  g_assert_cmpint (g_chmod (f->tmp, 0777), ==, 0);
  g_file_set_contents (planted, "planted by someone else", -1, &error);
  g_assert_no_error (error);
  g_assert_cmpint (chown (planted, 65534, 65534), ==, 0);
  g_assert_cmpint (g_chmod (planted, 0666), ==, 0);

  response = download (f, "/files/o.bin", dest, "foreign");
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
  assert_published_regular (dest, sha);

  g_file_get_contents (planted, &contents, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (contents, ==, "planted by someone else");
}

/* The partial file is swapped for a link while the app is dead; the next run must not follow it. */
static void
test_swapped_partial_after_kill (Fixture       *f,
                                 gconstpointer  data)
{
  const gsize size = 16 * MiB;
  g_autofree char *sha = serve_file (f, "s.bin", size, 42);
  g_autofree char *dest = dest_path (f, "s.bin");
  g_autofree char *url = bg_test_server_url (f->server, "/files/s.bin?rate=4000000");
  g_autofree char *partial = predicted_partial ("swapped", dest);
  g_autofree char *victim_sha = NULL;
  g_autofree char *victim = make_victim (f, &victim_sha);
  g_autoptr(GSubprocess) helper = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *after = NULL;
  GListModel *tasks;
  g_autoptr(BgTask) task = NULL;

  bg_test_skip_in_service_mode ("the download goes on at the service when the app is killed");

  g_clear_object (&f->downloader);
  helper = bg_test_spawn_helper (&out, &error, "download", f->db, url, dest, "swapped", NULL);
  g_assert_no_error (error);

  while (TRUE)
    {
      g_autofree char *line = g_data_input_stream_read_line_utf8 (out, NULL, NULL, &error);
      gint64 bytes;

      g_assert_no_error (error);
      g_assert_nonnull (line);
      g_assert_false (g_str_has_prefix (line, "finished"));
      if (sscanf (line, "progress %" G_GINT64_FORMAT, &bytes) == 1 && bytes >= 6 * MiB)
        break;
    }

  g_subprocess_send_signal (helper, SIGKILL);
  g_subprocess_wait (helper, NULL, &error);
  g_assert_no_error (error);

  /* While nobody runs: the partial file becomes a link to a file elsewhere. */
  g_assert_true (g_file_test (partial, G_FILE_TEST_IS_REGULAR));
  g_assert_cmpint (g_unlink (partial), ==, 0);
  g_assert_cmpint (symlink (victim, partial), ==, 0);

  f->downloader = open_downloader (f);
  restore_queue (f);
  tasks = bg_downloader_get_tasks (f->downloader);
  g_assert_cmpuint (g_list_model_get_n_items (tasks), ==, 1);
  task = g_list_model_get_item (tasks, 0);

  while (f->finished_count == 0)
    g_main_context_iteration (NULL, TRUE);

  g_assert_cmpint (bg_response_get_kind (f->last_finished), ==, BG_RESPONSE_SUCCESS);
  assert_published_regular (dest, sha);
  /* It started over under a fresh name. */
  g_assert_cmpuint (bg_task_get_restarts (task), >=, 1);
  after = bg_test_sha256_file (victim);
  g_assert_cmpstr (after, ==, victim_sha);
  g_assert_true (g_file_test (partial, G_FILE_TEST_IS_SYMLINK));
  g_assert_true (bg_downloader_forget (f->downloader, "swapped", &error));
}

/* --- A slow disk ---------------------------------------------------------------------------- */

typedef struct
{
  gint   attempt;      /* the attempt in progress, set by prepare-request */
  gint   finished;     /* set once the task finished */
  gint64 block_from;   /* the first attempt's writes from this offset on wait */
  guint  publish_ms;   /* every publishing step takes this long */
} SlowDisk;

static SlowDisk slow_disk;

static void
slow_disk_hook (const char *step,
                gint64      offset,
                gsize       length)
{
  if (g_str_equal (step, "write") && g_atomic_int_get (&slow_disk.attempt) == 1 &&
      offset >= slow_disk.block_from)
    {
      gint64 until = g_get_monotonic_time () + 3 * G_USEC_PER_SEC;

      /* Held until the task finished, or for three seconds. */
      while (!g_atomic_int_get (&slow_disk.finished) && g_get_monotonic_time () < until)
        g_usleep (10000);
    }

  if (!g_str_equal (step, "write") && slow_disk.publish_ms > 0)
    g_usleep (slow_disk.publish_ms * 1000);
}

static void
slow_disk_prepare_cb (BgDownloader *downloader,
                      BgTask       *task,
                      SoupMessage  *msg,
                      gpointer      user_data)
{
  g_atomic_int_set (&slow_disk.attempt, bg_task_get_attempts (task));
}

static void
slow_disk_finished_cb (BgDownloader *downloader,
                       BgTask       *task,
                       BgResponse   *response,
                       gpointer      user_data)
{
  g_atomic_int_set (&slow_disk.finished, TRUE);
}

/* The first attempt is cut off while one of its writes is still on its way to a slow disk; the
 * file changes on the server, and the second attempt fetches the new version whole.  The late
 * write must land before the second attempt starts, never in the published file. */
static void
test_late_write_after_retry (Fixture       *f,
                             gconstpointer  data)
{
  g_autofree char *dest = dest_path (f, "l.bin");
  Steer steer = { f, "/files/l.bin", "l.bin", 44, 2 * MiB, NULL, FALSE };
  g_autoptr(BgResponse) response = NULL;
  g_autofree char *got = NULL;

  bg_test_skip_in_service_mode ("the disk hook is in this process");

  g_free (serve_file (f, "l.bin", 8 * MiB, 43));
  memset (&slow_disk, 0, sizeof slow_disk);
  slow_disk.block_from = 3 * MiB;
  bg_download_test_disk_hook = slow_disk_hook;
  g_signal_connect (f->downloader, "prepare-request", G_CALLBACK (slow_disk_prepare_cb), NULL);
  g_signal_connect (f->downloader, "task-finished", G_CALLBACK (slow_disk_finished_cb), NULL);

  /* Cut off at 3.75 MiB: the write of the block from 3 MiB on is still held then. */
  response = resume_download (f, &steer, "/files/l.bin?rate=3000000&drop=3932160", dest, "late");
  bg_download_test_disk_hook = NULL;

  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
  g_assert_cmpuint (bg_response_get_status (response), ==, 200);
  got = bg_test_sha256_file (dest);
  g_assert_cmpstr (got, ==, steer.rewrite_sha);
  g_free (steer.rewrite_sha);
}

/* Checking a large file's SHA-256 and renaming it on a slow disk take longer than the stall
 * timeout; neither is a network stall. */
static void
test_slow_publish_not_a_stall (Fixture       *f,
                               gconstpointer  data)
{
  g_autofree char *sha = serve_file (f, "v.bin", 4 * MiB, 45);
  g_autofree char *dest = dest_path (f, "v.bin");
  g_autofree char *url = bg_test_server_url (f->server, "/files/v.bin");
  g_autoptr(SoupMessage) msg = soup_message_new ("GET", url);
  g_autoptr(GFile) file = g_file_new_for_path (dest);
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(BgTask) task = NULL;

  bg_test_skip_in_service_mode ("the disk hook is in this process");

  memset (&slow_disk, 0, sizeof slow_disk);
  slow_disk.publish_ms = 1500;
  bg_download_test_disk_hook = slow_disk_hook;
  bg_task_queue_set_stall_timeout (BG_TASK_QUEUE (f->downloader), 1);
  bg_task_queue_set_max_attempts (BG_TASK_QUEUE (f->downloader), 3);

  bg_downloader_download_async (f->downloader, msg, file, "verify", NULL, NULL,
                                bg_test_store_result_cb, &result);
  task = g_object_ref (bg_downloader_lookup_task (f->downloader, "verify"));
  bg_task_set_expected_sha256 (task, sha);
  bg_test_wait_for_result (&result, 60);
  bg_download_test_disk_hook = NULL;

  response = bg_downloader_download_finish (f->downloader, result, &error);
  g_assert_no_error (error);
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
  g_assert_null (bg_response_get_error (response));
  g_assert_cmpuint (bg_task_get_attempts (task), ==, 1);
  assert_published_regular (dest, sha);
}

/* A folder whose renames hang (a network mount gone away) holds up the downloads into it, and
 * only those: a download into another folder starts and publishes meanwhile. */
static struct
{
  const char *step;     /* the step held: "rename" or "sync-folder" */
  gint        held;     /* the first such step is being held */
  gint        release;  /* let it go */
} hung_folder;

static void
hung_folder_hook (const char *step,
                  gint64      offset,
                  gsize       length)
{
  gint64 until;

  if (!g_str_equal (step, hung_folder.step) ||
      !g_atomic_int_compare_and_exchange (&hung_folder.held, 0, 1))
    return;

  /* Held until the test lets it go, or for thirty seconds. */
  until = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;
  while (!g_atomic_int_get (&hung_folder.release) && g_get_monotonic_time () < until)
    g_usleep (10000);
}

/* The hook runs on a worker: the main loop looks at it every 10 ms. */
static gboolean
hung_folder_check_cb (gpointer data)
{
  gboolean *held = data;

  *held = g_atomic_int_get (&hung_folder.held) != 0;

  return !*held;
}

static void
test_hung_folder_holds_up_only_its_own (Fixture       *f,
                                        gconstpointer  data)
{
  g_autofree char *sha = serve_file (f, "h.bin", 100000, 47);
  g_autofree char *folder_a = dest_path (f, "a");
  g_autofree char *folder_b = dest_path (f, "b");
  g_autofree char *dest_a = g_build_filename (folder_a, "h.bin", NULL);
  g_autofree char *dest_b = g_build_filename (folder_b, "h.bin", NULL);
  g_autoptr(GAsyncResult) result_a = NULL;
  g_autoptr(GAsyncResult) result_b = NULL;
  gboolean held = FALSE;

  bg_test_skip_in_service_mode ("the disk hook is in this process");

  g_assert_cmpint (g_mkdir (folder_a, 0700), ==, 0);
  g_assert_cmpint (g_mkdir (folder_b, 0700), ==, 0);
  memset (&hung_folder, 0, sizeof hung_folder);
  hung_folder.step = "rename";
  bg_download_test_disk_hook = hung_folder_hook;

  start_download (f, "/files/h.bin", dest_a, "into-a", NULL, &result_a);
  g_timeout_add (10, hung_folder_check_cb, &held);
  bg_test_wait_for (&held, 30);

  /* The rename into a/ hangs; b/ is another folder. */
  start_download (f, "/files/h.bin", dest_b, "into-b", NULL, &result_b);
  assert_download_published (f, &result_b, dest_b, sha);
  g_assert_null (result_a);
  g_assert_false (g_file_test (dest_a, G_FILE_TEST_EXISTS));

  g_atomic_int_set (&hung_folder.release, 1);
  assert_download_published (f, &result_a, dest_a, sha);
  bg_download_test_disk_hook = NULL;
}

typedef struct
{
  const char *path;
  gboolean    appeared;
} FileCheck;

static gboolean
file_appeared_cb (gpointer data)
{
  FileCheck *check = data;

  check->appeared = g_file_test (check->path, G_FILE_TEST_IS_REGULAR);

  return !check->appeared;
}

/* A folder whose fsync is slow (a busy disk) does not hold up the next downloads into it: they
 * make their partial files, and rename them into place, meanwhile.  Their results wait for a
 * folder fsync that began after their renames. */
static void
test_slow_folder_sync_holds_up_no_rename (Fixture       *f,
                                          gconstpointer  data)
{
  g_autofree char *sha = serve_file (f, "s.bin", 100000, 48);
  g_autofree char *dest_a = dest_path (f, "s-a.bin");
  g_autofree char *dest_b = dest_path (f, "s-b.bin");
  g_autoptr(GAsyncResult) result_a = NULL;
  g_autoptr(GAsyncResult) result_b = NULL;
  gboolean held = FALSE;
  FileCheck check = { NULL, FALSE };

  bg_test_skip_in_service_mode ("the disk hook is in this process");

  memset (&hung_folder, 0, sizeof hung_folder);
  hung_folder.step = "sync-folder";
  bg_download_test_disk_hook = hung_folder_hook;

  start_download (f, "/files/s.bin", dest_a, "sync-a", NULL, &result_a);
  g_timeout_add (10, hung_folder_check_cb, &held);
  bg_test_wait_for (&held, 30);
  g_assert_true (g_file_test (dest_a, G_FILE_TEST_IS_REGULAR));

  /* The same folder: the second file is renamed into place while the first fsync hangs. */
  start_download (f, "/files/s.bin", dest_b, "sync-b", NULL, &result_b);
  check.path = dest_b;
  g_timeout_add (10, file_appeared_cb, &check);
  bg_test_wait_for (&check.appeared, 20);
  g_assert_null (result_a);
  g_assert_null (result_b);

  g_atomic_int_set (&hung_folder.release, 1);
  assert_download_published (f, &result_a, dest_a, sha);
  assert_download_published (f, &result_b, dest_b, sha);
  bg_download_test_disk_hook = NULL;
}

/* --- What the published file and a failure leave behind ---------------------------------- */

static void
test_published_mode_follows_umask (Fixture       *f,
                                   gconstpointer  data)
{
  g_autofree char *sha = serve_file (f, "m.bin", 100000, 46);
  const mode_t masks[] = { 022, 077, 002 };
  gsize i;

  bg_test_skip_in_service_mode ("the service publishes with its own umask");

  for (i = 0; i < G_N_ELEMENTS (masks); i++)
    {
      g_autofree char *name = g_strdup_printf ("m%" G_GSIZE_FORMAT ".bin", i);
      g_autofree char *dest = dest_path (f, name);
      g_autoptr(BgResponse) response = NULL;
      mode_t old = umask (masks[i]);
      GStatBuf st;

      response = download (f, "/files/m.bin", dest, name);
      umask (old);
      g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
      g_assert_cmpint (g_stat (dest, &st), ==, 0);
      g_assert_cmpint (st.st_mode & 0777, ==, 0666 & ~masks[i]);
    }
}

static void
rename_folder_cb (BgTask     *task,
                  GParamSpec *pspec,
                  char      **paths)
{
  if (paths[0] != NULL && bg_task_get_bytes_transferred (task) >= MiB)
    {
      g_assert_cmpint (g_rename (paths[0], paths[1]), ==, 0);
      g_clear_pointer (&paths[0], g_free);
    }
}

/* The destination's folder is renamed during the download: the download fails, and its partial
 * file does not stay behind in the folder's new place. */
static void
test_folder_renamed_leaves_nothing (Fixture       *f,
                                    gconstpointer  data)
{
  g_autofree char *folder = g_build_filename (f->tmp, "sub", NULL);
  g_autofree char *moved = g_build_filename (f->tmp, "moved", NULL);
  g_autofree char *dest = g_build_filename (folder, "f.bin", NULL);
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(BgResponse) response = NULL;
  char *paths[2] = { g_strdup (folder), moved };
  BgTask *task;

  g_free (serve_file (f, "f.bin", 3 * MiB, 47));
  g_assert_cmpint (g_mkdir (folder, 0700), ==, 0);

  start_download (f, "/files/f.bin?rate=2000000", dest, "renamed", NULL, &result);
  task = bg_downloader_lookup_task (f->downloader, "renamed");
  g_signal_connect (task, "notify::bytes-transferred", G_CALLBACK (rename_folder_cb), paths);
  bg_test_wait_for_result (&result, 60);
  g_signal_handlers_disconnect_by_data (task, paths);

  response = bg_downloader_download_finish (f->downloader, result, &error);
  g_assert_no_error (error);
  g_assert_null (paths[0]);
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_FAILED);
  g_assert_nonnull (bg_response_get_error (response));
  g_assert_false (g_file_test (dest, G_FILE_TEST_EXISTS));
  g_assert_cmpuint (bg_test_count_partials (moved), ==, 0);
  g_assert_cmpuint (bg_test_count_partials (f->tmp), ==, 0);
  g_free (paths[0]);
}

/* A name longer than the file system takes is refused at once, before any byte is fetched. */
static void
test_name_too_long (Fixture       *f,
                    gconstpointer  data)
{
  g_autofree char *name = g_strnfill (300, 'n');
  g_autofree char *dest = dest_path (f, name);
  g_autofree char *url = bg_test_server_url (f->server, "/files/x.bin");
  g_autoptr(SoupMessage) msg = soup_message_new ("GET", url);
  g_autoptr(GFile) file = g_file_new_for_path (dest);
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(BgResponse) response = NULL;

  g_free (serve_file (f, "x.bin", MiB, 48));
  bg_test_server_reset (f->server);

  bg_downloader_download_async (f->downloader, msg, file, "long", NULL, NULL,
                                bg_test_store_result_cb, &result);
  bg_test_wait_for_result (&result, 30);
  response = bg_downloader_download_finish (f->downloader, result, &error);
  g_assert_null (response);
  g_assert_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "longer than"));
  g_assert_cmpint (bg_test_server_stat_int (f->server, "requests"), ==, 0);
}

/* --- Credentials at rest ------------------------------------------------------------------- */

#define BEARER_SECRET   "s3cret-bearer-token"
#define COOKIE_SECRET   "c00kie-secret"
#define PROXY_SECRET    "pr0xy-secret"
#define URL_SECRET      "pa55word-secret"

/* The fault server's auth= knob: the SHA-256 of the Authorization value it wants, so that the
 * URL (which is stored) does not hold the credential. */
static char *
auth_query (const char *path,
            const char *authorization)
{
  g_autofree char *sha = g_compute_checksum_for_string (G_CHECKSUM_SHA256, authorization, -1);

  return g_strdup_printf ("%s%sauth=%s", path, strchr (path, '?') ? "&" : "?", sha);
}

static char *
basic_authorization (const char *user,
                     const char *password)
{
  g_autofree char *pair = g_strdup_printf ("%s:%s", user, password);
  g_autofree char *encoded = g_base64_encode ((const guchar *) pair, strlen (pair));

  return g_strdup_printf ("Basic %s", encoded);
}

/* A GET of @path_and_query with the password URL_SECRET for "user" in its URL.  Such files are
 * served from a folder of their own: once libsoup has authenticated with the URL's password, it
 * sends that Basic authorization, in place of the app's header, to every URL under the same
 * folder of the server. */
static char *
serve_password_file (Fixture    *f,
                     const char *name,
                     gsize       size,
                     guint32     seed)
{
  g_autofree char *dir = g_build_filename (bg_test_server_get_root (f->server), "pw", NULL);
  g_autofree char *path = g_build_filename ("pw", name, NULL);

  g_assert_cmpint (g_mkdir_with_parents (dir, 0700), ==, 0);

  return serve_file (f, path, size, seed);
}

static SoupMessage *
message_with_password (Fixture    *f,
                       const char *path_and_query)
{
  g_autofree char *url = bg_test_server_url (f->server, path_and_query);
  g_autoptr(GUri) plain = g_uri_parse (url, SOUP_HTTP_URI_FLAGS, NULL);
  g_autoptr(GUri) uri = NULL;

  uri = g_uri_build_with_user (SOUP_HTTP_URI_FLAGS, "http", "user", URL_SECRET, NULL,
                               g_uri_get_host (plain), g_uri_get_port (plain),
                               g_uri_get_path (plain), g_uri_get_query (plain), NULL);

  return soup_message_new_from_uri ("GET", uri);
}

/* A GET of @path_and_query with an Authorization header, a Cookie and a Proxy-Authorization
 * (spelled in lower case). */
static SoupMessage *
message_with_headers (Fixture    *f,
                      const char *path_and_query)
{
  g_autofree char *url = bg_test_server_url (f->server, path_and_query);
  SoupMessage *msg = soup_message_new ("GET", url);
  SoupMessageHeaders *headers = soup_message_get_request_headers (msg);

  soup_message_headers_append (headers, "Authorization", "Bearer " BEARER_SECRET);
  soup_message_headers_append (headers, "Cookie", "session=" COOKIE_SECRET);
  soup_message_headers_append (headers, "proxy-authorization", "Basic " PROXY_SECRET);
  soup_message_headers_append (headers, "X-Visible", "stays");

  return msg;
}

static void
start_request (Fixture       *f,
               SoupMessage   *msg,
               const char    *dest,
               const char    *identifier,
               GAsyncResult **result)
{
  g_autoptr(GFile) file = g_file_new_for_path (dest);

  bg_downloader_download_async (f->downloader, msg, file, identifier, NULL, NULL,
                                bg_test_store_result_cb, result);
}

static BgResponse *
finish_request (Fixture       *f,
                 GAsyncResult **result)
{
  g_autoptr(GError) error = NULL;
  BgResponse *response;

  bg_test_wait_for_result (result, 60);
  response = bg_downloader_download_finish (f->downloader, *result, &error);
  g_assert_no_error (error);
  g_clear_object (result);

  return response;
}

static void
assert_no_secret (const char *db)
{
  const char *secrets[] = { BEARER_SECRET, COOKIE_SECRET, PROXY_SECRET, URL_SECRET };

  for (guint i = 0; i < G_N_ELEMENTS (secrets); i++)
    if (bg_test_database_contains (db, secrets[i]))
      g_error ("The database holds the secret “%s”", secrets[i]);
}

/* Closes the downloader as an app that stops would: every waiter is answered (cancelled), and
 * the database is released. */
static void
close_downloader (Fixture       *f,
                  GAsyncResult **results,
                  guint          n_results)
{
  g_object_run_dispose (G_OBJECT (f->downloader));
  for (guint i = 0; i < n_results; i++)
    {
      bg_test_wait_for_result (&results[i], 30);
      g_clear_object (&results[i]);
    }
  g_clear_object (&f->downloader);
  while (g_main_context_iteration (NULL, FALSE))
    ;
}

/* Returns a reference, so that the task outlives its removal from the list. */
static BgTask *
lookup_task (Fixture    *f,
             const char *identifier)
{
  GListModel *tasks = bg_downloader_get_tasks (f->downloader);

  for (guint i = 0; i < g_list_model_get_n_items (tasks); i++)
    {
      g_autoptr(BgTask) task = g_list_model_get_item (tasks, i);

      if (g_str_equal (bg_task_get_identifier (task), identifier))
        return g_steal_pointer (&task);
    }

  g_assert_not_reached ();
}

static void
count_prepare_cb (BgDownloader *downloader,
                  BgTask       *task,
                  SoupMessage  *msg,
                  guint        *count)
{
  (*count)++;
}

static void
wait_reason_cb (BgTask     *task,
                GParamSpec *pspec,
                gboolean   *flag)
{
  if (bg_task_get_wait_reason (task) == BG_WAIT_REASON_CREDENTIALS)
    *flag = TRUE;
}

static void
wait_for_credentials_wait (BgTask *task)
{
  gboolean waiting = bg_task_get_wait_reason (task) == BG_WAIT_REASON_CREDENTIALS;
  gulong id = g_signal_connect (task, "notify::wait-reason", G_CALLBACK (wait_reason_cb),
                                &waiting);

  bg_test_wait_for (&waiting, 30);
  g_signal_handler_disconnect (task, id);
  g_assert_cmpint (bg_task_get_state (task), ==, BG_TASK_STATE_WAITING);
}

static void
wait_for_finished (Fixture *f,
                   guint    count)
{
  while (f->finished_count < count)
    g_main_context_iteration (NULL, TRUE);
}

/* Authorization, Cookie and Proxy-Authorization headers and a URL password reach the server
 * (also through a same-origin redirect) but never the database or BgTask:uri. */
static void
test_credentials_not_stored (Fixture       *f,
                             gconstpointer  data)
{
  g_autofree char *sha = serve_file (f, "c.bin", 300000, 21);
  g_autofree char *sha_p = serve_password_file (f, "c.bin", 300000, 31);
  g_autofree char *basic = basic_authorization ("user", URL_SECRET);
  g_autofree char *header_query = auth_query ("/files/c.bin", "Bearer " BEARER_SECRET);
  g_autofree char *redirect_query = auth_query ("/files/c.bin?redirect=2",
                                                "Bearer " BEARER_SECRET);
  g_autofree char *password_query = auth_query ("/files/pw/c.bin", basic);
  g_autofree char *dest_h = dest_path (f, "h.bin");
  g_autofree char *dest_r = dest_path (f, "r.bin");
  g_autofree char *dest_p = dest_path (f, "p.bin");
  g_autoptr(SoupMessage) with_headers = message_with_headers (f, header_query);
  g_autoptr(SoupMessage) redirected = message_with_headers (f, redirect_query);
  g_autoptr(SoupMessage) with_password = message_with_password (f, password_query);
  g_autoptr(GAsyncResult) result_h = NULL;
  g_autoptr(GAsyncResult) result_r = NULL;
  g_autoptr(GAsyncResult) result_p = NULL;
  g_autoptr(BgResponse) response_h = NULL;
  g_autoptr(BgResponse) response_r = NULL;
  g_autoptr(BgResponse) response_p = NULL;
  g_autoptr(BgStoreRecord) record_h = NULL;
  g_autoptr(BgStoreRecord) record_p = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(BgTask) task = NULL;
  BgStore *store;

  bg_test_skip_in_service_mode ("it reads the record through the engine of this process");

  start_request (f, with_headers, dest_h, "h", &result_h);
  start_request (f, redirected, dest_r, "r", &result_r);
  start_request (f, with_password, dest_p, "p", &result_p);

  /* Committed before _async returned, without the credentials. */
  store = bg_engine_get_store (bg_downloader_get_engine (f->downloader));
  record_h = bg_store_lookup (store, BG_TASK_KIND_DOWNLOAD, "h", &error);
  g_assert_no_error (error);
  g_assert_nonnull (strstr (record_h->request_headers, "X-Visible: stays"));
  g_assert_null (strstr (record_h->request_headers, "Bearer"));
  g_assert_cmpstr (record_h->withheld_headers, ==, "Authorization, Cookie, Proxy-Authorization");
  g_assert_false (record_h->withheld_password);
  record_p = bg_store_lookup (store, BG_TASK_KIND_DOWNLOAD, "p", &error);
  g_assert_no_error (error);
  g_assert_true (g_str_has_prefix (record_p->uri, "http://user@127.0.0.1:"));
  g_assert_null (record_p->withheld_headers);
  g_assert_true (record_p->withheld_password);
  assert_no_secret (f->db);

  /* Nothing the library returns shows the password. */
  task = lookup_task (f, "p");
  g_assert_true (g_str_has_prefix (bg_task_get_uri (task), "http://user@127.0.0.1:"));
  g_assert_null (strstr (bg_task_get_uri (task), URL_SECRET));

  /* This run has them: every task succeeds with its first attempt. */
  response_h = finish_request (f, &result_h);
  response_r = finish_request (f, &result_r);
  response_p = finish_request (f, &result_p);
  g_assert_cmpuint (bg_response_get_status (response_h), ==, 200);
  g_assert_cmpuint (bg_response_get_status (response_r), ==, 200);
  g_assert_cmpuint (bg_response_get_status (response_p), ==, 200);
  g_assert_cmpuint (bg_task_get_attempts (task), ==, 1);
  for (guint i = 0; i < 3; i++)
    {
      const char *dests[] = { dest_h, dest_r, dest_p };
      g_autofree char *got = bg_test_sha256_file (dests[i]);

      g_assert_cmpstr (got, ==, dests[i] == dest_p ? sha_p : sha);
    }

  g_clear_object (&f->downloader);
  assert_no_secret (f->db);
}

static void
supply_credentials_cb (BgDownloader *downloader,
                       BgTask       *task,
                       SoupMessage  *msg,
                       Fixture      *f)
{
  g_autoptr(GUri) uri = NULL;
  GUri *current = soup_message_get_uri (msg);

  /* Only the task that lost a URL password gets it back here; "h" gets a new request. */
  if (!g_str_equal (bg_task_get_identifier (task), "p"))
    return;

  uri = g_uri_build_with_user (SOUP_HTTP_URI_FLAGS, "http", "user", URL_SECRET, NULL,
                               g_uri_get_host (current), g_uri_get_port (current),
                               g_uri_get_path (current), g_uri_get_query (current), NULL);
  soup_message_set_uri (msg, uri);
}

/* The credentials are gone after a restart: the task waits with BG_WAIT_REASON_CREDENTIALS
 * without using attempts, and goes on once a prepare-request handler or a new request supplies
 * them. */
static void
test_credentials_lost_on_restart (Fixture       *f,
                                  gconstpointer  data)
{
  g_autofree char *sha = serve_file (f, "l.bin", 200000, 22);
  g_autofree char *sha_p = serve_password_file (f, "l.bin", 200000, 32);
  g_autofree char *basic = basic_authorization ("user", URL_SECRET);
  g_autofree char *header_query = auth_query ("/files/l.bin", "Bearer " BEARER_SECRET);
  g_autofree char *password_query = auth_query ("/files/pw/l.bin", basic);
  g_autofree char *dest_h = dest_path (f, "h.bin");
  g_autofree char *dest_p = dest_path (f, "p.bin");
  g_autoptr(SoupMessage) with_headers = message_with_headers (f, header_query);
  g_autoptr(SoupMessage) with_password = message_with_password (f, password_query);
  g_autoptr(SoupMessage) again = NULL;
  GAsyncResult *results[2] = { NULL, NULL };
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GPtrArray) records = NULL;
  g_autoptr(GError) error = NULL;
  guint prepared = 0;
  g_autoptr(BgTask) task_h = NULL;
  g_autoptr(BgTask) task_p = NULL;
  gulong id;

  bg_test_skip_in_service_mode ("an app that stops leaves the download to the service");

  /* The app stops before any attempt started. */
  start_request (f, with_headers, dest_h, "h", &results[0]);
  start_request (f, with_password, dest_p, "p", &results[1]);
  close_downloader (f, results, G_N_ELEMENTS (results));
  assert_no_secret (f->db);

  /* What the database says, read with the store once the downloader is gone. */
  {
    g_autoptr(BgStore) store = bg_store_open (f->db, &error);

    g_assert_no_error (error);
    records = bg_store_load_all (store, BG_TASK_KIND_DOWNLOAD, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (records->len, ==, 2);
    for (guint i = 0; i < records->len; i++)
      {
        BgStoreRecord *record = g_ptr_array_index (records, i);

        g_assert_null (strstr (record->uri, URL_SECRET));
        g_assert_null (strstr (record->request_headers, BEARER_SECRET));
        g_assert_true (record->withheld_headers != NULL || record->withheld_password);
      }
  }

  /* The next run: prepare-request runs, supplies nothing, and no attempt starts. */
  bg_test_server_reset (f->server);
  f->downloader = open_downloader (f);
  id = g_signal_connect (f->downloader, "prepare-request", G_CALLBACK (count_prepare_cb),
                         &prepared);
  restore_queue (f);
  task_h = lookup_task (f, "h");
  task_p = lookup_task (f, "p");
  wait_for_credentials_wait (task_h);
  wait_for_credentials_wait (task_p);
  g_assert_cmpuint (prepared, >=, 2);
  g_assert_cmpuint (bg_task_get_attempts (task_h), ==, 0);
  g_assert_cmpuint (bg_task_get_attempts (task_p), ==, 0);
  g_assert_cmpint (bg_test_server_stat_int (f->server, "requests"), ==, 0);
  g_signal_handler_disconnect (f->downloader, id);

  /* A handler supplies the URL password of "p" (the periodic look finds it); "h" is given its
   * Authorization header again through a new request with the same identifier. */
  g_signal_connect (f->downloader, "prepare-request", G_CALLBACK (supply_credentials_cb), f);
  again = soup_message_new_from_uri ("GET", soup_message_get_uri (with_headers));
  soup_message_headers_append (soup_message_get_request_headers (again), "Authorization",
                               "Bearer " BEARER_SECRET);
  start_request (f, again, dest_h, "h", &result);
  wait_for_finished (f, 2);

  g_assert_cmpuint (bg_response_get_status (bg_task_get_response (task_h)), ==, 200);
  g_assert_cmpuint (bg_response_get_status (bg_task_get_response (task_p)), ==, 200);
  g_assert_cmpuint (bg_task_get_attempts (task_h), ==, 1);
  g_assert_cmpuint (bg_task_get_attempts (task_p), ==, 1);
  for (guint i = 0; i < 2; i++)
    {
      const char *dests[] = { dest_h, dest_p };
      g_autofree char *got = bg_test_sha256_file (dests[i]);

      g_assert_cmpstr (got, ==, dests[i] == dest_p ? sha_p : sha);
    }

  bg_test_wait_for_result (&result, 30);
  g_clear_object (&f->downloader);
  assert_no_secret (f->db);
}

/* With keep-credentials, set while the task is queued, the credentials are stored and the next
 * run needs no handler. */
static void
test_credentials_kept (Fixture       *f,
                       gconstpointer  data)
{
  g_autofree char *sha = serve_file (f, "k.bin", 200000, 23);
  g_autofree char *sha_p = serve_password_file (f, "k.bin", 200000, 33);
  g_autofree char *basic = basic_authorization ("user", URL_SECRET);
  g_autofree char *header_query = auth_query ("/files/k.bin", "Bearer " BEARER_SECRET);
  g_autofree char *password_query = auth_query ("/files/pw/k.bin", basic);
  g_autofree char *dest_h = dest_path (f, "h.bin");
  g_autofree char *dest_p = dest_path (f, "p.bin");
  g_autoptr(SoupMessage) with_headers = message_with_headers (f, header_query);
  g_autoptr(SoupMessage) with_password = message_with_password (f, password_query);
  GAsyncResult *results[2] = { NULL, NULL };
  g_autoptr(BgTask) task = NULL;
  g_autoptr(BgTask) task_h = NULL;
  g_autofree char *got_h = NULL;
  g_autofree char *got_p = NULL;

  bg_test_skip_in_service_mode ("the service writes the option after the call returned");

  start_request (f, with_headers, dest_h, "h", &results[0]);
  start_request (f, with_password, dest_p, "p", &results[1]);
  g_assert_false (bg_test_database_contains (f->db, BEARER_SECRET));
  task_h = lookup_task (f, "h");
  task = lookup_task (f, "p");
  bg_task_set_keep_credentials (task_h, TRUE);
  g_object_set (task, "keep-credentials", TRUE, NULL);
  g_clear_object (&task_h);
  g_clear_object (&task);
  close_downloader (f, results, G_N_ELEMENTS (results));

  /* Stored, as asked. */
  g_assert_true (bg_test_database_contains (f->db, BEARER_SECRET));
  g_assert_true (bg_test_database_contains (f->db, URL_SECRET));

  f->downloader = open_downloader (f);
  restore_queue (f);
  task_h = lookup_task (f, "h");
  task = lookup_task (f, "p");
  g_assert_true (bg_task_get_keep_credentials (task));
  g_assert_null (strstr (bg_task_get_uri (task), URL_SECRET));
  wait_for_finished (f, 2);

  g_assert_cmpuint (bg_response_get_status (bg_task_get_response (task_h)), ==, 200);
  g_assert_cmpuint (bg_response_get_status (bg_task_get_response (task)), ==, 200);
  got_h = bg_test_sha256_file (dest_h);
  got_p = bg_test_sha256_file (dest_p);
  g_assert_cmpstr (got_h, ==, sha);
  g_assert_cmpstr (got_p, ==, sha_p);
}

/* A database from before credentials were kept out (schema 3 stored them as given): restoring
 * takes them out of the record, and this run still uses them. */
static void
test_credentials_scrubbed_from_old_record (Fixture       *f,
                                           gconstpointer  data)
{
  g_autofree char *sha = serve_file (f, "o.bin", 100000, 24);
  g_autofree char *query = auth_query ("/files/o.bin", "Bearer " BEARER_SECRET);
  g_autofree char *url = bg_test_server_url (f->server, query);
  g_autofree char *dest = dest_path (f, "o.bin");
  g_autofree char *got = NULL;
  g_autoptr(BgStoreRecord) loaded = NULL;
  g_autoptr(GError) error = NULL;

  bg_test_skip_in_service_mode ("it writes records into the database, which the service holds");

  g_clear_object (&f->downloader);
  {
    g_autoptr(BgStore) store = bg_store_open (f->db, &error);
    g_autoptr(BgStoreRecord) record = bg_store_record_new ();

    g_assert_no_error (error);
    record->identifier = g_strdup ("old");
    record->kind = BG_TASK_KIND_DOWNLOAD;
    record->method = g_strdup ("GET");
    record->uri = g_strdup (url);
    record->request_headers = g_strdup ("Accept: */*\nAuthorization: Bearer " BEARER_SECRET "\n");
    record->file_path = g_strdup (dest);
    record->partial_path = g_build_filename (f->tmp, ".bg-old.part", NULL);
    record->total = -1;
    record->source_size = -1;
    record->created_at = record->updated_at = g_get_real_time ();
    g_assert_true (bg_store_save (store, record, &error));
    g_assert_no_error (error);
  }

  f->downloader = open_downloader (f);
  restore_queue (f);
  loaded = bg_store_lookup (bg_engine_get_store (bg_downloader_get_engine (f->downloader)),
                            BG_TASK_KIND_DOWNLOAD, "old", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (loaded->request_headers, ==, "Accept: */*\n");
  g_assert_cmpstr (loaded->withheld_headers, ==, "Authorization");

  wait_for_finished (f, 1);
  g_assert_no_error (bg_response_get_error (f->last_finished));
  g_assert_cmpuint (bg_response_get_status (f->last_finished), ==, 200);
  got = bg_test_sha256_file (dest);
  g_assert_cmpstr (got, ==, sha);
}

/* --- Lifetime ------------------------------------------------------------------------------ */

static gint64
file_size (const char *path)
{
  GStatBuf st;

  return g_stat (path, &st) == 0 ? st.st_size : -1;
}

static char *
only_partial (const char *dir)
{
  g_autoptr(GDir) d = g_dir_open (dir, 0, NULL);
  const char *name;

  while (d != NULL && (name = g_dir_read_name (d)) != NULL)
    if (g_str_has_suffix (name, ".part"))
      return g_build_filename (dir, name, NULL);

  return NULL;
}

/* Dropping the last reference to a downloader with a running task and a pending call finalises
 * it: the call ends with BG_ERROR_CLOSED, no byte moves afterwards, and the next downloader on
 * the database carries the task on from its checkpoint. */
static void
test_finalized_while_busy (Fixture       *f,
                           gconstpointer  data)
{
  g_autofree char *sha = serve_file (f, "busy.bin", 8 * MiB, 60);
  g_autofree char *dest = dest_path (f, "busy.bin");
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(BgResponse) response = NULL;
  g_autofree char *partial = NULL;
  g_autofree char *got = NULL;
  gint64 size, sent;
  GWeakRef engine;

  bg_test_skip_in_service_mode ("it looks at the engine of this process");

  start_download (f, "/files/busy.bin?rate=2000000", dest, "busy", NULL, &result);
  wait_for_bytes (f->downloader, "busy", 4 * MiB);

  g_weak_ref_init (&engine, bg_downloader_get_engine (f->downloader));
  g_assert_finalize_object (g_steal_pointer (&f->downloader));

  bg_test_wait_for_result (&result, 30);
  g_assert_null (g_task_propagate_pointer (G_TASK (result), &error));
  g_assert_error (error, BG_ERROR, BG_ERROR_CLOSED);
  g_clear_error (&error);

  /* The cancelled attempt winds down, and the engine it kept alive goes with it; the server
   * sees the connection end.  Then watch: nothing moves any more. */
  bg_test_wait_finalized (&engine);
  bg_test_server_wait_idle (f->server, 30);
  partial = only_partial (f->tmp);
  g_assert_nonnull (partial);
  size = file_size (partial);
  sent = bg_test_server_stat_int (f->server, "bytes_sent");
  bg_test_run_for (1500);
  g_assert_cmpint (file_size (partial), ==, size);
  g_assert_cmpint (bg_test_server_stat_int (f->server, "bytes_sent"), ==, sent);

  /* The task is still in the database, and goes on from its checkpoint. */
  f->downloader = open_downloader (f);
  restore_queue (f);
  while (f->finished_count == 0)
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpint (bg_response_get_kind (f->last_finished), ==, BG_RESPONSE_SUCCESS);
  g_assert_cmpuint (bg_response_get_status (f->last_finished), ==, 206);
  got = bg_test_sha256_file (dest);
  g_assert_cmpstr (got, ==, sha);
}

static void
count_finished_cb (BgDownloader *downloader,
                   BgTask       *task,
                   BgResponse   *response,
                   guint        *count)
{
  (*count)++;
}

/* Two downloaders on one database in one process share one engine: a restored task runs once,
 * and both hear of its result. */
static void
test_shared_engine (Fixture       *f,
                    gconstpointer  data)
{
  g_autofree char *sha = serve_file (f, "shared.bin", 4 * MiB, 61);
  g_autofree char *dest = dest_path (f, "shared.bin");
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GAsyncResult) r1 = NULL;
  g_autoptr(GAsyncResult) r2 = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(BgDownloader) second = NULL;
  g_autofree char *got = NULL;
  guint second_finished = 0;
  gint64 requests;
  GWeakRef engine;

  bg_test_skip_in_service_mode ("it looks at the engine of this process");

  /* A task left in the database by a downloader that was closed mid-way. */
  start_download (f, "/files/shared.bin?rate=2000000", dest, "shared", NULL, &result);
  wait_for_bytes (f->downloader, "shared", MiB);
  g_weak_ref_init (&engine, bg_downloader_get_engine (f->downloader));
  bg_downloader_close (f->downloader);
  bg_test_wait_for_result (&result, 30);
  g_clear_object (&f->downloader);
  /* The closed attempt has ended once the engine it kept alive is gone, and the server has
   * seen its connection end. */
  bg_test_wait_finalized (&engine);
  bg_test_server_wait_idle (f->server, 30);
  bg_test_server_reset (f->server);

  f->downloader = open_downloader (f);
  second = open_downloader (f);
  g_signal_connect (second, "task-finished", G_CALLBACK (count_finished_cb), &second_finished);
  g_assert_true (bg_downloader_get_tasks (f->downloader) == bg_downloader_get_tasks (second));

  bg_downloader_restore_async (f->downloader, NULL, bg_test_store_result_cb, &r1);
  bg_downloader_restore_async (second, NULL, bg_test_store_result_cb, &r2);
  bg_test_wait_for_result (&r1, 30);
  bg_test_wait_for_result (&r2, 30);
  g_assert_true (bg_downloader_restore_finish (f->downloader, r1, &error));
  g_assert_true (bg_downloader_restore_finish (second, r2, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (g_list_model_get_n_items (bg_downloader_get_tasks (second)), ==, 1);

  while (f->finished_count == 0 || second_finished == 0)
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpint (bg_response_get_kind (f->last_finished), ==, BG_RESPONSE_SUCCESS);
  got = bg_test_sha256_file (dest);
  g_assert_cmpstr (got, ==, sha);

  /* One attempt at the server, not one per downloader. */
  requests = bg_test_server_stat_int (f->server, "requests");
  g_assert_cmpint (requests, ==, 1);
  g_assert_true (bg_downloader_forget (second, "shared", &error));
  g_assert_no_error (error);

  /* Closing one leaves the other working. */
  bg_downloader_close (second);
  g_assert_nonnull (bg_downloader_get_engine (f->downloader));
  {
    g_autofree char *again_dest = dest_path (f, "again.bin");
    g_autoptr(BgResponse) again = download (f, "/files/shared.bin", again_dest, "again");

    g_assert_cmpint (bg_response_get_kind (again), ==, BG_RESPONSE_SUCCESS);
  }
}

/* After close(), every call fails with BG_ERROR_CLOSED, and a pending wait ends with it. */
static void
test_close (Fixture       *f,
            gconstpointer  data)
{
  g_autofree char *dest = dest_path (f, "closed.bin");
  g_autoptr(GAsyncResult) pending = NULL;
  g_autoptr(GAsyncResult) after = NULL;
  g_autoptr(GAsyncResult) restored = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(BgResponse) response = NULL;

  g_free (serve_file (f, "closed.bin", 2 * MiB, 62));
  start_download (f, "/files/closed.bin?rate=1000000", dest, "closed", NULL, &pending);
  bg_downloader_close (f->downloader);
  bg_downloader_close (f->downloader);

  bg_test_wait_for_result (&pending, 30);
  response = bg_downloader_download_finish (f->downloader, pending, &error);
  g_assert_null (response);
  g_assert_error (error, BG_ERROR, BG_ERROR_CLOSED);
  g_clear_error (&error);

  start_download (f, "/files/closed.bin", dest, "closed", NULL, &after);
  bg_test_wait_for_result (&after, 30);
  g_assert_null (bg_downloader_download_finish (f->downloader, after, &error));
  g_assert_error (error, BG_ERROR, BG_ERROR_CLOSED);
  g_clear_error (&error);

  bg_downloader_restore_async (f->downloader, NULL, bg_test_store_result_cb, &restored);
  bg_test_wait_for_result (&restored, 30);
  g_assert_false (bg_downloader_restore_finish (f->downloader, restored, &error));
  g_assert_error (error, BG_ERROR, BG_ERROR_CLOSED);
  g_clear_error (&error);

  g_assert_false (bg_downloader_cancel (f->downloader, "closed", &error));
  g_assert_error (error, BG_ERROR, BG_ERROR_CLOSED);
  g_clear_error (&error);
  g_assert_false (bg_downloader_forget (f->downloader, "closed", &error));
  g_assert_error (error, BG_ERROR, BG_ERROR_CLOSED);
  g_clear_error (&error);
  g_assert_cmpuint (g_list_model_get_n_items (bg_downloader_get_tasks (f->downloader)), ==, 0);
  g_assert_null (bg_downloader_lookup_task (f->downloader, "closed"));
  g_assert_false (g_file_test (dest, G_FILE_TEST_EXISTS));
}

static gboolean
tick_cb (gpointer data)
{
  guint *ticks = data;

  (*ticks)++;
  return G_SOURCE_CONTINUE;
}

/* A downloader made with new_async() opens its database on a worker thread, and restoring
 * loads thousands of records off the main thread: the main loop keeps turning meanwhile. */
static void
test_async_open_and_restore (Fixture       *f,
                             gconstpointer  data)
{
  const guint n_tasks = 3000;
  g_autoptr(GAsyncResult) made = NULL;
  g_autoptr(GAsyncResult) restored = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(BgDownloader) downloader = NULL;
  g_autofree char *url = bg_test_server_url (f->server, "/files/never.bin");
  guint ticks = 0;
  guint tick_id;

  bg_test_skip_in_service_mode ("it writes records into the database, which the service holds");

  /* Records of unfinished tasks, as earlier runs would leave them, held until tomorrow. */
  g_clear_object (&f->downloader);
  {
    g_autoptr(BgStore) store = bg_store_open (f->db, &error);

    g_assert_no_error (error);
    for (guint i = 0; i < n_tasks; i++)
      {
        g_autoptr(BgStoreRecord) record = bg_store_record_new ();

        record->identifier = g_strdup_printf ("many-%u", i);
        record->kind = BG_TASK_KIND_DOWNLOAD;
        record->state = BG_TASK_STATE_QUEUED;
        record->method = g_strdup ("GET");
        record->uri = g_strdup (url);
        record->file_path = g_strdup_printf ("%s/many-%u.bin", f->tmp, i);
        record->partial_path = g_strdup_printf ("%s/.bg-many-%u.part", f->tmp, i);
        record->total = -1;
        record->source_size = -1;
        record->earliest_start = g_get_real_time () + (gint64) 24 * 3600 * G_USEC_PER_SEC;
        record->created_at = record->updated_at = g_get_real_time ();
        g_assert_true (bg_store_save (store, record, &error));
        g_assert_no_error (error);
      }
  }

  bg_downloader_new_async ("test", NULL, bg_test_store_result_cb, &made);
  bg_test_wait_for_result (&made, 30);
  downloader = bg_downloader_new_finish (made, &error);
  g_assert_no_error (error);
  g_assert_true (BG_IS_DOWNLOADER (downloader));
  g_assert_nonnull (bg_task_queue_get_database_path (BG_TASK_QUEUE (downloader)));

  /* The same through the database-path property, which the test fixture uses. */
  g_clear_object (&made);
  g_clear_object (&downloader);
  g_async_initable_new_async (BG_TYPE_DOWNLOADER, G_PRIORITY_DEFAULT, NULL,
                              bg_test_store_result_cb, &made,
                              "session-id", "test", "database-path", f->db, NULL);
  bg_test_wait_for_result (&made, 30);
  downloader = bg_downloader_new_finish (made, &error);
  g_assert_no_error (error);

  tick_id = g_timeout_add (1, tick_cb, &ticks);
  bg_downloader_restore_async (downloader, NULL, bg_test_store_result_cb, &restored);
  /* Nothing was loaded in the call itself. */
  g_assert_cmpuint (g_list_model_get_n_items (bg_downloader_get_tasks (downloader)), ==, 0);
  bg_test_wait_for_result (&restored, 60);
  g_source_remove (tick_id);
  g_assert_true (bg_downloader_restore_finish (downloader, restored, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (g_list_model_get_n_items (bg_downloader_get_tasks (downloader)), ==, n_tasks);
  g_test_message ("the main loop turned %u times while %u records loaded", ticks, n_tasks);
  bg_downloader_close (downloader);
}

/* --- Bandwidth caps ------------------------------------------------------------------------ */

typedef gboolean (*TaskCondition) (BgTask *task, gpointer data);

typedef struct
{
  TaskCondition condition;
  gpointer      data;
  gboolean      holds;
} TaskWatch;

static void
task_watch_cb (BgTask     *task,
               GParamSpec *pspec,
               TaskWatch  *watch)
{
  if (!watch->holds)
    watch->holds = watch->condition (task, watch->data);
}

/* Waits (the main context running) until @condition holds for @task, looking at each of its
 * notifications; fails the test after @timeout_seconds. */
static void
wait_for_task (BgTask        *task,
               TaskCondition  condition,
               gpointer       data,
               guint          timeout_seconds)
{
  TaskWatch watch = { condition, data, condition (task, data) };
  gulong id = g_signal_connect (task, "notify", G_CALLBACK (task_watch_cb), &watch);

  bg_test_wait_for (&watch.holds, timeout_seconds);
  g_signal_handler_disconnect (task, id);
}

static gboolean
task_has_bytes (BgTask   *task,
                gpointer  data)
{
  return bg_task_get_bytes_transferred (task) >= *(gint64 *) data;
}

static gboolean
task_waits_paused (BgTask   *task,
                   gpointer  data)
{
  return bg_task_get_state (task) == BG_TASK_STATE_WAITING &&
         bg_task_get_wait_reason (task) == BG_WAIT_REASON_PAUSED;
}

static void
start_capped_download (Fixture       *f,
                       const char    *path_and_query,
                       const char    *dest,
                       const char    *identifier,
                       guint64        max_bandwidth,
                       GAsyncResult **result)
{
  g_autofree char *url = bg_test_server_url (f->server, path_and_query);
  g_autoptr(SoupMessage) msg = soup_message_new ("GET", url);
  g_autoptr(GFile) file = g_file_new_for_path (dest);
  g_autoptr(BgTaskOptions) options = bg_task_options_new ();

  bg_task_options_set_max_bandwidth (options, max_bandwidth);
  bg_downloader_download_async (f->downloader, msg, file, identifier, options, NULL,
                                bg_test_store_result_cb, result);
}

static BgResponse *
finish_download (Fixture       *f,
                 GAsyncResult **result)
{
  g_autoptr(GError) error = NULL;
  BgResponse *response;

  bg_test_wait_for_result (result, 120);
  response = bg_downloader_download_finish (f->downloader, *result, &error);
  g_assert_no_error (error);
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
  g_clear_object (result);

  return response;
}

static gint64
stored_max_bandwidth (Fixture    *f,
                      const char *identifier)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(BgStore) store = bg_store_open (f->db, &error);
  g_autoptr(BgStoreRecord) record = NULL;

  g_assert_no_error (error);
  record = bg_store_lookup (store, BG_TASK_KIND_DOWNLOAD, identifier, &error);
  g_assert_no_error (error);
  g_assert_nonnull (record);

  return record->max_bandwidth;
}

/* 2 MiB at 1 MiB/s: it takes at least about two seconds (a tenth of a second of burst aside),
 * the file is whole, and the server sent it once. */
static void
test_bandwidth_capped (Fixture       *f,
                       gconstpointer  data)
{
  g_autofree char *sha = serve_file (f, "capped.bin", 2 * MiB, 71);
  g_autofree char *dest = dest_path (f, "capped.bin");
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(BgTask) task = NULL;
  g_autofree char *got = NULL;
  gint64 started = g_get_monotonic_time ();
  double elapsed;

  start_capped_download (f, "/files/capped.bin", dest, "capped", MiB, &result);
  task = bg_downloader_lookup_task (f->downloader, "capped");
  g_assert_nonnull (task);
  g_object_ref (task);
  g_assert_cmpuint (bg_task_get_max_bandwidth (task), ==, MiB);
  if (bg_test_mode () == BG_MODE_IN_PROCESS)
    g_assert_cmpint (stored_max_bandwidth (f, "capped"), ==, MiB);

  response = finish_download (f, &result);
  elapsed = (g_get_monotonic_time () - started) / (double) G_USEC_PER_SEC;
  g_test_message ("2 MiB at 1 MiB/s took %.2f s", elapsed);
  g_assert_cmpfloat (elapsed, >=, 1.5);

  got = bg_test_sha256_file (dest);
  g_assert_cmpstr (got, ==, sha);
  g_assert_cmpint (bg_test_server_stat_int (f->server, "file_bytes_sent"), ==, 2 * MiB);
}

/* A capped download sleeps between reads: its progress and its rate are still told while it
 * runs, step by step (3 MiB at 1 MiB/s: several reads a second for about three seconds). */
static void
test_bandwidth_progress_while_capped (Fixture       *f,
                                      gconstpointer  data)
{
  g_autofree char *sha = serve_file (f, "told.bin", 3 * MiB, 72);
  g_autofree char *dest = dest_path (f, "told.bin");
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(BgResponse) response = NULL;
  BgTestProgressSeen *seen;
  g_autofree char *got = NULL;

  start_capped_download (f, "/files/told.bin", dest, "told", MiB, &result);
  seen = bg_test_watch_progress (bg_downloader_lookup_task (f->downloader, "told"));

  response = finish_download (f, &result);

  bg_test_assert_progress_seen (seen, 3 * MiB, 4);
  got = bg_test_sha256_file (dest);
  g_assert_cmpstr (got, ==, sha);
}

/* The cap set on a running task slows it down within moments, and is stored; lifting it lets
 * the task finish at full speed. */
static void
test_bandwidth_set_while_running (Fixture       *f,
                                  gconstpointer  data)
{
  g_autofree char *sha = serve_file (f, "slowed.bin", 16 * MiB, 72);
  g_autofree char *dest = dest_path (f, "slowed.bin");
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(BgTask) task = NULL;
  g_autofree char *got = NULL;
  gint64 mark = MiB;
  gint64 slowed_at;
  double elapsed;

  start_capped_download (f, "/files/slowed.bin", dest, "slowed", 4 * MiB, &result);
  task = g_object_ref (bg_downloader_lookup_task (f->downloader, "slowed"));
  wait_for_task (task, task_has_bytes, &mark, 60);

  bg_task_set_max_bandwidth (task, 512 * 1024);
  g_assert_cmpuint (bg_task_get_max_bandwidth (task), ==, 512 * 1024);
  slowed_at = g_get_monotonic_time ();
  mark = bg_task_get_bytes_transferred (task) + MiB;
  wait_for_task (task, task_has_bytes, &mark, 60);
  elapsed = (g_get_monotonic_time () - slowed_at) / (double) G_USEC_PER_SEC;
  g_test_message ("1 MiB after the cap went to 512 KiB/s took %.2f s", elapsed);
  /* Two seconds at the new cap; what was in flight and a tick of burst cut it short. */
  g_assert_cmpfloat (elapsed, >=, 1.0);
  if (bg_test_mode () == BG_MODE_IN_PROCESS)
    g_assert_cmpint (stored_max_bandwidth (f, "slowed"), ==, 512 * 1024);

  bg_task_set_max_bandwidth (task, 0);
  response = finish_download (f, &result);
  got = bg_test_sha256_file (dest);
  g_assert_cmpstr (got, ==, sha);
  g_assert_cmpint (bg_test_server_stat_int (f->server, "requests"), ==, 1);
}

/* A task held back by its cap still pauses at once: no byte moves while it is paused, and it
 * picks up from its checkpoint once unpaused. */
static void
test_bandwidth_pause_while_throttled (Fixture       *f,
                                      gconstpointer  data)
{
  g_autofree char *sha = serve_file (f, "held.bin", 8 * MiB, 73);
  g_autofree char *dest = dest_path (f, "held.bin");
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(BgTask) task = NULL;
  g_autofree char *got = NULL;
  gint64 mark = 64 * 1024;
  gint64 paused_at, bytes;

  start_capped_download (f, "/files/held.bin", dest, "held", 256 * 1024, &result);
  task = g_object_ref (bg_downloader_lookup_task (f->downloader, "held"));
  wait_for_task (task, task_has_bytes, &mark, 60);

  paused_at = g_get_monotonic_time ();
  bg_task_set_paused (task, TRUE);
  wait_for_task (task, task_waits_paused, NULL, 10);
  g_test_message ("The throttled attempt ended %" G_GINT64_FORMAT " ms after the pause",
                  (g_get_monotonic_time () - paused_at) / 1000);
  bg_test_server_wait_idle (f->server, 10);

  /* Nothing moves while it is paused: there is no event to wait for. */
  bytes = bg_test_server_stat_int (f->server, "file_bytes_sent");
  g_assert_cmpint (bytes, <, 8 * MiB);
  bg_test_run_for (300);
  g_assert_cmpint (bg_test_server_stat_int (f->server, "file_bytes_sent"), ==, bytes);

  bg_task_set_max_bandwidth (task, 0);
  bg_task_set_paused (task, FALSE);
  response = finish_download (f, &result);
  got = bg_test_sha256_file (dest);
  g_assert_cmpstr (got, ==, sha);
}

/* A task that waits in the queue has no bucket of its own yet: the cap set while it waits is
 * the one its first attempt runs by.  2 MiB at 1 MiB/s take at least about two seconds. */
static void
test_bandwidth_set_while_queued (Fixture       *f,
                                 gconstpointer  data)
{
  g_autofree char *sha = serve_file (f, "waited.bin", 2 * MiB, 77);
  g_autofree char *dest = dest_path (f, "waited.bin");
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(BgTask) task = NULL;
  g_autofree char *got = NULL;
  gint64 started;
  double elapsed;

  bg_task_queue_set_paused (BG_TASK_QUEUE (f->downloader), TRUE);
  start_capped_download (f, "/files/waited.bin", dest, "waited", 0, &result);
  task = g_object_ref (bg_downloader_lookup_task (f->downloader, "waited"));
  wait_for_task (task, task_waits_paused, NULL, 10);

  bg_task_set_max_bandwidth (task, MiB);
  if (bg_test_mode () == BG_MODE_IN_PROCESS)
    g_assert_cmpint (stored_max_bandwidth (f, "waited"), ==, MiB);

  started = g_get_monotonic_time ();
  bg_task_queue_set_paused (BG_TASK_QUEUE (f->downloader), FALSE);
  response = finish_download (f, &result);
  elapsed = (g_get_monotonic_time () - started) / (double) G_USEC_PER_SEC;
  g_test_message ("2 MiB under a cap set while queued took %.2f s", elapsed);
  g_assert_cmpfloat (elapsed, >=, 1.5);

  got = bg_test_sha256_file (dest);
  g_assert_cmpstr (got, ==, sha);
  g_assert_cmpint (bg_test_server_stat_int (f->server, "file_bytes_sent"), ==, 2 * MiB);
}

/* The cap is stored with the task: a later run has the newest value, and runs by it. */
static void
test_bandwidth_restored (Fixture       *f,
                         gconstpointer  data)
{
  g_autofree char *sha = serve_file (f, "kept.bin", 4 * MiB, 74);
  g_autofree char *dest = dest_path (f, "kept.bin");
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(BgResponse) response = NULL;
  BgTask *task;
  g_autofree char *got = NULL;

  start_capped_download (f, "/files/kept.bin", dest, "kept", 100 * 1000, &result);
  task = bg_downloader_lookup_task (f->downloader, "kept");
  bg_task_set_max_bandwidth (task, 200 * 1000);
  bg_downloader_close (f->downloader);
  bg_test_wait_for_result (&result, 30);
  g_clear_object (&result);
  g_clear_object (&f->downloader);

  f->downloader = open_downloader (f);
  restore_queue (f);
  task = bg_downloader_lookup_task (f->downloader, "kept");
  g_assert_nonnull (task);
  g_assert_cmpuint (bg_task_get_max_bandwidth (task), ==, 200 * 1000);

  bg_task_set_max_bandwidth (task, 0);
  start_capped_download (f, "/files/kept.bin", dest, "kept", 0, &result);
  response = finish_download (f, &result);
  got = bg_test_sha256_file (dest);
  g_assert_cmpstr (got, ==, sha);
}

/* The queue's cap is shared by its running tasks: two 1 MiB files under a 1 MiB/s cap take at
 * least about two seconds together, and both arrive whole. */
static void
test_bandwidth_queue_cap (Fixture       *f,
                          gconstpointer  data)
{
  g_autofree char *sha_a = serve_file (f, "qa.bin", MiB, 75);
  g_autofree char *sha_b = serve_file (f, "qb.bin", MiB, 76);
  g_autofree char *dest_a = dest_path (f, "qa.bin");
  g_autofree char *dest_b = dest_path (f, "qb.bin");
  g_autoptr(GAsyncResult) result_a = NULL;
  g_autoptr(GAsyncResult) result_b = NULL;
  g_autoptr(BgResponse) response_a = NULL;
  g_autoptr(BgResponse) response_b = NULL;
  g_autofree char *got_a = NULL;
  g_autofree char *got_b = NULL;
  gint64 started;
  double elapsed;

  bg_task_queue_set_max_bandwidth (BG_TASK_QUEUE (f->downloader), MiB);
  g_assert_cmpuint (bg_task_queue_get_max_bandwidth (BG_TASK_QUEUE (f->downloader)), ==, MiB);

  started = g_get_monotonic_time ();
  start_capped_download (f, "/files/qa.bin", dest_a, "qa", 0, &result_a);
  start_capped_download (f, "/files/qb.bin", dest_b, "qb", 0, &result_b);
  response_a = finish_download (f, &result_a);
  response_b = finish_download (f, &result_b);
  elapsed = (g_get_monotonic_time () - started) / (double) G_USEC_PER_SEC;
  g_test_message ("2 x 1 MiB under a 1 MiB/s queue cap took %.2f s", elapsed);
  g_assert_cmpfloat (elapsed, >=, 1.5);

  got_a = bg_test_sha256_file (dest_a);
  got_b = bg_test_sha256_file (dest_b);
  g_assert_cmpstr (got_a, ==, sha_a);
  g_assert_cmpstr (got_b, ==, sha_b);
}

/* A cap beyond what the database can hold is a programming error: refused, the old value kept. */
static void
test_bandwidth_bad_values (Fixture       *f,
                           gconstpointer  data)
{
  g_autoptr(BgTaskOptions) options = bg_task_options_new ();
  g_autofree char *dest = dest_path (f, "never.bin");
  g_autoptr(GAsyncResult) result = NULL;
  BgTask *task;

  bg_task_options_set_max_bandwidth (options, 1000);
  g_test_expect_message ("Bg", G_LOG_LEVEL_CRITICAL, "*G_MAXINT64*");
  bg_task_options_set_max_bandwidth (options, G_MAXUINT64);
  g_test_assert_expected_messages ();
  g_assert_cmpuint (bg_task_options_get_max_bandwidth (options), ==, 1000);

  g_test_expect_message ("Bg", G_LOG_LEVEL_CRITICAL, "*G_MAXINT64*");
  bg_task_queue_set_max_bandwidth (BG_TASK_QUEUE (f->downloader), G_MAXUINT64);
  g_test_assert_expected_messages ();
  g_assert_cmpuint (bg_task_queue_get_max_bandwidth (BG_TASK_QUEUE (f->downloader)), ==, 0);

  /* A paused task, so that nothing runs meanwhile. */
  g_free (serve_file (f, "never.bin", 1000, 77));
  start_capped_download (f, "/files/never.bin", dest, "never", 1000, &result);
  task = bg_downloader_lookup_task (f->downloader, "never");
  bg_task_set_paused (task, TRUE);
  g_test_expect_message ("Bg", G_LOG_LEVEL_CRITICAL, "*G_MAXINT64*");
  bg_task_set_max_bandwidth (task, (guint64) G_MAXINT64 + 1);
  g_test_assert_expected_messages ();
  g_assert_cmpuint (bg_task_get_max_bandwidth (task), ==, 1000);

  g_assert_true (bg_downloader_cancel (f->downloader, "never", NULL));
  bg_test_wait_for_result (&result, 30);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_log_set_writer_func (expect_warning_writer, NULL, NULL);

#define ADD(path, func) \
  g_test_add ("/downloader/" path, Fixture, NULL, fixture_setup, func, fixture_teardown)

  ADD ("happy-path", test_happy_path);
  ADD ("sizes-at-buffer-edges", test_sizes_at_buffer_edges);
  ADD ("classification", test_classification);
  ADD ("keep-finished", test_keep_finished);
  ADD ("async-open-and-restore", test_async_open_and_restore);
  ADD ("restore-one-change", test_restore_one_change);
  ADD ("join", test_join);
  ADD ("conflict-and-arguments", test_conflict_and_arguments);
  ADD ("max-concurrent", test_max_concurrent);
  ADD ("many-at-once-in-order", test_many_at_once_in_order);
  g_test_add ("/downloader/collected-not-listed-again/kept", Fixture, GINT_TO_POINTER (TRUE),
              fixture_setup, test_collected_not_listed_again, fixture_teardown);
  g_test_add ("/downloader/collected-not-listed-again/not-kept", Fixture,
              GINT_TO_POINTER (FALSE), fixture_setup, test_collected_not_listed_again,
              fixture_teardown);
  ADD ("option-not-set-back", test_option_not_set_back);
  ADD ("cancel", test_cancel);
  ADD ("cancelled-not-listed-again", test_cancelled_not_listed_again);
  ADD ("cancel-wait-only", test_cancel_wait_only);
  ADD ("resume/range", test_resume_range);
  ADD ("prepare-request/sees-attempt", test_prepare_sees_attempt);
  ADD ("resume/ignored-range", test_resume_ignored_range);
  ADD ("resume/changed-etag", test_resume_changed_etag);
  ADD ("resume/wrong-range", test_resume_wrong_range);
  ADD ("resume/range-length-lies", test_resume_range_length_lies);
  ADD ("reason-not-utf8", test_reason_not_utf8);
  ADD ("path-not-utf8", test_path_not_utf8);
  ADD ("header-not-utf8", test_header_not_utf8);
  ADD ("resume/416-complete", test_416_complete);
  ADD ("redirects", test_redirects);
  ADD ("kill-and-restore", test_kill_and_restore);
  ADD ("uncollected-result", test_uncollected_result);
  ADD ("restore-announces", test_restore_announces);
  ADD ("restore-many-in-slices", test_restore_many_in_slices);
  ADD ("cancel-while-restoring", test_cancel_while_restoring);
  ADD ("queued/cancel-restored", test_queued_cancel_restored);
  ADD ("queued/record-deleted", test_queued_record_deleted);
  ADD ("kill-after-batch-announced", test_kill_after_batch_announced);
  ADD ("busy", test_busy);
  ADD ("resume/server-ignores-if-range", test_server_ignores_if_range);
  ADD ("resume/partial-with-other-length", test_partial_with_other_length);
  ADD ("hostile/planted-symlink-partial", test_planted_symlink_partial);
  ADD ("hostile/planted-foreign-partial", test_planted_foreign_partial);
  ADD ("hostile/swapped-partial-after-kill", test_swapped_partial_after_kill);
  ADD ("slow-disk/late-write-after-retry", test_late_write_after_retry);
  ADD ("slow-disk/slow-publish-not-a-stall", test_slow_publish_not_a_stall);
  ADD ("slow-disk/hung-folder-holds-up-only-its-own", test_hung_folder_holds_up_only_its_own);
  ADD ("slow-disk/slow-folder-sync-holds-up-no-rename", test_slow_folder_sync_holds_up_no_rename);
  ADD ("published-mode-follows-umask", test_published_mode_follows_umask);
  ADD ("folder-renamed-leaves-nothing", test_folder_renamed_leaves_nothing);
  ADD ("name-too-long", test_name_too_long);
  ADD ("credentials/not-stored", test_credentials_not_stored);
  ADD ("credentials/lost-on-restart", test_credentials_lost_on_restart);
  ADD ("credentials/kept", test_credentials_kept);
  ADD ("credentials/scrubbed-from-old-record", test_credentials_scrubbed_from_old_record);
  ADD ("lifetime/finalized-while-busy", test_finalized_while_busy);
  ADD ("lifetime/shared-engine", test_shared_engine);
  ADD ("lifetime/close", test_close);
  ADD ("bandwidth/capped", test_bandwidth_capped);
  ADD ("bandwidth/progress-while-capped", test_bandwidth_progress_while_capped);
  ADD ("bandwidth/set-while-running", test_bandwidth_set_while_running);
  ADD ("bandwidth/pause-while-throttled", test_bandwidth_pause_while_throttled);
  ADD ("bandwidth/set-while-queued", test_bandwidth_set_while_queued);
  ADD ("bandwidth/restored", test_bandwidth_restored);
  ADD ("bandwidth/queue-cap", test_bandwidth_queue_cap);
  ADD ("bandwidth/bad-values", test_bandwidth_bad_values);
  g_test_add_func ("/downloader/https-to-http", test_https_to_http);

#undef ADD

  return g_test_run ();
}
