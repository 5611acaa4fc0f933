/* bg-downloader.c: the download front end
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include "bg-downloader-private.h"
#include "bg-frontend-private.h"

/**
 * BgDownloader:
 *
 * Downloads that outlive the process that asked for them.
 *
 * Each download is a task keyed by an identifier that the app chooses and that stays the same
 * across runs. The task is written to a database before
 * [method@Bg.Downloader.download_async] returns, the bytes go to a partial file beside the
 * destination, and the destination appears only once complete, by an atomic rename. If the app
 * quits, crashes or is killed, the next run calls [method@Bg.Downloader.restore_async] and the
 * download carries on from its last checkpoint.
 *
 * Calling [method@Bg.Downloader.download_async] again with an identifier that is already known
 * joins the task instead of starting a second transfer, or returns the stored result at once
 * when the task has finished. A result is kept until it has been collected by a
 * [method@Bg.Downloader.download_finish] or with [method@Bg.Downloader.forget].
 *
 * ```c
 * g_autoptr(BgDownloader) downloader = bg_downloader_new ("org.example.App", NULL, &error);
 * g_autoptr(SoupMessage) msg = soup_message_new ("GET", "https://example.org/big.iso");
 * g_autoptr(GFile) dest = g_file_new_for_path ("/home/me/Downloads/big.iso");
 *
 * bg_downloader_download_async (downloader, msg, dest, "big-iso", NULL, on_done, NULL);
 * ```
 */
struct _BgDownloader
{
  GObject    parent_instance;
  BgFrontend frontend;
};

static void bg_downloader_initable_iface_init (GInitableIface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (BgDownloader, bg_downloader, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_INITABLE,
                                                      bg_downloader_initable_iface_init))

static GParamSpec *properties[BG_FRONTEND_N_PROPS];
static guint signals[BG_FRONTEND_N_SIGNALS];

/* The properties and signals are made in bg-frontend.c; their documentation is here. */

/**
 * BgDownloader:session-id:
 *
 * The name of the task database, such as the app's id. It may contain only letters, digits,
 * `.`, `_` and `-`, at most 200 of them.
 */

/**
 * BgDownloader:database-path:
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
 * BgDownloader:soup-session:
 *
 * The #SoupSession used for the transfers. By default the downloader makes its own.
 */

/**
 * BgDownloader:network-monitor:
 *
 * The #GNetworkMonitor that says whether there is a network and whether it is metered. The
 * default is g_network_monitor_get_default(). While there is no network and the server cannot
 * be reached, tasks wait with %BG_WAIT_REASON_NETWORK and use up no attempts.
 */

/**
 * BgDownloader:max-concurrent:
 *
 * How many downloads may run at once.
 */

/**
 * BgDownloader:stall-timeout:
 *
 * How many seconds an attempt may go without a byte moving before it ends as
 * %BG_RESPONSE_RETRY. 0 turns the check off.
 */

/**
 * BgDownloader:max-attempts:
 *
 * How many attempts a task gets before a %BG_RESPONSE_RETRY outcome is handed to the app.
 * Between attempts the task waits with exponential backoff, or as long as the server's
 * `Retry-After` asks when that is longer. 1 hands every retry straight to the app.
 */

/**
 * BgDownloader:retry-delay:
 *
 * How many seconds the first automatic retry waits. Each later one waits twice as long, up to
 * [property@Bg.Downloader:max-retry-delay], plus up to a quarter more at random so that tasks that
 * failed together do not come back together. A longer `Retry-After` from the server wins.
 */

/**
 * BgDownloader:max-retry-delay:
 *
 * The longest wait, in seconds, that the backoff between automatic retries reaches.
 */

/**
 * BgDownloader:retry-deadline:
 *
 * How many seconds after a task was created it stops being retried: a retry that would fall
 * later hands the %BG_RESPONSE_RETRY outcome to the app. 0 means no deadline; the default is
 * seven days.
 */

/**
 * BgDownloader:allow-metered:
 *
 * Whether downloads may use a metered network. When it is %FALSE, tasks wait with
 * %BG_WAIT_REASON_METERED while the network is metered, unless the task itself allows it
 * ([property@Bg.Task:allow-metered]).
 */

/**
 * BgDownloader::task-finished:
 * @self: the downloader
 * @task: the task that finished
 * @response: its outcome
 *
 * Emitted when a task reaches its final outcome, also for a task that was restored from an
 * earlier run. Results that an earlier run never collected are announced again by
 * [method@Bg.Downloader.restore_async]: call [method@Bg.Downloader.forget] once the result is
 * safely handled.
 */

/**
 * BgDownloader::prepare-request:
 * @self: the downloader
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
bg_downloader_initable_init (GInitable     *initable,
                             GCancellable  *cancellable,
                             GError       **error)
{
  return bg_frontend_open (&BG_DOWNLOADER (initable)->frontend, error);
}

static void
bg_downloader_initable_iface_init (GInitableIface *iface)
{
  iface->init = bg_downloader_initable_init;
}

static void
bg_downloader_dispose (GObject *object)
{
  bg_frontend_dispose (&BG_DOWNLOADER (object)->frontend);

  G_OBJECT_CLASS (bg_downloader_parent_class)->dispose (object);
}

static void
bg_downloader_finalize (GObject *object)
{
  bg_frontend_finalize (&BG_DOWNLOADER (object)->frontend);

  G_OBJECT_CLASS (bg_downloader_parent_class)->finalize (object);
}

static void
bg_downloader_get_property (GObject    *object,
                            guint       prop_id,
                            GValue     *value,
                            GParamSpec *pspec)
{
  if (!bg_frontend_get_property (&BG_DOWNLOADER (object)->frontend, prop_id, value))
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
}

static void
bg_downloader_set_property (GObject      *object,
                            guint         prop_id,
                            const GValue *value,
                            GParamSpec   *pspec)
{
  if (!bg_frontend_set_property (&BG_DOWNLOADER (object)->frontend, prop_id, value))
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
}

static void
bg_downloader_class_init (BgDownloaderClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = bg_downloader_dispose;
  object_class->finalize = bg_downloader_finalize;
  object_class->get_property = bg_downloader_get_property;
  object_class->set_property = bg_downloader_set_property;

  bg_frontend_class_init (object_class, properties, signals);
  g_object_class_install_properties (object_class, BG_FRONTEND_N_PROPS, properties);
}

static void
bg_downloader_init (BgDownloader *self)
{
  bg_frontend_init (&self->frontend, G_OBJECT (self), BG_TASK_KIND_DOWNLOAD,
                    properties, signals);
}

/**
 * bg_downloader_new:
 * @session_id: the name of the task database, such as the app's id
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Opens the downloader of @session_id. Its database is opened here, so %BG_ERROR_BUSY (another
 * process holds it) and %BG_ERROR_STORE (it cannot be used) come from this call.
 *
 * Returns: (transfer full): a new #BgDownloader, or %NULL with @error set
 */
BgDownloader *
bg_downloader_new (const char    *session_id,
                   GCancellable  *cancellable,
                   GError       **error)
{
  return g_initable_new (BG_TYPE_DOWNLOADER, cancellable, error,
                         "session-id", session_id,
                         NULL);
}

/**
 * bg_downloader_get_session_id:
 * @self: a #BgDownloader
 *
 * Gets the session id.
 *
 * Returns: the session id
 */
const char *
bg_downloader_get_session_id (BgDownloader *self)
{
  g_return_val_if_fail (BG_IS_DOWNLOADER (self), NULL);
  return self->frontend.session_id;
}

/**
 * bg_downloader_get_database_path:
 * @self: a #BgDownloader
 *
 * Gets the path of the task database.
 *
 * Returns: (type filename): the path
 */
const char *
bg_downloader_get_database_path (BgDownloader *self)
{
  g_return_val_if_fail (BG_IS_DOWNLOADER (self), NULL);
  return self->frontend.database_path;
}

/**
 * bg_downloader_get_soup_session:
 * @self: a #BgDownloader
 *
 * Gets the #SoupSession the transfers use.
 *
 * Returns: (transfer none): the session
 */
SoupSession *
bg_downloader_get_soup_session (BgDownloader *self)
{
  g_return_val_if_fail (BG_IS_DOWNLOADER (self), NULL);
  return self->frontend.soup_session;
}

/**
 * bg_downloader_get_max_concurrent:
 * @self: a #BgDownloader
 *
 * Gets how many downloads may run at once.
 *
 * Returns: the limit
 */
guint
bg_downloader_get_max_concurrent (BgDownloader *self)
{
  g_return_val_if_fail (BG_IS_DOWNLOADER (self), 0);
  return bg_frontend_get_uint (&self->frontend, BG_FRONTEND_PROP_MAX_CONCURRENT);
}

/**
 * bg_downloader_set_max_concurrent:
 * @self: a #BgDownloader
 * @max_concurrent: how many downloads may run at once, at least 1
 *
 * Sets how many downloads may run at once.
 */
void
bg_downloader_set_max_concurrent (BgDownloader *self,
                                  guint         max_concurrent)
{
  g_return_if_fail (BG_IS_DOWNLOADER (self));

  bg_frontend_set_uint (&self->frontend, BG_FRONTEND_PROP_MAX_CONCURRENT, max_concurrent);
}

/**
 * bg_downloader_get_stall_timeout:
 * @self: a #BgDownloader
 *
 * Gets how many seconds an attempt may go without a byte moving.
 *
 * Returns: the timeout in seconds, or 0 when it is off
 */
guint
bg_downloader_get_stall_timeout (BgDownloader *self)
{
  g_return_val_if_fail (BG_IS_DOWNLOADER (self), 0);
  return bg_frontend_get_uint (&self->frontend, BG_FRONTEND_PROP_STALL_TIMEOUT);
}

/**
 * bg_downloader_set_stall_timeout:
 * @self: a #BgDownloader
 * @seconds: the timeout in seconds, or 0 to turn it off
 *
 * Sets how many seconds an attempt may go without a byte moving before it ends as
 * %BG_RESPONSE_RETRY.
 */
void
bg_downloader_set_stall_timeout (BgDownloader *self,
                                 guint         seconds)
{
  g_return_if_fail (BG_IS_DOWNLOADER (self));

  bg_frontend_set_uint (&self->frontend, BG_FRONTEND_PROP_STALL_TIMEOUT, seconds);
}

/**
 * bg_downloader_get_max_attempts:
 * @self: a #BgDownloader
 *
 * Gets how many attempts a task gets before a retry outcome is handed to the app.
 *
 * Returns: the number of attempts
 */
guint
bg_downloader_get_max_attempts (BgDownloader *self)
{
  g_return_val_if_fail (BG_IS_DOWNLOADER (self), 0);
  return bg_frontend_get_uint (&self->frontend, BG_FRONTEND_PROP_MAX_ATTEMPTS);
}

/**
 * bg_downloader_set_max_attempts:
 * @self: a #BgDownloader
 * @max_attempts: the number of attempts, at least 1
 *
 * Sets how many attempts a task gets before a %BG_RESPONSE_RETRY outcome is handed to the app.
 */
void
bg_downloader_set_max_attempts (BgDownloader *self,
                                guint         max_attempts)
{
  g_return_if_fail (BG_IS_DOWNLOADER (self));

  bg_frontend_set_uint (&self->frontend, BG_FRONTEND_PROP_MAX_ATTEMPTS, max_attempts);
}

/**
 * bg_downloader_download_async:
 * @self: a #BgDownloader
 * @request: the request to make: its URI and headers are used, and must be http or https
 * @destination: where the finished file goes; it must not exist yet
 * @identifier: the app's identifier for the task, the same in every run
 * @options: (nullable): the task's options, written with the task; %NULL for the defaults
 * @cancellable: (nullable): cancels the wait, not the download
 * @callback: (scope async) (nullable): called with the result
 * @user_data: data for @callback
 *
 * Downloads @request into @destination as the task @identifier. The task is committed to the
 * database before this function returns.
 *
 * If @identifier is already known, the call joins its task and no second transfer starts; the
 * newest request is used for later attempts, and @options, when given, replace the task's
 * options. If the task has finished but its result was never collected, the stored result comes
 * back at once.
 *
 * Cancelling @cancellable ends only the wait: the download goes on in the background. Use
 * [method@Bg.Downloader.cancel] to stop it.
 */
void
bg_downloader_download_async (BgDownloader        *self,
                              SoupMessage         *request,
                              GFile               *destination,
                              const char          *identifier,
                              BgTaskOptions       *options,
                              GCancellable        *cancellable,
                              GAsyncReadyCallback  callback,
                              gpointer             user_data)
{
  g_return_if_fail (BG_IS_DOWNLOADER (self));
  g_return_if_fail (SOUP_IS_MESSAGE (request));
  g_return_if_fail (G_IS_FILE (destination));
  g_return_if_fail (!options || BG_IS_TASK_OPTIONS (options));
  g_return_if_fail (!cancellable || G_IS_CANCELLABLE (cancellable));
  g_return_if_fail (self->frontend.engine != NULL);

  bg_engine_submit_async (self->frontend.engine, self, bg_downloader_download_async,
                          request, destination, identifier, options,
                          cancellable, callback, user_data);
}

/**
 * bg_downloader_download_finish:
 * @self: a #BgDownloader
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #GError
 *
 * Gets the outcome of a download. Every network outcome, including %BG_RESPONSE_FAILED, comes
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
bg_downloader_download_finish (BgDownloader  *self,
                               GAsyncResult  *result,
                               GError       **error)
{
  g_return_val_if_fail (BG_IS_DOWNLOADER (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == bg_downloader_download_async,
                        NULL);

  return bg_engine_submit_finish (self->frontend.engine, result, error);
}

/**
 * bg_downloader_restore_async:
 * @self: a #BgDownloader
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async) (nullable): called when the tasks are loaded
 * @user_data: data for @callback
 *
 * Loads the tasks that earlier runs left unfinished and carries them on. Call it once at
 * startup, after connecting to [signal@Bg.Downloader::task-finished]: results arrive through
 * that signal, and through any later [method@Bg.Downloader.download_async] with the same
 * identifier. Results that finished in an earlier run but were never collected are announced
 * again.
 */
void
bg_downloader_restore_async (BgDownloader        *self,
                             GCancellable        *cancellable,
                             GAsyncReadyCallback  callback,
                             gpointer             user_data)
{
  g_return_if_fail (BG_IS_DOWNLOADER (self));
  g_return_if_fail (self->frontend.engine != NULL);

  bg_engine_restore_async (self->frontend.engine, self, bg_downloader_restore_async,
                           cancellable, callback, user_data);
}

/**
 * bg_downloader_restore_finish:
 * @self: a #BgDownloader
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #GError
 *
 * Finishes [method@Bg.Downloader.restore_async].
 *
 * Returns: %TRUE when the tasks were loaded
 */
gboolean
bg_downloader_restore_finish (BgDownloader  *self,
                              GAsyncResult  *result,
                              GError       **error)
{
  g_return_val_if_fail (BG_IS_DOWNLOADER (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == bg_downloader_restore_async,
                        FALSE);

  return bg_engine_restore_finish (self->frontend.engine, result, error);
}

/**
 * bg_downloader_cancel:
 * @self: a #BgDownloader
 * @identifier: the task's identifier
 * @error: return location for a #GError
 *
 * Stops the task and forgets it: its partial file and its record are deleted, and anyone
 * waiting on it gets %G_IO_ERROR_CANCELLED.
 *
 * Returns: %TRUE on success; %FALSE with %BG_ERROR_NOT_FOUND when no task has @identifier
 */
gboolean
bg_downloader_cancel (BgDownloader  *self,
                      const char    *identifier,
                      GError       **error)
{
  g_return_val_if_fail (BG_IS_DOWNLOADER (self), FALSE);
  g_return_val_if_fail (self->frontend.engine != NULL, FALSE);

  return bg_engine_cancel (self->frontend.engine, identifier, error);
}

/**
 * bg_downloader_forget:
 * @self: a #BgDownloader
 * @identifier: the task's identifier
 * @error: return location for a #GError
 *
 * Marks the result of a finished task as collected, and deletes its record. Use it after
 * handling a result that came through [signal@Bg.Downloader::task-finished].
 *
 * Returns: %TRUE on success; %FALSE with %BG_ERROR_NOT_FOUND when no task has @identifier
 *   (also when a `_finish` already collected its result), or
 *   %BG_ERROR_INVALID_ARGUMENT when the task has not finished
 */
gboolean
bg_downloader_forget (BgDownloader  *self,
                      const char    *identifier,
                      GError       **error)
{
  g_return_val_if_fail (BG_IS_DOWNLOADER (self), FALSE);
  g_return_val_if_fail (self->frontend.engine != NULL, FALSE);

  return bg_engine_forget (self->frontend.engine, identifier, error);
}

/**
 * bg_downloader_get_tasks:
 * @self: a #BgDownloader
 *
 * Gets the tasks this downloader knows: those started in this run, and those loaded by
 * [method@Bg.Downloader.restore_async]. The list is live; a task leaves it when its result has
 * been collected or it was cancelled.
 *
 * Returns: (transfer none): a #GListModel of #BgTask
 */
GListModel *
bg_downloader_get_tasks (BgDownloader *self)
{
  g_return_val_if_fail (BG_IS_DOWNLOADER (self), NULL);
  g_return_val_if_fail (self->frontend.engine != NULL, NULL);

  return bg_engine_get_tasks (self->frontend.engine);
}

/**
 * bg_downloader_lookup_task:
 * @self: a #BgDownloader
 * @identifier: the task's identifier
 *
 * Finds a task in [method@Bg.Downloader.get_tasks] by its identifier.
 *
 * Returns: (transfer none) (nullable): the task, or %NULL
 */
BgTask *
bg_downloader_lookup_task (BgDownloader *self,
                           const char   *identifier)
{
  g_return_val_if_fail (BG_IS_DOWNLOADER (self), NULL);
  g_return_val_if_fail (self->frontend.engine != NULL, NULL);

  return bg_engine_lookup_task (self->frontend.engine, identifier);
}

BgEngine *
bg_downloader_get_engine (BgDownloader *self)
{
  g_return_val_if_fail (BG_IS_DOWNLOADER (self), NULL);

  return self->frontend.engine;
}
