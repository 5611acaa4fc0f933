/* bg-frontend-private.h: what BgDownloader and BgUploader have in common
 *
 * Both front ends are thin: their properties, signals and set-up live here, and the work is the
 * engine's.  Each front end embeds a BgFrontend and forwards to it.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include "bg-engine-private.h"

G_BEGIN_DECLS

/* The shared properties.  A front end's own ones are numbered from BG_FRONTEND_N_PROPS. */
enum {
  BG_FRONTEND_PROP_0,
  BG_FRONTEND_PROP_SESSION_ID,
  BG_FRONTEND_PROP_DATABASE_PATH,
  BG_FRONTEND_PROP_SOUP_SESSION,
  BG_FRONTEND_PROP_NETWORK_MONITOR,
  BG_FRONTEND_PROP_MAX_CONCURRENT,
  BG_FRONTEND_PROP_STALL_TIMEOUT,
  BG_FRONTEND_PROP_MAX_ATTEMPTS,
  BG_FRONTEND_PROP_RETRY_DELAY,
  BG_FRONTEND_PROP_MAX_RETRY_DELAY,
  BG_FRONTEND_PROP_RETRY_DEADLINE,
  BG_FRONTEND_PROP_ALLOW_METERED,
  BG_FRONTEND_N_PROPS
};

enum {
  BG_FRONTEND_SIGNAL_TASK_FINISHED,
  BG_FRONTEND_SIGNAL_PREPARE_REQUEST,
  BG_FRONTEND_N_SIGNALS
};

typedef struct
{
  GObject         *owner;
  GParamSpec     **pspecs;
  guint           *signals;
  BgTaskKind       kind;
  BgEngine        *engine;
  char            *session_id;
  char            *database_path;
  SoupSession     *soup_session;
  GNetworkMonitor *network_monitor;
  guint            uints[BG_FRONTEND_N_PROPS];  /* the guint properties, by id */
  gboolean         allow_metered;
} BgFrontend;

void      bg_frontend_class_init   (GObjectClass  *klass,
                                    GParamSpec   **pspecs,
                                    guint         *signals);
void      bg_frontend_init         (BgFrontend    *self,
                                    GObject       *owner,
                                    BgTaskKind     kind,
                                    GParamSpec   **pspecs,
                                    guint         *signals);
gboolean  bg_frontend_open         (BgFrontend    *self,
                                    GError       **error);
void      bg_frontend_dispose      (BgFrontend    *self);
void      bg_frontend_finalize     (BgFrontend    *self);
gboolean  bg_frontend_get_property (BgFrontend    *self,
                                    guint          prop_id,
                                    GValue        *value);
gboolean  bg_frontend_set_property (BgFrontend    *self,
                                    guint          prop_id,
                                    const GValue  *value);
guint     bg_frontend_get_uint     (BgFrontend    *self,
                                    guint          prop_id);
void      bg_frontend_set_uint     (BgFrontend    *self,
                                    guint          prop_id,
                                    guint          value);

G_END_DECLS
