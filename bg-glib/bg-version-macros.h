/* bg-version-macros.h: symbol visibility
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#if !defined (BG_GLIB_INSIDE) && !defined (BG_COMPILATION)
#error "Only <bg-glib.h> can be included directly."
#endif

#include <glib.h>

#if defined (BG_COMPILATION) && defined (__GNUC__)
# define _BG_EXTERN __attribute__((visibility ("default"))) extern
#else
# define _BG_EXTERN extern
#endif

#define BG_AVAILABLE_IN_ALL _BG_EXTERN
