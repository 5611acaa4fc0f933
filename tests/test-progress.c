/* test-progress.c: what a list view shows of a transfer: fraction, rate and time left
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include "bg-downloader-private.h"
#include "bg-task-private.h"
#include "test-utils.h"

/* The throttled server's rate, in bytes per second, and the band the measured rate must fall
 * in once it is known: a check that the rate is the right quantity, not a timing threshold. */
#define SERVER_RATE 200000
#define RATE_LOW (SERVER_RATE * 0.5)
#define RATE_HIGH (SERVER_RATE * 1.5)

typedef struct
{
  gint64      time;
  BgTaskState state;
  gint64      transferred;
  gint64      total;
  double      fraction;
  double      rate;
  gint64      eta;
} Sample;

typedef struct
{
  BgTestServer *server;
  char         *tmp;
  char         *db;
  BgDownloader *downloader;
  GArray       *samples;
  guint         n_fraction_notifies;
  guint         n_rate_notifies;
  guint         n_eta_notifies;
  gboolean      rate_seen;
  gboolean      rate_dropped;
} Fixture;

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  f->server = bg_test_server_new (NULL, FALSE);
  f->tmp = bg_test_make_tmpdir ();
  f->db = g_build_filename (f->tmp, "tasks.sqlite", NULL);
  f->samples = g_array_new (FALSE, FALSE, sizeof (Sample));
  f->downloader = g_initable_new (BG_TYPE_DOWNLOADER, NULL, &error,
                                  "session-id", "test",
                                  "database-path", f->db,
                                  "max-attempts", 2,
                                  "stall-timeout", 60,
                                  NULL);
  g_assert_no_error (error);
  bg_engine_set_backoff (bg_downloader_get_engine (f->downloader), 50, 200);
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
  g_clear_pointer (&f->server, bg_test_server_free);
  g_clear_pointer (&f->samples, g_array_unref);
  bg_test_rm_rf (f->tmp);
  g_free (f->tmp);
  g_free (f->db);
}

static char *
serve_file (Fixture    *f,
            const char *name,
            gsize       size)
{
  g_autofree char *path = g_build_filename (bg_test_server_get_root (f->server), name, NULL);

  return bg_test_write_random_file (path, size, 7);
}

static void
record_sample (BgTask     *task,
               GParamSpec *pspec,
               Fixture    *f)
{
  Sample sample = {
    .time = g_get_monotonic_time (),
    .state = bg_task_get_state (task),
    .transferred = bg_task_get_bytes_transferred (task),
    .total = bg_task_get_bytes_total (task),
    .fraction = bg_task_get_fraction (task),
    .rate = bg_task_get_bytes_per_second (task),
    .eta = bg_task_get_eta (task),
  };
  const char *name = g_param_spec_get_name (pspec);
  double fraction = 0;
  gint64 eta = 0;

  /* The getters and the properties tell the same. */
  g_object_get (task, "fraction", &fraction, "eta", &eta, NULL);
  g_assert_cmpfloat (fraction, ==, sample.fraction);
  g_assert_cmpint (eta, ==, sample.eta);

  if (g_str_equal (name, "fraction"))
    f->n_fraction_notifies++;
  else if (g_str_equal (name, "bytes-per-second"))
    f->n_rate_notifies++;
  else if (g_str_equal (name, "eta"))
    f->n_eta_notifies++;

  if (sample.rate > 0)
    f->rate_seen = TRUE;
  else if (f->rate_seen && sample.state == BG_TASK_STATE_RUNNING)
    f->rate_dropped = TRUE;

  g_array_append_val (f->samples, sample);
}

static BgTask *
start_watched (Fixture       *f,
               const char    *url,
               const char    *dest_name,
               GAsyncResult **result)
{
  g_autoptr(SoupMessage) msg = soup_message_new ("GET", url);
  g_autofree char *dest = g_build_filename (f->tmp, dest_name, NULL);
  g_autoptr(GFile) file = g_file_new_for_path (dest);
  BgTask *task;

  g_assert_nonnull (msg);
  bg_downloader_download_async (f->downloader, msg, file, dest_name, NULL, NULL,
                                bg_test_store_result_cb, result);
  task = bg_downloader_lookup_task (f->downloader, dest_name);
  g_assert_nonnull (task);

  /* Before the first byte: nothing known. */
  g_assert_cmpfloat (bg_task_get_fraction (task), ==, -1.0);
  g_assert_cmpfloat (bg_task_get_bytes_per_second (task), ==, 0.0);
  g_assert_cmpint (bg_task_get_eta (task), ==, -1);
  g_assert_null (bg_task_dup_next_attempt_at (task));

  g_signal_connect (task, "notify", G_CALLBACK (record_sample), f);

  return g_object_ref (task);
}

static BgResponse *
finish (Fixture       *f,
        GAsyncResult **result)
{
  g_autoptr(GError) error = NULL;
  BgResponse *response;

  bg_test_wait_for_result (result, 120);
  response = bg_downloader_download_finish (f->downloader, *result, &error);
  g_assert_no_error (error);
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);

  return response;
}

/* The end: every byte moved, nothing left, nothing moving. */
static void
assert_finished (BgTask *task)
{
  g_assert_cmpint (bg_task_get_state (task), ==, BG_TASK_STATE_FINISHED);
  g_assert_cmpfloat (bg_task_get_fraction (task), ==, 1.0);
  g_assert_cmpint (bg_task_get_eta (task), ==, 0);
  g_assert_cmpfloat (bg_task_get_bytes_per_second (task), ==, 0.0);
}

/* A server that sends SERVER_RATE bytes a second: the fraction climbs to 1, the rate settles
 * near the server's, the time left counts down to 0. */
static void
test_throttled_download (Fixture       *f,
                         gconstpointer  data)
{
  const gsize size = SERVER_RATE * 5;
  g_autofree char *sha = serve_file (f, "slow.bin", size);
  g_autofree char *url = bg_test_server_url (f->server, "/files/slow.bin?rate=200000");
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(BgTask) task = start_watched (f, url, "slow.bin", &result);
  double last_fraction = -1.0;
  gint64 first_move = 0, first_eta = -1, last_eta = -1, started, elapsed;
  guint n_rated = 0, n_eta = 0, n_mid = 0;
  double min_rate = G_MAXDOUBLE, max_rate = 0;

  started = g_get_monotonic_time ();
  response = finish (f, &result);
  elapsed = g_get_monotonic_time () - started;
  assert_finished (task);

  for (guint i = 0; i < f->samples->len; i++)
    {
      const Sample *s = &g_array_index (f->samples, Sample, i);

      /* The size is known from the headers on: the fraction never goes back. */
      if (s->total >= 0)
        {
          g_assert_cmpint (s->total, ==, size);
          g_assert_cmpfloat (s->fraction, >=, 0.0);
          g_assert_cmpfloat (s->fraction, <=, 1.0);
          g_assert_cmpfloat (s->fraction, >=, last_fraction);
          g_assert_cmpfloat_with_epsilon (s->fraction, (double) s->transferred / size, 1e-9);
          last_fraction = s->fraction;
        }
      if (first_move == 0 && s->transferred > 0)
        first_move = s->time;

      if (s->state != BG_TASK_STATE_RUNNING || s->transferred >= (gint64) size)
        continue;
      n_mid++;

      /* Once known, the rate is the server's, give or take. */
      if (s->rate > 0)
        {
          n_rated++;
          min_rate = MIN (min_rate, s->rate);
          max_rate = MAX (max_rate, s->rate);
          g_assert_cmpfloat (s->rate, >=, RATE_LOW);
          g_assert_cmpfloat (s->rate, <=, RATE_HIGH);
          /* Seconds left at that rate, rounded up. */
          g_assert_cmpint (s->eta, >, 0);
          g_assert_cmpint (s->eta, >=, (s->total - s->transferred) / s->rate);
          g_assert_cmpint (s->eta, <=, (s->total - s->transferred) / s->rate + 1);
          if (first_eta < 0)
            first_eta = s->eta;
          last_eta = s->eta;
          n_eta++;
        }
      else
        {
          g_assert_cmpint (s->eta, ==, -1);
        }
    }
  g_assert_cmpfloat (last_fraction, ==, 1.0);
  g_assert_cmpuint (n_mid, >, 0);
  /* Five seconds of transfer, a rate after the first second. */
  g_assert_cmpuint (n_rated, >, 0);
  g_assert_cmpuint (n_eta, >, 1);
  g_assert_cmpint (last_eta, <, first_eta);
  g_test_message ("%u samples, %u with a rate from %.0f to %.0f bytes/s; eta from %"
                  G_GINT64_FORMAT " s down to %" G_GINT64_FORMAT " s; %.1f s in all",
                  f->samples->len, n_rated, min_rate, max_rate, first_eta, last_eta,
                  elapsed / 1e6);

  /* One throttle for all of them: about ten notifications a second, plus the last. */
  g_assert_cmpuint (f->n_fraction_notifies, <=, (guint) (elapsed * 10 / G_USEC_PER_SEC) + 3);
  g_assert_cmpuint (f->n_rate_notifies, <=, (guint) (elapsed * 10 / G_USEC_PER_SEC) + 3);
  g_assert_cmpuint (f->n_eta_notifies, <=, (guint) (elapsed * 10 / G_USEC_PER_SEC) + 3);
  g_assert_cmpuint (f->n_rate_notifies, >, 0);
}

/* A download that resumes after a dropped connection already has part of the file: those
 * bytes move the fraction but not the rate. */
static void
test_resumed_rate (Fixture       *f,
                   gconstpointer  data)
{
  const gsize size = SERVER_RATE * 5;
  g_autofree char *sha = serve_file (f, "resumed.bin", size);
  g_autofree char *url =
    bg_test_server_url (f->server, "/files/resumed.bin?rate=200000&drop=600000&cut-first=1");
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(BgTask) task = start_watched (f, url, "resumed.bin", &result);
  gboolean resumed = FALSE;
  guint n_rated_after_resume = 0;
  g_autofree char *path = g_build_filename (f->tmp, "resumed.bin", NULL);
  g_autofree char *got = NULL;

  response = finish (f, &result);
  assert_finished (task);
  g_assert_cmpuint (bg_task_get_attempts (task), ==, 2);
  got = bg_test_sha256_file (path);
  g_assert_cmpstr (got, ==, sha);

  for (guint i = 0; i < f->samples->len; i++)
    {
      const Sample *s = &g_array_index (f->samples, Sample, i);

      if (s->state == BG_TASK_STATE_WAITING)
        resumed = TRUE;
      if (!resumed || s->state != BG_TASK_STATE_RUNNING || s->transferred >= (gint64) size)
        continue;

      g_assert_cmpint (s->transferred, >=, 600000 - 262144);
      if (s->rate > 0)
        {
          n_rated_after_resume++;
          g_assert_cmpfloat (s->rate, >=, RATE_LOW);
          g_assert_cmpfloat (s->rate, <=, RATE_HIGH);
        }
    }
  g_assert_true (resumed);
  g_assert_cmpuint (n_rated_after_resume, >, 0);
}

/* A server that stops sending, keeping the connection: the rate falls to 0 and the time left
 * is unknown, while the attempt still runs. */
static void
test_stalled_rate (Fixture       *f,
                   gconstpointer  data)
{
  const gsize size = SERVER_RATE * 5;
  g_autofree char *sha = serve_file (f, "stalled.bin", size);
  g_autofree char *url = bg_test_server_url (f->server, "/files/stalled.bin?rate=200000&stall=400000");
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(BgTask) task = start_watched (f, url, "stalled.bin", &result);
  g_autoptr(GError) error = NULL;
  g_autoptr(BgResponse) response = NULL;

  bg_test_wait_for (&f->rate_dropped, 60);
  g_assert_cmpint (bg_task_get_state (task), ==, BG_TASK_STATE_RUNNING);
  g_assert_cmpfloat (bg_task_get_bytes_per_second (task), ==, 0.0);
  g_assert_cmpint (bg_task_get_eta (task), ==, -1);
  g_assert_cmpint (bg_task_get_bytes_transferred (task), ==, 400000);
  g_assert_cmpfloat_with_epsilon (bg_task_get_fraction (task), 400000.0 / size, 1e-9);

  g_assert_true (bg_downloader_cancel (f->downloader, "stalled.bin", &error));
  g_assert_no_error (error);
  bg_test_wait_for_result (&result, 30);
  response = bg_downloader_download_finish (f->downloader, result, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_null (response);
}

/* A task waiting to try again tells when, as a GDateTime. */
static void
test_next_attempt_at (Fixture       *f,
                      gconstpointer  data)
{
  g_autofree char *sha = serve_file (f, "retry.bin", 1000);
  g_autofree char *url = bg_test_server_url (f->server, "/files/retry.bin?fail-first=1");
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(BgTask) task = NULL;

  bg_engine_set_backoff (bg_downloader_get_engine (f->downloader), 1000, 1000);
  task = start_watched (f, url, "retry.bin", &result);

  while (bg_task_get_state (task) != BG_TASK_STATE_WAITING && result == NULL)
    g_main_context_iteration (NULL, TRUE);
  g_assert_null (result);
  g_assert_cmpint (bg_task_get_wait_reason (task), ==, BG_WAIT_REASON_RETRY);
  {
    g_autoptr(GDateTime) at = bg_task_dup_next_attempt_at (task);
    g_autoptr(GDateTime) from_property = NULL;
    g_autoptr(GDateTime) now = g_date_time_new_now_utc ();

    g_assert_nonnull (at);
    g_assert_cmpint (g_date_time_compare (at, now), >, 0);
    g_assert_cmpint (g_date_time_difference (at, now), <=, 2 * G_USEC_PER_SEC);
    g_object_get (task, "next-attempt-at", &from_property, NULL);
    g_assert_true (g_date_time_equal (at, from_property));
  }

  response = finish (f, &result);
  g_assert_null (bg_task_dup_next_attempt_at (task));
  assert_finished (task);
}

static void
count_notify (BgTask     *task,
              GParamSpec *pspec,
              guint      *count)
{
  (*count)++;
}

/* The engine's last progress call before a task finishes is forced: what was held back by the
 * throttle is told then, before the state changes, not after. */
static void
test_forced_notify_flushes (void)
{
  g_autoptr(GFile) file = g_file_new_for_path ("/nonexistent");
  g_autoptr(BgTask) task = bg_task_new (BG_TASK_KIND_DOWNLOAD, "t", "http://127.0.0.1/", file);
  guint bytes_notifies = 0, fraction_notifies = 0;

  g_signal_connect (task, "notify::bytes-transferred", G_CALLBACK (count_notify),
                    &bytes_notifies);
  g_signal_connect (task, "notify::fraction", G_CALLBACK (count_notify), &fraction_notifies);
  bg_task_set_state (task, BG_TASK_STATE_RUNNING);

  /* A new total is told at once; the bytes right after it are held back. */
  bg_task_set_progress (task, 100, 1000, FALSE);
  g_assert_cmpuint (bytes_notifies, ==, 1);
  g_assert_cmpuint (fraction_notifies, ==, 1);
  bg_task_set_progress (task, 1000, 1000, FALSE);
  g_assert_cmpuint (bytes_notifies, ==, 1);

  /* Forced with the same values: told now. */
  bg_task_set_progress (task, 1000, 1000, TRUE);
  g_assert_cmpuint (bytes_notifies, ==, 2);
  g_assert_cmpuint (fraction_notifies, ==, 2);
  g_assert_cmpfloat (bg_task_get_fraction (task), ==, 1.0);
  g_assert_cmpint (bg_task_get_eta (task), ==, 0);

  /* Nothing is told twice. */
  bg_task_set_progress (task, 1000, 1000, TRUE);
  bg_task_set_state (task, BG_TASK_STATE_FINISHED);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_assert_cmpuint (bytes_notifies, ==, 2);
  g_assert_cmpuint (fraction_notifies, ==, 2);
}

/* A task that never runs (queued, waiting, cancelled) tells no rate and no time left, and its
 * restored bytes once, as one that ran does. */
static void
test_never_ran (void)
{
  g_autoptr(GFile) file = g_file_new_for_path ("/nonexistent");
  g_autoptr(BgTask) task = bg_task_new (BG_TASK_KIND_DOWNLOAD, "t", "http://127.0.0.1/", file);
  guint bytes_notifies = 0, rate_notifies = 0, eta_notifies = 0;

  g_signal_connect (task, "notify::bytes-transferred", G_CALLBACK (count_notify),
                    &bytes_notifies);
  g_signal_connect (task, "notify::bytes-per-second", G_CALLBACK (count_notify),
                    &rate_notifies);
  g_signal_connect (task, "notify::eta", G_CALLBACK (count_notify), &eta_notifies);

  g_assert_cmpfloat (bg_task_get_bytes_per_second (task), ==, 0.0);
  g_assert_cmpint (bg_task_get_eta (task), ==, -1);
  g_assert_cmpfloat (bg_task_get_fraction (task), ==, -1.0);

  bg_task_set_state (task, BG_TASK_STATE_QUEUED);
  bg_task_set_state (task, BG_TASK_STATE_WAITING);
  g_assert_cmpuint (rate_notifies + eta_notifies + bytes_notifies, ==, 0);

  /* What a restored task had: told at once. */
  bg_task_set_progress (task, 400, 1000, TRUE);
  g_assert_cmpuint (bytes_notifies, ==, 1);
  g_assert_cmpfloat (bg_task_get_fraction (task), ==, 0.4);
  g_assert_cmpint (bg_task_get_eta (task), ==, -1);
  g_assert_cmpfloat (bg_task_get_bytes_per_second (task), ==, 0.0);

  bg_task_set_state (task, BG_TASK_STATE_CANCELLED);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_assert_cmpuint (bytes_notifies, ==, 1);
  g_assert_cmpuint (rate_notifies, ==, 0);
  g_assert_cmpuint (eta_notifies, ==, 0);
}

/* --- A server that sends no Content-Length -------------------------------------------------- */

#define CHUNK_SIZE 10000
#define N_CHUNKS 150

typedef struct
{
  SoupServerMessage *msg;
  guint              sent;
  guint              timeout;
} ChunkedReply;

static void
chunked_reply_free (ChunkedReply *reply)
{
  g_clear_handle_id (&reply->timeout, g_source_remove);
  g_free (reply);
}

static void
chunked_finished_cb (SoupServerMessage *msg,
                     ChunkedReply      *reply)
{
  g_object_set_data (G_OBJECT (msg), "reply", NULL);
}

static gboolean
chunked_send_cb (gpointer data)
{
  ChunkedReply *reply = data;
  SoupMessageBody *body = soup_server_message_get_response_body (reply->msg);
  char chunk[CHUNK_SIZE];

  memset (chunk, 'a' + reply->sent % 26, sizeof chunk);
  soup_message_body_append (body, SOUP_MEMORY_COPY, chunk, sizeof chunk);
  if (++reply->sent == N_CHUNKS)
    {
      soup_message_body_complete (body);
      reply->timeout = 0;
    }
  soup_server_message_unpause (reply->msg);

  return reply->sent < N_CHUNKS ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

/* CHUNK_SIZE bytes every 50 ms, chunked, so 200000 bytes a second of unknown total. */
static void
chunked_handler (SoupServer        *server,
                 SoupServerMessage *msg,
                 const char        *path,
                 GHashTable        *query,
                 gpointer           data)
{
  ChunkedReply *reply = g_new0 (ChunkedReply, 1);

  reply->msg = msg;
  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
  soup_message_headers_set_encoding (soup_server_message_get_response_headers (msg),
                                     SOUP_ENCODING_CHUNKED);
  soup_message_headers_set_content_type (soup_server_message_get_response_headers (msg),
                                         "application/octet-stream", NULL);
  reply->timeout = g_timeout_add (1000 / (SERVER_RATE / CHUNK_SIZE), chunked_send_cb, reply);
  g_object_set_data_full (G_OBJECT (msg), "reply", reply, (GDestroyNotify) chunked_reply_free);
  g_signal_connect (msg, "finished", G_CALLBACK (chunked_finished_cb), reply);
  soup_server_message_pause (msg);
}

static void
test_unknown_length (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(BgTestHttpServer) server = bg_test_http_server_new (BG_TEST_HTTP_SERVER_DEFAULT);
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(BgTask) task = NULL;
  g_autofree char *url = NULL;
  guint n_mid = 0, n_rated = 0;

  bg_test_http_server_add_handler (server, "/chunked", chunked_handler, NULL);
  url = bg_test_http_server_url (server, "/chunked");

  task = start_watched (f, url, "chunked.bin", &result);
  response = finish (f, &result);
  assert_finished (task);
  g_assert_cmpint (bg_task_get_bytes_total (task), ==, CHUNK_SIZE * N_CHUNKS);

  for (guint i = 0; i < f->samples->len; i++)
    {
      const Sample *s = &g_array_index (f->samples, Sample, i);

      if (s->state != BG_TASK_STATE_RUNNING || s->transferred == 0 ||
          s->transferred >= CHUNK_SIZE * N_CHUNKS)
        continue;

      /* No size: no fraction and no time left, but a rate all the same. */
      n_mid++;
      g_assert_cmpint (s->total, ==, -1);
      g_assert_cmpfloat (s->fraction, ==, -1.0);
      g_assert_cmpint (s->eta, ==, -1);
      if (s->rate > 0)
        {
          n_rated++;
          g_assert_cmpfloat (s->rate, >=, RATE_LOW);
          g_assert_cmpfloat (s->rate, <=, RATE_HIGH);
        }
    }
  g_assert_cmpuint (n_mid, >, 0);
  g_assert_cmpuint (n_rated, >, 0);

  /* The client's idle connection goes first, then the server, which must be finalised. */
  bg_test_assert_finalized ((gpointer *) &f->downloader);
  g_clear_pointer (&server, bg_test_http_server_free);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, fn) \
  g_test_add (path, Fixture, NULL, fixture_setup, fn, fixture_teardown)

  ADD ("/progress/throttled-download", test_throttled_download);
  ADD ("/progress/resumed-rate", test_resumed_rate);
  ADD ("/progress/stalled-rate", test_stalled_rate);
  ADD ("/progress/next-attempt-at", test_next_attempt_at);
  ADD ("/progress/unknown-length", test_unknown_length);
  g_test_add_func ("/progress/forced-notify-flushes", test_forced_notify_flushes);
  g_test_add_func ("/progress/never-ran", test_never_ran);

#undef ADD

  return g_test_run ();
}
