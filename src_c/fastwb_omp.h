/* OpenMP entry points with serial stand-ins, so the extension builds and runs
 * on compilers without OpenMP (or with FASTWB_NO_OPENMP=1). */
#ifndef FASTWB_OMP_H
#define FASTWB_OMP_H

#ifdef _OPENMP
#include <omp.h>
static inline int fwb_openmp_enabled(void) { return 1; }
#else
static inline int omp_get_max_threads(void) { return 1; }
static inline int fwb_openmp_enabled(void) { return 0; }
#endif

#endif
