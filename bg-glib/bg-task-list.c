/* bg-task-list.c: the read-only list of tasks that a task queue hands out
 *
 * A GListModel that only the engine changes: an app binds a list view to it, but cannot empty
 * it or add to it, as it could a GListStore.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include "bg-task-list-private.h"

struct _BgTaskList
{
  GObject    parent_instance;
  GPtrArray *tasks;
};

static void bg_task_list_model_iface_init (GListModelInterface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (BgTaskList, bg_task_list, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_LIST_MODEL,
                                                      bg_task_list_model_iface_init))

static GType
bg_task_list_get_item_type (GListModel *model)
{
  return BG_TYPE_TASK;
}

static guint
bg_task_list_get_n_items (GListModel *model)
{
  return BG_TASK_LIST (model)->tasks->len;
}

static gpointer
bg_task_list_get_item (GListModel *model,
                       guint       position)
{
  BgTaskList *self = BG_TASK_LIST (model);

  if (position >= self->tasks->len)
    return NULL;

  return g_object_ref (g_ptr_array_index (self->tasks, position));
}

static void
bg_task_list_model_iface_init (GListModelInterface *iface)
{
  iface->get_item_type = bg_task_list_get_item_type;
  iface->get_n_items = bg_task_list_get_n_items;
  iface->get_item = bg_task_list_get_item;
}

static void
bg_task_list_finalize (GObject *object)
{
  g_clear_pointer (&BG_TASK_LIST (object)->tasks, g_ptr_array_unref);

  G_OBJECT_CLASS (bg_task_list_parent_class)->finalize (object);
}

static void
bg_task_list_class_init (BgTaskListClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = bg_task_list_finalize;
}

static void
bg_task_list_init (BgTaskList *self)
{
  self->tasks = g_ptr_array_new_with_free_func (g_object_unref);
}

BgTaskList *
bg_task_list_new (void)
{
  return g_object_new (BG_TYPE_TASK_LIST, NULL);
}

void
bg_task_list_append (BgTaskList *self,
                     BgTask     *task)
{
  g_return_if_fail (BG_IS_TASK_LIST (self));
  g_return_if_fail (BG_IS_TASK (task));

  g_ptr_array_add (self->tasks, g_object_ref (task));
  g_list_model_items_changed (G_LIST_MODEL (self), self->tasks->len - 1, 0, 1);
}

void
bg_task_list_append_many (BgTaskList *self,
                          GPtrArray  *tasks)
{
  guint position;

  g_return_if_fail (BG_IS_TASK_LIST (self));
  g_return_if_fail (tasks != NULL);

  if (tasks->len == 0)
    return;

  position = self->tasks->len;
  for (guint i = 0; i < tasks->len; i++)
    g_ptr_array_add (self->tasks, g_object_ref (g_ptr_array_index (tasks, i)));
  g_list_model_items_changed (G_LIST_MODEL (self), position, 0, tasks->len);
}

/* Looks from both ends at once: a task leaves the list most often near its start (tasks finish
 * in the queue's order) or near its end (just submitted, and cancelled), and cancelling a hundred
 * thousand tasks from the last one back walked the whole list each time. */
static gboolean
find_task (GPtrArray *tasks,
           BgTask    *task,
           guint     *position)
{
  guint lo = 0;
  guint hi = tasks->len;

  while (lo < hi)
    {
      if (g_ptr_array_index (tasks, lo) == task)
        {
          *position = lo;
          return TRUE;
        }
      lo++;
      if (lo < hi && g_ptr_array_index (tasks, hi - 1) == task)
        {
          *position = hi - 1;
          return TRUE;
        }
      hi--;
    }

  return FALSE;
}

gboolean
bg_task_list_remove (BgTaskList *self,
                     BgTask     *task)
{
  guint position;

  g_return_val_if_fail (BG_IS_TASK_LIST (self), FALSE);

  if (!find_task (self->tasks, task, &position))
    return FALSE;

  g_ptr_array_remove_index (self->tasks, position);
  g_list_model_items_changed (G_LIST_MODEL (self), position, 1, 0);

  return TRUE;
}

void
bg_task_list_remove_all (BgTaskList *self)
{
  guint n;

  g_return_if_fail (BG_IS_TASK_LIST (self));

  n = self->tasks->len;
  if (n == 0)
    return;

  g_ptr_array_set_size (self->tasks, 0);
  g_list_model_items_changed (G_LIST_MODEL (self), 0, n, 0);
}
