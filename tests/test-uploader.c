/* test-uploader.c: BgUploader against the fault server
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "bg-uploader-private.h"
#include "bg-source-stream-private.h"
#include "bg-store-private.h"
#include "test-utils.h"

#define MiB (1024 * 1024)

typedef struct
{
  BgTestServer *server;
  char         *tmp;
  char         *db;
  BgUploader   *uploader;
  guint         finished_count;
  BgResponse   *last_finished;
} Fixture;

static void
on_task_finished (BgUploader *uploader,
                  BgTask     *task,
                  BgResponse *response,
                  Fixture    *f)
{
  f->finished_count++;
  g_set_object (&f->last_finished, response);
}

static BgUploader *
open_uploader (Fixture *f)
{
  g_autoptr(GError) error = NULL;
  BgUploader *uploader;

  uploader = g_initable_new (BG_TYPE_UPLOADER, NULL, &error,
                             "session-id", "test",
                             "database-path", f->db,
                             "max-attempts", 1,
                             "stall-timeout", 30,
                             "mode", bg_test_mode (),
                             "app-id", bg_test_app_id (),
                             NULL);
  g_assert_no_error (error);
  /* Shorter than retry-delay can say, for the tests that retry; the service keeps its own. */
  if (bg_uploader_get_engine (uploader) != NULL)
    bg_engine_set_backoff (bg_uploader_get_engine (uploader), 50, 200);
  g_signal_connect (uploader, "task-finished", G_CALLBACK (on_task_finished), f);

  return uploader;
}

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  f->server = bg_test_server_new (NULL, FALSE);
  f->tmp = bg_test_make_tmpdir ();
  f->db = g_build_filename (f->tmp, "tasks.sqlite", NULL);
  f->uploader = open_uploader (f);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  /* Nothing may keep the uploader alive once the test lets go. */
  if (f->uploader != NULL)
    bg_test_assert_finalized ((gpointer *) &f->uploader);
  g_clear_object (&f->last_finished);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_clear_pointer (&f->server, bg_test_server_free);
  bg_test_rm_rf (f->tmp);
  g_free (f->tmp);
  g_free (f->db);
}

static char *
make_source (Fixture    *f,
             const char *name,
             gsize       size,
             guint32     seed,
             char      **sha)
{
  char *path = g_build_filename (f->tmp, name, NULL);
  char *digest = bg_test_write_random_file (path, size, seed);

  if (sha != NULL)
    *sha = digest;
  else
    g_free (digest);

  return path;
}

static void
start_upload (Fixture       *f,
              const char    *method,
              const char    *path_and_query,
              const char    *source,
              const char    *identifier,
              GAsyncResult **result)
{
  bg_test_start_upload (f->uploader, f->server, method, path_and_query, source, identifier,
                        result);
}

static BgResponse *
upload (Fixture    *f,
        const char *method,
        const char *path_and_query,
        const char *source,
        const char *identifier)
{
  return bg_test_upload (f->uploader, f->server, method, path_and_query, source, identifier,
                         120);
}

/* Requests the server saw, leaving out the OPTIONS that asks an upload target what it offers
 * (upload-protocol AUTO, the default). */
static gint64
count_body_requests (Fixture *f)
{
  g_autoptr(JsonNode) stats = bg_test_server_stats (f->server);
  JsonArray *log = json_object_get_array_member (json_node_get_object (stats), "log");
  gint64 n = 0;

  for (guint i = 0; i < json_array_get_length (log); i++)
    {
      JsonObject *entry = json_array_get_object_element (log, i);

      if (g_strcmp0 (json_object_get_string_member (entry, "method"), "OPTIONS") != 0)
        n++;
    }

  return n;
}

static JsonArray *
server_uploads (JsonNode *stats)
{
  return json_object_get_array_member (json_node_get_object (stats), "uploads");
}

static const char *
upload_header (JsonObject *upload_record,
               const char *name)
{
  JsonArray *headers = json_object_get_array_member (upload_record, "headers");

  for (guint i = 0; i < json_array_get_length (headers); i++)
    {
      JsonArray *pair = json_array_get_array_element (headers, i);

      if (g_ascii_strcasecmp (json_array_get_string_element (pair, 0), name) == 0)
        return json_array_get_string_element (pair, 1);
    }

  return NULL;
}

/* --- Gates: the server stops at a named point until the test lets it go on ----------------- */

static void
gate_reached_cb (GObject      *object,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  GAsyncResult **out = user_data;

  *out = g_object_ref (result);
}

/* Waits until a request stands at the gate @name; the main context keeps running meanwhile. */
static void
gate_wait (Fixture    *f,
           const char *name)
{
  g_autofree char *path = g_strdup_printf ("/_gate?name=%s", name);
  g_autofree char *url = bg_test_server_url (f->server, path);
  g_autoptr(SoupSession) session = soup_session_new ();
  g_autoptr(SoupMessage) msg = soup_message_new ("GET", url);
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GBytes) body = NULL;
  g_autoptr(GError) error = NULL;

  soup_session_send_and_read_async (session, msg, G_PRIORITY_DEFAULT, NULL,
                                    gate_reached_cb, &result);
  bg_test_wait_for_result (&result, 60);
  body = soup_session_send_and_read_finish (session, result, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (soup_message_get_status (msg), ==, 200);
}

static void
gate_open (Fixture    *f,
           const char *name)
{
  g_autofree char *path = g_strdup_printf ("/_open?name=%s", name);
  g_autofree char *url = bg_test_server_url (f->server, path);
  g_autoptr(SoupSession) session = soup_session_new ();
  g_autoptr(SoupMessage) msg = soup_message_new ("POST", url);
  g_autoptr(GBytes) body = NULL;
  g_autoptr(GError) error = NULL;

  /* The server is another process: a blocking call cannot deadlock. */
  body = soup_session_send_and_read (session, msg, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (soup_message_get_status (msg), ==, 204);
}

/* Rewrites @path in place with the same number of new bytes and returns their sha256; with
 * @keep_mtime the modification time is put back as it was. */
static char *
rewrite_in_place (const char *path,
                  guint32     seed,
                  gboolean    keep_mtime)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (seed);
  g_autofree guint8 *block = g_malloc (65536);
  struct stat before;
  struct timespec times[2];
  gint64 left;
  int fd;

  g_assert_cmpint (stat (path, &before), ==, 0);
  fd = g_open (path, O_WRONLY | O_CLOEXEC, 0);
  g_assert_cmpint (fd, >=, 0);

  for (left = before.st_size; left > 0; )
    {
      gsize n = MIN (left, 65536);

      for (gsize i = 0; i < n; i++)
        block[i] = g_rand_int (rand);
      g_assert_cmpint (write (fd, block, n), ==, (gssize) n);
      left -= n;
    }
  g_assert_cmpint (close (fd), ==, 0);

  if (keep_mtime)
    {
      times[0] = before.st_atim;
      times[1] = before.st_mtim;
      g_assert_cmpint (utimensat (AT_FDCWD, path, times, 0), ==, 0);
    }

  return bg_test_sha256_file (path);
}

/* No Idempotency-Key was sent with two different complete bodies. */
static void
assert_one_body_per_key (JsonArray *uploads)
{
  g_autoptr(GHashTable) bodies = g_hash_table_new (g_str_hash, g_str_equal);

  for (guint i = 0; i < json_array_get_length (uploads); i++)
    {
      JsonObject *record = json_array_get_object_element (uploads, i);
      const char *key = upload_header (record, "Idempotency-Key");
      const char *sha = json_object_get_string_member (record, "sha256");
      const char *seen;

      if (key == NULL || !json_object_get_boolean_member (record, "complete"))
        continue;

      seen = g_hash_table_lookup (bodies, key);
      if (seen != NULL)
        g_assert_cmpstr (seen, ==, sha);
      else
        g_hash_table_insert (bodies, (gpointer) key, (gpointer) sha);
    }
}

static void
test_put (Fixture       *f,
          gconstpointer  data)
{
  g_autofree char *sha = NULL;
  g_autofree char *src = make_source (f, "put.bin", 32 * MiB, 1, &sha);
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(JsonNode) stats = NULL;
  g_autoptr(GFile) expected_file = g_file_new_for_path (src);
  JsonObject *record;
  GBytes *body;
  g_autofree char *body_text = NULL;

  response = upload (f, "PUT", "/upload/put.bin", src, "put");
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
  g_assert_cmpuint (bg_response_get_status (response), ==, 201);
  g_assert_true (g_file_equal (bg_response_get_file (response), expected_file));

  body = bg_response_get_body (response);
  g_assert_nonnull (body);
  body_text = g_strndup (g_bytes_get_data (body, NULL), g_bytes_get_size (body));
  g_assert_nonnull (strstr (body_text, sha));

  stats = bg_test_server_stats (f->server);
  g_assert_cmpuint (json_array_get_length (server_uploads (stats)), ==, 1);
  record = json_array_get_object_element (server_uploads (stats), 0);
  g_assert_cmpstr (json_object_get_string_member (record, "method"), ==, "PUT");
  g_assert_cmpstr (json_object_get_string_member (record, "sha256"), ==, sha);
  g_assert_cmpint (json_object_get_int_member (record, "size"), ==, 32 * MiB);
  g_assert_true (json_object_get_boolean_member (record, "complete"));
  g_assert_nonnull (upload_header (record, "Idempotency-Key"));
  g_assert_cmpstr (upload_header (record, "Content-Length"), ==, "33554432");

  /* The source is the app's: it stays. */
  g_assert_true (g_file_test (src, G_FILE_TEST_EXISTS));
  g_assert_cmpuint (f->finished_count, ==, 1);
  /* Collected, and kept in the list as history until forgotten. */
  g_assert_cmpuint (g_list_model_get_n_items (bg_uploader_get_tasks (f->uploader)), ==, 1);
  g_assert_true (bg_uploader_forget (f->uploader, "put", NULL));
  g_assert_cmpuint (g_list_model_get_n_items (bg_uploader_get_tasks (f->uploader)), ==, 0);
}

static void
test_post_and_headers (Fixture       *f,
                       gconstpointer  data)
{
  g_autofree char *sha = NULL;
  g_autofree char *src = make_source (f, "post.bin", 100000, 2, &sha);
  g_autofree char *url = bg_test_server_url (f->server, "/upload/post.bin");
  g_autoptr(SoupMessage) msg = soup_message_new ("POST", url);
  g_autoptr(GFile) file = g_file_new_for_path (src);
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(JsonNode) stats = NULL;
  g_autoptr(GError) error = NULL;
  JsonObject *record;

  soup_message_headers_append (soup_message_get_request_headers (msg), "Content-Type",
                               "application/x-test");
  soup_message_headers_append (soup_message_get_request_headers (msg), "Idempotency-Key",
                               "\"mine\"");
  soup_message_headers_append (soup_message_get_request_headers (msg), "X-Quote",
                               "it's \"quoted\"; 100%");
  bg_uploader_upload_async (f->uploader, msg, file, "post", NULL, NULL,
                            bg_test_store_result_cb, &result);
  bg_test_wait_for_result (&result, 60);
  response = bg_uploader_upload_finish (f->uploader, result, &error);
  g_assert_no_error (error);
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);

  stats = bg_test_server_stats (f->server);
  record = json_array_get_object_element (server_uploads (stats), 0);
  g_assert_cmpstr (json_object_get_string_member (record, "method"), ==, "POST");
  g_assert_cmpstr (json_object_get_string_member (record, "sha256"), ==, sha);
  g_assert_cmpstr (upload_header (record, "Content-Type"), ==, "application/x-test");
  g_assert_cmpstr (upload_header (record, "Idempotency-Key"), ==, "\"mine\"");
  g_assert_cmpstr (upload_header (record, "X-Quote"), ==, "it's \"quoted\"; 100%");
}

static void
test_classification (Fixture       *f,
                     gconstpointer  data)
{
  g_autofree char *src = make_source (f, "c.bin", 5000, 3, NULL);
  g_autoptr(BgResponse) r413 = NULL;
  g_autoptr(BgResponse) r503 = NULL;
  g_autoptr(BgResponse) capped = NULL;

  r413 = upload (f, "PUT", "/upload/c.bin?status=413", src, "c413");
  g_assert_cmpint (bg_response_get_kind (r413), ==, BG_RESPONSE_REJECTED);
  g_assert_cmpuint (bg_response_get_status (r413), ==, 413);

  r503 = upload (f, "PUT", "/upload/c.bin?status=503&retry-after=30", src, "c503");
  g_assert_cmpint (bg_response_get_kind (r503), ==, BG_RESPONSE_RETRY);
  g_assert_cmpint (bg_response_get_retry_after (r503), ==, 30);

  bg_uploader_set_max_response_size (f->uploader, 1000);
  capped = upload (f, "PUT", "/upload/c.bin?bigbody=100000", src, "capped");
  g_assert_cmpint (bg_response_get_kind (capped), ==, BG_RESPONSE_SUCCESS);
  g_assert_cmpuint (g_bytes_get_size (bg_response_get_body (capped)), ==, 1000);
}

static void
test_tls_failure (void)
{
  Fixture fx = { 0, };
  Fixture *f = &fx;
  g_autoptr(BgResponse) response = NULL;
  g_autofree char *src = NULL;

  f->server = bg_test_server_new (NULL, TRUE);
  f->tmp = bg_test_make_tmpdir ();
  f->db = g_build_filename (f->tmp, "tasks.sqlite", NULL);
  f->uploader = open_uploader (f);
  src = make_source (f, "tls.bin", 5000, 4, NULL);

  /* A self-signed certificate and the default TLS database. */
  response = upload (f, "PUT", "/upload/tls.bin", src, "tls");
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_FAILED);
  g_assert_nonnull (bg_response_get_error (response));
  g_assert_true (bg_response_get_error (response)->domain == G_TLS_ERROR);
  g_assert_cmpint (bg_test_server_stat_int (f->server, "requests"), ==, 0);

  fixture_teardown (f, NULL);
}

/* A file that is really empty is sent as it is: 0 bytes, answered like any other upload. */
static void
test_empty_source (Fixture       *f,
                   gconstpointer  data)
{
  g_autofree char *src = make_source (f, "empty.bin", 0, 1, NULL);
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(JsonNode) stats = NULL;
  JsonObject *record;

  response = upload (f, "PUT", "/upload/empty.bin", src, "empty");
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
  g_assert_cmpuint (bg_response_get_status (response), ==, 201);

  stats = bg_test_server_stats (f->server);
  g_assert_cmpuint (json_array_get_length (server_uploads (stats)), ==, 1);
  record = json_array_get_object_element (server_uploads (stats), 0);
  g_assert_cmpint (json_object_get_int_member (record, "size"), ==, 0);
  g_assert_true (json_object_get_boolean_member (record, "complete"));
}

static void
test_bad_sources (Fixture       *f,
                  gconstpointer  data)
{
  g_autofree char *fifo = g_build_filename (f->tmp, "fifo", NULL);
  g_autofree char *missing = g_build_filename (f->tmp, "missing", NULL);
  g_autofree char *src = make_source (f, "ok.bin", 10, 5, NULL);
  g_autofree char *other = make_source (f, "other.bin", 10, 6, NULL);
  /* Regular files whose size does not say what they hold: /proc's say 0 bytes, /sys's a
   * page. */
  const char *sources[] = { f->tmp, fifo, missing, "/proc/self/status", "/sys/kernel/uevent_seqnum" };
  g_autoptr(GError) error = NULL;

  g_assert_cmpint (mkfifo (fifo, 0600), ==, 0);

  for (guint i = 0; i < G_N_ELEMENTS (sources); i++)
    {
      g_autoptr(GAsyncResult) result = NULL;

      /* Some sandboxes have no /sys. */
      if (g_str_has_prefix (sources[i], "/sys/") && !g_file_test (sources[i], G_FILE_TEST_EXISTS))
        {
          g_test_message ("%s: not here", sources[i]);
          continue;
        }
      start_upload (f, "PUT", "/upload/bad", sources[i], "bad", &result);
      bg_test_wait_for_result (&result, 30);
      g_assert_null (bg_uploader_upload_finish (f->uploader, result, &error));
      g_assert_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT);
      g_test_message ("%s: %s", sources[i], error->message);
      g_clear_error (&error);
    }

  /* The same identifier with another source. */
  {
    g_autoptr(GAsyncResult) r1 = NULL;
    g_autoptr(GAsyncResult) r2 = NULL;
    g_autoptr(BgResponse) response = NULL;

    start_upload (f, "PUT", "/upload/ok.bin?delay=200", src, "conflict", &r1);
    start_upload (f, "PUT", "/upload/ok.bin", other, "conflict", &r2);
    bg_test_wait_for_result (&r2, 30);
    g_assert_null (bg_uploader_upload_finish (f->uploader, r2, &error));
    g_assert_error (error, BG_ERROR, BG_ERROR_CONFLICT);
    g_clear_error (&error);
    bg_test_wait_for_result (&r1, 30);
    response = bg_uploader_upload_finish (f->uploader, r1, &error);
    g_assert_no_error (error);
    g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
  }

  g_assert_cmpint (count_body_requests (f), ==, 1);
}

/* --- The source changes between attempts --------------------------------------------------- */

typedef struct
{
  Fixture *f;
  char    *source;
  gboolean delete_it;
  char    *new_sha;
  guint    restarts;
} Change;

/* Between the attempts, while the task waits for its retry. */
static void
change_state_cb (BgTask     *task,
                 GParamSpec *pspec,
                 Change     *change)
{
  if (bg_task_get_state (task) == BG_TASK_STATE_WAITING && bg_task_get_attempts (task) == 1)
    {
      if (change->delete_it)
        g_assert_cmpint (g_unlink (change->source), ==, 0);
      else
        change->new_sha = bg_test_write_random_file (change->source, 700000, 99);
    }

  change->restarts = bg_task_get_restarts (task);
}

static BgResponse *
upload_with_change (Fixture    *f,
                    Change     *change,
                    const char *path_and_query,
                    const char *identifier)
{
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  BgResponse *response;
  BgTask *task;

  bg_task_queue_set_max_attempts (BG_TASK_QUEUE (f->uploader), 3);
  start_upload (f, "PUT", path_and_query, change->source, identifier, &result);
  task = bg_uploader_lookup_task (f->uploader, identifier);
  g_assert_nonnull (task);
  g_signal_connect (task, "notify::state", G_CALLBACK (change_state_cb), change);
  bg_test_wait_for_result (&result, 60);
  response = bg_uploader_upload_finish (f->uploader, result, &error);
  g_assert_no_error (error);

  return response;
}

static void
test_source_changed (Fixture       *f,
                     gconstpointer  data)
{
  g_autofree char *old_sha = NULL;
  g_autofree char *src = make_source (f, "changing.bin", 500000, 7, &old_sha);
  Change change = { f, src, FALSE, NULL, 0 };
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(JsonNode) stats = NULL;
  JsonArray *uploads;
  JsonObject *last;

  response = upload_with_change (f, &change, "/upload/changing.bin?fail-first=1&early=1",
                                 "changing");
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
  g_assert_cmpuint (change.restarts, ==, 1);

  /* Sent whole and new, never half old and half new. */
  stats = bg_test_server_stats (f->server);
  uploads = server_uploads (stats);
  last = json_array_get_object_element (uploads, json_array_get_length (uploads) - 1);
  g_assert_true (json_object_get_boolean_member (last, "complete"));
  g_assert_cmpstr (json_object_get_string_member (last, "sha256"), ==, change.new_sha);
  g_assert_cmpstr (json_object_get_string_member (last, "sha256"), !=, old_sha);
  g_assert_cmpint (json_object_get_int_member (last, "size"), ==, 700000);
  g_free (change.new_sha);
}

static void
test_source_deleted (Fixture       *f,
                     gconstpointer  data)
{
  g_autofree char *src = make_source (f, "deleted.bin", 5000, 8, NULL);
  Change change = { f, src, TRUE, NULL, 0 };
  g_autoptr(BgResponse) response = NULL;

  response = upload_with_change (f, &change, "/upload/deleted.bin?fail-first=1&early=1",
                                 "deleted");
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_FAILED);
  g_assert_error (bg_response_get_error (response), G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
}

/* --- A source rewritten while it is being sent (same size) --------------------------------- */

static BgResponse *
upload_rewritten_midway (Fixture     *f,
                         const char  *app_key,
                         gboolean     keep_mtime,
                         char       **old_sha,
                         char       **new_sha,
                         guint       *attempts)
{
  g_autofree char *src = make_source (f, "mixed.bin", 24 * MiB, 11, old_sha);
  g_autofree char *url = NULL;
  g_autoptr(SoupMessage) msg = NULL;
  g_autoptr(GFile) file = g_file_new_for_path (src);
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(BgTask) task = NULL;
  BgResponse *response;

  /* The server honours Idempotency-Key the lax way, and stops reading after 256 KiB. */
  url = bg_test_server_url (f->server, "/upload/mixed.bin?idem=1&gate=mix&gate-at=262144");
  msg = soup_message_new ("PUT", url);
  if (app_key != NULL)
    soup_message_headers_append (soup_message_get_request_headers (msg), "Idempotency-Key",
                                 app_key);

  bg_task_queue_set_max_attempts (BG_TASK_QUEUE (f->uploader), 3);
  bg_uploader_upload_async (f->uploader, msg, file, "mixed", NULL, NULL,
                            bg_test_store_result_cb, &result);
  task = g_object_ref (bg_uploader_lookup_task (f->uploader, "mixed"));

  /* The first part of the body is old; the file is rewritten before the rest is read. */
  gate_wait (f, "mix");
  *new_sha = rewrite_in_place (src, 12, keep_mtime);
  gate_open (f, "mix");

  bg_test_wait_for_result (&result, 120);
  response = bg_uploader_upload_finish (f->uploader, result, &error);
  g_assert_no_error (error);
  *attempts = bg_task_get_attempts (task);

  return response;
}

/* The server got a mix of old and new bytes on the first attempt. */
static void
assert_first_body_mixed (JsonArray  *uploads,
                         const char *old_sha,
                         const char *new_sha)
{
  JsonObject *first = json_array_get_object_element (uploads, 0);

  g_assert_true (json_object_get_boolean_member (first, "gated"));
  g_assert_true (json_object_get_boolean_member (first, "complete"));
  g_assert_cmpint (json_object_get_int_member (first, "size"), ==, 24 * MiB);
  g_assert_cmpstr (json_object_get_string_member (first, "sha256"), !=, old_sha);
  g_assert_cmpstr (json_object_get_string_member (first, "sha256"), !=, new_sha);
}

static void
test_mixed_body_idempotent_server (Fixture       *f,
                                   gconstpointer  data)
{
  gboolean keep_mtime = GPOINTER_TO_INT (data);
  g_autofree char *old_sha = NULL;
  g_autofree char *new_sha = NULL;
  g_autofree char *stored = NULL;
  g_autofree char *body_text = NULL;
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(JsonNode) stats = NULL;
  JsonArray *uploads;
  JsonObject *last;
  GBytes *body;
  guint attempts = 0;

  response = upload_rewritten_midway (f, NULL, keep_mtime, &old_sha, &new_sha, &attempts);

  stats = bg_test_server_stats (f->server);
  uploads = server_uploads (stats);
  assert_first_body_mixed (uploads, old_sha, new_sha);

  /* The mixed body's answer is not credited; the next attempt sends the file as it is now,
   * under a key of its own, and that is the answer the app gets. */
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
  g_assert_cmpuint (attempts, ==, 2);
  body = bg_response_get_body (response);
  g_assert_nonnull (body);
  body_text = g_strndup (g_bytes_get_data (body, NULL), g_bytes_get_size (body));
  g_assert_nonnull (strstr (body_text, new_sha));

  g_assert_cmpuint (json_array_get_length (uploads), ==, 2);
  last = json_array_get_object_element (uploads, 1);
  g_assert_false (json_object_get_boolean_member (last, "replayed"));
  g_assert_cmpstr (json_object_get_string_member (last, "sha256"), ==, new_sha);
  g_assert_cmpstr (upload_header (last, "Idempotency-Key"), !=,
                   upload_header (json_array_get_object_element (uploads, 0),
                                  "Idempotency-Key"));
  assert_one_body_per_key (uploads);

  {
    g_autofree char *on_server = g_build_filename (bg_test_server_get_root (f->server),
                                                   "uploads", "mixed.bin", NULL);

    stored = bg_test_sha256_file (on_server);
    g_assert_cmpstr (stored, ==, new_sha);
  }
}

static void
test_mixed_body_app_key (Fixture       *f,
                         gconstpointer  data)
{
  g_autofree char *old_sha = NULL;
  g_autofree char *new_sha = NULL;
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(JsonNode) stats = NULL;
  const GError *error;
  JsonArray *uploads;
  guint attempts = 0;

  response = upload_rewritten_midway (f, "\"app-key\"", FALSE, &old_sha, &new_sha, &attempts);

  stats = bg_test_server_stats (f->server);
  uploads = server_uploads (stats);
  assert_first_body_mixed (uploads, old_sha, new_sha);

  /* The library cannot invent a key in the app's name: the task fails and says why. */
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_FAILED);
  g_assert_cmpuint (attempts, ==, 1);
  error = bg_response_get_error (response);
  g_assert_nonnull (error);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, "mixed.bin"));
  g_assert_nonnull (strstr (error->message, "Idempotency-Key"));
  g_assert_cmpuint (json_array_get_length (uploads), ==, 1);
  assert_one_body_per_key (uploads);
}

/* Reads @stream to its end; once it has handed out @rewrite_at bytes (if not 0), the first and
 * the last bytes of @path are rewritten in place: the stream hands out old bytes, then new. */
static char *
stream_digest_with_rewrite (GInputStream *stream,
                            const char   *path,
                            gsize         rewrite_at)
{
  g_autofree guint8 *buffer = g_malloc (64 * 1024);
  gsize total = 0;

  while (TRUE)
    {
      g_autoptr(GError) error = NULL;
      gssize n = g_input_stream_read (stream, buffer, 64 * 1024, NULL, &error);

      g_assert_no_error (error);
      if (n == 0)
        break;
      total += n;

      if (rewrite_at > 0 && total >= rewrite_at)
        {
          int fd = g_open (path, O_WRONLY | O_CLOEXEC, 0);
          guint8 other[4096];

          memset (other, 0x5a, sizeof other);
          g_assert_cmpint (pwrite (fd, other, sizeof other, 0), ==, sizeof other);
          g_assert_cmpint (pwrite (fd, other, sizeof other, 2 * MiB - sizeof other), ==,
                           sizeof other);
          g_assert_cmpint (close (fd), ==, 0);
          rewrite_at = 0;
        }
    }

  return bg_source_stream_get_digest (BG_SOURCE_STREAM (stream));
}

/* The bytes sent are compared with the file: a rewrite that no timestamp shows is still seen. */
static void
test_source_stream_content_check (Fixture       *f,
                                  gconstpointer  data)
{
  g_autofree char *sha = NULL;
  g_autofree char *src = make_source (f, "content.bin", 2 * MiB, 18, &sha);
  g_autoptr(GInputStream) same = NULL;
  g_autoptr(GInputStream) mixed = NULL;
  g_autofree char *same_digest = NULL;
  g_autofree char *mixed_digest = NULL;
  g_autofree char *file_digest = NULL;
  g_autoptr(GError) error = NULL;
  int fd = g_open (src, O_RDONLY | O_CLOEXEC, 0);

  g_assert_cmpint (fd, >=, 0);

  /* Unchanged: what was handed out is the file. */
  same = bg_source_stream_new (dup (fd), 2 * MiB, TRUE, NULL, NULL);
  same_digest = stream_digest_with_rewrite (same, src, 0);
  g_assert_cmpstr (same_digest, ==, sha);

  /* Rewritten half way through: the stream handed out a mix, the file says otherwise. */
  mixed = bg_source_stream_new (dup (fd), 2 * MiB, TRUE, NULL, NULL);
  mixed_digest = stream_digest_with_rewrite (mixed, src, 1 * MiB);
  file_digest = bg_source_digest (fd, 2 * MiB, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (mixed_digest, !=, file_digest);
  g_assert_cmpstr (mixed_digest, !=, sha);

  {
    g_autofree char *now = bg_test_sha256_file (src);

    g_assert_cmpstr (file_digest, ==, now);
  }

  close (fd);
}

/* --- Early final status and Expect: 100-continue ------------------------------------------- */

static void
test_early_final_status (Fixture       *f,
                         gconstpointer  data)
{
  static const guint statuses[] = { 413, 501 };
  g_autofree char *src = make_source (f, "early.bin", 4 * MiB, 13, NULL);

  /* Answered before the body is read, and closed at once, as Python's http.server does. */
  bg_task_queue_set_max_attempts (BG_TASK_QUEUE (f->uploader), 5);

  for (guint i = 0; i < G_N_ELEMENTS (statuses); i++)
    {
      g_autofree char *path = g_strdup_printf ("/upload/early.bin?status=%u&early=close",
                                               statuses[i]);
      g_autofree char *id = g_strdup_printf ("early-%u", statuses[i]);
      g_autoptr(GAsyncResult) result = NULL;
      g_autoptr(BgResponse) response = NULL;
      g_autoptr(GError) error = NULL;
      g_autoptr(BgTask) task = NULL;

      start_upload (f, "PUT", path, src, id, &result);
      task = g_object_ref (bg_uploader_lookup_task (f->uploader, id));
      bg_test_wait_for_result (&result, 60);
      response = bg_uploader_upload_finish (f->uploader, result, &error);
      g_assert_no_error (error);

      if (bg_response_get_error (response) != NULL)
        g_test_message ("%u: %s", statuses[i], bg_response_get_error (response)->message);
      g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_REJECTED);
      g_assert_cmpuint (bg_response_get_status (response), ==, statuses[i]);
      g_assert_cmpuint (bg_task_get_attempts (task), ==, 1);
    }
}

static void
test_expect_continue_over_1mib (Fixture       *f,
                                gconstpointer  data)
{
  g_autofree char *at = make_source (f, "at.bin", 1 * MiB, 14, NULL);
  g_autofree char *over = make_source (f, "over.bin", 1 * MiB + 1, 15, NULL);
  g_autoptr(BgResponse) r1 = NULL;
  g_autoptr(BgResponse) r2 = NULL;
  g_autoptr(JsonNode) stats = NULL;
  JsonArray *uploads;

  r1 = upload (f, "PUT", "/upload/at.bin", at, "at");
  g_assert_cmpint (bg_response_get_kind (r1), ==, BG_RESPONSE_SUCCESS);
  r2 = upload (f, "PUT", "/upload/over.bin", over, "over");
  g_assert_cmpint (bg_response_get_kind (r2), ==, BG_RESPONSE_SUCCESS);

  stats = bg_test_server_stats (f->server);
  uploads = server_uploads (stats);
  g_assert_cmpuint (json_array_get_length (uploads), ==, 2);
  g_assert_null (upload_header (json_array_get_object_element (uploads, 0), "Expect"));
  g_assert_cmpstr (upload_header (json_array_get_object_element (uploads, 1), "Expect"), ==,
                   "100-continue");
}

static void
test_server_ignores_expect (Fixture       *f,
                            gconstpointer  data)
{
  g_autofree char *sha = NULL;
  g_autofree char *src = make_source (f, "quiet.bin", 4 * MiB, 16, &sha);
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(JsonNode) stats = NULL;
  JsonArray *uploads;
  JsonObject *first;
  JsonObject *last;

  /* Like an HTTP/1.0 server: no "100 Continue", it just waits for the body.  The body goes
   * anyway, as curl sends it, well before the stall timeout. */
  response = upload (f, "PUT", "/upload/quiet.bin?continue=0", src, "quiet");
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);

  /* The request that waited got no byte of the body; the one after it had no Expect. */
  stats = bg_test_server_stats (f->server);
  uploads = server_uploads (stats);
  g_assert_cmpuint (json_array_get_length (uploads), ==, 2);
  first = json_array_get_object_element (uploads, 0);
  g_assert_cmpstr (upload_header (first, "Expect"), ==, "100-continue");
  g_assert_false (json_object_get_boolean_member (first, "complete"));
  g_assert_cmpint (json_object_get_int_member (first, "size"), ==, 0);
  last = json_array_get_object_element (uploads, 1);
  g_assert_null (upload_header (last, "Expect"));
  g_assert_true (json_object_get_boolean_member (last, "complete"));
  g_assert_cmpstr (json_object_get_string_member (last, "sha256"), ==, sha);
  g_assert_cmpstr (upload_header (first, "Idempotency-Key"), ==,
                   upload_header (last, "Idempotency-Key"));
}

/* --- A source swapped for a FIFO before a redirect is followed ----------------------------- */

typedef struct
{
  GMutex   lock;
  GCond    cond;
  gboolean done;
  gboolean blocked;
  char    *fifo;
} Watchdog;

/* If the main loop is still stuck after a while, a writer opens the FIFO so that the blocked
 * open returns and the test can fail instead of hanging. */
static gpointer
watchdog_thread (gpointer data)
{
  Watchdog *dog = data;
  gint64 deadline = g_get_monotonic_time () + 20 * G_USEC_PER_SEC;

  g_mutex_lock (&dog->lock);
  while (!dog->done)
    if (!g_cond_wait_until (&dog->cond, &dog->lock, deadline))
      break;

  if (!dog->done)
    {
      int fd = g_open (dog->fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC, 0);

      dog->blocked = TRUE;
      if (fd >= 0)
        close (fd);
    }
  g_mutex_unlock (&dog->lock);

  return NULL;
}

static void
test_source_swapped_for_fifo_before_redirect (Fixture       *f,
                                              gconstpointer  data)
{
  g_autofree char *src = make_source (f, "swap.bin", 100000, 17, NULL);
  g_autofree char *second = bg_test_server_url (f->server, "/upload/second.bin");
  g_autofree char *escaped = g_uri_escape_string (second, NULL, FALSE);
  g_autofree char *path = g_strdup_printf ("/upload/first.bin?gate=swap&location=%s", escaped);
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) stats = NULL;
  Watchdog dog = { 0, };
  GThread *thread;
  JsonArray *uploads;
  const GError *failure;

  start_upload (f, "PUT", path, src, "swap", &result);

  /* The server has the whole body and holds back its 307 while the source becomes a FIFO. */
  gate_wait (f, "swap");
  g_assert_cmpint (g_unlink (src), ==, 0);
  g_assert_cmpint (mkfifo (src, 0600), ==, 0);

  g_mutex_init (&dog.lock);
  g_cond_init (&dog.cond);
  dog.fifo = src;
  thread = g_thread_new ("watchdog", watchdog_thread, &dog);

  gate_open (f, "swap");
  bg_test_wait_for_result (&result, 60);

  g_mutex_lock (&dog.lock);
  dog.done = TRUE;
  g_cond_signal (&dog.cond);
  g_mutex_unlock (&dog.lock);
  g_thread_join (thread);
  g_mutex_clear (&dog.lock);
  g_cond_clear (&dog.cond);

  g_assert_false (dog.blocked);

  response = bg_uploader_upload_finish (f->uploader, result, &error);
  g_assert_no_error (error);
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_FAILED);
  failure = bg_response_get_error (response);
  g_assert_nonnull (failure);
  g_test_message ("%s", failure->message);
  g_assert_nonnull (strstr (failure->message, src));

  /* The redirect was never followed with a body from the FIFO. */
  stats = bg_test_server_stats (f->server);
  uploads = server_uploads (stats);
  for (guint i = 0; i < json_array_get_length (uploads); i++)
    g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (uploads, i),
                                                    "name"), !=, "second.bin");
}

/* --- A real kill --------------------------------------------------------------------------- */

static void
unstall_prepare_cb (BgUploader  *uploader,
                    BgTask      *task,
                    SoupMessage *msg,
                    Fixture     *f)
{
  /* The app re-signs the URL in the new run; here it drops the stall. */
  g_autofree char *url = bg_test_server_url (f->server, "/upload/killed.bin");
  g_autoptr(GUri) uri = g_uri_parse (url, SOUP_HTTP_URI_FLAGS, NULL);

  soup_message_set_uri (msg, uri);
}

static void
test_kill_and_restore (Fixture       *f,
                       gconstpointer  data)
{
  g_autofree char *sha = NULL;
  g_autofree char *src = make_source (f, "killed.bin", 16 * MiB, 9, &sha);
  g_autofree char *url = bg_test_server_url (f->server, "/upload/killed.bin?stall=4194304");
  g_autoptr(GSubprocess) helper = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(JsonNode) stats = NULL;
  JsonArray *uploads;
  JsonObject *first;
  JsonObject *second;

  /* Killing the app does not stop the service: test-service.py covers kills there. */
  bg_test_skip_in_service_mode ("the upload goes on at the service when the app is killed");

  g_clear_object (&f->uploader);

  helper = bg_test_spawn_helper (&out, &error, "upload", f->db, url, src, "killed", "PUT", NULL);
  g_assert_no_error (error);

  while (TRUE)
    {
      g_autofree char *line = g_data_input_stream_read_line_utf8 (out, NULL, NULL, &error);
      gint64 bytes;

      g_assert_no_error (error);
      g_assert_nonnull (line);
      if (g_str_has_prefix (line, "finished"))
        g_error ("The helper finished too early: %s", line);
      if (sscanf (line, "progress %" G_GINT64_FORMAT, &bytes) == 1 && bytes >= 2 * MiB)
        break;
    }

  g_subprocess_send_signal (helper, SIGKILL);
  g_subprocess_wait (helper, NULL, &error);
  g_assert_no_error (error);

  f->uploader = open_uploader (f);
  g_signal_connect (f->uploader, "prepare-request", G_CALLBACK (unstall_prepare_cb), f);
  bg_uploader_restore_async (f->uploader, NULL, bg_test_store_result_cb, &result);
  bg_test_wait_for_result (&result, 30);
  g_assert_true (bg_uploader_restore_finish (f->uploader, result, &error));
  g_assert_no_error (error);

  while (f->finished_count == 0)
    g_main_context_iteration (NULL, TRUE);

  g_assert_cmpuint (f->finished_count, ==, 1);
  g_assert_cmpint (bg_response_get_kind (f->last_finished), ==, BG_RESPONSE_SUCCESS);

  stats = bg_test_server_stats (f->server);
  uploads = server_uploads (stats);
  g_assert_cmpuint (json_array_get_length (uploads), >=, 2);
  first = json_array_get_object_element (uploads, 0);
  second = json_array_get_object_element (uploads, json_array_get_length (uploads) - 1);
  g_assert_false (json_object_get_boolean_member (first, "complete"));
  g_assert_true (json_object_get_boolean_member (second, "complete"));
  g_assert_cmpstr (json_object_get_string_member (second, "sha256"), ==, sha);

  /* The same key on both attempts, across the two processes. */
  g_assert_nonnull (upload_header (first, "Idempotency-Key"));
  g_assert_cmpstr (upload_header (first, "Idempotency-Key"), ==,
                   upload_header (second, "Idempotency-Key"));

  g_assert_true (bg_uploader_forget (f->uploader, "killed", &error));
  g_assert_no_error (error);

  /* Exactly once: nothing is announced again. */
  g_clear_object (&f->uploader);
  f->uploader = open_uploader (f);
  g_clear_object (&result);
  bg_uploader_restore_async (f->uploader, NULL, bg_test_store_result_cb, &result);
  bg_test_wait_for_result (&result, 30);
  g_assert_true (bg_uploader_restore_finish (f->uploader, result, &error));
  g_assert_cmpuint (f->finished_count, ==, 1);
}

static void
test_shared_database (Fixture       *f,
                      gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(BgDownloader) downloader = NULL;

  /* A downloader and an uploader of one process share the database. */
  downloader = g_initable_new (BG_TYPE_DOWNLOADER, NULL, &error,
                               "session-id", "test", "database-path", f->db,
                               "mode", bg_test_mode (), "app-id", bg_test_app_id (), NULL);
  g_assert_no_error (error);
  g_assert_nonnull (downloader);
  g_assert_cmpstr (bg_task_queue_get_database_path (BG_TASK_QUEUE (downloader)), ==,
                   bg_task_queue_get_database_path (BG_TASK_QUEUE (f->uploader)));
}

/* --- Credentials at rest ------------------------------------------------------------------- */

#define BEARER_SECRET "s3cret-upload-token"
#define COOKIE_SECRET "c00kie-upload-secret"

static void
add_authorization_cb (BgUploader  *uploader,
                      BgTask      *task,
                      SoupMessage *msg,
                      guint       *count)
{
  SoupMessageHeaders *headers = soup_message_get_request_headers (msg);

  (*count)++;
  /* An app that found its credentials again: the first call supplies nothing. */
  if (*count > 1)
    soup_message_headers_replace (headers, "Authorization", "Bearer " BEARER_SECRET);
}

/* An upload's Authorization and Cookie headers reach the server in this run, never the
 * database; after a restart the task waits for them without using attempts. */
static void
test_credentials_not_stored (Fixture       *f,
                             gconstpointer  data)
{
  g_autofree char *sha = NULL;
  g_autofree char *src = make_source (f, "cred.bin", 200000, 9, &sha);
  g_autofree char *auth = g_compute_checksum_for_string (G_CHECKSUM_SHA256,
                                                         "Bearer " BEARER_SECRET, -1);
  g_autofree char *query = g_strdup_printf ("/upload/cred.bin?auth=%s", auth);
  g_autofree char *later_query = g_strdup_printf ("/upload/later.bin?auth=%s", auth);
  g_autofree char *url = bg_test_server_url (f->server, query);
  g_autofree char *later_url = bg_test_server_url (f->server, later_query);
  g_autoptr(SoupMessage) msg = soup_message_new ("PUT", url);
  g_autoptr(SoupMessage) later = soup_message_new ("PUT", later_url);
  g_autoptr(GFile) file = g_file_new_for_path (src);
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(BgTask) task = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) stats = NULL;
  JsonObject *record;
  guint prepared = 0;
  gboolean waiting = FALSE;

  bg_test_skip_in_service_mode ("an app that stops leaves the upload to the service");

  for (guint i = 0; i < 2; i++)
    {
      SoupMessageHeaders *headers = soup_message_get_request_headers (i == 0 ? msg : later);

      soup_message_headers_append (headers, "Authorization", "Bearer " BEARER_SECRET);
      soup_message_headers_append (headers, "Cookie", "id=" COOKIE_SECRET);
    }

  /* In this run: one attempt, accepted. */
  bg_uploader_upload_async (f->uploader, msg, file, "cred", NULL, NULL, bg_test_store_result_cb,
                            &result);
  bg_test_wait_for_result (&result, 60);
  response = bg_uploader_upload_finish (f->uploader, result, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (bg_response_get_status (response), ==, 201);
  stats = bg_test_server_stats (f->server);
  record = json_array_get_object_element (server_uploads (stats), 0);
  g_assert_cmpstr (json_object_get_string_member (record, "sha256"), ==, sha);
  g_assert_cmpstr (upload_header (record, "Cookie"), ==, "id=" COOKIE_SECRET);
  g_clear_object (&result);

  /* Another one, cut off by the app stopping before its attempt. */
  bg_uploader_upload_async (f->uploader, later, file, "later", NULL, NULL, bg_test_store_result_cb,
                            &result);
  g_object_run_dispose (G_OBJECT (f->uploader));
  bg_test_wait_for_result (&result, 30);
  g_clear_object (&result);
  g_clear_object (&f->uploader);
  g_assert_false (bg_test_database_contains (f->db, BEARER_SECRET));
  g_assert_false (bg_test_database_contains (f->db, COOKIE_SECRET));

  /* The next run waits until a prepare-request handler supplies the header. */
  f->finished_count = 0;
  f->uploader = open_uploader (f);
  g_signal_connect (f->uploader, "prepare-request", G_CALLBACK (add_authorization_cb),
                    &prepared);
  bg_uploader_restore_async (f->uploader, NULL, bg_test_store_result_cb, &result);
  bg_test_wait_for_result (&result, 30);
  g_assert_true (bg_uploader_restore_finish (f->uploader, result, &error));
  g_assert_no_error (error);
  task = g_list_model_get_item (bg_uploader_get_tasks (f->uploader), 0);
  while (!waiting)
    {
      g_main_context_iteration (NULL, TRUE);
      waiting = bg_task_get_wait_reason (task) == BG_WAIT_REASON_CREDENTIALS;
    }
  g_assert_cmpuint (bg_task_get_attempts (task), ==, 0);

  while (f->finished_count == 0)
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpuint (bg_response_get_status (f->last_finished), ==, 201);
  g_assert_cmpuint (bg_task_get_attempts (task), ==, 1);
  g_assert_cmpuint (prepared, ==, 2);

  g_clear_object (&f->uploader);
  g_assert_false (bg_test_database_contains (f->db, BEARER_SECRET));
  g_assert_false (bg_test_database_contains (f->db, COOKIE_SECRET));
}

/* --- Pause ---------------------------------------------------------------------------------- */

static gboolean
wake_cb (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

typedef gboolean (*Condition) (Fixture *f,
                               BgTask  *task);

/* Spins the main context until @condition holds, looking again every 20 ms at least; fails the
 * test after 30 seconds. */
static void
wait_until (Fixture   *f,
            BgTask    *task,
            Condition  condition)
{
  gint64 deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;

  while (!condition (f, task))
    {
      gboolean woken = FALSE;

      if (g_get_monotonic_time () > deadline)
        g_error ("Timed out after 30 seconds");
      g_timeout_add (20, wake_cb, &woken);
      bg_test_wait_for (&woken, 10);
    }
}

static gboolean
task_waits_paused (Fixture *f,
                   BgTask  *task)
{
  return bg_task_get_state (task) == BG_TASK_STATE_WAITING &&
         bg_task_get_wait_reason (task) == BG_WAIT_REASON_PAUSED;
}

/* The server has given up on the body of the attempt the pause stopped. */
static gboolean
first_upload_recorded (Fixture *f,
                       BgTask  *task)
{
  g_autoptr(JsonNode) stats = bg_test_server_stats (f->server);

  return json_array_get_length (server_uploads (stats)) > 0 &&
         json_object_get_int_member (json_node_get_object (stats), "active") == 0;
}

/* A paused upload stops at once and uses up no attempt (max-attempts is 1 here); unpaused, it
 * sends its body again from the first byte, under the same Idempotency-Key, as any new attempt
 * does. */
static void
test_pause (Fixture       *f,
            gconstpointer  data)
{
  g_autofree char *sha = NULL;
  g_autofree char *src = make_source (f, "paused.bin", 32 * MiB, 21, &sha);
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(BgTask) task = NULL;
  g_autoptr(JsonNode) stats = NULL;
  g_autoptr(GError) error = NULL;
  JsonArray *uploads;
  JsonObject *cut;
  JsonObject *whole;

  bg_test_skip_in_service_mode ("it reads the database, which the service holds");

  /* The server stops reading after 256 KiB, until the gate opens; the body is larger than what
   * the socket buffers on both sides can hold meanwhile. */
  start_upload (f, "PUT", "/upload/paused.bin?gate=pause&gate-at=262144", src, "paused",
                &result);
  task = g_object_ref (bg_uploader_lookup_task (f->uploader, "paused"));
  gate_wait (f, "pause");

  bg_task_set_paused (task, TRUE);
  wait_until (f, task, task_waits_paused);
  g_assert_cmpuint (bg_task_get_attempts (task), ==, 0);
  g_assert_null (result);

  /* The way is open now, but nothing more goes out while the task is paused. */
  gate_open (f, "pause");
  wait_until (f, task, first_upload_recorded);
  g_assert_true (task_waits_paused (f, task));
  g_assert_cmpint (count_body_requests (f), ==, 1);
  {
    g_autoptr(BgStore) store = bg_store_open (f->db, &error);
    g_autoptr(BgStoreRecord) record = NULL;

    g_assert_no_error (error);
    record = bg_store_lookup (store, BG_TASK_KIND_UPLOAD, "paused", &error);
    g_assert_no_error (error);
    g_assert_true (record->paused);
  }

  bg_task_set_paused (task, FALSE);
  bg_test_wait_for_result (&result, 120);
  response = bg_uploader_upload_finish (f->uploader, result, &error);
  g_assert_no_error (error);
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
  g_assert_cmpuint (bg_task_get_attempts (task), ==, 1);

  stats = bg_test_server_stats (f->server);
  uploads = server_uploads (stats);
  g_assert_cmpuint (json_array_get_length (uploads), ==, 2);
  cut = json_array_get_object_element (uploads, 0);
  whole = json_array_get_object_element (uploads, 1);
  g_assert_false (json_object_get_boolean_member (cut, "complete"));
  g_assert_cmpint (json_object_get_int_member (cut, "size"), <, 32 * MiB);
  g_assert_true (json_object_get_boolean_member (whole, "complete"));
  g_assert_cmpint (json_object_get_int_member (whole, "size"), ==, 32 * MiB);
  g_assert_cmpstr (json_object_get_string_member (whole, "sha256"), ==, sha);
  g_assert_cmpstr (upload_header (whole, "Idempotency-Key"), ==,
                   upload_header (cut, "Idempotency-Key"));
}

/* --- Bandwidth caps ------------------------------------------------------------------------ */

static gint64 byte_mark;

static gboolean
task_has_bytes (Fixture *f,
                BgTask  *task)
{
  return bg_task_get_bytes_transferred (task) >= byte_mark;
}

static void
start_capped_upload (Fixture       *f,
                     const char    *path_and_query,
                     const char    *source,
                     const char    *identifier,
                     guint64        max_bandwidth,
                     GAsyncResult **result)
{
  g_autofree char *url = bg_test_server_url (f->server, path_and_query);
  g_autoptr(SoupMessage) msg = soup_message_new ("PUT", url);
  g_autoptr(GFile) file = g_file_new_for_path (source);
  g_autoptr(BgTaskOptions) options = bg_task_options_new ();

  bg_task_options_set_max_bandwidth (options, max_bandwidth);
  bg_uploader_upload_async (f->uploader, msg, file, identifier, options, NULL,
                            bg_test_store_result_cb, result);
}

/* The server has the whole body, as the source has it, from its last request. */
static void
assert_uploaded_whole (Fixture    *f,
                       gsize       size,
                       const char *sha)
{
  g_autoptr(JsonNode) stats = bg_test_server_stats (f->server);
  JsonArray *uploads = server_uploads (stats);
  JsonObject *last;

  g_assert_cmpuint (json_array_get_length (uploads), >=, 1);
  last = json_array_get_object_element (uploads, json_array_get_length (uploads) - 1);
  g_assert_true (json_object_get_boolean_member (last, "complete"));
  g_assert_cmpint (json_object_get_int_member (last, "size"), ==, size);
  g_assert_cmpstr (json_object_get_string_member (last, "sha256"), ==, sha);
}

static void
finish_upload (Fixture       *f,
               GAsyncResult **result)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(BgResponse) response = NULL;

  bg_test_wait_for_result (result, 120);
  response = bg_uploader_upload_finish (f->uploader, *result, &error);
  g_assert_no_error (error);
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
  g_clear_object (result);
}

/* 2 MiB at 1 MiB/s: it takes at least about two seconds, and the server has the whole body. */
static void
test_bandwidth_capped (Fixture       *f,
                       gconstpointer  data)
{
  g_autofree char *sha = NULL;
  g_autofree char *src = make_source (f, "capped.bin", 2 * MiB, 31, &sha);
  g_autoptr(GAsyncResult) result = NULL;
  gint64 started = g_get_monotonic_time ();
  double elapsed;

  start_capped_upload (f, "/upload/capped.bin", src, "capped", MiB, &result);
  g_assert_cmpuint (bg_task_get_max_bandwidth (bg_uploader_lookup_task (f->uploader, "capped")),
                    ==, MiB);
  finish_upload (f, &result);
  elapsed = (g_get_monotonic_time () - started) / (double) G_USEC_PER_SEC;
  g_test_message ("2 MiB at 1 MiB/s took %.2f s", elapsed);
  g_assert_cmpfloat (elapsed, >=, 1.5);
  assert_uploaded_whole (f, 2 * MiB, sha);
}

/* A capped upload sends in bursts from its thread: its progress and its rate are still told
 * while it runs, step by step (2 MiB at 1 MiB/s: bursts several times a second for about two
 * seconds). */
static void
test_bandwidth_progress_while_capped (Fixture       *f,
                                      gconstpointer  data)
{
  g_autofree char *sha = NULL;
  g_autofree char *src = make_source (f, "told.bin", 2 * MiB, 32, &sha);
  g_autoptr(GAsyncResult) result = NULL;
  BgTestProgressSeen *seen;

  start_capped_upload (f, "/upload/told.bin", src, "told", MiB, &result);
  seen = bg_test_watch_progress (bg_uploader_lookup_task (f->uploader, "told"));

  finish_upload (f, &result);

  bg_test_assert_progress_seen (seen, 2 * MiB, 3);
  assert_uploaded_whole (f, 2 * MiB, sha);
}

/* The cap set on a running upload slows its sending thread down; lifting it lets it finish. */
static void
test_bandwidth_set_while_running (Fixture       *f,
                                  gconstpointer  data)
{
  g_autofree char *sha = NULL;
  g_autofree char *src = make_source (f, "slowed.bin", 16 * MiB, 32, &sha);
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(BgTask) task = NULL;
  gint64 slowed_at;
  double elapsed;

  start_capped_upload (f, "/upload/slowed.bin", src, "slowed", 4 * MiB, &result);
  task = g_object_ref (bg_uploader_lookup_task (f->uploader, "slowed"));
  byte_mark = MiB;
  wait_until (f, task, task_has_bytes);

  bg_task_set_max_bandwidth (task, 512 * 1024);
  slowed_at = g_get_monotonic_time ();
  byte_mark = bg_task_get_bytes_transferred (task) + MiB;
  wait_until (f, task, task_has_bytes);
  elapsed = (g_get_monotonic_time () - slowed_at) / (double) G_USEC_PER_SEC;
  g_test_message ("1 MiB after the cap went to 512 KiB/s took %.2f s", elapsed);
  g_assert_cmpfloat (elapsed, >=, 1.0);

  bg_task_set_max_bandwidth (task, 0);
  finish_upload (f, &result);
  assert_uploaded_whole (f, 16 * MiB, sha);
}

/* An upload held back by its cap (its thread asleep) still pauses at once, and sends its body
 * again once unpaused. */
static void
test_bandwidth_pause_while_throttled (Fixture       *f,
                                      gconstpointer  data)
{
  g_autofree char *sha = NULL;
  g_autofree char *src = make_source (f, "held.bin", 8 * MiB, 33, &sha);
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(BgTask) task = NULL;
  gint64 paused_at;

  start_capped_upload (f, "/upload/held.bin", src, "held", 256 * 1024, &result);
  task = g_object_ref (bg_uploader_lookup_task (f->uploader, "held"));
  byte_mark = 64 * 1024;
  wait_until (f, task, task_has_bytes);

  paused_at = g_get_monotonic_time ();
  bg_task_set_paused (task, TRUE);
  wait_until (f, task, task_waits_paused);
  g_test_message ("The throttled attempt ended %" G_GINT64_FORMAT " ms after the pause",
                  (g_get_monotonic_time () - paused_at) / 1000);
  g_assert_null (result);
  wait_until (f, task, first_upload_recorded);
  {
    g_autoptr(JsonNode) stats = bg_test_server_stats (f->server);
    JsonObject *cut = json_array_get_object_element (server_uploads (stats), 0);

    g_assert_false (json_object_get_boolean_member (cut, "complete"));
    g_assert_cmpint (json_object_get_int_member (cut, "size"), <, 8 * MiB);
  }

  bg_task_set_max_bandwidth (task, 0);
  bg_task_set_paused (task, FALSE);
  finish_upload (f, &result);
  assert_uploaded_whole (f, 8 * MiB, sha);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, func) \
  g_test_add ("/uploader/" path, Fixture, NULL, fixture_setup, func, fixture_teardown)

  ADD ("put", test_put);
  ADD ("post-and-headers", test_post_and_headers);
  ADD ("classification", test_classification);
  ADD ("bad-sources", test_bad_sources);
  ADD ("empty-source", test_empty_source);
  ADD ("source-changed", test_source_changed);
  ADD ("source-deleted", test_source_deleted);
  ADD ("kill-and-restore", test_kill_and_restore);
  ADD ("mixed-body/idempotent-server", test_mixed_body_idempotent_server);
  g_test_add ("/uploader/mixed-body/idempotent-server-mtime-restored", Fixture,
              GINT_TO_POINTER (TRUE), fixture_setup, test_mixed_body_idempotent_server,
              fixture_teardown);
  ADD ("mixed-body/app-key", test_mixed_body_app_key);
  ADD ("mixed-body/content-check", test_source_stream_content_check);
  ADD ("early-final-status", test_early_final_status);
  ADD ("expect-continue-over-1mib", test_expect_continue_over_1mib);
  ADD ("server-ignores-expect", test_server_ignores_expect);
  ADD ("source-swapped-for-fifo-before-redirect", test_source_swapped_for_fifo_before_redirect);
  ADD ("shared-database", test_shared_database);
  ADD ("credentials/not-stored", test_credentials_not_stored);
  ADD ("pause", test_pause);
  ADD ("bandwidth/capped", test_bandwidth_capped);
  ADD ("bandwidth/progress-while-capped", test_bandwidth_progress_while_capped);
  ADD ("bandwidth/set-while-running", test_bandwidth_set_while_running);
  ADD ("bandwidth/pause-while-throttled", test_bandwidth_pause_while_throttled);
  g_test_add_func ("/uploader/tls-failure", test_tls_failure);

#undef ADD

  return g_test_run ();
}
