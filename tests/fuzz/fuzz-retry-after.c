/* fuzz-retry-after.c: libFuzzer target for the Retry-After parser
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
  g_autofree char *date = NULL;
  gint64 seconds;
  const char *split;

  /* Everything after a newline, if any, is used as the Date header. */
  split = strchr (text, '\n');
  if (split != NULL)
    {
      date = g_strdup (split + 1);
      text[split - text] = '\0';
    }

  seconds = bg_http_parse_retry_after (text, date, NULL);
  g_assert (seconds == -1 || (seconds >= 0 && seconds <= BG_HTTP_RETRY_AFTER_MAX));

  return 0;
}
