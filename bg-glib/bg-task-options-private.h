/* bg-task-options-private.h
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include "bg-task-options.h"

G_BEGIN_DECLS

/* 64 hexadecimal digits, in either case. */
gboolean bg_sha256_is_valid (const char *sha256);

G_END_DECLS
