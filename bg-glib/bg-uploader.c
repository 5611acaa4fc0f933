/* bg-uploader.c: the upload front end
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include "bg-uploader-private.h"
#include "bg-frontend-private.h"

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
  GObject    parent_instance;
  BgFrontend frontend;
  gsize      max_response_size;
};

static void bg_uploader_initable_iface_init (GInitableIface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (BgUploader, bg_uploader, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_INITABLE,
                                                      bg_uploader_initable_iface_init))

enum {
  PROP_MAX_RESPONSE_SIZE = BG_FRONTEND_N_PROPS,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];
static guint signals[BG_FRONTEND_N_SIGNALS];

/* The properties and signals are made in bg-frontend.c; their documentation is here. */

/**
 * BgUploader:session-id:
 *
 * The name of the task database, such as the app's id. It may contain only letters, digits,
 * `.`, `_` and `-`, at most 200 of them.
 */

/**
 * BgUploader:database-path:
 *
 * Where the task database lives. The default is
 * `$XDG_DATA_HOME/bg-glib/<session-id>.sqlite`, which inside Flatpak is the app's own data
 * folder.
 *
 * It must name a file that this process can write: an empty path or a folder gives
 * %BG_ERROR_INVALID_ARGUMENT, and a database that cannot be written, or a symbolic link to a
 * missing file, gives %BG_ERROR_STORE. A new database is created with mode 0600.
 */

/**
 * BgUploader:soup-session:
 *
 * The #SoupSession used for the transfers. By default the uploader makes its own.
 */

/**
 * BgUploader:network-monitor:
 *
 * The #GNetworkMonitor that says whether there is a network and whether it is metered. The
 * default is g_network_monitor_get_default(). While there is no network and the server cannot
 * be reached, tasks wait with %BG_WAIT_REASON_NETWORK and use up no attempts.
 */

/**
 * BgUploader:max-concurrent:
 *
 * How many uploads may run at once.
 */

/**
 * BgUploader:stall-timeout:
 *
 * How many seconds an attempt may go without a byte moving before it ends as
 * %BG_RESPONSE_RETRY. 0 turns the check off.
 */

/**
 * BgUploader:max-attempts:
 *
 * How many attempts a task gets before a %BG_RESPONSE_RETRY outcome is handed to the app.
 * Between attempts the task waits with exponential backoff, or as long as the server's
 * `Retry-After` asks when that is longer. 1 hands every retry straight to the app.
 */

/**
 * BgUploader:retry-delay:
 *
 * How many seconds the first automatic retry waits. Each later one waits twice as long, up to
 * [property@Bg.Uploader:max-retry-delay], plus up to a quarter more at random so that tasks that
 * failed together do not come back together. A longer `Retry-After` from the server wins.
 */

/**
 * BgUploader:max-retry-delay:
 *
 * The longest wait, in seconds, that the backoff between automatic retries reaches.
 */

/**
 * BgUploader:retry-deadline:
 *
 * How many seconds after a task was created it stops being retried: a retry that would fall
 * later hands the %BG_RESPONSE_RETRY outcome to the app. 0 means no deadline; the default is
 * seven days.
 */

/**
 * BgUploader:allow-metered:
 *
 * Whether uploads may use a metered network. When it is %FALSE, tasks wait with
 * %BG_WAIT_REASON_METERED while the network is metered, unless the task itself allows it
 * ([property@Bg.Task:allow-metered]).
 */

/**
 * BgUploader::task-finished:
 * @self: the uploader
 * @task: the task that finished
 * @response: its outcome
 *
 * Emitted when a task reaches its final outcome, also for a task that was restored from an
 * earlier run. Results that an earlier run never collected are announced again by
 * [method@Bg.Uploader.restore_async]: call [method@Bg.Uploader.forget] once the result is
 * safely handled.
 */

/**
 * BgUploader::prepare-request:
 * @self: the uploader
 * @task: the task about to make an attempt
 * @msg: the request of the attempt
 *
 * Emitted before every attempt, first ones and resumed ones alike. A handler can add a fresh
 * `Authorization` header or re-sign the URL; what it changes is not stored.
 *
 * Credentials on the request given to `_async` (`Authorization`, `Proxy-Authorization` and
 * `Cookie` headers, the password of the URL) are kept in memory only, unless the task's
 * [property@Bg.Task:keep-credentials] is set. After a restart, a task whose request still
 * carries none of them once this signal has been emitted does not start its attempt: it waits
 * with %BG_WAIT_REASON_CREDENTIALS until a handler supplies them.
 */

static gboolean
bg_uploader_initable_init (GInitable     *initable,
                           GCancellable  *cancellable,
                           GError       **error)
{
  BgUploader *self = BG_UPLOADER (initable);

  if (!bg_frontend_open (&self->frontend, error))
    return FALSE;

  bg_engine_set_max_response_size (self->frontend.engine, self->max_response_size);

  return TRUE;
}

static void
bg_uploader_initable_iface_init (GInitableIface *iface)
{
  iface->init = bg_uploader_initable_init;
}

static void
bg_uploader_dispose (GObject *object)
{
  bg_frontend_dispose (&BG_UPLOADER (object)->frontend);

  G_OBJECT_CLASS (bg_uploader_parent_class)->dispose (object);
}

static void
bg_uploader_finalize (GObject *object)
{
  bg_frontend_finalize (&BG_UPLOADER (object)->frontend);

  G_OBJECT_CLASS (bg_uploader_parent_class)->finalize (object);
}

static void
bg_uploader_get_property (GObject    *object,
                            guint       prop_id,
                            GValue     *value,
                            GParamSpec *pspec)
{
  BgUploader *self = BG_UPLOADER (object);

  if (prop_id == PROP_MAX_RESPONSE_SIZE)
    g_value_set_uint64 (value, self->max_response_size);
  else if (!bg_frontend_get_property (&self->frontend, prop_id, value))
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
}

static void
bg_uploader_set_property (GObject      *object,
                            guint         prop_id,
                            const GValue *value,
                            GParamSpec   *pspec)
{
  BgUploader *self = BG_UPLOADER (object);

  if (prop_id == PROP_MAX_RESPONSE_SIZE)
    bg_uploader_set_max_response_size (self, g_value_get_uint64 (value));
  else if (!bg_frontend_set_property (&self->frontend, prop_id, value))
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
}

static void
bg_uploader_class_init (BgUploaderClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = bg_uploader_dispose;
  object_class->finalize = bg_uploader_finalize;
  object_class->get_property = bg_uploader_get_property;
  object_class->set_property = bg_uploader_set_property;

  bg_frontend_class_init (object_class, properties, signals);

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
  bg_frontend_init (&self->frontend, G_OBJECT (self), BG_TASK_KIND_UPLOAD,
                    properties, signals);
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
 * bg_uploader_get_session_id:
 * @self: a #BgUploader
 *
 * Gets the session id.
 *
 * Returns: the session id
 */
const char *
bg_uploader_get_session_id (BgUploader *self)
{
  g_return_val_if_fail (BG_IS_UPLOADER (self), NULL);
  return self->frontend.session_id;
}

/**
 * bg_uploader_get_database_path:
 * @self: a #BgUploader
 *
 * Gets the path of the task database.
 *
 * Returns: (type filename): the path
 */
const char *
bg_uploader_get_database_path (BgUploader *self)
{
  g_return_val_if_fail (BG_IS_UPLOADER (self), NULL);
  return self->frontend.database_path;
}

/**
 * bg_uploader_get_soup_session:
 * @self: a #BgUploader
 *
 * Gets the #SoupSession the transfers use.
 *
 * Returns: (transfer none): the session
 */
SoupSession *
bg_uploader_get_soup_session (BgUploader *self)
{
  g_return_val_if_fail (BG_IS_UPLOADER (self), NULL);
  return self->frontend.soup_session;
}

/**
 * bg_uploader_get_max_concurrent:
 * @self: a #BgUploader
 *
 * Gets how many uploads may run at once.
 *
 * Returns: the limit
 */
guint
bg_uploader_get_max_concurrent (BgUploader *self)
{
  g_return_val_if_fail (BG_IS_UPLOADER (self), 0);
  return bg_frontend_get_uint (&self->frontend, BG_FRONTEND_PROP_MAX_CONCURRENT);
}

/**
 * bg_uploader_set_max_concurrent:
 * @self: a #BgUploader
 * @max_concurrent: how many uploads may run at once, at least 1
 *
 * Sets how many uploads may run at once.
 */
void
bg_uploader_set_max_concurrent (BgUploader *self,
                                  guint         max_concurrent)
{
  g_return_if_fail (BG_IS_UPLOADER (self));

  bg_frontend_set_uint (&self->frontend, BG_FRONTEND_PROP_MAX_CONCURRENT, max_concurrent);
}

/**
 * bg_uploader_get_stall_timeout:
 * @self: a #BgUploader
 *
 * Gets how many seconds an attempt may go without a byte moving.
 *
 * Returns: the timeout in seconds, or 0 when it is off
 */
guint
bg_uploader_get_stall_timeout (BgUploader *self)
{
  g_return_val_if_fail (BG_IS_UPLOADER (self), 0);
  return bg_frontend_get_uint (&self->frontend, BG_FRONTEND_PROP_STALL_TIMEOUT);
}

/**
 * bg_uploader_set_stall_timeout:
 * @self: a #BgUploader
 * @seconds: the timeout in seconds, or 0 to turn it off
 *
 * Sets how many seconds an attempt may go without a byte moving before it ends as
 * %BG_RESPONSE_RETRY.
 */
void
bg_uploader_set_stall_timeout (BgUploader *self,
                                 guint         seconds)
{
  g_return_if_fail (BG_IS_UPLOADER (self));

  bg_frontend_set_uint (&self->frontend, BG_FRONTEND_PROP_STALL_TIMEOUT, seconds);
}

/**
 * bg_uploader_get_max_attempts:
 * @self: a #BgUploader
 *
 * Gets how many attempts a task gets before a retry outcome is handed to the app.
 *
 * Returns: the number of attempts
 */
guint
bg_uploader_get_max_attempts (BgUploader *self)
{
  g_return_val_if_fail (BG_IS_UPLOADER (self), 0);
  return bg_frontend_get_uint (&self->frontend, BG_FRONTEND_PROP_MAX_ATTEMPTS);
}

/**
 * bg_uploader_set_max_attempts:
 * @self: a #BgUploader
 * @max_attempts: the number of attempts, at least 1
 *
 * Sets how many attempts a task gets before a %BG_RESPONSE_RETRY outcome is handed to the app.
 */
void
bg_uploader_set_max_attempts (BgUploader *self,
                                guint         max_attempts)
{
  g_return_if_fail (BG_IS_UPLOADER (self));

  bg_frontend_set_uint (&self->frontend, BG_FRONTEND_PROP_MAX_ATTEMPTS, max_attempts);
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
  g_return_if_fail (BG_IS_UPLOADER (self));

  if (self->max_response_size == max_response_size)
    return;

  self->max_response_size = max_response_size;
  if (self->frontend.engine != NULL)
    bg_engine_set_max_response_size (self->frontend.engine, max_response_size);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_MAX_RESPONSE_SIZE]);
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
 * [method@Bg.Uploader.cancel] to stop it.
 */
void
bg_uploader_upload_async (BgUploader        *self,
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
  g_return_if_fail (self->frontend.engine != NULL);

  bg_engine_submit_async (self->frontend.engine, self, bg_uploader_upload_async,
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
bg_uploader_upload_finish (BgUploader  *self,
                               GAsyncResult  *result,
                               GError       **error)
{
  g_return_val_if_fail (BG_IS_UPLOADER (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == bg_uploader_upload_async,
                        NULL);

  return bg_engine_submit_finish (self->frontend.engine, result, error);
}

/**
 * bg_uploader_restore_async:
 * @self: a #BgUploader
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async) (nullable): called when the tasks are loaded
 * @user_data: data for @callback
 *
 * Loads the tasks that earlier runs left unfinished and carries them on. Call it once at
 * startup, after connecting to [signal@Bg.Uploader::task-finished]: results arrive through
 * that signal, and through any later [method@Bg.Uploader.upload_async] with the same
 * identifier. Results that finished in an earlier run but were never collected are announced
 * again.
 */
void
bg_uploader_restore_async (BgUploader        *self,
                             GCancellable        *cancellable,
                             GAsyncReadyCallback  callback,
                             gpointer             user_data)
{
  g_return_if_fail (BG_IS_UPLOADER (self));
  g_return_if_fail (self->frontend.engine != NULL);

  bg_engine_restore_async (self->frontend.engine, self, bg_uploader_restore_async,
                           cancellable, callback, user_data);
}

/**
 * bg_uploader_restore_finish:
 * @self: a #BgUploader
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #GError
 *
 * Finishes [method@Bg.Uploader.restore_async].
 *
 * Returns: %TRUE when the tasks were loaded
 */
gboolean
bg_uploader_restore_finish (BgUploader  *self,
                              GAsyncResult  *result,
                              GError       **error)
{
  g_return_val_if_fail (BG_IS_UPLOADER (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == bg_uploader_restore_async,
                        FALSE);

  return bg_engine_restore_finish (self->frontend.engine, result, error);
}

/**
 * bg_uploader_cancel:
 * @self: a #BgUploader
 * @identifier: the task's identifier
 * @error: return location for a #GError
 *
 * Stops the task and forgets it: its record is deleted, and anyone waiting on it gets
 * %G_IO_ERROR_CANCELLED. The source file is left alone.
 *
 * Returns: %TRUE on success; %FALSE with %BG_ERROR_NOT_FOUND when no task has @identifier
 */
gboolean
bg_uploader_cancel (BgUploader  *self,
                      const char    *identifier,
                      GError       **error)
{
  g_return_val_if_fail (BG_IS_UPLOADER (self), FALSE);
  g_return_val_if_fail (self->frontend.engine != NULL, FALSE);

  return bg_engine_cancel (self->frontend.engine, identifier, error);
}

/**
 * bg_uploader_forget:
 * @self: a #BgUploader
 * @identifier: the task's identifier
 * @error: return location for a #GError
 *
 * Marks the result of a finished task as collected, and deletes its record. Use it after
 * handling a result that came through [signal@Bg.Uploader::task-finished].
 *
 * Returns: %TRUE on success; %FALSE with %BG_ERROR_NOT_FOUND when no task has @identifier
 *   (also when a `_finish` already collected its result), or
 *   %BG_ERROR_INVALID_ARGUMENT when the task has not finished
 */
gboolean
bg_uploader_forget (BgUploader  *self,
                      const char    *identifier,
                      GError       **error)
{
  g_return_val_if_fail (BG_IS_UPLOADER (self), FALSE);
  g_return_val_if_fail (self->frontend.engine != NULL, FALSE);

  return bg_engine_forget (self->frontend.engine, identifier, error);
}

/**
 * bg_uploader_get_tasks:
 * @self: a #BgUploader
 *
 * Gets the tasks this uploader knows: those started in this run, and those loaded by
 * [method@Bg.Uploader.restore_async]. The list is live; a task leaves it when its result has
 * been collected or it was cancelled.
 *
 * Returns: (transfer none): a #GListModel of #BgTask
 */
GListModel *
bg_uploader_get_tasks (BgUploader *self)
{
  g_return_val_if_fail (BG_IS_UPLOADER (self), NULL);
  g_return_val_if_fail (self->frontend.engine != NULL, NULL);

  return bg_engine_get_tasks (self->frontend.engine);
}

/**
 * bg_uploader_lookup_task:
 * @self: a #BgUploader
 * @identifier: the task's identifier
 *
 * Finds a task in [method@Bg.Uploader.get_tasks] by its identifier.
 *
 * Returns: (transfer none) (nullable): the task, or %NULL
 */
BgTask *
bg_uploader_lookup_task (BgUploader *self,
                           const char   *identifier)
{
  g_return_val_if_fail (BG_IS_UPLOADER (self), NULL);
  g_return_val_if_fail (self->frontend.engine != NULL, NULL);

  return bg_engine_lookup_task (self->frontend.engine, identifier);
}

BgEngine *
bg_uploader_get_engine (BgUploader *self)
{
  g_return_val_if_fail (BG_IS_UPLOADER (self), NULL);

  return self->frontend.engine;
}
