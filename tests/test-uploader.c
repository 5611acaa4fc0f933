/* test-uploader.c: BgUploader against the fault server
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "bg-uploader-private.h"
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
                             NULL);
  g_assert_no_error (error);
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
  g_clear_object (&f->uploader);
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
  bg_uploader_upload_async (f->uploader, msg, file, "post", NULL,
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

static void
test_bad_sources (Fixture       *f,
                  gconstpointer  data)
{
  g_autofree char *fifo = g_build_filename (f->tmp, "fifo", NULL);
  g_autofree char *missing = g_build_filename (f->tmp, "missing", NULL);
  g_autofree char *src = make_source (f, "ok.bin", 10, 5, NULL);
  g_autofree char *other = make_source (f, "other.bin", 10, 6, NULL);
  const char *sources[] = { f->tmp, fifo, missing };
  g_autoptr(GError) error = NULL;

  g_assert_cmpint (mkfifo (fifo, 0600), ==, 0);

  for (guint i = 0; i < G_N_ELEMENTS (sources); i++)
    {
      g_autoptr(GAsyncResult) result = NULL;

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

  g_assert_cmpint (bg_test_server_stat_int (f->server, "requests"), ==, 1);
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

  bg_uploader_set_max_attempts (f->uploader, 3);
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
                               "session-id", "test", "database-path", f->db, NULL);
  g_assert_no_error (error);
  g_assert_nonnull (downloader);
  g_assert_cmpstr (bg_downloader_get_database_path (downloader), ==,
                   bg_uploader_get_database_path (f->uploader));
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

  for (guint i = 0; i < 2; i++)
    {
      SoupMessageHeaders *headers = soup_message_get_request_headers (i == 0 ? msg : later);

      soup_message_headers_append (headers, "Authorization", "Bearer " BEARER_SECRET);
      soup_message_headers_append (headers, "Cookie", "id=" COOKIE_SECRET);
    }

  /* In this run: one attempt, accepted. */
  bg_uploader_upload_async (f->uploader, msg, file, "cred", NULL, bg_test_store_result_cb,
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
  bg_uploader_upload_async (f->uploader, later, file, "later", NULL, bg_test_store_result_cb,
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
  ADD ("source-changed", test_source_changed);
  ADD ("source-deleted", test_source_deleted);
  ADD ("kill-and-restore", test_kill_and_restore);
  ADD ("shared-database", test_shared_database);
  ADD ("credentials/not-stored", test_credentials_not_stored);
  g_test_add_func ("/uploader/tls-failure", test_tls_failure);

#undef ADD

  return g_test_run ();
}
