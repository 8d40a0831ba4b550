#include "init.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

bool init_is_pid1(void)
{
	return getpid() == 1;
}

/*
 * Is dir a mount point, by /proc/self/mountinfo (field 5)? By hand: sscanf would
 * pull musl's float scanner, some 9 KiB, into the static binary.
 */
static bool mounted(const char *dir)
{
	char line[4096];
	FILE *f = fopen("/proc/self/mountinfo", "re");
	bool found = false;
	size_t n = strlen(dir);

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		char *p = line;
		for (int field = 0; field < 4 && p; field++)
			if ((p = strchr(p, ' ')))
				p++;
		found = p && strncmp(p, dir, n) == 0 && p[n] == ' ';
	}
	fclose(f);
	return found;
}

static bool empty_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	bool empty = true;

	if (!d)
		return true; /* missing: made below */
	while (empty && (e = readdir(d)))
		empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
	closedir(d);
	return empty;
}

void init_mount(void)
{
	static const struct {
		const char *dir, *type, *data;
		unsigned long flags;
		bool only_empty;
	} fs[] = {
	    {"/proc", "proc", NULL, MS_NOSUID | MS_NODEV | MS_NOEXEC, false},
	    {"/sys", "sysfs", NULL, MS_NOSUID | MS_NODEV | MS_NOEXEC, false},
	    {"/dev", "devtmpfs", "mode=0755", MS_NOSUID, false},
	    {"/run", "tmpfs", "mode=0755", MS_NOSUID | MS_NODEV, true},
	    {"/tmp", "tmpfs", "mode=1777", MS_NOSUID | MS_NODEV, true},
	};

	for (size_t i = 0; i < sizeof(fs) / sizeof(fs[0]); i++) {
		/* /proc first: the others are checked against its mountinfo. */
		if (mounted(fs[i].dir))
			continue;
		if (fs[i].only_empty && !empty_dir(fs[i].dir)) {
			log_info(0, "init: %s is not empty: left as it is, not mounted over",
				 fs[i].dir);
			continue;
		}
		mkdir(fs[i].dir, 0755);
		if (mount(fs[i].type, fs[i].dir, fs[i].type, fs[i].flags, fs[i].data) == 0)
			log_info(0, "init: mounted %s on %s", fs[i].type, fs[i].dir);
		else if (errno != EBUSY)
			log_warn(0, "init: mount %s on %s: %s", fs[i].type, fs[i].dir,
				 strerror(errno));
	}
}

void init_poweroff(void)
{
	sync();
	reboot(RB_POWER_OFF);
}
