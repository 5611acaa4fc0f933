/* bg-response-private.h
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include "bg-response.h"

G_BEGIN_DECLS

/* Takes copies of everything; any argument but @identifier may be NULL. The Retry-After
 * interval is computed here from @headers. */
BgResponse *bg_response_new (BgResponseKind      kind,
                             const char         *identifier,
                             guint               status,
                             const char         *reason,
                             SoupMessageHeaders *headers,
                             GFile              *file,
                             GBytes             *body,
                             const GError       *error);

G_END_DECLS
