/* The hot elementwise kernels, compiled once per SIMD level and float type.
 *
 * No include guard: fastwb_simd.h includes this file once for each (level,
 * type), having defined
 *   FWB_T       float or double
 *   FWB_FN(x)   x with the level's and the type's suffix, e.g. bias_act_f_avx2
 *   FWB_ATTR    the level's target attribute (empty for the baseline)
 *   FWB_EXP0, FWB_EXP, FWB_EXPM1, FWB_SIGMOID, FWB_TANH, FWB_SOFTPLUS, FWB_ERFC,
 *   FWB_SQRT, FWB_FABS   the type's math (FWB_EXP0 and FWB_EXPM1 of x <= 0 only)
 *   FWB_BITS, FWB_EXP_MASK   an unsigned integer as wide as FWB_T, and the
 *               mask of its exponent field
 *
 * Every clone is the same source compiled without value-changing options
 * (setup.py passes -ffp-contract=off, so no multiply-add is fused even where
 * the level has FMA): each operation is correctly rounded IEEE arithmetic in
 * the same order, so every level gives the same bits. Sums stay in source
 * order (the compiler may not reassociate them without -ffast-math). */

/* z = f(z + b) on `rows` rows of m; act is one of FWB_ACT_*. With pre (not
 * NULL, laid out like z), gelu and swish also keep z + b there for derivative. */
FWB_ATTR static void FWB_FN(bias_act)(FWB_T *FWB_RESTRICT z, const FWB_T *FWB_RESTRICT b, ptrdiff_t rows,
                                      ptrdiff_t m, int act, FWB_T slope, FWB_T *FWB_RESTRICT pre) {
    const FWB_T lambda = (FWB_T)FWB_SELU_LAMBDA;
    const FWB_T lambda_alpha = (FWB_T)(FWB_SELU_LAMBDA * FWB_SELU_ALPHA);
    /* the branch outside the loops, so each loop vectorises */
    for (ptrdiff_t i = 0; i < rows; i++, z += m) {
        switch (act) {
        case FWB_ACT_IDENTITY:
            for (ptrdiff_t j = 0; j < m; j++) z[j] = z[j] + b[j];
            break;
        case FWB_ACT_RELU:
            for (ptrdiff_t j = 0; j < m; j++) {
                FWB_T v = z[j] + b[j];
                z[j] = v < 0 ? 0 : v;                    /* NaN propagates, as np.maximum */
            }
            break;
        case FWB_ACT_LEAKY_RELU:
            for (ptrdiff_t j = 0; j < m; j++) {
                FWB_T v = z[j] + b[j];
                z[j] = v < 0 ? slope * v : v;
            }
            break;
        case FWB_ACT_SIGMOID:
            for (ptrdiff_t j = 0; j < m; j++) z[j] = FWB_SIGMOID(z[j] + b[j]);
            break;
        case FWB_ACT_TANH:
            for (ptrdiff_t j = 0; j < m; j++) z[j] = FWB_TANH(z[j] + b[j]);
            break;
        case FWB_ACT_EXP:                   /* the Poisson loss's mean (log link) */
            for (ptrdiff_t j = 0; j < m; j++) z[j] = FWB_EXP(z[j] + b[j]);
            break;
        case FWB_ACT_ELU:                                /* v <= 0 keeps NaN (not 0 < v) */
            for (ptrdiff_t j = 0; j < m; j++) {
                FWB_T v = z[j] + b[j];
                FWB_T e = FWB_EXPM1(v < 0 ? v : 0);
                z[j] = v <= 0 ? e : v;
            }
            break;
        case FWB_ACT_SELU:
            for (ptrdiff_t j = 0; j < m; j++) {
                FWB_T v = z[j] + b[j];
                FWB_T e = FWB_EXPM1(v < 0 ? v : 0);
                z[j] = v <= 0 ? lambda_alpha * e : lambda * v;
            }
            break;
        case FWB_ACT_SOFTPLUS:
            for (ptrdiff_t j = 0; j < m; j++) z[j] = FWB_SOFTPLUS(z[j] + b[j]);
            break;
        case FWB_ACT_GELU:                      /* z Phi(z), Phi(z) = erfc(-z / sqrt 2) / 2 */
            if (pre != NULL)
                for (ptrdiff_t j = 0; j < m; j++) {
                    FWB_T v = z[j] + b[j];
                    pre[i * m + j] = v;
                    z[j] = v * ((FWB_T)0.5 * FWB_ERFC(v * -(FWB_T)M_SQRT1_2));
                }
            else
                for (ptrdiff_t j = 0; j < m; j++) {
                    FWB_T v = z[j] + b[j];
                    z[j] = v * ((FWB_T)0.5 * FWB_ERFC(v * -(FWB_T)M_SQRT1_2));
                }
            break;
        case FWB_ACT_SWISH:
            if (pre != NULL)
                for (ptrdiff_t j = 0; j < m; j++) {
                    FWB_T v = z[j] + b[j];
                    pre[i * m + j] = v;
                    z[j] = v * FWB_SIGMOID(v);
                }
            else
                for (ptrdiff_t j = 0; j < m; j++) {
                    FWB_T v = z[j] + b[j];
                    z[j] = v * FWB_SIGMOID(v);
                }
            break;
        default: {                                       /* FWB_ACT_SOFTMAX */
            FWB_T top;
            double total = 0;
            for (ptrdiff_t j = 0; j < m; j++) z[j] = z[j] + b[j];
            top = z[0];
            for (ptrdiff_t j = 1; j < m; j++)
                if (z[j] > top) top = z[j];
            for (ptrdiff_t j = 0; j < m; j++) z[j] = FWB_EXP0(z[j] - top);
            for (ptrdiff_t j = 0; j < m; j++) total += z[j];
            FWB_T inv = (FWB_T)(1.0 / total);
            for (ptrdiff_t j = 0; j < m; j++) z[j] = z[j] * inv;
        }
        }
    }
}

/* d *= f'(z) over n elements, f' written through the activation f(z) = a * a_scale,
 * except for gelu and swish, whose f' needs z itself: the pre-activations
 * bias_act kept (z is unused, and may be NULL, for the others). With keep
 * (dropout masks), first d = keep ? d * inv : 0; then a is the stored output
 * after dropout and a_scale = 1 - rate (a dropped unit's a = 0 gives a finite
 * f', and its d is 0 already). */
FWB_ATTR static void FWB_FN(derivative)(FWB_T *FWB_RESTRICT d, const FWB_T *FWB_RESTRICT a,
                                        const FWB_T *FWB_RESTRICT z,
                                        const unsigned char *FWB_RESTRICT keep, ptrdiff_t n, int act,
                                        FWB_T a_scale, FWB_T inv, FWB_T slope) {
    const FWB_T lambda = (FWB_T)FWB_SELU_LAMBDA;
    const FWB_T lambda_alpha = (FWB_T)(FWB_SELU_LAMBDA * FWB_SELU_ALPHA);
    if (keep != NULL)
        for (ptrdiff_t i = 0; i < n; i++) d[i] = keep[i] ? d[i] * inv : 0;
    switch (act) {
    case FWB_ACT_RELU:
        for (ptrdiff_t i = 0; i < n; i++) d[i] = a[i] > 0 ? d[i] : 0;
        break;
    case FWB_ACT_LEAKY_RELU:
        for (ptrdiff_t i = 0; i < n; i++) d[i] = a[i] > 0 ? d[i] : slope * d[i];
        break;
    case FWB_ACT_SIGMOID:
        for (ptrdiff_t i = 0; i < n; i++) {
            FWB_T f = a[i] * a_scale;
            d[i] = d[i] * f * (1 - f);
        }
        break;
    case FWB_ACT_TANH:
        for (ptrdiff_t i = 0; i < n; i++) {
            FWB_T f = a[i] * a_scale;
            d[i] = d[i] * (1 - f * f);
        }
        break;
    case FWB_ACT_ELU:                                    /* f' = e^z = f + 1 for z <= 0 */
        for (ptrdiff_t i = 0; i < n; i++) {
            FWB_T f = a[i] * a_scale;
            d[i] = f > 0 ? d[i] : d[i] * (f + 1);
        }
        break;
    case FWB_ACT_SELU:                          /* f' = lambda alpha e^z = f + lambda alpha */
        for (ptrdiff_t i = 0; i < n; i++) {
            FWB_T f = a[i] * a_scale;
            d[i] = d[i] * (f > 0 ? lambda : f + lambda_alpha);
        }
        break;
    case FWB_ACT_SOFTPLUS:                               /* f' = sigmoid(z) = 1 - e^-f, f >= 0 */
        for (ptrdiff_t i = 0; i < n; i++) d[i] = d[i] * -FWB_EXPM1(-(a[i] * a_scale));
        break;
    case FWB_ACT_GELU:                                   /* f' = Phi(z) + z phi(z) */
        for (ptrdiff_t i = 0; i < n; i++) {
            FWB_T v = z[i];
            FWB_T cdf = (FWB_T)0.5 * FWB_ERFC(v * -(FWB_T)M_SQRT1_2);
            FWB_T pdf = FWB_EXP0((FWB_T)-0.5 * v * v) * (FWB_T)FWB_INV_SQRT_2PI;
            d[i] = d[i] * (cdf + v * pdf);
        }
        break;
    case FWB_ACT_SWISH:                         /* f' = s (1 + z (1 - s)), s = sigmoid(z) */
        for (ptrdiff_t i = 0; i < n; i++) {
            FWB_T v = z[i];
            FWB_T sig = FWB_SIGMOID(v);
            d[i] = d[i] * (sig * (1 + v * (1 - sig)));
        }
        break;
    default:                                             /* identity: f' = 1 */
        break;
    }
}

/* The gradient an optimizer sees: loss gradient + penalty gradient, clipped to
 * [-clip, clip] (clip = inf when off), times the norm-clip scale. */
FWB_ATTR static inline FWB_T FWB_FN(effective)(FWB_T g, FWB_T p, FWB_T l1, FWB_T l2x2, FWB_T clip,
                                               FWB_T scale) {
    g = g + l2x2 * p + l1 * ((FWB_T)(p > 0) - (FWB_T)(p < 0));
    g = g > clip ? clip : g;
    g = g < -clip ? -clip : g;
    return g * scale;
}
#define FWB_EFFECTIVE(g, p) FWB_FN(effective)((g), (p), l1, l2x2, clip, scale)

/* One optimizer step on n parameters p with gradients g and state s1, s2 (see fwb_rule). */
FWB_ATTR static void FWB_FN(update)(const fwb_rule *r, FWB_T *FWB_RESTRICT p, const FWB_T *FWB_RESTRICT g,
                                    FWB_T *FWB_RESTRICT s1, FWB_T *FWB_RESTRICT s2, ptrdiff_t n) {
    const FWB_T l1 = (FWB_T)r->l1, l2x2 = (FWB_T)r->l2x2, clip = (FWB_T)r->clip;
    const FWB_T scale = (FWB_T)r->scale, lr = (FWB_T)r->lr, decay = (FWB_T)r->decay_mult;
    const FWB_T c1 = (FWB_T)r->c1, c2 = (FWB_T)r->c2, mu = (FWB_T)r->mu, eps = (FWB_T)r->eps;
    switch (r->kind) {
    case FWB_OPT_SGD:
        if (!r->momentum) {
            for (ptrdiff_t i = 0; i < n; i++) p[i] = p[i] * decay - lr * FWB_EFFECTIVE(g[i], p[i]);
        } else if (r->nesterov) {
            for (ptrdiff_t i = 0; i < n; i++) {
                FWB_T gi = FWB_EFFECTIVE(g[i], p[i]);
                s1[i] = mu * s1[i] + gi;
                p[i] = p[i] * decay - lr * (gi + mu * s1[i]);
            }
        } else {
            for (ptrdiff_t i = 0; i < n; i++) {
                FWB_T gi = FWB_EFFECTIVE(g[i], p[i]);
                s1[i] = mu * s1[i] + gi;
                p[i] = p[i] * decay - lr * s1[i];
            }
        }
        break;
    case FWB_OPT_RMSPROP:                                /* c1 = rho, c2 = 1 - rho */
        for (ptrdiff_t i = 0; i < n; i++) {
            FWB_T gi = FWB_EFFECTIVE(g[i], p[i]);
            s1[i] = c1 * s1[i] + c2 * gi * gi;
            p[i] = p[i] * decay - lr * gi / (FWB_SQRT(s1[i]) + eps);
        }
        break;
    case FWB_OPT_ADAGRAD:
        for (ptrdiff_t i = 0; i < n; i++) {
            FWB_T gi = FWB_EFFECTIVE(g[i], p[i]);
            s1[i] = s1[i] + gi * gi;
            p[i] = p[i] * decay - lr * gi / (FWB_SQRT(s1[i]) + eps);
        }
        break;
    default: {     /* FWB_OPT_ADAM, PyTorch's form: c1 = 1 - beta1, c2 = 1 - beta2, mu = beta1 */
        const FWB_T beta2 = (FWB_T)r->beta2, step_size = (FWB_T)r->step_size;
        const FWB_T bias2 = (FWB_T)r->bias2;
        if (l1 == 0 && clip == (FWB_T)INFINITY && scale == 1 && decay == 1) {
            /* the common case, at most an L2 penalty: fewer operations, the same values */
            for (ptrdiff_t i = 0; i < n; i++) {
                FWB_T gi = g[i] + l2x2 * p[i];
                s1[i] = mu * s1[i] + c1 * gi;
                s2[i] = beta2 * s2[i] + c2 * gi * gi;
                p[i] = p[i] - step_size * s1[i] / (FWB_SQRT(s2[i]) * bias2 + eps);
            }
        } else {
            for (ptrdiff_t i = 0; i < n; i++) {
                FWB_T gi = FWB_EFFECTIVE(g[i], p[i]);
                s1[i] = mu * s1[i] + c1 * gi;
                s2[i] = beta2 * s2[i] + c2 * gi * gi;
                p[i] = p[i] * decay - step_size * s1[i] / (FWB_SQRT(s2[i]) * bias2 + eps);
            }
        }
    }
    }
}
#undef FWB_EFFECTIVE

/* 1 when every element is finite. Integer tests on the exponent bits: an
 * OR-reduction over integers vectorises, a float comparison chain does not. */
FWB_ATTR static int FWB_FN(all_finite)(const FWB_T *x, ptrdiff_t n) {
    FWB_BITS bad = 0;
    for (ptrdiff_t i = 0; i < n; i++) {
        FWB_BITS u;
        memcpy(&u, x + i, sizeof u);
        bad |= (FWB_BITS)((u & FWB_EXP_MASK) == FWB_EXP_MASK);
    }
    return bad == 0;
}

/* max |x| in double, INFINITY when an element is NaN or infinite: the largest
 * magnitude is the largest bit pattern with the sign cleared (NaN and infinity
 * above every finite value), an integer maximum that vectorises. */
FWB_ATTR static double FWB_FN(max_abs)(const FWB_T *x, ptrdiff_t n) {
    FWB_BITS top = 0;
    for (ptrdiff_t i = 0; i < n; i++) {
        FWB_BITS u;
        memcpy(&u, x + i, sizeof u);
        u &= FWB_ABS_MASK;
        top = u > top ? u : top;
    }
    if (top >= FWB_EXP_MASK)
        return INFINITY;
    FWB_T v;
    memcpy(&v, &top, sizeof v);
    return (double)v;
}

/* sum |x| and sum x^2 in double. Eight partial sums (element i goes to sum
 * i mod 8), combined pairwise at the end: the same order on every call and
 * every level, and eight independent chains of additions instead of one, so
 * the loop runs at the adder's throughput rather than its latency. */
FWB_ATTR static void FWB_FN(abs_sq_sums)(const FWB_T *x, ptrdiff_t n, double *sum_abs,
                                         double *sum_sq) {
    double a[8] = {0}, q[8] = {0};
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) {
            double v = (double)x[i + k];
            a[k] += fabs(v);
            q[k] += v * v;
        }
    for (int k = 0; i < n; i++, k++) {
        double v = (double)x[i];
        a[k] += fabs(v);
        q[k] += v * v;
    }
    *sum_abs = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
    *sum_sq = ((q[0] + q[1]) + (q[2] + q[3])) + ((q[4] + q[5]) + (q[6] + q[7]));
}

/* Z (n x m) = A (n x k) @ W (k x m) for products too small for BLAS: each
 * output row gathered as z += a[p] * W[p, :] over p in order, which vectorises
 * across the row and keeps each element's order of additions at every level. */
FWB_ATTR static void FWB_FN(small_nn)(const FWB_T *FWB_RESTRICT A, ptrdiff_t n, ptrdiff_t k,
                                      const FWB_T *FWB_RESTRICT W, ptrdiff_t m,
                                      FWB_T *FWB_RESTRICT Z) {
    for (ptrdiff_t i = 0; i < n; i++) {
        const FWB_T *FWB_RESTRICT a = A + i * k;
        FWB_T *FWB_RESTRICT z = Z + i * m;
        for (ptrdiff_t j = 0; j < m; j++)
            z[j] = 0;
        for (ptrdiff_t p = 0; p < k; p++) {
            FWB_T ap = a[p];
            const FWB_T *FWB_RESTRICT w = W + p * m;
            for (ptrdiff_t j = 0; j < m; j++)
                z[j] += ap * w[j];
        }
    }
}

/* Rows p0 .. p1 - 1 of G (k x m) = alpha A^T (k x n) @ D (n x m) + beta G, the
 * batch rows added in order (see small_nn). */
FWB_ATTR static void FWB_FN(small_tn)(const FWB_T *FWB_RESTRICT A, ptrdiff_t n, ptrdiff_t k,
                                      const FWB_T *FWB_RESTRICT D, ptrdiff_t m,
                                      FWB_T *FWB_RESTRICT G, ptrdiff_t p0, ptrdiff_t p1,
                                      FWB_T alpha, FWB_T beta) {
    for (ptrdiff_t p = p0; p < p1; p++) {
        FWB_T *FWB_RESTRICT g = G + p * m;
        if (beta == 0)
            for (ptrdiff_t j = 0; j < m; j++)
                g[j] = 0;
        else if (beta != 1)
            for (ptrdiff_t j = 0; j < m; j++)
                g[j] = beta * g[j];
        for (ptrdiff_t i = 0; i < n; i++) {
            FWB_T a = alpha * A[i * k + p];
            const FWB_T *FWB_RESTRICT d = D + i * m;
            for (ptrdiff_t j = 0; j < m; j++)
                g[j] += a * d[j];
        }
    }
}
