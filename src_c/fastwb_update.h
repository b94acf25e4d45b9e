/* The plain Adam update, compiled twice where the toolchain can: for AVX2 and
 * for the baseline x86-64 (SSE2), picked at load time by the CPU (GCC's
 * target_clones). Wheels stay portable, and AVX2 machines do the division and
 * square root of the update eight floats at a time instead of four.
 *
 * Results are the same bits on either clone: every operation is elementwise
 * and correctly rounded, and AVX2 alone does not allow fused multiply-adds. */
#ifndef FASTWB_UPDATE_H
#define FASTWB_UPDATE_H

#include <math.h>
#include <stddef.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && !defined(__SANITIZE_ADDRESS__)
#define FWB_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define FWB_CLONES
#endif

/* With the L2 penalty's gradient g + l2x2 p (l2x2 = 0 without one):
 * m <- beta1 m + c1 g;  v <- beta2 v + c2 g^2;  p <- p - step_size m / (sqrt(v) bias2 + eps) */
FWB_CLONES static void fwb_adam_f(float *restrict p, const float *restrict g, float *restrict m,
                                  float *restrict v, ptrdiff_t n, float beta1, float beta2,
                                  float c1, float c2, float eps, float step_size, float bias2,
                                  float l2x2) {
    for (ptrdiff_t i = 0; i < n; i++) {
        float gi = g[i] + l2x2 * p[i];
        m[i] = beta1 * m[i] + c1 * gi;
        v[i] = beta2 * v[i] + c2 * gi * gi;
        p[i] = p[i] - step_size * m[i] / (sqrtf(v[i]) * bias2 + eps);
    }
}

FWB_CLONES static void fwb_adam_d(double *restrict p, const double *restrict g, double *restrict m,
                                  double *restrict v, ptrdiff_t n, double beta1, double beta2,
                                  double c1, double c2, double eps, double step_size,
                                  double bias2, double l2x2) {
    for (ptrdiff_t i = 0; i < n; i++) {
        double gi = g[i] + l2x2 * p[i];
        m[i] = beta1 * m[i] + c1 * gi;
        v[i] = beta2 * v[i] + c2 * gi * gi;
        p[i] = p[i] - step_size * m[i] / (sqrt(v[i]) * bias2 + eps);
    }
}

#endif
