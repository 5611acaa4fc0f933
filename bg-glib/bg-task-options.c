/* bg-task-options.c: what an app asks of a task when it creates it
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <string.h>

#include "bg-enums.h"
#include "bg-task-options-private.h"

/**
 * BgTaskOptions:
 *
 * The options of a new task, given to [method@Bg.Downloader.download_async] or
 * [method@Bg.Uploader.upload_async] and written to the database in the same commit as the task
 * itself, so that a process killed right after the call still leaves the task with its options.
 *
 * The same options are properties of [class@Bg.Task], where they can be changed later.
 *
 * ```c
 * g_autoptr(BgTaskOptions) options = bg_task_options_new ();
 *
 * bg_task_options_set_allow_metered (options, TRUE);
 * bg_task_options_set_expected_sha256 (options, "e3b0c44298fc1c149afbf4c8996fb924"
 *                                               "27ae41e4649b934ca495991b7852b855");
 * bg_downloader_download_async (downloader, msg, dest, "report", options,
 *                               NULL, on_done, NULL);
 * ```
 */
struct _BgTaskOptions
{
  GObject    parent_instance;

  GDateTime *earliest_start;
  char      *expected_sha256;
  gint64     chunk_size;
  int        priority;
  BgUploadProtocol upload_protocol;
  guint64    max_bandwidth;
  guint      allow_metered : 1;
  guint      allow_tus : 1;
  guint      discretionary : 1;
  guint      keep_credentials : 1;
};

G_DEFINE_FINAL_TYPE (BgTaskOptions, bg_task_options, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_ALLOW_METERED,
  PROP_DISCRETIONARY,
  PROP_PRIORITY,
  PROP_EARLIEST_START,
  PROP_EXPECTED_SHA256,
  PROP_KEEP_CREDENTIALS,
  PROP_UPLOAD_PROTOCOL,
  PROP_ALLOW_TUS,
  PROP_CHUNK_SIZE,
  PROP_MAX_BANDWIDTH,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

gboolean
bg_sha256_is_valid (const char *sha256)
{
  return sha256 != NULL && strlen (sha256) == 64 &&
         strspn (sha256, "0123456789abcdefABCDEF") == 64;
}

static void
bg_task_options_finalize (GObject *object)
{
  BgTaskOptions *self = BG_TASK_OPTIONS (object);

  g_clear_pointer (&self->earliest_start, g_date_time_unref);
  g_clear_pointer (&self->expected_sha256, g_free);

  G_OBJECT_CLASS (bg_task_options_parent_class)->finalize (object);
}

static void
bg_task_options_get_property (GObject    *object,
                              guint       prop_id,
                              GValue     *value,
                              GParamSpec *pspec)
{
  BgTaskOptions *self = BG_TASK_OPTIONS (object);

  switch (prop_id)
    {
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
      g_value_set_boxed (value, self->earliest_start);
      break;
    case PROP_EXPECTED_SHA256:
      g_value_set_string (value, self->expected_sha256);
      break;
    case PROP_KEEP_CREDENTIALS:
      g_value_set_boolean (value, self->keep_credentials);
      break;
    case PROP_UPLOAD_PROTOCOL:
      g_value_set_enum (value, self->upload_protocol);
      break;
    case PROP_ALLOW_TUS:
      g_value_set_boolean (value, self->allow_tus);
      break;
    case PROP_CHUNK_SIZE:
      g_value_set_int64 (value, self->chunk_size);
      break;
    case PROP_MAX_BANDWIDTH:
      g_value_set_uint64 (value, self->max_bandwidth);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
bg_task_options_set_property (GObject      *object,
                              guint         prop_id,
                              const GValue *value,
                              GParamSpec   *pspec)
{
  BgTaskOptions *self = BG_TASK_OPTIONS (object);

  switch (prop_id)
    {
    case PROP_ALLOW_METERED:
      bg_task_options_set_allow_metered (self, g_value_get_boolean (value));
      break;
    case PROP_DISCRETIONARY:
      bg_task_options_set_discretionary (self, g_value_get_boolean (value));
      break;
    case PROP_PRIORITY:
      bg_task_options_set_priority (self, g_value_get_int (value));
      break;
    case PROP_EARLIEST_START:
      bg_task_options_set_earliest_start (self, g_value_get_boxed (value));
      break;
    case PROP_EXPECTED_SHA256:
      bg_task_options_set_expected_sha256 (self, g_value_get_string (value));
      break;
    case PROP_KEEP_CREDENTIALS:
      bg_task_options_set_keep_credentials (self, g_value_get_boolean (value));
      break;
    case PROP_UPLOAD_PROTOCOL:
      bg_task_options_set_upload_protocol (self, g_value_get_enum (value));
      break;
    case PROP_ALLOW_TUS:
      bg_task_options_set_allow_tus (self, g_value_get_boolean (value));
      break;
    case PROP_CHUNK_SIZE:
      bg_task_options_set_chunk_size (self, g_value_get_int64 (value));
      break;
    case PROP_MAX_BANDWIDTH:
      bg_task_options_set_max_bandwidth (self, g_value_get_uint64 (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
bg_task_options_class_init (BgTaskOptionsClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  const GParamFlags flags = G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS;

  object_class->finalize = bg_task_options_finalize;
  object_class->get_property = bg_task_options_get_property;
  object_class->set_property = bg_task_options_set_property;

  /**
   * BgTaskOptions:allow-metered:
   *
   * Whether the task may use a metered network even when its downloader or uploader does not
   * allow it.
   */
  properties[PROP_ALLOW_METERED] =
    g_param_spec_boolean ("allow-metered", NULL, NULL, FALSE, flags);

  /**
   * BgTaskOptions:discretionary:
   *
   * Whether the task can wait: a discretionary task waits while power-saver mode is on, with
   * %BG_WAIT_REASON_POWER_SAVER.
   */
  properties[PROP_DISCRETIONARY] =
    g_param_spec_boolean ("discretionary", NULL, NULL, FALSE, flags);

  /**
   * BgTaskOptions:priority:
   *
   * The task's place in the queue: tasks with a higher priority start first, tasks of equal
   * priority in the order they were queued.
   */
  properties[PROP_PRIORITY] =
    g_param_spec_int ("priority", NULL, NULL, G_MININT, G_MAXINT, 0, flags);

  /**
   * BgTaskOptions:earliest-start:
   *
   * The task does not start before this time; until then it waits with
   * %BG_WAIT_REASON_SCHEDULED. %NULL for no such limit.
   */
  properties[PROP_EARLIEST_START] =
    g_param_spec_boxed ("earliest-start", NULL, NULL, G_TYPE_DATE_TIME, flags);

  /**
   * BgTaskOptions:expected-sha256:
   *
   * For a download, the SHA-256 the finished file must have, as 64 hexadecimal digits. A file
   * with another one is not published, and the task ends %BG_RESPONSE_FAILED with
   * %BG_ERROR_INTEGRITY. Giving it to an upload is refused with %BG_ERROR_INVALID_ARGUMENT.
   */
  properties[PROP_EXPECTED_SHA256] =
    g_param_spec_string ("expected-sha256", NULL, NULL, NULL, flags);

  /**
   * BgTaskOptions:keep-credentials:
   *
   * Whether the request's credentials (`Authorization`, `Proxy-Authorization` and `Cookie`
   * headers and the password of its URL) are stored with the task. By default they are kept
   * in memory only; see [property@Bg.Task:keep-credentials].
   */
  properties[PROP_KEEP_CREDENTIALS] =
    g_param_spec_boolean ("keep-credentials", NULL, NULL, FALSE, flags);

  /**
   * BgTaskOptions:upload-protocol:
   *
   * How an upload sends its body: see #BgUploadProtocol. Giving anything but
   * %BG_UPLOAD_PROTOCOL_AUTO to a download is refused with %BG_ERROR_INVALID_ARGUMENT.
   */
  properties[PROP_UPLOAD_PROTOCOL] =
    g_param_spec_enum ("upload-protocol", NULL, NULL, BG_TYPE_UPLOAD_PROTOCOL,
                       BG_UPLOAD_PROTOCOL_AUTO, flags);

  /**
   * BgTaskOptions:allow-tus:
   *
   * Whether %BG_UPLOAD_PROTOCOL_AUTO may pick tus when the server offers it. It is not set by
   * default, because with tus the request's URL is where uploads are created, not the
   * resource the body is for: only the app knows which of the two its URL names.
   */
  properties[PROP_ALLOW_TUS] =
    g_param_spec_boolean ("allow-tus", NULL, NULL, FALSE, flags);

  /**
   * BgTaskOptions:chunk-size:
   *
   * With a resumable protocol, the most bytes one request carries, for servers and proxies
   * that limit the size of a request body; 0 (the default) for no such limit.
   */
  properties[PROP_CHUNK_SIZE] =
    g_param_spec_int64 ("chunk-size", NULL, NULL, 0, G_MAXINT64, 0, flags);

  /**
   * BgTaskOptions:max-bandwidth:
   *
   * The most bytes per second the task may move, averaged over half a second; 0 for no
   * cap, and at most %G_MAXINT64. The task's queue may have a cap of its own
   * ([property@Bg.TaskQueue:max-bandwidth]); the lower of the two applies. See [property@Bg.Task:max-bandwidth].
   */
  properties[PROP_MAX_BANDWIDTH] =
    g_param_spec_uint64 ("max-bandwidth", NULL, NULL, 0, G_MAXINT64, 0, flags);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
bg_task_options_init (BgTaskOptions *self)
{
}

/**
 * bg_task_options_new:
 *
 * Makes a set of options with every option at its default.
 *
 * Returns: (transfer full): new options
 */
BgTaskOptions *
bg_task_options_new (void)
{
  return g_object_new (BG_TYPE_TASK_OPTIONS, NULL);
}

/**
 * bg_task_options_get_allow_metered:
 * @self: a #BgTaskOptions
 *
 * Gets [property@Bg.TaskOptions:allow-metered].
 *
 * Returns: whether the task may use a metered network
 */
gboolean
bg_task_options_get_allow_metered (BgTaskOptions *self)
{
  g_return_val_if_fail (BG_IS_TASK_OPTIONS (self), FALSE);

  return self->allow_metered;
}

/**
 * bg_task_options_set_allow_metered:
 * @self: a #BgTaskOptions
 * @allow_metered: whether the task may use a metered network
 *
 * Sets [property@Bg.TaskOptions:allow-metered].
 */
void
bg_task_options_set_allow_metered (BgTaskOptions *self,
                                   gboolean       allow_metered)
{
  g_return_if_fail (BG_IS_TASK_OPTIONS (self));

  allow_metered = !!allow_metered;
  if (self->allow_metered == (guint) allow_metered)
    return;
  self->allow_metered = allow_metered;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_ALLOW_METERED]);
}

/**
 * bg_task_options_get_discretionary:
 * @self: a #BgTaskOptions
 *
 * Gets [property@Bg.TaskOptions:discretionary].
 *
 * Returns: whether the task can wait for power-saver mode to end
 */
gboolean
bg_task_options_get_discretionary (BgTaskOptions *self)
{
  g_return_val_if_fail (BG_IS_TASK_OPTIONS (self), FALSE);

  return self->discretionary;
}

/**
 * bg_task_options_set_discretionary:
 * @self: a #BgTaskOptions
 * @discretionary: whether the task can wait
 *
 * Sets [property@Bg.TaskOptions:discretionary].
 */
void
bg_task_options_set_discretionary (BgTaskOptions *self,
                                   gboolean       discretionary)
{
  g_return_if_fail (BG_IS_TASK_OPTIONS (self));

  discretionary = !!discretionary;
  if (self->discretionary == (guint) discretionary)
    return;
  self->discretionary = discretionary;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_DISCRETIONARY]);
}

/**
 * bg_task_options_get_priority:
 * @self: a #BgTaskOptions
 *
 * Gets [property@Bg.TaskOptions:priority].
 *
 * Returns: the priority; higher starts first
 */
int
bg_task_options_get_priority (BgTaskOptions *self)
{
  g_return_val_if_fail (BG_IS_TASK_OPTIONS (self), 0);

  return self->priority;
}

/**
 * bg_task_options_set_priority:
 * @self: a #BgTaskOptions
 * @priority: the priority; higher starts first
 *
 * Sets [property@Bg.TaskOptions:priority].
 */
void
bg_task_options_set_priority (BgTaskOptions *self,
                              int            priority)
{
  g_return_if_fail (BG_IS_TASK_OPTIONS (self));

  if (self->priority == priority)
    return;
  self->priority = priority;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_PRIORITY]);
}

/**
 * bg_task_options_get_earliest_start:
 * @self: a #BgTaskOptions
 *
 * Gets [property@Bg.TaskOptions:earliest-start].
 *
 * Returns: (transfer none) (nullable): the time before which the task does not start
 */
GDateTime *
bg_task_options_get_earliest_start (BgTaskOptions *self)
{
  g_return_val_if_fail (BG_IS_TASK_OPTIONS (self), NULL);

  return self->earliest_start;
}

/**
 * bg_task_options_set_earliest_start:
 * @self: a #BgTaskOptions
 * @earliest_start: (nullable): the time before which the task does not start, or %NULL
 *
 * Sets [property@Bg.TaskOptions:earliest-start].
 */
void
bg_task_options_set_earliest_start (BgTaskOptions *self,
                                    GDateTime     *earliest_start)
{
  g_return_if_fail (BG_IS_TASK_OPTIONS (self));

  if (self->earliest_start == earliest_start ||
      (self->earliest_start != NULL && earliest_start != NULL &&
       g_date_time_equal (self->earliest_start, earliest_start)))
    return;

  g_clear_pointer (&self->earliest_start, g_date_time_unref);
  if (earliest_start != NULL)
    self->earliest_start = g_date_time_ref (earliest_start);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_EARLIEST_START]);
}

/**
 * bg_task_options_get_expected_sha256:
 * @self: a #BgTaskOptions
 *
 * Gets [property@Bg.TaskOptions:expected-sha256], in lower case.
 *
 * Returns: (nullable): the SHA-256 the downloaded file must have, or %NULL
 */
const char *
bg_task_options_get_expected_sha256 (BgTaskOptions *self)
{
  g_return_val_if_fail (BG_IS_TASK_OPTIONS (self), NULL);

  return self->expected_sha256;
}

/**
 * bg_task_options_set_expected_sha256:
 * @self: a #BgTaskOptions
 * @sha256: (nullable): 64 hexadecimal digits, or %NULL for no check
 *
 * Sets [property@Bg.TaskOptions:expected-sha256]. Anything but 64 hexadecimal digits is a
 * programming error and is ignored with a critical warning.
 */
void
bg_task_options_set_expected_sha256 (BgTaskOptions *self,
                                     const char    *sha256)
{
  g_autofree char *lower = NULL;

  g_return_if_fail (BG_IS_TASK_OPTIONS (self));
  g_return_if_fail (sha256 == NULL || bg_sha256_is_valid (sha256));

  lower = sha256 != NULL ? g_ascii_strdown (sha256, -1) : NULL;
  if (g_strcmp0 (self->expected_sha256, lower) == 0)
    return;
  g_free (self->expected_sha256);
  self->expected_sha256 = g_steal_pointer (&lower);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_EXPECTED_SHA256]);
}

/**
 * bg_task_options_get_keep_credentials:
 * @self: a #BgTaskOptions
 *
 * Gets [property@Bg.TaskOptions:keep-credentials].
 *
 * Returns: whether the request's credentials are stored with the task
 */
gboolean
bg_task_options_get_keep_credentials (BgTaskOptions *self)
{
  g_return_val_if_fail (BG_IS_TASK_OPTIONS (self), FALSE);

  return self->keep_credentials;
}

/**
 * bg_task_options_set_keep_credentials:
 * @self: a #BgTaskOptions
 * @keep_credentials: whether to store the request's credentials with the task
 *
 * Sets [property@Bg.TaskOptions:keep-credentials].
 */
void
bg_task_options_set_keep_credentials (BgTaskOptions *self,
                                      gboolean       keep_credentials)
{
  g_return_if_fail (BG_IS_TASK_OPTIONS (self));

  keep_credentials = !!keep_credentials;
  if (self->keep_credentials == (guint) keep_credentials)
    return;
  self->keep_credentials = keep_credentials;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_KEEP_CREDENTIALS]);
}

/**
 * bg_task_options_get_upload_protocol:
 * @self: a #BgTaskOptions
 *
 * Gets [property@Bg.TaskOptions:upload-protocol].
 *
 * Returns: how the upload sends its body
 */
BgUploadProtocol
bg_task_options_get_upload_protocol (BgTaskOptions *self)
{
  g_return_val_if_fail (BG_IS_TASK_OPTIONS (self), BG_UPLOAD_PROTOCOL_AUTO);

  return self->upload_protocol;
}

/**
 * bg_task_options_set_upload_protocol:
 * @self: a #BgTaskOptions
 * @protocol: how the upload sends its body
 *
 * Sets [property@Bg.TaskOptions:upload-protocol].
 */
void
bg_task_options_set_upload_protocol (BgTaskOptions    *self,
                                     BgUploadProtocol  protocol)
{
  g_return_if_fail (BG_IS_TASK_OPTIONS (self));
  g_return_if_fail (protocol >= BG_UPLOAD_PROTOCOL_AUTO && protocol <= BG_UPLOAD_PROTOCOL_IETF);

  if (self->upload_protocol == protocol)
    return;
  self->upload_protocol = protocol;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_UPLOAD_PROTOCOL]);
}

/**
 * bg_task_options_get_allow_tus:
 * @self: a #BgTaskOptions
 *
 * Gets [property@Bg.TaskOptions:allow-tus].
 *
 * Returns: whether %BG_UPLOAD_PROTOCOL_AUTO may pick tus
 */
gboolean
bg_task_options_get_allow_tus (BgTaskOptions *self)
{
  g_return_val_if_fail (BG_IS_TASK_OPTIONS (self), FALSE);

  return self->allow_tus;
}

/**
 * bg_task_options_set_allow_tus:
 * @self: a #BgTaskOptions
 * @allow_tus: whether %BG_UPLOAD_PROTOCOL_AUTO may pick tus
 *
 * Sets [property@Bg.TaskOptions:allow-tus].
 */
void
bg_task_options_set_allow_tus (BgTaskOptions *self,
                               gboolean       allow_tus)
{
  g_return_if_fail (BG_IS_TASK_OPTIONS (self));

  allow_tus = !!allow_tus;
  if (self->allow_tus == (guint) allow_tus)
    return;
  self->allow_tus = allow_tus;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_ALLOW_TUS]);
}

/**
 * bg_task_options_get_chunk_size:
 * @self: a #BgTaskOptions
 *
 * Gets [property@Bg.TaskOptions:chunk-size].
 *
 * Returns: the most bytes one request of a resumable upload carries, or 0 for no limit
 */
gint64
bg_task_options_get_chunk_size (BgTaskOptions *self)
{
  g_return_val_if_fail (BG_IS_TASK_OPTIONS (self), 0);

  return self->chunk_size;
}

/**
 * bg_task_options_set_chunk_size:
 * @self: a #BgTaskOptions
 * @chunk_size: the most bytes one request of a resumable upload carries, or 0 for no limit
 *
 * Sets [property@Bg.TaskOptions:chunk-size]. A negative size is a programming error and is
 * ignored with a critical warning.
 */
void
bg_task_options_set_chunk_size (BgTaskOptions *self,
                                gint64         chunk_size)
{
  g_return_if_fail (BG_IS_TASK_OPTIONS (self));
  g_return_if_fail (chunk_size >= 0);

  if (self->chunk_size == chunk_size)
    return;
  self->chunk_size = chunk_size;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CHUNK_SIZE]);
}

/**
 * bg_task_options_get_max_bandwidth:
 * @self: a #BgTaskOptions
 *
 * Gets [property@Bg.TaskOptions:max-bandwidth].
 *
 * Returns: the cap in bytes per second, or 0 for none
 */
guint64
bg_task_options_get_max_bandwidth (BgTaskOptions *self)
{
  g_return_val_if_fail (BG_IS_TASK_OPTIONS (self), 0);

  return self->max_bandwidth;
}

/**
 * bg_task_options_set_max_bandwidth:
 * @self: a #BgTaskOptions
 * @bytes_per_second: the cap in bytes per second, or 0 for none
 *
 * Sets [property@Bg.TaskOptions:max-bandwidth]. A cap above %G_MAXINT64 is a programming
 * error and is ignored with a critical warning.
 */
void
bg_task_options_set_max_bandwidth (BgTaskOptions *self,
                                   guint64        bytes_per_second)
{
  g_return_if_fail (BG_IS_TASK_OPTIONS (self));
  g_return_if_fail (bytes_per_second <= G_MAXINT64);

  if (self->max_bandwidth == bytes_per_second)
    return;
  self->max_bandwidth = bytes_per_second;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_MAX_BANDWIDTH]);
}
