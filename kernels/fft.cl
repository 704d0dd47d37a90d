// Mixed-radix Stockham FFT passes (radices 2, 3, 4, 5, 7, 8) along one axis of a complex
// array viewed as [outer, n, inner], interleaved (re, im) float2. One launch per pass,
// ping-ponging between two buffers; `ns` is the product of the radices already applied.
// Pass j reads v[r] = src[j + r*n/R] (r < R), twiddles it by exp(sign*i*2*pi*r*(j%ns)/(ns*R)),
// takes the length-R DFT and writes dst[(j/ns)*ns*R + j%ns + q*ns] (q < R), times `scale`.
// `count` = outer * (n/R) * inner work-items do work; the global size may be rounded up past it.

inline float2 cmul(float2 a, float2 b) {
    return (float2)(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}

#define FFT_PASS(R)                                                                          \
__kernel void fft_pass_##R(__global const float2* src, __global float2* dst, uint n,         \
                           uint inner, uint ns, float sign, float scale, uint count) {   \
    const size_t gid = get_global_id(0);                                                     \
    if (gid >= count) return;                                                                \
    const uint m = n / R;                                                                    \
    const uint ii = (uint)(gid % inner);                                                     \
    const size_t t = gid / inner;                                                            \
    const uint j = (uint)(t % m);                                                            \
    const size_t o = t / m;                                                                  \
    const size_t base = o * (size_t)n * inner + ii;                                          \
    const uint k = j % ns;                                                                   \
    const float ang = sign * 2.0f * M_PI_F * (float)k / (float)(ns * R);                     \
    float2 v[R];                                                                             \
    _Pragma("unroll")                                                                        \
    for (uint r = 0; r < R; ++r) {                                                           \
        float c;                                                                             \
        const float s = sincos(ang * (float)r, &c);                                          \
        v[r] = cmul(src[base + (size_t)(j + r * m) * inner], (float2)(c, s));                \
    }                                                                                        \
    const size_t out0 = base + (size_t)((j / ns) * ns * R + k) * inner;                      \
    _Pragma("unroll")                                                                        \
    for (uint q = 0; q < R; ++q) {                                                           \
        float2 acc = v[0];                                                                   \
        _Pragma("unroll")                                                                    \
        for (uint r = 1; r < R; ++r) {                                                       \
            float c;                                                                         \
            const float s = sincos(sign * 2.0f * M_PI_F * (float)((r * q) % R) / (float)R, &c); \
            acc += cmul(v[r], (float2)(c, s));                                               \
        }                                                                                    \
        dst[out0 + (size_t)(q * ns) * inner] = acc * scale;                                  \
    }                                                                                        \
}

FFT_PASS(2)
FFT_PASS(3)
FFT_PASS(4)
FFT_PASS(5)
FFT_PASS(7)
FFT_PASS(8)
