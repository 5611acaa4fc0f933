/* bg-i18n.c: the message catalogue
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <glib/gi18n-lib.h>

#include "bg-i18n-private.h"

/* Binds the library's gettext domain, once per process.  A build with -Dnls=disabled installs
 * no catalogue and binds nothing. */
void
bg_i18n_init (void)
{
#ifdef ENABLE_NLS
  static gsize initialized = 0;

  if (g_once_init_enter (&initialized))
    {
      bindtextdomain (GETTEXT_PACKAGE, LOCALEDIR);
      bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
      g_once_init_leave (&initialized, 1);
    }
#endif
}
