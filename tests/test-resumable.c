/* test-resumable.c: resumable uploads (IETF draft and tus 1.0) and the AUTO probe
 *
 * The IETF tests run against the fault server's /resumable endpoint (tests/fault_resumable.py),
 * the tus tests against a real @tus/server (tests/tus-server), which they skip with one line when
 * node or the module is missing.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <glib/gstdio.h>

#include "bg-resumable-private.h"
#include "bg-store-private.h"
#include "bg-uploader-private.h"
#include "test-utils.h"

#define MiB (1024 * 1024)

typedef struct
{
  BgTestServer *server;
  char         *tmp;
  char         *db;
  BgUploader   *uploader;
} Fixture;

static BgUploader *
open_uploader (Fixture *f)
{
  g_autoptr(GError) error = NULL;
  BgUploader *uploader;

  uploader = g_initable_new (BG_TYPE_UPLOADER, NULL, &error,
                             "session-id", "test",
                             "database-path", f->db,
                             "max-attempts", 3,
                             "stall-timeout", 30,
                             "mode", bg_test_mode (),
                             "app-id", bg_test_app_id (),
                             NULL);
  g_assert_no_error (error);
  if (bg_uploader_get_engine (uploader) != NULL)
    bg_engine_set_backoff (bg_uploader_get_engine (uploader), 50, 200);

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
  bg_resumable_test_append_hook = NULL;
  if (f->uploader != NULL)
    bg_test_assert_finalized ((gpointer *) &f->uploader);
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

static BgTaskOptions *
options_for (BgUploadProtocol protocol,
             gint64           chunk_size)
{
  BgTaskOptions *options = bg_task_options_new ();

  bg_task_options_set_upload_protocol (options, protocol);
  bg_task_options_set_chunk_size (options, chunk_size);

  return options;
}

static void
start_upload_url (Fixture        *f,
                  const char     *method,
                  const char     *url,
                  const char     *source,
                  const char     *identifier,
                  BgTaskOptions  *options,
                  GAsyncResult  **result)
{
  g_autoptr(SoupMessage) msg = soup_message_new (method, url);
  g_autoptr(GFile) file = g_file_new_for_path (source);

  g_assert_nonnull (msg);
  bg_uploader_upload_async (f->uploader, msg, file, identifier, options, NULL,
                            bg_test_store_result_cb, result);
}

static BgResponse *
upload_url (Fixture       *f,
            const char    *method,
            const char    *url,
            const char    *source,
            const char    *identifier,
            BgTaskOptions *options)
{
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  BgResponse *response;

  start_upload_url (f, method, url, source, identifier, options, &result);
  bg_test_wait_for_result (&result, 240);
  response = bg_uploader_upload_finish (f->uploader, result, &error);
  g_assert_no_error (error);
  g_assert_nonnull (response);

  return response;
}

static BgResponse *
upload_ietf (Fixture       *f,
             const char    *path_and_query,
             const char    *source,
             const char    *identifier,
             BgTaskOptions *options)
{
  g_autofree char *url = bg_test_server_url (f->server, path_and_query);

  return upload_url (f, "POST", url, source, identifier, options);
}

/* The "resumable" section of the fault server's stats. */
static JsonObject *
resumable_stats (JsonNode *stats)
{
  return json_object_get_object_member (json_node_get_object (stats), "resumable");
}

static JsonObject *
resumable_upload (JsonNode *stats,
                  guint     index)
{
  JsonArray *uploads = json_object_get_array_member (resumable_stats (stats), "uploads");

  g_assert_cmpuint (json_array_get_length (uploads), >, index);
  return json_array_get_object_element (uploads, index);
}

static guint
resumable_upload_count (JsonNode *stats)
{
  return json_array_get_length (json_object_get_array_member (resumable_stats (stats),
                                                              "uploads"));
}

static guint
count_method (JsonNode   *stats,
              const char *method)
{
  JsonArray *log = json_object_get_array_member (json_node_get_object (stats), "log");
  guint n = 0;

  for (guint i = 0; i < json_array_get_length (log); i++)
    if (g_strcmp0 (json_object_get_string_member (json_array_get_object_element (log, i),
                                                  "method"), method) == 0)
      n++;

  return n;
}

/* The final response is the server's answer to the completing append: its JSON names the
 * sha256 of the whole upload. */
static void
assert_final_response (BgResponse *response,
                       const char *sha)
{
  g_autoptr(JsonNode) node = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *text = NULL;
  GBytes *body;

  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
  g_assert_cmpuint (bg_response_get_status (response), ==, 200);
  body = bg_response_get_body (response);
  g_assert_nonnull (body);
  text = g_strndup (g_bytes_get_data (body, NULL), g_bytes_get_size (body));
  node = json_from_string (text, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (json_object_get_string_member (json_node_get_object (node), "sha256"), ==,
                   sha);
}

/* --- IETF ---------------------------------------------------------------------------------- */

static void
test_ietf_happy (Fixture       *f,
                 gconstpointer  data)
{
  g_autofree char *sha = NULL;
  g_autofree char *src = make_source (f, "happy.bin", 3 * MiB + 17, 1, &sha);
  g_autoptr(BgTaskOptions) options = options_for (BG_UPLOAD_PROTOCOL_IETF, 0);
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(JsonNode) stats = NULL;
  JsonObject *up;
  BgTask *task;

  response = upload_ietf (f, "/resumable", src, "happy", options);
  assert_final_response (response, sha);
  /* The app's final answer names no upload resource. */
  g_assert_null (soup_message_headers_get_one (bg_response_get_headers (response), "Location"));

  task = bg_uploader_lookup_task (f->uploader, "happy");
  g_assert_cmpint (bg_task_get_upload_protocol (task), ==, BG_UPLOAD_PROTOCOL_IETF);

  stats = bg_test_server_stats (f->server);
  g_assert_cmpuint (resumable_upload_count (stats), ==, 1);
  up = resumable_upload (stats, 0);
  g_assert_true (json_object_get_boolean_member (up, "complete"));
  g_assert_cmpstr (json_object_get_string_member (up, "sha256"), ==, sha);
  g_assert_cmpstr (json_object_get_string_member (up, "interop"), ==, "8");
  g_assert_cmpint (json_object_get_int_member (resumable_stats (stats), "received"), ==,
                   3 * MiB + 17);
  /* Explicitly IETF: nothing was probed. */
  g_assert_cmpuint (count_method (stats, "OPTIONS"), ==, 0);
}

/* A bandwidth cap holds back the appends as it does a plain body: 2 MiB at 1 MiB/s cannot take
 * much less than two seconds. */
static void
test_ietf_bandwidth_capped (Fixture       *f,
                            gconstpointer  data)
{
  g_autofree char *sha = NULL;
  g_autofree char *src = make_source (f, "capped.bin", 2 * MiB, 5, &sha);
  g_autoptr(BgTaskOptions) options = options_for (BG_UPLOAD_PROTOCOL_IETF, 0);
  g_autoptr(BgResponse) response = NULL;
  gint64 started = g_get_monotonic_time ();
  double elapsed;

  bg_task_options_set_max_bandwidth (options, MiB);
  response = upload_ietf (f, "/resumable", src, "capped", options);
  elapsed = (g_get_monotonic_time () - started) / (double) G_USEC_PER_SEC;
  g_test_message ("2 MiB through the IETF draft at 1 MiB/s took %.2f s", elapsed);
  assert_final_response (response, sha);
  g_assert_cmpfloat (elapsed, >=, 1.5);
}

/* The test itself appends the first MiB behind the client's back: the client's append at offset
 * 0 gets 409 with the server's offset, and goes on from there. */
static char *hook_url;
static const char *hook_source;
static gboolean hook_done;

static void
append_behind_back_hook (BgUploadProtocol  protocol,
                         const char       *upload_url,
                         gint64            offset)
{
  g_autoptr(SoupSession) session = NULL;
  g_autoptr(SoupMessage) msg = NULL;
  g_autoptr(GBytes) answer = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *contents = NULL;
  gsize length;

  if (hook_done || offset != 0)
    return;
  hook_done = TRUE;

  g_assert_true (g_file_get_contents (hook_source, &contents, &length, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (length, >, MiB);

  session = soup_session_new ();
  msg = soup_message_new ("PATCH", upload_url);
  soup_message_headers_replace (soup_message_get_request_headers (msg),
                                "Upload-Draft-Interop-Version", "8");
  soup_message_headers_replace (soup_message_get_request_headers (msg), "Upload-Offset", "0");
  soup_message_headers_replace (soup_message_get_request_headers (msg), "Upload-Complete", "?0");
  {
    g_autoptr(GBytes) first = g_bytes_new (contents, MiB);

    soup_message_set_request_body_from_bytes (msg, "application/partial-upload", first);
  }
  answer = soup_session_send_and_read (session, msg, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (soup_message_get_status (msg), ==, 204);
}

static void
test_ietf_conflict_followed (Fixture       *f,
                             gconstpointer  data)
{
  g_autofree char *sha = NULL;
  g_autofree char *src = make_source (f, "conflict.bin", 4 * MiB, 2, &sha);
  g_autoptr(BgTaskOptions) options = options_for (BG_UPLOAD_PROTOCOL_IETF, 0);
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(JsonNode) stats = NULL;
  JsonArray *requests;
  gboolean saw_409 = FALSE;

  bg_test_skip_in_service_mode ("the append hook is in this process");

  hook_source = src;
  hook_done = FALSE;
  bg_resumable_test_append_hook = append_behind_back_hook;

  response = upload_ietf (f, "/resumable", src, "conflict", options);
  assert_final_response (response, sha);

  stats = bg_test_server_stats (f->server);
  requests = json_object_get_array_member (resumable_upload (stats, 0), "requests");
  for (guint i = 0; i < json_array_get_length (requests); i++)
    if (json_object_get_int_member (json_array_get_object_element (requests, i), "status") ==
        409)
      saw_409 = TRUE;
  g_assert_true (saw_409);
  /* The 409 told where to go on: the bytes the test sent were not sent again, and the 409's
   * body went at most once more. */
  g_assert_cmpint (json_object_get_int_member (resumable_stats (stats), "received"), <=,
                   4 * MiB + 4 * MiB);
}

static void
test_ietf_max_append_size (Fixture       *f,
                           gconstpointer  data)
{
  g_autofree char *sha = NULL;
  g_autofree char *src = make_source (f, "limited.bin", 5 * MiB + 3, 3, &sha);
  g_autoptr(BgTaskOptions) options = options_for (BG_UPLOAD_PROTOCOL_IETF, 0);
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(JsonNode) stats = NULL;
  JsonObject *up;

  response = upload_ietf (f, "/resumable?max-append-size=1048576", src, "limited", options);
  assert_final_response (response, sha);

  stats = bg_test_server_stats (f->server);
  up = resumable_upload (stats, 0);
  g_assert_cmpint (json_object_get_int_member (up, "max_body"), <=, MiB);
  g_assert_cmpint (json_object_get_int_member (up, "appends"), >=, 6);
  g_assert_cmpstr (json_object_get_string_member (up, "sha256"), ==, sha);
}

static void
test_ietf_max_size_rejected (Fixture       *f,
                             gconstpointer  data)
{
  g_autofree char *src = make_source (f, "big.bin", 2 * MiB, 4, NULL);
  g_autoptr(BgTaskOptions) options = options_for (BG_UPLOAD_PROTOCOL_IETF, 0);
  g_autoptr(BgResponse) response = NULL;
  const GError *error;

  response = upload_ietf (f, "/resumable?max-size=1048576", src, "big", options);
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_REJECTED);
  error = bg_response_get_error (response);
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, "big.bin"));
  g_assert_nonnull (strstr (error->message, "max-size"));
  g_assert_null (strstr (error->message, "/resumable"));
}

static void
test_ietf_drop_resumes_by_head (Fixture       *f,
                                gconstpointer  data)
{
  g_autofree char *sha = NULL;
  g_autofree char *src = make_source (f, "drop.bin", 8 * MiB, 5, &sha);
  g_autoptr(BgTaskOptions) options = options_for (BG_UPLOAD_PROTOCOL_IETF, 0);
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(JsonNode) stats = NULL;
  JsonObject *up;
  JsonArray *requests;
  gboolean saw_head = FALSE;

  response = upload_ietf (f, "/resumable?drop-at=3000000", src, "drop", options);
  assert_final_response (response, sha);

  stats = bg_test_server_stats (f->server);
  g_assert_cmpuint (resumable_upload_count (stats), ==, 1);
  up = resumable_upload (stats, 0);
  g_assert_cmpint (json_object_get_int_member (up, "drops"), ==, 1);
  requests = json_object_get_array_member (up, "requests");
  for (guint i = 0; i < json_array_get_length (requests); i++)
    if (g_strcmp0 (json_object_get_string_member (json_array_get_object_element (requests, i),
                                                  "method"), "HEAD") == 0)
      saw_head = TRUE;
  g_assert_true (saw_head);
  /* Only what the drop lost went twice. */
  g_assert_cmpint (json_object_get_int_member (resumable_stats (stats), "received"), <=,
                   8 * MiB + MiB);
}

/* Cancel: the server's upload is deleted (HEAD then 404). */
static GMutex cancel_mutex;
static GCond cancel_cond;
static gboolean cancel_reached;
static gboolean cancel_released;

static void
wait_for_cancel_hook (BgUploadProtocol  protocol,
                      const char       *upload_url,
                      gint64            offset)
{
  if (offset < 2 * MiB)
    return;

  g_mutex_lock (&cancel_mutex);
  if (hook_url == NULL)
    hook_url = g_strdup (upload_url);
  cancel_reached = TRUE;
  g_cond_broadcast (&cancel_cond);
  while (!cancel_released)
    g_cond_wait (&cancel_cond, &cancel_mutex);
  g_mutex_unlock (&cancel_mutex);
}

static guint
head_status (const char *url,
             const char *header,
             const char *value)
{
  g_autoptr(SoupSession) session = soup_session_new ();
  g_autoptr(SoupMessage) msg = soup_message_new ("HEAD", url);
  g_autoptr(GBytes) answer = NULL;
  g_autoptr(GError) error = NULL;

  soup_message_headers_replace (soup_message_get_request_headers (msg), header, value);
  answer = soup_session_send_and_read (session, msg, NULL, &error);
  g_assert_no_error (error);
  return soup_message_get_status (msg);
}

static void
cancel_mid_upload (Fixture       *f,
                   const char    *url,
                   const char    *src,
                   BgTaskOptions *options)
{
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  gint64 deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;

  g_clear_pointer (&hook_url, g_free);
  cancel_reached = FALSE;
  cancel_released = FALSE;
  bg_resumable_test_append_hook = wait_for_cancel_hook;

  start_upload_url (f, "POST", url, src, "cancelled", options, &result);

  g_mutex_lock (&cancel_mutex);
  while (!cancel_reached)
    {
      g_mutex_unlock (&cancel_mutex);
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_main_context_iteration (NULL, FALSE);
      g_mutex_lock (&cancel_mutex);
      if (!cancel_reached)
        g_cond_wait_until (&cancel_cond, &cancel_mutex, g_get_monotonic_time () + 10000);
    }
  g_mutex_unlock (&cancel_mutex);

  g_assert_true (bg_uploader_cancel (f->uploader, "cancelled", &error));
  g_assert_no_error (error);

  g_mutex_lock (&cancel_mutex);
  cancel_released = TRUE;
  g_cond_broadcast (&cancel_cond);
  g_mutex_unlock (&cancel_mutex);

  bg_test_wait_for_result (&result, 30);
  g_assert_null (bg_uploader_upload_finish (f->uploader, result, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_nonnull (hook_url);
  /* The URL appears in no message. */
  g_assert_null (strstr (error->message, hook_url));
}

static void
test_ietf_cancel_deletes (Fixture       *f,
                          gconstpointer  data)
{
  g_autofree char *src = make_source (f, "cancel.bin", 6 * MiB, 6, NULL);
  g_autofree char *url = bg_test_server_url (f->server, "/resumable");
  g_autoptr(BgTaskOptions) options = options_for (BG_UPLOAD_PROTOCOL_IETF, MiB);
  gint64 deadline;

  bg_test_skip_in_service_mode ("the append hook is in this process");

  cancel_mid_upload (f, url, src, options);

  /* The DELETE goes out in the background: wait until the server has it. */
  deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;
  while (TRUE)
    {
      g_autoptr(JsonNode) stats = bg_test_server_stats (f->server);
      const char *state = json_object_get_string_member (resumable_upload (stats, 0), "state");

      if (g_str_equal (state, "deleted"))
        break;
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      bg_test_run_for (20);
    }
  g_assert_cmpuint (head_status (hook_url, "Upload-Draft-Interop-Version", "8"), ==, 404);
  g_clear_pointer (&hook_url, g_free);
}

/* The source changes between two appends: the server's upload is deleted, a new one made, and
 * what arrives is the new file. */
static const char *change_path;
static char *change_sha;
static gboolean change_done;

static void
change_source_hook (BgUploadProtocol  protocol,
                    const char       *upload_url,
                    gint64            offset)
{
  if (change_done || offset < MiB)
    return;
  change_done = TRUE;
  change_sha = bg_test_write_random_file (change_path, 3 * MiB + 5, 77);
}

static void
test_ietf_source_changed (Fixture       *f,
                          gconstpointer  data)
{
  g_autofree char *src = make_source (f, "changing.bin", 4 * MiB, 7, NULL);
  g_autoptr(BgTaskOptions) options = options_for (BG_UPLOAD_PROTOCOL_IETF, MiB);
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(JsonNode) stats = NULL;
  BgTask *task;

  bg_test_skip_in_service_mode ("the append hook is in this process");

  change_path = src;
  change_done = FALSE;
  g_clear_pointer (&change_sha, g_free);
  bg_resumable_test_append_hook = change_source_hook;

  response = upload_ietf (f, "/resumable", src, "changing", options);
  assert_final_response (response, change_sha);

  task = bg_uploader_lookup_task (f->uploader, "changing");
  g_assert_cmpuint (bg_task_get_restarts (task), >=, 1);

  stats = bg_test_server_stats (f->server);
  g_assert_cmpuint (resumable_upload_count (stats), ==, 2);
  g_assert_cmpstr (json_object_get_string_member (resumable_upload (stats, 0), "state"), ==,
                   "deleted");
  g_assert_cmpstr (json_object_get_string_member (resumable_upload (stats, 1), "sha256"), ==,
                   change_sha);
  g_clear_pointer (&change_sha, g_free);
}

/* The helper is killed three times on its way through a 256 MiB upload; each new run asks the
 * server where the upload is and sends only the rest. */
static void
kill_three_times (Fixture    *f,
                  const char *url,
                  const char *protocol,
                  const char *src,
                  gint64      size)
{
  g_autoptr(GError) error = NULL;

  g_setenv ("BG_HELPER_UPLOAD_PROTOCOL", protocol, TRUE);
  g_setenv ("BG_HELPER_MAX_ATTEMPTS", "3", TRUE);

  for (guint run = 0; run < 4; run++)
    {
      g_autoptr(GSubprocess) helper = NULL;
      g_autoptr(GDataInputStream) out = NULL;
      gint64 kill_at = size / 5 * (run + 1);

      if (run == 0)
        helper = bg_test_spawn_helper (&out, &error, "upload", f->db, url, src, "killed", "POST",
                                       NULL);
      else
        helper = bg_test_spawn_helper (&out, &error, "restore", "upload", f->db, NULL);
      g_assert_no_error (error);

      while (TRUE)
        {
          g_autofree char *line = g_data_input_stream_read_line_utf8 (out, NULL, NULL, &error);
          gint64 bytes;

          g_assert_no_error (error);
          g_assert_nonnull (line);
          if (g_str_has_prefix (line, "finished"))
            {
              g_assert_cmpuint (run, ==, 3);
              g_assert_nonnull (strstr (line, "success"));
              break;
            }
          if (g_str_has_prefix (line, "error"))
            g_error ("The helper failed: %s", line);
          if (run < 3 && sscanf (line, "progress %" G_GINT64_FORMAT, &bytes) == 1 &&
              bytes >= kill_at)
            {
              g_subprocess_send_signal (helper, SIGKILL);
              break;
            }
        }
      g_subprocess_wait (helper, NULL, &error);
      g_assert_no_error (error);
    }

  g_unsetenv ("BG_HELPER_UPLOAD_PROTOCOL");
  g_unsetenv ("BG_HELPER_MAX_ATTEMPTS");
}

static void
test_ietf_kill_three_times (Fixture       *f,
                            gconstpointer  data)
{
  const gint64 size = 256 * MiB;
  g_autofree char *sha = NULL;
  g_autofree char *src = make_source (f, "killed.bin", size, 8, &sha);
  g_autofree char *url = bg_test_server_url (f->server, "/resumable");
  g_autoptr(JsonNode) stats = NULL;
  JsonObject *up;

  bg_test_skip_in_service_mode ("the upload goes on at the service when the app is killed");

  g_clear_object (&f->uploader);
  kill_three_times (f, url, "ietf", src, size);

  stats = bg_test_server_stats (f->server);
  g_assert_cmpuint (resumable_upload_count (stats), ==, 1);
  up = resumable_upload (stats, 0);
  g_assert_true (json_object_get_boolean_member (up, "complete"));
  g_assert_cmpstr (json_object_get_string_member (up, "sha256"), ==, sha);
  g_test_message ("IETF: %" G_GINT64_FORMAT " bytes received for %" G_GINT64_FORMAT,
                  json_object_get_int_member (resumable_stats (stats), "received"), size);
  g_assert_cmpint (json_object_get_int_member (resumable_stats (stats), "received"), <=,
                   size + 8 * MiB);
  /* Not a secret on disk that anyone else can read. */
  {
    GStatBuf st;

    g_assert_cmpint (g_stat (f->db, &st), ==, 0);
    g_assert_cmpint (st.st_mode & 0077, ==, 0);
  }
}

/* --- AUTO against the fault server ---------------------------------------------------------- */

static void
test_auto_picks_ietf_and_caches (Fixture       *f,
                                 gconstpointer  data)
{
  g_autofree char *sha = NULL;
  g_autofree char *src = make_source (f, "auto.bin", 2 * MiB, 9, &sha);
  g_autoptr(BgResponse) first = NULL;
  g_autoptr(BgResponse) second = NULL;
  g_autoptr(JsonNode) stats = NULL;

  first = upload_ietf (f, "/resumable", src, "auto-1", NULL);
  assert_final_response (first, sha);
  g_assert_cmpint (bg_task_get_upload_protocol (bg_uploader_lookup_task (f->uploader, "auto-1")),
                   ==, BG_UPLOAD_PROTOCOL_IETF);
  second = upload_ietf (f, "/resumable", src, "auto-2", NULL);
  assert_final_response (second, sha);

  stats = bg_test_server_stats (f->server);
  g_assert_cmpuint (count_method (stats, "OPTIONS"), ==, 1);
  g_assert_cmpuint (resumable_upload_count (stats), ==, 2);
}

static void
test_auto_picks_plain (Fixture       *f,
                       gconstpointer  data)
{
  g_autofree char *src = make_source (f, "plain.bin", 2 * MiB, 10, NULL);
  g_autofree char *url = bg_test_server_url (f->server, "/upload/plain.bin");
  g_autoptr(BgResponse) first = NULL;
  g_autoptr(BgResponse) second = NULL;
  g_autoptr(JsonNode) stats = NULL;

  first = upload_url (f, "PUT", url, src, "plain-1", NULL);
  g_assert_cmpint (bg_response_get_kind (first), ==, BG_RESPONSE_SUCCESS);
  g_assert_cmpint (bg_task_get_upload_protocol (bg_uploader_lookup_task (f->uploader,
                                                                          "plain-1")),
                   ==, BG_UPLOAD_PROTOCOL_PLAIN);
  second = upload_url (f, "PUT", url, src, "plain-2", NULL);
  g_assert_cmpint (bg_response_get_kind (second), ==, BG_RESPONSE_SUCCESS);

  stats = bg_test_server_stats (f->server);
  g_assert_cmpuint (count_method (stats, "OPTIONS"), ==, 1);
  g_assert_cmpuint (count_method (stats, "PUT"), ==, 2);
  g_assert_cmpuint (resumable_upload_count (stats), ==, 0);
}


/* --- tus against @tus/server ----------------------------------------------------------------- */

typedef struct
{
  GSubprocess *process;
  char        *dir;
  char        *log;
  guint        port;
} TusServer;

static const char *
tus_skip_reason (void)
{
  g_autofree char *node = g_find_program_in_path ("node");
  g_autofree char *module = g_test_build_filename (G_TEST_DIST, "tus-server", "node_modules",
                                                   "@tus", "server", "package.json", NULL);
  g_autofree char *store = g_test_build_filename (G_TEST_DIST, "tus-server", "node_modules",
                                                  "@tus", "file-store", "package.json", NULL);

  if (node == NULL)
    return "node is not installed";
  if (!g_file_test (module, G_FILE_TEST_EXISTS) || !g_file_test (store, G_FILE_TEST_EXISTS))
    return "@tus/server is not installed in tests/tus-server (run .ci/install-deps)";
  return NULL;
}

static TusServer *
tus_server_new (Fixture    *f,
                const char *expire_ms)
{
  TusServer *server = g_new0 (TusServer, 1);
  g_autofree char *script = g_test_build_filename (G_TEST_DIST, "tus-server", "server.mjs", NULL);
  g_autoptr(GDataInputStream) out = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *line = NULL;

  server->dir = g_build_filename (f->tmp, "tus-store", NULL);
  server->log = g_build_filename (f->tmp, "tus-requests.jsonl", NULL);
  server->process = g_subprocess_new (G_SUBPROCESS_FLAGS_STDIN_PIPE |
                                      G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error,
                                      "node", script, "--dir", server->dir, "--log", server->log,
                                      "--port", "0",
                                      expire_ms != NULL ? "--expire-ms" : NULL, expire_ms, NULL);
  g_assert_no_error (error);
  out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (server->process));
  line = g_data_input_stream_read_line_utf8 (out, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (line);
  g_assert_true (g_str_has_prefix (line, "PORT "));
  server->port = (guint) g_ascii_strtoull (line + 5, NULL, 10);
  g_assert_cmpuint (server->port, >, 0);

  return server;
}

static void
tus_server_free (TusServer *server)
{
  g_autoptr(GError) error = NULL;

  /* It exits when its stdin ends. */
  g_output_stream_close (g_subprocess_get_stdin_pipe (server->process), NULL, NULL);
  g_subprocess_wait (server->process, NULL, &error);
  g_assert_no_error (error);
  g_object_unref (server->process);
  g_free (server->dir);
  g_free (server->log);
  g_free (server);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (TusServer, tus_server_free)

static char *
tus_url (TusServer *server)
{
  return g_strdup_printf ("http://127.0.0.1:%u/files", server->port);
}

/* The request log: one JSON object per line. */
static GPtrArray *
tus_log (TusServer *server)
{
  g_autoptr(GPtrArray) entries = g_ptr_array_new_with_free_func ((GDestroyNotify) json_node_unref);
  g_autofree char *contents = NULL;
  g_auto(GStrv) lines = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_true (g_file_get_contents (server->log, &contents, NULL, &error));
  lines = g_strsplit (contents, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      JsonNode *node;

      if (lines[i][0] == '\0')
        continue;
      node = json_from_string (lines[i], &error);
      g_assert_no_error (error);
      g_ptr_array_add (entries, node);
    }

  return g_steal_pointer (&entries);
}

static gint64
tus_received (GPtrArray *log)
{
  gint64 n = 0;

  for (guint i = 0; i < log->len; i++)
    {
      JsonObject *entry = json_node_get_object (g_ptr_array_index (log, i));

      if (json_object_has_member (entry, "received"))
        n += json_object_get_int_member (entry, "received");
    }

  return n;
}

static guint
tus_count (GPtrArray  *log,
           const char *method)
{
  guint n = 0;

  for (guint i = 0; i < log->len; i++)
    {
      JsonObject *entry = json_node_get_object (g_ptr_array_index (log, i));

      if (g_strcmp0 (json_object_get_string_member (entry, "event"), "late") != 0 &&
          g_strcmp0 (json_object_get_string_member (entry, "method"), method) == 0)
        n++;
    }

  return n;
}

/* The sha256 of the one finished upload in the store (its bytes, not its .json info). */
static char *
tus_stored_sha (TusServer *server)
{
  g_autoptr(GDir) dir = g_dir_open (server->dir, 0, NULL);
  const char *name;
  char *sha = NULL;

  g_assert_nonnull (dir);
  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = NULL;

      if (g_str_has_suffix (name, ".json"))
        continue;
      path = g_build_filename (server->dir, name, NULL);
      g_assert_null (sha);
      sha = bg_test_sha256_file (path);
    }

  return sha;
}

#define TUS_SKIP_IF_MISSING() \
  G_STMT_START { \
    const char *reason = tus_skip_reason (); \
    if (reason != NULL) \
      { \
        g_test_skip (reason); \
        return; \
      } \
  } G_STMT_END

static void
test_tus_chunks (Fixture       *f,
                 gconstpointer  data)
{
  g_autofree char *sha = NULL;
  g_autofree char *src = make_source (f, "chunks.bin", 5 * MiB + 11, 11, &sha);
  g_autoptr(TusServer) tus = NULL;
  g_autofree char *url = NULL;
  g_autofree char *stored = NULL;
  g_autoptr(BgTaskOptions) options = options_for (BG_UPLOAD_PROTOCOL_TUS, MiB);
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(GPtrArray) log = NULL;

  TUS_SKIP_IF_MISSING ();
  tus = tus_server_new (f, NULL);
  url = tus_url (tus);

  response = upload_url (f, "POST", url, src, "chunks", options);
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
  g_assert_cmpuint (bg_response_get_status (response), ==, 204);
  /* No reason phrase on the wire: the library names the status itself. */
  g_assert_cmpstr (bg_response_get_reason (response), ==, "No Content");
  g_assert_cmpint (bg_task_get_upload_protocol (bg_uploader_lookup_task (f->uploader, "chunks")),
                   ==, BG_UPLOAD_PROTOCOL_TUS);

  stored = tus_stored_sha (tus);
  g_assert_cmpstr (stored, ==, sha);

  log = tus_log (tus);
  g_assert_cmpuint (tus_count (log, "POST"), ==, 1);
  g_assert_cmpuint (tus_count (log, "PATCH"), ==, 6);
  for (guint i = 0; i < log->len; i++)
    {
      JsonObject *entry = json_node_get_object (g_ptr_array_index (log, i));

      if (json_object_has_member (entry, "received"))
        g_assert_cmpint (json_object_get_int_member (entry, "received"), <=, MiB);
    }
  g_assert_cmpint (tus_received (log), ==, 5 * MiB + 11);
}

static void
test_tus_creation_with_upload (Fixture       *f,
                               gconstpointer  data)
{
  g_autofree char *sha = NULL;
  g_autofree char *src = make_source (f, "small.bin", 100 * 1024, 12, &sha);
  g_autoptr(TusServer) tus = NULL;
  g_autofree char *url = NULL;
  g_autofree char *stored = NULL;
  g_autoptr(BgTaskOptions) options = options_for (BG_UPLOAD_PROTOCOL_TUS, 0);
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(GPtrArray) log = NULL;

  TUS_SKIP_IF_MISSING ();
  tus = tus_server_new (f, NULL);
  url = tus_url (tus);

  response = upload_url (f, "POST", url, src, "small", options);
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
  g_assert_cmpuint (bg_response_get_status (response), ==, 201);
  g_assert_null (soup_message_headers_get_one (bg_response_get_headers (response), "Location"));

  stored = tus_stored_sha (tus);
  g_assert_cmpstr (stored, ==, sha);
  log = tus_log (tus);
  g_assert_cmpuint (tus_count (log, "POST"), ==, 1);
  g_assert_cmpuint (tus_count (log, "PATCH"), ==, 0);
  g_assert_cmpint (tus_received (log), ==, 100 * 1024);
}

static void
test_tus_cancel_deletes (Fixture       *f,
                         gconstpointer  data)
{
  g_autofree char *src = make_source (f, "cancel.bin", 6 * MiB, 13, NULL);
  g_autoptr(TusServer) tus = NULL;
  g_autofree char *url = NULL;
  g_autoptr(BgTaskOptions) options = options_for (BG_UPLOAD_PROTOCOL_TUS, MiB);
  gint64 deadline;

  TUS_SKIP_IF_MISSING ();
  bg_test_skip_in_service_mode ("the append hook is in this process");
  tus = tus_server_new (f, NULL);
  url = tus_url (tus);

  cancel_mid_upload (f, url, src, options);

  deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;
  while (TRUE)
    {
      g_autoptr(GPtrArray) log = tus_log (tus);

      if (tus_count (log, "DELETE") == 1)
        break;
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      bg_test_run_for (20);
    }
  {
    guint status = head_status (hook_url, "Tus-Resumable", "1.0.0");

    g_assert_true (status == 404 || status == 410);
  }
  g_clear_pointer (&hook_url, g_free);
}

/* The server's upload expires before the first append: the client starts over. */
static void
wait_for_expiry_hook (BgUploadProtocol  protocol,
                      const char       *upload_url,
                      gint64            offset)
{
  gint64 deadline = g_get_monotonic_time () + 20 * G_USEC_PER_SEC;

  if (hook_done)
    return;
  hook_done = TRUE;

  /* The event is the server saying the upload is gone; it is asked until it does. */
  while (head_status (upload_url, "Tus-Resumable", "1.0.0") != 410)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_usleep (50 * 1000);
    }
}

static void
test_tus_expired_starts_over (Fixture       *f,
                              gconstpointer  data)
{
  g_autofree char *sha = NULL;
  g_autofree char *src = make_source (f, "expiring.bin", 2 * MiB, 14, &sha);
  g_autoptr(TusServer) tus = NULL;
  g_autofree char *url = NULL;
  g_autoptr(BgTaskOptions) options = options_for (BG_UPLOAD_PROTOCOL_TUS, 0);
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(GPtrArray) log = NULL;

  TUS_SKIP_IF_MISSING ();
  bg_test_skip_in_service_mode ("the append hook is in this process");
  tus = tus_server_new (f, "1000");
  url = tus_url (tus);

  hook_done = FALSE;
  bg_resumable_test_append_hook = wait_for_expiry_hook;
  response = upload_url (f, "POST", url, src, "expiring", options);
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
  g_assert_cmpuint (bg_task_get_restarts (bg_uploader_lookup_task (f->uploader, "expiring")),
                    ==, 1);

  log = tus_log (tus);
  g_assert_cmpuint (tus_count (log, "POST"), ==, 2);
}

static void
test_tus_kill_three_times (Fixture       *f,
                           gconstpointer  data)
{
  const gint64 size = 256 * MiB;
  g_autofree char *sha = NULL;
  g_autofree char *src = NULL;
  g_autoptr(TusServer) tus = NULL;
  g_autofree char *url = NULL;
  g_autofree char *stored = NULL;
  g_autoptr(GPtrArray) log = NULL;

  TUS_SKIP_IF_MISSING ();
  bg_test_skip_in_service_mode ("the upload goes on at the service when the app is killed");
  src = make_source (f, "killed.bin", size, 15, &sha);
  tus = tus_server_new (f, NULL);
  url = tus_url (tus);

  g_clear_object (&f->uploader);
  kill_three_times (f, url, "tus", src, size);

  stored = tus_stored_sha (tus);
  g_assert_cmpstr (stored, ==, sha);
  log = tus_log (tus);
  g_test_message ("tus: %" G_GINT64_FORMAT " bytes received for %" G_GINT64_FORMAT,
                  tus_received (log), size);
  g_assert_cmpint (tus_received (log), <=, size + 8 * MiB);
  g_assert_cmpuint (tus_count (log, "POST"), ==, 1);
}

static void
test_auto_tus_only_when_allowed (Fixture       *f,
                                 gconstpointer  data)
{
  g_autofree char *src = make_source (f, "auto-tus.bin", 2 * MiB, 16, NULL);
  g_autoptr(TusServer) tus = NULL;
  g_autofree char *url = NULL;
  g_autoptr(BgTaskOptions) allowed = bg_task_options_new ();
  g_autoptr(BgResponse) first = NULL;
  g_autoptr(BgResponse) second = NULL;
  g_autoptr(BgResponse) refused = NULL;
  g_autoptr(GPtrArray) log = NULL;

  TUS_SKIP_IF_MISSING ();
  tus = tus_server_new (f, NULL);
  url = tus_url (tus);

  bg_task_options_set_allow_tus (allowed, TRUE);
  first = upload_url (f, "POST", url, src, "tus-1", allowed);
  g_assert_cmpint (bg_response_get_kind (first), ==, BG_RESPONSE_SUCCESS);
  g_assert_cmpint (bg_task_get_upload_protocol (bg_uploader_lookup_task (f->uploader, "tus-1")),
                   ==, BG_UPLOAD_PROTOCOL_TUS);
  second = upload_url (f, "POST", url, src, "tus-2", allowed);
  g_assert_cmpint (bg_response_get_kind (second), ==, BG_RESPONSE_SUCCESS);

  /* Not allowed: a plain POST of the file to the creation endpoint, which refuses it. */
  refused = upload_url (f, "POST", url, src, "tus-3", NULL);
  g_assert_cmpint (bg_task_get_upload_protocol (bg_uploader_lookup_task (f->uploader, "tus-3")),
                   ==, BG_UPLOAD_PROTOCOL_PLAIN);

  log = tus_log (tus);
  /* One probe for the three uploads. */
  g_assert_cmpuint (tus_count (log, "OPTIONS"), ==, 1);
  g_assert_cmpuint (tus_count (log, "POST"), ==, 3);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, func) \
  g_test_add ("/resumable/" path, Fixture, NULL, fixture_setup, func, fixture_teardown)

  ADD ("ietf/happy", test_ietf_happy);
  ADD ("ietf/bandwidth-capped", test_ietf_bandwidth_capped);
  ADD ("ietf/conflict-followed", test_ietf_conflict_followed);
  ADD ("ietf/max-append-size", test_ietf_max_append_size);
  ADD ("ietf/max-size-rejected", test_ietf_max_size_rejected);
  ADD ("ietf/drop-resumes-by-head", test_ietf_drop_resumes_by_head);
  ADD ("ietf/cancel-deletes", test_ietf_cancel_deletes);
  ADD ("ietf/source-changed", test_ietf_source_changed);
  ADD ("ietf/kill-three-times", test_ietf_kill_three_times);
  ADD ("tus/chunks", test_tus_chunks);
  ADD ("tus/creation-with-upload", test_tus_creation_with_upload);
  ADD ("tus/cancel-deletes", test_tus_cancel_deletes);
  ADD ("tus/expired-starts-over", test_tus_expired_starts_over);
  ADD ("tus/kill-three-times", test_tus_kill_three_times);
  ADD ("auto/tus-only-when-allowed", test_auto_tus_only_when_allowed);
  ADD ("auto/ietf-and-cache", test_auto_picks_ietf_and_caches);
  ADD ("auto/plain", test_auto_picks_plain);

#undef ADD

  return g_test_run ();
}
