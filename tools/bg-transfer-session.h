/* bg-transfer-session.h: what the commands about the whole session share
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include "bg-transfer-tool.h"

G_BEGIN_DECLS

/* Opens both the downloader and the uploader: they share the session's database. */
gboolean     bt_session_open            (BtApp       *app,
                                         int         *exit_code);
/* The downloader or the uploader. */
BgTaskQueue *bt_session_queue           (BtApp       *app,
                                         BgTaskKind   kind);
/* Loads the tasks of earlier runs into both; the restored transfers carry on while the caller
 * iterates the main context.  Those of one front end may start while the other's load. */
gboolean     bt_session_restore         (BtApp       *app,
                                         int         *exit_code);
/* Loads them into the front end of @kind alone.  The main context runs only until the load
 * completes, so none of its transfers has started when it returns; closing the front end
 * before the main context runs again keeps them where they are. */
gboolean     bt_session_restore_kind    (BtApp       *app,
                                         BgTaskKind   kind,
                                         int         *exit_code);
/* Every task of both front ends, downloads first. */
GPtrArray   *bt_session_dup_tasks       (BtApp       *app);
gboolean     bt_task_is_pending         (BgTask      *task);

/* A command that does something to the task ID, whichever front end has it. */
typedef struct
{
  const char  *synopsis;    /* for the usage message: "bg-transfer cancel ID" */
  const char  *event;       /* the JSON event that says it was done: "cancelled" */
  /* Does it to the task of @kind; BG_ERROR_NOT_FOUND when that front end has none. */
  gboolean   (*act)         (BtApp       *app,
                             BgTaskKind   kind,
                             const char  *identifier,
                             GError     **error);
  /* Or, instead of @act, does it to the task itself, restored for it.  Nothing has run the
   * main context since the restore, so the task has not started. */
  gboolean   (*act_on_task) (BgTask      *task,
                             GError     **error);
  /* The message that says it was done. */
  char      *(*describe)    (BgTaskKind   kind,
                             const char  *identifier);
} BtTaskAction;

/* Runs @action on the one argument that bt_command_parse() left in @argv; returns the exit
 * status. */
int          bt_session_run_task_action (const BtTaskAction *action,
                                         int                 argc,
                                         char               *argv[]);

G_END_DECLS
