/* bg-transfer-docs.h: the text of --help and of the bg-transfer(1) manual page
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include <glib.h>

#include "bg-transfer-tool.h"

G_BEGIN_DECLS

/* What --help prints above the options: what the tool does, and the commands. */
char *bt_docs_help_summary     (void);
/* What "bg-transfer COMMAND --help" prints above the options: what the command does. */
char *bt_docs_command_summary  (const BtCommand    *command);
/* What --help prints below the options: identifiers, exit statuses, files and examples. */
char *bt_docs_help_description (void);
/* The manual page in roff, made from the same text and from the option entries. */
char *bt_docs_man_page         (const GOptionEntry *entries);

G_END_DECLS
