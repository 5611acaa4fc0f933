/* test-faults.c: every fault the test server can inject, and what each must become
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "bg-downloader-private.h"
#include "bg-uploader-private.h"
#include "bg-store-private.h"
#include "test-utils.h"

#define MiB (1024 * 1024)

typedef struct
{
  BgTestServer *server;
  char         *tmp;
  char         *db;
  BgDownloader *downloader;
  BgUploader   *uploader;
  char         *sha;          /* of /files/f.bin */
  gsize         size;
} Fixture;

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = NULL;

  f->server = bg_test_server_new (NULL, FALSE);
  f->tmp = bg_test_make_tmpdir ();
  f->db = g_build_filename (f->tmp, "tasks.sqlite", NULL);
  f->downloader = g_initable_new (BG_TYPE_DOWNLOADER, NULL, &error,
                                  "session-id", "faults", "database-path", f->db,
                                  "max-attempts", 1, "stall-timeout", 2, NULL);
  g_assert_no_error (error);
  f->uploader = g_initable_new (BG_TYPE_UPLOADER, NULL, &error,
                                "session-id", "faults", "database-path", f->db,
                                "max-attempts", 1, "stall-timeout", 2, NULL);
  g_assert_no_error (error);

  f->size = 3 * MiB + 17;
  path = g_build_filename (bg_test_server_get_root (f->server), "f.bin", NULL);
  f->sha = bg_test_write_random_file (path, f->size, 42);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  /* Nothing may keep the downloader and the uploader alive once the test lets go. */
  if (f->downloader != NULL)
    bg_test_assert_finalized ((gpointer *) &f->downloader);
  if (f->uploader != NULL)
    bg_test_assert_finalized ((gpointer *) &f->uploader);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_clear_pointer (&f->server, bg_test_server_free);
  bg_test_rm_rf (f->tmp);
  g_free (f->tmp);
  g_free (f->db);
  g_free (f->sha);
}

static BgResponse *
download_to (Fixture    *f,
             const char *path_and_query,
             const char *dest)
{
  return bg_test_download (f->downloader, f->server, path_and_query, dest, path_and_query, 90);
}

/* Downloads, and checks the invariant that holds whatever the outcome: a SUCCESS has the exact
 * file, anything else left no file and no partial file. */
static BgResponse *
download_checked (Fixture        *f,
                  const char     *path_and_query,
                  BgResponseKind  expected)
{
  g_autofree char *dest = g_build_filename (f->tmp, "out.bin", NULL);
  BgResponse *response;

  g_unlink (dest);
  response = download_to (f, path_and_query, dest);

  if (bg_response_get_kind (response) != expected)
    g_error ("%s: expected kind %d, got %d (%u, %s)", path_and_query, expected,
             bg_response_get_kind (response), bg_response_get_status (response),
             bg_response_get_error (response) ? bg_response_get_error (response)->message : "");

  if (expected == BG_RESPONSE_SUCCESS)
    {
      g_autofree char *got = bg_test_sha256_file (dest);

      g_assert_cmpstr (got, ==, f->sha);
    }
  else
    g_assert_false (g_file_test (dest, G_FILE_TEST_EXISTS));

  g_assert_cmpuint (bg_test_count_partials (f->tmp), ==, 0);

  return response;
}

static void
test_download_faults (Fixture       *f,
                      gconstpointer  data)
{
  static const struct {
    const char     *query;
    BgResponseKind  kind;
    guint           status;
  } cases[] = {
    { "/files/f.bin", BG_RESPONSE_SUCCESS, 200 },
    { "/files/f.bin?norange=1", BG_RESPONSE_SUCCESS, 200 },
    { "/files/f.bin?etag=rotate", BG_RESPONSE_SUCCESS, 200 },
    { "/files/f.bin?etag=W%2F%22weak%22", BG_RESPONSE_SUCCESS, 200 },
    { "/files/f.bin?noetag=1", BG_RESPONSE_SUCCESS, 200 },
    { "/files/f.bin?rate=2000000", BG_RESPONSE_SUCCESS, 200 },
    { "/files/f.bin?redirect=5", BG_RESPONSE_SUCCESS, 200 },
    { "/files/f.bin?drop=100000", BG_RESPONSE_RETRY, 200 },
    { "/files/f.bin?short=100000", BG_RESPONSE_RETRY, 200 },
    { "/files/f.bin?status=429&retry-after=3", BG_RESPONSE_RETRY, 429 },
    { "/files/f.bin?status=500", BG_RESPONSE_RETRY, 500 },
    { "/files/f.bin?status=503&retry-after=Fri%2C%2031%20Dec%202100%2023%3A59%3A59%20GMT",
      BG_RESPONSE_RETRY, 503 },
    { "/files/f.bin?status=404", BG_RESPONSE_REJECTED, 404 },
    { "/files/f.bin?status=410", BG_RESPONSE_REJECTED, 410 },
    { "/files/f.bin?status=304", BG_RESPONSE_REJECTED, 304 },
    { "/files/f.bin?redirect=loop", BG_RESPONSE_FAILED, 0 },
    { "/files/f.bin?location=ftp%3A%2F%2F127.0.0.1%2Fx", BG_RESPONSE_FAILED, 0 },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(BgResponse) response = download_checked (f, cases[i].query, cases[i].kind);

      g_test_message ("%s → %u %s %d", cases[i].query, bg_response_get_status (response),
                      bg_response_get_error (response) ?
                      bg_response_get_error (response)->message : "",
                      bg_response_get_error (response) ? bg_response_get_error (response)->code : -1);
      if (cases[i].status != 0 && cases[i].kind != BG_RESPONSE_RETRY)
        g_assert_cmpuint (bg_response_get_status (response), ==, cases[i].status);
      if (cases[i].kind == BG_RESPONSE_RETRY && cases[i].status >= 400)
        g_assert_cmpuint (bg_response_get_status (response), ==, cases[i].status);
    }
}

/* A Content-Length that is not a length fails the download as a protocol error, and leaves
 * neither the file nor a partial file.  libsoup would read "-5" as an empty body (a finished,
 * empty file), and a value past 64 bits as a body that runs until the connection closes
 * (which the server keeps open). */
static void
test_content_length_lies (Fixture       *f,
                          gconstpointer  data)
{
  static const struct {
    const char     *length;
    BgResponseKind  kind;
  } cases[] = {
    { "3145745", BG_RESPONSE_SUCCESS },   /* the truth, sent verbatim: the knob itself works */
    { "-5", BG_RESPONSE_FAILED },
    { "99999999999999999999999", BG_RESPONSE_FAILED },
    { "9223372036854775807", BG_RESPONSE_FAILED },
    { "%2B3145745", BG_RESPONSE_FAILED },
    { "3145745abc", BG_RESPONSE_FAILED },
  };

  g_assert_cmpuint (f->size, ==, 3145745);

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *query = g_strdup_printf ("/files/f.bin?length=%s", cases[i].length);
      g_autoptr(BgResponse) response = NULL;
      const GError *error;

      /* libsoup warns as it makes the body stream of a negative length. */
      if (g_str_has_prefix (cases[i].length, "-"))
        g_test_expect_message ("GLib-GObject", G_LOG_LEVEL_WARNING, "*content-length*");
      response = download_checked (f, query, cases[i].kind);
      g_test_assert_expected_messages ();

      error = bg_response_get_error (response);
      g_test_message ("Content-Length: %s → %s", cases[i].length,
                      error != NULL ? error->message : "success");
      if (cases[i].kind == BG_RESPONSE_SUCCESS)
        continue;
      g_assert_nonnull (error);
      /* The one libsoup cannot frame at all is its own error; the others are ours. */
      if (g_str_has_suffix (cases[i].length, "abc"))
        continue;
      g_assert_error (error, BG_ERROR, BG_ERROR_PROTOCOL);
      g_assert_nonnull (strstr (error->message, "Content-Length"));
    }
}

/* Headers far past libsoup's limit are refused; they are not worth retrying. */
static void
test_enormous_headers (Fixture       *f,
                       gconstpointer  data)
{
  g_autoptr(BgResponse) response = NULL;
  const GError *error;

  response = download_checked (f, "/files/f.bin?bigheaders=200000", BG_RESPONSE_FAILED);
  error = bg_response_get_error (response);
  g_test_message ("%s %d: %s", g_quark_to_string (error->domain), error->code, error->message);

  /* libsoup's own error, passed on: partial input, final here (not a retry) because its
   * message says the headers were too big.  No answer was read, so there is no status. */
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_PARTIAL_INPUT);
  g_assert_cmpstr (error->message, ==, g_dgettext ("libsoup-3.0", "Header too big"));
  g_assert_cmpuint (bg_response_get_status (response), ==, 0);
}

static void
test_retry_after_forms (Fixture       *f,
                        gconstpointer  data)
{
  g_autoptr(BgResponse) seconds = NULL;
  g_autoptr(BgResponse) date = NULL;
  g_autoptr(GDateTime) now = g_date_time_new_now_utc ();
  g_autoptr(GDateTime) later = g_date_time_add_seconds (now, 3600);
  g_autofree char *http_date = soup_date_time_to_string (later, SOUP_DATE_HTTP);
  g_autofree char *escaped = g_uri_escape_string (http_date, NULL, FALSE);
  g_autofree char *query = g_strdup_printf ("/files/f.bin?status=503&retry-after=%s", escaped);
  gint64 wait;

  seconds = download_checked (f, "/files/f.bin?status=429&retry-after=120", BG_RESPONSE_RETRY);
  g_assert_cmpint (bg_response_get_retry_after (seconds), ==, 120);

  /* Measured against the server's Date header; allow for the clock ticking meanwhile. */
  date = download_checked (f, query, BG_RESPONSE_RETRY);
  wait = bg_response_get_retry_after (date);
  g_assert_cmpint (wait, >=, 3590);
  g_assert_cmpint (wait, <=, 3600);
}

static void
test_gzip_range (Fixture       *f,
                 gconstpointer  data)
{
  g_autofree char *dest = g_build_filename (f->tmp, "gz.bin", NULL);
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(GFile) file = g_file_new_for_path (dest);
  g_autoptr(GInputStream) raw = NULL;
  g_autoptr(GConverter) decompressor = NULL;
  g_autoptr(GInputStream) plain = NULL;
  g_autoptr(GChecksum) checksum = g_checksum_new (G_CHECKSUM_SHA256);
  g_autoptr(GError) error = NULL;
  guint8 buf[65536];
  gssize n;

  /* The bytes are stored as sent: the file is the gzip stream, which decompresses to the
   * original. Offsets then mean the same thing on every attempt. */
  response = download_to (f, "/files/f.bin?gzip=1", dest);
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);

  raw = G_INPUT_STREAM (g_file_read (file, NULL, &error));
  g_assert_no_error (error);
  decompressor = G_CONVERTER (g_zlib_decompressor_new (G_ZLIB_COMPRESSOR_FORMAT_GZIP));
  plain = g_converter_input_stream_new (raw, decompressor);
  while ((n = g_input_stream_read (plain, buf, sizeof buf, NULL, &error)) > 0)
    g_checksum_update (checksum, buf, n);
  g_assert_no_error (error);
  g_assert_cmpstr (g_checksum_get_string (checksum), ==, f->sha);
}

static void
test_stall_timeout (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(BgResponse) stalled = NULL;
  g_autoptr(BgResponse) slow = NULL;
  const GError *error;

  /* Headers and 100 kB, then silence with the socket open: RETRY after the timeout. */
  stalled = download_checked (f, "/files/f.bin?stall=100000", BG_RESPONSE_RETRY);
  error = bg_response_get_error (stalled);
  g_assert_error (error, BG_ERROR, BG_ERROR_TIMEOUT);
  g_assert_nonnull (strstr (error->message, "2 seconds"));

  /* Slow but moving, for longer than the timeout: not cut off. */
  slow = download_checked (f, "/files/f.bin?rate=1000000", BG_RESPONSE_SUCCESS);
  g_assert_cmpuint (bg_response_get_status (slow), ==, 200);
}

static BgResponse *
upload_to (Fixture    *f,
           const char *path_and_query,
           const char *source,
           const char *identifier)
{
  return bg_test_upload (f->uploader, f->server, "PUT", path_and_query, source, identifier, 90);
}

static void
test_upload_faults (Fixture       *f,
                    gconstpointer  data)
{
  g_autofree char *src = g_build_filename (f->tmp, "src.bin", NULL);
  g_autofree char *sha = bg_test_write_random_file (src, 6 * MiB, 43);
  static const struct {
    const char     *query;
    BgResponseKind  kind;
  } cases[] = {
    { "/upload/u.bin", BG_RESPONSE_SUCCESS },
    { "/upload/u.bin?redirect=2", BG_RESPONSE_SUCCESS },
    { "/upload/u.bin?status=413", BG_RESPONSE_REJECTED },
    { "/upload/u.bin?status=503&retry-after=5", BG_RESPONSE_RETRY },
    { "/upload/u.bin?status=500&early=1", BG_RESPONSE_RETRY },
    { "/upload/u.bin?drop=100000", BG_RESPONSE_RETRY },
    { "/upload/u.bin?stall=100000", BG_RESPONSE_RETRY },
    { "/upload/u.bin?location=%2Fupload%2Fv.bin", BG_RESPONSE_SUCCESS },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(BgResponse) response = upload_to (f, cases[i].query, src, cases[i].query);

      if (bg_response_get_kind (response) != cases[i].kind)
        g_error ("%s: expected kind %d, got %d (%u, %s)", cases[i].query, cases[i].kind,
                 bg_response_get_kind (response), bg_response_get_status (response),
                 bg_response_get_error (response) ?
                 bg_response_get_error (response)->message : "");
    }

  /* Whatever the faults did, every complete upload the server recorded is the whole file. */
  {
    g_autoptr(JsonNode) stats = bg_test_server_stats (f->server);
    JsonArray *uploads = json_object_get_array_member (json_node_get_object (stats), "uploads");
    guint complete = 0;

    for (guint i = 0; i < json_array_get_length (uploads); i++)
      {
        JsonObject *record = json_array_get_object_element (uploads, i);

        if (json_object_get_boolean_member (record, "complete"))
          {
            g_assert_cmpstr (json_object_get_string_member (record, "sha256"), ==, sha);
            complete++;
          }
      }
    g_assert_cmpuint (complete, ==, 3);
  }
}

/* A download into a small tmpfs that fills up: FAILED with a disk-full error, no partial file
 * left behind (a final failure removes it), and the database still consistent.  @data is the
 * tmpfs's size: 1 MiB fills up in the middle of the body; 3 MiB takes every byte but the last
 * 17, which are written together with the file's fsync as it is published. */
static void
test_disk_full (Fixture       *f,
                gconstpointer  data)
{
  const char *size = data;
  g_autofree char *options = g_strdup_printf ("size=%s", size);
  g_autofree char *mnt = g_build_filename (f->tmp, "small", NULL);
  g_autofree char *dest = g_build_filename (mnt, "big.bin", NULL);
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(GError) error = NULL;

  if (getuid () != 0)
    {
      g_test_skip ("Mounting a small tmpfs needs root");
      return;
    }

  g_assert_cmpint (g_mkdir (mnt, 0700), ==, 0);
  if (mount ("tmpfs", mnt, "tmpfs", 0, options) != 0)
    {
      g_autofree char *reason = g_strdup_printf ("Cannot mount a tmpfs here: %s",
                                                 g_strerror (errno));
      g_test_skip (reason);
      return;
    }

  response = download_to (f, "/files/f.bin", dest);
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_FAILED);
  g_assert_error (bg_response_get_error (response), G_IO_ERROR, G_IO_ERROR_NO_SPACE);
  g_assert_false (g_file_test (dest, G_FILE_TEST_EXISTS));
  g_assert_cmpuint (bg_test_count_partials (mnt), ==, 0);

  /* The result was collected: the database holds nothing for it, and takes new work. */
  {
    g_autoptr(BgStore) store = bg_store_open (f->db, &error);
    g_autoptr(GPtrArray) all = NULL;

    g_assert_no_error (error);
    all = bg_store_load_all (store, BG_TASK_KIND_DOWNLOAD, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (all->len, ==, 0);
  }
  g_clear_object (&response);

  /* The partial file's descriptor closes once the attempt's last reference goes, which can
   * wait for a write still failing on a worker thread. */
  {
    gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
    int ret;

    while ((ret = umount (mnt)) != 0 && errno == EBUSY && g_get_monotonic_time () < deadline)
      {
        while (g_main_context_iteration (NULL, FALSE))
          ;
        g_usleep (10000);
      }
    g_assert_cmpint (ret, ==, 0);
  }
  response = download_checked (f, "/files/f.bin", BG_RESPONSE_SUCCESS);
}

static void
test_hostile_arguments (Fixture       *f,
                        gconstpointer  data)
{
  static const char *bad_sessions[] = { "../x", "a/b", "", ".", "..", "a b", "x\"y", "é" };
  g_autofree char *long_session = g_strnfill (201, 's');
  g_autoptr(GError) error = NULL;
  g_autofree char *corrupt = g_build_filename (f->tmp, "corrupt.sqlite", NULL);
  g_autofree char *before = NULL;
  g_autofree char *after = NULL;
  g_autoptr(BgDownloader) broken = NULL;
  static const char garbage[] = "this is not a database, and it must stay exactly like this";

  for (guint i = 0; i < G_N_ELEMENTS (bad_sessions); i++)
    {
      g_autoptr(BgDownloader) d = bg_downloader_new (bad_sessions[i], NULL, &error);

      g_assert_null (d);
      g_assert_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT);
      g_clear_error (&error);
    }
  {
    g_autoptr(BgUploader) u = bg_uploader_new (long_session, NULL, &error);

    g_assert_null (u);
    g_assert_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT);
    g_clear_error (&error);
  }

  /* A corrupt database is refused and left untouched. */
  g_file_set_contents (corrupt, garbage, sizeof garbage, &error);
  g_assert_no_error (error);
  before = bg_test_sha256_file (corrupt);
  broken = g_initable_new (BG_TYPE_DOWNLOADER, NULL, &error,
                           "session-id", "corrupt", "database-path", corrupt, NULL);
  g_assert_null (broken);
  g_assert_error (error, BG_ERROR, BG_ERROR_STORE);
  g_assert_nonnull (strstr (error->message, corrupt));
  after = bg_test_sha256_file (corrupt);
  g_assert_cmpstr (before, ==, after);
  g_clear_error (&error);

  /* Identifiers full of quotes, slashes and multibyte text work as identifiers. */
  {
    static const char *odd[] = {
      "'; DROP TABLE tasks; --", "../../etc/passwd", "%s%n%x", "a\\b\"c", "日本語 ✓ 🚀",
    };

    for (guint i = 0; i < G_N_ELEMENTS (odd); i++)
      {
        g_autofree char *dest = g_strdup_printf ("%s/odd-%u.bin", f->tmp, i);
        g_autofree char *url = bg_test_server_url (f->server, "/files/f.bin");
        g_autoptr(SoupMessage) msg = soup_message_new ("GET", url);
        g_autoptr(GFile) file = g_file_new_for_path (dest);
        g_autoptr(GAsyncResult) result = NULL;
        g_autoptr(BgResponse) response = NULL;

        bg_downloader_download_async (f->downloader, msg, file, odd[i], NULL, NULL,
                                      bg_test_store_result_cb, &result);
        bg_test_wait_for_result (&result, 60);
        response = bg_downloader_download_finish (f->downloader, result, &error);
        g_assert_no_error (error);
        g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_SUCCESS);
        g_assert_cmpstr (bg_response_get_identifier (response), ==, odd[i]);
      }
    /* Nothing was written outside the destination folder. */
    g_assert_cmpuint (bg_test_count_partials (f->tmp), ==, 0);
  }
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, func) \
  g_test_add ("/faults/" path, Fixture, NULL, fixture_setup, func, fixture_teardown)
#define ADD_WITH(path, data, func) \
  g_test_add ("/faults/" path, Fixture, data, fixture_setup, func, fixture_teardown)

  ADD ("download", test_download_faults);
  ADD ("retry-after-forms", test_retry_after_forms);
  ADD ("enormous-headers", test_enormous_headers);
  ADD ("content-length-lies", test_content_length_lies);
  ADD ("gzip-range", test_gzip_range);
  ADD ("stall-timeout", test_stall_timeout);
  ADD ("upload", test_upload_faults);
  ADD_WITH ("disk-full/in-the-body", "1m", test_disk_full);
  ADD_WITH ("disk-full/last-bytes", "3m", test_disk_full);
  ADD ("hostile-arguments", test_hostile_arguments);

#undef ADD
#undef ADD_WITH

  return g_test_run ();
}
