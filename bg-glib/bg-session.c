/* bg-session.c: a session id, and the task database it names
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <errno.h>
#include <string.h>

#include <glib/gi18n-lib.h>

#include "bg-error.h"
#include "bg-session-private.h"

gboolean
bg_session_id_validate (const char  *session_id,
                        GError     **error)
{
  gsize len = session_id ? strlen (session_id) : 0;

  if (len == 0 || len > 200)
    {
      g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                   _("The session id must be 1 to 200 characters long"));
      return FALSE;
    }

  for (gsize i = 0; i < len; i++)
    {
      char c = session_id[i];

      if (!g_ascii_isalnum (c) && c != '.' && c != '_' && c != '-')
        {
          g_autofree char *shown = g_utf8_make_valid (session_id, -1);

          g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                       _("The session id “%s” may only contain letters, digits, “.”, “_” and "
                         "“-”"),
                       shown);
          return FALSE;
        }
    }

  if (strcmp (session_id, ".") == 0 || strcmp (session_id, "..") == 0)
    {
      g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                   _("The session id “%s” is not a usable name"), session_id);
      return FALSE;
    }

  return TRUE;
}

char *
bg_session_default_database_path (const char *session_id)
{
  g_autofree char *name = g_strconcat (session_id, ".sqlite", NULL);

  return g_build_filename (g_get_user_data_dir (), "bg-glib", name, NULL);
}

BgStore *
bg_session_open_store (const char  *session_id,
                       const char  *database_path,
                       char       **path_used,
                       GError     **error)
{
  g_autofree char *path = NULL;
  g_autofree char *dir = NULL;
  BgStore *store;

  if (!bg_session_id_validate (session_id, error))
    return NULL;

  path = database_path != NULL ? g_strdup (database_path)
                               : bg_session_default_database_path (session_id);
  dir = g_path_get_dirname (path);
  if (g_mkdir_with_parents (dir, 0700) != 0)
    {
      int saved_errno = errno;
      g_autofree char *shown = g_filename_display_name (dir);

      g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                   _("Cannot create the folder “%s” for the task database: %s"),
                   shown, g_strerror (saved_errno));
      return NULL;
    }

  store = bg_store_open (path, error);
  if (store != NULL && path_used != NULL)
    *path_used = g_steal_pointer (&path);

  return store;
}
