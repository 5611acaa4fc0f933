/* fake-monitors.h: a network monitor and a power-profile monitor that tests steer
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define BG_TYPE_FAKE_NETWORK_MONITOR (bg_fake_network_monitor_get_type ())
G_DECLARE_FINAL_TYPE (BgFakeNetworkMonitor, bg_fake_network_monitor, BG, FAKE_NETWORK_MONITOR,
                      GObject)

#define BG_TYPE_FAKE_POWER_MONITOR (bg_fake_power_monitor_get_type ())
G_DECLARE_FINAL_TYPE (BgFakePowerMonitor, bg_fake_power_monitor, BG, FAKE_POWER_MONITOR,
                      GObject)

BgFakeNetworkMonitor *bg_fake_network_monitor_new (void);
/* Offline also means unreachable: can_reach() answers FALSE while offline. */
void bg_fake_network_monitor_set_online  (BgFakeNetworkMonitor *self,
                                          gboolean              online);
void bg_fake_network_monitor_set_metered (BgFakeNetworkMonitor *self,
                                          gboolean              metered);

BgFakePowerMonitor *bg_fake_power_monitor_new (void);
void bg_fake_power_monitor_set_power_saver (BgFakePowerMonitor *self,
                                            gboolean            enabled);

G_END_DECLS
