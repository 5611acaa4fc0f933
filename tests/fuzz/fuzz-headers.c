/* fuzz-headers.c: libFuzzer target for the stored-headers decoder
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include "bg-http-private.h"

int LLVMFuzzerTestOneInput (const guint8 *data, size_t size);

int
LLVMFuzzerTestOneInput (const guint8 *data,
                        size_t        size)
{
  g_autofree char *text = g_strndup ((const char *) data, size);
  g_autoptr(SoupMessageHeaders) headers = soup_message_headers_new (SOUP_MESSAGE_HEADERS_REQUEST);
  g_autoptr(GError) error = NULL;

  if (bg_http_decode_headers (text, headers, &error))
    {
      /* What decodes encodes again, and decodes to the same thing. */
      g_autofree char *again = bg_http_encode_headers (headers);
      g_autoptr(SoupMessageHeaders) copy = soup_message_headers_new (SOUP_MESSAGE_HEADERS_REQUEST);
      g_autofree char *third = NULL;

      g_assert (bg_http_decode_headers (again, copy, NULL));
      third = bg_http_encode_headers (copy);
      g_assert (g_str_equal (again, third));
    }
  else
    g_assert (error != NULL);

  return 0;
}
