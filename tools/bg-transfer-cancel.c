/* bg-transfer-cancel.c: the cancel command
 *
 * bg-transfer cancel ID: stops the task and forgets it.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <glib/gi18n.h>

#include "bg-transfer-session.h"

static gboolean
cancel_task (BtApp       *app,
             BgTaskKind   kind,
             const char  *identifier,
             GError     **error)
{
  if (kind == BG_TASK_KIND_DOWNLOAD)
    return bg_downloader_cancel (app->downloader, identifier, error);

  return bg_uploader_cancel (app->uploader, identifier, error);
}

static char *
describe_cancelled (BgTaskKind  kind,
                    const char *identifier)
{
  if (kind == BG_TASK_KIND_DOWNLOAD)
    return g_strdup_printf (_("Cancelled the download %s; its partial file was deleted."),
                            identifier);

  return g_strdup_printf (_("Cancelled the upload %s."), identifier);
}

static const BtTaskAction cancel_action = {
  .synopsis = "bg-transfer cancel ID",
  .event = "cancelled",
  .act = cancel_task,
  .describe = describe_cancelled,
};

static int
handle_cancel (int      argc,
               char    *argv[],
               gboolean do_help)
{
  g_autoptr(GOptionContext) context = bt_command_context_new (&bt_command_cancel);

  if (do_help)
    return bt_command_show_help (context);
  if (!bt_command_parse (&bt_command_cancel, context, &argc, &argv))
    return BT_EXIT_USAGE;

  return bt_session_run_task_action (&cancel_action, argc, argv);
}

const BtCommand bt_command_cancel = {
  .name = "cancel",
  .synopsis = "cancel ID",
  .description = N_("Stop the task ID and forget it. The partial file of a download is "
                    "deleted."),
  .handle = handle_cancel,
};
