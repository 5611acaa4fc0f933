/* bg-uploader.c: the upload front end
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include "bg-uploader-private.h"
#include "bg-task-queue-private.h"

/**
 * BgUploader:
 *
 * Uploads that outlive the process that asked for them.
 *
 * The request is a #SoupMessage carrying the method (`PUT` or `POST`), the URL and the headers;
 * the body is streamed from a file, never read whole into memory. Each upload is a task keyed
 * by an identifier that the app chooses and that stays the same across runs. It is written to a
 * database before [method@Bg.Uploader.upload_async] returns, and its outcome, including the
 * server's answer body up to [property@Bg.Uploader:max-response-size], is kept there until the
 * app collects it, even across restarts.
 *
 * Every task carries an `Idempotency-Key` header whose value stays the same on every attempt and
 * in every run (unless the app set one itself), so that a server can drop the duplicate of a
 * request that was sent again after a crash. A plain `PUT` or `POST` cannot resume: an attempt
 * that was cut off starts again from the first byte. If the source file changed between attempts
 * it is sent whole and new, never half old and half new; if it changed while it was being sent,
 * that attempt ends as %BG_RESPONSE_RETRY whatever the server answered. Either way the new body
 * gets a new key; a task whose key the app set itself ends as %BG_RESPONSE_FAILED instead. A body
 * larger than 1 MiB is sent with `Expect: 100-continue`.
 */
struct _BgUploader
{
  BgTaskQueue parent_instance;
  gsize       max_response_size;
};

static GInitableIface *parent_initable_iface;
static GAsyncInitableIface *parent_async_initable_iface;

static void bg_uploader_initable_iface_init (GInitableIface *iface);
static void bg_uploader_async_initable_iface_init (GAsyncInitableIface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (BgUploader, bg_uploader, BG_TYPE_TASK_QUEUE,
                               G_IMPLEMENT_INTERFACE (G_TYPE_INITABLE,
                                                      bg_uploader_initable_iface_init)
                               G_IMPLEMENT_INTERFACE (G_TYPE_ASYNC_INITABLE,
                                                      bg_uploader_async_initable_iface_init))

enum {
  PROP_0,
  PROP_MAX_RESPONSE_SIZE,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

/* The engine exists once the queue is initialised: it learns the uploader's own setting. */
static gboolean
uploader_initialised (BgUploader *self,
                      gboolean    ok)
{
  BgEngine *engine = bg_task_queue_get_engine (BG_TASK_QUEUE (self));

  if (ok && engine != NULL)
    bg_engine_set_max_response_size (engine, self->max_response_size);
  else if (ok)
    bg_task_queue_configure_remote (BG_TASK_QUEUE (self), "max-response-size",
                                    g_variant_new_uint64 (self->max_response_size));

  return ok;
}

static gboolean
bg_uploader_initable_init (GInitable     *initable,
                           GCancellable  *cancellable,
                           GError       **error)
{
  return uploader_initialised (BG_UPLOADER (initable),
                               parent_initable_iface->init (initable, cancellable, error));
}

static void
bg_uploader_initable_iface_init (GInitableIface *iface)
{
  parent_initable_iface = g_type_interface_peek_parent (iface);
  iface->init = bg_uploader_initable_init;
}

static gboolean
bg_uploader_init_finish (GAsyncInitable  *initable,
                         GAsyncResult    *result,
                         GError         **error)
{
  return uploader_initialised (BG_UPLOADER (initable),
                               parent_async_initable_iface->init_finish (initable, result,
                                                                         error));
}

static void
bg_uploader_async_initable_iface_init (GAsyncInitableIface *iface)
{
  parent_async_initable_iface = g_type_interface_peek_parent (iface);
  iface->init_async = parent_async_initable_iface->init_async;
  iface->init_finish = bg_uploader_init_finish;
}

static void
bg_uploader_get_property (GObject    *object,
                          guint       prop_id,
                          GValue     *value,
                          GParamSpec *pspec)
{
  BgUploader *self = BG_UPLOADER (object);

  switch (prop_id)
    {
    case PROP_MAX_RESPONSE_SIZE:
      g_value_set_uint64 (value, self->max_response_size);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
bg_uploader_set_property (GObject      *object,
                          guint         prop_id,
                          const GValue *value,
                          GParamSpec   *pspec)
{
  BgUploader *self = BG_UPLOADER (object);

  switch (prop_id)
    {
    case PROP_MAX_RESPONSE_SIZE:
      bg_uploader_set_max_response_size (self, g_value_get_uint64 (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
bg_uploader_class_init (BgUploaderClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->get_property = bg_uploader_get_property;
  object_class->set_property = bg_uploader_set_property;

  bg_task_queue_class_set_kind (BG_TASK_QUEUE_CLASS (klass), BG_TASK_KIND_UPLOAD);

  /**
   * BgUploader:max-response-size:
   *
   * How many bytes of the server's answer body are kept in [property@Bg.Response:body]. The
   * rest is not read.
   */
  properties[PROP_MAX_RESPONSE_SIZE] =
    g_param_spec_uint64 ("max-response-size", NULL, NULL, 0, G_MAXSIZE, 1024 * 1024,
                         G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
bg_uploader_init (BgUploader *self)
{
  self->max_response_size = 1024 * 1024;
}

/**
 * bg_uploader_new:
 * @session_id: the name of the task database, such as the app's id
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Opens the uploader of @session_id. Its database is opened here, so %BG_ERROR_BUSY (another
 * process holds it) and %BG_ERROR_STORE (it cannot be used) come from this call.
 *
 * Returns: (transfer full): a new #BgUploader, or %NULL with @error set
 */
BgUploader *
bg_uploader_new (const char    *session_id,
                   GCancellable  *cancellable,
                   GError       **error)
{
  return g_initable_new (BG_TYPE_UPLOADER, cancellable, error,
                         "session-id", session_id,
                         NULL);
}

/**
 * bg_uploader_get_max_response_size:
 * @self: a #BgUploader
 *
 * Gets how many bytes of an answer body are kept.
 *
 * Returns: the number of bytes
 */
gsize
bg_uploader_get_max_response_size (BgUploader *self)
{
  g_return_val_if_fail (BG_IS_UPLOADER (self), 0);
  return self->max_response_size;
}

/**
 * bg_uploader_set_max_response_size:
 * @self: a #BgUploader
 * @max_response_size: the number of bytes to keep
 *
 * Sets how many bytes of the server's answer body are kept in the response.
 */
void
bg_uploader_set_max_response_size (BgUploader *self,
                                   gsize       max_response_size)
{
  BgEngine *engine;

  g_return_if_fail (BG_IS_UPLOADER (self));

  if (self->max_response_size == max_response_size)
    return;

  self->max_response_size = max_response_size;
  engine = bg_task_queue_get_engine (BG_TASK_QUEUE (self));
  if (engine != NULL)
    bg_engine_set_max_response_size (engine, max_response_size);
  else
    bg_task_queue_configure_remote (BG_TASK_QUEUE (self), "max-response-size",
                                    g_variant_new_uint64 (max_response_size));
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_MAX_RESPONSE_SIZE]);
}

/**
 * bg_uploader_new_async:
 * @session_id: the name of the task database, such as the app's id
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async) (nullable): called when the uploader is ready
 * @user_data: data for @callback
 *
 * Opens the uploader of @session_id like [ctor@Bg.Uploader.new], but opens and checks its database
 * on a worker thread, so that the main loop goes on meanwhile. Finish with
 * [ctor@Bg.Uploader.new_finish].
 */
void
bg_uploader_new_async (const char          *session_id,
                       GCancellable        *cancellable,
                       GAsyncReadyCallback  callback,
                       gpointer             user_data)
{
  g_return_if_fail (!cancellable || G_IS_CANCELLABLE (cancellable));

  g_async_initable_new_async (BG_TYPE_UPLOADER, G_PRIORITY_DEFAULT, cancellable, callback,
                              user_data, "session-id", session_id, NULL);
}

/**
 * bg_uploader_new_finish:
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #GError
 *
 * Finishes [func@Bg.Uploader.new_async].
 *
 * Returns: (transfer full): a new #BgUploader, or %NULL with @error set
 */
BgUploader *
bg_uploader_new_finish (GAsyncResult  *result,
                        GError       **error)
{
  g_autoptr(GObject) source = NULL;
  GObject *object;

  g_return_val_if_fail (G_IS_ASYNC_RESULT (result), NULL);

  source = g_async_result_get_source_object (result);
  object = g_async_initable_new_finish (G_ASYNC_INITABLE (source), result, error);

  return object != NULL ? BG_UPLOADER (object) : NULL;
}

/**
 * bg_uploader_upload_async:
 * @self: a #BgUploader
 * @request: the request to make: its URI and headers are used, and must be http or https
 * @source: the file whose contents are the request body; it must be a regular file
 * @identifier: the app's identifier for the task, the same in every run
 * @options: (nullable): the task's options, written with the task; %NULL for the defaults
 * @cancellable: (nullable): cancels the wait, not the upload
 * @callback: (scope async) (nullable): called with the result
 * @user_data: data for @callback
 *
 * Uploads @source with @request as the task @identifier. The task is committed to the
 * database before this function returns.
 *
 * If @identifier is already known, the call joins its task and no second transfer starts; the
 * newest request is used for later attempts, and @options, when given, replace the task's
 * options. If the task has finished but its result was never collected, the stored result comes
 * back at once.
 *
 * Cancelling @cancellable ends only the wait: the upload goes on in the background. Use
 * [method@Bg.TaskQueue.cancel] to stop it.
 */
void
bg_uploader_upload_async (BgUploader          *self,
                          SoupMessage         *request,
                          GFile               *source,
                          const char          *identifier,
                          BgTaskOptions       *options,
                          GCancellable        *cancellable,
                          GAsyncReadyCallback  callback,
                          gpointer             user_data)
{
  g_return_if_fail (BG_IS_UPLOADER (self));
  g_return_if_fail (SOUP_IS_MESSAGE (request));
  g_return_if_fail (G_IS_FILE (source));
  g_return_if_fail (!options || BG_IS_TASK_OPTIONS (options));
  g_return_if_fail (!cancellable || G_IS_CANCELLABLE (cancellable));

  bg_task_queue_submit_async (BG_TASK_QUEUE (self), bg_uploader_upload_async,
                              request, source, identifier, options,
                              cancellable, callback, user_data);
}

/**
 * bg_uploader_upload_finish:
 * @self: a #BgUploader
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #GError
 *
 * Gets the outcome of an upload. Every network outcome, including %BG_RESPONSE_FAILED, comes
 * back as a #BgResponse; returning it counts as collecting the result, and the task is then
 * forgotten.
 *
 * %NULL comes back only when the call itself was wrong (%BG_ERROR_INVALID_ARGUMENT,
 * %BG_ERROR_CONFLICT), the database failed (%BG_ERROR_STORE), or the wait was cancelled
 * (%G_IO_ERROR_CANCELLED).
 *
 * Returns: (transfer full): the response, or %NULL with @error set
 */
BgResponse *
bg_uploader_upload_finish (BgUploader    *self,
                           GAsyncResult  *result,
                           GError       **error)
{
  g_return_val_if_fail (BG_IS_UPLOADER (self), NULL);
  g_return_val_if_fail (G_IS_TASK (result), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == bg_uploader_upload_async,
                        NULL);

  return bg_task_queue_submit_finish (BG_TASK_QUEUE (self), result, error);
}
