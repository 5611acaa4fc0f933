/* bg-source-stream-private.h: an upload's body, read from the source file
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include <gio/gio.h>
#include <sys/stat.h>

#include "bg-throttle-private.h"

G_BEGIN_DECLS

/* What says that an upload's source is still the file an attempt started with.  The ctime
 * catches a rewrite whose mtime was put back; device and inode catch a file renamed over the
 * path. */
typedef struct
{
  dev_t  dev;
  ino_t  ino;
  gint64 size;
  gint64 mtime_nsec;
  gint64 ctime_nsec;
} BgSourceId;

void          bg_source_id_from_stat      (const struct stat      *st,
                                           BgSourceId             *id);
gboolean      bg_source_id_equal          (const BgSourceId       *a,
                                           const BgSourceId       *b);

#define BG_TYPE_SOURCE_STREAM (bg_source_stream_get_type ())

G_DECLARE_FINAL_TYPE (BgSourceStream, bg_source_stream, BG, SOURCE_STREAM, GInputStream)

/* Called with the bytes handed out so far after each read, and again with the same offset when
 * a blocking read is about to sleep for the bandwidth caps. */
typedef void (*BgSourceStreamProgress) (gint64   offset,
                                        gpointer user_data);

/* Takes ownership of @fd, which it reads with pread() from offset 0 whatever the descriptor's
 * position.  Exactly @size bytes are given out: a file that grew is cut at @size, and one that
 * shrank ends the stream with G_IO_ERROR_PARTIAL_INPUT.  With @digest, the stream keeps a
 * SHA-256 of the bytes it hands out. */
GInputStream *bg_source_stream_new        (int                     fd,
                                           gint64                  size,
                                           gboolean                digest,
                                           BgSourceStreamProgress  progress,
                                           gpointer                user_data);
/* The same, for the @size bytes of @fd from @start on. */
GInputStream *bg_source_stream_new_range  (int                     fd,
                                           gint64                  start,
                                           gint64                  size,
                                           gboolean                digest,
                                           BgSourceStreamProgress  progress,
                                           gpointer                user_data);
/* Hands out the body no faster than both caps allow (either may be NULL). */
void          bg_source_stream_set_throttle (BgSourceStream       *self,
                                             BgThrottle           *task_throttle,
                                             BgThrottle           *queue_throttle);
/* Bytes handed out so far. */
gint64        bg_source_stream_get_offset (BgSourceStream         *self);
/* The hex SHA-256 of the bytes handed out, once all @size of them have been; NULL before, or
 * when the stream keeps no digest. */
char         *bg_source_stream_get_digest (BgSourceStream         *self);
/* The hex SHA-256 of the first @size bytes of @fd, read with pread(); blocks, so it belongs on
 * a worker thread. */
char         *bg_source_digest            (int                     fd,
                                           gint64                  size,
                                           GCancellable           *cancellable,
                                           GError                **error);
/* The hex digest of the @size bytes of @fd from @start on. */
char         *bg_source_digest_range      (int                     fd,
                                           gint64                  start,
                                           gint64                  size,
                                           GChecksumType           type,
                                           GCancellable           *cancellable,
                                           GError                **error);

G_END_DECLS
