/* bench-list.h: the command line that bench-many and bench-floor share
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Both take [--ca FILE] LIST FOLDER ... [MAX-CONCURRENT], where LIST holds one URL per line and
 * FILE the CA certificates (PEM) that the session trusts for https://.
 */

#pragma once

#include <stdlib.h>

#include <gio/gio.h>

/* Parses the options and reads LIST (the first argument); @n_args is how many arguments come
 * before the optional MAX-CONCURRENT, which defaults to 8.  Returns the lines of LIST, or NULL
 * once it has printed why, for an exit status of 64. */
static inline GStrv
bench_list_parse (const char  *program,
                  const char  *arguments,
                  int          n_args,
                  int         *argc,
                  char      ***argv,
                  char       **ca_path,
                  guint       *max_concurrent)
{
  g_autoptr(GOptionContext) context = g_option_context_new (arguments);
  g_autoptr(GError) error = NULL;
  g_autofree char *contents = NULL;
  const GOptionEntry entries[] = {
    { "ca", 0, 0, G_OPTION_ARG_FILENAME, ca_path,
      "Trust the CA certificates in FILE (PEM) for https:// URLs", "FILE" },
    { NULL }
  };

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, argc, argv, &error))
    {
      g_printerr ("%s: %s\n", program, error->message);
      return NULL;
    }
  if (*argc < n_args + 1 || *argc > n_args + 2)
    {
      g_printerr ("Usage: %s [--ca FILE] %s\n", program, arguments);
      return NULL;
    }

  *max_concurrent = *argc == n_args + 2 ? (guint) strtoul ((*argv)[n_args + 1], NULL, 10) : 8;
  if (*max_concurrent == 0)
    {
      g_printerr ("%s: MAX-CONCURRENT must be at least 1\n", program);
      return NULL;
    }

  if (!g_file_get_contents ((*argv)[1], &contents, NULL, &error))
    {
      g_printerr ("%s: %s\n", program, error->message);
      return NULL;
    }

  return g_strsplit (contents, "\n", -1);
}

/* A TLS database holding only the certificates in @ca_path. */
static inline GTlsDatabase *
bench_list_tls_database (const char  *ca_path,
                         GError     **error)
{
  /* GTlsFileDatabase wants an absolute path. */
  g_autofree char *absolute = g_canonicalize_filename (ca_path, NULL);

  return g_tls_file_database_new (absolute, error);
}
