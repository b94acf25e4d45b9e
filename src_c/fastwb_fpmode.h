/* Flush-to-zero and denormals-are-zero for the duration of one compiled call.
 *
 * An operation on a subnormal float costs on the order of a hundred cycles on
 * Intel CPUs (a microcode assist), and Adam's moments of parameters whose
 * gradient is exactly zero decay into that range. fwb_fp_enter(flush) sets
 * FTZ|DAZ (x86 MXCSR bits 15 and 6; AArch64 FPCR.FZ) in the calling thread and
 * returns the caller's control word; fwb_fp_exit(saved) puts back its control
 * bits and keeps the exception flags the call raised, as a library routine
 * that never touched the mode would. Elsewhere these are no-ops.
 *
 * fwb_fp_adopt(word) gives a helper thread the control bits of the call it
 * works for; fwb_omp_fp_enter/exit do the same for OpenMP's workers, saving
 * and restoring each worker's own word, since libgomp's threads are shared
 * with every other OpenMP user in the process. */
#ifndef FASTWB_FPMODE_H
#define FASTWB_FPMODE_H

#include <stdint.h>

#if defined(__SSE2__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 2)
#include <xmmintrin.h>
#define FWB_FP_FLUSH 0x8040u          /* FTZ (bit 15) | DAZ (bit 6) */
#define FWB_FP_FLAGS 0x003Fu          /* sticky exception flags */
typedef unsigned int fwb_fp_word;
static inline fwb_fp_word fwb_fp_get(void) { return _mm_getcsr(); }
static inline void fwb_fp_put(fwb_fp_word w) { _mm_setcsr(w); }
#elif defined(__aarch64__)
#define FWB_FP_FLUSH ((uint64_t)1 << 24)   /* FPCR.FZ: inputs and outputs */
#define FWB_FP_FLAGS 0u                    /* flags live in FPSR, not FPCR */
typedef uint64_t fwb_fp_word;
static inline fwb_fp_word fwb_fp_get(void) {
    uint64_t w;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(w));
    return w;
}
static inline void fwb_fp_put(fwb_fp_word w) { __asm__ __volatile__("msr fpcr, %0" : : "r"(w)); }
#else
#define FWB_FP_FLUSH 0u
#define FWB_FP_FLAGS 0u
typedef unsigned int fwb_fp_word;
static inline fwb_fp_word fwb_fp_get(void) { return 0; }
static inline void fwb_fp_put(fwb_fp_word w) { (void)w; }
#endif

/* Whether this build can flush denormals at all. */
static inline int fwb_fp_can_flush(void) { return FWB_FP_FLUSH != 0; }

/* The current word's flush bits, for tests: nonzero when flushing. */
static inline unsigned long long fwb_fp_flushing(void) {
    return (unsigned long long)(fwb_fp_get() & FWB_FP_FLUSH);
}

static inline fwb_fp_word fwb_fp_enter(int flush) {
    fwb_fp_word saved = fwb_fp_get();
    if (flush && (saved & FWB_FP_FLUSH) != FWB_FP_FLUSH)
        fwb_fp_put(saved | FWB_FP_FLUSH);
    return saved;
}

static inline void fwb_fp_exit(fwb_fp_word saved) {
    fwb_fp_word now = fwb_fp_get();
    fwb_fp_word back = (saved & ~(fwb_fp_word)FWB_FP_FLAGS) | (now & FWB_FP_FLAGS);
    if (back != now)
        fwb_fp_put(back);
}

/* Set or clear the flush bits of this thread's word (tests play a caller). */
static inline void fwb_fp_set_flushing(int flush) {
    fwb_fp_word w = fwb_fp_get();
    fwb_fp_put(flush ? (w | FWB_FP_FLUSH) : (w & ~(fwb_fp_word)FWB_FP_FLUSH));
}

/* A helper thread takes the control bits of `word`, keeping its own flags. */
static inline void fwb_fp_adopt(fwb_fp_word word) {
    fwb_fp_word now = fwb_fp_get();
    fwb_fp_word want = (word & ~(fwb_fp_word)FWB_FP_FLAGS) | (now & FWB_FP_FLAGS);
    if (want != now)
        fwb_fp_put(want);
}

#ifdef _OPENMP
#include <omp.h>
#if defined(_MSC_VER)
#define FWB_THREAD_LOCAL __declspec(thread)
#else
#define FWB_THREAD_LOCAL __thread
#endif
static FWB_THREAD_LOCAL fwb_fp_word fwb_omp_own;     /* a worker's word before it adopted */
static FWB_THREAD_LOCAL int fwb_omp_adopted;

/* Give the OpenMP workers of a team of `threads` the caller's control bits. */
static inline void fwb_omp_fp_enter(int threads) {
    fwb_fp_word word = fwb_fp_get();
    #pragma omp parallel num_threads(threads)
    {
        if (omp_get_thread_num() > 0 && !fwb_omp_adopted) {
            fwb_omp_own = fwb_fp_get();
            fwb_omp_adopted = 1;
            fwb_fp_adopt(word);
        }
    }
}

/* Give them back their own. */
static inline void fwb_omp_fp_exit(int threads) {
    #pragma omp parallel num_threads(threads)
    {
        if (fwb_omp_adopted) {
            fwb_fp_adopt(fwb_omp_own);
            fwb_omp_adopted = 0;
        }
    }
}
#else
static inline void fwb_omp_fp_enter(int threads) { (void)threads; }
static inline void fwb_omp_fp_exit(int threads) { (void)threads; }
#endif

#endif
