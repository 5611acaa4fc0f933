/* bg-transferd.h: what the parts of bg-transferd, the per-app transfer service, share
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * bg-transferd.c is the application: the command line, the manager object, the batched Changed
 * signal, the lifetime and the signals.  bg-transferd-queue.c is one opened task database, the
 * Queue object of data/org.gnome.BgGlib.Transfers1.xml, and the prepare-request round trip to
 * its clients.
 */

#pragma once

#include <gio/gio.h>

#include "bg-dbus-generated.h"
#include "bg-task-queue-private.h"

G_BEGIN_DECLS

#define BG_TYPE_TRANSFERD (bg_transferd_get_type ())

G_DECLARE_FINAL_TYPE (BgTransferd, bg_transferd, BG, TRANSFERD, GApplication)

typedef struct _BgTransferdQueue BgTransferdQueue;
typedef struct _BgTransferdPortal BgTransferdPortal;

/* A task of some queue changed: the next Changed emission (at most ten a second) carries it. */
void              bg_transferd_schedule_flush       (BgTransferd       *self);
void              bg_transferd_flush_now            (BgTransferd       *self);
/* A call came: the inactivity timeout starts again. */
void              bg_transferd_touch                (BgTransferd       *self);
/* Whether the service has something to do has perhaps changed: hold or release the app. */
void              bg_transferd_update_hold          (BgTransferd       *self);

/* Opens the task database of @session_id at @database_path (NULL for the default) as a queue
 * of @kind, exported at @object_path on @connection. */
BgTransferdQueue *bg_transferd_queue_new            (BgTransferd       *service,
                                                     GDBusConnection   *connection,
                                                     BgTaskKind         kind,
                                                     const char        *session_id,
                                                     const char        *database_path,
                                                     const char        *key,
                                                     const char        *object_path,
                                                     GError           **error);
BgTransferdQueue *bg_transferd_queue_ref            (BgTransferdQueue  *self);
void              bg_transferd_queue_unref          (BgTransferdQueue  *self);
/* The kind and the database path in use, which identify a queue. */
const char       *bg_transferd_queue_get_key        (BgTransferdQueue  *self);
const char       *bg_transferd_queue_get_object_path (BgTransferdQueue *self);
/* Applies queue settings (a{sv}, see the XML): all of them, or none with an error. */
gboolean          bg_transferd_queue_configure      (BgTransferdQueue  *self,
                                                     GVariant          *settings,
                                                     GError           **error);
/* @sender is a client until it calls CloseQueue or leaves the bus; @client_path is "/" when it
 * has no Client object. */
void              bg_transferd_queue_add_client     (BgTransferdQueue  *self,
                                                     const char        *sender,
                                                     const char        *client_path);
/* Carries on the tasks of earlier runs, once per service run. */
void              bg_transferd_queue_restore        (BgTransferdQueue  *self);
/* Whether a client has the queue open. */
gboolean          bg_transferd_queue_has_clients    (BgTransferdQueue  *self);
/* Adds (queue, identifier, snapshot) to @builder (a(osa{sv})) for each task that changed since
 * the last call; returns how many. */
/* Adds the changed tasks to @builder; the identifiers of tasks that finished while the queue
 * had no client go to @unattended. */
guint             bg_transferd_queue_take_changes   (BgTransferdQueue  *self,
                                                     GVariantBuilder   *builder,
                                                     GPtrArray         *unattended);
/* Whether a task of the queue has not finished yet. */
gboolean          bg_transferd_queue_has_unfinished (BgTransferdQueue  *self);
/* Stops every attempt (the records stay) and unexports the queue. */
void              bg_transferd_queue_close          (BgTransferdQueue  *self);

/* bg-transferd-prepare.c: asks the clients at @senders (and @paths, one for one) in turn to
 * prepare the attempt's request, then calls bg_engine_prepare_done(). */
void              bg_transferd_prepare_ask          (GDBusConnection   *connection,
                                                     const char        *queue_path,
                                                     const char        *identifier,
                                                     GPtrArray         *senders,
                                                     GPtrArray         *paths,
                                                     BgEnginePrepare   *prepare);
/* Whether a header could go into a request as it is. */
/* @autostarted: the service was started with --resume-all, as the session's autostart does. */
BgTransferdPortal *bg_transferd_portal_new         (GDBusConnection   *connection,
                                                     const char        *app_id,
                                                     gboolean           autostarted);
void              bg_transferd_portal_free          (BgTransferdPortal *self);
/* Asks for autostart while @pending, withdraws it when not (inside Flatpak). */
void              bg_transferd_portal_set_pending   (BgTransferdPortal *self,
                                                     gboolean           pending);
/* Activates the app's "bg-task-finished" action with @identifiers. */
void              bg_transferd_portal_activate_finished (BgTransferdPortal *self,
                                                         GPtrArray         *identifiers);
gboolean          bg_transferd_header_is_acceptable (const char        *name,
                                                     const char        *value);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (BgTransferdQueue, bg_transferd_queue_unref)

G_END_DECLS
