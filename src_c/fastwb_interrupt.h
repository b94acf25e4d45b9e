/* Ctrl-C inside compiled training loops.
 *
 * fit runs whole epochs without the GIL, where Python's own SIGINT handler
 * cannot run its Python-level handler. While an epoch runs, this handler
 * replaces it and only raises a flag; the loop checks the flag at every batch
 * boundary and stops there, so the network is never left mid-update. The
 * caller restores Python's handler exactly as it was (sigaction, so flags
 * such as "no SA_RESTART" survive) and re-raises the signal. */
#ifndef FASTWB_INTERRUPT_H
#define FASTWB_INTERRUPT_H

#include <signal.h>

static volatile sig_atomic_t fwb_interrupted = 0;

static void fwb_on_sigint(int sig) {
    (void)sig;
    fwb_interrupted = 1;
}

#ifdef _WIN32
static void (*fwb_saved_handler)(int) = SIG_DFL;

/* Take over SIGINT; returns 0 when the handler could not be installed. */
static inline int fwb_catch_sigint(void) {
    fwb_interrupted = 0;
    void (*previous)(int) = signal(SIGINT, fwb_on_sigint);
    if (previous == SIG_ERR)
        return 0;
    fwb_saved_handler = previous;
    return 1;
}

static inline void fwb_restore_sigint(void) { signal(SIGINT, fwb_saved_handler); }
#else
static struct sigaction fwb_saved_action;

/* The flag is cleared before the handler goes in: a SIGINT delivered on the
 * way out of sigaction runs the new handler, and clearing after it would lose it. */
static inline int fwb_catch_sigint(void) {
    struct sigaction action;
    action.sa_handler = fwb_on_sigint;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;
    fwb_interrupted = 0;
    return sigaction(SIGINT, &action, &fwb_saved_action) == 0;
}

static inline void fwb_restore_sigint(void) { sigaction(SIGINT, &fwb_saved_action, NULL); }
#endif

/* Give SIGINT back; returns whether it arrived meanwhile (and forgets it). */
static inline int fwb_release_sigint(void) {
    fwb_restore_sigint();
    int arrived = fwb_interrupted;
    fwb_interrupted = 0;
    return arrived;
}

static inline int fwb_interrupt_pending(void) { return fwb_interrupted; }

#endif
