/* bg-remote-private.h: a task queue run by the app's transfer service
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The client side of data/org.gnome.BgGlib.Transfers1.xml.  A BgRemote offers what BgEngine
 * offers a BgTaskQueue (submit, restore, cancel, forget, the list of tasks and the two signals),
 * backed by a queue of bg-transferd instead of an engine in this process.
 */

#pragma once

#include <libsoup/soup.h>

#include "bg-response.h"
#include "bg-task.h"
#include "bg-task-options.h"

G_BEGIN_DECLS

#define BG_TYPE_REMOTE (bg_remote_get_type ())

G_DECLARE_FINAL_TYPE (BgRemote, bg_remote, BG, REMOTE, GObject)

/* Whether @app_id's service is running or can be activated on the session bus; blocking (it asks
 * the bus), so called while initialising. */
gboolean    bg_remote_service_available (const char          *app_id);

/* Opens the queue of @kind on the service of @app_id, for the database given by @session_id
 * and @database_path (NULL for the session's default); @settings is an a{sv} of queue settings
 * (floating references are sunk).  Blocking. */
BgRemote   *bg_remote_open              (BgTaskKind           kind,
                                         const char          *app_id,
                                         const char          *session_id,
                                         const char          *database_path,
                                         GVariant            *settings,
                                         GCancellable        *cancellable,
                                         GError             **error);
void        bg_remote_open_async        (BgTaskKind           kind,
                                         const char          *app_id,
                                         const char          *session_id,
                                         const char          *database_path,
                                         GVariant            *settings,
                                         GCancellable        *cancellable,
                                         GAsyncReadyCallback  callback,
                                         gpointer             user_data);
BgRemote   *bg_remote_open_finish       (GAsyncResult        *result,
                                         GError             **error);

/* Changes one queue setting (named as the BgTaskQueue property) at the service. */
void        bg_remote_configure         (BgRemote            *self,
                                         const char          *name,
                                         GVariant            *value);

void        bg_remote_submit_async      (BgRemote            *self,
                                         gpointer             source_object,
                                         gpointer             source_tag,
                                         SoupMessage         *request,
                                         GFile               *file,
                                         const char          *identifier,
                                         BgTaskOptions       *options,
                                         GCancellable        *cancellable,
                                         GAsyncReadyCallback  callback,
                                         gpointer             user_data);
/* Returns the response and collects it at the service. */
BgResponse *bg_remote_submit_finish     (BgRemote            *self,
                                         GAsyncResult        *result,
                                         GError             **error);
void        bg_remote_restore_async     (BgRemote            *self,
                                         gpointer             source_object,
                                         gpointer             source_tag,
                                         GCancellable        *cancellable,
                                         GAsyncReadyCallback  callback,
                                         gpointer             user_data);
gboolean    bg_remote_restore_finish    (BgRemote            *self,
                                         GAsyncResult        *result,
                                         GError             **error);
gboolean    bg_remote_cancel            (BgRemote            *self,
                                         const char          *identifier,
                                         GError             **error);
gboolean    bg_remote_forget            (BgRemote            *self,
                                         const char          *identifier,
                                         GError             **error);
GListModel *bg_remote_get_tasks         (BgRemote            *self);
BgTask     *bg_remote_lookup_task       (BgRemote            *self,
                                         const char          *identifier);
/* Leaves the service's queue: pending calls end with BG_ERROR_CLOSED, the tasks go on there. */
void        bg_remote_close             (BgRemote            *self);

G_END_DECLS
