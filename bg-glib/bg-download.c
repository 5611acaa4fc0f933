/* bg-download.c: one download attempt, streamed into a partial file and published atomically
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gi18n-lib.h>
#include <glib/gstdio.h>
#include <gio/gunixoutputstream.h>

#include "bg-connection-watch-private.h"
#include "bg-engine-private.h"
#include "bg-error.h"
#include "bg-http-private.h"

/* Two buffers: one fills from the network while the other is written to disk. */
#define BUFFER_SIZE (512 * 1024)

/* A checkpoint is taken whenever this much has arrived, or this long has passed.  The promise
 * is that a kill redoes at most 8 MiB; data keeps arriving while a checkpoint's flush runs, so
 * the byte interval leaves that much margin. */
#define CHECKPOINT_BYTES (6 * 1024 * 1024)
#define CHECKPOINT_INTERVAL_USEC (G_USEC_PER_SEC)

typedef struct
{
  grefcount      ref_count;
  BgJob         *job;
  GCancellable  *cancellable;
  SoupMessage   *msg;
  GInputStream  *in;
  GOutputStream *out;
  int            fd;
  BgConnectionWatch *watch;      /* notices an HTTP/2 connection gone under the body */
  GError        *lost;           /* why the watch ended the attempt */

  guint8        *buf[2];
  gsize          fill[2];
  guint          cur;            /* the buffer being filled */

  gint64         received;       /* bytes of the file that have arrived */
  gint64         written;        /* bytes of the file that are written to the partial file */
  gint64         total;
  gint64         last_checkpoint_time;
  gint64         last_write_time;

  guint          redirects;
  guint          ranged : 1;
  guint          restarted : 1;
  guint          reading : 1;
  guint          writing : 1;
  guint          flushing : 1;
  guint          eof : 1;
  guint          done : 1;
} Download;

static void download_read (Download *self);
static void download_send (Download *self);

static Download *
download_ref (Download *self)
{
  g_ref_count_inc (&self->ref_count);
  return self;
}

static void
download_unref (Download *self)
{
  if (!g_ref_count_dec (&self->ref_count))
    return;

  g_clear_pointer (&self->watch, bg_connection_watch_free);
  g_clear_error (&self->lost);
  g_clear_object (&self->in);
  g_clear_object (&self->out);
  g_clear_object (&self->msg);
  g_clear_object (&self->cancellable);
  g_clear_pointer (&self->job, bg_job_unref);
  g_free (self->buf[0]);
  g_free (self->buf[1]);
  g_free (self);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Download, download_unref)

static char *
partial_path_for (BgStoreRecord *record)
{
  g_autofree char *dir = g_path_get_dirname (record->file_path);
  g_autoptr(GChecksum) checksum = g_checksum_new (G_CHECKSUM_SHA256);
  g_autofree char *name = NULL;

  g_checksum_update (checksum, (const guchar *) record->identifier, -1);
  g_checksum_update (checksum, (const guchar *) "\n", 1);
  g_checksum_update (checksum, (const guchar *) record->file_path, -1);
  name = g_strdup_printf (".bg-%.32s.part", g_checksum_get_string (checksum));

  return g_build_filename (dir, name, NULL);
}

static gboolean
download_prepare_new (BgEngine       *engine,
                      BgStoreRecord  *record,
                      GFile          *file,
                      GError        **error)
{
  g_autofree char *path = g_file_get_path (file);
  g_autofree char *dir = NULL;
  GStatBuf st;

  if (path == NULL)
    {
      g_autofree char *name = g_file_get_parse_name (file);

      g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                   _("The destination “%s” is not a local file"), name);
      return FALSE;
    }

  dir = g_path_get_dirname (path);
  if (g_stat (dir, &st) != 0 || !S_ISDIR (st.st_mode))
    {
      g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                   _("The destination folder “%s” does not exist"), dir);
      return FALSE;
    }

  if (access (dir, W_OK | X_OK) != 0)
    {
      g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                   _("The destination folder “%s” is not writable"), dir);
      return FALSE;
    }

  if (g_lstat (path, &st) == 0)
    {
      if (S_ISDIR (st.st_mode))
        g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                     _("The destination “%s” is a folder"), path);
      else
        g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                     _("The destination “%s” already exists; it is never overwritten"), path);
      return FALSE;
    }

  g_free (record->file_path);
  record->file_path = g_steal_pointer (&path);
  g_free (record->partial_path);
  record->partial_path = partial_path_for (record);

  return TRUE;
}

static void
set_partial_error (GError     **error,
                   int          saved_errno,
                   const char  *path)
{
  g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
               _("Cannot use the partial file “%s”: %s"), path, g_strerror (saved_errno));
}

/* Opens the partial file, cutting it back to the last checkpoint: bytes past it may never have
 * reached the disk, so they are not trusted. */
static gboolean
download_open_partial (Download  *self,
                       GError   **error)
{
  BgStoreRecord *record = bg_job_get_record (self->job);
  struct stat st;
  int fd;

  fd = g_open (record->partial_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    {
      int saved_errno = errno;

      set_partial_error (error, saved_errno, record->partial_path);
      return FALSE;
    }

  if (fstat (fd, &st) != 0 || !S_ISREG (st.st_mode))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_REGULAR_FILE,
                   _("The partial file “%s” is not a regular file"), record->partial_path);
      close (fd);
      return FALSE;
    }

  if (st.st_size < record->checkpoint)
    {
      /* Less on disk than was recorded: start over. */
      record->checkpoint = 0;
      bg_job_note_restart (self->job);
    }

  if (ftruncate (fd, record->checkpoint) != 0 ||
      lseek (fd, record->checkpoint, SEEK_SET) < 0)
    {
      int saved_errno = errno;

      set_partial_error (error, saved_errno, record->partial_path);
      close (fd);
      return FALSE;
    }

  self->fd = fd;
  self->out = g_unix_output_stream_new (fd, TRUE);
  self->written = self->received = record->checkpoint;

  return TRUE;
}

static gboolean
download_truncate (Download  *self,
                   GError   **error)
{
  BgStoreRecord *record = bg_job_get_record (self->job);

  g_assert (!self->writing && !self->flushing);

  if (ftruncate (self->fd, 0) != 0 || lseek (self->fd, 0, SEEK_SET) < 0)
    {
      int saved_errno = errno;

      set_partial_error (error, saved_errno, record->partial_path);
      return FALSE;
    }

  record->checkpoint = 0;
  self->written = self->received = 0;
  self->fill[0] = self->fill[1] = 0;
  g_clear_pointer (&record->etag, g_free);
  g_clear_pointer (&record->last_modified, g_free);
  bg_job_note_restart (self->job);
  bg_job_save_progress (self->job);

  return TRUE;
}

static void
add_range_headers (Download      *self,
                   SoupMessage   *msg,
                   BgStoreRecord *record)
{
  SoupMessageHeaders *headers = soup_message_get_request_headers (msg);

  soup_message_headers_remove (headers, "Range");
  soup_message_headers_remove (headers, "If-Range");
  self->ranged = FALSE;

  if (self->written > 0)
    {
      soup_message_headers_set_range (headers, self->written, -1);
      soup_message_headers_replace (headers, "If-Range",
                                    record->etag ? record->etag : record->last_modified);
      self->ranged = TRUE;
    }
}

static SoupMessage *
new_message (Download      *self,
             GUri          *uri,
             SoupMessageHeaders *copy_from,
             gboolean       same_origin)
{
  SoupMessage *msg = soup_message_new_from_uri (SOUP_METHOD_GET, uri);
  SoupMessageHeaders *headers = soup_message_get_request_headers (msg);

  if (copy_from != NULL)
    bg_http_copy_request_headers (copy_from, headers, same_origin);

  /* We store the bytes as they are sent: offsets must mean the same thing on every attempt. */
  soup_message_disable_feature (msg, SOUP_TYPE_CONTENT_DECODER);
  soup_message_headers_replace (headers, "Accept-Encoding", "identity");
  soup_message_add_flags (msg, SOUP_MESSAGE_NO_REDIRECT);

  return msg;
}

static SoupMessage *
download_build (BgJob   *job,
                GError **error)
{
  BgStoreRecord *record = bg_job_get_record (job);
  g_autoptr(Download) self = g_new0 (Download, 1);
  g_autoptr(GUri) uri = NULL;
  g_autoptr(SoupMessageHeaders) stored = NULL;
  g_autoptr(SoupMessage) msg = NULL;

  g_ref_count_init (&self->ref_count);
  self->job = bg_job_ref (job);
  self->fd = -1;
  self->total = record->total;
  self->cancellable = g_object_ref (bg_job_get_cancellable (job));
  self->last_checkpoint_time = self->last_write_time = g_get_monotonic_time ();

  uri = g_uri_parse (record->uri, SOUP_HTTP_URI_FLAGS, error);
  if (uri == NULL || !bg_http_uri_is_acceptable (uri, error))
    return NULL;

  stored = soup_message_headers_new (SOUP_MESSAGE_HEADERS_REQUEST);
  if (!bg_http_decode_headers (record->request_headers, stored, error))
    return NULL;

  if (!download_open_partial (self, error))
    return NULL;

  /* Resuming needs a strong validator, so the bytes we have and the bytes we get are
   * known to come from the same version of the file. */
  if (self->written > 0 && record->etag == NULL && record->last_modified == NULL)
    {
      if (!download_truncate (self, error))
        return NULL;
    }

  msg = new_message (self, uri, stored, TRUE);
  add_range_headers (self, msg, record);

  bg_job_progress (job, self->written, self->total);
  bg_job_set_attempt_data (job, g_steal_pointer (&self), (GDestroyNotify) download_unref);

  return g_steal_pointer (&msg);
}

/* Ends the attempt.  Closing the streams may still be in flight; they hold their own refs. */
static void
download_finish (Download   *self,
                 BgResponse *response)
{
  g_autoptr(Download) hold = download_ref (self);

  if (self->done)
    return;
  self->done = TRUE;
  g_clear_pointer (&self->watch, bg_connection_watch_free);

  if (self->in != NULL)
    g_input_stream_close_async (self->in, G_PRIORITY_DEFAULT, NULL, NULL, NULL);

  bg_job_attempt_finished (self->job, response);
}

static void
download_fail (Download     *self,
               const GError *error)
{
  g_autoptr(BgResponse) response = NULL;

  /* Cancelled by the connection watch: say why. */
  if (self->lost != NULL && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    error = self->lost;

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    response = bg_job_make_response (self->job, BG_RESPONSE_FAILED, NULL, NULL, error);
  else
    response = bg_job_make_response (self->job, bg_http_classify_error (error),
                                     self->msg, NULL, error);
  download_finish (self, response);
}

static void
download_fail_literal (Download   *self,
                       GQuark      domain,
                       int         code,
                       const char *message)
{
  g_autoptr(GError) error = g_error_new_literal (domain, code, message);
  g_autoptr(BgResponse) response = NULL;

  response = bg_job_make_response (self->job, BG_RESPONSE_FAILED, self->msg, NULL, error);
  download_finish (self, response);
}

/* --- Checkpoints ------------------------------------------------------------------------- */

typedef struct
{
  int    fd;
  gint64 offset;
} FlushData;

static void
fdatasync_thread (GTask        *task,
                  gpointer      source_object,
                  gpointer      task_data,
                  GCancellable *cancellable)
{
  FlushData *data = task_data;

  if (fdatasync (data->fd) != 0)
    {
      int saved_errno = errno;

      g_task_return_new_error (task, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                               _("Cannot flush the partial file: %s"), g_strerror (saved_errno));
      return;
    }

  g_task_return_boolean (task, TRUE);
}

static void maybe_publish (Download *self);
static void pump (Download *self);

static void
checkpoint_done_cb (GObject      *object,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  g_autoptr(Download) self = user_data;
  g_autoptr(GError) error = NULL;
  FlushData *data = g_task_get_task_data (G_TASK (result));

  self->flushing = FALSE;

  if (!g_task_propagate_boolean (G_TASK (result), &error))
    {
      if (!self->done)
        download_fail (self, error);
      return;
    }

  if (!self->done)
    {
      BgStoreRecord *record = bg_job_get_record (self->job);

      /* The bytes up to data->offset are on disk: only now may the record say so. */
      record->checkpoint = data->offset;
      record->total = self->total;
      bg_job_save_progress (self->job);
      pump (self);
    }
}

/* Flushes what has been written so far on a worker thread, so the stream never waits for the
 * disk, then records the offset. */
static void
download_checkpoint (Download *self)
{
  g_autoptr(GTask) task = NULL;
  FlushData *data;

  g_assert (!self->flushing);

  self->flushing = TRUE;
  self->last_checkpoint_time = g_get_monotonic_time ();

  data = g_new0 (FlushData, 1);
  data->fd = self->fd;
  data->offset = self->written;

  task = g_task_new (NULL, NULL, checkpoint_done_cb, download_ref (self));
  g_task_set_source_tag (task, download_checkpoint);
  g_task_set_task_data (task, data, g_free);
  g_task_run_in_thread (task, fdatasync_thread);
}

/* --- Streaming ----------------------------------------------------------------------------- */

static void
write_done_cb (GObject      *object,
               GAsyncResult *result,
               gpointer      user_data)
{
  g_autoptr(Download) self = user_data;
  g_autoptr(GError) error = NULL;
  gsize n = 0;
  guint idx = 1 - self->cur;

  self->writing = FALSE;

  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (object), result, &n, &error))
    {
      if (!self->done)
        download_fail (self, error);
      return;
    }

  if (self->done)
    return;

  self->written += n;
  self->fill[idx] = 0;
  self->last_write_time = g_get_monotonic_time ();

  pump (self);
}

static void
start_write (Download *self)
{
  guint idx = self->cur;

  g_assert (!self->writing);
  g_assert (self->fill[1 - idx] == 0);

  /* Swap: the full buffer goes to disk, reading carries on into the other one. */
  self->cur = 1 - idx;
  self->writing = TRUE;
  g_output_stream_write_all_async (self->out, self->buf[idx], self->fill[idx],
                                   G_PRIORITY_DEFAULT, self->cancellable,
                                   write_done_cb, download_ref (self));
}

/* Decides what to do next: write a buffer, take a checkpoint, read more, or publish. */
static void
pump (Download *self)
{
  gint64 now;

  if (self->done)
    return;

  now = g_get_monotonic_time ();

  if (!self->writing && self->fill[self->cur] > 0 &&
      (self->fill[self->cur] == BUFFER_SIZE || self->eof ||
       now - self->last_write_time >= CHECKPOINT_INTERVAL_USEC))
    start_write (self);

  if (!self->flushing && self->written > bg_job_get_record (self->job)->checkpoint &&
      !self->eof &&
      (self->written - bg_job_get_record (self->job)->checkpoint >= CHECKPOINT_BYTES ||
       now - self->last_checkpoint_time >= CHECKPOINT_INTERVAL_USEC))
    download_checkpoint (self);

  if (!self->eof && !self->reading && self->fill[self->cur] < BUFFER_SIZE)
    download_read (self);

  if (self->eof && !self->writing && !self->flushing && self->fill[0] == 0 && self->fill[1] == 0)
    maybe_publish (self);
}

static void
read_done_cb (GObject      *object,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(Download) self = user_data;
  g_autoptr(GError) error = NULL;
  gssize n;

  self->reading = FALSE;

  n = g_input_stream_read_finish (G_INPUT_STREAM (object), result, &error);
  if (n < 0)
    {
      if (!self->done)
        download_fail (self, error);
      return;
    }

  if (self->done)
    return;

  if (n == 0)
    self->eof = TRUE;

  self->fill[self->cur] += n;
  self->received += n;
  bg_job_progress (self->job, self->received, self->total);

  pump (self);
}

static void
download_read (Download *self)
{
  guint idx = self->cur;

  g_assert (!self->reading);

  if (self->buf[idx] == NULL)
    self->buf[idx] = g_malloc (BUFFER_SIZE);

  self->reading = TRUE;
  g_input_stream_read_async (self->in,
                             self->buf[idx] + self->fill[idx],
                             BUFFER_SIZE - self->fill[idx],
                             G_PRIORITY_DEFAULT, self->cancellable,
                             read_done_cb, download_ref (self));
}

/* --- Publishing ---------------------------------------------------------------------------- */

static int
fsync_dir (const char *path)
{
  g_autofree char *dir = g_path_get_dirname (path);
  int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int ret;

  if (fd < 0)
    return -1;
  ret = fsync (fd);
  close (fd);

  return ret;
}

typedef struct
{
  int     fd;
  gint64  size;
  char   *partial;
  char   *destination;
  char   *expected_sha256;
  int     step;
} PublishData;

static void
publish_data_free (PublishData *data)
{
  g_free (data->expected_sha256);
  g_free (data->partial);
  g_free (data->destination);
  g_free (data);
}

/* Reads the whole partial file back and compares its SHA-256 with the one the app expects. */
static gboolean
verify_sha256 (PublishData  *data,
               GError      **error)
{
  g_autoptr(GChecksum) checksum = g_checksum_new (G_CHECKSUM_SHA256);
  g_autofree guint8 *buf = g_malloc (BUFFER_SIZE);
  int fd = g_open (data->partial, O_RDONLY | O_CLOEXEC, 0);
  gssize n;

  if (fd < 0)
    {
      int saved_errno = errno;

      set_partial_error (error, saved_errno, data->partial);
      return FALSE;
    }

  while ((n = read (fd, buf, BUFFER_SIZE)) > 0)
    g_checksum_update (checksum, buf, n);
  close (fd);

  if (n < 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                   _("Cannot read the partial file “%s” back"), data->partial);
      return FALSE;
    }

  if (g_ascii_strcasecmp (g_checksum_get_string (checksum), data->expected_sha256) != 0)
    {
      g_set_error (error, BG_ERROR, BG_ERROR_INTEGRITY,
                   _("The download's SHA-256 is %s, but %s was expected; it was not published"),
                   g_checksum_get_string (checksum), data->expected_sha256);
      return FALSE;
    }

  return TRUE;
}

/* Step 0: fsync the partial file, and check its SHA-256 when the app gave one.  Step 1: rename
 * it into place without replacing anything, then fsync the folder. */
static void
publish_thread (GTask        *task,
                gpointer      source_object,
                gpointer      task_data,
                GCancellable *cancellable)
{
  PublishData *data = task_data;
  g_autoptr(GError) error = NULL;

  if (data->step == 0)
    {
      /* An earlier attempt's late write may have left bytes past the end. */
      if (ftruncate (data->fd, data->size) != 0 || fsync (data->fd) != 0)
        {
          int saved_errno = errno;

          g_task_return_new_error (task, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                                   _("Cannot flush “%s”: %s"), data->partial,
                                   g_strerror (saved_errno));
          return;
        }
      if (data->expected_sha256 != NULL && !verify_sha256 (data, &error))
        {
          g_task_return_error (task, g_steal_pointer (&error));
          return;
        }

      g_task_return_boolean (task, TRUE);
      return;
    }

  if (renameat2 (AT_FDCWD, data->partial, AT_FDCWD, data->destination, RENAME_NOREPLACE) != 0)
    {
      int saved_errno = errno;

      if (saved_errno == EINVAL || saved_errno == ENOSYS)
        {
          /* No RENAME_NOREPLACE on this file system: link() refuses to replace as well. */
          if (link (data->partial, data->destination) == 0)
            {
              unlink (data->partial);
              saved_errno = 0;
            }
          else
            saved_errno = errno;
        }

      if (saved_errno != 0)
        {
          if (saved_errno == EEXIST)
            g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_EXISTS,
                                     _("The destination “%s” appeared during the download; "
                                       "it was not overwritten"), data->destination);
          else
            g_task_return_new_error (task, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                                     _("Cannot move the download to “%s”: %s"),
                                     data->destination, g_strerror (saved_errno));
          return;
        }
    }

  if (fsync_dir (data->destination) != 0)
    {
      int saved_errno = errno;

      g_task_return_new_error (task, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                               _("Cannot flush the folder of “%s”: %s"), data->destination,
                               g_strerror (saved_errno));
      return;
    }

  g_task_return_boolean (task, TRUE);
}

static void publish_step (Download *self, int step);

static void
publish_done_cb (GObject      *object,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  g_autoptr(Download) self = user_data;
  g_autoptr(GError) error = NULL;
  PublishData *data = g_task_get_task_data (G_TASK (result));

  if (!g_task_propagate_boolean (G_TASK (result), &error))
    {
      g_autoptr(BgResponse) response = NULL;

      if (self->done)
        return;
      response = bg_job_make_response (self->job, BG_RESPONSE_FAILED, self->msg, NULL, error);
      download_finish (self, response);
      return;
    }

  if (self->done)
    return;

  if (data->step == 0)
    {
      BgStoreRecord *record = bg_job_get_record (self->job);

      /* Recorded before the rename: a run that finds the partial file gone and a destination
       * of exactly this size knows the rename happened. */
      record->checkpoint = self->written;
      record->total = self->written;
      bg_job_save_progress (self->job);
      g_output_stream_close (self->out, NULL, NULL);
      publish_step (self, 1);
    }
  else
    {
      g_autoptr(BgResponse) response = NULL;

      self->total = self->written;
      bg_job_progress (self->job, self->written, self->total);
      response = bg_job_make_response (self->job, BG_RESPONSE_SUCCESS, self->msg, NULL, NULL);
      download_finish (self, response);
    }
}

static void
publish_step (Download *self,
              int       step)
{
  g_autoptr(GTask) task = NULL;
  BgStoreRecord *record = bg_job_get_record (self->job);
  PublishData *data = g_new0 (PublishData, 1);

  data->fd = self->fd;
  data->size = self->written;
  data->partial = g_strdup (record->partial_path);
  data->destination = g_strdup (record->file_path);
  data->expected_sha256 = g_strdup (record->expected_sha256);
  data->step = step;

  task = g_task_new (NULL, self->cancellable, publish_done_cb, download_ref (self));
  g_task_set_source_tag (task, publish_step);
  g_task_set_task_data (task, data, (GDestroyNotify) publish_data_free);
  g_task_run_in_thread (task, publish_thread);
}

static void
maybe_publish (Download *self)
{
  g_assert (self->eof);

  if (self->total >= 0 && self->written != self->total)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(BgResponse) response = NULL;

      error = g_error_new (G_IO_ERROR, G_IO_ERROR_PARTIAL_INPUT,
                           _("The server sent %lld bytes of %lld"),
                           (long long) self->written, (long long) self->total);
      response = bg_job_make_response (self->job, BG_RESPONSE_RETRY, self->msg, NULL, error);
      download_finish (self, response);
      return;
    }

  self->flushing = TRUE;
  publish_step (self, 0);
}

/* --- Answers ------------------------------------------------------------------------------- */

static gboolean
follow_redirect (Download *self)
{
  SoupMessageHeaders *response_headers = soup_message_get_response_headers (self->msg);
  g_autoptr(GUri) next = NULL;
  g_autoptr(SoupMessage) msg = NULL;
  g_autoptr(GError) error = NULL;
  gboolean same_origin = FALSE;

  if (soup_message_headers_get_one (response_headers, "Location") == NULL)
    return FALSE;

  next = bg_http_redirect_target (self->msg, &self->redirects, &same_origin, &error);
  if (next == NULL)
    {
      download_fail_literal (self, error->domain, error->code, error->message);
      return TRUE;
    }

  msg = new_message (self, next, soup_message_get_request_headers (self->msg), same_origin);
  add_range_headers (self, msg, bg_job_get_record (self->job));

  if (self->in != NULL)
    {
      g_input_stream_close_async (self->in, G_PRIORITY_DEFAULT, NULL, NULL, NULL);
      g_clear_object (&self->in);
    }
  g_set_object (&self->msg, msg);
  download_send (self);

  return TRUE;
}

static void
remember_validators (Download *self)
{
  BgStoreRecord *record = bg_job_get_record (self->job);
  SoupMessageHeaders *headers = soup_message_get_response_headers (self->msg);
  const char *etag = soup_message_headers_get_one (headers, "ETag");
  const char *last_modified = soup_message_headers_get_one (headers, "Last-Modified");
  const char *date = soup_message_headers_get_one (headers, "Date");

  g_clear_pointer (&record->etag, g_free);
  g_clear_pointer (&record->last_modified, g_free);

  if (bg_http_is_strong_etag (etag))
    record->etag = g_strdup (etag);
  else if (bg_http_is_strong_last_modified (last_modified, date))
    record->last_modified = g_strdup (last_modified);
}

/* libsoup stopped reading the HTTP/2 connection under the body, and the body is empty: a read
 * would wait forever.  End the attempt now, as if the read had failed. */
static void
connection_lost_cb (const GError *error,
                    gpointer      user_data)
{
  Download *self = user_data;

  g_clear_pointer (&self->watch, bg_connection_watch_free);
  if (self->done)
    return;

  if (self->reading)
    {
      /* The pending read must end before the stream can close; download_fail() says why. */
      self->lost = g_error_copy (error);
      g_cancellable_cancel (self->cancellable);
      return;
    }

  download_fail (self, error);
}

static void
download_watch (Download *self)
{
  g_clear_pointer (&self->watch, bg_connection_watch_free);
  self->watch = bg_connection_watch_new (bg_engine_get_session (bg_job_get_engine (self->job)),
                                         self->msg, self->in, connection_lost_cb, self);
}

static void
sent_cb (GObject      *object,
         GAsyncResult *result,
         gpointer      user_data)
{
  g_autoptr(Download) self = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GInputStream) in = NULL;
  SoupMessageHeaders *headers;
  guint status;

  in = soup_session_send_finish (SOUP_SESSION (object), result, &error);

  if (self->done)
    return;

  if (in == NULL)
    {
      download_fail (self, error);
      return;
    }

  self->in = g_steal_pointer (&in);
  download_watch (self);
  bg_job_progress (self->job, self->received, self->total);

  status = soup_message_get_status (self->msg);
  headers = soup_message_get_response_headers (self->msg);

  if (bg_http_is_redirect (status) && follow_redirect (self))
    return;

  if (status == SOUP_STATUS_REQUESTED_RANGE_NOT_SATISFIABLE && self->ranged)
    {
      gint64 start, end, total;

      if (bg_http_parse_content_range (soup_message_headers_get_one (headers, "Content-Range"),
                                       &start, &end, &total) &&
          start < 0 && total == self->written)
        {
          /* We already have every byte. */
          self->total = total;
          self->eof = TRUE;
          pump (self);
          return;
        }

      if (!self->restarted)
        {
          /* The file on the server is shorter than what we have: it changed. */
          self->restarted = TRUE;
          if (!download_truncate (self, &error))
            {
              download_fail (self, error);
              return;
            }
          add_range_headers (self, self->msg, bg_job_get_record (self->job));
          g_input_stream_close_async (self->in, G_PRIORITY_DEFAULT, NULL, NULL, NULL);
          g_clear_object (&self->in);
          download_send (self);
          return;
        }
    }

  if (status == SOUP_STATUS_PARTIAL_CONTENT)
    {
      gint64 start, end, total;

      if (!self->ranged)
        {
          download_fail_literal (self, BG_ERROR, BG_ERROR_PROTOCOL,
                                 _("The server sent part of the file without being asked"));
          return;
        }

      if (!bg_http_parse_content_range (soup_message_headers_get_one (headers, "Content-Range"),
                                        &start, &end, &total) ||
          start < 0)
        {
          download_fail_literal (self, BG_ERROR, BG_ERROR_PROTOCOL,
                                 _("The server sent a partial answer without a valid "
                                   "Content-Range"));
          return;
        }

      if (start != self->written)
        {
          g_autofree char *message =
            g_strdup_printf (_("The server's Content-Range starts at byte %lld, but the download "
                               "continues at byte %lld"),
                             (long long) start, (long long) self->written);

          download_fail_literal (self, BG_ERROR, BG_ERROR_PROTOCOL, message);
          return;
        }

      self->total = total;
      bg_job_progress (self->job, self->received, self->total);
      pump (self);
      return;
    }

  if (bg_response_kind_for_status (status) == BG_RESPONSE_SUCCESS)
    {
      goffset length = soup_message_headers_get_content_length (headers);

      if (self->written > 0)
        {
          /* A whole answer to a ranged request: the file changed, start over. */
          if (!download_truncate (self, &error))
            {
              download_fail (self, error);
              return;
            }
        }

      remember_validators (self);
      if (soup_message_headers_get_encoding (headers) == SOUP_ENCODING_CONTENT_LENGTH)
        self->total = length;
      else
        self->total = -1;
      bg_job_get_record (self->job)->total = self->total;
      bg_job_save_progress (self->job);
      bg_job_progress (self->job, self->received, self->total);
      pump (self);
      return;
    }

  {
    g_autoptr(BgResponse) response = NULL;

    response = bg_job_make_response (self->job, bg_response_kind_for_status (status),
                                     self->msg, NULL, NULL);
    download_finish (self, response);
  }
}

static void
download_send (Download *self)
{
  SoupSession *session = bg_engine_get_session (bg_job_get_engine (self->job));

  g_clear_pointer (&self->watch, bg_connection_watch_free);
  bg_connection_watch_track (session);
  soup_session_send_async (session, self->msg, G_PRIORITY_DEFAULT, self->cancellable,
                           sent_cb, download_ref (self));
}

static void
download_start (BgJob       *job,
                SoupMessage *msg)
{
  Download *self = bg_job_get_attempt_data (job);

  g_assert (self != NULL);

  g_set_object (&self->msg, msg);
  download_send (self);
}

/* A run that died between the rename and recording the result left no partial file and a
 * destination of the recorded size: the download is complete. */
static BgResponse *
download_recover (BgJob *job)
{
  BgStoreRecord *record = bg_job_get_record (job);
  GStatBuf st;

  if (record->partial_path == NULL || record->total < 0 || record->checkpoint != record->total)
    return NULL;

  if (g_lstat (record->partial_path, &st) == 0)
    return NULL;

  if (g_lstat (record->file_path, &st) != 0 || !S_ISREG (st.st_mode) ||
      st.st_size != record->total)
    return NULL;

  return bg_job_make_response (job, BG_RESPONSE_SUCCESS, NULL, NULL, NULL);
}

static void
download_discard (BgJob *job)
{
  BgStoreRecord *record = bg_job_get_record (job);

  if (record->partial_path != NULL)
    g_unlink (record->partial_path);
}

const BgTransferClass bg_download_transfer = {
  .prepare_new = download_prepare_new,
  .build = download_build,
  .start = download_start,
  .recover = download_recover,
  .discard = download_discard,
};
