/* bg-task-list-private.h: the read-only list of tasks that a task queue hands out
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include <gio/gio.h>

#include "bg-task.h"

G_BEGIN_DECLS

#define BG_TYPE_TASK_LIST (bg_task_list_get_type ())

G_DECLARE_FINAL_TYPE (BgTaskList, bg_task_list, BG, TASK_LIST, GObject)

BgTaskList *bg_task_list_new         (void);
void        bg_task_list_append      (BgTaskList *self,
                                      BgTask     *task);
/* Appends every task of @tasks (BgTask) with one items-changed. */
void        bg_task_list_append_many (BgTaskList *self,
                                      GPtrArray  *tasks);
/* Returns FALSE when @task is not in the list. */
gboolean    bg_task_list_remove      (BgTaskList *self,
                                      BgTask     *task);
void        bg_task_list_remove_all  (BgTaskList *self);

G_END_DECLS
