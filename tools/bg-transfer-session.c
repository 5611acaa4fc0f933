/* bg-transfer-session.c: what the commands about the whole session share
 *
 * The downloader and the uploader of one session share one database; each of list, resume,
 * cancel, forget, pause and unpause opens both.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <glib/gi18n.h>

#include "bg-transfer-session.h"
#include "bg-transfer-json.h"
#include "bg-transfer-report.h"

gboolean
bt_session_open (BtApp *app,
                 int   *exit_code)
{
  return bt_app_open_downloader (app, exit_code) && bt_app_open_uploader (app, exit_code);
}

/* --- Restoring ----------------------------------------------------------------------------- */

typedef struct
{
  guint   restoring;
  GError *error;
} Restore;

static void
queue_restored_cb (GObject      *object,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  Restore *self = user_data;
  g_autoptr(GError) error = NULL;

  if (!bg_task_queue_restore_finish (BG_TASK_QUEUE (object), result, &error) &&
      self->error == NULL)
    self->error = g_steal_pointer (&error);
  self->restoring--;
}

/* Only the completions are waited for.  The main context stops once the last one has come, so
 * the transfers of the queue restored last have not started yet; those of the others may have. */
static gboolean
restore_queues (BgTaskQueue **queues,
                guint         n_queues,
                GError      **error)
{
  Restore restore = { .restoring = n_queues };

  for (guint i = 0; i < n_queues; i++)
    bg_task_queue_restore_async (queues[i], NULL, queue_restored_cb, &restore);

  while (restore.restoring > 0)
    g_main_context_iteration (NULL, TRUE);

  if (restore.error == NULL)
    return TRUE;

  g_propagate_error (error, restore.error);
  return FALSE;
}

static gboolean
report_restore_error (BtApp        *app,
                      const GError *error,
                      int          *exit_code)
{
  *exit_code = bt_exit_for_error (error);
  bt_report_message (app->output, *exit_code, error->message);
  return FALSE;
}

gboolean
bt_session_restore (BtApp *app,
                    int   *exit_code)
{
  BgTaskQueue *queues[] = { BG_TASK_QUEUE (app->downloader), BG_TASK_QUEUE (app->uploader) };
  g_autoptr(GError) error = NULL;

  if (!restore_queues (queues, G_N_ELEMENTS (queues), &error))
    return report_restore_error (app, error, exit_code);

  return TRUE;
}

gboolean
bt_session_restore_kind (BtApp      *app,
                         BgTaskKind  kind,
                         int        *exit_code)
{
  BgTaskQueue *queue = bt_session_queue (app, kind);
  g_autoptr(GError) error = NULL;

  if (!restore_queues (&queue, 1, &error))
    return report_restore_error (app, error, exit_code);

  return TRUE;
}

BgTaskQueue *
bt_session_queue (BtApp      *app,
                  BgTaskKind  kind)
{
  if (kind == BG_TASK_KIND_DOWNLOAD)
    return BG_TASK_QUEUE (app->downloader);

  return BG_TASK_QUEUE (app->uploader);
}

GPtrArray *
bt_session_dup_tasks (BtApp *app)
{
  GListModel *models[] = {
    bg_downloader_get_tasks (app->downloader),
    bg_uploader_get_tasks (app->uploader),
  };
  GPtrArray *tasks = g_ptr_array_new_with_free_func (g_object_unref);

  for (guint m = 0; m < G_N_ELEMENTS (models); m++)
    {
      for (guint i = 0; i < g_list_model_get_n_items (models[m]); i++)
        g_ptr_array_add (tasks, g_list_model_get_item (models[m], i));
    }

  return tasks;
}

gboolean
bt_task_is_pending (BgTask *task)
{
  BgTaskState state = bg_task_get_state (task);

  return state != BG_TASK_STATE_FINISHED && state != BG_TASK_STATE_CANCELLED;
}

/* --- Doing something to one task ----------------------------------------------------------- */

static void
report_done (BtApp      *app,
             const char *event,
             const char *identifier,
             BgTaskKind  kind,
             const char *message)
{
  g_autoptr(JsonBuilder) builder = bt_json_begin (event);

  bt_json_add_string (builder, "identifier", identifier);
  bt_json_add_enum (builder, "operation", BG_TYPE_TASK_KIND, kind);
  bt_json_add_string (builder, "message", message);
  bt_output_json (app->output, builder);
  bt_output_say (app->output, FALSE, message);
}

/* Runs @action on the download @identifier, or on the upload when no download has it.  Sets
 * @kind to the kind of the task that was found. */
static gboolean
act_on_task (BtApp              *app,
             const BtTaskAction *action,
             const char         *identifier,
             BgTaskKind         *kind,
             GError            **error)
{
  g_autoptr(GError) local_error = NULL;

  g_assert (action != NULL && identifier != NULL);

  *kind = BG_TASK_KIND_DOWNLOAD;
  if (action->act (app, *kind, identifier, &local_error))
    return TRUE;
  if (!g_error_matches (local_error, BG_ERROR, BG_ERROR_NOT_FOUND))
    {
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }

  *kind = BG_TASK_KIND_UPLOAD;
  return action->act (app, *kind, identifier, error);
}

/* Finds the task @identifier among the downloads, then among the uploads, restoring one front end
 * at a time: none of the transfers restored has started when it returns, as the downloads are
 * closed before the uploads load.  BG_ERROR_NOT_FOUND when neither has it. */
static BgTask *
restore_task (BtApp       *app,
              const char  *identifier,
              GError     **error)
{
  BgTaskQueue *downloads = bt_session_queue (app, BG_TASK_KIND_DOWNLOAD);
  BgTaskQueue *uploads = bt_session_queue (app, BG_TASK_KIND_UPLOAD);
  BgTask *task;

  g_assert (identifier != NULL);

  if (!restore_queues (&downloads, 1, error))
    return NULL;
  task = bg_task_queue_lookup_task (downloads, identifier);
  if (task != NULL)
    return task;

  /* This run has nothing to do with the downloads: they must not start while the uploads load. */
  bg_task_queue_close (downloads);
  if (!restore_queues (&uploads, 1, error))
    return NULL;
  task = bg_task_queue_lookup_task (uploads, identifier);
  if (task == NULL)
    g_set_error (error, BG_ERROR, BG_ERROR_NOT_FOUND, _("No task has the identifier “%s”"),
                 identifier);

  return task;
}

/* Runs @action on the restored task @identifier.  Sets @kind to the kind of the task. */
static gboolean
act_on_restored_task (BtApp              *app,
                      const BtTaskAction *action,
                      const char         *identifier,
                      BgTaskKind         *kind,
                      GError            **error)
{
  BgTask *task;

  g_assert (action != NULL && action->act_on_task != NULL && identifier != NULL);

  task = restore_task (app, identifier, error);
  if (task == NULL)
    return FALSE;

  *kind = bg_task_get_kind (task);
  return action->act_on_task (task, error);
}

static int
report_action_error (BtApp        *app,
                     const char   *identifier,
                     const GError *error)
{
  g_autofree char *message = NULL;

  if (g_error_matches (error, BG_ERROR, BG_ERROR_NOT_FOUND))
    message = g_strdup_printf (_("No task has the identifier “%s” in this session. Run "
                                 "“bg-transfer list” to see the tasks."), identifier);
  else
    message = g_strdup (error->message);

  bt_report_message (app->output, BT_EXIT_FAILED, message);
  return BT_EXIT_FAILED;
}

int
bt_session_run_task_action (const BtTaskAction *action,
                            int                 argc,
                            char               *argv[])
{
  g_autoptr(BtApp) app = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *message = NULL;
  const char *identifier;
  int exit_code = BT_EXIT_SUCCESS;
  BgTaskKind kind;
  gboolean acted;

  if (!bt_check_arguments (argc - 1, 1, action->synopsis))
    return BT_EXIT_USAGE;
  identifier = argv[1];
  if (*identifier == '\0')
    {
      bt_usage_error (_("The identifier is empty"));
      return BT_EXIT_USAGE;
    }

  app = bt_app_new ();
  if (!bt_session_open (app, &exit_code))
    return exit_code;

  if (action->act_on_task != NULL)
    acted = act_on_restored_task (app, action, identifier, &kind, &error);
  else
    acted = act_on_task (app, action, identifier, &kind, &error);
  if (!acted)
    return report_action_error (app, identifier, error);

  message = action->describe (kind, identifier);
  report_done (app, action->event, identifier, kind, message);

  return BT_EXIT_SUCCESS;
}
