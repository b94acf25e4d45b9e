/* fastwb's counter-based random numbers.
 *
 * Every random value is a pure function of (seed, stream, a, b, index): no
 * generator state is carried from one value to the next, so a value does not
 * depend on which thread draws it or in what order, and the NumPy mirror in
 * fastwb/_random.py reproduces any of them in vectorised code. The mixing
 * function is SplitMix64's finaliser (Steele, Lea and Flood 2014); bits(key, i)
 * is the i-th output of a SplitMix64 generator started at key.
 */
#ifndef FASTWB_RANDOM_H
#define FASTWB_RANDOM_H

#include <stdint.h>

#define FWB_GOLDEN 0x9e3779b97f4a7c15ULL

/* What a key is for: streams never share keys. */
enum { FWB_STREAM_INIT = 1, FWB_STREAM_DROPOUT = 2, FWB_STREAM_SHUFFLE = 3 };

static inline uint64_t fwb_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* The key of one stream of values, e.g. (seed, FWB_STREAM_DROPOUT, layer, step). */
static inline uint64_t fwb_key(uint64_t seed, uint64_t stream, uint64_t a, uint64_t b) {
    uint64_t k = fwb_mix64(seed ^ (stream * 0xd1b54a32d192ed03ULL));
    k = fwb_mix64(k ^ (a * 0xaef17502108ef2d9ULL));
    return fwb_mix64(k ^ (b * 0xf1357aea2e62a9c5ULL));
}

/* 64 random bits: value number i of the stream with this key. */
static inline uint64_t fwb_bits(uint64_t key, uint64_t i) {
    return fwb_mix64(key + (i + 1) * FWB_GOLDEN);
}

/* A uniform integer in [0, n) for n <= 2^32 (Lemire's multiply-shift). */
static inline uint64_t fwb_below(uint64_t key, uint64_t i, uint64_t n) {
    return ((fwb_bits(key, i) >> 32) * n) >> 32;
}

#endif
