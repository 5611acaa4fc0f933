/* store-helper.c: holds a task database open from a second process
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Usage: store-helper PATH
 *        store-helper --save-then-kill PATH IDENTIFIER
 *
 * The first form opens the store at PATH, prints "ready" on a line of its own, then keeps the
 * store open until its standard input reaches end of file.  test-store uses it to check that a
 * second process is refused with BG_ERROR_BUSY.
 *
 * The second form saves a download record named IDENTIFIER, records progress for it (checkpoint
 * 4096, total 8192), and then kills itself with SIGKILL without closing anything: what the store
 * reported as committed must be there for the next process.
 *
 * On failure either form prints "error: MESSAGE", then "code: N" with the BgError code (-1 for
 * another domain), and exits with status 1.
 */

#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bg-store-private.h"
#include "bg-error.h"

static int
fail (GError *error)
{
  printf ("error: %s\n", error->message);
  printf ("code: %d\n", error->domain == BG_ERROR ? error->code : -1);
  fflush (stdout);
  return 1;
}

static int
save_then_kill (const char *path,
                const char *identifier)
{
  g_autoptr(BgStore) store = NULL;
  g_autoptr(BgStoreRecord) record = bg_store_record_new ();
  g_autoptr(GError) error = NULL;

  store = bg_store_open (path, &error);
  if (store == NULL)
    return fail (error);

  record->identifier = g_strdup (identifier);
  record->state = BG_TASK_STATE_RUNNING;
  record->uri = g_strdup ("https://example.com/killed");
  if (!bg_store_save (store, record, &error))
    return fail (error);

  record->checkpoint = 4096;
  record->total = 8192;
  if (!bg_store_save_progress (store, record, &error))
    return fail (error);

  kill (getpid (), SIGKILL);
  return 1;
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(BgStore) store = NULL;
  g_autoptr(GError) error = NULL;
  char buffer[256];

  if (argc == 4 && strcmp (argv[1], "--save-then-kill") == 0)
    return save_then_kill (argv[2], argv[3]);

  if (argc != 2)
    {
      fprintf (stderr, "usage: %s PATH\n       %s --save-then-kill PATH IDENTIFIER\n",
               argv[0], argv[0]);
      return 2;
    }

  store = bg_store_open (argv[1], &error);
  if (store == NULL)
    return fail (error);

  printf ("ready\n");
  fflush (stdout);

  while (fgets (buffer, sizeof buffer, stdin) != NULL)
    ;

  return 0;
}
