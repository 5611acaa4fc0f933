/* bg-upload.c: one upload attempt, streamed from the source file
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>

#include <glib/gi18n-lib.h>
#include <glib/gstdio.h>

#include "bg-engine-private.h"
#include "bg-error.h"
#include "bg-http-private.h"
#include "bg-source-stream-private.h"

#define RESPONSE_CHUNK_SIZE (64 * 1024)

/* How often the main context looks at what the sending thread has moved. */
#define PROGRESS_INTERVAL_MS 100

#define SOURCE_ATTRIBUTES \
  G_FILE_ATTRIBUTE_STANDARD_TYPE "," \
  G_FILE_ATTRIBUTE_STANDARD_SIZE "," \
  G_FILE_ATTRIBUTE_TIME_MODIFIED "," \
  G_FILE_ATTRIBUTE_TIME_MODIFIED_USEC "," \
  G_FILE_ATTRIBUTE_ACCESS_CAN_READ

typedef struct
{
  grefcount     ref_count;
  BgJob        *job;
  GCancellable *cancellable;
  SoupMessage  *msg;
  GSource      *progress_source;
  gint64        sent;           /* written by the sending thread, read atomically */
  gint64        received;       /* likewise, bytes of the answer */
  gint64        seen;           /* sent + received at the last progress update */
  gint64        size;
  gint64        mtime;
  gsize         max_body;
  guint         redirects;
  guint         done : 1;
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
  g_clear_object (&self->cancellable);
  g_clear_pointer (&self->job, bg_job_unref);
  g_free (self);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Upload, upload_unref)

static gint64
info_get_mtime_usec (GFileInfo *info)
{
  return (gint64) g_file_info_get_attribute_uint64 (info, G_FILE_ATTRIBUTE_TIME_MODIFIED) *
         G_USEC_PER_SEC +
         g_file_info_get_attribute_uint32 (info, G_FILE_ATTRIBUTE_TIME_MODIFIED_USEC);
}

/* Checks that @file is a readable regular file and returns its size and mtime. */
static gboolean
stat_source (GFile   *file,
             gint64  *size,
             gint64  *mtime,
             GError **error)
{
  g_autoptr(GFileInfo) info = NULL;
  g_autofree char *name = g_file_get_parse_name (file);
  g_autoptr(GError) local_error = NULL;

  info = g_file_query_info (file, SOURCE_ATTRIBUTES, G_FILE_QUERY_INFO_NONE, NULL, &local_error);
  if (info == NULL)
    {
      if (g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                     _("The source file “%s” does not exist"), name);
      else
        g_set_error (error, local_error->domain, local_error->code,
                     _("Cannot read the source file “%s”: %s"), name, local_error->message);
      return FALSE;
    }

  if (g_file_info_get_file_type (info) != G_FILE_TYPE_REGULAR)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_REGULAR_FILE,
                   _("The source “%s” is not a regular file"), name);
      return FALSE;
    }

  if (g_file_info_has_attribute (info, G_FILE_ATTRIBUTE_ACCESS_CAN_READ) &&
      !g_file_info_get_attribute_boolean (info, G_FILE_ATTRIBUTE_ACCESS_CAN_READ))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
                   _("The source file “%s” is not readable"), name);
      return FALSE;
    }

  *size = g_file_info_get_size (info);
  *mtime = info_get_mtime_usec (info);

  return TRUE;
}

static gboolean
upload_prepare_new (BgEngine       *engine,
                    BgStoreRecord  *record,
                    GFile          *file,
                    GError        **error)
{
  g_autofree char *path = g_file_get_path (file);
  g_autoptr(GError) local_error = NULL;
  g_autoptr(SoupMessageHeaders) headers = NULL;

  if (path == NULL)
    {
      g_autofree char *name = g_file_get_parse_name (file);

      g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                   _("The source “%s” is not a local file"), name);
      return FALSE;
    }

  if (!stat_source (file, &record->source_size, &record->source_mtime, &local_error))
    {
      g_set_error_literal (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT, local_error->message);
      return FALSE;
    }

  g_free (record->file_path);
  record->file_path = g_steal_pointer (&path);

  headers = soup_message_headers_new (SOUP_MESSAGE_HEADERS_REQUEST);
  bg_http_decode_headers (record->request_headers, headers, NULL);
  g_free (record->idempotency_key);
  if (soup_message_headers_get_one (headers, "Idempotency-Key") != NULL)
    {
      record->idempotency_key =
        g_strdup (soup_message_headers_get_one (headers, "Idempotency-Key"));
    }
  else
    {
      g_autofree char *uuid = g_uuid_string_random ();

      /* A structured-field string, as the Idempotency-Key draft asks. */
      record->idempotency_key = g_strdup_printf ("\"%s\"", uuid);
    }

  return TRUE;
}

/* Runs on the sending thread. */
static void
body_progress_cb (gint64   offset,
                  gpointer user_data)
{
  Upload *self = user_data;

  __atomic_store_n (&self->sent, offset, __ATOMIC_RELAXED);
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
  g_autoptr(GInputStream) body = NULL;
  g_autofree char *path = g_file_get_path (bg_job_get_file (self->job));
  int fd;
  SoupMessageHeaders *headers = soup_message_get_request_headers (msg);
  const char *content_type;

  bg_http_copy_request_headers (copy_from, headers, same_origin);

  /* The same key on every attempt and in every run, so a server can drop a repeated request. */
  if (soup_message_headers_get_one (headers, "Idempotency-Key") == NULL &&
      record->idempotency_key != NULL)
    soup_message_headers_replace (headers, "Idempotency-Key", record->idempotency_key);

  content_type = soup_message_headers_get_content_type (headers, NULL);
  if (content_type == NULL)
    content_type = "application/octet-stream";

  fd = g_open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY, 0);
  if (fd < 0)
    {
      int saved_errno = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   _("Cannot open the source file “%s”: %s"), path, g_strerror (saved_errno));
      return NULL;
    }

  /* The stream calls back into the attempt, which outlives every message it sends. */
  __atomic_store_n (&self->sent, 0, __ATOMIC_RELAXED);
  body = bg_source_stream_new (fd, self->size, body_progress_cb, self);
  soup_message_set_request_body (msg, content_type, body, self->size);
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
  gint64 size;
  gint64 mtime;

  g_ref_count_init (&self->ref_count);
  self->job = bg_job_ref (job);
  self->cancellable = g_object_ref (bg_job_get_cancellable (job));
  self->max_body = bg_engine_get_max_response_size (engine);

  uri = g_uri_parse (bg_job_get_request_uri (job), SOUP_HTTP_URI_FLAGS, error);
  if (uri == NULL || !bg_http_uri_is_acceptable (uri, error))
    return NULL;

  stored = soup_message_headers_new (SOUP_MESSAGE_HEADERS_REQUEST);
  if (!bg_http_decode_headers (bg_job_get_request_headers (job), stored, error))
    return NULL;

  if (!stat_source (bg_job_get_file (job), &size, &mtime, error))
    return NULL;

  /* Never half old and half new: a changed source is sent whole, from the first byte. */
  if (record->source_size != size || record->source_mtime != mtime)
    {
      record->source_size = size;
      record->source_mtime = mtime;
      bg_job_note_restart (job);
    }

  self->size = size;
  self->mtime = mtime;

  msg = new_message (self, record->method, uri, stored, TRUE, error);
  if (msg == NULL)
    return NULL;

  bg_job_progress (job, 0, self->size);
  bg_job_set_attempt_data (job, g_steal_pointer (&self), (GDestroyNotify) upload_unref);

  return g_steal_pointer (&msg);
}

static void
upload_finish (Upload     *self,
               BgResponse *response)
{
  g_autoptr(Upload) hold = upload_ref (self);

  if (self->done)
    return;
  self->done = TRUE;

  if (self->progress_source != NULL)
    {
      g_source_destroy (self->progress_source);
      g_clear_pointer (&self->progress_source, g_source_unref);
    }

  bg_job_attempt_finished (self->job, response);
}

static void
upload_fail (Upload       *self,
             const GError *error)
{
  g_autoptr(BgResponse) response = NULL;

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

/* Builds the outcome once the answer's body has been read (or capped). */
static void
upload_complete (Upload *self,
                 GBytes *body)
{
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(GError) error = NULL;
  guint status = soup_message_get_status (self->msg);
  gint64 size;
  gint64 mtime;

  if (!stat_source (bg_job_get_file (self->job), &size, &mtime, &error))
    {
      response = bg_job_make_response (self->job, BG_RESPONSE_FAILED, self->msg, body, error);
      upload_finish (self, response);
      return;
    }

  if (size != self->size || mtime != self->mtime)
    {
      /* The file changed while it was being sent: what the server got may be a mix. */
      error = g_error_new (BG_ERROR, BG_ERROR_IO,
                           _("The source file changed while it was being sent"));
      response = bg_job_make_response (self->job, BG_RESPONSE_RETRY, self->msg, body, error);
      upload_finish (self, response);
      return;
    }

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

/* The request is sent with libsoup's blocking API on a worker thread (possible since libsoup
 * 3.2): its body is spliced into the connection in small blocks, and on the main context every
 * block would cost main-loop iterations; on a thread it costs a read and a write.  The thread
 * touches only the message, the body stream and two counters; everything else stays here. */
typedef struct
{
  SoupSession *session;
  SoupMessage *msg;
  gsize        max_body;
  gint64      *received;
  GBytes      *body;
} SendData;

static void
send_data_free (SendData *data)
{
  g_clear_object (&data->session);
  g_clear_object (&data->msg);
  g_clear_pointer (&data->body, g_bytes_unref);
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

  in = soup_session_send (data->session, data->msg, cancellable, &error);
  if (in == NULL)
    {
      g_task_return_error (task, error);
      return;
    }

  status = soup_message_get_status (data->msg);
  if (status != 307 && status != 308 && data->max_body > 0)
    {
      data->body = read_capped (in, data->max_body, data->received, cancellable, &error);
      if (data->body == NULL)
        {
          g_task_return_error (task, error);
          return;
        }
    }

  g_task_return_boolean (task, TRUE);
}

static gboolean
progress_tick_cb (gpointer user_data)
{
  Upload *self = user_data;
  gint64 sent = __atomic_load_n (&self->sent, __ATOMIC_RELAXED);
  gint64 received = __atomic_load_n (&self->received, __ATOMIC_RELAXED);

  /* Any byte in either direction counts as activity for the stall check. */
  if (sent + received != self->seen)
    {
      self->seen = sent + received;
      bg_job_progress (self->job, sent, self->size);
    }

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
  guint status;

  if (self->done)
    return;

  progress_tick_cb (self);

  if (!g_task_propagate_boolean (G_TASK (result), &error))
    {
      upload_fail (self, error);
      return;
    }

  status = soup_message_get_status (self->msg);

  /* Only 307 and 308 promise that the method and body may be sent again. */
  if ((status == 307 || status == 308) && follow_redirect (self))
    return;

  if (data->body == NULL)
    data->body = g_bytes_new (NULL, 0);
  upload_complete (self, data->body);
}

static void
upload_send (Upload *self)
{
  g_autoptr(GTask) task = NULL;
  SendData *data = g_new0 (SendData, 1);

  data->session = g_object_ref (bg_engine_get_session (bg_job_get_engine (self->job)));
  data->msg = g_object_ref (self->msg);
  data->max_body = self->max_body;
  data->received = &self->received;

  if (self->progress_source == NULL)
    {
      g_autoptr(GMainContext) context = g_main_context_ref_thread_default ();

      self->progress_source = g_timeout_source_new (PROGRESS_INTERVAL_MS);
      g_source_set_callback (self->progress_source, progress_tick_cb, self, NULL);
      g_source_set_static_name (self->progress_source, "[bg] upload progress");
      g_source_attach (self->progress_source, context);
    }

  /* The task holds the attempt, so the counters outlive the thread. */
  task = g_task_new (NULL, self->cancellable, sent_cb, upload_ref (self));
  g_task_set_source_tag (task, upload_send);
  g_task_set_task_data (task, data, (GDestroyNotify) send_data_free);
  g_task_run_in_thread (task, send_thread);
}

static void
upload_start (BgJob       *job,
              SoupMessage *msg)
{
  Upload *self = bg_job_get_attempt_data (job);

  g_assert (self != NULL);

  g_set_object (&self->msg, msg);
  upload_send (self);
}

/* An upload cut off in an earlier run cannot be resumed: a plain PUT or POST starts over. */
static BgResponse *
upload_recover (BgJob *job)
{
  return NULL;
}

static void
upload_discard (BgJob *job)
{
}

const BgTransferClass bg_upload_transfer = {
  .prepare_new = upload_prepare_new,
  .build = upload_build,
  .start = upload_start,
  .recover = upload_recover,
  .discard = upload_discard,
};
