/* bg-resumable-upload.c: uploads that go on from the server's offset (tus 1.0, IETF draft)
 *
 * An attempt runs on a worker thread with libsoup's blocking API, one request after the other:
 * the AUTO probe (OPTIONS, once a day per target), then either the stored upload resource is
 * asked for its offset (HEAD) or a new one is made, and the rest of the source is appended
 * (PATCH), in pieces no larger than the task's chunk-size and the server's limits.  What the
 * server says is the truth about what it has: a drop, a 409 or a kill is followed by asking it
 * again, never by counting what was sent.
 *
 * The upload URL is a capability: it is stored (the database is 0600) before the first byte of
 * the body is sent, so a kill right after the creation resumes that upload, and it appears in
 * no message.  The record belongs to the engine's context: the thread hands what must be
 * stored to it and waits until it is.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gi18n-lib.h>
#include <glib/gstdio.h>

#include "bg-error.h"
#include "bg-http-private.h"
#include "bg-resumable-private.h"
#include "bg-source-stream-private.h"
#include "bg-task-private.h"

#define PROGRESS_INTERVAL_MS 100
/* How long an OPTIONS answer is kept for a target. */
#define PROBE_LIFETIME_USEC (G_GINT64_CONSTANT (24) * 60 * 60 * G_USEC_PER_SEC)
/* A tus upload this small goes with its creation request (creation-with-upload). */
#define TUS_CREATION_WITH_UPLOAD_MAX (1024 * 1024)
/* The most bytes of an answer read when the answer is not the one the app gets. */
#define SMALL_ANSWER_MAX (64 * 1024)
#define READ_CHUNK (64 * 1024)
/* An attempt gives up when the server drops this many appends in a row with no progress, or
 * its upload resource goes away this many times. */
#define MAX_DROPS    3
#define MAX_RESTARTS 2
/* How often a thread waiting for the engine's context looks at its cancellable. */
#define MAIN_WAIT_USEC (100 * 1000)

#define IETF_INTEROP_VERSION "8"
#define IETF_CONTENT_TYPE "application/partial-upload"
#define TUS_VERSION "1.0.0"
#define TUS_CONTENT_TYPE "application/offset+octet-stream"

BgResumableTestAppendHook bg_resumable_test_append_hook = NULL;

typedef enum
{
  OUTCOME_NONE,
  OUTCOME_RESPONSE,       /* final_msg and final_body are the app's answer */
  OUTCOME_ERROR,          /* error, with final_kind */
  OUTCOME_PLAIN,          /* no resumable protocol: the attempt is a plain upload */
  OUTCOME_SOURCE_CHANGED,
} Outcome;

typedef struct
{
  grefcount            ref_count;
  BgJob               *job;
  SoupSession         *session;
  GMainContext        *context;
  GCancellable        *cancellable;
  GSource             *progress_source;

  /* Set on the engine's context before the thread starts. */
  BgUploadProtocol     requested;
  gboolean             allow_tus;
  gint64               chunk_size;
  gsize                max_body;
  GUri                *target;
  char                *method;
  SoupMessageHeaders  *app_headers;
  char                *path;
  int                  fd;
  gboolean             verify;
  BgThrottle          *task_throttle;   /* the task's and the queue's bandwidth caps */
  BgThrottle          *queue_throttle;
  char                *stale_url;
  BgUploadProtocol     stale_protocol;
  char                *probe_target;
  gboolean             have_probe;
  BgUploadProtocol     probe_protocol;
  char                *probe_extensions;

  /* The thread's from then on. */
  BgSourceId           source;       /* the source when the thread began */
  gint64               size;
  BgUploadProtocol     protocol;
  char                *extensions;   /* tus: Tus-Extension */
  char                *upload_url;
  GUri                *upload_uri;
  BgUploadProtocol     url_protocol;
  gint64               upload_expires;
  gint64               offset;       /* the server's, as last heard */
  gint64               max_size;     /* -1: none known */
  gint64               max_append;   /* -1: none known */
  gint64               chunk_start;  /* where the body being sent begins */
  SoupMessage         *last_msg;     /* the last answer that said where the upload is */

  /* Read on the engine's context. */
  gint64               sent;         /* atomic: bytes the server has or is being sent */
  gint64               acked;        /* atomic: the server's offset */
  gint64               seen_sent;
  gint64               seen_acked;

  Outcome              outcome;
  BgResponseKind       final_kind;
  SoupMessage         *final_msg;
  GBytes              *final_body;
  GError              *error;

  BgResumablePlainFunc plain;
  gpointer             plain_data;
  GDestroyNotify       plain_data_free;
} Resumable;

static Resumable *
resumable_ref (Resumable *self)
{
  g_ref_count_inc (&self->ref_count);
  return self;
}

static void
resumable_unref (Resumable *self)
{
  if (!g_ref_count_dec (&self->ref_count))
    return;

  g_assert (self->progress_source == NULL);

  if (self->plain_data_free != NULL)
    self->plain_data_free (self->plain_data);
  if (self->fd >= 0)
    close (self->fd);
  g_clear_pointer (&self->job, bg_job_unref);
  g_clear_object (&self->session);
  g_clear_pointer (&self->context, g_main_context_unref);
  g_clear_object (&self->cancellable);
  g_clear_pointer (&self->target, g_uri_unref);
  g_free (self->method);
  g_clear_pointer (&self->app_headers, soup_message_headers_unref);
  g_free (self->path);
  g_clear_pointer (&self->task_throttle, bg_throttle_unref);
  g_clear_pointer (&self->queue_throttle, bg_throttle_unref);
  g_free (self->stale_url);
  g_free (self->probe_target);
  g_free (self->probe_extensions);
  g_free (self->extensions);
  g_free (self->upload_url);
  g_clear_pointer (&self->upload_uri, g_uri_unref);
  g_clear_object (&self->last_msg);
  g_clear_object (&self->final_msg);
  g_clear_pointer (&self->final_body, g_bytes_unref);
  g_clear_error (&self->error);
  g_free (self);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Resumable, resumable_unref)

gboolean
bg_resumable_wanted (BgStoreRecord *record)
{
  g_assert (record != NULL);

  return record->upload_protocol != BG_UPLOAD_PROTOCOL_PLAIN;
}

/* --- Small parsers ------------------------------------------------------------------------- */

/* A non-negative Integer of a Structured Field (parameters ignored); -1 when absent or not. */
static gint64
parse_sf_integer (const char *value)
{
  g_autofree char *item = NULL;
  guint64 n;

  if (value == NULL)
    return -1;
  item = g_strstrip (g_strndup (value, strcspn (value, ";")));
  if (item[0] == '\0' || strlen (item) > 15 ||
      !g_ascii_string_to_unsigned (item, 10, 0, G_MAXINT64, &n, NULL))
    return -1;
  return (gint64) n;
}

/* A Boolean of a Structured Field: 1, 0, or -1 when absent or not one. */
static int
parse_sf_boolean (const char *value)
{
  g_autofree char *item = NULL;

  if (value == NULL)
    return -1;
  item = g_strstrip (g_strndup (value, strcspn (value, ";")));
  if (g_str_equal (item, "?1"))
    return 1;
  if (g_str_equal (item, "?0"))
    return 0;
  return -1;
}

/* Upload-Limit (a Dictionary): max-size and max-append-size, where present. */
static void
parse_upload_limit (Resumable          *self,
                    SoupMessageHeaders *headers)
{
  const char *value = soup_message_headers_get_list (headers, "Upload-Limit");
  g_auto(GStrv) members = NULL;

  if (value == NULL)
    return;

  members = g_strsplit (value, ",", -1);
  for (guint i = 0; members[i] != NULL; i++)
    {
      g_auto(GStrv) pair = g_strsplit (g_strstrip (members[i]), "=", 2);
      gint64 n;

      if (pair[0] == NULL || pair[1] == NULL)
        continue;
      n = parse_sf_integer (pair[1]);
      if (n < 0)
        continue;
      if (g_str_equal (pair[0], "max-size"))
        self->max_size = n;
      else if (g_str_equal (pair[0], "max-append-size") && n > 0)
        self->max_append = n;
    }
}

static gboolean
header_lists (SoupMessageHeaders *headers,
              const char         *name,
              const char         *token)
{
  const char *value = soup_message_headers_get_list (headers, name);

  if (value == NULL)
    return FALSE;

  /* Media types may carry parameters: each member is looked at up to its ";". */
  {
    g_auto(GStrv) members = g_strsplit (value, ",", -1);

    for (guint i = 0; members[i] != NULL; i++)
      {
        g_autofree char *item = g_strndup (members[i], strcspn (members[i], ";"));

        if (g_ascii_strcasecmp (g_strstrip (item), token) == 0)
          return TRUE;
      }
  }

  return FALSE;
}

static gboolean
tus_has_extension (Resumable  *self,
                   const char *extension)
{
  g_auto(GStrv) members = NULL;

  if (self->extensions == NULL)
    return FALSE;

  members = g_strsplit (self->extensions, ",", -1);
  for (guint i = 0; members[i] != NULL; i++)
    if (g_str_equal (g_strstrip (members[i]), extension))
      return TRUE;

  return FALSE;
}

static gboolean
same_origin (GUri *a,
             GUri *b)
{
  return g_ascii_strcasecmp (g_uri_get_scheme (a), g_uri_get_scheme (b)) == 0 &&
         g_ascii_strcasecmp (g_uri_get_host (a), g_uri_get_host (b)) == 0 &&
         g_uri_get_port (a) == g_uri_get_port (b);
}

/* The key of the probe cache: the target's origin and path, without its query or userinfo. */
static char *
probe_key (GUri *uri)
{
  return g_uri_join (G_URI_FLAGS_NONE, g_uri_get_scheme (uri), NULL, g_uri_get_host (uri),
                     g_uri_get_port (uri), g_uri_get_path (uri), NULL, NULL);
}

/* --- Calls to the engine's context --------------------------------------------------------- */

typedef enum
{
  CALL_SAVE_RESOURCE,
  CALL_NOTE_RESTART,
  CALL_SAVE_PROBE,
  CALL_SET_PROTOCOL,
} CallKind;

typedef struct
{
  Resumable *self;
  CallKind   kind;
  char      *url;
  char      *extensions;
  int        protocol;
  gint64     expires;
  gint64     offset;
  GMutex     mutex;
  GCond      cond;
  gboolean   done;
} MainCall;

static void
main_call_clear (gpointer data)
{
  MainCall *call = data;

  g_clear_pointer (&call->self, resumable_unref);
  g_free (call->url);
  g_free (call->extensions);
  g_mutex_clear (&call->mutex);
  g_cond_clear (&call->cond);
}

static void
main_call_release (gpointer data)
{
  g_atomic_rc_box_release_full (data, main_call_clear);
}

static MainCall *
main_call_new (Resumable *self,
               CallKind   kind)
{
  MainCall *call = g_atomic_rc_box_new0 (MainCall);

  call->self = resumable_ref (self);
  call->kind = kind;
  g_mutex_init (&call->mutex);
  g_cond_init (&call->cond);

  return call;
}

static gboolean
main_call_cb (gpointer data)
{
  MainCall *call = data;
  Resumable *self = call->self;
  BgStoreRecord *record = bg_job_get_record (self->job);
  g_autoptr(GError) error = NULL;

  switch (call->kind)
    {
    case CALL_SAVE_RESOURCE:
      g_free (record->upload_url);
      record->upload_url = g_strdup (call->url);
      record->upload_url_protocol = call->url != NULL ? call->protocol : BG_UPLOAD_PROTOCOL_AUTO;
      record->upload_expires = call->url != NULL ? call->expires : 0;
      record->checkpoint = call->offset;
      bg_job_save_progress (self->job);
      break;

    case CALL_NOTE_RESTART:
      bg_job_note_restart (self->job);
      break;

    case CALL_SAVE_PROBE:
      if (!bg_store_save_probe (bg_engine_get_store (bg_job_get_engine (self->job)), call->url,
                                call->protocol, call->extensions, g_get_real_time (), &error))
        g_warning ("Could not keep what the upload server offers: %s", error->message);
      break;

    case CALL_SET_PROTOCOL:
      bg_task_set_upload_protocol (bg_job_get_task (self->job), call->protocol);
      break;

    default:
      g_assert_not_reached ();
    }

  g_mutex_lock (&call->mutex);
  call->done = TRUE;
  g_cond_signal (&call->cond);
  g_mutex_unlock (&call->mutex);

  return G_SOURCE_REMOVE;
}

/* Hands @call to the engine's context; with @wait, returns once it ran there (TRUE) or the
 * attempt was cancelled meanwhile (FALSE, with @error set).  Takes @call. */
static gboolean
main_call_run (MainCall  *call,
               gboolean   wait,
               GError   **error)
{
  Resumable *self = call->self;
  gboolean done;

  g_main_context_invoke_full (self->context, G_PRIORITY_DEFAULT, main_call_cb,
                              g_atomic_rc_box_acquire (call), main_call_release);

  if (!wait)
    {
      main_call_release (call);
      return TRUE;
    }

  g_mutex_lock (&call->mutex);
  while (!call->done && !g_cancellable_is_cancelled (self->cancellable))
    g_cond_wait_until (&call->cond, &call->mutex, g_get_monotonic_time () + MAIN_WAIT_USEC);
  done = call->done;
  g_mutex_unlock (&call->mutex);
  main_call_release (call);

  if (!done)
    g_cancellable_set_error_if_cancelled (self->cancellable, error);

  return done;
}

/* Stores the upload resource (or its absence) with the task and waits until it is stored. */
static gboolean
save_resource (Resumable  *self,
               GError    **error)
{
  MainCall *call = main_call_new (self, CALL_SAVE_RESOURCE);

  call->url = g_strdup (self->upload_url);
  call->protocol = self->url_protocol;
  call->expires = self->upload_expires;
  call->offset = self->offset;

  return main_call_run (call, TRUE, error);
}

static void
forget_resource (Resumable *self)
{
  g_clear_pointer (&self->upload_url, g_free);
  g_clear_pointer (&self->upload_uri, g_uri_unref);
  self->upload_expires = 0;
  self->offset = 0;
  __atomic_store_n (&self->acked, 0, __ATOMIC_RELAXED);
  __atomic_store_n (&self->sent, 0, __ATOMIC_RELAXED);
}

/* --- Requests ------------------------------------------------------------------------------ */

static void
body_progress_cb (gint64   offset,
                  gpointer user_data)
{
  Resumable *self = user_data;

  __atomic_store_n (&self->sent, self->chunk_start + offset, __ATOMIC_RELAXED);
}

/* A request to @uri for @protocol.  A creation carries the app's headers; the requests to the
 * upload resource carry its credentials only, and only to the target's origin. */
static SoupMessage *
new_request (Resumable        *self,
             const char       *method,
             GUri             *uri,
             BgUploadProtocol  protocol,
             gboolean          creation)
{
  g_autoptr(SoupMessage) msg = soup_message_new_from_uri (method, uri);
  SoupMessageHeaders *headers = soup_message_get_request_headers (msg);
  gboolean same = same_origin (uri, self->target);
  SoupMessageHeadersIter iter;
  const char *name;
  const char *value;

  soup_message_headers_iter_init (&iter, self->app_headers);
  while (soup_message_headers_iter_next (&iter, &name, &value))
    {
      if (bg_http_is_credential_header (name))
        {
          if (same)
            soup_message_headers_append (headers, name, value);
          continue;
        }
      if (!creation ||
          g_ascii_strcasecmp (name, "Host") == 0 ||
          g_ascii_strcasecmp (name, "Content-Length") == 0 ||
          g_ascii_strcasecmp (name, "Expect") == 0 ||
          (protocol == BG_UPLOAD_PROTOCOL_TUS &&
           g_ascii_strcasecmp (name, "Content-Type") == 0))
        continue;
      soup_message_headers_append (headers, name, value);
    }

  if (protocol == BG_UPLOAD_PROTOCOL_TUS)
    soup_message_headers_replace (headers, "Tus-Resumable", TUS_VERSION);
  else if (protocol == BG_UPLOAD_PROTOCOL_IETF)
    soup_message_headers_replace (headers, "Upload-Draft-Interop-Version", IETF_INTEROP_VERSION);

  soup_message_add_flags (msg, SOUP_MESSAGE_NO_REDIRECT);

  return g_steal_pointer (&msg);
}

/* Sends @msg and reads at most @max_answer bytes of its answer into *@answer (when not NULL).
 * FALSE with @error when no answer came. */
static gboolean
send_request (Resumable    *self,
              SoupMessage  *msg,
              gsize         max_answer,
              GBytes      **answer,
              GError      **error)
{
  g_autoptr(GInputStream) in = NULL;
  g_autoptr(GByteArray) bytes = g_byte_array_new ();
  g_autofree guint8 *chunk = NULL;

  in = soup_session_send (self->session, msg, self->cancellable, error);
  if (in == NULL)
    return FALSE;

  chunk = g_malloc (READ_CHUNK);
  while (TRUE)
    {
      gssize n = g_input_stream_read (in, chunk, READ_CHUNK, self->cancellable, error);

      if (n < 0)
        return FALSE;
      if (n == 0)
        break;
      if (bytes->len < max_answer)
        g_byte_array_append (bytes, chunk, MIN ((gsize) n, max_answer - bytes->len));
      else if (bytes->len >= SMALL_ANSWER_MAX)
        break;
    }
  g_input_stream_close (in, NULL, NULL);

  if (answer != NULL)
    *answer = g_byte_array_free_to_bytes (g_steal_pointer (&bytes));

  return TRUE;
}

static void
set_response (Resumable   *self,
              SoupMessage *msg,
              GBytes      *body)
{
  SoupMessageHeaders *headers = soup_message_get_response_headers (msg);

  /* The upload URL is the server's and the library's, never the app's to see. */
  if (soup_message_get_status (msg) == SOUP_STATUS_CREATED)
    soup_message_headers_remove (headers, "Location");

  self->outcome = OUTCOME_RESPONSE;
  self->final_kind = bg_response_kind_for_status (soup_message_get_status (msg));
  g_set_object (&self->final_msg, msg);
  g_clear_pointer (&self->final_body, g_bytes_unref);
  self->final_body = body != NULL ? g_bytes_ref (body) : g_bytes_new (NULL, 0);
}

static void
set_error (Resumable      *self,
           BgResponseKind  kind,
           GError         *error)
{
  self->outcome = OUTCOME_ERROR;
  self->final_kind = kind;
  g_clear_error (&self->error);
  self->error = error;
}

static void
set_transport_error (Resumable *self,
                     GError    *error)
{
  set_error (self, bg_http_classify_error (error), error);
}

/* What a status without reason phrase (as @tus/server sends them) is called; the server's
 * phrase is made valid UTF-8, for messages. */
static char *
status_phrase (SoupMessage *msg)
{
  const char *reason = soup_message_get_reason_phrase (msg);

  if (reason == NULL || reason[0] == '\0')
    reason = soup_status_get_phrase (soup_message_get_status (msg));

  return g_utf8_make_valid (reason != NULL ? reason : "", -1);
}

/* Deletes an upload resource; what the server answers does not matter. */
static void
delete_resource (Resumable        *self,
                 const char       *url,
                 BgUploadProtocol  protocol)
{
  g_autoptr(GUri) uri = g_uri_parse (url, SOUP_HTTP_URI_FLAGS, NULL);
  g_autoptr(SoupMessage) msg = NULL;

  if (uri == NULL)
    return;

  msg = new_request (self, SOUP_METHOD_DELETE, uri, protocol, FALSE);
  send_request (self, msg, 0, NULL, NULL);
}

/* --- The protocol -------------------------------------------------------------------------- */

/* Asks the target with OPTIONS what it offers; the answer is kept for a day, negatives too. */
static gboolean
probe (Resumable  *self,
       GError    **error)
{
  g_autoptr(SoupMessage) msg = new_request (self, SOUP_METHOD_OPTIONS, self->target,
                                            BG_UPLOAD_PROTOCOL_AUTO, TRUE);
  SoupMessageHeaders *headers;
  MainCall *call;
  guint status;

  if (!send_request (self, msg, 0, NULL, error))
    return FALSE;

  status = soup_message_get_status (msg);
  headers = soup_message_get_response_headers (msg);

  if (header_lists (headers, "Tus-Resumable", TUS_VERSION) ||
      header_lists (headers, "Tus-Version", TUS_VERSION))
    {
      self->probe_protocol = BG_UPLOAD_PROTOCOL_TUS;
      g_free (self->probe_extensions);
      self->probe_extensions = g_strdup (soup_message_headers_get_list (headers,
                                                                        "Tus-Extension"));
    }
  else if (SOUP_STATUS_IS_SUCCESSFUL (status) &&
           (header_lists (headers, "Accept-Patch", IETF_CONTENT_TYPE) ||
            soup_message_headers_get_one (headers, "Upload-Limit") != NULL))
    {
      self->probe_protocol = BG_UPLOAD_PROTOCOL_IETF;
      parse_upload_limit (self, headers);
    }
  else
    {
      self->probe_protocol = BG_UPLOAD_PROTOCOL_PLAIN;
    }
  self->have_probe = TRUE;

  /* A server that wants credentials first has not said what it offers. */
  if (status == SOUP_STATUS_UNAUTHORIZED || status == SOUP_STATUS_PROXY_AUTHENTICATION_REQUIRED)
    return TRUE;

  call = main_call_new (self, CALL_SAVE_PROBE);
  call->url = g_strdup (self->probe_target);
  call->protocol = self->probe_protocol;
  call->extensions = g_strdup (self->probe_extensions);
  main_call_run (call, FALSE, NULL);

  return TRUE;
}

static gboolean
decide_protocol (Resumable  *self,
                 GError    **error)
{
  MainCall *call;

  if (self->upload_url != NULL && self->requested == BG_UPLOAD_PROTOCOL_AUTO)
    {
      /* An earlier attempt found it out and made an upload resource: carry on with it. */
      self->protocol = self->url_protocol;
    }
  else if (self->requested == BG_UPLOAD_PROTOCOL_AUTO)
    {
      if (!self->have_probe && !probe (self, error))
        return FALSE;
      self->protocol = self->probe_protocol;
      if (self->protocol == BG_UPLOAD_PROTOCOL_TUS && !self->allow_tus)
        self->protocol = BG_UPLOAD_PROTOCOL_PLAIN;
    }
  else
    {
      self->protocol = self->requested;
    }

  /* tus: what the server offers decides on creation-with-upload and checksums. */
  if (self->protocol == BG_UPLOAD_PROTOCOL_TUS)
    {
      if (!self->have_probe && !probe (self, error))
        return FALSE;
      if (self->probe_protocol == BG_UPLOAD_PROTOCOL_TUS)
        self->extensions = g_strdup (self->probe_extensions);
    }

  call = main_call_new (self, CALL_SET_PROTOCOL);
  call->protocol = self->protocol;
  main_call_run (call, FALSE, NULL);

  return TRUE;
}

/* The source is still the file the thread began with. */
static gboolean
source_unchanged (Resumable *self)
{
  struct stat st;
  BgSourceId now;

  /* The path must still name the file the thread began with. */
  if (fstat (self->fd, &st) != 0 || stat (self->path, &st) != 0)
    return FALSE;

  bg_source_id_from_stat (&st, &now);
  return bg_source_id_equal (&now, &self->source);
}

/* A body of @length bytes of the source from @start on. */
static GInputStream *
new_body (Resumable  *self,
          gint64      start,
          gint64      length,
          GError    **error)
{
  int fd = fcntl (self->fd, F_DUPFD_CLOEXEC, 0);
  GInputStream *body;

  if (fd < 0)
    {
      int errsv = errno;
      g_autofree char *name = g_filename_display_name (self->path);

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errsv),
                   _("Cannot read the source file “%s”: %s"), name, g_strerror (errsv));
      return NULL;
    }

  self->chunk_start = start;
  body = bg_source_stream_new_range (fd, start, length, self->verify, body_progress_cb, self);
  bg_source_stream_set_throttle (BG_SOURCE_STREAM (body), self->task_throttle,
                                 self->queue_throttle);
  return body;
}

/* After a body was sent: whether the source is the same, and for a fresh one whether the bytes
 * sent are the file's. */
static gboolean
body_was_source (Resumable    *self,
                 GInputStream *body,
                 gint64        start,
                 gint64        length)
{
  g_autofree char *sent = NULL;
  g_autofree char *file = NULL;

  if (!source_unchanged (self))
    return FALSE;
  if (!self->verify || body == NULL)
    return TRUE;

  sent = bg_source_stream_get_digest (BG_SOURCE_STREAM (body));
  if (sent == NULL)
    return TRUE;
  file = bg_source_digest_range (self->fd, start, length, G_CHECKSUM_SHA256,
                                 self->cancellable, NULL);
  return file != NULL && g_str_equal (sent, file);
}

/* The source changed: the server's upload holds bytes of a file that no longer exists.  It is
 * deleted and forgotten; the next attempt makes a new one from the file as it is then. */
static void
terminate_for_changed_source (Resumable *self)
{
  g_autofree char *name = g_filename_display_name (self->path);

  if (self->upload_url != NULL)
    delete_resource (self, self->upload_url, self->url_protocol);
  forget_resource (self);
  save_resource (self, NULL);

  self->outcome = OUTCOME_SOURCE_CHANGED;
  g_clear_error (&self->error);
  self->error = g_error_new (BG_ERROR, BG_ERROR_IO,
                             _("The source file “%s” changed while it was being sent"), name);
}

static void
set_too_large (Resumable *self,
               gint64     max_size)
{
  g_autofree char *name = g_filename_display_name (self->path);

  if (self->upload_url != NULL)
    {
      delete_resource (self, self->upload_url, self->url_protocol);
      forget_resource (self);
      save_resource (self, NULL);
    }

  set_error (self, BG_RESPONSE_REJECTED,
             g_error_new (BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                          _("The source file “%s” has %" G_GINT64_FORMAT " bytes, more than the "
                            "%" G_GINT64_FORMAT " the server accepts in one upload (its "
                            "Upload-Limit max-size)"),
                          name, self->size, max_size));
}

typedef enum
{
  STEP_OK,       /* go on appending from self->offset */
  STEP_DONE,     /* the outcome is set */
  STEP_GONE,     /* the upload resource is no more: make a new one */
  STEP_ASK,      /* ask the server where the upload is (HEAD) */
} Step;

/* Makes a new upload resource and stores its URL before any byte of the body is sent (except
 * for a small tus upload that goes with its creation). */
static Step
create (Resumable *self)
{
  g_autoptr(SoupMessage) msg = NULL;
  g_autoptr(GInputStream) body = NULL;
  g_autoptr(GBytes) answer = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GUri) location_uri = NULL;
  SoupMessageHeaders *request_headers;
  SoupMessageHeaders *headers;
  const char *location;
  gboolean with_body = FALSE;
  guint status;

  if (self->protocol == BG_UPLOAD_PROTOCOL_IETF)
    {
      msg = new_request (self, self->method, self->target, self->protocol, TRUE);
      request_headers = soup_message_get_request_headers (msg);
      soup_message_headers_replace (request_headers, "Upload-Complete", "?0");
    }
  else
    {
      g_autofree char *basename = g_path_get_basename (self->path);
      g_autofree char *encoded = g_base64_encode ((const guchar *) basename, strlen (basename));
      g_autofree char *metadata = g_strdup_printf ("filename %s", encoded);

      msg = new_request (self, SOUP_METHOD_POST, self->target, self->protocol, TRUE);
      request_headers = soup_message_get_request_headers (msg);
      soup_message_headers_replace (request_headers, "Upload-Metadata", metadata);
      with_body = self->size > 0 && self->size <= TUS_CREATION_WITH_UPLOAD_MAX &&
                  tus_has_extension (self, "creation-with-upload");
    }

  {
    g_autofree char *length = g_strdup_printf ("%" G_GINT64_FORMAT, self->size);

    soup_message_headers_replace (request_headers, "Upload-Length", length);
  }

  if (with_body)
    {
      body = new_body (self, 0, self->size, &error);
      if (body == NULL)
        {
          set_error (self, BG_RESPONSE_FAILED, g_steal_pointer (&error));
          return STEP_DONE;
        }
      soup_message_set_request_body (msg, TUS_CONTENT_TYPE, body, self->size);
    }
  else
    {
      g_autoptr(GBytes) empty = g_bytes_new (NULL, 0);
      const char *content_type = soup_message_headers_get_content_type (request_headers, NULL);

      soup_message_set_request_body_from_bytes (msg, content_type, empty);
    }

  if (!send_request (self, msg, self->max_body, &answer, &error))
    {
      set_transport_error (self, g_steal_pointer (&error));
      return STEP_DONE;
    }

  status = soup_message_get_status (msg);
  headers = soup_message_get_response_headers (msg);
  parse_upload_limit (self, headers);

  if (self->max_size >= 0 && self->size > self->max_size)
    {
      /* Refused (413) or made: either way the file cannot go there. */
      location = status == SOUP_STATUS_CREATED
                 ? soup_message_headers_get_one (headers, "Location") : NULL;
      if (location != NULL)
        location_uri = g_uri_parse_relative (soup_message_get_uri (msg), location,
                                             SOUP_HTTP_URI_FLAGS, NULL);
      if (location_uri != NULL)
        {
          g_autofree char *url = g_uri_to_string (location_uri);

          delete_resource (self, url, self->protocol);
        }
      set_too_large (self, self->max_size);
      return STEP_DONE;
    }

  if (!SOUP_STATUS_IS_SUCCESSFUL (status))
    {
      set_response (self, msg, answer);
      return STEP_DONE;
    }

  location = soup_message_headers_get_one (headers, "Location");
  if (status != SOUP_STATUS_CREATED || location == NULL ||
      (location_uri = g_uri_parse_relative (soup_message_get_uri (msg), location,
                                            SOUP_HTTP_URI_FLAGS, NULL)) == NULL ||
      !bg_http_uri_is_acceptable (location_uri, NULL))
    {
      g_autofree char *phrase = status_phrase (msg);

      set_error (self, BG_RESPONSE_FAILED,
                 g_error_new (BG_ERROR, BG_ERROR_PROTOCOL,
                              _("The server answered the creation of a resumable upload with "
                                "%u %s, which names no usable upload resource (Location)"),
                              status, phrase));
      return STEP_DONE;
    }

  self->upload_uri = g_steal_pointer (&location_uri);
  self->upload_url = g_uri_to_string (self->upload_uri);
  self->url_protocol = self->protocol;
  self->upload_expires = 0;
  if (self->protocol == BG_UPLOAD_PROTOCOL_TUS)
    {
      const char *expires = soup_message_headers_get_one (headers, "Upload-Expires");
      g_autoptr(GDateTime) when = expires != NULL
                                  ? soup_date_time_new_from_http_string (expires) : NULL;

      if (when != NULL)
        self->upload_expires = g_date_time_to_unix (when) * G_USEC_PER_SEC;
    }

  self->offset = 0;
  if (with_body)
    {
      gint64 offset = parse_sf_integer (soup_message_headers_get_one (headers, "Upload-Offset"));

      if (!body_was_source (self, body, 0, self->size))
        {
          terminate_for_changed_source (self);
          return STEP_DONE;
        }
      self->offset = offset >= 0 ? MIN (offset, self->size) : 0;
    }
  __atomic_store_n (&self->acked, self->offset, __ATOMIC_RELAXED);
  __atomic_store_n (&self->sent, self->offset, __ATOMIC_RELAXED);

  if (!save_resource (self, &error))
    {
      set_transport_error (self, g_steal_pointer (&error));
      return STEP_DONE;
    }

  g_set_object (&self->last_msg, msg);

  /* A tus upload that is complete (empty, or sent whole with its creation): the creation's
   * answer is the final one. */
  if (self->protocol == BG_UPLOAD_PROTOCOL_TUS && self->offset == self->size)
    {
      set_response (self, msg, answer);
      return STEP_DONE;
    }

  return STEP_OK;
}

/* Asks the upload resource where it is (HEAD). */
static Step
ask_offset (Resumable *self)
{
  g_autoptr(SoupMessage) msg = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) answer = NULL;
  SoupMessageHeaders *headers;
  gint64 offset;
  guint status;

  if (self->protocol == BG_UPLOAD_PROTOCOL_TUS && self->upload_expires != 0 &&
      g_get_real_time () >= self->upload_expires)
    return STEP_GONE;

  msg = new_request (self, SOUP_METHOD_HEAD, self->upload_uri, self->protocol, FALSE);
  if (!send_request (self, msg, 0, &answer, &error))
    {
      set_transport_error (self, g_steal_pointer (&error));
      return STEP_DONE;
    }

  status = soup_message_get_status (msg);
  headers = soup_message_get_response_headers (msg);

  if (status == SOUP_STATUS_NOT_FOUND || status == SOUP_STATUS_GONE ||
      status == SOUP_STATUS_FORBIDDEN)
    return STEP_GONE;

  if (!SOUP_STATUS_IS_SUCCESSFUL (status))
    {
      set_response (self, msg, answer);
      return STEP_DONE;
    }

  offset = parse_sf_integer (soup_message_headers_get_one (headers, "Upload-Offset"));
  if (offset < 0 || offset > self->size)
    {
      /* Not an upload resource this source can go on with. */
      return STEP_GONE;
    }

  if (self->protocol == BG_UPLOAD_PROTOCOL_IETF)
    {
      parse_upload_limit (self, headers);
      if (parse_sf_boolean (soup_message_headers_get_one (headers, "Upload-Complete")) == 1)
        {
          /* Complete, but its final answer was lost: this one stands for it. */
          self->offset = offset;
          __atomic_store_n (&self->acked, offset, __ATOMIC_RELAXED);
          __atomic_store_n (&self->sent, offset, __ATOMIC_RELAXED);
          set_response (self, msg, answer);
          return STEP_DONE;
        }
    }

  self->offset = offset;
  __atomic_store_n (&self->acked, offset, __ATOMIC_RELAXED);
  __atomic_store_n (&self->sent, offset, __ATOMIC_RELAXED);
  g_set_object (&self->last_msg, msg);

  return STEP_OK;
}

/* Sends the next piece of the source from self->offset. */
static Step
append (Resumable  *self,
        GError    **drop)
{
  g_autoptr(SoupMessage) msg = NULL;
  g_autoptr(GInputStream) body = NULL;
  g_autoptr(GBytes) answer = NULL;
  g_autoptr(GError) error = NULL;
  SoupMessageHeaders *request_headers;
  SoupMessageHeaders *headers;
  g_autofree char *offset_text = NULL;
  gint64 length = self->size - self->offset;
  gint64 start = self->offset;
  gint64 offset;
  gboolean last;
  guint status;

  if (self->chunk_size > 0)
    length = MIN (length, self->chunk_size);
  if (self->protocol == BG_UPLOAD_PROTOCOL_IETF && self->max_append > 0)
    length = MIN (length, self->max_append);
  last = start + length == self->size;

  if (bg_resumable_test_append_hook != NULL)
    bg_resumable_test_append_hook (self->protocol, self->upload_url, start);

  if (!source_unchanged (self))
    {
      terminate_for_changed_source (self);
      return STEP_DONE;
    }

  msg = new_request (self, "PATCH", self->upload_uri, self->protocol, FALSE);
  request_headers = soup_message_get_request_headers (msg);
  offset_text = g_strdup_printf ("%" G_GINT64_FORMAT, start);
  soup_message_headers_replace (request_headers, "Upload-Offset", offset_text);
  if (self->protocol == BG_UPLOAD_PROTOCOL_IETF)
    soup_message_headers_replace (request_headers, "Upload-Complete", last ? "?1" : "?0");

  if (self->protocol == BG_UPLOAD_PROTOCOL_TUS && tus_has_extension (self, "checksum"))
    {
      g_autofree char *hex = bg_source_digest_range (self->fd, start, length, G_CHECKSUM_SHA1,
                                                     self->cancellable, &error);
      guint8 raw[20];
      g_autofree char *encoded = NULL;
      g_autofree char *value = NULL;

      if (hex == NULL)
        {
          set_error (self, BG_RESPONSE_FAILED, g_steal_pointer (&error));
          return STEP_DONE;
        }
      for (guint i = 0; i < sizeof raw; i++)
        raw[i] = (guint8) ((g_ascii_xdigit_value (hex[2 * i]) << 4) |
                           g_ascii_xdigit_value (hex[2 * i + 1]));
      encoded = g_base64_encode (raw, sizeof raw);
      value = g_strdup_printf ("sha1 %s", encoded);
      soup_message_headers_replace (request_headers, "Upload-Checksum", value);
    }

  body = new_body (self, start, length, &error);
  if (body == NULL)
    {
      set_error (self, BG_RESPONSE_FAILED, g_steal_pointer (&error));
      return STEP_DONE;
    }
  soup_message_set_request_body (msg,
                                 self->protocol == BG_UPLOAD_PROTOCOL_TUS
                                 ? TUS_CONTENT_TYPE : IETF_CONTENT_TYPE,
                                 body, length);

  if (!send_request (self, msg, last ? self->max_body : SMALL_ANSWER_MAX, &answer, &error))
    {
      if (g_cancellable_is_cancelled (self->cancellable))
        {
          set_transport_error (self, g_steal_pointer (&error));
          return STEP_DONE;
        }
      if (!source_unchanged (self))
        {
          terminate_for_changed_source (self);
          return STEP_DONE;
        }
      /* A drop: the server knows how much of it arrived. */
      g_propagate_error (drop, g_steal_pointer (&error));
      return STEP_ASK;
    }

  if (!body_was_source (self, body, start, length))
    {
      terminate_for_changed_source (self);
      return STEP_DONE;
    }

  status = soup_message_get_status (msg);
  headers = soup_message_get_response_headers (msg);
  offset = parse_sf_integer (soup_message_headers_get_one (headers, "Upload-Offset"));
  if (self->protocol == BG_UPLOAD_PROTOCOL_IETF)
    parse_upload_limit (self, headers);

  if (status == SOUP_STATUS_NOT_FOUND || status == SOUP_STATUS_GONE ||
      (self->protocol == BG_UPLOAD_PROTOCOL_TUS && status == SOUP_STATUS_FORBIDDEN))
    return STEP_GONE;

  if (status == SOUP_STATUS_CONFLICT)
    {
      /* The server has another offset: the IETF server names it, tus is asked. */
      if (self->protocol == BG_UPLOAD_PROTOCOL_IETF && offset >= 0 && offset <= self->size &&
          offset != start)
        {
          self->offset = offset;
          __atomic_store_n (&self->acked, offset, __ATOMIC_RELAXED);
          __atomic_store_n (&self->sent, offset, __ATOMIC_RELAXED);
          return STEP_OK;
        }
      return STEP_ASK;
    }

  /* A checksum mismatch (tus 460): the piece is sent again. */
  if (self->protocol == BG_UPLOAD_PROTOCOL_TUS && status == 460)
    {
      g_set_error (drop, BG_ERROR, BG_ERROR_PROTOCOL,
                   _("The server found that a piece of the upload was damaged on the way"));
      return STEP_ASK;
    }

  /* A piece larger than the server takes now: its Upload-Limit says how large. */
  if (self->protocol == BG_UPLOAD_PROTOCOL_IETF &&
      status == SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE &&
      self->max_append > 0 && self->max_append < length)
    return STEP_ASK;

  if (self->protocol == BG_UPLOAD_PROTOCOL_IETF && last)
    {
      /* The final answer is the app's, whatever it says. */
      self->offset = self->size;
      __atomic_store_n (&self->acked, self->size, __ATOMIC_RELAXED);
      if (self->max_size >= 0 && self->size > self->max_size)
        {
          set_too_large (self, self->max_size);
          return STEP_DONE;
        }
      set_response (self, msg, answer);
      return STEP_DONE;
    }

  if (!SOUP_STATUS_IS_SUCCESSFUL (status))
    {
      if (self->max_size >= 0 && self->size > self->max_size)
        set_too_large (self, self->max_size);
      else
        set_response (self, msg, answer);
      return STEP_DONE;
    }

  if (offset < start || offset > self->size)
    offset = start + length;
  self->offset = offset;
  __atomic_store_n (&self->acked, offset, __ATOMIC_RELAXED);
  __atomic_store_n (&self->sent, offset, __ATOMIC_RELAXED);
  g_set_object (&self->last_msg, msg);

  if (self->protocol == BG_UPLOAD_PROTOCOL_TUS && offset == self->size)
    {
      set_response (self, msg, answer);
      return STEP_DONE;
    }

  return STEP_OK;
}

/* The upload resource is gone (expired, deleted, or never known to the server): a new one,
 * and the task counts a restart. */
static gboolean
start_over (Resumable *self,
            guint     *restarts)
{
  g_autoptr(GError) error = NULL;

  if (++*restarts > MAX_RESTARTS)
    {
      set_error (self, BG_RESPONSE_RETRY,
                 g_error_new_literal (BG_ERROR, BG_ERROR_PROTOCOL,
                                      _("The server lost the upload again and again")));
      return FALSE;
    }

  forget_resource (self);
  main_call_run (main_call_new (self, CALL_NOTE_RESTART), FALSE, NULL);
  if (!save_resource (self, &error))
    {
      set_transport_error (self, g_steal_pointer (&error));
      return FALSE;
    }

  return TRUE;
}

static void
run (Resumable *self)
{
  g_autoptr(GError) error = NULL;
  struct stat st;
  guint restarts = 0;
  guint drops = 0;
  gint64 offset_at_drop = -1;

  if (fstat (self->fd, &st) != 0)
    {
      int errsv = errno;
      g_autofree char *name = g_filename_display_name (self->path);

      set_error (self, BG_RESPONSE_FAILED,
                 g_error_new (G_IO_ERROR, g_io_error_from_errno (errsv),
                              _("Cannot read the source file “%s”: %s"), name,
                              g_strerror (errsv)));
      return;
    }
  bg_source_id_from_stat (&st, &self->source);
  self->size = self->source.size;

  if (!decide_protocol (self, &error))
    {
      set_transport_error (self, g_steal_pointer (&error));
      return;
    }

  if (self->protocol == BG_UPLOAD_PROTOCOL_PLAIN)
    {
      self->outcome = OUTCOME_PLAIN;
      return;
    }

  if (self->stale_url != NULL)
    delete_resource (self, self->stale_url, self->stale_protocol);

  if (self->upload_url != NULL)
    {
      self->upload_uri = g_uri_parse (self->upload_url, SOUP_HTTP_URI_FLAGS, NULL);
      if (self->upload_uri == NULL || self->url_protocol != self->protocol)
        {
          if (self->upload_uri != NULL)
            delete_resource (self, self->upload_url, self->url_protocol);
          forget_resource (self);
        }
    }

  if (self->protocol == BG_UPLOAD_PROTOCOL_IETF && self->max_size >= 0 &&
      self->size > self->max_size)
    {
      set_too_large (self, self->max_size);
      return;
    }

  while (TRUE)
    {
      Step step;

      if (g_cancellable_set_error_if_cancelled (self->cancellable, &error))
        {
          set_transport_error (self, g_steal_pointer (&error));
          return;
        }

      if (self->upload_url == NULL)
        step = create (self);
      else
        step = ask_offset (self);

      while (step == STEP_OK)
        {
          g_autoptr(GError) dropped = NULL;

          if (self->protocol == BG_UPLOAD_PROTOCOL_TUS && self->offset == self->size)
            {
              /* All there already (the answer of the last append was lost). */
              set_response (self, self->last_msg, NULL);
              return;
            }

          step = append (self, &dropped);
          if (step == STEP_ASK)
            {
              if (self->offset != offset_at_drop)
                drops = 0;
              offset_at_drop = self->offset;
              if (++drops > MAX_DROPS)
                {
                  set_transport_error (self, g_steal_pointer (&dropped));
                  return;
                }
              step = ask_offset (self);
            }
        }

      if (step == STEP_DONE)
        return;

      g_assert (step == STEP_GONE);
      if (!start_over (self, &restarts))
        return;
    }
}

/* --- On the engine's context --------------------------------------------------------------- */

static void
send_thread (GTask        *task,
             gpointer      source_object,
             gpointer      task_data,
             GCancellable *cancellable)
{
  Resumable *self = task_data;

  run (self);
  g_assert (self->outcome != OUTCOME_NONE);
  g_task_return_boolean (task, TRUE);
}

static gboolean
progress_tick_cb (gpointer user_data)
{
  Resumable *self = user_data;
  gint64 sent = __atomic_load_n (&self->sent, __ATOMIC_RELAXED);
  gint64 acked = __atomic_load_n (&self->acked, __ATOMIC_RELAXED);

  if (sent != self->seen_sent)
    {
      self->seen_sent = sent;
      bg_job_progress (self->job, sent, self->size > 0 ? self->size : -1);
    }

  if (acked != self->seen_acked && bg_job_get_record (self->job)->upload_url != NULL)
    {
      self->seen_acked = acked;
      bg_job_get_record (self->job)->checkpoint = acked;
      bg_job_save_progress (self->job);
    }

  return G_SOURCE_CONTINUE;
}

static void
done_cb (GObject      *object,
         GAsyncResult *result,
         gpointer      user_data)
{
  g_autoptr(Resumable) self = user_data;
  g_autoptr(BgResponse) response = NULL;
  BgResumablePlainFunc plain;

  if (self->progress_source != NULL)
    {
      g_source_destroy (self->progress_source);
      g_clear_pointer (&self->progress_source, g_source_unref);
    }
  progress_tick_cb (self);

  switch (self->outcome)
    {
    case OUTCOME_PLAIN:
      bg_task_set_upload_protocol (bg_job_get_task (self->job), BG_UPLOAD_PROTOCOL_PLAIN);
      plain = self->plain;
      self->plain = NULL;
      plain (self->plain_data);
      return;

    case OUTCOME_RESPONSE:
      response = bg_job_make_response (self->job, self->final_kind, self->final_msg,
                                       self->final_body, NULL);
      break;

    case OUTCOME_ERROR:
      response = bg_job_make_response (self->job, self->final_kind, NULL, NULL, self->error);
      break;

    case OUTCOME_SOURCE_CHANGED:
      response = bg_job_make_response (self->job, BG_RESPONSE_RETRY, NULL, NULL, self->error);
      break;

    case OUTCOME_NONE:
    default:
      g_assert_not_reached ();
    }

  bg_job_attempt_finished (self->job, response);
}

void
bg_resumable_start (BgJob                *job,
                    SoupMessage          *msg,
                    int                   fd,
                    const char           *path,
                    gboolean              verify,
                    const char           *stale_url,
                    int                   stale_protocol,
                    BgResumablePlainFunc  plain,
                    gpointer              plain_data,
                    GDestroyNotify        plain_data_free)
{
  BgStoreRecord *record = bg_job_get_record (job);
  BgEngine *engine = bg_job_get_engine (job);
  g_autoptr(Resumable) self = g_new0 (Resumable, 1);
  g_autoptr(GTask) task = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *extensions = NULL;
  SoupMessageHeadersIter iter;
  const char *name;
  const char *value;
  gint64 checked_at = 0;
  int protocol = 0;

  g_assert (SOUP_IS_MESSAGE (msg));
  g_assert (plain != NULL);

  g_ref_count_init (&self->ref_count);
  self->job = bg_job_ref (job);
  self->session = g_object_ref (bg_engine_get_session (engine));
  self->context = g_main_context_ref_thread_default ();
  self->cancellable = g_object_ref (bg_job_get_cancellable (job));
  self->plain = plain;
  self->plain_data = plain_data;
  self->plain_data_free = plain_data_free;
  self->requested = record->upload_protocol;
  self->allow_tus = record->allow_tus;
  self->chunk_size = record->chunk_size;
  self->max_body = bg_engine_get_max_response_size (engine);
  self->target = g_uri_ref (soup_message_get_uri (msg));
  self->method = g_strdup (soup_message_get_method (msg));
  self->path = g_strdup (path);
  self->verify = verify;
  self->task_throttle = bg_throttle_ref (bg_job_get_throttle (job));
  self->queue_throttle = bg_throttle_ref (bg_engine_get_throttle (engine));
  self->stale_url = g_strdup (stale_url);
  self->stale_protocol = stale_protocol;
  self->upload_url = g_strdup (record->upload_url);
  self->url_protocol = record->upload_url_protocol;
  self->upload_expires = record->upload_expires;
  self->max_size = -1;
  self->max_append = -1;
  self->seen_sent = -1;
  self->seen_acked = -1;
  self->fd = fcntl (fd, F_DUPFD_CLOEXEC, 0);

  self->app_headers = soup_message_headers_new (SOUP_MESSAGE_HEADERS_REQUEST);
  soup_message_headers_iter_init (&iter, soup_message_get_request_headers (msg));
  while (soup_message_headers_iter_next (&iter, &name, &value))
    soup_message_headers_append (self->app_headers, name, value);

  self->probe_target = probe_key (self->target);
  if (bg_store_lookup_probe (bg_engine_get_store (engine), self->probe_target, &protocol,
                             &extensions, &checked_at, &error) &&
      protocol >= BG_UPLOAD_PROTOCOL_PLAIN && protocol <= BG_UPLOAD_PROTOCOL_IETF &&
      checked_at <= g_get_real_time () &&
      g_get_real_time () - checked_at < PROBE_LIFETIME_USEC)
    {
      self->have_probe = TRUE;
      self->probe_protocol = protocol;
      self->probe_extensions = g_steal_pointer (&extensions);
    }
  else if (error != NULL)
    {
      g_warning ("Could not read what the upload server offers: %s", error->message);
    }

  if (self->fd < 0)
    {
      int errsv = errno;
      g_autofree char *display = g_filename_display_name (path);
      g_autoptr(BgResponse) response = NULL;

      g_clear_error (&error);
      g_set_error (&error, G_IO_ERROR, g_io_error_from_errno (errsv),
                   _("Cannot read the source file “%s”: %s"), display, g_strerror (errsv));
      response = bg_job_make_response (job, BG_RESPONSE_FAILED, NULL, NULL, error);
      self->plain = NULL;
      bg_job_attempt_finished (job, response);
      return;
    }

  self->progress_source = g_timeout_source_new (PROGRESS_INTERVAL_MS);
  g_source_set_callback (self->progress_source, progress_tick_cb, self, NULL);
  g_source_set_static_name (self->progress_source, "[bg] resumable upload progress");
  g_source_attach (self->progress_source, self->context);

  task = g_task_new (NULL, NULL, done_cb, resumable_ref (self));
  g_task_set_source_tag (task, bg_resumable_start);
  g_task_set_task_data (task, resumable_ref (self), (GDestroyNotify) resumable_unref);
  g_task_run_in_thread (task, send_thread);
}

/* --- Termination --------------------------------------------------------------------------- */

static void
deleted_cb (GObject      *object,
            GAsyncResult *result,
            gpointer      user_data)
{
  g_autoptr(GInputStream) in = NULL;

  in = soup_session_send_finish (SOUP_SESSION (object), result, NULL);
  if (in != NULL)
    g_input_stream_close_async (in, G_PRIORITY_DEFAULT, NULL, NULL, NULL);
}

void
bg_resumable_discard (BgJob *job)
{
  BgStoreRecord *record = bg_job_get_record (job);
  g_autoptr(GUri) uri = NULL;
  g_autoptr(GUri) target = NULL;
  g_autoptr(SoupMessage) msg = NULL;
  g_autoptr(SoupMessageHeaders) stored = NULL;
  SoupMessageHeaders *headers;

  if (record->upload_url == NULL)
    return;

  uri = g_uri_parse (record->upload_url, SOUP_HTTP_URI_FLAGS, NULL);
  target = g_uri_parse (bg_job_get_request_uri (job), SOUP_HTTP_URI_FLAGS, NULL);
  if (uri != NULL)
    {
      msg = soup_message_new_from_uri (SOUP_METHOD_DELETE, uri);
      headers = soup_message_get_request_headers (msg);

      /* The credentials of the request go along, to its own origin only. */
      stored = soup_message_headers_new (SOUP_MESSAGE_HEADERS_REQUEST);
      if (target != NULL && same_origin (uri, target) &&
          bg_http_decode_headers (bg_job_get_request_headers (job), stored, NULL))
        {
          SoupMessageHeadersIter iter;
          const char *name;
          const char *value;

          soup_message_headers_iter_init (&iter, stored);
          while (soup_message_headers_iter_next (&iter, &name, &value))
            if (bg_http_is_credential_header (name))
              soup_message_headers_append (headers, name, value);
        }

      if (record->upload_url_protocol == BG_UPLOAD_PROTOCOL_TUS)
        soup_message_headers_replace (headers, "Tus-Resumable", TUS_VERSION);
      else
        soup_message_headers_replace (headers, "Upload-Draft-Interop-Version",
                                      IETF_INTEROP_VERSION);
      soup_message_add_flags (msg, SOUP_MESSAGE_NO_REDIRECT);

      soup_session_send_async (bg_engine_get_session (bg_job_get_engine (job)), msg,
                               G_PRIORITY_DEFAULT, NULL, deleted_cb, NULL);
    }

  g_clear_pointer (&record->upload_url, g_free);
  record->upload_url_protocol = BG_UPLOAD_PROTOCOL_AUTO;
  record->upload_expires = 0;
}
