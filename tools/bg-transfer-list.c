/* bg-transfer-list.c: the list command
 *
 * bg-transfer list: every task of the session with its state, bytes and attempts.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <glib/gi18n.h>

#include "bg-transfer-session.h"
#include "bg-transfer-json.h"

static const char *
state_name (BgTaskState state)
{
  switch (state)
    {
    case BG_TASK_STATE_QUEUED: return _("queued");
    case BG_TASK_STATE_RUNNING: return _("running");
    case BG_TASK_STATE_WAITING: return _("waiting");
    case BG_TASK_STATE_FINISHED: return _("finished");
    case BG_TASK_STATE_CANCELLED: return _("cancelled");
    default: return "?";
    }
}

static char *
bytes_text (BgTask *task)
{
  gint64 bytes = bg_task_get_bytes_transferred (task);
  gint64 total = bg_task_get_bytes_total (task);
  g_autofree char *done = g_format_size (bytes);
  g_autofree char *all = NULL;

  if (total <= 0)
    return g_steal_pointer (&done);

  all = g_format_size (total);
  return g_strdup_printf (_("%s of %s (%d%%)"), done, all,
                          (int) (MIN (bytes, total) * 100 / total));
}

/* "rejected, 404 Not Found" for a finished task, or NULL. */
static char *
outcome_text (BgTask *task)
{
  BgResponse *response = bg_task_get_response (task);
  const char *kind;

  if (response == NULL)
    return NULL;

  kind = bt_enum_nick (BG_TYPE_RESPONSE_KIND, bg_response_get_kind (response));
  if (bg_response_get_status (response) == 0)
    return g_strdup (kind);

  return g_strdup_printf ("%s, %u %s", kind, bg_response_get_status (response),
                          bg_response_get_reason (response) ? bg_response_get_reason (response)
                                                            : "");
}

/* "finished (rejected, 404 Not Found)", "waiting (waiting for the network)", "running", and
 * "paused" for a task that waits only because it was paused. */
static char *
state_text (BgTask *task)
{
  BgTaskState state = bg_task_get_state (task);
  g_autofree char *detail = NULL;

  if (state == BG_TASK_STATE_WAITING &&
      bg_task_get_wait_reason (task) == BG_WAIT_REASON_PAUSED)
    return g_strdup (_("paused"));

  if (state == BG_TASK_STATE_FINISHED)
    detail = outcome_text (task);
  else if (state == BG_TASK_STATE_WAITING)
    detail = bt_describe_wait (task);

  if (detail == NULL)
    return g_strdup (state_name (state));

  return g_strdup_printf ("%s (%s)", state_name (state), detail);
}

static void
print_task_text (BtOutput *output,
                 BgTask   *task)
{
  g_autofree char *bytes = bytes_text (task);
  g_autofree char *file = g_file_get_parse_name (bg_task_get_file (task));
  g_autofree char *state = state_text (task);
  guint attempts = bg_task_get_attempts (task);
  g_autofree char *attempts_text = g_strdup_printf (ngettext ("%u attempt", "%u attempts",
                                                              attempts), attempts);
  g_autofree char *uri = bt_uri_for_display (bg_task_get_uri (task));
  gboolean download = bg_task_get_kind (task) == BG_TASK_KIND_DOWNLOAD;

  bt_output_print (output, "%s  %s  %s  %s  %s", bg_task_get_identifier (task),
                   download ? _("download") : _("upload"), state, bytes, attempts_text);
  if (download)
    bt_output_print (output, "    %s → %s", uri, file);
  else
    bt_output_print (output, "    %s → %s", file, uri);
}

static void
print_task_json (BtOutput    *output,
                 BgTaskQueue *queue,
                 BgTask      *task)
{
  g_autoptr(JsonBuilder) builder = bt_json_begin ("task");
  BgResponse *response = bg_task_get_response (task);

  bt_json_add_task (builder, task);
  bt_json_add_enum (builder, "mode", BG_TYPE_MODE, bg_task_queue_get_mode (queue));
  if (response != NULL)
    {
      bt_json_add_enum (builder, "kind", BG_TYPE_RESPONSE_KIND, bg_response_get_kind (response));
      bt_json_add_int (builder, "status", bg_response_get_status (response));
      bt_json_add_string (builder, "reason", bg_response_get_reason (response));
    }
  bt_output_json (output, builder);
}

/* Restores the tasks of @kind and prints them before the main context runs again, so that none
 * has started; then closes that front end, so that none starts while the other one's load.
 * Returns how many it printed, or -1 after an error. */
static int
print_tasks (BtApp      *app,
             BgTaskKind  kind,
             int        *exit_code)
{
  BgTaskQueue *queue = bt_session_queue (app, kind);
  GListModel *tasks;
  guint n;

  if (!bt_session_restore_kind (app, kind, exit_code))
    return -1;

  tasks = bg_task_queue_get_tasks (queue);
  n = g_list_model_get_n_items (tasks);
  for (guint i = 0; i < n; i++)
    {
      g_autoptr(BgTask) task = g_list_model_get_item (tasks, i);

      print_task_text (app->output, task);
      print_task_json (app->output, queue, task);
    }

  bg_task_queue_close (queue);
  return (int) n;
}

static int
handle_list (int      argc,
             char    *argv[],
             gboolean do_help)
{
  g_autoptr(GOptionContext) context = bt_command_context_new (&bt_command_list);
  g_autoptr(BtApp) app = NULL;
  int exit_code = BT_EXIT_SUCCESS;
  int n_downloads, n_uploads;

  if (do_help)
    return bt_command_show_help (context);
  if (!bt_command_parse (&bt_command_list, context, &argc, &argv) ||
      !bt_check_arguments (argc - 1, 0, "bg-transfer list"))
    return BT_EXIT_USAGE;

  app = bt_app_new ();
  if (!bt_session_open (app, &exit_code))
    return exit_code;

  /* Downloads first, then uploads, one front end at a time. */
  if ((n_downloads = print_tasks (app, BG_TASK_KIND_DOWNLOAD, &exit_code)) < 0 ||
      (n_uploads = print_tasks (app, BG_TASK_KIND_UPLOAD, &exit_code)) < 0)
    return exit_code;

  if (n_downloads + n_uploads == 0)
    bt_output_info (app->output, _("The session has no tasks."));
  return BT_EXIT_SUCCESS;
}

const BtCommand bt_command_list = {
  .name = "list",
  .synopsis = "list",
  .description = N_("List every task of the session with its state, bytes and attempts, then "
                    "exit."),
  .handle = handle_list,
};
