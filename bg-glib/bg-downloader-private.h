/* bg-downloader-private.h
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include "bg-downloader.h"
#include "bg-task-queue-private.h"

G_BEGIN_DECLS

/* For tests: the engine behind the front end. */
#define bg_downloader_get_engine(self) bg_task_queue_get_engine (BG_TASK_QUEUE (self))

G_END_DECLS
