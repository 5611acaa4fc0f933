/* fuzz-content-range.c: libFuzzer target for the Content-Range parser
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
  gint64 start, end, total;

  if (bg_http_parse_content_range (text, &start, &end, &total))
    {
      /* Whatever it accepts is self-consistent. */
      if (start >= 0)
        {
          g_assert (end >= start);
          g_assert (total == -1 || end < total);
        }
      else
        {
          g_assert (end == -1);
          g_assert (total >= 0);
        }
    }

  return 0;
}
