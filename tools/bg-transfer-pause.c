/* bg-transfer-pause.c: the pause and unpause commands
 *
 * bg-transfer pause ID: holds the task where it is, in this run and the next ones, until
 * bg-transfer unpause ID lets it go on from its last checkpoint.  The two differ only in the
 * value they give BgTask:paused, so they share this file.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <glib/gi18n.h>

#include "bg-transfer-session.h"

/* The library stores the option in the database as soon as it changes, in one committed
 * statement: it is there when the command exits. */
static gboolean
set_paused (BgTask    *task,
            gboolean   paused,
            GError   **error)
{
  g_assert (BG_IS_TASK (task));

  if (!bt_task_is_pending (task))
    {
      g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                   paused ? _("The task “%s” has finished: there is nothing to pause")
                          : _("The task “%s” has finished: there is nothing to unpause"),
                   bg_task_get_identifier (task));
      return FALSE;
    }

  bg_task_set_paused (task, paused);
  return TRUE;
}

static gboolean
pause_task (BgTask  *task,
            GError **error)
{
  return set_paused (task, TRUE, error);
}

static gboolean
unpause_task (BgTask  *task,
              GError **error)
{
  return set_paused (task, FALSE, error);
}

static char *
describe_paused (BgTaskKind  kind,
                 const char *identifier)
{
  if (kind == BG_TASK_KIND_DOWNLOAD)
    /* Translators: both %s are the task's identifier. */
    return g_strdup_printf (_("Paused the download %s; its partial file is kept. "
                              "“bg-transfer unpause %s” lets it go on."),
                            identifier, identifier);

  return g_strdup_printf (_("Paused the upload %s. “bg-transfer unpause %s” lets it go on."),
                          identifier, identifier);
}

static char *
describe_unpaused (BgTaskKind  kind,
                   const char *identifier)
{
  if (kind == BG_TASK_KIND_DOWNLOAD)
    return g_strdup_printf (_("Unpaused the download %s; “bg-transfer resume” carries it on."),
                            identifier);

  return g_strdup_printf (_("Unpaused the upload %s; “bg-transfer resume” carries it on."),
                          identifier);
}

static const BtTaskAction pause_action = {
  .synopsis = "bg-transfer pause ID",
  .event = "paused",
  .act_on_task = pause_task,
  .describe = describe_paused,
};

static const BtTaskAction unpause_action = {
  .synopsis = "bg-transfer unpause ID",
  .event = "unpaused",
  .act_on_task = unpause_task,
  .describe = describe_unpaused,
};

static int
handle_task_action (const BtCommand    *command,
                    const BtTaskAction *action,
                    int                 argc,
                    char               *argv[],
                    gboolean            do_help)
{
  g_autoptr(GOptionContext) context = bt_command_context_new (command);

  if (do_help)
    return bt_command_show_help (context);
  if (!bt_command_parse (command, context, &argc, &argv))
    return BT_EXIT_USAGE;

  return bt_session_run_task_action (action, argc, argv);
}

static int
handle_pause (int      argc,
              char    *argv[],
              gboolean do_help)
{
  return handle_task_action (&bt_command_pause, &pause_action, argc, argv, do_help);
}

static int
handle_unpause (int      argc,
                char    *argv[],
                gboolean do_help)
{
  return handle_task_action (&bt_command_unpause, &unpause_action, argc, argv, do_help);
}

const BtCommand bt_command_pause = {
  .name = "pause",
  .synopsis = "pause ID",
  .description = N_("Pause the task ID: it keeps its partial file and does not move, in this "
                    "run or the next ones, until it is unpaused. “bg-transfer resume” leaves "
                    "it where it is."),
  .handle = handle_pause,
};

const BtCommand bt_command_unpause = {
  .name = "unpause",
  .synopsis = "unpause ID",
  .description = N_("Let the paused task ID go on from its last checkpoint, with the next "
                    "“bg-transfer resume”."),
  .handle = handle_unpause,
};
