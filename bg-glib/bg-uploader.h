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
#include "bg-version-macros.h"

G_BEGIN_DECLS

#define BG_TYPE_UPLOADER (bg_uploader_get_type ())

BG_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (BgUploader, bg_uploader, BG, UPLOADER, GObject)

BG_AVAILABLE_IN_ALL
BgUploader   *bg_uploader_new                (const char          *session_id,
                                          GCancellable        *cancellable,
                                          GError             **error);
BG_AVAILABLE_IN_ALL
const char     *bg_uploader_get_session_id     (BgUploader        *self);
BG_AVAILABLE_IN_ALL
const char     *bg_uploader_get_database_path  (BgUploader        *self);
BG_AVAILABLE_IN_ALL
SoupSession    *bg_uploader_get_soup_session   (BgUploader        *self);
BG_AVAILABLE_IN_ALL
guint           bg_uploader_get_max_concurrent (BgUploader        *self);
BG_AVAILABLE_IN_ALL
void            bg_uploader_set_max_concurrent (BgUploader        *self,
                                                guint                max_concurrent);
BG_AVAILABLE_IN_ALL
guint           bg_uploader_get_stall_timeout  (BgUploader        *self);
BG_AVAILABLE_IN_ALL
void            bg_uploader_set_stall_timeout  (BgUploader        *self,
                                                guint                seconds);
BG_AVAILABLE_IN_ALL
guint           bg_uploader_get_max_attempts   (BgUploader        *self);
BG_AVAILABLE_IN_ALL
void            bg_uploader_set_max_attempts   (BgUploader        *self,
                                                guint                max_attempts);
BG_AVAILABLE_IN_ALL
gsize           bg_uploader_get_max_response_size (BgUploader *self);
BG_AVAILABLE_IN_ALL
void            bg_uploader_set_max_response_size (BgUploader *self,
                                                    gsize       max_response_size);
BG_AVAILABLE_IN_ALL
void            bg_uploader_upload_async      (BgUploader        *self,
                                                SoupMessage         *request,
                                                GFile               *source,
                                                const char          *identifier,
                                                BgTaskOptions       *options,
                                                GCancellable        *cancellable,
                                                GAsyncReadyCallback  callback,
                                                gpointer             user_data);
BG_AVAILABLE_IN_ALL
BgResponse     *bg_uploader_upload_finish     (BgUploader        *self,
                                                GAsyncResult        *result,
                                                GError             **error);
BG_AVAILABLE_IN_ALL
void            bg_uploader_restore_async      (BgUploader        *self,
                                                GCancellable        *cancellable,
                                                GAsyncReadyCallback  callback,
                                                gpointer             user_data);
BG_AVAILABLE_IN_ALL
gboolean        bg_uploader_restore_finish     (BgUploader        *self,
                                                GAsyncResult        *result,
                                                GError             **error);
BG_AVAILABLE_IN_ALL
gboolean        bg_uploader_cancel             (BgUploader        *self,
                                                const char          *identifier,
                                                GError             **error);
BG_AVAILABLE_IN_ALL
gboolean        bg_uploader_forget             (BgUploader        *self,
                                                const char          *identifier,
                                                GError             **error);
BG_AVAILABLE_IN_ALL
GListModel     *bg_uploader_get_tasks          (BgUploader        *self);
BG_AVAILABLE_IN_ALL
BgTask         *bg_uploader_lookup_task        (BgUploader        *self,
                                                const char          *identifier);

G_END_DECLS
