/* bg-store-response-private.h: a task's final response as its database record keeps it
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include "bg-response.h"
#include "bg-store-private.h"

G_BEGIN_DECLS

/* A new response made from the response columns of @record (a finished task's), for the task's
 * @file.  When the stored headers do not decode, the response has none. */
BgResponse *bg_store_record_dup_response (const BgStoreRecord *record,
                                          GFile               *file);
/* Copies @response into the response columns of @record, in place of any held before. */
void        bg_store_record_set_response (BgStoreRecord       *record,
                                          BgResponse          *response);

G_END_DECLS
