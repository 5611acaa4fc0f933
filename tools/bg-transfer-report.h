/* bg-transfer-report.h: how a transfer ended, told to a person or as JSON, and the exit status
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include <bg-glib.h>

#include "bg-transfer-output.h"

G_BEGIN_DECLS

int   bt_exit_for_response_kind (BgResponseKind  kind);
int   bt_exit_for_error         (const GError   *error);

/* Prints the outcome of a transfer (@task may be NULL) and returns its exit status. */
int   bt_report_response        (BtOutput       *output,
                                 BgTaskKind      kind,
                                 BgTask         *task,
                                 BgResponse     *response);

/* Prints why a transfer could not be started or waited for, and returns the exit status. */
int   bt_report_error           (BtOutput       *output,
                                 BgTaskKind      kind,
                                 const char     *identifier,
                                 GFile          *file,
                                 const GError   *error);

/* Prints an error that belongs to no transfer, such as a database that cannot be opened. */
void  bt_report_message         (BtOutput       *output,
                                 int             exit_code,
                                 const char     *message);

G_END_DECLS
