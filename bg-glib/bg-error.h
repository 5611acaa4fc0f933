/* bg-error.h: the bg-glib error domain
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#if !defined (BG_GLIB_INSIDE) && !defined (BG_COMPILATION)
#error "Only <bg-glib.h> can be included directly."
#endif

#include <glib.h>

#include "bg-version-macros.h"

G_BEGIN_DECLS

/**
 * BG_ERROR:
 *
 * The error domain of bg-glib. Errors in it carry a [enum@Bg.Error] code.
 */
#define BG_ERROR (bg_error_quark ())

/**
 * BgError:
 * @BG_ERROR_INVALID_ARGUMENT: the call was given something it cannot use: a malformed session id,
 *   a URL whose scheme is not http or https, an empty identifier, or a file that cannot be used
 * @BG_ERROR_CONFLICT: the identifier is already in use by a task with a different file
 * @BG_ERROR_BUSY: another process holds the task database
 * @BG_ERROR_STORE: the task database cannot be read or written; it may be corrupt or come from a
 *   newer version of bg-glib. The file is left as it was
 * @BG_ERROR_INTEGRITY: a downloaded file failed an integrity check
 * @BG_ERROR_NOT_FOUND: no task has the given identifier
 * @BG_ERROR_IO: reading or writing a local file failed
 * @BG_ERROR_PROTOCOL: the server's answer broke the HTTP rules the transfer depends on, such as
 *   a Content-Range that does not start where we asked
 * @BG_ERROR_TIMEOUT: no byte moved for longer than the stall timeout
 * @BG_ERROR_INSECURE_REDIRECT: an https request was redirected to plain http
 * @BG_ERROR_CLOSED: the downloader or uploader was closed with `close()`, or dropped, and takes
 *   no more calls; a wait that was pending when it closed ends with this error as well
 * @BG_ERROR_SERVICE: the app's transfer service (`bg-transferd`) could not be reached, or
 *   went away and could not be started again
 *
 * Error codes in the %BG_ERROR domain.
 */
typedef enum {
  BG_ERROR_INVALID_ARGUMENT,
  BG_ERROR_CONFLICT,
  BG_ERROR_BUSY,
  BG_ERROR_STORE,
  BG_ERROR_INTEGRITY,
  BG_ERROR_NOT_FOUND,
  BG_ERROR_IO,
  BG_ERROR_PROTOCOL,
  BG_ERROR_TIMEOUT,
  BG_ERROR_INSECURE_REDIRECT,
  BG_ERROR_CLOSED,
  BG_ERROR_SERVICE,
} BgError;

BG_AVAILABLE_IN_ALL
GQuark bg_error_quark (void);

G_END_DECLS
