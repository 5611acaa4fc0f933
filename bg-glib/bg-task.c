/* bg-task.c: one transfer, as an app sees it
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <glib/gi18n-lib.h>

#include "bg-enums.h"
#include "bg-error.h"
#include "bg-http-private.h"
#include "bg-task-options-private.h"
#include "bg-task-private.h"

/* Progress notifications are throttled to about ten a second.  A change that comes sooner is
 * told with the next change after the interval, or by a timer once PROGRESS_NOTIFY_LATE has
 * passed since the last notification: bytes that keep coming are told without the timer ever
 * waking the main loop, at least every PROGRESS_NOTIFY_LATE. */
#define PROGRESS_NOTIFY_INTERVAL_USEC (G_USEC_PER_SEC / 10)
#define PROGRESS_NOTIFY_LATE_USEC (2 * PROGRESS_NOTIFY_INTERVAL_USEC)

/* The transfer rate is sampled about twice a second while an attempt runs, and smoothed with an
 * exponential moving average whose weights fall to about a third every RATE_TIME_CONSTANT, so
 * that about the last few seconds count.  The first sample needs RATE_FIRST_SAMPLE of data, so
 * that a first burst (a socket buffer drained at once) does not show as a huge rate, and a task
 * that moves no byte for RATE_STALL shows no rate at all.
 *
 * While bytes move, the progress that reports them takes the samples: a capped transfer that
 * sleeps between reads is not woken to sample.  A timer samples only when no progress came for
 * RATE_IDLE_SAMPLE past a due sample, so that a rate falls when the bytes stop. */
#define RATE_SAMPLE_INTERVAL_USEC (G_USEC_PER_SEC / 2)
#define RATE_IDLE_SAMPLE_USEC (G_USEC_PER_SEC / 2)
#define RATE_TIME_CONSTANT_USEC (3 * G_USEC_PER_SEC)
#define RATE_FIRST_SAMPLE_USEC (G_USEC_PER_SEC)
#define RATE_STALL_USEC (3 * G_USEC_PER_SEC)

/* Options can change until the task has finished: a finished task's options mean nothing. */
#define TASK_TAKES_OPTIONS(self) \
  ((self)->state != BG_TASK_STATE_FINISHED && (self)->state != BG_TASK_STATE_CANCELLED)

/**
 * BgTask:
 *
 * One transfer known to a [class@Bg.Downloader] or a [class@Bg.Uploader].
 *
 * Tasks are listed by [method@Bg.TaskQueue.get_tasks] of a downloader or an uploader. Their
 * properties change as the transfer goes on, and every change is notified on the main context
 * the downloader or uploader was made on, so a list view can bind to them directly. Progress
 * notifications are throttled to about ten a second.
 */
/* What only a task that has moved bytes needs: the rate and the throttle of its progress
 * notifications.  A task waiting in a queue of thousands has none; it is made at the first
 * progress or the first attempt, and kept. */
typedef struct
{
  gint64       last_progress_notify;
  GSource     *progress_notify_source;

  /* The rate: the open window's last sample (rate_time is 0 while no window is open), the
   * moving average and the sum of its weights, and the ticking source while running. */
  gint64       rate_time;
  gint64       rate_bytes;
  gint64       last_move;
  double       rate_average;
  double       rate_weight;
  double       bytes_per_second;
  GSource     *rate_source;
  /* What the last progress notification told, so that only changes are notified. */
  struct {
    gint64     transferred;
    gint64     total;
    double     fraction;
    double     rate;
    gint64     eta;
  } notified;
} TaskProgress;

struct _BgTask
{
  GObject      parent_instance;

  char        *identifier;
  char        *uri;
  GFile       *file;
  BgResponse  *response;
  gint64       bytes_transferred;
  gint64       bytes_total;
  gint64       next_attempt_at;
  TaskProgress *progress;       /* NULL until needed */
  BgTaskKind   kind;
  BgTaskState  state;
  BgWaitReason wait_reason;
  guint        attempts;
  guint        restarts;
  BgUploadProtocol upload_protocol;

  /* The app's options. */
  gboolean     allow_metered;
  gboolean     discretionary;
  int          priority;
  gint64       earliest_start;
  char        *expected_sha256;
  gboolean     keep_credentials;
  gboolean     paused;
  guint64      max_bandwidth;

  BgTaskNotifyFunc notify_func;    /* see bg_task_set_notify_func() */
  gpointer     notify_data;
};

G_DEFINE_FINAL_TYPE (BgTask, bg_task, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_IDENTIFIER,
  PROP_KIND,
  PROP_STATE,
  PROP_URI,
  PROP_FILE,
  PROP_BYTES_TRANSFERRED,
  PROP_BYTES_TOTAL,
  PROP_ATTEMPTS,
  PROP_RESTARTS,
  PROP_UPLOAD_PROTOCOL,
  PROP_NEXT_ATTEMPT_AT,
  PROP_FRACTION,
  PROP_BYTES_PER_SECOND,
  PROP_ETA,
  PROP_RESPONSE,
  PROP_WAIT_REASON,
  PROP_ALLOW_METERED,
  PROP_DISCRETIONARY,
  PROP_PRIORITY,
  PROP_EARLIEST_START,
  PROP_EXPECTED_SHA256,
  PROP_KEEP_CREDENTIALS,
  PROP_PAUSED,
  PROP_MAX_BANDWIDTH,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void
clear_source (GSource **source)
{
  g_assert (source != NULL);

  if (*source != NULL)
    {
      g_source_destroy (*source);
      g_clear_pointer (source, g_source_unref);
    }
}

/* The progress state, made with the values a task starts with: nothing notified yet. */
static TaskProgress *
ensure_progress (BgTask *self)
{
  g_assert (BG_IS_TASK (self));

  if (self->progress == NULL)
    {
      self->progress = g_new0 (TaskProgress, 1);
      self->progress->notified.total = -1;
      self->progress->notified.fraction = -1.0;
      self->progress->notified.eta = -1;
    }

  return self->progress;
}

static void
bg_task_finalize (GObject *object)
{
  BgTask *self = (BgTask *)object;

  if (self->progress != NULL)
    {
      clear_source (&self->progress->progress_notify_source);
      clear_source (&self->progress->rate_source);
      g_clear_pointer (&self->progress, g_free);
    }
  g_clear_pointer (&self->identifier, g_free);
  g_clear_pointer (&self->uri, g_free);
  g_clear_object (&self->file);
  g_clear_object (&self->response);
  g_clear_pointer (&self->expected_sha256, g_free);

  G_OBJECT_CLASS (bg_task_parent_class)->finalize (object);
}

static void
bg_task_notify (GObject    *object,
                GParamSpec *pspec)
{
  BgTask *self = (BgTask *)object;

  if (self->notify_func != NULL)
    self->notify_func (self, pspec, self->notify_data);
}

static void
bg_task_get_property (GObject    *object,
                      guint       prop_id,
                      GValue     *value,
                      GParamSpec *pspec)
{
  BgTask *self = BG_TASK (object);

  switch (prop_id)
    {
    case PROP_IDENTIFIER:
      g_value_set_string (value, self->identifier);
      break;
    case PROP_KIND:
      g_value_set_enum (value, self->kind);
      break;
    case PROP_STATE:
      g_value_set_enum (value, self->state);
      break;
    case PROP_URI:
      g_value_set_string (value, self->uri);
      break;
    case PROP_FILE:
      g_value_set_object (value, self->file);
      break;
    case PROP_BYTES_TRANSFERRED:
      g_value_set_int64 (value, self->bytes_transferred);
      break;
    case PROP_BYTES_TOTAL:
      g_value_set_int64 (value, self->bytes_total);
      break;
    case PROP_ATTEMPTS:
      g_value_set_uint (value, self->attempts);
      break;
    case PROP_RESTARTS:
      g_value_set_uint (value, self->restarts);
      break;
    case PROP_UPLOAD_PROTOCOL:
      g_value_set_enum (value, self->upload_protocol);
      break;
    case PROP_NEXT_ATTEMPT_AT:
      g_value_take_boxed (value, bg_task_dup_next_attempt_at (self));
      break;
    case PROP_FRACTION:
      g_value_set_double (value, bg_task_get_fraction (self));
      break;
    case PROP_BYTES_PER_SECOND:
      g_value_set_double (value, bg_task_get_bytes_per_second (self));
      break;
    case PROP_ETA:
      g_value_set_int64 (value, bg_task_get_eta (self));
      break;
    case PROP_RESPONSE:
      g_value_set_object (value, self->response);
      break;
    case PROP_WAIT_REASON:
      g_value_set_enum (value, self->wait_reason);
      break;
    case PROP_ALLOW_METERED:
      g_value_set_boolean (value, self->allow_metered);
      break;
    case PROP_DISCRETIONARY:
      g_value_set_boolean (value, self->discretionary);
      break;
    case PROP_PRIORITY:
      g_value_set_int (value, self->priority);
      break;
    case PROP_EARLIEST_START:
      g_value_take_boxed (value, bg_task_dup_earliest_start (self));
      break;
    case PROP_EXPECTED_SHA256:
      g_value_set_string (value, self->expected_sha256);
      break;
    case PROP_KEEP_CREDENTIALS:
      g_value_set_boolean (value, self->keep_credentials);
      break;
    case PROP_PAUSED:
      g_value_set_boolean (value, self->paused);
      break;
    case PROP_MAX_BANDWIDTH:
      g_value_set_uint64 (value, self->max_bandwidth);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
bg_task_set_property (GObject      *object,
                      guint         prop_id,
                      const GValue *value,
                      GParamSpec   *pspec)
{
  BgTask *self = BG_TASK (object);

  switch (prop_id)
    {
    case PROP_ALLOW_METERED:
      bg_task_set_allow_metered (self, g_value_get_boolean (value));
      break;
    case PROP_DISCRETIONARY:
      bg_task_set_discretionary (self, g_value_get_boolean (value));
      break;
    case PROP_PRIORITY:
      bg_task_set_priority (self, g_value_get_int (value));
      break;
    case PROP_EARLIEST_START:
      bg_task_set_earliest_start (self, g_value_get_boxed (value));
      break;
    case PROP_EXPECTED_SHA256:
      bg_task_set_expected_sha256 (self, g_value_get_string (value));
      break;
    case PROP_KEEP_CREDENTIALS:
      bg_task_set_keep_credentials (self, g_value_get_boolean (value));
      break;
    case PROP_PAUSED:
      bg_task_set_paused (self, g_value_get_boolean (value));
      break;
    case PROP_MAX_BANDWIDTH:
      bg_task_set_max_bandwidth (self, g_value_get_uint64 (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
bg_task_class_init (BgTaskClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = bg_task_finalize;
  object_class->get_property = bg_task_get_property;
  object_class->set_property = bg_task_set_property;
  object_class->notify = bg_task_notify;

  /**
   * BgTask:identifier:
   *
   * The identifier the app chose for the task. It stays the same across runs.
   */
  properties[PROP_IDENTIFIER] =
    g_param_spec_string ("identifier", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * BgTask:kind:
   *
   * Whether the task downloads or uploads.
   */
  properties[PROP_KIND] =
    g_param_spec_enum ("kind", NULL, NULL,
                       BG_TYPE_TASK_KIND, BG_TASK_KIND_DOWNLOAD,
                       G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * BgTask:state:
   *
   * Where the task is in its life.
   */
  properties[PROP_STATE] =
    g_param_spec_enum ("state", NULL, NULL,
                       BG_TYPE_TASK_STATE, BG_TASK_STATE_QUEUED,
                       G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * BgTask:uri:
   *
   * The URI of the newest request given for the task, without the password of its userinfo.
   */
  properties[PROP_URI] =
    g_param_spec_string ("uri", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * BgTask:file:
   *
   * The destination of a download, or the source of an upload.
   */
  properties[PROP_FILE] =
    g_param_spec_object ("file", NULL, NULL, G_TYPE_FILE,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * BgTask:bytes-transferred:
   *
   * How many bytes have moved so far. For a download that resumed, it counts from the start of
   * the file.
   */
  properties[PROP_BYTES_TRANSFERRED] =
    g_param_spec_int64 ("bytes-transferred", NULL, NULL, 0, G_MAXINT64, 0,
                        G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * BgTask:bytes-total:
   *
   * The size of the transfer, or -1 when it is not known yet.
   */
  properties[PROP_BYTES_TOTAL] =
    g_param_spec_int64 ("bytes-total", NULL, NULL, -1, G_MAXINT64, -1,
                        G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * BgTask:attempts:
   *
   * How many attempts have been started, in this run and earlier ones.
   */
  properties[PROP_ATTEMPTS] =
    g_param_spec_uint ("attempts", NULL, NULL, 0, G_MAXUINT, 0,
                       G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * BgTask:restarts:
   *
   * How many times the transfer had to start over from the first byte: for a download because
   * the remote file changed, for an upload because the source file changed or an attempt was
   * interrupted.
   */
  properties[PROP_RESTARTS] =
    g_param_spec_uint ("restarts", NULL, NULL, 0, G_MAXUINT, 0,
                       G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * BgTask:upload-protocol:
   *
   * For an upload, the protocol it uses: the one its options asked for, or once the server
   * was asked, the one %BG_UPLOAD_PROTOCOL_AUTO picked. %BG_UPLOAD_PROTOCOL_AUTO until then,
   * and for a download.
   */
  properties[PROP_UPLOAD_PROTOCOL] =
    g_param_spec_enum ("upload-protocol", NULL, NULL, BG_TYPE_UPLOAD_PROTOCOL,
                       BG_UPLOAD_PROTOCOL_AUTO,
                       G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * BgTask:next-attempt-at:
   *
   * When the next attempt is due, while the task waits with %BG_WAIT_REASON_RETRY, or %NULL
   * when none is scheduled.
   */
  properties[PROP_NEXT_ATTEMPT_AT] =
    g_param_spec_boxed ("next-attempt-at", NULL, NULL, G_TYPE_DATE_TIME,
                        G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * BgTask:fraction:
   *
   * How much of the transfer is done, from 0 to 1, or -1 while its size is not known (see
   * [property@Bg.Task:bytes-total]), for example when the server sends no `Content-Length`.
   * A download that resumed counts the bytes it already had. It is notified together with
   * [property@Bg.Task:bytes-transferred], about ten times a second at most, so a
   * `Gtk.ProgressBar` can be bound to it directly (show it pulsing while it is -1).
   */
  properties[PROP_FRACTION] =
    g_param_spec_double ("fraction", NULL, NULL, -1.0, 1.0, -1.0,
                         G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * BgTask:bytes-per-second:
   *
   * How fast the transfer moves, in bytes per second, averaged over about the last three
   * seconds of the running attempt (an exponential moving average, so that one slow or fast
   * moment does not make it jump).
   *
   * It is 0 while no attempt runs, during the first second of an attempt's bytes (too early to
   * tell; bytes a resumed download already had do not count), and once no byte has moved for a
   * few seconds. It is notified together with [property@Bg.Task:bytes-transferred].
   */
  properties[PROP_BYTES_PER_SECOND] =
    g_param_spec_double ("bytes-per-second", NULL, NULL, 0.0, G_MAXDOUBLE, 0.0,
                         G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * BgTask:eta:
   *
   * How many seconds the transfer still needs at the current
   * [property@Bg.Task:bytes-per-second], rounded up; 0 once every byte has moved; -1 when that
   * cannot be told, because the size is not known or no byte is moving. It is notified together
   * with [property@Bg.Task:bytes-transferred].
   */
  properties[PROP_ETA] =
    g_param_spec_int64 ("eta", NULL, NULL, -1, G_MAXINT64, -1,
                        G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * BgTask:response:
   *
   * The final response, once the task has finished.
   */
  properties[PROP_RESPONSE] =
    g_param_spec_object ("response", NULL, NULL, BG_TYPE_RESPONSE,
                         G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * BgTask:wait-reason:
   *
   * Why the task waits, while its state is %BG_TASK_STATE_WAITING.
   */
  properties[PROP_WAIT_REASON] =
    g_param_spec_enum ("wait-reason", NULL, NULL,
                       BG_TYPE_WAIT_REASON, BG_WAIT_REASON_NONE,
                       G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * BgTask:allow-metered:
   *
   * Whether the task may transfer over a metered network even when its downloader or uploader
   * does not allow it. The option is stored with the task.
   */
  properties[PROP_ALLOW_METERED] =
    g_param_spec_boolean ("allow-metered", NULL, NULL, FALSE,
                          G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * BgTask:discretionary:
   *
   * Whether the task can wait while power-saver mode is on. The option is stored with the task.
   */
  properties[PROP_DISCRETIONARY] =
    g_param_spec_boolean ("discretionary", NULL, NULL, FALSE,
                          G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * BgTask:priority:
   *
   * The task's place in the queue: tasks with a higher priority start first, tasks of equal
   * priority in the order they were queued. The option is stored with the task.
   */
  properties[PROP_PRIORITY] =
    g_param_spec_int ("priority", NULL, NULL, G_MININT, G_MAXINT, 0,
                      G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * BgTask:earliest-start:
   *
   * The task does not start before this time, also across restarts. The option is stored with
   * the task.
   */
  properties[PROP_EARLIEST_START] =
    g_param_spec_boxed ("earliest-start", NULL, NULL, G_TYPE_DATE_TIME,
                        G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * BgTask:expected-sha256:
   *
   * For a download, the SHA-256 the file must have, as 64 hexadecimal digits. The file is
   * checked before it is published; a mismatch ends the task as %BG_RESPONSE_FAILED with
   * %BG_ERROR_INTEGRITY and nothing is published. The option is stored with the task.
   */
  properties[PROP_EXPECTED_SHA256] =
    g_param_spec_string ("expected-sha256", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * BgTask:keep-credentials:
   *
   * Whether the task's credentials are stored with it: the `Authorization`,
   * `Proxy-Authorization` and `Cookie` headers and the password of the URL of the request given
   * to `download_async` or `upload_async`.
   *
   * By default they are kept in memory only: every attempt and redirect in this run sends them,
   * but a later run does not have them, and the task then waits with
   * %BG_WAIT_REASON_CREDENTIALS until a `prepare-request` handler supplies them. Set this to
   * %TRUE to store them in the task database in plain text, so that a later run can carry the
   * task on by itself; set while the task runs, it stores the credentials this run still holds.
   * The option is stored with the task.
   */
  properties[PROP_KEEP_CREDENTIALS] =
    g_param_spec_boolean ("keep-credentials", NULL, NULL, FALSE,
                          G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * BgTask:paused:
   *
   * Whether the app paused the task. A paused task does not start; one that was running stops
   * moving bytes at once. Either way it keeps its partial file and its record, uses up no
   * attempt, and waits in %BG_TASK_STATE_WAITING with %BG_WAIT_REASON_PAUSED. Once unpaused it
   * picks up from its last checkpoint: a download asks for the rest of the file, an upload
   * sends its body again, as any new attempt does. The pause is stored with the task, so a
   * later run finds it paused too.
   */
  properties[PROP_PAUSED] =
    g_param_spec_boolean ("paused", NULL, NULL, FALSE,
                          G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * BgTask:max-bandwidth:
   *
   * The most bytes per second the task may move, averaged over half a second; 0 for no
   * cap. A running task follows a change within half a second. The queue's own cap
   * ([property@Bg.TaskQueue:max-bandwidth]) applies too. The option is stored with the task.
   */
  properties[PROP_MAX_BANDWIDTH] =
    g_param_spec_uint64 ("max-bandwidth", NULL, NULL, 0, G_MAXINT64, 0,
                         G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
bg_task_init (BgTask *self)
{
  self->bytes_total = -1;
}

BgTask *
bg_task_new (BgTaskKind  kind,
             const char *identifier,
             const char *uri,
             GFile      *file)
{
  BgTask *self = g_object_new (BG_TYPE_TASK, NULL);

  self->kind = kind;
  self->identifier = g_strdup (identifier);
  self->uri = bg_http_uri_hide_password (uri, NULL);
  self->file = file ? g_object_ref (file) : NULL;

  return self;
}

void
bg_task_set_notify_func (BgTask           *self,
                         BgTaskNotifyFunc  func,
                         gpointer          user_data)
{
  g_return_if_fail (BG_IS_TASK (self));

  self->notify_func = func;
  self->notify_data = user_data;
}

void
bg_task_set_uri (BgTask     *self,
                 const char *uri)
{
  g_autofree char *shown = NULL;

  g_return_if_fail (BG_IS_TASK (self));

  shown = bg_http_uri_hide_password (uri, NULL);
  if (g_strcmp0 (self->uri, shown) != 0)
    {
      g_free (self->uri);
      self->uri = g_steal_pointer (&shown);
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_URI]);
    }
}

/* Notifies, in one batch, every progress property whose value changed since the last time. */
static void
notify_progress (BgTask *self)
{
  GObject *object = G_OBJECT (self);
  TaskProgress *progress = ensure_progress (self);
  double fraction = bg_task_get_fraction (self);
  gint64 eta = bg_task_get_eta (self);

  progress->last_progress_notify = g_get_monotonic_time ();
  clear_source (&progress->progress_notify_source);

  g_object_freeze_notify (object);
  if (progress->notified.transferred != self->bytes_transferred)
    {
      progress->notified.transferred = self->bytes_transferred;
      g_object_notify_by_pspec (object, properties[PROP_BYTES_TRANSFERRED]);
    }
  if (progress->notified.total != self->bytes_total)
    {
      progress->notified.total = self->bytes_total;
      g_object_notify_by_pspec (object, properties[PROP_BYTES_TOTAL]);
    }
  if (progress->notified.fraction != fraction)
    {
      progress->notified.fraction = fraction;
      g_object_notify_by_pspec (object, properties[PROP_FRACTION]);
    }
  if (progress->notified.rate != progress->bytes_per_second)
    {
      progress->notified.rate = progress->bytes_per_second;
      g_object_notify_by_pspec (object, properties[PROP_BYTES_PER_SECOND]);
    }
  if (progress->notified.eta != eta)
    {
      progress->notified.eta = eta;
      g_object_notify_by_pspec (object, properties[PROP_ETA]);
    }
  g_object_thaw_notify (object);
}

static gboolean
deferred_progress_cb (gpointer data)
{
  BgTask *self = data;

  g_clear_pointer (&self->progress->progress_notify_source, g_source_unref);
  notify_progress (self);

  return G_SOURCE_REMOVE;
}

/* The one throttle for every progress property: at once when @now_please or when the last
 * notification is old enough, otherwise soon. */
static void
queue_notify_progress (BgTask   *self,
                       gboolean  now_please)
{
  TaskProgress *progress = ensure_progress (self);
  gint64 now = g_get_monotonic_time ();
  gint64 wait;
  GSource *source;

  if (now_please || now - progress->last_progress_notify >= PROGRESS_NOTIFY_INTERVAL_USEC)
    {
      notify_progress (self);
      return;
    }

  /* Not now, but soon: the last value is never left unannounced. */
  if (progress->progress_notify_source != NULL)
    return;

  wait = PROGRESS_NOTIFY_LATE_USEC - (now - progress->last_progress_notify);
  source = g_timeout_source_new ((guint) (wait / 1000) + 1);
  /* On the context of the caller: the engine's, not necessarily the global default. */
  g_source_set_callback (source, deferred_progress_cb, self, NULL);
  g_source_set_static_name (source, "[bg] progress notify");
  g_source_attach (source, g_main_context_get_thread_default ());
  progress->progress_notify_source = source;
}

static void
rate_reset (TaskProgress *progress)
{
  g_assert (progress != NULL);

  progress->rate_time = 0;
  progress->rate_bytes = 0;
  progress->rate_average = 0.0;
  progress->rate_weight = 0.0;
  progress->bytes_per_second = 0.0;
}

/* Folds the bytes moved since the last sample into the moving average.  The samples come at
 * uneven times, so each one weighs by the time it covers: a sample of dt keeps T / (T + dt) of
 * the average before it.  The average is divided by the sum of the weights, which makes the
 * first seconds a plain average instead of a slow climb from zero. */
static void
rate_sample (BgTask *self,
             gint64  now)
{
  TaskProgress *progress = ensure_progress (self);
  double dt, instant, keep;

  if (progress->rate_time == 0)
    return;

  if (now - progress->last_move >= RATE_STALL_USEC)
    {
      rate_reset (progress);
      return;
    }

  if (now <= progress->rate_time ||
      (progress->rate_weight == 0.0 && now - progress->rate_time < RATE_FIRST_SAMPLE_USEC))
    return;

  dt = (double) (now - progress->rate_time) / G_USEC_PER_SEC;
  instant = (double) (self->bytes_transferred - progress->rate_bytes) / dt;
  keep = (double) RATE_TIME_CONSTANT_USEC /
         (RATE_TIME_CONSTANT_USEC + (now - progress->rate_time));

  progress->rate_average = keep * progress->rate_average + (1.0 - keep) * instant;
  progress->rate_weight = keep * progress->rate_weight + (1.0 - keep);
  progress->bytes_per_second = progress->rate_average / progress->rate_weight;
  progress->rate_time = now;
  progress->rate_bytes = self->bytes_transferred;
}

/* When the next sample is due, or -1 while no window is open. */
static gint64
rate_sample_due (TaskProgress *progress)
{
  g_assert (progress != NULL);

  if (progress->rate_time == 0)
    return -1;

  return progress->rate_time +
         (progress->rate_weight == 0.0 ? RATE_FIRST_SAMPLE_USEC : RATE_SAMPLE_INTERVAL_USEC);
}

/* When the timer samples: a while after a due sample that no progress took, and at the latest
 * when the rate must drop to nothing; -1 while no window is open. */
static gint64
rate_timer_due (TaskProgress *progress)
{
  gint64 due = rate_sample_due (progress);

  if (due < 0)
    return -1;

  return MIN (due + RATE_IDLE_SAMPLE_USEC, progress->last_move + RATE_STALL_USEC);
}

/* The rate's timer reads its deadline from the task each time the main loop is about to
 * sleep, so progress that takes a sample moves it later without waking anything. */
typedef struct
{
  GSource  source;
  BgTask  *task;   /* not a reference: the task destroys the source before it goes */
} RateSource;

static gboolean
rate_source_prepare (GSource *source,
                     gint    *timeout)
{
  RateSource *rate = (RateSource *) source;
  gint64 due = rate_timer_due (rate->task->progress);
  gint64 now;

  if (due < 0)
    {
      *timeout = -1;
      return FALSE;
    }

  now = g_source_get_time (source);
  if (now >= due)
    {
      *timeout = 0;
      return TRUE;
    }

  *timeout = (gint) MIN ((due - now + 999) / 1000, G_MAXINT);
  return FALSE;
}

static gboolean
rate_source_check (GSource *source)
{
  RateSource *rate = (RateSource *) source;
  gint64 due = rate_timer_due (rate->task->progress);

  return due >= 0 && g_source_get_time (source) >= due;
}

static gboolean
rate_source_dispatch (GSource     *source,
                      GSourceFunc  callback,
                      gpointer     user_data)
{
  BgTask *self = ((RateSource *) source)->task;
  double before = self->progress->bytes_per_second;

  rate_sample (self, g_get_monotonic_time ());
  if (self->progress->bytes_per_second != before)
    queue_notify_progress (self, FALSE);

  return G_SOURCE_CONTINUE;
}

static GSourceFuncs rate_source_funcs = {
  rate_source_prepare,
  rate_source_check,
  rate_source_dispatch,
  NULL, NULL, NULL,
};

/* Bytes moved while an attempt runs: opens the rate's window at the first of them, so that
 * neither the bytes a resumed download already had nor the time spent connecting count. */
static void
rate_bytes_moved (BgTask *self,
                  gint64  transferred,
                  gint64  now)
{
  TaskProgress *progress = ensure_progress (self);

  if (transferred > self->bytes_transferred)
    progress->last_move = now;

  if (progress->rate_time == 0)
    {
      if (transferred > self->bytes_transferred)
        {
          progress->rate_time = now;
          progress->rate_bytes = self->bytes_transferred;
        }
    }
  else if (transferred < progress->rate_bytes)
    {
      /* The transfer started over from an earlier byte: what was moved is still a measure of
       * the speed, but the next sample counts from here. */
      progress->rate_time = now;
      progress->rate_bytes = transferred;
    }
}

void
bg_task_set_progress (BgTask   *self,
                      gint64    transferred,
                      gint64    total,
                      gboolean  force_notify)
{
  gboolean total_changed;

  g_return_if_fail (BG_IS_TASK (self));

  total_changed = self->bytes_total != total;
  self->bytes_total = total;

  if (self->bytes_transferred == transferred && !total_changed)
    {
      /* A forced call announces now what was only going to be announced soon: the last
       * values are told before the task's next state. */
      if (force_notify && self->progress != NULL &&
          self->progress->progress_notify_source != NULL)
        notify_progress (self);
      return;
    }

  if (self->state == BG_TASK_STATE_RUNNING)
    {
      gint64 now = g_get_monotonic_time ();
      gint64 due;

      rate_bytes_moved (self, transferred, now);
      self->bytes_transferred = transferred;
      /* A due sample is taken here, and told with these bytes. */
      due = rate_sample_due (self->progress);
      if (due >= 0 && now >= due)
        rate_sample (self, now);
    }
  else
    self->bytes_transferred = transferred;

  queue_notify_progress (self, force_notify || total_changed);
}

void
bg_task_set_state (BgTask      *self,
                   BgTaskState  state)
{
  g_return_if_fail (BG_IS_TASK (self));

  if (self->state == state)
    return;

  g_object_freeze_notify (G_OBJECT (self));
  self->state = state;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_STATE]);

  /* The rate is measured while an attempt runs; outside one it is 0. */
  if (state == BG_TASK_STATE_RUNNING && ensure_progress (self)->rate_source == NULL)
    {
      GSource *source = g_source_new (&rate_source_funcs, sizeof (RateSource));

      ((RateSource *) source)->task = self;
      rate_reset (self->progress);
      g_source_set_static_name (source, "[bg] transfer rate");
      g_source_attach (source, g_main_context_get_thread_default ());
      self->progress->rate_source = source;
    }
  else if (state != BG_TASK_STATE_RUNNING && self->progress != NULL)
    {
      clear_source (&self->progress->rate_source);
      rate_reset (self->progress);
      if (self->progress->notified.rate != self->progress->bytes_per_second)
        notify_progress (self);
    }
  g_object_thaw_notify (G_OBJECT (self));
}

void
bg_task_set_attempts (BgTask *self,
                      guint   attempts)
{
  g_return_if_fail (BG_IS_TASK (self));

  if (self->attempts != attempts)
    {
      self->attempts = attempts;
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_ATTEMPTS]);
    }
}

void
bg_task_set_restarts (BgTask *self,
                      guint   restarts)
{
  g_return_if_fail (BG_IS_TASK (self));

  if (self->restarts != restarts)
    {
      self->restarts = restarts;
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_RESTARTS]);
    }
}

void
bg_task_set_next_attempt_at (BgTask *self,
                             gint64  unix_usec)
{
  g_return_if_fail (BG_IS_TASK (self));

  if (self->next_attempt_at != unix_usec)
    {
      self->next_attempt_at = unix_usec;
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_NEXT_ATTEMPT_AT]);
    }
}

void
bg_task_set_response (BgTask     *self,
                      BgResponse *response)
{
  g_return_if_fail (BG_IS_TASK (self));

  if (g_set_object (&self->response, response))
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_RESPONSE]);
}

/**
 * bg_task_get_identifier:
 * @self: a #BgTask
 *
 * Gets the identifier the app chose for the task.
 *
 * Returns: the identifier
 */
const char *
bg_task_get_identifier (BgTask *self)
{
  g_return_val_if_fail (BG_IS_TASK (self), NULL);
  return self->identifier;
}

/**
 * bg_task_get_kind:
 * @self: a #BgTask
 *
 * Gets whether the task downloads or uploads.
 *
 * Returns: the kind of task
 */
BgTaskKind
bg_task_get_kind (BgTask *self)
{
  g_return_val_if_fail (BG_IS_TASK (self), BG_TASK_KIND_DOWNLOAD);
  return self->kind;
}

/**
 * bg_task_get_state:
 * @self: a #BgTask
 *
 * Gets where the task is in its life.
 *
 * Returns: the state
 */
BgTaskState
bg_task_get_state (BgTask *self)
{
  g_return_val_if_fail (BG_IS_TASK (self), BG_TASK_STATE_QUEUED);
  return self->state;
}

/**
 * bg_task_get_uri:
 * @self: a #BgTask
 *
 * Gets the URI of the newest request given for the task. A password in its userinfo is never
 * shown.
 *
 * Returns: the URI, without its password
 */
const char *
bg_task_get_uri (BgTask *self)
{
  g_return_val_if_fail (BG_IS_TASK (self), NULL);
  return self->uri;
}

/**
 * bg_task_get_file:
 * @self: a #BgTask
 *
 * Gets the destination of a download, or the source of an upload.
 *
 * Returns: (transfer none): the file
 */
GFile *
bg_task_get_file (BgTask *self)
{
  g_return_val_if_fail (BG_IS_TASK (self), NULL);
  return self->file;
}

/**
 * bg_task_get_bytes_transferred:
 * @self: a #BgTask
 *
 * Gets how many bytes have moved so far.
 *
 * Returns: the number of bytes
 */
gint64
bg_task_get_bytes_transferred (BgTask *self)
{
  g_return_val_if_fail (BG_IS_TASK (self), 0);
  return self->bytes_transferred;
}

/**
 * bg_task_get_bytes_total:
 * @self: a #BgTask
 *
 * Gets the size of the transfer.
 *
 * Returns: the number of bytes, or -1 when it is not known
 */
gint64
bg_task_get_bytes_total (BgTask *self)
{
  g_return_val_if_fail (BG_IS_TASK (self), -1);
  return self->bytes_total;
}

/**
 * bg_task_get_attempts:
 * @self: a #BgTask
 *
 * Gets how many attempts have been started.
 *
 * Returns: the number of attempts
 */
guint
bg_task_get_attempts (BgTask *self)
{
  g_return_val_if_fail (BG_IS_TASK (self), 0);
  return self->attempts;
}

void
bg_task_set_upload_protocol (BgTask           *self,
                             BgUploadProtocol  protocol)
{
  g_return_if_fail (BG_IS_TASK (self));

  if (self->upload_protocol != protocol)
    {
      self->upload_protocol = protocol;
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_UPLOAD_PROTOCOL]);
    }
}

/**
 * bg_task_get_upload_protocol:
 * @self: a #BgTask
 *
 * Gets [property@Bg.Task:upload-protocol]: for an upload, the protocol it uses.
 *
 * Returns: the protocol in use, or %BG_UPLOAD_PROTOCOL_AUTO while not known yet
 */
BgUploadProtocol
bg_task_get_upload_protocol (BgTask *self)
{
  g_return_val_if_fail (BG_IS_TASK (self), BG_UPLOAD_PROTOCOL_AUTO);
  return self->upload_protocol;
}

/**
 * bg_task_get_restarts:
 * @self: a #BgTask
 *
 * Gets how many times the transfer started over from the first byte.
 *
 * Returns: the number of restarts
 */
guint
bg_task_get_restarts (BgTask *self)
{
  g_return_val_if_fail (BG_IS_TASK (self), 0);
  return self->restarts;
}

/**
 * bg_task_dup_next_attempt_at:
 * @self: a #BgTask
 *
 * Gets when the next attempt is due, while the task waits to try again.
 *
 * Returns: (transfer full) (nullable): the time, or %NULL when no attempt is scheduled
 */
GDateTime *
bg_task_dup_next_attempt_at (BgTask *self)
{
  g_autoptr(GDateTime) seconds = NULL;

  g_return_val_if_fail (BG_IS_TASK (self), NULL);

  if (self->next_attempt_at <= 0)
    return NULL;

  seconds = g_date_time_new_from_unix_utc (self->next_attempt_at / G_USEC_PER_SEC);
  if (seconds == NULL)
    return NULL;

  return g_date_time_add (seconds, self->next_attempt_at % G_USEC_PER_SEC);
}

/**
 * bg_task_get_fraction:
 * @self: a #BgTask
 *
 * Gets how much of the transfer is done. See [property@Bg.Task:fraction].
 *
 * Returns: a number from 0 to 1, or -1 when the size of the transfer is not known
 */
double
bg_task_get_fraction (BgTask *self)
{
  g_return_val_if_fail (BG_IS_TASK (self), -1.0);

  if (self->bytes_total < 0)
    return -1.0;
  if (self->bytes_transferred >= self->bytes_total)
    return 1.0;

  return CLAMP ((double) self->bytes_transferred / (double) self->bytes_total, 0.0, 1.0);
}

/**
 * bg_task_get_bytes_per_second:
 * @self: a #BgTask
 *
 * Gets how fast the transfer moves, averaged over the last few seconds. See
 * [property@Bg.Task:bytes-per-second].
 *
 * Returns: bytes per second, or 0 when no byte is moving or it is too early to tell
 */
double
bg_task_get_bytes_per_second (BgTask *self)
{
  g_return_val_if_fail (BG_IS_TASK (self), 0.0);

  return self->progress != NULL ? self->progress->bytes_per_second : 0.0;
}

/**
 * bg_task_get_eta:
 * @self: a #BgTask
 *
 * Gets how long the transfer still needs at its current rate. See [property@Bg.Task:eta].
 *
 * Returns: seconds, 0 once every byte has moved, or -1 when it cannot be told
 */
gint64
bg_task_get_eta (BgTask *self)
{
  double seconds;
  gint64 eta;

  g_return_val_if_fail (BG_IS_TASK (self), -1);

  if (self->bytes_total < 0)
    return -1;
  if (self->bytes_transferred >= self->bytes_total)
    return 0;
  if (self->progress == NULL || self->progress->bytes_per_second <= 0.0)
    return -1;

  seconds = (double) (self->bytes_total - self->bytes_transferred) /
            self->progress->bytes_per_second;
  if (seconds >= (double) G_MAXINT32)
    return G_MAXINT32;

  eta = (gint64) seconds;
  return eta < seconds ? eta + 1 : eta;
}

/**
 * bg_task_get_response:
 * @self: a #BgTask
 *
 * Gets the final response of a finished task.
 *
 * Returns: (transfer none) (nullable): the response, or %NULL while the task is unfinished
 */
BgResponse *
bg_task_get_response (BgTask *self)
{
  g_return_val_if_fail (BG_IS_TASK (self), NULL);
  return self->response;
}

void
bg_task_set_wait_reason (BgTask       *self,
                         BgWaitReason  reason)
{
  g_return_if_fail (BG_IS_TASK (self));

  if (self->wait_reason != reason)
    {
      self->wait_reason = reason;
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_WAIT_REASON]);
    }
}

void
bg_task_init_options (BgTask     *self,
                      gboolean    allow_metered,
                      gboolean    discretionary,
                      int         priority,
                      gint64      earliest_start,
                      const char *expected_sha256,
                      gboolean    keep_credentials)
{
  self->allow_metered = !!allow_metered;
  self->discretionary = !!discretionary;
  self->priority = priority;
  self->earliest_start = earliest_start;
  g_free (self->expected_sha256);
  self->expected_sha256 = g_strdup (expected_sha256);
  self->keep_credentials = !!keep_credentials;
}

void
bg_task_init_paused (BgTask   *self,
                     gboolean  paused)
{
  self->paused = !!paused;
}

void
bg_task_init_max_bandwidth (BgTask  *self,
                            guint64  bytes_per_second)
{
  self->max_bandwidth = MIN (bytes_per_second, (guint64) G_MAXINT64);
}

gint64
bg_task_get_earliest_start_usec (BgTask *self)
{
  return self->earliest_start;
}

/**
 * bg_task_get_wait_reason:
 * @self: a #BgTask
 *
 * Gets why the task waits.
 *
 * Returns: the reason, or %BG_WAIT_REASON_NONE when the task is not waiting
 */
BgWaitReason
bg_task_get_wait_reason (BgTask *self)
{
  g_return_val_if_fail (BG_IS_TASK (self), BG_WAIT_REASON_NONE);
  return self->wait_reason;
}

/**
 * bg_task_get_allow_metered:
 * @self: a #BgTask
 *
 * Gets whether the task may use a metered network.
 *
 * Returns: %TRUE if it may
 */
gboolean
bg_task_get_allow_metered (BgTask *self)
{
  g_return_val_if_fail (BG_IS_TASK (self), FALSE);
  return self->allow_metered;
}

/**
 * bg_task_set_allow_metered:
 * @self: a #BgTask
 * @allow_metered: whether the task may use a metered network
 *
 * Lets the task transfer over a metered network, or stops it from doing so.
 */
void
bg_task_set_allow_metered (BgTask   *self,
                           gboolean  allow_metered)
{
  g_return_if_fail (BG_IS_TASK (self));
  g_return_if_fail (TASK_TAKES_OPTIONS (self));

  allow_metered = !!allow_metered;
  if (self->allow_metered != allow_metered)
    {
      self->allow_metered = allow_metered;
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_ALLOW_METERED]);
    }
}

/**
 * bg_task_get_discretionary:
 * @self: a #BgTask
 *
 * Gets whether the task can wait while power-saver mode is on.
 *
 * Returns: %TRUE if it can
 */
gboolean
bg_task_get_discretionary (BgTask *self)
{
  g_return_val_if_fail (BG_IS_TASK (self), FALSE);
  return self->discretionary;
}

/**
 * bg_task_set_discretionary:
 * @self: a #BgTask
 * @discretionary: whether the task can wait while power-saver mode is on
 *
 * Marks the task as one that can wait while power-saver mode is on.
 */
void
bg_task_set_discretionary (BgTask   *self,
                           gboolean  discretionary)
{
  g_return_if_fail (BG_IS_TASK (self));
  g_return_if_fail (TASK_TAKES_OPTIONS (self));

  discretionary = !!discretionary;
  if (self->discretionary != discretionary)
    {
      self->discretionary = discretionary;
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_DISCRETIONARY]);
    }
}

/**
 * bg_task_get_priority:
 * @self: a #BgTask
 *
 * Gets the task's priority in the queue.
 *
 * Returns: the priority
 */
int
bg_task_get_priority (BgTask *self)
{
  g_return_val_if_fail (BG_IS_TASK (self), 0);
  return self->priority;
}

/**
 * bg_task_set_priority:
 * @self: a #BgTask
 * @priority: the priority; higher starts first
 *
 * Sets the task's priority in the queue.
 */
void
bg_task_set_priority (BgTask *self,
                      int     priority)
{
  g_return_if_fail (BG_IS_TASK (self));
  g_return_if_fail (TASK_TAKES_OPTIONS (self));

  if (self->priority != priority)
    {
      self->priority = priority;
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_PRIORITY]);
    }
}

/**
 * bg_task_dup_earliest_start:
 * @self: a #BgTask
 *
 * Gets the time before which the task does not start.
 *
 * Returns: (transfer full) (nullable): the time, or %NULL when there is none
 */
GDateTime *
bg_task_dup_earliest_start (BgTask *self)
{
  g_return_val_if_fail (BG_IS_TASK (self), NULL);

  if (self->earliest_start == 0)
    return NULL;

  return g_date_time_new_from_unix_utc (self->earliest_start / G_USEC_PER_SEC);
}

/**
 * bg_task_set_earliest_start:
 * @self: a #BgTask
 * @earliest_start: (nullable): the time before which the task does not start, or %NULL
 *
 * Holds the task until @earliest_start, also across restarts.
 */
void
bg_task_set_earliest_start (BgTask    *self,
                            GDateTime *earliest_start)
{
  gint64 usec;

  g_return_if_fail (BG_IS_TASK (self));
  g_return_if_fail (TASK_TAKES_OPTIONS (self));

  usec = earliest_start ? g_date_time_to_unix (earliest_start) * G_USEC_PER_SEC : 0;
  if (self->earliest_start != usec)
    {
      self->earliest_start = usec;
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_EARLIEST_START]);
    }
}

/**
 * bg_task_get_expected_sha256:
 * @self: a #BgTask
 *
 * Gets the SHA-256 a download must have.
 *
 * Returns: (nullable): 64 lowercase hexadecimal digits, or %NULL
 */
const char *
bg_task_get_expected_sha256 (BgTask *self)
{
  g_return_val_if_fail (BG_IS_TASK (self), NULL);
  return self->expected_sha256;
}

/**
 * bg_task_set_expected_sha256:
 * @self: a #BgTask
 * @sha256: (nullable): 64 hexadecimal digits, or %NULL for no check
 *
 * Sets the SHA-256 a download must have before it is published. Anything but 64 hexadecimal
 * digits, an upload, or a task that has finished is a programming error, ignored with a
 * critical warning.
 */
void
bg_task_set_expected_sha256 (BgTask     *self,
                             const char *sha256)
{
  g_autofree char *lower = NULL;

  g_return_if_fail (BG_IS_TASK (self));
  g_return_if_fail (TASK_TAKES_OPTIONS (self));
  g_return_if_fail (sha256 == NULL || bg_sha256_is_valid (sha256));
  g_return_if_fail (sha256 == NULL || self->kind == BG_TASK_KIND_DOWNLOAD);

  lower = sha256 != NULL ? g_ascii_strdown (sha256, -1) : NULL;
  if (g_strcmp0 (self->expected_sha256, lower) != 0)
    {
      g_free (self->expected_sha256);
      self->expected_sha256 = g_steal_pointer (&lower);
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_EXPECTED_SHA256]);
    }
}

/**
 * bg_task_get_keep_credentials:
 * @self: a #BgTask
 *
 * Gets whether the task's credentials are stored with it.
 *
 * Returns: %TRUE if they are stored
 */
gboolean
bg_task_get_keep_credentials (BgTask *self)
{
  g_return_val_if_fail (BG_IS_TASK (self), FALSE);
  return self->keep_credentials;
}

/**
 * bg_task_set_keep_credentials:
 * @self: a #BgTask
 * @keep_credentials: whether to store the credentials with the task
 *
 * Stores the task's credentials (`Authorization`, `Proxy-Authorization` and `Cookie` headers,
 * the password of its URL) with it, so that a later run has them, or keeps them in memory only.
 * See [property@Bg.Task:keep-credentials].
 */
void
bg_task_set_keep_credentials (BgTask   *self,
                              gboolean  keep_credentials)
{
  g_return_if_fail (BG_IS_TASK (self));
  g_return_if_fail (TASK_TAKES_OPTIONS (self));

  keep_credentials = !!keep_credentials;
  if (self->keep_credentials != keep_credentials)
    {
      self->keep_credentials = keep_credentials;
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_KEEP_CREDENTIALS]);
    }
}

/**
 * bg_task_get_paused:
 * @self: a #BgTask
 *
 * Gets whether the app paused the task.
 *
 * Returns: %TRUE if the task is paused
 */
gboolean
bg_task_get_paused (BgTask *self)
{
  g_return_val_if_fail (BG_IS_TASK (self), FALSE);
  return self->paused;
}

/**
 * bg_task_set_paused:
 * @self: a #BgTask
 * @paused: whether to pause the task
 *
 * Pauses the task, keeping its partial file and record, or lets it go on from its last
 * checkpoint. See [property@Bg.Task:paused]. Pausing a task that has finished is a programming
 * error, ignored with a critical warning.
 */
void
bg_task_set_paused (BgTask   *self,
                    gboolean  paused)
{
  g_return_if_fail (BG_IS_TASK (self));
  g_return_if_fail (TASK_TAKES_OPTIONS (self));

  paused = !!paused;
  if (self->paused != paused)
    {
      self->paused = paused;
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_PAUSED]);
    }
}

/**
 * bg_task_get_max_bandwidth:
 * @self: a #BgTask
 *
 * Gets the task's bandwidth cap. See [property@Bg.Task:max-bandwidth].
 *
 * Returns: the cap in bytes per second, or 0 for none
 */
guint64
bg_task_get_max_bandwidth (BgTask *self)
{
  g_return_val_if_fail (BG_IS_TASK (self), 0);
  return self->max_bandwidth;
}

/**
 * bg_task_set_max_bandwidth:
 * @self: a #BgTask
 * @bytes_per_second: the cap in bytes per second, or 0 for none
 *
 * Caps the bytes per second the task moves, or lifts the cap; a running task follows within half
 * a second. See [property@Bg.Task:max-bandwidth]. A cap above %G_MAXINT64, or a task
 * that has finished, is a programming error, ignored with a critical warning.
 */
void
bg_task_set_max_bandwidth (BgTask  *self,
                           guint64  bytes_per_second)
{
  g_return_if_fail (BG_IS_TASK (self));
  g_return_if_fail (TASK_TAKES_OPTIONS (self));
  g_return_if_fail (bytes_per_second <= G_MAXINT64);

  if (self->max_bandwidth != bytes_per_second)
    {
      self->max_bandwidth = bytes_per_second;
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_MAX_BANDWIDTH]);
    }
}

/* The options an app gave with a call that joined the task replace the task's own. */
void
bg_task_apply_options (BgTask        *self,
                       BgTaskOptions *options)
{
  g_autoptr(GDateTime) earliest_start = NULL;

  g_return_if_fail (BG_IS_TASK (self));
  g_return_if_fail (BG_IS_TASK_OPTIONS (options));

  g_object_freeze_notify (G_OBJECT (self));
  bg_task_set_allow_metered (self, bg_task_options_get_allow_metered (options));
  bg_task_set_discretionary (self, bg_task_options_get_discretionary (options));
  bg_task_set_priority (self, bg_task_options_get_priority (options));
  bg_task_set_earliest_start (self, bg_task_options_get_earliest_start (options));
  if (self->kind == BG_TASK_KIND_DOWNLOAD)
    bg_task_set_expected_sha256 (self, bg_task_options_get_expected_sha256 (options));
  bg_task_set_keep_credentials (self, bg_task_options_get_keep_credentials (options));
  bg_task_set_max_bandwidth (self, bg_task_options_get_max_bandwidth (options));
  g_object_thaw_notify (G_OBJECT (self));
}
