/* bg-error.c
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include "bg-error.h"

G_DEFINE_QUARK (bg-error-quark, bg_error)
