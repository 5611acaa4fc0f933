/* bg-downloader-private.h
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include "bg-downloader.h"
#include "bg-engine-private.h"

G_BEGIN_DECLS

/* For tests: the engine behind the front end. */
BgEngine *bg_downloader_get_engine (BgDownloader *self);

G_END_DECLS
