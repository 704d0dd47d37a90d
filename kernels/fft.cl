// Mixed-radix Stockham FFT passes (radices 2, 3, 4, 5, 7, 8) along one axis of a complex
// array viewed as [outer, n, inner], interleaved (re, im) float2. One launch per pass,
// ping-ponging between two buffers; `ns` is the product of the radices already applied.
// Pass j reads v[r] = src[j + r*n/R] (r < R), twiddles it by w^r, w = exp(sign*i*2*pi*(j%ns)/(ns*R))
// (one sincos per work-item, powers by multiplication),
// takes the length-R DFT and writes dst[(j/ns)*ns*R + j%ns + q*ns] (q < R), times `scale`.
// `count` = outer * (n/R) * inner work-items do work; the global size may be rounded up past it.
// Index math is 32-bit: the host checks that 2 * outer * n * inner fits an int.

inline float2 cmul(float2 a, float2 b) {
    return (float2)(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}

// cos and sin of 2*pi*k/R (k < R): the R-th roots of unity of each radix; the sign of the
// transform flips the sine.
__constant float2 ROOTS_2[2] = {
    (float2)(1.000000000f, 0.000000000f),
    (float2)(-1.000000000f, 0.000000000f),
};
__constant float2 ROOTS_3[3] = {
    (float2)(1.000000000f, 0.000000000f),
    (float2)(-0.500000000f, 0.866025404f),
    (float2)(-0.500000000f, -0.866025404f),
};
__constant float2 ROOTS_4[4] = {
    (float2)(1.000000000f, 0.000000000f),
    (float2)(0.000000000f, 1.000000000f),
    (float2)(-1.000000000f, 0.000000000f),
    (float2)(0.000000000f, -1.000000000f),
};
__constant float2 ROOTS_5[5] = {
    (float2)(1.000000000f, 0.000000000f),
    (float2)(0.309016994f, 0.951056516f),
    (float2)(-0.809016994f, 0.587785252f),
    (float2)(-0.809016994f, -0.587785252f),
    (float2)(0.309016994f, -0.951056516f),
};
__constant float2 ROOTS_7[7] = {
    (float2)(1.000000000f, 0.000000000f),
    (float2)(0.623489802f, 0.781831482f),
    (float2)(-0.222520934f, 0.974927912f),
    (float2)(-0.900968868f, 0.433883739f),
    (float2)(-0.900968868f, -0.433883739f),
    (float2)(-0.222520934f, -0.974927912f),
    (float2)(0.623489802f, -0.781831482f),
};
__constant float2 ROOTS_8[8] = {
    (float2)(1.000000000f, 0.000000000f),
    (float2)(0.707106781f, 0.707106781f),
    (float2)(0.000000000f, 1.000000000f),
    (float2)(-0.707106781f, 0.707106781f),
    (float2)(-1.000000000f, 0.000000000f),
    (float2)(-0.707106781f, -0.707106781f),
    (float2)(0.000000000f, -1.000000000f),
    (float2)(0.707106781f, -0.707106781f),
};

#define FFT_PASS(R)                                                                          \
__kernel void fft_pass_##R(__global const float2* src, __global float2* dst, uint n,         \
                           uint inner, uint ns, float sign, float scale, uint count) {      \
    const uint gid = (uint)get_global_id(0);                                                 \
    if (gid >= count) return;                                                                \
    const uint m = n / R;                                                                    \
    const uint ii = gid % inner;                                                             \
    const uint t = gid / inner;                                                              \
    const uint j = t % m;                                                                    \
    const uint base = (t / m) * n * inner + ii;                                              \
    const uint k = j % ns;                                                                   \
    float c1;                                                                                \
    const float s1 = sincos(sign * 2.0f * M_PI_F * (float)k / (float)(ns * R), &c1);         \
    const float2 w1 = (float2)(c1, s1);                                                      \
    float2 w = (float2)(1.0f, 0.0f);                                                         \
    float2 v[R];                                                                             \
    _Pragma("unroll")                                                                        \
    for (uint r = 0; r < R; ++r) {                                                           \
        v[r] = cmul(src[base + (j + r * m) * inner], w);                                     \
        w = cmul(w, w1);                                                                     \
    }                                                                                        \
    const uint out0 = base + ((j / ns) * ns * R + k) * inner;                                \
    _Pragma("unroll")                                                                        \
    for (uint q = 0; q < R; ++q) {                                                           \
        float2 acc = v[0];                                                                   \
        _Pragma("unroll")                                                                    \
        for (uint r = 1; r < R; ++r) {                                                       \
            const float2 z = ROOTS_##R[(r * q) % R];                                         \
            acc += cmul(v[r], (float2)(z.x, sign * z.y));                                    \
        }                                                                                    \
        dst[out0 + q * ns * inner] = acc * scale;                                            \
    }                                                                                        \
}

FFT_PASS(2)
FFT_PASS(3)
FFT_PASS(4)
FFT_PASS(5)
FFT_PASS(7)
FFT_PASS(8)
