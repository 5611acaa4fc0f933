/* test-response.c: BgResponse and the classification table
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include "bg-response-private.h"
#include "test-utils.h"

/* The table from the design, written out independently of the code under test. */
static BgResponseKind
expected_kind (guint status)
{
  static const guint success[] = { 200, 201, 202, 204, 206 };
  static const guint retry[] = { 408, 429, 500, 502, 503, 504 };

  for (guint i = 0; i < G_N_ELEMENTS (success); i++)
    if (success[i] == status)
      return BG_RESPONSE_SUCCESS;
  for (guint i = 0; i < G_N_ELEMENTS (retry); i++)
    if (retry[i] == status)
      return BG_RESPONSE_RETRY;

  return BG_RESPONSE_REJECTED;
}

static void
test_status_table (void)
{
  guint counts[4] = { 0, };

  for (guint status = 100; status <= 599; status++)
    {
      BgResponseKind kind = bg_response_kind_for_status (status);

      g_assert_cmpint (kind, ==, expected_kind (status));
      counts[kind]++;
    }

  g_assert_cmpuint (counts[BG_RESPONSE_SUCCESS], ==, 5);
  g_assert_cmpuint (counts[BG_RESPONSE_RETRY], ==, 6);
  g_assert_cmpuint (counts[BG_RESPONSE_REJECTED], ==, 500 - 11);
  g_assert_cmpuint (counts[BG_RESPONSE_FAILED], ==, 0);

  /* Specific members the design names. */
  g_assert_cmpint (bg_response_kind_for_status (301), ==, BG_RESPONSE_REJECTED);
  g_assert_cmpint (bg_response_kind_for_status (304), ==, BG_RESPONSE_REJECTED);
  g_assert_cmpint (bg_response_kind_for_status (404), ==, BG_RESPONSE_REJECTED);
  g_assert_cmpint (bg_response_kind_for_status (413), ==, BG_RESPONSE_REJECTED);
  g_assert_cmpint (bg_response_kind_for_status (501), ==, BG_RESPONSE_REJECTED);
  g_assert_cmpint (bg_response_kind_for_status (203), ==, BG_RESPONSE_REJECTED);

  /* Not HTTP at all. */
  g_assert_cmpint (bg_response_kind_for_status (0), ==, BG_RESPONSE_FAILED);
  g_assert_cmpint (bg_response_kind_for_status (99), ==, BG_RESPONSE_FAILED);
  g_assert_cmpint (bg_response_kind_for_status (600), ==, BG_RESPONSE_FAILED);
  g_assert_cmpint (bg_response_kind_for_status (G_MAXUINT), ==, BG_RESPONSE_FAILED);
}

static void
test_response_fields (void)
{
  g_autoptr(SoupMessageHeaders) headers = soup_message_headers_new (SOUP_MESSAGE_HEADERS_RESPONSE);
  g_autoptr(GFile) file = g_file_new_for_path ("/tmp/x");
  g_autoptr(GBytes) body = g_bytes_new_static ("hello", 5);
  g_autoptr(GError) error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "slow");
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(BgResponse) bare = NULL;

  soup_message_headers_append (headers, "Retry-After", "120");
  soup_message_headers_append (headers, "X-Thing", "1");

  response = bg_response_new (BG_RESPONSE_RETRY, "id-1", 503, "Service Unavailable",
                              headers, file, body, error);
  g_assert_cmpint (bg_response_get_kind (response), ==, BG_RESPONSE_RETRY);
  g_assert_cmpuint (bg_response_get_status (response), ==, 503);
  g_assert_cmpstr (bg_response_get_reason (response), ==, "Service Unavailable");
  g_assert_cmpstr (bg_response_get_identifier (response), ==, "id-1");
  g_assert_cmpint (bg_response_get_retry_after (response), ==, 120);
  g_assert_true (bg_response_get_file (response) == file);
  g_assert_true (g_bytes_equal (bg_response_get_body (response), body));
  g_assert_error (bg_response_get_error (response), G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_assert_cmpstr (soup_message_headers_get_one (bg_response_get_headers (response), "X-Thing"),
                   ==, "1");

  bare = bg_response_new (BG_RESPONSE_SUCCESS, "id-2", 200, NULL, NULL, NULL, NULL, NULL);
  g_assert_null (bg_response_get_headers (bare));
  g_assert_null (bg_response_get_error (bare));
  g_assert_null (bg_response_get_body (bare));
  g_assert_null (bg_response_get_file (bare));
  g_assert_cmpint (bg_response_get_retry_after (bare), ==, -1);
}

static void
test_response_date_header (void)
{
  g_autoptr(SoupMessageHeaders) headers = soup_message_headers_new (SOUP_MESSAGE_HEADERS_RESPONSE);
  g_autoptr(BgResponse) response = NULL;

  /* Measured against the answer's own Date, not against our clock. */
  soup_message_headers_append (headers, "Date", "Sun, 06 Nov 1994 08:49:37 GMT");
  soup_message_headers_append (headers, "Retry-After", "Sun, 06 Nov 1994 08:51:07 GMT");
  response = bg_response_new (BG_RESPONSE_RETRY, "d", 503, NULL, headers, NULL, NULL, NULL);
  g_assert_cmpint (bg_response_get_retry_after (response), ==, 90);
}

static void
test_response_properties (void)
{
  g_autoptr(BgResponse) response = NULL;
  g_autofree char *identifier = NULL;
  BgResponseKind kind;
  guint status;
  gint64 retry_after;

  response = bg_response_new (BG_RESPONSE_REJECTED, "p", 404, "Not Found", NULL, NULL, NULL, NULL);
  g_object_get (response,
                "kind", &kind,
                "status", &status,
                "identifier", &identifier,
                "retry-after", &retry_after,
                NULL);
  g_assert_cmpint (kind, ==, BG_RESPONSE_REJECTED);
  g_assert_cmpuint (status, ==, 404);
  g_assert_cmpstr (identifier, ==, "p");
  g_assert_cmpint (retry_after, ==, -1);
  g_assert_true (G_TYPE_IS_ENUM (BG_TYPE_RESPONSE_KIND));
  g_assert_true (G_TYPE_IS_ENUM (BG_TYPE_ERROR));
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/response/status-table", test_status_table);
  g_test_add_func ("/response/fields", test_response_fields);
  g_test_add_func ("/response/date-header", test_response_date_header);
  g_test_add_func ("/response/properties", test_response_properties);

  return g_test_run ();
}
