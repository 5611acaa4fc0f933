/* bg-downloader.h: the download front end
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

#define BG_TYPE_DOWNLOADER (bg_downloader_get_type ())

BG_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (BgDownloader, bg_downloader, BG, DOWNLOADER, GObject)

BG_AVAILABLE_IN_ALL
BgDownloader   *bg_downloader_new                (const char          *session_id,
                                          GCancellable        *cancellable,
                                          GError             **error);
BG_AVAILABLE_IN_ALL
const char     *bg_downloader_get_session_id     (BgDownloader        *self);
BG_AVAILABLE_IN_ALL
const char     *bg_downloader_get_database_path  (BgDownloader        *self);
BG_AVAILABLE_IN_ALL
SoupSession    *bg_downloader_get_soup_session   (BgDownloader        *self);
BG_AVAILABLE_IN_ALL
guint           bg_downloader_get_max_concurrent (BgDownloader        *self);
BG_AVAILABLE_IN_ALL
void            bg_downloader_set_max_concurrent (BgDownloader        *self,
                                                guint                max_concurrent);
BG_AVAILABLE_IN_ALL
guint           bg_downloader_get_stall_timeout  (BgDownloader        *self);
BG_AVAILABLE_IN_ALL
void            bg_downloader_set_stall_timeout  (BgDownloader        *self,
                                                guint                seconds);
BG_AVAILABLE_IN_ALL
guint           bg_downloader_get_max_attempts   (BgDownloader        *self);
BG_AVAILABLE_IN_ALL
void            bg_downloader_set_max_attempts   (BgDownloader        *self,
                                                guint                max_attempts);
BG_AVAILABLE_IN_ALL
void            bg_downloader_download_async      (BgDownloader        *self,
                                                SoupMessage         *request,
                                                GFile               *destination,
                                                const char          *identifier,
                                                BgTaskOptions       *options,
                                                GCancellable        *cancellable,
                                                GAsyncReadyCallback  callback,
                                                gpointer             user_data);
BG_AVAILABLE_IN_ALL
BgResponse     *bg_downloader_download_finish     (BgDownloader        *self,
                                                GAsyncResult        *result,
                                                GError             **error);
BG_AVAILABLE_IN_ALL
void            bg_downloader_restore_async      (BgDownloader        *self,
                                                GCancellable        *cancellable,
                                                GAsyncReadyCallback  callback,
                                                gpointer             user_data);
BG_AVAILABLE_IN_ALL
gboolean        bg_downloader_restore_finish     (BgDownloader        *self,
                                                GAsyncResult        *result,
                                                GError             **error);
BG_AVAILABLE_IN_ALL
gboolean        bg_downloader_cancel             (BgDownloader        *self,
                                                const char          *identifier,
                                                GError             **error);
BG_AVAILABLE_IN_ALL
gboolean        bg_downloader_forget             (BgDownloader        *self,
                                                const char          *identifier,
                                                GError             **error);
BG_AVAILABLE_IN_ALL
GListModel     *bg_downloader_get_tasks          (BgDownloader        *self);
BG_AVAILABLE_IN_ALL
BgTask         *bg_downloader_lookup_task        (BgDownloader        *self,
                                                const char          *identifier);

G_END_DECLS
