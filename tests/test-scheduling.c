/* test-scheduling.c: automatic retries, waiting for the network, metered networks, power saving,
 * the per-task options and pausing
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <signal.h>

#include <glib/gstdio.h>

#include "bg-downloader-private.h"
#include "bg-store-private.h"
#include "fake-monitors.h"
#include "test-utils.h"

/* Which server a test talks to: the fault server, for tests that need its faults or a server
 * in another process, or an in-process SoupServer that serves /files/s.bin and counts. */
typedef enum
{
  SERVER_FAULTS,
  SERVER_LOCAL,
} ServerKind;

typedef struct
{
  BgTestServer         *server;
  BgTestHttpServer     *http;
  GBytes               *served;
  GHashTable           *requests;
  gint64                first_request_at;
  BgFakeNetworkMonitor *network;
  BgFakePowerMonitor   *power;
  char                 *tmp;
  char                 *db;
  char                 *sha;
  BgDownloader         *downloader;
  guint                 finished;
  gboolean              any_finished;
} Fixture;

static void
on_finished (BgDownloader *downloader,
             BgTask       *task,
             BgResponse   *response,
             Fixture      *f)
{
  f->finished++;
  f->any_finished = TRUE;
}

static void
open_downloader (Fixture *f)
{
  g_autoptr(GError) error = NULL;

  f->downloader = g_initable_new (BG_TYPE_DOWNLOADER, NULL, &error,
                                  "session-id", "scheduling", "database-path", f->db,
                                  "network-monitor", f->network,
                                  "max-attempts", 5, NULL);
  g_assert_no_error (error);
  bg_engine_set_monitors (bg_downloader_get_engine (f->downloader),
                          G_NETWORK_MONITOR (f->network),
                          G_POWER_PROFILE_MONITOR (f->power));
  bg_engine_set_backoff (bg_downloader_get_engine (f->downloader), 100, 400);
  g_signal_connect (f->downloader, "task-finished", G_CALLBACK (on_finished), f);
}

/* The in-process server's one file, on the test's own context. */
static void
serve_cb (SoupServer        *server,
          SoupServerMessage *msg,
          const char        *path,
          GHashTable        *query,
          gpointer           user_data)
{
  Fixture *f = user_data;
  guint count = GPOINTER_TO_UINT (g_hash_table_lookup (f->requests, path));

  g_hash_table_insert (f->requests, g_strdup (path), GUINT_TO_POINTER (count + 1));
  if (f->first_request_at == 0)
    f->first_request_at = g_get_real_time ();

  if (!g_str_equal (path, "/files/s.bin"))
    {
      soup_server_message_set_status (msg, SOUP_STATUS_NOT_FOUND, NULL);
      return;
    }

  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
  soup_message_body_append_bytes (soup_server_message_get_response_body (msg), f->served);
}

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  g_autofree char *path = NULL;

  f->tmp = bg_test_make_tmpdir ();
  f->db = g_build_filename (f->tmp, "tasks.sqlite", NULL);

  if (GPOINTER_TO_INT (data) == SERVER_FAULTS)
    {
      f->server = bg_test_server_new (NULL, FALSE);
      path = g_build_filename (bg_test_server_get_root (f->server), "s.bin", NULL);
      f->sha = bg_test_write_random_file (path, 200000, 7);
    }
  else
    {
      g_autofree char *contents = NULL;
      gsize length = 0;

      path = g_build_filename (f->tmp, "served.bin", NULL);
      f->sha = bg_test_write_random_file (path, 200000, 7);
      g_assert_true (g_file_get_contents (path, &contents, &length, NULL));
      f->served = g_bytes_new_take (g_steal_pointer (&contents), length);
      f->requests = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
      f->http = bg_test_http_server_new (BG_TEST_HTTP_SERVER_DEFAULT);
      bg_test_http_server_add_handler (f->http, NULL, serve_cb, f);
    }

  f->network = bg_fake_network_monitor_new ();
  f->power = bg_fake_power_monitor_new ();
  open_downloader (f);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  /* Nothing may keep the downloader alive once the test lets go. */
  if (f->downloader != NULL)
    bg_test_assert_finalized ((gpointer *) &f->downloader);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_clear_object (&f->network);
  g_clear_object (&f->power);
  g_clear_pointer (&f->server, bg_test_server_free);
  g_clear_pointer (&f->http, bg_test_http_server_free);
  g_clear_pointer (&f->served, g_bytes_unref);
  g_clear_pointer (&f->requests, g_hash_table_unref);
  bg_test_rm_rf (f->tmp);
  g_free (f->tmp);
  g_free (f->db);
  g_free (f->sha);
}

static char *
url_for (Fixture    *f,
         const char *path_and_query)
{
  if (f->http != NULL)
    return bg_test_http_server_url (f->http, path_and_query);

  return bg_test_server_url (f->server, path_and_query);
}

static void
start (Fixture       *f,
       const char    *path_and_query,
       const char    *name,
       GAsyncResult **result)
{
  g_autofree char *dest = g_build_filename (f->tmp, name, NULL);
  g_autofree char *url = url_for (f, path_and_query);
  g_autoptr(SoupMessage) msg = soup_message_new ("GET", url);
  g_autoptr(GFile) file = g_file_new_for_path (dest);

  g_assert_nonnull (msg);
  bg_downloader_download_async (f->downloader, msg, file, name, NULL, NULL,
                                bg_test_store_result_cb, result);
}

static BgResponse *
finish (Fixture       *f,
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

typedef struct
{
  BgWaitReason reason;
  gboolean     reached;
} WaitReasonWatch;

static void
wait_reason_cb (BgTask          *task,
                GParamSpec      *pspec,
                WaitReasonWatch *watch)
{
  if (bg_task_get_state (task) == BG_TASK_STATE_WAITING &&
      bg_task_get_wait_reason (task) == watch->reason)
    watch->reached = TRUE;
}

/* Waits (30 s at most) until @task waits for @reason. */
static void
wait_for_wait_reason (BgTask       *task,
                      BgWaitReason  reason)
{
  WaitReasonWatch watch = { reason, FALSE };
  gulong state_id;
  gulong reason_id;

  state_id = g_signal_connect (task, "notify::state", G_CALLBACK (wait_reason_cb), &watch);
  reason_id = g_signal_connect (task, "notify::wait-reason", G_CALLBACK (wait_reason_cb), &watch);
  wait_reason_cb (task, NULL, &watch);
  bg_test_wait_for (&watch.reached, 30);
  g_signal_handler_disconnect (task, state_id);
  g_signal_handler_disconnect (task, reason_id);
}

static gint64
requests_for (Fixture    *f,
              const char *path)
{
  g_autoptr(JsonNode) stats = NULL;
  JsonObject *per_path;

  if (f->http != NULL)
    return GPOINTER_TO_UINT (g_hash_table_lookup (f->requests, path));

  stats = bg_test_server_stats (f->server);
  per_path = json_object_get_object_member (json_node_get_object (stats), "per_path");

  if (!json_object_has_member (per_path, path))
    return 0;

  return json_object_get_int_member (json_object_get_object_member (per_path, path),
                                     "requests");
}

typedef struct
{
  guint waits;
  gint64 next_attempt_at;
} Watch;

/* The task's next-attempt-at in microseconds since the epoch, 0 for none. */
static gint64
next_attempt_usec (BgTask *task)
{
  g_autoptr(GDateTime) at = bg_task_dup_next_attempt_at (task);

  if (at == NULL)
    return 0;

  return g_date_time_to_unix (at) * G_USEC_PER_SEC + g_date_time_get_microsecond (at);
}

static void
watch_state_cb (BgTask     *task,
                GParamSpec *pspec,
                Watch      *watch)
{
  if (bg_task_get_state (task) == BG_TASK_STATE_WAITING &&
      bg_task_get_wait_reason (task) == BG_WAIT_REASON_RETRY)
    {
      watch->waits++;
      watch->next_attempt_at = next_attempt_usec (task);
      g_assert_cmpint (watch->next_attempt_at, >, g_get_real_time ());
    }
}

static void
test_retries (Fixture       *f,
              gconstpointer  data)
{
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(BgTask) task = NULL;
  Watch watch = { 0, };
  gint64 started = g_get_monotonic_time ();
  g_autofree char *dest = g_build_filename (f->tmp, "r.bin", NULL);
  g_autofree char *got = NULL;

  /* 503 twice, then 200: one result, after three attempts, with the waits in between. */
  start (f, "/files/s.bin?fail-first=2&retry-after=1", "r.bin", &result);
  task = g_object_ref (bg_downloader_lookup_task (f->downloader, "r.bin"));
  g_signal_connect (task, "notify::state", G_CALLBACK (watch_state_cb), &watch);
  response = finish (f, &result);
  g_signal_handlers_disconnect_by_data (task, &watch);

  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
  g_assert_cmpuint (bg_task_get_attempts (task), ==, 3);
  g_assert_cmpuint (watch.waits, ==, 2);
  g_assert_cmpuint (f->finished, ==, 1);
  /* Retry-After (1 s) won over the 100 ms backoff, twice. */
  g_assert_cmpint (g_get_monotonic_time () - started, >=, 2 * G_USEC_PER_SEC);
  got = bg_test_sha256_file (dest);
  g_assert_cmpstr (got, ==, f->sha);
}

static void
test_retries_exhausted (Fixture       *f,
                        gconstpointer  data)
{
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(BgResponse) response = NULL;

  bg_task_queue_set_max_attempts (BG_TASK_QUEUE (f->downloader), 3);
  start (f, "/files/s.bin?status=503", "x.bin", &result);
  response = finish (f, &result);
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_RETRY);
  g_assert_cmpint (requests_for (f, "/files/s.bin"), ==, 3);

  /* max-attempts 1 hands every RETRY straight to the app. */
  bg_test_server_reset (f->server);
  bg_task_queue_set_max_attempts (BG_TASK_QUEUE (f->downloader), 1);
  g_clear_object (&response);
  start (f, "/files/s.bin?status=503", "y.bin", &result);
  response = finish (f, &result);
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_RETRY);
  g_assert_cmpint (requests_for (f, "/files/s.bin"), ==, 1);
}

static void
test_retry_deadline (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(BgResponse) response = NULL;

  /* A retry that would fall past the deadline is not made. */
  g_object_set (f->downloader, "retry-deadline", 2, NULL);
  start (f, "/files/s.bin?status=503&retry-after=5", "d.bin", &result);
  response = finish (f, &result);
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_RETRY);
  g_assert_cmpint (requests_for (f, "/files/s.bin"), ==, 1);
}

typedef struct
{
  Fixture *f;
  gint64   left_at;
  gint64   requests_before;
} LeaveWatch;

static void
leave_waiting_cb (BgTask     *task,
                  GParamSpec *pspec,
                  LeaveWatch *watch)
{
  if (watch->left_at == 0 && bg_task_get_state (task) != BG_TASK_STATE_WAITING)
    {
      watch->left_at = g_get_real_time ();
      watch->requests_before = requests_for (watch->f, "/files/s.bin");
    }
}

/* A process killed while its task waits for the next attempt: the next run honours the stored
 * time instead of hammering the server. */
static void
test_wait_survives_kill (Fixture       *f,
                         gconstpointer  data)
{
  g_autofree char *url = bg_test_server_url (f->server, "/files/s.bin?fail-first=1&retry-after=3");
  g_autofree char *dest = g_build_filename (f->tmp, "k.bin", NULL);
  g_autoptr(GSubprocess) helper = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(BgTask) task = NULL;
  LeaveWatch leave = { f, 0, 0 };
  gint64 next = 0;

  g_clear_object (&f->downloader);
  g_setenv ("BG_HELPER_MAX_ATTEMPTS", "5", TRUE);
  helper = bg_test_spawn_helper (&out, &error, "download", f->db, url, dest, "kill-wait", NULL);
  g_unsetenv ("BG_HELPER_MAX_ATTEMPTS");
  g_assert_no_error (error);

  while (next == 0)
    {
      g_autofree char *line = g_data_input_stream_read_line_utf8 (out, NULL, NULL, &error);

      g_assert_no_error (error);
      g_assert_nonnull (line);
      sscanf (line, "waiting %" G_GINT64_FORMAT, &next);
    }
  g_subprocess_send_signal (helper, SIGKILL);
  g_subprocess_wait (helper, NULL, NULL);
  g_assert_cmpint (requests_for (f, "/files/s.bin"), ==, 1);

  open_downloader (f);
  bg_downloader_restore_async (f->downloader, NULL, bg_test_store_result_cb, &result);
  bg_test_wait_for_result (&result, 30);
  g_assert_true (bg_downloader_restore_finish (f->downloader, result, &error));

  task = g_object_ref (bg_downloader_lookup_task (f->downloader, "kill-wait"));
  g_assert_cmpint (bg_task_get_state (task), ==, BG_TASK_STATE_WAITING);
  g_assert_cmpint (bg_task_get_wait_reason (task), ==, BG_WAIT_REASON_RETRY);
  g_assert_cmpint (next_attempt_usec (task), ==, next);
  g_signal_connect (task, "notify::state", G_CALLBACK (leave_waiting_cb), &leave);

  bg_test_wait_for (&f->any_finished, 30);
  g_signal_handlers_disconnect_by_data (task, &leave);

  /* The task left its wait once, at the stored time (the timer counts whole milliseconds),
   * with nothing sent before. */
  g_assert_cmpint (leave.left_at, >=, next - 1000);
  g_assert_cmpint (leave.requests_before, ==, 1);
  g_assert_cmpint (requests_for (f, "/files/s.bin"), ==, 2);
  g_assert_true (g_file_test (dest, G_FILE_TEST_EXISTS));
}

static void
test_offline (Fixture       *f,
              gconstpointer  data)
{
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(BgTask) task = NULL;

  bg_fake_network_monitor_set_online (f->network, FALSE);
  start (f, "/files/s.bin", "o.bin", &result);
  task = g_object_ref (bg_downloader_lookup_task (f->downloader, "o.bin"));
  wait_for_wait_reason (task, BG_WAIT_REASON_NETWORK);

  /* And nothing happens while the network is down. */
  bg_test_run_for (500);
  g_assert_cmpint (bg_task_get_state (task), ==, BG_TASK_STATE_WAITING);
  g_assert_cmpint (bg_task_get_wait_reason (task), ==, BG_WAIT_REASON_NETWORK);
  g_assert_cmpuint (bg_task_get_attempts (task), ==, 0);
  g_assert_cmpint (requests_for (f, "/files/s.bin"), ==, 0);

  bg_fake_network_monitor_set_online (f->network, TRUE);
  response = finish (f, &result);
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
  g_assert_cmpuint (bg_task_get_attempts (task), ==, 1);
}

static void
test_metered (Fixture       *f,
              gconstpointer  data)
{
  g_autoptr(GAsyncResult) r1 = NULL;
  g_autoptr(GAsyncResult) r2 = NULL;
  g_autoptr(BgResponse) a = NULL;
  g_autoptr(BgResponse) b = NULL;
  BgTask *t1;
  BgTask *t2;

  bg_fake_network_monitor_set_metered (f->network, TRUE);
  start (f, "/files/s.bin", "m1.bin", &r1);
  start (f, "/files/s.bin", "m2.bin", &r2);
  t1 = bg_downloader_lookup_task (f->downloader, "m1.bin");
  t2 = bg_downloader_lookup_task (f->downloader, "m2.bin");
  wait_for_wait_reason (t1, BG_WAIT_REASON_METERED);
  wait_for_wait_reason (t2, BG_WAIT_REASON_METERED);

  /* And nothing is sent while the network is metered. */
  bg_test_run_for (300);
  g_assert_cmpint (bg_task_get_wait_reason (t1), ==, BG_WAIT_REASON_METERED);
  g_assert_cmpint (bg_task_get_wait_reason (t2), ==, BG_WAIT_REASON_METERED);
  g_assert_cmpint (requests_for (f, "/files/s.bin"), ==, 0);

  /* The task's own option lets it through. */
  g_object_set (t1, "allow-metered", TRUE, NULL);
  a = finish (f, &r1);
  g_assert_cmpint (bg_response_get_kind (a), ==, BG_RESPONSE_SUCCESS);
  g_assert_cmpint (bg_task_get_wait_reason (t2), ==, BG_WAIT_REASON_METERED);

  /* So does the downloader's. */
  g_object_set (f->downloader, "allow-metered", TRUE, NULL);
  b = finish (f, &r2);
  g_assert_cmpint (bg_response_get_kind (b), ==, BG_RESPONSE_SUCCESS);

  /* And back: a new task waits again when the downloader stops allowing it. */
  g_object_set (f->downloader, "allow-metered", FALSE, NULL);
  {
    g_autoptr(GAsyncResult) r3 = NULL;
    g_autoptr(BgResponse) c = NULL;
    BgTask *t3;

    start (f, "/files/s.bin", "m3.bin", &r3);
    t3 = bg_downloader_lookup_task (f->downloader, "m3.bin");
    wait_for_wait_reason (t3, BG_WAIT_REASON_METERED);
    g_assert_cmpint (requests_for (f, "/files/s.bin"), ==, 2);
    bg_fake_network_monitor_set_metered (f->network, FALSE);
    c = finish (f, &r3);
    g_assert_cmpint (bg_response_get_kind (c), ==, BG_RESPONSE_SUCCESS);
  }
}

static void
test_power_saver (Fixture       *f,
                  gconstpointer  data)
{
  g_autoptr(GAsyncResult) r1 = NULL;
  g_autoptr(GAsyncResult) r2 = NULL;
  g_autoptr(BgResponse) a = NULL;
  g_autoptr(BgResponse) b = NULL;
  BgTask *discretionary;

  bg_fake_power_monitor_set_power_saver (f->power, TRUE);
  start (f, "/files/s.bin", "p1.bin", &r1);
  discretionary = bg_downloader_lookup_task (f->downloader, "p1.bin");
  bg_task_set_discretionary (discretionary, TRUE);
  start (f, "/files/s.bin", "p2.bin", &r2);

  /* The ordinary task goes; the discretionary one waits. */
  b = finish (f, &r2);
  g_assert_cmpint (bg_response_get_kind (b), ==, BG_RESPONSE_SUCCESS);
  g_assert_cmpint (bg_task_get_wait_reason (discretionary), ==, BG_WAIT_REASON_POWER_SAVER);

  bg_fake_power_monitor_set_power_saver (f->power, FALSE);
  a = finish (f, &r1);
  g_assert_cmpint (bg_response_get_kind (a), ==, BG_RESPONSE_SUCCESS);
}

static void
test_expected_sha256 (Fixture       *f,
                      gconstpointer  data)
{
  g_autoptr(GAsyncResult) r1 = NULL;
  g_autoptr(GAsyncResult) r2 = NULL;
  g_autoptr(BgResponse) good = NULL;
  g_autoptr(BgResponse) bad = NULL;
  g_autoptr(BgTaskOptions) options = bg_task_options_new ();
  g_autofree char *wrong = g_strnfill (64, 'a');
  g_autofree char *upper = g_ascii_strup (f->sha, -1);
  g_autofree char *good_dest = g_build_filename (f->tmp, "good.bin", NULL);
  g_autofree char *bad_dest = g_build_filename (f->tmp, "bad.bin", NULL);
  g_autofree char *url = url_for (f, "/files/s.bin");
  g_autoptr(SoupMessage) msg = soup_message_new ("GET", url);
  g_autoptr(GFile) file = g_file_new_for_path (good_dest);
  g_autoptr(BgTask) bad_task = NULL;
  BgTask *task;

  /* Given at creation, in either case. */
  bg_task_options_set_expected_sha256 (options, upper);
  g_assert_cmpstr (bg_task_options_get_expected_sha256 (options), ==, f->sha);
  bg_downloader_download_async (f->downloader, msg, file, "good.bin", options, NULL,
                                bg_test_store_result_cb, &r1);
  task = bg_downloader_lookup_task (f->downloader, "good.bin");
  g_assert_cmpstr (bg_task_get_expected_sha256 (task), ==, f->sha);
  good = finish (f, &r1);
  g_assert_cmpint (bg_response_get_kind (good), ==, BG_RESPONSE_SUCCESS);

  /* Changed later; a value that is not 64 hex digits is refused and changes nothing. */
  start (f, "/files/s.bin", "bad.bin", &r2);
  bad_task = g_object_ref (bg_downloader_lookup_task (f->downloader, "bad.bin"));
  g_test_expect_message ("Bg", G_LOG_LEVEL_CRITICAL, "*bg_sha256_is_valid*");
  bg_task_set_expected_sha256 (bad_task, "not hex");
  g_test_assert_expected_messages ();
  g_assert_null (bg_task_get_expected_sha256 (bad_task));
  g_object_set (bad_task, "expected-sha256", wrong, NULL);
  bad = finish (f, &r2);
  g_assert_cmpint (bg_response_get_kind (bad), ==, BG_RESPONSE_FAILED);
  g_assert_error (bg_response_get_error (bad), BG_ERROR, BG_ERROR_INTEGRITY);
  g_assert_false (g_file_test (bad_dest, G_FILE_TEST_EXISTS));
  g_assert_cmpuint (bg_test_count_partials (f->tmp), ==, 0);

  /* Options mean nothing once the task has finished. */
  g_test_expect_message ("Bg", G_LOG_LEVEL_CRITICAL, "*TASK_TAKES_OPTIONS*");
  bg_task_set_priority (bad_task, 3);
  g_test_assert_expected_messages ();
}

/* The options are committed with the task: a process killed right after download_async()
 * returned, before its main loop ran once, leaves the task with them. */
static void
test_options_survive_kill (Fixture       *f,
                           gconstpointer  data)
{
  g_autofree char *url = bg_test_server_url (f->server, "/files/s.bin");
  g_autofree char *dest = g_build_filename (f->tmp, "o.bin", NULL);
  g_autoptr(GSubprocess) helper = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(BgTask) task = NULL;

  g_clear_object (&f->downloader);
  helper = bg_test_spawn_helper (&out, &error, "submit-and-die", f->db, url, dest, "opts",
                                 f->sha, NULL);
  g_assert_no_error (error);
  g_subprocess_wait (helper, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_signaled (helper));
  g_assert_cmpint (g_subprocess_get_term_sig (helper), ==, SIGKILL);
  g_assert_cmpint (requests_for (f, "/files/s.bin"), ==, 0);

  open_downloader (f);
  bg_downloader_restore_async (f->downloader, NULL, bg_test_store_result_cb, &result);
  bg_test_wait_for_result (&result, 30);
  g_assert_true (bg_downloader_restore_finish (f->downloader, result, &error));
  g_assert_no_error (error);

  task = g_object_ref (bg_downloader_lookup_task (f->downloader, "opts"));
  g_assert_true (bg_task_get_allow_metered (task));
  g_assert_cmpint (bg_task_get_priority (task), ==, 7);
  g_assert_cmpstr (bg_task_get_expected_sha256 (task), ==, f->sha);
  g_assert_true (bg_task_get_keep_credentials (task));

  bg_test_wait_for (&f->any_finished, 60);
  g_assert_cmpint (bg_task_get_state (task), ==, BG_TASK_STATE_FINISHED);
  response = g_object_ref (bg_task_get_response (task));
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
  g_assert_true (bg_downloader_forget (f->downloader, "opts", &error));
}

static void
test_options_persist (Fixture       *f,
                      gconstpointer  data)
{
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GDateTime) now = g_date_time_new_now_utc ();
  g_autoptr(GDateTime) later = g_date_time_add_seconds (now, 2);
  g_autoptr(BgResponse) response = NULL;
  BgTask *task;

  /* Held until earliest-start, which is stored with the other options. */
  start (f, "/files/s.bin", "later.bin", &result);
  task = bg_downloader_lookup_task (f->downloader, "later.bin");
  g_object_set (task, "earliest-start", later, "priority", 7, "discretionary", FALSE,
                "allow-metered", TRUE, NULL);
  wait_for_wait_reason (task, BG_WAIT_REASON_SCHEDULED);
  g_assert_cmpint (requests_for (f, "/files/s.bin"), ==, 0);

  {
    g_autoptr(BgStore) store = bg_store_open (f->db, &error);
    g_autoptr(BgStoreRecord) record = NULL;

    g_assert_no_error (error);
    record = bg_store_lookup (store, BG_TASK_KIND_DOWNLOAD, "later.bin", &error);
    g_assert_no_error (error);
    g_assert_cmpint (record->earliest_start, ==, g_date_time_to_unix (later) * G_USEC_PER_SEC);
    g_assert_cmpint (record->priority, ==, 7);
    g_assert_true (record->allow_metered);
  }

  /* The server saw the one request, and not before earliest-start. */
  response = finish (f, &result);
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
  g_assert_cmpint (requests_for (f, "/files/s.bin"), ==, 1);
  g_assert_cmpint (f->first_request_at, >=, g_date_time_to_unix (later) * G_USEC_PER_SEC);
}

static void
test_priority (Fixture       *f,
               gconstpointer  data)
{
  GAsyncResult *results[4] = { NULL, };
  const char *names[] = { "low-1", "low-2", "high", "low-3" };
  g_autoptr(JsonNode) stats = NULL;
  JsonArray *log;

  bg_task_queue_set_max_concurrent (BG_TASK_QUEUE (f->downloader), 1);
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_autofree char *query = g_strdup_printf ("/files/s.bin?delay=100&n=%s", names[i]);

      start (f, query, names[i], &results[i]);
      if (g_str_equal (names[i], "high"))
        bg_task_set_priority (bg_downloader_lookup_task (f->downloader, "high"), 10);
    }

  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_autoptr(BgResponse) response = finish (f, &results[i]);

      g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
    }

  /* All were queued before the first started: the high one goes first. */
  stats = bg_test_server_stats (f->server);
  log = json_object_get_array_member (json_node_get_object (stats), "log");
  g_assert_cmpuint (json_array_get_length (log), ==, 4);
  g_assert_nonnull (strstr (json_object_get_string_member (json_array_get_object_element (log, 0),
                                                           "query"), "n=high"));
  g_assert_nonnull (strstr (json_object_get_string_member (json_array_get_object_element (log, 1),
                                                           "query"), "n=low-1"));
  g_assert_nonnull (strstr (json_object_get_string_member (json_array_get_object_element (log, 3),
                                                           "query"), "n=low-3"));
}

static void
record_start_cb (BgTask     *task,
                 GParamSpec *pspec,
                 GString    *order)
{
  if (bg_task_get_state (task) == BG_TASK_STATE_RUNNING)
    g_string_append_printf (order, "%s ", bg_task_get_identifier (task));
}

/* Starts the download @name, then gives its task @priority and records when it starts. */
static void
start_with_priority (Fixture       *f,
                     const char    *name,
                     int            priority,
                     GString       *order,
                     GAsyncResult **result)
{
  g_autofree char *query = g_strdup_printf ("/files/s.bin?n=%s", name);
  BgTask *task;

  start (f, query, name, result);
  task = bg_downloader_lookup_task (f->downloader, name);
  bg_task_set_priority (task, priority);
  g_signal_connect (task, "notify::state", G_CALLBACK (record_start_cb), order);
}

/* Many priorities queued in turn, priorities changed and tasks cancelled while queued, the last
 * of a priority among them: the queue still starts the highest priority first, and among equals
 * the first queued (a task whose priority changes queues again, behind its new equals). */
static void
test_priority_mixed (Fixture       *f,
                     gconstpointer  data)
{
  const struct { const char *name; int priority; } queued[] = {
    { "a", 0 }, { "b", 2 }, { "c", 1 }, { "d", 2 }, { "e", 0 }, { "f", 1 }, { "g", -1 },
    { "h", 1 }, { "i", -1 },
  };
  const struct { const char *name; int priority; } later[] = { { "j", 1 }, { "k", 2 } };
  GAsyncResult *results[G_N_ELEMENTS (queued)] = { NULL, };
  GAsyncResult *later_results[G_N_ELEMENTS (later)] = { NULL, };
  g_autoptr(GAsyncResult) blocker = NULL;
  g_autoptr(GString) order = g_string_new (NULL);
  g_autoptr(GError) error = NULL;
  BgTask *task;

  bg_task_queue_set_max_concurrent (BG_TASK_QUEUE (f->downloader), 1);
  start (f, "/files/s.bin?delay=300&n=blocker", "blocker", &blocker);
  task = bg_downloader_lookup_task (f->downloader, "blocker");
  while (bg_task_get_state (task) != BG_TASK_STATE_RUNNING)
    g_main_context_iteration (NULL, TRUE);

  for (guint i = 0; i < G_N_ELEMENTS (queued); i++)
    start_with_priority (f, queued[i].name, queued[i].priority, order, &results[i]);

  /* d and h are the last of their priorities; e moves up behind b and d, i down behind g. */
  g_assert_true (bg_downloader_cancel (f->downloader, "d", &error));
  g_assert_no_error (error);
  g_assert_true (bg_downloader_cancel (f->downloader, "h", &error));
  g_assert_no_error (error);
  bg_task_set_priority (bg_downloader_lookup_task (f->downloader, "e"), 2);
  bg_task_set_priority (bg_downloader_lookup_task (f->downloader, "i"), -2);
  for (guint i = 0; i < G_N_ELEMENTS (queued); i++)
    {
      task = bg_downloader_lookup_task (f->downloader, queued[i].name);
      if (i == 3 || i == 7)
        g_assert_null (task);
      else
        g_assert_cmpint (bg_task_get_state (task), ==, BG_TASK_STATE_QUEUED);
    }

  /* Queued after the changes: at a priority the queue has, and at one that it had. */
  for (guint i = 0; i < G_N_ELEMENTS (later); i++)
    start_with_priority (f, later[i].name, later[i].priority, order, &later_results[i]);

  g_object_unref (finish (f, &blocker));
  for (guint i = 0; i < G_N_ELEMENTS (queued); i++)
    {
      if (i == 3 || i == 7)
        {
          bg_test_wait_for_result (&results[i], 30);
          g_assert_null (bg_downloader_download_finish (f->downloader, results[i], &error));
          g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
          g_clear_error (&error);
          g_clear_object (&results[i]);
        }
      else
        {
          g_object_unref (finish (f, &results[i]));
        }
    }
  for (guint i = 0; i < G_N_ELEMENTS (later); i++)
    g_object_unref (finish (f, &later_results[i]));

  g_assert_cmpstr (order->str, ==, "b e k c f j a g i ");
}

/* Everything happens on the context that was thread-default when the downloader was made,
 * retry timers included; the global default context is never iterated here. */
static void
test_own_context (Fixture       *f,
                  gconstpointer  data)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(BgResponse) response = NULL;

  g_clear_object (&f->downloader);
  g_main_context_push_thread_default (context);
  open_downloader (f);

  start (f, "/files/s.bin?fail-first=1", "ctx.bin", &result);
  response = finish (f, &result);
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
  g_assert_cmpint (requests_for (f, "/files/s.bin"), ==, 2);

  g_clear_object (&f->downloader);
  while (g_main_context_iteration (context, FALSE))
    ;
  g_main_context_pop_thread_default (context);
}

/* --- Pause ---------------------------------------------------------------------------------- */

#define PAUSE_RATE "1048576"

/* Writes /files/@name on the server and returns its sha256. */
static char *
make_served_file (Fixture    *f,
                  const char *name,
                  gsize       size,
                  guint32     seed)
{
  g_autofree char *path = g_build_filename (bg_test_server_get_root (f->server), name, NULL);

  return bg_test_write_random_file (path, size, seed);
}

typedef gboolean (*Condition) (gpointer data);

typedef struct
{
  Condition condition;
  gboolean  holds;
} TaskWatch;

static void
task_changed_cb (BgTask     *task,
                 GParamSpec *pspec,
                 TaskWatch  *watch)
{
  if (watch->condition (task))
    watch->holds = TRUE;
}

/* Waits until @condition holds for @task, looking again at each of the task's notifications;
 * fails the test after @timeout_seconds. */
static void
wait_for_task (BgTask    *task,
               Condition  condition,
               guint      timeout_seconds)
{
  TaskWatch watch = { condition, condition (task) };
  gulong id = g_signal_connect (task, "notify", G_CALLBACK (task_changed_cb), &watch);

  bg_test_wait_for (&watch.holds, timeout_seconds);
  g_signal_handler_disconnect (task, id);
}

/* Spins the main context until @condition holds, looking again every 20 ms; fails the test
 * after @timeout_seconds.  Only for what nothing notifies of, such as the stored record. */
static void
wait_until (Condition condition,
            gpointer  data,
            guint     timeout_seconds)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_seconds * G_USEC_PER_SEC;

  while (!condition (data))
    {
      if (g_get_monotonic_time () > deadline)
        g_error ("Timed out after %u seconds", timeout_seconds);
      bg_test_run_for (20);
    }
}

static gboolean
task_waits_paused (gpointer data)
{
  BgTask *task = data;

  return bg_task_get_state (task) == BG_TASK_STATE_WAITING &&
         bg_task_get_wait_reason (task) == BG_WAIT_REASON_PAUSED;
}

static void
assert_waits_paused (BgTask *task)
{
  g_assert_cmpint (bg_task_get_state (task), ==, BG_TASK_STATE_WAITING);
  g_assert_cmpint (bg_task_get_wait_reason (task), ==, BG_WAIT_REASON_PAUSED);
  {
    g_autoptr(GDateTime) next = bg_task_dup_next_attempt_at (task);

    g_assert_null (next);
  }
}

static gboolean
task_moved_bytes (gpointer data)
{
  return bg_task_get_bytes_transferred (BG_TASK (data)) > 0;
}

/* The stored record of the download @identifier. */
static BgStoreRecord *
lookup_record (Fixture    *f,
               const char *identifier)
{
  g_autoptr(BgStore) store = NULL;
  g_autoptr(GError) error = NULL;
  BgStoreRecord *record;

  store = bg_store_open (f->db, &error);
  g_assert_no_error (error);
  record = bg_store_lookup (store, BG_TASK_KIND_DOWNLOAD, identifier, &error);
  g_assert_no_error (error);
  g_assert_nonnull (record);

  return record;
}

typedef struct
{
  Fixture    *f;
  const char *identifier;
} RecordWatch;

static gboolean
has_checkpoint (gpointer data)
{
  RecordWatch *watch = data;
  g_autoptr(BgStoreRecord) record = lookup_record (watch->f, watch->identifier);

  return record->checkpoint > 0;
}

/* Waits until part of the download @identifier is on disk and recorded as such. */
static void
wait_for_checkpoint (Fixture    *f,
                     const char *identifier)
{
  RecordWatch watch = { f, identifier };

  wait_until (has_checkpoint, &watch, 30);
}

/* The Range header of the last request for @path, NULL for none. */
static char *
last_range_for (Fixture    *f,
                const char *path)
{
  g_autoptr(JsonNode) stats = bg_test_server_stats (f->server);
  JsonArray *log = json_object_get_array_member (json_node_get_object (stats), "log");

  for (guint i = json_array_get_length (log); i > 0; i--)
    {
      JsonObject *entry = json_array_get_object_element (log, i - 1);

      if (g_str_equal (json_object_get_string_member (entry, "path"), path))
        return g_strdup (json_object_get_string_member (entry, "range"));
    }

  return NULL;
}

static void
assert_resumed_from (Fixture    *f,
                     const char *path,
                     gint64      checkpoint)
{
  g_autofree char *expected = g_strdup_printf ("bytes=%" G_GINT64_FORMAT "-", checkpoint);
  g_autofree char *range = last_range_for (f, path);

  g_assert_cmpint (checkpoint, >, 0);
  g_assert_cmpstr (range, ==, expected);
}

/* Neither the server nor the task moves a byte for two seconds. */
static void
assert_nothing_moves (Fixture *f,
                      BgTask  *task)
{
  gint64 sent;
  gint64 transferred;

  /* No answer is being sent: the connection of a stopped attempt is closed at the server too. */
  bg_test_server_wait_idle (f->server, 10);
  sent = bg_test_server_stat_int (f->server, "bytes_sent");
  transferred = bg_task_get_bytes_transferred (task);

  bg_test_run_for (2000);

  g_assert_cmpint (bg_test_server_stat_int (f->server, "bytes_sent"), ==, sent);
  g_assert_cmpint (bg_task_get_bytes_transferred (task), ==, transferred);
  assert_waits_paused (task);
}

/* A running download paused: it stops at once, keeps its partial file, uses up no attempt, and
 * once unpaused asks for the rest from its checkpoint. */
static void
test_pause_running (Fixture       *f,
                    gconstpointer  data)
{
  g_autofree char *sha = make_served_file (f, "big.bin", 4 * 1024 * 1024, 3);
  g_autofree char *dest = g_build_filename (f->tmp, "running.bin", NULL);
  g_autofree char *got = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(BgTask) task = NULL;
  gint64 checkpoint;
  gint64 paused_at;

  start (f, "/files/big.bin?rate=" PAUSE_RATE, "running.bin", &result);
  task = g_object_ref (bg_downloader_lookup_task (f->downloader, "running.bin"));
  g_assert_false (bg_task_get_paused (task));
  wait_for_checkpoint (f, "running.bin");

  paused_at = g_get_monotonic_time ();
  bg_task_set_paused (task, TRUE);
  g_assert_true (bg_task_get_paused (task));
  wait_for_task (task, task_waits_paused, 10);
  g_test_message ("The attempt ended %" G_GINT64_FORMAT " ms after the pause",
                  (g_get_monotonic_time () - paused_at) / 1000);
  g_assert_cmpuint (bg_task_get_attempts (task), ==, 0);

  assert_nothing_moves (f, task);
  g_assert_null (result);
  g_assert_cmpint (requests_for (f, "/files/big.bin"), ==, 1);
  g_assert_cmpuint (bg_test_count_partials (f->tmp), ==, 1);
  g_assert_false (g_file_test (dest, G_FILE_TEST_EXISTS));

  /* The pause is stored, beside the checkpoint the next attempt starts from. */
  {
    g_autoptr(BgStoreRecord) record = lookup_record (f, "running.bin");

    g_assert_true (record->paused);
    checkpoint = record->checkpoint;
  }

  bg_task_set_paused (task, FALSE);
  response = finish (f, &result);
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
  g_assert_cmpuint (bg_task_get_attempts (task), ==, 1);
  g_assert_cmpuint (bg_task_get_restarts (task), ==, 0);
  g_assert_cmpint (requests_for (f, "/files/big.bin"), ==, 2);
  assert_resumed_from (f, "/files/big.bin", checkpoint);
  got = bg_test_sha256_file (dest);
  g_assert_cmpstr (got, ==, sha);
  g_assert_cmpuint (f->finished, ==, 1);
}

static gboolean
task_waits_retry (gpointer data)
{
  return bg_task_get_wait_reason (BG_TASK (data)) == BG_WAIT_REASON_RETRY;
}

/* A queued task and one waiting for its next attempt can be paused too. */
static void
test_pause_queued_and_waiting (Fixture       *f,
                               gconstpointer  data)
{
  g_autofree char *q_sha = make_served_file (f, "q.bin", 100000, 4);
  g_autofree char *r_sha = make_served_file (f, "r.bin", 100000, 5);
  g_autoptr(GAsyncResult) r1 = NULL;
  g_autoptr(GAsyncResult) r2 = NULL;
  g_autoptr(GAsyncResult) r3 = NULL;
  g_autoptr(BgResponse) first = NULL;
  g_autoptr(BgResponse) queued_response = NULL;
  g_autoptr(BgResponse) retried_response = NULL;
  g_autoptr(BgTask) queued = NULL;
  g_autoptr(BgTask) retried = NULL;
  gint64 next;

  /* One slot, taken for a while: the second task stays queued until it is paused. */
  bg_task_queue_set_max_concurrent (BG_TASK_QUEUE (f->downloader), 1);
  start (f, "/files/s.bin?rate=200000", "first.bin", &r1);
  start (f, "/files/q.bin", "queued.bin", &r2);
  queued = g_object_ref (bg_downloader_lookup_task (f->downloader, "queued.bin"));
  g_assert_cmpint (bg_task_get_state (queued), ==, BG_TASK_STATE_QUEUED);

  bg_task_set_paused (queued, TRUE);
  assert_waits_paused (queued);

  /* The slot comes free, and stays free: nothing may happen, so a window is all to watch. */
  first = finish (f, &r1);
  g_assert_cmpint (bg_response_get_kind (first), ==, BG_RESPONSE_SUCCESS);
  bg_test_run_for (300);
  assert_waits_paused (queued);
  g_assert_cmpuint (bg_task_get_attempts (queued), ==, 0);
  g_assert_cmpint (requests_for (f, "/files/q.bin"), ==, 0);

  bg_task_set_paused (queued, FALSE);
  queued_response = finish (f, &r2);
  g_assert_cmpint (bg_response_get_kind (queued_response), ==, BG_RESPONSE_SUCCESS);
  g_assert_cmpuint (bg_task_get_attempts (queued), ==, 1);

  /* Waiting for a retry: the pause holds it past its time, and lets it go when lifted. */
  start (f, "/files/r.bin?fail-first=1&retry-after=1", "retried.bin", &r3);
  retried = g_object_ref (bg_downloader_lookup_task (f->downloader, "retried.bin"));
  wait_for_task (retried, task_waits_retry, 30);
  {
    g_autoptr(GDateTime) at = bg_task_dup_next_attempt_at (retried);

    g_assert_nonnull (at);
    next = g_date_time_to_unix (at) * G_USEC_PER_SEC + g_date_time_get_microsecond (at);
  }

  /* Nothing may happen until half a second past its time: a window is all to watch. */
  bg_task_set_paused (retried, TRUE);
  assert_waits_paused (retried);
  if (g_get_real_time () < next + G_USEC_PER_SEC / 2)
    bg_test_run_for ((next + G_USEC_PER_SEC / 2 - g_get_real_time ()) / 1000 + 1);
  assert_waits_paused (retried);
  g_assert_cmpint (requests_for (f, "/files/r.bin"), ==, 1);
  g_assert_cmpuint (bg_task_get_attempts (retried), ==, 1);

  bg_task_set_paused (retried, FALSE);
  retried_response = finish (f, &r3);
  g_assert_cmpint (bg_response_get_kind (retried_response), ==, BG_RESPONSE_SUCCESS);
  g_assert_cmpint (requests_for (f, "/files/r.bin"), ==, 2);
  g_assert_cmpuint (bg_task_get_attempts (retried), ==, 2);

  /* A finished task takes no pause. */
  g_test_expect_message ("Bg", G_LOG_LEVEL_CRITICAL, "*TASK_TAKES_OPTIONS*");
  bg_task_set_paused (retried, TRUE);
  g_test_assert_expected_messages ();
  g_assert_false (bg_task_get_paused (retried));
}

/* The engine-wide pause holds every task, running, new or queued, without storing anything,
 * and lets go of those it held. */
static void
test_pause_engine (Fixture       *f,
                   gconstpointer  data)
{
  static const char * const names[] = { "ea.bin", "eb.bin", "ec.bin" };
  g_autofree char *sha = make_served_file (f, "e.bin", 2 * 1024 * 1024, 6);
  BgTaskQueue *queue = BG_TASK_QUEUE (f->downloader);
  GAsyncResult *results[3] = { NULL, };
  BgTask *tasks[3];

  start (f, "/files/e.bin?rate=" PAUSE_RATE "&n=a", "ea.bin", &results[0]);
  start (f, "/files/e.bin?rate=" PAUSE_RATE "&n=b", "eb.bin", &results[1]);
  for (guint i = 0; i < 2; i++)
    {
      tasks[i] = g_object_ref (bg_downloader_lookup_task (f->downloader, names[i]));
      wait_for_task (tasks[i], task_moved_bytes, 30);
    }

  /* The second one is paused on its own as well. */
  bg_task_set_paused (tasks[1], TRUE);
  g_assert_false (bg_task_queue_get_paused (queue));
  bg_task_queue_set_paused (queue, TRUE);
  g_assert_true (bg_task_queue_get_paused (queue));
  wait_for_task (tasks[0], task_waits_paused, 10);
  wait_for_task (tasks[1], task_waits_paused, 10);
  g_assert_false (bg_task_get_paused (tasks[0]));

  /* A task given meanwhile waits from the start. */
  start (f, "/files/e.bin?n=c", "ec.bin", &results[2]);
  tasks[2] = g_object_ref (bg_downloader_lookup_task (f->downloader, "ec.bin"));
  assert_waits_paused (tasks[2]);

  assert_nothing_moves (f, tasks[0]);
  g_assert_cmpint (requests_for (f, "/files/e.bin"), ==, 2);
  for (guint i = 0; i < 3; i++)
    {
      g_autoptr(BgStoreRecord) record = lookup_record (f, names[i]);

      assert_waits_paused (tasks[i]);
      g_assert_cmpint (record->paused, ==, i == 1);
      g_assert_null (results[i]);
    }

  /* Lifted: the tasks it held go on; the one paused on its own stays paused. */
  bg_task_queue_set_paused (queue, FALSE);
  g_assert_false (bg_task_queue_get_paused (queue));
  for (guint i = 0; i < 3; i += 2)
    {
      g_autoptr(BgResponse) response = finish (f, &results[i]);

      g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
      g_assert_cmpuint (bg_task_get_attempts (tasks[i]), ==, 1);
    }
  assert_waits_paused (tasks[1]);

  bg_task_set_paused (tasks[1], FALSE);
  {
    g_autoptr(BgResponse) response = finish (f, &results[1]);

    g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
  }

  for (guint i = 0; i < 3; i++)
    {
      g_autofree char *dest = g_build_filename (f->tmp, names[i], NULL);
      g_autofree char *got = bg_test_sha256_file (dest);

      g_assert_cmpstr (got, ==, sha);
      g_object_unref (tasks[i]);
    }
  /* Two attempts each for the tasks that were running, one for the one that waited. */
  g_assert_cmpint (requests_for (f, "/files/e.bin"), ==, 5);
}

/* Drops the downloader and waits until its engine, and with it the database, is released. */
static void
close_downloader (Fixture *f)
{
  GWeakRef engine;

  g_weak_ref_init (&engine, bg_downloader_get_engine (f->downloader));
  g_clear_object (&f->downloader);
  bg_test_wait_finalized (&engine);
}

/* A task paused in a process that is then killed is found paused by the next run: it sends
 * nothing until it is unpaused, and then goes on from its checkpoint. */
static void
test_pause_survives_kill (Fixture       *f,
                          gconstpointer  data)
{
  g_autofree char *sha = make_served_file (f, "big.bin", 4 * 1024 * 1024, 8);
  g_autofree char *dest = g_build_filename (f->tmp, "pk", NULL);
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GSubprocess) helper = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(BgStoreRecord) first = NULL;
  g_autoptr(BgStoreRecord) stored = NULL;
  g_autofree char *got = NULL;
  gboolean paused = FALSE;
  BgTask *task;

  /* A first run gets part of the file, with a checkpoint, and stops. */
  bg_test_start_download (f->downloader, f->server, "/files/big.bin?rate=" PAUSE_RATE, dest, "pk",
                          cancellable, &result);
  wait_for_checkpoint (f, "pk");
  g_cancellable_cancel (cancellable);
  bg_test_wait_for_result (&result, 30);
  g_assert_null (bg_downloader_download_finish (f->downloader, result, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);
  g_clear_object (&result);
  close_downloader (f);
  first = lookup_record (f, "pk");
  g_assert_cmpint (first->checkpoint, >, 0);
  g_assert_false (first->paused);

  /* The helper carries it on from there, pauses it while it runs, and is killed. */
  helper = bg_test_spawn_helper (&out, &error, "restore-and-pause", f->db, NULL);
  g_assert_no_error (error);
  while (!paused)
    {
      g_autofree char *line = g_data_input_stream_read_line_utf8 (out, NULL, NULL, &error);

      g_assert_no_error (error);
      g_assert_nonnull (line);
      paused = g_str_equal (line, "paused pk");
    }
  g_subprocess_send_signal (helper, SIGKILL);
  g_subprocess_wait (helper, NULL, NULL);
  g_assert_cmpint (requests_for (f, "/files/big.bin"), ==, 2);
  assert_resumed_from (f, "/files/big.bin", first->checkpoint);

  stored = lookup_record (f, "pk");
  g_assert_true (stored->paused);
  g_assert_cmpint (stored->checkpoint, >=, first->checkpoint);

  /* The next run finds it paused, and it sends nothing. */
  open_downloader (f);
  bg_downloader_restore_async (f->downloader, NULL, bg_test_store_result_cb, &result);
  bg_test_wait_for_result (&result, 30);
  g_assert_true (bg_downloader_restore_finish (f->downloader, result, &error));
  g_assert_no_error (error);
  task = bg_downloader_lookup_task (f->downloader, "pk");
  g_assert_nonnull (task);
  g_assert_true (bg_task_get_paused (task));
  assert_waits_paused (task);
  g_assert_cmpint (bg_task_get_bytes_transferred (task), ==, stored->checkpoint);
  assert_nothing_moves (f, task);
  g_assert_cmpint (requests_for (f, "/files/big.bin"), ==, 2);

  /* Unpaused, it asks for the rest from its checkpoint. */
  bg_task_set_paused (task, FALSE);
  while (f->finished == 0)
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpint (bg_response_get_kind (bg_task_get_response (task)), ==, BG_RESPONSE_SUCCESS);
  g_assert_cmpint (requests_for (f, "/files/big.bin"), ==, 3);
  assert_resumed_from (f, "/files/big.bin", stored->checkpoint);
  got = bg_test_sha256_file (dest);
  g_assert_cmpstr (got, ==, sha);
  g_assert_true (bg_downloader_forget (f->downloader, "pk", &error));
  g_assert_no_error (error);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, server, func) \
  g_test_add ("/scheduling/" path, Fixture, GINT_TO_POINTER (server), fixture_setup, func, \
              fixture_teardown)

  /* Failing answers, Retry-After, delays and a request log are the fault server's. */
  ADD ("retries", SERVER_FAULTS, test_retries);
  ADD ("retries-exhausted", SERVER_FAULTS, test_retries_exhausted);
  ADD ("retry-deadline", SERVER_FAULTS, test_retry_deadline);
  ADD ("priority", SERVER_FAULTS, test_priority);
  ADD ("priority/mixed", SERVER_FAULTS, test_priority_mixed);
  ADD ("own-context", SERVER_FAULTS, test_own_context);
  ADD ("pause/running", SERVER_FAULTS, test_pause_running);
  ADD ("pause/queued-and-waiting", SERVER_FAULTS, test_pause_queued_and_waiting);
  ADD ("pause/engine", SERVER_FAULTS, test_pause_engine);
  /* A helper process talks to the server while this one waits for it. */
  ADD ("wait-survives-kill", SERVER_FAULTS, test_wait_survives_kill);
  ADD ("options-survive-kill", SERVER_FAULTS, test_options_survive_kill);
  ADD ("pause/survives-kill", SERVER_FAULTS, test_pause_survives_kill);
  /* The rest needs a file and a count of requests. */
  ADD ("offline", SERVER_LOCAL, test_offline);
  ADD ("metered", SERVER_LOCAL, test_metered);
  ADD ("power-saver", SERVER_LOCAL, test_power_saver);
  ADD ("expected-sha256", SERVER_LOCAL, test_expected_sha256);
  ADD ("options-persist", SERVER_LOCAL, test_options_persist);

#undef ADD

  return g_test_run ();
}
