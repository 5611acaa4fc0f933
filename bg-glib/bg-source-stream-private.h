/* bg-source-stream-private.h: an upload's body, read from the source file
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define BG_TYPE_SOURCE_STREAM (bg_source_stream_get_type ())

G_DECLARE_FINAL_TYPE (BgSourceStream, bg_source_stream, BG, SOURCE_STREAM, GInputStream)

typedef void (*BgSourceStreamProgress) (gint64   offset,
                                        gpointer user_data);

/* Takes ownership of @fd.  Exactly @size bytes are given out: a file that grew is cut at @size,
 * and one that shrank ends the stream with G_IO_ERROR_PARTIAL_INPUT. */
GInputStream *bg_source_stream_new (int                     fd,
                                    gint64                  size,
                                    BgSourceStreamProgress  progress,
                                    gpointer                user_data);

G_END_DECLS
