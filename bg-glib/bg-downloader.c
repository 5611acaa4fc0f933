/* bg-downloader.c: the download front end
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include "bg-downloader-private.h"
#include "bg-task-queue-private.h"

/**
 * BgDownloader:
 *
 * Downloads that outlive the process that asked for them.
 *
 * Each download is a task keyed by an identifier that the app chooses and that stays the same
 * across runs. The task is written to a database before
 * [method@Bg.Downloader.download_async] returns, the bytes go to a partial file beside the
 * destination, and the destination appears only once complete, by an atomic rename. If the app
 * quits, crashes or is killed, the next run calls [method@Bg.TaskQueue.restore_async] and the
 * download carries on from its last checkpoint.
 *
 * Calling [method@Bg.Downloader.download_async] again with an identifier that is already known
 * joins the task instead of starting a second transfer, or returns the stored result at once
 * when the task has finished. A result is kept until it has been collected by a
 * [method@Bg.Downloader.download_finish] or with [method@Bg.TaskQueue.forget].
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
  BgTaskQueue parent_instance;
};

G_DEFINE_FINAL_TYPE (BgDownloader, bg_downloader, BG_TYPE_TASK_QUEUE)

static void
bg_downloader_class_init (BgDownloaderClass *klass)
{
  bg_task_queue_class_set_kind (BG_TASK_QUEUE_CLASS (klass), BG_TASK_KIND_DOWNLOAD);
}

static void
bg_downloader_init (BgDownloader *self)
{
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
 * bg_downloader_new_async:
 * @session_id: the name of the task database, such as the app's id
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async) (nullable): called when the downloader is ready
 * @user_data: data for @callback
 *
 * Opens the downloader of @session_id like [ctor@Bg.Downloader.new], but opens and checks its database
 * on a worker thread, so that the main loop goes on meanwhile. Finish with
 * [ctor@Bg.Downloader.new_finish].
 */
void
bg_downloader_new_async (const char          *session_id,
                         GCancellable        *cancellable,
                         GAsyncReadyCallback  callback,
                         gpointer             user_data)
{
  g_return_if_fail (!cancellable || G_IS_CANCELLABLE (cancellable));

  g_async_initable_new_async (BG_TYPE_DOWNLOADER, G_PRIORITY_DEFAULT, cancellable, callback,
                              user_data, "session-id", session_id, NULL);
}

/**
 * bg_downloader_new_finish:
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #GError
 *
 * Finishes [func@Bg.Downloader.new_async].
 *
 * Returns: (transfer full): a new #BgDownloader, or %NULL with @error set
 */
BgDownloader *
bg_downloader_new_finish (GAsyncResult  *result,
                          GError       **error)
{
  g_autoptr(GObject) source = NULL;
  GObject *object;

  g_return_val_if_fail (G_IS_ASYNC_RESULT (result), NULL);

  source = g_async_result_get_source_object (result);
  object = g_async_initable_new_finish (G_ASYNC_INITABLE (source), result, error);

  return object != NULL ? BG_DOWNLOADER (object) : NULL;
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
 * [method@Bg.TaskQueue.cancel] to stop it.
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

  bg_task_queue_submit_async (BG_TASK_QUEUE (self), bg_downloader_download_async,
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
  g_return_val_if_fail (G_IS_TASK (result), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == bg_downloader_download_async,
                        NULL);

  return bg_task_queue_submit_finish (BG_TASK_QUEUE (self), result, error);
}
