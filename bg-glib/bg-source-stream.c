/* bg-source-stream.c: an upload's body, read from the source file
 *
 * libsoup sends a request body by splicing it into the connection.  A stream that GIO can only
 * read through worker threads makes that splice hop threads for every small block; a regular
 * file is always readable, so this stream says so (GPollableInputStream) and reads it directly.
 * It also counts what has been handed to the connection, which is the upload's progress, and
 * can keep a digest of those bytes, so that they can be compared with the file after the send.
 *
 * The file is read with pread() from the stream's own offset, so several streams (a request and
 * the one that follows its redirect) can share one descriptor.
 *
 * Under a bandwidth cap the stream hands out only what the caps allow: a blocking read (the
 * sending thread's) sleeps until they allow some, waking at once when it is cancelled; a
 * nonblocking one says it would block, and its source fires when the caps allow a read.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <glib/gi18n-lib.h>

#include "bg-source-stream-private.h"
#include "bg-throttle-private.h"

/* libsoup asks for 8 KiB at a time; the file is read in larger pieces and served from memory. */
#define READ_AHEAD (256 * 1024)

struct _BgSourceStream
{
  GInputStream            parent_instance;

  int                     fd;
  gint64                  start;        /* where in the file the stream's first byte is */
  gint64                  size;
  gint64                  offset;       /* bytes handed out */
  guint8                 *buffer;
  gsize                   buffered;     /* bytes in buffer */
  gsize                   consumed;     /* of those, bytes handed out */
  GChecksum              *checksum;     /* of the bytes handed out; NULL when not wanted */
  BgSourceStreamProgress  progress;
  gpointer                user_data;
  BgThrottle             *task_throttle; /* the bandwidth caps; NULL for none */
  BgThrottle             *queue_throttle;
};

static void bg_source_stream_pollable_iface_init (GPollableInputStreamInterface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (BgSourceStream, bg_source_stream, G_TYPE_INPUT_STREAM,
                               G_IMPLEMENT_INTERFACE (G_TYPE_POLLABLE_INPUT_STREAM,
                                                      bg_source_stream_pollable_iface_init))

void
bg_source_id_from_stat (const struct stat *st,
                        BgSourceId        *id)
{
  id->dev = st->st_dev;
  id->ino = st->st_ino;
  id->size = st->st_size;
  id->mtime_nsec = (gint64) st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
  id->ctime_nsec = (gint64) st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
}

gboolean
bg_source_id_equal (const BgSourceId *a,
                    const BgSourceId *b)
{
  return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
         a->mtime_nsec == b->mtime_nsec && a->ctime_nsec == b->ctime_nsec;
}

/* Refills the buffer with up to READ_AHEAD bytes, never past the declared size. */
static gboolean
refill (BgSourceStream  *self,
        GError         **error)
{
  gsize wanted = (gsize) MIN ((gint64) READ_AHEAD, self->size - self->offset);
  gssize n;

  if (self->buffer == NULL)
    self->buffer = g_malloc (READ_AHEAD);

  do
    n = pread (self->fd, self->buffer, wanted, self->start + self->offset);
  while (n < 0 && errno == EINTR);

  if (n < 0)
    {
      int saved_errno = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   _("Cannot read the source file: %s"), g_strerror (saved_errno));
      return FALSE;
    }

  if (n == 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_PARTIAL_INPUT,
                   _("The source file became shorter while it was being sent"));
      return FALSE;
    }

  self->buffered = n;
  self->consumed = 0;

  return TRUE;
}

/* Hands out up to @count bytes, of which the caps allowed @allowed (taken from them already). */
static gssize
hand_out (BgSourceStream  *self,
          void            *buffer,
          gsize            count,
          gsize            allowed,
          GError         **error)
{
  gsize n;

  if (self->consumed == self->buffered && !refill (self, error))
    {
      bg_throttle_refund (self->task_throttle, self->queue_throttle, allowed);
      return -1;
    }

  n = MIN (MIN (count, allowed), self->buffered - self->consumed);
  bg_throttle_refund (self->task_throttle, self->queue_throttle, allowed - n);
  memcpy (buffer, self->buffer + self->consumed, n);
  if (self->checksum != NULL)
    g_checksum_update (self->checksum, self->buffer + self->consumed, n);
  self->consumed += n;
  self->offset += n;

  if (self->progress != NULL)
    self->progress (self->offset, self->user_data);

  return n;
}

static gsize
remaining (BgSourceStream *self,
           gsize           count)
{
  return (gsize) MIN ((gint64) count, self->size - self->offset);
}

static gssize
bg_source_stream_read (GInputStream  *stream,
                       void          *buffer,
                       gsize          count,
                       GCancellable  *cancellable,
                       GError       **error)
{
  BgSourceStream *self = BG_SOURCE_STREAM (stream);
  gint64 delay;
  gsize allowed;

  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return -1;

  if (self->offset >= self->size || count == 0)
    return 0;

  /* libsoup asks for a few KiB at a time.  The caps give each read what it asks while they
   * hold that much; once they are short, the read sleeps until three quarters of a tick have
   * come in, so a capped send wakes under three times a second, not once a block. */
  count = remaining (self, count);
  allowed = bg_throttle_take (self->task_throttle, self->queue_throttle, count,
                              remaining (self, G_MAXSSIZE), &delay);
  if (allowed == 0)
    {
      /* About to sleep: the bytes handed out so far are told again, so that they can be
       * reported while the stream waits. */
      if (self->progress != NULL)
        self->progress (self->offset, self->user_data);
      allowed = bg_throttle_take_sync (self->task_throttle, self->queue_throttle, count,
                                       remaining (self, G_MAXSSIZE), cancellable, error);
      if (allowed == 0)
        return -1;
    }

  return hand_out (self, buffer, count, allowed, error);
}

static gboolean
bg_source_stream_close (GInputStream  *stream,
                        GCancellable  *cancellable,
                        GError       **error)
{
  BgSourceStream *self = BG_SOURCE_STREAM (stream);

  if (self->fd >= 0)
    {
      close (self->fd);
      self->fd = -1;
    }

  return TRUE;
}

static void
bg_source_stream_finalize (GObject *object)
{
  BgSourceStream *self = BG_SOURCE_STREAM (object);

  if (self->fd >= 0)
    close (self->fd);
  g_clear_pointer (&self->task_throttle, bg_throttle_unref);
  g_clear_pointer (&self->queue_throttle, bg_throttle_unref);
  g_free (self->buffer);
  g_clear_pointer (&self->checksum, g_checksum_free);

  G_OBJECT_CLASS (bg_source_stream_parent_class)->finalize (object);
}

static gboolean
bg_source_stream_can_poll (GPollableInputStream *stream)
{
  return TRUE;
}

/* How long until the caps allow a read; 0 when they do now (or there is nothing to read). */
static gint64
throttle_delay (BgSourceStream *self)
{
  gint64 delay = 0;
  gsize allowed;

  if (self->offset >= self->size)
    return 0;

  /* Asking takes the bytes: they are given back at once. */
  allowed = bg_throttle_take (self->task_throttle, self->queue_throttle,
                              remaining (self, READ_AHEAD), remaining (self, G_MAXSSIZE),
                              &delay);
  bg_throttle_refund (self->task_throttle, self->queue_throttle, allowed);

  return allowed > 0 ? 0 : delay;
}

static gboolean
bg_source_stream_is_readable (GPollableInputStream *stream)
{
  /* A regular file never makes a reader wait for data; a bandwidth cap may. */
  return throttle_delay (BG_SOURCE_STREAM (stream)) == 0;
}

static GSource *
bg_source_stream_create_source (GPollableInputStream *stream,
                                GCancellable         *cancellable)
{
  gint64 delay = throttle_delay (BG_SOURCE_STREAM (stream));
  g_autoptr(GSource) ready = g_timeout_source_new ((guint) ((delay + 999) / 1000));

  return g_pollable_source_new_full (stream, ready, cancellable);
}

static gssize
bg_source_stream_read_nonblocking (GPollableInputStream  *stream,
                                   void                  *buffer,
                                   gsize                  count,
                                   GError               **error)
{
  BgSourceStream *self = BG_SOURCE_STREAM (stream);
  gint64 delay;
  gsize allowed;

  if (self->offset >= self->size || count == 0)
    return 0;

  count = remaining (self, count);
  allowed = bg_throttle_take (self->task_throttle, self->queue_throttle, count,
                              remaining (self, G_MAXSSIZE), &delay);
  if (allowed == 0)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK,
                           _("The bandwidth cap allows no more bytes yet"));
      return -1;
    }

  return hand_out (self, buffer, count, allowed, error);
}

static void
bg_source_stream_pollable_iface_init (GPollableInputStreamInterface *iface)
{
  iface->can_poll = bg_source_stream_can_poll;
  iface->is_readable = bg_source_stream_is_readable;
  iface->create_source = bg_source_stream_create_source;
  iface->read_nonblocking = bg_source_stream_read_nonblocking;
}

static void
bg_source_stream_class_init (BgSourceStreamClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GInputStreamClass *stream_class = G_INPUT_STREAM_CLASS (klass);

  object_class->finalize = bg_source_stream_finalize;
  stream_class->read_fn = bg_source_stream_read;
  stream_class->close_fn = bg_source_stream_close;
}

static void
bg_source_stream_init (BgSourceStream *self)
{
  self->fd = -1;
}

GInputStream *
bg_source_stream_new (int                     fd,
                      gint64                  size,
                      gboolean                digest,
                      BgSourceStreamProgress  progress,
                      gpointer                user_data)
{
  return bg_source_stream_new_range (fd, 0, size, digest, progress, user_data);
}

GInputStream *
bg_source_stream_new_range (int                     fd,
                            gint64                  start,
                            gint64                  size,
                            gboolean                digest,
                            BgSourceStreamProgress  progress,
                            gpointer                user_data)
{
  BgSourceStream *self = g_object_new (BG_TYPE_SOURCE_STREAM, NULL);

  g_return_val_if_fail (fd >= 0, NULL);
  g_return_val_if_fail (start >= 0, NULL);
  g_return_val_if_fail (size >= 0, NULL);

  self->fd = fd;
  self->start = start;
  self->size = size;
  if (digest)
    self->checksum = g_checksum_new (G_CHECKSUM_SHA256);
  self->progress = progress;
  self->user_data = user_data;

  return G_INPUT_STREAM (self);
}

void
bg_source_stream_set_throttle (BgSourceStream *self,
                               BgThrottle     *task_throttle,
                               BgThrottle     *queue_throttle)
{
  g_return_if_fail (BG_IS_SOURCE_STREAM (self));

  g_clear_pointer (&self->task_throttle, bg_throttle_unref);
  g_clear_pointer (&self->queue_throttle, bg_throttle_unref);
  if (task_throttle != NULL)
    self->task_throttle = bg_throttle_ref (task_throttle);
  if (queue_throttle != NULL)
    self->queue_throttle = bg_throttle_ref (queue_throttle);
}

gint64
bg_source_stream_get_offset (BgSourceStream *self)
{
  g_return_val_if_fail (BG_IS_SOURCE_STREAM (self), -1);

  return self->offset;
}

char *
bg_source_stream_get_digest (BgSourceStream *self)
{
  g_return_val_if_fail (BG_IS_SOURCE_STREAM (self), NULL);

  if (self->checksum == NULL || self->offset != self->size)
    return NULL;

  return g_strdup (g_checksum_get_string (self->checksum));
}

char *
bg_source_digest (int            fd,
                  gint64         size,
                  GCancellable  *cancellable,
                  GError       **error)
{
  return bg_source_digest_range (fd, 0, size, G_CHECKSUM_SHA256, cancellable, error);
}

char *
bg_source_digest_range (int             fd,
                        gint64          start,
                        gint64          size,
                        GChecksumType   type,
                        GCancellable   *cancellable,
                        GError        **error)
{
  g_autoptr(GChecksum) checksum = g_checksum_new (type);
  g_autofree guint8 *buffer = g_malloc (READ_AHEAD);
  gint64 offset = 0;

  g_return_val_if_fail (fd >= 0, NULL);

  while (offset < size)
    {
      gssize n;

      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        return NULL;

      do
        n = pread (fd, buffer, (gsize) MIN ((gint64) READ_AHEAD, size - offset), start + offset);
      while (n < 0 && errno == EINTR);

      if (n < 0)
        {
          int saved_errno = errno;

          g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                       _("Cannot read the source file: %s"), g_strerror (saved_errno));
          return NULL;
        }

      if (n == 0)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_PARTIAL_INPUT,
                       _("The source file became shorter while it was being sent"));
          return NULL;
        }

      g_checksum_update (checksum, buffer, n);
      offset += n;
    }

  return g_strdup (g_checksum_get_string (checksum));
}
