/* bg-task-private.h
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include "bg-task.h"
#include "bg-task-options.h"

G_BEGIN_DECLS

BgTask *bg_task_new                   (BgTaskKind   kind,
                                       const char  *identifier,
                                       const char  *uri,
                                       GFile       *file);
void    bg_task_set_state             (BgTask      *self,
                                       BgTaskState  state);
void    bg_task_set_uri               (BgTask      *self,
                                       const char  *uri);
void    bg_task_set_progress          (BgTask      *self,
                                       gint64       transferred,
                                       gint64       total,
                                       gboolean     force_notify);
void    bg_task_set_attempts          (BgTask      *self,
                                       guint        attempts);
void    bg_task_set_restarts          (BgTask      *self,
                                       guint        restarts);
void    bg_task_set_upload_protocol   (BgTask           *self,
                                       BgUploadProtocol  protocol);
void    bg_task_set_next_attempt_at   (BgTask      *self,
                                       gint64       unix_usec);
void    bg_task_set_response          (BgTask      *self,
                                       BgResponse  *response);
void    bg_task_set_wait_reason       (BgTask      *self,
                                       BgWaitReason reason);
/* Loads the options without notifying: used when the task is made from a stored record. */
void    bg_task_init_options          (BgTask      *self,
                                       gboolean     allow_metered,
                                       gboolean     discretionary,
                                       int          priority,
                                       gint64       earliest_start,
                                       const char  *expected_sha256,
                                       gboolean     keep_credentials);
/* Loads the stored pause without notifying, like bg_task_init_options(). */
void    bg_task_init_paused           (BgTask      *self,
                                       gboolean     paused);
/* Loads the stored bandwidth cap without notifying, like bg_task_init_options(). */
void    bg_task_init_max_bandwidth    (BgTask      *self,
                                       guint64      bytes_per_second);
gint64  bg_task_get_earliest_start_usec (BgTask    *self);
void    bg_task_apply_options         (BgTask        *self,
                                       BgTaskOptions *options);

/* Called for every property notification of the task, before the handlers connected to
 * "notify": what owns the task hears of its changes without a signal handler of its own. */
typedef void (*BgTaskNotifyFunc) (BgTask     *task,
                                  GParamSpec *pspec,
                                  gpointer    user_data);

void    bg_task_set_notify_func       (BgTask           *self,
                                       BgTaskNotifyFunc  func,
                                       gpointer          user_data);

G_END_DECLS
