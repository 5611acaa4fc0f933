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

G_END_DECLS
