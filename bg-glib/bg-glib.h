/* bg-glib.h: durable background HTTP transfers
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#define BG_GLIB_INSIDE

#include "bg-version-macros.h"
#include "bg-version.h"
#include "bg-error.h"
#include "bg-enums.h"
#include "bg-response.h"
#include "bg-task.h"
#include "bg-task-options.h"
#include "bg-task-queue.h"
#include "bg-downloader.h"
#include "bg-uploader.h"

#undef BG_GLIB_INSIDE
