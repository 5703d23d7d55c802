/*
 * count_malloc.so — an LD_PRELOAD interposer that counts heap allocations.
 *
 * Counts every call to malloc, calloc, realloc, posix_memalign, aligned_alloc,
 * memalign, valloc, pvalloc and C++ operator new (and, separately, free and
 * operator delete) made by any thread of the process it is loaded into, and keeps
 * the counts in a small file mapped MAP_SHARED, so another process (the bench) reads
 * them at any moment with a plain read of that file: no signal, no cooperation from
 * the process being measured.
 *
 *   COUNT_MALLOC_FILE=/tmp/x/counts LD_PRELOAD=/path/count_malloc.so remora run ...
 *
 * The file holds struct counts below: 8 little-endian uint64 (see the field order).
 * Processes that fork (nginx master/worker) share one mapping, so the counts are
 * the sum over the processes.
 *
 * Correctness notes
 * - Threads: counters are C11 atomics (relaxed adds); the real functions are
 *   resolved once, and every thread that races to resolve them stores the same
 *   values (atomic pointer stores), so no lock is taken on the allocation path and
 *   nothing here can deadlock.
 * - dlsym(RTLD_NEXT) may itself call malloc/calloc (glibc's dlerror buffer). While
 *   a thread is inside our resolve() (a thread-local flag, initial-exec TLS so
 *   reading it never allocates), allocations are served from a static bootstrap
 *   buffer with a bump pointer; free() ignores pointers into that buffer and
 *   realloc() moves them to the real heap.
 * - C++ operator new is counted too, because a program linked with jemalloc (nghttpx)
 *   gets jemalloc's operator new, which never calls malloc. libstdc++'s operator new
 *   does call malloc: a thread-local flag, set while the next operator new runs
 *   (and cleared on unwinding, see -fexceptions in bench/run), keeps that malloc from
 *   being counted twice. Operator delete is handled the same way.
 * - Before the shared file is mapped (allocations made by the dynamic loader and
 *   early constructors), counts go to a static block and are copied in when the
 *   file is mapped, so the file's counts cover the whole life of the process.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct counts {
    _Atomic uint64_t malloc_calls;
    _Atomic uint64_t calloc_calls;
    _Atomic uint64_t realloc_calls;
    _Atomic uint64_t memalign_calls;   /* posix_memalign, aligned_alloc, memalign, valloc, pvalloc */
    _Atomic uint64_t new_calls;        /* C++ operator new / new[], every variant */
    _Atomic uint64_t free_calls;       /* free and C++ operator delete; free(NULL) not counted */
    _Atomic uint64_t bootstrap_bytes;  /* served from the bootstrap buffer */
    _Atomic uint64_t mapped;           /* 1 once the file is mapped */
};

static struct counts early;                    /* before the file is mapped */
static struct counts *_Atomic counts_ptr = &early;

static __thread int in_cxx __attribute__((tls_model("initial-exec")));

#define BUMP(field) atomic_fetch_add_explicit(&atomic_load_explicit(&counts_ptr, memory_order_acquire)->field, \
                                              1, memory_order_relaxed)
/* malloc & co. called from inside operator new/delete are already counted there */
#define COUNT(field) do { if (!in_cxx) BUMP(field); } while (0)

/* ---- the real functions */
static void *(*_Atomic real_malloc)(size_t);
static void *(*_Atomic real_calloc)(size_t, size_t);
static void *(*_Atomic real_realloc)(void *, size_t);
static void (*_Atomic real_free)(void *);

static int (*_Atomic real_posix_memalign)(void **, size_t, size_t);
static void *(*_Atomic real_aligned_alloc)(size_t, size_t);
static void *(*_Atomic real_memalign)(size_t, size_t);
static void *(*_Atomic real_valloc)(size_t);
static void *(*_Atomic real_pvalloc)(size_t);

/* C++ operator new/delete, the next definition after this library (libstdc++'s, or
   jemalloc's in a program linked with it); NULL when no loaded object defines one */
enum { NEW, NEW_ARR, NEW_NT, NEW_ARR_NT, NEW_AL, NEW_ARR_AL, NEW_AL_NT, NEW_ARR_AL_NT, N_NEW };
static const char *const new_names[N_NEW] = {
    "_Znwm", "_Znam", "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t",
    "_ZnwmSt11align_val_t", "_ZnamSt11align_val_t",
    "_ZnwmSt11align_val_tRKSt9nothrow_t", "_ZnamSt11align_val_tRKSt9nothrow_t"};
static void *_Atomic real_new[N_NEW];
enum { DEL, DEL_ARR, DEL_SZ, DEL_ARR_SZ, DEL_AL, DEL_ARR_AL, DEL_SZ_AL, DEL_ARR_SZ_AL, DEL_NT, DEL_ARR_NT, N_DEL };
static const char *const del_names[N_DEL] = {
    "_ZdlPv", "_ZdaPv", "_ZdlPvm", "_ZdaPvm", "_ZdlPvSt11align_val_t", "_ZdaPvSt11align_val_t",
    "_ZdlPvmSt11align_val_t", "_ZdaPvmSt11align_val_t", "_ZdlPvRKSt9nothrow_t", "_ZdaPvRKSt9nothrow_t"};
static void *_Atomic real_del[N_DEL];

static __thread int in_resolve __attribute__((tls_model("initial-exec")));

/* ---- bootstrap buffer for allocations made while dlsym runs */
#define BOOT_SIZE (64 * 1024)
static _Alignas(64) unsigned char boot_buf[BOOT_SIZE];
static _Atomic size_t boot_used;

static int is_boot(const void *p) {
    return (const unsigned char *)p >= boot_buf && (const unsigned char *)p < boot_buf + BOOT_SIZE;
}

/* 16-byte header holding the size, then the block (16-byte aligned) */
static void *boot_alloc(size_t n, size_t align) {
    if (align < 16) align = 16;
    size_t need = n + 16 + align;
    size_t off = atomic_fetch_add(&boot_used, need);
    if (off + need > BOOT_SIZE) return NULL;
    uintptr_t base = (uintptr_t)(boot_buf + off + 16);
    uintptr_t p = (base + align - 1) & ~(uintptr_t)(align - 1);
    ((size_t *)p)[-1] = n;   /* p - 8 is inside this block's reservation */
    atomic_fetch_add_explicit(&atomic_load(&counts_ptr)->bootstrap_bytes, n, memory_order_relaxed);
    return (void *)p;        /* zeroed: a static buffer never handed out twice */
}

static void resolve(void) {
    if (atomic_load_explicit(&real_free, memory_order_acquire)) return;
    in_resolve = 1;
    atomic_store(&real_malloc, dlsym(RTLD_NEXT, "malloc"));
    atomic_store(&real_calloc, dlsym(RTLD_NEXT, "calloc"));
    atomic_store(&real_realloc, dlsym(RTLD_NEXT, "realloc"));
    atomic_store(&real_posix_memalign, dlsym(RTLD_NEXT, "posix_memalign"));
    atomic_store(&real_aligned_alloc, dlsym(RTLD_NEXT, "aligned_alloc"));
    atomic_store(&real_memalign, dlsym(RTLD_NEXT, "memalign"));
    atomic_store(&real_valloc, dlsym(RTLD_NEXT, "valloc"));
    atomic_store(&real_pvalloc, dlsym(RTLD_NEXT, "pvalloc"));
    for (int i = 0; i < N_NEW; i++) atomic_store(&real_new[i], dlsym(RTLD_NEXT, new_names[i]));
    for (int i = 0; i < N_DEL; i++) atomic_store(&real_del[i], dlsym(RTLD_NEXT, del_names[i]));
    atomic_store_explicit(&real_free, dlsym(RTLD_NEXT, "free"), memory_order_release);
    in_resolve = 0;
}

/* 1 when the real functions can be called; 0 while this thread is inside resolve()
   (then the caller serves the request from the bootstrap buffer). */
static inline int ready(void) {
    if (atomic_load_explicit(&real_free, memory_order_acquire)) return 1;
    if (in_resolve) return 0;
    resolve();
    return 1;
}

static size_t boot_size(const void *p) { return ((const size_t *)p)[-1]; }

/* ---- the interposed functions */
void *malloc(size_t n) {
    if (!ready()) return boot_alloc(n, 16);
    COUNT(malloc_calls);
    return real_malloc(n);
}

void *calloc(size_t k, size_t n) {
    if (!ready()) return (n && k > SIZE_MAX / n) ? NULL : boot_alloc(k * n, 16);
    COUNT(calloc_calls);
    return real_calloc(k, n);
}

void *realloc(void *p, size_t n) {
    if (!ready()) {                 /* inside resolve(): p is NULL or a bootstrap block */
        void *q = boot_alloc(n, 16);
        if (q && p) memcpy(q, p, boot_size(p) < n ? boot_size(p) : n);
        return q;
    }
    COUNT(realloc_calls);
    if (p && is_boot(p)) {          /* a bootstrap block never grows in place: move it */
        void *q = real_malloc(n);
        if (q) memcpy(q, p, boot_size(p) < n ? boot_size(p) : n);
        return q;
    }
    return real_realloc(p, n);
}

void free(void *p) {
    if (!p || is_boot(p)) return;   /* bootstrap blocks are never reused */
    if (!ready()) return;           /* cannot happen: no real block exists before resolve() */
    COUNT(free_calls);
    real_free(p);
}

int posix_memalign(void **out, size_t align, size_t n) {
    if (!ready()) { *out = boot_alloc(n, align); return *out ? 0 : ENOMEM; }
    COUNT(memalign_calls);
    return real_posix_memalign(out, align, n);
}

void *aligned_alloc(size_t align, size_t n) {
    if (!ready()) return boot_alloc(n, align);
    COUNT(memalign_calls);
    return real_aligned_alloc(align, n);
}

void *memalign(size_t align, size_t n) {
    if (!ready()) return boot_alloc(n, align);
    COUNT(memalign_calls);
    return real_memalign(align, n);
}

void *valloc(size_t n) {
    if (!ready()) return boot_alloc(n, 4096);
    COUNT(memalign_calls);
    return real_valloc(n);
}

void *pvalloc(size_t n) {
    if (!ready()) return boot_alloc((n + 4095) & ~(size_t)4095, 4096);
    COUNT(memalign_calls);
    return real_pvalloc(n);
}

/* ---- C++ operator new and delete (Itanium ABI names; size_t is unsigned long here).
   Each forwards to the next definition with the flag set; `guard` clears it when the
   call returns or unwinds (bad_alloc). Without a next definition, which happens only
   if a program calls operator new with no C++ runtime loaded, malloc/free stand in. */
static void leave_cxx(int *prev) { in_cxx = *prev; }
#define CXX_GUARD int guard __attribute__((cleanup(leave_cxx))) = in_cxx; in_cxx = 1

#define NEW_FN(sym, idx, params, args, fallback_size)                          \
    void *sym params {                                                         \
        if (!ready()) return boot_alloc(fallback_size, 16);                    \
        COUNT(new_calls);                                                      \
        void *fn = atomic_load_explicit(&real_new[idx], memory_order_relaxed); \
        if (!fn) return real_malloc(fallback_size);                            \
        CXX_GUARD;                                                             \
        return ((void *(*) params)fn) args;                                    \
    }
typedef struct { char c; } nothrow_t_;  /* std::nothrow_t: passed by reference */
NEW_FN(_Znwm, NEW, (size_t n), (n), n)
NEW_FN(_Znam, NEW_ARR, (size_t n), (n), n)
NEW_FN(_ZnwmRKSt9nothrow_t, NEW_NT, (size_t n, const nothrow_t_ *t), (n, t), n)
NEW_FN(_ZnamRKSt9nothrow_t, NEW_ARR_NT, (size_t n, const nothrow_t_ *t), (n, t), n)
NEW_FN(_ZnwmSt11align_val_t, NEW_AL, (size_t n, size_t al), (n, al), n)
NEW_FN(_ZnamSt11align_val_t, NEW_ARR_AL, (size_t n, size_t al), (n, al), n)
NEW_FN(_ZnwmSt11align_val_tRKSt9nothrow_t, NEW_AL_NT, (size_t n, size_t al, const nothrow_t_ *t), (n, al, t), n)
NEW_FN(_ZnamSt11align_val_tRKSt9nothrow_t, NEW_ARR_AL_NT, (size_t n, size_t al, const nothrow_t_ *t), (n, al, t), n)

#define DEL_FN(sym, idx, params, args)                                         \
    void sym params {                                                          \
        if (!p || is_boot(p) || !ready()) return;                              \
        COUNT(free_calls);                                                     \
        void *fn = atomic_load_explicit(&real_del[idx], memory_order_relaxed); \
        if (!fn) { real_free(p); return; }                                     \
        CXX_GUARD;                                                             \
        ((void (*) params)fn) args;                                            \
    }
DEL_FN(_ZdlPv, DEL, (void *p), (p))
DEL_FN(_ZdaPv, DEL_ARR, (void *p), (p))
DEL_FN(_ZdlPvm, DEL_SZ, (void *p, size_t n), (p, n))
DEL_FN(_ZdaPvm, DEL_ARR_SZ, (void *p, size_t n), (p, n))
DEL_FN(_ZdlPvSt11align_val_t, DEL_AL, (void *p, size_t al), (p, al))
DEL_FN(_ZdaPvSt11align_val_t, DEL_ARR_AL, (void *p, size_t al), (p, al))
DEL_FN(_ZdlPvmSt11align_val_t, DEL_SZ_AL, (void *p, size_t n, size_t al), (p, n, al))
DEL_FN(_ZdaPvmSt11align_val_t, DEL_ARR_SZ_AL, (void *p, size_t n, size_t al), (p, n, al))
DEL_FN(_ZdlPvRKSt9nothrow_t, DEL_NT, (void *p, const nothrow_t_ *t), (p, t))
DEL_FN(_ZdaPvRKSt9nothrow_t, DEL_ARR_NT, (void *p, const nothrow_t_ *t), (p, t))

/* ---- map the counters file (no allocation here: open/ftruncate/mmap only) */
__attribute__((constructor(101))) static void count_malloc_init(void) {
    resolve();
    const char *path = getenv("COUNT_MALLOC_FILE");
    if (!path || !*path) return;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return;
    if (ftruncate(fd, sizeof(struct counts)) != 0) { close(fd); return; }
    struct counts *c = mmap(NULL, sizeof(struct counts), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (c == MAP_FAILED) return;
    /* carry over what was counted so far; counts made between these loads and the
       pointer switch land in `early` and are lost (a handful at start-up at most) */
    atomic_store(&c->malloc_calls, atomic_load(&early.malloc_calls));
    atomic_store(&c->calloc_calls, atomic_load(&early.calloc_calls));
    atomic_store(&c->realloc_calls, atomic_load(&early.realloc_calls));
    atomic_store(&c->memalign_calls, atomic_load(&early.memalign_calls));
    atomic_store(&c->new_calls, atomic_load(&early.new_calls));
    atomic_store(&c->free_calls, atomic_load(&early.free_calls));
    atomic_store(&c->bootstrap_bytes, atomic_load(&early.bootstrap_bytes));
    atomic_store(&c->mapped, 1);
    atomic_store_explicit(&counts_ptr, c, memory_order_release);
}
