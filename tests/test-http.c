/* test-http.c: the HTTP helpers: Retry-After, Content-Range, stored headers, error kinds
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include "bg-bus-private.h"
#include "bg-http-private.h"
#include "bg-response-private.h"
#include "bg-task-private.h"
#include "test-utils.h"

#define NOW "Sun, 06 Nov 1994 08:49:37 GMT"

static void
test_retry_after (void)
{
  static const struct {
    const char *value;
    const char *date;
    gint64      expected;
  } cases[] = {
    /* delay-seconds */
    { "0", NULL, 0 },
    { "7", NULL, 7 },
    { "120", NULL, 120 },
    { "  120  ", NULL, 120 },
    { "007", NULL, 7 },
    { "604800", NULL, 604800 },
    { "604801", NULL, BG_HTTP_RETRY_AFTER_MAX },
    { "99999999999999999999999999999", NULL, BG_HTTP_RETRY_AFTER_MAX },
    /* the three HTTP-date forms, against the Date header */
    { "Sun, 06 Nov 1994 08:49:37 GMT", NOW, 0 },
    { "Sun, 06 Nov 1994 08:50:37 GMT", NOW, 60 },
    { "Sunday, 06-Nov-94 08:51:37 GMT", NOW, 120 },
    { "Sun Nov  6 08:52:37 1994", NOW, 180 },
    { "Mon, 07 Nov 1994 08:49:37 GMT", NOW, 86400 },
    /* a date in the past means "now" */
    { "Sat, 05 Nov 1994 08:49:37 GMT", NOW, 0 },
    /* a date far in the future is clamped */
    { "Fri, 31 Dec 9999 23:59:59 GMT", NOW, BG_HTTP_RETRY_AFTER_MAX },
    /* garbage */
    { "", NULL, -1 },
    { "   ", NULL, -1 },
    { "-5", NULL, -1 },
    { "+5", NULL, -1 },
    { "5.5", NULL, -1 },
    { "5s", NULL, -1 },
    { "0x10", NULL, -1 },
    { "1e3", NULL, -1 },
    { "120, 130", NULL, -1 },
    { "soon", NULL, -1 },
    { "Sun, 99 Nov 1994 08:49:37 GMT", NOW, -1 },
    { "\xff\xfe", NULL, -1 },
    { "%s%s%n", NULL, -1 },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      gint64 got = bg_http_parse_retry_after (cases[i].value, cases[i].date, NULL);

      if (got != cases[i].expected)
        g_error ("Retry-After “%s”: expected %" G_GINT64_FORMAT ", got %" G_GINT64_FORMAT,
                 cases[i].value, cases[i].expected, got);
    }

  g_assert_cmpint (bg_http_parse_retry_after (NULL, NULL, NULL), ==, -1);
}

static void
test_retry_after_clock (void)
{
  g_autoptr(GDateTime) now = g_date_time_new_utc (2026, 11, 25, 12, 0, 0);
  g_autoptr(GDateTime) later = g_date_time_add_seconds (now, 300);
  g_autofree char *value = soup_date_time_to_string (later, SOUP_DATE_HTTP);

  /* Without a Date header, an HTTP-date is measured against the clock. */
  g_assert_cmpint (bg_http_parse_retry_after (value, NULL, now), ==, 300);
  /* A Date header that does not parse is ignored. */
  g_assert_cmpint (bg_http_parse_retry_after (value, "yesterday", now), ==, 300);
}

/* Answers 503 with a Retry-After that is the answer's own Date header, less the number of
 * seconds the path names ("/0", "/1"). */
static void
retry_after_date_handler (SoupServer        *server,
                          SoupServerMessage *msg,
                          const char        *path,
                          GHashTable        *query,
                          gpointer           user_data)
{
  SoupMessageHeaders *headers = soup_server_message_get_response_headers (msg);
  const char *date = soup_message_headers_get_one (headers, "Date");
  g_autoptr(GDateTime) when = NULL;
  g_autoptr(GDateTime) retry = NULL;
  g_autofree char *value = NULL;

  /* SoupServer stamps every answer with a Date before the handler runs. */
  g_assert_nonnull (date);
  when = soup_date_time_new_from_http_string (date);
  g_assert_nonnull (when);
  retry = g_date_time_add_seconds (when, -g_ascii_strtoll (path + 1, NULL, 10));
  value = soup_date_time_to_string (retry, SOUP_DATE_HTTP);

  soup_message_headers_replace (headers, "Retry-After", value);
  soup_server_message_set_status (msg, SOUP_STATUS_SERVICE_UNAVAILABLE, NULL);
  soup_server_message_set_response (msg, "text/plain", SOUP_MEMORY_STATIC, "busy", 4);
}

/* A server that says "retry at the time of this answer" (or a second before it) means now: the
 * wait is 0, never negative, whatever the local clock says. */
static void
test_retry_after_now (void)
{
  g_autoptr(BgTestHttpServer) server = bg_test_http_server_new (BG_TEST_HTTP_SERVER_IN_THREAD);
  g_autoptr(SoupSession) session = soup_session_new ();
  const char *paths[] = { "/0", "/1" };

  bg_test_http_server_add_handler (server, NULL, retry_after_date_handler, NULL);

  for (guint i = 0; i < G_N_ELEMENTS (paths); i++)
    {
      g_autofree char *url = bg_test_http_server_url (server, paths[i]);
      g_autoptr(SoupMessage) msg = soup_message_new ("GET", url);
      g_autoptr(GBytes) body = NULL;
      g_autoptr(GError) error = NULL;
      g_autoptr(BgResponse) response = NULL;
      SoupMessageHeaders *headers;
      const char *retry_after;
      const char *date;

      /* A blocking call: the server answers from its own thread. */
      body = soup_session_send_and_read (session, msg, NULL, &error);
      g_assert_no_error (error);
      g_assert_cmpuint (soup_message_get_status (msg), ==, SOUP_STATUS_SERVICE_UNAVAILABLE);

      headers = soup_message_get_response_headers (msg);
      retry_after = soup_message_headers_get_one (headers, "Retry-After");
      date = soup_message_headers_get_one (headers, "Date");
      g_test_message ("Date: %s, Retry-After: %s", date, retry_after);
      g_assert_nonnull (retry_after);
      g_assert_nonnull (date);
      g_assert_true (g_ascii_isalpha (retry_after[0]));
      if (i == 0)
        g_assert_cmpstr (retry_after, ==, date);
      else
        g_assert_cmpstr (retry_after, !=, date);

      g_assert_cmpint (bg_http_parse_retry_after (retry_after, date, NULL), ==, 0);

      /* The response the library makes of such an answer says the same. */
      response = bg_response_new (BG_RESPONSE_RETRY, "retry-after-now",
                                  soup_message_get_status (msg),
                                  soup_message_get_reason_phrase (msg), headers,
                                  NULL, body, NULL);
      g_assert_cmpint (bg_response_get_retry_after (response), ==, 0);
    }

  soup_session_abort (session);
}

/* Only a length libsoup would misread is refused: the framings it rejects itself, or that do
 * not use the Content-Length, are not this check's business. */
static void
test_content_length (void)
{
  static const struct {
    const char *transfer_encoding;
    const char *value;
    gboolean    valid;
  } cases[] = {
    { NULL, NULL, TRUE },
    { NULL, "0", TRUE },
    { NULL, "3145745", TRUE },
    { NULL, "9223372036854775806", TRUE },
    { NULL, "9223372036854775807", FALSE },
    { NULL, "99999999999999999999999", FALSE },
    { NULL, "-5", FALSE },
    { NULL, "+5", FALSE },
    { NULL, " 5", TRUE },
    { NULL, "abc", TRUE },              /* libsoup: SOUP_ENCODING_UNRECOGNIZED */
    { "chunked", "-5", TRUE },          /* Transfer-Encoding frames the body */
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      SoupMessageHeaders *headers = soup_message_headers_new (SOUP_MESSAGE_HEADERS_RESPONSE);

      if (cases[i].transfer_encoding != NULL)
        soup_message_headers_replace (headers, "Transfer-Encoding", cases[i].transfer_encoding);
      if (cases[i].value != NULL)
        soup_message_headers_replace (headers, "Content-Length", cases[i].value);
      if (bg_http_content_length_is_valid (headers) != cases[i].valid)
        g_error ("Content-Length “%s”: expected %s", cases[i].value ? cases[i].value : "(none)",
                 cases[i].valid ? "valid" : "invalid");
      soup_message_headers_unref (headers);
    }
}

static void
test_content_range (void)
{
  static const struct {
    const char *value;
    gboolean    ok;
    gint64      start, end, total;
  } cases[] = {
    { "bytes 0-99/100", TRUE, 0, 99, 100 },
    { "bytes 100-199/*", TRUE, 100, 199, -1 },
    { "bytes */100", TRUE, -1, -1, 100 },
    { "BYTES 5-5/6", TRUE, 5, 5, 6 },
    { "bytes  0-0/1", TRUE, 0, 0, 1 },
    { "bytes 0-99/100 ", TRUE, 0, 99, 100 },
    { "bytes 99-0/100", FALSE, 0, 0, 0 },
    { "bytes 0-100/100", FALSE, 0, 0, 0 },
    { "bytes */*", FALSE, 0, 0, 0 },
    { "bytes 0-99", FALSE, 0, 0, 0 },
    { "bytes -1-99/100", FALSE, 0, 0, 0 },
    { "items 0-99/100", FALSE, 0, 0, 0 },
    { "bytes0-99/100", FALSE, 0, 0, 0 },
    { "bytes 0-99/100x", FALSE, 0, 0, 0 },
    { "bytes 0-99999999999999999999999/100", FALSE, 0, 0, 0 },
    { "bytes 9223372036854775807-9223372036854775807/*", FALSE, 0, 0, 0 },
    { "", FALSE, 0, 0, 0 },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      gint64 start, end, total;
      gboolean ok = bg_http_parse_content_range (cases[i].value, &start, &end, &total);

      if (ok != cases[i].ok)
        g_error ("Content-Range “%s”: expected %s", cases[i].value,
                 cases[i].ok ? "success" : "failure");
      if (ok)
        {
          g_assert_cmpint (start, ==, cases[i].start);
          g_assert_cmpint (end, ==, cases[i].end);
          g_assert_cmpint (total, ==, cases[i].total);
        }
    }
}

static void
test_headers_round_trip (void)
{
  g_autoptr(SoupMessageHeaders) in = soup_message_headers_new (SOUP_MESSAGE_HEADERS_REQUEST);
  g_autoptr(SoupMessageHeaders) out = soup_message_headers_new (SOUP_MESSAGE_HEADERS_REQUEST);
  g_autoptr(GError) error = NULL;
  g_autofree char *encoded = NULL;

  soup_message_headers_append (in, "Authorization", "Bearer a:b;c'\"%s");
  soup_message_headers_append (in, "X-Unicode", "héllo → 世界");
  soup_message_headers_append (in, "X-Empty", "");
  soup_message_headers_append (in, "X-Multi", "1");
  soup_message_headers_append (in, "X-Multi", "2");

  encoded = bg_http_encode_headers (in);
  g_assert_true (bg_http_decode_headers (encoded, out, &error));
  g_assert_no_error (error);

  g_assert_cmpstr (soup_message_headers_get_one (out, "Authorization"), ==,
                   "Bearer a:b;c'\"%s");
  g_assert_cmpstr (soup_message_headers_get_one (out, "X-Unicode"), ==, "héllo → 世界");
  g_assert_cmpstr (soup_message_headers_get_one (out, "X-Empty"), ==, "");
  g_assert_cmpstr (soup_message_headers_get_list (out, "X-Multi"), ==, "1, 2");
}

static void
test_headers_hostile (void)
{
  static const char *bad[] = {
    "NoColon\n",
    ": value\n",
    "Bad Name: x\n",
    "X: a\rb\n",
    "\xff: x\n",
  };

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(SoupMessageHeaders) out = soup_message_headers_new (SOUP_MESSAGE_HEADERS_REQUEST);
      g_autoptr(GError) error = NULL;

      g_assert_false (bg_http_decode_headers (bad[i], out, &error));
      g_assert_error (error, BG_ERROR, BG_ERROR_STORE);
    }
}

static void
test_validators (void)
{
  g_assert_true (bg_http_is_strong_etag ("\"abc\""));
  g_assert_false (bg_http_is_strong_etag ("W/\"abc\""));
  g_assert_false (bg_http_is_strong_etag ("abc"));
  g_assert_false (bg_http_is_strong_etag ("\""));
  g_assert_false (bg_http_is_strong_etag (NULL));

  g_assert_true (bg_http_is_strong_last_modified ("Sun, 06 Nov 1994 08:48:37 GMT", NOW));
  g_assert_false (bg_http_is_strong_last_modified ("Sun, 06 Nov 1994 08:49:00 GMT", NOW));
  g_assert_false (bg_http_is_strong_last_modified ("Sun, 06 Nov 1994 08:48:37 GMT", NULL));
  g_assert_false (bg_http_is_strong_last_modified ("garbage", NOW));
}

static void
test_error_kinds (void)
{
  static const struct {
    GQuark         (*domain) (void);
    int            code;
    BgResponseKind kind;
  } cases[] = {
    { g_io_error_quark, G_IO_ERROR_CONNECTION_REFUSED, BG_RESPONSE_RETRY },
    { g_io_error_quark, G_IO_ERROR_CONNECTION_CLOSED, BG_RESPONSE_RETRY },
    { g_io_error_quark, G_IO_ERROR_TIMED_OUT, BG_RESPONSE_RETRY },
    { g_io_error_quark, G_IO_ERROR_HOST_NOT_FOUND, BG_RESPONSE_RETRY },
    { g_io_error_quark, G_IO_ERROR_NETWORK_UNREACHABLE, BG_RESPONSE_RETRY },
    { g_io_error_quark, G_IO_ERROR_PARTIAL_INPUT, BG_RESPONSE_RETRY },
    { g_resolver_error_quark, G_RESOLVER_ERROR_NOT_FOUND, BG_RESPONSE_RETRY },
    { bg_error_quark, BG_ERROR_TIMEOUT, BG_RESPONSE_RETRY },
    { g_io_error_quark, G_IO_ERROR_NO_SPACE, BG_RESPONSE_FAILED },
    { g_io_error_quark, G_IO_ERROR_PERMISSION_DENIED, BG_RESPONSE_FAILED },
    { g_tls_error_quark, G_TLS_ERROR_BAD_CERTIFICATE, BG_RESPONSE_FAILED },
    { bg_error_quark, BG_ERROR_PROTOCOL, BG_RESPONSE_FAILED },
    { bg_error_quark, BG_ERROR_INTEGRITY, BG_RESPONSE_FAILED },
    { soup_session_error_quark, SOUP_SESSION_ERROR_PARSING, BG_RESPONSE_FAILED },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GError) error = g_error_new_literal (cases[i].domain (), cases[i].code, "x");

      g_assert_cmpint (bg_http_classify_error (error), ==, cases[i].kind);
    }
}

/* libsoup 3.2's words for an HTTP/2 stream reset or left unanswered by a GOAWAY. */
static void
test_http2_stream_errors (void)
{
  static const struct {
    const char     *message;
    BgResponseKind  kind;
  } cases[] = {
    { "HTTP/2 Error: NO_ERROR", BG_RESPONSE_RETRY },
    { "HTTP/2 Error: REFUSED_STREAM", BG_RESPONSE_RETRY },
    { "HTTP/2 Error: CANCEL", BG_RESPONSE_RETRY },
    { "HTTP/2 Error: INTERNAL_ERROR", BG_RESPONSE_RETRY },
    { "HTTP/2 Error: ENHANCE_YOUR_CALM", BG_RESPONSE_RETRY },
    { "HTTP/2 Error: PROTOCOL_ERROR", BG_RESPONSE_FAILED },
    { "HTTP/2 Error: FLOW_CONTROL_ERROR", BG_RESPONSE_FAILED },
    { "HTTP/2 Error: COMPRESSION_ERROR", BG_RESPONSE_FAILED },
    { "HTTP/2 Error: INADEQUATE_SECURITY", BG_RESPONSE_FAILED },
    { "HTTP/2 Error: NO_ERROR and more", BG_RESPONSE_FAILED },
    { "Something else: NO_ERROR", BG_RESPONSE_FAILED },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GError) error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_FAILED,
                                                     cases[i].message);

      g_assert_cmpint (bg_http_classify_error (error), ==, cases[i].kind);
    }
}

static void
test_uri_schemes (void)
{
  static const struct {
    const char *uri;
    gboolean    ok;
  } cases[] = {
    { "http://127.0.0.1/x", TRUE },
    { "https://example.org/", TRUE },
    { "HTTPS://example.org/", TRUE },
    { "file:///etc/passwd", FALSE },
    { "ftp://example.org/x", FALSE },
    { "data:text/plain,hi", FALSE },
    { "http:///nohost", FALSE },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GUri) uri = g_uri_parse (cases[i].uri, G_URI_FLAGS_NONE, NULL);
      g_autoptr(GError) error = NULL;

      if (uri == NULL)
        {
          g_assert_false (cases[i].ok);
          continue;
        }
      g_assert_cmpint (bg_http_uri_is_acceptable (uri, &error), ==, cases[i].ok);
      if (!cases[i].ok)
        g_assert_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT);
    }
}

/* A URL's password is never shown or stored, whatever the way its userinfo was parsed. */
static void
test_uri_hide_password (void)
{
  static const struct {
    const char *uri;
    const char *shown;
  } cases[] = {
    { "http://127.0.0.1/x?a=b", "http://127.0.0.1/x?a=b" },
    { "https://user@example.org/", "https://user@example.org/" },
    { "https://user:s3cret@example.org:8443/p%20q?x=1#f",
      "https://user@example.org:8443/p%20q?x=1#f" },
    { "https://user:@example.org/", "https://user@example.org/" },
    { "https://:s3cret@example.org/", "https://example.org/" },
    /* The whole userinfo as a user name (parsed without G_URI_FLAGS_HAS_PASSWORD). */
    { "https://user%3As3cret@example.org/", "https://user@example.org/" },
    { "https://us%40er:p%3Ass@example.org/", "https://us%40er@example.org/" },
    { "not a uri", "not a uri" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      gboolean hidden = FALSE;
      g_autofree char *shown = bg_http_uri_hide_password (cases[i].uri, &hidden);

      g_assert_cmpstr (shown, ==, cases[i].shown);
      g_assert_cmpint (hidden, ==, g_strcmp0 (cases[i].uri, cases[i].shown) != 0);
    }

  g_assert_null (bg_http_uri_hide_password (NULL, NULL));
  g_assert_true (bg_http_is_credential_header ("AUTHORIZATION"));
  g_assert_true (bg_http_is_credential_header ("cookie"));
  g_assert_true (bg_http_is_credential_header ("Proxy-Authorization"));
  g_assert_false (bg_http_is_credential_header ("Set-Cookie"));
  g_assert_false (bg_http_is_credential_header ("Authorization2"));
}

/* A task's next attempt reaches a client of the transfer service to the microsecond: cut to the
 * second, a retry a second away could look due already. */
static void
test_bus_task_times (void)
{
  g_autoptr(GFile) file = g_file_new_for_path ("/tmp/x");
  g_autoptr(BgTask) task = bg_task_new (BG_TASK_KIND_DOWNLOAD, "t", "http://127.0.0.1/x", file);
  g_autoptr(BgTask) copy = NULL;
  g_autoptr(GVariant) snapshot = NULL;
  g_autoptr(GDateTime) at = NULL;
  GVariantDict dict;
  gint64 when = (gint64) 1800000000 * G_USEC_PER_SEC + 987654;

  bg_task_set_next_attempt_at (task, when);
  snapshot = g_variant_ref_sink (bg_bus_task_to_variant (task, FALSE));
  g_variant_dict_init (&dict, snapshot);
  copy = bg_bus_task_new_from_dict (BG_TASK_KIND_DOWNLOAD, "t", &dict);
  g_variant_dict_clear (&dict);
  at = bg_task_dup_next_attempt_at (copy);
  g_assert_nonnull (at);
  g_assert_cmpint (g_date_time_to_unix (at), ==, 1800000000);
  g_assert_cmpint (g_date_time_get_microsecond (at), ==, 987654);
}

/* The default session is made as a process starts, when the proxy resolver's GIO module may
 * start dconf's thread, which connects to the session bus and registers GIO's socket types as
 * the session's class is made.  Many fresh processes make one each, with a private session bus
 * (GSettings through dconf, when it is installed, whatever the suite's environment says): none
 * may hang.  In GLib 2.74 about one start
 * in thirty deadlocked in the type system before the session's class came first. */
#define SESSION_STARTS 120

static const char *test_program;

static gboolean
flag_set_cb (gpointer data)
{
  *(gboolean *) data = TRUE;

  return G_SOURCE_REMOVE;
}

static void
child_exited_cb (GObject      *object,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  g_subprocess_wait_finish (G_SUBPROCESS (object), result, NULL);
  *(gboolean *) user_data = TRUE;
}

static void
test_default_session_starts (void)
{
  g_autoptr(GTestDBus) bus = g_test_dbus_new (G_TEST_DBUS_NONE);
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  guint hung = 0;

  /* The launcher takes the environment as it is once the bus is up. */
  g_test_dbus_up (bus);
  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  g_assert_nonnull (g_subprocess_launcher_getenv (launcher, "DBUS_SESSION_BUS_ADDRESS"));
  /* GSettings as on a desktop: the suite's memory backend starts no thread. */
  g_subprocess_launcher_unsetenv (launcher, "GSETTINGS_BACKEND");

  for (guint i = 0; i < SESSION_STARTS; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GSubprocess) child = NULL;
      gboolean exited = FALSE, late = FALSE;
      guint timeout;

      child = g_subprocess_launcher_spawn (launcher, &error, test_program, "--make-session",
                                           NULL);
      g_assert_no_error (error);
      g_subprocess_wait_async (child, NULL, child_exited_cb, &exited);
      /* A start takes a few milliseconds; a deadlock never ends. */
      timeout = g_timeout_add_seconds (5, flag_set_cb, &late);
      while (!exited && !late)
        g_main_context_iteration (NULL, TRUE);

      if (!exited)
        {
          hung++;
          g_subprocess_force_exit (child);
          while (!exited)
            g_main_context_iteration (NULL, TRUE);
          continue;
        }
      g_source_remove (timeout);
      g_assert_true (g_subprocess_get_if_exited (child));
      g_assert_cmpint (g_subprocess_get_exit_status (child), ==, 0);
    }

  g_test_dbus_down (bus);
  g_assert_cmpuint (hung, ==, 0);
}

int
main (int   argc,
      char *argv[])
{
  /* The child of /http/default-session/starts. */
  if (argc == 2 && g_str_equal (argv[1], "--make-session"))
    {
      g_autoptr(SoupSession) session = bg_http_default_session_new ();

      return session != NULL ? 0 : 1;
    }

  test_program = argv[0];
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/http/retry-after", test_retry_after);
  g_test_add_func ("/http/retry-after-clock", test_retry_after_clock);
  g_test_add_func ("/http/retry-after-now", test_retry_after_now);
  g_test_add_func ("/http/content-range", test_content_range);
  g_test_add_func ("/http/content-length", test_content_length);
  g_test_add_func ("/http/headers/round-trip", test_headers_round_trip);
  g_test_add_func ("/http/headers/hostile", test_headers_hostile);
  g_test_add_func ("/http/validators", test_validators);
  g_test_add_func ("/http/error-kinds", test_error_kinds);
  g_test_add_func ("/http/error-kinds/http2-stream-reset-or-goaway", test_http2_stream_errors);
  g_test_add_func ("/http/uri-schemes", test_uri_schemes);
  g_test_add_func ("/http/uri-hide-password", test_uri_hide_password);
  g_test_add_func ("/bus/task-times-keep-microseconds", test_bus_task_times);
  g_test_add_func ("/http/default-session/starts", test_default_session_starts);

  return g_test_run ();
}
