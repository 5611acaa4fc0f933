/* bg-task.h: one transfer, as an app sees it
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#if !defined (BG_GLIB_INSIDE) && !defined (BG_COMPILATION)
#error "Only <bg-glib.h> can be included directly."
#endif

#include <gio/gio.h>

#include "bg-response.h"
#include "bg-task-options.h"
#include "bg-version-macros.h"

G_BEGIN_DECLS

/**
 * BgTaskKind:
 * @BG_TASK_KIND_DOWNLOAD: the task downloads a URL into a file
 * @BG_TASK_KIND_UPLOAD: the task uploads a file to a URL
 *
 * Which way a task moves bytes.
 */
typedef enum {
  BG_TASK_KIND_DOWNLOAD,
  BG_TASK_KIND_UPLOAD,
} BgTaskKind;

/**
 * BgTaskState:
 * @BG_TASK_STATE_QUEUED: the task waits for a free transfer slot
 * @BG_TASK_STATE_RUNNING: an attempt is moving bytes
 * @BG_TASK_STATE_WAITING: the task waits for a later attempt or for a condition, such as the
 *   network, to be met
 * @BG_TASK_STATE_FINISHED: the task has a final [class@Bg.Response]
 * @BG_TASK_STATE_CANCELLED: the task was cancelled and forgotten
 *
 * Where a task is in its life.
 */
typedef enum {
  BG_TASK_STATE_QUEUED,
  BG_TASK_STATE_RUNNING,
  BG_TASK_STATE_WAITING,
  BG_TASK_STATE_FINISHED,
  BG_TASK_STATE_CANCELLED,
} BgTaskState;

/**
 * BgWaitReason:
 * @BG_WAIT_REASON_NONE: the task is not waiting
 * @BG_WAIT_REASON_RETRY: an attempt ended in a way worth retrying; the next one is due at
 *   [property@Bg.Task:next-attempt-at]
 * @BG_WAIT_REASON_NETWORK: there is no network, or no route to the server
 * @BG_WAIT_REASON_METERED: the network is metered and the task may not use it
 * @BG_WAIT_REASON_POWER_SAVER: power-saver mode is on and the task is discretionary
 * @BG_WAIT_REASON_SCHEDULED: the task may not start before [property@Bg.Task:earliest-start]
 * @BG_WAIT_REASON_CREDENTIALS: the task lost credentials that were not stored (an
 *   `Authorization`, `Proxy-Authorization` or `Cookie` header, or the password of its URL; see
 *   [property@Bg.Task:keep-credentials]) when the app that gave them stopped, and the request
 *   after `prepare-request` still carries none of them. No attempt is used up while it waits. It
 *   goes on once a `prepare-request` handler supplies them (the task looks again every few
 *   seconds), or at once when the app calls `download_async` or `upload_async` again with the
 *   same identifier and a request that carries them
 * @BG_WAIT_REASON_PAUSED: the app paused the task ([property@Bg.Task:paused]), or paused every
 *   task of its downloader or uploader. The partial file and the record are kept and no attempt
 *   is used up; once unpaused, the task picks up from its last checkpoint
 *
 * Why a task is in %BG_TASK_STATE_WAITING.
 */
typedef enum {
  BG_WAIT_REASON_NONE,
  BG_WAIT_REASON_RETRY,
  BG_WAIT_REASON_NETWORK,
  BG_WAIT_REASON_METERED,
  BG_WAIT_REASON_POWER_SAVER,
  BG_WAIT_REASON_SCHEDULED,
  BG_WAIT_REASON_CREDENTIALS,
  BG_WAIT_REASON_PAUSED,
} BgWaitReason;

#define BG_TYPE_TASK (bg_task_get_type ())

BG_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (BgTask, bg_task, BG, TASK, GObject)

BG_AVAILABLE_IN_ALL
const char  *bg_task_get_identifier        (BgTask *self);
BG_AVAILABLE_IN_ALL
BgTaskKind   bg_task_get_kind              (BgTask *self);
BG_AVAILABLE_IN_ALL
BgTaskState  bg_task_get_state             (BgTask *self);
BG_AVAILABLE_IN_ALL
const char  *bg_task_get_uri               (BgTask *self);
BG_AVAILABLE_IN_ALL
GFile       *bg_task_get_file              (BgTask *self);
BG_AVAILABLE_IN_ALL
gint64       bg_task_get_bytes_transferred (BgTask *self);
BG_AVAILABLE_IN_ALL
gint64       bg_task_get_bytes_total       (BgTask *self);
BG_AVAILABLE_IN_ALL
guint        bg_task_get_attempts          (BgTask *self);
BG_AVAILABLE_IN_ALL
guint        bg_task_get_restarts          (BgTask *self);
BG_AVAILABLE_IN_ALL
BgUploadProtocol bg_task_get_upload_protocol (BgTask *self);
BG_AVAILABLE_IN_ALL
GDateTime   *bg_task_dup_next_attempt_at   (BgTask *self);
BG_AVAILABLE_IN_ALL
double       bg_task_get_fraction          (BgTask *self);
BG_AVAILABLE_IN_ALL
double       bg_task_get_bytes_per_second  (BgTask *self);
BG_AVAILABLE_IN_ALL
gint64       bg_task_get_eta               (BgTask *self);
BG_AVAILABLE_IN_ALL
BgResponse  *bg_task_get_response          (BgTask *self);
BG_AVAILABLE_IN_ALL
BgWaitReason bg_task_get_wait_reason       (BgTask *self);

BG_AVAILABLE_IN_ALL
gboolean     bg_task_get_allow_metered     (BgTask      *self);
BG_AVAILABLE_IN_ALL
void         bg_task_set_allow_metered     (BgTask      *self,
                                            gboolean     allow_metered);
BG_AVAILABLE_IN_ALL
gboolean     bg_task_get_discretionary     (BgTask      *self);
BG_AVAILABLE_IN_ALL
void         bg_task_set_discretionary     (BgTask      *self,
                                            gboolean     discretionary);
BG_AVAILABLE_IN_ALL
int          bg_task_get_priority          (BgTask      *self);
BG_AVAILABLE_IN_ALL
void         bg_task_set_priority          (BgTask      *self,
                                            int          priority);
BG_AVAILABLE_IN_ALL
GDateTime   *bg_task_dup_earliest_start    (BgTask      *self);
BG_AVAILABLE_IN_ALL
void         bg_task_set_earliest_start    (BgTask      *self,
                                            GDateTime   *earliest_start);
BG_AVAILABLE_IN_ALL
const char  *bg_task_get_expected_sha256   (BgTask      *self);
BG_AVAILABLE_IN_ALL
void         bg_task_set_expected_sha256   (BgTask      *self,
                                            const char  *sha256);
BG_AVAILABLE_IN_ALL
gboolean     bg_task_get_keep_credentials  (BgTask      *self);
BG_AVAILABLE_IN_ALL
void         bg_task_set_keep_credentials  (BgTask      *self,
                                            gboolean     keep_credentials);
BG_AVAILABLE_IN_ALL
gboolean     bg_task_get_paused            (BgTask      *self);
BG_AVAILABLE_IN_ALL
void         bg_task_set_paused            (BgTask      *self,
                                            gboolean     paused);
BG_AVAILABLE_IN_ALL
guint64      bg_task_get_max_bandwidth     (BgTask      *self);
BG_AVAILABLE_IN_ALL
void         bg_task_set_max_bandwidth     (BgTask      *self,
                                            guint64      bytes_per_second);

G_END_DECLS
