/* bg-error.c
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include "bg-error.h"

/**
 * bg_error_quark:
 *
 * Gets the error domain of bg-glib.
 *
 * Returns: the quark of %BG_ERROR
 */
G_DEFINE_QUARK (bg-error-quark, bg_error)
