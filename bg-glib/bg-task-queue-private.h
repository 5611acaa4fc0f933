/* bg-task-queue-private.h: what the front ends and the tests reach of BgTaskQueue
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include "bg-engine-private.h"
#include "bg-task-queue.h"

G_BEGIN_DECLS

/* Called from a subclass's class_init: which kind of task its instances queue. */
void      bg_task_queue_class_set_kind (BgTaskQueueClass  *klass,
                                        BgTaskKind         kind);
/* The engine, or NULL once the queue is closed (or before it was initialised). */
BgEngine *bg_task_queue_get_engine     (BgTaskQueue       *self);
/* The engine, or NULL with BG_ERROR_CLOSED once the queue is closed. */
BgEngine *bg_task_queue_require_engine (BgTaskQueue       *self,
                                        GError           **error);

/* A setting of a subclass, for the transfer service in service mode (nothing in process). */
void      bg_task_queue_configure_remote (BgTaskQueue *self,
                                          const char  *name,
                                          GVariant    *value);

/* download_async() and upload_async(), once the caller checked its arguments: a closed queue
 * answers with BG_ERROR_CLOSED. */
void        bg_task_queue_submit_async  (BgTaskQueue          *self,
                                         gpointer              source_tag,
                                         SoupMessage          *request,
                                         GFile                *file,
                                         const char           *identifier,
                                         BgTaskOptions        *options,
                                         GCancellable         *cancellable,
                                         GAsyncReadyCallback   callback,
                                         gpointer              user_data);
/* The _finish of download_async() and upload_async(), once the caller checked the tag. */
BgResponse *bg_task_queue_submit_finish (BgTaskQueue   *self,
                                         GAsyncResult  *result,
                                         GError       **error);

G_END_DECLS
