/* notify: a thin wrapper over libsystemd's sd_notify. */
#include "notify.h"

#include "log.h"

#include <string.h>
#include <systemd/sd-daemon.h>

void notify(const struct log *lg, const char *state)
{
	int r = sd_notify(0, state);

	if (r < 0)
		log_warn(lg, "sd_notify: %s", strerror(-r));
}
