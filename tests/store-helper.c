/* store-helper.c: holds a task database open from a second process
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Usage: store-helper PATH
 *        store-helper --save-then-kill PATH IDENTIFIER
 *        store-helper --sql-then-kill PATH SQL
 *        store-helper --read-only-mount PATH TARGET
 *
 * The first form opens the store at PATH, prints "ready" on a line of its own, then keeps the
 * store open until its standard input reaches end of file.  test-store uses it to check that a
 * second process is refused with BG_ERROR_BUSY, and, run as another user, that a database that
 * user cannot write is refused.
 *
 * The second form saves a download record named IDENTIFIER, records progress for it (checkpoint
 * 4096, total 8192), and then kills itself with SIGKILL without closing anything: what the store
 * reported as committed must be there for the next process.
 *
 * The third form opens PATH with SQLite alone, as any program could, runs SQL with automatic
 * checkpoints off, and kills itself: the database is left with a -wal that still holds the
 * change, and its -shm.
 *
 * The fourth form makes TARGET (PATH itself, or its folder) read-only by a read-only bind mount
 * in a mount namespace of its own, so that nothing outside this process sees it, then works as
 * the first.  When the system does not allow that, it prints "skip: REASON" and exits with
 * status 77.
 *
 * On failure every form prints "error: MESSAGE", then "code: N" with the BgError code (-1 for
 * another domain), and exits with status 1.
 */

#include "config.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include <sqlite3.h>

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

static int
sql_then_kill (const char *path,
               const char *sql)
{
  sqlite3 *db = NULL;
  char *message = NULL;

  if (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
      sqlite3_exec (db, "PRAGMA wal_autocheckpoint = 0", NULL, NULL, &message) != SQLITE_OK ||
      sqlite3_exec (db, sql, NULL, NULL, &message) != SQLITE_OK)
    {
      printf ("error: %s\ncode: -1\n", message != NULL ? message : sqlite3_errmsg (db));
      fflush (stdout);
      return 1;
    }

  kill (getpid (), SIGKILL);
  return 1;
}

static int
hold (const char *path)
{
  g_autoptr(BgStore) store = NULL;
  g_autoptr(GError) error = NULL;
  char buffer[256];

  store = bg_store_open (path, &error);
  if (store == NULL)
    return fail (error);

  printf ("ready\n");
  fflush (stdout);

  while (fgets (buffer, sizeof buffer, stdin) != NULL)
    ;

  return 0;
}

static int
skip (const char *what)
{
  int saved_errno = errno;

  printf ("skip: %s: %s\n", what, g_strerror (saved_errno));
  fflush (stdout);
  return 77;
}

static int
read_only_mount (const char *path,
                 const char *target)
{
  if (unshare (CLONE_NEWNS) != 0)
    return skip ("no mount namespace of our own (unshare)");
  /* Mounts made from here on stay in this namespace. */
  if (mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
    return skip ("the mounts cannot be made private");
  if (mount (target, target, NULL, MS_BIND, NULL) != 0)
    return skip ("no bind mount");
  if (mount (NULL, target, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) != 0)
    return skip ("no read-only remount");

  return hold (path);
}

int
main (int   argc,
      char *argv[])
{
  if (argc == 4 && strcmp (argv[1], "--save-then-kill") == 0)
    return save_then_kill (argv[2], argv[3]);

  if (argc == 4 && strcmp (argv[1], "--sql-then-kill") == 0)
    return sql_then_kill (argv[2], argv[3]);

  if (argc == 4 && strcmp (argv[1], "--read-only-mount") == 0)
    return read_only_mount (argv[2], argv[3]);

  if (argc != 2)
    {
      fprintf (stderr, "usage: %s PATH\n"
                       "       %s --save-then-kill PATH IDENTIFIER\n"
                       "       %s --sql-then-kill PATH SQL\n"
                       "       %s --read-only-mount PATH TARGET\n",
               argv[0], argv[0], argv[0], argv[0]);
      return 2;
    }

  return hold (argv[1]);
}
