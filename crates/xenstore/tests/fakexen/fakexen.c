/* fakexen: LD_PRELOAD shim that lets Debian 12's xenstored and oxenstored
 * (Xen 4.17) start without a hypervisor and serve only their Unix socket.
 *
 * - libxenctrl: xc_interface_open returns a dummy handle; only domain 0 exists.
 * - libxenevtchn: an eventfd that never fires; binds return fake ports.
 * - libxengnttab: opens fine, mapping fails (no other domain ever appears).
 * - open("/proc/xen/xsd_{port,kva}") goes to $FAKEXEN_DIR/xsd_{port,kva}.
 * - setrlimit(RLIMIT_NOFILE) is clamped to the current hard limit (oxenstored
 *   asks for fs.nr_open, which needs CAP_SYS_RESOURCE).
 *
 * Built by the test harness (tests/common/realxs.rs) with
 *   gcc -shared -fPIC -O2 -o fakexen.so fakexen.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

static int fake_handle;
static int never_fires = -1;

/* ---- libxenctrl ---- */
void *xc_interface_open(void *logger, void *dombuild_logger, unsigned flags)
{
    (void)logger; (void)dombuild_logger; (void)flags;
    return &fake_handle;
}
int xc_interface_close(void *xch) { (void)xch; return 0; }

/* Report dom0 only. Just the leading fields (domid, ssidref, flag bits) are
 * zeroed so the full xc_dominfo_t layout is not needed. */
int xc_domain_getinfo(void *xch, uint32_t first, unsigned max, void *info)
{
    (void)xch;
    if (first != 0 || max == 0)
        return 0;
    memset(info, 0, 16);
    return 1;
}

/* ---- libxengnttab ---- */
void *xengnttab_open(void *logger, unsigned flags) { (void)logger; (void)flags; return &fake_handle; }
int xengnttab_close(void *h) { (void)h; return 0; }
int xengnttab_set_max_grants(void *h, uint32_t n) { (void)h; (void)n; return 0; }
void *xengnttab_map_grant_ref(void *h, uint32_t dom, uint32_t ref, int prot)
{
    (void)h; (void)dom; (void)ref; (void)prot;
    errno = ENOSYS;
    return NULL;
}
int xengnttab_unmap(void *h, void *addr, uint32_t count) { (void)h; (void)addr; (void)count; return 0; }

/* ---- libxenevtchn ---- */
void *xenevtchn_open(void *logger, unsigned flags)
{
    (void)logger; (void)flags;
    if (never_fires < 0)
        never_fires = eventfd(0, 0);
    return &fake_handle;
}
void *xenevtchn_fdopen(void *logger, int fd, unsigned flags)
{
    (void)logger; (void)flags;
    never_fires = fd;
    return &fake_handle;
}
int xenevtchn_close(void *h) { (void)h; return 0; }
int xenevtchn_fd(void *h) { (void)h; return never_fires; }
int xenevtchn_bind_virq(void *h, unsigned virq) { (void)h; (void)virq; return 1; }
int xenevtchn_bind_interdomain(void *h, uint32_t dom, uint32_t port) { (void)h; (void)dom; (void)port; return 2; }
int xenevtchn_notify(void *h, uint32_t port) { (void)h; (void)port; return 0; }
int xenevtchn_pending(void *h) { (void)h; errno = EAGAIN; return -1; }
int xenevtchn_unmask(void *h, uint32_t port) { (void)h; (void)port; return 0; }
int xenevtchn_unbind(void *h, uint32_t port) { (void)h; (void)port; return 0; }

/* ---- /proc/xen/xsd_* redirection ---- */
static const char *redirect(const char *path, char *buf, size_t len)
{
    static const char prefix[] = "/proc/xen/";
    const char *dir = getenv("FAKEXEN_DIR");
    if (dir && strncmp(path, "/proc/xen/xsd_", 14) == 0) {
        snprintf(buf, len, "%s/%s", dir, path + sizeof(prefix) - 1);
        return buf;
    }
    return path;
}

int open(const char *path, int flags, ...)
{
    static int (*next_open)(const char *, int, ...);
    char buf[4096];
    mode_t mode = 0;
    if (flags & O_CREAT) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    if (!next_open)
        next_open = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open");
    return next_open(redirect(path, buf, sizeof buf), flags, mode);
}
int open64(const char *path, int flags, ...) __attribute__((alias("open")));

/* ---- RLIMIT_NOFILE clamp for oxenstored ---- */
int setrlimit(__rlimit_resource_t resource, const struct rlimit *rl)
{
    static int (*next_setrlimit)(__rlimit_resource_t, const struct rlimit *);
    if (!next_setrlimit)
        next_setrlimit = (int (*)(__rlimit_resource_t, const struct rlimit *))dlsym(RTLD_NEXT, "setrlimit");
    if (resource == RLIMIT_NOFILE) {
        struct rlimit cur, want = *rl;
        if (getrlimit(RLIMIT_NOFILE, &cur) == 0 && want.rlim_max > cur.rlim_max) {
            want.rlim_max = cur.rlim_max;
            if (want.rlim_cur > want.rlim_max)
                want.rlim_cur = want.rlim_max;
        }
        return next_setrlimit(resource, &want);
    }
    return next_setrlimit(resource, rl);
}
int setrlimit64(__rlimit_resource_t resource, const struct rlimit64 *rl) __attribute__((alias("setrlimit")));
