/* bg-upload-attempt.c: one upload attempt, streamed from the source file
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <linux/magic.h>

#include <glib/gi18n-lib.h>
#include <glib/gstdio.h>

#include "bg-engine-private.h"
#include "bg-error.h"
#include "bg-http-private.h"
#include "bg-resumable-private.h"
#include "bg-source-stream-private.h"

#define RESPONSE_CHUNK_SIZE (64 * 1024)

/* What the sending thread has moved is told on the main context: when the thread is about to
 * sleep for the bandwidth caps with bytes not told yet, when it has moved bytes for
 * PROGRESS_INTERVAL since it last slept and the last report is that old, and by a timer when
 * nothing was told for PROGRESS_IDLE (the answer's bytes, the wait for 100 Continue).  A capped
 * send, which moves its bytes in short bursts, wakes the main context once a burst rather than
 * ten times a second, and what it tells is up to date until the next burst. */
#define PROGRESS_INTERVAL_USEC (G_USEC_PER_SEC / 10)
#define PROGRESS_IDLE_USEC (G_USEC_PER_SEC / 2)

/* A larger body asks the server first (Expect: 100-continue), so that an early final status
 * (413, 501) arrives before the body rather than as a broken pipe. */
#define EXPECT_CONTINUE_MIN_SIZE (1024 * 1024)
/* How long a request waits for "100 Continue" before it is sent again without Expect, for
 * servers that ignore the expectation (as curl does, after the same second). */
#define EXPECT_CONTINUE_WAIT_USEC G_USEC_PER_SEC

/* A source whose last change is this recent (or in the future) may be rewritten again within
 * the same tick of its timestamps, where neither mtime nor ctime would move: its bytes are
 * compared after the send.  A file system with sub-second timestamps stamps changes from the
 * kernel's coarse clock, which moves every few milliseconds; one with whole seconds (their
 * nanoseconds are 0) may count in steps of two, as FAT does. */
#define FRESH_SOURCE_FINE_NSEC   (G_GINT64_CONSTANT (100) * 1000000)
#define FRESH_SOURCE_COARSE_NSEC (G_GINT64_CONSTANT (3) * 1000000000)

typedef struct
{
  grefcount     ref_count;
  BgJob        *job;
  GCancellable *cancellable;
  SoupMessage  *msg;
  GInputStream *body;           /* the current message's body */
  GCancellable *send_cancellable; /* the current send: the attempt's, or giving up on Expect */
  GSource      *progress_source; /* kept until the end: the sending thread may still wake it */
  gint64        reported_at;    /* monotonic time of the last report; atomic */
  gint64        reported_sent;  /* the bytes sent it told; atomic */
  gint          report_pending; /* the sending thread asked for a report; atomic */
  gint64        burst_started;  /* the sending thread's own: when it last woke from the caps */
  char         *path;
  char         *stale_url;      /* the upload resource of an earlier version of the source */
  int           stale_protocol;
  int           fd;             /* the source, opened once per attempt; every body reads it */
  BgSourceId    id;             /* the source when it was opened */
  gint64        sent;           /* written by the sending thread, read atomically */
  gint64        received;       /* likewise, bytes of the answer */
  gint64        seen;           /* sent + received at the last progress update */
  gint64        headers_sent_at; /* monotonic time the request headers went out; atomic */
  gint          answered;       /* the server has said something (1xx or final); atomic */
  gsize         max_body;
  guint         redirects;
  guint         done : 1;
  guint         verify : 1;     /* compare the bytes sent with the file after the send */
  guint         expecting : 1;  /* the current request waits for 100 Continue */
  guint         expect_gave_up : 1;
  guint         no_expect : 1;  /* the server ignored Expect: later bodies go straight away */
} Upload;

static void upload_send (Upload *self);
static gboolean follow_redirect (Upload *self);

static Upload *
upload_ref (Upload *self)
{
  g_ref_count_inc (&self->ref_count);
  return self;
}

static void
upload_unref (Upload *self)
{
  if (!g_ref_count_dec (&self->ref_count))
    return;

  g_clear_object (&self->msg);
  g_clear_object (&self->body);
  g_clear_object (&self->send_cancellable);
  g_clear_object (&self->cancellable);
  g_clear_pointer (&self->job, bg_job_unref);
  g_clear_pointer (&self->progress_source, g_source_unref);
  if (self->fd >= 0)
    close (self->fd);
  g_free (self->path);
  g_free (self->stale_url);
  g_free (self);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Upload, upload_unref)

/* A structured-field string, as the Idempotency-Key draft asks. */
static char *
new_idempotency_key (void)
{
  g_autofree char *uuid = g_uuid_string_random ();

  return g_strdup_printf ("\"%s\"", uuid);
}

/* The Idempotency-Key the app put on its request, if any. */
static char *
app_idempotency_key (BgStoreRecord *record)
{
  g_autoptr(SoupMessageHeaders) headers = soup_message_headers_new (SOUP_MESSAGE_HEADERS_REQUEST);

  if (!bg_http_decode_headers (record->request_headers, headers, NULL))
    return NULL;

  return g_strdup (soup_message_headers_get_one (headers, "Idempotency-Key"));
}

static int open_source (const char  *path,
                        BgSourceId  *id,
                        GError     **error);

static gboolean
upload_prepare_new (BgEngine       *engine,
                    BgStoreRecord  *record,
                    GFile          *file,
                    GError        **error)
{
  g_autofree char *path = g_file_get_path (file);
  g_autoptr(GError) local_error = NULL;
  BgSourceId id;
  char *app_key;
  int fd;

  g_assert (BG_IS_ENGINE (engine));
  g_assert (record != NULL);

  if (path == NULL)
    {
      g_autofree char *name = g_file_get_parse_name (file);

      g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                   _("The source “%s” is not a local file"), name);
      return FALSE;
    }

  /* Opened once, with the checks each attempt makes again (see open_source()); the size and
   * time it finds are those a changed source is told by. */
  fd = open_source (path, &id, &local_error);
  if (fd < 0)
    {
      g_set_error_literal (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT, local_error->message);
      return FALSE;
    }
  close (fd);
  record->source_size = id.size;
  record->source_mtime = id.mtime_nsec / 1000;

  g_free (record->file_path);
  record->file_path = g_steal_pointer (&path);

  app_key = app_idempotency_key (record);
  g_free (record->idempotency_key);
  record->idempotency_key = app_key != NULL ? app_key : new_idempotency_key ();

  return TRUE;
}

/* One key never stands for two different bodies: the next body gets a key of its own.  A key
 * the app chose is the app's to replace, so then the task cannot go on. */
static gboolean
renew_idempotency_key (BgStoreRecord  *record,
                       const char     *path,
                       GError        **error)
{
  g_autofree char *app_key = app_idempotency_key (record);

  if (app_key != NULL)
    {
      g_autofree char *name = g_filename_display_name (path);

      g_set_error (error, BG_ERROR, BG_ERROR_CONFLICT,
                   _("The source file “%s” changed after it was sent with the request’s own "
                     "Idempotency-Key %s, which cannot stand for a second body; upload it "
                     "again with a new key"),
                   name, app_key);
      return FALSE;
    }

  g_free (record->idempotency_key);
  record->idempotency_key = new_idempotency_key ();

  return TRUE;
}

static void
set_source_error (GError     **error,
                  int          errsv,
                  const char  *path)
{
  g_autofree char *name = g_filename_display_name (path);

  if (errsv == ENOENT)
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                 _("The source file “%s” does not exist"), name);
  else if (errsv == EACCES || errsv == EPERM)
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
                 _("The source file “%s” is not readable"), name);
  else
    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errsv),
                 _("Cannot read the source file “%s”: %s"), name, g_strerror (errsv));
}

static void
set_not_regular_error (GError     **error,
                       const char  *path)
{
  g_autofree char *name = g_filename_display_name (path);

  g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_REGULAR_FILE,
               _("The source “%s” is not a regular file"), name);
}

/* Whether the regular file open on @fd holds what its size says.  The files of /proc and /sys
 * do not: those of /proc say 0 bytes and hold some, those of /sys say a page and hold a line.
 * Sending what the size promises would lose their bytes without a word, or end every attempt
 * short.  Any other file that says it is empty is read once, in case it is not. */
static gboolean
size_is_true (int                fd,
              const struct stat *st)
{
  struct statfs fs;
  char byte;

  if (fstatfs (fd, &fs) == 0 &&
      (fs.f_type == PROC_SUPER_MAGIC || fs.f_type == SYSFS_MAGIC))
    return FALSE;

  return st->st_size != 0 || pread (fd, &byte, 1, 0) <= 0;
}

/* Opens the source for an attempt.  O_NONBLOCK, so that a FIFO or a device put in its place
 * cannot block the open; fstat, so that only a regular file is ever read.  Symbolic links are
 * followed: the path is the app's to name, and the source is only read. */
static int
open_source (const char  *path,
             BgSourceId  *id,
             GError     **error)
{
  struct stat st;
  int fd;

  g_assert (path != NULL);
  g_assert (id != NULL);

  fd = g_open (path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, 0);
  if (fd < 0)
    {
      set_source_error (error, errno, path);
      return -1;
    }

  if (fstat (fd, &st) != 0)
    {
      set_source_error (error, errno, path);
      close (fd);
      return -1;
    }

  if (!S_ISREG (st.st_mode))
    {
      set_not_regular_error (error, path);
      close (fd);
      return -1;
    }

  if (!size_is_true (fd, &st))
    {
      g_autofree char *name = g_filename_display_name (path);

      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_REGULAR_FILE,
                   _("The source “%s” does not hold what its size says, as the files of /proc "
                     "and /sys do: copy it to a regular file and upload that"), name);
      close (fd);
      return -1;
    }

  bg_source_id_from_stat (&st, id);

  return fd;
}

/* Runs on the sending thread. */
static void
body_progress_cb (gint64   offset,
                  gpointer user_data)
{
  Upload *self = user_data;
  gint64 now = g_get_monotonic_time ();
  gint64 before = __atomic_exchange_n (&self->sent, offset, __ATOMIC_RELAXED);
  gboolean report;

  if (before == offset)
    {
      /* The same offset again: the stream is about to sleep for the caps. */
      report = offset != __atomic_load_n (&self->reported_sent, __ATOMIC_RELAXED);
      self->burst_started = -1;
    }
  else
    {
      if (self->burst_started < 0)
        self->burst_started = now;
      report = now - self->burst_started >= PROGRESS_INTERVAL_USEC &&
               now - __atomic_load_n (&self->reported_at, __ATOMIC_RELAXED) >=
               PROGRESS_INTERVAL_USEC;
    }

  if (report && !__atomic_exchange_n (&self->report_pending, TRUE, __ATOMIC_ACQ_REL))
    g_source_set_ready_time (self->progress_source, 0);
}

/* Runs on the sending thread: what the server says before the body decides whether it is
 * sent at all. */
static void
wrote_headers_cb (SoupMessage *msg,
                  Upload      *self)
{
  __atomic_store_n (&self->headers_sent_at, g_get_monotonic_time (), __ATOMIC_RELAXED);
}

static void
got_answer_cb (SoupMessage *msg,
               Upload      *self)
{
  __atomic_store_n (&self->answered, 1, __ATOMIC_RELAXED);
}

static SoupMessage *
new_message (Upload              *self,
             const char          *method,
             GUri                *uri,
             SoupMessageHeaders  *copy_from,
             gboolean             same_origin,
             GError             **error)
{
  BgStoreRecord *record = bg_job_get_record (self->job);
  g_autoptr(SoupMessage) msg = soup_message_new_from_uri (method, uri);
  SoupMessageHeaders *headers = soup_message_get_request_headers (msg);
  const char *content_type;
  int fd;

  bg_http_copy_request_headers (copy_from, headers, same_origin);

  /* The same key on every attempt and in every run, so a server can drop a repeated request,
   * as long as the body is the same. */
  if (soup_message_headers_get_one (headers, "Idempotency-Key") == NULL &&
      record->idempotency_key != NULL)
    soup_message_headers_replace (headers, "Idempotency-Key", record->idempotency_key);

  if (self->no_expect)
    soup_message_headers_remove (headers, "Expect");
  else if (self->id.size > EXPECT_CONTINUE_MIN_SIZE)
    soup_message_headers_set_expectations (headers, SOUP_EXPECTATION_CONTINUE);

  content_type = soup_message_headers_get_content_type (headers, NULL);
  if (content_type == NULL)
    content_type = "application/octet-stream";

  /* Every body of the attempt (a redirect's too) reads the file opened when it began, never
   * the path again. */
  fd = fcntl (self->fd, F_DUPFD_CLOEXEC, 0);
  if (fd < 0)
    {
      set_source_error (error, errno, self->path);
      return NULL;
    }

  /* The stream calls back into the attempt, which outlives every message it sends. */
  __atomic_store_n (&self->sent, 0, __ATOMIC_RELAXED);
  g_clear_object (&self->body);
  self->body = bg_source_stream_new (fd, self->id.size, self->verify, body_progress_cb, self);
  bg_source_stream_set_throttle (BG_SOURCE_STREAM (self->body),
                                 bg_job_get_throttle (self->job),
                                 bg_engine_get_throttle (bg_job_get_engine (self->job)));
  soup_message_set_request_body (msg, content_type, self->body, self->id.size);
  soup_message_add_flags (msg, SOUP_MESSAGE_NO_REDIRECT);

  return g_steal_pointer (&msg);
}

static SoupMessage *
upload_build (BgJob   *job,
              GError **error)
{
  BgStoreRecord *record = bg_job_get_record (job);
  BgEngine *engine = bg_job_get_engine (job);
  g_autoptr(Upload) self = g_new0 (Upload, 1);
  g_autoptr(GUri) uri = NULL;
  g_autoptr(SoupMessageHeaders) stored = NULL;
  g_autoptr(SoupMessage) msg = NULL;
  gint64 mtime_usec;
  gint64 now_nsec;
  gint64 fresh_nsec;

  g_ref_count_init (&self->ref_count);
  self->fd = -1;
  self->job = bg_job_ref (job);
  self->cancellable = g_object_ref (bg_job_get_cancellable (job));
  self->max_body = bg_engine_get_max_response_size (engine);
  self->path = g_file_get_path (bg_job_get_file (job));

  uri = g_uri_parse (bg_job_get_request_uri (job), SOUP_HTTP_URI_FLAGS, error);
  if (uri == NULL || !bg_http_uri_is_acceptable (uri, error))
    return NULL;

  stored = soup_message_headers_new (SOUP_MESSAGE_HEADERS_REQUEST);
  if (!bg_http_decode_headers (bg_job_get_request_headers (job), stored, error))
    return NULL;

  self->fd = open_source (self->path, &self->id, error);
  if (self->fd < 0)
    return NULL;

  /* Never half old and half new: a changed source is sent whole, from the first byte, and
   * under a key of its own once an earlier attempt may have sent the old one. */
  mtime_usec = self->id.mtime_nsec / 1000;
  if (record->source_size != self->id.size || record->source_mtime != mtime_usec)
    {
      if (record->attempts > 1 && !renew_idempotency_key (record, self->path, error))
        return NULL;
      record->source_size = self->id.size;
      record->source_mtime = mtime_usec;
      bg_job_note_restart (job);

      /* The server's upload holds bytes of the old version: it is deleted, and a new one
       * made.  The record forgets it now, with the new size and time. */
      if (record->upload_url != NULL)
        {
          self->stale_url = g_steal_pointer (&record->upload_url);
          self->stale_protocol = record->upload_url_protocol;
          record->upload_url_protocol = BG_UPLOAD_PROTOCOL_AUTO;
          record->upload_expires = 0;
        }
    }

  /* A file changed this recently can change again without its times showing it. */
  now_nsec = g_get_real_time () * 1000;
  if (self->id.mtime_nsec % 1000000000 == 0 && self->id.ctime_nsec % 1000000000 == 0)
    fresh_nsec = FRESH_SOURCE_COARSE_NSEC;
  else
    fresh_nsec = FRESH_SOURCE_FINE_NSEC;
  self->verify = now_nsec - MAX (self->id.mtime_nsec, self->id.ctime_nsec) < fresh_nsec;

  msg = new_message (self, record->method, uri, stored, TRUE, error);
  if (msg == NULL)
    return NULL;

  bg_job_progress (job, 0, self->id.size);
  bg_job_set_attempt_data (job, g_steal_pointer (&self), (GDestroyNotify) upload_unref);

  return g_steal_pointer (&msg);
}

static void
upload_finish (Upload     *self,
               BgResponse *response)
{
  g_autoptr(Upload) hold = upload_ref (self);

  g_assert (BG_IS_RESPONSE (response));

  if (self->done)
    return;
  self->done = TRUE;

  if (self->progress_source != NULL)
    g_source_destroy (self->progress_source);

  bg_job_attempt_finished (self->job, response);
}

static void
upload_fail (Upload       *self,
             const GError *error)
{
  g_autoptr(BgResponse) response = NULL;

  g_assert (error != NULL);

  response = bg_job_make_response (self->job, bg_http_classify_error (error),
                                   self->msg, NULL, error);
  upload_finish (self, response);
}

static void
upload_fail_literal (Upload     *self,
                     int         code,
                     const char *message)
{
  g_autoptr(GError) error = g_error_new_literal (BG_ERROR, code, message);
  g_autoptr(BgResponse) response = NULL;

  response = bg_job_make_response (self->job, BG_RESPONSE_FAILED, self->msg, NULL, error);
  upload_finish (self, response);
}

/* The source changed while a body was being sent: whatever the server answered, it answered
 * a body that may never have existed as a file, so it is not credited.  The next attempt sends
 * the file as it is then, under a new key.  The engine stores the record, new key included,
 * when it takes the outcome (before it schedules the next attempt), in this same dispatch. */
static void
upload_void (Upload *self)
{
  BgStoreRecord *record = bg_job_get_record (self->job);
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *name = g_filename_display_name (self->path);

  if (!renew_idempotency_key (record, self->path, &error))
    {
      response = bg_job_make_response (self->job, BG_RESPONSE_FAILED, NULL, NULL, error);
      upload_finish (self, response);
      return;
    }

  error = g_error_new (BG_ERROR, BG_ERROR_IO,
                       _("The source file “%s” changed while it was being sent"), name);
  response = bg_job_make_response (self->job, BG_RESPONSE_RETRY, NULL, NULL, error);
  upload_finish (self, response);
}

/* Builds the outcome once the answer's body has been read (or capped); the source has already
 * been found unchanged. */
static void
upload_complete (Upload *self,
                 GBytes *body)
{
  g_autoptr(BgResponse) response = NULL;
  guint status = soup_message_get_status (self->msg);

  response = bg_job_make_response (self->job, bg_response_kind_for_status (status),
                                   self->msg, body, NULL);
  upload_finish (self, response);
}

static gboolean
follow_redirect (Upload *self)
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
      upload_fail_literal (self, error->code, error->message);
      return TRUE;
    }

  msg = new_message (self, soup_message_get_method (self->msg), next,
                     soup_message_get_request_headers (self->msg), same_origin, &error);
  if (msg == NULL)
    {
      upload_fail (self, error);
      return TRUE;
    }

  g_set_object (&self->msg, msg);
  upload_send (self);

  return TRUE;
}

/* The server never answered "Expect: 100-continue": the same request goes again, at once with
 * its body, and so does every later one of this attempt. */
static void
resend_without_expect (Upload *self)
{
  g_autoptr(SoupMessage) msg = NULL;
  g_autoptr(GError) error = NULL;

  self->no_expect = TRUE;
  msg = new_message (self, soup_message_get_method (self->msg), soup_message_get_uri (self->msg),
                     soup_message_get_request_headers (self->msg), TRUE, &error);
  if (msg == NULL)
    {
      upload_fail (self, error);
      return;
    }

  g_set_object (&self->msg, msg);
  upload_send (self);
}

/* The request is sent with libsoup's blocking API on a worker thread (possible since libsoup
 * 3.2): its body is spliced into the connection in small blocks, and on the main context every
 * block would cost main-loop iterations; on a thread it costs a read and a write.  The thread
 * touches only the message, the body stream, the source's descriptor and a few counters;
 * everything else stays here. */
typedef struct
{
  SoupSession    *session;
  SoupMessage    *msg;
  GInputStream   *body;
  GCancellable   *cancellable;  /* the send's own */
  GCancellable   *attempt_cancellable;
  gulong          cancelled_id;
  gsize           max_body;
  gint64         *received;
  GBytes         *response_body;
  /* The source, looked at after the send. */
  const char     *path;
  int             fd;
  const BgSourceId *id;
  gboolean        verify;
  gboolean        source_changed;
  GError         *source_error;
} SendData;

static void
send_data_free (SendData *data)
{
  if (data->cancelled_id != 0)
    g_cancellable_disconnect (data->attempt_cancellable, data->cancelled_id);
  g_clear_object (&data->attempt_cancellable);
  g_clear_object (&data->cancellable);
  g_clear_object (&data->session);
  g_clear_object (&data->msg);
  g_clear_object (&data->body);
  g_clear_pointer (&data->response_body, g_bytes_unref);
  g_clear_error (&data->source_error);
  g_free (data);
}

/* Reads at most @max_body bytes of the answer; the rest is not wanted. */
static GBytes *
read_capped (GInputStream  *in,
             gsize          max_body,
             gint64        *received,
             GCancellable  *cancellable,
             GError       **error)
{
  g_autoptr(GByteArray) body = g_byte_array_new ();
  g_autofree guint8 *chunk = g_malloc (RESPONSE_CHUNK_SIZE);

  g_assert (G_IS_INPUT_STREAM (in));
  g_assert (received != NULL);

  while (body->len < max_body)
    {
      gssize n = g_input_stream_read (in, chunk, RESPONSE_CHUNK_SIZE, cancellable, error);

      if (n < 0)
        return NULL;
      if (n == 0)
        break;
      g_byte_array_append (body, chunk, MIN ((gsize) n, max_body - body->len));
      __atomic_add_fetch (received, n, __ATOMIC_RELAXED);
    }

  return g_byte_array_free_to_bytes (g_steal_pointer (&body));
}

/* Runs on the sending thread, after the send.  The descriptor shows a rewrite in place (size,
 * mtime or ctime), the path shows a file renamed over it, removed, or swapped for something
 * that is not a regular file; for a fresh source the bytes sent are compared with the file. */
static void
check_source (SendData *data)
{
  g_autofree char *sent_digest = NULL;
  g_autofree char *file_digest = NULL;
  struct stat st;
  BgSourceId now;

  if (stat (data->path, &st) != 0)
    {
      set_source_error (&data->source_error, errno, data->path);
      return;
    }
  if (!S_ISREG (st.st_mode))
    {
      set_not_regular_error (&data->source_error, data->path);
      return;
    }
  bg_source_id_from_stat (&st, &now);
  if (!bg_source_id_equal (&now, data->id))
    {
      data->source_changed = TRUE;
      return;
    }

  if (fstat (data->fd, &st) != 0)
    {
      data->source_changed = TRUE;
      return;
    }
  bg_source_id_from_stat (&st, &now);
  if (!bg_source_id_equal (&now, data->id))
    {
      data->source_changed = TRUE;
      return;
    }

  if (!data->verify)
    return;

  sent_digest = bg_source_stream_get_digest (BG_SOURCE_STREAM (data->body));
  if (sent_digest == NULL)
    return;

  /* A file that cannot be read back is not known to be the same; an attempt that is being
   * cancelled ends anyway. */
  file_digest = bg_source_digest (data->fd, data->id->size, data->cancellable, NULL);
  if (file_digest == NULL)
    data->source_changed = !g_cancellable_is_cancelled (data->cancellable);
  else if (strcmp (sent_digest, file_digest) != 0)
    data->source_changed = TRUE;
}

static void
send_thread (GTask        *task,
             gpointer      source_object,
             gpointer      task_data,
             GCancellable *cancellable)
{
  SendData *data = task_data;
  g_autoptr(GInputStream) in = NULL;
  GError *error = NULL;
  guint status;

  in = soup_session_send (data->session, data->msg, data->cancellable, &error);
  if (in != NULL)
    {
      status = soup_message_get_status (data->msg);
      if (status != 307 && status != 308 && data->max_body > 0)
        data->response_body = read_capped (in, data->max_body, data->received,
                                           data->cancellable, &error);
    }

  /* A body that was sent, even in part, is checked against the source. */
  if (bg_source_stream_get_offset (BG_SOURCE_STREAM (data->body)) > 0)
    check_source (data);

  if (error != NULL)
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, TRUE);
}

static gboolean
progress_source_dispatch (GSource     *source,
                          GSourceFunc  callback,
                          gpointer     user_data)
{
  return callback (user_data);
}

static GSourceFuncs progress_source_funcs = {
  NULL, NULL, progress_source_dispatch, NULL, NULL, NULL
};

static gboolean
progress_tick_cb (gpointer user_data)
{
  Upload *self = user_data;
  gint64 sent = __atomic_load_n (&self->sent, __ATOMIC_RELAXED);
  gint64 received = __atomic_load_n (&self->received, __ATOMIC_RELAXED);
  gint64 now = g_get_monotonic_time ();
  gint64 next = now + PROGRESS_IDLE_USEC;

  __atomic_store_n (&self->reported_at, now, __ATOMIC_RELAXED);
  __atomic_store_n (&self->reported_sent, sent, __ATOMIC_RELAXED);
  __atomic_store_n (&self->report_pending, FALSE, __ATOMIC_RELEASE);

  /* Any byte in either direction counts as activity for the stall check. */
  if (sent + received != self->seen)
    {
      self->seen = sent + received;
      bg_job_progress (self->job, sent, self->id.size);
    }

  if (self->expecting && !self->expect_gave_up)
    {
      gint64 headers_sent_at = __atomic_load_n (&self->headers_sent_at, __ATOMIC_RELAXED);

      if (headers_sent_at != 0 && !__atomic_load_n (&self->answered, __ATOMIC_RELAXED))
        {
          if (now - headers_sent_at >= EXPECT_CONTINUE_WAIT_USEC)
            {
              self->expect_gave_up = TRUE;
              g_cancellable_cancel (self->send_cancellable);
            }
          else
            next = MIN (next, headers_sent_at + EXPECT_CONTINUE_WAIT_USEC);
        }
    }

  if (self->progress_source != NULL && !self->done)
    g_source_set_ready_time (self->progress_source, next);

  return G_SOURCE_CONTINUE;
}

static void
sent_cb (GObject      *object,
         GAsyncResult *result,
         gpointer      user_data)
{
  g_autoptr(Upload) self = user_data;
  g_autoptr(GError) error = NULL;
  SendData *data = g_task_get_task_data (G_TASK (result));
  gboolean expect_gave_up = self->expect_gave_up;
  guint status;

  g_signal_handlers_disconnect_by_data (data->msg, self);
  self->expecting = FALSE;
  self->expect_gave_up = FALSE;

  if (self->done)
    return;

  progress_tick_cb (self);

  if (data->source_error != NULL)
    {
      g_autoptr(BgResponse) response = NULL;

      response = bg_job_make_response (self->job, BG_RESPONSE_FAILED, NULL, NULL,
                                       data->source_error);
      upload_finish (self, response);
      return;
    }

  if (data->source_changed)
    {
      upload_void (self);
      return;
    }

  if (!g_task_propagate_boolean (G_TASK (result), &error))
    {
      if (expect_gave_up && !g_cancellable_is_cancelled (self->cancellable) &&
          g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        resend_without_expect (self);
      else
        upload_fail (self, error);
      return;
    }

  status = soup_message_get_status (self->msg);

  /* Only 307 and 308 promise that the method and body may be sent again. */
  if ((status == 307 || status == 308) && follow_redirect (self))
    return;

  if (data->response_body == NULL)
    data->response_body = g_bytes_new (NULL, 0);
  upload_complete (self, data->response_body);
}

static void
cancel_send_cb (GCancellable *attempt_cancellable,
                GCancellable *send_cancellable)
{
  g_cancellable_cancel (send_cancellable);
}

static void
upload_send (Upload *self)
{
  g_autoptr(GTask) task = NULL;
  SendData *data = g_new0 (SendData, 1);
  SoupMessageHeaders *headers = soup_message_get_request_headers (self->msg);

  g_clear_object (&self->send_cancellable);
  self->send_cancellable = g_cancellable_new ();

  data->session = g_object_ref (bg_engine_get_session (bg_job_get_engine (self->job)));
  data->msg = g_object_ref (self->msg);
  data->body = g_object_ref (self->body);
  data->cancellable = g_object_ref (self->send_cancellable);
  data->attempt_cancellable = g_object_ref (self->cancellable);
  data->cancelled_id = g_cancellable_connect (self->cancellable, G_CALLBACK (cancel_send_cb),
                                              g_object_ref (self->send_cancellable),
                                              g_object_unref);
  data->max_body = self->max_body;
  data->received = &self->received;
  data->path = self->path;
  data->fd = self->fd;
  data->id = &self->id;
  data->verify = self->verify;

  /* An app may ask for 100 Continue on any body; the wait is bounded either way. */
  self->expecting = (soup_message_headers_get_expectations (headers) &
                     SOUP_EXPECTATION_CONTINUE) != 0;
  self->expect_gave_up = FALSE;
  __atomic_store_n (&self->headers_sent_at, 0, __ATOMIC_RELAXED);
  __atomic_store_n (&self->answered, 0, __ATOMIC_RELAXED);
  g_signal_connect (self->msg, "wrote-headers", G_CALLBACK (wrote_headers_cb), self);
  g_signal_connect (self->msg, "got-informational", G_CALLBACK (got_answer_cb), self);
  g_signal_connect (self->msg, "got-headers", G_CALLBACK (got_answer_cb), self);

  if (self->progress_source == NULL)
    {
      g_autoptr(GMainContext) context = g_main_context_ref_thread_default ();

      self->progress_source = g_source_new (&progress_source_funcs, sizeof (GSource));
      g_source_set_ready_time (self->progress_source,
                               g_get_monotonic_time () + PROGRESS_IDLE_USEC);
      g_source_set_callback (self->progress_source, progress_tick_cb, self, NULL);
      g_source_set_static_name (self->progress_source, "[bg] upload progress");
      g_source_attach (self->progress_source, context);
    }

  /* The task holds the attempt, so the counters, the path and the descriptor outlive the
   * thread. */
  task = g_task_new (NULL, self->cancellable, sent_cb, upload_ref (self));
  g_task_set_source_tag (task, upload_send);
  g_task_set_task_data (task, data, (GDestroyNotify) send_data_free);
  g_task_run_in_thread (task, send_thread);
}

/* The server offers no resumable protocol: the attempt is a plain upload after all. */
static void
upload_send_plain (gpointer data)
{
  upload_send (data);
}

static void
upload_start (BgJob       *job,
              SoupMessage *msg)
{
  Upload *self = bg_job_get_attempt_data (job);

  g_assert (self != NULL);

  g_set_object (&self->msg, msg);

  if (bg_resumable_wanted (bg_job_get_record (job)))
    {
      bg_resumable_start (job, msg, self->fd, self->path, self->verify, self->stale_url,
                          self->stale_protocol, upload_send_plain, upload_ref (self),
                          (GDestroyNotify) upload_unref);
      return;
    }

  upload_send (self);
}

/* An upload cut off in an earlier run cannot be resumed: a plain PUT or POST starts over. */
static BgResponse *
upload_recover (BgJob *job)
{
  return NULL;
}

/* A resumable upload's resource on the server is deleted. */
static void
upload_discard (BgJob *job)
{
  bg_resumable_discard (job);
}

const BgTransferClass bg_upload_transfer = {
  .prepare_new = upload_prepare_new,
  .build = upload_build,
  .start = upload_start,
  .recover = upload_recover,
  .discard = upload_discard,
};
