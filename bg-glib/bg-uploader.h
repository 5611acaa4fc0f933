/* bg-uploader.h: the upload front end
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#if !defined (BG_GLIB_INSIDE) && !defined (BG_COMPILATION)
#error "Only <bg-glib.h> can be included directly."
#endif

#include <gio/gio.h>
#include <libsoup/soup.h>

#include "bg-response.h"
#include "bg-task.h"
#include "bg-task-options.h"
#include "bg-task-queue.h"
#include "bg-version-macros.h"

G_BEGIN_DECLS

#define BG_TYPE_UPLOADER (bg_uploader_get_type ())

BG_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (BgUploader, bg_uploader, BG, UPLOADER, BgTaskQueue)

BG_AVAILABLE_IN_ALL
BgUploader *bg_uploader_new (const char           *session_id,
                             GCancellable         *cancellable,
                             GError              **error);
BG_AVAILABLE_IN_ALL
void        bg_uploader_new_async      (const char           *session_id,
                                        GCancellable         *cancellable,
                                        GAsyncReadyCallback   callback,
                                        gpointer              user_data);
BG_AVAILABLE_IN_ALL
BgUploader *bg_uploader_new_finish     (GAsyncResult         *result,
                                        GError              **error);
BG_AVAILABLE_IN_ALL
gsize       bg_uploader_get_max_response_size (BgUploader           *self);
BG_AVAILABLE_IN_ALL
void        bg_uploader_set_max_response_size (BgUploader           *self,
                                               gsize                 max_response_size);
BG_AVAILABLE_IN_ALL
void        bg_uploader_upload_async          (BgUploader           *self,
                                               SoupMessage          *request,
                                               GFile                *source,
                                               const char           *identifier,
                                               BgTaskOptions        *options,
                                               GCancellable         *cancellable,
                                               GAsyncReadyCallback   callback,
                                               gpointer              user_data);
BG_AVAILABLE_IN_ALL
BgResponse *bg_uploader_upload_finish         (BgUploader           *self,
                                               GAsyncResult         *result,
                                               GError              **error);

/**
 * bg_uploader_restore_async:
 * @self: a #BgUploader
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async) (nullable): called when the tasks are loaded
 * @user_data: data for @callback
 *
 * [method@Bg.TaskQueue.restore_async] under a name of its own, for C.
 */
#define bg_uploader_restore_async(self, cancellable, callback, user_data) \
  bg_task_queue_restore_async (BG_TASK_QUEUE (self), (cancellable), (callback), (user_data))
/**
 * bg_uploader_restore_finish:
 * @self: a #BgUploader
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #GError
 *
 * [method@Bg.TaskQueue.restore_finish] under a name of its own, for C.
 */
#define bg_uploader_restore_finish(self, result, error) \
  bg_task_queue_restore_finish (BG_TASK_QUEUE (self), (result), (error))
/**
 * bg_uploader_cancel:
 * @self: a #BgUploader
 * @identifier: the task's identifier
 * @error: return location for a #GError
 *
 * [method@Bg.TaskQueue.cancel] under a name of its own, for C.
 */
#define bg_uploader_cancel(self, identifier, error) \
  bg_task_queue_cancel (BG_TASK_QUEUE (self), (identifier), (error))
/**
 * bg_uploader_forget:
 * @self: a #BgUploader
 * @identifier: the task's identifier
 * @error: return location for a #GError
 *
 * [method@Bg.TaskQueue.forget] under a name of its own, for C.
 */
#define bg_uploader_forget(self, identifier, error) \
  bg_task_queue_forget (BG_TASK_QUEUE (self), (identifier), (error))
/**
 * bg_uploader_get_tasks:
 * @self: a #BgUploader
 *
 * [method@Bg.TaskQueue.get_tasks] under a name of its own, for C.
 */
#define bg_uploader_get_tasks(self) \
  bg_task_queue_get_tasks (BG_TASK_QUEUE (self))
/**
 * bg_uploader_lookup_task:
 * @self: a #BgUploader
 * @identifier: the task's identifier
 *
 * [method@Bg.TaskQueue.lookup_task] under a name of its own, for C.
 */
#define bg_uploader_lookup_task(self, identifier) \
  bg_task_queue_lookup_task (BG_TASK_QUEUE (self), (identifier))
/**
 * bg_uploader_close:
 * @self: a #BgUploader
 *
 * [method@Bg.TaskQueue.close] under a name of its own, for C.
 */
#define bg_uploader_close(self) \
  bg_task_queue_close (BG_TASK_QUEUE (self))

G_END_DECLS
