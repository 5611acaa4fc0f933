/* bg-task-queue.h: what BgDownloader and BgUploader have in common
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
#include "bg-version-macros.h"

G_BEGIN_DECLS

/**
 * BgMode:
 * @BG_MODE_AUTO: use the app's transfer service when it is running or can be started on the
 *   session bus, and run the transfers in this process otherwise
 * @BG_MODE_IN_PROCESS: run the transfers in this process, on its main loop: they stop when it
 *   ends and carry on in its next run
 * @BG_MODE_SERVICE: hand the transfers to the app's transfer service, `bg-transferd`, which goes
 *   on after the app's process ended; fails with %BG_ERROR_SERVICE when there is none
 *
 * Where a queue's transfers run. The API, the signals, the list model and every guarantee are
 * the same in all modes.
 */
typedef enum {
  BG_MODE_AUTO,
  BG_MODE_IN_PROCESS,
  BG_MODE_SERVICE,
} BgMode;

#define BG_TYPE_TASK_QUEUE (bg_task_queue_get_type ())

BG_AVAILABLE_IN_ALL
G_DECLARE_DERIVABLE_TYPE (BgTaskQueue, bg_task_queue, BG, TASK_QUEUE, GObject)

/**
 * BgTaskQueueClass:
 *
 * The class of [class@Bg.TaskQueue]. Only bg-glib derives from it: use [class@Bg.Downloader]
 * and [class@Bg.Uploader].
 */
struct _BgTaskQueueClass
{
  GObjectClass parent_class;

  /*< private >*/
  gpointer padding[12];
};

BG_AVAILABLE_IN_ALL
const char      *bg_task_queue_get_session_id      (BgTaskQueue          *self);
BG_AVAILABLE_IN_ALL
const char      *bg_task_queue_get_database_path   (BgTaskQueue          *self);
BG_AVAILABLE_IN_ALL
const char      *bg_task_queue_get_app_id          (BgTaskQueue          *self);
BG_AVAILABLE_IN_ALL
BgMode           bg_task_queue_get_mode            (BgTaskQueue          *self);
BG_AVAILABLE_IN_ALL
SoupSession     *bg_task_queue_get_soup_session    (BgTaskQueue          *self);
BG_AVAILABLE_IN_ALL
GNetworkMonitor *bg_task_queue_get_network_monitor (BgTaskQueue          *self);
BG_AVAILABLE_IN_ALL
guint            bg_task_queue_get_max_concurrent  (BgTaskQueue          *self);
BG_AVAILABLE_IN_ALL
void             bg_task_queue_set_max_concurrent  (BgTaskQueue          *self,
                                                    guint                 max_concurrent);
BG_AVAILABLE_IN_ALL
guint            bg_task_queue_get_stall_timeout   (BgTaskQueue          *self);
BG_AVAILABLE_IN_ALL
void             bg_task_queue_set_stall_timeout   (BgTaskQueue          *self,
                                                    guint                 seconds);
BG_AVAILABLE_IN_ALL
guint            bg_task_queue_get_max_attempts    (BgTaskQueue          *self);
BG_AVAILABLE_IN_ALL
void             bg_task_queue_set_max_attempts    (BgTaskQueue          *self,
                                                    guint                 max_attempts);
BG_AVAILABLE_IN_ALL
guint            bg_task_queue_get_retry_delay     (BgTaskQueue          *self);
BG_AVAILABLE_IN_ALL
void             bg_task_queue_set_retry_delay     (BgTaskQueue          *self,
                                                    guint                 seconds);
BG_AVAILABLE_IN_ALL
guint            bg_task_queue_get_max_retry_delay (BgTaskQueue          *self);
BG_AVAILABLE_IN_ALL
void             bg_task_queue_set_max_retry_delay (BgTaskQueue          *self,
                                                    guint                 seconds);
BG_AVAILABLE_IN_ALL
guint            bg_task_queue_get_retry_deadline  (BgTaskQueue          *self);
BG_AVAILABLE_IN_ALL
void             bg_task_queue_set_retry_deadline  (BgTaskQueue          *self,
                                                    guint                 seconds);
BG_AVAILABLE_IN_ALL
gboolean         bg_task_queue_get_allow_metered   (BgTaskQueue          *self);
BG_AVAILABLE_IN_ALL
void             bg_task_queue_set_allow_metered   (BgTaskQueue          *self,
                                                    gboolean              allow_metered);

BG_AVAILABLE_IN_ALL
gboolean         bg_task_queue_get_keep_finished   (BgTaskQueue          *self);
BG_AVAILABLE_IN_ALL
void             bg_task_queue_set_keep_finished   (BgTaskQueue          *self,
                                                    gboolean              keep_finished);
BG_AVAILABLE_IN_ALL
gboolean         bg_task_queue_get_paused          (BgTaskQueue          *self);
BG_AVAILABLE_IN_ALL
void             bg_task_queue_set_paused          (BgTaskQueue          *self,
                                                    gboolean              paused);
BG_AVAILABLE_IN_ALL
guint64          bg_task_queue_get_max_bandwidth   (BgTaskQueue          *self);
BG_AVAILABLE_IN_ALL
void             bg_task_queue_set_max_bandwidth   (BgTaskQueue          *self,
                                                    guint64               bytes_per_second);

BG_AVAILABLE_IN_ALL
void             bg_task_queue_restore_async       (BgTaskQueue          *self,
                                                    GCancellable         *cancellable,
                                                    GAsyncReadyCallback   callback,
                                                    gpointer              user_data);
BG_AVAILABLE_IN_ALL
gboolean         bg_task_queue_restore_finish      (BgTaskQueue          *self,
                                                    GAsyncResult         *result,
                                                    GError              **error);
BG_AVAILABLE_IN_ALL
gboolean         bg_task_queue_cancel              (BgTaskQueue          *self,
                                                    const char           *identifier,
                                                    GError              **error);
BG_AVAILABLE_IN_ALL
gboolean         bg_task_queue_forget              (BgTaskQueue          *self,
                                                    const char           *identifier,
                                                    GError              **error);
BG_AVAILABLE_IN_ALL
GListModel      *bg_task_queue_get_tasks           (BgTaskQueue          *self);
BG_AVAILABLE_IN_ALL
BgTask          *bg_task_queue_lookup_task         (BgTaskQueue          *self,
                                                    const char           *identifier);
BG_AVAILABLE_IN_ALL
void             bg_task_queue_close               (BgTaskQueue          *self);

G_END_DECLS
