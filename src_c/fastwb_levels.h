/* fastwb_kernels.h compiled at every SIMD level this build has, for one float
 * type. No include guard: fastwb_simd.h includes it once per type, having
 * defined FWB_T, FWB_TAG (f or d: the kernels' names end in _f_avx2, ...) and
 * the type's math; this file undefines those again at its end. */

#define FWB_ATTR
#define FWB_SUFFIX FWB_CAT(FWB_CAT(_, FWB_TAG), _baseline)
#include "fastwb_kernels.h"
#undef FWB_SUFFIX
#undef FWB_ATTR

#ifdef FWB_SIMD_X86
#define FWB_ATTR FWB_ATTR_AVX2
#define FWB_SUFFIX FWB_CAT(FWB_CAT(_, FWB_TAG), _avx2)
#include "fastwb_kernels.h"
#undef FWB_SUFFIX
#undef FWB_ATTR

#define FWB_ATTR FWB_ATTR_AVX512
#define FWB_SUFFIX FWB_CAT(FWB_CAT(_, FWB_TAG), _avx512)
#include "fastwb_kernels.h"
#undef FWB_SUFFIX
#undef FWB_ATTR
#endif

#undef FWB_T
#undef FWB_TAG
#undef FWB_EXP0
#undef FWB_EXP
#undef FWB_EXPM1
#undef FWB_SOFTPLUS
#undef FWB_ERFC
#undef FWB_SIGMOID
#undef FWB_TANH
#undef FWB_SQRT
#undef FWB_BITS
#undef FWB_EXP_MASK
#undef FWB_ABS_MASK
