/* bg-task-options.h: what an app asks of a task when it creates it
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#if !defined (BG_GLIB_INSIDE) && !defined (BG_COMPILATION)
#error "Only <bg-glib.h> can be included directly."
#endif

#include <gio/gio.h>

#include "bg-version-macros.h"

G_BEGIN_DECLS

/**
 * BgUploadProtocol:
 * @BG_UPLOAD_PROTOCOL_AUTO: ask the server once with `OPTIONS` (the answer is kept for a day)
 *   and use %BG_UPLOAD_PROTOCOL_IETF when it offers it, %BG_UPLOAD_PROTOCOL_TUS when it offers
 *   it and [property@Bg.TaskOptions:allow-tus] is set, %BG_UPLOAD_PROTOCOL_PLAIN otherwise
 * @BG_UPLOAD_PROTOCOL_PLAIN: one request with the whole body; an upload that is cut off is
 *   sent again from its first byte
 * @BG_UPLOAD_PROTOCOL_TUS: tus 1.0: the request's URL is a creation endpoint; an upload that is
 *   cut off goes on from the offset the server names
 * @BG_UPLOAD_PROTOCOL_IETF: the HTTP working group's resumable-upload draft (interop version
 *   8): the request's URL is the resource the body is for; an upload that is cut off goes on
 *   from the offset the server names
 *
 * How an upload sends its body. With a resumable protocol the upload URL the server hands out
 * is stored with the task (it is never shown: it lets anyone who has it add to the upload), and
 * cancelling the task deletes the upload on the server.
 */
typedef enum {
  BG_UPLOAD_PROTOCOL_AUTO,
  BG_UPLOAD_PROTOCOL_PLAIN,
  BG_UPLOAD_PROTOCOL_TUS,
  BG_UPLOAD_PROTOCOL_IETF,
} BgUploadProtocol;

#define BG_TYPE_TASK_OPTIONS (bg_task_options_get_type ())

BG_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (BgTaskOptions, bg_task_options, BG, TASK_OPTIONS, GObject)

BG_AVAILABLE_IN_ALL
BgTaskOptions *bg_task_options_new                  (void);

BG_AVAILABLE_IN_ALL
gboolean       bg_task_options_get_allow_metered    (BgTaskOptions *self);
BG_AVAILABLE_IN_ALL
void           bg_task_options_set_allow_metered    (BgTaskOptions *self,
                                                     gboolean       allow_metered);
BG_AVAILABLE_IN_ALL
gboolean       bg_task_options_get_discretionary    (BgTaskOptions *self);
BG_AVAILABLE_IN_ALL
void           bg_task_options_set_discretionary    (BgTaskOptions *self,
                                                     gboolean       discretionary);
BG_AVAILABLE_IN_ALL
int            bg_task_options_get_priority         (BgTaskOptions *self);
BG_AVAILABLE_IN_ALL
void           bg_task_options_set_priority         (BgTaskOptions *self,
                                                     int            priority);
BG_AVAILABLE_IN_ALL
GDateTime     *bg_task_options_get_earliest_start   (BgTaskOptions *self);
BG_AVAILABLE_IN_ALL
void           bg_task_options_set_earliest_start   (BgTaskOptions *self,
                                                     GDateTime     *earliest_start);
BG_AVAILABLE_IN_ALL
const char    *bg_task_options_get_expected_sha256  (BgTaskOptions *self);
BG_AVAILABLE_IN_ALL
void           bg_task_options_set_expected_sha256  (BgTaskOptions *self,
                                                     const char    *sha256);
BG_AVAILABLE_IN_ALL
gboolean       bg_task_options_get_keep_credentials (BgTaskOptions *self);
BG_AVAILABLE_IN_ALL
void           bg_task_options_set_keep_credentials (BgTaskOptions *self,
                                                     gboolean       keep_credentials);
BG_AVAILABLE_IN_ALL
guint64        bg_task_options_get_max_bandwidth    (BgTaskOptions *self);
BG_AVAILABLE_IN_ALL
void           bg_task_options_set_max_bandwidth    (BgTaskOptions *self,
                                                     guint64        bytes_per_second);

BG_AVAILABLE_IN_ALL
BgUploadProtocol bg_task_options_get_upload_protocol (BgTaskOptions    *self);
BG_AVAILABLE_IN_ALL
void           bg_task_options_set_upload_protocol  (BgTaskOptions    *self,
                                                     BgUploadProtocol  protocol);
BG_AVAILABLE_IN_ALL
gboolean       bg_task_options_get_allow_tus        (BgTaskOptions *self);
BG_AVAILABLE_IN_ALL
void           bg_task_options_set_allow_tus        (BgTaskOptions *self,
                                                     gboolean       allow_tus);
BG_AVAILABLE_IN_ALL
gint64         bg_task_options_get_chunk_size       (BgTaskOptions *self);
BG_AVAILABLE_IN_ALL
void           bg_task_options_set_chunk_size       (BgTaskOptions *self,
                                                     gint64         chunk_size);

G_END_DECLS
