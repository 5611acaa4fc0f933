/* test-task-list.c: the list model of a queue's tasks
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include "bg-task-list-private.h"
#include "bg-task-private.h"
#include "test-utils.h"

typedef struct
{
  guint position;
  guint removed;
  guint added;
  guint count;
} Change;

static void
items_changed_cb (GListModel *model,
                  guint       position,
                  guint       removed,
                  guint       added,
                  Change     *change)
{
  change->position = position;
  change->removed = removed;
  change->added = added;
  change->count++;
}

static BgTask *
make_task (guint i)
{
  g_autofree char *identifier = g_strdup_printf ("task/%u", i);
  g_autofree char *path = g_strdup_printf ("/tmp/task-%u", i);
  g_autoptr(GFile) file = g_file_new_for_path (path);

  return bg_task_new (BG_TASK_KIND_DOWNLOAD, identifier, "http://127.0.0.1/f", file);
}

/* Every position of lists of one to seven tasks: the task at it goes, with one items-changed
 * that names that position, and the others stay in their order.  A task that is not listed
 * changes nothing. */
static void
test_remove_each_position (void)
{
  for (guint len = 1; len <= 7; len++)
    for (guint gone = 0; gone < len; gone++)
      {
        g_autoptr(BgTaskList) list = bg_task_list_new ();
        g_autoptr(GPtrArray) tasks = g_ptr_array_new_with_free_func (g_object_unref);
        g_autoptr(BgTask) stranger = make_task (100);
        Change change = { 0, };
        guint n = 0;

        for (guint i = 0; i < len; i++)
          {
            g_ptr_array_add (tasks, make_task (i));
            bg_task_list_append (list, g_ptr_array_index (tasks, i));
          }
        g_signal_connect (list, "items-changed", G_CALLBACK (items_changed_cb), &change);

        g_assert_false (bg_task_list_remove (list, stranger));
        g_assert_cmpuint (change.count, ==, 0);

        g_assert_true (bg_task_list_remove (list, g_ptr_array_index (tasks, gone)));
        g_assert_cmpuint (change.count, ==, 1);
        g_assert_cmpuint (change.position, ==, gone);
        g_assert_cmpuint (change.removed, ==, 1);
        g_assert_cmpuint (change.added, ==, 0);

        g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (list)), ==, len - 1);
        for (guint i = 0; i < len; i++)
          {
            g_autoptr(BgTask) item = NULL;

            if (i == gone)
              continue;
            item = g_list_model_get_item (G_LIST_MODEL (list), n++);
            g_assert_true (item == g_ptr_array_index (tasks, i));
          }

        /* Gone: a second removal finds nothing. */
        g_assert_false (bg_task_list_remove (list, g_ptr_array_index (tasks, gone)));
        g_assert_cmpuint (change.count, ==, 1);
      }
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/task-list/remove-each-position", test_remove_each_position);

  return g_test_run ();
}
