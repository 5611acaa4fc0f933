/* bg-uploader-private.h
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include "bg-uploader.h"
#include "bg-engine-private.h"

G_BEGIN_DECLS

/* For tests: the engine behind the front end. */
BgEngine *bg_uploader_get_engine (BgUploader *self);

G_END_DECLS
