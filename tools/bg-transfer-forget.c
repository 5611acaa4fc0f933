/* bg-transfer-forget.c: the forget command
 *
 * bg-transfer forget ID: forgets the result of a finished task without printing it.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <glib/gi18n.h>

#include "bg-transfer-session.h"

static gboolean
forget_task (BtApp       *app,
             BgTaskKind   kind,
             const char  *identifier,
             GError     **error)
{
  if (kind == BG_TASK_KIND_DOWNLOAD)
    return bg_downloader_forget (app->downloader, identifier, error);

  return bg_uploader_forget (app->uploader, identifier, error);
}

static char *
describe_forgotten (BgTaskKind  kind,
                    const char *identifier)
{
  return g_strdup_printf (_("Forgot the task %s."), identifier);
}

static const BtTaskAction forget_action = {
  .synopsis = "bg-transfer forget ID",
  .event = "forgotten",
  .act = forget_task,
  .describe = describe_forgotten,
};

static int
handle_forget (int      argc,
               char    *argv[],
               gboolean do_help)
{
  g_autoptr(GOptionContext) context = bt_command_context_new (&bt_command_forget);

  if (do_help)
    return bt_command_show_help (context);
  if (!bt_command_parse (&bt_command_forget, context, &argc, &argv))
    return BT_EXIT_USAGE;

  return bt_session_run_task_action (&forget_action, argc, argv);
}

const BtCommand bt_command_forget = {
  .name = "forget",
  .synopsis = "forget ID",
  .description = N_("Forget the result of the finished task ID without printing it."),
  .handle = handle_forget,
};
